"""``make grade``'s collection (commands/collection.py) and ``make devolver``'s Moodle folders
read the plan the collector saved when nbgrader zip_collect ran, not the extracted folder as it
is later; without a saved plan (or with a malformed one) they recompute it and say so."""
import os
import shutil

import pytest

from tests.support.fake_course import GOOD, nb_text, student_notebook, write_zip

from tarea2_grader.commands import collection
from tarea2_grader.commands import devolver
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import collect

ANA = "Ana Soto_3001_assignsubmission_file_"
BRUNO = "Bruno Rojas_3002_assignsubmission_file_"
NOTES = {"3001": ["notebook entregado como 'Copia de tarea2.ipynb'"],
         "3002": ["envió 2 notebooks; se corrigió 'tarea2.ipynb' (ignorados: borrador.ipynb)"]}
FOLDERS = {"3001": ANA, "3002": BRUNO}


@pytest.fixture(scope="module")
def graded(fake_course_factory):
    """A two-student Moodle download graded once by pipeline.grade (what ``make grade`` runs)."""
    course = fake_course_factory("plan_guardado")
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    good = nb_text(student_notebook(rel, GOOD))
    write_zip(os.path.join(course.archive_dir, "entregas.zip"), {
        ANA + "/Copia de tarea2.ipynb": good,
        BRUNO + "/tarea2.ipynb": good,
        BRUNO + "/borrador.ipynb": nb_text(student_notebook(rel, {})),
    })
    rows = pipeline.grade(course, quiet=True)
    return course, {r.student: r for r in rows}


def change_the_download(course):
    """After the collection: a better-named notebook for 3001 and a new student 3009."""
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    for name in (ANA + "/tarea2.ipynb", "Zoe Paz_3009_assignsubmission_file_/tarea2.ipynb"):
        path = os.path.join(course.extracted_dir, "entregas", *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(nb_text(student_notebook(rel, GOOD)))


@pytest.mark.slow
def test_the_collection_saves_its_plan_and_the_rows_take_their_notes_from_it(graded):
    course, rows = graded
    plan = collect.read_plan(course.extracted_dir)
    assert sorted(plan.students) == ["3001", "3002"]
    assert plan.students["3001"].name_of(plan.students["3001"].chosen) == "Copia de tarea2.ipynb"
    assert plan.students["3002"].skipped() == [os.path.join(course.extracted_dir, "entregas", BRUNO, "borrador.ipynb")]
    assert collection.collection_notes(course) == NOTES
    for sid, notes in NOTES.items():
        assert notes[0] in rows[sid].observations


@pytest.mark.slow
def test_notes_and_devolver_follow_the_saved_plan_when_the_folder_changes(graded, capsys):
    course, _ = graded
    change_the_download(course)
    recomputed = collect.plan_collection(course.extracted_dir, collect.DEFAULT_PATTERNS, "tarea2.ipynb")
    assert "3009" in recomputed.students and not recomputed.students["3001"].chosen.endswith("Copia de tarea2.ipynb")
    assert collection.collection_notes(course) == NOTES
    assert devolver.moodle_folders(course) == FOLDERS
    shutil.rmtree(course.extracted_dir)  # the plan alone is enough for make devolver
    assert devolver.moodle_folders(course) == FOLDERS
    assert "aviso" not in capsys.readouterr().out


@pytest.mark.slow
def test_without_a_saved_plan_it_is_recomputed_and_said(fake_course_factory, capsys):
    course = fake_course_factory("sin_plan")
    collect_one_zip(course)
    os.remove(collect.plan_path(course.extracted_dir))
    change_the_download(course)
    notes = collection.collection_notes(course)
    assert "3009" in notes and notes["3001"] == ["envió 2 notebooks; se corrigió 'tarea2.ipynb' "
                                                 "(ignorados: Copia de tarea2.ipynb)"]
    assert "no hay plan de recolección guardado" in capsys.readouterr().out


def collect_one_zip(course):
    """The collection step of make grade on a one-student download; returns its notes."""
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    write_zip(os.path.join(course.archive_dir, "entregas.zip"),
              {ANA + "/Copia de tarea2.ipynb": nb_text(student_notebook(rel, GOOD))})
    return collection.collect_archives(course)


@pytest.mark.slow
def test_a_malformed_saved_plan_is_ignored_with_a_notice(fake_course_factory, capsys):
    course = fake_course_factory("plan_roto")
    assert collect_one_zip(course) == {"3001": NOTES["3001"]}
    with open(collect.plan_path(course.extracted_dir), "w", encoding="utf-8") as fh:
        fh.write('{"version": 1, "students": {"3001": ')
    assert collection.collection_notes(course) == {"3001": NOTES["3001"]}
    assert devolver.moodle_folders(course) == {"3001": ANA}
    out = capsys.readouterr().out
    assert "plan_de_recoleccion.json está mal formado" in out and "se recalcula" in out


@pytest.mark.slow
def test_a_collection_that_collects_nothing_leaves_no_former_plan(fake_course_factory, capsys):
    course = fake_course_factory("plan_anterior")
    former = os.path.join(course.extracted_dir, ANA, "x.ipynb")
    os.makedirs(os.path.dirname(collect.plan_path(course.extracted_dir)))
    collect.save_plan(collect.CollectionPlan({"3001": collect.StudentFiles("3001", [former], former)}),
                      course.extracted_dir)
    write_zip(os.path.join(course.archive_dir, "entregas.zip"), {ANA + "/informe.pdf": "%PDF"})
    assert collection.collect_archives(course) == {}  # the extractor takes no pdf: nothing is collected
    assert not os.path.exists(collect.plan_path(course.extracted_dir))
    assert devolver.moodle_folders(course) == {} and "aviso" not in capsys.readouterr().out
