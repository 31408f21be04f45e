"""Section 3 of ``python -m tools.bench``: end to end, in absolute seconds (CPU only).

A real ``nbgrader autograde`` of the reference notebook in a scratch course, with the trusted
runner and with stock nbgrader (:func:`stock_config`, also used by ``tools.bench_clase``), and a
full nbclient run of the solution notebook.
"""
from __future__ import annotations

import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_NB = ROOT / "source" / "tarea2" / "tarea2.ipynb"
GOAL_NOTEBOOK_S = 60.0


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

