"""Feedback pages rendered with the memo are the same bytes.

``FeedbackHTMLExporter`` gives again the highlighted code and rendered markdown of an input it
already rendered in the process (``retro_html.RenderMemo``).  Here the graded fake class (conftest's
``graded_class``), with hostile markdown, HTML outputs, attachments, magics and lexers added in
memory and varied between students, is rendered as before (nbgrader's ``GetGrades``, no memo, a
fresh exporter per page) and as ``nbgrader generate_feedback`` now renders it (one exporter for
the whole class, twice over, so most cells come from the memo): every page must be the same
bytes, and the sanitizer must run as many times.  A memo keyed on less than its input fails
the same comparison (the last tests show it does).
"""
import copy
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.integration import resumen
from tarea2_grader.integration import retro_html
from tarea2_grader.integration.retro_html import FeedbackHTMLExporter, MemoHighlight2HTML, RenderMemo

from tests.support.feedback import feedback_setup, render

GRADED = ("1001", "1003", "1004", "1005")
STOCK_GET_GRADES = "nbgrader.preprocessors.GetGrades"
PNG_A = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PNG_B = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def hostile_cells(i):
    """Cells a student could hand in: the same sources in every notebook, with what may change
    their rendering (attachments, magics, outputs) varied by ``i``."""
    same_text = new_markdown_cell("# Mi respuesta <b>negrita</b>\n\n<script>alert('md')</script>\n"
                                  "<img src=x onerror=alert(1)> [enlace](javascript:alert(2))\n\n"
                                  "```python\nprint('hola')\n```\n\n$x^2$ y <iframe srcdoc=\"<script>alert(3)</script>\">")
    attached = new_markdown_cell("Mi gráfico: ![g](attachment:g.png)")
    attached["attachments"] = {"g.png": {"image/png": PNG_A if i % 2 else PNG_B}}
    magic = new_code_cell("%%html\n<b onmouseover=alert(4)>hola</b>",
                          metadata={"magics_language": "html"} if i % 2 else {})
    outputs = new_code_cell("mostrar()", outputs=[
        new_output("display_data", data={"text/html": "<script>alert(5)</script><b>tabla {}</b>".format(i % 2),
                                         "text/plain": "tabla"}),
        new_output("display_data", data={"text/markdown": "<img src=y onerror=alert(6)> **md**",
                                         "text/plain": "md"}),
        new_output("stream", name="stdout", text="\x1b[31mrojo\x1b[0m <script>alert(7)</script>\n"),
        new_output("error", ename="ValueError", evalue="<b>mal</b>",
                   traceback=["\x1b[0;31mValueError\x1b[0m: <img src=z onerror=alert(8)>"]),
    ])
    return [same_text, attached, magic, outputs, new_markdown_cell("")]


def class_notebooks(course):
    """[(student, notebook)] of the graded class with hostile cells; one notebook highlights with
    another lexer, and each student appears twice (the second time with the first one's cells)."""
    out = []
    for i, student in enumerate(GRADED):
        nb = nbformat.read(course.autograded_nb(student), as_version=4)
        nb.cells += hostile_cells(i)
        if i == 2:
            nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "python"}
        out.append((student, nb))
    for i, student in enumerate(GRADED):
        nb = nbformat.read(course.autograded_nb(student), as_version=4)
        nb.cells += hostile_cells(i + 1)
        out.append((student, nb))
    return out


def count_sanitizing(monkeypatch):
    """Count nbconvert's clean_html calls (the template's sanitizer) from now on."""
    from nbconvert.exporters import templateexporter
    calls = []
    real = templateexporter.default_filters["clean_html"]

    def counting(element):
        calls.append(element)
        return real(element)
    monkeypatch.setitem(templateexporter.default_filters, "clean_html", counting)
    return calls


def old_pages(course, notebooks):
    """The pages as the previous config rendered them: GetGrades, no memo, one exporter per page."""
    pages = []
    preprocessors = list(nbgrader_run.load_config(course).GenerateFeedback.preprocessors)
    for student, nb in notebooks:
        coursedir, exporter = feedback_setup(course, preprocessors, memoize=False)
        pages.append(render(course, coursedir, exporter, student, nb))
    return pages


def new_pages(course, notebooks):
    """The pages as one ``nbgrader generate_feedback`` process renders them now; and the exporter."""
    coursedir, exporter = feedback_setup(course)
    return [render(course, coursedir, exporter, student, nb) for student, nb in notebooks], exporter


