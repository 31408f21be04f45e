"""The answer keys and rubrics of the hand-graded cells stay right, and stay with the teaching team.

Every formula of a key in the source notebook is also written as a Python expression beside its
LaTeX, inside the solution region: ``<!-- py: name = expression -->``.  ``name`` says what the
expression is (``TARGETS`` below); each expression is evaluated on random float64 inputs, off the
kinks of relu and celu, and compared with ``torch.autograd``.  A later edit that breaks a key, or a
key formula written without its Python twin's name being known here, fails.

Each hand-graded cell also carries a rubric (between ``<!-- pauta -->`` and ``<!-- /pauta -->``,
``# ``-commented in the code cell ``graficos``) whose points table must add up to the cell's points,
and which nbgrader's ClearSolutions removes from what students get.
"""
import os
import re
import shutil

import nbformat
import pytest
import torch

from tarea2_grader.tarea2 import refs
from tarea2_grader.tarea2.activaciones import TABLA

from tools import examples
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course

from tests.support import course_facts
from tests.support.repo import REPO

SOURCE = os.path.join(REPO, "source", "tarea2", "tarea2.ipynb")
RELEASE = os.path.join(REPO, "release", "tarea2", "tarea2.ipynb")
HAND_GRADED = ("derivadas_md", "dL_duLm1_md", "ultima_capa_md", "capas_escondidas_md", "graficos")
PY_LINE = re.compile(r"<!-- py: (\w+) = (.*?) -->")
TEACHER_ONLY = ("<!-- pauta", "<!-- /pauta", "<!-- py:", "Pauta de corrección", "Comentarios para pegar")
F64 = torch.float64
SEEDS = (0, 1, 2)

# The notebook's activations, from the course's activation table (name, parameter).
ACTIVATIONS = tuple(a.nombre for a in TABLA if a.en_cuaderno)
PARAMETERS = {a.nombre: a.parametro for a in TABLA if a.en_cuaderno and a.parametro}

# name -> (group of inputs, activation or None, what it must equal)
TARGETS = {
    # 1a: elementwise derivatives of the activations at x (and at their parameter)
    **{a + "_dx": ("act", a, "dx") for a in ACTIVATIONS},
    **{a + "_d" + p: ("act", a, "dp") for a, p in PARAMETERS.items()},
    # 2a: softmax + cross entropy (without the clamp)
    "softmax_jac": ("out", None, "jac"), "dL_du": ("out", None, "dL_du"),
    # 2b: last layer, G = dL/du^(L+1)
    "dL_dU": ("last", None, "dL_dU"), "dL_dc": ("last", None, "dL_dc"), "dL_dh": ("last", None, "dL_dh"),
    # 2c: a hidden layer h = f(h_prev W + b), D = dL/dh, G = dL/du
    **{a + "_dL_du": ("hidden", a, "dL_du") for a in ACTIVATIONS},
    **{a + "_dL_d" + p: ("hidden", a, "dL_dp") for a, p in PARAMETERS.items()},
    "dL_dW": ("hidden", None, "dL_dW"), "dL_db": ("hidden", None, "dL_db"),
    "dL_dh_prev": ("hidden", None, "dL_dh_prev"),
}


def activation(name, t, p):
    """The activations of the notebook in autograd-friendly form (p: beta or alpha, a tensor)."""
    return refs.torch_activation(name, t, p)


def helpers():
    """Names a key's Python expression may use besides its inputs."""
    names = {"torch": torch, "exp": torch.exp, "log": torch.log, "sig": torch.sigmoid, "tanh": torch.tanh,
             "relu": torch.relu, "softmax": lambda t: torch.softmax(t, dim=1),
             "swish": lambda t, b: activation("swish", t, b), "celu": lambda t, a: activation("celu", t, a)}
    for a in ACTIVATIONS:  # any other activation of the table, by its name
        names.setdefault(a, lambda t, p=None, a=a: activation(a, t, p))
    return names


def off_kinks(t):
    """Push values at least 0.05 away from 0, where relu and celu have their kinks."""
    return torch.where(t >= 0, t + 0.05, t - 0.05)


