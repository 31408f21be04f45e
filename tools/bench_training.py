"""Sections 1 and 2 of ``python -m tools.bench``: the reference solution against torch.

The reference code is the master notebook's own cells, exec'd into one namespace (no kernel).
Section 1 times one "forward + gradient" step, the manual ``backward`` against
``torch.autograd``; section 2 one epoch of ``entrenar_FFNN`` + ``FFNN`` + ``SGD`` against the
same loop written with ``torch.nn.Linear`` + ``torch.optim.SGD``; and the thread-count row of
table 2.  Every figure is a ratio of two contenders timed side by side (:func:`compare`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from tools.solution_run import code_cells

ROOT = Path(__file__).resolve().parent.parent
SOURCE_NB = ROOT / "source" / "tarea2" / "tarea2.ipynb"
REFERENCE_CELLS = ("preparacion", "herramientas", "tarea1_softmax", "derivadas_codigo", "celoss",
                   "ffnn_backward", "sgd", "entrenar")
CLASSES = 10
PARAM_ACTIVATIONS = ("swish", "celu")

GOAL_BACKWARD = 0.9   # manual / autograd, at batch >= GOAL_BACKWARD_BATCH, CPU
GOAL_BACKWARD_BATCH = 512
GOAL_EPOCH = 1.1      # entrenar_FFNN / torch.nn + torch.optim
GRAD_TOL_F64 = 1e-10  # max relative error manual vs autograd gradients, float64
LOSS_TOL_F32 = 1e-4   # max abs difference of the first epoch's losses, float32

MIN_SAMPLE_S = 0.005  # a timing sample repeats the call until it lasts about this long


@dataclasses.dataclass(frozen=True)
class Size:
    name: str
    features: int
    hidden: tuple
    activations: tuple
    batch: int
    batches_per_epoch: int

    @property
    def layers(self) -> str:
        return "[" + ", ".join(str(h) for h in self.hidden) + "]"

    @property
    def acts(self) -> str:
        return ", ".join(self.activations)


SIZES = (
    Size("pequeña", 32, (64,), ("relu",), 64, 32),
    Size("mediana", 256, (512, 512), ("relu", "swish"), 512, 8),
    Size("mediana", 256, (512, 512), ("relu", "celu"), 512, 8),
    Size("grande", 784, (1024, 1024), ("relu", "celu"), 1024, 4),
    Size("grande", 784, (1024, 1024), ("swish", "celu"), 1024, 4),
)
QUICK_SIZES = (
    Size("pequeña", 32, (64,), ("relu",), 64, 8),
    Size("mini", 16, (32, 32), ("swish", "celu"), 32, 8),
)
# The heaviest configuration of the notebook's "graficos" cell (RandomDataset(1000, 20, 5)).
THREADS_CASE = Size("graficos", 20, (256, 256), ("swish", "swish"), 32, 32)


# --------------------------------------------------------------------------- reference code

def notebook_cells(nb_path=SOURCE_NB) -> dict:
    """grade_id -> source of every code cell of the notebook that has one (plain JSON: a GPU
    machine with torch but no Jupyter stack can run sections 1 and 2)."""
    return dict(code_cells(nb_path, only_graded=True))


def load_reference(nb_path=SOURCE_NB) -> dict:
    """Exec the reference cells of the master notebook into a fresh namespace and return it."""
    cells = notebook_cells(nb_path)
    missing = [g for g in REFERENCE_CELLS if g not in cells]
    if missing:
        raise KeyError(f"{nb_path} has no code cell(s) {missing}")
    os.environ.setdefault("MPLBACKEND", "Agg")
    ns: dict = {"__name__": "tarea2_reference"}
    with contextlib.redirect_stdout(io.StringIO()):
        for gid in REFERENCE_CELLS:
            exec(compile(cells[gid], f"<celda {gid}>", "exec"), ns)
    return ns


# --------------------------------------------------------------------------- timing

@dataclasses.dataclass
class Comparison:
    """Side-by-side timings of two contenders (seconds per call)."""

    a: list
    b: list
    inner: int

    @property
    def a_median(self) -> float:
        return statistics.median(self.a)

    @property
    def b_median(self) -> float:
        return statistics.median(self.b)

    @property
    def ratios(self) -> list:
        return [x / y for x, y in zip(self.a, self.b)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def ratio_iqr(self) -> tuple:
        r = sorted(self.ratios)
        if len(r) < 4:
            return r[0], r[-1]
        q = statistics.quantiles(r, n=4)
        return q[0], q[2]

    @property
    def reps(self) -> int:
        return len(self.a)


def make_clock(device: torch.device) -> Callable[[], float]:
    if device.type == "cuda":
        def clock():
            torch.cuda.synchronize(device)
            return time.perf_counter()
        return clock
    return time.perf_counter


def compare(fa: Callable, fb: Callable, clock: Callable[[], float], budget_s: float,
            min_reps: int = 5, max_reps: int = 200, warmup: int = 2) -> Comparison:
    """Time ``fa`` and ``fb`` alternately (ABBA ...) and return both series.

    Each sample repeats a call ``inner`` times (so that it lasts ``MIN_SAMPLE_S``); the number of
    pairs fits ``budget_s`` within [min_reps, max_reps].
    """
    for _ in range(warmup):
        fa()
        fb()
    t0 = clock()
    fa()
    fb()
    pair = max(clock() - t0, 1e-7)
    inner = max(1, math.ceil(2 * MIN_SAMPLE_S / pair))
    reps = int(min(max_reps, max(min_reps, budget_s // (pair * inner))))
    series = ([], [])
    fns = (fa, fb)
    gc.collect()
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(reps):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                f = fns[i]
                start = clock()
                for _ in range(inner):
                    f()
                series[i].append((clock() - start) / inner)
    finally:
        if gc_enabled:
            gc.enable()
    return Comparison(series[0], series[1], inner)


# --------------------------------------------------------------------------- networks and data

def build_ffnn(ref: dict, size: Size, dtype=torch.float32, device="cpu", seed: int = 0):
    """The notebook's FFNN for ``size`` (swish/celu parameters start at 1.0)."""
    torch.manual_seed(seed)
    fs = [ref[name] for name in size.activations]
    params = [1.0 if name in PARAM_ACTIVATIONS else None for name in size.activations]
    red = ref["FFNN"](size.features, list(size.hidden), fs, CLASSES, params)
    return red.to(device=device, dtype=dtype)


