"""Hidden tests of Part 1: the activations' derivatives (1a) and CELoss (1b).

The activations, their parameters and their typical mistakes come from the table of
:mod:`tarea2_grader.tarea2.activaciones`; ``DERIVADAS`` there says which test grades which.
"""
import torch

from tarea2_grader.engine.registry import (MARCA_PISTA, autograd_primero, comparar, con_pista, describir, entero,
                                           faltante, randn, resultado, uniforme)
from tarea2_grader.tarea2 import activaciones
from tarea2_grader.tarea2 import ayudas
from tarea2_grader.tarea2 import refs
from tarea2_grader.tarea2.comun import DTYPE, ESCALA_PARAMETRO, REGISTRO, TOL32, TOL64, exigir, prueba


# --------------------------------------------------------------------------- Part 1a


def _plan_activaciones(nombres, repeticiones=2):
    def plan(g, ctx):
        casos = []
        for _ in range(repeticiones):
            for nombre in nombres:
                param = ayudas.parametro(ayudas.CERRADAS[nombre])
                forma = (entero(g, 2, 6), entero(g, 2, 7))
                for dtype in (torch.float64, torch.float32):
                    T = (randn(g, *forma, dtype=dtype) * 2.5)
                    T[0, 0] = 0.0  # relu'(0) = 0; swish and celu are smooth there
                    if param is None:
                        casos.append({"nombre": nombre, "T": T, "kw": {"gradient": True}, "p": None})
                        continue
                    for p in (0.5 + 2 * uniforme(g), torch.tensor(0.3 + uniforme(g), dtype=torch.float64)):
                        casos.append({"nombre": nombre, "T": T, "kw": {param: p, "gradient": True}, "p": p})
                casos.append({"nombre": nombre, "T": randn(g, 3, 4), "kw": {}, "p": None, "directo": True})
        return {"casos": casos}
    return plan



def _mutantes_activacion(nombre, T, p):
    """Outputs of typical wrong derivatives at T: ([(hint, d/dT)], [(hint, d/dparam)]), the
    mistakes of the activation's entry in the table after a flipped sign."""
    T = T.double()
    exp = refs.derivada_autograd(nombre, T, p)
    entrada = activaciones.ACTIVACIONES[nombre]

    def d(X, q):
        return refs.derivada_autograd(nombre, X, q)
    d_dT = [("signo", -exp[0])] + [(clave, fn(T, p, d)) for clave, fn in entrada.errores_dT]
    d_dp = ([("signo", -exp[1])] + [(clave, fn(T, p, d)) for clave, fn in entrada.errores_dp]) if len(exp) > 1 else []
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
                                            got[1], exp[1], tol, ESCALA_PARAMETRO), got[1], mut_p, tol))
    exigir(problemas, "La derivada de {} no coincide con torch.autograd".format(
        nombre if len({c["nombre"] for c in datos["casos"]}) == 1 else "las activaciones"))



for _nombre, _activaciones in activaciones.DERIVADAS.items():  # e.g. test_derivadas_swish: ("swish",)
    REGISTRO.agregar(_nombre, "activaciones", _plan_activaciones(_activaciones), _juzgar_activaciones)


# --------------------------------------------------------------------------- Part 1b


def _plan_celoss(g, ctx):
    casos = []
    for dtype in (torch.float64, torch.float32):
        B, C = entero(g, 3, 9), entero(g, 3, 6)
        Q = torch.softmax(randn(g, B, C, dtype=dtype) * 2, dim=1)
        P = torch.softmax(randn(g, B, C, dtype=dtype), dim=1)  # a distribution, not only one-hot
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
    Qt = torch.softmax(randn(g, 5, 4), dim=1)
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
                             + (MARCA_PISTA + "por_ejemplo" if tuple(got.shape) == (caso["Q"].shape[0],) else ""))
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