def scalar(g, low=0.3, high=2.0):
    return low + (high - low) * torch.rand((), generator=g, dtype=F64)


def case_act(seed, act):
    """1a: x off the kinks, non-trivial beta/alpha; expected derivatives from autograd."""
    g = torch.Generator().manual_seed(seed)
    x = off_kinks(3 * torch.randn(4, 6, generator=g, dtype=F64))
    beta, alpha = scalar(g), scalar(g)
    p = beta if act == "swish" else alpha
    X = x.clone().requires_grad_(True)
    P = torch.full_like(x, p.item()).requires_grad_(True)  # elementwise derivative w.r.t. the parameter
    dx, dp = torch.autograd.grad(activation(act, X, P).sum(), (X, P), allow_unused=True)
    env = dict(helpers(), x=x, beta=beta, alpha=alpha, s=torch.sigmoid(beta * x))
    return env, {"dx": dx, "dp": dp}


def case_out(seed, act=None):
    """2a: u, one-hot y, y_hat = softmax(u); L the mean cross entropy without the clamp."""
    g = torch.Generator().manual_seed(seed)
    B, C = 2 + seed, 3 + seed % 3
    u = 2 * torch.randn(B, C, generator=g, dtype=F64)
    t = torch.randint(0, C, (B,), generator=g)
    eye = torch.eye(C, dtype=F64)
    y = eye[t]
    U = u.clone().requires_grad_(True)
    (dL_du,) = torch.autograd.grad(-(y * torch.log(torch.softmax(U, dim=1))).sum(dim=1).mean(), U)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: torch.softmax(v, dim=0), row) for row in u])
    env = dict(helpers(), u=u, y=y, t=t, y_hat=torch.softmax(u, dim=1), B=B, C=C, eye=eye)
    return env, {"dL_du": dL_du, "jac": jac}


def case_last(seed, act=None):
    """2b: u = h U + c, G = dL/du; expected gradients of U, c and h from autograd."""
    g = torch.Generator().manual_seed(seed)
    B, d, C = 3 + seed, 4, 2 + seed
    h, U, c = (torch.randn(*s, generator=g, dtype=F64).requires_grad_(True) for s in ((B, d), (d, C), (C,)))
    y = torch.eye(C, dtype=F64)[torch.randint(0, C, (B,), generator=g)]
    u = h @ U + c
    L = -(y * torch.log(torch.softmax(u, dim=1))).sum(dim=1).mean()
    dL_dU, dL_dc, dL_dh, G = torch.autograd.grad(L, (U, c, h, u))
    env = dict(helpers(), h=h.detach(), U=U.detach(), c=c.detach(), y=y, B=B, G=G, ones=torch.ones(B, dtype=F64),
               y_hat=torch.softmax(u.detach(), dim=1))
    return env, {"dL_dU": dL_dU, "dL_dc": dL_dc, "dL_dh": dL_dh}


def case_hidden(seed, act):
    """2c: a hidden layer with activation act and L = sum(D * h), so that dL/dh = D."""
    g = torch.Generator().manual_seed(seed)
    B, m, n = 3 + seed, 4, 5
    h_prev, W, b = (torch.randn(*s, generator=g, dtype=F64).requires_grad_(True) for s in ((B, m), (m, n), (n,)))
    D = torch.randn(B, n, generator=g, dtype=F64)
    beta, alpha = scalar(g).requires_grad_(True), scalar(g).requires_grad_(True)
    p = beta if act == "swish" else alpha
    u = h_prev @ W + b
    assert u.detach().abs().min() > 1e-3, "pre-activation too close to a kink: change the seed"
    h = activation(act, u, p)
    dL_dW, dL_db, dL_dh_prev, G, dL_dp = torch.autograd.grad((D * h).sum(), (W, b, h_prev, u, p), allow_unused=True)
    U0 = u.detach().clone().requires_grad_(True)
    (fprime,) = torch.autograd.grad(activation(act, U0, p.detach()).sum(), U0)
    beta, alpha, u = beta.detach(), alpha.detach(), u.detach()
    env = dict(helpers(), u=u, h=h.detach(), D=D, G=G, h_prev=h_prev.detach(), W=W.detach(), b=b.detach(),
               beta=beta, alpha=alpha, s=torch.sigmoid(beta * u), fprime=fprime)
    return env, {"dL_du": G, "dL_dW": dL_dW, "dL_db": dL_db, "dL_dh_prev": dL_dh_prev, "dL_dp": dL_dp}


