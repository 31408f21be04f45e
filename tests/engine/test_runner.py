"""The sandbox and the trusted runner, on small notebooks: what student code can and cannot do.

Each test builds a notebook, grades it with :func:`tarea2_grader.engine.runner.grade` (the path
nbgrader's autograde takes) and reads what came back: cell outputs written by the sandboxed
process, and verdicts computed here.  The real assignment's grading is covered by
``test_wrong_submissions.py`` / ``test_autograde.py``; hostile students by ``test_attacks.py``.
"""
import os
import socket
import threading
import time

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tarea2_grader.engine import runner
from tarea2_grader.engine import sandbox
from tarea2_grader.engine import session
from tarea2_grader.engine.cells import reference_sources
from tools.examples import edit_cells

from tests.support import course_facts
from tests.support.grading import errors_of, notebook, run, text_of
from tests.support.repo import REPO, SOURCE_NB as SOURCE

AUTOGRADED = course_facts.autograded_points()


def test_bubblewrap_is_used_here():
    """The suite runs where bubblewrap works (CI installs it): every other test here relies on it."""
    assert sandbox.bwrap_works()
    _, result = run("x = 1")
    assert result.aislado


def test_the_sandbox_sees_no_course_file_and_writes_nowhere_else(tmp_path):
    secret = tmp_path / "secreto.txt"
    secret.write_text("respuestas")
    probes = {
        "grader": os.path.join(REPO, "tarea2_grader", "tarea2", "hidden.py"),
        "source": SOURCE,
        "secret": str(secret),
    }
    code = ["import os, sys"]
    for name, path in probes.items():
        code.append(f"print('{name}', os.path.exists({path!r}))")
    code.append("try:\n    import tarea2_grader\n    print('import True')\nexcept ImportError:\n    print('import False')")
    code.append(f"try:\n    open({str(tmp_path / 'escrito.txt')!r}, 'w').write('x')\n    print('write True')\n"
                "except OSError:\n    print('write False')")
    code.append("print('uid', os.getuid())")
    (outputs,), _ = run("\n".join(code))
    out = text_of(outputs)
    for name in probes:
        assert f"{name} False" in out, out
    assert "import False" in out and "write False" in out, out
    assert not (tmp_path / "escrito.txt").exists()
    if os.geteuid() == 0:
        assert "uid 65534" in out


def test_of_the_package_the_sandbox_holds_only_the_agent_files_read_only():
    """The agent's siblings (the boundary's codec among them) are bound beside it, nothing else."""
    (outputs,), _ = run("import os\nprint(sorted(os.listdir('/run/tarea2')))\n"
                        "try:\n    open('/run/tarea2/protocol.py', 'a')\n    print('escribe True')\n"
                        "except OSError:\n    print('escribe False')")
    out = text_of(outputs)
    assert str(sandbox.agent_files()) in out and "'protocol.py'" in out and "__init__" not in out, out
    assert "escribe False" in out, out


def test_no_network(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(6)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:  # timed out: nobody connected
            pass

    threading.Thread(target=accept, daemon=True).start()
    (outputs,), _ = run("import socket\ntry:\n"
                        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('red True')\n"
                        "except OSError as e:\n    print('red False')")
    time.sleep(0.5)
    assert "red False" in text_of(outputs)
    assert not accepted
    server.close()


def test_a_crashing_cell_costs_only_itself():
    outs, result = run("a = 41", "import os\nos._exit(7)", "print('a =', a + 1)")
    assert errors_of(outs[1]) == ["ProcesoTerminado"]
    assert "a = 42" in text_of(outs[2])
    assert any("hizo terminar el proceso" in n for n in result.notas)


@pytest.mark.slow
def test_a_looping_cell_is_stopped_and_the_state_before_it_kept():
    t0 = time.monotonic()
    outs, result = run("a = 1", "a = 2\nwhile True:\n    pass", "print('a =', a)", cell_timeout=2)
    assert time.monotonic() - t0 < 30
    assert errors_of(outs[1]) == ["TiempoExcedido"]
    assert "a = 1" in text_of(outs[2])


@pytest.mark.slow
def test_memory_is_capped_per_process():
    outs, _ = run("import torch\nx = torch.empty(2_000_000_000, dtype=torch.uint8)\nx.fill_(1)",
                  "print('sigo vivo')", memory_mb=512)
    assert errors_of(outs[0]) in (["RuntimeError"], ["MemoryError"]), outs[0]
    assert "sigo vivo" in text_of(outs[1])


def test_processes_left_by_a_student_are_ended():
    run("import subprocess\nsubprocess.Popen(['sleep', '987'])\n"
        "import os\nif os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '988'])")
    time.sleep(0.5)
    left = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and
            p.info["cmdline"][:2] in (["sleep", "987"], ["sleep", "988"])]
    assert left == []


