"""Every path that copies or bypasses nbgrader (or nbconvert) internals for speed, behind one switch.

:data:`PATHS` lists them: its name, the stock thing it replaces, and the stock source it relies on
(``"module:Qualified.name"`` -> sha256 of that definition's source lines, as the installed version
had them when the path was written).  A path runs only when all three hold:

1. the master switch is on: ``c.FastPaths.enabled`` in nbgrader_config.py (default True), which the
   environment variable ``TAREA2_RAPIDO`` overrides when set (``0`` off, ``1`` on);
2. it is not switched off by name: ``c.FastPaths.disabled`` (a list of names) together with the
   comma-separated names in ``TAREA2_RAPIDO_SIN`` (e.g. ``TAREA2_RAPIDO_SIN=sharedgb,cellmeta``);
3. the version guard passes: every stock definition it lists still has its recorded sha256.  One
   that changed (an nbgrader or nbconvert upgrade) switches the path off in this process with one
   Spanish warning line on stderr, and stock nbgrader runs instead.

When a path is off, its classes behave exactly as their nbgrader or nbconvert base (their
``preprocess``/``from_notebook_node`` delegate to ``super()``), and the pipeline runs ``python -m
nbgrader`` (:mod:`tarea2_grader.integration.nbgrader_cli`), one process per autograde pass.

Where it is decided: each nbgrader process decides for itself, from its own config (the
preprocessors pass theirs: :func:`active`) and the environment; ``python -m tarea2_grader grade``
decides at start-up (:func:`check_at_start`) and writes the paths it switched off into
``TAREA2_RAPIDO_SIN`` for every process it starts.  The ``arranque`` stand-in is installed when
the package is imported, before any config is read: it follows the environment only.

The stock sources are read from the installed files (``ast``), without importing anything, so the
guard costs a few milliseconds per process, once.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Set, Tuple

ENV_MASTER = "TAREA2_RAPIDO"
ENV_WITHOUT = "TAREA2_RAPIDO_SIN"
WARNING = ("aviso: ruta rápida '{name}' apagada: {ref} no es el código que conoce ({module}); "
           "se usa {stock} tal cual")


@dataclass(frozen=True)
class FastPath:
    """One speed path: where it lives, the stock thing it replaces, the stock source it relies on."""

    name: str
    module: str
    replaces: str
    stock: Dict[str, str] = field(hash=False)


PATHS: Dict[str, FastPath] = {p.name: p for p in (
    FastPath("arranque", "tarea2_grader.integration.arranque",
             "jsonschema's eager import of rfc3987_syntax (lazy stand-in) and Python's module teardown "
             "at the end of tarea2_grader's own processes", {
                 "jsonschema._format": "96bb3553b892076657f59d846a5b113987909b577d91e7f0d822e8d3c1bc3f8b",
             }),
    FastPath("nbgrader_cli", "tarea2_grader.integration.nbgrader_cli",
             "the `nbgrader` command (run as python -m nbgrader) and its `alembic heads` subprocess", {
                 "nbgrader.apps.nbgraderapp:main":
                     "6a93ae1a8fa155ffad3e91a2119fcf8f90dbed6a7cf3e7a84298f64507956867",
                 "nbgrader.api:get_alembic_version":
                     "40160af67d70e523876ed8258485d1aecb504c9e52644a20dc777b7b46c01de7",
                 "nbgrader.dbutil:_temp_alembic_ini":
                     "cfca4f6e22540be42741e0acf548c8766cb56ec7407be4c5c27f7a65c1488ef2",
             }),
    FastPath("lotes", "tarea2_grader.integration.nbgrader_cli",
             "one `nbgrader autograde` process per gradebook pass (AutogradeApp.start)", {
                 "nbgrader.apps.autogradeapp:AutogradeApp.start":
                     "d105cdec71059588c998273597be123eb35d8e958597202722251a4a09847fcc",
             }),
    FastPath("sharedgb", "tarea2_grader.integration.sharedgb",
             "nbgrader's OverwriteKernelspec, OverwriteCells, SaveAutoGrades, AssignLatePenalties and "
             "Autograde's gradebooks (one new SQLAlchemy engine per student)", {
                 "nbgrader.api:Gradebook.__init__":
                     "c60c420276e8355efa558bdefe3e1e57fad264d5f42da6759c23eb010acc0baf",
                 "nbgrader.api:Gradebook.close":
                     "089cf56cf4f8a224c289f3f0fd4545736c027ffabf2970fdc7d674d6be47c40b",
                 "nbgrader.api:Gradebook.find_source_cell":
                     "0d0ef04711fab86a910faaa2af660e32decc263e1f83a60cb0d3c657948e44ce",
                 "nbgrader.api:Gradebook.find_graded_cell":
                     "68291d97eb3cd85bcbb881d3fb8c428f2bce6de1f08a2f30abfbf9a1e692bda3",
                 "nbgrader.api:Gradebook.find_grade":
                     "b1a48e74233391cece11457e55f8803db5cd1e8e7421f587d80eb78ffcc45beb",
                 "nbgrader.api:Gradebook.find_comment":
                     "bcb9b4f7da3c07527c51b04caad2ad28c6c14c332bd10ca30fff94cb981e590d",
                 "nbgrader.preprocessors.overwritekernelspec:OverwriteKernelspec.preprocess":
                     "28cc17a228e741a2f944ed6112bb550178e66acccac4fbb1c62b0f43b1038115",
                 "nbgrader.preprocessors.overwritecells:OverwriteCells.preprocess":
                     "3a94b453d8e53bee91209586b5a08c27cd88216f8fa48f218a3b1b1cf035b037",
                 "nbgrader.preprocessors.saveautogrades:SaveAutoGrades.preprocess":
                     "edef3c387d5c104ad026362a7f707227d23864bc93c17aeaf345e21628219dd5",
                 "nbgrader.preprocessors.latesubmissions:AssignLatePenalties.preprocess":
                     "e4fa96a4c466680a1c829e9451345a215c2612032be57951958c4f054a41853c",
                 "nbgrader.converters.autograde:Autograde.init_assignment":
                     "a7c144dc746ec205e6739e3071a69356ed3c2cb96fa566449e712cdb91417efa",
             }),
    FastPath("cellmeta", "tarea2_grader.integration.cellmeta",
             "nbgrader's CheckCellMetadata (jsonschema.validate, the schema checked on every cell)", {
                 "nbgrader.nbgraderformat.common:BaseMetadataValidator.validate_cell":
                     "e5f97f45a9aba510674c72eb1d7246f297175e2f1bd1193a03494f6071af3265",
                 "nbgrader.preprocessors.checkcellmetadata:CheckCellMetadata.preprocess":
                     "f8dfe8c496d03e526c73f55837efef711749488700fe21e046e3e9d5be65550c",
                 "jsonschema.validators:validate":
                     "5bfea7e5f0f3dae0ff017a90436195a93b4781b31ffaad45df8d056cb2ddd6df",
             }),
    FastPath("retro_html", "tarea2_grader.integration.retro_html",
             "nbconvert's HTMLExporter (its whole-page BeautifulSoup pass, highlighting and markdown "
             "rendered anew, validation after every preprocessor)", {
                 "nbconvert.exporters.html:HTMLExporter.from_notebook_node":
                     "3dccafff45cc4e749766089c7de2f5385ac071e03f4f5a15bfb3b025f54893b9",
                 "nbconvert.exporters.html:HTMLExporter.markdown2html":
                     "22b70a1f0b447bcb6df3ca882d4ee29e04cc462d06bb7115d33713d4134320fc",
                 "nbconvert.filters.highlight:Highlight2HTML.__call__":
                     "576b5d79815a71475796e585911c47f07606abc9827562a8ba71314ec7555a41",
                 "nbconvert.exporters.exporter:Exporter._validate_preprocessor":
                     "b028bdb8c9cb3ae9326c451ce8ed7dca04c0a566cadfe69cdd2ad936aa54db54",
             }),
)}

_lock = threading.Lock()
_guards: Dict[str, Optional[Tuple[str, str]]] = {}  # name -> None (stock unchanged) or (ref, why)
_warned: Set[str] = set()
_config = [None]  # the last nbgrader config seen in this process (see active)


# ---------------------------------------------------------------- the switches

def _names(text: str) -> Set[str]:
    return {n.strip() for n in text.split(",") if n.strip()}


def switches(config=None) -> Tuple[bool, Set[str]]:
    """(master switch on?, names switched off) from ``config``'s FastPaths section and the environment."""
    enabled, disabled = True, set()
    section = config.get("FastPaths", {}) if config is not None else {}
    if "enabled" in section:
        enabled = bool(section["enabled"])
    if "disabled" in section:
        value = section["disabled"]
        disabled |= _names(value) if isinstance(value, str) else {str(n) for n in value}
    master = os.environ.get(ENV_MASTER, "").strip()
    if master:
        enabled = master.lower() not in ("0", "no", "false", "off")
    disabled |= _names(os.environ.get(ENV_WITHOUT, ""))
    return enabled, disabled


