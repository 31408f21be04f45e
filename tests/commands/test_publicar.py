"""``python -m tarea2_grader publicar`` (``make publicar``): the student folder, and leaks refused.

Every test works on a throw-away copy of the course (source/, release/, nbgrader_config.py) and
runs the command as the instructor does: in a subprocess for the exports and the stale release
(each runs nbgrader), and through the same entry point in this process (``tarea2_grader.__main__
.main``: same arguments, exit status, stdout and stderr) for the refusals that never reach
nbgrader, which would otherwise pay a new interpreter's imports each.  Leaks are planted in the
copy's release/ the way a careless instructor would, never in the repository's.
"""
import contextlib
import io
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from tarea2_grader import __main__ as cli
from tarea2_grader.engine import cells
from tarea2_grader.integration import nbgrader_run

from tests.support.repo import REPO

SOURCE = os.path.join(REPO, "source", "tarea2", "tarea2.ipynb")
RELEASE = os.path.join(REPO, "release", "tarea2", "tarea2.ipynb")
LINK = "https://colab.research.google.com/github/profe/tarea2-publica/blob/main/tarea2/tarea2.ipynb"


def course_copy(root):
    """A scratch course with the repository's source/, release/ and nbgrader_config.py."""
    os.makedirs(root)
    for name in ("source", "release"):
        shutil.copytree(os.path.join(REPO, name), os.path.join(root, name))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)
    return root


def publicar(root, *args):
    """Run the command on the course at root; (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "tarea2_grader", "publicar", "--course", root, *args],
                          cwd=REPO, env=nbgrader_run.nbgrader_env(), capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def publicar_in_process(root, *args):
    """The same command through the CLI's entry point in this process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["publicar", "--course", root, *args])
    return status, out.getvalue(), err.getvalue()


def files_under(folder):
    """Relative paths of every file under folder."""
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def release_nb(root):
    return os.path.join(root, "release", "tarea2", "tarea2.ipynb")


def edit_release_cell(root, grade_id, source):
    """Replace the source of the release cell grade_id, as an instructor editing release/ by hand."""
    nb = nbformat.read(release_nb(root), as_version=4)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    cell.source = source
    nbformat.write(nb, release_nb(root))


def source_cell(grade_id):
    """The source notebook's cell grade_id."""
    nb = nbformat.read(SOURCE, as_version=4)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell


def without_nbgrader_marks(text):
    """text without nbgrader's BEGIN/END lines and HTML comments: only its content can give it away."""
    lines = [line for line in text.split("\n") if "BEGIN " not in line and "END " not in line
             and not line.strip().startswith("<!--")]
    out = "\n".join(lines)
    assert "<!--" not in out and "SOLUTION" not in out and len(out) > 100
    return out


# ---------------------------------------------------------------- the honest export

@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """The untouched course published with --repo."""
    root = course_copy(str(tmp_path_factory.mktemp("curso") / "curso"))
    return root, publicar(root, "--repo", "profe/tarea2-publica")


@pytest.mark.slow
def test_honest_export_holds_the_release_notebook_and_a_readme_with_the_colab_link(honest):
    root, (status, out, err) = honest
    assert status == 0, err
    dest = os.path.join(root, "publicado")
    assert files_under(dest) == ["README.md", os.path.join("tarea2", "tarea2.ipynb")]
    with open(os.path.join(dest, "tarea2", "tarea2.ipynb"), "rb") as a, open(RELEASE, "rb") as b:
        assert a.read() == b.read()
    readme = open(os.path.join(dest, "README.md"), encoding="utf-8").read()
    assert "(" + LINK + ")" in readme
    assert "<usuario>" not in readme
    assert LINK in out
    # nothing else appeared in the course: no staging folder, no gradebook
    assert sorted(os.listdir(root)) == ["nbgrader_config.py", "publicado", "release", "source"]


@pytest.mark.slow
def test_republishing_into_a_clone_keeps_its_git_and_without_repo_shows_the_link_pattern(honest):
    root, (status, _, err) = honest
    assert status == 0, err
    dest = os.path.join(root, "publicado")
    os.makedirs(os.path.join(dest, ".git"))
    open(os.path.join(dest, ".git", "HEAD"), "w").write("ref: refs/heads/main\n")
    status, out, err = publicar(root)
    assert status == 0, err
    assert files_under(dest) == [os.path.join(".git", "HEAD"), "README.md", os.path.join("tarea2", "tarea2.ipynb")]
    readme = open(os.path.join(dest, "README.md"), encoding="utf-8").read()
    assert ("https://colab.research.google.com/github/<usuario>/<repositorio>/blob/main/tarea2/tarea2.ipynb"
            in readme)
    assert "--repo usuario/repositorio" in out


# ---------------------------------------------------------------- planted leaks

def plant_solution_body(root):
    """The reference CELoss pasted over the stub (marker lines dropped)."""
    edit_release_cell(root, "celoss", without_nbgrader_marks(cells.reference_sources(SOURCE)["celoss"]))


def plant_hidden_test_cell(root):
    """The source's test cell, hidden part included, copied over the release's."""
    edit_release_cell(root, "test_celoss", source_cell("test_celoss").source)


def plant_renamed_module(root):
    """A grader module saved next to the notebook as a harmless-looking text file."""
    shutil.copy(os.path.join(REPO, "tarea2_grader", "tarea2", "refs.py"), os.path.join(root, "release", "tarea2", "apuntes.txt"))


