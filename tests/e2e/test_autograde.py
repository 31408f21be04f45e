"""The real Tarea 2 notebook through real nbgrader: release freshness and grading of
the reference solution, the untouched release and an alternative correct solution.

All students are graded in one temporary course, in one ``pipeline.grade`` pass
(one kernel start per student); points per grade_id come from the gradebook.
"""
import filecmp
import os
import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from tools import examples
from tarea2_grader.commands import autograde_pass
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.commands.publicar import stale_cells

from tests.support import course_facts
from tests.support.repo import REPO, SUBMISSIONS

pytestmark = pytest.mark.slow

SOURCE = os.path.join(REPO, "source", "tarea2", "tarea2.ipynb")
RELEASE = os.path.join(REPO, "release", "tarea2", "tarea2.ipynb")
ALT = os.path.join(SUBMISSIONS, "alt_correct.py")
WRONG = os.path.join(SUBMISSIONS, "wrong.py")

def grade_cells(path):
    """{grade_id: (points, hand graded?)} of a notebook's grade cells."""
    return {c.grade_id: (c.points, c.manual) for c in grade_table.grade_cells(path)}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A copy of the course (source/ and config) with its own freshly generated release/."""
    root = str(tmp_path_factory.mktemp("tarea2"))
    shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)
    course = Course(root)
    pipeline.release(course)
    return course


def with_answers(path, cells):
    """The notebook at path with the answer cells in ``cells`` ({grade_id: source}) replaced."""
    return examples.edit_cells(nbformat.read(path, as_version=4), answers=cells)


def submit(course, student, nb):
    """Put a notebook where zip_collect would have put it."""
    path = course.submitted_nb(student)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(course):
    """Grade reference, untouched release and alternative solution in one pass."""
    fresh_release = course.path("release", "tarea2", "tarea2.ipynb")
    submit(course, "referencia", nbformat.read(SOURCE, as_version=4))
    submit(course, "vacio", nbformat.read(fresh_release, as_version=4))
    students = ["referencia", "vacio", "alternativa", "error_backward"]
    submit(course, "alternativa", with_answers(fresh_release, examples.load_module(ALT).CELLS))
    wrong = {r["name"]: r for r in examples.load_module(WRONG).WRONG}["backward_missing_1_over_B"]
    submit(course, "error_backward", with_answers(SOURCE, wrong["cells"]))
    rows = pipeline.grade(course, quiet=True)
    db = "sqlite:///" + course.path("gradebook.db")
    points = {}
    with Gradebook(db, nbgrader_run.course_id(course)) as gb:
        for student in students:
            sub = gb.find_submission_notebook("tarea2", "tarea2", student)
            points[student] = {g.name: (g.auto_score, g.max_score) for g in sub.grades}
    return points, {r.student: r for r in rows}


def test_release_is_fresh(course):
    """release/ in the repository equals what generate_assignment makes from source/."""
    stale = stale_cells(RELEASE, course.path("release", "tarea2", "tarea2.ipynb"))
    assert stale is None, \
        "release/ está desactualizado (celdas {}): ejecute `make release` y haga commit".format(stale)


def test_the_grader_reads_the_points_the_notebook_declares():
    assert {gid: p for gid, (p, _) in grade_cells(SOURCE).items()} == course_facts.points()


def test_reference_gets_every_autograded_point(graded):
    points, rows = graded
    for gid, (points_max, manual) in grade_cells(SOURCE).items():
        auto, _ = points["referencia"][gid]
        if manual:
            assert auto is None, gid  # written answer: pending in formgrader, not 0
        else:
            assert auto == points_max, gid
    assert rows["referencia"].total + rows["referencia"].pending_total == course_facts.total_points()


def test_untouched_release_gets_zero(graded):
    points, rows = graded
    assert all(auto == 0 for auto, _ in points["vacio"].values()), points["vacio"]
    assert rows["vacio"].total == 0 and rows["vacio"].pending_total == 0


def test_alternative_solution_gets_full_marks(graded):
    points, _ = graded
    for gid, (points_max, manual) in grade_cells(SOURCE).items():
        if not manual:
            assert points["alternativa"][gid][0] == points_max, gid


def test_wrong_backward_loses_only_backward_points(graded):
    points, _ = graded
    lost = {gid for gid, (points_max, manual) in grade_cells(SOURCE).items()
            if not manual and points["error_backward"][gid][0] != points_max}
    assert lost == {"test_backward_basicas", "test_backward_param"}


def test_feedback_says_what_is_wrong_without_hidden_code(course, graded):
    html = open(course.path("feedback", "error_backward", "tarea2", "tarea2.html"), encoding="utf-8").read()
    assert "Los gradientes de backward no coinciden con torch.autograd" in html
    assert "error relativo máximo" in html
    assert "Pista: parece que falta dividir por B, el tamaño del batch." in html
    for leak in ("BEGIN HIDDEN TESTS", "hidden.py", "tarea2_grader", "_randn"):
        assert leak not in html, leak


def test_examples_are_fresh(tmp_path):
    """examples/ equals what tools.examples generates now (rerun it after changing source/)."""
    written = examples.generate(str(tmp_path / "examples"))
    for rel in written.values():
        committed = os.path.join(REPO, "examples", rel)
        assert os.path.exists(committed), rel
        assert filecmp.cmp(committed, str(tmp_path / "examples" / rel), shallow=False), \
            "examples/ está desactualizado: ejecute `python -m tools.examples`"


def test_regrading_reuses_the_recorded_seed(course, graded):
    """The seed drawn the first time is in semillas.json and the autograded notebook; a regrade reuses it."""
    import json
    seeds = json.load(open(course.path("semillas.json")))["tarea2"]
    first = json.load(open(course.autograded_nb("error_backward")))["metadata"]["tarea2_calificacion"]["semilla"]
    assert first == seeds["error_backward"]
    res = autograde_pass.autograde_student(course, "error_backward", timeout=600)
    assert res.failure is None
    again = json.load(open(course.autograded_nb("error_backward")))["metadata"]["tarea2_calificacion"]["semilla"]
    assert again == first


def test_nbgrader_without_the_course_plugin_refuses_instead_of_grading_in_the_kernel(tmp_path):
    """An instructor who runs nbgrader's stock autograde (Execute in the student's kernel) gets 0 on
    every test cell with a refusal that points to `make grade`, never an in-kernel verdict."""
    root = str(tmp_path / "sin_plugin")
    shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"))
    config = open(os.path.join(REPO, "nbgrader_config.py"), encoding="utf-8").read()
    assert "c.Autograde.autograde_preprocessors" in config
    config = config.replace("c.Autograde.autograde_preprocessors", "_ignored_preprocessors")
    open(os.path.join(root, "nbgrader_config.py"), "w", encoding="utf-8").write(config)
    plain = Course(root)
    pipeline.release(plain)
    submit(plain, "referencia", nbformat.read(SOURCE, as_version=4))
    assert autograde_pass.autograde_student(plain, "referencia", timeout=600).failure is None
    with Gradebook("sqlite:///" + plain.path("gradebook.db"), nbgrader_run.course_id(plain)) as gb:
        sub = gb.find_submission_notebook("tarea2", "tarea2", "referencia")
        auto = {g.name: g.auto_score for g in sub.grades if g.auto_score is not None}
    assert auto and all(v == 0 for v in auto.values()), auto
    text = open(plain.autograded_nb("referencia"), encoding="utf-8").read()
    assert "make grade" in text
