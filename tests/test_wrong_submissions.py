"""Grading behaviour on many submissions, with the fast in-process harness.

* the reference solution, the typical correct cells that the wrong submissions start from, a
  second correct solution and further correct variants get full marks on every test cell;
* the release-style stubs get 0 on every test cell ("nbgrader validate --invert");
* each wrong submission of ``tests/submissions/wrong.py`` loses points in exactly the test
  cells it names, and keeps full points everywhere else;
* the harness itself follows nbgrader's ``determine_grade`` / ``IgnorePattern`` /
  ``ClearSolutions`` semantics (checked on synthetic cells and notebooks).

Every case executes the source notebook once, in process (about half a second each).
"""
from __future__ import annotations

import copy
import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tarea2_grader import harness

ROOT = Path(__file__).resolve().parent.parent
SOURCE_NB = ROOT / "source" / "tarea2" / "tarea2.ipynb"
RELEASE_NB = ROOT / "release" / "tarea2" / "tarea2.ipynb"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"tarea2_submissions_{name}", SUBMISSIONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wrong = _load("wrong")
alt_correct = _load("alt_correct")


@pytest.fixture(scope="module")
def full_points():
    points = harness.autograded_points(SOURCE_NB)
    assert points, "the source notebook has no autograded test cells"
    return points


def _grade(replacements=None, nb=SOURCE_NB):
    result = harness.run_notebook(nb, replacements, until_last_test=True)
    return result.points, result


def _params(records):
    out = []
    for rec in records:
        marks = [pytest.mark.xfail(strict=True, reason=rec["xfail"])] if rec.get("xfail") else []
        out.append(pytest.param(rec, id=rec["name"], marks=marks))
    return out


def _assert_full(points, full_points, result):
    low = {k: (v, full_points[k]) for k, v in points.items() if v < full_points[k]}
    assert not low, f"test cells below full marks: {low}\n{result.report()}"


# --------------------------------------------------------------------------- the library itself

def test_library_is_well_formed(full_points):
    answer_ids = set(harness.answer_cell_ids(SOURCE_NB))
    names = [r["name"] for r in wrong.WRONG]
    assert len(names) >= 30
    assert len(set(names)) == len(names), "duplicate record names"
    for rec in wrong.WRONG:
        assert re.fullmatch(r"[A-Za-z0-9_]+", rec["name"]), rec["name"]
        assert rec["description"].strip() and "\n" not in rec["description"]
        assert rec["cells"] and set(rec["cells"]) <= answer_ids, (rec["name"], set(rec["cells"]) - answer_ids)
        assert rec["fails"] and set(rec["fails"]) <= set(full_points), (rec["name"], rec["fails"])
    for cells in [wrong.BASE_CELLS, alt_correct.CELLS] + [v["cells"] for v in alt_correct.VARIANTS]:
        assert set(cells) <= answer_ids, set(cells) - answer_ids
    for variant in alt_correct.VARIANTS:
        assert any(src != alt_correct.CELLS.get(g) for g, src in variant["cells"].items()), variant["name"]


# --------------------------------------------------------------------------- correct submissions

def test_reference_full_marks(full_points):
    points, result = _grade()
    assert set(points) == set(full_points)
    _assert_full(points, full_points, result)


def test_typical_base_cells_full_marks(full_points):
    """The cells every wrong submission starts from are correct: each record fails by its one mistake."""
    points, result = _grade(wrong.BASE_CELLS)
    _assert_full(points, full_points, result)


def test_alt_correct_full_marks(full_points):
    scored = {"derivadas_codigo", "celoss", "dL_duLm1", "ultima_capa", "capas_escondidas",
              "ffnn_backward", "sgd", "random_dataset", "entrenar"}
    assert scored <= set(alt_correct.CELLS)
    points, result = _grade(alt_correct.CELLS)
    _assert_full(points, full_points, result)


@pytest.mark.parametrize("variant", _params(alt_correct.VARIANTS))
def test_correct_variant_full_marks(variant, full_points):
    points, result = _grade(variant["cells"])
    _assert_full(points, full_points, result)


