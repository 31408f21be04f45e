"""Grading a class in parallel: jobs, a verdict cache, local worker threads or a Dask cluster.

How ``make grade`` uses it (:func:`tarea2_grader.commands.pipeline.grade`):

1. The coordinator (the process that runs ``make grade``) builds one :class:`GradingJob` per
   student: the notebook exactly as nbgrader's ``autograde`` will hand it to ``TrustedExecute``
   (nbgrader's own sanitizing preprocessors, run here with the course's config and gradebook),
   the student's recorded seed and the limits.  Its :func:`job_key` hashes all that plus the
   grader's own code, so a changed submission, seed, limit or hidden test is a different job.
2. Jobs already in the :class:`VerdictCache` (an interrupted run, a regrade with nothing changed)
   are not graded again.
3. The others run on ``workers`` local threads (each with its own warm sandbox, see
   :mod:`tarea2_grader.engine.runner`) or, given a scheduler address, on a ``dask.distributed``
   cluster.  A job carries the notebook and returns the :class:`runner.Resultado` as plain data;
   only the coordinator writes it, to the cache.
4. One ``nbgrader autograde`` run: ``TrustedExecute`` looks each student's key up in the cache
   and grades the student itself on a miss, so the cache can only save time, never change a
   grade; nbgrader's ``SaveAutoGrades`` writes the gradebook, in the coordinator alone.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from typing import Callable, Dict, Iterable, List, Optional

import nbformat
from traitlets import Integer, Unicode
from traitlets.config import Configurable

from tarea2_grader.engine import cells
from tarea2_grader.engine import runner
from tarea2_grader.engine import sandbox

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIRNAME = "veredictos"  # at the course root: gitignored, never visible to student code
KEY_VERSION = "1"
# Fault injection for the tests: the students (comma separated) whose result this process cannot
# write, as on a full disk.  Read on the trusted side only (no student code runs here).
FAULT_ENV = "TAREA2_FALLA_DISCO_LLENO"


# ---------------------------------------------------------------- keys

# The modules whose code can change a verdict (tests/test_workers.py checks that every module of
# the package they import is listed): editing anything else (the pipeline, the benchmark, the
# CLI) keeps the verdicts already computed.
GRADING_MODULES = ("sandboxed/agent", "sandboxed/cleanup", "sandboxed/kernel", "sandboxed/protocol",
                   "tarea2/activaciones", "tarea2/ayudas", "tarea2/ayudas_red", "tarea2/comun", "tarea2/hidden",
                   "tarea2/probes", "tarea2/pruebas_capas", "tarea2/pruebas_parte1", "tarea2/pruebas_parte4",
                   "tarea2/refs", "tarea2/review_roots", "tarea2/selfcheck", "engine/cells", "engine/inert",
                   "engine/registry", "engine/review/__init__", "engine/review/allowlist", "engine/review/reach",
                   "engine/review/records", "engine/review/source", "engine/review/units", "engine/review/visitor",
                   "engine/runner", "engine/sandbox", "engine/session", "engine/tamano", "engine/verdicts",
                   "engine/wire", "parallel/workers")


def tests_file(tests_module: str, search: Iterable[str] = ()) -> Optional[str]:
    """The file of the hidden tests' module: ``<dir>/<name>.py`` in a course folder of ``search``
    first (a course's own module), else wherever Python finds it (found, not imported)."""
    import importlib.util
    for folder in search:
        candidate = os.path.join(folder, tests_module.replace(".", os.sep) + ".py")
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    spec = importlib.util.find_spec(tests_module)
    return os.path.abspath(spec.origin) if spec is not None and spec.origin else None


_LOADING = threading.Lock()


def load_tests(tests_module: str, search: Iterable[str] = ()):
    """The hidden tests' module, from the same file :func:`tests_file` names.

    A course's own module is loaded from its file under a name unique to its content, so one
    process (a Dask worker, the test suite) grading two courses never mixes their tests.
    """
    import importlib
    import importlib.util
    path = tests_file(tests_module, search)
    inside = path is not None and any(os.path.dirname(path) == os.path.abspath(f) for f in search)
    if not inside:
        return importlib.import_module(tests_module)
    with open(path, "rb") as fh:
        name = "{}_{}".format(tests_module.replace(".", "_"), hashlib.sha256(fh.read()).hexdigest()[:16])
    with _LOADING:  # worker threads load it once; none sees a half-run module
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module
    return sys.modules[name]


def code_fingerprint(tests_module: str, search: Iterable[str] = ()) -> str:
    """A hash of the grading code and of the hidden tests' module: a fixed test is a new job."""
    paths = [os.path.join(PACKAGE_DIR, name + ".py") for name in GRADING_MODULES]
    module_file = tests_file(tests_module, search)
    if module_file and module_file not in paths:
        paths.append(module_file)
    return _files_digest(tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths))


