"""The instructor's grading pipeline: release, collect, repair, autograde, feedback, grades.csv.

Every step runs real nbgrader commands in subprocesses, from the course root, so
the course's ``nbgrader_config.py`` applies exactly as for plain ``nbgrader``
commands; it plugs in the trusted runner (:mod:`tarea2_grader.integration.nbplugin`), which
runs each student's code in a sandbox and decides every test outside it.  Each
student is autograded in their own subprocess with a wall-clock limit: a corrupt
file or a grading failure costs only that student, who gets a Spanish reason in
``grades.csv`` (column ``observaciones``).
"""
from __future__ import annotations

import csv
import glob
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set

import nbformat
import psutil

from tarea2_grader.parallel import canario
from tarea2_grader.integration import collect
from tarea2_grader.engine import repair
from tarea2_grader.engine import tamano
from tarea2_grader.integration.course import ASSIGNMENT, NOTEBOOK, Course  # noqa: F401  (pipeline.Course: the commands' entry point)
from tarea2_grader.parallel import workers as parallel


# The one place that says which part of the assignment each answer cell belongs
# to (the spec's table).  Every grade cell is counted in the part of the last
# answer cell above it; a notebook without these ids falls back to its
# "Parte N" headings.
ANSWER_PARTS = {
    "derivadas_md": "1a", "derivadas_codigo": "1a",
    "celoss": "1b", "categorical_celoss": "1c",
    "dL_duLm1_md": "2a", "dL_duLm1": "2a",
    "ultima_capa_md": "2b", "ultima_capa": "2b",
    "capas_escondidas_md": "2c", "capas_escondidas": "2c",
    "ffnn_backward": "3a", "chequeo_gradiente": "3c",
    "sgd": "4a", "random_dataset": "4b", "entrenar": "4c",
    "graficos": "4d", "mnist": "4e",
}
HEADING_PART = re.compile(r"^#{1,4}\s*(?:Parte|Pregunta)\s+([0-9]+[a-z]?)\b", re.I | re.M)

DEFAULT_BUDGET = 60  # sandbox seconds per student when the config sets no TrustedExecute.budget
PASS_WALL_PER_STUDENT = 60  # wall seconds a student may add to the nbgrader pass beyond twice the budget

REASON_TIMEOUT = "se superó el tiempo máximo de corrección por alumno ({} s)"
REASON_METADATA = "los metadatos de nbgrader del notebook están corruptos"
UNGRADED_PREFIX = "sin corregir (falla del corrector): "
NO_ISOLATION_NOTE = ("sin aislamiento: corregido sin bubblewrap ({}); el código del estudiante pudo leer y escribir "
                     "archivos de este computador")

# Exit status of `python -m tarea2_grader grade` (README, "Si el corrector falla").
EXIT_GRADED = 0          # every student graded (or given the reason their notebook could not be)
EXIT_NOTHING_GRADED = 2  # the canary failed (or bubblewrap is missing): nothing was written
EXIT_UNGRADED = 3        # some students left ungraded by a failure of the machinery: run it again


@dataclass
class StudentResult:
    """What happened to one student in the pipeline."""

    student: str
    notes: List[str] = field(default_factory=list)
    failure: Optional[str] = None
    machinery: bool = False  # the failure is the grading machinery's: ungraded, not 0

    def observations(self) -> str:
        """The Spanish text of the ``observaciones`` column."""
        failure = (UNGRADED_PREFIX + self.failure) if self.failure and self.machinery else self.failure
        items = ([failure] if failure else []) + self.notes
        return "; ".join(items)


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
    cmd = [sys.executable, "-m", "tarea2_grader.integration.nbgrader_cli", *args]  # nbgrader, started faster
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


# ---------------------------------------------------------------- release

def release(course: Course) -> str:
    """``nbgrader generate_assignment`` into release/ (and the gradebook); return the notebook."""
    check(run_nbgrader(course, ["generate_assignment", course.assignment_arg, "--force"]),
          "generate_assignment")
    return course.path("release", course.assignment, course.notebook + ".ipynb")


def sync_gradebook(course: Course, scratch: str) -> str:
    """Record the source's cells in the gradebook without touching release/.

    Returns the release notebook generated in ``scratch`` (the reference for repair).
    """
    check(run_nbgrader(course, ["generate_assignment", course.assignment_arg, "--force",
                                "--CourseDirectory.release_directory=" + scratch]),
          "generate_assignment")
    return os.path.join(scratch, course.assignment, course.notebook + ".ipynb")


# ---------------------------------------------------------------- collect

def collector_args(course: Course) -> List[str]:
    """Command-line options selecting our collector and extractor when the config names none."""
    cfg = load_config(course)
    args = []
    if "collector_plugin" not in cfg.ZipCollectApp:
        args.append("--ZipCollectApp.collector_plugin=tarea2_grader.integration.collect.LmsCollectorPlugin")
    if "extractor_plugin" not in cfg.ZipCollectApp:
        args.append("--ZipCollectApp.extractor_plugin=tarea2_grader.integration.collect.SafeExtractorPlugin")
    return args


