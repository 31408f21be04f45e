"""Hidden tests of Tarea 2: the trusted half, run by the grader, never in the student's process.

Each test is declared in a hidden test cell of the master notebook
(``hidden.evaluar("test_celoss")``) and defined here as a :class:`Prueba`:

* ``plan(g, ctx)`` draws the inputs with the student's own generator (fresh per student, seed
  recorded with the grade);
* ``sonda`` names the probe of :mod:`tarea2_grader.probes` that calls the student's code on those
  inputs inside the sandbox and returns what came back;
* ``juzgar(datos, obs)`` compares those observations with ``torch.autograd`` (float64) or with
  values computed here, and raises :class:`Incorrecto` with a Spanish message that names the wrong
  quantity and its maximum relative error, never the inputs.

The runner (:mod:`tarea2_grader.runner`) calls these in the grader's process; the tests in
``tests/`` call :func:`evaluar_en_proceso` to exercise the same plans, probes and verdicts on a
namespace directly.
"""
import dataclasses
import hashlib
import math
import os
from typing import Callable, Optional

import torch

from tarea2_grader import ayudas, refs, wire
from tarea2_grader.selfcheck import error_relativo

TOL64 = 1e-4   # relative to max|reference|: accepts float32 arithmetic inside
TOL32 = 2e-3   # inputs in float32
DTYPE = torch.float64

REFUSAL = ("Este test se califica solo con el corrector confiable del curso (`make grade`), fuera del "
           "kernel del estudiante; `nbgrader autograde` sin la configuración del curso no lo evalúa.")


class Incorrecto(AssertionError):
    """A hidden test failed; the message is meant for the student."""


def evaluar(nombre):
    """What a hidden test cell does when a kernel runs it: grading never happens in a kernel.

    Under autograde (plain nbgrader without the course's configuration) it refuses, so the cell
    scores 0 with a message pointing to ``make grade``; elsewhere (the master notebook opened in
    JupyterLab) it says where the test is evaluated.
    """
    if nombre not in PRUEBAS:
        raise Incorrecto("Test oculto desconocido: {}".format(nombre))
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        raise Incorrecto(REFUSAL)
    print("{}: se evalúa con el corrector confiable (`make grade`).".format(nombre))


# --------------------------------------------------------------------------- the registry


@dataclasses.dataclass
class Prueba:
    """One hidden test: its inputs, the probe that runs the student's code, and its verdict."""

    nombre: str
    sonda: str
    plan: Callable
    juzgar: Callable
    ayudas: bool = False          # lend ayudas.py (correct code of other parts) to the probe
    reejecuta: Optional[str] = None  # the probe re-runs the cell that assigns this variable


PRUEBAS = {}  # name -> Prueba, in the notebook's order (the order tests run in)


def prueba(sonda, ayudas=False, reejecuta=None):
    """Register ``juzgar`` (with the ``plan`` given as attribute later) as a hidden test."""
    def deco(plan):
        def register(juzgar):
            nombre = juzgar.__name__
            PRUEBAS[nombre] = Prueba(nombre, sonda, plan, juzgar, ayudas, reejecuta)
            return juzgar
        return register
    return deco


def generador(semilla, nombre):
    """The generator of one test for one student: its own stream, from the student's seed."""
    digest = hashlib.sha256("{}:{}".format(semilla, nombre).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2 ** 63 - 1))


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


def asigna(src, variable):
    """Whether ``src`` assigns ``variable`` at top level (plain, tuple, annotated or augmented)."""
    import ast
    import re

    from IPython.core.inputtransformer2 import TransformerManager
    try:
        arbol = ast.parse(TransformerManager().transform_cell(src))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # student text: any of these
        return re.search(r"\b{}\b\s*=[^=]".format(re.escape(variable)), src) is not None
    for nodo in ast.walk(arbol):
        objetivos = (nodo.targets if isinstance(nodo, ast.Assign) else
                     [nodo.target] if isinstance(nodo, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) else [])
        for objetivo in objetivos:
            if any(isinstance(n, ast.Name) and n.id == variable for n in ast.walk(objetivo)):
                return True
    return False


# --------------------------------------------------------------------------- verdict helpers


