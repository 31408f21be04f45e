"""Fast in-process grader for tests: run a notebook in a fresh IPython shell and score it.

nbgrader's real autograde starts a kernel per notebook (several seconds each, plus torch's
import); the test suite grades dozens of variants of the source notebook, so it uses this
harness instead. It follows nbgrader 0.9.6's rules as closely as an in-process run can:

* every code cell runs in order in one fresh ``InteractiveShell`` with ``store_history=True``,
  so ``In`` / ``_ih`` exist as in a real kernel (the hidden tests re-run answer cells from it);
* ``NBGRADER_EXECUTION=autograde`` is set while it runs, the working directory is the
  notebook's folder, and a per-cell wall-clock limit (``Execute.timeout``) applies;
* an autograded test cell (``grade: true``, ``solution: false``, code) scores like
  ``nbgrader.utils.determine_grade``: an error gives 0, any stderr output gives 0 unless it
  matches ``IgnorePattern.pattern`` (as the ``IgnorePattern`` preprocessor would have removed
  it), an ``execute_result`` that reads as a number gives partial credit, otherwise full points.

IPython magics and shell escapes never run: line magics are no-ops (``%time``/``%timeit``
run their statement once), cell magics run their body once (``%%time``, ``%%capture``, ...)
or are skipped, ``!cmd`` does nothing. ``input()`` reads EOF. Warnings are shown on the cell's
stderr with Python's default filters, whatever pytest does with them.

What notebook code changes in this process is put back afterwards: environment, working
directory, ``sys.path``, ``sys.modules['__main__']``, torch's default dtype, grad mode, anomaly
mode, thread count, deterministic flag and RNG state, and any attribute of ``torch``,
``torch.Tensor``, ``torch.nn.functional``, ``torch.autograd``, ``torch.testing``, ``math`` or
``builtins`` that a cell monkeypatched (``torch.allclose = lambda *a: True``). A cell that kills
the process (``os._exit``) still kills it: that case belongs to the real pipeline.

Public API: :func:`grade_in_process`, :func:`run_notebook`, :func:`reference_sources`,
:func:`stub_sources`, :func:`answer_cell_ids`, :func:`autograded_points`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import signal
import sys
import tempfile
import threading
import time
import types
import warnings
from pathlib import Path
from typing import Any, Mapping

import nbformat

__all__ = [
    "CellRecord",
    "CellTimeout",
    "HarnessResult",
    "answer_cell_ids",
    "grade_in_process",
    "load_config",
    "reference_sources",
    "run_notebook",
    "stub_sources",
    "autograded_points",
]

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / "nbgrader_config.py"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
DEFAULT_CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


class CellTimeout(BaseException):
    """Raised inside a cell that ran past its wall-clock limit.

    A ``BaseException`` so that a student's ``except Exception`` cannot swallow it; IPython's
    ``run_code`` catches it (bare ``except``) and records it as the cell's error.
    """


@dataclasses.dataclass
class CellRecord:
    index: int
    grade_id: str | None
    source: str
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # "ExceptionName: message", None when the cell ran cleanly
    result_text: str | None = None  # text/plain of the execute_result, if any
    seconds: float = 0.0
    points: float | None = None  # for autograded test cells only
    max_points: float | None = None

    @property
    def is_test(self) -> bool:
        return self.points is not None


@dataclasses.dataclass
class HarnessResult:
    cells: list[CellRecord]
    seconds: float

    @property
    def points(self) -> dict[str, float]:
        return {c.grade_id: c.points for c in self.cells if c.is_test}

    def by_id(self, grade_id: str) -> CellRecord:
        for c in self.cells:
            if c.grade_id == grade_id:
                return c
        raise KeyError(grade_id)

    def report(self) -> str:
        """Short human-readable summary of the failing test cells (for assertion messages)."""
        lines = []
        for c in self.cells:
            if c.is_test and c.points < c.max_points:
                detail = c.error or ("stderr: " + c.stderr.strip()[-400:] if c.stderr else "")
                lines.append(f"{c.grade_id}: {c.points}/{c.max_points} {detail[-600:]}")
        return "\n".join(lines) or "all test cells full marks"


# --------------------------------------------------------------------------- notebook helpers

def _nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _read(nb_path) -> nbformat.NotebookNode:
    return nbformat.read(str(nb_path), as_version=4)


def _is_test_cell(cell) -> bool:
    meta = _nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def autograded_points(nb_path) -> dict[str, float]:
    """grade_id -> max points of every autograded test cell, in notebook order."""
    return {
        _nbgrader_meta(c)["grade_id"]: float(_nbgrader_meta(c).get("points", 0))
        for c in _read(nb_path).cells
        if _is_test_cell(c)
    }


def answer_cell_ids(nb_path) -> list[str]:
    """grade_ids of the code answer cells (``solution: true``), in notebook order."""
    return [
        _nbgrader_meta(c)["grade_id"]
        for c in _read(nb_path).cells
        if c.cell_type == "code" and _nbgrader_meta(c).get("solution")
    ]


def reference_sources(nb_path, grade_ids=None) -> dict[str, str]:
    """The source of each code answer cell of the (source) notebook, by grade_id.

    ``grade_ids`` restricts the result (KeyError for an id that is not a code answer cell).
    """
    out = {
        _nbgrader_meta(c)["grade_id"]: c.source
        for c in _read(nb_path).cells
        if c.cell_type == "code" and _nbgrader_meta(c).get("solution")
    }
    if grade_ids is None:
        return out
    return {g: out[g] for g in grade_ids}


def load_config(config_path=CONFIG_PATH):
    """The traitlets Config of ``nbgrader_config.py`` (empty when the file is missing)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(config_path)
    if not path.exists():
        return Config()
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def _config_value(cfg, section: str, key: str, default):
    try:
        sec = cfg[section]
        return sec[key] if key in sec else default
    except KeyError:
        return default