def collection_plan(course: Course):
    """(plan, collected notebook name): which file of the extracted LMS download went to which
    student; (None, name) when the course uses another collector."""
    cfg = load_config(course)
    plugin_cls = cfg.ZipCollectApp.get("collector_plugin", "tarea2_grader.integration.collect.LmsCollectorPlugin")
    if plugin_cls not in ("tarea2_grader.integration.collect.LmsCollectorPlugin", collect.LmsCollectorPlugin):
        return None, course.notebook + ".ipynb"
    plugin = collect.LmsCollectorPlugin(config=cfg)
    target = plugin.notebook_name or course.notebook + ".ipynb"
    return collect.plan_collection(course.extracted_dir, plugin.active_patterns(), target,
                                   tuple(plugin.valid_ext)), target


def collection_notes(course: Course) -> Dict[str, List[str]]:
    """Spanish notes per student about renamed or extra notebooks they sent."""
    plan, target = collection_plan(course)
    if plan is None:
        return {}
    notes: Dict[str, List[str]] = {}
    for sid, entry in plan.students.items():
        items = notes.setdefault(sid, [])
        name = entry.name_of(entry.chosen)
        if name != target:
            items.append("notebook entregado como '{}'".format(name))
        if entry.skipped():
            items.append("envió {} notebooks; se corrigió '{}' (ignorados: {})".format(
                len(entry.candidates), name, ", ".join(entry.name_of(p) for p in entry.skipped())))
    for rel in plan.unmatched + plan.bad_ids:
        print("  aviso: archivo sin alumno reconocible, ignorado: " + rel)
    for sid, reason in refusal_notes(course).items():
        notes.setdefault(sid, []).append(reason)
    return notes


def refusal_notes(course: Course) -> Dict[str, str]:
    """{student: Spanish note} for the files the extractor refused (tarea2_grader/integration/collect.py)."""
    patterns = collect.LmsCollectorPlugin(config=load_config(course)).active_patterns()
    notes: Dict[str, List[str]] = {}
    for item in collect.read_refusals(course.extracted_dir):
        info = collect.match_path(item["archivo"], patterns)
        line = "no se extrajo '{}' ({})".format(item["archivo"].rsplit("/", 1)[-1], item.get("motivo", ""))
        if info and collect.ASCII_ID.match(info["student_id"]):
            notes.setdefault(info["student_id"], []).append(line)
        else:
            print("  aviso: no se extrajo {} ({})".format(item["archivo"], item.get("motivo", "")))
    return {sid: "; ".join(lines) for sid, lines in notes.items()}


def refused_students(collected: Dict[str, List[str]], students: Sequence[str]) -> Dict[str, "StudentResult"]:
    """Students with notes from the collection but nothing collected (every file they sent was
    refused): a row with the reason."""
    return {sid: StudentResult(sid, [], "entrega rechazada: " + "; ".join(notes))
            for sid, notes in collected.items() if sid not in students and notes}


def set_aside_unreadable_archives(course: Course) -> List[str]:
    """Move archives that are neither zip nor tar out of the way (zip_collect would abort on them)."""
    import tarfile
    import zipfile
    moved = []
    for name in sorted(os.listdir(course.archive_dir)):
        path = os.path.join(course.archive_dir, name)
        if os.path.isfile(path) and not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
            aside = course.path("downloaded", course.assignment, "ilegibles")
            os.makedirs(aside, exist_ok=True)
            shutil.move(path, os.path.join(aside, name))
            moved.append(name)
    return moved


def collect_archives(course: Course) -> Dict[str, List[str]]:
    """Extract and collect the zips in downloaded/<assignment>/archive/ (if any)."""
    if not os.path.isdir(course.archive_dir):
        return {}
    for name in set_aside_unreadable_archives(course):
        print("  aviso: '{}' no es un zip válido; se movió a downloaded/{}/ilegibles/ y se corrige el resto"
              .format(name, course.assignment))
    if not os.listdir(course.archive_dir):
        return {}
    check(run_nbgrader(course, ["zip_collect", course.assignment_arg, "--force",
                                *collector_args(course)]), "zip_collect")
    return collection_notes(course)


def rename_stray_notebook(course: Course, student: str) -> Optional[str]:
    """When a submitted folder has no <notebook>.ipynb, rename the best other notebook."""
    wanted = course.submitted_nb(student)
    if os.path.exists(wanted):
        return None
    others = glob.glob(os.path.join(glob.escape(course.submitted_dir(student)), "*.ipynb"))
    if not others:
        return None
    best = sorted(others, key=lambda p: collect.candidate_rank(p, os.path.basename(wanted)))[0]
    os.rename(best, wanted)
    return "notebook entregado como '{}'".format(os.path.basename(best))


# ---------------------------------------------------------------- repair

