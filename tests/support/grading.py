"""Grading notebooks with the production runner (the sandbox), without nbgrader.

``run`` grades a small notebook of code cells and gives back each cell's outputs; ``grade_many``
grades whole notebooks (the real assignment's), a few at a time.
"""
from concurrent.futures import ThreadPoolExecutor

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from tarea2_grader.engine import runner
from tarea2_grader.integration import seeds
from tarea2_grader.engine import sandbox
from tools.examples import edit_cells


def notebook(*sources):
    """A notebook of code cells with these sources."""
    return new_notebook(cells=[new_code_cell(s) for s in sources])


def text_of(outputs):
    """The stream text of a cell's outputs."""
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


def errors_of(outputs):
    """The exception names of a cell's error outputs."""
    return [o["ename"] for o in outputs if o["output_type"] == "error"]


def run(*sources, **limits):
    """Grade a notebook of these code cells (seed 1, ``limits`` as sandbox.Limits):
    ([outputs of each cell], runner.Resultado)."""
    nb = notebook(*sources)
    result = runner.grade(nb, 1, sandbox.Limits(**limits) if limits else None)
    return [result.outputs.get(i, []) for i in range(len(nb.cells))], result


GRADING_WORKERS = 2


def grade_many(cases, workers=GRADING_WORKERS, **kwargs):
    """Grade notebooks with the production runner, ``workers`` at a time.

    ``cases`` maps a name to (notebook path, {grade_id: new source}); returns
    {name: (points by grade_id, runner.Resultado, the graded notebook)}.  Each notebook gets a
    fresh random seed, as each student does.  Cells after the last test are skipped unless
    ``until_last_test=False`` is passed.
    """
    kwargs.setdefault("until_last_test", True)

    def one(item):
        name, (path, replacements) = item
        nb = edit_cells(nbformat.read(str(path), as_version=4), replacements)
        result = runner.grade(nb, seeds.draw(), **kwargs)
        return name, (result.puntos(nb), result, nb)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, cases.items()))
