"""Command line: ``python -m tarea2_grader {release,grade,notas,demo,devolver,informe,publicar}``.

* ``release``: ``nbgrader generate_assignment`` of source/tarea2 into release/tarea2.
* ``grade``: collect the zips in downloaded/tarea2/archive/, repair and grade every student
  (``--workers N`` at a time, or on a Dask cluster with ``--cluster``), then one nbgrader
  autograde run writes the gradebook; feedback and grades.csv.  Exit status: 0 every student
  graded, 2 nothing graded (the canary found the grader broken; nothing written), 3 some students
  left ungraded by a failure of the grader (run it again: it grades exactly them).
* ``notas``: rewrite grades.csv and the table from the gradebook (after grading the
  written answers in formgrader), without running anything again, then the course report.
* ``demo``: the whole ``grade`` pipeline on the example submissions in examples/, in a
  scratch course folder (demo_course/), then one student's feedback summary.
* ``devolver``: the feedback zip and grading worksheet for Moodle, in devolucion/.
* ``informe``: after grading, ``informe/index.html`` for the teaching team (how the class did,
  submissions that look copied per answer cell), with similitud.csv and partes.csv; also written
  at the end of ``grade`` and ``demo`` (a failure there only prints a warning).
* ``publicar``: export what students get (release/tarea2 and a README with the Colab link) to
  publicado/, refusing if it holds solutions, hidden tests or grader code (see publicar.py).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import zipfile

from tarea2_grader.commands import pipeline
from tarea2_grader.integration.course import Course
from tarea2_grader.integration.nbgrader_run import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CELL_TIMEOUT = 30  # seconds; the reference's slowest cell takes about 10 s here


def cmd_release(args) -> int:
    """Regenerate release/ from source/."""
    path = pipeline.release(Course(os.path.abspath(args.course)))
    print("generado: " + os.path.relpath(path))
    return 0


def autograde_args(cell_timeout) -> list:
    """Extra nbgrader options for autograde."""
    return ["--TrustedExecute.cell_timeout={:g}".format(cell_timeout)] if cell_timeout else []


def cmd_grade(args) -> int:
    """Grade every submission of the course."""
    course = Course(os.path.abspath(args.course))
    if not os.path.exists(course.source_nb):
        print("no existe " + course.source_nb, file=sys.stderr)
        return pipeline.EXIT_NOTHING_GRADED
    check_fast_paths(course)
    status, _rows = graded_status(lambda: pipeline.grade(course, **grade_options(args)))
    if status != pipeline.EXIT_NOTHING_GRADED:
        from tarea2_grader.commands import informe
        informe.build_safely(course)
    return status


def check_fast_paths(course) -> None:
    """At start-up: the course config's fast-path switches and each path's version guard, decided
    once for this run and every process it starts (:func:`fastpaths.check_at_start`)."""
    from tarea2_grader.integration import fastpaths
    for name in sorted(fastpaths.unknown_names(load_config(course))):
        print("aviso: no hay ruta rápida llamada {!r} (c.FastPaths.disabled, TAREA2_RAPIDO_SIN)".format(name),
              file=sys.stderr)
    fastpaths.check_at_start(load_config(course))


def graded_status(run) -> tuple:
    """(exit status, rows) of a grading run: 2 when the grader is broken (nothing written, the
    Spanish reason on stderr), 3 when some students were left ungraded by a grader failure."""
    from tarea2_grader.parallel.canario import BrokenGrader
    try:
        rows = run()
    except BrokenGrader as exc:
        print(str(exc), file=sys.stderr)
        return pipeline.EXIT_NOTHING_GRADED, []
    if any(r.ungraded for r in rows):
        return pipeline.EXIT_UNGRADED, rows
    return pipeline.EXIT_GRADED, rows


def grade_options(args) -> dict:
    """pipeline.grade's keyword arguments from the command line."""
    return {"student_timeout": args.timeout_alumno, "autograde_args": autograde_args(args.timeout_celda),
            "workers": args.workers, "scheduler": args.cluster, "recompute": args.recalcular}


