"""The course report lists every student flagged by the static review, with the state of the
``revision`` column, and follows it when a person reviews them.

One grading run (``pipeline.grade``) of three students:

* ``2001`` and ``=2+3`` (an id written as a spreadsheet formula: grades.csv stores it behind an
  apostrophe) hand in part 1a through autograd's saved engine (support/marca.py: flagged_answers): both
  flagged, ``marcada``;
* ``2002`` hands in the untouched release: nothing flagged.

The report is built by ``python -m tarea2_grader informe``'s code.  Then the TA's flow of the README:
the score boxes of the flagged cells typed through nbgrader's Gradebook API (2001: their points back;
=2+3: 0 confirmed), and ``python -m tarea2_grader notas`` run as a command, which rewrites grades.csv
and the report: 2001 ``restaurado``, =2+3 ``revisada``.
"""
import contextlib
import csv
import io
import os
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest

from tests.support.marca import FLAGGED_TESTS, POINTS, REPO, flagged_answers, new_course, submit, type_score
from tarea2_grader import __main__ as cli
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import grade_table
from tarea2_grader.integration import nbgrader_run

pytestmark = pytest.mark.slow

RESTORED, CONFIRMED, CLEAN = "2001", "=2+3", "2002"


class SectionTables(HTMLParser):
    """The rows of the tables inside the section that starts at the ``<h2 id=...>`` asked for (up to
    the next ``<h2>``): each cell as (text, [href of every link in it])."""

    def __init__(self, section_id):
        super().__init__()
        self.section_id, self.inside, self.rows, self.cell, self.headings = section_id, False, [], None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self.inside = attrs.get("id") == self.section_id
            if self.inside:
                self.headings.append(self.getpos())
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ["", []]
        elif self.inside and tag == "a" and self.cell is not None:
            self.cell[1].append(attrs.get("href"))
        elif tag == "br" and self.cell is not None:
            self.cell[0] += "\n"

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append((self.cell[0].strip(), self.cell[1]))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data


def revision_table(course):
    """{student: {column header: (text, hrefs)}} of the report's integrity section."""
    parser = SectionTables("revision")
    with open(course.path("informe", "index.html"), encoding="utf-8") as fh:
        parser.feed(fh.read())
    assert len(parser.headings) == 1, "the report has no integrity section (h2 id=revision)"
    head, *body = parser.rows
    names = [h[0] for h in head]
    return {row[0][0]: dict(zip(names, row)) for row in body}


def csv_states(course):
    """{student: revision} as grades.csv says it (ids with the spreadsheet apostrophe undone)."""
    with open(course.path("grades.csv"), newline="", encoding="utf-8") as fh:
        return {grade_table.csv_id(r["student_id"]): r["revision"] for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course graded by pipeline.grade, then its report built by the ``informe`` command."""
    course = new_course(str(tmp_path_factory.mktemp("informe_revision")))
    submit(course, RESTORED, flagged_answers())
    submit(course, CONFIRMED, flagged_answers())
    submit(course, CLEAN, {})
    pipeline.grade(course, quiet=True)
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["informe", "--course", course.root])
    assert status == 0
    return course, revision_table(course), csv_states(course)


@pytest.fixture(scope="module")
def reviewed(graded):
    """After the TA typed the flagged cells' scores and ran ``python -m tarea2_grader notas``."""
    course, _before, _states = graded
    for grade_id in FLAGGED_TESTS:
        type_score(course, RESTORED, grade_id, POINTS[grade_id])
        type_score(course, CONFIRMED, grade_id, 0.0)
    env = nbgrader_run.nbgrader_env()
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    notas = subprocess.run([sys.executable, "-m", "tarea2_grader", "notas", "--course", course.root],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return course, notas, revision_table(course), csv_states(course)


def cells_typed(entry):
    """{grade_id: 'pendiente' or 'N puntos'} from the row's flagged-cells column (one line per cell)."""
    text = next(v[0] for k, v in entry.items() if k.startswith("celdas marcadas"))
    return dict(tuple(part.strip() for part in line.split(":", 1)) for line in text.splitlines())


def test_every_flagged_student_is_listed_as_marcada_and_nobody_else(graded):
    _course, table, states = graded
    assert states == {RESTORED: "marcada", CONFIRMED: "marcada", CLEAN: ""}
    assert {s: row["estado"][0] for s, row in table.items()} == {RESTORED: "marcada", CONFIRMED: "marcada"}
    for student in (RESTORED, CONFIRMED):
        assert cells_typed(table[student]) == {gid: "pendiente" for gid in FLAGGED_TESTS}


def test_each_flagged_student_links_to_their_own_feedback_page(graded):
    course, table, _states = graded
    folder = course.path("informe")
    for student in (RESTORED, CONFIRMED):
        hrefs = table[student]["alumno"][1]
        assert len(hrefs) == 1
        target = os.path.normpath(os.path.join(folder, unquote(hrefs[0])))
        assert target == os.path.normpath(course.feedback_page(student)) and os.path.isfile(target)
    index = open(course.path("informe", "index.html"), encoding="utf-8").read()
    assert 'href="#revision"' in index


def test_notas_rewrites_the_report_with_each_state(reviewed):
    course, notas, table, states = reviewed
    assert notas.returncode == 0, notas.stdout[-2000:] + notas.stderr[-2000:]
    assert states == {RESTORED: "restaurado", CONFIRMED: "revisada", CLEAN: ""}
    assert {s: row["estado"][0] for s, row in table.items()} == {RESTORED: "restaurado", CONFIRMED: "revisada"}
    assert cells_typed(table[RESTORED]) == {gid: "{:g} puntos".format(POINTS[gid]) for gid in FLAGGED_TESTS}
    assert cells_typed(table[CONFIRMED]) == {gid: "0 puntos" for gid in FLAGGED_TESTS}
    assert "informe del curso: " in notas.stdout