def _randn(g, *shape, dtype=DTYPE):
    return torch.randn(*shape, generator=g, dtype=dtype)


def _entero(g, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=g).item())


def _uniforme(g):
    return torch.rand(1, generator=g, dtype=torch.float64).item()


def describir(valor):
    """Short Spanish name of an observed value's type."""
    if isinstance(valor, torch.Tensor):
        return "tensor"
    if isinstance(valor, wire.Opaco):
        return valor.tipo
    return type(valor).__name__


def comparar(nombre, obtenido, esperado, tol):
    """None if ``obtenido`` matches ``esperado``, else a Spanish description of the difference."""
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
    rel = error_relativo(obt[fin_o], esp[fin_e])
    if not rel <= tol:  # also catches nan
        return "{}: error relativo máximo {:.1e} (tolerancia {:.0e})".format(nombre, rel, tol)
    return None


def exigir(problemas, que):
    """Raise Incorrecto listing the distinct problems (at most three)."""
    problemas = list(dict.fromkeys(p.replace("torch.float", "float") for p in problemas if p))
    if problemas:
        extra = " (y {} más)".format(len(problemas) - 3) if len(problemas) > 3 else ""
        raise Incorrecto("{}:\n  - ".format(que) + "\n  - ".join(problemas[:3]) + extra)


def resultado(r, que):
    """The value of one observed call, or Incorrecto naming what went wrong in it."""
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
    """Incorrecto when the probe did not find the student's name."""
    if isinstance(obs, dict) and "falta" in obs:
        raise Incorrecto("No encontré {} `{}`: ¿ejecutaste su celda y mantuviste el nombre?".format(que, obs["falta"]))


def autograd_primero(llamadas, que):
    """Any call that used autograd makes the whole part 0, whatever the other calls returned."""
    for r in llamadas:
        if isinstance(r, dict) and "autograd" in r:
            resultado(r, que)


# --------------------------------------------------------------------------- Part 1a


def _plan_activaciones(nombres, repeticiones=2):
    def plan(g, ctx):
        casos = []
        for _ in range(repeticiones):
            for nombre in nombres:
                param = ayudas.ACTIVACIONES[nombre].param
                forma = (_entero(g, 2, 6), _entero(g, 2, 7))
                for dtype in (torch.float64, torch.float32):
                    T = (_randn(g, *forma, dtype=dtype) * 2.5)
                    T[0, 0] = 0.0  # relu'(0) = 0; swish and celu are smooth there
                    if param is None:
                        casos.append({"nombre": nombre, "T": T, "kw": {"gradient": True}, "p": None})
                        continue
                    for p in (0.5 + 2 * _uniforme(g), torch.tensor(0.3 + _uniforme(g), dtype=torch.float64)):
                        casos.append({"nombre": nombre, "T": T, "kw": {param: p, "gradient": True}, "p": p})
                casos.append({"nombre": nombre, "T": _randn(g, 3, 4), "kw": {}, "p": None, "directo": True})
        return {"casos": casos}
    return plan


def _juzgar_activaciones(datos, obs):
    faltante(obs)
    llamadas = obs["resultados"]
    problemas = []
    nombre = datos["casos"][0]["nombre"]
    autograd_primero(llamadas, "La derivada")
    for caso, r in zip(datos["casos"], llamadas):
        nombre, T, p = caso["nombre"], caso["T"], caso["p"]
        param = ayudas.ACTIVACIONES[nombre].param
        tol = TOL64 if T.dtype == torch.float64 else TOL32
        if caso.get("directo"):
            got = resultado(r, "{}(T)".format(nombre))
            problemas.append(comparar("{}(T) (gradient=False)".format(nombre), got, ayudas.ACTIVACIONES[nombre](T), TOL64))
            continue
        if param is None:
            got = resultado(r, "{}(T, gradient=True)".format(nombre))
            problemas.append(comparar("{}'(T) en {}".format(nombre, T.dtype), got, refs.derivada_autograd(nombre, T)[0], tol))
            continue
        got = resultado(r, "{}(T, {}, gradient=True)".format(nombre, param))
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            problemas.append("{}(T, {}, gradient=True) debe devolver el par (d/dT, d/d{}); llegó {}".format(
                nombre, param, param, describir(got)))
            continue
        exp = refs.derivada_autograd(nombre, T, p)
        tipo = "tensor" if isinstance(p, torch.Tensor) else "float"
        problemas.append(comparar("d{}/dT ({} {}, {})".format(nombre, param, tipo, T.dtype), got[0], exp[0], tol))
        problemas.append(comparar("d{}/d{} ({} {}, {})".format(nombre, param, param, tipo, T.dtype), got[1], exp[1], tol))
    exigir(problemas, "La derivada de {} no coincide con torch.autograd".format(
        nombre if len({c["nombre"] for c in datos["casos"]}) == 1 else "las activaciones"))