def test_a_warm_sandbox_forgets_the_previous_student():
    run("open('marca_alumno', 'w').write('x')\nopen('/tmp/marca_tmp', 'w').write('x')\nimport os\n"
        "os.environ['MARCA'] = '1'\nimport torch\ntorch.relu = None")
    warm_sandbox = runner.WARM_SANDBOXES._idle[session._WarmSandboxes._key(sandbox.Limits(), True)][-1]
    before = warm_sandbox.students
    (outputs,), _ = run("import os, torch\nprint(os.path.exists('marca_alumno'), os.path.exists('/tmp/marca_tmp'),"
                        " 'MARCA' in os.environ, torch.relu is None, sorted(os.listdir('.')))")
    assert warm_sandbox.students == before + 1  # the same warm sandbox graded the second notebook
    assert "False False False False []" in text_of(outputs)


@pytest.mark.slow
def test_a_looping_call_fails_its_test_within_seconds_and_nothing_else():
    sgd = reference_sources(SOURCE)["sgd"].replace("def step(self):", "def step(self):\n        while True:\n            pass")
    nb = edit_cells(nbformat.read(SOURCE, as_version=4), {"sgd": sgd})
    t0 = time.monotonic()
    result = runner.grade(nb, 3, sandbox.Limits(cell_timeout=3, test_timeout=3), until_last_test=True)
    points = result.puntos(nb)
    assert time.monotonic() - t0 < 60
    assert points["test_sgd"] == 0 and "tiempo excedido" in result.mensajes(nb)["test_sgd"]
    assert {k for k, v in points.items() if v == 0} == {"test_sgd"}


@pytest.mark.slow
def test_without_bubblewrap_grading_still_works_and_warns_in_spanish():
    nb = nbformat.read(SOURCE, as_version=4)
    result = runner.grade(nb, 4, isolate=False, until_last_test=True)
    assert not result.aislado
    assert sum(result.puntos(nb).values()) == AUTOGRADED
    sandbox._warned.clear()
    aviso = sandbox.no_isolation_warning()
    assert "bubblewrap" in aviso and "apt-get install bubblewrap" in aviso and "no está disponible" in aviso
    assert sandbox.no_isolation_warning() is None  # said once


def test_undeclared_test_cell_scores_zero_with_a_reason():
    nb = notebook("x = 1", "assert True")
    nb.cells[1].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 2,
                                        "locked": True, "schema_version": 3}
    result = runner.grade(nb, 1)
    assert result.puntos(nb) == {"t": 0.0}
    assert "no declara" in result.mensajes(nb)["t"]


@pytest.mark.parametrize("reply", [
    {"status": "ok", "outputs": [{"output_type": "display_data", "data": {"text/plain": 3}},
                                 {"output_type": "stream", "name": "x", "text": None},
                                 {"output_type": "nada"}, "basura",
                                 {"output_type": "error", "ename": 5, "evalue": None, "traceback": "tb"}]},
])
def test_untrusted_outputs_become_valid_nbformat(reply):
    outs = [o for o in (runner.sanitized(o) for o in reply["outputs"]) if o]
    cell = new_code_cell("x")
    cell.outputs = [nbformat.from_dict(o) for o in outs]
    nb = new_notebook(cells=[cell])
    nbformat.validate(nb)


