"""The lazy stand-in for rfc3987_syntax: nbgrader's processes start without building its
grammars, and JSON-schema validation is unchanged."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("rfc3987_syntax")


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_nbgrader_imports_without_building_the_grammars():
    out = run("import sys, tarea2_grader\n"
              "from nbgrader.apps.nbgraderapp import main\n"
              "import nbformat, jsonschema\n"
              "print('syntax_helpers' in ' '.join(sys.modules))")
    assert out.strip() == "False"


@pytest.mark.slow
def test_without_the_stand_in_the_grammars_are_built():
    # the same imports without tarea2_grader: what the first test guards against does happen
    out = run("import sys\nimport nbformat, jsonschema\nprint('syntax_helpers' in ' '.join(sys.modules))")
    assert out.strip() == "True"


@pytest.mark.slow
def test_iri_format_still_validated():
    out = run("import tarea2_grader, jsonschema\n"
              "fc = jsonschema.FormatChecker()\n"
              "print('iri' in fc.checkers, fc.conforms('https://ejemplo.cl/a?b=1', 'iri'),"
              " fc.conforms('ht tp://x y', 'iri'))")
    assert out.split() == ["True", "True", "False"]


@pytest.mark.slow
def test_nbgrader_command_line_through_the_launcher(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tarea2_grader.integration.nbgrader_cli", "--version"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "nbgrader version" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_new_gradebook_gets_the_revision_alembic_reports(tmp_path):
    """The in-process revision is the one nbgrader's `alembic heads` process prints, and a
    gradebook created through the launcher records it, as plain nbgrader's does."""
    import os
    import sqlite3

    from nbgrader import api

    from tarea2_grader.integration import arranque
    from tarea2_grader.integration import nbgrader_run

    env = nbgrader_run.nbgrader_env()
    old_path = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]  # nbgrader's own function starts `alembic` from PATH
    try:
        expected = api.get_alembic_version()
    finally:
        os.environ["PATH"] = old_path
    assert len(expected) >= 6 and arranque.alembic_head() == expected
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "alembic").write_text("#!/bin/sh\necho 'alembic started' >&2\nexit 3\n")
    (shim / "alembic").chmod(0o755)
    no_alembic = dict(env, PATH=str(shim) + os.pathsep + env["PATH"])  # the launcher never starts it
    versions = {}
    for launcher, launcher_env in ((["-m", "tarea2_grader.integration.nbgrader_cli"], no_alembic), (["-m", "nbgrader"], env)):
        folder = tmp_path / launcher[-1]
        folder.mkdir()
        proc = subprocess.run([sys.executable, *launcher, "db", "student", "add", "1001"], cwd=folder,
                              capture_output=True, text=True, env=launcher_env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        with sqlite3.connect(str(folder / "gradebook.db")) as db:
            versions[launcher[-1]] = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert versions["tarea2_grader.integration.nbgrader_cli"] == versions["nbgrader"] == [(expected,)]


EXIT_SCRIPT = r"""
import atexit, logging, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from tarea2_grader.integration.arranque import exit_without_teardown
out = sys.argv[1]

class Teardown:
    def __del__(self, _open=open, _path=out + "/teardown"):  # bound now: teardown clears names
        with _open(_path, "w") as fh:
            fh.write("ran")
KEPT = Teardown()  # a module global: only the interpreter's teardown deletes it

def late():
    time.sleep(0.5)
    open(out + "/thread", "w").write("done")
threading.Thread(target=late).start()  # not a daemon: a normal exit waits for it
pool = ThreadPoolExecutor(2)
pool.submit(lambda: None).result()  # idle workers, never shut down
atexit.register(lambda: open(out + "/atexit", "w").write(open(out + "/thread").read()))
logging.basicConfig(filename=out + "/log", level=logging.INFO)
logging.getLogger("x").info("registrado")
for _ in range(2001):
    sys.stdout.write("x" * 100)  # a pipe: block-buffered, the last block not written yet
exit_without_teardown(3)
"""


@pytest.mark.parametrize("hard", [True, False], ids=["sin_desmontar", "salida_normal"])
def test_exit_without_teardown_does_what_a_normal_exit_does_first(tmp_path, hard):
    script = EXIT_SCRIPT if hard else EXIT_SCRIPT.replace("exit_without_teardown(3)", "sys.exit(3)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout stays buffered
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 3, run.stderr
    assert run.stdout == "x" * 200100
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "done"  # after the thread, as in a normal exit
    assert "registrado" in (tmp_path / "log").read_text()
    assert (tmp_path / "teardown").exists() != hard  # the module teardown is what is skipped