@functools.lru_cache(maxsize=64)
def _files_digest(files) -> str:
    digest = hashlib.sha256(KEY_VERSION.encode())
    for path, _mtime, _size in files:
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def notebook_view(nb) -> list:
    """What the runner reads from a notebook: each cell's type, source and nbgrader metadata."""
    return [[c.cell_type, c.source, c.metadata.get("nbgrader") or {}, cells.is_test_cell(c)]
            for c in nb.cells]


def job_key(nb, seed: int, limits: sandbox.Limits, tests_module: str, run_all: bool = True,
            search: Iterable[str] = ()) -> str:
    """The cache key of grading ``nb`` with ``seed`` under ``limits``."""
    data = {"cells": notebook_view(nb), "seed": int(seed), "limits": dataclasses.asdict(limits),
            "tests": tests_module, "run_all": bool(run_all), "code": code_fingerprint(tests_module, search)}
    text = json.dumps(data, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- jobs

@dataclasses.dataclass
class GradingJob:
    """Everything a worker needs to grade one student (plain data: it may cross machines)."""

    student: str
    notebook: str  # the notebook's JSON text
    seed: int
    limits: dict
    tests_module: str
    key: str
    run_all: bool = True
    import_paths: List[str] = dataclasses.field(default_factory=list)


def make_job(student: str, nb, seed: int, limits: sandbox.Limits, tests_module: str,
             run_all: bool = True, import_paths: Iterable[str] = ()) -> GradingJob:
    """A job for ``student`` (its key computed here, by the coordinator)."""
    paths = list(import_paths)
    key = job_key(nb, seed, limits, tests_module, run_all, paths)
    return GradingJob(student, nbformat.writes(nb), int(seed), dataclasses.asdict(limits),
                      tests_module, key, run_all, paths)


def worker_id() -> str:
    """Which process graded a job: host and process id."""
    import socket
    return "{}:{}".format(socket.gethostname(), os.getpid())


def one_torch_thread() -> None:
    """Torch in this process with one intra-op thread, as in the sandbox.

    The hidden tests' references are small tensors: waking a pool of threads costs more than the
    work, and the pool competes with the other workers' sandboxes for the same cores (coordinator
    CPU per graded student, 3 rounds alternated on a loaded 2-core machine: 0.85 s with torch's
    default 2 threads, 0.33 s with 1).
    """
    import torch
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def grade_job(job: GradingJob) -> dict:
    """Grade one job in this process (a local thread or a Dask worker); return plain data.

    ``{"student", "key", "resultado"}`` on success; ``{"student", "key", "error"}`` when the
    grader itself failed (the coordinator then leaves that student to nbgrader's own run).
    """
    try:
        one_torch_thread()
        tests = load_tests(job.tests_module, job.import_paths)
        nb = nbformat.reads(job.notebook, as_version=4)
        limits = sandbox.Limits(**job.limits)
        result = runner.grade(nb, job.seed, limits, tests, until_last_test=not job.run_all)
        return {"student": job.student, "key": job.key, "resultado": result.como_datos(), "worker": worker_id()}
    except Exception as exc:  # a grader failure for one student never stops the others
        return {"student": job.student, "key": job.key, "error": "{}: {}".format(type(exc).__name__, exc)}


# ---------------------------------------------------------------- the cache

class VerdictCache:
    """Graded results by job key, one JSON file each, written only by the coordinator."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, key: str) -> str:
        """Where the result of ``key`` lives."""
        return os.path.join(self.directory, key + ".json")

    def get(self, key: str) -> Optional["runner.Resultado"]:
        """The cached result of ``key``, or None (also for an unreadable entry)."""
        try:
            with open(self.path(key), encoding="utf-8") as fh:
                return runner.Resultado.desde_datos(json.load(fh)["resultado"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, student: str, result: "runner.Resultado", worker: str = "") -> None:
        """Store a result (atomically: an interrupted write leaves no half entry).  Raises OSError
        when it cannot (a full disk: the caller decides what that costs)."""
        if student in os.environ.get(FAULT_ENV, "").split(","):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path(key))
        os.makedirs(self.directory, exist_ok=True)
        tmp = self.path(key) + ".{}.tmp".format(os.getpid())
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"alumno": student, "trabajador": worker or worker_id(),
                       "resultado": result.como_datos()}, fh, ensure_ascii=False)
        os.replace(tmp, self.path(key))


# ---------------------------------------------------------------- settings

class ParallelGrading(Configurable):
    """How many students are graded at once, and where (``c.ParallelGrading.*`` in the config)."""

    workers = Integer(0, help="Students graded at once on this machine (0: one per core).").tag(config=True)
    scheduler = Unicode("", help="Address of a dask.distributed scheduler (tcp://host:8786) whose workers "
                                 "grade the students; empty: local workers.").tag(config=True)
    pass_batch = Integer(1, help="nbgrader's autograde pass (one process, started once) takes the students "
                                 "already graded once this many are waiting, while the workers grade the "
                                 "rest (0: one pass at the end).").tag(config=True)


# ---------------------------------------------------------------- running the jobs

def default_workers() -> int:
    """One worker per core."""
    return max(1, os.cpu_count() or 1)


def run_local(jobs: Iterable[GradingJob], workers: int, on_result: Callable[[dict], None]) -> None:
    """Grade ``jobs`` on ``workers`` threads of this process (each thread, its own warm sandbox).

    ``jobs`` may be a generator: jobs are built (in this thread) only as threads need them, at
    most two per thread ahead, so building them does not hold up the first students; results are
    handled as they come.
    """
    warmed = False
    workers = max(1, workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corrector")
    try:
        running = set()
        for job in jobs:
            if not warmed:  # a sandbox per thread starts while the first jobs are built
                runner.WARM_SANDBOXES.prewarm(sandbox.Limits(**job.limits), runner.isolation_available(),
                                              workers)
                warmed = True
            running.add(pool.submit(grade_job, job))
            while len(running) >= 2 * workers:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.discard(future)
                    on_result(future.result())
        for future in as_completed(running):
            on_result(future.result())
    except BaseException:  # Ctrl-C: the students not started yet are left for the next run
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_dask(jobs: List[GradingJob], scheduler: str, on_result: Callable[[dict], None]) -> None:
    """Grade ``jobs`` on the ``dask.distributed`` cluster at ``scheduler``.

    The workers must run in the course's environment (a checkout of this repository with its
    virtual environment, and bubblewrap); the notebooks travel with the jobs and the results
    come back here.  A job whose worker dies is retried by Dask on another worker.
    """
    if not jobs:
        return
    from distributed import Client, as_completed as dask_completed
    with Client(scheduler, timeout="30s") as client:
        futures = [client.submit(grade_job, job, key="tarea2-{}-{}".format(job.student, job.key[:12]),
                                 pure=False, retries=1) for job in jobs]
        for future in dask_completed(futures):
            try:
                on_result(future.result())
            except Exception as exc:  # a job Dask itself could not run
                on_result({"student": _student_of(future.key), "key": "", "error": str(exc)})


def _student_of(dask_key) -> str:
    text = dask_key if isinstance(dask_key, str) else str(dask_key)
    return text.split("-", 2)[1] if text.startswith("tarea2-") else text


class Progress:
    """A one-line progress bar on stderr: done, remaining, estimated time left (Spanish).

    The time left is estimated from the students graded in this run only: those counted with
    ``instant=True`` (verdicts kept from an interrupted run, students not graded here) took no
    time, and counting them would promise a resumed run's end far too soon."""

    def __init__(self, total: int, stream=None, min_interval: float = 0.5):
        self.total, self.done, self.instant = total, 0, 0
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self.min_interval, self.last = min_interval, 0.0
        self.lock = threading.Lock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        """The current bar as text."""
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        elapsed = time.monotonic() - self.start
        left = ""
        graded = self.done - self.instant
        if graded > 0 and self.done < self.total:
            left = " · faltan ~{}".format(_duration(elapsed / graded * (self.total - self.done)))
        return "   [{}{}] {}/{} alumnos · quedan {}{} · {}".format(
            "#" * filled, "-" * (width - filled), self.done, self.total, self.total - self.done, left,
            _duration(elapsed))

    def step(self, n: int = 1, instant: bool = False) -> None:
        """Count ``n`` more students done and redraw (at most every ``min_interval`` seconds);
        ``instant``: done without being graded in this run."""
        with self.lock:
            self.done += n
            if instant:
                self.instant += n
            now = time.monotonic()
            if self.done < self.total and now - self.last < self.min_interval:
                return
            self.last = now
            end = "\n" if (self.done >= self.total or not self.tty) else ""
            self.stream.write(("\r" if self.tty else "") + self.line() + end)
            self.stream.flush()


