"""The canary: proof that the grading machinery works here, before anyone is graded.

``make grade`` grades one tiny, known-correct notebook through the very path a student's takes
(:func:`tarea2_grader.parallel.workers.grade_job` -> :func:`tarea2_grader.engine.runner.grade` -> the agent in
the sandbox -> a probe -> the verdict computed here): the sandbox must start the interpreter,
import torch in it, run a cell and answer a probe with the right tensor.  When anything of that
fails, :func:`check` raises :class:`BrokenGrader` with a Spanish message that says what broke
and how to fix it, and the pipeline stops before a single score is written: a broken environment
never turns into a class of zeros.

This module is also the canary's hidden-tests module (``PRUEBAS``, ``plan_de``, ``veredicto``...,
the interface of :mod:`tarea2_grader.engine.registry`), loaded by name like any course's: those
module-level names are the ones the runner reads on every tests module, Spanish like the course's.
"""
from __future__ import annotations

import random
from typing import Optional

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from tarea2_grader.engine.registry import Contexto, Incorrecto, Prueba, para_la_sonda  # noqa: F401  (the tests' interface)

STUDENT = "canario"
ANSWER_CELL = "import torch\n\ndef doble(t):\n    return 2 * t\n"
PROBE_SOURCE = """
def llamar(ns, datos, ayudas):
    import torch
    return ns["doble"](torch.tensor(datos["x"], dtype=torch.float64))
"""


class BrokenGrader(RuntimeError):
    """The grading machinery does not work here: nobody may be graded (the message is Spanish)."""


def _plan(g, ctx):
    x = [g.randint(-9, 9) / 4 for _ in range(5)]
    return {"x": x, "__esperado": [2 * v for v in x]}


def _judge(data, obs):
    got = obs.tolist() if hasattr(obs, "tolist") else obs
    if got != data["__esperado"]:
        raise Incorrecto("la sonda devolvió {!r} en vez de {!r}".format(got, data["__esperado"]))


PRUEBAS = {"test_canario": Prueba("test_canario", "llamar", _plan, _judge)}


def plan_de(name, seed, ctx=None):
    return PRUEBAS[name].plan(random.Random("{}:{}".format(seed, name)), ctx)


def veredicto(name, data, obs):
    try:
        _judge(data, obs)
    except Incorrecto as e:
        return str(e)
    except Exception as e:  # any shape: a message, never a crashed check
        return "respuesta inesperada ({})".format(type(e).__name__)
    return None


def fuente_sonda():
    return PROBE_SOURCE


def fuente_ayudas(name):
    return ""


def canary_notebook():
    """The canary's notebook: one answer cell, one test cell."""
    test = new_code_cell('evaluar("test_canario")')
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "test_canario", "locked": True, "points": 1,
                                 "schema_version": 3, "solution": False}
    return new_notebook(cells=[new_code_cell(ANSWER_CELL), test])


def canary_job(limits):
    """The canary's grading job, with the course's limits and interpreter."""
    from tarea2_grader.parallel import workers
    return workers.make_job(STUDENT, canary_notebook(), 1234, limits, __name__, run_all=True)


# ---------------------------------------------------------------- what broke, and how to fix it

FIX_VENV = ("instala las dependencias del curso en ese entorno (`make venv`, o `{python} -m pip install -r "
            "requirements.txt`), o indica otro intérprete con `c.TrustedExecute.sandbox_python` en "
            "nbgrader_config.py")
FIX_BWRAP = ("comprueba que `bwrap --ro-bind / / true` funcione en este computador (bubblewrap necesita "
             "root o espacios de nombres de usuario), o reinstálalo (`sudo apt-get install bubblewrap`); "
             "para corregir sin aislar los archivos: `c.TrustedExecute.require_sandbox = False` en "
             "nbgrader_config.py")


def diagnosis(failure: str, python: str) -> str:
    """What broke and how to fix it, from the reason a sandbox did not start."""
    if "No module named 'torch'" in failure or "No module named torch" in failure:
        return "el intérprete del sandbox ({}) no puede importar torch. Cómo arreglarlo: {}.".format(
            python, FIX_VENV.format(python=python))
    if "failed to execute" in failure or "execvp" in failure or "No such file or directory" in failure:
        return ("el sandbox no pudo ejecutar el intérprete {} (¿un enlace simbólico que no existe dentro del "
                "sandbox, o un entorno que ya no está?). Cómo arreglarlo: recrea el entorno (`make venv`) o indica "
                "la ruta real con `c.TrustedExecute.sandbox_python`.").format(python)
    if "bwrap" in failure:
        return "bubblewrap no pudo crear el sandbox. Cómo arreglarlo: {}.".format(FIX_BWRAP)
    return ("el sandbox no arrancó. Cómo arreglarlo: revisa el mensaje de arriba; `make test` prueba el sandbox "
            "paso a paso.")


def message(what: str) -> str:
    """The whole Spanish message the command prints."""
    return ("make grade no corrigió a nadie: el corrector no funciona en este computador (lo comprobó antes de "
            "corregir al primer alumno).\nQué falló: {}\nNo se escribió ninguna nota (ni en el gradebook, ni en "
            "grades.csv, ni retroalimentación). Arréglalo y vuelve a ejecutar `make grade`.".format(what))


def problem(reply: dict, python: str) -> Optional[str]:
    """None when the canary's reply proves the machinery works, else what broke (Spanish)."""
    from tarea2_grader.engine import runner
    if "resultado" not in reply:
        return "el corrector falló al corregir el notebook de prueba ({}).".format(str(reply.get("error"))[:600])
    res = runner.Resultado.desde_datos(reply["resultado"])
    if res.falla:
        return "{}\nDetalle: {}".format(diagnosis(res.falla, python), res.falla[-800:])
    errors = [o for outs in res.outputs.values() for o in outs if o.get("output_type") == "error"]
    if errors:
        e = errors[0]
        detail = "{}: {}".format(e.get("ename"), e.get("evalue"))
        if "torch" in detail:
            return "{}\nDetalle: {}".format(diagnosis("No module named 'torch'", python), detail[:600])
        return "la celda de prueba falló en el sandbox ({}).".format(detail[:600])
    failed = [v.mensaje for v in res.veredictos.values() if not v.ok]
    if failed or not res.veredictos:
        return "la sonda de prueba no dio el resultado correcto ({}).".format((failed or ["sin veredicto"])[0][:600])
    return None


def check(limits, scheduler: str = "") -> None:
    """Grade the canary where students will be graded; raise :class:`BrokenGrader` when it fails.

    Locally it takes one of the warm sandboxes :func:`pipeline.grade` started (and gives it back);
    with a Dask ``scheduler`` it also runs on the cluster, where the workers grade.
    """
    from tarea2_grader.engine import sandbox
    from tarea2_grader.parallel import workers
    python = sandbox.interpreter(limits.python)
    job = canary_job(limits)
    replies = [workers.grade_job(job)]
    if scheduler:
        workers.run_dask([job], scheduler, replies.append)
    for reply in replies:
        what = problem(reply, python)
        if what:
            raise BrokenGrader(message(what))
