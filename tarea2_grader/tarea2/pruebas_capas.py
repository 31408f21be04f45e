"""Hidden tests of Parts 2 and 3: the last layer (2a, 2b, re-running the answer cell), one hidden
layer (2c) and the network's backward (3a).

Which activations the layers and networks use comes from ``CAPAS`` and ``REDES`` of
:mod:`tarea2_grader.tarea2.activaciones`.
"""
import torch

from tarea2_grader.engine.registry import (Incorrecto, autograd_primero, comparar, con_pista, entero, faltante,
                                           randn, resultado, uniforme)
from tarea2_grader.tarea2 import activaciones
from tarea2_grader.tarea2 import ayudas
from tarea2_grader.tarea2 import refs
from tarea2_grader.tarea2.comun import (ACTIVACIONES_PRESTADAS, CONOCIDAS, DTYPE, REGISTRO, SENUELO, TOL32, TOL64,
                                        como_autograd, exigir, pista_desconocida, prueba)


# --------------------------------------------------------------------------- Parts 2a and 2b: re-run the answer cell


def _capa_de_salida(g, B, d, C):
    """Random hL, U, c, one-hot y and y_pred = softmax(hL U + c), float64."""
    hL, U, c = randn(g, B, d), randn(g, d, C), randn(g, C)
    y = torch.eye(C, dtype=DTYPE)[torch.randint(0, C, (B,), generator=g)]
    return hL, U, c, y, torch.softmax(hL @ U + c, dim=1)


def _plan_dL_duLm1(g, ctx):
    casos, esperados = [], []
    for _ in range(3):
        B, d, C = entero(g, 2, 9), entero(g, 2, 5), entero(g, 2, 6)
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
        B, d, C = entero(g, 2, 9), entero(g, 2, 6), entero(g, 2, 6)
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
                B, d0, d1 = entero(g, 2, 8), entero(g, 2, 6), entero(g, 2, 6)
                for dtype in (torch.float64, torch.float32):
                    p = None if ayudas.parametro(ayudas.CERRADAS[nombre]) is None else 0.4 + 1.5 * uniforme(g)
                    casos.append({"f": nombre, "p": p, "h_prev": randn(g, B, d0, dtype=dtype),
                                  "W": randn(g, d0, d1, dtype=dtype),
                                  "b": randn(g, d1, dtype=dtype),  # non-zero biases keep u off the kinks
                                  "dL_dh": randn(g, B, d1, dtype=dtype)})
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
    exigir(problemas, "grad_capa_escondida no coincide con torch.autograd", pista_desconocida(fallidos, pasan))


for _nombre, _activaciones in activaciones.CAPAS.items():
    REGISTRO.agregar(_nombre, "capa", _plan_capa(_activaciones), _juzgar_capa, ayudas=ACTIVACIONES_PRESTADAS)


# --------------------------------------------------------------------------- Part 3a


def _plan_backward(arquitecturas, repeticiones):
    def plan(g, ctx):
        casos = []
        for _ in range(repeticiones):
            for nombres_f in arquitecturas:
                for dtype in (torch.float64, torch.float32):
                    L = len(nombres_f)
                    F, C, B = entero(g, 2, 6), entero(g, 2, 5), entero(g, 3, 8)
                    l_h = [entero(g, 2, 6) for _ in range(L)]
                    params = [None if ayudas.parametro(ayudas.CERRADAS[n]) is None
                              else round(0.5 + 1.5 * uniforme(g), 3) for n in nombres_f]
                    dims = [F] + l_h
                    casos.append({
                        "fs": list(nombres_f), "F": F, "C": C, "l_h": l_h, "params": params,
                        "Ws": [randn(g, dims[i], dims[i + 1], dtype=dtype) * 0.8 for i in range(L)],
                        "bs": [randn(g, dims[i + 1], dtype=dtype) * 0.5 for i in range(L)],
                        "U": randn(g, l_h[-1], C, dtype=dtype) * 0.8, "c": randn(g, C, dtype=dtype) * 0.5,
                        "x": randn(g, B, F, dtype=dtype),
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
    exigir(problemas, "Los gradientes de backward no coinciden con torch.autograd", pista_desconocida(fallidos, pasan))


for _nombre, (_redes, _repeticiones) in activaciones.REDES.items():
    REGISTRO.agregar(_nombre, "backward", _plan_backward(_redes, _repeticiones), _juzgar_backward,
                     ayudas=ACTIVACIONES_PRESTADAS)
