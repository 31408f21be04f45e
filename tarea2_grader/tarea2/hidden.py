"""Hidden tests of Tarea 2: the trusted half, run by the grader, never in the student's process.

Each test is declared in a hidden test cell of the master notebook
(``hidden.evaluar("test_celoss")``) and defined here as a :class:`Prueba`:

* ``plan(g, ctx)`` draws the inputs with the student's own generator (fresh per student, seed
  recorded with the grade);
* ``sonda`` names the probe of :mod:`tarea2_grader.tarea2.probes` that calls the student's code on those
  inputs inside the sandbox and returns what came back;
* ``juzgar(datos, obs)`` compares those observations with ``torch.autograd`` (float64) or with
  values computed here, and raises :class:`Incorrecto` with a Spanish message that names the wrong
  quantity and its maximum relative error, never the inputs.

The runner (:mod:`tarea2_grader.engine.runner`) calls these in the grader's process; the tests in
``tests/`` call :func:`evaluar_en_proceso` to exercise the same plans, probes and verdicts on a
namespace directly.
"""
import dataclasses
import hashlib
import math
import os
from typing import Callable, Optional

import torch

from tarea2_grader.tarea2 import ayudas
from tarea2_grader.tarea2 import ayudas_red
from tarea2_grader.tarea2 import refs
from tarea2_grader.engine import wire
from tarea2_grader.engine.review.source import asigna
from tarea2_grader.tarea2.review_roots import PARTES_REVISION  # noqa: F401  the runner reviews against it
from tarea2_grader.tarea2.selfcheck import error_relativo

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
    ayudas: tuple = ()            # helper modules lent to the probe (correct code of other parts)
    reejecuta: Optional[str] = None  # the probe re-runs the cell that assigns this variable


PRUEBAS = {}  # name -> Prueba, in the notebook's order (the order tests run in)


ACTIVACIONES_PRESTADAS = ("ayudas",)
RED_PRESTADA = ("ayudas", "ayudas_red")


def prueba(sonda, ayudas=(), reejecuta=None):
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


