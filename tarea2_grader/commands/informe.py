"""``make informe``: one offline page for the instructor after grading, ``informe/index.html``.

It reads only what grading left in the course (grades.csv, the gradebook, the autograded
notebooks' test outputs, the verdict cache, the pipeline's state) and the submitted notebooks as
JSON (for copy detection, see similitud.py); no student code runs.  Every student text is
HTML-escaped and the page forbids scripts (Content-Security-Policy), so nothing in it is active.
Beside it: ``similitud.csv``, ``partes.csv`` and one side-by-side page per flagged cell pair in
``pares/``.  The folder is for the teaching team: publicar refuses it, feedback never links it.
"""
from __future__ import annotations

import base64
import csv
import glob
import html
import io
import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

from traitlets import Float, Integer
from traitlets.config import Configurable

from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.commands import similitud
from tarea2_grader.parallel.workers import CACHE_DIRNAME

DIRNAME = "informe"
PARTNERS_FILE = "informe_companeros.csv"    # course root: pairs allowed to share work
DISMISSALS_FILE = "informe_descartes.csv"   # course root: flagged pairs the instructor read and cleared
ANTECEDENTS_DIR = "antecedentes"            # course root: earlier years' submissions, public solutions
MARKER = '<meta name="tarea2-informe" content="1">'  # publicar refuses any file carrying it
CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
       "style-src 'unsafe-inline'\">")
SLOWEST_SHOWN = 10


class Informe(Configurable):
    """Copy-detection settings (``c.Informe.*`` in nbgrader_config.py).

    The class and trait names are the configuration keys users write (``c.Informe.umbral``,
    ``c.Informe.minimo_propio``: README, docs/informe.md, ``make informe``'s help); traitlets reads
    them from the Python names, so they stay Spanish.  :func:`comparison_settings` maps them onto
    :class:`similitud.ComparisonSettings`.
    """

    umbral = Float(similitud.ComparisonSettings.threshold,
                   help="Similarity (0 to 1) of one answer cell from which a pair is flagged.").tag(config=True)
    minimo_propio = Integer(similitud.ComparisonSettings.min_own_tokens,
                            help="Own tokens (after removing the release's code) below which a cell is "
                                 "'demasiado corta' and never flagged.").tag(config=True)


def comparison_settings(course: Course, threshold: Optional[float] = None) -> similitud.ComparisonSettings:
    """The comparison's settings: defaults, the course config, then the command line."""
    conf = Informe(config=nbgrader_run.load_config(course))
    settings = similitud.ComparisonSettings(threshold=conf.umbral, min_own_tokens=conf.minimo_propio)
    if threshold is not None:
        settings.threshold = float(threshold)
    return settings


# ---------------------------------------------------------------- what grading left


@dataclass
class ClassResults:
    """Everything the page shows, read from the course."""

    grade_rows: List[Dict[str, str]]               # grades.csv rows
    part_maxima: Dict[str, float]                  # part -> maximum points
    cells: List[grade_table.CellInfo]
    scores: Dict[str, Dict[str, Optional[float]]]  # gradebook: student -> grade_id -> points (None: pending)
    failures: Dict[str, str]                       # students not graded -> why
    hints: Dict[str, List[str]]                    # Pista text -> students
    times: Dict[str, float]                        # student -> grading seconds
    warnings: List[str] = field(default_factory=list)  # what could not be read (Spanish)
    reviews: Dict[str, Dict[str, Optional[float]]] = field(default_factory=dict)  # flagged cells' reviews


