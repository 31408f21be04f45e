"""The fake class graded once by ``pipeline.grade`` (conftest's ``graded_class``), read by the
summary, feedback-page, Moodle-return and browser tests.

Five students in a Moodle bulk download: perfect (with a hostile file name), a subtraction
mistake, two perfect ones in other Moodle layouts, and a file that is not a notebook.  The fake
course gets the repository's feedback configuration and a hint on the subtraction mistake.
"""
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course

from tests.support.fake_course import GOOD, nb_text, student_notebook, write_zip
from tests.support.repo import REPO

# The fake hidden tests, with a typical-mistake hint when suma subtracts (as hidden.exigir adds one).
HINTED_JUDGE = '''def _juzgar(datos, obs):
    if "ok" not in obs or obs["ok"] != datos["__esperado"]:
        texto = "{} no da lo esperado".format(datos["funcion"])
        args = datos["args"]
        if datos["funcion"] == "suma" and obs.get("ok") == args[0] - args[1]:
            texto += "\\nPista: restaste en vez de sumar"
        raise Incorrecto(texto)
'''
EVIL_NAME = "<img src=x onerror=alert(1)>.ipynb"


def use_real_feedback_config(course):
    """Give the fake course the repository's GenerateFeedback preprocessors and exporter, and HTML sanitizing."""
    real = nbgrader_run.load_config(Course(REPO))
    with open(course.path("nbgrader_config.py"), "a") as fh:
        fh.write("\nc.GenerateFeedback.preprocessors = {!r}\n".format(list(real.GenerateFeedback.preprocessors)))
        fh.write("c.GenerateFeedback.exporter_class = {!r}\n".format(real.GenerateFeedback.exporter_class))
        fh.write("c.HTMLExporter.sanitize_html = {!r}\n".format(real.HTMLExporter.sanitize_html))


def add_hint_to_fake_tests(course):
    """Make the fake course's suma test name the subtraction mistake, as a Pista line."""
    path = course.path("pruebas_curso.py")
    text = open(path).read()
    start = text.index("def _juzgar(")
    end = text.index("\n\n\n", start)
    with open(path, "w") as fh:
        fh.write(text[:start] + HINTED_JUDGE + text[end:])


# A Moodle bulk download: {folder or flat prefix: notebook text}; test_devolver.py uses it too.
def moodle_download(rel):
    """The class's bulk download, Moodle style (folders before and since Moodle 4.1, one flat file)."""
    wrong = dict(GOOD, suma="def suma(a, b):\n    return a - b")
    return {
        "Ana Pérez_1001_assignsubmission_file_/" + EVIL_NAME: nb_text(student_notebook(rel, GOOD)),
        "Carla Soto_1003_assignsubmission_file_/tarea2.ipynb": nb_text(student_notebook(rel, wrong)),
        "Diego Mora_1004_assignsubmission_file/tarea2.ipynb": nb_text(student_notebook(rel, GOOD)),
        "Eva Ruiz_1005_assignsubmission_file_tarea2.ipynb": nb_text(student_notebook(rel, GOOD)),
        "Fabián Gil_1006_assignsubmission_file_/tarea2.ipynb": "esto no es JSON {",
    }


def grade_class(course):
    """The class graded once by pipeline.grade (conftest's ``graded_class``): perfect (file renamed),
    a subtraction mistake, two perfect ones in other Moodle layouts, and a file that is not a notebook."""
    use_real_feedback_config(course)
    add_hint_to_fake_tests(course)
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    write_zip(course.path("downloaded", "tarea2", "archive", "moodle.zip"), moodle_download(rel))
    pipeline.grade(course, student_timeout=120, quiet=True)
    return course