def repair_student(course: Course, student: str, release_nb: str, result: StudentResult) -> bool:
    """Repair a student's notebook in place; False (with a reason) when it cannot be graded."""
    note = rename_stray_notebook(course, student)
    if note and note not in result.notes:
        result.notes.append(note)
    path = course.submitted_nb(student)
    if not os.path.exists(path):
        result.failure = "no se encontró ningún notebook en la entrega"
        return False
    try:  # before anything reads the whole file: outputs and attachments over the size caps cut
        result.notes.extend(tamano.cap_submission(path, tamano.SizeLimits(config=load_config(course))))
    except tamano.TooLarge as exc:
        result.failure = str(exc)
        return False
    try:
        report = repair.repair_notebook(path, release_nb, course.source_nb)
    except repair.NotebookUnreadable as exc:
        result.failure = str(exc)
        return False
    except Exception as exc:  # e.g. valid JSON that is not a valid notebook: this student only
        result.failure = "el archivo no es un notebook válido ({}: {})".format(type(exc).__name__, str(exc)[:150])
        return False
    result.notes.extend(report.messages())
    return True


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


def grading_notes(course: Course, student: str) -> List[str]:
    """What the trusted runner noted while grading (cells out of time, crashes), from the autograded notebook."""
    path = course.autograded_nb(student)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        meta = json.load(fh).get("metadata", {}).get(nbplugin_meta_key(), {})
    notes = meta.get("notas", []) if isinstance(meta, dict) else []
    return [str(n) for n in notes if isinstance(n, str)]


def nbplugin_meta_key() -> str:
    """Where TrustedExecute records the seed and notes in the autograded notebook."""
    from tarea2_grader.integration.nbplugin import META_KEY
    return META_KEY


# ---------------------------------------------------------------- parallel grading

TRUSTED_SETTINGS = ("cell_timeout", "test_timeout", "memory_mb", "cpu_seconds", "budget", "disk_mb", "static_review",
                    "timeout_after_loop", "tests_module", "rerun_after_last_test")


def trusted_settings(course: Course, extra_args: Sequence[str] = (), student_timeout: Optional[float] = None):
    """``TrustedExecute`` configured as nbgrader will configure it: the course config plus overrides."""
    from tarea2_grader.integration.nbplugin import TrustedExecute
    te = TrustedExecute(config=load_config(course))
    traits = te.traits(config=True)
    for arg in extra_args:
        m = re.match(r"--TrustedExecute\.(\w+)=(.*)$", arg)
        if m and m.group(1) in traits:
            setattr(te, m.group(1), traits[m.group(1)].from_string(m.group(2)))
    if student_timeout:  # the command line's --timeout-alumno: the per-student budget
        te.budget = float(student_timeout)
    return te


def trusted_args(te) -> List[str]:
    """Options that make nbgrader's own ``TrustedExecute`` use exactly ``te``'s settings."""
    return ["--TrustedExecute.{}={}".format(name, getattr(te, name)) for name in TRUSTED_SETTINGS] + [
        "--TrustedExecute.fresh_seeds=False"]


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


