"""Back through the LMS: feedback files and grades in the formats Moodle imports.

``python -m tarea2_grader devolver`` (``make devolver``) reads ``feedback/``, ``grades.csv`` and
the folders of the bulk download that ``make grade`` extracted, and writes in ``devolucion/``:

* ``retroalimentacion_moodle.zip``: one folder per student, named exactly as in Moodle's bulk
  download (``<Nombre Apellido>_<id>_assignsubmission_file_``), holding the feedback page.
  Moodle's "Upload multiple feedback files in a zip" splits each folder name on ``_`` and takes
  the second field as the participant id (mod/assign/feedback/file/importziplib.php,
  ``is_valid_filename_for_import``: ``fullname_participantid_plugintype_pluginname[_]``).
  Students that could not be graded get a page with the reason.
* ``calificaciones_moodle.csv``: the offline grading worksheet that "Upload grading worksheet"
  imports.  Moodle finds its columns by their header in the importing user's language (English:
  ``Identifier``, ``Grade`` and ``Last modified (grade)``, all three required) and takes the
  participant id from ``Identifier`` after the prefix ``Participant ``
  (mod/assign/feedback/offline/importgradeslib.php, ``init`` and ``next``); other columns are ignored.
"""
from __future__ import annotations

import csv
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from tarea2_grader.commands import collection
from tarea2_grader.integration import grade_table
from tarea2_grader.integration.course import Course
from tarea2_grader.integration import resumen

OUT_DIR = "devolucion"
ZIP_NAME = "retroalimentacion_moodle.zip"
CSV_NAME = "calificaciones_moodle.csv"
# Moodle's English strings: assign/recordid, core/grade, assign/lastmodifiedgrade, assign/hiddenuser.
MOODLE_COLUMNS = ("Identifier", "Full name", "Grade", "Last modified (grade)")
MOODLE_PARTICIPANT = "Participant "
MOODLE_SUFFIX = "_assignsubmission_file"


@dataclass
class HandBack:
    """What ``devolver`` wrote."""

    zip_path: str
    csv_path: str
    folders: Dict[str, str] = field(default_factory=dict)
    not_graded: List[str] = field(default_factory=list)
    pending: List[str] = field(default_factory=list)
    no_moodle_id: List[str] = field(default_factory=list)


def moodle_folder(relpath: str, student: str) -> Optional[str]:
    """The bulk download's per-student folder name (``Nombre_<id>_assignsubmission_file_``) in a
    path of the extracted download, or the same prefix of a flat ``..._assignsubmission_file_<file>``."""
    pattern = re.compile(r"^(.*?_{}{}_?)".format(re.escape(student), MOODLE_SUFFIX))
    parts = relpath.split("/")
    for i, part in enumerate(parts):
        m = pattern.match(part)
        if m:
            return part if i < len(parts) - 1 else m.group(1)
    return None


def moodle_folders(course: Course) -> Dict[str, str]:
    """{student: folder name of the bulk download} for the students the collector found (from the
    plan it saved, so the extracted folder may have changed or gone since)."""
    plan, _ = collection.collection_plan(course)
    folders: Dict[str, str] = {}
    if plan is None:
        return folders
    for sid, entry in plan.students.items():
        rel = os.path.relpath(entry.chosen, course.extracted_dir).replace(os.sep, "/")
        name = moodle_folder(rel, sid)
        if name:
            folders[sid] = name
    return folders


def full_name(folder: str, student: str) -> str:
    """The student's name in a Moodle folder name ('' when there is none)."""
    suffix = "_{}{}".format(student, MOODLE_SUFFIX)
    return folder.split(suffix)[0] if suffix in folder else ""


def read_grades(course: Course) -> List[dict]:
    """The rows of the course's grades.csv."""
    path = course.path("grades.csv")
    if not os.path.exists(path):
        raise FileNotFoundError("no existe {}: corre primero `make grade`".format(path))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:  # an id that looked like a formula was written with a leading apostrophe
        row["student_id"] = grade_table.csv_id(row.get("student_id") or "")
    return rows


def feedback_files(course: Course, student: str) -> List[str]:
    """The files nbgrader generate_feedback wrote for a student."""
    folder = course.feedback_dir(student)
    found = []
    for root, _dirs, files in os.walk(folder):
        found += [os.path.join(root, f) for f in sorted(files)]
    return sorted(found)


