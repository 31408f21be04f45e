"""The cached cell-metadata check accepts and rejects what nbgrader's CheckCellMetadata does, with
the same errors and messages, and the course config uses it in nbgrader's default places."""
import copy
import logging

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import CheckCellMetadata

from tests.support.fake_course import nbg
from tests.support.repo import REPO

from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.integration.cellmeta import CachedCheckCellMetadata, CachedMetadataValidator, schema_validator


def meta(**changes):
    """Valid schema-3 metadata of a locked test cell, with ``changes`` (None deletes a key)."""
    m = nbg("test_x", grade=True, locked=True, points=2)["nbgrader"]
    for key, value in changes.items():
        if value is None:
            m.pop(key, None)
        else:
            m[key] = value
    return m


def code(m, source="assert True"):
    return new_code_cell(source, metadata={"nbgrader": m})


def markdown(m, source="Respuesta"):
    return new_markdown_cell(source, metadata={"nbgrader": m})


# name -> the cells of a notebook (after a valid answer cell and a plain cell).
CASES = {
    "valid": [code(meta())],
    "valid_solution_markdown": [markdown(meta(grade_id="md", solution=True))],
    "valid_task": [markdown(meta(grade_id="tarea", task=True, locked=True, grade=False, points=None))],
    "points_on_non_grade_cell": [code(meta(grade=False))],  # nbgrader accepts it
    "extra_cell_type_changed": [markdown(meta(grade_id="md", solution=True, cell_type="code"))],
    "missing_grade_id": [code(meta(grade_id=None))],
    "empty_grade_id": [code(meta(grade_id=""))],
    "grade_without_points": [code(meta(points=None))],
    "negative_points": [code(meta(points=-1))],
    "points_as_text": [code(meta(points="2"))],
    "grade_id_with_spaces": [code(meta(grade_id="test x"))],
    "grade_as_int": [code(meta(grade=1))],
    "unknown_key": [code(meta(puntos_extra=3))],
    "missing_locked": [code(meta(locked=None))],
    "two_schema_errors": [code(meta(grade="sí", points=-5))],
    "short_checksum": [code(meta(checksum="abc"))],
    "bad_cell_type": [code(meta(cell_type="widget"))],
    "schema_too_old": [code(meta(schema_version=2))],
    "no_schema_version": [code(meta(schema_version=None))],
    "schema_too_new": [code(meta(schema_version=4))],
    "schema_version_as_text": [code(meta(schema_version="3"))],
    "markdown_grade_not_solution": [markdown(meta(grade_id="md"))],
    "markdown_solution_not_grade": [markdown(meta(grade_id="md", grade=False, solution=True, points=None))],
    "task_on_code_cell": [code(meta(task=True))],
    "duplicate_grade_id": [code(meta()), code(meta())],
    "metadata_not_a_dict": [code(["grade", True])],
}
REJECTED = {name for name in CASES if not name.startswith(("valid", "points_on", "extra_"))}


def notebook(name):
    cells = [new_code_cell("def f(x):\n    return x", metadata=nbg("respuesta", solution=True)),
             new_code_cell("import math")]
    return new_notebook(cells=cells + copy.deepcopy(CASES[name]))


def outcome(fn):
    """(exception type, message) of ``fn()``, or None."""
    try:
        fn()
    except Exception as exc:  # any: the point is that both raise the same
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_validator_raises_what_nbgrader_raises(name):
    stock = outcome(lambda: MetadataValidator().validate_nb(notebook(name)))
    cached = outcome(lambda: CachedMetadataValidator().validate_nb(notebook(name)))
    assert (stock is not None) == (name in REJECTED), stock
    assert cached == stock


def without_frames(message: str) -> str:
    """A logged traceback without its frames (they name other files): the error it ends with."""
    lines = message.rstrip().splitlines()
    if not lines or not lines[0].startswith("Traceback"):
        return message
    i = 1
    while i < len(lines) and lines[i].startswith(" "):
        i += 1
    return "\n".join(lines[i:])


