"""The seeds file (``semillas.json``): drawn once per student, reused, redrawn on request, and
safe when the coordinator and nbgrader's pass draw at the same time."""
import json
import multiprocessing
import os

from tarea2_grader.integration import seeds


def test_seeds_are_drawn_per_student_recorded_and_reused(tmp_path):
    root = str(tmp_path)
    a = seeds.of_student(root, "tarea2", "1001")
    b = seeds.of_student(root, "tarea2", "1002")
    assert a != b
    assert seeds.of_student(root, "tarea2", "1001") == a
    assert seeds.read(root) == {"tarea2": {"1001": a, "1002": b}}
    assert json.load(open(os.path.join(root, seeds.FILE))) == {"tarea2": {"1001": a, "1002": b}}
    fresh = seeds.of_student(root, "tarea2", "1001", fresh=True)
    assert fresh != a and seeds.read(root)["tarea2"] == {"1001": fresh, "1002": b}


def test_no_file_reads_as_no_seeds_and_assignments_are_apart(tmp_path):
    root = str(tmp_path)
    assert seeds.read(root) == {}
    a = seeds.of_student(root, "tarea1", "1001")
    b = seeds.of_student(root, "tarea2", "1001")
    assert seeds.read(root) == {"tarea1": {"1001": a}, "tarea2": {"1001": b}}


def test_written_seeds_are_the_ones_graded(tmp_path):
    root = str(tmp_path)
    seeds.of_student(root, "tarea1", "9")
    seeds.write(root, "tarea2", {1001: 5, "1002": 6})
    assert seeds.of_student(root, "tarea2", "1001") == 5
    assert seeds.read(root)["tarea2"] == {"1001": 5, "1002": 6} and "9" in seeds.read(root)["tarea1"]


def _draw_many(root, start):
    for i in range(start, start + 40):
        seeds.of_student(root, "tarea2", str(i))


def test_two_processes_drawing_at_once_lose_no_seed(tmp_path):
    root = str(tmp_path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_draw_many, args=(root, k * 40)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(seeds.read(root)["tarea2"], key=int) == [str(i) for i in range(80)]
