"""Hostile students through the production pipeline: every attack of ``tests/support/attacks/attacks.py``.

One temporary course (source/, release/ and config copied) gets every attack as a
student (``aNN_<name>``, graded first), then an honest student with the reference solution
(``z_correcto``) and the untouched release (``z_vacio``), all graded by one ``pipeline.grade``
call, the path ``make grade`` takes (one nbgrader run, one warm sandbox reused student after
student).  Before grading, the course and the repository's grader, source/, release/ and config
are hashed; after grading, the tests check that

* every attack earns 0 autograded points (its honest answers are the release stubs);
* the honest student still earns all the autograded points, the untouched release 0, and
  grades.csv lists everyone;
* no file of the repository or the course changed outside what grading writes, no file named
  ``PWNED_*`` exists under /tmp, /work or /root, and no process an attack started is alive;
* nothing one student left in the sandbox reached a later student.

The course runs with a small memory cap (512 MiB per student process) so that the memory
attacks cannot touch this machine's real memory.
"""
import csv
import hashlib
import re
import importlib.util
import json
import os
import shutil
import time

import nbformat
import psutil
import pytest
from nbgrader.api import Gradebook, MissingEntry

from tools import examples
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.engine import sandbox
from tarea2_grader.parallel import workers

from tests.support import course_facts
from tests.support.repo import ATTACKS_PY, REPO, SUBMISSIONS

pytestmark = pytest.mark.slow

HONEST, EMPTY = "z_correcto", "z_vacio"
AUTOGRADED_MAX = course_facts.autograded_points()
MANUAL_PENDING = course_facts.manual_points()
MARKER = "PWNED"
WATCHED = ("/tmp", "/work", "/root")
REPO_WATCHED = ("tarea2_grader", "source", "release", "nbgrader_config.py")
# What grading may write in the course folder (everything else must stay byte-identical).
GRADING_WRITES = ("autograded", "feedback", "downloaded", "submitted", "gradebook.db", "grades.csv",
                  "semillas.json", workers.CACHE_DIRNAME)
CONFIG_EXTRA = """
# test_attacks.py: a small memory cap, so that memory attacks stay far from this machine's RAM.
c.TrustedExecute.memory_mb = 512
c.TrustedExecute.cell_timeout = 30
"""