def cmd_notas(args) -> int:
    """Rebuild grades.csv from the gradebook, then the course report (it shows grades.csv's states)."""
    course = Course(os.path.abspath(args.course))
    pipeline.report(course)
    from tarea2_grader.commands import informe
    informe.build_safely(course)
    return 0


def cmd_publicar(args) -> int:
    """Export the student folder, or explain in Spanish why not."""
    from tarea2_grader.commands import publicar
    course = Course(os.path.abspath(args.course))
    try:
        destino = publicar.publish(course, args.destino, args.repo, args.rama)
    except publicar.PublishError as e:
        print("publicar: " + str(e), file=sys.stderr)
        return 1
    shown = os.path.relpath(destino)
    print("publicado en {}/: README.md y {}/".format(destino if shown.startswith("..") else shown,
                                                     course.assignment))
    print("enlace de Colab: " + publicar.colab_link(args.repo, args.rama, course))
    if not args.repo:
        print("(para completar el enlace en el README: --repo usuario/repositorio, o make publicar "
              "REPO_PUBLICO=usuario/repositorio)")
    print("Suba esa carpeta a un repositorio público (git add -A, commit y push) o el notebook a la plataforma.")
    return 0


def zip_examples(examples_dir: str, zip_path: str) -> int:
    """Zip every file under examples_dir (paths relative to it), like an LMS bulk download."""
    os.makedirs(os.path.dirname(zip_path), exist_ok=True)
    count = 0
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, _dirs, files in sorted(os.walk(examples_dir)):
            for name in sorted(files):
                path = os.path.join(root, name)
                zf.write(path, os.path.relpath(path, examples_dir))
                count += 1
    return count


def prepare_demo_course(demo_dir: str, examples_dir: str) -> Course:
    """A fresh scratch course: source/, release/, nbgrader_config.py and the examples' zip."""
    if os.path.isdir(demo_dir):
        shutil.rmtree(demo_dir)
    os.makedirs(demo_dir)
    for name in ("source", "release"):
        shutil.copytree(os.path.join(REPO, name), os.path.join(demo_dir, name))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), demo_dir)
    if not os.path.isdir(examples_dir):  # generated by a tool outside the package
        raise SystemExit("no hay entregas de ejemplo en {}: genéralas con `python -m tools.examples`".format(
            examples_dir))
    course = Course(demo_dir)
    zip_examples(examples_dir, os.path.join(course.archive_dir, "entregas_moodle.zip"))
    return course


def cmd_demo(args) -> int:
    """Run the grading pipeline on the shipped examples."""
    start = time.time()
    demo_dir = os.path.abspath(args.dir)
    course = prepare_demo_course(demo_dir, os.path.join(REPO, "examples"))
    print("curso de demostración: " + os.path.relpath(demo_dir))
    check_fast_paths(course)
    status, rows = graded_status(lambda: pipeline.grade(course, **grade_options(args)))
    if status == pipeline.EXIT_NOTHING_GRADED:
        return status
    print_example_summary(course, [r.student for r in rows])
    from tarea2_grader.commands import informe
    informe.build_safely(course)
    print("\ngrades.csv: {}   retroalimentación: {}   ({:.0f} s)".format(
        os.path.relpath(course.path("grades.csv")), os.path.relpath(course.path("feedback")),
        time.time() - start))
    return status


def print_example_summary(course: Course, students) -> None:
    """One student's feedback summary, as text (the same one their feedback page starts with)."""
    from tarea2_grader.integration import resumen
    student = resumen.example_student(course, students)
    if student:
        print("\n== resumen de un alumno (lo primero que ve en su retroalimentación) ==")
        print(resumen.summary_text(resumen.student_summary(course, student)))


def devolver_course(requested: str) -> Course:
    """The course to hand back: the one asked for, or the demo course when only it was graded."""
    course = Course(os.path.abspath(requested))
    demo = Course(os.path.join(REPO, "demo_course"))
    if (not os.path.exists(course.path("grades.csv")) and requested == "."
            and os.path.exists(demo.path("grades.csv"))):
        print("no hay grades.csv en este curso: se usa el de la demostración ({})".format(
            os.path.relpath(demo.root)))
        return demo
    return course