def read_grades(course: Course) -> List[Dict[str, str]]:
    """grades.csv as dicts ([] when it does not exist yet), each student id as grading knows it
    (the apostrophe that keeps an id like ``=2+3`` from being a spreadsheet formula removed)."""
    path = course.path("grades.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["student_id"] = grade_table.csv_id(row["student_id"])
    return rows


def flagged_rows(grade_rows: List[Dict[str, str]]) -> List[Dict[str, str]]:
    """The grades.csv rows whose ``revision`` column names a state (cells flagged by the review)."""
    return [f for f in grade_rows if (f.get("revision") or "").strip()]


def read_hints(course: Course, students: List[str]) -> Dict[str, List[str]]:
    """Every ``Pista:`` line in the autograded notebooks' test outputs -> the students who got it."""
    found: Dict[str, List[str]] = {}
    for student in students:
        nb = similitud.read_json_notebook(course.autograded_nb(student))
        seen = set()
        for cell in nb.get("cells", []):
            nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
            if not nbg.get("grade") or nbg.get("solution") or cell.get("cell_type") != "code":
                continue
            for out in cell.get("outputs") or []:
                text = similitud._text(out.get("text")) + "\n".join(
                    similitud._text(v) for v in (out.get("traceback") or []))
                text += similitud._text(out.get("evalue"))
                for line in text.splitlines():
                    line = line.strip()
                    if line.startswith("Pista:") and line not in seen:
                        seen.add(line)
                        found.setdefault(line[len("Pista:"):].strip(), []).append(student)
    return found


def read_times(course: Course) -> Dict[str, float]:
    """Grading seconds per student from the verdict cache (the newest entry of each)."""
    newest: Dict[str, Tuple[float, float]] = {}
    for path in glob.glob(os.path.join(glob.escape(course.path(CACHE_DIRNAME)), "*.json")):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            student, seconds = str(data["alumno"]), float(data["resultado"]["segundos"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        mtime = os.path.getmtime(path)
        if student not in newest or mtime > newest[student][0]:
            newest[student] = (mtime, seconds)
    return {s: v[1] for s, v in newest.items()}


def read_class(course: Course) -> ClassResults:
    """Read what grading left; a part that cannot be read is left empty with a warning."""
    grade_rows = read_grades(course)
    students = [f["student_id"] for f in grade_rows] or course.students()
    warnings: List[str] = []
    cells: List[grade_table.CellInfo] = []
    try:
        cells = grade_table.grade_cells(course.source_nb)
    except Exception as exc:  # noqa: BLE001 - the page says what it could not read
        warnings.append("no se pudo leer source/: {}".format(exc))
    scores: Dict[str, Dict[str, Optional[float]]] = {}
    try:
        if os.path.exists(course.path("gradebook.db")):
            scores = grade_table.read_scores(course, students)
    except Exception as exc:  # noqa: BLE001
        warnings.append("no se pudo leer el gradebook: {}".format(exc))
    failures = {s: r.failure for s, r in grade_table.load_state(course).items() if r.failure}
    reviews: Dict[str, Dict[str, Optional[float]]] = {}
    try:
        reviews = grade_table.read_reviews(course, [f["student_id"] for f in flagged_rows(grade_rows)])
    except Exception as exc:  # noqa: BLE001
        warnings.append("no se pudieron leer las celdas marcadas por la revisión: {}".format(exc))
    return ClassResults(grade_rows, grade_table.part_maxima(cells), cells, scores, failures,
                        read_hints(course, students), read_times(course), warnings, reviews)


# ---------------------------------------------------------------- numbers


def number(text: str) -> float:
    """A grades.csv number ('' counts as 0)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def graded_rows(class_results: ClassResults) -> List[Dict[str, str]]:
    """Rows of the students who were graded."""
    return [f for f in class_results.grade_rows if f["student_id"] not in class_results.failures]


def part_stats(class_results: ClassResults) -> List[Tuple[str, float, float, float, float]]:
    """(part, maximum, mean, median, share with full points) over the graded students."""
    rows = graded_rows(class_results)
    out = []
    for part, maximum in class_results.part_maxima.items():
        values = [number(f.get("parte_" + part)) for f in rows]
        if not values:
            out.append((part, maximum, 0.0, 0.0, 0.0))
            continue
        full = sum(1 for v in values if v >= maximum - 1e-9) / len(values)
        out.append((part, maximum, statistics.mean(values), statistics.median(values), full))
    return out


def test_pass_rates(class_results: ClassResults) -> List[Tuple[str, int, int]]:
    """(hidden test cell, students passing it, students graded) for every autograded test."""
    graded = [s for s in class_results.scores if s not in class_results.failures]
    out = []
    for cell in class_results.cells:
        if cell.manual or cell.points <= 0:
            continue
        passing = sum(1 for s in graded if (class_results.scores[s].get(cell.grade_id) or 0) >= cell.points - 1e-9)
        out.append((cell.grade_id, passing, len(graded)))
    return out


def pending_manual(class_results: ClassResults) -> List[Tuple[str, float, List[str]]]:
    """(hand-graded cell, its points, students still without a grade in it)."""
    out = []
    for cell in class_results.cells:
        if not cell.manual:
            continue
        waiting = sorted(s for s, cells in class_results.scores.items()
                         if s not in class_results.failures and cell.grade_id in cells and cells[cell.grade_id] is None)
        out.append((cell.grade_id, cell.points, waiting))
    return out


# ---------------------------------------------------------------- plots


def png(fig) -> str:
    """A matplotlib figure as a data: URI (the page needs no file beside it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots(class_results: ClassResults) -> List[Tuple[str, str]]:
    """(title, data URI) of the class plots: totals, each part's points, share passing each test."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = graded_rows(class_results)
    out = []
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist([number(f["total"]) for f in rows], bins=20, range=(0, max(1.0, sum(class_results.part_maxima.values()))),
            color="#3b6ea5")
    ax.set_xlabel("puntaje total")
    ax.set_ylabel("alumnos")
    out.append(("Distribución del puntaje total", png(fig)))
    if class_results.part_maxima:
        fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(class_results.part_maxima)), 3))
        parts = list(class_results.part_maxima)
        maxima = class_results.part_maxima
        data = [[number(f.get("parte_" + p)) / maxima[p] * 100 if maxima[p] else 0 for f in rows] or [0.0]
                for p in parts]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(parts) + 1), parts)
        ax.set_ylabel("% del puntaje de la parte")
        ax.set_ylim(-5, 105)
        out.append(("Puntaje de cada parte (en % de su máximo)", png(fig)))
    rates = test_pass_rates(class_results)
    if rates:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(rates) + 1))
        ax.barh([r[0] for r in rates][::-1], [100 * r[1] / r[2] if r[2] else 0 for r in rates][::-1],
                color="#4a9a5b")
        ax.set_xlim(0, 100)
        ax.set_xlabel("% de alumnos que pasan la prueba oculta")
        out.append(("Alumnos que pasan cada prueba oculta", png(fig)))
    return out


# ---------------------------------------------------------------- HTML

def esc(value) -> str:
    """HTML-escaped text (quotes too): every student text goes through here."""
    return html.escape(str(value), quote=True)


STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#eee}.num{text-align:right}.aviso{color:#a33}
pre{white-space:pre-wrap;background:#f7f7f7;border:1px solid #ddd;padding:6px;font-size:12px;margin:0}
mark{background:#ffd54f}mark.referencia{background:#c8e6c9}mark.comun{background:#bbdefb}
.lado{display:grid;grid-template-columns:1fr 1fr;gap:10px}.muted{color:#777}img{max-width:100%}"""


def page(title: str, body: str) -> str:
    """A whole HTML page: no script, no external resource."""
    return ("<!DOCTYPE html>\n<html lang=\"es\"><head><meta charset=\"utf-8\">{}{}<title>{}</title>"
            "<style>{}</style></head><body>\n{}\n</body></html>\n").format(CSP, MARKER, esc(title), STYLE, body)


def table(head: List[str], rows: List[List[str]], numeric=()) -> str:
    """An HTML table; cells are already-escaped HTML."""
    out = ["<table><tr>" + "".join("<th>{}</th>".format(esc(h)) for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join("<td{}>{}</td>".format(' class="num"' if i in numeric else "", c)
                                    for i, c in enumerate(row)) + "</tr>")
    return "".join(out) + "</table>"


def feedback_link(course: Course, student: str, prefix: str = "../") -> str:
    """The student's id, linked to their feedback page when it exists (relative link)."""
    if student.startswith(ANTECEDENTS_DIR + "/") or not os.path.exists(course.feedback_page(student)):
        return esc(student)
    href = prefix + "/".join(quote(p) for p in ("feedback", student, course.assignment, course.notebook + ".html"))
    return '<a href="{}">{}</a>'.format(esc(href), esc(student))


def highlighted(source: str, ranges: List[Tuple[int, int, str]]) -> str:
    """A cell's source with the shared ranges in <mark>, everything escaped."""
    out, pos = [], 0
    for s, e, lab in ranges:
        out.append(esc(source[pos:s]))
        cls = ' class="{}"'.format(lab) if lab else ""
        out.append("<mark{}>{}</mark>".format(cls, esc(source[s:e])))
        pos = e
    out.append(esc(source[pos:]))
    return "<pre>{}</pre>".format("".join(out))


def pair_page(course: Course, res: similitud.ComparisonResult, m: similitud.Match) -> str:
    """Side-by-side view of one flagged cell pair."""
    a, b = res.fingerprinted[m.a][m.grade_id], res.fingerprinted[m.b][m.grade_id]
    body = ["<p><a href=\"../index.html\">&larr; volver al informe</a></p>",
            "<h1>Celda {} &mdash; similitud {:.0%}</h1>".format(esc(m.grade_id), m.score),
            "<p>Resaltado: fragmentos en común. <mark>amarillo</mark>: propios de ambos; "
            "<mark class=\"referencia\">verde</mark>: también en la solución de referencia (cuentan menos); "
            "<mark class=\"comun\">azul</mark>: comunes a gran parte del curso (cuentan menos).</p>",
            "<p>Para descartar este par después de revisarlo, agregue a <code>{}</code> la línea "
            "<code>{}</code></p>".format(DISMISSALS_FILE, esc(",".join((m.a, m.b, m.grade_id, "revisado")))),
            '<div class="lado"><div><h2>{}</h2>{}</div><div><h2>{}</h2>{}</div></div>'.format(
                feedback_link(course, m.a, "../../"), highlighted(a.source, m.spans_a),
                feedback_link(course, m.b, "../../"), highlighted(b.source, m.spans_b))]
    return page("Informe: {} y {}, {}".format(m.a, m.b, m.grade_id), "\n".join(body))


def similarity_section(course: Course, res: similitud.ComparisonResult, links: Dict[int, str]) -> str:
    """Flagged pairs, clusters, declared partners, dismissals and short cells."""
    out = ["<h2 id=\"similitud\">A quién mirar: entregas que parecen copiadas</h2>",
           "<p>Por celda de respuesta, sin el código que da el enunciado; umbral de similitud {:.0%} "
           "(<code>c.Informe.umbral</code> o <code>make informe UMBRAL=0.6</code>). {} alumnos{}.</p>".format(
               res.settings.threshold, len(res.student_ids),
               ", {} entregas anteriores de {}/".format(len(res.earlier_ids), ANTECEDENTS_DIR) if res.earlier_ids
               else "")]
    groups = res.groups()
    if groups:
        out.append("<h3>Grupos (componentes conexas de los pares marcados)</h3><ul>")
        for g in groups:
            out.append("<li>{}</li>".format(", ".join(feedback_link(course, s) for s in g)))
        out.append("</ul>")
    else:
        out.append("<p>Ningún par supera el umbral.</p>")
    rows = []
    for m in res.flagged():
        rows.append([feedback_link(course, m.a), feedback_link(course, m.b), esc(m.grade_id),
                     "{:.0%}".format(m.score), '<a href="{}">ver lado a lado</a>'.format(esc(links[id(m)])),
                     esc(m.fragment[:120])])
    if rows:
        out.append(table(["alumno A", "alumno B", "celda", "similitud", "", "fragmento en común"], rows, (3,)))
    other = [m for m in res.matches if m.status in ("companeros", "descartada")]
    if other:
        out.append("<h3>Sobre el umbral pero permitidos</h3>")
        out.append(table(["alumno A", "alumno B", "celda", "similitud", "motivo"], [
            [esc(m.a), esc(m.b), esc(m.grade_id), "{:.0%}".format(m.score),
             "compañeros declarados ({})".format(PARTNERS_FILE) if m.status == "companeros"
             else "descartado ({})".format(DISMISSALS_FILE)] for m in other], (3,)))
    short = [[esc(gid), str(len(docs)), esc(", ".join(docs[:15]) + (" ..." if len(docs) > 15 else ""))]
             for gid, docs in res.too_short.items() if docs]
    if short:
        out.append("<h3>Celdas «demasiado corta» (no se comparan)</h3><p class=\"muted\">Menos de {} elementos "
                   "propios después de quitar lo que da el enunciado.</p>".format(res.settings.min_own_tokens))
        out.append(table(["celda", "alumnos", "quiénes"], short, (1,)))
    return "\n".join(out)


REVISION_MEANING = {
    grade_table.REVISION_MARKED: "espera a una persona: la celda marcada vale 0 hasta que alguien ponga su puntaje",
    grade_table.REVISION_RESTORED: "una persona revisó cada celda marcada y devolvió puntos en alguna",
    grade_table.REVISION_CONFIRMED: "una persona revisó cada celda marcada y confirmó el 0",
}


def review_cells(review: Dict[str, Optional[float]]) -> str:
    """The flagged cells of one student and what a person typed in each (escaped HTML)."""
    if not review:
        return '<span class="muted">(no se pudieron leer)</span>'
    return "<br>".join("{}: {}".format(esc(gid), "pendiente" if pts is None else "{:g} puntos".format(pts))
                       for gid, pts in sorted(review.items()))


def revision_section(course: Course, class_results: ClassResults) -> str:
    """Every student with cells flagged by the static review (grades.csv's ``revision`` column),
    with their state, the flagged cells and a link to their feedback page."""
    if not class_results.grade_rows or "revision" not in class_results.grade_rows[0]:
        return ""
    flagged = flagged_rows(class_results.grade_rows)
    out = ["<h2 id=\"revision\">A quién mirar: partes marcadas por la revisión del código</h2>"]
    if not flagged:
        out.append("<p>Ningún alumno marcado (columna <code>revision</code> de grades.csv vacía).</p>")
        return "\n".join(out)
    counts = {state: sum(1 for f in flagged if f["revision"] == state) for state in REVISION_MEANING}
    out.append("<p>{} alumno(s) con celdas marcadas (columna <code>revision</code> de grades.csv): {} "
               "<code>{}</code>, {} <code>{}</code>, {} <code>{}</code>. Para devolver los puntos después de leer "
               "el código: formgrader, y luego <code>python -m tarea2_grader notas</code> (reescribe grades.csv y "
               "este informe); ver «Partes marcadas por la revisión del código» en el README.</p>".format(
                   len(flagged), counts[grade_table.REVISION_MARKED], grade_table.REVISION_MARKED,
                   counts[grade_table.REVISION_RESTORED], grade_table.REVISION_RESTORED,
                   counts[grade_table.REVISION_CONFIRMED], grade_table.REVISION_CONFIRMED))
    out.append(table(["alumno", "estado", "qué significa", "celdas marcadas (puntaje puesto a mano)"], [
        [feedback_link(course, f["student_id"]), esc(f["revision"]), esc(REVISION_MEANING.get(f["revision"], "")),
         review_cells(class_results.reviews.get(f["student_id"], {}))]
        for f in sorted(flagged, key=lambda f: (f["revision"] != grade_table.REVISION_MARKED, f["student_id"]))]))
    return "\n".join(out)


def class_section(course: Course, class_results: ClassResults) -> str:
    """How the class did: plots, parts, hints, pending hand grading, failures, times."""
    out = ["<h2>Cómo le fue al curso</h2>"]
    rows = graded_rows(class_results)
    if rows:
        totals = [number(f["total"]) for f in rows]
        out.append("<p>{} alumnos corregidos; total: media {:.1f}, mediana {:.1f} (de {:g}).</p>".format(
            len(rows), statistics.mean(totals), statistics.median(totals), sum(class_results.part_maxima.values())))
    for title, uri in plots(class_results):
        out.append("<figure><img alt=\"{0}\" src=\"{1}\"><figcaption>{0}</figcaption></figure>".format(esc(title), uri))
    out.append("<h3>Partes</h3>" + table(["parte", "máximo", "media", "mediana", "con puntaje completo"], [
        [esc(p), "{:g}".format(m), "{:.2f}".format(a), "{:.2f}".format(md), "{:.0%}".format(f)]
        for p, m, a, md, f in part_stats(class_results)], (1, 2, 3, 4)))
    out.append("<h3>Errores diagnosticados más frecuentes (líneas «Pista:»)</h3>")
    hints = sorted(class_results.hints.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    out.append(table(["pista", "alumnos", "quiénes"], [
        [esc(h), str(len(who)), ", ".join(feedback_link(course, s) for s in who)] for h, who in hints], (1,))
               if hints else "<p>Ninguna.</p>")
    pend = [p for p in pending_manual(class_results) if p[2]]
    out.append("<h3>Puntos pendientes de corrección manual (formgrader)</h3>")
    out.append(table(["celda", "puntos", "alumnos sin nota", "quiénes"], [
        [esc(g), "{:g}".format(pts), str(len(who)), esc(", ".join(who))] for g, pts, who in pend], (1, 2))
               if pend else "<p>Nada pendiente.</p>")
    out.append("<h3>Alumnos sin corregir</h3>")
    out.append(table(["alumno", "motivo"], [[esc(s), esc(r)] for s, r in sorted(class_results.failures.items())])
               if class_results.failures else "<p>Todos fueron corregidos.</p>")
    if class_results.times:
        slow = sorted(class_results.times.items(), key=lambda kv: -kv[1])
        values = list(class_results.times.values())
        out.append("<h3>Tiempo de corrección por alumno</h3><p>media {:.1f} s, mediana {:.1f} s, máximo {:.1f} s. "
                   "Los más lentos:</p>".format(statistics.mean(values), statistics.median(values), max(values)))
        out.append(table(["alumno", "segundos"], [[esc(s), "{:.1f}".format(t)] for s, t in slow[:SLOWEST_SHOWN]], (1,)))
    for warning in class_results.warnings:
        out.append("<p class=\"aviso\">{}</p>".format(esc(warning)))
    return "\n".join(out)


# ---------------------------------------------------------------- files


def write_similarity_csv(path: str, res: similitud.ComparisonResult) -> None:
    """similitud.csv: every compared cell pair at or above half the threshold, best first."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["alumno_a", "alumno_b", "celda", "similitud", "fragmento"])
        for m in res.matches:
            if m.score >= res.settings.threshold / 2:
                w.writerow([similitud.spreadsheet_safe(m.a), similitud.spreadsheet_safe(m.b), m.grade_id,
                            "{:.3f}".format(m.score), similitud.spreadsheet_safe(m.fragment)])


def write_parts_csv(path: str, class_results: ClassResults) -> None:
    """partes.csv: per part, maximum, mean, median and share of students with full points."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["parte", "maximo", "media", "mediana", "fraccion_completo"])
        for p, m, a, md, f in part_stats(class_results):
            w.writerow([p, "{:g}".format(m), "{:.3f}".format(a), "{:.3f}".format(md), "{:.3f}".format(f)])


def compare_class(course: Course, students: List[str],
                  settings: similitud.ComparisonSettings) -> similitud.ComparisonResult:
    """Copy detection over the submitted notebooks (read as JSON) and ``antecedentes/``."""
    release = similitud.read_json_notebook(course.path("release", course.assignment, course.notebook + ".ipynb"))
    source = similitud.read_json_notebook(course.source_nb)
    notebooks = {s: similitud.read_json_notebook(course.submitted_nb(s)) for s in students}
    return similitud.compare(release, source, {s: nb for s, nb in notebooks.items() if nb},
                             similitud.antecedent_notebooks(course.path(ANTECEDENTS_DIR)), settings,
                             similitud.read_partners(course.path(PARTNERS_FILE)),
                             similitud.read_dismissals(course.path(DISMISSALS_FILE)))


def build(course: Course, threshold: Optional[float] = None) -> str:
    """Write informe/ (index.html, similitud.csv, partes.csv, pares/); return index.html's path."""
    start = time.time()
    settings = comparison_settings(course, threshold)
    class_results = read_class(course)
    students = [f["student_id"] for f in class_results.grade_rows] or course.students()
    res = compare_class(course, [s for s in students if s not in class_results.failures], settings)
    folder = course.path(DIRNAME)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(os.path.join(folder, "pares"))
    links = {}
    for n, m in enumerate(res.flagged(), 1):
        name = "pares/{:04d}.html".format(n)
        with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
            fh.write(pair_page(course, res, m))
        links[id(m)] = name
    write_similarity_csv(os.path.join(folder, "similitud.csv"), res)
    write_parts_csv(os.path.join(folder, "partes.csv"), class_results)
    body = ["<h1>Informe del curso: {}</h1>".format(esc(course.assignment)),
            "<p class=\"muted\">Generado el {} a partir de grades.csv, el gradebook y las entregas. Solo para el "
            "equipo docente: no se publica. Tablas: <a href=\"similitud.csv\">similitud.csv</a>, "
            "<a href=\"partes.csv\">partes.csv</a>.</p>".format(esc(time.strftime("%Y-%m-%d %H:%M"))),
            "<p><a href=\"#similitud\">Ir a las entregas que parecen copiadas</a>{}</p>".format(
                " &middot; <a href=\"#revision\">Ir a las partes marcadas por la revisión del código</a>"
                if flagged_rows(class_results.grade_rows) else ""),
            class_section(course, class_results), revision_section(course, class_results),
            similarity_section(course, res, links),
            "<p class=\"muted\">Informe generado en {:.1f} s.</p>".format(time.time() - start)]
    index = os.path.join(folder, "index.html")
    with open(index, "w", encoding="utf-8") as fh:
        fh.write(page("Informe del curso", "\n".join(body)))
    return index


def build_safely(course: Course, say=print) -> Optional[str]:
    """``build`` after grading: a failure prints a Spanish warning and never touches the grades."""
    try:
        path = build(course)
    except Exception as exc:  # noqa: BLE001 - the report must never fail grading
        say("aviso: no se pudo generar el informe del curso ({}: {}); las notas no cambian. "
            "Vuelva a intentarlo con `make informe`.".format(type(exc).__name__, exc))
        return None
    say("informe del curso: {}".format(os.path.relpath(path)))
    return path