def store_result(cache: VerdictCache, reply: dict, failed: Dict[str, str]) -> bool:
    """Put a worker's result in the cache; False (with the reason in ``failed``) when the machinery
    failed: the result says so, or it cannot be written."""
    result = runner.Resultado.desde_datos(reply["resultado"])
    if result.falla:
        failed[reply["student"]] = result.falla
        return False
    try:
        cache.put(reply["key"], reply["student"], result, reply.get("worker", ""))
    except OSError as exc:
        failed[reply["student"]] = "no se pudo guardar su resultado en {} ({})".format(CACHE_DIRNAME, exc)
        return False
    return True


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return "{} min {:02d} s".format(seconds // 60, seconds % 60) if seconds >= 60 else "{} s".format(seconds)


def grade_jobs(jobs: Iterable[GradingJob], cache: VerdictCache, workers: int = 0, scheduler: str = "",
               progress: Optional[Progress] = None, resumed: Optional[list] = None,
               on_ready: Callable[[str], None] = lambda student: None,
               failed: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Grade the jobs not yet in ``cache`` and store their results; {student: grader error}.

    ``resumed`` (a list) receives the students whose job was already in the cache;
    ``on_ready(student)`` is called for them first, then for each student as its result is stored.
    ``failed`` (a dict) receives {student: reason} for those the machinery failed (no sandbox, a
    result that could not be stored): they are neither cached nor ready, so a rerun grades them.
    """
    resumed = resumed if resumed is not None else []
    failed = failed if failed is not None else {}
    errors: Dict[str, str] = {}

    def pending():
        for job in jobs:
            if job.key in cache:
                resumed.append(job.student)
                on_ready(job.student)
                if progress is not None:
                    progress.step(instant=True)
            else:
                yield job

    def on_result(reply: dict) -> None:
        if "resultado" in reply:
            stored = store_result(cache, reply, failed)
            if stored:
                on_ready(reply["student"])
        else:
            errors[reply.get("student", "?")] = reply.get("error", "")
        if progress is not None:
            progress.step()

    if scheduler:
        run_dask(list(pending()), scheduler, on_result)
    else:
        run_local(pending(), workers or default_workers(), on_result)
    return errors