@pytest.mark.slow
def test_an_sgd_step_that_ends_the_process_loses_only_the_sgd_test():
    """os._exit in SGD.step is reached from the visible check, the hidden test and the training
    cells: those cells and test_sgd lose, every other test (test_entrenar uses a lent optimizer) keeps."""
    sgd = reference_sources(SOURCE)["sgd"].replace("def step(self):", "def step(self):\n        import os\n"
                                                   "        os._exit(3)")
    nb = edit_cells(nbformat.read(SOURCE, as_version=4), {"sgd": sgd})
    result = runner.grade(nb, 9)
    points = result.puntos(nb)
    assert {k for k, v in points.items() if v == 0} == {"test_sgd"}, result.mensajes(nb)
    assert "hizo terminar el proceso" in result.mensajes(nb)["test_sgd"]
    crashed = {c.metadata.get("nbgrader", {}).get("grade_id") for i, c in enumerate(nb.cells)
               if errors_of(result.outputs.get(i, [])) == ["ProcesoTerminado"]}
    assert {"chequeo_sgd", "chequeo_entrenar", "graficos"} <= crashed


@pytest.mark.slow
def test_one_loop_costs_one_full_limit_and_then_every_cell_gets_the_short_one():
    outputs, result = run("def atascada():\n    while True:\n        pass",
                          "atascada()", "atascada()", "print('sigo')", "atascada()",
                          cell_timeout=6, timeout_after_loop=1)
    assert errors_of(outputs[1]) == ["TiempoExcedido"] and "6 s" in outputs[1][0]["evalue"]
    assert errors_of(outputs[2]) == ["TiempoExcedido"] and "1 s" in outputs[2][0]["evalue"]
    assert text_of(outputs[3]) == "sigo\n"  # a quick cell still runs after the loop
    assert errors_of(outputs[4]) == ["TiempoExcedido"] and "1 s" in outputs[4][0]["evalue"]
    assert any("cada celda y test siguiente tuvo como máximo 1 s" in n for n in result.notas)


def test_without_a_loop_every_cell_keeps_the_full_limit():
    outputs, result = run("import time\ntime.sleep(1.5)\nprint('lenta pero termina')",
                          cell_timeout=6, timeout_after_loop=1)
    assert text_of(outputs[0]) == "lenta pero termina\n"
    assert not result.notas


def test_cells_share_one_process_until_one_fails_and_the_state_is_rebuilt():
    """No fork per cell: the cells run in one process; after a cell ends it, a new process runs
    the cells that had succeeded again, so definitions, imports and values are all back."""
    outs, result = run("import os, math as m\npid0 = os.getpid()\nprint(pid0)",
                       "def doble(x):\n    return 2 * x\nprint(os.getpid())",
                       "os._exit(5)",
                       "print(os.getpid())\nprint(doble(m.floor(2.5)))")
    assert text_of(outs[0]) == text_of(outs[1])  # same process for both cells
    assert errors_of(outs[2]) == ["ProcesoTerminado"] and "código 5" in outs[2][0]["evalue"]
    new_pid, value = text_of(outs[3]).split()
    assert new_pid != text_of(outs[0]).strip() and value == "4"


@pytest.mark.slow
def test_a_cell_that_behaves_differently_when_run_again_is_left_out_with_a_note():
    first = ("import os\nif os.path.exists('ya_corri'):\n    while True:\n        pass\n"
             "open('ya_corri', 'w').write('x')\nb = 5")
    t0 = time.monotonic()
    outs, result = run("a = 1", first, "import os\nos._exit(1)", "print(a, 'b' in dir())", cell_timeout=8)
    assert time.monotonic() - t0 < 25
    assert text_of(outs[3]) == "1 False\n"
    assert any("no terminó al ejecutarse de nuevo" in n for n in result.notas)


@pytest.mark.slow
def test_a_notebook_that_keeps_ending_its_process_is_bounded_and_the_next_student_is_fine():
    t0 = time.monotonic()
    outs, result = run(*(["x = 1"] + ["import os\nos._exit(1)"] * 20 + ["print(x)"]))
    assert time.monotonic() - t0 < 60
    kinds = [errors_of(o) for o in outs[1:21]]
    assert kinds[:runner.MAX_REBUILDS] == [["ProcesoTerminado"]] * runner.MAX_REBUILDS
    assert errors_of(outs[21]) == ["NoEjecutada"]
    assert any("veces" in n for n in result.notas)
    outs, _ = run("print('siguiente')")
    assert text_of(outs[0]) == "siguiente\n"


# --------------------------------------------------------------------------- the per-student budget