CASES = {"act": case_act, "out": case_out, "last": case_last, "hidden": case_hidden}


def solution_regions(source):
    return re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", source, re.S)


def source_cells():
    nb = nbformat.read(SOURCE, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def key_expressions():
    """[(grade_id, name, expression)] of every key's Python twin in the source notebook."""
    found = []
    for gid, cell in source_cells().items():
        for name, expr in PY_LINE.findall(cell.source):
            found.append((gid, name, expr.strip()))
    return found


KEYS = key_expressions()


@pytest.mark.parametrize("gid,name,expr", KEYS, ids=["{}:{}:{}".format(g, n, i) for i, (g, n, _) in enumerate(KEYS)])
def test_key_expression_equals_autograd(gid, name, expr):
    assert name in TARGETS, "{}: la expresión {!r} no dice qué es ({} no está en TARGETS)".format(gid, expr, name)
    group, act, what = TARGETS[name]
    code = compile(expr, "<{} {}>".format(gid, name), "eval")
    for seed in SEEDS:
        for a in (ACTIVATIONS if group == "hidden" and act is None else [act]):
            env, expected = CASES[group](seed, a)
            got = torch.as_tensor(eval(code, env)).to(F64)  # noqa: S307 (our own notebook's keys)
            want = expected[what]
            assert got.shape == want.shape, (name, expr, tuple(got.shape), tuple(want.shape))
            assert torch.allclose(got, want, rtol=1e-9, atol=1e-12), \
                "{} ({}, activación {}, semilla {}): {} no coincide con autograd (dif. máx {:.2e})".format(
                    name, gid, a, seed, expr, (got - want).abs().max().item())


def test_every_key_of_every_derivation_has_its_python_twin():
    """Each markdown key carries its formulas in Python, inside its solution region, and every
    quantity of TARGETS is checked by at least one of them."""
    cells = source_cells()
    names = {name for _, name, _ in KEYS}
    assert names == set(TARGETS), set(TARGETS) ^ names
    for gid in HAND_GRADED[:4]:
        inside = "".join(solution_regions(cells[gid].source))
        assert len(PY_LINE.findall(inside)) >= 3, gid
        assert len(PY_LINE.findall(inside)) == len(PY_LINE.findall(cells[gid].source)), gid
    assert {g for g, _, _ in KEYS} == set(HAND_GRADED[:4])


def rubric_points(text):
    """Points of the rubric's table: the last column of each row of the table in the rubric block."""
    block = re.search(r"<!-- pauta -->(.*?)<!-- /pauta -->", text, re.S)
    assert block, "sin pauta"
    points = []
    for line in block.group(1).splitlines():
        line = re.sub(r"^\s*#\s?", "", line).strip()
        cols = [c.strip() for c in line.strip("|").split("|")] if line.startswith("|") else []
        if cols and re.fullmatch(r"\d+(\.\d+)?", cols[-1]):
            points.append(float(cols[-1]))
    return points


@pytest.mark.parametrize("gid", HAND_GRADED)
def test_rubric_sits_in_the_solution_and_its_points_add_up(gid):
    cell = source_cells()[gid]
    meta = cell.metadata["nbgrader"]
    assert meta["solution"] and meta["grade"]
    regions = solution_regions(cell.source)
    assert len(regions) == 1 and "<!-- pauta -->" in regions[0] and "<!-- /pauta -->" in regions[0], gid
    points = rubric_points(regions[0])
    assert len(points) >= 3, (gid, points)
    assert sum(points) == meta["points"], (gid, points, meta["points"])
    for part in ("Errores frecuentes", "Formas equivalentes", "Comentarios para pegar"):
        assert part in regions[0], (gid, part)


def test_rubrics_cover_the_whole_hand_graded_share():
    cells = source_cells()
    manual = [g for g, c in cells.items() if c.metadata["nbgrader"].get("grade") and c.metadata["nbgrader"].get("solution")]
    assert sorted(manual) == sorted(HAND_GRADED)
    assert sum(sum(rubric_points(cells[g].source)) for g in HAND_GRADED) == course_facts.manual_points()


def test_key_for_hidden_layers_accepts_the_derivative_written_through_h():
    """Item 1 of issue 10: writing f'(u) through h = f(u) is right; the key must say so."""
    key = "".join(solution_regions(source_cells()["capas_escondidas_md"].source))
    assert "(no en $h$)" not in key
    for form in ("h(1-h)", "1 - h^2", r"\mathbb{1}[h > 0]", r"h/\alpha + 1"):
        assert form in key, form


def test_clamped_loss_has_zero_gradient_where_the_statement_says():
    """The statement's warning about CELoss(estable=True) holds: u = [30, -5, 0], true class 1."""
    u = torch.tensor([[30.0, -5.0, 0.0]], dtype=F64, requires_grad=True)
    y = torch.tensor([[0.0, 1.0, 0.0]], dtype=F64)
    y_hat = torch.softmax(u, dim=1)
    (clamped,) = torch.autograd.grad(-(y * torch.log(torch.clamp(y_hat, min=1e-8))).sum(1).mean(), u)
    assert torch.equal(clamped, torch.zeros_like(clamped))
    assert (y_hat.detach() - y).abs().max() > 0.99  # while (y_hat - y)/B, the unclamped gradient, is not 0


def teacher_only_text(text):
    return [s for s in TEACHER_ONLY if s in text]


def test_release_and_examples_hold_no_rubric_and_no_key():
    assert teacher_only_text(open(RELEASE, encoding="utf-8").read()) == []
    for rel in os.listdir(os.path.join(REPO, "examples")):
        for name in os.listdir(os.path.join(REPO, "examples", rel)):
            text = open(os.path.join(REPO, "examples", rel, name), encoding="utf-8").read()
            assert teacher_only_text(text) == [], (rel, name)
    assert all(teacher_only_text(a) == [] for a in examples.reference_answers().values())


@pytest.mark.slow
def test_feedback_never_shows_the_rubric(tmp_path):
    """A student who answered the derivations (as the reference, minus the rubric) and deleted the
    other hand-graded cells: nbgrader puts those back from the gradebook, and neither they, nor the
    gradebook, nor the feedback hold any of the rubric (only the grader's rubric cells do)."""
    root = str(tmp_path / "curso")
    shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)
    course = Course(root)  # grading regenerates the gradebook's copy of source/ by itself
    ref = examples.reference_answers()
    nb = examples.edit_cells(nbformat.read(RELEASE, as_version=4),
                             answers={g: ref[g] for g in ("derivadas_md", "dL_duLm1_md")},
                             delete=("ultima_capa_md", "capas_escondidas_md", "graficos"))
    path = course.submitted_nb("estudiante")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(nb, path)
    pipeline.grade(course, quiet=True)
    html = open(course.path("feedback", "estudiante", "tarea2", "tarea2.html"), encoding="utf-8").read()
    assert "Por la regla del producto" in html  # the student's own answer is there
    assert teacher_only_text(html) == []
    # The autograded notebook (formgrader's, instructor-only) holds the rubric only in the grader's cells.
    from tarea2_grader.integration import pauta
    autograded = nbformat.read(course.autograded_nb("estudiante"), as_version=4)
    assert sum(map(pauta.is_rubric_cell, autograded.cells)) == 5
    assert teacher_only_text("".join(c.source for c in autograded.cells if not pauta.is_rubric_cell(c))) == []
    from nbgrader.api import Gradebook
    with Gradebook("sqlite:///" + course.path("gradebook.db"), nbgrader_run.course_id(course)) as gb:
        sources = [c.source for c in gb.find_notebook("tarea2", "tarea2").source_cells]
    assert sources and teacher_only_text("".join(sources)) == []