@pytest.mark.slow
def test_the_course_config_uses_nbgraders_grades_and_the_memo(graded_class):
    from tests.support.repo import REPO
    cfg = nbgrader_run.load_config(Course(REPO))
    assert STOCK_GET_GRADES in cfg.GenerateFeedback.preprocessors
    _, exporter = feedback_setup(graded_class)
    assert isinstance(exporter, FeedbackHTMLExporter) and exporter.memoize is True


@pytest.mark.slow
def test_hostile_class_pages_are_the_same_bytes(graded_class, monkeypatch):
    notebooks = class_notebooks(graded_class)
    sanitized = count_sanitizing(monkeypatch)
    before = old_pages(graded_class, notebooks)
    sanitized_before, sanitized[:] = list(sanitized), []
    now, exporter = new_pages(graded_class, notebooks)
    sanitized_now = list(sanitized)
    assert exporter.memo.hits > exporter.memo.misses > 0  # most cells came from the memo
    for (student, _), old, new in zip(notebooks, before, now):
        assert old == new, student
    assert sanitized_now == sanitized_before  # the sanitizer ran on the same outputs
    assert any("alert(5)" in element for element in sanitized_now)
    assert "<script>alert(5)" not in now[0] and "alert(5)" in now[0]  # sanitized, as before
    assert before[0] != before[1] and PNG_B in before[0] and PNG_A in before[1]  # attachments differ


@pytest.mark.slow
def test_pages_nbgrader_wrote_are_the_old_pages(graded_class):
    """The class's feedback files (one nbgrader generate_feedback process, the course config)."""
    notebooks = [(s, nbformat.read(graded_class.autograded_nb(s), as_version=4)) for s in GRADED]
    for (student, _), old in zip(notebooks, old_pages(graded_class, notebooks)):
        with open(graded_class.path("feedback", student, "tarea2", "tarea2.html"), encoding="utf-8") as fh:
            assert fh.read() == old, student


@pytest.mark.slow
def test_a_memo_keyed_on_the_source_alone_is_caught(graded_class, monkeypatch):
    """The comparison above fails if the highlight memo ignores the lexer and magics."""
    notebooks = class_notebooks(graded_class)
    before = old_pages(graded_class, notebooks)
    monkeypatch.setattr(MemoHighlight2HTML, "key", lambda self, source, language=None, metadata=None:
                        ("highlight", source) if isinstance(source, str) else None)
    now, _ = new_pages(graded_class, notebooks)
    assert any(old != new for old, new in zip(before, now))


@pytest.mark.slow
def test_a_memo_that_ignores_attachments_is_caught(graded_class, monkeypatch):
    notebooks = class_notebooks(graded_class)
    before = old_pages(graded_class, notebooks)
    monkeypatch.setattr(FeedbackHTMLExporter, "markdown_key", lambda self, context, source:
                        ("markdown", source) if isinstance(source, str) else None)
    now, _ = new_pages(graded_class, notebooks)
    assert any(old != new for old, new in zip(before, now))


# ---------------------------------------------------------------- what is remembered

def test_highlight_key_holds_everything_the_output_depends_on():
    memo = RenderMemo()
    plain = MemoHighlight2HTML(memo, pygments_lexer="ipython3")
    other = MemoHighlight2HTML(memo, pygments_lexer="python")
    styled = MemoHighlight2HTML(memo, pygments_lexer="ipython3", extra_formatter_options={"linenos": True})
    keys = {plain.key("x = 1"), plain.key("x = 2"), other.key("x = 1"), styled.key("x = 1"),
            plain.key("x = 1", language="python"), plain.key("x = 1", metadata={"magics_language": "html"}),
            plain.key("x = 1", metadata={"magics_language": None})}
    assert len(keys) == 6
    assert other.key("x = 1") == plain.key("x = 1", language="python")  # the same lexer either way
    assert plain.key("x = 1") == plain.key("x = 1", metadata={}) == plain.key("x = 1", metadata={"otro": 1})
    assert plain.key(b"x = 1") is None and plain.key("x", metadata=["no"]) is None
    for h in (plain, other, styled):
        for source, kw in (("x = 1", {}), ("%%html\n<b>", {"metadata": {"magics_language": "html"}}),
                           ("", {}), ("x = 1", {"language": "python"})):
            assert h(source, **kw) == h(source, **kw) == Highlight2HTMLStock(h)(source, **kw)
    assert memo.hits >= 12


