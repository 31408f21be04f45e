"""When the grader itself fails: a broken environment grades nobody, a grader failure is never a 0.

Each test grades the fake course's class through the real command (``python -m tarea2_grader
grade``, what ``make grade`` runs) or ``pipeline.grade``, with an honest classmate ("1001", the
reference answers) beside the case, and reads the exit status, grades.csv, the gradebook and
feedback/:

* environments that cannot grade (a symlinked ``.venv`` that can, bubblewrap missing or broken, an
  interpreter without torch): exit 2 and nothing written, or graded correctly;
* a grader failure during the run (the course's disk full, simulated by the fault-injection hook
  of :mod:`tarea2_grader.parallel.workers`): that student ungraded, exit 3, a rerun grades exactly them;
* what the student causes (their scratch full, their process killed): their own cost only.
"""
import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import venv

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbgrader.api import Gradebook, MissingEntry

from tests.support.fake_course import GOOD, nb_text, student_notebook, write_zip
from tests.support.repo import REPO

from tarea2_grader import __main__ as cli
from tarea2_grader.parallel import canario
from tarea2_grader.commands import devolver
from tarea2_grader.commands import pipeline
from tarea2_grader.engine import runner
from tarea2_grader.engine import sandbox
from tarea2_grader.parallel import workers as parallel

pytestmark = pytest.mark.slow

HONEST = "1001"


def make_class(fake_course_factory, name, others=None, config=""):
    """A fake course whose Moodle zip holds the honest classmate and ``others`` ({id: answers})."""
    course = fake_course_factory(name)
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    files = {"Ana Pérez_{}_assignsubmission_file_/tarea2.ipynb".format(HONEST): nb_text(student_notebook(rel, GOOD))}
    for sid, answers in (others or {}).items():
        files["Alumno {0}_{0}_assignsubmission_file_/tarea2.ipynb".format(sid)] = nb_text(
            student_notebook(rel, dict(GOOD, **answers)))
    write_zip(os.path.join(course.archive_dir, "moodle.zip"), files)
    if config:
        with open(course.path("nbgrader_config.py"), "a", encoding="utf-8") as fh:
            fh.write("\n" + config + "\n")
    return course


def grade_cli(course, python=sys.executable, path=None):
    """``python -m tarea2_grader grade`` on ``course`` as an instructor runs it: (exit status, output)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    env["PATH"] = path if path is not None else os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    run = subprocess.run([python, "-m", "tarea2_grader", "grade", "--course", course.root, "--workers", "1"],
                         cwd=course.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    return run.returncode, run.stdout.decode("utf-8", "replace")


def grades(course):
    """grades.csv by student id."""
    with open(course.path("grades.csv"), encoding="utf-8") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def gradebook_scores(course, student):
    """The student's scores in the gradebook (None when the gradebook has no submission of theirs)."""
    with Gradebook("sqlite:///" + course.path("gradebook.db"), "curso-de-prueba") as gb:
        try:
            nb = gb.find_submission_notebook("tarea2", "tarea2", student)
        except MissingEntry:
            return None
        return {g.name: g.auto_score for g in nb.grades}


def assert_nothing_written(course, students):
    """No score anywhere: no grades.csv, no feedback, no autograded notebook, nothing in the gradebook."""
    assert not os.path.exists(course.path("grades.csv"))
    assert not os.path.exists(course.path("feedback"))
    for student in students:
        assert not os.path.exists(course.autograded_nb(student))
        assert gradebook_scores(course, student) is None


