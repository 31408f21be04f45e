"""``python -m tarea2_grader.integration.nbgrader_cli ARGS``: ``nbgrader ARGS``, started about 3 s faster.

The pipeline runs nbgrader this way (:func:`tarea2_grader.commands.pipeline.run_nbgrader`); importing the
package first puts :func:`tarea2_grader.integration.arranque.lazy_rfc3987` in place, and a new gradebook's
schema revision is read in process (:func:`tarea2_grader.integration.arranque.alembic_in_process`).

``python -m tarea2_grader.integration.nbgrader_cli --lotes autograde [ARGS]`` is nbgrader's
autograde run again and again in this one process, once per batch of students
(:func:`serve_batches`): nbgrader's start-up is paid once per grading run, not once per pass.

Both are fast paths (:mod:`tarea2_grader.integration.fastpaths`): ``nbgrader_cli`` (this command
line instead of ``python -m nbgrader``: :func:`command`) and ``lotes`` (the batch process instead
of one ``nbgrader autograde`` per pass: :func:`batches_enabled`, :func:`batch_args`).
"""
import json
import sys
import traceback

import tarea2_grader  # noqa: F401  (the lazy stand-in, before nbgrader imports nbformat)
from tarea2_grader.integration import fastpaths

BATCHES_FLAG = "--lotes"


def command(config=None) -> list:
    """The command that runs ``nbgrader ARGS`` (ARGS appended): this module, or with the path
    ``nbgrader_cli`` off, nbgrader's own command line (``python -m nbgrader``)."""
    if fastpaths.active("nbgrader_cli", config):
        return [sys.executable, "-m", "tarea2_grader.integration.nbgrader_cli"]
    return [sys.executable, "-m", "nbgrader"]


def batches_enabled(config=None) -> bool:
    """Whether autograde passes go to one long-lived batch process (path ``lotes``)."""
    return fastpaths.active("lotes", config)


def batch_args(students, exclude) -> list:
    """nbgrader's options for one batch of :func:`serve_batches` when run as its own ``nbgrader
    autograde`` (the path ``lotes`` off): the same ``student`` and ``exclude``."""
    student = students[0] if len(students) == 1 else "*"
    return ["--CourseDirectory.student_id=" + student,
            "--CourseDirectory.student_id_exclude=" + ",".join(exclude)]


def batch_marker(nonce: str, number: int) -> str:
    """The line that ends batch ``number``: the nonce the coordinator sent first on stdin makes it
    one no other writer to this output (a student's code graded here on a cache miss) can know."""
    return "tarea2-lote-terminado {} {}".format(nonce, number)


def serve_batches(argv) -> int:
    """``nbgrader autograde`` for each batch of students that stdin brings, in this process.

    stdin: first a nonce line, then one JSON object per batch, ``{"student": ID or "*",
    "exclude": [IDs]}`` (``CourseDirectory.student_id`` and ``student_id_exclude``).  After each
    batch, whatever nbgrader made of it (it logs the students it could not grade, as in a run of
    its own), :func:`batch_marker` goes to stderr.  Ends at the end of stdin.
    """
    from nbgrader.apps.baseapp import NbGrader
    from nbgrader.apps.nbgraderapp import NbGraderApp
    from nbgrader.converters import Autograde
    from nbgrader.converters.base import NbGraderException

    from tarea2_grader.integration.sharedgb import share_converter_engine
    share_converter_engine()
    nonce = sys.stdin.readline().strip()
    app = NbGraderApp.instance()
    app.initialize(argv)
    sub = app.subapp
    if len(sub.extra_args) == 1 and not sub.coursedir.assignment_id:
        sub.coursedir.assignment_id = sub.extra_args[0]
    if argv[:1] != ["autograde"] or len(sub.extra_args) > 1 or not sub.coursedir.assignment_id:
        print("uso: {} autograde (TAREA | --CourseDirectory.assignment_id=TAREA) [opciones de nbgrader]"
              .format(BATCHES_FLAG), file=sys.stderr)
        return 2
    NbGrader.start(sub)  # what AutogradeApp.start does before its one conversion
    number = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        number += 1
        batch = json.loads(line)
        sub.coursedir.student_id = batch["student"]
        sub.coursedir.student_id_exclude = ",".join(batch["exclude"])
        try:
            Autograde(coursedir=sub.coursedir, parent=sub).start()
        except NbGraderException:
            pass  # nbgrader logged which students it could not grade
        except Exception:  # the coordinator reads this batch's students as not graded
            sub.log.error("There was an error processing this batch:\n%s", traceback.format_exc())
        sys.stdout.flush()
        print(batch_marker(nonce, number), file=sys.stderr, flush=True)
    return 0


def main() -> int:
    from tarea2_grader.integration.arranque import alembic_in_process
    if fastpaths.active("nbgrader_cli"):
        alembic_in_process()
    sys.argv[0] = "nbgrader"
    if sys.argv[1:2] == [BATCHES_FLAG]:
        return serve_batches(sys.argv[2:])
    from nbgrader.apps.nbgraderapp import main as nbgrader_main
    return nbgrader_main() or 0


if __name__ == "__main__":
    from tarea2_grader.integration.arranque import exit_without_teardown
    exit_without_teardown(main())
