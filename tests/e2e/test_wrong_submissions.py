"""Grading behaviour on many submissions, through the production runner (the sandbox).

* the reference solution, the typical correct cells that the wrong submissions start from, a
  second correct solution and further correct variants get full marks on every test cell;
* the release-style stubs get 0 on every test cell, and so does the committed release with the
  hidden test cells put back, without breaking the grader;
* each wrong submission of ``tests/support/submissions/wrong.py`` loses points in exactly the test
  cells it names, and keeps full points everywhere else.

Every notebook is graded by :func:`tarea2_grader.engine.runner.grade`, the function nbgrader's
autograde reaches through ``TrustedExecute``: student cells in bubblewrap, verdicts here, with a
fresh random seed per notebook (printed on failure to reproduce it).  All of them are graded
once, two at a time, the first time a test asks for a result.
"""
from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from tests.support.grading import grade_many
from tests.support.repo import REPO, SUBMISSIONS as SUBMISSIONS_DIR
from tarea2_grader.engine import cells as nbcells

pytestmark = pytest.mark.slow

ROOT = Path(REPO)
SOURCE_NB = ROOT / "source" / "tarea2" / "tarea2.ipynb"
RELEASE_NB = ROOT / "release" / "tarea2" / "tarea2.ipynb"
SUBMISSIONS = Path(SUBMISSIONS_DIR)