def not_graded_page(course: Course, student: str) -> str:
    """The feedback page of a student who could not be graded: the summary with the reason."""
    summary = resumen.student_summary(course, student)
    if not summary.failure:
        summary.failure = "no se generó la retroalimentación de esta entrega; consulta al equipo docente"
    return resumen.standalone_page(summary, "{}: retroalimentación".format(course.notebook))


def write_zip(course: Course, rows: List[dict], folders: Dict[str, str], path: str,
              result: HandBack) -> None:
    """The feedback zip: <Moodle folder>/<feedback files> for every student of grades.csv."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for row in rows:
            sid = row["student_id"]
            folder = folders.get(sid, sid)
            files = feedback_files(course, sid)
            if files:
                base = course.feedback_dir(sid)
                for f in files:
                    zf.write(f, folder + "/" + os.path.relpath(f, base).replace(os.sep, "/"))
            else:
                result.not_graded.append(sid)
                zf.writestr(folder + "/" + course.notebook + ".html", not_graded_page(course, sid))


def write_worksheet(rows: List[dict], folders: Dict[str, str], path: str, result: HandBack) -> None:
    """Moodle's offline grading worksheet: one row per student with a Moodle participant id."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")  # newer than any grade already in Moodle
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(MOODLE_COLUMNS)
        for row in rows:
            sid = row["student_id"]
            if not sid.isdigit():
                result.no_moodle_id.append(sid)
                continue
            writer.writerow([MOODLE_PARTICIPANT + sid, grade_table.csv_text(full_name(folders.get(sid, ""), sid)),
                             row["total"], stamp])
            if float(row.get("pendiente_manual") or 0) > 0:
                result.pending.append(sid)


class HandBackRefused(RuntimeError):
    """Nothing may be handed back yet (the message, in Spanish, says why)."""


def refuse_ungraded(rows: List[dict]) -> None:
    """Raise :class:`HandBackRefused` while a student is ungraded by a failure of the grader: their blank
    grade would go to the LMS as if it were the grade."""
    ungraded = [r["student_id"] for r in rows if (r.get("observaciones") or "").startswith(grade_table.UNGRADED_PREFIX)]
    if ungraded:
        raise HandBackRefused("devolver: no se devuelve nada mientras haya alumnos sin corregir por una falla del "
                        "corrector ({}: {}). Vuelve a ejecutar `make grade` (corrige solo a ellos) y luego "
                        "`make devolver`.".format(len(ungraded), ", ".join(ungraded)))


def hand_back(course: Course, out_dir: Optional[str] = None) -> HandBack:
    """Write the Moodle feedback zip and grading worksheet of a graded course (refused while a
    student is ungraded by a failure of the grader)."""
    rows = read_grades(course)
    refuse_ungraded(rows)
    out = out_dir or course.path(OUT_DIR)
    os.makedirs(out, exist_ok=True)
    result = HandBack(os.path.join(out, ZIP_NAME), os.path.join(out, CSV_NAME), moodle_folders(course))
    write_zip(course, rows, result.folders, result.zip_path, result)
    write_worksheet(rows, result.folders, result.csv_path, result)
    return result


def report_lines(course: Course, result: HandBack) -> List[str]:
    """What the command prints (Spanish)."""
    rel = lambda p: os.path.relpath(p)  # noqa: E731
    lines = ["retroalimentación para Moodle: " + rel(result.zip_path),
             "   (Moodle: la tarea → Ver todas las entregas → Acción de calificación: "
             "«Subir múltiples archivos de retroalimentación en un zip»)",
             "calificaciones para Moodle:   " + rel(result.csv_path),
             "   (Acción de calificación: «Subir hoja de calificaciones»; encabezados en inglés)"]
    if result.not_graded:
        lines.append("sin corregir (su retroalimentación explica el motivo): " + ", ".join(result.not_graded))
    missing = [s for s in (r["student_id"] for r in read_grades(course)) if s not in result.folders]
    if missing:
        lines.append("aviso: sin carpeta de Moodle en la descarga (van en una carpeta con su id, que Moodle "
                     "no reconoce): " + ", ".join(missing))
    if result.no_moodle_id:
        lines.append("aviso: ids que no son números de participante de Moodle, fuera de la hoja: "
                     + ", ".join(result.no_moodle_id))
    if result.pending:
        lines.append("aviso: {} alumno(s) con puntos por corregir a mano; su nota no los incluye todavía "
                     "(corrige en formgrader, `python -m tarea2_grader notas` y vuelve a devolver)"
                     .format(len(result.pending)))
    return lines
