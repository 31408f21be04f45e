"""The grade table: grade cells and their parts, scores from the gradebook, the review status of
flagged cells, grades.csv and the printed table, and the per-student results the pipeline keeps.

Read by the instructor commands and by the feedback summary (:mod:`tarea2_grader.integration.resumen`).
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import nbformat

from tarea2_grader.integration.course import Course
from tarea2_grader.integration.nbgrader_run import course_id


# The part of the assignment each grade cell counts in comes from the source notebook: the cell's
# own metadata ``"tarea2_parte": "2b"`` (set by whoever writes the cell, beside its nbgrader
# points).  A grade cell without it (another course, an older notebook) counts in the part of the
# last "Parte N" heading above it, else in "otros".
PART_KEY = "tarea2_parte"
HEADING_PART = re.compile(r"^#{1,4}\s*(?:Parte|Pregunta)\s+([0-9]+[a-z]?)\b", re.I | re.M)


UNGRADED_PREFIX = "sin corregir (falla del corrector): "


@dataclass
class StudentResult:
    """What happened to one student in the pipeline."""

    student: str
    notes: List[str] = field(default_factory=list)
    failure: Optional[str] = None
    machinery: bool = False  # the failure is the grading machinery's: ungraded, not 0

    def observations(self) -> str:
        """The Spanish text of the ``observaciones`` column."""
        failure = (UNGRADED_PREFIX + self.failure) if self.failure and self.machinery else self.failure
        items = ([failure] if failure else []) + self.notes
        return "; ".join(items)



# ---------------------------------------------------------------- grades

@dataclass
class CellInfo:
    """A grade cell of the source notebook."""

    grade_id: str
    part: str
    points: float
    manual: bool


def grade_cells(source_nb) -> List[CellInfo]:
    """Grade cells of the source notebook (a path or a notebook), in order, each with its part label
    (its ``tarea2_parte`` metadata, else the last "Parte N" heading above it) and its points."""
    nb = source_nb if isinstance(source_nb, dict) else nbformat.read(source_nb, as_version=4)
    cells, heading = [], None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = HEADING_PART.search(cell.source)
            if m:
                heading = m.group(1)
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            part = str(cell.metadata.get(PART_KEY) or heading or "otros")
            cells.append(CellInfo(meta.get("grade_id"), part, float(meta.get("points", 0)), bool(meta.get("solution"))))
    return cells


def parts_of(cells: List[CellInfo]) -> List[str]:
    """Part labels with points, in notebook order."""
    parts: List[str] = []
    for c in cells:
        if c.points > 0 and c.part not in parts:
            parts.append(c.part)
    return parts


def submission_scores(sub) -> Dict[str, Optional[float]]:
    """Score per grade_id of one gradebook SubmissionNotebook; None = pending manual grading."""
    per_cell: Dict[str, Optional[float]] = {}
    for grade in sub.grades:
        if grade.manual_score is not None:
            per_cell[grade.name] = float(grade.manual_score) + float(grade.extra_credit or 0)
        elif grade.auto_score is not None:
            per_cell[grade.name] = float(grade.auto_score) + float(grade.extra_credit or 0)
        else:
            per_cell[grade.name] = None
    return per_cell


def read_scores(course: Course, students: Iterable[str]) -> Dict[str, Dict[str, Optional[float]]]:
    """Score per grade_id per student from the gradebook; None = pending manual grading."""
    from nbgrader.api import Gradebook, MissingEntry
    db = "sqlite:///" + os.path.abspath(course.path("gradebook.db"))
    scores: Dict[str, Dict[str, Optional[float]]] = {}
    with Gradebook(db, course_id(course)) as gb:
        for student in students:
            try:
                sub = gb.find_submission_notebook(course.notebook, course.assignment, student)
            except MissingEntry:
                continue
            scores[student] = submission_scores(sub)
    return scores


# ---------------------------------------------------------------- review of flagged cells

REVISION_MARKED = "marcada"      # a flagged test cell scores 0 and waits for a person (formgrader)
REVISION_RESTORED = "restaurado"  # a person typed points in every flagged cell, some of them above 0
REVISION_CONFIRMED = "revisada"   # a person reviewed every flagged cell and left each at 0


def review_status(review: Dict[str, Optional[float]]) -> str:
    """The ``revision`` column from {flagged grade_id: manual score, None while nobody typed one}."""
    if not review:
        return ""
    if any(v is None for v in review.values()):
        return REVISION_MARKED
    return REVISION_RESTORED if any(v > 0 for v in review.values()) else REVISION_CONFIRMED


def flagged_in_autograded(course: Course, student: str) -> List[str]:
    """The test cells of a student that the static review flagged, as ``TrustedExecute`` recorded
    them in the autograded notebook's metadata ([] when there is none)."""
    from tarea2_grader.integration.nbplugin import flagged_cells
    path = course.autograded_nb(student)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            return flagged_cells(json.load(fh).get("metadata", {}))
    except (OSError, ValueError, AttributeError):
        return []


