"""Parallel grading (tarea2_grader/parallel/workers.py): same grades with 1 or 2 workers or on a real Dask
cluster, a grading run that resumes after Ctrl-C, and a cache that can only save time.

Every test grades the same small class of the fake course (a perfect notebook, a wrong answer, a
loop, a kernel killer, an untouched release, a file that is not a notebook) with the real
``pipeline.grade`` (or the real command line), as an instructor does, and reads grades.csv and
the gradebook.
"""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import pytest

from tests.support.fake_course import GOOD, auto_points, nb_text, student_notebook, write_zip

from tarea2_grader.parallel import canario
from tarea2_grader.integration import seeds
from tarea2_grader.commands import autograde_pass
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.engine import sandbox
from tarea2_grader.parallel import workers as parallel

ARCHIVE = os.path.join("downloaded", "tarea2", "archive")
EXPECTED = {"1001": 5, "1002": 2, "1003": 2, "1004": 2, "1005": 0}


def build_class(course):
    """The class's Moodle zip in ``course``."""
    rel = os.path.join(course.root, "release", "tarea2", "tarea2.ipynb")
    files = {
        "Ana Pérez_1001_assignsubmission_file_/tarea2.ipynb": nb_text(student_notebook(rel, GOOD)),
        "Bruno Díaz_1002_assignsubmission_file_/tarea2.ipynb": nb_text(
            student_notebook(rel, dict(GOOD, suma="def suma(a, b):\n    return a - b"))),
        "Carla Soto_1003_assignsubmission_file_/tarea2.ipynb": nb_text(
            student_notebook(rel, dict(GOOD, suma="while True:\n    pass"))),
        "Diego Mora_1004_assignsubmission_file_/tarea2.ipynb": nb_text(
            student_notebook(rel, dict(GOOD, suma="import os\nos._exit(1)"))),
        "Eva Ruiz_1005_assignsubmission_file_/tarea2.ipynb": nb_text(student_notebook(rel, {})),
        "Fabián Gil_1006_assignsubmission_file_/tarea2.ipynb": "esto no es JSON {",
    }
    write_zip(os.path.join(course.root, ARCHIVE, "moodle.zip"), files)


def new_class(fake_course_factory, name, seeds_from=None):
    """A fresh fake course with the class's zip; the seeds of ``seeds_from`` when given."""
    course = fake_course_factory(name)
    build_class(course)
    if seeds_from is not None:
        shutil.copy(os.path.join(seeds_from.root, seeds.FILE), course.root)
    return course


def grades_csv(course):
    """grades.csv's text."""
    with open(course.path("grades.csv"), encoding="utf-8") as fh:
        return fh.read()


def cache_entries(course):
    """{student: (cache file, the worker that graded it)}."""
    folder = course.path(parallel.CACHE_DIRNAME)
    out = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            data = json.load(fh)
        out[data["alumno"]] = (os.path.join(folder, name), data["trabajador"])
    return out


@pytest.fixture(scope="module")
def sequential(fake_course_factory):
    """The class graded one student at a time: the reference for every other way."""
    course = new_class(fake_course_factory, "secuencial")
    pipeline.grade(course, student_timeout=120, quiet=True, workers=1)
    return course


@pytest.mark.slow
def test_sequential_grades_are_right(sequential):
    for student, points in EXPECTED.items():
        assert sum(v or 0 for v in auto_points(sequential, student).values()) == points, student
    assert "no es un notebook" in grades_csv(sequential) or "no es JSON" in grades_csv(sequential)


@pytest.mark.slow
def test_two_workers_give_the_same_grades_and_fill_the_cache(sequential, fake_course_factory):
    course = new_class(fake_course_factory, "paralelo", seeds_from=sequential)
    pipeline.grade(course, student_timeout=120, quiet=True, workers=2)
    assert grades_csv(course) == grades_csv(sequential)
    for student in EXPECTED:
        assert auto_points(course, student) == auto_points(sequential, student)
    # nbgrader's own run graded nobody again: every verdict came from the parallel workers.
    assert autograde_pass.passed_from_cache(course) == set(EXPECTED)
    assert set(cache_entries(course)) == set(EXPECTED)