def pregrade(course: Course, students: Sequence[str], te, workers: int = 0, scheduler: str = "",
             recompute: bool = False, say=lambda *a: None, progress: bool = True,
             on_ready: Callable[[str], None] = lambda student: None,
             prepare: Callable[[str], bool] = lambda student: True,
             failed: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Grade ``students`` in parallel into the verdict cache, before nbgrader's own run.

    Local threads (``workers``, 0: one per core) or the Dask cluster at ``scheduler``.  Students
    whose exact job is already cached are not graded again (an interrupted run resumes), unless
    ``recompute``.  ``prepare(student)`` runs just before the student's job is built (False: the
    student is not graded at all); ``on_ready(student)`` as each student's verdicts are in the cache.
    Returns {student: why the parallel grading skipped them}: nbgrader's run then grades those
    itself, so nothing here can change a grade, only its cost.  ``failed`` (a dict) receives the
    students the machinery could not grade (:func:`workers.grade_jobs`): nobody grades them now.
    """
    from tarea2_grader.integration.nbplugin import seed_for
    cfg = load_config(course)
    cache = parallel.VerdictCache(course.path(parallel.CACHE_DIRNAME))
    skipped: Dict[str, str] = {}
    refused: List[str] = []

    def jobs():
        """Each student's job, built (nbgrader's sanitizing, here) while earlier ones are graded."""
        for student in students:
            if not prepare(student):
                refused.append(student)
                continue
            try:
                nb = sanitized_notebook(course, student, cfg)
            except Exception as exc:  # nbgrader's run meets the same problem and reports it
                skipped[student] = "{}: {}".format(type(exc).__name__, exc)
                continue
            seed = seed_for(course.root, course.assignment, student, te.fresh_seeds)
            job = parallel.make_job(student, nb, seed, te.limits(), te.tests_module, te.rerun_after_last_test,
                                    import_paths=[course.root])
            if recompute and os.path.exists(cache.path(job.key)):
                os.remove(cache.path(job.key))
            yield job

    where = "el clúster Dask en " + scheduler if scheduler else "{} trabajador(es) locales".format(
        workers or parallel.default_workers())
    say("   {} alumno(s) en {}".format(len(students), where))
    bar = parallel.Progress(len(students)) if students and progress else None
    resumed: List[str] = []
    errors = parallel.grade_jobs(jobs(), cache, workers, scheduler, bar, resumed, on_ready, failed)
    if bar is not None and (skipped or refused):
        bar.step(len(skipped) + len(refused), instant=True)
    skipped.update(errors)
    if resumed:
        say("   {} alumno(s) ya tenían veredictos de esta misma entrega y versión de los tests "
            "(veredictos/): no se corrigieron de nuevo".format(len(resumed)))
    for student, why in sorted(skipped.items()):
        say("   {}: se corrige aparte, en la pasada de nbgrader ({})".format(student, why[:200]))
    return skipped


class PassProcess:
    """One ``nbgrader autograde`` process that grades batch after batch of students
    (:func:`tarea2_grader.integration.nbgrader_cli.serve_batches`): nbgrader's start-up, about 2 s of CPU, is
    paid once per grading run instead of once per pass, and a pass can be as small as one student.

    A batch that runs out of time, or a process that dies, ends this process; the next batch then
    needs a new one (:attr:`alive`)."""

    def __init__(self, course: Course, args: Sequence[str]):
        from tarea2_grader.integration.nbgrader_cli import BATCHES_FLAG
        self.course = course
        self.nonce = secrets.token_hex(16)
        self.batches = 0
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
        return self.proc.poll() is None and not self.proc.stdin.closed

    def grade(self, students: Sequence[str], exclude: Sequence[str], timeout: float, on_line=None) -> Run:
        """Autograde ``students`` (every submitted student not in ``exclude``); nbgrader's output
        for them.  Past ``timeout`` seconds the process is killed (``timed_out``)."""
        from tarea2_grader.integration.nbgrader_cli import batch_marker
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


def pass_args(course: Course, student_timeout: Optional[float], extra_args: Sequence[str]) -> List[str]:
    """The arguments of nbgrader's autograde pass on this course."""
    args = ["autograde", course.assignment_arg, "--force", *extra_args]
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
    too and killed past it.  Students that nbgrader could not grade get a reason.
    """
    students = list(students)
    results = {s: StudentResult(s) for s in students}
    if not students:
        return results
    budget = student_timeout or float(load_config(course).TrustedExecute.get("budget", DEFAULT_BUDGET))
    per_student = 2 * budget + PASS_WALL_PER_STUDENT
    others = [s for s in course.students() if s not in results]
    started = re.compile(r"(?:Calificando|Veredictos de) (\S+) ")
    failed = re.compile(r"There was an error processing assignment '[^']*' for student '([^']+)'")
    errors = set()
    machinery = machinery_failures_in_log

    bar = parallel.Progress(len(students)) if show_progress else None

    def follow(line):
        m = started.search(line)
        if m and m.group(1) in results and bar is not None:
            bar.step()
        m = failed.search(line)
        if m:
            errors.add(m.group(1))

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
    broken = machinery(run.output)
    for student, result in results.items():
        done = os.path.exists(course.autograded_nb(student))
        if student in broken:
            result.failure, result.machinery = broken[student], True
            shutil.rmtree(os.path.dirname(course.autograded_nb(student)), ignore_errors=True)
        elif student in errors or not done:
            result.failure = (REASON_TIMEOUT.format(int(limit)) if run.timed_out and not done
                              else failure_reason(Run(1, run.output), limit))
            shutil.rmtree(os.path.dirname(course.autograded_nb(student)), ignore_errors=True)
        else:
            result.notes.extend(grading_notes(course, student))
    return results


def machinery_failures_in_log(output: str) -> Dict[str, str]:
    """{student: reason} for the students nbgrader's pass could not grade by a failure of the
    machinery (``TrustedExecute`` logs them: :data:`tarea2_grader.integration.nbplugin.MACHINERY_LOG`)."""
    from tarea2_grader.integration.nbplugin import MACHINERY_LOG
    pattern = re.escape(MACHINERY_LOG).replace(re.escape("%s"), r"(\S+)", 1).replace(re.escape("%s"), r"(.*)", 1)
    return {m.group(1): m.group(2).strip() for m in re.finditer(pattern, output)}


def autograde_log(course: Course) -> str:
    """nbgrader autograde's output for the last grading run."""
    return os.path.join(course.logs_dir, "autograde.log")


def passed_from_cache(course: Course) -> Set[str]:
    """Students whose verdicts the last run's nbgrader passes took from the workers' cache (the
    others were graded a second time, inside nbgrader's pass)."""
    from tarea2_grader.integration.nbplugin import FROM_CACHE_LOG
    path = autograde_log(course)
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    pattern = re.escape(FROM_CACHE_LOG).replace(re.escape("%s"), r"(\S+)")
    return set(re.findall(pattern, text))


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


