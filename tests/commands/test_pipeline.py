"""The grading pipeline on a tiny fake course (no torch): real nbgrader apps, real zips.

One ``pipeline.grade`` run grades every scenario at once (one kernel per
student is the cost); the tests then read the gradebook and grades.csv.
"""
import copy
import csv
import json
import os
import time

import nbformat
import psutil
import pytest

from tests.support.fake_course import GOOD, auto_points, nb_text, student_notebook, write_zip

from tools.examples import colab_json as as_colab
from tarea2_grader.integration import collect
from tarea2_grader.commands import autograde_pass
from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration import nbplugin
from tarea2_grader.integration import records
from tarea2_grader.commands import pipeline
from tarea2_grader.commands import pregrading
from tarea2_grader.engine import repair

ARCHIVE = os.path.join("downloaded", "tarea2", "archive")


def build_submissions(course):
    """The LMS zips of the scenario students; returns {student: expected autograded points}."""
    rel = os.path.join(course.root, "release", "tarea2", "tarea2.ipynb")
    moodle = {}
    # 1001: perfect, Moodle folder layout.
    moodle["Ana Pérez_1001_assignsubmission_file_/tarea2.ipynb"] = nb_text(student_notebook(rel, GOOD))
    # 1002: Colab copy, renamed, nbgrader metadata lost on a test cell and on answers.
    colab = student_notebook(rel, GOOD, drop_meta=("test_suma", "suma", "explica_md"))
    moodle["Bruno Díaz_1002_assignsubmission_file_/Copia de tarea2.ipynb"] = as_colab(colab)
    # 1003: duplicated test cell, wrong suma; Moodle flat layout.
    dup = student_notebook(rel, dict(GOOD, suma="def suma(a, b):\n    return a - b"), duplicate=("test_cuadrado",))
    moodle["Carla Soto_1003_assignsubmission_file_tarea2 (1).ipynb"] = nb_text(dup)
    # 1004: infinite loop at top level of an answer cell.
    loop = student_notebook(rel, dict(GOOD, suma="while True:\n    pass\ndef suma(a, b):\n    return a + b"))
    moodle["Diego Mora_1004_assignsubmission_file_/tarea2.ipynb"] = nb_text(loop)
    # 1005: os._exit in the second answer cell: the kernel dies.
    dead = student_notebook(rel, dict(GOOD, suma="import os\nos._exit(1)"))
    moodle["Eva Ruiz_1005_assignsubmission_file_/tarea2.ipynb"] = nb_text(dead)
    # 1006: not a notebook at all.
    moodle["Fabián Gil_1006_assignsubmission_file_/tarea2.ipynb"] = "esto no es JSON {"
    write_zip(os.path.join(course.root, ARCHIVE, "moodle.zip"), moodle)
    # Plain layout in a second zip. 2001: deleted test cell + an extra notebook.
    plain = {
        "2001/Copy of tarea2.ipynb": nb_text(student_notebook(rel, GOOD, delete=("test_cuadrado",))),
        "2001/borrador.ipynb": nb_text(student_notebook(rel, {})),
        "2002/tarea2.ipynb": nb_text(student_notebook(rel, {})),
    }
    write_zip(os.path.join(course.root, ARCHIVE, "plain.zip"), plain)
    return {"1001": 5, "1002": 5, "1003": 2, "1004": 2, "1005": 2, "1006": 0, "2001": 5, "2002": 0}


@pytest.fixture(scope="module")
def graded(fake_course_factory):
    """A fake course whose scenario zips went through ``pipeline.grade`` once."""
    course = fake_course_factory("pipeline")
    expected = build_submissions(course)
    rows = pipeline.grade(course, student_timeout=120, quiet=True)
    return course, expected, {r.student: r for r in rows}


def points_of_tests(course, student):
    """A student's autograded points of the test cells, from the gradebook."""
    return sum(v for k, v in auto_points(course, student).items() if k.startswith("test_") and v)


@pytest.mark.slow
def test_every_student_has_a_row(graded):
    course, expected, rows = graded
    assert sorted(rows) == sorted(expected)


@pytest.mark.slow
@pytest.mark.parametrize("student", ["1001", "1002", "1003", "1004", "1005", "2001", "2002"])
def test_autograded_points(graded, student):
    course, expected, rows = graded
    assert points_of_tests(course, student) == expected[student], auto_points(course, student)
    assert rows[student].total == expected[student]


@pytest.mark.slow
def test_moodle_and_plain_layouts_and_renamed_files(graded):
    course, _, rows = graded
    for student in ("1001", "1002", "1003", "2001", "2002"):
        assert os.listdir(course.submitted_dir(student)) == ["tarea2.ipynb"]
    assert "Copia de tarea2.ipynb" in rows["1002"].observations
    assert "borrador.ipynb" in rows["2001"].observations