@prueba("activaciones")(_plan_activaciones(("sig", "tanh", "relu")))
def test_derivadas_basicas(datos, obs):
    """sig, tanh and relu derivatives (relu'(0) = 0) against autograd of torch's own functions."""
    _juzgar_activaciones(datos, obs)


@prueba("activaciones")(_plan_activaciones(("swish",)))
def test_derivadas_swish(datos, obs):
    """swish derivatives w.r.t. T and beta; beta a float or a 0-dim tensor."""
    _juzgar_activaciones(datos, obs)


@prueba("activaciones")(_plan_activaciones(("celu",)))
def test_derivadas_celu(datos, obs):
    """celu derivatives w.r.t. T and alpha; alpha a float or a 0-dim tensor."""
    _juzgar_activaciones(datos, obs)


# --------------------------------------------------------------------------- Part 1b


def _plan_celoss(g, ctx):
    casos = []
    for dtype in (torch.float64, torch.float32):
        B, C = _entero(g, 3, 9), _entero(g, 3, 6)
        Q = torch.softmax(_randn(g, B, C, dtype=dtype) * 2, dim=1)
        P = torch.softmax(_randn(g, B, C, dtype=dtype), dim=1)  # a distribution, not only one-hot
        Y = torch.eye(C, dtype=dtype)[torch.randint(0, C, (B,), generator=g)]
        casos.append({"Q": Q, "P": P, "kw": {}, "que": "P distribución, {}".format(dtype)})
        casos.append({"Q": Q, "P": Y, "kw": {}, "que": "P one-hot, {}".format(dtype)})
        Qz, Yz = Q.clone(), Y.clone()
        Qz[0, :] = 0.0
        Qz[0, 0] = 1.0
        Yz[0] = 0
        Yz[0, 1] = 1.0
        casos.append({"Q": Qz, "P": Yz, "kw": {"estable": True}, "que": "con ceros en Q y estable=True ({})".format(dtype)})
        casos.append({"Q": Qz, "P": Yz, "kw": {"estable": True, "epsilon": 1e-3}, "que": "con epsilon=1e-3 ({})".format(dtype)})
    Qt = torch.softmax(_randn(g, 5, 4), dim=1)
    Qt[:, 2] = 1e-12
    Yt = torch.eye(4, dtype=DTYPE)[[2, 2, 0, 1, 2]]
    casos.append({"Q": Qt, "P": Yt, "kw": {"estable": False}, "que": "con estable=False y Q muy pequeño"})
    return {"casos": casos}


@prueba("celoss")(_plan_celoss)
def test_celoss(datos, obs):
    """CELoss: value, 0-dim, mean over the batch, ``estable`` and ``epsilon`` honoured."""
    faltante(obs)
    autograd_primero(obs["resultados"], "CELoss")
    problemas = []
    for caso, r in zip(datos["casos"], obs["resultados"]):
        got = resultado(r, "CELoss(Q, P)")
        if isinstance(got, torch.Tensor) and got.dim() != 0:
            problemas.append("CELoss debe devolver un tensor de 0 dimensiones; llegó forma {}".format(tuple(got.shape)))
            continue
        kw = caso["kw"]
        exp = refs.celoss(caso["Q"], caso["P"], kw.get("estable", True), kw.get("epsilon", 1e-8))
        tol = TOL64 if caso["Q"].dtype == torch.float64 else TOL32
        problemas.append(comparar("CELoss ({})".format(caso["que"]), got, exp, tol))
    exigir(problemas, "CELoss no coincide con la entropía cruzada esperada")