def generate_feedback(course: Course, students: Iterable[str], workers: int = 1) -> None:
    """``nbgrader generate_feedback`` for ``students``, split over ``workers`` processes.

    Each process only reads the gradebook and writes its own students' pages.  nbgrader goes on
    past a page it cannot write; when a process fails, the students of its group left without a
    new page (a broken page, or a process that ran out of time) get one more process together,
    and whoever still has none is reported: one broken page costs only that student's feedback.
    """
    students = list(students)
    if not students:
        return
    everyone = course.students()
    groups = [students[i::workers] for i in range(max(1, min(workers, len(students))))]

    def run(group) -> int:
        others = [s for s in everyone if s not in set(group)]
        args = ["generate_feedback", course.assignment_arg, "--force"]
        if others:
            args.append("--CourseDirectory.student_id_exclude=" + ",".join(others))
        return run_nbgrader(course, args, timeout=300 + 30 * len(group)).returncode

    def without_page(group, since: float) -> List[str]:
        page = course.feedback_page
        return [s for s in group if not (os.path.exists(page(s)) and os.path.getmtime(page(s)) >= since)]

    def one_group(group):
        since = time.time()
        if run(group) == 0:
            return
        missing = without_page(group, since)
        if missing:
            since = time.time()
            run(missing)
        for student in without_page(missing, since):
            print("  aviso: no se pudo generar la retroalimentación de {}".format(student))

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        list(pool.map(one_group, groups))


# ---------------------------------------------------------------- grades

@dataclass
class CellInfo:
    """A grade cell of the source notebook."""

    grade_id: str
    part: str
    points: float
    manual: bool


def grade_cells(source_nb, answer_parts: Dict[str, str] = ANSWER_PARTS) -> List[CellInfo]:
    """Grade cells of the source notebook (a path or a notebook), in order, each with its part label."""
    nb = source_nb if isinstance(source_nb, dict) else nbformat.read(source_nb, as_version=4)
    cells, current, heading = [], None, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = HEADING_PART.search(cell.source)
            if m:
                heading = m.group(1)
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if gid in answer_parts:
            current = answer_parts[gid]
        if meta.get("grade"):
            part = current or heading or "otros"
            cells.append(CellInfo(gid, part, float(meta.get("points", 0)), bool(meta.get("solution"))))
    return cells


def parts_of(cells: List[CellInfo]) -> List[str]:
    """Part labels with points, in notebook order."""
    parts: List[str] = []
    for c in cells:
        if c.points > 0 and c.part not in parts:
            parts.append(c.part)
    return parts


def submission_scores(sub) -> Dict[str, Optional[float]]:
    """Score per grade_id of one gradebook SubmissionNotebook; None = pending manual grading."""
    per_cell: Dict[str, Optional[float]] = {}
    for grade in sub.grades:
        if grade.manual_score is not None:
            per_cell[grade.name] = float(grade.manual_score) + float(grade.extra_credit or 0)
        elif grade.auto_score is not None:
            per_cell[grade.name] = float(grade.auto_score) + float(grade.extra_credit or 0)
        else:
            per_cell[grade.name] = None
    return per_cell


def read_scores(course: Course, students: Iterable[str]) -> Dict[str, Dict[str, Optional[float]]]:
    """Score per grade_id per student from the gradebook; None = pending manual grading."""
    from nbgrader.api import Gradebook, MissingEntry
    db = "sqlite:///" + os.path.abspath(course.path("gradebook.db"))
    scores: Dict[str, Dict[str, Optional[float]]] = {}
    with Gradebook(db, course_id(course)) as gb:
        for student in students:
            try:
                sub = gb.find_submission_notebook(course.notebook, course.assignment, student)
            except MissingEntry:
                continue
            scores[student] = submission_scores(sub)
    return scores


# ---------------------------------------------------------------- review of flagged cells

REVISION_MARKED = "marcada"      # a flagged test cell scores 0 and waits for a person (formgrader)
REVISION_RESTORED = "restaurado"  # a person typed points in every flagged cell, some of them above 0
REVISION_CONFIRMED = "revisada"   # a person reviewed every flagged cell and left each at 0


def review_status(review: Dict[str, Optional[float]]) -> str:
    """The ``revision`` column from {flagged grade_id: manual score, None while nobody typed one}."""
    if not review:
        return ""
    if any(v is None for v in review.values()):
        return REVISION_MARKED
    return REVISION_RESTORED if any(v > 0 for v in review.values()) else REVISION_CONFIRMED


def flagged_in_autograded(course: Course, student: str) -> List[str]:
    """The test cells of a student that the static review flagged, as ``TrustedExecute`` recorded
    them in the autograded notebook's metadata ([] when there is none)."""
    from tarea2_grader.integration.nbplugin import flagged_cells
    path = course.autograded_nb(student)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            return flagged_cells(json.load(fh).get("metadata", {}))
    except (OSError, ValueError, AttributeError):
        return []


