"""Hidden tests of Tarea 2: the tests module the runner loads (``TrustedExecute.tests_module``).

Each test is declared in a hidden test cell of the master notebook
(``hidden.evaluar("test_celoss")``) and defined, in the notebook's order, in
:mod:`~tarea2_grader.tarea2.pruebas_parte1` (Part 1), :mod:`~tarea2_grader.tarea2.pruebas_capas`
(Parts 2 and 3) and :mod:`~tarea2_grader.tarea2.pruebas_parte4` (Part 4), registered in the
course's :class:`~tarea2_grader.engine.registry.Registro` (:mod:`~tarea2_grader.tarea2.comun`):

* ``plan(g, ctx)`` draws the inputs with the student's own generator (fresh per student, seed
  recorded with the grade);
* ``sonda`` names the probe of :mod:`tarea2_grader.tarea2.probes` that calls the student's code on those
  inputs inside the sandbox and returns what came back;
* ``juzgar(datos, obs)`` compares those observations with ``torch.autograd`` (float64) or with
  values computed here, and raises :class:`Incorrecto` with a Spanish message that names the wrong
  quantity and its maximum relative error, never the inputs.

This module offers the runner (:mod:`tarea2_grader.engine.runner`) the registry's interface:
``PRUEBAS``, ``plan_de``, ``Contexto``, ``Incorrecto``, ``para_la_sonda``, ``veredicto``,
``fuente_sonda``, ``fuente_ayudas``; the tests in ``tests/`` call :func:`evaluar_en_proceso` to
exercise the same plans, probes and verdicts on a namespace directly.
"""
from tarea2_grader.engine import wire
from tarea2_grader.engine.registry import Contexto, Incorrecto, asigna, para_la_sonda  # noqa: F401
from tarea2_grader.tarea2 import pruebas_parte1  # noqa: F401  (registers Part 1's tests, first)
from tarea2_grader.tarea2 import pruebas_capas  # noqa: F401  (then those of Parts 2 and 3)
from tarea2_grader.tarea2 import pruebas_parte4  # noqa: F401  (then Part 4's)
from tarea2_grader.tarea2.comun import PISTAS, REGISTRO  # noqa: F401
from tarea2_grader.tarea2.review_roots import PARTES_REVISION  # noqa: F401  (the runner reviews against it)

PRUEBAS = REGISTRO.pruebas  # name -> Prueba, in the notebook's order (the order tests run in)
evaluar = REGISTRO.evaluar  # what a hidden test cell calls in a kernel: it refuses to grade there
plan_de = REGISTRO.plan_de
veredicto = REGISTRO.veredicto
fuente_sonda = REGISTRO.fuente_sonda
fuente_ayudas = REGISTRO.fuente_ayudas


def evaluar_en_proceso(ns, nombre, semilla=0, fuentes=()):
    """Plan, probe and verdict of one test on a namespace, in this process (for the test suite).

    The observations go through the same encoding and strict decoding as in the sandbox.
    """
    from tarea2_grader.sandboxed import protocol
    from tarea2_grader.tarea2 import probes
    datos = plan_de(nombre, semilla, Contexto(fuentes))
    sonda_datos = protocol.decode(protocol.encode(para_la_sonda(datos)))
    helpers = {"__name__": "ayudas"}
    if PRUEBAS[nombre].ayudas:
        exec(compile(fuente_ayudas(nombre), "<ayudas>", "exec"), helpers)
    obs = getattr(probes, PRUEBAS[nombre].sonda)(dict(ns), sonda_datos, helpers)
    return veredicto(nombre, datos, wire.decode(protocol.encode(obs)))