# --------------------------------------------------------------------------- Parts 2a and 2b: re-run the answer cell


def _capa_de_salida(g, B, d, C):
    """Random hL, U, c, one-hot y and y_pred = softmax(hL U + c), float64."""
    hL, U, c = _randn(g, B, d), _randn(g, d, C), _randn(g, C)
    y = torch.eye(C, dtype=DTYPE)[torch.randint(0, C, (B,), generator=g)]
    return hL, U, c, y, torch.softmax(hL @ U + c, dim=1)


def _plan_dL_duLm1(g, ctx):
    casos, esperados = [], []
    for _ in range(3):
        B, d, C = _entero(g, 2, 9), _entero(g, 2, 5), _entero(g, 2, 6)
        hL, U, c, y, y_pred = _capa_de_salida(g, B, d, C)
        casos.append({"y": y, "y_pred": y_pred})
        esperados.append(refs.grad_ultima_capa(hL, U, c, y)["u"])
    return {"fuente": ctx.celda_que_asigna("dL_duLm1"), "salidas": ["dL_duLm1"], "casos": casos,
            "__esperados": esperados}


def _juzgar_reejecucion(datos, obs, claves, que):
    problemas = []
    autograd_primero(obs["resultados"], "Tu celda")
    for caso, esperado, r in zip(datos["casos"], datos["__esperados"], obs["resultados"]):
        got = resultado(r, "Tu celda")
        B, C = tuple(caso["y"].shape)
        for nombre, clave in claves:
            if not isinstance(got, dict) or nombre not in got:
                problemas.append("Tu celda no define {}".format(nombre))
                continue
            problemas.append(comparar("{} (B={}, C={})".format(nombre, B, C), got[nombre], esperado[clave], TOL64))
    exigir(problemas, que)


@prueba("reejecutar", reejecuta="dL_duLm1")(_plan_dL_duLm1)
def test_dL_duLm1(datos, obs):
    """Re-run the dL_duLm1 cell on new y, y_pred of other shapes; compare with autograd."""
    datos = dict(datos, __esperados=[{"u": e} for e in datos["__esperados"]])
    _juzgar_reejecucion(datos, obs, [("dL_duLm1", "u")], "dL_duLm1 no coincide con torch.autograd en entradas nuevas")


def _plan_ultima_capa(g, ctx):
    casos, esperados = [], []
    for _ in range(3):
        B, d, C = _entero(g, 2, 9), _entero(g, 2, 6), _entero(g, 2, 6)
        hL, U, c, y, y_pred = _capa_de_salida(g, B, d, C)
        exp = refs.grad_ultima_capa(hL, U, c, y)
        casos.append({"hL": hL, "U": U, "c": c, "y": y, "y_pred": y_pred, "dL_duLm1": exp["u"]})
        esperados.append(exp)
    return {"fuente": ctx.celda_que_asigna("dL_dU"), "salidas": ["dL_dU", "dL_dc", "dL_dhL"], "casos": casos,
            "__esperados": esperados}


@prueba("reejecutar", reejecuta="dL_dU")(_plan_ultima_capa)
def test_ultima_capa(datos, obs):
    """Re-run the ultima_capa cell on a new last layer; compare dL_dU, dL_dc, dL_dhL with autograd."""
    _juzgar_reejecucion(datos, obs, [("dL_dU", "U"), ("dL_dc", "c"), ("dL_dhL", "h")],
                        "Los gradientes de la última capa no coinciden con torch.autograd")


# --------------------------------------------------------------------------- Part 2c


def _plan_capa(nombres_f):
    def plan(g, ctx):
        casos = []
        for _ in range(2):
            for nombre in nombres_f:
                B, d0, d1 = _entero(g, 2, 8), _entero(g, 2, 6), _entero(g, 2, 6)
                for dtype in (torch.float64, torch.float32):
                    p = None if ayudas.ACTIVACIONES[nombre].param is None else 0.4 + 1.5 * _uniforme(g)
                    casos.append({"f": nombre, "p": p, "h_prev": _randn(g, B, d0, dtype=dtype),
                                  "W": _randn(g, d0, d1, dtype=dtype),
                                  "b": _randn(g, d1, dtype=dtype),  # non-zero biases keep u off the kinks
                                  "dL_dh": _randn(g, B, d1, dtype=dtype)})
        return {"casos": casos}
    return plan