# Typical mistakes recognised from the outputs alone (never from the source): each key is
# proposed where the student's output equals the reference's output under that mistake.
PISTAS = {
    "relu0": "relu'(0) debe ser 0: usa T > 0 y no T >= 0.",
    "relu_unos": "la derivada de relu vale 1 en todas partes: debe ser 0 donde T ≤ 0 "
                 "(¿la calculaste desde la salida, que siempre es ≥ 0?).",
    "sig_signo": "σ'(T) = σ(T)·(1 − σ(T)): revisa el signo dentro del paréntesis.",
    "tanh_cuadrado": "tanh'(T) = 1 − tanh(T)²: falta el cuadrado.",
    "en_la_salida": "la derivada se evaluó en f(T) y no en T.",
    "signo": "el signo está invertido.",
    "par_al_reves": "el par está al revés: primero la derivada respecto de T, luego la del parámetro.",
    "param_uno": "parece que se usó el parámetro igual a 1 en vez del β o α recibido.",
    "swish_beta": "en d swish/dT falta el factor β de la regla de la cadena: d/dT σ(βT) = β·σ(βT)(1 − σ(βT)).",
    "swish_x": "en d swish/dβ falta un factor T: d/dβ σ(βT) = T·σ(βT)(1 − σ(βT)).",
    "swish_sigma_x": "se usó σ(T) donde va σ(βT).",
    "celu_exp": "para T < 0, d celu/dT = exp(T/α): falta dividir T por α.",
    "celu_falta_termino": "en d celu/dα falta el término −(T/α)·exp(T/α).",
    "celu_signo_termino": "en d celu/dα el término (T/α)·exp(T/α) va con signo menos.",
    "suma_batch": "parece que sumaste sobre el batch: la pérdida es el promedio (divide por B).",
    "sin_acotar": "con estable=True hay que acotar Q por abajo en epsilon antes del logaritmo.",
    "acota_siempre": "con estable=False no se debe acotar Q.",
    "epsilon_fijo": "se ignoró el argumento epsilon.",
    "q_mas_eps": "hay que acotar Q (Q.clamp(min=epsilon)), no sumarle epsilon.",
    "solo_one_hot": "P puede ser cualquier distribución, no solo one-hot: usa la suma de P·log Q.",
    "falta_B": "parece que falta dividir por B, el tamaño del batch.",
    "divide_C": "dividiste por el número de clases: debe ser B, el tamaño del batch.",
    "sin_softmax": "ese es el gradiente respecto de ŷ; falta pasar por la softmax: ∂L/∂u = (ŷ − y)/B.",
    "B_fijo": "dividiste por un número fijo: usa B = y.shape[0], el tamaño del batch que llega.",
    "sesgo_promedio": "el gradiente del sesgo se promedió en vez de sumarse sobre el batch.",
    "doble_B": "dividiste por B dos veces: dL_duLm1 ya incluye el 1/B.",
    "transpuesto": "el resultado está transpuesto: revisa el orden de la multiplicación.",
    "falta_UT": "falta transponer U: ∂L/∂h(L) = ∂L/∂u(L+1) · Uᵀ.",
    "fprima_en_h": "f' se evaluó en h = f(u) y no en la pre-activación u.",
    "sin_fprima": "falta multiplicar por f'(u) (la derivada de la activación).",
    "dh_sin_fprima": "∂L/∂h(k−1) debe pasar por f'(u): (∂L/∂h ⊙ f'(u)) · Wᵀ.",
    "desconocida": "solo fallan los casos con una activación que no es de la Parte 1: f puede ser cualquiera con la "
                   "interfaz; no decidas nada por su nombre (si tiene parámetro, llega en p) y toma su derivada de "
                   "f(u, gradient=True) o f(u, p, gradient=True).",
    "ceros": "los gradientes quedaron en cero.",
    "sin_cambio": "los parámetros no cambiaron: actualízalos en su lugar (p -= lr * p.grad dentro de torch.no_grad()).",
    "generador": "desde el segundo paso no cambia nada: guarda list(parameters); un generador se agota.",
    "suma_grad": "sumaste el gradiente: en descenso de gradiente se resta.",
    "lr_fijo": "el paso no es proporcional a lr: usa la tasa de aprendizaje que llega.",
    "grad_none": "hay parámetros con grad None: step() debe saltárselos.",
    "por_ejemplo": "CELoss devuelve una pérdida por ejemplo: falta promediar sobre el batch (.mean()).",
    "keepdim": "sobra una dimensión: suma sobre el batch sin keepdim para obtener forma (C,).",
    "dataset_fijo": "genera los ejemplos una sola vez (en __init__) y en __getitem__ solo devuélvelos.",
    "one_hot": "y debe ser un vector one-hot, por ejemplo torch.eye(C)[clase], no el número de la clase.",
    "float32": "crea x en float32 (torch.randn produce float32 por defecto; evita .double()).",
    "forma_y": "y tiene una dimensión de más: debe tener forma (C,), no (1, C).",
    "largo": "__len__ debe devolver N, el número de ejemplos (no el número de características).",
    "sin_step": "falta llamar a optimizador.step() después de backward en cada iteración.",
    "lote_uno": "se ignoró batch_size: cada lote debe tener batch_size ejemplos (el último puede ser menor).",
    "ultimo_lote": "no descartes el último lote incompleto: cada época recorre todos los ejemplos.",
    "por_epoca": "devuelve la pérdida de cada iteración, no una por época.",
}
_MARCA_PISTA = "\x00pista:"


# A mistake that explains another one's symptom too (forgetting f' everywhere also leaves
# dL_dh_prev without it): the broader one is named.
_INCLUYE = {"sin_fprima": ("dh_sin_fprima",)}


def con_pista(problema, obtenido, candidatos, tol):
    """``problema`` tagged with every typical mistake whose output equals ``obtenido``."""
    if problema is None or not isinstance(obtenido, torch.Tensor):
        return problema
    for clave, tensor in candidatos:
        if tensor is not None and comparar("", obtenido, tensor, tol) is None:
            problema += _MARCA_PISTA + clave
    return problema


def _mejor_pista(claves):
    """The mistake that explains the most failed comparisons (ties: the first proposed)."""
    if not claves:
        return None
    cuenta = {}
    for clave in claves:
        cuenta[clave] = cuenta.get(clave, 0) + 1
    for amplia, incluidas in _INCLUYE.items():
        if amplia in cuenta:
            for clave in incluidas:
                cuenta[amplia] += cuenta.pop(clave, 0)
    return max(cuenta, key=lambda k: (cuenta[k], -claves.index(k)))


