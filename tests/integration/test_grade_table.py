"""The part of each grade cell and its points come from the source notebook's metadata only.

A grade cell counts in the part its own ``tarea2_parte`` metadata names; a notebook without it
(another course, an older notebook) falls back to its "Parte N" headings.  The course notebook
itself must give every grade cell its part, in the parts the spec's table lists.
"""
import json

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tarea2_grader.integration import grade_table

from tests.support.repo import SOURCE_NB

# The spec's table (shared/spec.md, "The notebook, part by part"): the parts that carry points.
SPEC_SCORED_PARTS = ["1a", "1b", "2a", "2b", "2c", "3a", "4a", "4b", "4c", "4d"]


def graded(gid, points, part=None, solution=False, markdown=False):
    meta = {"nbgrader": {"grade": True, "grade_id": gid, "points": points, "solution": solution,
                         "locked": not solution, "schema_version": 3}}
    if part is not None:
        meta[grade_table.PART_KEY] = part
    make = new_markdown_cell if markdown else new_code_cell
    return make("x", metadata=meta)


def test_the_cells_own_metadata_names_its_part_whatever_the_headings_say():
    nb = new_notebook(cells=[new_markdown_cell("## Parte 9"), graded("t1", 3, "2b"), graded("t2", 4),
                             new_markdown_cell("### Parte 4c: entrenar"), graded("t3", 5, "4a"), graded("t4", 1)])
    cells = grade_table.grade_cells(nb)
    assert [(c.grade_id, c.part, c.points) for c in cells] == [
        ("t1", "2b", 3.0), ("t2", "9", 4.0), ("t3", "4a", 5.0), ("t4", "4c", 1.0)]
    assert grade_table.parts_of(cells) == ["2b", "9", "4a", "4c"]
    assert grade_table.part_maxima(cells) == {"2b": 3.0, "9": 4.0, "4a": 5.0, "4c": 1.0}


def test_without_metadata_or_heading_the_part_is_otros():
    cells = grade_table.grade_cells(new_notebook(cells=[graded("t1", 2), graded("m1", 1, solution=True,
                                                                                  markdown=True)]))
    assert [(c.part, c.manual) for c in cells] == [("otros", False), ("otros", True)]


def test_moving_a_test_to_another_part_in_the_notebook_moves_its_points(tmp_path):
    nb = nbformat.read(SOURCE_NB, as_version=4)
    before = grade_table.part_maxima(grade_table.grade_cells(nb))
    test_sgd = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_sgd")
    test_sgd.metadata[grade_table.PART_KEY] = "4b"
    path = tmp_path / "otro.ipynb"
    nbformat.write(nb, str(path))
    after = grade_table.part_maxima(grade_table.grade_cells(str(path)))
    moved = float(test_sgd.metadata["nbgrader"]["points"])
    assert after["4b"] == before["4b"] + moved and after.get("4a", 0) == before["4a"] - moved


def test_every_grade_cell_of_the_course_names_a_part_of_the_spec():
    with open(SOURCE_NB, encoding="utf-8") as fh:
        raw = json.load(fh)["cells"]
    graded_raw = [c for c in raw if c["metadata"].get("nbgrader", {}).get("grade")]
    missing = [c["metadata"]["nbgrader"]["grade_id"] for c in graded_raw if grade_table.PART_KEY not in c["metadata"]]
    assert missing == []
    cells = grade_table.grade_cells(SOURCE_NB)
    assert grade_table.parts_of(cells) == SPEC_SCORED_PARTS
    assert [c.part for c in cells] == [c["metadata"][grade_table.PART_KEY] for c in graded_raw]
