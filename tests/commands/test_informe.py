"""``make informe``: the instructor's page, built from a real graded demo course.

The demo's examples (examples/) plus two students: 2001 answers with the alternative solution,
2002 hands in the typical cells but copies 2001's RandomDataset with renamed variables,
reordered statements and new comments.  Both cells carry a string with a script and an image
with an event handler: the page must show it as text and run nothing.
"""
import contextlib
import csv
import io
import os
import shutil

import nbformat
import pytest

from tarea2_grader import __main__ as cli
from tools import examples
from tarea2_grader.commands import informe
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import grade_table

from tests.support.disguises import DISGUISES
from tests.support.repo import load_submissions

pytestmark = pytest.mark.slow

WRONG, ALT = load_submissions("wrong", "informe"), load_submissions("alt_correct", "informe")

HOSTILE = 'nota = "<script>window.PWNED=1</script><img src=x onerror=\\"window.PWNED=2\\">"\n'


def extra_students(folder):
    """Write 2001 (alternative solution) and 2002 (typical cells, 2001's dataset disguised) into folder."""
    original = ALT.CELLS["random_dataset"] + HOSTILE
    honest = {**examples.reference_answers(), **ALT.CELLS, "random_dataset": original}
    copier = {**examples.reference_answers(), **WRONG.BASE_CELLS, "random_dataset": DISGUISES["todo"](original)}
    for sid, name, answers in (("2001", "Hugo Lagos", honest), ("2002", "Ines Mora", copier)):
        examples.write(os.path.join(folder, examples.folder(name, sid), "tarea2.ipynb"),
                       nbformat.writes(examples.fill(answers)) + "\n")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo course with the two extra students, graded by pipeline.grade, then `informe` run by the CLI."""
    base = tmp_path_factory.mktemp("informe")
    entregas = str(base / "entregas")
    shutil.copytree(examples.EXAMPLES, entregas)
    extra_students(entregas)
    course = cli.prepare_demo_course(str(base / "curso"), entregas)
    pipeline.grade(course, autograde_args=cli.autograde_args(cli.DEMO_CELL_TIMEOUT), quiet=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["informe", "--course", course.root])
    return course, status, out.getvalue()


def rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_command_writes_the_page_and_its_tables(demo):
    course, status, out = demo
    assert status == 0
    assert "informe del curso: " in out and out.strip().endswith(os.path.join("informe", "index.html"))
    text = open(course.path("informe", "index.html"), encoding="utf-8").read()
    for heading in ("Cómo le fue al curso", "Errores diagnosticados más frecuentes", "Alumnos sin corregir",
                    "Puntos pendientes de corrección manual", "Tiempo de corrección por alumno",
                    "A quién mirar"):
        assert heading in text
    assert "1007" in text and "no es un notebook válido" in text   # the corrupt file: not graded, and why
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text  # offline
    assert text.count('src="data:image/png;base64,') == 3


def test_parts_csv_matches_grades_csv(demo):
    course, _status, _out = demo
    grades = [r for r in rows(course.path("grades.csv")) if r["student_id"] != "1007"]
    parts = {r["parte"]: r for r in rows(course.path("informe", "partes.csv"))}
    maxima = grade_table.part_maxima(grade_table.grade_cells(course.source_nb))
    assert list(parts) == list(maxima)
    values = [float(r["parte_3a"]) for r in grades]
    assert float(parts["3a"]["media"]) == pytest.approx(sum(values) / len(values), abs=1e-3)
    assert float(parts["3a"]["fraccion_completo"]) == pytest.approx(
        sum(v == maxima["3a"] for v in values) / len(values), abs=1e-3)


def test_the_disguised_copy_is_flagged_and_honest_answers_are_not(demo):
    course, _status, _out = demo
    found = rows(course.path("informe", "similitud.csv"))
    flagged = {(r["alumno_a"], r["alumno_b"], r["celda"]) for r in found if float(r["similitud"]) >= 0.5}
    assert ("2001", "2002", "random_dataset") in flagged
    # the alternative solution (2001) against the reference-built students: no code cell flagged; 1004
    # (the demo's Colab student) hands in the same alternative cells, so that pair is a true copy
    assert not [f for f in flagged if "2001" in f[:2] and "1004" not in f[:2] and f[2] != "random_dataset"
                and not f[2].endswith("_md")]
    assert ("1004", "2001", "derivadas_codigo") in flagged
    # the demo's students built from the reference form the expected cluster (their derivations are the key's)
    assert {("1001", "1005", "derivadas_md"), ("1001", "1006", "ultima_capa_md")} <= flagged


def test_hints_are_counted_with_their_students(demo):
    course, _status, _out = demo
    text = open(course.path("informe", "index.html"), encoding="utf-8").read()
    assert "suma sobre el batch: la pérdida es el promedio" in text or "parece que sumaste sobre el batch" in text
    clase = informe.read_class(course)
    assert clase.hints and all(who for who in clase.hints.values())
    assert any("1003" in who for who in clase.hints.values())
    assert "1001" not in {s for who in clase.hints.values() for s in who}  # correct code never gets one
    assert set(clase.times) >= {"1001", "1003", "2001", "2002"}


def test_a_failing_report_only_warns_and_leaves_the_grades(demo, monkeypatch, capsys):
    course, _status, _out = demo
    before = open(course.path("grades.csv"), "rb").read()

    def broken(*_a, **_k):
        raise RuntimeError("disco lleno")

    monkeypatch.setattr(informe, "read_class", broken)
    assert informe.build_safely(course) is None
    assert "aviso: no se pudo generar el informe del curso (RuntimeError: disco lleno)" in capsys.readouterr().out
    assert open(course.path("grades.csv"), "rb").read() == before
    # through `grade`, as make grade runs it: the command still succeeds
    monkeypatch.setattr(pipeline, "grade", lambda *a, **k: [])
    assert cli.main(["grade", "--course", course.root]) == 0
    assert "aviso: no se pudo generar el informe" in capsys.readouterr().out


def test_feedback_never_links_to_the_report(demo):
    course, _status, _out = demo
    for student in ("1001", "2002"):
        assert "informe" not in open(course.feedback_page(student), encoding="utf-8").read().lower().replace(
            "informe del", "")


def test_the_page_renders_and_no_student_script_runs(demo, page):
    course, _status, _out = demo
    page.goto("file://" + course.path("informe", "index.html"))
    images = page.locator("img")
    assert images.count() == 3
    for i in range(3):
        assert page.evaluate("(img) => img.complete && img.naturalWidth > 100", images.nth(i).element_handle())
    assert page.locator("table").count() >= 6
    pairs = [a.get_attribute("href") for a in page.locator("a", has_text="ver lado a lado").all()]
    assert pairs
    target = None
    for href in pairs:
        text = open(course.path("informe", href), encoding="utf-8").read()
        if "random_dataset" in text and "2002" in text:
            target = href
    assert target
    page.goto("file://" + course.path("informe", target))
    assert page.evaluate("() => window.PWNED === undefined")
    panes = page.locator("pre")
    assert panes.count() == 2
    both = panes.nth(0).inner_text() + panes.nth(1).inner_text()
    assert both.count("<script>window.PWNED=1</script>") == 2
    assert page.locator("pre mark").count() > 2
    assert page.locator("script").count() == 0 and page.locator("pre img").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.PWNED === undefined")
