"""A per-student summary at the top of the feedback: points per part, hand grading still
pending, every failed test with its message and hint, and the pipeline's notes.

One function builds the summary (:func:`build_summary`); two render it: :func:`summary_html`
for the feedback page (a markdown cell that :class:`FeedbackSummary` inserts first) and
:func:`summary_text` for the terminal (``make demo``).  Scores come from the gradebook as
nbgrader's ``GetGrades`` reads them, so a plain ``nbgrader generate_feedback`` run after hand
grading in formgrader shows the updated manual scores.

Everything that may come from a student (file names in the notes, text inside a verdict) is
HTML-escaped and the block is kept out of MathJax: the summary never renders student markup.
The HTML uses only tags that nbconvert's ``sanitize_html`` keeps (div, span, table, tr, td,
ul, li, b, code) and Bootstrap 3 classes from nbgrader's feedback template.
"""
from __future__ import annotations

import copy
import hashlib
import html
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course

HINT_PREFIX = "Pista:"
SUMMARY_ID = "resumen-correccion"


@dataclass
class PartScore:
    """Points of one part of the assignment."""

    part: str
    points: float
    maximum: float
    pending: float


@dataclass
class FailedTest:
    """An autograded cell that did not get all its points, with the trusted verdict."""

    grade_id: str
    part: str
    points: float
    maximum: float
    message: List[str]
    hints: List[str]


@dataclass
class ReviewedTest:
    """A test cell the static review flagged, and what a person decided (None: not reviewed yet)."""

    grade_id: str
    part: str
    maximum: float
    manual: Optional[float]


@dataclass
class Summary:
    """What one student's feedback says first."""

    student: str
    parts: List[PartScore]
    total: float
    maximum: float
    pending_total: float
    pending_cells: List[grade_table.CellInfo] = field(default_factory=list)
    failed: List[FailedTest] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    failure: Optional[str] = None
    revision: str = ""  # grades.csv's revision column
    reviewed: List[ReviewedTest] = field(default_factory=list)


# ---------------------------------------------------------------- building

def find_cell(nb, grade_id: str):
    """The cell of ``nb`` with this nbgrader grade_id (None if absent)."""
    for cell in (nb.cells if nb is not None else []):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    return None