def _juzgar_capa(datos, obs):
    faltante(obs)
    autograd_primero(obs["resultados"], "grad_capa_escondida")
    problemas = []
    for c, r in zip(datos["casos"], obs["resultados"]):
        got = resultado(r, "grad_capa_escondida(..., {})".format(c["f"]))
        if not (isinstance(got, (tuple, list)) and len(got) == 3):
            problemas.append("grad_capa_escondida debe devolver (dL_dW, dL_db, dL_dh_prev)")
            continue
        exp = refs.grad_capa_autograd(c["dL_dh"], c["h_prev"], c["W"], c["b"], c["f"], c["p"])
        tol = TOL64 if c["W"].dtype == torch.float64 else TOL32
        for n, t, e in zip(("dL_dW", "dL_db", "dL_dh_prev"), got, exp):
            problemas.append(comparar("{} con {} ({})".format(n, c["f"], c["W"].dtype), t, e, tol))
    exigir(problemas, "grad_capa_escondida no coincide con torch.autograd")


@prueba("capa", ayudas=True)(_plan_capa(("sig", "tanh", "relu")))
def test_capa_escondida_basicas(datos, obs):
    """grad_capa_escondida for sig, tanh and relu layers."""
    _juzgar_capa(datos, obs)


@prueba("capa", ayudas=True)(_plan_capa(("swish", "celu")))
def test_capa_escondida_param(datos, obs):
    """grad_capa_escondida for swish and celu layers with non-trivial beta/alpha."""
    _juzgar_capa(datos, obs)


# --------------------------------------------------------------------------- Part 3a


def _plan_backward(arquitecturas, repeticiones):
    def plan(g, ctx):
        casos = []
        for _ in range(repeticiones):
            for nombres_f in arquitecturas:
                for dtype in (torch.float64, torch.float32):
                    L = len(nombres_f)
                    F, C, B = _entero(g, 2, 6), _entero(g, 2, 5), _entero(g, 3, 8)
                    l_h = [_entero(g, 2, 6) for _ in range(L)]
                    params = [None if ayudas.ACTIVACIONES[n].param is None else round(0.5 + 1.5 * _uniforme(g), 3)
                              for n in nombres_f]
                    dims = [F] + l_h
                    casos.append({
                        "fs": list(nombres_f), "F": F, "C": C, "l_h": l_h, "params": params,
                        "Ws": [_randn(g, dims[i], dims[i + 1], dtype=dtype) * 0.8 for i in range(L)],
                        "bs": [_randn(g, dims[i + 1], dtype=dtype) * 0.5 for i in range(L)],
                        "U": _randn(g, l_h[-1], C, dtype=dtype) * 0.8, "c": _randn(g, C, dtype=dtype) * 0.5,
                        "x": _randn(g, B, F, dtype=dtype),
                        "y": torch.eye(C, dtype=dtype)[torch.randint(0, C, (B,), generator=g)]})
        return {"casos": casos}
    return plan


def _nombres_de_pesos(c):
    nombres = [("W({})".format(k + 1), w) for k, w in enumerate(c["Ws"])]
    nombres += [("b({})".format(k + 1), b) for k, b in enumerate(c["bs"])]
    return nombres + [("U", c["U"]), ("c", c["c"])]


def _juzgar_backward(datos, obs):
    faltante(obs, "la clase")
    autograd_primero(obs["resultados"], "backward")
    problemas = []
    for c, r in zip(datos["casos"], obs["resultados"]):
        red = "-".join(c["fs"])
        if "etapa" in r:
            resultado(r, "{} (red {})".format(r["etapa"], red))
        exp = refs.grads_red_autograd(c, c["x"], c["y"])
        tol = TOL64 if c["x"].dtype == torch.float64 else TOL32
        problemas.append(comparar("forward de una red {}".format(red), r.get("y_pred"), exp["y_pred"], tol))
        params = resultado(r.get("parametros"), "red.parameters()")
        for nombre, valor in _nombres_de_pesos(c):
            p = next((q for q in params if isinstance(q, (list, tuple)) and isinstance(q[0], torch.Tensor)
                      and q[0].shape == valor.shape and torch.equal(q[0].to(valor.dtype), valor)), None)
            etiqueta = "dL/d{} en una red {} ({})".format(nombre, red, c["x"].dtype)
            if p is None:
                problemas.append("{} no está entre red.parameters() después de load_weights".format(nombre))
            elif p[1] is None:
                problemas.append("{}: backward no llenó .grad".format(etiqueta))
            else:
                problemas.append(comparar(etiqueta, p[1], exp[nombre], tol))
    exigir(problemas, "Los gradientes de backward no coinciden con torch.autograd")