def _reference_with(prefix_by_cell):
    """The reference notebook with code put in front of some answer cells."""
    ref = reference_sources(SOURCE)
    return edit_cells(nbformat.read(SOURCE, as_version=4),
                      {gid: code + "\n" + ref[gid] for gid, code in prefix_by_cell.items()})


@pytest.mark.slow
def test_a_correct_notebook_ten_times_slower_than_the_reference_keeps_every_point():
    nb = nbformat.read(SOURCE, as_version=4)
    fast = runner.grade(nb, 6, until_last_test=True)
    assert sum(fast.puntos(nb).values()) == AUTOGRADED and 0 < fast.sandbox_s < 6, fast.sandbox_s
    slow_cells = ("derivadas_codigo", "celoss", "capas_escondidas", "ffnn_backward", "sgd", "entrenar")
    pause = 10 * fast.sandbox_s / len(slow_cells)
    nb = _reference_with({gid: "import time\ntime.sleep({:.2f})".format(pause) for gid in slow_cells})
    slow = runner.grade(nb, 6, until_last_test=True)
    assert slow.sandbox_s >= 9 * fast.sandbox_s
    assert sum(slow.puntos(nb).values()) == AUTOGRADED, slow.mensajes(nb)


@pytest.mark.slow
def test_a_student_under_every_limit_costs_at_most_the_budget_and_later_tests_say_why():
    """Every answer cell just under the cell limit: the budget ends it, not 256 s of limits."""
    limits = sandbox.Limits(cell_timeout=3, test_timeout=3, budget=8)
    ids = ("derivadas_codigo", "celoss", "dL_duLm1", "ultima_capa", "capas_escondidas", "ffnn_backward", "sgd",
           "random_dataset", "entrenar")
    nb = _reference_with({gid: "import time\ntime.sleep(2.7)" for gid in ids})
    result = runner.grade(nb, 7, limits, until_last_test=True)
    points, messages = result.puntos(nb), result.mensajes(nb)
    assert result.sandbox_s <= limits.budget + 2, result.sandbox_s
    assert points["test_derivadas_basicas"] == course_facts.points()["test_derivadas_basicas"]  # graded while the budget lasted
    assert points["test_entrenar"] == 0 and "presupuesto de 8 s" in messages["test_entrenar"]
    assert any("presupuesto de 8 s" in n for n in result.notas)


@pytest.mark.slow
def test_a_notebook_that_keeps_ending_its_process_is_bounded_by_the_budget():
    """Each crash rebuilds the state by running the finished cells again: that is charged too."""
    slow = "import time\ntime.sleep(1.5)\nx = 1"
    crash = "import os\nos._exit(3)"
    limits = sandbox.Limits(cell_timeout=5, budget=6)
    nb = notebook(slow, slow, *([crash] * 10))
    result = runner.grade(nb, 8, limits)
    assert result.sandbox_s <= limits.budget + 2, result.sandbox_s
    assert any("presupuesto" in n for n in result.notas)


def test_matplotlib_inline_as_in_colab_runs_and_shows_the_plot():
    """``%matplotlib inline`` (the first line of many Colab cells) must not stop the cell that defines a graded function."""
    outs, _ = run("%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
                  "def entrenar_FFNN():\n    return 'definida'\nprint(entrenar_FFNN())")
    assert not [o for o in outs[0] if o["output_type"] == "error"], outs[0]
    assert any("image/png" in o.get("data", {}) for o in outs[0]), [o.get("data", {}).keys() for o in outs[0]]
    assert any("definida" in o.get("text", "") for o in outs[0])


def test_a_student_module_named_like_an_agent_file_is_the_students():
    """The agent's own files (protocol, kernel, cleanup) sit beside it in the sandbox: a student who
    writes a module of one of those names and imports it gets their own."""
    sources = ["%%writefile {0}.py\nVALOR = '{0} del estudiante'\n".format(name) for name in ("kernel", "protocol", "cleanup")]
    outs, _ = run(*sources, "import kernel, protocol, cleanup\nprint(kernel.VALOR, protocol.VALOR, cleanup.VALOR)")
    assert "kernel del estudiante protocol del estudiante cleanup del estudiante" in text_of(outs[3]), outs[3]
