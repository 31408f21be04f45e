"""The process barrier: student code never has another process, so autograd in one cannot earn points.

The holder that runs a student's cells and hidden tests gets, from the anchor's code and before
its first request, a seccomp filter that denies creating processes (``agent.install_process_barrier``).
These tests check the filter itself (in a fresh Python that installs it, and in the real sandbox), and
that the attacks of ``tests/support/attacks/attacks.py`` that compute with autograd in another process are
real (they pass the hidden tests without the barrier, here in the test process) while in the sandbox
they fail with the message that says why; ``tests/e2e/test_attacks.py`` grades them through
``make grade``'s pipeline beside an honest classmate.
"""
import importlib.util
import os
import re
import subprocess
import sys

import nbformat
import pytest

from tarea2_grader.tarea2.activaciones import DERIVADAS
from tarea2_grader.sandboxed import agent
from tarea2_grader.tarea2 import hidden
from tarea2_grader.engine import runner
from tests.support import course_facts
from tests.support.grading import errors_of, run, text_of
from tests.support.repo import ATTACKS_PY, SOURCE_NB as SOURCE

pytestmark = pytest.mark.slow


def _attacks_module():
    spec = importlib.util.spec_from_file_location("tarea2_attacks_b", ATTACKS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ATTACKS = _attacks_module()


def test_the_barrier_denies_every_way_to_create_a_process_and_keeps_threads():
    """In a fresh interpreter that installs the filter: fork, exec, spawn all fail; threads and torch work."""
    code = r'''
import os, subprocess, sys, threading, multiprocessing
sys.path.insert(0, sys.argv[1])
import agent
ok, why = agent.install_process_barrier()
print("barrera", ok, why)
for name, f in [("fork", os.fork), ("subprocess", lambda: subprocess.run(["true"])),
                ("posix_spawn", lambda: os.posix_spawn("/bin/true", ["true"], {})),
                ("execv", lambda: os.execv("/bin/true", ["true"])),
                ("mp", lambda: multiprocessing.get_context("fork").Process(target=print).start())]:
    try:
        f()
        print(name, "CREADO")
    except PermissionError:
        print(name, "negado")
seen = []
t = threading.Thread(target=seen.append, args=(1,)); t.start(); t.join()
import torch
x = torch.randn(64, 64, requires_grad=True); (x @ x).sum().backward()
print("hilo", seen, "torch", tuple(x.grad.shape))
'''
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(agent.__file__)], capture_output=True,
                         text=True, timeout=120)
    assert "barrera True" in out.stdout, out.stdout + out.stderr
    for name in ("fork", "subprocess", "posix_spawn", "execv", "mp"):
        assert "{} negado".format(name) in out.stdout, out.stdout + out.stderr
    assert "hilo [1] torch (64, 64)" in out.stdout


def test_in_the_sandbox_a_cell_cannot_create_processes_and_shell_escapes_are_harmless():
    outs, result = run(
        "import os, subprocess\nr = []\n"
        "for f in (os.fork, lambda: subprocess.run(['true'])):\n"
        "    try:\n        f(); r.append('creado')\n    except PermissionError:\n        r.append('negado')\nprint(r)",
        "!pip install tqdm\nprint('sigue')",
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
        "print(len(list(DataLoader(TensorDataset(torch.ones(6, 2)), batch_size=2, num_workers=2))))")
    assert "['negado', 'negado']" in text_of(outs[0])
    assert "no se ejecutan comandos del sistema" in text_of(outs[1]) and "sigue" in text_of(outs[1])
    assert "3" in text_of(outs[2]) and not errors_of(outs[2])  # workers forced to 0: no lost points
    assert not any(n.startswith(runner.NO_BARRIER) for n in result.notas)


def _student_namespace(cells):
    """The given code a graded function needs (imports, softmax) and the attack's answer cells, run here."""
    nb = nbformat.read(SOURCE, as_version=4)
    given = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    ns = {"__name__": "__main__"}
    exec(compile(given["preparacion"], "<preparacion>", "exec"), ns)
    exec(compile(given["tarea1_softmax"], "<softmax>", "exec"), ns)
    for source in cells.values():
        exec(compile(source, "<ataque>", "exec"), ns)
    return ns


