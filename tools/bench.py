"""Benchmark of the Tarea 2 reference solution (issue 3).

Run ``python -m tools.bench [--device cuda] [--quick] [--threads N]`` (``make bench-referencia``).

The reference code is the master notebook's own cells (``preparacion``, ``herramientas``,
``tarea1_softmax``, ``derivadas_codigo``, ``celoss``, ``ffnn_backward``, ``sgd``,
``entrenar``), exec'd into one namespace; no kernel. Three measurements:

1. **backward**: one "forward + gradient" step of the reference ``FFNN``, manual
   (``forward`` under ``torch.no_grad()`` + ``red.backward(x, y, y_pred)``, which reuses the
   cached intermediates) against ``torch.autograd`` (``forward`` with grad +
   ``CELoss(...).backward()``) on the same network object and data. The gradients of both are
   compared once per size in float64; the timing is in float32.
2. **epoch**: one epoch of the reference loop (``entrenar_FFNN`` + ``FFNN`` + ``SGD``) against
   the same loop written with ``torch.nn.Linear`` + ``torch.optim.SGD`` + autograd, started
   from the same weights, on the same data, batches and shuffling order (the per-iteration
   losses of the first epoch are compared).
3. **end to end** (CPU only, skipped by ``--quick``): wall-clock seconds of a real
   ``nbgrader autograde`` of one reference submission in a temporary course, and of a full
   run of the solution notebook with nbclient. These two are absolute seconds, not ratios.

The machine this runs on is shared and noisy, so every figure of 1 and 2 is a ratio of two
contenders timed side by side in the same run: the contenders alternate (ABBA order), each
sample is long enough for the clock, the garbage collector is off while timing, and the ratio
reported is the median of the per-pair ratios, with its interquartile range.

Threads: by default 1 intra-op thread (``torch.set_num_threads`` here, ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` for the kernels of section 3). On a shared 2-core machine two OpenMP threads
stall on each other whenever another process holds a core; the "threads" row of the epoch
table measures that effect side by side. ``--threads 0`` keeps torch's default.

The tables go to stdout and to ``docs/benchmark.md`` (one section per device: a CUDA run
replaces only the CUDA section). A ``--quick`` run (small sizes, a few seconds, no section 3)
writes a file only when ``--output`` is given.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import io
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from tools.solution_run import code_cells

ROOT = Path(__file__).resolve().parent.parent
SOURCE_NB = ROOT / "source" / "tarea2" / "tarea2.ipynb"
DOC_PATH = ROOT / "docs" / "benchmark.md"
REFERENCE_CELLS = ("preparacion", "herramientas", "tarea1_softmax", "derivadas_codigo", "celoss",
                   "ffnn_backward", "sgd", "entrenar")
CLASSES = 10
PARAM_ACTIVATIONS = ("swish", "celu")

GOAL_BACKWARD = 0.9   # manual / autograd, at batch >= GOAL_BACKWARD_BATCH, CPU
GOAL_BACKWARD_BATCH = 512
GOAL_EPOCH = 1.1      # entrenar_FFNN / torch.nn + torch.optim
GOAL_NOTEBOOK_S = 60.0
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


# --------------------------------------------------------------------------- section 3

def subprocess_env(threads: int | None) -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("NBGRADER_EXECUTION", None)
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def _nbgrader(args: list, cwd: Path, env: dict, timeout: float) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {args[0]} failed:\n{proc.stdout[-3000:]}")
    return seconds


STOCK_CONFIG_LINE = "c.Autograde.autograde_preprocessors"
# The course's other changes to how nbgrader itself works, also left out of stock nbgrader:
# its sanitizing list (cached cell-metadata check), the feedback exporter and preprocessors.
STOCK_ALSO_DROPPED = ("c.Autograde.sanitize_preprocessors", "c.GenerateFeedback.exporter_class",
                      "c.GenerateFeedback.preprocessors")
CLASS_SIZE = 4


def stock_config(config: str) -> str:
    """The course's nbgrader_config.py text without the trusted runner: nbgrader's own
    ``Execute`` runs the student's code and the tests in one kernel, as plain nbgrader does
    (and nbgrader's own sanitizing and feedback: :data:`STOCK_ALSO_DROPPED`)."""
    if STOCK_CONFIG_LINE not in config:
        raise ValueError("nbgrader_config.py no configura " + STOCK_CONFIG_LINE)
    config = config.replace(STOCK_CONFIG_LINE, "_stock_nbgrader_keeps_its_own")
    for i, line in enumerate(STOCK_ALSO_DROPPED):
        config = config.replace(line, "_stock_nbgrader_keeps_its_own_{}".format(i))
    return config


def _bench_course(root: Path, trusted: bool) -> str:
    """A scratch copy of the course; ``trusted=False`` drops the trusted runner from its config
    (stock nbgrader: the student's code and the tests run in one kernel). Returns its course id."""
    shutil.copytree(ROOT / "source", root / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    config = (ROOT / "nbgrader_config.py").read_text(encoding="utf-8")
    if not trusted:
        config = stock_config(config)
    (root / "nbgrader_config.py").write_text(config, encoding="utf-8")
    cfg = re.search(r"course_id\s*=\s*['\"]([^'\"]+)", config)
    return cfg.group(1) if cfg else "default_course"


def _submit(root: Path, student: str) -> None:
    submitted = root / "submitted" / student / "tarea2"
    submitted.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SOURCE_NB, submitted / "tarea2.ipynb")


def _score(root: Path, course_id: str, student: str) -> float:
    from nbgrader.api import Gradebook

    from tarea2_grader.engine.cells import autograded_points  # needs nbformat: CPU runs only
    tests = autograded_points(SOURCE_NB)
    with Gradebook("sqlite:///" + str(root / "gradebook.db"), course_id=course_id) as gb:
        return sum(gb.find_grade(gid, "tarea2", "tarea2", student).score for gid in tests)


def bench_autograde(threads: int | None, timeout: float = 900, rounds: int = 2) -> dict:
    """Wall seconds of ``nbgrader autograde`` of the reference notebook, trusted vs stock nbgrader.

    Measured side by side in the same run, alternating: one student graded alone (the trusted
    runner starts its sandbox and imports torch there; stock nbgrader starts a kernel), and a
    class of ``CLASS_SIZE`` students in one ``autograde`` run (the trusted runner reuses one warm
    sandbox; stock nbgrader starts a kernel per student).
    """
    from tarea2_grader.engine.cells import autograded_points

    env = subprocess_env(threads)
    assignment = "--CourseDirectory.assignment_id=tarea2"
    times = {k: [] for k in ("trusted_1", "stock_1", "trusted_class", "stock_class")}
    scores = {}
    for _ in range(rounds):
        for trusted in (True, False):
            kind = "trusted" if trusted else "stock"
            with tempfile.TemporaryDirectory(prefix="tarea2_bench_course_") as tmp:
                root = Path(tmp)
                course_id = _bench_course(root, trusted)
                _nbgrader(["generate_assignment", assignment, "--force"], root, env, timeout)
                _submit(root, "solo")
                times[kind + "_1"].append(_nbgrader(["autograde", assignment, "--student=solo", "--force"],
                                                    root, env, timeout))
                scores[kind] = _score(root, course_id, "solo")
                for k in range(CLASS_SIZE):
                    _submit(root, "clase{}".format(k))
                times[kind + "_class"].append(_nbgrader(
                    ["autograde", assignment, "--force", "--CourseDirectory.student_id=clase*"], root, env,
                    timeout * CLASS_SIZE))
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(kind="autograde", seconds=med["trusted_1"], stock_seconds=med["stock_1"],
                class_size=CLASS_SIZE, class_per_student=med["trusted_class"] / CLASS_SIZE,
                stock_class_per_student=med["stock_class"] / CLASS_SIZE, rounds=rounds,
                score=scores["trusted"], stock_score=scores["stock"],
                max_score=sum(autograded_points(SOURCE_NB).values()))


def bench_notebook(threads: int | None, timeout: float = 900) -> dict:
    """Seconds of a full nbclient run of the solution notebook (instructor mode, no nbgrader)."""
    import nbformat
    from nbclient import NotebookClient

    env = subprocess_env(threads)
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="tarea2_bench_nb_") as tmp:
        workdir = Path(tmp) / "tarea2"
        shutil.copytree(SOURCE_NB.parent, workdir,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        nb = nbformat.read(str(workdir / SOURCE_NB.name), as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        try:
            os.environ.clear()
            os.environ.update(env)  # the kernel inherits this process's environment
            start = time.perf_counter()
            client.execute()
            seconds = time.perf_counter() - start
        finally:
            os.environ.clear()
            os.environ.update(saved)
    errors = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.outputs)]
    slowest = []
    for c in nb.cells:
        ex = c.get("metadata", {}).get("execution", {})
        gid = (c.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
        if c.cell_type == "code" and "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            t0 = datetime.datetime.fromisoformat(ex["iopub.execute_input"].replace("Z", "+00:00"))
            t1 = datetime.datetime.fromisoformat(ex["shell.execute_reply"].replace("Z", "+00:00"))
            slowest.append(((t1 - t0).total_seconds(), gid or "?"))
    slowest.sort(reverse=True)
    return dict(kind="notebook", seconds=seconds, errors=len(errors),
                slowest=[dict(cell=g, seconds=s) for s, g in slowest[:3]],
                goal=seconds < GOAL_NOTEBOOK_S and not errors)


# --------------------------------------------------------------------------- report

def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device, threads: int, default_threads: int) -> dict:
    info = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=cpu_model(), cores=os.cpu_count(), torch=torch.__version__,
        threads=threads, default_threads=default_threads, python=platform.python_version(),
        load_start=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _fmt_ratio(r: dict) -> str:
    lo, hi = r["ratio_iqr"]
    return f"**{r['ratio']:.2f}** ({lo:.2f}–{hi:.2f})"