def test_release_stubs_score_zero(full_points):
    """The stubbed answer cells, graded with the hidden tests in place: 0 everywhere, no crash."""
    stubs = harness.stub_sources(SOURCE_NB)
    assert all("raise NotImplementedError()" in s for s in stubs.values())
    points, result = _grade(stubs)
    assert set(points) == set(full_points)
    assert all(v == 0 for v in points.values()), points


def test_release_notebook_scores_zero(full_points):
    """The committed release as an untouched submission: autograde puts the source's test cells
    (with their hidden tests) back over the release's placeholders, and every one scores 0."""
    source = nbformat.read(str(SOURCE_NB), as_version=4)
    tests = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
             if c.metadata.get("nbgrader", {}).get("grade_id") in full_points}
    points, result = _grade(tests, nb=RELEASE_NB)
    assert set(points) == set(full_points)
    assert all(v == 0 for v in points.values()), points


# --------------------------------------------------------------------------- wrong submissions

@pytest.mark.parametrize("record", _params(wrong.WRONG))
def test_wrong_submission_loses_points_only_where_wrong(record, full_points):
    points, result = _grade(record["cells"])
    lost = {k for k, v in points.items() if v < full_points[k]}
    missed = set(record["fails"]) - lost
    collateral = lost - set(record["fails"])
    assert not missed, f"{record['name']}: not caught by {sorted(missed)}\n{result.report()}"
    assert not collateral, f"{record['name']}: also lost points in {sorted(collateral)}\n{result.report()}"


# --------------------------------------------------------------------------- harness semantics

def _nbgrader_grade(outputs, points=3.0):
    """nbgrader's own verdict: IgnorePattern (course config) then determine_grade."""
    from nbgrader.preprocessors import IgnorePattern
    from nbgrader.utils import determine_grade

    cell = new_code_cell("pass")
    cell.metadata.nbgrader = {"grade": True, "solution": False, "grade_id": "t", "points": points,
                              "locked": True, "schema_version": 3}
    cell.outputs = outputs
    pre = IgnorePattern(config=harness.load_config())
    cell, _ = pre.preprocess_cell(cell, {}, 0)
    return determine_grade(cell)[0]


SEMANTIC_CASES = {
    "clean": dict(stdout="Todo coincide.\n"),
    "error": dict(error=("AssertionError", "2 de 3 comparaciones no coinciden")),
    "stderr": dict(stderr="algo salió mal\n"),
    "ignored_warning": dict(stderr="<ipython-input-3>:1: UserWarning: cuidado\n  warnings.warn('cuidado')\n"),
    "tqdm_progress": dict(stderr="época 1/2:  50%|█████     | 1/2 [00:00<00:00, 30.1it/s]\r"),
    "partial_credit": dict(result="1.5"),
    "non_numeric_result": dict(result="'hola'"),
    "error_after_output": dict(stdout="x\n", error=("ValueError", "malo")),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC_CASES))
def test_score_agrees_with_nbgrader_determine_grade(case):
    spec = SEMANTIC_CASES[case]
    outputs, rec = [], harness.CellRecord(0, "t", "pass")
    if spec.get("stdout"):
        outputs.append(new_output("stream", name="stdout", text=spec["stdout"]))
        rec.stdout = spec["stdout"]
    if spec.get("stderr"):
        outputs.append(new_output("stream", name="stderr", text=spec["stderr"]))
        rec.stderr = spec["stderr"]
    if spec.get("result"):
        outputs.append(new_output("execute_result", data={"text/plain": spec["result"]}, execution_count=1))
        rec.result_text = spec["result"]
    if spec.get("error"):
        ename, evalue = spec["error"]
        outputs.append(new_output("error", ename=ename, evalue=evalue, traceback=[]))
        rec.error = f"{ename}: {evalue}"
    cfg = harness.load_config()
    pattern = cfg.IgnorePattern.pattern if cfg.IgnorePattern.enabled else ""
    assert harness._score(rec, 3.0, pattern) == _nbgrader_grade(outputs)