@pytest.mark.parametrize("name", sorted(ATTACKS.PROCESS_ROUTES))
def test_a_process_route_is_real_without_the_barrier(name):
    """Here (no barrier, the in-process traps on) the attack passes its first test: it needs the barrier."""
    attack = next(a for a in ATTACKS.ATTACKS if a["name"] == name)
    ns = _student_namespace(attack["cells"])
    try:
        assert hidden.evaluar_en_proceso(ns, ATTACKS.PROCESS_ROUTES[name][0], semilla=5) is None
    finally:
        if "_ayudante" in ns:
            ns["_ayudante"].kill()


@pytest.mark.parametrize("name", sorted(ATTACKS.PROCESS_ROUTES))
def test_a_process_route_earns_nothing_in_the_sandbox_and_says_why(name):
    """With the review of the source switched off: the barrier alone zeroes the route (issue 19, goal a)."""
    from tools.examples import edit_cells
    attack = next(a for a in ATTACKS.ATTACKS if a["name"] == name)
    nb = edit_cells(nbformat.read(SOURCE, as_version=4), attack["cells"])
    result = runner.grade(nb, 5, runner.sandbox.Limits(static_review=False), until_last_test=True)
    points, messages = result.puntos(nb), result.mensajes(nb)
    for test in ATTACKS.PROCESS_ROUTES[name]:
        assert points[test] == 0, (test, messages[test])
        assert runner.NO_PROCESSES in messages[test], messages[test]


def test_a_student_cannot_signal_the_anchor_or_init_but_can_signal_itself():
    outs, _ = run(
        "import os, signal\nr = []\n"
        "for pid in (1, os.getppid(), -1, 0):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL); r.append('enviada')\n"
        "    except PermissionError:\n        r.append('negada')\n"
        "os.kill(os.getpid(), 0)\nsignal.signal(signal.SIGUSR1, lambda *a: r.append('propia'))\n"
        "signal.raise_signal(signal.SIGUSR1)\nprint(r)",
        "print('el ancla sigue viva')")
    assert "['negada', 'negada', 'negada', 'negada', 'propia']" in text_of(outs[0]), outs[0]
    assert "el ancla sigue viva" in text_of(outs[1])


def test_what_a_student_writes_is_capped_in_every_writable_place():
    """The working folder, /tmp and /dev/shm are tmpfs of fixed sizes: filling one is the student's
    own error, the course's disk and the next student see nothing of it."""
    code = ("import os\nr = {}\nfor d in ('.', '/tmp', '/dev/shm', '/dev'):\n"
            "    try:\n        with open(os.path.join(d, 'lleno'), 'wb') as fh:\n"
            "            for _ in range(2048):\n                fh.write(b'x' * (1 << 20))\n        r[d] = 'sin límite'\n"
            "    except OSError as e:\n        r[d] = e.errno\nprint(sorted(r.items()))")
    outs, _ = run(code, disk_mb=64)
    text = text_of(outs[0])
    assert "sin límite" not in text, text
    assert "('.', 28)" in text and "('/tmp', 28)" in text and "('/dev/shm', 28)" in text, text  # ENOSPC


def test_a_thread_flood_stops_at_the_sandbox_task_limit():
    """Threads are allowed, but a sandbox's tasks are capped in its own cgroup (not per shared user)."""
    from tarea2_grader.engine import sandbox
    assert os.path.isdir(sandbox.PIDS_CGROUP) and os.geteuid() == 0, "CI runs as root with cgroup v1 pids"
    outs, result = run(
        "import threading, time\nthreading.stack_size(65536)\nev = threading.Event()\nn = 0\n"
        "try:\n    for _ in range(5000):\n        threading.Thread(target=ev.wait, daemon=True).start()\n        n += 1\n"
        "except RuntimeError as e:\n    print('tope', n, e)\nev.set()",
        "print('sigo')")
    text = text_of(outs[0])
    assert "tope" in text and int(text.split()[1]) < sandbox.PIDS_MAX, text
    assert "sigo" in text_of(outs[1])
    assert not any(n.startswith(runner.NO_CGROUP) for n in result.notas)