def _code_stub(cfg) -> str:
    stub = _config_value(cfg, "ClearSolutions", "code_stub", None)
    if isinstance(stub, Mapping):
        return stub.get("python", DEFAULT_CODE_STUB)
    return stub or DEFAULT_CODE_STUB


def _stub_source(source: str, stub: str) -> str:
    """What nbgrader's ClearSolutions makes of a code answer cell."""
    if BEGIN_SOLUTION not in source:
        return stub
    new_lines: list[str] = []
    in_solution = False
    for line in source.split("\n"):
        if BEGIN_SOLUTION in line:
            indent = re.match(r"\s*", line).group(0)
            new_lines.extend(indent + s for s in stub.split("\n"))
            in_solution = True
        elif END_SOLUTION in line:
            in_solution = False
        elif not in_solution:
            new_lines.append(line)
    return "\n".join(new_lines)


def stub_sources(nb_path, config_path=CONFIG_PATH) -> dict[str, str]:
    """Release-style sources of every code answer cell (solution regions -> the code stub)."""
    stub = _code_stub(load_config(config_path))
    return {g: _stub_source(s, stub) for g, s in reference_sources(nb_path).items()}


# --------------------------------------------------------------------------- grading rule

def _partial_grade(text: str, max_points: float) -> float:
    """nbgrader.utils.get_partial_grade for a text/plain string."""
    try:
        grade = float(text)
    except ValueError:
        return max_points
    if grade >= 0.0:
        if grade > max_points:
            raise ValueError("partial credit cannot be greater than maximum points for cell")
        return grade
    return max_points


def _score(rec: CellRecord, max_points: float, ignore_pattern: str) -> float:
    """nbgrader's determine_grade after the IgnorePattern preprocessor."""
    if rec.error is not None:
        return 0.0
    if rec.stderr and not (ignore_pattern and re.search(ignore_pattern, rec.stderr)):
        return 0.0
    if rec.result_text is not None:
        return _partial_grade(rec.result_text, max_points)
    return max_points


# --------------------------------------------------------------------------- execution

class _Tee(io.TextIOBase):
    """A text stream that records what is written (sys.stdout/sys.stderr stand-in)."""

    def __init__(self):
        self._buf = io.StringIO()

    def writable(self):
        return True

    def write(self, s):
        return self._buf.write(s)

    def getvalue(self):
        return self._buf.getvalue()

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"


def _show_warning_to_stderr(msg):
    """warnings' default display, always to the *current* sys.stderr (pytest swaps it out)."""
    text = warnings._formatwarnmsg_impl(msg)  # type: ignore[attr-defined]
    try:
        (msg.file or sys.stderr).write(text)
    except OSError:
        pass