def cmd_devolver(args) -> int:
    """Write the Moodle feedback zip and grading worksheet."""
    from tarea2_grader.commands import devolver
    course = devolver_course(args.course)
    try:
        result = devolver.hand_back(course)
    except (FileNotFoundError, devolver.HandBackRefused) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print("\n".join(devolver.report_lines(course, result)))
    return 0


def cmd_informe(args) -> int:
    """Write the course report (informe/) from what grading left."""
    from tarea2_grader.commands import informe
    course = devolver_course(args.course)
    if not os.path.exists(course.path("grades.csv")):
        print("no hay grades.csv en {}: corrija primero (make grade o make demo).".format(course.root),
              file=sys.stderr)
        return 2
    print("informe del curso: " + os.path.relpath(informe.build(course, args.umbral)))
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="python -m tarea2_grader", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    rel = sub.add_parser("release", help="regenerar release/ desde source/")
    rel.add_argument("--course", default=".", help="carpeta del curso (por defecto: la actual)")
    rel.set_defaults(func=cmd_release)
    for name, func, help_text in (("grade", cmd_grade, "corregir las entregas de downloaded/tarea2/archive/"),
                                  ("demo", cmd_demo, "corregir las entregas de ejemplo de examples/")):
        g = sub.add_parser(name, help=help_text)
        if name == "grade":
            g.add_argument("--course", default=".", help="carpeta del curso (por defecto: la actual)")
        else:
            g.add_argument("--dir", default=os.path.join(REPO, "demo_course"), help="carpeta del curso de prueba")
        g.add_argument("--timeout-alumno", type=float, default=None,
                       help="presupuesto de segundos de sandbox por alumno (por defecto: TrustedExecute.budget "
                            "de nbgrader_config.py)")
        g.add_argument("--timeout-celda", type=float,
                       default=DEMO_CELL_TIMEOUT if name == "demo" else None,
                       help="segundos máximos por celda (por defecto: TrustedExecute.cell_timeout de nbgrader_config.py)")
        g.add_argument("--workers", type=int, default=None,
                       help="alumnos corregidos a la vez en esta máquina (por defecto: ParallelGrading.workers "
                            "de nbgrader_config.py, o uno por núcleo)")
        g.add_argument("--cluster", default=None, metavar="tcp://HOST:8786",
                       help="corregir en un clúster dask.distributed (dirección de su scheduler)")
        g.add_argument("--recalcular", action="store_true",
                       help="volver a corregir también a quienes ya tienen veredictos guardados (veredictos/)")
        g.set_defaults(func=func)
    notas = sub.add_parser("notas", help="reescribir grades.csv (y el informe del curso) desde el gradebook "
                                                "(tras corregir a mano)")
    notas.add_argument("--course", default=".", help="carpeta del curso (por defecto: la actual)")
    notas.set_defaults(func=cmd_notas)
    dev = sub.add_parser("devolver", help="retroalimentación (zip) y notas (hoja de calificaciones) para Moodle")
    dev.add_argument("--course", default=".", help="carpeta del curso (por defecto: la actual)")
    dev.set_defaults(func=cmd_devolver)
    inf = sub.add_parser("informe", help="informe del curso para el equipo docente (informe/index.html)")
    inf.add_argument("--course", default=".", help="carpeta del curso (por defecto: la actual)")
    inf.add_argument("--umbral", type=float, default=None,
                     help="similitud (0 a 1) de una celda desde la que se marca un par (por defecto: "
                          "c.Informe.umbral de nbgrader_config.py, o 0.5)")
    inf.set_defaults(func=cmd_informe)
    pub = sub.add_parser("publicar", help="exportar lo que reciben los estudiantes a publicado/, sin soluciones")
    pub.add_argument("--course", default=".", help="carpeta del curso (por defecto: la actual)")
    pub.add_argument("--destino", default=None, help="carpeta de destino (por defecto: publicado/ en el curso)")
    pub.add_argument("--repo", default=None, help="repositorio público usuario/repositorio, para el enlace de Colab")
    pub.add_argument("--rama", default="main", help="rama del repositorio público (por defecto: main)")
    pub.set_defaults(func=cmd_publicar)
    return p


def main(argv=None) -> int:
    """Entry point."""
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    from tarea2_grader.integration.arranque import exit_without_teardown
    exit_without_teardown(main())