@pytest.mark.slow
def test_lost_metadata_is_restored(graded):
    course, _, rows = graded
    assert "metadatos de nbgrader recuperados" in rows["1002"].observations
    assert "test_suma" in rows["1002"].observations
    nb = nbformat.read(course.submitted_nb("1002"), as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert {"test_suma", "suma", "explica_md", "test_cuadrado"} <= set(ids)
    assert nb.nbformat_minor == 5 and "colab" not in nb.metadata


@pytest.mark.slow
def test_written_answer_is_pending_not_zero(graded):
    course, _, rows = graded
    assert auto_points(course, "1002")["explica_md"] is None
    assert rows["1001"].pending_total == 1
    assert rows["2002"].pending_total == 0  # untouched stub: no answer, 0 points


@pytest.mark.slow
def test_duplicated_test_cell_counts_once(graded):
    course, _, rows = graded
    assert "duplicadas" in rows["1003"].observations
    assert "test_cuadrado" in rows["1003"].observations


@pytest.mark.slow
def test_deleted_test_cell_is_put_back(graded):
    course, _, rows = graded
    assert "test_cuadrado" in rows["2001"].observations
    assert auto_points(course, "2001")["test_cuadrado"] == 2


@pytest.mark.slow
def test_infinite_loop_costs_one_cell(graded):
    course, _, rows = graded
    assert "tiempo" in rows["1004"].observations
    assert auto_points(course, "1004")["test_cuadrado"] == 2


@pytest.mark.slow
def test_a_cell_that_kills_its_process_costs_only_that_cell(graded):
    course, _, rows = graded
    assert "la celda suma hizo terminar el proceso" in rows["1005"].observations
    assert auto_points(course, "1005")["test_cuadrado"] == 2
    assert auto_points(course, "1005")["test_suma"] == 0


@pytest.mark.slow
def test_non_json_file_gets_a_reason(graded):
    _, _, rows = graded
    assert "no es un notebook válido" in rows["1006"].observations
    assert rows["1006"].total == 0


@pytest.mark.slow
def test_grades_csv(graded):
    course, expected, _ = graded
    with open(os.path.join(course.root, "grades.csv"), encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["student_id", "total", "pendiente_manual", "parte_1", "parte_2", "observaciones",
                              "semilla", "revision"]
    by_id = {r["student_id"]: r for r in table}
    assert set(by_id) == set(expected)
    assert {r["revision"] for r in table} == {""}  # nothing flagged by the review of the source
    assert by_id["1001"]["parte_1"] == "2" and by_id["1001"]["parte_2"] == "3"
    assert by_id["1001"]["pendiente_manual"] == "1"
    assert by_id["1003"]["parte_2"] == "0"
    seeds = json.load(open(os.path.join(course.root, "semillas.json")))["tarea2"]
    assert by_id["1001"]["semilla"] == str(seeds["1001"]) and by_id["1006"]["semilla"] == ""
    assert len(set(seeds.values())) == len(seeds)  # drawn per student


@pytest.mark.slow
def test_notas_rebuilds_the_same_csv(graded):
    """``python -m tarea2_grader notas`` rewrites grades.csv from the gradebook and saved notes."""
    course, _, _ = graded
    path = os.path.join(course.root, "grades.csv")
    with open(path, encoding="utf-8") as fh:
        before = fh.read()
    pipeline.report(course)
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == before


@pytest.mark.slow
def test_feedback_was_generated(graded):
    course, _, _ = graded
    assert os.path.exists(os.path.join(course.root, "feedback", "1001", "tarea2", "tarea2.html"))


@pytest.mark.slow
def test_student_wall_clock_limit_kills_the_sandbox(graded):
    """Past the per-student budget the rest of the notebook is not run: what finished counts, the
    rest scores 0 with a reason, and nothing of the student's is left running."""
    course, _, _ = graded
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    res = autograde_pass.autograde_student(course, "1004", timeout=3)
    assert res.failure is None
    assert "se agotó el presupuesto de 3 s de tiempo en el sandbox" in " ".join(res.notes)
    assert auto_points(course, "1004")["test_suma"] == 0
    leftover = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not leftover


@pytest.mark.slow
def test_a_pass_out_of_time_is_killed_and_the_next_pass_starts_a_new_process(graded):
    """nbgrader's pass is one process that serves pass after pass.  A pass past its limit is
    killed with everything it started, and the next pass gets a new process that grades."""
    course, expected, _ = graded
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    args = pregrading.trusted_args(pregrading.trusted_settings(course, student_timeout=120))
    others = [s for s in course.students() if s != "1001"]
    killed = autograde_pass.PassProcess(course, autograde_pass.pass_args(course, 120, args))
    run = killed.grade(["1001"], others, timeout=0.5)  # nbgrader cannot even start in 0.5 s
    assert run.timed_out and not killed.alive
    assert autograde_pass.failure_reason(run, 0.5) == autograde_pass.REASON_TIMEOUT.format(0)

    passes = autograde_pass.GradebookPasses(course, 120, args, batch=0)
    passes._process = killed
    results = passes.finish(["1001", "2001"])
    assert {s: r.failure for s, r in results.items()} == {"1001": None, "2001": None}
    assert passes.passes == 1 and passes._process is None  # finished: its process has ended
    for student in ("1001", "2001"):
        assert points_of_tests(course, student) == expected[student]
    leftover = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not leftover


@pytest.mark.slow
def test_one_pass_process_grades_pass_after_pass(graded):
    course, expected, _ = graded
    args = pregrading.trusted_args(pregrading.trusted_settings(course, student_timeout=120))
    process = autograde_pass.PassProcess(course, autograde_pass.pass_args(course, 120, args))
    first = autograde_pass.autograde_all(course, ["1003", "1004"], 120, args, process=process)
    second = autograde_pass.autograde_all(course, ["1005"], 120, args, process=process, append_log=True)
    pid = process.proc.pid
    assert process.alive and process.batches == 2 and process.close() == 0
    assert [r.failure for r in (*first.values(), *second.values())] == [None, None, None]
    for student in ("1003", "1004", "1005"):
        assert points_of_tests(course, student) == expected[student], student
    assert autograde_pass.passed_from_cache(course) == {"1003", "1004", "1005"}  # the log keeps both passes
    assert pid not in {p.pid for p in psutil.Process().children()}


def pass_with_log(monkeypatch, text):
    """Make every nbgrader pass hand the coordinator ``text`` as its log (None: the real log)."""
    real = autograde_pass.PassProcess.grade

    def grade(self, students, exclude, timeout, on_line=None):
        run = real(self, students, exclude, timeout, on_line)
        return run if text is None else nbgrader_run.Run(run.returncode, text, run.timed_out)
    monkeypatch.setattr(autograde_pass.PassProcess, "grade", grade)


def outcomes(course, students, args):
    """{student: (failure, machinery, notes)} of one pass, and who came from the cache."""
    results = autograde_pass.autograde_all(course, students, 120, args)
    return ({s: (r.failure, r.machinery, r.notes) for s, r in results.items()},
            autograde_pass.passed_from_cache(course))


LYING_LOG = ("Falla del corrector con 1001: el log miente\n"
             "There was an error processing assignment 'tarea2' for student '1004'\n"
             "Veredictos de 2001 ya calculados (corrección en paralelo)\n"
             "Calificando 1004 en bubblewrap (semilla 1)\n")


def test_the_coordinator_reads_records_not_the_log(graded, monkeypatch):
    """What a pass did for each student (cache hit, notes, a failure of the machinery) comes from
    the records TrustedExecute writes: an empty or lying nbgrader log changes nothing."""
    course, expected, _ = graded
    args = pregrading.trusted_args(pregrading.trusted_settings(course, student_timeout=120))
    broken = args + ["--TrustedExecute.sandbox_python=" + os.path.join(course.root, "no-existe", "python"),
                     "--TrustedExecute.use_cache=False"]
    seen = []
    for log in (None, "", LYING_LOG):
        pass_with_log(monkeypatch, log)
        seen.append((outcomes(course, ["1001", "1004"], args), outcomes(course, ["2002"], broken)))
    (graded_ok, cached), (failed, _) = seen[0]
    assert {s: f for s, (f, _, _) in graded_ok.items()} == {"1001": None, "1004": None}
    assert cached == {"1001", "1004"}  # the workers' verdicts
    meta = nbformat.read(course.autograded_nb("1004"), as_version=4).metadata[nbplugin.META_KEY]
    assert graded_ok["1004"][2] == meta["notas"] and meta["notas"]  # the loop's note, from the record
    assert failed["2002"][1] and "sandbox" in failed["2002"][0], failed
    assert not os.path.exists(course.autograded_nb("2002"))  # ungraded, not 0
    assert seen[1] == seen[0] and seen[2] == seen[0]
    for student in ("1001", "1004"):
        assert points_of_tests(course, student) == expected[student]


def test_a_student_without_a_record_is_ungraded_not_zero(graded, monkeypatch):
    """A student the coordinator finds no record for after a pass (here: it looks in an empty
    folder, the pass wrote the record in the usual one) stays ungraded by a failure of the
    machinery, whatever nbgrader's log says."""
    course, _, _ = graded
    args = pregrading.trusted_args(pregrading.trusted_settings(course, student_timeout=120))
    process = autograde_pass.PassProcess(course, autograde_pass.pass_args(course, 120, args))
    written = autograde_pass.records_dir(course)
    monkeypatch.setattr(autograde_pass, "records_dir", lambda c: os.path.join(c.root, "registros-vacios"))
    try:
        results = autograde_pass.autograde_all(course, ["2001"], 120, args, process=process)
    finally:
        process.close()
    assert records.read_record(written, "2001") is not None  # graded, but the coordinator got no record
    assert results["2001"].machinery and results["2001"].failure
    assert results["2001"].observations().startswith(grade_table.UNGRADED_PREFIX)
    assert not os.path.exists(course.autograded_nb("2001"))


def test_a_record_survives_its_round_trip_and_odd_ones_are_refused(tmp_path):
    folder = str(tmp_path)
    record = records.PassRecord("a/b ñ", True, None, 7, True, ["nota"], 1.5, ["test_x"])
    records.write_record(folder, record)
    assert records.read_record(folder, "a/b ñ") == record
    assert records.read_records(folder) == {"a/b ñ": record}
    assert records.parse_record({"student": 3}) is None and records.parse_record([]) is None
    odd = records.parse_record({"student": "x", "from_cache": "sí", "seed": True, "notes": [1, "n"]})
    assert odd == records.PassRecord("x", False, None, None, None, ["n"], 0.0, [])
    with open(records.record_path(folder, "otro"), "w") as fh:
        fh.write('{"student": "a/b ñ"}')  # a record under another student's name is not theirs
    assert records.read_record(folder, "otro") is None
    records.forget(folder)
    assert records.read_records(folder) == {}


# ---------------------------------------------------------------- unit checks, no kernel

def test_collector_patterns(tmp_path):
    root = tmp_path / "extracted"
    files = {
        "zip/Ana Pérez_1001_assignsubmission_file_/Copia de tarea2.ipynb": "{}",
        "zip/Ana Pérez_1001_assignsubmission_file_/otro.ipynb": '{"cells": []}',
        "zip/Luis_77_assignsubmission_file_tarea2.ipynb": '{"cells": []}',
        "zip/abc123/tarea2.ipynb": '{"cells": []}',
        "zip/__MACOSX/abc123/._tarea2.ipynb": "x",
        "zip/José/tarea2.ipynb": '{"cells": []}',
        "zip/notas.txt": "x",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    plan = collect.plan_collection(str(root), collect.DEFAULT_PATTERNS, "tarea2.ipynb")
    assert sorted(plan.students) == ["1001", "77", "abc123"]
    # the valid JSON notebook wins over a better name that is not a notebook
    assert os.path.basename(plan.students["1001"].chosen) == "otro.ipynb"
    assert plan.bad_ids == ["zip/José/tarea2.ipynb"]


@pytest.mark.slow
def test_repair_is_idempotent(fake_course_factory, tmp_path):
    course = fake_course_factory("repair")
    rel = os.path.join(course.root, "release", "tarea2", "tarea2.ipynb")
    path = str(tmp_path / "nb.ipynb")
    with open(path, "w") as fh:
        fh.write(as_colab(student_notebook(rel, GOOD, drop_meta=("test_suma", "cuadrado"), duplicate=("suma",))))
    first = repair.repair_notebook(path, rel, course.source_nb)
    assert "test_suma" in first.restored and "cuadrado" in first.restored
    assert first.duplicates == ["suma"]
    again = repair.repair_notebook(path, rel, course.source_nb)
    assert again.messages() == []
    with open(path) as fh:
        assert json.load(fh)["nbformat_minor"] == 5


@pytest.mark.slow
def test_a_class_is_repaired_against_one_reading_of_the_release(fake_course_factory, tmp_path):
    """The release and source are read once for the whole class; no student's repair changes
    that reading, and a new release is read again."""
    course = fake_course_factory("repair-ref")
    rel = os.path.join(course.root, "release", "tarea2", "tarea2.ipynb")
    refs, meta = repair.reference(rel, course.source_nb)
    before = copy.deepcopy([(r.cell, r.names) for r in refs]), copy.deepcopy(meta)
    cases = [dict(delete=("test_suma", "dado")), dict(drop_meta=("cuadrado",), duplicate=("suma",)), {}]
    for n, edits in enumerate(cases):  # cells put back, metadata restored, duplicates: each from the reading
        path = str(tmp_path / "nb{}.ipynb".format(n))
        with open(path, "w") as fh:
            fh.write(as_colab(student_notebook(rel, GOOD, **edits)))
        repair.repair_notebook(path, rel, course.source_nb)
        again, meta_again = repair.reference(rel, course.source_nb)
        assert again is refs and meta_again is meta
    assert ([(r.cell, r.names) for r in refs], meta) == before
    nb = nbformat.read(rel, as_version=4)
    nb.cells[0].source += "\n\nNueva versión del enunciado."
    nbformat.write(nb, rel)
    new_refs, _meta = repair.reference(rel, course.source_nb)
    assert new_refs is not refs and new_refs[0].cell.source.endswith("Nueva versión del enunciado.")


def test_tampering_is_reported_for_manual_review():
    from nbformat.v4 import new_code_cell, new_notebook

    def cell(src, **meta):
        c = new_code_cell(src)
        if meta:
            c.metadata["nbgrader"] = dict(schema_version=3, **meta)
        return c

    nb = new_notebook(cells=[
        cell("torch.allclose = lambda *a, **k: True", grade_id="celoss", solution=True, grade=False, locked=False),
        cell("import sys\nsys.modules['x'] = None", grade_id="sgd", solution=True, grade=False, locked=False),
        cell("x = torch.allclose(a, b)\nprint(x == 1)", grade_id="entrenar", solution=True, grade=False, locked=False),
        cell("torch.allclose = None", grade_id="test_sgd", grade=True, solution=False, locked=True, points=1),
    ])
    notes = repair.tampering(nb)
    assert notes == ["revisar a mano: la celda celoss reasigna una función de biblioteca",
                     "revisar a mano: la celda sgd manipula módulos, builtins o el motor de autograd"]


@pytest.mark.slow
def test_grading_with_no_submissions_says_where_to_put_them(fake_course_factory, capsys):
    course = fake_course_factory("vacio")
    assert pipeline.grade(course) == []
    out = capsys.readouterr().out
    assert "No hay entregas" in out and os.path.join("downloaded", "tarea2", "archive") in out
    assert not os.path.exists(course.path("grades.csv"))


@pytest.mark.slow
def test_a_corrupt_zip_is_set_aside_and_the_rest_graded(fake_course_factory, capsys):
    course = fake_course_factory("zip_roto")
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    write_zip(os.path.join(course.archive_dir, "bueno.zip"),
              {"Ana Soto_3001_assignsubmission_file_/tarea2.ipynb": nb_text(student_notebook(rel, GOOD))})
    with open(os.path.join(course.archive_dir, "roto.zip"), "wb") as fh:
        fh.write(b"esto no es un zip")
    rows = pipeline.grade(course)
    assert [r.student for r in rows] == ["3001"]
    assert "'roto.zip' no es un zip válido" in capsys.readouterr().out
    assert os.path.exists(course.path("downloaded", "tarea2", "ilegibles", "roto.zip"))


def course_with_one_zip(fake_course_factory, name):
    course = fake_course_factory(name)
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    write_zip(os.path.join(course.archive_dir, "entregas.zip"),
              {"Ana Soto_3001_assignsubmission_file_/tarea2.ipynb": nb_text(student_notebook(rel, GOOD))})
    return course


@pytest.mark.slow
def test_submissions_are_collected_while_the_gradebook_syncs(fake_course_factory, monkeypatch):
    course = course_with_one_zip(fake_course_factory, "recoger_a_la_vez")
    seen = []

    def sync_waiting_for_the_collection(course_, scratch):
        deadline = time.monotonic() + 120
        while not os.path.exists(course.submitted_nb("3001")) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(os.path.exists(course.submitted_nb("3001")))
        raise RuntimeError("fin de la prueba")
    monkeypatch.setattr(pipeline, "sync_gradebook", sync_waiting_for_the_collection)
    with pytest.raises(RuntimeError, match="fin de la prueba"):
        pipeline.grade(course, quiet=True)
    assert seen == [True]


@pytest.mark.slow
def test_a_failed_sync_waits_for_the_collection_under_way(fake_course_factory, monkeypatch):
    course = course_with_one_zip(fake_course_factory, "recoger_y_fallar")

    def failed_sync(course_, scratch):
        raise RuntimeError("generate_assignment falló")
    monkeypatch.setattr(pipeline, "sync_gradebook", failed_sync)
    with pytest.raises(RuntimeError, match="generate_assignment falló"):
        pipeline.grade(course, quiet=True)
    assert os.path.exists(course.submitted_nb("3001"))  # zip_collect had ended: nothing left running
