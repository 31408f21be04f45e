"""Ground truth for the hidden tests (trusted side: never sent to the sandbox).

Expected values computed by ``torch.autograd`` in float64 on torch's own functions: the
ground truth every student answer is compared with.  The closed-form activations with the
notebook's API live in :mod:`tarea2_grader.tarea2.ayudas` (tests lend decoys of them to student code);
both come from the table of :mod:`tarea2_grader.tarea2.activaciones`.
"""
import torch

from tarea2_grader.tarea2 import activaciones
from tarea2_grader.tarea2 import ayudas
from tarea2_grader.tarea2.ayudas import parametro

ACTIVACIONES = ayudas.CERRADAS  # name -> closed form (not the decoys lent to student code)


def celoss(Q, P, estable=True, epsilon=1e-8):
    """Mean over the batch of -sum(P log Q), computed in float64."""
    Q, P = Q.double(), P.double()
    if estable:
        Q = Q.clamp(min=epsilon)
    return -(P * torch.log(Q)).sum(dim=1).mean()


# --------------------------------------------------------------------------- ground truth by autograd

def torch_activation(nombre, U, p=None):
    """The activation written with torch's own functions (autograd-friendly, right at the kinks)."""
    if nombre not in activaciones.ACTIVACIONES:
        raise ValueError(nombre)
    return activaciones.ACTIVACIONES[nombre].referencia(U, p)


def derivada_autograd(nombre, T, p=None):
    """Elementwise derivatives of an activation at T: (d/dT,) or (d/dT, d/dparam), shaped like T."""
    X = T.detach().double().clone().requires_grad_(True)
    if p is None:
        (d,) = torch.autograd.grad(torch_activation(nombre, X).sum(), X)
        return (d,)
    P = torch.full_like(X, float(p)).requires_grad_(True)
    dx, dp = torch.autograd.grad(torch_activation(nombre, X, P).sum(), (X, P))
    return dx, dp


def _leaf(t):
    return t.detach().double().clone().requires_grad_(True)


def grad_ultima_capa(hL, U, c, y):
    """Gradients of CELoss(softmax(hL U + c), y): keys u (w.r.t. hL U + c), U, c, h."""
    hL, U, c = _leaf(hL), _leaf(U), _leaf(c)
    u = hL @ U + c
    u.retain_grad()
    celoss(torch.softmax(u, dim=1), y, estable=False).backward()
    return {"u": u.grad, "U": U.grad, "c": c.grad, "h": hL.grad}


def grad_capa_autograd(dL_dh, h_prev, W, b, nombre, p=None):
    """(dL_dW, dL_db, dL_dh_prev) for h = f(h_prev W + b) and upstream gradient dL_dh."""
    h_prev, W, b = _leaf(h_prev), _leaf(W), _leaf(b)
    h = torch_activation(nombre, h_prev @ W + b, p)
    return torch.autograd.grad(h, (W, b, h_prev), grad_outputs=dL_dh.double())


def _prestada(nombre, U, p=None):
    """The decoy a test lends for ``nombre`` (right values; autograd sees ayudas.senuelo)."""
    f = ayudas.ACTIVACIONES[nombre]
    return f(U) if p is None else f(U, p)


def grad_capa_senuelo(dL_dh, h_prev, W, b, nombre, p=None):
    """What code that asks autograd for the layer's gradients gets from the activation the test
    lends (a decoy): (dL_dW, dL_db, dL_dh_prev), float64."""
    h_prev, W, b = _leaf(h_prev), _leaf(W), _leaf(b)
    h = _prestada(nombre, h_prev @ W + b, p)
    return torch.autograd.grad(h, (W, b, h_prev), grad_outputs=dL_dh.double())


def grads_red_autograd(pesos, x, y, activacion=None):
    """Autograd gradients of CELoss for a network given by its weights; keys W(k), b(k), U, c, y_pred.

    ``activacion(nombre, u, p)`` computes each layer (default: :func:`torch_activation`, the truth)."""
    activacion = activacion or torch_activation
    Ws = [_leaf(w) for w in pesos["Ws"]]
    bs = [_leaf(b) for b in pesos["bs"]]
    U, c = _leaf(pesos["U"]), _leaf(pesos["c"])
    h = x.double()
    for W, b, nombre, p in zip(Ws, bs, pesos["fs"], pesos["params"]):
        h = activacion(nombre, h @ W + b, p)
    y_pred = torch.softmax(h @ U + c, dim=1)
    grads = torch.autograd.grad(celoss(y_pred, y, estable=False), Ws + bs + [U, c])
    nombres = [f"W({k + 1})" for k in range(len(Ws))] + [f"b({k + 1})" for k in range(len(bs))] + ["U", "c"]
    out = dict(zip(nombres, grads))
    out["y_pred"] = y_pred.detach()
    return out