def make_data(n: int, size: Size, dtype=torch.float32, device="cpu", seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, size.features, generator=g, dtype=dtype)
    y = torch.eye(CLASSES, dtype=dtype)[torch.randint(0, CLASSES, (n,), generator=g)]
    return x.to(device), y.to(device)


class TorchFFNN(torch.nn.Module):
    """The same network as a reference FFNN, built from torch.nn.Linear layers (weights copied).

    The hidden activations are the notebook's own functions (with the same learnable swish /
    celu parameter), the output is the notebook's softmax: only the layers, the gradients
    (autograd) and the optimizer differ from the reference.
    """

    def __init__(self, red, ref: dict):
        super().__init__()
        self.hidden = torch.nn.ModuleList()
        with torch.no_grad():
            for W, b in zip(red.Ws, red.bs):
                lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=W.dtype, device=W.device)
                lin.weight.copy_(W.T)
                lin.bias.copy_(b)
                self.hidden.append(lin)
            self.out = torch.nn.Linear(red.U.shape[0], red.U.shape[1], dtype=red.U.dtype,
                                       device=red.U.device)
            self.out.weight.copy_(red.U.T)
            self.out.bias.copy_(red.c)
        self.fs = list(red.fs)
        self.act_params = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(p.detach().clone()) for k, p in red.act_params.items()})
        self.softmax = ref["softmax"]

    def forward(self, x):
        h = x
        for k, (lin, f) in enumerate(zip(self.hidden, self.fs)):
            u = lin(h)
            p = self.act_params[str(k)] if str(k) in self.act_params else None
            h = f(u) if p is None else f(u, p)
        return self.softmax(self.out(h), dim=1)