def _goal(flag) -> str:
    return "—" if flag is None else ("sí" if flag else "**no**")


def render(results: dict) -> str:
    """Markdown tables of one run (one device)."""
    m = results["machine"]
    dev = results["device"]
    lines = []
    title = "CUDA" if dev == "cuda" else "CPU"
    if results.get("correccion"):
        title = "Corrección: corrector confiable (sandbox) vs nbgrader sin él"
    lines.append(f"## {title}{' (--quick)' if results['quick'] else ''}")
    lines.append("")
    hw = f"GPU {m['gpu']} (CUDA {m['cuda']}), CPU {m['cpu']}" if dev == "cuda" else f"CPU {m['cpu']}"
    load = f"carga media 1 min {m['load_start']:.1f} al empezar, {m['load_end']:.1f} al terminar"
    lines.append(f"- Fecha: {m['date']}")
    lines.append(f"- Máquina: {hw}, {m['cores']} núcleos; {load}")
    lines.append(f"- torch {m['torch']}, Python {m['python']}; hilos intra-op: {m['threads']} "
                 f"(por defecto de torch aquí: {m['default_threads']})")
    lines.append(f"- Comando: `{results['command']}` ({results['elapsed_s']:.0f} s en total)")
    lines.append("")
    if results.get("correccion"):
        lines.append("Segundos de pared de `nbgrader autograde` con la configuración del curso (el código del "
                     "estudiante en bubblewrap, los veredictos fuera de él) y, lado a lado en la misma corrida, "
                     "con la de nbgrader tal como viene (todo en el kernel del estudiante). Generado con "
                     "`python -m tools.bench --correccion`.")
        lines.append("")

    if results["backward"]:
        lines += _render_ratios(results)
    lines += _render_end_to_end(results)
    return "\n".join(lines)


