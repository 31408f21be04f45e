"""The hidden-test registry and verdict plumbing, for any course (the course plugs its tests in).

A course's tests module (``TrustedExecute.tests_module``: :mod:`tarea2_grader.tarea2.hidden`, the
fake course of ``tests/conftest.py``, the canary) builds one :class:`Registro` and offers the
runner this interface, module-level: ``PRUEBAS`` (name -> :class:`Prueba`, in the notebook's
order), ``plan_de``, ``Contexto``, ``Incorrecto``, ``para_la_sonda``, ``veredicto``,
``fuente_sonda`` and ``fuente_ayudas``.

Each test is a :class:`Prueba`:

* ``plan(g, ctx)`` draws the inputs with the student's own generator (:func:`generador`);
* ``sonda`` names the probe (a function of the course's probes text) that calls the student's
  code on those inputs inside the sandbox and returns what came back;
* ``juzgar(datos, obs)`` compares those observations with values computed here and raises
  :class:`Incorrecto` with a message for the student (Spanish), never the inputs.

The helpers below (:func:`comparar`, :func:`con_pista`, :meth:`Registro.exigir`,
:func:`resultado`...) know nothing of any course: the hint texts are the course's
(``Registro(pistas=...)``).
"""
import dataclasses
import hashlib
import importlib
import os
from typing import Callable, Optional

import torch

from tarea2_grader.engine import wire
from tarea2_grader.engine.review.source import asigna

REFUSAL = ("Este test se califica solo con el corrector confiable del curso (`make grade`), fuera del "
           "kernel del estudiante; `nbgrader autograde` sin la configuración del curso no lo evalúa.")


class Incorrecto(AssertionError):
    """A hidden test failed; the message is meant for the student."""


@dataclasses.dataclass
class Prueba:
    """One hidden test: its inputs, the probe that runs the student's code, and its verdict."""

    nombre: str
    sonda: str
    plan: Callable
    juzgar: Callable
    ayudas: tuple = ()            # helper modules lent to the probe (correct code of other parts)
    reejecuta: Optional[str] = None  # the probe re-runs the cell that assigns this variable


def generador(semilla, nombre):
    """The generator of one test for one student: its own stream, from the student's seed."""
    digest = hashlib.sha256("{}:{}".format(semilla, nombre).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2 ** 63 - 1))


def para_la_sonda(datos):
    """The part of a plan the probe may see: everything but the expected values (``__`` keys)."""
    return {k: v for k, v in datos.items() if not k.startswith("__")}


class Contexto:
    """What a plan may know about the student's notebook: the cells that ran before the test."""

    def __init__(self, fuentes=()):
        self.fuentes = list(fuentes)

    def celda_que_asigna(self, variable):
        """Source of the last cell that ran and assigns ``variable`` at top level."""
        for src in reversed(self.fuentes):
            if src and variable in src and asigna(src, variable):
                return src
        raise Incorrecto("No encontré la celda que calcula `{}`: ¿la ejecutaste antes de este test?".format(variable))


# --------------------------------------------------------------------------- the registry


