"""Counts and totals of the course, read from the source notebook's nbgrader metadata (the one source).

A test cell is a graded code cell that is not a solution (nbgrader's "autograder tests"); its points
are the autograded points.  Every other graded cell (written answers, the plots cell) is graded by a
person.  The notebook is read as plain JSON, apart from the grader's own parsing, so a test can hold
the grader's figures to these.
"""
import functools
import json

from tests.support.repo import SOURCE_NB


@functools.lru_cache(maxsize=None)
def graded_cells(path=SOURCE_NB):
    """((grade_id, points, autograded?), ...) of the notebook's graded cells, in notebook order."""
    with open(path, encoding="utf-8") as fh:
        cells = json.load(fh)["cells"]
    found = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            autograded = cell["cell_type"] == "code" and not meta.get("solution")
            found.append((meta["grade_id"], float(meta.get("points", 0)), autograded))
    return tuple(found)


def points(path=SOURCE_NB):
    """{grade_id: points} of every graded cell."""
    return {gid: pts for gid, pts, _ in graded_cells(path)}


def autograded_cells(path=SOURCE_NB):
    """grade_ids of the test cells (autograded), in notebook order (not named test_*: pytest would collect it)."""
    return [gid for gid, _, autograded in graded_cells(path) if autograded]


def autograded_points(path=SOURCE_NB):
    """Points of the test cells: what a perfect submission gets from the grader."""
    return sum(pts for _, pts, autograded in graded_cells(path) if autograded)


def total_points(path=SOURCE_NB):
    """Points of every graded cell: the assignment's full marks."""
    return sum(pts for _, pts, _ in graded_cells(path))


def manual_points(path=SOURCE_NB):
    """Points graded by a person (written answers, the plots cell)."""
    return total_points(path) - autograded_points(path)