def _render_ratios(results: dict) -> list:
    """Tables 1 and 2: manual backward and one epoch against torch."""
    lines = []
    lines.append("### 1. Paso forward + gradiente: `backward` manual vs `torch.autograd`")
    lines.append("")
    lines.append("Mismo `FFNN` y mismos datos; manual = `forward` con `torch.no_grad()` + "
                 "`red.backward(x, y, y_pred)`; autograd = `forward` + `CELoss(...).backward()`. "
                 "Gradientes comparados en float64, tiempos en float32. Razón: mediana de las "
                 "razones por par (rango intercuartil). «solo matmul»: los mismos productos de "
                 "matrices sin nada más, relativo al paso con autograd (un piso para ambos).")
    lines.append("")
    lines.append("| tamaño | F | capas | activaciones | batch | err. rel. grad. (f64) "
                 "| manual ms | autograd ms | manual/autograd | solo matmul/autograd | meta ≤ 0.9 |")
    lines.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|:---:|")
    for r in results["backward"]:
        s = r["size"]
        ok = "" if r["grads_equal"] else " **DISTINTOS**"
        lines.append(f"| {s['name']} | {s['features']} | {Size(**s).layers} | {Size(**s).acts} "
                     f"| {s['batch']} | {r['grad_rel_err_f64']:.1e}{ok} | {r['manual_ms']:.2f} "
                     f"| {r['autograd_ms']:.2f} | {_fmt_ratio(r)} | {r['matmul_ratio']:.2f} "
                     f"| {_goal(r['goal'])} |")
    lines.append("")

    lines.append("### 2. Una época: `entrenar_FFNN` + `FFNN` + `SGD` vs `torch.nn.Linear` + "
                 "`torch.optim.SGD` + autograd")
    lines.append("")
    lines.append("Mismos pesos iniciales, datos, batches y orden de barajado (`DataLoader`); "
                 "mismas activaciones y `softmax`/`CELoss` del notebook. "
                 "«dif. pérdidas»: máxima diferencia absoluta entre las pérdidas por iteración "
                 "de la primera época (float32).")
    lines.append("")
    lines.append("| tamaño | F | capas | activaciones | batch | ejemplos | dif. pérdidas "
                 "| referencia ms/época | torch ms/época | referencia/torch | meta ≤ 1.1 |")
    lines.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|:---:|")
    for r in results["epoch"]:
        s = r["size"]
        ok = "" if r["losses_equal"] else " **DISTINTAS**"
        lines.append(f"| {s['name']} | {s['features']} | {Size(**s).layers} | {Size(**s).acts} "
                     f"| {s['batch']} | {r['samples']} | {r['loss_max_abs_diff']:.1e}{ok} "
                     f"| {r['reference_ms']:.1f} | {r['torch_ms']:.1f} | {_fmt_ratio(r)} "
                     f"| {_goal(r['goal'])} |")
    t = results.get("threads")
    if t:
        s = t["size"]
        lines.append("")
        lines.append(f"Hilos: una época de `entrenar_FFNN` con la red más pesada de la celda "
                     f"`graficos` ({Size(**s).acts} {Size(**s).layers}, {t['samples']} ejemplos, "
                     f"batch {s['batch']}): {t['threads_many']} hilos {t['many_ms']:.0f} ms vs "
                     f"{t['threads_few']} hilo(s) {t['few_ms']:.0f} ms, razón {_fmt_ratio(t)}.")
    lines.append("")
    return lines


