"""The master notebook: runs top to bottom as an instructor runs it, and stays consistent with the grader."""
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from tarea2_grader.tarea2 import hidden

from tests.support import course_facts
from tests.support.repo import REPO

ROOT = pathlib.Path(REPO)
SOURCE = ROOT / "source" / "tarea2" / "tarea2.ipynb"


def nbgrader_cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The source notebook executed once in a fresh kernel, from its own folder (no NBGRADER_EXECUTION)."""
    nb = nbformat.read(SOURCE, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(SOURCE.parent)}}).execute()
    return nb


def stream_text(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.slow
def test_source_runs_top_to_bottom_without_errors(executed):
    errors = [c.metadata.get("nbgrader", {}).get("grade_id", i) for i, c in enumerate(executed.cells)
              if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert errors == []


@pytest.mark.slow
def test_every_visible_check_passes_and_hidden_tests_are_not_graded_in_the_kernel(executed):
    cells = nbgrader_cells(executed)
    tests = [gid for gid, c in cells.items() if c.metadata["nbgrader"].get("grade") and c.cell_type == "code"
             and not c.metadata["nbgrader"].get("solution")]
    assert tests == course_facts.autograded_cells()
    for gid in tests:
        assert "se evalúa con el corrector confiable" in stream_text(cells[gid]), gid
    revisar = [gid for gid, c in cells.items() if c.cell_type == "code" and "REVISAR" in stream_text(c)]
    assert revisar == []


@pytest.mark.slow
def test_whole_solution_notebook_in_the_sandbox_passes_every_hidden_test():
    """The grader's own run of the master notebook, every cell included (training, digits)."""
    from tarea2_grader.engine import runner
    from tarea2_grader.integration import seeds
    nb = nbformat.read(SOURCE, as_version=4)
    result = runner.grade(nb, seeds.draw())
    assert len(result.veredictos) == len(course_facts.autograded_cells())
    assert all(v.ok for v in result.veredictos.values()), result.mensajes(nb)
    assert result.notas == []
    errors = [i for i, outs in result.outputs.items() if i not in result.veredictos
              and any(o["output_type"] == "error" for o in outs)]
    assert errors == []
    plots = [i for i, outs in result.outputs.items() if any("image/png" in o.get("data", {}) for o in outs)]
    assert nbgrader_cells(nb)["graficos"] is nb.cells[plots[0]]


@pytest.mark.slow
def test_reference_reaches_97_percent_on_the_offline_digits(executed):
    out = stream_text(nbgrader_cells(executed)["mnist"])
    match = re.search(r"acierto en prueba ([\d.]+)%", out)
    assert match and float(match.group(1)) >= 97.0, out[-300:]


@pytest.mark.slow
def test_reference_training_shows_per_epoch_summary(executed):
    out = stream_text(nbgrader_cells(executed)["mnist"])
    assert re.search(r"época 30/30: pérdida media [\d.]+, acierto [\d.]+%", out)


def test_selfcheck_cell_is_the_module_verbatim():
    nb = nbformat.read(SOURCE, as_version=4)
    module = (ROOT / "tarea2_grader" / "tarea2" / "selfcheck.py").read_text()
    assert nbgrader_cells(nb)["herramientas"].source.strip() == module.strip()


def test_every_hidden_test_cell_declares_an_existing_hidden_test():
    from tarea2_grader.engine import runner
    nb = nbformat.read(SOURCE, as_version=4)
    declared = []
    for gid, cell in nbgrader_cells(nb).items():
        if "BEGIN HIDDEN TESTS" in cell.source:
            assert runner.declared_test(cell.source) == gid, gid
            declared.append(gid)
    assert declared == list(hidden.PRUEBAS)  # the notebook's order is the order tests run in


