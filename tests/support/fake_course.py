"""The fake course: a tiny throw-away nbgrader course built in a temporary folder, and its students.

A 3-answer course for pipeline tests, graded by the same trusted runner as the real one, with its
own hidden tests (``pruebas_curso.py`` at its root, named in its config); helpers build student
notebooks from its release and LMS-style zips from them.  ``GOOD`` answers every cell right.
"""
import os
import zipfile

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from tarea2_grader.commands import pipeline
from tarea2_grader.integration.course import Course
from tools.examples import edit_cells

FAKE_CONFIG = '''c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "curso-de-prueba"
c.CourseDirectory.root = "."
c.CourseDirectory.assignment_id = "tarea2"
c.ClearSolutions.code_stub = {"python": "# TU CÓDIGO AQUÍ\\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "TU RESPUESTA AQUÍ"
c.OverwriteCells.add_missing_cells = True
c.ZipCollectApp.collector_plugin = "tarea2_grader.integration.collect.LmsCollectorPlugin"
c.Autograde.autograde_preprocessors = [
    "tarea2_grader.integration.nbplugin.TrustedExecute", "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
    "tarea2_grader.integration.cellmeta.CachedCheckCellMetadata"]
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput", "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec", "nbgrader.preprocessors.OverwriteCells",
    "tarea2_grader.integration.cellmeta.CachedCheckCellMetadata"]
c.TrustedExecute.tests_module = "pruebas_curso"
c.TrustedExecute.cell_timeout = 4
c.TrustedExecute.test_timeout = 4
'''

# The fake course's hidden tests: call a student function on drawn arguments, compare here.  They
# use the engine's registry as Tarea 2 does, with nothing of Tarea 2 (the engine is course-agnostic).
FAKE_TESTS = '''"""Hidden tests of the fake course (trusted side)."""
import random

from tarea2_grader.engine.registry import Contexto, Incorrecto, Registro, para_la_sonda  # noqa: F401

SONDA = """
def llamar(ns, datos, ayudas):
    if datos["funcion"] not in ns:
        return {"falta": datos["funcion"]}
    try:
        return {"ok": ns[datos["funcion"]](*datos["args"])}
    except Exception as e:
        return {"error": type(e).__name__}
"""


NONZERO = [v for v in range(-9, 10) if v]  # with b = 0, a - b would pass as a + b


def _plan(funcion, esperado):
    def plan(g, ctx):
        while True:  # a nonzero answer: a function that returns 0 never passes by chance (3 + -3)
            args = [g.choice(NONZERO) for _ in range(esperado.__code__.co_argcount)]
            if esperado(*args) != 0:
                return {"funcion": funcion, "args": args, "__esperado": esperado(*args)}
    return plan


def _juzgar(datos, obs):
    if "ok" not in obs or obs["ok"] != datos["__esperado"]:
        raise Incorrecto("{} no da lo esperado".format(datos["funcion"]))


REGISTRO = Registro(lambda: SONDA, generador=lambda semilla, nombre: random.Random("{}:{}".format(semilla, nombre)))
REGISTRO.agregar("test_cuadrado", "llamar", _plan("cuadrado", lambda x: x * x), _juzgar)
REGISTRO.agregar("test_suma", "llamar", _plan("suma", lambda a, b: a + b), _juzgar)
PRUEBAS = REGISTRO.pruebas
plan_de = REGISTRO.plan_de
veredicto = REGISTRO.veredicto
fuente_sonda = REGISTRO.fuente_sonda
fuente_ayudas = REGISTRO.fuente_ayudas
'''


def nbg(grade_id, grade=False, solution=False, locked=False, points=0):
    """nbgrader cell metadata (schema 3)."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": 3, "solution": solution}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def fake_source_notebook():
    """The master notebook of the fake course: two parts, three answers."""
    cells = [
        new_markdown_cell("# Tarea de prueba\n\n## Parte 1: cuadrados"),
        new_code_cell("import math\nBASE = 3", metadata=nbg("dado", locked=True)),
        new_code_cell("def cuadrado(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                      metadata=nbg("cuadrado", solution=True)),
        new_code_cell("assert cuadrado(BASE) == 9\n### BEGIN HIDDEN TESTS\nevaluar(\"test_cuadrado\")\n"
                      "### END HIDDEN TESTS", metadata=nbg("test_cuadrado", grade=True, locked=True, points=2)),
        new_markdown_cell("Explica por qué.", metadata={}),
        new_markdown_cell("### BEGIN SOLUTION\nPorque x·x es el cuadrado.\n### END SOLUTION",
                          metadata=nbg("explica_md", grade=True, solution=True, points=1)),
        new_markdown_cell("## Parte 2: sumas"),
        new_code_cell("def suma(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
                      metadata=nbg("suma", solution=True)),
        new_code_cell("assert suma(1, 2) == 3\n### BEGIN HIDDEN TESTS\nevaluar(\"test_suma\")\n"
                      "### END HIDDEN TESTS", metadata=nbg("test_suma", grade=True, locked=True, points=3)),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


def build_fake_course(root):
    """Write a fake course at ``root`` and generate its release; return a Course."""
    os.makedirs(os.path.join(root, "source", "tarea2"), exist_ok=True)
    with open(os.path.join(root, "nbgrader_config.py"), "w") as fh:
        fh.write(FAKE_CONFIG)
    with open(os.path.join(root, "pruebas_curso.py"), "w") as fh:
        fh.write(FAKE_TESTS)
    nbformat.write(fake_source_notebook(), os.path.join(root, "source", "tarea2", "tarea2.ipynb"))
    course = Course(str(root))
    pipeline.release(course)
    return course


def student_notebook(release_path, answers=None, drop_meta=(), delete=(), duplicate=()):
    """A student's notebook: the release with answers filled in by grade_id (see examples.edit_cells)."""
    return edit_cells(nbformat.read(release_path, as_version=4), answers, drop_meta, delete, duplicate)


def write_zip(path, files):
    """A zip with {name inside the zip: text or bytes}."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)


# Right answers to every cell of the fake course (written unlike the solution, as a student would).
GOOD = {"cuadrado": "def cuadrado(x):\n    return x ** 2",
        "suma": "def suma(a, b):\n    return b + a",
        "explica_md": "Porque multiplicar x por sí mismo es elevar al cuadrado."}


def nb_text(nb):
    """A notebook as saved JSON."""
    return nbformat.writes(nb)


def auto_points(course, student):
    """Autograded points of a student, from the gradebook (None cells skipped)."""
    with Gradebook("sqlite:///" + os.path.join(course.root, "gradebook.db"), "curso-de-prueba") as gb:
        nb = gb.find_submission_notebook("tarea2", "tarea2", student)
        return {g.name: g.auto_score for g in nb.grades}