def _load_attacks():
    path = ATTACKS_PY
    spec = importlib.util.spec_from_file_location("tarea2_attacks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIBRARY = _load_attacks()
ATTACKS = LIBRARY.ATTACKS
STUDENTS = {"a{:02d}_{}".format(i, a["name"]): a for i, a in enumerate(ATTACKS, start=1)}
assert len({a["name"] for a in ATTACKS}) == len(ATTACKS), "attack names must be unique"


def _honest_classmates():
    """The honest corpus of tests/support/submissions/honest.py packed into a few students (records that answer
    different cells share one), each on top of the reference answers."""
    spec = importlib.util.spec_from_file_location("tarea2_honest", os.path.join(SUBMISSIONS, "honest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    groups = []
    for record in module.HONEST:
        group = next((g for g in groups if not set(g["cells"]) & set(record["cells"])), None)
        if group is None:
            group = {"cells": {}, "added": [], "names": []}
            groups.append(group)
        group["cells"].update(record["cells"])
        group["added"] += record.get("added", [])
        group["names"].append(record["name"])
    return {"z_honesto_{}".format(i): g for i, g in enumerate(groups, start=1)}


COLAB = _honest_classmates()


# --------------------------------------------------------------------------- snapshots


def _skip(name):
    return name == "__pycache__" or name.endswith(".pyc")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hashes(root, names=None):
    """{path relative to root: sha256} of every file under ``root`` (or under root/<names>)."""
    out = {}
    tops = [os.path.join(root, n) for n in names] if names else [root]
    for top in tops:
        if os.path.isfile(top):
            out[os.path.relpath(top, root)] = _sha256(top)
            continue
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not _skip(d)]
            for f in files:
                if not _skip(f):
                    path = os.path.join(folder, f)
                    if os.path.isfile(path) and not os.path.islink(path):
                        out[os.path.relpath(path, root)] = _sha256(path)
    return out


def marker_files():
    """Every path under /tmp, /work and /root whose name contains the attacks' marker."""
    found = []
    for top in WATCHED:
        for folder, dirs, files in os.walk(top):
            found += [os.path.join(folder, n) for n in dirs + files if MARKER in n]
    return sorted(found)


def marker_processes():
    """Live processes an attack started: a marker in the command line, or `sleep 613`."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if any(MARKER in arg for arg in cmd) or cmd[:2] == ["sleep", "613"]:
            found.append((proc.info["pid"], " ".join(cmd)[:120]))
    return found


# --------------------------------------------------------------------------- the graded course


def notebook_json(release, cells, json_edit=None):
    """The submitted notebook's JSON: release stubs, the attack's cells, then its raw edits."""
    nb = examples.edit_cells(release, answers=cells)
    data = json.loads(nbformat.writes(nb))
    if json_edit is not None:
        json_edit(data)
    return data


def honest_json(release, group):
    """An honest Colab student's notebook: reference answers, the group's cells, its added cells."""
    nb = examples.edit_cells(release, answers={**examples.reference_answers(), **group["cells"]})
    for k, (after, source) in enumerate(group["added"]):
        i = next(j for j, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after)
        added = nbformat.v4.new_code_cell(source)
        added["id"] = "propia-{}".format(k)
        nb.cells.insert(i + 1, added)
    return json.loads(nbformat.writes(nb))


def submit(course, student, data):
    path = course.submitted_nb(student)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=False)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every attacker, then the honest and the untouched student, graded by one pipeline.grade call."""
    # Some attacks call kill(-1) or fill memory: they must only ever run in the sandbox.
    assert sandbox.bwrap_works(), "bubblewrap is required: the attacks must run sandboxed"
    root = str(tmp_path_factory.mktemp("ataques"))
    shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)
    with open(os.path.join(root, "nbgrader_config.py"), "a", encoding="utf-8") as fh:
        fh.write(CONFIG_EXTRA)
    shutil.copytree(os.path.join(REPO, "release"), os.path.join(root, "release"))  # fresh: test_autograde
    course = Course(root)
    release = nbformat.read(course.path("release", "tarea2", "tarea2.ipynb"), as_version=4)
    for student, attack in STUDENTS.items():
        submit(course, student, notebook_json(release, attack["cells"], attack.get("json")))
    submit(course, HONEST, notebook_json(release, examples.reference_answers()))
    submit(course, EMPTY, notebook_json(release, {}))
    for student, group in COLAB.items():
        submit(course, student, honest_json(release, group))

    before = {"repo": hashes(REPO, REPO_WATCHED), "course": hashes(root), "markers": marker_files(),
              "processes": marker_processes()}
    start = time.monotonic()
    try:
        rows = pipeline.grade(course, quiet=True)
    except Exception as exc:  # one submission stopped everyone's grading: every test here fails
        raise AssertionError("pipeline.grade se detuvo para todo el curso ({}: {})".format(
            type(exc).__name__, str(exc)[:300])) from exc
    seconds = time.monotonic() - start
    time.sleep(1.0)  # a process that would outlive grading has had time to act
    after = {"repo": hashes(REPO, REPO_WATCHED), "course": hashes(root), "markers": marker_files(),
             "processes": marker_processes()}

    points = {}
    with Gradebook("sqlite:///" + course.path("gradebook.db"), nbgrader_run.course_id(course)) as gb:
        for student in list(STUDENTS) + [HONEST, EMPTY] + list(COLAB):
            try:
                sub = gb.find_submission_notebook("tarea2", "tarea2", student)
            except MissingEntry:
                points[student] = None
                continue
            points[student] = {g.name: g.auto_score for g in sub.grades}
    with open(course.path("grades.csv"), encoding="utf-8") as fh:
        table = {r["student_id"]: r for r in csv.DictReader(fh)}
    return {"course": course, "rows": {r.student: r for r in rows}, "points": points, "csv": table,
            "before": before, "after": after, "seconds": seconds}


def autograded_points(points):
    return sum(v for v in (points or {}).values() if v is not None)


def autograded_outputs(course, student):
    """The text of every output of a student's autograded notebook (None if it was not graded)."""
    path = course.autograded_nb(student)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        nb = json.load(fh)
    return json.dumps([c.get("outputs", []) for c in nb["cells"]], ensure_ascii=False)


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("student", [
    pytest.param(s, id=a["name"], marks=[pytest.mark.xfail(strict=True, reason=a["known_gap"])]
                 if a.get("known_gap") else []) for s, a in STUDENTS.items()])
def test_attack_earns_nothing(graded, student):
    points = graded["points"][student]
    row = graded["rows"].get(student)
    earned = {k: v for k, v in (points or {}).items() if v}
    assert autograded_points(points) == 0, "{} ganó {} ({})".format(student, earned, row and row.observations)


@pytest.mark.parametrize("name", LIBRARY.MACHINE_DERIVATIVES)
def test_a_machine_made_derivative_is_flagged_with_cell_and_line(graded, name):
    """Beyond earning 0 (above), the feedback says where: the review's cell and line, or the trap's verdict."""
    student = next(s for s, a in STUDENTS.items() if a["name"] == name)
    text = autograded_outputs(graded["course"], student)
    assert text is not None, graded["rows"][student].observations
    flagged = re.search(r"revisión: celda \d+, línea \d+: ", text)
    assert flagged, text[:2000]
    if name in LIBRARY.REVIEW_ROUTES:  # past the traps: what the values alone earned is said
        assert "sin la marca: correcto, 4 puntos" in text, text[:2000]


def test_honest_student_keeps_every_point(graded):
    points = graded["points"][HONEST]
    assert points is not None, graded["rows"][HONEST].observations
    maxima = {c.grade_id: c.points for c in grade_table.grade_cells(graded["course"].source_nb) if not c.manual}
    lost = {g: points.get(g) for g, m in maxima.items() if points.get(g) != m}
    assert not lost and autograded_points(points) == AUTOGRADED_MAX, (lost, graded["rows"][HONEST].observations)


@pytest.mark.parametrize("student", sorted(COLAB))
def test_honest_colab_classmates_keep_every_point(graded, student):
    """The honest corpus (!pip, %%time, Drive, own autograd checks, getattr on self, tqdm, matplotlib...)
    graded beside the attackers: every automatic point, no review flag."""
    points = graded["points"][student]
    assert points is not None, graded["rows"][student].observations
    assert autograded_points(points) == AUTOGRADED_MAX, ({k: v for k, v in points.items()}, COLAB[student]["names"])
    assert "revisión:" not in autograded_outputs(graded["course"], student), COLAB[student]["names"]


def test_untouched_release_gets_zero(graded):
    points = graded["points"][EMPTY]
    assert points is not None, graded["rows"][EMPTY].observations
    assert autograded_points(points) == 0


def test_grades_csv_lists_everyone_and_the_honest_total(graded):
    table = graded["csv"]
    assert set(table) == set(STUDENTS) | {HONEST, EMPTY} | set(COLAB)
    assert float(table[HONEST]["total"]) == AUTOGRADED_MAX, table[HONEST]
    assert float(table[HONEST]["pendiente_manual"]) == MANUAL_PENDING, table[HONEST]
    assert float(table[EMPTY]["total"]) == 0
    for student, attack in STUDENTS.items():
        if not attack.get("known_gap"):  # those have their own strict xfail above
            assert float(table[student]["total"]) == 0, table[student]


def test_repository_files_unchanged(graded):
    """The grader, source/, release/ and the config (a colleague saving a file meanwhile also trips this:
    the message says whether a changed file carries anything an attack writes)."""
    before, after = graded["before"]["repo"], graded["after"]["repo"]
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    payloads = (MARKER, "PRUEBAS.clear()", "autograde_preprocessors = []")
    attacked = []
    for path in changed:
        full = os.path.join(REPO, path)
        if os.path.exists(full):
            with open(full, "rb") as fh:
                text = fh.read().decode("utf-8", "replace")
            attacked += [path for p in payloads if p in text][:1]
    assert not changed, "cambiaron {} (con contenido de un ataque: {})".format(changed, attacked)


def test_course_files_unchanged_outside_what_grading_writes(graded):
    before, after = graded["before"]["course"], graded["after"]["course"]
    outside = lambda p: p.split(os.sep)[0] not in GRADING_WRITES and not p.startswith("semillas.json")
    changed = sorted(p for p in set(before) | set(after) if outside(p) and before.get(p) != after.get(p))
    assert not changed, changed
    # source/, release/ and the config in particular are byte-identical and nothing was removed
    for path, digest in before.items():
        if path.split(os.sep)[0] in ("source", "release") or path == "nbgrader_config.py":
            assert after.get(path) == digest, path


def test_other_students_files_carry_no_attack(graded):
    course = graded["course"]
    for student in (HONEST, EMPTY):
        for top in ("submitted", "autograded", "feedback"):
            folder = course.path(top, student)
            for path in hashes(folder) if os.path.isdir(folder) else {}:
                with open(os.path.join(folder, path), "rb") as fh:
                    assert MARKER.encode() not in fh.read(), os.path.join(top, student, path)


def test_no_marker_file_anywhere(graded):
    assert not graded["after"]["markers"], "{} (antes de corregir: {})".format(
        graded["after"]["markers"], graded["before"]["markers"])


def test_no_attack_process_alive(graded):
    assert not graded["after"]["processes"], graded["after"]["processes"]


def test_nothing_reaches_the_next_student(graded):
    """``buscar_lo_plantado`` runs after the attacks that plant files, IPC objects and processes."""
    texts = {s: autograded_outputs(graded["course"], s) for s in list(STUDENTS) + [HONEST]}
    finder = next(s for s, a in STUDENTS.items() if a["name"] == "buscar_lo_plantado")
    assert texts[finder] and "nada de otros alumnos" in texts[finder] or "FUGA_ENTRE_ALUMNOS" in (texts[finder] or ""), \
        "buscar_lo_plantado no llegó a correr"
    leaked = {s: t[t.index("FUGA_ENTRE_ALUMNOS"):][:400] for s, t in texts.items() if t and "FUGA_ENTRE_ALUMNOS" in t}
    assert not leaked, leaked


def test_feedback_for_every_graded_student(graded):
    """A student's answer cannot make the course's feedback step fail (for them or for anyone)."""
    course = graded["course"]
    missing = [s for s in list(STUDENTS) + [HONEST, EMPTY] if os.path.exists(course.autograded_nb(s))
               and not os.path.exists(course.path("feedback", s, "tarea2", "tarea2.html"))]
    assert not missing, missing


# A student's script running where the instructor opens the graded notebook (formgrader, the
# feedback HTML) would act with the instructor's Jupyter session.
LIVE_SCRIPT = re.compile(r"<script[^>]*>[^<]*PWNED|\son\w+\s*=\s*[\"'][^\"']*PWNED", re.I)


def test_no_student_script_in_feedback(graded):
    course = graded["course"]
    live = {}
    for student in STUDENTS:
        path = course.path("feedback", student, "tarea2", "tarea2.html")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                found = LIVE_SCRIPT.findall(fh.read())
            if found:
                live[student] = [f[:120] for f in found]
    assert not live, live