# --------------------------------------------------------------------------- the review of the source


def _graded(cells, seed=9, **limits):
    from tarea2_grader.engine import sandbox
    from tools.examples import edit_cells
    nb = edit_cells(nbformat.read(SOURCE, as_version=4), cells)
    result = runner.grade(nb, seed, sandbox.Limits(**limits), until_last_test=True)
    return result.puntos(nb), result.mensajes(nb), result


def test_autograd_past_the_traps_is_flagged_with_cell_and_line_and_keeps_what_the_values_earned():
    attack = next(a for a in ATTACKS.ATTACKS if a["name"] == "autograd_motor_guardado")
    points, messages, result = _graded(attack["cells"])
    for test in DERIVADAS:
        assert points[test] == 0
        assert "revisión: celda 9, línea 3: torch.autograd.variable" in messages[test], messages[test]
        assert "sin la marca: correcto, {:g} puntos".format(course_facts.points()[test]) in messages[test], messages[test]
    assert any(n.startswith("revisión: {} parte(s) marcada(s)".format(len(DERIVADAS))) for n in result.notas)
    # switched off, the same values earn the points: the review is what zeroes them
    points_off, _, _ = _graded(attack["cells"], static_review=False)
    assert points_off["test_derivadas_basicas"] == course_facts.points()["test_derivadas_basicas"]


def test_the_reference_is_never_flagged():
    nb = nbformat.read(SOURCE, as_version=4)
    result = runner.grade(nb, 9, until_last_test=True)
    assert sum(result.puntos(nb).values()) == course_facts.autograded_points()
    assert not any("revis" in n for n in result.notas), result.notas


# --------------------------------------------------------------------------- machine-made derivatives in the sandbox


def _cells_of(attack):
    """The source notebook with the attack's cells and raw JSON edits (added cells)."""
    import json
    from tools.examples import edit_cells
    nb = edit_cells(nbformat.read(SOURCE, as_version=4), attack["cells"])
    if attack.get("json"):
        data = json.loads(nbformat.writes(nb))
        attack["json"](data)
        nb = nbformat.reads(json.dumps(data), as_version=4)
    return nb


@pytest.mark.parametrize("name", sorted(ATTACKS.REVIEW_ROUTES))
def test_a_route_past_the_traps_is_real_and_the_review_is_what_zeroes_it(name):
    """Switched off, the review lets the attack's values earn its tests (the route works in the sandbox,
    past the traps); on, each of those tests scores 0 and names the cell and the line."""
    attack = next(a for a in ATTACKS.ATTACKS if a["name"] == name)
    nb = _cells_of(attack)
    maxima = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    off = runner.grade(nb, 9, runner.sandbox.Limits(static_review=False), until_last_test=True)
    on = runner.grade(nb, 9, until_last_test=True)
    points_off, points_on, messages = off.puntos(nb), on.puntos(nb), on.mensajes(nb)
    for test in ATTACKS.REVIEW_ROUTES[name]:
        assert points_off[test] == maxima[test] > 0, (test, off.mensajes(nb)[test])
        assert points_on[test] == 0, messages[test]
        assert re.search(r"revisión: celda \d+, línea \d+: ", messages[test]), messages[test]
        assert "sin la marca: correcto, {:g} puntos".format(maxima[test]) in messages[test], messages[test]


def test_an_unfinished_part_is_not_told_about_processes():
    """NO_PROCESSES explains errors a missing process causes, not the release's NotImplementedError."""
    from tarea2_grader.engine.cells import stub_sources
    stub = stub_sources(SOURCE)["derivadas_codigo"]
    attack = {"cells": {"derivadas_codigo": stub}}
    nb = _cells_of(attack)
    result = runner.grade(nb, 9, until_last_test=True)
    message = result.mensajes(nb)["test_derivadas_basicas"]
    assert "NotImplementedError" in message and runner.NO_PROCESSES not in message, message