def _default_warning_filters():
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for cat in (PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", cat)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


def _make_shell(ipython_dir: str):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    cfg.InteractiveShell.colors = "nocolor"
    cfg.InteractiveShell.xmode = "Plain"
    cfg.InteractiveShell.autocall = 0
    shell = InteractiveShell(config=cfg, ipython_dir=ipython_dir)

    def run_line_magic(self, name, line, _stack_depth=1):
        if name in ("time", "timeit") and line.strip():
            stmt = re.sub(r"^(-\S+\s+)*", "", line.strip()) if name == "timeit" else line
            return self.ex(stmt)
        return None

    def run_cell_magic(self, name, line, cell):
        if name in ("time", "timeit", "capture", "prun"):
            return self.ex(cell)
        return None

    shell.run_line_magic = types.MethodType(run_line_magic, shell)
    shell.run_cell_magic = types.MethodType(run_cell_magic, shell)
    shell.system = types.MethodType(lambda self, *a, **k: None, shell)
    shell.getoutput = types.MethodType(lambda self, *a, **k: [], shell)
    return shell


def _patchable_namespaces():
    """Modules and classes whose attributes notebook code may monkeypatch (``torch.allclose = ...``)."""
    import builtins
    import math

    import torch
    import torch.nn.functional

    return [builtins, math, torch, torch.Tensor, torch.nn.functional, torch.autograd, torch.testing]


def _snapshot(owner) -> dict:
    return dict(vars(owner))


def _restore(owner, saved: dict) -> None:
    current = vars(owner)
    # names added during the run go, except submodules imported meanwhile (their parent attribute
    # is set only once, at first import)
    for name in [n for n in current if n not in saved and not isinstance(current[n], types.ModuleType)]:
        with contextlib.suppress(AttributeError, TypeError):
            delattr(owner, name)
    for name, value in saved.items():
        if current.get(name, _MISSING) is not value:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(owner, name, value)


_MISSING = object()


@contextlib.contextmanager
def _saved_process_state(workdir: Path):
    """Save and restore what notebook code may change in this process."""
    import torch

    patchable = [(owner, _snapshot(owner)) for owner in _patchable_namespaces()]

    saved_env = {k: os.environ.get(k) for k in ("NBGRADER_EXECUTION", "MPLBACKEND")}
    saved = dict(
        cwd=os.getcwd(),
        path=list(sys.path),
        main=sys.modules.get("__main__"),
        displayhook=sys.displayhook,
        excepthook=sys.excepthook,
        stdin=sys.stdin,
        stdout=sys.stdout,
        stderr=sys.stderr,
        dtype=torch.get_default_dtype(),
        grad=torch.is_grad_enabled(),
        anomaly=torch.is_anomaly_enabled(),
        threads=torch.get_num_threads(),
        rng=torch.random.get_rng_state(),
        deterministic=torch.are_deterministic_algorithms_enabled(),
    )
    try:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        os.environ["MPLBACKEND"] = "Agg"
        os.chdir(workdir)
        sys.stdin = io.StringIO()  # input() gets EOF instead of blocking, as with nbgrader's kernel
        with warnings.catch_warnings():
            _default_warning_filters()
            warnings._showwarnmsg_impl = _show_warning_to_stderr  # type: ignore[attr-defined]
            warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
            yield
    finally:
        os.chdir(saved["cwd"])
        sys.path[:] = saved["path"]
        if saved["main"] is not None:
            sys.modules["__main__"] = saved["main"]
        sys.displayhook = saved["displayhook"]
        sys.excepthook = saved["excepthook"]
        sys.stdin, sys.stdout, sys.stderr = saved["stdin"], saved["stdout"], saved["stderr"]
        for owner, snapshot in patchable:
            _restore(owner, snapshot)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        torch.set_default_dtype(saved["dtype"])
        torch.set_grad_enabled(saved["grad"])
        torch.autograd.set_detect_anomaly(saved["anomaly"])
        torch.set_num_threads(saved["threads"])
        torch.random.set_rng_state(saved["rng"])
        torch.use_deterministic_algorithms(saved["deterministic"])
        for name in ("last_type", "last_value", "last_traceback"):
            if hasattr(sys, name):
                setattr(sys, name, None)
        if "matplotlib.pyplot" in sys.modules:
            with contextlib.suppress(Exception):
                sys.modules["matplotlib.pyplot"].close("all")


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def handler(signum, frame):
        raise CellTimeout(f"la celda superó el límite de {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_cell(shell, source: str, timeout: float | None) -> tuple[str, str, Any, float]:
    out, err = _Tee(), _Tee()
    t0 = time.perf_counter()
    result = None
    previous = sys.stdout, sys.stderr
    with _time_limit(timeout):
        try:
            sys.stdout, sys.stderr = out, err
            result = shell.run_cell(source, store_history=True, silent=False)
        except CellTimeout as exc:  # fired outside the user's code (IPython machinery)
            result = exc
        finally:
            sys.stdout, sys.stderr = previous
    return out.getvalue(), err.getvalue(), result, time.perf_counter() - t0


def _describe_error(result) -> str | None:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    exc = result.error_before_exec or result.error_in_exec
    if exc is None:
        return None
    return f"{type(exc).__name__}: {exc}"


def run_notebook(
    nb_path,
    replacements: Mapping[str, str] | None = None,
    timeout: float | None = None,
    config_path=CONFIG_PATH,
    until_last_test: bool = False,
    threads: int | None = 1,
) -> HarnessResult:
    """Execute every code cell of ``nb_path`` in a fresh IPython shell and score its test cells.

    ``replacements`` maps grade_ids to new cell sources (any cell carrying that grade_id, answer
    or test); an unknown grade_id raises KeyError. ``timeout`` is the per-cell limit in seconds
    (default ``None``: ``Execute.timeout`` of the nbgrader config, else 30; ``0`` or less: no
    limit). ``until_last_test`` stops after the last autograded test cell: what runs later cannot
    change any test cell's points, and the notebook's optional training cells are slow.
    ``threads`` sets torch's intra-op threads while the notebook runs (restored afterwards; ``None``
    keeps the current setting): the tensors are tiny, and on a busy machine one thread is several
    times faster than OpenMP spinning on two.
    """
    nb_path = Path(nb_path).resolve()
    nb = _read(nb_path)
    cfg = load_config(config_path)
    ignore_pattern = ""
    if _config_value(cfg, "IgnorePattern", "enabled", False):
        ignore_pattern = _config_value(cfg, "IgnorePattern", "pattern", "")
    if timeout is None:
        timeout = float(_config_value(cfg, "Execute", "timeout", 30) or 0) or None
    elif timeout <= 0:
        timeout = None

    replacements = dict(replacements or {})
    present = {_nbgrader_meta(c).get("grade_id") for c in nb.cells}
    unknown = sorted(set(replacements) - present)
    if unknown:
        raise KeyError(f"grade_ids not in {nb_path.name}: {unknown}")

    last = len(nb.cells)
    if until_last_test:
        last = max((i + 1 for i, c in enumerate(nb.cells) if _is_test_cell(c)), default=0)

    records: list[CellRecord] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tarea2_ipython_") as ipdir, _saved_process_state(
        nb_path.parent
    ):
        if threads:
            import torch

            torch.set_num_threads(threads)
        shell = _make_shell(ipdir)
        try:
            for index, cell in enumerate(nb.cells[:last]):
                if cell.cell_type != "code":
                    continue
                meta = _nbgrader_meta(cell)
                grade_id = meta.get("grade_id")
                source = replacements.get(grade_id, cell.source) if grade_id else cell.source
                stdout, stderr, result, seconds = _run_cell(shell, source, timeout)
                rec = CellRecord(index, grade_id, source, stdout, stderr, seconds=seconds)
                rec.error = _describe_error(result)
                if rec.error is None and result.result is not None:
                    with contextlib.suppress(Exception):
                        fmt = shell.display_formatter.format(result.result)[0]
                        rec.result_text = fmt.get("text/plain")
                if _is_test_cell(cell):
                    rec.max_points = float(meta.get("points", 0))
                    rec.points = _score(rec, rec.max_points, ignore_pattern)
                records.append(rec)
        finally:
            import atexit

            atexit.unregister(shell.atexit_operations)
            with contextlib.suppress(Exception):
                shell.history_manager.end_session()
            with contextlib.suppress(Exception):
                shell.reset(new_session=False)
            shell.user_ns.clear()
    return HarnessResult(records, time.perf_counter() - t_start)


def grade_in_process(nb_path, replacements: dict[str, str] | None = None, **kwargs) -> dict[str, float]:
    """Points per autograded test cell (grade_id -> points) of ``nb_path`` with ``replacements``.

    Cells after the last test cell are not run (they cannot change any points); pass
    ``until_last_test=False`` to run them anyway. Other keywords go to :func:`run_notebook`.
    """
    kwargs.setdefault("until_last_test", True)
    return run_notebook(nb_path, replacements, **kwargs).points