@pytest.mark.parametrize("name", sorted(CASES))
def test_preprocessor_logs_and_raises_what_nbgrader_does(name, caplog):
    logs = {}
    for cls in (CheckCellMetadata, CachedCheckCellMetadata):
        pp = cls()
        pp.log = logging.getLogger("cellmeta." + cls.__name__)
        with caplog.at_level(logging.ERROR, logger=pp.log.name):
            result = outcome(lambda: pp(notebook(name), {}))
        lines = [without_frames(r.getMessage()) for r in caplog.records if r.name == pp.log.name]
        logs[cls] = (result, lines)
    assert logs[CachedCheckCellMetadata] == logs[CheckCellMetadata]
    result, lines = logs[CheckCellMetadata]
    if result and result[0] is ValidationError:  # nbgrader logs the cause, then its own line
        assert result[1] == lines[-1] == "Notebook failed to validate; the nbgrader metadata may be corrupted."
        assert len(lines) == 2 and lines[0].startswith("jsonschema.exceptions.ValidationError: ")


def test_the_schema_check_runs_once_per_schema(monkeypatch):
    from jsonschema import Draft4Validator
    CachedMetadataValidator().validate_nb(notebook("valid"))  # the course schema's validator exists
    calls = []
    real = Draft4Validator.check_schema.__func__

    def counted(cls, schema, *args, **kwargs):
        calls.append(schema.get("title"))
        return real(cls, schema, *args, **kwargs)

    monkeypatch.setattr(Draft4Validator, "check_schema", classmethod(counted))
    schema = copy.deepcopy(MetadataValidator().schema)
    schema["title"] = "una copia para esta prueba"  # not in the cache yet
    first = schema_validator(schema)
    assert schema_validator(copy.deepcopy(schema)) is first
    for _ in range(3):
        CachedMetadataValidator().validate_nb(notebook("valid"))
    assert calls == ["una copia para esta prueba"]
    calls.clear()
    cells = sum("nbgrader" in c.metadata for c in notebook("valid").cells)
    for _ in range(3):
        MetadataValidator().validate_nb(notebook("valid"))
    assert len(calls) == 3 * cells == 6  # nbgrader: once per nbgrader cell


def test_course_config_keeps_nbgraders_lists_with_the_cached_check():
    from nbgrader.converters.autograde import Autograde
    from traitlets.utils.importstring import import_item
    cfg = nbgrader_run.load_config(Course(REPO))

    def names(items):
        return [(import_item(c) if isinstance(c, str) else c).__name__ for c in items]

    default = names(Autograde.class_traits()["sanitize_preprocessors"].default())
    assert default[-1] == "CheckCellMetadata"
    # nbgrader's gradebook preprocessors may be their shared-engine subclasses (test_sharedgb.py)
    configured = [name[len("Shared"):] if name.startswith("Shared") else name
                  for name in names(cfg.Autograde.sanitize_preprocessors)]
    assert configured == default[:-1] + ["CachedCheckCellMetadata"]
    assert names(cfg.Autograde.autograde_preprocessors)[-1] == "CachedCheckCellMetadata"
    assert "CheckCellMetadata" not in names(cfg.Autograde.autograde_preprocessors)
    assert issubclass(import_item(cfg.Autograde.sanitize_preprocessors[-1]), CheckCellMetadata)


@pytest.mark.slow
def test_sanitized_notebook_uses_the_course_list(graded_class, monkeypatch):
    """nbgrader_run.sanitized_notebook (the coordinator's pass) runs the configured check."""
    seen = []
    real = CachedCheckCellMetadata.preprocess
    monkeypatch.setattr(CachedCheckCellMetadata, "preprocess", lambda self, nb, res: (seen.append(1), real(self, nb, res))[1])
    nb = nbgrader_run.sanitized_notebook(graded_class, "1003")
    assert seen == [1] and isinstance(nb, nbformat.NotebookNode)