def Highlight2HTMLStock(like):
    from nbconvert.filters.highlight import Highlight2HTML
    return Highlight2HTML(pygments_lexer=like.pygments_lexer, extra_formatter_options=like.extra_formatter_options)


def test_markdown_with_attachments_or_embedded_images_is_never_remembered():
    exporter = FeedbackHTMLExporter()
    ctx = {"cell": {"source": "a"}, "resources": {"metadata": {"path": "/tmp"}}}
    assert exporter.markdown_key(ctx, "a") is not None
    assert exporter.markdown_key({"cell": {"attachments": {"g.png": {"image/png": PNG_A}}}}, "a") is None
    assert exporter.markdown_key(ctx, b"a") is None
    embedding = FeedbackHTMLExporter(embed_images=True)
    assert embedding.markdown_key(ctx, "a") is None
    anchors = FeedbackHTMLExporter(anchor_link_text="#")
    assert anchors.markdown_key(ctx, "a") != exporter.markdown_key(ctx, "a")


def test_a_failed_rendering_is_not_remembered():
    """A missing attachment raises every time (the page fails as it did), never a kept result."""
    from nbconvert.filters.markdown_mistune import InvalidNotebook
    exporter = FeedbackHTMLExporter()
    ctx = {"cell": {"source": "![g](attachment:nada.png)"}}
    for _ in range(2):
        with pytest.raises(InvalidNotebook):
            exporter.markdown2html(ctx, "![g](attachment:nada.png)")
    assert exporter.memo.hits == 0


def test_the_memo_stops_storing_at_its_bound():
    memo = RenderMemo(max_chars=10)
    assert memo.get("a", lambda: "x" * 8) == "x" * 8
    assert memo.get("b", lambda: "y" * 8) == "y" * 8  # computed, not kept
    assert memo.get("a", lambda: "other") == "x" * 8
    assert memo.get("b", lambda: "z" * 3) == "z" * 3
    assert memo.get(None, lambda: "w") == "w" and memo.chars == 8 and memo.hits == 1


# ---------------------------------------------------------------- batched gradebook reads

def run_get_grades(course, student, cls, nb=None):
    from nbgrader.coursedir import CourseDirectory
    cfg = nbgrader_run.load_config(course)
    coursedir = CourseDirectory(config=cfg)
    coursedir.root = course.root
    nb = nb if nb is not None else nbformat.read(course.autograded_nb(student), as_version=4)
    resources = {"nbgrader": {"student": student, "assignment": course.assignment,
                              "notebook": course.notebook, "db_url": coursedir.db_url}}
    return cls()(copy.deepcopy(nb), resources)


@pytest.mark.slow
def test_the_process_gradebook_reads_each_student_afresh(graded_class):
    """A score changed in the gradebook (formgrader) between two pages shows on the second one:
    the process keeps one gradebook, not what it read for the earlier students."""
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory
    coursedir = CourseDirectory(config=nbgrader_run.load_config(graded_class))
    coursedir.root = graded_class.root
    from nbgrader.preprocessors import GetGrades
    first, _ = run_get_grades(graded_class, "1003", GetGrades)
    cell = next(c for c in first.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "explica_md")
    with Gradebook(coursedir.db_url) as gb:
        grade = gb.find_grade("explica_md", "tarea2", "tarea2", "1003")
        before = grade.manual_score
        grade.manual_score = 0.5
        gb.db.commit()
    try:
        again, _ = run_get_grades(graded_class, "1003", GetGrades)
        changed = next(c for c in again.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "explica_md")
        summary = resumen.summary_html(resumen.student_summary(graded_class, "1003"))
        nb = nbformat.read(graded_class.autograded_nb("1003"), as_version=4)
        resources = {"nbgrader": {"student": "1003", "assignment": "tarea2", "notebook": "tarea2",
                                  "db_url": coursedir.db_url}, "metadata": {"path": os.path.dirname(
                                      graded_class.autograded_nb("1003"))}}
        with_summary, _ = resumen.FeedbackSummary()(nb, resources)
    finally:
        with Gradebook(coursedir.db_url) as gb:
            grade = gb.find_grade("explica_md", "tarea2", "tarea2", "1003")
            grade.manual_score = before
            gb.db.commit()
    assert cell.metadata.nbgrader["score"] != 0.5 and changed.metadata.nbgrader["score"] == 0.5
    assert with_summary.cells[0].source == summary