def unknown_names(config=None) -> Set[str]:
    """Names switched off that are no path of :data:`PATHS` (a typo)."""
    return switches(config)[1] - set(PATHS)


def active(name: str, config=None) -> bool:
    """Whether path ``name`` runs in this process (switches, then its version guard).

    ``config``: the nbgrader config (a traitlets ``Config``) of the caller; it is remembered, so
    a caller without one (a helper of a preprocessor) gets the same answer.
    """
    if name not in PATHS:
        raise KeyError(name)
    if config is not None:
        _config[0] = config
    enabled, disabled = switches(_config[0])
    return enabled and name not in disabled and stock_unchanged(name)


def check_at_start(config=None, environ=os.environ) -> Set[str]:
    """Check every path now (warning for each changed stock source); the set of paths that run.

    The paths switched off here (by the config or by a guard) are written into ``environ``'s
    ``TAREA2_RAPIDO_SIN``, so every process started from this one switches them off too.
    """
    on = {name for name in PATHS if active(name, config)}
    off = sorted(set(PATHS) - on)
    if off:
        environ[ENV_WITHOUT] = ",".join(off)
    return on


def forget() -> None:
    """Check the guards again and forget the remembered config (tests)."""
    with _lock:
        _guards.clear()
        _warned.clear()
        _config[0] = None


