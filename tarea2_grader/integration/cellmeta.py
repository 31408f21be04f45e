"""nbgrader's cell-metadata check with its JSON schema validator built once.

nbgrader's ``CheckCellMetadata`` validates every nbgrader cell with
``jsonschema.validate(meta, schema)`` (``nbgraderformat/common.py``), which checks the constant
schema against its meta-schema on every call before validating the cell: about 0.2 s of CPU per
student, paid in the coordinator (``nbgrader_run.sanitized_notebook``) and twice in nbgrader's
autograde run (its sanitizing and its grading pass).

:class:`CachedCheckCellMetadata` (in ``c.Autograde.sanitize_preprocessors`` and
``c.Autograde.autograde_preprocessors``) runs the same checks with
:class:`CachedMetadataValidator`: nbgrader's ``MetadataValidatorV3`` whose schema step uses a
validator built (after ``check_schema``) once per schema.  ``jsonschema.validate`` does exactly
``validator_for(schema)``, ``check_schema``, ``best_match(cls(schema).iter_errors(meta))``, so
the same metadata is accepted and the same error, with the same message, is raised.  nbgrader
itself is not patched: the class sits between ``MetadataValidatorV3`` and nbgrader's base
validator, where V3's own ``super().validate_cell`` call reaches it.

This is the fast path ``cellmeta`` (:mod:`tarea2_grader.integration.fastpaths`): with it off,
:class:`CachedCheckCellMetadata` is nbgrader's ``CheckCellMetadata``.
"""
import json
import threading
import traceback

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.validators import validator_for
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator, SchemaTooNewError, SchemaTooOldError
from nbgrader.preprocessors import CheckCellMetadata

from tarea2_grader.integration import fastpaths

_validators = {}
_lock = threading.Lock()


def schema_validator(schema: dict):
    """The jsonschema validator of ``schema``, checked against its meta-schema the first time.

    Keyed by the schema's content: a schema that fails ``check_schema`` is not kept, and raises
    ``SchemaError`` on each call, as ``jsonschema.validate`` does.
    """
    key = json.dumps(schema, sort_keys=True)
    validator = _validators.get(key)
    if validator is None:
        cls = validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema)
        with _lock:
            _validators.setdefault(key, validator)
    return validator


class _CachedSchemaStep(BaseMetadataValidator):
    """nbgrader's ``BaseMetadataValidator.validate_cell`` with the schema validator built once."""

    def validate_cell(self, cell) -> None:
        if 'nbgrader' not in cell.metadata:
            return
        schema = cell.metadata['nbgrader'].get('schema_version', 0)
        if schema < self.schema_version:
            raise SchemaTooOldError(
                "Outdated schema version: {} (expected {})".format(schema, self.schema_version),
                schema, self.schema_version)
        elif schema > self.schema_version:
            raise SchemaTooNewError(
                "Schema version is too new: {} (expected {})".format(schema, self.schema_version),
                schema, self.schema_version)
        validator = getattr(self, "_schema_validator", None)
        if validator is None:
            validator = self._schema_validator = schema_validator(self.schema)
        error = jsonschema_exceptions.best_match(validator.iter_errors(cell.metadata['nbgrader']))
        if error is not None:
            raise error


class CachedMetadataValidator(MetadataValidator, _CachedSchemaStep):
    """nbgrader's current ``MetadataValidator`` (V3); its schema step is :class:`_CachedSchemaStep`."""


class CachedCheckCellMetadata(CheckCellMetadata):
    """nbgrader's ``CheckCellMetadata`` with :class:`CachedMetadataValidator` (same log and error)."""

    def preprocess(self, nb, resources):
        if not fastpaths.active("cellmeta", self.config):
            return super().preprocess(nb, resources)
        try:
            CachedMetadataValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)

        return nb, resources
