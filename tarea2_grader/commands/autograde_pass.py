"""nbgrader's autograde pass: one nbgrader process that writes the trusted verdicts into the
gradebook, batch after batch of students, while the workers grade the others."""
from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Set

from tarea2_grader.integration import records
from tarea2_grader.integration.course import Course
from tarea2_grader.integration.grade_table import StudentResult
from tarea2_grader.integration.nbgrader_run import Run, kill_tree, load_config, nbgrader_env, run_nbgrader, sanitized_notebook
from tarea2_grader.parallel import workers as parallel

DEFAULT_BUDGET = 60  # sandbox seconds per student when the config sets no TrustedExecute.budget
PASS_WALL_PER_STUDENT = 60  # wall seconds a student may add to the nbgrader pass beyond twice the budget

REASON_TIMEOUT = "se superó el tiempo máximo de corrección por alumno ({} s)"
REASON_METADATA = "los metadatos de nbgrader del notebook están corruptos"


# ---------------------------------------------------------------- autograde

def failure_reason(run: Run, timeout: float) -> Optional[str]:
    """Spanish reason for a failed autograde run, None if it succeeded."""
    out = run.output
    if run.timed_out:
        return REASON_TIMEOUT.format(int(timeout))
    if run.returncode == 0:
        return None
    if "Notebook failed to validate" in out or "ValidationError" in out:
        return REASON_METADATA
    errors = [ln for ln in out.splitlines() if "Error" in ln or "error" in ln]
    detail = errors[-1].strip()[-200:] if errors else "código {}".format(run.returncode)
    return "nbgrader no pudo corregir el notebook ({})".format(detail)


class PassProcess:
    """One ``nbgrader autograde`` process that grades batch after batch of students
    (:func:`tarea2_grader.integration.nbgrader_cli.serve_batches`): nbgrader's start-up, about 2 s of CPU, is
    paid once per grading run instead of once per pass, and a pass can be as small as one student.

    A batch that runs out of time, or a process that dies, ends this process; the next batch then
    needs a new one (:attr:`alive`)."""

    def __init__(self, course: Course, args: Sequence[str]):
        from tarea2_grader.integration.nbgrader_cli import BATCHES_FLAG, batches_enabled
        self.course = course
        self.nonce = secrets.token_hex(16)
        self.batches = 0
        self.args, self.proc = list(args), None
        if not batches_enabled(load_config(course)):  # fast path "lotes" off: one nbgrader run per batch
            return
        cmd = [sys.executable, "-m", "tarea2_grader.integration.nbgrader_cli", BATCHES_FLAG, *args]
        self.proc = subprocess.Popen(cmd, cwd=course.root, env=nbgrader_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="tarea2-pasada").start()
        self._send(self.nonce)

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            self._lines.put(raw.decode("utf-8", "replace"))
        self._lines.put(None)

    def _send(self, text: str) -> bool:
        try:
            self.proc.stdin.write((text + "\n").encode("utf-8"))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    @property
    def alive(self) -> bool:
        """Whether the next batch can go to this process."""
        return self.proc is None or (self.proc.poll() is None and not self.proc.stdin.closed)

    def grade(self, students: Sequence[str], exclude: Sequence[str], timeout: float, on_line=None) -> Run:
        """Autograde ``students`` (every submitted student not in ``exclude``); nbgrader's output
        for them.  Past ``timeout`` seconds the process is killed (``timed_out``)."""
        from tarea2_grader.integration.nbgrader_cli import batch_args, batch_marker
        if self.proc is None:
            run = run_nbgrader(self.course, [*self.args, *batch_args(students, exclude)], timeout)
            for line in run.output.splitlines(keepends=True) if on_line else ():
                on_line(line)
            return run
        self.batches += 1
        marker = batch_marker(self.nonce, self.batches)
        lines: List[str] = []  # the first batch's include nbgrader's start-up output
        batch = {"student": students[0] if len(students) == 1 else "*", "exclude": list(exclude)}
        if not self._send(json.dumps(batch)):
            return Run(self.close() or 1, "".join(lines))
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                kill_tree(self.proc.pid)
                self.proc.wait()
                return Run(-9, "".join(lines), timed_out=True)
            if line is None:  # the process ended in the middle of the batch
                return Run(self.close() or 1, "".join(lines))
            if line.strip() == marker:
                return Run(0, "".join(lines))
            lines.append(line)
            if on_line:
                on_line(line)

    def close(self, timeout: float = 60) -> int:
        """No more batches: let the process end (killed past ``timeout`` seconds); its exit code."""
        if self.proc is None:
            return 0
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.proc.pid)
            self.proc.wait()
        return self.proc.returncode


def records_dir(course: Course) -> str:
    """Where nbgrader's passes leave one record per student (:mod:`tarea2_grader.integration.records`)."""
    return os.path.join(course.logs_dir, "registros")