@prueba("backward", ayudas=True)(_plan_backward([("relu",), ("sig", "tanh"), ("tanh", "relu", "sig")], 2))
def test_backward_basicas(datos, obs):
    """FFNN.backward on networks of 1 to 3 sig/tanh/relu layers, float64 and float32."""
    _juzgar_backward(datos, obs)


@prueba("backward", ayudas=True)(_plan_backward([("swish",), ("celu", "swish"), ("relu", "celu")], 1))
def test_backward_param(datos, obs):
    """FFNN.backward on networks with swish and celu layers (W, b, U, c gradients)."""
    _juzgar_backward(datos, obs)


# --------------------------------------------------------------------------- Part 4


def _plan_sgd(g, ctx):
    iniciales = [_randn(g, 3, 4), _randn(g, 5), _randn(g, 2, 2)]
    return {"iniciales": iniciales, "grads": [_randn(g, *t.shape) for t in iniciales[:2]],
            "lr": round(0.1 + 0.8 * _uniforme(g), 3)}


@prueba("sgd")(_plan_sgd)
def test_sgd(datos, obs):
    """SGD: in place, every step, from a generator of parameters, skipping grad=None."""
    faltante(obs, "la clase")
    if "etapa" in obs:
        resultado(obs, obs["etapa"])
    problemas = []
    lr, iniciales, grads = datos["lr"], datos["iniciales"], datos["grads"]
    for paso, valores in enumerate(obs["pasos"], start=1):
        for i, (v, p0, g) in enumerate(zip(valores, iniciales, grads)):
            problemas.append(comparar("parámetro {} después del paso {}".format(i, paso), v, p0 - paso * lr * g, TOL64))
        problemas.append(comparar("parámetro sin gradiente después del paso {}".format(paso), valores[2], iniciales[2], 0.0))
    if len(obs["pasos"]) != 2:
        problemas.append("step() no se pudo llamar dos veces")
    if obs.get("mismos_objetos") is not True:
        problemas.append("step() debe modificar los parámetros en su lugar")
    exigir(problemas, "SGD no actualiza los parámetros como p ← p − lr·p.grad")


def _plan_dataset(g, ctx):
    return {"tamanos": [[_entero(g, 12, 30), _entero(g, 2, 6), _entero(g, 2, 7)],
                        [_entero(g, 31, 50), _entero(g, 2, 6), _entero(g, 2, 7)]]}