def review_of(sub, flagged: Iterable[str]) -> Dict[str, Optional[float]]:
    """{flagged grade_id: the manual score a person typed in formgrader, or None} of one gradebook
    SubmissionNotebook."""
    flagged = list(flagged)
    if not flagged:
        return {}
    manual = {g.name: g.manual_score for g in sub.grades}
    return {gid: (None if manual.get(gid) is None else float(manual[gid])) for gid in flagged if gid in manual}


def read_reviews(course: Course, students: Iterable[str]) -> Dict[str, Dict[str, Optional[float]]]:
    """{student: :func:`review_of`} for the students with flagged cells (the gradebook is opened
    only when someone has one)."""
    from nbgrader.api import Gradebook, MissingEntry
    flagged = {s: f for s, f in ((s, flagged_in_autograded(course, s)) for s in students) if f}
    if not flagged:
        return {}
    db = "sqlite:///" + os.path.abspath(course.path("gradebook.db"))
    reviews: Dict[str, Dict[str, Optional[float]]] = {}
    with Gradebook(db, course_id(course)) as gb:
        for student, cells in flagged.items():
            try:
                sub = gb.find_submission_notebook(course.notebook, course.assignment, student)
            except MissingEntry:
                continue
            reviews[student] = review_of(sub, cells)
    return reviews


@dataclass
class Row:
    """One line of grades.csv."""

    student: str
    parts: Dict[str, float]
    pending: Dict[str, float]
    total: float
    pending_total: float
    observations: str
    seed: Optional[int] = None
    ungraded: bool = False  # the machinery failed: no points at all (blank in grades.csv), not 0
    revision: str = ""  # review_status of the flagged cells: '', marcada, restaurado, revisada


def build_rows(cells: List[CellInfo], scores: Dict[str, Dict[str, Optional[float]]],
               results: Dict[str, StudentResult], seeds: Optional[Dict[str, int]] = None,
               reviews: Optional[Dict[str, Dict[str, Optional[float]]]] = None) -> List[Row]:
    """Per-student part totals; failed students get 0 and their reason."""
    seeds, reviews = seeds or {}, reviews or {}
    parts = parts_of(cells)
    rows = []
    for student in sorted(results):
        res = results[student]
        got = {p: 0.0 for p in parts}
        pend = {p: 0.0 for p in parts}
        per_cell = scores.get(student, {}) if res.failure is None else {}
        for c in cells:
            if c.part not in got:
                continue
            if c.grade_id in per_cell and per_cell[c.grade_id] is None:
                pend[c.part] += c.points
            else:
                got[c.part] += per_cell.get(c.grade_id) or 0.0
        rows.append(Row(student, got, pend, sum(got.values()), sum(pend.values()), res.observations(),
                        seeds.get(student) if res.failure is None else None, ungraded=res.machinery,
                        revision=review_status(reviews.get(student, {})) if res.failure is None else ""))
    return rows


def fmt(x: float) -> str:
    """Compact number: 12, 7.5."""
    return ("%.1f" % x).rstrip("0").rstrip(".")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """Text for a CSV cell that a spreadsheet never runs as a formula: one starting with
    = + - @ (or a tab or carriage return) gets a leading apostrophe."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_id(text: str) -> str:
    """A student id read back from a grades.csv cell (:func:`csv_text` undone: ids never start
    with an apostrophe)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text