def exigir(problemas, que, pistas=()):
    """Raise Incorrecto listing the distinct problems (at most three) and, where the outputs match
    a typical mistake, one ``Pista:`` line that names it."""
    claves = list(pistas)
    limpios = []
    for p in problemas:
        if not p:
            continue
        p, *marcas = p.split(_MARCA_PISTA)
        claves += marcas
        limpios.append(p)
    problemas = list(dict.fromkeys(p.replace("torch.float", "float") for p in limpios))
    if problemas:
        extra = " (y {} más)".format(len(problemas) - 3) if len(problemas) > 3 else ""
        texto = "{}:\n  - ".format(que) + "\n  - ".join(problemas[:3]) + extra
        mejor = _mejor_pista(claves)
        if mejor:
            texto += "\nPista: " + PISTAS[mejor]
        raise Incorrecto(texto)


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


# The activations that the tests of Parts 2c and 3a lend are decoys (``ayudas``): exact values and
# exact ``f(u, gradient=True)``, but autograd sees another function through their forward.  Code
# that got its gradients from autograd anyway (past the probe's traps) returns exactly what
# autograd gives through the decoys, which no hand-written derivative can give.
SENUELO = ("{}: los gradientes coinciden con los que da autograd a través de las activaciones de este test, "
           "que no se pueden derivar con autograd (su derivada solo la da f(u, gradient=True)). En esta tarea "
           "los gradientes se calculan a mano, así que esta parte vale 0 puntos.")


CONOCIDAS = ("sig", "tanh", "relu", "swish", "celu")  # the notebook's own activations


def _pista_desconocida(fallidos, algun_caso_pasa):
    """The hint for code that only works with the notebook's own activations: every failed case
    uses one the notebook never showed (``fallidos``: the activations of each failed case)."""
    return ["desconocida"] if fallidos and algun_caso_pasa and all(
        set(fs) - set(CONOCIDAS) for fs in fallidos) else []


def como_autograd(obtenidos, por_autograd, esperados, tol):
    """Whether the outputs equal, one by one, what autograd gives through the decoy activations,
    where that differs clearly from the true gradients (so correct code can never match it)."""
    obtenidos, por_autograd, esperados = list(obtenidos), list(por_autograd), list(esperados)
    return (len(obtenidos) == len(por_autograd) > 0
            and all(comparar("", o, s, tol) is None for o, s in zip(obtenidos, por_autograd))
            and any(comparar("", s, e, 100 * tol) is not None for s, e in zip(por_autograd, esperados)))


# --------------------------------------------------------------------------- Part 1a


def _plan_activaciones(nombres, repeticiones=2):
    def plan(g, ctx):
        casos = []
        for _ in range(repeticiones):
            for nombre in nombres:
                param = ayudas.parametro(ayudas.CERRADAS[nombre])
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


def _mutantes_activacion(nombre, T, p):
    """Outputs of typical wrong derivatives at T: ([(hint, d/dT)], [(hint, d/dparam)])."""
    T = T.double()
    exp = refs.derivada_autograd(nombre, T, p)
    d_dT = [("signo", -exp[0])]
    d_dp = [("signo", -exp[1])] if len(exp) > 1 else []
    if nombre == "relu":
        d_dT += [("relu0", (T >= 0).double()), ("relu_unos", torch.ones_like(T))]
    elif nombre in ("sig", "tanh"):
        f = torch.sigmoid if nombre == "sig" else torch.tanh
        d_dT.append(("en_la_salida", refs.derivada_autograd(nombre, f(T))[0]))
        d_dT.append(("sig_signo", f(T) * (1 + f(T))) if nombre == "sig" else ("tanh_cuadrado", 1 - f(T)))
    elif nombre == "swish":
        b = float(p)
        s, sx = torch.sigmoid(b * T), torch.sigmoid(T)
        uno = refs.derivada_autograd(nombre, T, 1.0)
        d_dT += [("swish_beta", s + T * s * (1 - s)), ("swish_sigma_x", sx + b * T * sx * (1 - sx)),
                 ("param_uno", uno[0])]
        d_dp += [("swish_x", T * s * (1 - s)), ("param_uno", uno[1])]
    elif nombre == "celu":
        a = float(p)
        e = torch.exp(torch.clamp(T, max=0) / a)
        uno = refs.derivada_autograd(nombre, T, 1.0)
        d_dT += [("celu_exp", torch.where(T > 0, torch.ones_like(T), torch.exp(torch.clamp(T, max=0)))),
                 ("param_uno", uno[0])]
        d_dp += [("celu_falta_termino", torch.where(T > 0, torch.zeros_like(T), e - 1)),
                 ("celu_signo_termino", torch.where(T > 0, torch.zeros_like(T), e - 1 + T * e / a)),
                 ("param_uno", uno[1])]
    return d_dT, d_dp


