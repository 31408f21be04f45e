"""A test cell flagged by the static review, through ``make grade``'s pipeline and back through a person.

One temporary course (source/, release/ and config copied from the repository) gets three students,
graded by one ``pipeline.grade`` call:

* ``2001`` submits the reference solution except part 1a, whose derivatives come from autograd's
  engine saved before the probe's traps replace it (``autograd_motor_guardado`` of
  ``tests/attacks/attacks.py``): correct values that the traps miss, flagged by the review of the
  source in the three tests of part 1a;
* ``2002``, an honest classmate, submits the reference solution;
* ``=2+3``, an id written as a spreadsheet formula, submits the untouched release.

Then the TA's flow of the README: the flagged cells are listed in the gradebook as needing manual
grading; the TA types their points in each cell's score box (here through nbgrader's ``Gradebook``
API, as formgrader's grade handler does: two cells first, ``notas`` still says ``marcada``; then the
third), runs ``python -m tarea2_grader notas``, ``nbgrader generate_feedback tarea2 --force`` and
``make devolver``'s code.  Checked: the gradebook flags,
the ``revision`` column and the points in grades.csv, the feedback page and the Moodle worksheet,
before and after; the honest classmate keeps full marks and an empty ``revision``; the formula id
never reaches a CSV cell as a formula and still gets its feedback.
"""
import csv
import os
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from tests.support.marca import (FLAGGED_PART, FLAGGED_POINTS, FLAGGED_TESTS, POINTS, REPO, SOURCE_NB,
                                 flagged_answers, new_course, submit, type_score)
from tarea2_grader.commands import devolver
from tools import examples
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run

from tests.support import course_facts

pytestmark = pytest.mark.slow

FLAGGED, HONEST, FORMULA = "2001", "2002", "=2+3"
AUTOGRADED_MAX = course_facts.autograded_points()


def _csv(course):
    with open(course.path("grades.csv"), newline="", encoding="utf-8") as fh:
        text = fh.read()
    with open(course.path("grades.csv"), newline="", encoding="utf-8") as fh:
        return text, {grade_table.csv_id(r["student_id"]): r for r in csv.DictReader(fh)}


def _grades(course, student):
    """{grade_id: (auto_score, manual_score, needs_manual_grade)} of a student's notebook."""
    with Gradebook("sqlite:///" + course.path("gradebook.db"), nbgrader_run.course_id(course)) as gb:
        sub = gb.find_submission_notebook("tarea2", "tarea2", student)
        return {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade) for g in sub.grades}


def _feedback(course, student):
    with open(course.feedback_page(student), encoding="utf-8") as fh:
        return fh.read()


def _summary_total(page):
    marker = 'class="resumen-total">'
    start = page.index(marker) + len(marker)
    return float(page[start:page.index("<", start)])


def _snapshot(course):
    text, table = _csv(course)
    return {"csv_text": text, "csv": table, "grades": {s: _grades(course, s) for s in (FLAGGED, HONEST)},
            "feedback": {s: _feedback(course, s) for s in (FLAGGED, HONEST, FORMULA)}}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = new_course(str(tmp_path_factory.mktemp("marca")))
    submit(course, FLAGGED, flagged_answers())
    submit(course, HONEST, examples.reference_answers())
    submit(course, FORMULA, {})
    return course


@pytest.fixture(scope="module")
def graded(course):
    """The state right after `make grade`'s pipeline."""
    rows = pipeline.grade(course, quiet=True)
    return dict(_snapshot(course), rows={r.student: r for r in rows})


@pytest.fixture(scope="module")
def restored(course, graded):
    """The state after the TA typed the flagged cells' points (two, then the third) and regenerated
    grades and feedback."""
    for grade_id in FLAGGED_TESTS[:-1]:
        type_score(course, FLAGGED, grade_id, POINTS[grade_id])
    partial = {r.student: r for r in pipeline.report(course)}
    type_score(course, FLAGGED, FLAGGED_TESTS[-1], POINTS[FLAGGED_TESTS[-1]])
    env = nbgrader_run.nbgrader_env()
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    notas = subprocess.run([sys.executable, "-m", "tarea2_grader", "notas", "--course", course.root],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    feedback = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", "tarea2", "--force"],
                              cwd=course.root, env=env, capture_output=True, text=True, timeout=600)
    result = devolver.hand_back(course)
    with open(result.csv_path, newline="", encoding="utf-8") as fh:
        worksheet = list(csv.reader(fh))
    return dict(_snapshot(course), notas=notas, feedback_run=feedback, devolucion=result, worksheet=worksheet,
                partial=partial)


