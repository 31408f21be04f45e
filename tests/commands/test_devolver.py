"""``python -m tarea2_grader devolver`` on a class graded from a Moodle-style bulk download
(conftest's ``graded_class``, the same grading run test_resumen.py reads).

The zip is checked against the rule Moodle's "upload multiple feedback files in a zip" applies
to each path (mod/assign/feedback/file/importziplib.php): a path part split on "_" into at most
five fields is ``fullname_participantid_plugintype_pluginname[_rest]``, the participant id being
numeric.  The worksheet is checked against the offline grading import
(mod/assign/feedback/offline/importgradeslib.php): the columns ``Identifier``, ``Grade`` and
``Last modified (grade)``, the id after ``Participant ``.
"""
import contextlib
import csv
import io
import os
import subprocess
import sys
import zipfile
from datetime import datetime

import pytest

from tests.support.repo import REPO

from tarea2_grader import __main__ as cli

STUDENTS = {"1001": ("Ana Pérez", "5"), "1003": ("Carla Soto", "2"), "1004": ("Diego Mora", "5"),
            "1005": ("Eva Ruiz", "5"), "1006": ("Fabián Gil", "0")}


def moodle_participant(path):
    """(participant id, plugin type, plugin name) Moodle reads from a path in the feedback zip."""
    for part in path.split("/"):
        info = part.split("_", 4)
        if len(info) >= 4 and info[1].isdigit():
            return info[1], info[2], info[3]
    return None


def run_devolver(course):
    """The command as an instructor runs it; returns its output."""
    run = subprocess.run([sys.executable, "-m", "tarea2_grader", "devolver", "--course", course.root],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def devolver_output(graded_class):
    """One run of the command on the graded class: both tests read what it wrote."""
    return run_devolver(graded_class)


@pytest.mark.slow
def test_feedback_zip_has_one_moodle_folder_per_student(graded_class, devolver_output):
    out = devolver_output
    path = os.path.join(graded_class.root, "devolucion", "retroalimentacion_moodle.zip")
    assert os.path.relpath(path) in out or path in out
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        by_student = {}
        for name in names:
            sid, ptype, pname = moodle_participant(name)
            assert (ptype, pname) == ("assignsubmission", "file")
            by_student.setdefault(sid, []).append(name)
        assert sorted(by_student) == sorted(STUDENTS)
        for sid, (fullname, _) in STUDENTS.items():
            assert len(by_student[sid]) == 1 and by_student[sid][0].startswith(fullname + "_" + sid + "_")
        # the folder names of the bulk download, kept exactly (Moodle 4.1 style without the final "_")
        assert "Diego Mora_1004_assignsubmission_file/tarea2.html" in names
        assert "Eva Ruiz_1005_assignsubmission_file_/tarea2.html" in names
        graded = zf.read("Carla Soto_1003_assignsubmission_file_/tarea2.html")
        with open(os.path.join(graded_class.root, "feedback", "1003", "tarea2", "tarea2.html"), "rb") as fh:
            assert graded == fh.read()
        unreadable = zf.read("Fabián Gil_1006_assignsubmission_file_/tarea2.html").decode("utf-8")
    assert "No se pudo corregir tu entrega" in unreadable and "no es un notebook" in unreadable
    assert "sin corregir" in out and "1006" in out


@pytest.mark.slow
def test_grading_worksheet_in_moodle_import_format(graded_class, devolver_output):
    path = os.path.join(graded_class.root, "devolucion", "calificaciones_moodle.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {"Identifier", "Grade", "Last modified (grade)"} <= set(rows[0])
    got = {r["Identifier"][len("Participant "):]: (r["Full name"], r["Grade"]) for r in rows}
    assert got == STUDENTS
    assert all(r["Identifier"].startswith("Participant ") for r in rows)
    for r in rows:
        datetime.strptime(r["Last modified (grade)"], "%Y-%m-%d %H:%M:%S")
    with open(os.path.join(graded_class.root, "grades.csv"), newline="", encoding="utf-8") as fh:
        plain = {r["student_id"]: r["total"] for r in csv.DictReader(fh)}
    assert plain == {sid: grade for sid, (_, grade) in STUDENTS.items()}


def test_devolver_without_grades_says_what_to_run(tmp_path):
    """The same command through the CLI's entry point in this process (the run above is the subprocess)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["devolver", "--course", str(tmp_path)])
    assert status == 2 and "make grade" in err.getvalue()