def _juzgar_activaciones(datos, obs):
    faltante(obs)
    llamadas = obs["resultados"]
    problemas = []
    nombre = datos["casos"][0]["nombre"]
    autograd_primero(llamadas, "La derivada")
    for caso, r in zip(datos["casos"], llamadas):
        nombre, T, p = caso["nombre"], caso["T"], caso["p"]
        param = ayudas.parametro(ayudas.CERRADAS[nombre])
        tol = TOL64 if T.dtype == torch.float64 else TOL32
        if caso.get("directo"):
            got = resultado(r, "{}(T)".format(nombre))
            problemas.append(comparar("{}(T) (gradient=False)".format(nombre), got, ayudas.CERRADAS[nombre](T), TOL64))
            continue
        mut_T, mut_p = _mutantes_activacion(nombre, T, p)
        if param is None:
            got = resultado(r, "{}(T, gradient=True)".format(nombre))
            problemas.append(con_pista(comparar("{}'(T) en {}".format(nombre, T.dtype), got,
                                                refs.derivada_autograd(nombre, T)[0], tol), got, mut_T, tol))
            continue
        got = resultado(r, "{}(T, {}, gradient=True)".format(nombre, param))
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            problemas.append("{}(T, {}, gradient=True) debe devolver el par (d/dT, d/d{}); llegó {}".format(
                nombre, param, param, describir(got)))
            continue
        exp = refs.derivada_autograd(nombre, T, p)
        tipo = "tensor" if isinstance(p, torch.Tensor) else "float"
        if comparar("", got[0], exp[1], tol) is None and comparar("", got[1], exp[0], tol) is None:
            mut_T = [("par_al_reves", got[0])]
        problemas.append(con_pista(comparar("d{}/dT ({} {}, {})".format(nombre, param, tipo, T.dtype), got[0],
                                            exp[0], tol), got[0], mut_T, tol))
        problemas.append(con_pista(comparar("d{}/d{} ({} {}, {})".format(nombre, param, param, tipo, T.dtype),
                                            got[1], exp[1], tol), got[1], mut_p, tol))
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
            problemas.append("CELoss debe devolver un tensor de 0 dimensiones; llegó forma {}".format(tuple(got.shape))
                             + (_MARCA_PISTA + "por_ejemplo" if tuple(got.shape) == (caso["Q"].shape[0],) else ""))
            continue
        kw = caso["kw"]
        Q, P = caso["Q"].double(), caso["P"].double()
        estable, eps = kw.get("estable", True), kw.get("epsilon", 1e-8)
        exp = refs.celoss(Q, P, estable, eps)
        tol = TOL64 if caso["Q"].dtype == torch.float64 else TOL32
        uno = torch.eye(P.shape[1], dtype=P.dtype)[P.argmax(dim=1)]
        mutantes = [("suma_batch", exp * Q.shape[0]),
                    ("sin_acotar", refs.celoss(Q, P, False) if estable else None),
                    ("acota_siempre", refs.celoss(Q, P, True, eps) if not estable else None),
                    ("epsilon_fijo", refs.celoss(Q, P, True, 1e-8) if estable and eps != 1e-8 else None),
                    ("q_mas_eps", -(P * torch.log(Q + eps)).sum(dim=1).mean() if estable else None),
                    ("solo_one_hot", refs.celoss(Q, uno, estable, eps))]
        problemas.append(con_pista(comparar("CELoss ({})".format(caso["que"]), got, exp, tol), got, mutantes, tol))
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


