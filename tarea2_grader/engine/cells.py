"""The notebook's cells as data: grade cells, answer sources, release stubs, the course config.

Helpers shared by the grader, the examples and the tests; nothing here runs notebook code
(student code runs only in the sandbox, see :mod:`tarea2_grader.engine.runner`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import nbformat

__all__ = ["answer_cell_ids", "autograded_points", "is_test_cell", "load_config", "reference_sources",
           "stub_sources"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH = ROOT / "nbgrader_config.py"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
DEFAULT_CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


# --------------------------------------------------------------------------- notebook helpers

def _nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _read(nb_path) -> nbformat.NotebookNode:
    return nbformat.read(str(nb_path), as_version=4)


def is_test_cell(cell) -> bool:
    """An autograded test cell: code, graded, not an answer."""
    meta = _nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def autograded_points(nb_path) -> dict[str, float]:
    """grade_id -> max points of every autograded test cell, in notebook order."""
    return {
        _nbgrader_meta(c)["grade_id"]: float(_nbgrader_meta(c).get("points", 0))
        for c in _read(nb_path).cells
        if is_test_cell(c)
    }


def answer_cell_ids(nb_path) -> list[str]:
    """grade_ids of the code answer cells (``solution: true``), in notebook order."""
    return [
        _nbgrader_meta(c)["grade_id"]
        for c in _read(nb_path).cells
        if c.cell_type == "code" and _nbgrader_meta(c).get("solution")
    ]


def reference_sources(nb_path, grade_ids=None) -> dict[str, str]:
    """The source of each code answer cell of the (source) notebook, by grade_id.

    ``grade_ids`` restricts the result (KeyError for an id that is not a code answer cell).
    """
    out = {
        _nbgrader_meta(c)["grade_id"]: c.source
        for c in _read(nb_path).cells
        if c.cell_type == "code" and _nbgrader_meta(c).get("solution")
    }
    if grade_ids is None:
        return out
    return {g: out[g] for g in grade_ids}


def load_config(config_path=CONFIG_PATH):
    """The traitlets Config of ``nbgrader_config.py`` (empty when the file is missing)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(config_path)
    if not path.exists():
        return Config()
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def _config_value(cfg, section: str, key: str, default):
    try:
        sec = cfg[section]
        return sec[key] if key in sec else default
    except KeyError:
        return default


def _code_stub(cfg) -> str:
    stub = _config_value(cfg, "ClearSolutions", "code_stub", None)
    if isinstance(stub, Mapping):
        return stub.get("python", DEFAULT_CODE_STUB)
    return stub or DEFAULT_CODE_STUB


def _stub_source(source: str, stub: str) -> str:
    """What nbgrader's ClearSolutions makes of a code answer cell."""
    if BEGIN_SOLUTION not in source:
        return stub
    new_lines: list[str] = []
    in_solution = False
    for line in source.split("\n"):
        if BEGIN_SOLUTION in line:
            indent = re.match(r"\s*", line).group(0)
            new_lines.extend(indent + s for s in stub.split("\n"))
            in_solution = True
        elif END_SOLUTION in line:
            in_solution = False
        elif not in_solution:
            new_lines.append(line)
    return "\n".join(new_lines)


def stub_sources(nb_path, config_path=CONFIG_PATH) -> dict[str, str]:
    """Release-style sources of every code answer cell (solution regions -> the code stub)."""
    stub = _code_stub(load_config(config_path))
    return {g: _stub_source(s, stub) for g, s in reference_sources(nb_path).items()}