def review_of(sub, flagged: Iterable[str]) -> Dict[str, Optional[float]]:
    """{flagged grade_id: the manual score a person typed in formgrader, or None} of one gradebook
    SubmissionNotebook."""
    flagged = list(flagged)
    if not flagged:
        return {}
    manual = {g.name: g.manual_score for g in sub.grades}
    return {gid: (None if manual.get(gid) is None else float(manual[gid])) for gid in flagged if gid in manual}


def read_reviews(course: Course, students: Iterable[str]) -> Dict[str, Dict[str, Optional[float]]]:
    """{student: :func:`review_of`} for the students with flagged cells (the gradebook is opened
    only when someone has one)."""
    from nbgrader.api import Gradebook, MissingEntry
    flagged = {s: f for s, f in ((s, flagged_in_autograded(course, s)) for s in students) if f}
    if not flagged:
        return {}
    db = "sqlite:///" + os.path.abspath(course.path("gradebook.db"))
    reviews: Dict[str, Dict[str, Optional[float]]] = {}
    with Gradebook(db, course_id(course)) as gb:
        for student, cells in flagged.items():
            try:
                sub = gb.find_submission_notebook(course.notebook, course.assignment, student)
            except MissingEntry:
                continue
            reviews[student] = review_of(sub, cells)
    return reviews


@dataclass
class Row:
    """One line of grades.csv."""

    student: str
    parts: Dict[str, float]
    pending: Dict[str, float]
    total: float
    pending_total: float
    observations: str
    seed: Optional[int] = None
    ungraded: bool = False  # the machinery failed: no points at all (blank in grades.csv), not 0
    revision: str = ""  # review_status of the flagged cells: '', marcada, restaurado, revisada


def build_rows(cells: List[CellInfo], scores: Dict[str, Dict[str, Optional[float]]],
               results: Dict[str, StudentResult], seeds: Optional[Dict[str, int]] = None,
               reviews: Optional[Dict[str, Dict[str, Optional[float]]]] = None) -> List[Row]:
    """Per-student part totals; failed students get 0 and their reason."""
    seeds, reviews = seeds or {}, reviews or {}
    parts = parts_of(cells)
    rows = []
    for student in sorted(results):
        res = results[student]
        got = {p: 0.0 for p in parts}
        pend = {p: 0.0 for p in parts}
        per_cell = scores.get(student, {}) if res.failure is None else {}
        for c in cells:
            if c.part not in got:
                continue
            if c.grade_id in per_cell and per_cell[c.grade_id] is None:
                pend[c.part] += c.points
            else:
                got[c.part] += per_cell.get(c.grade_id) or 0.0
        rows.append(Row(student, got, pend, sum(got.values()), sum(pend.values()), res.observations(),
                        seeds.get(student) if res.failure is None else None, ungraded=res.machinery,
                        revision=review_status(reviews.get(student, {})) if res.failure is None else ""))
    return rows


def fmt(x: float) -> str:
    """Compact number: 12, 7.5."""
    return ("%.1f" % x).rstrip("0").rstrip(".")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """Text for a CSV cell that a spreadsheet never runs as a formula: one starting with
    = + - @ (or a tab or carriage return) gets a leading apostrophe."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_id(text: str) -> str:
    """A student id read back from a grades.csv cell (:func:`csv_text` undone: ids never start
    with an apostrophe)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text


def write_csv(path: str, cells: List[CellInfo], rows: List[Row]) -> None:
    """grades.csv: student_id, total, pendiente_manual, parte_*, observaciones, semilla, revision.

    ``semilla`` is the seed of the student's hidden inputs (a regrade reuses it); ``revision`` says
    whether a test cell flagged by the static review waits for a person (``marcada``) or was
    reviewed (``restaurado``, ``revisada``).  Text cells never start like a spreadsheet formula.
    """
    parts = parts_of(cells)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "total", "pendiente_manual"]
                        + ["parte_" + p for p in parts] + ["observaciones", "semilla", "revision"])
        for row in rows:
            num = (lambda x: "") if row.ungraded else fmt  # an ungraded student has no points, not 0
            writer.writerow([csv_text(row.student), num(row.total), num(row.pending_total)]
                            + [num(row.parts[p]) for p in parts] + [csv_text(row.observations),
                                                                    "" if row.seed is None else row.seed,
                                                                    row.revision])


def part_maxima(cells: List[CellInfo]) -> Dict[str, float]:
    """Maximum points of each part with points, in notebook order."""
    return {p: sum(c.points for c in cells if c.part == p) for p in parts_of(cells)}