def _mutantes_ultima_capa(caso, esperado, clave):
    """Typical wrong values of one last-layer gradient (``clave`` in u, U, c, h)."""
    B, C = tuple(caso["y"].shape)
    e = esperado[clave]
    if clave == "u":
        y, y_pred = caso["y"].double(), caso["y_pred"].double()
        return ([("falta_B", e * B), ("signo", -e), ("divide_C", e * B / C), ("sin_softmax", -y / (B * y_pred))]
                + [("B_fijo", e * B / n) for n in range(1, 11) if n != B])
    if clave == "c":
        return [("sesgo_promedio", e / B), ("keepdim", e.unsqueeze(0)), ("signo", -e)]
    if clave == "U":
        return [("doble_B", e / B), ("transpuesto", e.T), ("signo", -e)]
    du, U = esperado["u"], caso["U"].double()
    return [("falta_UT", du @ U if du.shape[1] == U.shape[0] else None), ("signo", -e)]


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
            problemas.append(con_pista(comparar("{} (B={}, C={})".format(nombre, B, C), got[nombre], esperado[clave],
                                                TOL64), got[nombre], _mutantes_ultima_capa(caso, esperado, clave), TOL64))
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
                    p = None if ayudas.parametro(ayudas.CERRADAS[nombre]) is None else 0.4 + 1.5 * _uniforme(g)
                    casos.append({"f": nombre, "p": p, "h_prev": _randn(g, B, d0, dtype=dtype),
                                  "W": _randn(g, d0, d1, dtype=dtype),
                                  "b": _randn(g, d1, dtype=dtype),  # non-zero biases keep u off the kinks
                                  "dL_dh": _randn(g, B, d1, dtype=dtype)})
        return {"casos": casos}
    return plan


def _juzgar_capa(datos, obs):
    faltante(obs)
    autograd_primero(obs["resultados"], "grad_capa_escondida")
    problemas, senuelo, fallidos, pasan = [], False, [], 0
    for c, r in zip(datos["casos"], obs["resultados"]):
        try:
            got = resultado(r, "grad_capa_escondida(..., {})".format(c["f"]))
        except Incorrecto as e:
            if c["f"] in CONOCIDAS:
                raise
            problemas.append(str(e))  # an activation never shown: said with the others, and a hint
            fallidos.append([c["f"]])
            continue
        if not (isinstance(got, (tuple, list)) and len(got) == 3):
            problemas.append("grad_capa_escondida debe devolver (dL_dW, dL_db, dL_dh_prev)")
            fallidos.append([c["f"]])
            continue
        exp = refs.grad_capa_autograd(c["dL_dh"], c["h_prev"], c["W"], c["b"], c["f"], c["p"])
        tol = TOL64 if c["W"].dtype == torch.float64 else TOL32
        senuelo = senuelo or como_autograd(
            got, refs.grad_capa_senuelo(c["dL_dh"], c["h_prev"], c["W"], c["b"], c["f"], c["p"]), exp, tol)
        mutantes = [(clave, refs.grad_capa_mutada(c["dL_dh"], c["h_prev"], c["W"], c["b"], c["f"], c["p"], clave))
                    for clave in refs.ERRORES_CAPA]
        antes = len(problemas)
        for i, (n, t, e) in enumerate(zip(("dL_dW", "dL_db", "dL_dh_prev"), got, exp)):
            problemas.append(con_pista(comparar("{} con {} ({})".format(n, c["f"], c["W"].dtype), t, e, tol), t,
                                       [(clave, m[i]) for clave, m in mutantes if m is not None], tol))
        if any(problemas[antes:]):
            fallidos.append([c["f"]])
        else:
            pasan += 1
    if senuelo:
        raise Incorrecto(SENUELO.format("grad_capa_escondida"))
    exigir(problemas, "grad_capa_escondida no coincide con torch.autograd", _pista_desconocida(fallidos, pasan))


@prueba("capa", ayudas=ACTIVACIONES_PRESTADAS)(_plan_capa(("sig", "tanh", "relu")))
def test_capa_escondida_basicas(datos, obs):
    """grad_capa_escondida for sig, tanh and relu layers."""
    _juzgar_capa(datos, obs)