def train_torch(model, dataset, optimizer, celoss, epochs=1, batch_size=1, device="cpu"):
    """``entrenar_FFNN``'s loop, line for line, with autograd and a torch.optim optimizer.

    It keeps the reference's disabled ``tqdm.auto`` bar: that wrapper creates one extra
    DataLoader iterator per epoch (``tqdm_asyncio`` calls ``iter()`` eagerly), which draws from
    the global RNG, so without it the two loops would shuffle differently.
    """
    from tqdm.auto import tqdm

    model.to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    losses = []
    for epoch in range(1, epochs + 1):
        bar = tqdm(loader, desc=f"época {epoch}/{epochs}", disable=True, leave=False)
        total, hits, seen = 0.0, 0, 0
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            y_pred = model(x)
            loss = celoss(y_pred, y)
            loss.backward()
            optimizer.step()
            value = loss.item()
            losses.append(value)
            total += value * x.shape[0]
            hits += (y_pred.argmax(dim=1) == y.argmax(dim=1)).sum().item()
            seen += x.shape[0]
            bar.set_postfix(perdida=f"{total / seen:.4f}", acierto=f"{hits / seen:.1%}")
    return losses


# --------------------------------------------------------------------------- section 1

def grads_max_rel_error(ga: Sequence[torch.Tensor], gb: Sequence[torch.Tensor]) -> float:
    """max over parameters of max|a - b| / max|b| (float64)."""
    worst = 0.0
    for a, b in zip(ga, gb):
        a, b = a.detach().double().cpu(), b.detach().double().cpu()
        worst = max(worst, (a - b).abs().max().item() / max(b.abs().max().item(), 1e-300))
    return worst


def bench_backward(ref: dict, size: Size, device: torch.device, budget_s: float) -> dict:
    CELoss = ref["CELoss"]

    # Correctness, float64, once: the notebook's own check uses the unclamped loss.
    red = build_ffnn(ref, size, torch.float64, device)
    x, y = make_data(size.batch, size, torch.float64, device)
    params = list(red.parameters())
    for p in params:
        p.grad = None
    with torch.no_grad():
        y_pred = red.forward(x)
    red.backward(x, y, y_pred)
    manual = [p.grad.clone() if p.grad is not None else torch.full_like(p, math.nan) for p in params]
    for p in params:
        p.grad = None
    CELoss(red.forward(x), y, estable=False).backward()
    auto = [p.grad.clone() for p in params]
    err = grads_max_rel_error(manual, auto)

    # Timing, float32.
    red = build_ffnn(ref, size, torch.float32, device)
    x, y = make_data(size.batch, size, torch.float32, device)
    params = list(red.parameters())

    def step_manual():
        for p in params:
            p.grad = None
        with torch.no_grad():
            y_pred = red.forward(x)
        red.backward(x, y, y_pred)

    def step_autograd():
        for p in params:
            p.grad = None
        CELoss(red.forward(x), y).backward()

    weights = [W.detach() for W in red.Ws] + [red.U.detach()]

    def matmuls_only():
        # The matrix products every forward + gradient step of this network needs (the same
        # shapes and transposes as the reference): a floor for both variants.
        hs = [x]
        for W in weights:
            hs.append(hs[-1] @ W)
        g = hs[-1]
        for k in reversed(range(len(weights))):
            hs[k].T @ g
            if k > 0:
                g = g @ weights[k].T

    clock = make_clock(device)
    cmp = compare(step_manual, step_autograd, clock, budget_s)
    floor = compare(matmuls_only, step_autograd, clock, budget_s / 3, min_reps=5)
    return dict(kind="backward", size=dataclasses.asdict(size), grad_rel_err_f64=err,
                grads_equal=err <= GRAD_TOL_F64, manual_ms=cmp.a_median * 1e3,
                autograd_ms=cmp.b_median * 1e3, ratio=cmp.ratio, ratio_iqr=cmp.ratio_iqr,
                matmul_ratio=floor.ratio, reps=cmp.reps, inner=cmp.inner,
                goal=(cmp.ratio <= GOAL_BACKWARD) if size.batch >= GOAL_BACKWARD_BATCH else None)