# --------------------------------------------------------------------------- right after grading


def test_flagged_cell_needs_manual_grade_and_nothing_else_does(graded):
    flagged, honest = graded["grades"][FLAGGED], graded["grades"][HONEST]
    autograded = {c.grade_id for c in grade_table.grade_cells(SOURCE_NB) if not c.manual and c.points > 0}
    for grade_id in FLAGGED_TESTS:
        assert flagged[grade_id] == (0.0, None, True), grade_id
        assert honest[grade_id] == (POINTS[grade_id], None, False), grade_id
    assert {g for g in autograded if flagged[g][2]} == set(FLAGGED_TESTS)
    assert not any(honest[g][2] for g in autograded)


def test_grades_csv_says_marcada_and_zeroes_only_the_flagged_part(graded):
    table = graded["csv"]
    flagged, honest = table[FLAGGED], table[HONEST]
    assert flagged["revision"] == grade_table.REVISION_MARKED
    assert honest["revision"] == "" and table[FORMULA]["revision"] == ""
    assert float(honest["total"]) == AUTOGRADED_MAX
    assert float(flagged["total"]) == AUTOGRADED_MAX - FLAGGED_POINTS
    part = "parte_" + FLAGGED_PART
    assert float(flagged[part]) == float(honest[part]) - FLAGGED_POINTS
    others = [c for c in honest if c.startswith("parte_") and c != part]
    assert [flagged[c] for c in others] == [honest[c] for c in others]


def test_printed_table_names_the_flagged_student(graded):
    rows = graded["rows"]
    assert rows[FLAGGED].revision == grade_table.REVISION_MARKED and rows[HONEST].revision == ""
    cells = grade_table.grade_cells(SOURCE_NB)
    table = grade_table.format_table(cells, list(rows.values()))
    assert "{} {}".format(FLAGGED, grade_table.REVISION_MARKED) in table
    assert HONEST + " " not in table.split("revisión (columna revision")[1]


def test_feedback_before_review_says_why_and_what_the_values_earned(graded):
    page = graded["feedback"][FLAGGED]
    assert "revisión: celda" in page
    said = {"sin la marca: correcto, {:g} puntos".format(POINTS[t]) for t in FLAGGED_TESTS}
    assert sum(page.count(s) for s in said) >= len(FLAGGED_TESTS)  # summary and test cells
    assert page.count("marcada por usar una derivada hecha por máquina") == len(FLAGGED_TESTS)
    assert _summary_total(page) == AUTOGRADED_MAX - FLAGGED_POINTS
    assert "resumen-revision" not in graded["feedback"][HONEST]


def test_formula_id_is_neutralised_in_grades_csv(graded):
    lines = graded["csv_text"].splitlines()
    assert not any(line.startswith(("=", "+", "-", "@")) for line in lines)
    assert any(line.startswith("'" + FORMULA + ",") for line in lines)


# --------------------------------------------------------------------------- after the TA's review


def test_commands_of_the_restore_flow_succeed(restored):
    assert restored["notas"].returncode == 0, restored["notas"].stdout + restored["notas"].stderr
    assert restored["feedback_run"].returncode == 0, restored["feedback_run"].stdout[-3000:]


def test_still_marcada_while_a_flagged_cell_waits(restored):
    row = restored["partial"][FLAGGED]
    assert row.revision == grade_table.REVISION_MARKED
    assert row.total == AUTOGRADED_MAX - POINTS[FLAGGED_TESTS[-1]]