@pytest.mark.slow
def test_gradebook_passes_during_grading_give_the_same_grades(sequential, fake_course_factory):
    """nbgrader's pass runs on the students already graded while the workers grade the rest (in
    batches of 2 here): the gradebook and grades.csv are those of the single pass at the end."""
    course = new_class(fake_course_factory, "pasadas", seeds_from=sequential)
    with open(course.path("nbgrader_config.py"), "a", encoding="utf-8") as fh:
        fh.write("\nc.ParallelGrading.pass_batch = 2\n")
    runs = []
    real = autograde_pass.autograde_all

    def spy(course_, students, *args, **kwargs):
        runs.append(list(students))
        return real(course_, students, *args, **kwargs)

    started = []
    real_process = autograde_pass.PassProcess

    class CountedProcess(real_process):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self.proc.pid)

    autograde_pass.autograde_all = spy
    autograde_pass.PassProcess = CountedProcess
    try:
        pipeline.grade(course, student_timeout=120, quiet=True, workers=1)
    finally:
        autograde_pass.autograde_all = real
        autograde_pass.PassProcess = real_process
    assert len(runs) >= 2 and all(runs), runs  # passes while grading, then the rest
    assert len(started) == 1  # all of them in one nbgrader process
    assert sorted(s for run in runs for s in run) == sorted(EXPECTED)  # each student passed once
    assert grades_csv(course) == grades_csv(sequential)
    for student in EXPECTED:
        assert auto_points(course, student) == auto_points(sequential, student)
    assert autograde_pass.passed_from_cache(course) == set(EXPECTED)


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_grades(sequential, fake_course_factory):
    from distributed import LocalCluster
    course = new_class(fake_course_factory, "dask", seeds_from=sequential)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        pipeline.grade(course, student_timeout=120, quiet=True, scheduler=cluster.scheduler_address)
    assert grades_csv(course) == grades_csv(sequential)
    assert autograde_pass.passed_from_cache(course) == set(EXPECTED)
    graded_by = {worker for _path, worker in cache_entries(course).values()}
    me = parallel.worker_id()
    assert graded_by and me not in graded_by, "the jobs ran in this process, not on the cluster's workers"


