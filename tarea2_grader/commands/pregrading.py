"""Parallel grading before nbgrader's pass: every student's verdicts computed by the workers into
the verdict cache, with ``TrustedExecute`` configured exactly as nbgrader's pass will configure it."""
from __future__ import annotations

import os
import re
from typing import Callable, Dict, List, Optional, Sequence

from tarea2_grader.integration.course import Course
from tarea2_grader.integration.nbgrader_run import load_config, sanitized_notebook
from tarea2_grader.parallel import workers as parallel


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
    from tarea2_grader.integration import seeds
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
            seed = seeds.of_student(course.root, course.assignment, student, te.fresh_seeds)
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
