"""The fast paths' master switch, per-path toggles and version guard (integration/fastpaths.py).

Off, each path is stock nbgrader/nbconvert: its classes delegate to their base, the pipeline runs
``python -m nbgrader``; a stock source whose sha256 changed switches its path off with one warning
line.  A small class graded through ``python -m tarea2_grader grade`` gets the same grades and the
same feedback with every path on, every path off, and one path off by its guard.
"""
import csv
import hashlib
import importlib
import inspect
import os
import subprocess
import sys

import nbformat
import pytest
from nbconvert.exporters import HTMLExporter
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, OverwriteCells,
                                    OverwriteKernelspec, SaveAutoGrades)


import shutil

from tarea2_grader.integration.course import Course
from tarea2_grader.integration.nbgrader_run import load_config
from tarea2_grader.integration import arranque, cellmeta, fastpaths, nbgrader_cli, retro_html, sharedgb

from tests.support.fake_course import student_notebook, write_zip
from tests.support.repo import REPO

GOOD = {"cuadrado": "def cuadrado(x):\n    return x ** 2",
        "suma": "def suma(a, b):\n    return b + a",
        "explica_md": "Porque multiplicar x por sí mismo es elevar al cuadrado."}
WRONG = dict(GOOD, suma="def suma(a, b):\n    return a - b")


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No switch from the environment, guards checked anew, no remembered config."""
    monkeypatch.delenv(fastpaths.ENV_MASTER, raising=False)
    monkeypatch.delenv(fastpaths.ENV_WITHOUT, raising=False)
    monkeypatch.setattr(fastpaths, "_guards", {})
    monkeypatch.setattr(fastpaths, "_warned", set())
    monkeypatch.setattr(fastpaths, "_config", [None])


def change_stock(monkeypatch, name):
    """Record another sha256 for the first stock source of path ``name`` (as if nbgrader changed)."""
    ref = next(iter(fastpaths.PATHS[name].stock))
    monkeypatch.setitem(fastpaths.PATHS[name].stock, ref, "0" * 64)
    return ref


def config(enabled=True, disabled=()):
    from traitlets.config import Config
    c = Config()
    c.FastPaths.enabled = enabled
    c.FastPaths.disabled = list(disabled)
    return c


# ---------------------------------------------------------------- the guard and the switches

def test_every_recorded_source_is_the_installed_one():
    """Fails after an nbgrader/nbconvert upgrade: read the new code, fix the path, record its hash."""
    assert {name: fastpaths.first_change(p) for name, p in fastpaths.PATHS.items()} == \
        dict.fromkeys(fastpaths.PATHS)


@pytest.mark.parametrize("ref", sorted({r for p in fastpaths.PATHS.values() for r in p.stock if ":" in r}))
def test_the_recorded_source_is_what_inspect_gives(ref):
    module, qualname = ref.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    assert fastpaths.source_sha256(ref) == hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


def test_the_course_config_names_the_switch_and_only_known_paths():
    cfg = load_config(Course(REPO))
    assert cfg.FastPaths.enabled is True and list(cfg.FastPaths.disabled) == []
    assert fastpaths.unknown_names(config(disabled=["sharedgb", "rapidisimo"])) == {"rapidisimo"}


def test_switches_from_the_config_and_the_environment(monkeypatch):
    assert all(fastpaths.active(n) for n in fastpaths.PATHS)
    assert not any(fastpaths.active(n, config(enabled=False)) for n in fastpaths.PATHS)
    assert [n for n in fastpaths.PATHS if not fastpaths.active(n, config(disabled=["cellmeta"]))] == ["cellmeta"]
    assert not fastpaths.active("cellmeta")  # the config given last is remembered
    monkeypatch.setenv(fastpaths.ENV_MASTER, "1")  # the environment overrides the config's master switch
    assert fastpaths.active("sharedgb", config(enabled=False))
    monkeypatch.setenv(fastpaths.ENV_MASTER, "0")
    assert not fastpaths.active("sharedgb", config())
    monkeypatch.delenv(fastpaths.ENV_MASTER)
    monkeypatch.setenv(fastpaths.ENV_WITHOUT, "sharedgb, retro_html")
    assert [n for n in fastpaths.PATHS if not fastpaths.active(n, config(disabled=["lotes"]))] == \
        ["lotes", "sharedgb", "retro_html"]


def test_a_changed_stock_source_switches_its_path_off_with_one_warning(monkeypatch, capsys):
    ref = change_stock(monkeypatch, "sharedgb")
    assert not fastpaths.active("sharedgb") and not fastpaths.active("sharedgb")
    assert all(fastpaths.active(n) for n in fastpaths.PATHS if n != "sharedgb")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aviso: ruta rápida 'sharedgb' apagada: " + ref)


def test_the_grade_command_passes_its_decision_to_the_processes_it_starts(monkeypatch):
    change_stock(monkeypatch, "cellmeta")
    environ = {}
    on = fastpaths.check_at_start(config(disabled=["lotes"]), environ)
    assert on == set(fastpaths.PATHS) - {"cellmeta", "lotes"}
    assert environ == {fastpaths.ENV_WITHOUT: "cellmeta,lotes"}


# ---------------------------------------------------------------- each toggle reaches its path

class Called(Exception):
    """Raised by a stand-in for a stock method: the fast class delegated to it."""


def spy(*args, **kwargs):
    raise Called()


DELEGATES = [
    ("sharedgb", sharedgb.SharedOverwriteKernelspec, OverwriteKernelspec, "preprocess"),
    ("sharedgb", sharedgb.SharedOverwriteCells, OverwriteCells, "preprocess"),
    ("sharedgb", sharedgb.SharedSaveAutoGrades, SaveAutoGrades, "preprocess"),
    ("sharedgb", sharedgb.SharedAssignLatePenalties, AssignLatePenalties, "preprocess"),
    ("cellmeta", cellmeta.CachedCheckCellMetadata, CheckCellMetadata, "preprocess"),
    ("retro_html", retro_html.FeedbackHTMLExporter, HTMLExporter, "from_notebook_node"),
]


@pytest.mark.parametrize("how", ["toggle", "master", "guard"])
@pytest.mark.parametrize("name,mine,stock,method", DELEGATES)
def test_off_the_class_is_its_stock_base(monkeypatch, how, name, mine, stock, method):
    monkeypatch.setattr(stock, method, spy)
    if how == "toggle":
        monkeypatch.setenv(fastpaths.ENV_WITHOUT, name)
    elif how == "master":
        monkeypatch.setenv(fastpaths.ENV_MASTER, "0")
    else:
        change_stock(monkeypatch, name)
    nb = nbformat.v4.new_notebook()
    with pytest.raises(Called):
        getattr(mine(), method)(nb, {"nbgrader": {}})


def test_on_the_class_does_not_delegate(monkeypatch):
    monkeypatch.setattr(CheckCellMetadata, "preprocess", spy)
    nb = nbformat.v4.new_notebook()
    assert cellmeta.CachedCheckCellMetadata().preprocess(nb, {})[0] is nb


def test_sharedgb_off_opens_nbgraders_gradebooks(monkeypatch, tmp_path):
    from nbgrader.api import Gradebook
    from nbgrader.converters import autograde
    url = "sqlite:///" + str(tmp_path / "gradebook.db")
    with sharedgb.open_gradebook(url) as gb:
        assert type(gb) is sharedgb.SharedEngineGradebook
    monkeypatch.setenv(fastpaths.ENV_WITHOUT, "sharedgb")
    with sharedgb.open_gradebook(url) as gb:
        assert type(gb) is Gradebook
    monkeypatch.setattr(autograde, "Gradebook", Gradebook)
    sharedgb.share_converter_engine()
    assert autograde.Gradebook is Gradebook


def test_nbgrader_cli_and_lotes_off_run_nbgraders_command_line(monkeypatch):
    assert nbgrader_cli.command()[1:] == ["-m", "tarea2_grader.integration.nbgrader_cli"]
    assert nbgrader_cli.batches_enabled()
    monkeypatch.setenv(fastpaths.ENV_WITHOUT, "nbgrader_cli,lotes")
    assert nbgrader_cli.command() == [sys.executable, "-m", "nbgrader"]
    assert not nbgrader_cli.batches_enabled()
    assert nbgrader_cli.batch_args(["a"], ["b", "c"]) == [
        "--CourseDirectory.student_id=a", "--CourseDirectory.student_id_exclude=b,c"]


@pytest.mark.slow
def test_arranque_off_leaves_jsonschema_and_the_exit_alone(monkeypatch):
    env = dict(os.environ, PYTHONPATH=REPO, **{fastpaths.ENV_WITHOUT: "arranque"})
    code = "import sys, tarea2_grader, nbformat\nprint('rfc3987_syntax' in sys.modules and " \
           "type(sys.modules['rfc3987_syntax']).__name__ == 'module' and " \
           "'syntax_helpers' in ' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    installed = subprocess.run([sys.executable, "-c", "import importlib.util; "
                                "print(importlib.util.find_spec('rfc3987_syntax') is not None)"],
                               capture_output=True, text=True, timeout=120).stdout.strip()  # asked without the stand-in
    assert out.stdout.strip() == installed, (out.stdout, out.stderr)
    monkeypatch.setenv(fastpaths.ENV_WITHOUT, "arranque")
    with pytest.raises(SystemExit) as exited:
        arranque.exit_without_teardown(4)
    assert exited.value.code == 4


# ---------------------------------------------------------------- a class graded both ways

SHARED_CONFIG = '''
c.Autograde.autograde_preprocessors = {autograde!r}
c.Autograde.sanitize_preprocessors = {sanitize!r}
c.GenerateFeedback.preprocessors = {feedback!r}
c.GenerateFeedback.exporter_class = {exporter!r}
c.HTMLExporter.sanitize_html = True
'''

GUARDED = '''import sys
from tarea2_grader.integration import fastpaths
ref = "nbgrader.preprocessors.latesubmissions:AssignLatePenalties.preprocess"
fastpaths.PATHS["sharedgb"].stock[ref] = "0" * 64
from tarea2_grader.__main__ import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture(scope="module")
def small_class(fake_course_factory):
    """A fake course with the repository's fast classes in its config, and three students' zip."""
    course = fake_course_factory("rapido")
    real = load_config(Course(REPO))
    with open(course.path("nbgrader_config.py"), "a", encoding="utf-8") as fh:
        fh.write(SHARED_CONFIG.format(
            autograde=list(real.Autograde.autograde_preprocessors),
            sanitize=list(real.Autograde.sanitize_preprocessors),
            feedback=list(real.GenerateFeedback.preprocessors), exporter=real.GenerateFeedback.exporter_class))
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    write_zip(course.path("downloaded", "tarea2", "archive", "moodle.zip"), {
        "Ana Pérez_1001_assignsubmission_file_/tarea2.ipynb": nbformat.writes(student_notebook(rel, GOOD)),
        "Carla Soto_1003_assignsubmission_file_/tarea2.ipynb": nbformat.writes(student_notebook(rel, WRONG)),
        "Eva Ruiz_1005_assignsubmission_file_/tarea2.ipynb": nbformat.writes(student_notebook(rel, {})),
    })
    return course


def grade(course, env=None, script=None):
    """Grade the class from scratch as an instructor does: (exit status, output, grades.csv rows, pages)."""
    for folder in ("submitted", "autograded", "feedback", "veredictos"):
        shutil.rmtree(course.path(folder), ignore_errors=True)
    if os.path.exists(course.path("gradebook.db")):
        os.remove(course.path("gradebook.db"))
    full = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    full["PATH"] = os.path.dirname(sys.executable) + os.pathsep + full.get("PATH", "")
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "tarea2_grader"]
    run = subprocess.run([*head, "grade", "--course", course.root, "--workers", "1"], cwd=course.root, env=full,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    with open(course.path("grades.csv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    pages = {}
    for student in ("1001", "1003", "1005"):
        with open(course.path("feedback", student, "tarea2", "tarea2.html"), encoding="utf-8") as fh:
            pages[student] = fh.read()
    return run.returncode, run.stdout.decode("utf-8", "replace"), rows, pages


def same_tree(pages):
    """Each page as nbconvert's own whole-page pass writes it (BeautifulSoup's serialization): the
    fast exporter skips that pass where it would change no element (test_retro_html.py)."""
    return {s: retro_html.FeedbackHTMLExporter.stock_pass(page)[0] for s, page in pages.items()}


def without_seed(rows):
    """grades.csv rows without the seed column (each run draws new seeds)."""
    return [{k: v for k, v in r.items() if k != "semilla"} for r in rows]


@pytest.fixture(scope="module")
def three_ways(small_class):
    """The class graded with every path on, every path off, and sharedgb off by its guard."""
    return {"on": grade(small_class), "off": grade(small_class, {fastpaths.ENV_MASTER: "0"}),
            "guard": grade(small_class, script=GUARDED)}


@pytest.mark.slow
def test_the_class_grades_as_expected_with_the_paths_on(three_ways):
    status, _out, rows, _pages = three_ways["on"]
    assert status == 0
    points = {r["student_id"]: r for r in rows}
    assert set(points) == {"1001", "1003", "1005"}
    assert float(points["1001"]["parte_2"]) == 3 and float(points["1003"]["parte_2"]) == 0
    assert float(points["1005"]["total"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("way", ["off", "guard"])
def test_stock_nbgrader_gives_the_same_grades_and_feedback(three_ways, way):
    status, out, rows, pages = three_ways[way]
    assert status == 0
    assert without_seed(rows) == without_seed(three_ways["on"][2])
    assert same_tree(pages) == same_tree(three_ways["on"][3])
    warned = "aviso: ruta rápida 'sharedgb' apagada" in out
    assert warned == (way == "guard")