def write_csv(path: str, cells: List[CellInfo], rows: List[Row]) -> None:
    """grades.csv: student_id, total, pendiente_manual, parte_*, observaciones, semilla, revision.

    ``semilla`` is the seed of the student's hidden inputs (a regrade reuses it); ``revision`` says
    whether a test cell flagged by the static review waits for a person (``marcada``) or was
    reviewed (``restaurado``, ``revisada``).  Text cells never start like a spreadsheet formula.
    """
    parts = parts_of(cells)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "total", "pendiente_manual"]
                        + ["parte_" + p for p in parts] + ["observaciones", "semilla", "revision"])
        for row in rows:
            num = (lambda x: "") if row.ungraded else fmt  # an ungraded student has no points, not 0
            writer.writerow([csv_text(row.student), num(row.total), num(row.pending_total)]
                            + [num(row.parts[p]) for p in parts] + [csv_text(row.observations),
                                                                    "" if row.seed is None else row.seed,
                                                                    row.revision])


def part_maxima(cells: List[CellInfo]) -> Dict[str, float]:
    """Maximum points of each part with points, in notebook order."""
    return {p: sum(c.points for c in cells if c.part == p) for p in parts_of(cells)}


def format_table(cells: List[CellInfo], rows: List[Row]) -> str:
    """Compact text table: student x part points, total, pending, observations."""
    parts = parts_of(cells)
    maxima = part_maxima(cells)
    width = max([len("alumno")] + [len(r.student) for r in rows])
    head = ["alumno".ljust(width)] + [p.rjust(5) for p in parts] + ["total".rjust(6), "pend.".rjust(5)]
    maxl = ["(máx)".ljust(width)] + [fmt(maxima[p]).rjust(5) for p in parts] + [
        fmt(sum(maxima.values())).rjust(6), "".rjust(5)]
    lines = ["  ".join(head), "  ".join(maxl)]
    for r in rows:
        cols = [r.student.ljust(width)]
        if r.ungraded:
            lines.append("  ".join(cols + ["-".rjust(5)] * len(parts) + ["-".rjust(6), "-".rjust(5)]))
            continue
        for p in parts:
            cell = fmt(r.parts[p]) + ("*" if r.pending[p] else "")
            cols.append(cell.rjust(5))
        cols += [fmt(r.total).rjust(6), (fmt(r.pending_total) if r.pending_total else "-").rjust(5)]
        lines.append("  ".join(cols))
    lines.append("* = incluye puntos pendientes de corrección manual (formgrader); pend. = puntos por corregir a mano")
    for r in rows:
        if r.observations:
            lines.append("{}: {}".format(r.student, r.observations))
    lines += review_lines(rows)
    return "\n".join(lines)


def review_lines(rows: List[Row]) -> List[str]:
    """The table's lines about the cells the static review flagged (none when nobody has one)."""
    reviewed = [r for r in rows if r.revision]
    if not reviewed:
        return []
    lines = ["revisión (columna revision de grades.csv): " + ", ".join(
        "{} {}".format(r.student, r.revision) for r in reviewed)]
    if any(r.revision == REVISION_MARKED for r in reviewed):
        lines.append("  marcada = un test vale 0 hasta que una persona lo revise: formgrader lo lista como "
                     "\"needs manual grade\" (ver README, \"Partes marcadas por la revisión del código\")")
    return lines


# ---------------------------------------------------------------- state of the last run

def state_path(course: Course) -> str:
    """Where the last grading run's per-student failures and notes are kept."""
    return os.path.join(course.logs_dir, "estado.json")


def save_state(course: Course, results: Dict[str, StudentResult]) -> None:
    """Remember failures and notes so that ``report`` can rebuild grades.csv later."""
    os.makedirs(course.logs_dir, exist_ok=True)
    data = {s: {"failure": r.failure, "notes": r.notes, "machinery": r.machinery} for s, r in results.items()}
    with open(state_path(course), "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)


def load_state(course: Course) -> Dict[str, StudentResult]:
    """The failures and notes that the last grading run saved ({} before any run)."""
    results: Dict[str, StudentResult] = {}
    if os.path.exists(state_path(course)):
        with open(state_path(course), encoding="utf-8") as fh:
            for sid, data in json.load(fh).items():
                results[sid] = StudentResult(sid, data.get("notes", []), data.get("failure"),
                                             bool(data.get("machinery")))
    return results
