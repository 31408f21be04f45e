"""The cells after the last hidden test (plots, MNIST) are not run again when grading.

They cannot change an autograded point, and they are most of a correct notebook's running time.
Formgrader and the feedback show the outputs the student submitted instead, made inert, after
a line that says so; ``c.TrustedExecute.rerun_after_last_test = True`` runs them again.
"""
import base64
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from tests.support.fake_course import GOOD, auto_points, nbg, student_notebook, write_zip

from tarea2_grader.integration import nbplugin
from tarea2_grader.commands import pipeline

# A 1x1 PNG: what a plot output carries.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")).decode()
PLOT_CELL = "### BEGIN SOLUTION\nprint('mi gráfico')\n### END SOLUTION"


def submitted_outputs():
    """What a student's Colab run left in the plot cell: text, a plot, and some hostile HTML."""
    return [new_output("stream", name="stdout", text="pérdida final 0.12\n"),
            new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
            new_output("display_data", data={"text/html": "<b>ok</b><img src=x onerror=\"alert(1)\">"
                                                          "<script>alert(2)</script>"})]


def test_submitted_outputs_are_matched_by_source_and_made_inert():
    test_cell = new_code_cell("evaluar('test_x')", metadata=nbg("test_x", grade=True, locked=True, points=1))
    graded = new_notebook(cells=[new_code_cell("x = 1"), test_cell,
                                 new_code_cell("import matplotlib", metadata=nbg("graficar", locked=True)),
                                 new_code_cell("plot()", metadata=nbg("grafico", solution=True)),
                                 new_code_cell("otro()", metadata=nbg("otro", solution=True))])
    sub_plot = new_code_cell("plot()", outputs=submitted_outputs())
    sub_changed = new_code_cell("otro(distinto=True)", outputs=[new_output("stream", name="stdout", text="x\n")])
    before = new_code_cell("x = 1", outputs=[new_output("stream", name="stdout", text="antes\n")])
    submitted = new_notebook(cells=[before, new_code_cell("import matplotlib"), sub_plot, sub_changed])

    shown = nbplugin.submitted_outputs(graded, submitted)

    assert set(shown) == {3, 4}  # not the cells up to the last test, nor a helper cell without outputs
    label, text, plot, html = shown[3]
    assert label["text"] == nbplugin.NOT_RERUN
    assert text["text"] == "pérdida final 0.12\n"
    assert plot["data"]["image/png"] == PNG
    rendered = str(html["data"])
    assert "onerror" not in rendered and "<script" not in rendered and "ok" in rendered
    assert shown[4] == [{"output_type": "stream", "name": "stdout", "text": nbplugin.NOT_RERUN_EMPTY}]


@pytest.fixture(scope="module")
def course_with_a_plot_cell(fake_course_factory):
    """The fake course with an answer cell after its last test, and one student who loops there."""
    course = fake_course_factory("posteriores")
    nb = nbformat.read(course.source_nb, as_version=4)
    nb.cells.append(new_code_cell(PLOT_CELL, metadata=nbg("grafico", solution=True)))
    nbformat.write(nb, course.source_nb)
    pipeline.release(course)
    release = os.path.join(course.root, "release", "tarea2", "tarea2.ipynb")
    student = student_notebook(release, dict(GOOD, grafico="while True:\n    pass"))
    student.cells[-1].outputs = submitted_outputs()
    write_zip(os.path.join(course.archive_dir, "moodle.zip"),
              {"Ana Pérez_1001_assignsubmission_file_/tarea2.ipynb": nbformat.writes(student)})
    return course


def plot_cell_outputs(course):
    nb = nbformat.read(course.autograded_nb("1001"), as_version=4)
    return [c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") == "grafico"][0].outputs


@pytest.mark.slow
def test_a_loop_after_the_last_test_costs_nothing_and_the_plot_is_shown(course_with_a_plot_cell):
    course = course_with_a_plot_cell
    rows = {r.student: r for r in pipeline.grade(course, student_timeout=120, quiet=True)}
    assert sum(v or 0 for v in auto_points(course, "1001").values()) == 5
    assert "tiempo" not in rows["1001"].observations
    outputs = plot_cell_outputs(course)
    assert outputs[0]["text"] == nbplugin.NOT_RERUN
    assert any(o.get("data", {}).get("image/png") == PNG for o in outputs)
    assert "onerror" not in str(outputs) and "<script" not in str(outputs)
    feedback = os.path.join(course.root, "feedback", "1001", "tarea2", "tarea2.html")
    with open(feedback, encoding="utf-8") as fh:
        page = fh.read()
    assert "pérdida final 0.12" in page and "onerror" not in page


@pytest.mark.slow
def test_rerun_after_last_test_runs_those_cells_again(course_with_a_plot_cell):
    course = course_with_a_plot_cell
    rows = {r.student: r for r in pipeline.grade(
        course, student_timeout=120, quiet=True, autograde_args=["--TrustedExecute.rerun_after_last_test=True"])}
    assert sum(v or 0 for v in auto_points(course, "1001").values()) == 5
    assert "interrumpida por tiempo" in rows["1001"].observations
    assert [o.get("ename") for o in plot_cell_outputs(course)] == ["TiempoExcedido"]