def format_table(cells: List[CellInfo], rows: List[Row]) -> str:
    """Compact text table: student x part points, total, pending, observations."""
    parts = parts_of(cells)
    maxima = part_maxima(cells)
    width = max([len("alumno")] + [len(r.student) for r in rows])
    head = ["alumno".ljust(width)] + [p.rjust(5) for p in parts] + ["total".rjust(6), "pend.".rjust(5)]
    maxl = ["(máx)".ljust(width)] + [fmt(maxima[p]).rjust(5) for p in parts] + [
        fmt(sum(maxima.values())).rjust(6), "".rjust(5)]
    lines = ["  ".join(head), "  ".join(maxl)]
    for r in rows:
        cols = [r.student.ljust(width)]
        if r.ungraded:
            lines.append("  ".join(cols + ["-".rjust(5)] * len(parts) + ["-".rjust(6), "-".rjust(5)]))
            continue
        for p in parts:
            cell = fmt(r.parts[p]) + ("*" if r.pending[p] else "")
            cols.append(cell.rjust(5))
        cols += [fmt(r.total).rjust(6), (fmt(r.pending_total) if r.pending_total else "-").rjust(5)]
        lines.append("  ".join(cols))
    lines.append("* = incluye puntos pendientes de corrección manual (formgrader); pend. = puntos por corregir a mano")
    for r in rows:
        if r.observations:
            lines.append("{}: {}".format(r.student, r.observations))
    lines += review_lines(rows)
    return "\n".join(lines)


def review_lines(rows: List[Row]) -> List[str]:
    """The table's lines about the cells the static review flagged (none when nobody has one)."""
    reviewed = [r for r in rows if r.revision]
    if not reviewed:
        return []
    lines = ["revisión (columna revision de grades.csv): " + ", ".join(
        "{} {}".format(r.student, r.revision) for r in reviewed)]
    if any(r.revision == REVISION_MARKED for r in reviewed):
        lines.append("  marcada = un test vale 0 hasta que una persona lo revise: formgrader lo lista como "
                     "\"needs manual grade\" (ver README, \"Partes marcadas por la revisión del código\")")
    return lines


# ---------------------------------------------------------------- the whole thing

def parallel_settings(course: Course, workers: Optional[int] = None, scheduler: Optional[str] = None):
    """``ParallelGrading`` from the course config, with the command line's choices on top."""
    settings = parallel.ParallelGrading(config=load_config(course))
    if workers is not None:
        settings.workers = int(workers)
    if scheduler is not None:
        settings.scheduler = scheduler
    return settings


def grade(course: Course, student_timeout: Optional[float] = None,
          autograde_args: Sequence[str] = (), quiet: bool = False, workers: Optional[int] = None,
          scheduler: Optional[str] = None, recompute: bool = False) -> List[Row]:
    """Collect, repair, autograde, feedback and grades.csv for every submitted student.

    Students are graded ``workers`` at a time (default: the config's ``ParallelGrading.workers``,
    else one per core), or on the Dask cluster at ``scheduler``; ``recompute`` ignores the
    verdicts kept from an earlier or interrupted run.
    """
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    from tarea2_grader.engine import runner
    te = trusted_settings(course, autograde_args, student_timeout)
    no_isolation = isolation(te, say)  # raises canario.CorrectorRoto when bubblewrap is required
    settings = parallel_settings(course, workers, scheduler)
    if not settings.scheduler:  # the local workers' sandboxes import torch while the class is collected
        runner.TALLERES.precalentar(te.limits(), runner.aislamiento_disponible(),
                                    settings.workers or parallel.default_workers())
        threading.Thread(target=warm_coordinator, args=(te.tests_module, course.root), daemon=True,
                         name="tarea2-calentar").start()
    say("== sincronizando el gradebook con source/ ==")
    say("== recogiendo entregas de {} ==".format(os.path.relpath(course.archive_dir, course.root)))
    scratch = tempfile.mkdtemp(prefix="tarea2-release-")
    try:
        # zip_collect does not use the gradebook: it runs while generate_assignment records source/
        # in it (the block waits for it even when the sync fails)
        # the canary proves the sandbox works meanwhile, on a warm sandbox: checked before anyone is graded
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tarea2-recoger") as pool:
            collecting = pool.submit(collect_archives, course)
            canary = pool.submit(canario.comprobar, te.limits(), settings.scheduler)
            release_nb = sync_gradebook(course, scratch)
            collected = collecting.result()
        students = course.students()
        refused = refused_students(collected, students)
        if not students and not refused:
            say("   No hay entregas: deja el zip descargado de la plataforma (o varios) en {} "
                "y vuelve a ejecutar `make grade`.".format(os.path.relpath(course.archive_dir, course.root)))
            return []
        shown = ", ".join(students[:12]) + (", ..." if len(students) > 12 else "")
        say("   {} alumno(s): {}".format(len(students), shown))
        canary.result()  # raises canario.CorrectorRoto: nothing has been written
        results = {s: StudentResult(s, list(collected.get(s, []))) for s in students}
        results.update(refused)
        if no_isolation:
            for res in results.values():
                res.notes.insert(0, NO_ISOLATION_NOTE.format(no_isolation))

        def repaired(student: str) -> bool:
            """Repair the notebook just before its job is built (False: it cannot be graded)."""
            return repair_student(course, student, release_nb, results[student])

        say("== corrigiendo {} alumno(s) (cada notebook se repara justo antes; código del estudiante aislado; "
            "veredictos fuera de él) ==".format(len(students)))
        others = [a for a in autograde_args if not a.startswith("--TrustedExecute.")]
        passes = GradebookPasses(course, te.budget, [*others, *trusted_args(te)], settings.pass_batch)
        broken: Dict[str, str] = {}
        try:
            pregrade(course, students, te, settings.workers, settings.scheduler, recompute, say, not quiet,
                     passes.add, repaired, broken)
        except BaseException:
            passes.stop()
            raise
        for student, why in broken.items():
            results[student].failure, results[student].machinery = why, True
        for student, res in results.items():
            if res.failure:
                say("   {}: no se corrige: {}".format(student, res.failure))
        ready = [s for s, r in results.items() if r.failure is None]
        say("== gradebook (nbgrader autograde con los veredictos calculados) ==")
        graded = passes.finish(ready, say, not quiet)
        for student, res in graded.items():
            results[student].failure, results[student].machinery = res.failure, res.machinery
            results[student].notes += res.notes
            if res.failure:
                say("   {}: {}".format(student, res.failure))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    save_state(course, results)
    say("== retroalimentación (feedback/) ==")
    generate_feedback(course, [s for s, r in results.items() if r.failure is None],
                      settings.workers or parallel.default_workers())
    rows = write_grades(course, results, say)
    report_ungraded(results, say)
    return rows


