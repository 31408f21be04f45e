"""Faster start for every process of the grading pipeline, and nbgrader's command line with it.

``import nbformat`` pulls in ``jsonschema``, whose format checker imports ``rfc3987_syntax``
when it is installed (here through ``jupyter-events``' ``jsonschema[format-nongpl]``); that
module builds 38 Lark grammars at import, about 3 s of CPU on a 2-core machine, in every
coordinator, worker and nbgrader process, for an ``iri`` format check that no notebook or
nbgrader schema uses.  :func:`lazy_rfc3987` puts a stand-in in ``sys.modules`` that imports the
real module the first time anything is called on it, so validation is unchanged and only its
cost moves to the (never reached) first use.

The package installs it on import (``tarea2_grader/__init__.py``); nbgrader's command line with it
in place is :mod:`tarea2_grader.integration.nbgrader_cli`.

:func:`alembic_in_process` is the other one: nbgrader creates a new gradebook (the first
``generate_assignment`` of a course, every benchmark course) after asking a new ``alembic heads``
process for the schema's revision, a process that imports nbgrader again (measured 16.7 s
against 0.6 s in process on a loaded 2-core machine).  The same revision, read in process.

:func:`exit_without_teardown` ends a command-line process the way Python would (threads joined,
``atexit`` handlers run, output flushed), minus the interpreter's teardown of every module, which
costs CPU at the end of each pipeline process: measured here 0.9-1.0 s for a process that
imported torch, 0.4-0.5 s for nbgrader's command line, 1.9 s for ``make grade``'s coordinator.

The stand-in and the exit are the fast path ``arranque``, the in-process revision belongs to
``nbgrader_cli`` (:mod:`tarea2_grader.integration.fastpaths`: switches and version guard).  The
stand-in is installed on import, before any config is read: only the environment
(``TAREA2_RAPIDO=0``, ``TAREA2_RAPIDO_SIN=arranque``) keeps it out.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from tarea2_grader.integration import fastpaths

SLOW_OPTIONAL = "rfc3987_syntax"


def lazy_rfc3987() -> None:
    """Install the stand-in for ``rfc3987_syntax`` (nothing to do if it is absent or imported, or
    the path ``arranque`` is off)."""
    if SLOW_OPTIONAL in sys.modules or not fastpaths.active("arranque"):
        return
    try:
        if importlib.util.find_spec(SLOW_OPTIONAL) is None:
            return
    except (ImportError, ValueError):
        return
    stand_in = types.ModuleType(SLOW_OPTIONAL)
    stand_in.__doc__ = "Loaded on first use (tarea2_grader.integration.arranque)."

    def real():
        module = sys.modules.get(SLOW_OPTIONAL)
        if module is stand_in:
            del sys.modules[SLOW_OPTIONAL]
            try:
                module = importlib.import_module(SLOW_OPTIONAL)
            except BaseException:
                sys.modules[SLOW_OPTIONAL] = stand_in
                raise
        return module

    def is_valid_syntax(*args, **kwargs):
        return real().is_valid_syntax(*args, **kwargs)

    def attribute(name):
        if name.startswith("__"):  # import machinery probing (__path__, __spec__...): not a use
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.is_valid_syntax = is_valid_syntax
    stand_in.__getattr__ = attribute
    sys.modules[SLOW_OPTIONAL] = stand_in


def alembic_head() -> str:
    """The gradebook schema's revision, read as ``alembic heads`` reads it: its first head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import _temp_alembic_ini
    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:  # nbgrader's own arguments
        return ScriptDirectory.from_config(Config(ini)).get_revisions("heads")[0].revision


def alembic_in_process() -> None:
    """nbgrader's new gradebooks get their schema revision from :func:`alembic_head`."""
    import nbgrader.api
    nbgrader.api.get_alembic_version = alembic_head


def exit_without_teardown(code: int) -> None:
    """Exit with ``code`` after what a normal exit does first, without its module teardown.

    As ``Py_FinalizeEx`` starts: wait for the non-daemon threads (``threading._shutdown``, which
    also stops idle ``concurrent.futures`` workers), run the ``atexit`` handlers (logging's
    flush among them), flush stdout and stderr; then ``os._exit``.  Only for the normal end of
    a command: an exception or ``sys.exit`` still goes through Python's own exit.  With the path
    ``arranque`` off: ``sys.exit(code)``.
    """
    if not fastpaths.active("arranque"):
        sys.exit(code)
    import atexit
    import os
    import threading
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(int(code or 0))