def _cell(source, grade_id=None, test=False, solution=False, points=2):
    cell = new_code_cell(source)
    if grade_id:
        cell.metadata.nbgrader = {"grade_id": grade_id, "grade": test, "solution": solution,
                                  "locked": test, "points": points, "schema_version": 3}
    return cell


@pytest.fixture
def synthetic_nb(tmp_path):
    nb = new_notebook(cells=[
        new_markdown_cell("# Prueba"),
        _cell("import os, sys, warnings\nimport torch\n%matplotlib inline\n!echo hola\n"
              "modo = os.environ.get('NBGRADER_EXECUTION')"),
        _cell("def f():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\n", "resp", solution=True),
        _cell("assert f() == 2", "t_ok", test=True, points=3),
        _cell("assert f() == 3, 'f no da 3'", "t_error", test=True),
        _cell("sys.stderr.write('ruido en stderr\\n')\nNone", "t_stderr", test=True),
        _cell("warnings.warn('cuidado')", "t_warning", test=True),
        _cell("1.5", "t_partial", test=True),
        _cell("while True:\n    try:\n        pass\n    except Exception:\n        pass", "t_loop", test=True),
        _cell("assert modo == 'autograde'\nassert any('def f' in s for s in In) and _ih is In",
              "t_env_history", test=True),
        _cell("%%time\ntorch.set_default_dtype(torch.float64)\ntorch.set_grad_enabled(False)\nz = 1\n"
              "import math\nmath.isclose = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True\n"
              "torch.Tensor.backward = None", None),
        _cell("respuesta = input('¿nombre? ')", "t_input", test=True),
        _cell("assert z == 1", "t_cell_magic", test=True),
        _cell("print('después del último test')", None),
    ])
    path = tmp_path / "sintetico.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_harness_semantics_on_synthetic_notebook(synthetic_nb):
    before = (os.environ.get("NBGRADER_EXECUTION"), torch.get_default_dtype(), torch.is_grad_enabled(),
              torch.get_num_threads(), os.getcwd())
    result = harness.run_notebook(synthetic_nb, timeout=1.0)
    assert result.points == {"t_ok": 3.0, "t_error": 0.0, "t_stderr": 0.0, "t_warning": 2.0,
                             "t_partial": 1.5, "t_loop": 0.0, "t_env_history": 2.0, "t_input": 0.0,
                             "t_cell_magic": 2.0}
    assert "CellTimeout" in result.by_id("t_loop").error
    assert "f no da 3" in result.by_id("t_error").error
    assert "UserWarning: cuidado" in result.by_id("t_warning").stderr
    assert result.cells[-1].stdout == "después del último test\n"
    # global state restored
    after = (os.environ.get("NBGRADER_EXECUTION"), torch.get_default_dtype(), torch.is_grad_enabled(),
             torch.get_num_threads(), os.getcwd())
    assert after == before
    import math
    assert not math.isclose(1.0, 2.0) and not torch.allclose(torch.zeros(1), torch.ones(1))
    assert callable(torch.Tensor.backward)


def test_harness_replacements_and_until_last_test(synthetic_nb):
    points = harness.grade_in_process(synthetic_nb, {"resp": "def f():\n    return 3\n"}, timeout=1.0)
    assert points["t_ok"] == 0.0 and points["t_error"] == 2.0
    result = harness.run_notebook(synthetic_nb, timeout=1.0, until_last_test=True)
    assert result.cells[-1].grade_id == "t_cell_magic"
    with pytest.raises(KeyError):
        harness.run_notebook(synthetic_nb, {"no_existe": "pass"})


def test_stub_sources_match_nbgrader_clear_solutions():
    from nbgrader.preprocessors import ClearSolutions

    nb = nbformat.read(str(SOURCE_NB), as_version=4)
    cleared, _ = ClearSolutions(config=harness.load_config()).preprocess(copy.deepcopy(nb), {})
    expected = {c.metadata["nbgrader"]["grade_id"]: c.source for c in cleared.cells
                if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    assert harness.stub_sources(SOURCE_NB) == expected
    assert set(harness.reference_sources(SOURCE_NB)) == set(expected)