def pass_args(course: Course, student_timeout: Optional[float], extra_args: Sequence[str]) -> List[str]:
    """The arguments of nbgrader's autograde pass on this course (its records go to :func:`records_dir`)."""
    args = ["autograde", course.assignment_arg, "--force", *extra_args,
            "--TrustedExecute.record_dir=" + records_dir(course)]
    if student_timeout and not any(a.startswith("--TrustedExecute.budget=") for a in extra_args):
        args.append("--TrustedExecute.budget={:g}".format(student_timeout))
    return args


def autograde_all(course: Course, students: Sequence[str], student_timeout: Optional[float] = None,
                  extra_args: Sequence[str] = (), say=lambda *a: None,
                  show_progress: bool = False, append_log: bool = False,
                  process: Optional[PassProcess] = None) -> Dict[str, StudentResult]:
    """Autograde the students in one nbgrader pass (one warm sandbox reused, student after student),
    in ``process`` (one started and ended here when None).

    The runner bounds each student (``TrustedExecute.budget``); the whole pass is bounded
    too and killed past it.  What the pass did for each student is read from their record
    (:func:`pass_outcome`), never from nbgrader's log; ``append_log`` keeps the log and the records
    of earlier passes.
    """
    students = list(students)
    results = {s: StudentResult(s) for s in students}
    if not students:
        return results
    budget = student_timeout or float(load_config(course).TrustedExecute.get("budget", DEFAULT_BUDGET))
    per_student = 2 * budget + PASS_WALL_PER_STUDENT
    others = [s for s in course.students() if s not in results]
    folder = records_dir(course)
    records.forget(folder, None if not append_log else students)
    files = {os.path.basename(records.record_path(folder, s)) for s in students}
    bar = parallel.Progress(len(students)) if show_progress else None
    counted: Set[str] = set()

    def follow(line):
        """Advance the bar by the records written since the last line (the line itself is not read)."""
        if bar is not None and os.path.isdir(folder):
            fresh = (files & set(os.listdir(folder))) - counted
            counted.update(fresh)
            if fresh:
                bar.step(len(fresh))

    limit = per_student * len(students) + 300
    own = process is None
    if own:
        process = PassProcess(course, pass_args(course, student_timeout, extra_args))
    try:
        run = process.grade(students, others, limit, follow)
    finally:
        if own:
            process.close()
    log_path = autograde_log(course)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a" if append_log else "w", encoding="utf-8") as fh:
        fh.write(run.output)
    expected = writes_records(course)
    for student, result in results.items():
        pass_outcome(course, result, records.read_record(folder, student), run, limit, expected)
    return results


def pass_outcome(course: Course, result: StudentResult, record: Optional[records.PassRecord], run: Run,
                 limit: float, expected: bool = True) -> None:
    """Fill ``result`` from what nbgrader's pass did for the student: their ``record`` and whether the
    autograded notebook was written.

    No record, or one that names a failure of the machinery: the student stays ungraded (never a
    0).  A record but no autograded notebook: nbgrader failed on the notebook after the verdicts
    (the reason, with nbgrader's last error line as detail).  Otherwise the grader's notes.
    ``expected``: the course runs the trusted runner (:func:`writes_records`); without it (stock
    nbgrader), only the autograded notebook tells.
    """
    done = os.path.exists(course.autograded_nb(result.student))
    if record is None and not expected:  # stock nbgrader grading: no records to read
        if not done:
            result.failure = failure_reason(Run(run.returncode or 1, run.output, run.timed_out), limit)
        return
    refused = None if record is not None or done or run.timed_out else notebook_refusal(course, result.student)
    if refused:
        result.failure = refused
    elif record is None or record.machinery:
        result.failure, result.machinery = (record.machinery if record else missing_reason(run, limit)), True
    elif not done:
        result.failure = failure_reason(Run(1, run.output, run.timed_out), limit)
    else:
        result.notes.extend(record.notes)
        return
    shutil.rmtree(os.path.dirname(course.autograded_nb(result.student)), ignore_errors=True)


def writes_records(course: Course) -> bool:
    """Whether the course's autograde runs the trusted runner (``TrustedExecute``), which leaves one
    record per student; a course configured with nbgrader's stock preprocessors leaves none."""
    names = load_config(course).Autograde.get("autograde_preprocessors")
    if names is None:
        return False
    return any((n if isinstance(n, str) else getattr(n, "__name__", "")).endswith("TrustedExecute") for n in names)


def notebook_refusal(course: Course, student: str) -> Optional[str]:
    """Why nbgrader refuses the student's notebook before any grading, from the same sanitizing run
    here (nbgrader's preprocessors, in process); None if it accepts it.

    A notebook nbgrader's sanitizing fails on (metadata that fails its checks, a renamed grade id
    that breaks ``OverwriteCells``) is the notebook's fault, as a corrupt file is: the student gets
    the reason.  An error of the database or the disk says nothing about the notebook (None: the
    machinery failed, the student stays ungraded).
    """
    from nbformat import ValidationError as FormatError
    from nbgrader.nbgraderformat.common import SchemaMismatchError
    from sqlalchemy.exc import SQLAlchemyError
    try:
        sanitized_notebook(course, student)
    except (FormatError, SchemaMismatchError):
        return REASON_METADATA
    except (OSError, SQLAlchemyError, MemoryError):
        return None
    except Exception as exc:
        return "nbgrader no pudo corregir el notebook ({}: {})".format(type(exc).__name__, str(exc)[:160])
    return None