class Registro:
    """A course's hidden tests, in the order they are added (the notebook's: the order they run).

    ``fuente_sonda``: () -> the text of the course's probes (sent to every probe process);
    ``paquete``: the package of the helper modules a test lends (``Prueba.ayudas``, by name);
    ``pistas``: hint key -> text of a typical mistake; ``incluye``: hint key -> the keys whose
    symptom it also explains; ``generador``: (seed, test name) -> the plan's random source.
    """

    def __init__(self, fuente_sonda, paquete=None, pistas=None, incluye=None, generador=generador):
        self.pruebas = {}
        self._fuente_sonda = fuente_sonda
        self.paquete = paquete
        self.pistas = pistas if pistas is not None else {}
        self.incluye = incluye if incluye is not None else {}
        self.generador = generador

    def agregar(self, nombre, sonda, plan, juzgar, ayudas=(), reejecuta=None):
        """Register one test (after those already registered); return its :class:`Prueba`."""
        self.pruebas[nombre] = Prueba(nombre, sonda, plan, juzgar, tuple(ayudas), reejecuta)
        return self.pruebas[nombre]

    def prueba(self, sonda, ayudas=(), reejecuta=None):
        """Decorator: ``@registro.prueba(sonda)(plan)`` over ``juzgar`` registers the test named
        like ``juzgar``."""
        def deco(plan):
            def register(juzgar):
                self.agregar(juzgar.__name__, sonda, plan, juzgar, ayudas, reejecuta)
                return juzgar
            return register
        return deco

    def evaluar(self, nombre):
        """What a hidden test cell does when a kernel runs it: grading never happens in a kernel.

        Under autograde (plain nbgrader without the course's configuration) it refuses, so the
        cell scores 0 with a message pointing to ``make grade``; elsewhere (the master notebook
        opened in JupyterLab) it says where the test is evaluated.
        """
        if nombre not in self.pruebas:
            raise Incorrecto("Test oculto desconocido: {}".format(nombre))
        if os.environ.get("NBGRADER_EXECUTION") == "autograde":
            raise Incorrecto(REFUSAL)
        print("{}: se evalúa con el corrector confiable (`make grade`).".format(nombre))

    def plan_de(self, nombre, semilla, ctx=None):
        """The inputs of test ``nombre`` for the student with ``semilla``."""
        p = self.pruebas[nombre]
        return p.plan(self.generador(semilla, nombre), ctx or Contexto())

    def veredicto(self, nombre, datos, obs):
        """None when the test passes, else the message. ``obs`` is untrusted, decoded data."""
        try:
            self.pruebas[nombre].juzgar(datos, obs)
        except Incorrecto as e:
            return str(e)
        except Exception:  # observations of any shape: a message, never a crashed grader
            return "La respuesta del código para {} no tiene la forma esperada.".format(nombre[5:])
        return None

    def fuente_sonda(self):
        """The text of the probes (sent to every probe process)."""
        return self._fuente_sonda()

    def fuente_ayudas(self, nombre):
        """The text of the helper modules test ``nombre`` lends (sent only to its probe), in order."""
        textos = []
        for modulo in self.pruebas[nombre].ayudas:
            with open(importlib.import_module(self.paquete + "." + modulo).__file__, encoding="utf-8") as fh:
                textos.append(fh.read())
        return "\n\n".join(textos)

    def exigir(self, problemas, que, pistas=()):
        """Raise Incorrecto listing the distinct problems (at most three) and, where the outputs
        match a typical mistake, one ``Pista:`` line that names it."""
        claves = list(pistas)
        limpios = []
        for p in problemas:
            if not p:
                continue
            p, *marcas = p.split(MARCA_PISTA)
            claves += marcas
            limpios.append(p)
        problemas = list(dict.fromkeys(p.replace("torch.float", "float") for p in limpios))
        if problemas:
            extra = " (y {} más)".format(len(problemas) - 3) if len(problemas) > 3 else ""
            texto = "{}:\n  - ".format(que) + "\n  - ".join(problemas[:3]) + extra
            mejor = mejor_pista(claves, self.incluye)
            if mejor:
                texto += "\nPista: " + self.pistas[mejor]
            raise Incorrecto(texto)


def fuente_de(modulo):
    """() -> the text of the module named ``modulo`` (for ``Registro(fuente_sonda=...)``)."""
    def fuente():
        with open(importlib.import_module(modulo).__file__, encoding="utf-8") as fh:
            return fh.read()
    return fuente


# --------------------------------------------------------------------------- drawing inputs


def randn(g, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=g, dtype=dtype)


def entero(g, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=g).item())


def uniforme(g):
    return torch.rand(1, generator=g, dtype=torch.float64).item()


# --------------------------------------------------------------------------- comparing outputs


def error_relativo(obtenido, esperado, escala=0.0):
    """max|obtenido - esperado| / max(max|esperado|, escala), in float64.

    ``escala`` is the size of the terms a correct computation adds up: where they nearly cancel,
    the result is much smaller than them and rounding error is relative to them, not to it.
    """
    a = torch.as_tensor(obtenido).detach().to("cpu", torch.float64)
    b = torch.as_tensor(esperado).detach().to("cpu", torch.float64)
    if b.numel() == 0:
        return 0.0
    dif = (a - b).abs().max().item()
    return dif / max(b.abs().max().item(), escala, 1e-12)


