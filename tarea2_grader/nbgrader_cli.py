"""``python -m tarea2_grader.nbgrader_cli ARGS``: ``nbgrader ARGS``, started about 3 s faster.

The pipeline runs nbgrader this way (:func:`tarea2_grader.pipeline.run_nbgrader`); importing the
package first puts :func:`tarea2_grader.arranque.lazy_rfc3987` in place, and a new gradebook's
schema revision is read in process (:func:`tarea2_grader.arranque.alembic_in_process`).
"""
import sys

import tarea2_grader  # noqa: F401  (the lazy stand-in, before nbgrader imports nbformat)


def main() -> int:
    from nbgrader.apps.nbgraderapp import main as nbgrader_main
    from tarea2_grader.arranque import alembic_in_process
    alembic_in_process()
    sys.argv[0] = "nbgrader"
    return nbgrader_main() or 0


if __name__ == "__main__":
    sys.exit(main())