@prueba("capa", ayudas=ACTIVACIONES_PRESTADAS)(_plan_capa(("swish", "celu", "softplus")))
def test_capa_escondida_param(datos, obs):
    """grad_capa_escondida for swish, celu and softplus layers (softplus: an activation with a
    parameter that the notebook never shows) with non-trivial beta/alpha."""
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
                    params = [None if ayudas.parametro(ayudas.CERRADAS[n]) is None
                              else round(0.5 + 1.5 * _uniforme(g), 3) for n in nombres_f]
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
    problemas, senuelo, fallidos, pasan = [], False, [], 0
    for c, r in zip(datos["casos"], obs["resultados"]):
        red = "-".join(c["fs"])
        if "etapa" in r:
            if set(c["fs"]) <= set(CONOCIDAS):
                resultado(r, "{} (red {})".format(r["etapa"], red))
            try:  # a network with an activation never shown: said with the others, and a hint
                resultado(r, "{} (red {})".format(r["etapa"], red))
            except Incorrecto as e:
                problemas.append(str(e))
                fallidos.append(c["fs"])
                continue
        antes = len(problemas)
        exp = refs.grads_red_autograd(c, c["x"], c["y"])
        tol = TOL64 if c["x"].dtype == torch.float64 else TOL32
        mutantes = [(clave, refs.grads_red_mutada(c, c["x"], c["y"], clave)) for clave in refs.ERRORES_RED]
        problemas.append(comparar("forward de una red {}".format(red), r.get("y_pred"), exp["y_pred"], tol))
        params = resultado(r.get("parametros"), "red.parameters()")
        obtenidos = []
        for nombre, valor in _nombres_de_pesos(c):
            p = next((q for q in params if isinstance(q, (list, tuple)) and isinstance(q[0], torch.Tensor)
                      and q[0].shape == valor.shape and torch.equal(q[0].to(valor.dtype), valor)), None)
            etiqueta = "dL/d{} en una red {} ({})".format(nombre, red, c["x"].dtype)
            if p is None:
                problemas.append("{} no está entre red.parameters() después de load_weights".format(nombre))
            elif p[1] is None:
                problemas.append("{}: backward no llenó .grad".format(etiqueta))
            else:
                obtenidos.append((nombre, p[1]))
                problemas.append(con_pista(comparar(etiqueta, p[1], exp[nombre], tol), p[1],
                                           [(clave, m[nombre]) for clave, m in mutantes if m], tol))
        if len(obtenidos) == len(_nombres_de_pesos(c)):
            por_autograd = refs.grads_red_senuelo(c, c["x"], c["y"])
            senuelo = senuelo or como_autograd([g for _, g in obtenidos], [por_autograd[n] for n, _ in obtenidos],
                                               [exp[n] for n, _ in obtenidos], tol)
        if any(problemas[antes:]):
            fallidos.append(c["fs"])
        else:
            pasan += 1
    if senuelo:
        raise Incorrecto(SENUELO.format("backward"))
    exigir(problemas, "Los gradientes de backward no coinciden con torch.autograd", _pista_desconocida(fallidos, pasan))


@prueba("backward", ayudas=ACTIVACIONES_PRESTADAS)(_plan_backward([("relu",), ("sig", "tanh"), ("tanh", "relu", "sig")], 2))
def test_backward_basicas(datos, obs):
    """FFNN.backward on networks of 1 to 3 sig/tanh/relu layers, float64 and float32."""
    _juzgar_backward(datos, obs)


@prueba("backward", ayudas=ACTIVACIONES_PRESTADAS)(
    _plan_backward([("swish",), ("celu", "swish"), ("relu", "celu"), ("softplus", "tanh")], 1))