def test_restored_points_and_status_in_grades_csv(restored):
    flagged, honest = restored["csv"][FLAGGED], restored["csv"][HONEST]
    assert flagged["revision"] == grade_table.REVISION_RESTORED
    assert float(flagged["total"]) == AUTOGRADED_MAX
    assert flagged["parte_" + FLAGGED_PART] == honest["parte_" + FLAGGED_PART]
    assert honest["revision"] == "" and float(honest["total"]) == AUTOGRADED_MAX
    assert "restaurado" in restored["notas"].stdout


def test_restored_points_in_the_feedback(restored):
    page = restored["feedback"][FLAGGED]
    assert _summary_total(page) == AUTOGRADED_MAX
    said = {"puntos restaurados: {0:g} de {0:g}".format(POINTS[t]) for t in FLAGGED_TESTS}
    assert sum(page.count(s) for s in said) == len(FLAGGED_TESTS) and "(restaurado)" in page
    assert _summary_total(restored["feedback"][HONEST]) == AUTOGRADED_MAX


def test_restored_total_in_the_moodle_worksheet_and_formula_id_gets_its_feedback(restored):
    totals = {row[0]: row[2] for row in restored["worksheet"][1:]}
    assert float(totals[devolver.MOODLE_PARTICIPANT + FLAGGED]) == AUTOGRADED_MAX
    assert FORMULA not in restored["devolucion"].not_graded
    assert FORMULA in restored["devolucion"].no_moodle_id


def test_a_person_who_leaves_zero_confirms_the_flag():
    assert grade_table.review_status({"test_a": 0.0}) == grade_table.REVISION_CONFIRMED
    assert grade_table.review_status({"test_a": 0.0, "test_b": None}) == grade_table.REVISION_MARKED
    assert grade_table.review_status({"test_a": 0.0, "test_b": 2.0}) == grade_table.REVISION_RESTORED
    assert grade_table.review_status({}) == ""


def test_write_csv_neutralises_every_text_cell_that_looks_like_a_formula(tmp_path):
    cells = [grade_table.CellInfo("t", "1a", 2.0, False)]
    payloads = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-1-1", "@SUM(A1)", "\tx", "=cmd|' /C calc'!A0"]
    rows = [grade_table.Row(p, {"1a": 2.0}, {"1a": 0.0}, 2.0, 0.0, p, 7) for p in payloads]
    path = str(tmp_path / "grades.csv")
    grade_table.write_csv(path, cells, rows)
    with open(path, newline="", encoding="utf-8") as fh:
        read = list(csv.reader(fh))[1:]
    for payload, row in zip(payloads, read):
        assert row[0] == "'" + payload and row[4] == "'" + payload
        assert grade_table.csv_id(row[0]) == payload
    assert grade_table.csv_text("1001") == "1001" and grade_table.csv_id("1001") == "1001"


def test_moodle_worksheet_neutralises_a_full_name_written_as_a_formula(tmp_path):
    name = "=HYPERLINK(\"http://x\";\"nota\")"
    result = devolver.HandBack(str(tmp_path / "z.zip"), str(tmp_path / "w.csv"))
    folders = {"1001": name + "_1001" + devolver.MOODLE_SUFFIX + "_"}
    devolver.write_worksheet([{"student_id": "1001", "total": "72", "pendiente_manual": "0"}], folders,
                             result.csv_path, result)
    with open(result.csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][:3] == [devolver.MOODLE_PARTICIPANT + "1001", "'" + name, "72"]


@pytest.fixture(scope="module")
def regraded(course, restored):
    """`make grade` run again after the review."""
    rows = pipeline.grade(course, quiet=True)
    return dict(_snapshot(course), rows={r.student: r for r in rows})


def test_a_new_grading_run_keeps_the_restored_points(regraded):
    flagged = regraded["csv"][FLAGGED]
    assert flagged["revision"] == grade_table.REVISION_RESTORED
    assert float(flagged["total"]) == AUTOGRADED_MAX
    for grade_id in FLAGGED_TESTS:
        auto, manual, _ = regraded["grades"][FLAGGED][grade_id]
        assert (auto, manual) == (0.0, POINTS[grade_id]), grade_id
    assert regraded["csv"][HONEST]["revision"] == "" and float(regraded["csv"][HONEST]["total"]) == AUTOGRADED_MAX