def verdict_text(cell) -> str:
    """The verdict a test cell shows: its error's message, else what it printed."""
    if cell is None:
        return ""
    errors = [str(o.get("evalue", "")) for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return "\n".join(errors)
    streams = [str(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
    return "".join(streams)


def split_hints(text: str):
    """(message lines, hint lines) of a verdict: ``Pista: ...`` lines are the hints."""
    message, hints = [], []
    for line in text.splitlines():
        if line.strip().startswith(HINT_PREFIX):
            hints.append(line.strip()[len(HINT_PREFIX):].strip())
        elif line.strip():
            message.append(line.rstrip())
    return message, hints


def build_summary(student: str, cells: List[grade_table.CellInfo], scores: Dict[str, Optional[float]],
                  result: grade_table.StudentResult, nb=None,
                  review: Optional[Dict[str, Optional[float]]] = None) -> Summary:
    """The summary of one student from the grade cells, the gradebook scores, the pipeline's
    result (notes, failure), the autograded notebook (the verdict of each test cell) and the
    review of the cells the static review flagged (:func:`grade_table.review_of`).

    Part totals and the review's status come from :func:`grade_table.build_rows`, as in grades.csv.
    """
    review = review or {}
    row = grade_table.build_rows(cells, {student: scores}, {student: result}, reviews={student: review})[0]
    maxima = grade_table.part_maxima(cells)
    parts = [PartScore(p, row.parts[p], maxima[p], row.pending[p]) for p in maxima]
    summary = Summary(student, parts, row.total, sum(maxima.values()), row.pending_total,
                      notes=list(result.notes), failure=result.failure, revision=row.revision)
    if result.failure:
        return summary
    summary.reviewed = [ReviewedTest(c.grade_id, c.part, c.points, review[c.grade_id])
                        for c in cells if c.grade_id in review]
    for c in cells:
        if c.points <= 0 or c.grade_id not in scores:
            continue
        got = scores[c.grade_id]
        if got is None:
            summary.pending_cells.append(c)
        elif not c.manual and got < c.points:
            message, hints = split_hints(verdict_text(find_cell(nb, c.grade_id)))
            summary.failed.append(FailedTest(c.grade_id, c.part, got, c.points, message, hints))
    return summary


def student_result(course: Course, student: str, nb=None) -> grade_table.StudentResult:
    """The pipeline's notes and failure for a student (estado.json), else the grader's notes
    recorded in the autograded notebook (a course graded with plain ``nbgrader autograde``)."""
    saved = grade_table.load_state(course).get(student)
    if saved is not None:
        return saved
    from tarea2_grader.integration.nbplugin import META_KEY
    meta = (nb.metadata.get(META_KEY, {}) if nb is not None else {}) or {}
    notes = meta.get("notas", []) if isinstance(meta, dict) else []
    return grade_table.StudentResult(student, [str(n) for n in notes if isinstance(n, str)])


_source_cells: Dict[tuple, List[grade_table.CellInfo]] = {}


def source_cells(path: str) -> List[grade_table.CellInfo]:
    """``grade_table.grade_cells(path)``, parsed once per process for each content of the file.

    The summary of every student needs the source notebook's grade cells; the file is read each
    time and only parsed again when its bytes changed (a copy of the cells is returned).
    """
    with open(path, "rb") as fh:
        data = fh.read()
    key = (os.path.abspath(path), hashlib.sha256(data).hexdigest())
    cells = _source_cells.get(key)
    if cells is None:
        cells = grade_table.grade_cells(nbformat.reads(data.decode("utf-8"), as_version=4))
        _source_cells[key] = cells
    return copy.deepcopy(cells)


def course_cells(course: Course, nb=None) -> List[grade_table.CellInfo]:
    """Grade cells from the course's source notebook (else from ``nb``)."""
    if os.path.exists(course.source_nb) or nb is None:
        return source_cells(course.source_nb)
    return grade_table.grade_cells(nb)


def student_summary(course: Course, student: str) -> Summary:
    """A student's summary from the course's gradebook, autograded notebook and estado.json."""
    from nbgrader.api import Gradebook, MissingEntry
    path = course.autograded_nb(student)
    nb = nbformat.read(path, as_version=4) if os.path.exists(path) else None
    result = student_result(course, student, nb)
    scores: Dict[str, Optional[float]] = {}
    review: Dict[str, Optional[float]] = {}
    if result.failure is None:
        db = "sqlite:///" + os.path.abspath(course.path("gradebook.db"))
        with Gradebook(db, nbgrader_run.course_id(course)) as gb:
            try:
                sub = gb.find_submission_notebook(course.notebook, course.assignment, student)
                scores = grade_table.submission_scores(sub)
                review = grade_table.review_of(sub, flagged_of(nb))
            except MissingEntry:
                result = grade_table.StudentResult(student, result.notes, "no hay notas de este alumno en el gradebook")
    return build_summary(student, course_cells(course, nb), scores, result, nb, review)


def flagged_of(nb) -> List[str]:
    """The test cells the static review flagged, as recorded in the autograded notebook."""
    from tarea2_grader.integration.nbplugin import flagged_cells
    return flagged_cells(nb.metadata) if nb is not None else []


def example_student(course: Course, students) -> Optional[str]:
    """The graded student whose summary shows the most (hints, then failed tests) for the demo."""
    best, key = None, None
    for student in students:
        s = student_summary(course, student)
        if s.failure:
            continue
        k = (sum(len(f.hints) for f in s.failed), len(s.failed), bool(s.notes))
        if key is None or k > key:
            best, key = student, k
    return best


# ---------------------------------------------------------------- rendering

def pts(x: float) -> str:
    """Points as the grades table writes them (12, 7.5)."""
    return grade_table.fmt(x)


def part_status(p: PartScore) -> str:
    """The Spanish status of a part."""
    if p.pending:
        return "{} pts. por corregir a mano".format(pts(p.pending))
    return "completa" if p.points >= p.maximum else ""


def summary_text(s: Summary) -> str:
    """The summary as plain text (terminal)."""
    lines = ["Resumen de la corrección de {}".format(s.student)]
    if s.failure:
        lines.append("No se pudo corregir: " + s.failure)
    lines.append("Puntos: {} de {}".format(pts(s.total), pts(s.maximum))
                 + (" ({} por corregir a mano)".format(pts(s.pending_total)) if s.pending_total else ""))
    lines.append("  parte  puntos  máx.  estado")
    for p in s.parts:
        lines.append("  {:<5}  {:>6}  {:>4}  {}".format(p.part, pts(p.points), pts(p.maximum), part_status(p)).rstrip())
    if s.pending_cells:
        lines.append("Por corregir a mano: " + ", ".join(
            "{} ({}, {} pts.)".format(c.grade_id, c.part, pts(c.points)) for c in s.pending_cells))
    if s.failed:
        lines.append("Tests que no pasaron:")
        for f in s.failed:
            lines.append("  - parte {}, {} ({} de {}):".format(f.part, f.grade_id, pts(f.points), pts(f.maximum)))
            lines += ["      " + m for m in (f.message or ["(sin mensaje)"])]
            lines += ["      Pista: " + h for h in f.hints]
    if s.reviewed:
        lines.append("Revisión del código:")
        lines += ["  - " + review_text(r) for r in s.reviewed]
    if s.notes:
        lines.append("Observaciones:")
        lines += ["  - " + n for n in s.notes]
    return "\n".join(lines)


def review_text(r: ReviewedTest) -> str:
    """One Spanish line about a flagged test cell (no student text in it)."""
    where = "parte {}, {}".format(r.part, r.grade_id)
    if r.manual is None:
        return ("{}: marcada por usar una derivada hecha por máquina; vale 0 hasta que una persona "
                "la revise".format(where))
    if r.manual > 0:
        return "{}: revisada por una persona, puntos restaurados: {} de {}".format(where, pts(r.manual), pts(r.maximum))
    return "{}: revisada por una persona: 0 de {}".format(where, pts(r.maximum))


def esc(text) -> str:
    """Text made inert for HTML (also inside attribute values)."""
    return html.escape(str(text), quote=True)


def summary_html(s: Summary) -> str:
    """The summary as one HTML block with no blank line (a markdown cell passes it through whole)."""
    out = ['<div id="{}" class="panel panel-info tex2jax_ignore">'.format(SUMMARY_ID),
           '<div class="panel-heading"><b>Resumen de tu corrección</b></div>',
           '<div class="panel-body">']
    if s.failure:
        out.append('<div class="alert alert-danger"><b>No se pudo corregir tu entrega:</b> {}</div>'.format(esc(s.failure)))
    pending = (" <span>({} por corregir a mano)</span>".format(pts(s.pending_total)) if s.pending_total else "")
    out.append('<div class="lead">Puntos: <b class="resumen-total">{}</b> de {}{}</div>'.format(
        pts(s.total), pts(s.maximum), pending))
    out.append('<table class="table table-condensed table-bordered resumen-partes">')
    out.append("<tr><td><b>Parte</b></td><td><b>Puntos</b></td><td><b>Máximo</b></td><td><b>Estado</b></td></tr>")
    for p in s.parts:
        out.append('<tr data-parte="{0}"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td></tr>'.format(
            esc(p.part), pts(p.points), pts(p.maximum), esc(part_status(p))))
    out.append("</table>")
    if s.pending_cells:
        out.append("<div><b>Por corregir a mano</b> (el equipo docente las revisa en formgrader):</div><ul>")
        out += ["<li>parte {}: <code>{}</code>, {} pts.</li>".format(esc(c.part), esc(c.grade_id), pts(c.points))
                for c in s.pending_cells]
        out.append("</ul>")
    if s.failed:
        out.append("<div><b>Tests que no pasaron</b></div><ul class=\"resumen-fallos\">")
        for f in s.failed:
            out.append("<li>parte {}, <code>{}</code> ({} de {} pts.)".format(
                esc(f.part), esc(f.grade_id), pts(f.points), pts(f.maximum)))
            out += ["<div>{}</div>".format(esc(m)) for m in (f.message or ["(sin mensaje)"])]
            out += ['<div class="text-info"><b>Pista:</b> {}</div>'.format(esc(h)) for h in f.hints]
            out.append("</li>")
        out.append("</ul>")
    if s.reviewed:
        out.append('<div><b>Revisión del código</b> ({})</div><ul class="resumen-revision">'.format(esc(s.revision)))
        out += ['<li data-revision="{}">{}</li>'.format(esc(r.grade_id), esc(review_text(r))) for r in s.reviewed]
        out.append("</ul>")
    if s.notes:
        out.append("<div><b>Observaciones</b></div><ul class=\"resumen-notas\">")
        out += ["<li>{}</li>".format(esc(n)) for n in s.notes]
        out.append("</ul>")
    out.append("</div></div>")
    return "\n".join(line.replace("\n", " ") for line in out)


def summary_cell(s: Summary):
    """The markdown cell put first in the feedback notebook."""
    return nbformat.v4.new_markdown_cell(summary_html(s), metadata={"tarea2_resumen": True})


def standalone_page(s: Summary, title: str) -> str:
    """A self-contained HTML page with just the summary (students who could not be graded)."""
    return ("<!DOCTYPE html>\n<html lang=\"es\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n"
            "<body>\n{}\n</body></html>\n").format(esc(title), summary_html(s))


# ---------------------------------------------------------------- nbgrader

def process_gradebook(db_url: str):
    """A gradebook for one student's reads, on the engine this process already opened on the
    database (:class:`tarea2_grader.integration.sharedgb.SharedEngineGradebook`).

    ``nbgrader generate_feedback`` opened two per student (``GetGrades`` and the summary): each a
    new SQLAlchemy engine, which checks the tables and the course row and compiles every query
    again (its compiled-statement cache is per engine), about two thirds of the gradebook time.
    Users close it when the student's reads end, so every student is read in a new session on a
    new connection (a gradebook file replaced meanwhile is the one read), from what the database
    holds then; the engine, and its compiled statements, stay.
    """
    from tarea2_grader.integration.sharedgb import open_gradebook
    return open_gradebook(db_url)


def grade_cells_of(gb, sub) -> list:
    """Load, in one query, the cells of a submitted notebook's grades into the gradebook's session.

    ``grade_table.submission_scores`` reads ``grade.name`` for each grade, a lazy load of its cell
    (one query per grade); with the cells already in the session those loads find them there
    and run no query.  The same rows, so the same names.
    """
    from nbgrader.api import BaseCell, Grade
    return gb.db.query(BaseCell).join(Grade, Grade.cell_id == BaseCell.id).filter(Grade.notebook_id == sub.id).all()


class FeedbackSummary(NbGraderPreprocessor):
    """``GenerateFeedback`` preprocessor: insert the student's summary as the first cell.

    Reads the scores from the gradebook named in ``resources`` (as ``GetGrades`` does), the
    grade cells from the course's source notebook and the notes from the last ``make grade``.
    """

    def preprocess(self, nb, resources):
        from tarea2_grader.integration.nbplugin import course_root

        info = resources["nbgrader"]
        course = Course(course_root(resources), info["assignment"], info["notebook"])
        with process_gradebook(info["db_url"]) as gb:
            sub = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            cells = grade_cells_of(gb, sub)  # held: the session keeps loaded objects weakly
            scores = grade_table.submission_scores(sub)
            review = grade_table.review_of(sub, flagged_of(nb))
            del cells
        result = student_result(course, info["student"], nb)
        result = grade_table.StudentResult(result.student, result.notes, None)  # it has a notebook: it was graded
        summary = build_summary(info["student"], course_cells(course, nb), scores, result, nb, review)
        nb.cells.insert(0, summary_cell(summary))
        return nb, resources


ResumenCorreccion = FeedbackSummary