@prueba("dataset")(_plan_dataset)
def test_dataset(datos, obs):
    """RandomDataset: length, shapes, dtypes, one-hot labels, same item on every read."""
    faltante(obs, "la clase")
    problemas = []
    for (N, F, C), o in zip(datos["tamanos"], obs["resultados"]):
        if "etapa" in o:
            resultado(o, o["etapa"])
        if o.get("es_dataset") is not True:
            problemas.append("RandomDataset debe heredar de torch.utils.data.Dataset")
        n = resultado(o["largo"], "len(dataset)")
        if n != N:
            problemas.append("len(dataset) es {}, se esperaba {}".format(n, N))
        for i, (primera, segunda) in zip((0, N // 2, N - 1), o["items"]):
            item = resultado(primera, "dataset[{}]".format(i))
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                problemas.append("cada elemento debe ser un par (x, y)")
                break
            x, y = item
            if not (isinstance(x, torch.Tensor) and tuple(x.shape) == (F,) and x.dtype == torch.float32):
                problemas.append("x debe ser un tensor float32 de forma ({},)".format(F))
            if not (isinstance(y, torch.Tensor) and tuple(y.shape) == (C,) and y.dtype == torch.float32
                    and bool(((y == 0) | (y == 1)).all()) and y.sum().item() == 1):
                problemas.append("y debe ser un vector one-hot float32 de forma ({},)".format(C))
            otra = resultado(segunda, "dataset[{}]".format(i))
            if not (isinstance(otra, (tuple, list)) and len(otra) == 2 and all(isinstance(t, torch.Tensor) for t in otra)
                    and all(isinstance(t, torch.Tensor) for t in item)
                    and otra[0].shape == x.shape and otra[1].shape == y.shape
                    and torch.equal(x, otra[0]) and torch.equal(y, otra[1])):
                problemas.append("dataset[{}] cambia cada vez que se lee: debe devolver siempre el mismo ejemplo".format(i))
        xs = [resultado(r, "dataset[i]") for r in o["primeros"]]
        xs = [item[0] for item in xs if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor)]
        if len(xs) >= 3 and all(t.shape == xs[0].shape for t in xs) and torch.equal(xs[0], xs[1]) and torch.equal(xs[1], xs[2]):
            problemas.append("los ejemplos son todos iguales: deben ser aleatorios")
    exigir(problemas, "RandomDataset no cumple lo pedido")


def _plan_entrenar(g, ctx):
    N, F, C = 90, 4, 3  # not a multiple of the batch size: the last batch is smaller
    N += _entero(g, 0, 5)
    x = _randn(g, N, F, dtype=torch.float32)
    # well-separated classes (one axis each, jittered): every seed gives data a net learns quickly
    centros = 2.5 * torch.eye(C, F) + 0.3 * _randn(g, C, F, dtype=torch.float32)
    clases = torch.randint(0, C, (N,), generator=g)
    Ws, bs, U, c = refs.pesos_aleatorios(F, [8], C, g)
    return {"x": x * 0.5 + centros[clases], "y": torch.eye(C)[clases], "Ws": Ws, "bs": bs, "U": U, "c": c,
            "l_a": ["tanh"], "lr": 0.3, "epochs": 6, "batch_size": 16}


def repetir_entrenamiento(datos, lotes):
    """Replay the training on the recorded batches: the losses and final weights it must give."""
    red = ayudas.RedDeReferencia(datos["Ws"], datos["bs"], datos["U"], datos["c"], datos["l_a"])
    opt = ayudas.SGDReferencia(red.parameters(), datos["lr"])
    perdidas = []
    with torch.no_grad():
        for x, y in lotes:
            y_pred = red(x)
            perdidas.append(float(ayudas.CELoss(y_pred, y)))
            red.backward(x, y, y_pred)
            opt.step()
    return perdidas, [p.detach().clone() for p in red.parameters()]


def _lotes_de(eventos, datos):
    """The batches (x, y) of each iteration: forward, backward, step in that order, every time."""
    lotes, problemas, esperado = [], [], "forward"
    orden = {"forward": "backward", "backward": "step", "step": "forward"}
    for ev in eventos:
        tipo = ev[0]
        if tipo != esperado:
            problemas.append("en cada iteración se debe llamar forward, luego backward y luego optimizador.step() "
                             "(llegó {} cuando tocaba {})".format(tipo, esperado))
            break
        if tipo == "backward":
            x, y = ev[1]["x"], ev[1]["y"]
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dim() == 2
                    and tuple(x.shape[1:]) == tuple(datos["x"].shape[1:])
                    and tuple(y.shape[1:]) == tuple(datos["y"].shape[1:])):
                problemas.append("backward recibió tensores de forma inesperada")
                break
            lotes.append((x.float(), y.float()))
        esperado = orden[tipo]
    return lotes, problemas


