"""The answer key and rubric of each hand-graded cell, shown to the grader in formgrader only.

The source notebook keeps, inside the solution region of each hand-graded cell, the model answer
and a rubric between ``<!-- pauta -->`` and ``<!-- /pauta -->`` (``# ``-commented in a code cell).
nbgrader removes solution regions from the release, so students never get them; but formgrader
shows the student's autograded notebook, where they are not either.  ``insert_rubric_cells``
(called by ``TrustedExecute``) puts after each hand-graded cell of the autograded notebook a
read-only, ungraded markdown cell with that cell's key and rubric, and
``RemoveRubricCells`` (in ``GenerateFeedback.preprocessors``) takes those cells out of the
feedback.  A rubric cell is recognised by its cell id (``pauta-<grade_id>``) or its metadata
key; cells a student made to look like one are dropped before the real ones go in.
"""
import re
from typing import Dict, Optional

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

ID_PREFIX = "pauta-"
META_KEY = "tarea2_pauta"
TITLE = "Pauta para quien corrige (no se muestra al estudiante)"
# What only the teaching team reads, inside the source's solution regions: the grading rubric
# (between <!-- pauta --> and <!-- /pauta -->, "# "-commented in code cells) and the keys'
# Python expressions (<!-- py: name = expression -->, checked by tests/test_keys.py).
RUBRIC = re.compile(r"^[ \t]*(?:# ?)?<!-- pauta -->.*?<!-- /pauta -->[ \t]*\n?", re.M | re.S)
PY_KEY = re.compile(r"^[ \t]*<!-- py: .*?-->[ \t]*\n?", re.M)
_RUBRIC_TAGS = re.compile(r"^[ \t]*(?:# ?)?<!-- /?pauta -->[ \t]*\n?", re.M)
_SOLUTION = re.compile(r"### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*(?:# )?### END SOLUTION", re.M | re.S)


def _uncomment(text: str) -> str:
    """A ``# ``-commented block as plain text."""
    return "\n".join(re.sub(r"^[ \t]*# ?", "", line) for line in text.splitlines())


def _solution_region(cell) -> Optional[str]:
    """The text between the solution markers of a source cell (None without them)."""
    found = _SOLUTION.search(cell.source)
    return found.group(1) if found else None


def rubric_markdown(cell) -> Optional[str]:
    """The Spanish markdown shown to the grader for one hand-graded source cell (None: no rubric)."""
    region = _solution_region(cell)
    if region is None:
        return None
    found = RUBRIC.search(region)
    if not found:
        return None
    rubric = _RUBRIC_TAGS.sub("", PY_KEY.sub("", found.group(0))).strip()
    key = PY_KEY.sub("", RUBRIC.sub("", region)).strip()
    key = re.sub(r"\n{3,}", "\n\n", key)
    gid = cell.metadata["nbgrader"]["grade_id"]
    if cell.cell_type == "code":
        rubric = _uncomment(rubric)
        key = "```python\n{}\n```".format(key)
    return ("### {}\n\n*Celda `{}`: respuesta modelo y pauta del notebook fuente. nbgrader no la califica y "
            "no aparece en la retroalimentación.*\n\n#### Respuesta modelo\n\n{}\n\n#### Pauta\n\n{}\n"
            ).format(TITLE, gid, key, rubric)


def source_rubrics(source_nb) -> Dict[str, str]:
    """{grade_id: rubric markdown} for the hand-graded cells of a source notebook (path or node)."""
    nb = nbformat.read(source_nb, as_version=4) if isinstance(source_nb, str) else source_nb
    rubrics = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and meta.get("solution"):
            text = rubric_markdown(cell)
            if text:
                rubrics[meta["grade_id"]] = text
    return rubrics


def is_rubric_cell(cell) -> bool:
    """Whether a cell is (or poses as) a grader's rubric cell."""
    return str(cell.get("id", "")).startswith(ID_PREFIX) or META_KEY in cell.get("metadata", {})


def rubric_cell(grade_id: str, text: str, with_id: bool = True):
    """A read-only, ungraded markdown cell holding a rubric (cell ids exist from nbformat 4.5 on)."""
    cell = nbformat.v4.new_markdown_cell(text, metadata={"deletable": False, "editable": False,
                                                         META_KEY: grade_id})
    if with_id:
        cell["id"] = (ID_PREFIX + grade_id)[:64]
    else:
        cell.pop("id", None)
    return cell


def insert_rubric_cells(nb, rubrics: Dict[str, str]) -> int:
    """Put each rubric right after its hand-graded cell in ``nb`` (in place); return how many.

    Cells already posing as rubric cells (a student's, or a previous run's) are removed first.
    """
    cells, added = [], 0
    with_id = (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5)
    for cell in nb.cells:
        if is_rubric_cell(cell):
            continue
        cells.append(cell)
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in rubrics:
            cells.append(rubric_cell(gid, rubrics[gid], with_id))
            added += 1
    nb.cells = cells
    return added


class RemoveRubricCells(NbGraderPreprocessor):
    """Feedback preprocessor: drop the grader's rubric cells before students see the notebook."""

    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells if not is_rubric_cell(cell)]
        return nb, resources
