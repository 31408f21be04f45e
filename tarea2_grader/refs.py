"""Reference functions for the hidden tests.

Two kinds live here:

* closed-form activations with the notebook's API (``f(T, p, gradient=True)``),
  put in the student's namespace while a later part is tested so that parts
  are graded independently; they never call autograd, because student code
  that calls them runs with autograd banned;
* expected values computed by ``torch.autograd`` in float64 on torch's own
  functions, the ground truth every student answer is compared with.
"""
import torch


# --------------------------------------------------------------------------- activations (notebook API)

def _param(p, T):
    return torch.as_tensor(p, dtype=T.dtype, device=T.device)


def sig(T, gradient=False):
    s = torch.sigmoid(T)
    return s * (1 - s) if gradient else s


def tanh(T, gradient=False):
    t = torch.tanh(T)
    return 1 - t * t if gradient else t


def relu(T, gradient=False):
    return (T > 0).to(T.dtype) if gradient else torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    b = _param(beta, T)
    s = torch.sigmoid(b * T)
    if not gradient:
        return T * s
    return s + b * T * s * (1 - s), T * T * s * (1 - s)


def celu(T, alpha=1.0, gradient=False):
    a = _param(alpha, T)
    e = torch.exp(torch.clamp(T, max=0) / a)
    if not gradient:
        return torch.where(T > 0, T, a * (e - 1))
    d_dT = torch.where(T > 0, torch.ones_like(T), e)
    d_da = torch.where(T > 0, torch.zeros_like(T), e - 1 - T * e / a)
    return d_dT, d_da


for _f, _p in ((sig, None), (tanh, None), (relu, None), (swish, "beta"), (celu, "alpha")):
    _f.param = _p
ACTIVACIONES = {"sig": sig, "tanh": tanh, "relu": relu, "swish": swish, "celu": celu}


def celoss(Q, P, estable=True, epsilon=1e-8):
    """Mean over the batch of -sum(P log Q), computed in float64."""
    Q, P = Q.double(), P.double()
    if estable:
        Q = Q.clamp(min=epsilon)
    return -(P * torch.log(Q)).sum(dim=1).mean()


# --------------------------------------------------------------------------- ground truth by autograd

def _torch_activation(nombre, U, p=None):
    """The activation written with torch's own functions (autograd-friendly, right at the kinks)."""
    if nombre == "sig":
        return torch.sigmoid(U)
    if nombre == "tanh":
        return torch.tanh(U)
    if nombre == "relu":
        return torch.relu(U)
    if nombre == "swish":
        return U * torch.sigmoid(p * U)
    if nombre == "celu":
        return torch.where(U > 0, U, p * torch.expm1(U / p))
    raise ValueError(nombre)


def derivada_autograd(nombre, T, p=None):
    """Elementwise derivatives of an activation at T: (d/dT,) or (d/dT, d/dparam), shaped like T."""
    X = T.detach().double().clone().requires_grad_(True)
    if p is None:
        (d,) = torch.autograd.grad(_torch_activation(nombre, X).sum(), X)
        return (d,)
    P = torch.full_like(X, float(p)).requires_grad_(True)
    dx, dp = torch.autograd.grad(_torch_activation(nombre, X, P).sum(), (X, P))
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
    h = _torch_activation(nombre, h_prev @ W + b, p)
    return torch.autograd.grad(h, (W, b, h_prev), grad_outputs=dL_dh.double())


def grads_red_autograd(pesos, x, y):
    """Autograd gradients of CELoss for a network given by its weights; keys W(k), b(k), U, c, y_pred."""
    Ws = [_leaf(w) for w in pesos["Ws"]]
    bs = [_leaf(b) for b in pesos["bs"]]
    U, c = _leaf(pesos["U"]), _leaf(pesos["c"])
    h = x.double()
    for W, b, nombre, p in zip(Ws, bs, pesos["fs"], pesos["params"]):
        h = _torch_activation(nombre, h @ W + b, p)
    y_pred = torch.softmax(h @ U + c, dim=1)
    grads = torch.autograd.grad(celoss(y_pred, y, estable=False), Ws + bs + [U, c])
    nombres = [f"W({k + 1})" for k in range(len(Ws))] + [f"b({k + 1})" for k in range(len(bs))] + ["U", "c"]
    out = dict(zip(nombres, grads))
    out["y_pred"] = y_pred.detach()
    return out


# --------------------------------------------------------------------------- a network and optimizer for Part 4

class RedDeReferencia(torch.nn.Module):
    """A correct FFNN with a hand-written backward, used to test the student's training loop alone."""

    def __init__(self, F, l_h, l_a, C, generator):
        super().__init__()
        dims = [F] + list(l_h)
        self.Ws = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(a, b, generator=generator) / a ** 0.5) for a, b in zip(dims, dims[1:])])
        self.bs = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(b)) for b in dims[1:]])
        self.U = torch.nn.Parameter(torch.randn(dims[-1], C, generator=generator) / dims[-1] ** 0.5)
        self.c = torch.nn.Parameter(torch.zeros(C))
        self.fs = [ACTIVACIONES[n] for n in l_a]

    def forward(self, x):
        h = x
        for W, b, f in zip(self.Ws, self.bs, self.fs):
            h = f(h @ W + b)
        return torch.softmax(h @ self.U + self.c, dim=1)

    def backward(self, x, y, y_pred):
        with torch.no_grad():
            hs, us = [x], []
            for W, b, f in zip(self.Ws, self.bs, self.fs):
                us.append(hs[-1] @ W + b)
                hs.append(f(us[-1]))
            du = (y_pred - y) / x.shape[0]
            self.U.grad = hs[-1].T @ du
            self.c.grad = du.sum(0)
            dh = du @ self.U.T
            for k in reversed(range(len(self.Ws))):
                du = dh * self.fs[k](us[k], gradient=True)
                self.Ws[k].grad = hs[k].T @ du
                self.bs[k].grad = du.sum(0)
                dh = du @ self.Ws[k].T


class SGDReferencia:
    """p <- p - lr * p.grad, in place."""

    def __init__(self, parameters, lr):
        self.parameters, self.lr = list(parameters), lr

    def step(self):
        with torch.no_grad():
            for p in self.parameters:
                if p.grad is not None:
                    p -= self.lr * p.grad

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None


REFERENCIAS = dict(ACTIVACIONES, CELoss=celoss)