def test_points_have_a_real_hand_graded_share():
    nb = nbformat.read(SOURCE, as_version=4)
    meta = [c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    total = sum(m["points"] for m in meta)
    manual = sum(m["points"] for m in meta if m.get("solution"))
    assert 0.20 <= manual / total <= 0.35, (manual, total)


def test_statement_states_the_grading_budget_the_grader_applies():
    """The statement tells students the sandbox budget; it must be the one grading uses by default."""
    from tarea2_grader.integration import nbplugin
    from tarea2_grader.commands import autograde_pass
    nb = nbformat.read(SOURCE, as_version=4)
    intro = "".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
    stated = re.search(r"tu notebook tiene en total\s+(\d+) segundos", intro)
    assert stated, "the statement must state the grading budget near the top"
    default = nbplugin.TrustedExecute.class_traits()["budget"].default_value
    assert float(stated.group(1)) == default == autograde_pass.DEFAULT_BUDGET


RELEASE = ROOT / "release" / "tarea2" / "tarea2.ipynb"


def test_release_never_needs_the_grader():
    text = RELEASE.read_text(encoding="utf-8")
    assert "tarea2_grader" not in text and "import nbgrader" not in text


@pytest.mark.slow
def test_release_with_answers_runs_like_in_colab(tmp_path, monkeypatch):
    """A student's completed release runs top to bottom with no grader package and no nbgrader,
    from a folder that holds nothing but the notebook, and every self-check says ok."""
    from tools.examples import edit_cells, reference_answers

    blocker = tmp_path / "bloqueo" / "tarea2_grader"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('tarea2_grader no existe en Colab')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    work = tmp_path / "colab"
    work.mkdir()
    nb = edit_cells(nbformat.read(RELEASE, as_version=4), answers=reference_answers())
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "REVISAR" not in text
    assert text.count("Todo coincide.") >= 12


OPTIONAL = {"1c": "categorical_celoss", "3b": "ffnn_backward", "3c": "chequeo_gradiente", "4e": "mnist"}
OPTIONAL_CHECKS = {"1c": "chequeo_categorical", "3b": "chequeo_parametros_activacion",
                   "3c": "chequeo_gradiente_uso", "4e": "mnist"}


def backward_without_3b(source):
    """The reference ffnn_backward without the optional 3b: beta/alpha get no gradient."""
    lines = source.split("\n")
    kept = [line for line in lines if not line.strip().startswith("p.grad =")]
    assert len(kept) == len(lines) - 1, "the reference backward no longer sets p.grad in one line"
    return "\n".join(kept)


def answers_with(optional_done):
    """Reference answers of the mandatory parts plus the optional parts in ``optional_done``."""
    from tools.examples import reference_answers

    ref = reference_answers()
    answers = {g: src for g, src in ref.items() if g not in OPTIONAL.values()}
    answers["ffnn_backward"] = backward_without_3b(ref["ffnn_backward"])
    for part in optional_done:
        answers[OPTIONAL[part]] = ref[OPTIONAL[part]]
    return answers


def one_epoch(graficos):
    """The reference plots cell, training one epoch when CORRIGIENDO (it is the same in every run)."""
    short = graficos.replace("epocas = 5 if CORRIGIENDO else 30", "epocas = 1 if CORRIGIENDO else 30")
    assert short != graficos, "the reference graficos cell no longer sets its epochs this way"
    return short


COMBINATIONS = {"obligatorias": (), "con 1c": ("1c",), "con 3b": ("3b",), "con 3c": ("3c",), "con 4e": ("4e",)}


@pytest.fixture(scope="module")
def optional_runs(tmp_path_factory):
    """The release, answered with the mandatory parts only and then with each optional part added,
    run top to bottom like Colab (no grader package, no nbgrader), all at once.

    NBGRADER_EXECUTION is set only to shorten the training cells (CORRIGIENDO; the plots cell, the
    same in every run, trains one epoch): the full-length run is test_release_with_answers_runs_like_in_colab.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tools.examples import edit_cells

    tmp = tmp_path_factory.mktemp("opcionales")
    blocker = tmp / "bloqueo" / "tarea2_grader"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('tarea2_grader no existe en Colab')\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", str(blocker.parent))
    mp.setenv("NBGRADER_EXECUTION", "validate")
    mp.setenv("OMP_NUM_THREADS", "1")  # five kernels share the machine
    release = nbformat.read(RELEASE, as_version=4)
    runs = {}
    for name, done in COMBINATIONS.items():
        work = tmp / name.replace(" ", "_")
        work.mkdir()
        answers = answers_with(done)
        answers["graficos"] = one_epoch(answers["graficos"])
        nb = edit_cells(release, answers=answers)
        runs[name] = (nb, NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(work)}}))

    async def run_all():
        await asyncio.gather(*(client.async_execute() for _, client in runs.values()))

    try:
        # In a thread of its own: Playwright's sync API (the session's browser, test_navegador.py and
        # test_resumen.py) keeps an event loop running in this one, where asyncio.run refuses to start.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, run_all()).result()
    finally:
        mp.undo()
    return {name: nb for name, (nb, _) in runs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("combination", list(COMBINATIONS))
def test_release_runs_without_errors_whatever_optional_parts_are_done(optional_runs, combination):
    """No error output and no REVISAR after Restart & Run All, whichever optional parts a student
    did; an optional part not done says so, and one done is checked."""
    nb = optional_runs[combination]
    cells = nbgrader_cells(nb)
    errors = [(c.metadata.get("nbgrader", {}).get("grade_id", i), o.get("ename"), o.get("evalue"))
              for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = "".join(stream_text(c) for c in nb.cells if c.cell_type == "code")
    assert "REVISAR" not in text
    done = COMBINATIONS[combination]
    for part, check in OPTIONAL_CHECKS.items():
        out = stream_text(cells[check])
        if part in done:
            assert "sin responder" not in out, (part, out)
        else:
            assert "sin responder" in out, (part, out)
    gradient_check = stream_text(cells["chequeo_gradiente_uso"])
    if "3c" in done:
        assert re.search(r"red relu-tanh: diferencia relativa \S+ ok", gradient_check), gradient_check
        assert "se omite" in gradient_check  # relu-swish needs beta's gradient, i.e. part 3b
    if "3b" in done:
        assert "Todo coincide." in stream_text(cells["chequeo_parametros_activacion"])
    if "4e" in done:
        assert "acierto en prueba" in stream_text(cells["mnist"])
