"""Hidden tests of Part 4: SGD (4a), RandomDataset (4b) and the training loop (4c)."""
import math

import torch

from tarea2_grader.engine.registry import (MARCA_PISTA, Incorrecto, comparar, con_pista, entero, faltante, randn,
                                           resultado, uniforme)
from tarea2_grader.tarea2 import ayudas
from tarea2_grader.tarea2 import ayudas_red
from tarea2_grader.tarea2 import refs
from tarea2_grader.tarea2.comun import RED_PRESTADA, TOL64, exigir, prueba


def _plan_sgd(g, ctx):
    iniciales = [randn(g, 3, 4), randn(g, 5), randn(g, 2, 2)]
    return {"iniciales": iniciales, "grads": [randn(g, *t.shape) for t in iniciales[:2]],
            "lr": round(0.1 + 0.8 * uniforme(g), 3)}


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
    return {"tamanos": [[entero(g, 12, 30), entero(g, 2, 6), entero(g, 2, 7)],
                        [entero(g, 31, 50), entero(g, 2, 6), entero(g, 2, 7)]]}


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
            problemas.append("len(dataset) es {}, se esperaba {}".format(n, N) + (MARCA_PISTA + "largo" if n == F else ""))
        for i, (primera, segunda) in zip((0, N // 2, N - 1), o["items"]):
            item = resultado(primera, "dataset[{}]".format(i))
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                problemas.append("cada elemento debe ser un par (x, y)")
                break
            x, y = item
            if not (isinstance(x, torch.Tensor) and tuple(x.shape) == (F,) and x.dtype == torch.float32):
                pista = "float32" if isinstance(x, torch.Tensor) and tuple(x.shape) == (F,) else None
                problemas.append("x debe ser un tensor float32 de forma ({},)".format(F)
                                 + (MARCA_PISTA + pista if pista else ""))
            if not (isinstance(y, torch.Tensor) and tuple(y.shape) == (C,) and y.dtype == torch.float32
                    and bool(((y == 0) | (y == 1)).all()) and y.sum().item() == 1):
                pista = None
                if isinstance(y, int) or (isinstance(y, torch.Tensor) and y.dim() == 0):
                    pista = "one_hot"
                elif isinstance(y, torch.Tensor) and tuple(y.shape) == (1, C):
                    pista = "forma_y"
                problemas.append("y debe ser un vector one-hot float32 de forma ({},)".format(C)
                                 + (MARCA_PISTA + pista if pista else ""))
            otra = resultado(segunda, "dataset[{}]".format(i))
            if not (isinstance(otra, (tuple, list)) and len(otra) == 2 and all(isinstance(t, torch.Tensor) for t in otra)
                    and all(isinstance(t, torch.Tensor) for t in item)
                    and otra[0].shape == x.shape and otra[1].shape == y.shape
                    and torch.equal(x, otra[0]) and torch.equal(y, otra[1])):
                problemas.append("dataset[{}] cambia cada vez que se lee: debe devolver siempre el mismo ejemplo".format(i)
                                 + MARCA_PISTA + "dataset_fijo")
        xs = [resultado(r, "dataset[i]") for r in o["primeros"]]
        xs = [item[0] for item in xs if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor)]
        if len(xs) >= 3 and all(t.shape == xs[0].shape for t in xs) and torch.equal(xs[0], xs[1]) and torch.equal(xs[1], xs[2]):
            problemas.append("los ejemplos son todos iguales: deben ser aleatorios")
    exigir(problemas, "RandomDataset no cumple lo pedido")


def _plan_entrenar(g, ctx):
    N, F, C = 90, 4, 3  # not a multiple of the batch size: the last batch is smaller
    N += entero(g, 0, 5)
    x = randn(g, N, F, dtype=torch.float32)
    # well-separated classes (one axis each, jittered): every seed gives data a net learns quickly
    centros = 2.5 * torch.eye(C, F) + 0.3 * randn(g, C, F, dtype=torch.float32)
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