def describir(valor):
    """Short Spanish name of an observed value's type."""
    if isinstance(valor, torch.Tensor):
        return "tensor"
    if isinstance(valor, wire.Opaque):
        return valor.type_name
    return type(valor).__name__


def comparar(nombre, obtenido, esperado, tol, escala=0.0):
    """None if ``obtenido`` matches ``esperado``, else a Spanish description of the difference
    (``escala``: see :func:`error_relativo`)."""
    if not isinstance(obtenido, torch.Tensor):
        return "{}: se esperaba un tensor y llegó {}".format(nombre, describir(obtenido))
    if tuple(obtenido.shape) != tuple(esperado.shape):
        return "{}: forma {}, se esperaba {}".format(nombre, tuple(obtenido.shape), tuple(esperado.shape))
    if not obtenido.is_floating_point():
        obtenido = obtenido.double()
    obt = obtenido.detach().to("cpu", torch.float64)
    esp = esperado.detach().to("cpu", torch.float64)
    fin_o, fin_e = torch.isfinite(obt), torch.isfinite(esp)
    if not torch.equal(fin_o, fin_e):
        return "{}: tiene nan o inf donde no corresponde".format(nombre)
    if not (obt[~fin_o].nan_to_num(1.0) == esp[~fin_e].nan_to_num(1.0)).all():
        return "{}: los valores infinitos no coinciden".format(nombre)
    rel = error_relativo(obt[fin_o], esp[fin_e], escala)
    if not rel <= tol:  # also catches nan
        return "{}: error relativo máximo {:.1e} (tolerancia {:.0e})".format(nombre, rel, tol)
    return None


# --------------------------------------------------------------------------- hints

# A problem string may carry hint keys after this mark; :meth:`Registro.exigir` strips them and
# names the mistake that explains the most problems.
MARCA_PISTA = "\x00pista:"


def con_pista(problema, obtenido, candidatos, tol):
    """``problema`` tagged with every typical mistake whose output equals ``obtenido``
    (``candidatos``: (hint key, that mistake's output or None))."""
    if problema is None or not isinstance(obtenido, torch.Tensor):
        return problema
    for clave, tensor in candidatos:
        if tensor is not None and comparar("", obtenido, tensor, tol) is None:
            problema += MARCA_PISTA + clave
    return problema


def mejor_pista(claves, incluye=None):
    """The mistake that explains the most failed comparisons (ties: the first proposed); a key of
    ``incluye`` also counts the keys it lists."""
    if not claves:
        return None
    cuenta = {}
    for clave in claves:
        cuenta[clave] = cuenta.get(clave, 0) + 1
    for amplia, incluidas in (incluye or {}).items():
        if amplia in cuenta:
            for clave in incluidas:
                cuenta[amplia] += cuenta.pop(clave, 0)
    return max(cuenta, key=lambda k: (cuenta[k], -claves.index(k)))


# --------------------------------------------------------------------------- the probes' replies

def resultado(r, que):
    """The value of one observed call (``{"ok": v}``, ``{"error": ...}`` or ``{"autograd": ...}``),
    or Incorrecto naming what went wrong in it."""
    if not isinstance(r, dict):
        raise Incorrecto("{}: respuesta ilegible".format(que))
    if "autograd" in r:
        raise Incorrecto("{} usa autograd ({}): en esta tarea los gradientes se calculan a mano, así que "
                         "esta parte vale 0 puntos.".format(que, r["autograd"]))
    if "error" in r:
        raise Incorrecto("{} lanzó {}".format(que, str(r["error"])[:240]))
    if "ok" not in r:
        raise Incorrecto("{}: respuesta ilegible".format(que))
    return r["ok"]


def faltante(obs, que="la función"):
    """Incorrecto when the probe did not find the student's name (``{"falta": name}``)."""
    if isinstance(obs, dict) and "falta" in obs:
        raise Incorrecto("No encontré {} `{}`: ¿ejecutaste su celda y mantuviste el nombre?".format(que, obs["falta"]))


def autograd_primero(llamadas, que):
    """Any call that used autograd makes the whole part 0, whatever the other calls returned."""
    for r in llamadas:
        if isinstance(r, dict) and "autograd" in r:
            resultado(r, que)
