"""Running nbgrader from the course: its subprocesses, the course's config, its sanitizing.

Every instructor step runs real nbgrader commands in subprocesses, from the course root, so the
course's ``nbgrader_config.py`` applies exactly as for plain ``nbgrader`` commands.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import nbformat
import psutil

from tarea2_grader.integration.course import Course


# ---------------------------------------------------------------- subprocesses

def nbgrader_env() -> Dict[str, str]:
    """Environment with this interpreter's bin/ first on PATH (alembic, the kernel)."""
    env = dict(os.environ)
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    # One student at a time, small tensors: torch's extra threads only fight the other jobs
    # of a shared machine (docs/benchmark.md measured a training epoch 13x slower with 2).
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def kill_tree(pid: int) -> None:
    """Kill a process and all its descendants (kernels start in their own session)."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


@dataclass
class Run:
    """Result of one nbgrader subprocess."""

    returncode: int
    output: str
    timed_out: bool = False


def run_nbgrader(course: Course, args: Sequence[str], timeout: Optional[float] = None) -> Run:
    """Run ``nbgrader <args>`` in the course root, killing the whole tree on timeout."""
    from tarea2_grader.integration.nbgrader_cli import command
    cmd = [*command(load_config(course)), *args]  # nbgrader, started faster unless that fast path is off
    lines: List[str] = []
    proc = subprocess.Popen(cmd, cwd=course.root, env=nbgrader_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def read():
        for raw in iter(proc.stdout.readline, b""):
            lines.append(raw.decode("utf-8", "replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc.pid)
        proc.wait()
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
    reader.join(timeout=10)
    return Run(proc.returncode if not timed_out else -9, "".join(lines), timed_out)


def check(run: Run, what: str) -> None:
    """Raise with nbgrader's output when a course-level step failed."""
    if run.returncode != 0:
        raise RuntimeError("nbgrader {} falló:\n{}".format(what, run.output[-4000:]))


# ---------------------------------------------------------------- config

def load_config(course: Course):
    """The course's nbgrader_config.py as a traitlets Config."""
    from tarea2_grader.engine.cells import load_config as load_config_file
    return load_config_file(course.path("nbgrader_config.py"))


def course_id(course: Course) -> str:
    """The course id the gradebook uses."""
    return load_config(course).CourseDirectory.get("course_id", "default_course")


# ---------------------------------------------------------------- sanitizing

def sanitized_notebook(course: Course, student: str, cfg=None) -> nbformat.NotebookNode:
    """A student's notebook as ``nbgrader autograde`` hands it to ``TrustedExecute``.

    Runs nbgrader's own sanitizing preprocessors (clear outputs, deduplicate ids, restore the
    kernelspec and the locked and test cells from the gradebook, check metadata) with the
    course's config, here in the coordinator.
    """
    from nbgrader.converters.autograde import Autograde
    from nbgrader.coursedir import CourseDirectory
    from traitlets.utils.importstring import import_item
    cfg = cfg if cfg is not None else load_config(course)
    coursedir = CourseDirectory(config=cfg)
    coursedir.root = course.root
    classes = cfg.Autograde.get("sanitize_preprocessors") or Autograde.class_traits()["sanitize_preprocessors"].default()
    nb = nbformat.read(course.submitted_nb(student), as_version=4)
    resources = {"nbgrader": {"student": student, "assignment": course.assignment,
                              "notebook": course.notebook, "db_url": coursedir.db_url}}
    for cls in classes:
        cls = import_item(cls) if isinstance(cls, str) else cls
        nb, resources = cls(config=cfg)(nb, resources)
    return nb