def isolation(te, say=print) -> Optional[str]:
    """None when student code runs in bubblewrap here; else why not, when the config allows grading
    without it (``c.TrustedExecute.require_sandbox = False``).  Raises :class:`canario.CorrectorRoto`
    otherwise: nobody is graded."""
    why = sandbox_problem()
    if why and te.require_sandbox:
        raise canario.CorrectorRoto(canario.mensaje("{}. Cómo arreglarlo: {}.".format(why, canario.ARREGLO_BWRAP)))
    if why:
        say("aviso: {}; se corrige sin aislar los archivos (c.TrustedExecute.require_sandbox = False) y cada "
            "fila de grades.csv lo dice".format(why))
    return why


def sandbox_problem() -> Optional[str]:
    """Why bubblewrap cannot isolate student code here (None: it can)."""
    from tarea2_grader.engine import sandbox
    return sandbox.diagnostico_bwrap()


def report_ungraded(results: Dict[str, StudentResult], say=print) -> List[str]:
    """Say whom the machinery failed to grade and how to grade exactly them; their ids."""
    ungraded = sorted(s for s, r in results.items() if r.machinery)
    if ungraded:
        say("== sin corregir por una falla del corrector (no es culpa de los alumnos): {} ==".format(len(ungraded)))
        for student in ungraded:
            say("   {}: {}".format(student, results[student].failure))
        say("   Vuelve a ejecutar `make grade` cuando esté resuelto: se corrigen solo ellos (los demás conservan "
            "sus veredictos). `make devolver` se niega mientras tanto.")
    return ungraded


def warm_coordinator(tests_module: str, root: str) -> None:
    """Import the hidden tests (torch) and pay torch's first-use costs here, in the background,
    while the class is collected: the workers' threads then start grading at full speed."""
    try:
        from tarea2_grader.engine import runner
        parallel.one_torch_thread()
        parallel.load_tests(tests_module, [root])
        runner.warm_up_torch()
    except Exception:  # the first job meets the same problem and reports it
        pass


def write_grades(course: Course, results: Dict[str, StudentResult], say=print) -> List[Row]:
    """grades.csv and the printed table from the gradebook and the pipeline's results."""
    from tarea2_grader.integration.nbplugin import read_seeds
    cells = grade_cells(course.source_nb)
    seeds = read_seeds(course.root).get(course.assignment, {})
    rows = build_rows(cells, read_scores(course, results), results, seeds, read_reviews(course, results))
    write_csv(course.path("grades.csv"), cells, rows)
    say("== notas (grades.csv) ==")
    say(format_table(cells, rows))
    return rows


def state_path(course: Course) -> str:
    """Where the last grading run's per-student failures and notes are kept."""
    return os.path.join(course.logs_dir, "estado.json")


def save_state(course: Course, results: Dict[str, StudentResult]) -> None:
    """Remember failures and notes so that ``report`` can rebuild grades.csv later."""
    os.makedirs(course.logs_dir, exist_ok=True)
    data = {s: {"failure": r.failure, "notes": r.notes, "machinery": r.machinery} for s, r in results.items()}
    with open(state_path(course), "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)


def load_state(course: Course) -> Dict[str, StudentResult]:
    """The failures and notes that the last grading run saved ({} before any run)."""
    results: Dict[str, StudentResult] = {}
    if os.path.exists(state_path(course)):
        with open(state_path(course), encoding="utf-8") as fh:
            for sid, data in json.load(fh).items():
                results[sid] = StudentResult(sid, data.get("notes", []), data.get("failure"),
                                             bool(data.get("machinery")))
    return results


def report(course: Course) -> List[Row]:
    """Rewrite grades.csv from the gradebook (e.g. after manual grading in formgrader)."""
    results = {s: StudentResult(s) for s in course.students()}
    results.update(load_state(course))
    return write_grades(course, results)
