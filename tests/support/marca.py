"""Helpers shared by the tests that grade a student flagged by the static review of the source
(test_marca.py, test_informe_revision.py): the course, the flagging attack, the TA's score box.

A student flagged here submits the reference solution except part 1a, whose derivatives come from
autograd's engine saved before the probe's traps replace it (``autograd_motor_guardado`` of
``tests/support/attacks/attacks.py``): the review flags the three tests of part 1a (:data:`FLAGGED_TESTS`).
"""
import importlib.util
import os
import shutil

import nbformat
from nbgrader.api import Gradebook

from tools import examples
from tarea2_grader.tarea2.activaciones import DERIVADAS
from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course

from tests.support.repo import ATTACKS_PY, REPO

SOURCE_NB = os.path.join(REPO, "source", "tarea2", "tarea2.ipynb")
FLAGGED_TESTS = tuple(DERIVADAS)  # every test of part 1a: one per group of activations in the table
FLAGGED_PART = "1a"
POINTS = {c.grade_id: c.points for c in grade_table.grade_cells(SOURCE_NB)}
FLAGGED_POINTS = sum(POINTS[t] for t in FLAGGED_TESTS)


def attack(name):
    """One attack of tests/support/attacks/attacks.py by name (loaded from its file, never imported as a test)."""
    spec = importlib.util.spec_from_file_location("tarea2_marca_attacks", ATTACKS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(a for a in module.ATTACKS if a["name"] == name)


def flagged_answers():
    """Answer cells of a submission the review flags in part 1a (correct values otherwise)."""
    return dict(examples.reference_answers(), **attack("autograd_motor_guardado")["cells"])


def new_course(root):
    """A course in ``root`` with source/, release/ and nbgrader_config.py copied from the repository."""
    shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"))
    shutil.copytree(os.path.join(REPO, "release"), os.path.join(root, "release"))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)
    return Course(root)


def submit(course, student, answers):
    """The release notebook with ``answers`` filled in, as ``student``'s submission."""
    release = nbformat.read(course.path("release", "tarea2", "tarea2.ipynb"), as_version=4)
    path = course.submitted_nb(student)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(examples.edit_cells(release, answers=answers), path)


def type_score(course, student, grade_id, points):
    """What formgrader's grade handler (``GradeHandler.put``) does with a value typed in a cell's score box."""
    with Gradebook("sqlite:///" + course.path("gradebook.db"), nbgrader_run.course_id(course)) as gb:
        grade = gb.find_grade(grade_id, "tarea2", "tarea2", student)
        grade.manual_score = points
        grade.extra_credit = None
        grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
        gb.db.commit()