@prueba("entrenar", ayudas=True)(_plan_entrenar)
def test_entrenar(datos, obs):
    """entrenar_FFNN: forward, backward and step each iteration over every example, one loss per
    iteration equal to the loss of that batch, and a loss that clearly goes down."""
    faltante(obs)
    perdidas = resultado(obs["perdidas"], "entrenar_FFNN")
    if not isinstance(perdidas, list) or any(v is None for v in perdidas):
        raise Incorrecto("entrenar_FFNN debe devolver una lista de floats (una pérdida por iteración)")
    N, bs, epochs = datos["x"].shape[0], datos["batch_size"], datos["epochs"]
    iteraciones = epochs * math.ceil(N / bs)
    problemas = []
    lotes, problemas_orden = _lotes_de(obs["eventos"], datos)
    problemas += problemas_orden
    if len(perdidas) != iteraciones:
        problemas.append("devolvió {} pérdidas; se esperaba una por iteración: {}".format(len(perdidas), iteraciones))
    elif not all(math.isfinite(v) for v in perdidas):
        problemas.append("hay pérdidas nan o inf")
    if not problemas_orden:
        if len(lotes) != iteraciones:
            problemas.append("se llamó a backward {} veces; se esperaba una vez por iteración: {}".format(len(lotes), iteraciones))
        elif sum(x.shape[0] for x, _ in lotes) != epochs * N:
            problemas.append("los lotes no recorren el dataset completo en cada época")
        else:
            esperadas, finales = repetir_entrenamiento(datos, lotes)
            if len(perdidas) == iteraciones and all(math.isfinite(v) for v in perdidas):
                rel = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(perdidas, esperadas))
                if rel > 1e-3:
                    problemas.append("las pérdidas devueltas no son las de cada lote (error relativo máximo "
                                     "{:.1e}): devuelve la pérdida del lote de cada iteración".format(rel))
            obtenidos = obs["finales"]
            if not (isinstance(obtenidos, list) and len(obtenidos) == len(finales)) or any(
                    comparar("p", o, e, 1e-3) for o, e in zip(obtenidos, finales)):
                problemas.append("los pesos finales no son los de aplicar optimizador.step() tras cada backward")
    if not problemas and len(perdidas) >= 12:
        inicio, fin = sum(perdidas[:6]) / 6, sum(perdidas[-6:]) / 6
        if not fin < 0.6 * inicio:
            problemas.append("la pérdida no baja lo suficiente: de {:.3f} a {:.3f} (¿llamas a forward, backward y "
                             "optimizador.step() en cada iteración?)".format(inicio, fin))
    exigir(problemas, "entrenar_FFNN no entrena como se espera")


# --------------------------------------------------------------------------- running a test


def plan_de(nombre, semilla, ctx=None):
    """The inputs of test ``nombre`` for the student with ``semilla``."""
    p = PRUEBAS[nombre]
    return p.plan(generador(semilla, nombre), ctx or Contexto())


def para_la_sonda(datos):
    """The part of a plan the probe may see: everything but the expected values (``__`` keys)."""
    return {k: v for k, v in datos.items() if not k.startswith("__")}


def veredicto(nombre, datos, obs):
    """None when the test passes, else the Spanish message. ``obs`` is untrusted, decoded data."""
    try:
        PRUEBAS[nombre].juzgar(datos, obs)
    except Incorrecto as e:
        return str(e)
    except Exception:  # observations of any shape: a message, never a crashed grader
        return "La respuesta del código para {} no tiene la forma esperada.".format(nombre[5:])
    return None


def fuente_sonda():
    """The text of the probes module (sent to every probe process)."""
    from tarea2_grader import probes
    with open(probes.__file__, encoding="utf-8") as fh:
        return fh.read()


def fuente_ayudas():
    """The text of the helpers module (sent only to tests that lend it)."""
    with open(ayudas.__file__, encoding="utf-8") as fh:
        return fh.read()


def evaluar_en_proceso(ns, nombre, semilla=0, fuentes=()):
    """Plan, probe and verdict of one test on a namespace, in this process (for the test suite).

    The observations go through the same encoding and strict decoding as in the sandbox.
    """
    from tarea2_grader import agent, probes
    datos = plan_de(nombre, semilla, Contexto(fuentes))
    sonda_datos = agent.decode(agent.encode(para_la_sonda(datos)))
    helpers = vars(ayudas) if PRUEBAS[nombre].ayudas else {}
    obs = getattr(probes, PRUEBAS[nombre].sonda)(dict(ns), sonda_datos, helpers)
    return veredicto(nombre, datos, wire.decodificar(agent.encode(obs)))