# --------------------------------------------------------------------------- section 2

def bench_epoch(ref: dict, size: Size, device: torch.device, budget_s: float, lr=0.01) -> dict:
    n = size.batch * size.batches_per_epoch
    x, y = make_data(n, size, torch.float32, "cpu", seed=2)
    dataset = torch.utils.data.TensorDataset(x, y)
    red = build_ffnn(ref, size, torch.float32, device)
    model = TorchFFNN(red, ref)
    opt_ref = ref["SGD"](red.parameters(), lr)
    opt_torch = torch.optim.SGD(model.parameters(), lr=lr)
    seeds = iter(range(10**6))
    shuffle_seed = {"last": 0}

    def epoch_reference():
        shuffle_seed["last"] = s = next(seeds)
        torch.manual_seed(s)
        return ref["entrenar_FFNN"](red, dataset, opt_ref, epochs=1, batch_size=size.batch,
                                    device=device, verbose=False)

    def epoch_torch():
        torch.manual_seed(shuffle_seed["last"])  # same shuffling order as the last reference epoch
        return train_torch(model, dataset, opt_torch, ref["CELoss"], epochs=1,
                           batch_size=size.batch, device=device)

    # Same start, same batches: the first epoch's losses must agree (float32 rounding only).
    losses_ref = epoch_reference()
    losses_torch = epoch_torch()
    loss_diff = max(abs(a - b) for a, b in zip(losses_ref, losses_torch))
    same_len = len(losses_ref) == len(losses_torch) == size.batches_per_epoch

    clock = make_clock(device)
    cmp = compare(epoch_reference, epoch_torch, clock, budget_s, min_reps=3, max_reps=100, warmup=1)
    return dict(kind="epoch", size=dataclasses.asdict(size), samples=n,
                loss_max_abs_diff=loss_diff, losses_equal=same_len and loss_diff <= LOSS_TOL_F32,
                reference_ms=cmp.a_median * 1e3, torch_ms=cmp.b_median * 1e3, ratio=cmp.ratio,
                ratio_iqr=cmp.ratio_iqr, reps=cmp.reps, goal=cmp.ratio <= GOAL_EPOCH)


def bench_threads(ref: dict, threads_many: int, threads_few: int, budget_s: float) -> dict:
    """One reference epoch of the notebook's heaviest 'graficos' network at two thread counts."""
    size = THREADS_CASE
    x, y = make_data(1000, size, seed=3)
    dataset = torch.utils.data.TensorDataset(x, y)
    red = build_ffnn(ref, size)
    opt = ref["SGD"](red.parameters(), 0.01)

    def epoch(threads):
        def run():
            torch.set_num_threads(threads)
            ref["entrenar_FFNN"](red, dataset, opt, epochs=1, batch_size=size.batch, verbose=False)
        return run

    try:
        cmp = compare(epoch(threads_many), epoch(threads_few), time.perf_counter, budget_s,
                      min_reps=3, max_reps=50, warmup=1)
    finally:
        torch.set_num_threads(threads_few)
    return dict(kind="threads", size=dataclasses.asdict(size), samples=1000,
                threads_many=threads_many, threads_few=threads_few,
                many_ms=cmp.a_median * 1e3, few_ms=cmp.b_median * 1e3, ratio=cmp.ratio,
                ratio_iqr=cmp.ratio_iqr, reps=cmp.reps)