@pytest.mark.slow
def test_interrupted_grading_resumes_without_regrading(sequential, fake_course_factory, monkeypatch):
    course = new_class(fake_course_factory, "reanudar", seeds_from=sequential)
    cmd = [sys.executable, "-m", "tarea2_grader", "grade", "--course", course.root, "--workers", "1",
           "--timeout-alumno", "120"]
    # SIGINT as in a terminal, even when this suite runs in the background (which ignores it)
    proc = subprocess.Popen(cmd, cwd=course.root, env=nbgrader_run.nbgrader_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while len(cache_entries(course)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # the instructor's Ctrl-C
    proc.wait(timeout=60)
    finished = cache_entries(course)
    assert 2 <= len(finished) < len(EXPECTED), "the run was not interrupted half way"
    stamps = {s: os.stat(path).st_mtime_ns for s, (path, _w) in finished.items()}

    graded_again = []
    real = parallel.grade_job

    def spy(job):
        if job.student != canario.STUDENT:  # the canary goes through grade_job before anyone is graded
            graded_again.append(job.student)
        return real(job)

    monkeypatch.setattr(parallel, "grade_job", spy)
    pipeline.grade(course, student_timeout=120, quiet=True, workers=2)
    assert sorted(graded_again) == sorted(set(EXPECTED) - set(finished))
    assert {s: os.stat(path).st_mtime_ns for s, (path, _w) in cache_entries(course).items()
            if s in stamps} == stamps
    assert grades_csv(course) == grades_csv(sequential)


@pytest.mark.slow
def test_a_worker_failure_costs_time_not_points(sequential, fake_course_factory, monkeypatch):
    course = new_class(fake_course_factory, "fallo", seeds_from=sequential)
    real = parallel.grade_job

    def flaky(job):
        if job.student in ("1001", "1003"):
            return {"student": job.student, "key": job.key, "error": "MemoryError: el trabajador murió"}
        return real(job)

    monkeypatch.setattr(parallel, "grade_job", flaky)
    pipeline.grade(course, student_timeout=120, quiet=True, workers=2)
    assert grades_csv(course) == grades_csv(sequential)
    assert autograde_pass.passed_from_cache(course) == set(EXPECTED) - {"1001", "1003"}


@pytest.mark.slow
def test_the_key_changes_with_everything_that_can_change_a_verdict(sequential):
    nb = nbgrader_run.sanitized_notebook(sequential, "1001")
    limits = sandbox.Limits(cell_timeout=4, test_timeout=4)
    here = [sequential.root]
    key = parallel.job_key(nb, 7, limits, "pruebas_curso", search=here)
    assert parallel.job_key(nbgrader_run.sanitized_notebook(sequential, "1001"), 7, limits, "pruebas_curso",
                            search=here) == key
    other_cell = nbgrader_run.sanitized_notebook(sequential, "1001")
    answer = next(c for c in other_cell.cells if "def suma" in c.source)
    answer.source = answer.source.replace("b + a", "a + b")
    changed = {
        "a cell": parallel.job_key(other_cell, 7, limits, "pruebas_curso", search=here),
        "the seed": parallel.job_key(nb, 8, limits, "pruebas_curso", search=here),
        "a limit": parallel.job_key(nb, 7, sandbox.Limits(cell_timeout=5, test_timeout=4), "pruebas_curso",
                                    search=here),
        "the tests": parallel.job_key(nb, 7, limits, "tarea2_grader.tarea2.hidden", search=here),
    }
    assert key not in changed.values() and len(set(changed.values())) == len(changed)


@pytest.mark.slow
def test_nbgrader_finds_the_key_the_coordinator_computed(sequential):
    """The coordinator's copy of nbgrader's sanitizing gives the very key TrustedExecute computes."""
    assert set(cache_entries(sequential)) == set(EXPECTED)
    assert autograde_pass.passed_from_cache(sequential) == set(EXPECTED)


def test_the_key_covers_every_module_that_grading_imports():
    """A module the grading code imports but the key leaves out could change a verdict unseen."""
    import ast
    package = parallel.PACKAGE_DIR
    imported = set()
    for name in parallel.GRADING_MODULES:
        with open(os.path.join(package, name + ".py"), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("tarea2_grader."):
                continue
            module = "/".join(node.module.split(".")[1:])
            for alias in node.names:  # from tarea2_grader.engine import cells, or from ...engine.cells import x
                named = module + "/" + alias.name
                imported.add(named if os.path.isfile(os.path.join(package, named + ".py")) else module)
    assert imported, "no import of the package found: the check would prove nothing"
    assert imported <= set(parallel.GRADING_MODULES), imported - set(parallel.GRADING_MODULES)


def test_two_courses_in_one_process_keep_their_own_hidden_tests(tmp_path):
    """A Dask worker (or this test process) grading two courses never mixes their tests modules."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, value in ((a, 1), (b, 2)):
        folder.mkdir()
        (folder / "pruebas_x.py").write_text("VALOR = {}\n".format(value))
    assert parallel.load_tests("pruebas_x", [str(a)]).VALOR == 1
    assert parallel.load_tests("pruebas_x", [str(b)]).VALOR == 2
    assert parallel.code_fingerprint("pruebas_x", [str(a)]) != parallel.code_fingerprint("pruebas_x", [str(b)])


@pytest.mark.slow
def test_a_worker_process_grades_with_one_torch_thread():
    """A worker process (a Dask worker, or the coordinator's threads) grades with torch on one
    intra-op thread, as the sandbox does: a thread pool per process on shared cores costs more
    than the hidden tests' small tensors."""
    script = "\n".join([
        "import nbformat, torch",
        "from tarea2_grader.engine import sandbox",
        "from tarea2_grader.parallel import workers",
        "torch.set_num_threads(2)",
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = 1')])",
        "job = workers.make_job('1001', nb, 7, sandbox.Limits(), 'tarea2_grader.tarea2.hidden')",
        "reply = workers.grade_job(job)",
        "assert 'resultado' in reply, reply",
        "print('threads', torch.get_num_threads())",
    ])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=nbgrader_run.nbgrader_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["threads", "1"]


class FakeClock:
    """``time`` for the progress bar: ``now`` moves only when a test moves it."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


def progress_with_clock(monkeypatch, total):
    clock = FakeClock()
    monkeypatch.setattr(parallel, "time", clock)
    out = io.StringIO()
    return parallel.Progress(total, stream=out, min_interval=0), clock, out


def test_progress_estimates_the_time_left_from_the_students_graded(monkeypatch):
    bar, clock, out = progress_with_clock(monkeypatch, 10)
    clock.now += 4
    bar.step()
    clock.now += 4
    bar.step()
    lines = out.getvalue().splitlines()
    assert lines[-1].endswith("2/10 alumnos · quedan 8 · faltan ~32 s · 8 s"), lines
    clock.now += 32
    bar.step(8)
    assert out.getvalue().splitlines()[-1].endswith("10/10 alumnos · quedan 0 · 40 s")


def test_a_resumed_run_does_not_count_kept_verdicts_in_the_time_left(monkeypatch):
    # 8 students kept from an interrupted run, then one graded in 6 s: 1 left, about 6 s more.
    bar, clock, out = progress_with_clock(monkeypatch, 10)
    bar.step(8, instant=True)
    assert "faltan" not in out.getvalue()  # nothing graded yet: no estimate
    clock.now += 6
    bar.step()
    assert out.getvalue().splitlines()[-1].endswith("9/10 alumnos · quedan 1 · faltan ~6 s · 6 s")


def test_grade_jobs_counts_cached_students_as_instant(monkeypatch):
    bar, clock, _out = progress_with_clock(monkeypatch, 5)
    jobs = [types.SimpleNamespace(key="k{}".format(i), student="s{}".format(i)) for i in range(4)]
    cache = {"k0", "k1", "k2"}  # an interrupted run kept three students' verdicts

    def run_local(pending, workers, on_result):
        for job in pending:
            clock.now += 5
            on_result({"key": job.key, "student": job.student, "error": "x"})

    monkeypatch.setattr(parallel, "run_local", run_local)
    resumed = []
    parallel.grade_jobs(jobs, cache, workers=1, progress=bar, resumed=resumed)
    assert resumed == ["s0", "s1", "s2"]
    assert bar.line().endswith("4/5 alumnos · quedan 1 · faltan ~5 s · 5 s")
