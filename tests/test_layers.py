"""The package's folders are trust zones and layers; this reads every import and holds them to it.

commands -> integration -> parallel -> engine <- tarea2 (the course); the sandboxed side imports
only the protocol module.  A higher layer may import a lower one, never the other way round, and
the engine knows no course: the course is plugged in by name (``TrustedExecute.tests_module``).
"""
import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tarea2_grader"

# zone -> the zones it may import (besides itself).
ALLOWED = {
    "protocol": set(),
    "sandboxed": {"protocol"},
    "engine": {"protocol"},
    "tarea2": {"protocol", "engine"},
    "parallel": {"protocol", "engine"},
    "integration": {"protocol", "engine", "parallel"},
    "commands": {"protocol", "engine", "parallel", "integration"},
    "__main__": {"protocol", "engine", "parallel", "integration", "commands"},
}


def zone_name(parts):
    """The zone of a module given by its path parts below the package (``sandboxed/protocol`` is
    the boundary's codec, its own zone)."""
    if list(parts[:2]) == ["sandboxed", "protocol"]:
        return "protocol"
    return parts[0]


def zone_of(path):
    rel = path.relative_to(PACKAGE).with_suffix("")
    return zone_name(rel.parts) if len(rel.parts) > 1 else rel.stem


def imported_zones(path):
    """(line, zone) for each import of a module of this package in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(path.relative_to(PACKAGE).parts[:-1])[: len(path.relative_to(PACKAGE).parts) - node.level]
                names = base + (node.module.split(".") if node.module else [])
                targets = [names + [a.name] for a in node.names]
            else:
                parts = (node.module or "").split(".")
                if parts[0] != "tarea2_grader":
                    continue
                targets = [parts[1:] + [a.name] for a in node.names]
            found += [(node.lineno, zone_name(t)) for t in targets if t]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, zone_name(a.name.split(".")[1:])) for a in node.names
                      if a.name.startswith("tarea2_grader.")]
    return found


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_the_zones_are_the_folders_the_readme_names():
    zones = {zone_of(p) for p in modules()}
    assert zones <= set(ALLOWED), zones - set(ALLOWED)
    assert {"sandboxed", "engine", "parallel", "integration", "commands", "tarea2"} <= zones


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    zone, rel = zone_of(path), path.relative_to(PACKAGE).as_posix()
    wrong = ["line {}: {}".format(line, target) for line, target in imported_zones(path)
             if target != zone and target not in ALLOWED[zone]]
    assert not wrong, "{} ({}) imports {}".format(rel, zone, wrong)


def test_the_package_never_imports_the_tools():
    """Benchmarks, screenshots and the example generator sit outside the package (``tools/``)."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            wrong += ["{}: {}".format(path.relative_to(PACKAGE), n) for n in names if n.split(".")[0] == "tools"]
    assert not wrong, wrong


def test_the_checker_sees_a_wrong_import(tmp_path, monkeypatch):
    """The rule above can fail: an engine module importing the course is caught."""
    fake = tmp_path / "tarea2_grader"
    (fake / "engine").mkdir(parents=True)
    bad = fake / "engine" / "malo.py"
    bad.write_text("from tarea2_grader.tarea2 import hidden\nfrom ..commands import pipeline\nimport os\n"
                   "from tarea2_grader.sandboxed import protocol\nimport tarea2_grader.sandboxed.agent\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert imported_zones(bad) == [(1, "tarea2"), (2, "commands"), (4, "protocol"), (5, "sandboxed")]