@pytest.mark.slow
def test_source_cells_are_parsed_again_when_the_file_changes(graded_class, tmp_path):
    import shutil
    path = str(tmp_path / "fuente.ipynb")
    shutil.copy(graded_class.source_nb, path)
    assert resumen.source_cells(path) == grade_table.grade_cells(path)
    cells = resumen.source_cells(path)
    cells[0].points = 99  # a caller changing its copy changes nothing kept
    assert resumen.source_cells(path) == grade_table.grade_cells(path)
    nb = nbformat.read(path, as_version=4)
    graded = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    graded.metadata.nbgrader["points"] = 42
    nbformat.write(nb, path)
    assert resumen.source_cells(path) == grade_table.grade_cells(path)
    assert 42.0 in [c.points for c in resumen.source_cells(path)]


# ---------------------------------------------------------------- validation after preprocessors

class BreakNotebook:
    """A preprocessor that leaves the notebook invalid (a cell without its cell_type)."""

    enabled = True

    def __call__(self, nb, resources):
        nb.cells[-1].pop("cell_type", None)
        return nb, resources


@pytest.mark.slow
def test_validation_is_skipped_only_after_preprocessors_that_keep_a_notebook_valid(graded_class):
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

    from tarea2_grader.integration.pauta import RemoveRubricCells

    class CSSSubclass(CSSHTMLHeaderPreprocessor):
        pass
    coursedir, exporter = feedback_setup(graded_class)
    nb = nbformat.read(graded_class.autograded_nb("1001"), as_version=4)
    render(graded_class, coursedir, exporter, "1001", nb)
    # after RemoveRubricCells and the CSS header preprocessor of nbgrader's list; the exporter's own
    # CSS header preprocessor runs first, with no validation before it, and is validated
    names = [type(p).__name__ for p in exporter._preprocessors]
    assert names[0] == "CSSHTMLHeaderPreprocessor" and names[-2:] == ["RemoveRubricCells", "CSSHTMLHeaderPreprocessor"]
    assert exporter.validations_skipped == 2
    assert exporter.keeps_valid(RemoveRubricCells()) and exporter.keeps_valid(CSSHTMLHeaderPreprocessor())
    assert not exporter.keeps_valid(CSSSubclass()) and not exporter.keeps_valid(resumen.FeedbackSummary())


@pytest.mark.slow
@pytest.mark.parametrize("where", ["first", "last"])
def test_a_preprocessor_that_breaks_the_notebook_still_fails_the_page(graded_class, where):
    """nbconvert's validation still runs after any other preprocessor, first or last."""
    coursedir, exporter = feedback_setup(graded_class)
    if where == "first":
        exporter._preprocessors.insert(0, BreakNotebook())
    else:
        exporter.register_preprocessor(BreakNotebook())
    nb = nbformat.read(graded_class.autograded_nb("1001"), as_version=4)
    with pytest.raises(nbformat.ValidationError):
        render(graded_class, coursedir, exporter, "1001", nb)


@pytest.mark.slow
def test_skipping_needs_a_validation_that_passed_in_the_same_run(graded_class):
    """Where the validation before failed (here: never ran), the next one is not skipped."""
    from tarea2_grader.integration.pauta import RemoveRubricCells
    _, exporter = feedback_setup(graded_class)
    nb = nbformat.read(graded_class.autograded_nb("1001"), as_version=4)
    nb.cells[0].pop("cell_type")
    exporter._validated = False
    with pytest.raises(nbformat.ValidationError):
        exporter._validate_preprocessor(nb, RemoveRubricCells())
    assert exporter.validations_skipped == 0


@pytest.mark.slow
def test_the_process_gradebook_reads_a_replaced_file(graded_class, tmp_path):
    """A gradebook file replaced between two students (a restored backup) is the one read next."""
    import shutil
    from nbgrader.api import Gradebook
    path = tmp_path / "gradebook.db"
    shutil.copy(graded_class.path("gradebook.db"), path)
    url = "sqlite:///" + str(path)
    edited = tmp_path / "editado.db"
    shutil.copy(path, edited)
    with Gradebook("sqlite:///" + str(edited)) as gb:
        gb.find_grade("explica_md", "tarea2", "tarea2", "1003").manual_score = 0.25
        gb.db.commit()

    def read():
        with resumen.process_gradebook(url) as gb:
            return gb.find_grade("explica_md", "tarea2", "tarea2", "1003").manual_score
    first = read()
    os.replace(edited, path)
    assert first != 0.25 and read() == 0.25
