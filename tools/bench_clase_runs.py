"""The timed runs of ``make bench`` (``tools.bench_clase``): each command in its own process.

``make grade`` with N workers (:func:`run_trusted`), stock nbgrader's commands (:func:`run_stock`)
and the course report (:func:`run_report`), each timed end to end and per phase (the pipeline's
``== ... ==`` headers as they are printed), with the CPU seconds of the whole process tree
(orphans included, :func:`run_timed`) and each student's cost from the verdict cache.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

from tools import bench_doc
from tarea2_grader.commands import autograde_pass, pipeline
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.parallel import workers as parallel

ROOT = bench_doc.ROOT

# The pipeline's headers (pipeline.grade prints them as each phase starts), in order.
PHASES = (("preparacion", None), ("pregrade", r"^== corrigiendo"), ("autograde", r"^== gradebook"),
          ("feedback", r"^== retroalimentaci"), ("notas", r"^== notas"))


def load1() -> Optional[float]:
    """The 1-minute load average (None where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux ``PR_SET_CHILD_SUBREAPER``).

    A process whose parent exits first (a sandbox outliving its worker, say) is then reparented
    here instead of to init, and its CPU time reaches this process's ``RUSAGE_CHILDREN`` when it
    is reaped.  False where the system cannot do it (the CPU figures then miss such processes)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children_cpu() -> float:
    """CPU seconds (user + system) of every reaped descendant of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reap_orphans(grace: float = 30.0) -> int:
    """Reap the orphans adopted from a finished command, waiting ``grace`` seconds for them to
    exit and killing the rest.  Returns how many were still alive when the command ended."""
    import psutil
    left = []
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:  # zombies are dead, only not reaped yet
                left.append(child)
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + grace
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return len(left)
        if pid == 0:
            if time.monotonic() > deadline:
                for child in psutil.Process().children():
                    nbgrader_run.kill_tree(child.pid)
                deadline = float("inf")
            time.sleep(0.05)


def run_timed(cmd: Sequence[str], cwd: str, log_path: Path, timeout: float,
              markers: Sequence[tuple] = ()) -> dict:
    """Run ``cmd`` (stdout and stderr to ``log_path``); wall seconds, return code, the time at
    which each ``markers`` regex first matched a line of stdout (seconds since the start), and
    the CPU seconds of the command and all its descendants (``cpu_s``: None unless
    :func:`adopt_orphans` works here; ``orphans``: its processes still alive when it ended).

    Nothing else may run child processes of this process meanwhile: its orphans are reaped here."""
    seen: Dict[str, float] = {}
    compiled = [(name, re.compile(rx, re.M)) for name, rx in markers if rx]
    counted = adopt_orphans()
    cpu_start = children_cpu()
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=nbgrader_run.nbgrader_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def follow():
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace")
                log.write(line)
                for name, rx in compiled:
                    if name not in seen and rx.search(line):
                        seen[name] = time.perf_counter() - start

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            nbgrader_run.kill_tree(proc.pid)
            proc.wait()
        reader.join(timeout=30)
    wall = time.perf_counter() - start
    orphans = reap_orphans() if counted else None
    return {"wall_s": wall, "returncode": proc.returncode, "marks": seen,
            "cpu_s": children_cpu() - cpu_start if counted else None, "orphans": orphans}


def phase_seconds(marks: Dict[str, float], wall: float) -> Dict[str, Optional[float]]:
    """Seconds of each phase of :data:`PHASES` from the header times (None: header not seen)."""
    times = [0.0] + [marks.get(name) for name, _rx in PHASES[1:]] + [wall]
    out = {}
    for k, (name, _rx) in enumerate(PHASES):
        t0, t1 = times[k], times[k + 1]
        out[name] = None if t0 is None or t1 is None else t1 - t0
    return out


def verdict_costs(course: Course, field: str = "segundos") -> Dict[str, float]:
    """{student: seconds the grader spent on them} from the course's verdict cache (``field``:
    ``segundos``, the wall time of their grading, or ``sandbox_s``, what their budget was charged)."""
    folder = Path(course.path(parallel.CACHE_DIRNAME))
    costs = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        data = json.loads(path.read_text(encoding="utf-8"))
        student = str(data["alumno"])  # twice when nbgrader's pass graded them again: the worse
        costs[student] = max(costs.get(student, 0.0), float(data["resultado"].get(field, 0.0)))
    return costs


def run_trusted(name: str, course: Course, workers: int, work: Path, cell_timeout: Optional[float],
                students: int, root: Path = ROOT) -> dict:
    """``python -m tarea2_grader grade --workers N`` (``make grade``) on ``course``, timed, run
    from checkout ``root`` (its package)."""
    cmd = [sys.executable, "-m", "tarea2_grader", "grade", "--course", course.root, "--workers", str(workers)]
    if cell_timeout:
        cmd += ["--timeout-celda", "{:g}".format(cell_timeout)]
    load_start = load1()
    run = run_timed(cmd, str(root), work / (name + ".log"), timeout=900 + 120 * students, markers=PHASES)
    return dict(name=name, kind="trusted", workers=workers, students=students, root=course.root,
                command=shlex.join(["python", *cmd[1:3], "grade", "--workers", str(workers)]),
                wall_s=run["wall_s"], returncode=run["returncode"], cpu_s=run["cpu_s"], orphans=run["orphans"],
                phases=phase_seconds(run["marks"], run["wall_s"]), load_start=load_start, load_end=load1(),
                grades=str(Path(course.path("grades.csv"))), costs=verdict_costs(course),
                sandbox=verdict_costs(course, "sandbox_s"),
                from_cache=sorted(autograde_pass.passed_from_cache(course)),
                log=str(work / (name + ".log")))


def run_report(course: Course, work: Path, students: int) -> dict:
    """``python -m tarea2_grader informe`` (``make informe``) on a graded ``course``, timed."""
    cmd = [sys.executable, "-m", "tarea2_grader", "informe", "--course", course.root]
    log = work / "informe.log"
    run = run_timed(cmd, str(ROOT), log, timeout=600 + 2 * students)
    return dict(command=shlex.join(["python", *cmd[1:4]]), students=students, root=course.root,
                wall_s=run["wall_s"], returncode=run["returncode"], cpu_s=run["cpu_s"], log=str(log))


STOCK_STEPS = (("preparacion", ["generate_assignment", "--force"]), ("preparacion", ["zip_collect", "--force"]),
               ("autograde", ["autograde", "--force"]), ("feedback", ["generate_feedback", "--force"]),
               ("notas", ["export"]))


def run_stock(name: str, course: Course, work: Path, cell_timeout: Optional[float], students: int) -> dict:
    """Plain nbgrader commands on ``course`` (whose config has no trusted runner), timed."""
    phases = {p: 0.0 for p, _rx in PHASES}
    phases["pregrade"] = None
    load_start = load1()
    total, codes, cpu, orphans = 0.0, {}, 0.0, 0
    log = work / (name + ".log")
    log.write_text("", encoding="utf-8")
    for phase, args in STOCK_STEPS:
        args = [*args, course.assignment_arg] if args[0] != "export" else list(args)
        if args[0] == "autograde" and cell_timeout:
            args.append("--Execute.timeout={:d}".format(int(cell_timeout)))
        step_log = work / "{}-{}.log".format(name, args[0])
        run = run_timed([sys.executable, "-m", "nbgrader", *args], course.root, step_log,
                        timeout=600 + 120 * students)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(step_log.read_text(encoding="utf-8"))
        phases[phase] += run["wall_s"]
        total += run["wall_s"]
        cpu, orphans = (None if a is None or run[key] is None else a + run[key]
                        for a, key in ((cpu, "cpu_s"), (orphans, "orphans")))
        codes[args[0]] = run["returncode"]
    text = log.read_text(encoding="utf-8")
    failed = sorted(set(re.findall(r"There was an error processing assignment '[^']*' for student '([^']+)'", text)))
    return dict(name=name, kind="stock", workers=1, students=students, root=course.root,
                command="nbgrader generate_assignment, zip_collect, autograde, generate_feedback, export",
                wall_s=total, returncode=max(codes.values()), returncodes=codes, phases=phases,
                cpu_s=cpu, orphans=orphans,
                load_start=load_start, load_end=load1(), grades=course.path("grades.csv"), costs={},
                failed=failed, log=str(log))