def test_backward_param(datos, obs):
    """FFNN.backward on networks with swish, celu and softplus layers (softplus: an activation with
    a parameter that the notebook never shows), W, b, U, c gradients."""
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
        if "NoneType" in str(obs.get("error", "")):
            exigir(["{} lanzó {}".format(obs["etapa"], str(obs["error"])[:240])], "SGD falló",
                   pistas=["grad_none"])
        resultado(obs, obs["etapa"])
    problemas = []
    lr, iniciales, grads = datos["lr"], datos["iniciales"], datos["grads"]
    for paso, valores in enumerate(obs["pasos"], start=1):
        for i, (v, p0, g) in enumerate(zip(valores, iniciales, grads)):
            mutantes = [("sin_cambio", p0), ("generador", p0 - lr * g if paso == 2 else None),
                        ("suma_grad", p0 + paso * lr * g)]
            if isinstance(v, torch.Tensor) and v.shape == p0.shape:
                paso_lr = -float(((v.double() - p0) * g).sum() / (paso * (g * g).sum()))
                if paso_lr > 0 and abs(paso_lr - lr) > 1e-3 * lr:
                    mutantes.append(("lr_fijo", p0 - paso * paso_lr * g))
            problemas.append(con_pista(comparar("parámetro {} después del paso {}".format(i, paso), v,
                                                p0 - paso * lr * g, TOL64), v, mutantes, TOL64))
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
            problemas.append("len(dataset) es {}, se esperaba {}".format(n, N) + (_MARCA_PISTA + "largo" if n == F else ""))
        for i, (primera, segunda) in zip((0, N // 2, N - 1), o["items"]):
            item = resultado(primera, "dataset[{}]".format(i))
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                problemas.append("cada elemento debe ser un par (x, y)")
                break
            x, y = item
            if not (isinstance(x, torch.Tensor) and tuple(x.shape) == (F,) and x.dtype == torch.float32):
                pista = "float32" if isinstance(x, torch.Tensor) and tuple(x.shape) == (F,) else None
                problemas.append("x debe ser un tensor float32 de forma ({},)".format(F)
                                 + (_MARCA_PISTA + pista if pista else ""))
            if not (isinstance(y, torch.Tensor) and tuple(y.shape) == (C,) and y.dtype == torch.float32
                    and bool(((y == 0) | (y == 1)).all()) and y.sum().item() == 1):
                pista = None
                if isinstance(y, int) or (isinstance(y, torch.Tensor) and y.dim() == 0):
                    pista = "one_hot"
                elif isinstance(y, torch.Tensor) and tuple(y.shape) == (1, C):
                    pista = "forma_y"
                problemas.append("y debe ser un vector one-hot float32 de forma ({},)".format(C)
                                 + (_MARCA_PISTA + pista if pista else ""))
            otra = resultado(segunda, "dataset[{}]".format(i))
            if not (isinstance(otra, (tuple, list)) and len(otra) == 2 and all(isinstance(t, torch.Tensor) for t in otra)
                    and all(isinstance(t, torch.Tensor) for t in item)
                    and otra[0].shape == x.shape and otra[1].shape == y.shape
                    and torch.equal(x, otra[0]) and torch.equal(y, otra[1])):
                problemas.append("dataset[{}] cambia cada vez que se lee: debe devolver siempre el mismo ejemplo".format(i)
                                 + _MARCA_PISTA + "dataset_fijo")
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
    red = ayudas_red.RedDeReferencia(datos["Ws"], datos["bs"], datos["U"], datos["c"], datos["l_a"])
    opt = ayudas_red.SGDReferencia(red.parameters(), datos["lr"])
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


@prueba("entrenar", ayudas=RED_PRESTADA)(_plan_entrenar)
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
    pistas = []
    if any("tocaba step" in p for p in problemas_orden):
        pistas.append("sin_step")
    if len(perdidas) != iteraciones:
        problemas.append("devolvió {} pérdidas; se esperaba una por iteración: {}".format(len(perdidas), iteraciones))
        if len(perdidas) == epochs:
            pistas.append("por_epoca")
    elif not all(math.isfinite(v) for v in perdidas):
        problemas.append("hay pérdidas nan o inf")
    if not problemas_orden:
        if len(lotes) != iteraciones:
            problemas.append("se llamó a backward {} veces; se esperaba una vez por iteración: {}".format(len(lotes), iteraciones))
            if len(lotes) == epochs * N and all(x.shape[0] == 1 for x, _ in lotes):
                pistas.append("lote_uno")
            elif sum(x.shape[0] for x, _ in lotes) == epochs * (N - N % bs):
                pistas.append("ultimo_lote")
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
    exigir(problemas, "entrenar_FFNN no entrena como se espera", pistas)


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
    from tarea2_grader.tarea2 import probes
    with open(probes.__file__, encoding="utf-8") as fh:
        return fh.read()


def fuente_ayudas(nombre):
    """The text of the helper modules test ``nombre`` lends (sent only to its probe), in order."""
    import importlib
    textos = []
    for modulo in PRUEBAS[nombre].ayudas:
        with open(importlib.import_module("tarea2_grader.tarea2." + modulo).__file__, encoding="utf-8") as fh:
            textos.append(fh.read())
    return "\n\n".join(textos)


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
    return veredicto(nombre, datos, wire.decodificar(protocol.encode(obs)))