def missing_reason(run: Run, limit: float) -> str:
    """Why a student has no record after a pass (the machinery's failure, in Spanish): the pass ran
    out of time, else nbgrader's last error line (for people; it decides nothing)."""
    return failure_reason(Run(run.returncode or 1, run.output, run.timed_out), limit)


def autograde_log(course: Course) -> str:
    """nbgrader autograde's output for the last grading run (for people: nothing reads it back)."""
    return os.path.join(course.logs_dir, "autograde.log")


def passed_from_cache(course: Course) -> Set[str]:
    """Students whose verdicts the last run's nbgrader passes took from the workers' cache (the
    others were graded a second time, inside nbgrader's pass), from their records."""
    return {s for s, r in records.read_records(records_dir(course)).items() if r.from_cache}


class GradebookPasses:
    """nbgrader's autograde pass on the students whose verdicts are ready, while the workers grade
    the others.

    One nbgrader process (the gradebook has one writer, and nbgrader starts once), fed by a
    background thread: each pass takes every student that became ready since the previous one
    started, at least ``batch`` of them while grading goes on.  :meth:`finish` runs the last pass
    on the students left (those the workers skipped included: nbgrader grades them itself).  A
    student's pass is the same whichever batch it is in; only the idle core at the end of grading
    is saved.
    """

    def __init__(self, course: Course, student_timeout: float, args: Sequence[str], batch: int = 1):
        self.course, self.student_timeout, self.args, self.batch = course, student_timeout, list(args), batch
        self.results: Dict[str, StudentResult] = {}
        self.waiting: List[str] = []
        self.closed = False
        self.passes = 0
        self.error: Optional[BaseException] = None
        self._process: Optional[PassProcess] = None
        self._cv = threading.Condition()
        if os.path.exists(autograde_log(course)):
            os.remove(autograde_log(course))  # every pass of this run appends to it
        records.forget(records_dir(course))  # and leaves its records beside the earlier passes'
        self._thread = threading.Thread(target=self._loop, daemon=True, name="tarea2-pasadas")
        self._thread.start()

    def add(self, student: str) -> None:
        """``student``'s verdicts are in the cache."""
        with self._cv:
            if student not in self.results and student not in self.waiting:
                self.waiting.append(student)
                self._cv.notify()

    def _take(self) -> List[str]:
        with self._cv:
            while not self.closed and (self.batch <= 0 or len(self.waiting) < self.batch):
                self._cv.wait()
            if self.closed:
                return []
            taken, self.waiting = self.waiting, []
            return taken

    def _run(self, students: Sequence[str], say=lambda *a: None, show_progress: bool = False) -> None:
        self.passes += 1
        if self._process is None or not self._process.alive:  # the first pass, or after a killed one
            self._process = PassProcess(self.course, pass_args(self.course, self.student_timeout, self.args))
        self.results.update(autograde_all(self.course, students, self.student_timeout, self.args, say,
                                          show_progress, append_log=True, process=self._process))

    def _loop(self) -> None:
        try:
            while True:
                students = self._take()
                if not students:
                    return
                self._run(students)
        except BaseException as exc:  # reported by finish(); the last pass grades whoever is left
            self.error = exc

    def _halt(self) -> None:
        """No more passes from the background thread; wait for the one under way."""
        with self._cv:
            self.closed = True
            self._cv.notify_all()
        self._thread.join()

    def stop(self) -> None:
        """No more passes; wait for the one under way (grading was interrupted: the gradebook is
        left consistent, and the next run passes whoever is missing)."""
        self._halt()
        self._close_process()

    def _close_process(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None

    def finish(self, students: Sequence[str], say=lambda *a: None,
               show_progress: bool = False) -> Dict[str, StudentResult]:
        """Wait for the pass under way, then pass every student of ``students`` not passed yet
        (in the same nbgrader process)."""
        self._halt()
        left = [s for s in students if s not in self.results]
        if self.passes:
            say("   {} alumno(s) ya pasaron por nbgrader mientras se corregía ({} pasada(s)); quedan {}".format(
                len(self.results), self.passes, len(left)))
        try:
            if left:
                self._run(left, say, show_progress)
        finally:
            self._close_process()
        return {s: self.results[s] for s in students}


def autograde_student(course: Course, student: str, timeout: float,
                      extra_args: Sequence[str] = ()) -> StudentResult:
    """Autograde one student (nbgrader in a subprocess, student code in the sandbox it starts)."""
    return autograde_all(course, [student], timeout, extra_args)[student]