# ---------------------------------------------------------------- the version guard

def stock_unchanged(name: str) -> bool:
    """Whether every stock source of path ``name`` has its recorded sha256 (warns once if not)."""
    with _lock:
        if name not in _guards:
            _guards[name] = first_change(PATHS[name])
        change = _guards[name]
        if change is None:
            return True
        if name not in _warned:
            _warned.add(name)
            print(warning(PATHS[name], change[0]), file=sys.stderr, flush=True)
    return False


def warning(path: FastPath, ref: str) -> str:
    """The one-line Spanish warning for ``path`` switched off because ``ref`` changed."""
    stock = "nbconvert" if ref.startswith("nbconvert") else "nbgrader"
    return WARNING.format(name=path.name, ref=ref, module=path.module, stock=stock)


def first_change(path: FastPath) -> Optional[Tuple[str, str]]:
    """(ref, why) of the first stock source of ``path`` that differs from its record, or None."""
    for ref, recorded in path.stock.items():
        try:
            digest = source_sha256(ref)
        except (OSError, SyntaxError, LookupError, ValueError, ImportError) as exc:
            return ref, "no se pudo leer ({})".format(exc)
        if digest != recorded:
            return ref, "sha256 {}".format(digest)
    return None


def module_file(module: str) -> str:
    """The installed source file of a dotted module name, found without importing anything."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        raise LookupError(module)
    if not rest:
        return spec.origin
    base = os.path.join(list(spec.submodule_search_locations)[0], *rest)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.exists(candidate):
            return candidate
    raise LookupError(module)


@functools.lru_cache(maxsize=None)
def _module(module: str) -> Tuple[str, ast.Module]:
    """The text of an installed module's file and its syntax tree (read once per process)."""
    with open(module_file(module), encoding="utf-8") as fh:
        text = fh.read()
    return text, ast.parse(text)


def definition_source(module: str, qualname: str) -> str:
    """The source lines of ``qualname`` (``Class.method`` or ``function``) in an installed
    ``module``, decorators included, as ``inspect.getsource`` gives them."""
    text, tree = _module(module)
    body = tree.body
    node = None
    for part in qualname.split("."):
        found = [n for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == part]
        if not found:
            raise LookupError(qualname)
        node = found[-1]  # the last definition wins, as at run time
        body = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = text.splitlines(keepends=True)
    return "".join(lines[first - 1:node.end_lineno])


def source_sha256(ref: str) -> str:
    """sha256 of a stock source: ``module:Qualified.name`` (one definition) or ``module`` (the file)."""
    module, _, qualname = ref.partition(":")
    if qualname:
        source = definition_source(module, qualname)
    else:
        with open(module_file(module), encoding="utf-8") as fh:
            source = fh.read()
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def describe(names: Iterable[str] = ()) -> str:
    """A plain-text table of the paths (name, where, what it replaces) for people and the benchmark."""
    rows = [PATHS[n] for n in (names or PATHS)]
    return "\n".join("{:<13} {:<40} {}".format(p.name, p.module, p.replaces) for p in rows)