def _load(name):
    spec = importlib.util.spec_from_file_location(f"tarea2_submissions_{name}", SUBMISSIONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wrong = _load("wrong")
alt_correct = _load("alt_correct")


def _test_cells_of_source():
    source = nbformat.read(str(SOURCE_NB), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
            and not c.metadata["nbgrader"].get("solution")}


def _cases():
    """Every notebook this module grades: (base notebook, replacements by grade_id)."""
    cases = {"reference": (SOURCE_NB, {}), "base_cells": (SOURCE_NB, wrong.BASE_CELLS),
             "alt_correct": (SOURCE_NB, alt_correct.CELLS),
             "stubs": (SOURCE_NB, nbcells.stub_sources(SOURCE_NB)),
             "release": (RELEASE_NB, _test_cells_of_source())}
    cases.update({"variant:" + v["name"]: (SOURCE_NB, v["cells"]) for v in alt_correct.VARIANTS})
    cases.update({"wrong:" + r["name"]: (SOURCE_NB, r["cells"]) for r in wrong.WRONG})
    return cases


@pytest.fixture(scope="module")
def graded():
    """{case: (points by grade_id, runner result, notebook)} for every case, graded once."""
    return grade_many(_cases())


@pytest.fixture(scope="module")
def full_points():
    points = nbcells.autograded_points(SOURCE_NB)
    assert points, "the source notebook has no autograded test cells"
    return points


def _grade(graded, case):
    points, result, nb = graded[case]
    return points, _Report(result, nb)


class _Report:
    def __init__(self, result, nb):
        self.result, self.nb = result, nb

    def report(self):
        msgs = self.result.mensajes(self.nb)
        pts = self.result.puntos(self.nb)
        lines = [f"semilla {self.result.semilla}"] + [f"{g}: {pts[g]} {m[:500]}" for g, m in msgs.items()
                                                       if not m.startswith("Tests ocultos")]
        return "\n".join(lines + self.result.notas)


def _params(records, prefix):
    out = []
    for rec in records:
        marks = [pytest.mark.xfail(strict=True, reason=rec["xfail"])] if rec.get("xfail") else []
        out.append(pytest.param(prefix + rec["name"], id=rec["name"], marks=marks))
    return out


def _assert_full(points, full_points, result):
    low = {k: (v, full_points[k]) for k, v in points.items() if v < full_points[k]}
    assert not low, f"test cells below full marks: {low}\n{result.report()}"


# --------------------------------------------------------------------------- the library itself

def test_library_is_well_formed(full_points):
    answer_ids = set(nbcells.answer_cell_ids(SOURCE_NB))
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

def test_reference_full_marks(graded, full_points):
    points, result = _grade(graded, "reference")
    assert set(points) == set(full_points)
    _assert_full(points, full_points, result)


def test_typical_base_cells_full_marks(graded, full_points):
    """The cells every wrong submission starts from are correct: each record fails by its one mistake."""
    points, result = _grade(graded, "base_cells")
    _assert_full(points, full_points, result)


def test_alt_correct_full_marks(graded, full_points):
    scored = {"derivadas_codigo", "celoss", "dL_duLm1", "ultima_capa", "capas_escondidas",
              "ffnn_backward", "sgd", "random_dataset", "entrenar"}
    assert scored <= set(alt_correct.CELLS)
    points, result = _grade(graded, "alt_correct")
    _assert_full(points, full_points, result)


@pytest.mark.parametrize("case", _params(alt_correct.VARIANTS, "variant:"))
def test_correct_variant_full_marks(graded, case, full_points):
    points, result = _grade(graded, case)
    _assert_full(points, full_points, result)


def test_release_stubs_score_zero(graded, full_points):
    """The stubbed answer cells, graded with the hidden tests in place: 0 everywhere, no crash."""
    stubs = nbcells.stub_sources(SOURCE_NB)
    assert all("raise NotImplementedError()" in s for s in stubs.values())
    points, result = _grade(graded, "stubs")
    assert set(points) == set(full_points)
    assert all(v == 0 for v in points.values()), points


def test_release_notebook_scores_zero(graded, full_points):
    """The committed release as an untouched submission: autograde puts the source's test cells
    (with their hidden tests) back over the release's placeholders, and every one scores 0."""
    points, result = _grade(graded, "release")
    assert set(points) == set(full_points)
    assert all(v == 0 for v in points.values()), points


# --------------------------------------------------------------------------- wrong submissions

@pytest.mark.parametrize("case", _params(wrong.WRONG, "wrong:"))
def test_wrong_submission_loses_points_only_where_wrong(graded, case, full_points):
    record = {r["name"]: r for r in wrong.WRONG}[case.split(":", 1)[1]]
    points, result = _grade(graded, case)
    lost = {k for k, v in points.items() if v < full_points[k]}
    missed = set(record["fails"]) - lost
    collateral = lost - set(record["fails"])
    assert not missed, f"{record['name']}: not caught by {sorted(missed)}\n{result.report()}"
    assert not collateral, f"{record['name']}: also lost points in {sorted(collateral)}\n{result.report()}"


def _hints(result, nb):
    """The hint lines of every failed test's message."""
    return [line[len("Pista: "):] for m in result.mensajes(nb).values() for line in m.splitlines()
            if line.startswith("Pista: ")]


@pytest.mark.parametrize("case", _params(wrong.WRONG, "wrong:"))
def test_wrong_submission_gets_the_hint_of_its_mistake(graded, case):
    """Where the outputs identify the mistake, its feedback names it (``Pista: ...``), and only it."""
    from tarea2_grader.tarea2.hidden import PISTAS
    record = {r["name"]: r for r in wrong.WRONG}[case.split(":", 1)[1]]
    _, result, nb = graded[case]
    hints = set(_hints(result, nb))
    if record["hint"] is None:
        assert not hints, f"{record['name']}: unexpected hints {hints}"
    else:
        assert hints == {PISTAS[record["hint"]]}, f"{record['name']}: {hints}\n{_Report(result, nb).report()}"


def test_most_of_the_library_is_hinted():
    """Most mistakes are named in their feedback: by a hint, or by a message of their own."""
    hinted = [r for r in wrong.WRONG if r["hint"] or r["message"]]
    assert len(hinted) >= 0.8 * len(wrong.WRONG), (len(hinted), len(wrong.WRONG))


# --------------------------------------------------------------------------- stubs

def test_stub_sources_match_nbgrader_clear_solutions():
    from nbgrader.preprocessors import ClearSolutions

    nb = nbformat.read(str(SOURCE_NB), as_version=4)
    cleared, _ = ClearSolutions(config=nbcells.load_config()).preprocess(copy.deepcopy(nb), {})
    expected = {c.metadata["nbgrader"]["grade_id"]: c.source for c in cleared.cells
                if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    assert nbcells.stub_sources(SOURCE_NB) == expected
    assert set(nbcells.reference_sources(SOURCE_NB)) == set(expected)


@pytest.mark.parametrize("case", _params([r for r in wrong.WRONG if r["message"]], "wrong:"))
def test_wrong_submission_gets_the_message_of_its_mistake(graded, case):
    """Where a mistake has a message of its own (autograd through the decoy activations), every test
    it fails says it."""
    record = {r["name"]: r for r in wrong.WRONG}[case.split(":", 1)[1]]
    _, result, nb = graded[case]
    messages = result.mensajes(nb)
    for gid in sorted(record["fails"]):
        assert re.search(record["message"], messages.get(gid) or ""), \
            f"{record['name']} in {gid}\n{_Report(result, nb).report()}"
