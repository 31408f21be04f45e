"""The lazy stand-in for rfc3987_syntax: nbgrader's processes start without building its
grammars, and JSON-schema validation is unchanged."""
import subprocess
import sys

import pytest

pytest.importorskip("rfc3987_syntax")


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_nbgrader_imports_without_building_the_grammars():
    out = run("import sys, tarea2_grader\n"
              "from nbgrader.apps.nbgraderapp import main\n"
              "import nbformat, jsonschema\n"
              "print('syntax_helpers' in ' '.join(sys.modules))")
    assert out.strip() == "False"


def test_without_the_stand_in_the_grammars_are_built():
    # the same imports without tarea2_grader: what the first test guards against does happen
    out = run("import sys\nimport nbformat, jsonschema\nprint('syntax_helpers' in ' '.join(sys.modules))")
    assert out.strip() == "True"


def test_iri_format_still_validated():
    out = run("import tarea2_grader, jsonschema\n"
              "fc = jsonschema.FormatChecker()\n"
              "print('iri' in fc.checkers, fc.conforms('https://ejemplo.cl/a?b=1', 'iri'),"
              " fc.conforms('ht tp://x y', 'iri'))")
    assert out.split() == ["True", "True", "False"]


def test_nbgrader_command_line_through_the_launcher(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tarea2_grader.nbgrader_cli", "--version"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "nbgrader version" in proc.stdout + proc.stderr