def _render_end_to_end(results: dict) -> list:
    """Table 3: absolute seconds of grading and of the whole notebook."""
    lines = []
    e2e = results.get("end_to_end")
    if e2e:
        lines.append("### 3. De punta a punta (segundos absolutos, no razones)")
        lines.append("")
        lines.append("| medida | segundos | detalle |")
        lines.append("|---|---:|---|")
        for r in e2e:
            if r["kind"] == "autograde":
                lines.append(f"| `nbgrader autograde` de 1 entrega (la solución), corrector confiable "
                             f"(sandbox) | {r['seconds']:.1f} | tests automáticos {r['score']:g}/{r['max_score']:g}; "
                             f"nbgrader sin el corrector (kernel del estudiante, lado a lado): "
                             f"{r['stock_seconds']:.1f} s, razón {r['seconds'] / r['stock_seconds']:.2f} |")
                lines.append(f"| por alumno, curso de {r['class_size']} en una corrida, corrector confiable "
                             f"| {r['class_per_student']:.1f} | sandbox caliente reutilizado; nbgrader sin el "
                             f"corrector: {r['stock_class_per_student']:.1f} s por alumno, razón "
                             f"{r['class_per_student'] / r['stock_class_per_student']:.2f}; mediana de "
                             f"{r['rounds']} rondas alternadas |")
            elif r["kind"] == "notebook":
                slow = ", ".join(f"`{c['cell']}` {c['seconds']:.1f} s" for c in r["slowest"])
                goal = "meta < 60 s: " + ("sí" if r["goal"] else "**no**")
                errs = f"; **{r['errors']} celda(s) con error**" if r["errors"] else ""
                lines.append(f"| notebook de solución completo (nbclient, sin NBGRADER_EXECUTION) "
                             f"| {r['seconds']:.1f} | {goal}; más lentas: {slow}{errs} |")
            elif r["kind"] == "error":
                lines.append(f"| {r['what']} | — | falló: {r['error']} |")
        lines.append("")
    return lines


DOC_HEADER = """# Benchmarks de la Tarea 2

Generado por `make bench` (la corrección de un curso entero de punta a punta,
`python -m tools.bench_clase`; con `BENCH_ARGS="--ab COMMIT"`, la CPU del sandbox por
alumno de referencia de COMMIT contra este árbol, `tools.bench_ab`) y `make bench-referencia` (la solución de referencia,
`python -m tools.bench`; `--device cuda` para la sección CUDA, `--correccion` para la
comparación de un alumno con nbgrader). Cada comando reemplaza sólo su propia sección; la última, la
historia de las mediciones anteriores, se escribe a mano.

En las secciones de la solución de referencia, cada cifra de las tablas 1 y 2 es una **razón**
entre dos variantes medidas lado a lado en la misma corrida (alternadas, repetidas, mediana de las
razones por par; entre paréntesis, el rango intercuartil): la máquina es compartida y ruidosa, así
que los milisegundos absolutos sólo orientan. La tabla 3 sí son segundos absolutos. Por defecto se
usa 1 hilo intra-op (ver la línea «Hilos» de la tabla 2); `--threads 0` deja el valor por defecto
de torch.
"""