def shim_path(tmp_path, bwrap_script=None):
    """A PATH with every program of /usr/bin but bubblewrap; ``bwrap_script`` becomes its ``bwrap``."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for name in os.listdir("/usr/bin"):
        if name != "bwrap":
            os.symlink(os.path.join("/usr/bin", name), shims / name)
    if bwrap_script is not None:
        (shims / "bwrap").write_text(bwrap_script)
        (shims / "bwrap").chmod(0o755)
    return os.path.dirname(sys.executable) + os.pathsep + str(shims)


# ---------------------------------------------------------------- environments

def test_a_symlinked_venv_grades_correctly(fake_course_factory, tmp_path):
    """The course's .venv reached through a symbolic link: the sandbox starts the real interpreter
    and the class is graded as usual (this gave every student 0 before)."""
    course = make_class(fake_course_factory, "venv_enlace", {"1002": {"suma": "def suma(a, b):\n    return a - b"}})
    link = tmp_path / "venv-enlace"
    os.symlink(os.path.realpath(sys.prefix), link)
    status, out = grade_cli(course, python=str(link / "bin" / "python"))
    assert status == 0, out
    rows = grades(course)
    assert rows[HONEST]["total"] == "5" and rows["1002"]["total"] == "2", out
    assert "sin corregir" not in rows[HONEST]["observaciones"]


def test_without_bubblewrap_nobody_is_graded_unless_the_config_allows_it(fake_course_factory, tmp_path):
    course = make_class(fake_course_factory, "sin_bwrap")
    path = shim_path(tmp_path)
    status, out = grade_cli(course, path=path)
    assert status == pipeline.EXIT_NOTHING_GRADED, out
    assert "bubblewrap (bwrap) no está instalado" in out and "require_sandbox = False" in out, out
    assert_nothing_written(course, [HONEST])

    with open(course.path("nbgrader_config.py"), "a", encoding="utf-8") as fh:
        fh.write("\nc.TrustedExecute.require_sandbox = False\n")
    status, out = grade_cli(course, path=path)
    assert status == 0, out
    rows = grades(course)
    assert rows[HONEST]["total"] == "5", out
    assert all(r["observaciones"].startswith("sin aislamiento") for r in rows.values()), rows


BROKEN_BWRAP = """#!/bin/sh
# passes the quick check (a bare sandbox), fails every real one
case " $* " in *" --unshare-all "*) exec /usr/bin/bwrap "$@";; esac
echo "bwrap: fallo simulado" >&2
exit 1
"""


@pytest.mark.parametrize("script", [BROKEN_BWRAP, "#!/bin/sh\nexit 1\n"], ids=["canario", "comprobacion"])
def test_a_broken_bubblewrap_grades_nobody(fake_course_factory, tmp_path, script):
    """A bwrap that fails: caught by the quick check, or (when it passes that) by the canary."""
    course = make_class(fake_course_factory, "bwrap_roto")
    status, out = grade_cli(course, path=shim_path(tmp_path, script))
    assert status == pipeline.EXIT_NOTHING_GRADED, out
    assert "make grade no corrigió a nadie" in out and "bwrap --ro-bind / / true" in out, out
    assert_nothing_written(course, [HONEST])


def test_an_interpreter_without_torch_fails_the_canary(fake_course_factory, tmp_path):
    bare = tmp_path / "sin-torch"
    venv.create(str(bare), with_pip=False, symlinks=True)
    python = str(bare / "bin" / "python")
    course = make_class(fake_course_factory, "sin_torch", config="c.TrustedExecute.sandbox_python = {!r}".format(python))
    status, out = grade_cli(course)
    assert status == pipeline.EXIT_NOTHING_GRADED, out
    assert "no puede importar torch" in out and "sandbox_python" in out, out
    assert_nothing_written(course, [HONEST])


# ---------------------------------------------------------------- failures during the run

def test_a_full_course_disk_leaves_that_student_ungraded_and_a_rerun_grades_exactly_them(
        fake_course_factory, monkeypatch, capsys):
    course = make_class(fake_course_factory, "disco_lleno", {"1002": {}, "1003": {"suma": "def suma(a, b):\n    return 0"}})
    monkeypatch.setenv(parallel.FAULT_ENV, "1002")  # writing 1002's result hits ENOSPC
    status = cli.main(["grade", "--course", course.root, "--workers", "1"])
    out = capsys.readouterr().out
    assert status == pipeline.EXIT_UNGRADED, out
    rows = grades(course)
    assert rows[HONEST]["total"] == "5" and rows["1003"]["total"] == "2"
    assert rows["1002"]["total"] == "" and rows["1002"]["parte_1"] == "" and rows["1002"]["parte_2"] == ""
    assert rows["1002"]["observaciones"].startswith("sin corregir (falla del corrector): ")
    assert "No space left on device" in rows["1002"]["observaciones"]
    assert gradebook_scores(course, "1002") is None
    assert not os.path.exists(course.feedback_page("1002"))
    assert "1002" in out.split("sin corregir por una falla del corrector")[1]
    with pytest.raises(devolver.HandBackRefused, match="1002"):
        devolver.hand_back(course)
    assert cli.main(["devolver", "--course", course.root]) == 2

    monkeypatch.delenv(parallel.FAULT_ENV)
    graded_again = []
    real = parallel.grade_job

    def spy(job):
        graded_again.append(job.student)
        return real(job)

    monkeypatch.setattr(parallel, "grade_job", spy)
    status = cli.main(["grade", "--course", course.root, "--workers", "1"])
    assert status == 0
    assert sorted(graded_again) == sorted([canario.STUDENT, "1002"])  # the canary, then exactly them
    rows = grades(course)
    assert {s: r["total"] for s, r in rows.items()} == {HONEST: "5", "1002": "5", "1003": "2"}
    assert os.path.exists(course.feedback_page("1002"))
    devolver.hand_back(course)


def test_a_full_scratch_folder_is_the_students_own_cost(fake_course_factory):
    """Writing past the working folder's cap fails that student's cell (ENOSPC in their sandbox):
    graded, not a grader failure; the classmate keeps every point."""
    filler = ("with open('relleno.bin', 'wb') as fh:\n    for _ in range(64):\n        fh.write(b'0' * 2**20)\n"
              "def suma(a, b):\n    return a + b")
    course = make_class(fake_course_factory, "scratch_lleno", {"1002": {"suma": filler}},
                        config="c.TrustedExecute.disk_mb = 16")
    rows = {r.student: r for r in pipeline.grade(course, quiet=True, workers=1)}
    assert rows[HONEST].total == 5 and not rows[HONEST].ungraded
    assert rows["1002"].total == 2 and not rows["1002"].ungraded
    nb = nbformat.read(course.autograded_nb("1002"), as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert any("No space left on device" in o.evalue for o in errors), errors


def test_a_student_who_kills_their_own_process_cannot_stop_the_run(fake_course_factory, capsys):
    killer = ("import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept PermissionError:\n"
              "    pass\ndef suma(a, b):\n    os._exit(3)")
    course = make_class(fake_course_factory, "se_mata", {"1002": {"suma": killer}})
    status = cli.main(["grade", "--course", course.root, "--workers", "1"])
    assert status == 0, capsys.readouterr().out
    rows = grades(course)
    assert rows[HONEST]["total"] == "5"
    assert rows["1002"]["total"] == "2"
    with Gradebook("sqlite:///" + course.path("gradebook.db"), "curso-de-prueba") as gb:
        grade = gb.find_grade("test_suma", "tarea2", "tarea2", "1002")
        assert grade.auto_score == 0
    nb = nbformat.read(course.autograded_nb("1002"), as_version=4)
    verdict = [c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") == "test_suma"][0]
    assert "hizo terminar el proceso" in verdict.outputs[0]["evalue"], verdict.outputs


# ---------------------------------------------------------------- the runner: sandboxes that die

def kill_sandbox_during(monkeypatch, marker, times):
    """Kill the whole sandbox (bubblewrap and everything in it) ``times`` times, each half a
    second into a cell whose source holds ``marker``, as a machine failure would; returns the count."""
    killed = []
    real = runner.Session.request

    def request(self, msg, limit, margin=runner.MARGIN):
        if msg.get("op") == "cell" and marker in msg.get("source", "") and len(killed) < times:
            killed.append(self.warm_sandbox.proc.pid)
            threading.Timer(0.5, os.killpg, (self.warm_sandbox.proc.pid, signal.SIGKILL)).start()
        return real(self, msg, limit, margin)

    monkeypatch.setattr(runner.Session, "request", request)
    return killed


def cells_notebook(*sources):
    return new_notebook(cells=[new_code_cell(s) for s in sources])


def test_a_sandbox_that_dies_once_is_retried_on_a_fresh_one(monkeypatch):
    killed = kill_sandbox_during(monkeypatch, "# lento", times=1)
    nb = cells_notebook("x = 20", "import time\ntime.sleep(1.5)  # lento\nprint('listo', x + 1)", "print('sigue', x)")
    result = runner.grade(nb, 1)
    assert len(killed) == 1
    assert not result.falla
    assert "listo 21" in "".join(o.get("text", "") for o in result.outputs[1]), result.outputs[1]
    assert "sigue 20" in "".join(o.get("text", "") for o in result.outputs[2]), result.outputs[2]


def test_a_sandbox_that_dies_again_is_charged_to_the_student_with_the_reason(monkeypatch):
    killed = kill_sandbox_during(monkeypatch, "# lento", times=10)
    nb = cells_notebook("x = 20", "import time\ntime.sleep(1.5)  # lento", "print('sigue', x)")
    result = runner.grade(nb, 1)
    assert len(killed) == 2  # the first try and one retry on a fresh sandbox
    assert not result.falla  # the student's: graded, with the reason
    for i in (1, 2):
        assert [o["ename"] for o in result.outputs[i]] == ["NoEjecutada"]
        assert runner.MSG_SANDBOX_DOWN in result.outputs[i][0]["evalue"]
    assert any(runner.MSG_SANDBOX_DOWN in n for n in result.notas), result.notas


def test_a_sandbox_that_cannot_start_is_a_grader_failure_never_cached(fake_course_factory, tmp_path):
    """No sandbox for a student: the result says the machinery failed, and the coordinator neither
    caches it nor hands it to nbgrader (a rerun grades the student)."""
    course = fake_course_factory("sin_sandbox")
    nb = cells_notebook("x = 1")
    limits = sandbox.Limits(python=str(tmp_path / "no-existe" / "python"))
    result = runner.grade(nb, 1, limits)
    assert "no se pudo iniciar el sandbox" in result.falla
    job = parallel.make_job("1009", nb, 1, limits, "pruebas_curso", import_paths=[course.root])
    cache = parallel.VerdictCache(course.path(parallel.CACHE_DIRNAME))
    failed, ready = {}, []
    parallel.grade_jobs([job], cache, workers=1, on_ready=ready.append, failed=failed)
    assert list(failed) == ["1009"] and "no se pudo iniciar el sandbox" in failed["1009"]
    assert ready == [] and job.key not in cache