def plant_module_as_image(root):
    """The hidden tests disguised as a figure."""
    shutil.copy(os.path.join(REPO, "tarea2_grader", "tarea2", "hidden.py"), os.path.join(root, "release", "tarea2", "figura.png"))


def plant_python_helper(root):
    """A .py file next to the notebook (students never need one)."""
    shutil.copy(os.path.join(REPO, "tarea2_grader", "tarea2", "selfcheck.py"),
                os.path.join(root, "release", "tarea2", "ayuda.py"))


def plant_rubric_in_markdown(root):
    """The model answer and rubric of 2c pasted as an 'example' answer, comments and markers removed."""
    edit_release_cell(root, "capas_escondidas_md", without_nbgrader_marks(source_cell("capas_escondidas_md").source))


def plant_source_copy(root):
    """The master notebook copied into the release folder under another name."""
    shutil.copy(SOURCE, os.path.join(root, "release", "tarea2", "tarea2 (copia).ipynb"))


LEAKS = {
    "solution_body": (plant_solution_body, "release/tarea2/tarea2.ipynb, celda",
                      ["(celoss)", "código de la solución de la celda `celoss`"]),
    "hidden_test_cell": (plant_hidden_test_cell, "release/tarea2/tarea2.ipynb, celda",
                         ["(test_celoss)", "marca de tests ocultos", "hidden.evaluar", "tarea2_grader",
                          "test oculto de la celda `test_celoss`"]),
    "renamed_module": (plant_renamed_module, "release/tarea2/apuntes.txt",
                       ["código del corrector (tarea2_grader/tarea2/refs.py)"]),
    "module_as_image": (plant_module_as_image, "release/tarea2/figura.png", ["no lo es"]),
    "python_helper": (plant_python_helper, "release/tarea2/ayuda.py", ["tipo de archivo no esperado (.py)"]),
    "rubric_in_markdown": (plant_rubric_in_markdown, "release/tarea2/tarea2.ipynb, celda",
                           ["(capas_escondidas_md)", "respuesta modelo o pauta de la celda `capas_escondidas_md`"]),
    "source_copy": (plant_source_copy, "release/tarea2/tarea2 (copia).ipynb",
                    ["marca de solución de nbgrader", "código de la solución de la celda `ffnn_backward`",
                     "pauta de corrección"]),
}


@pytest.mark.parametrize("leak", list(LEAKS))
def test_a_planted_leak_is_refused_and_nothing_is_exported(tmp_path, leak):
    plant, where, whats = LEAKS[leak]
    root = course_copy(str(tmp_path / "curso"))
    plant(root)
    before = sorted(os.listdir(root))
    status, out, err = publicar_in_process(root, "--repo", "profe/tarea2-publica")
    assert status == 1, out + err
    assert "no se publicó nada" in err
    lines = [line for line in err.split("\n") if line.strip().startswith("- " + where)]
    assert lines, err
    for what in whats:
        assert any(what in line for line in lines), (what, err)
    assert sorted(os.listdir(root)) == before  # no export, no staging folder left behind
    assert "publicado en" not in out


# ---------------------------------------------------------------- stale release, unsafe destination

@pytest.mark.slow
def test_a_release_older_than_source_is_refused_not_regenerated(tmp_path):
    root = course_copy(str(tmp_path / "curso"))
    src = os.path.join(root, "source", "tarea2", "tarea2.ipynb")
    nb = nbformat.read(src, as_version=4)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    first_md.source += "\n\nPlazo de entrega: el viernes."
    nbformat.write(nb, src)
    committed = open(release_nb(root), "rb").read()
    status, out, err = publicar(root)
    assert status == 1, out + err
    assert "release/tarea2/tarea2.ipynb está desactualizado respecto de source/" in err
    assert first_md.get("id") in err
    assert "make release" in err and "No se publicó nada" in err
    assert not os.path.exists(os.path.join(root, "publicado"))
    assert open(release_nb(root), "rb").read() == committed


def test_a_destination_with_other_files_is_refused_and_left_alone(tmp_path):
    root = course_copy(str(tmp_path / "curso"))
    dest = tmp_path / "mis_documentos"
    dest.mkdir()
    (dest / "notas.txt").write_text("no borrar")
    status, out, err = publicar_in_process(root, "--destino", str(dest))
    assert status == 1, out + err
    assert "tiene otros archivos (notas.txt)" in err
    assert sorted(os.listdir(dest)) == ["notas.txt"]
    assert (dest / "notas.txt").read_text() == "no borrar"


@pytest.mark.parametrize("where", ["informe/index.html", "resumen_curso.html"])
def test_the_course_report_in_release_is_refused(tmp_path, where):
    """The instructor's report (informe/, or one of its pages renamed) never reaches students."""
    from tarea2_grader.commands import informe
    root = course_copy(str(tmp_path / "curso"))
    target = os.path.join(root, "release", "tarea2", where)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(informe.page("Informe del curso", "<p>1001 y 1003 parecen copiados</p>"))
    status, out, err = publicar_in_process(root)
    assert status == 1, out + err
    assert "informe del curso" in err and "no se publicó nada" in err
    assert not os.path.exists(os.path.join(root, "publicado"))


def test_a_destination_inside_the_report_folder_is_refused(tmp_path):
    root = course_copy(str(tmp_path / "curso"))
    status, out, err = publicar_in_process(root, "--destino", os.path.join(root, "informe", "x"))
    assert status == 1, out + err
    assert "está dentro de informe/" in err
    assert not os.path.exists(os.path.join(root, "informe"))