def grads_red_senuelo(pesos, x, y):
    """What a backward that asks autograd gets through the activations the test lends (decoys)."""
    return grads_red_autograd(pesos, x, y, activacion=_prestada)


# --------------------------------------------------------------------------- a network and optimizer for Part 4

def pesos_aleatorios(F, l_h, C, generator, dtype=torch.float32):
    """Initial weights (Ws, bs, U, c) for the reference network of the training-loop test."""
    dims = [F] + list(l_h)
    Ws = [torch.randn(a, b, generator=generator, dtype=dtype) / a ** 0.5 for a, b in zip(dims, dims[1:])]
    bs = [torch.zeros(b, dtype=dtype) for b in dims[1:]]
    U = torch.randn(dims[-1], C, generator=generator, dtype=dtype) / dims[-1] ** 0.5
    return Ws, bs, U, torch.zeros(C, dtype=dtype)


# --------------------------------------------------------------------------- typical mistakes (for hints)

ERRORES_CAPA = ("fprima_en_h", "sesgo_promedio", "dh_sin_fprima", "sin_fprima", "param_uno")


def _derivada(nombre, U, p):
    """f'(U) from the closed forms (float64)."""
    f = ACTIVACIONES[nombre]
    return f(U, gradient=True) if parametro(f) is None else f(U, p, gradient=True)[0]


def grad_capa_mutada(dL_dh, h_prev, W, b, nombre, p, error):
    """(dL_dW, dL_db, dL_dh_prev) of one layer as written with a typical ``error``; None if the
    mistake does not apply to this activation."""
    dL_dh, h_prev, W, b = (t.double() for t in (dL_dh, h_prev, W, b))
    u = h_prev @ W + b
    f = ACTIVACIONES[nombre]
    if error == "param_uno" and parametro(f) is None:
        return None
    if error == "fprima_en_h":
        h = f(u) if parametro(f) is None else f(u, p)
        D = dL_dh * _derivada(nombre, h, p)
    elif error == "sin_fprima":
        D = dL_dh
    else:
        D = dL_dh * _derivada(nombre, u, 1.0 if error == "param_uno" else p)
    db = D.sum(0) / D.shape[0] if error == "sesgo_promedio" else D.sum(0)
    dh_prev = dL_dh @ W.T if error == "dh_sin_fprima" else D @ W.T
    if error == "sin_fprima":
        dh_prev = None  # that symptom alone is named by "dh_sin_fprima"
    return h_prev.T @ D, db, dh_prev


ERRORES_RED = ("falta_B", "fprima_en_h", "param_uno", "ceros")


def grads_red_mutada(pesos, x, y, error):
    """Gradients of the network by a hand-written backward with a typical ``error`` (keys as
    :func:`grads_red_autograd`); None if the mistake does not apply to this network."""
    Ws = [w.double() for w in pesos["Ws"]]
    bs = [b.double() for b in pesos["bs"]]
    U, c, x, y = pesos["U"].double(), pesos["c"].double(), x.double(), y.double()
    nombres, params = pesos["fs"], pesos["params"]
    if error == "param_uno" and all(parametro(ACTIVACIONES[n]) is None for n in nombres):
        return None
    hs, us = [x], []
    for W, b, n, p in zip(Ws, bs, nombres, params):
        us.append(hs[-1] @ W + b)
        f = ACTIVACIONES[n]
        hs.append(f(us[-1]) if parametro(f) is None else f(us[-1], p))
    y_pred = torch.softmax(hs[-1] @ U + c, dim=1)
    du = (y_pred - y) * (1.0 if error == "falta_B" else 1.0 / x.shape[0])
    out = {"U": hs[-1].T @ du, "c": du.sum(0)}
    dh = du @ U.T
    for k in reversed(range(len(Ws))):
        n, p = nombres[k], params[k]
        donde = hs[k + 1] if error == "fprima_en_h" else us[k]
        du = dh * _derivada(n, donde, 1.0 if error == "param_uno" else p)
        out["W({})".format(k + 1)] = hs[k].T @ du
        out["b({})".format(k + 1)] = du.sum(0)
        dh = du @ Ws[k].T
    if error == "ceros":
        out = {k: torch.zeros_like(v) for k, v in out.items()}
    return out