SECTIONS = ("clase", "ab", "cpu", "cuda", "correccion", "historia")  # "historia": written by hand, kept


def _marker(device: str, end: bool) -> str:
    return f"<!-- bench:{device}:{'end' if end else 'start'} -->"


def write_section(path: Path, name: str, text: str) -> None:
    """Write the header and section ``name`` (one of SECTIONS) of ``path``, keeping the others."""
    sections = {}
    if path.exists():
        old = path.read_text(encoding="utf-8")
        for sec in SECTIONS:
            m = re.search(re.escape(_marker(sec, False)) + r".*?" + re.escape(_marker(sec, True)),
                          old, re.S)
            if m:
                sections[sec] = m.group(0)
    sections[name] = f"{_marker(name, False)}\n{text}\n{_marker(name, True)}"
    body = [DOC_HEADER] + [sections[s] for s in SECTIONS if s in sections]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body).rstrip() + "\n", encoding="utf-8")


def write_doc(path: Path, results: dict) -> None:
    """Write this run's section (its device, or the grading comparison), keeping the others."""
    write_section(path, "correccion" if results.get("correccion") else results["device"], render(results))


# --------------------------------------------------------------------------- main

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the networks run (cuda: sections 1 and 2 only)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, a few seconds, no end-to-end timings (smoke test)")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads for torch here and for the kernels (0: torch's default; "
                        "default 1)")
    p.add_argument("--output", type=Path, default=None,
                   help=f"markdown file to write (default {DOC_PATH.relative_to(ROOT)}; "
                        "--quick writes only when this is given)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON")
    p.add_argument("--correccion", action="store_true",
                   help="only the grading benchmark (trusted runner vs stock nbgrader), CPU")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timing per comparison (default 12, 0.5 with --quick)")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    started = time.perf_counter()
    default_threads = torch.get_num_threads()
    threads = args.threads if args.threads > 0 else default_threads
    torch.set_num_threads(threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no hay GPU CUDA disponible (el curso nunca la requiere)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 12.0)
    sizes = QUICK_SIZES if args.quick else SIZES

    results = dict(device=device.type, quick=args.quick, correccion=args.correccion,
                   command=shlex.join(["python", "-m", "tools.bench", *argv]),
                   machine=machine_info(device, threads, default_threads),
                   backward=[], epoch=[], threads=None, end_to_end=[])
    ref = load_reference()

    def progress(msg):
        print(f"[bench {time.perf_counter() - started:5.0f} s] {msg}", file=sys.stderr, flush=True)

    if args.correccion:
        sizes = ()
    for size in sizes:
        progress(f"backward {size.name} {size.layers} {size.acts} batch {size.batch}")
        results["backward"].append(bench_backward(ref, size, device, budget))
    epoch_sizes = sizes if args.quick else sizes[:3]
    if args.correccion:
        progress("nbgrader autograde: corrector confiable vs nbgrader sin él")
        results["end_to_end"].append(bench_autograde(threads if args.threads > 0 else None))
    for size in epoch_sizes:
        progress(f"época {size.name} {size.layers} {size.acts} batch {size.batch}")
        results["epoch"].append(bench_epoch(ref, size, device, budget * 1.25))
    if device.type == "cpu" and not args.quick and not args.correccion and default_threads > threads:
        progress(f"época con {default_threads} vs {threads} hilo(s)")
        results["threads"] = bench_threads(ref, default_threads, threads, budget * 1.5)
    if device.type == "cpu" and not args.quick and not args.correccion:
        for what, fn in (("nbgrader autograde", bench_autograde), ("notebook completo", bench_notebook)):
            progress(what)
            try:
                results["end_to_end"].append(fn(threads if args.threads > 0 else None))
            except Exception as exc:  # reported in the table, the rest still stands
                results["end_to_end"].append(dict(kind="error", what=what,
                                                  error=f"{type(exc).__name__}: {exc}"[:300]))
    results["machine"]["load_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results["elapsed_s"] = time.perf_counter() - started

    text = render(results)
    print(text)
    output = args.output if args.output is not None else (None if args.quick else DOC_PATH)
    if output is not None:
        write_doc(output, results)
        print(f"escrito: {output}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    bad = [r for r in results["backward"] if not r["grads_equal"]]
    bad += [r for r in results["epoch"] if not r["losses_equal"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
