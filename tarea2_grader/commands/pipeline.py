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

import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Optional, Sequence

from tarea2_grader.commands import collection
from tarea2_grader.commands.autograde_pass import GradebookPasses
from tarea2_grader.commands.pregrading import pregrade, trusted_args, trusted_settings
from tarea2_grader.integration import grade_table
from tarea2_grader.integration.course import Course
from tarea2_grader.integration.grade_table import Row, StudentResult
from tarea2_grader.integration.nbgrader_run import check, load_config, run_nbgrader
from tarea2_grader.parallel import canario
from tarea2_grader.parallel import workers as parallel

NO_ISOLATION_NOTE = ("sin aislamiento: corregido sin bubblewrap ({}); el código del estudiante pudo leer y escribir "
                     "archivos de este computador")

# Exit status of `python -m tarea2_grader grade` (README, "Si el corrector falla").
EXIT_GRADED = 0          # every student graded (or given the reason their notebook could not be)
EXIT_NOTHING_GRADED = 2  # the canary failed (or bubblewrap is missing): nothing was written
EXIT_UNGRADED = 3        # some students left ungraded by a failure of the machinery: run it again


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
    no_isolation = isolation(te, say)  # raises canario.BrokenGrader when bubblewrap is required
    settings = parallel_settings(course, workers, scheduler)
    if not settings.scheduler:  # the local workers' sandboxes import torch while the class is collected
        runner.WARM_SANDBOXES.prewarm(te.limits(), runner.isolation_available(),
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
            collecting = pool.submit(collection.collect_archives, course)
            canary = pool.submit(canario.check, te.limits(), settings.scheduler)
            release_nb = sync_gradebook(course, scratch)
            collected = collecting.result()
        students = course.students()
        refused = collection.refused_students(collected, students)
        if not students and not refused:
            say("   No hay entregas: deja el zip descargado de la plataforma (o varios) en {} "
                "y vuelve a ejecutar `make grade`.".format(os.path.relpath(course.archive_dir, course.root)))
            return []
        shown = ", ".join(students[:12]) + (", ..." if len(students) > 12 else "")
        say("   {} alumno(s): {}".format(len(students), shown))
        canary.result()  # raises canario.BrokenGrader: nothing has been written
        results = {s: StudentResult(s, list(collected.get(s, []))) for s in students}
        results.update(refused)
        if no_isolation:
            for res in results.values():
                res.notes.insert(0, NO_ISOLATION_NOTE.format(no_isolation))

        def repaired(student: str) -> bool:
            """Repair the notebook just before its job is built (False: it cannot be graded)."""
            return collection.repair_student(course, student, release_nb, results[student])

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
    grade_table.save_state(course, results)
    say("== retroalimentación (feedback/) ==")
    generate_feedback(course, [s for s, r in results.items() if r.failure is None],
                      settings.workers or parallel.default_workers())
    rows = write_grades(course, results, say)
    report_ungraded(results, say)
    return rows


def isolation(te, say=print) -> Optional[str]:
    """None when student code runs in bubblewrap here; else why not, when the config allows grading
    without it (``c.TrustedExecute.require_sandbox = False``).  Raises :class:`canario.BrokenGrader`
    otherwise: nobody is graded."""
    why = sandbox_problem()
    if why and te.require_sandbox:
        raise canario.BrokenGrader(canario.message("{}. Cómo arreglarlo: {}.".format(why, canario.FIX_BWRAP)))
    if why:
        say("aviso: {}; se corrige sin aislar los archivos (c.TrustedExecute.require_sandbox = False) y cada "
            "fila de grades.csv lo dice".format(why))
    return why


def sandbox_problem() -> Optional[str]:
    """Why bubblewrap cannot isolate student code here (None: it can)."""
    from tarea2_grader.engine import sandbox
    return sandbox.bwrap_diagnosis()


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
    from tarea2_grader.integration import seeds as seeds_file
    cells = grade_table.grade_cells(course.source_nb)
    seeds = seeds_file.read(course.root).get(course.assignment, {})
    rows = grade_table.build_rows(cells, grade_table.read_scores(course, results), results, seeds,
                                  grade_table.read_reviews(course, results))
    grade_table.write_csv(course.path("grades.csv"), cells, rows)
    say("== notas (grades.csv) ==")
    say(grade_table.format_table(cells, rows))
    return rows




def report(course: Course) -> List[Row]:
    """Rewrite grades.csv from the gradebook (e.g. after manual grading in formgrader)."""
    results = {s: StudentResult(s) for s in course.students()}
    results.update(grade_table.load_state(course))
    return write_grades(course, results)
