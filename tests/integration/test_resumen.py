"""The summary at the top of each student's feedback, on a fake course graded by ``pipeline.grade``.

The fake course uses the real course's ``GenerateFeedback.preprocessors`` (read from the
repository's nbgrader_config.py), so these tests see what plain ``nbgrader generate_feedback``
produces.  One grading run serves every test; one test reads the page in headless Chromium.
"""
import os
import re
import shutil
import time

import pytest
from nbgrader.api import Gradebook

from tarea2_grader.commands import pipeline
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.integration import resumen

from tests.support.graded_class import EVIL_NAME

pytestmark = pytest.mark.slow


@pytest.fixture
def course(graded_class):
    """The graded class."""
    return graded_class


def feedback_html(course, student):
    """The feedback page nbgrader wrote for a student."""
    with open(course.path("feedback", student, "tarea2", "tarea2.html"), encoding="utf-8") as fh:
        return fh.read()


def summary_block(page):
    """The summary's HTML in a feedback page (it is the first cell)."""
    start = page.index('id="{}"'.format(resumen.SUMMARY_ID))
    return page[start:page.index("</table>", start) + 2000]


def test_summary_numbers_from_the_gradebook(course):
    s = resumen.student_summary(course, "1003")
    assert [(p.part, p.points, p.maximum, p.pending) for p in s.parts] == [("1", 2, 3, 1), ("2", 0, 3, 0)]
    assert (s.total, s.maximum, s.pending_total) == (2, 6, 1)
    assert [c.grade_id for c in s.pending_cells] == ["explica_md"]
    assert [(f.grade_id, f.points, f.maximum) for f in s.failed] == [("test_suma", 0, 3)]
    assert s.failed[0].message == ["suma no da lo esperado"]
    assert s.failed[0].hints == ["restaste en vez de sumar"]


def test_feedback_starts_with_the_summary(course):
    page = feedback_html(course, "1003")
    assert page.index('class="cell') < page.index(resumen.SUMMARY_ID) < page.index('name="test_cuadrado"')
    block = summary_block(page)
    assert re.search(r'<tr data-parte="2"><td>2</td><td>0</td><td>3</td>', block)
    assert "suma no da lo esperado" in block and "restaste en vez de sumar" in block
    assert "1 pts. por corregir a mano" in block


def test_notes_are_shown_as_inert_text(course):
    page = feedback_html(course, "1001")
    block = summary_block(page)
    assert "notebook entregado como" in block
    assert "&lt;img src=x onerror=alert(1)&gt;" in block
    assert "<img" not in block
    s = resumen.student_summary(course, "1001")
    assert s.failed == [] and s.total == 5


def test_text_summary_matches(course):
    text = resumen.summary_text(resumen.student_summary(course, "1003"))
    assert "Puntos: 2 de 6 (1 por corregir a mano)" in text
    assert "test_suma (0 de 3)" in text and "Pista: restaste en vez de sumar" in text


def test_ungraded_student_summary_gives_the_reason(course):
    s = resumen.student_summary(course, "1006")
    assert s.failure and "no es un notebook" in s.failure
    assert not os.path.exists(course.path("feedback", "1006"))


def test_plain_generate_feedback_shows_hand_grading(course):
    """After a TA grades the written answer (as formgrader does), plain nbgrader updates the summary."""
    with Gradebook("sqlite:///" + course.path("gradebook.db"), "curso-de-prueba") as gb:
        grade = gb.find_grade("explica_md", "tarea2", "tarea2", "1003")
        grade.manual_score = 0.5
        gb.db.commit()
    try:
        run = nbgrader_run.run_nbgrader(course, ["generate_feedback", course.assignment_arg, "--force",
                                             "--student", "1003"], timeout=300)
        nbgrader_run.check(run, "generate_feedback")
        block = summary_block(feedback_html(course, "1003"))
        assert re.search(r'<tr data-parte="1"><td>1</td><td>2.5</td><td>3</td>', block)
        assert "por corregir a mano" not in block
        assert 'resumen-total">2.5<' in block
    finally:
        with Gradebook("sqlite:///" + course.path("gradebook.db"), "curso-de-prueba") as gb:
            grade = gb.find_grade("explica_md", "tarea2", "tarea2", "1003")
            grade.manual_score = None
            gb.db.commit()
        pipeline.generate_feedback(course, ["1003"])


def test_a_broken_page_costs_only_that_students_feedback(graded_class, tmp_path, monkeypatch, capsys):
    """nbgrader goes on past a page it cannot write; the students left without a page get one
    more process together (not one each), and whoever still has none is reported."""
    course = Course(shutil.copytree(graded_class.root, str(tmp_path / "curso")))
    students = [s for s in course.students() if os.path.exists(course.autograded_nb(s))]
    assert len(students) >= 3
    broken = students[1]
    with open(course.autograded_nb(broken), "w", encoding="utf-8") as fh:
        fh.write("{ esto no es un notebook")
    calls = []
    real = nbgrader_run.run_nbgrader

    def counting(c, args, **kwargs):
        calls.append(list(args))
        return real(c, args, **kwargs)

    monkeypatch.setattr(pipeline, "run_nbgrader", counting)
    before = time.time()
    pipeline.generate_feedback(course, students, workers=1)
    assert len(calls) == 2, calls  # the class, then the one left without a page
    assert "--CourseDirectory.student_id_exclude=" in calls[1][-1] and broken not in calls[1][-1]
    for student in students:
        page = course.feedback_page(student)
        assert (os.path.exists(page) and os.path.getmtime(page) >= before) == (student != broken), student
    assert "no se pudo generar la retroalimentación de {}".format(broken) in capsys.readouterr().out


def test_summary_in_a_real_browser(course, page):
    page.goto("file://" + course.path("feedback", "1003", "tarea2", "tarea2.html"))
    summary = page.locator("#" + resumen.SUMMARY_ID)
    summary.wait_for()
    text = summary.inner_text()
    assert "Resumen de tu corrección" in text
    assert re.search(r"Puntos:\s*2 de 6", text)
    assert "suma no da lo esperado" in text and "Pista: restaste en vez de sumar" in text
    row = summary.locator('tr[data-parte="2"]').inner_text().split()
    assert row[:3] == ["2", "0", "3"]
    box = summary.bounding_box()
    first_answer = page.get_by_text("def suma").first.bounding_box()
    assert box["height"] > 50 and box["y"] < first_answer["y"]


def test_browser_shows_student_file_name_as_text(course, page):
    page.goto("file://" + course.path("feedback", "1001", "tarea2", "tarea2.html"))
    summary = page.locator("#" + resumen.SUMMARY_ID)
    assert EVIL_NAME in summary.inner_text()
    assert summary.locator("img").count() == 0
