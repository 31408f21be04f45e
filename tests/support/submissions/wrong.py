"""A library of wrong submissions of Tarea 2: mistakes students really make.

``WRONG`` is a list of records, each a dict with

* ``name``: ascii identifier (used as pytest id and in the demo);
* ``description``: one Spanish line describing the mistake (demo feedback);
* ``cells``: {answer grade_id: full cell source}; cells not listed keep the reference solution;
* ``fails``: the autograded test cells (grade_ids) that must lose points; every other test
  cell must keep full points, because the hidden tests isolate the parts of the assignment.

Optional key ``xfail``: a reason string when the hidden tests are known not to catch the mistake
yet (reported to the lead; the test is marked ``xfail(strict=True)`` until it is fixed).
Set below from ``HINTS`` and ``MESSAGES``: ``hint`` (the ``Pista:`` it must get, or None) and
``message`` (a regular expression every failed test's message must match, or None).

Each wrong cell is a typical, otherwise correct student cell (``BASE_*`` below) with one mistake.
"""
from tarea2_grader.tarea2.activaciones import TABLA

# The notebook's activations with a parameter, as a student who decides by name lists them.
POR_NOMBRE = "({})".format(", ".join('"{}"'.format(a.nombre) for a in TABLA if a.parametro and a.en_cuaderno))

# --------------------------------------------------------------------------- test cell ids

T_BASICAS = "test_derivadas_basicas"
T_SWISH = "test_derivadas_swish"
T_CELU = "test_derivadas_celu"
T_CELOSS = "test_celoss"
T_DULM1 = "test_dL_duLm1"
T_ULTIMA = "test_ultima_capa"
T_CAPA_B = "test_capa_escondida_basicas"
T_CAPA_P = "test_capa_escondida_param"
T_BACK_B = "test_backward_basicas"
T_BACK_P = "test_backward_param"
T_SGD = "test_sgd"
T_DATASET = "test_dataset"
T_ENTRENAR = "test_entrenar"


def _mut(src: str, old: str, new: str) -> str:
    """Replace exactly one occurrence of ``old`` in ``src`` (guards against silent no-ops)."""
    if src.count(old) != 1:
        raise ValueError(f"expected exactly one {old!r} in the base cell, found {src.count(old)}")
    return src.replace(old, new)


# --------------------------------------------------------------------------- typical correct cells

BASE_DERIVADAS = '''import torch


def sig(T, gradient=False):
    s = 1 / (1 + torch.exp(-T))
    if gradient:
        return s * (1 - s)
    return s


def tanh(T, gradient=False):
    t = torch.tanh(T)
    if gradient:
        return 1 - t ** 2
    return t


def relu(T, gradient=False):
    if gradient:
        return (T > 0).to(T.dtype)
    return torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    s = sig(beta * T)
    if gradient:
        d_dT = s + beta * T * s * (1 - s)
        d_dbeta = T ** 2 * s * (1 - s)
        return d_dT, d_dbeta
    return T * s


def celu(T, alpha=1.0, gradient=False):
    if gradient:
        e = torch.exp(torch.clamp(T, max=0) / alpha)
        d_dT = torch.where(T > 0, torch.ones_like(T), e)
        d_dalpha = torch.where(T > 0, torch.zeros_like(T), e - 1 - (T / alpha) * e)
        return d_dT, d_dalpha
    return torch.clamp(T, min=0) + torch.clamp(alpha * (torch.exp(torch.clamp(T, max=0) / alpha) - 1), max=0)
'''

BASE_CELOSS = '''def CELoss(Q, P, estable=True, epsilon=1e-8):
    if estable:
        Q = torch.clamp(Q, min=epsilon)
    return -(P * torch.log(Q)).sum(dim=1).mean()
'''

BASE_DL_DULM1 = '''B = y.shape[0]
dL_duLm1 = (y_pred - y) / B
print(dL_duLm1)
'''

BASE_ULTIMA = '''dL_dU = hL.T @ dL_duLm1
dL_dc = dL_duLm1.sum(dim=0)
dL_dhL = dL_duLm1 @ U.T
'''

BASE_CAPA = '''def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    u = h_prev @ W + b
    if p is None:
        df = f(u, gradient=True)
    else:
        df, _ = f(u, p, gradient=True)
    dL_du = dL_dh * df
    dL_dW = h_prev.T @ dL_du
    dL_db = dL_du.sum(dim=0)
    dL_dh_prev = dL_du @ W.T
    return dL_dW, dL_db, dL_dh_prev
'''

BASE_FFNN = '''import inspect


class FFNN(torch.nn.Module):
    def __init__(self, F, l_h, l_a, C, l_a_params=None):
        # Código de la Tarea 1 (dado).
        super().__init__()
        dims = [F] + list(l_h)
        self.Ws = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(d0, d1) * math.sqrt(2 / d0)) for d0, d1 in zip(dims, dims[1:])])
        self.bs = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(d)) for d in dims[1:]])
        self.U = torch.nn.Parameter(torch.randn(dims[-1], C) * math.sqrt(1 / dims[-1]))
        self.c = torch.nn.Parameter(torch.zeros(C))
        self.fs = list(l_a)
        l_a_params = list(l_a_params) if l_a_params is not None else [None] * len(self.fs)
        # Parte 3b: un parámetro de 0 dimensiones por cada capa cuya activación tiene parámetro.
        self.act_params = torch.nn.ParameterDict()
        for k, (f, p) in enumerate(zip(self.fs, l_a_params)):
            if self.tiene_parametro(f):
                self.act_params[str(k)] = torch.nn.Parameter(torch.tensor(1.0 if p is None else float(p)))
        self.cache = None

    @staticmethod
    def tiene_parametro(f):
        return any(n != "gradient" for n in list(inspect.signature(f).parameters)[1:])

    def param_de_capa(self, k):
        # El parámetro (beta o alpha) de la capa k, o None si su activación no tiene.
        return self.act_params[str(k)] if str(k) in self.act_params else None

    def load_weights(self, Ws, U, bs, c):
        self.Ws = torch.nn.ParameterList([torch.nn.Parameter(W) for W in Ws])
        self.bs = torch.nn.ParameterList([torch.nn.Parameter(b) for b in bs])
        self.U = torch.nn.Parameter(U)
        self.c = torch.nn.Parameter(c)
        for p in self.act_params.values():
            p.data = p.data.to(U.dtype)

    def resumen(self):
        print(f"FFNN con {len(self.Ws)} capa(s) escondida(s):")
        for k, (W, f) in enumerate(zip(self.Ws, self.fs)):
            p = self.param_de_capa(k)
            extra = f" (parámetro {p.item():.3f})" if p is not None else ""
            print(f"  capa {k + 1}: {W.shape[0]} -> {W.shape[1]}, {f.__name__}{extra}")
        print(f"  salida: {self.U.shape[0]} -> {self.U.shape[1]}, softmax")
        print(f"  {sum(p.numel() for p in self.parameters())} parámetros")

    def forward(self, x):
        hs, us = [x], []
        for k, (W, b, f) in enumerate(zip(self.Ws, self.bs, self.fs)):
            us.append(hs[-1] @ W + b)
            p = self.param_de_capa(k)
            hs.append(f(us[-1]) if p is None else f(us[-1], p))
        self.cache = (x, us, hs)
        return softmax(hs[-1] @ self.U + self.c, dim=1)

    def intermedios(self, x):
        # (us, hs) de la última llamada a forward si fue con este mismo x; si no, los recalcula.
        if self.cache is None or self.cache[0] is not x:
            self.forward(x)
        return self.cache[1], self.cache[2]

    def backward(self, x, y, y_pred):
        with torch.no_grad():
            us, hs = self.intermedios(x)
            B = x.shape[0]
            dL_du = (y_pred - y) / B
            self.U.grad = hs[-1].T @ dL_du
            self.c.grad = dL_du.sum(dim=0)
            dL_dh = dL_du @ self.U.T
            for k in reversed(range(len(self.Ws))):
                f, p = self.fs[k], self.param_de_capa(k)
                if p is None:
                    df = f(us[k], gradient=True)
                else:
                    df, df_dp = f(us[k], p, gradient=True)
                    p.grad = (dL_dh * df_dp).sum()
                dL_du = dL_dh * df
                self.Ws[k].grad = hs[k].T @ dL_du
                self.bs[k].grad = dL_du.sum(dim=0)
                dL_dh = dL_du @ self.Ws[k].T
'''

BASE_SGD = '''class SGD:
    def __init__(self, parameters, lr):
        self.parameters = list(parameters)
        self.lr = lr

    def step(self):
        with torch.no_grad():
            for p in self.parameters:
                if p.grad is not None:
                    p -= self.lr * p.grad
'''

BASE_DATASET = '''class RandomDataset(torch.utils.data.Dataset):
    def __init__(self, N, F, C):
        self.N = N
        self.X = torch.randn(N, F)
        self.Y = torch.nn.functional.one_hot(torch.randint(0, C, (N,)), C).float()

    def __len__(self):
        return self.N

    def __getitem__(self, i):
        return self.X[i], self.Y[i]
'''

BASE_ENTRENAR = '''def entrenar_FFNN(red, dataset, optimizador, epochs=1, batch_size=1, device='cpu', verbose=True):
    red.to(device)
    cargador = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    perdidas = []
    for epoca in range(epochs):
        for x, y in cargador:
            x, y = x.to(device), y.to(device)
            y_pred = red.forward(x)
            perdida = CELoss(y_pred, y)
            red.backward(x, y, y_pred)
            optimizador.step()
            perdidas.append(perdida.item())
        if verbose:
            print(f"Época {epoca + 1}/{epochs}: pérdida {perdidas[-1]:.4f}")
    return perdidas
'''

# Autograd past the probe's traps: a reference to torch's engine kept when the cell runs (see the
# attack "autograd_motor_guardado").  Through the activations a test lends (decoys, whose autograd
# is not their derivative) the gradients come out wrong and recognisably so.
AUTOGRAD_GUARDADO = '''from torch.autograd import variable as _variable

_MOTOR = _variable.Variable._execution_engine


def _gradientes(salida, entradas, grad_salida):
    entradas = tuple(entradas)
    return _MOTOR.run_backward((salida,), (grad_salida,), False, False, entradas, True, False)
'''

# dL_duLm1 for the notebook's example (the given cell datos_2a, seed 2), in full precision: a
# student who works it out once and types the numbers passes the visible check, not the hidden one.
HARDCODED_DL_DULM1 = '''dL_duLm1 = torch.tensor([
    [0.12309588206833705, 0.0664934028535589, -0.18958928492189597],
    [-0.22959927887550816, 0.19346002552149646, 0.03613925335401169],
    [0.10641328662194213, -0.14695445035364474, 0.04054116373170261],
    [0.014207739030961529, 0.15066863488468102, -0.16487637391564258],
], dtype=torch.float64)
'''


def _w(name, description, fails, **cells):
    return {"name": name, "description": description, "cells": cells, "fails": frozenset(fails)}


WRONG = [
    # ---------------------------------------------------------------- Part 1a: derivatives
    _w("relu_grad_one_at_zero", "La derivada de relu vale 1 en 0 (usa T >= 0).", {T_BASICAS},
       derivadas_codigo=_mut(BASE_DERIVADAS, "return (T > 0).to(T.dtype)", "return (T >= 0).to(T.dtype)")),
    _w("relu_grad_from_output", "La derivada de relu se calcula desde la salida con >= 0 (siempre 1).", {T_BASICAS},
       derivadas_codigo=_mut(BASE_DERIVADAS, "return (T > 0).to(T.dtype)",
                             "return (torch.clamp(T, min=0) >= 0).to(T.dtype)")),
    _w("sig_grad_plus", "La derivada de la sigmoide escrita como s(1 + s).", {T_BASICAS},
       derivadas_codigo=_mut(BASE_DERIVADAS, "return s * (1 - s)\n    return s\n",
                             "return s * (1 + s)\n    return s\n")),
    _w("tanh_grad_no_square", "La derivada de tanh escrita como 1 - tanh (sin el cuadrado).", {T_BASICAS},
       derivadas_codigo=_mut(BASE_DERIVADAS, "return 1 - t ** 2", "return 1 - t")),
    _w("swish_dx_missing_beta", "En d swish/dx falta el factor beta de la regla de la cadena.", {T_SWISH},
       derivadas_codigo=_mut(BASE_DERIVADAS, "d_dT = s + beta * T * s * (1 - s)", "d_dT = s + T * s * (1 - s)")),
    _w("swish_dbeta_missing_x", "En d swish/dbeta falta un factor x (usa x s (1 - s) en vez de x^2 s (1 - s)).",
       {T_SWISH},
       derivadas_codigo=_mut(BASE_DERIVADAS, "d_dbeta = T ** 2 * s * (1 - s)", "d_dbeta = T * s * (1 - s)")),
    _w("swish_dx_sigmoid_of_x", "En d swish/dx usa sigmoid(x) en vez de sigmoid(beta x).", {T_SWISH},
       derivadas_codigo=_mut(BASE_DERIVADAS, "d_dT = s + beta * T * s * (1 - s)",
                             "d_dT = sig(T) + beta * T * sig(T) * (1 - sig(T))")),
    _w("celu_dx_exp_x", "En d celu/dx para x < 0 usa exp(x) en vez de exp(x/alpha).", {T_CELU},
       derivadas_codigo=_mut(BASE_DERIVADAS, "d_dT = torch.where(T > 0, torch.ones_like(T), e)",
                             "d_dT = torch.where(T > 0, torch.ones_like(T), torch.exp(T))")),
    _w("celu_dalpha_missing_term", "En d celu/dalpha falta el término -(x/alpha) exp(x/alpha).", {T_CELU},
       derivadas_codigo=_mut(BASE_DERIVADAS, "e - 1 - (T / alpha) * e)", "e - 1)")),
    _w("celu_dalpha_sign", "En d celu/dalpha el término (x/alpha) exp(x/alpha) tiene el signo cambiado.", {T_CELU},
       derivadas_codigo=_mut(BASE_DERIVADAS, "e - 1 - (T / alpha) * e)", "e - 1 + (T / alpha) * e)")),
    _w("celu_gradient_single_tensor", "celu(T, alpha, gradient=True) devuelve solo d/dx, no el par.", {T_CELU},
       derivadas_codigo=_mut(BASE_DERIVADAS, "return d_dT, d_dalpha", "return d_dT")),
    _w("swish_pair_swapped", "swish(T, beta, gradient=True) devuelve el par al revés: (d/dbeta, d/dx).", {T_SWISH},
       derivadas_codigo=_mut(BASE_DERIVADAS, "return d_dT, d_dbeta", "return d_dbeta, d_dT")),
    # swish calls sig: the review of the source flags swish's test too (it reaches code that uses autograd)
    _w("sig_grad_uses_autograd", "La derivada de la sigmoide se calcula con torch.autograd.grad.", {T_BASICAS, T_SWISH},
       derivadas_codigo=_mut(BASE_DERIVADAS, "        return s * (1 - s)\n    return s\n",
                             "        X = T.detach().clone().requires_grad_(True)\n"
                             "        with torch.enable_grad():\n"
                             "            (d,) = torch.autograd.grad(sig(X).sum(), X)\n"
                             "        return d\n    return s\n")),

    # ---------------------------------------------------------------- Part 1b: CELoss
    _w("celoss_sum", "CELoss suma sobre el batch en vez de promediar.", {T_CELOSS},
       celoss=_mut(BASE_CELOSS, ".sum(dim=1).mean()", ".sum()")),
    _w("celoss_ignores_estable", "CELoss nunca acota Q: con ceros en Q da inf aunque estable=True.", {T_CELOSS},
       celoss=_mut(BASE_CELOSS, "    if estable:\n        Q = torch.clamp(Q, min=epsilon)\n", "")),
    _w("celoss_always_clamps", "CELoss acota Q también cuando estable=False.", {T_CELOSS},
       celoss=_mut(BASE_CELOSS, "    if estable:\n        Q = torch.clamp(Q, min=epsilon)\n",
                   "    Q = torch.clamp(Q, min=epsilon)\n")),
    _w("celoss_fixed_epsilon", "CELoss ignora el argumento epsilon y usa siempre 1e-8.", {T_CELOSS},
       celoss=_mut(BASE_CELOSS, "torch.clamp(Q, min=epsilon)", "torch.clamp(Q, min=1e-8)")),
    _w("celoss_log_q_plus_eps", "CELoss usa log(Q + epsilon) en vez de acotar Q por abajo en epsilon.", {T_CELOSS},
       celoss=_mut(BASE_CELOSS, "    if estable:\n        Q = torch.clamp(Q, min=epsilon)\n",
                   "    if estable:\n        Q = Q + epsilon\n")),
    _w("celoss_one_hot_only", "CELoss toma solo la clase del argmax de P: falla si P no es one-hot.", {T_CELOSS},
       celoss=_mut(BASE_CELOSS, "return -(P * torch.log(Q)).sum(dim=1).mean()",
                   "return -torch.log(Q[torch.arange(Q.shape[0]), P.argmax(dim=1)]).mean()")),
    _w("celoss_no_batch_mean", "CELoss devuelve un vector (una pérdida por ejemplo) en vez de un escalar.", {T_CELOSS},
       celoss=_mut(BASE_CELOSS, ".sum(dim=1).mean()", ".sum(dim=1)")),

    # ---------------------------------------------------------------- Part 2a: dL/du(L+1)
    _w("dL_duLm1_missing_1_over_B", "dL_duLm1 sin dividir por el tamaño del batch B.", {T_DULM1},
       dL_duLm1=_mut(BASE_DL_DULM1, "(y_pred - y) / B", "y_pred - y")),
    _w("dL_duLm1_sign_flipped", "dL_duLm1 con el signo cambiado (y - y_pred).", {T_DULM1},
       dL_duLm1=_mut(BASE_DL_DULM1, "(y_pred - y) / B", "(y - y_pred) / B")),
    _w("dL_duLm1_divides_by_C", "dL_duLm1 divide por el número de clases en vez del tamaño del batch.", {T_DULM1},
       dL_duLm1=_mut(BASE_DL_DULM1, "B = y.shape[0]", "B = y.shape[1]")),
    _w("dL_duLm1_forgets_softmax_grad", "dL_duLm1 escrito como -y / (B y_pred), olvidando la softmax.", {T_DULM1},
       dL_duLm1=_mut(BASE_DL_DULM1, "(y_pred - y) / B", "-y / (B * y_pred)")),
    _w("dL_duLm1_hardcoded_B", "dL_duLm1 divide por 4, el tamaño del batch del ejemplo, en vez de B.", {T_DULM1},
       dL_duLm1=_mut(BASE_DL_DULM1, "(y_pred - y) / B", "(y_pred - y) / 4")),
    _w("dL_duLm1_hardcoded", "dL_duLm1 escrito a mano con los valores del ejemplo (no se calcula).", {T_DULM1},
       dL_duLm1=HARDCODED_DL_DULM1),
    _w("dL_duLm1_uses_autograd", "dL_duLm1 calculado con torch.autograd.grad sobre u_ejemplo.", {T_DULM1},
       dL_duLm1='''u = u_ejemplo.clone().requires_grad_(True)
(dL_duLm1,) = torch.autograd.grad(CELoss(softmax(u, dim=1), y), u)
dL_duLm1 = dL_duLm1.detach()
'''),

    # ---------------------------------------------------------------- Part 2b: last layer
    _w("dL_dc_mean", "dL_dc promedia sobre el batch en vez de sumar (divide por B dos veces).", {T_ULTIMA},
       ultima_capa=_mut(BASE_ULTIMA, "dL_duLm1.sum(dim=0)", "dL_duLm1.mean(dim=0)")),
    _w("dL_dc_keepdim", "dL_dc queda con forma (1, C) en vez de (C,) (sum con keepdim=True).", {T_ULTIMA},
       ultima_capa=_mut(BASE_ULTIMA, "dL_duLm1.sum(dim=0)", "dL_duLm1.sum(dim=0, keepdim=True)")),
    _w("dL_dU_wrong_transpose", "dL_dU con el orden de la multiplicación invertido (dL_duLm1^T hL).", {T_ULTIMA},
       ultima_capa=_mut(BASE_ULTIMA, "dL_dU = hL.T @ dL_duLm1", "dL_dU = dL_duLm1.T @ hL")),
    _w("dL_dU_divides_by_B_again", "dL_dU divide otra vez por B, aunque dL_duLm1 ya lo incluye.", {T_ULTIMA},
       ultima_capa=_mut(BASE_ULTIMA, "dL_dU = hL.T @ dL_duLm1", "dL_dU = hL.T @ dL_duLm1 / hL.shape[0]")),
    _w("dL_dhL_uses_U_not_UT", "dL_dhL multiplica por U en vez de U^T.", {T_ULTIMA},
       ultima_capa=_mut(BASE_ULTIMA, "dL_dhL = dL_duLm1 @ U.T", "dL_dhL = dL_duLm1 @ U")),
    _w("ultima_capa_uses_autograd", "Los gradientes de la última capa se calculan con torch.autograd.grad.",
       {T_ULTIMA},
       ultima_capa='''hL_, U_, c_ = (t.clone().requires_grad_(True) for t in (hL, U, c))
dL_dU, dL_dc, dL_dhL = torch.autograd.grad(CELoss(softmax(hL_ @ U_ + c_, dim=1), y), (U_, c_, hL_))
dL_dU = dL_dU.detach()
'''),

    # ---------------------------------------------------------------- Part 2c: hidden layer
    _w("capa_fprime_at_output", "grad_capa_escondida evalúa f' en la salida h = f(u) y no en u.", {T_CAPA_B, T_CAPA_P},
       capas_escondidas=_mut(_mut(BASE_CAPA, "f(u, gradient=True)", "f(f(u), gradient=True)"),
                             "f(u, p, gradient=True)", "f(f(u, p), p, gradient=True)")),
    _w("capa_bias_mean", "dL_db promedia sobre el batch en vez de sumar.", {T_CAPA_B, T_CAPA_P},
       capas_escondidas=_mut(BASE_CAPA, "dL_du.sum(dim=0)", "dL_du.mean(dim=0)")),
    _w("capa_missing_fprime", "grad_capa_escondida olvida multiplicar por f'(u).", {T_CAPA_B, T_CAPA_P},
       capas_escondidas=_mut(BASE_CAPA, "dL_du = dL_dh * df", "dL_du = dL_dh")),
    _w("capa_ignores_param", "grad_capa_escondida ignora p y usa siempre beta = alpha = 1.", {T_CAPA_P},
       capas_escondidas=_mut(BASE_CAPA, "df, _ = f(u, p, gradient=True)", "df, _ = f(u, gradient=True)")),
    _w("capa_dh_prev_skips_fprime", "dL_dh_prev propaga dL_dh sin pasar por f'(u) (usa dL_dh @ W^T).",
       {T_CAPA_B, T_CAPA_P},
       capas_escondidas=_mut(BASE_CAPA, "dL_dh_prev = dL_du @ W.T", "dL_dh_prev = dL_dh @ W.T")),
    _w("capa_uses_autograd", "grad_capa_escondida calcula los gradientes con torch.autograd.grad.",
       {T_CAPA_B, T_CAPA_P},
       capas_escondidas='''def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    W = W.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    h_prev = h_prev.detach().requires_grad_(True)
    with torch.enable_grad():
        u = h_prev @ W + b
        h = f(u) if p is None else f(u, p)
        return torch.autograd.grad(h, (W, b, h_prev), grad_outputs=dL_dh)
'''),
    _w("capa_autograd_saved_engine",
       "grad_capa_escondida pide los gradientes a autograd a través de f, con el motor guardado antes del test.",
       {T_CAPA_B, T_CAPA_P},
       capas_escondidas=AUTOGRAD_GUARDADO + '''

def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    W, b, h_prev = (t.detach().requires_grad_(True) for t in (W, b, h_prev))
    with torch.enable_grad():
        u = h_prev @ W + b
        h = f(u) if p is None else f(u, p)
        return _gradientes(h, (W, b, h_prev), dL_dh)
'''),
    _w("capa_dispatch_by_name", "grad_capa_escondida decide por el nombre de f (swish o celu) si tiene parámetro.",
       {T_CAPA_P},
       capas_escondidas=_mut(BASE_CAPA, "    if p is None:\n", "    if f.__name__ not in {}:\n".format(POR_NOMBRE))),

    # ---------------------------------------------------------------- Part 3a: backward
    _w("backward_missing_1_over_B", "backward no divide por el tamaño del batch.", {T_BACK_B, T_BACK_P},
       ffnn_backward=_mut(BASE_FFNN, "dL_du = (y_pred - y) / B", "dL_du = y_pred - y")),
    _w("backward_calls_autograd", "backward llama a loss.backward() en vez de calcular los gradientes a mano.",
       {T_BACK_B, T_BACK_P},
       ffnn_backward=BASE_FFNN.split("    def backward")[0] + '''    def backward(self, x, y, y_pred):
        for p in self.parameters():
            p.grad = None
        with torch.enable_grad():
            perdida = CELoss(self.forward(x), y, estable=False)
            perdida.backward()
'''),
    _w("backward_autograd_saved_engine",
       "backward pide los gradientes de la pérdida a autograd, con el motor guardado antes del test.",
       {T_BACK_B, T_BACK_P},
       ffnn_backward=AUTOGRAD_GUARDADO + "\n\n" + BASE_FFNN.split("    def backward")[0]
       + '''    def backward(self, x, y, y_pred):
        parametros = list(self.parameters())
        with torch.enable_grad():
            perdida = CELoss(self.forward(x), y, estable=False)
            for p, g in zip(parametros, _gradientes(perdida, parametros, torch.ones_like(perdida))):
                p.grad = g
'''),
    _w("backward_dispatch_by_name", "backward decide por el nombre de la activación (swish o celu) si tiene parámetro.",
       {T_BACK_P},
       ffnn_backward=_mut(BASE_FFNN, "                if p is None:\n                    df = f(us[k], gradient=True)",
                          "                if f.__name__ not in {}:\n"
                          "                    df = f(us[k], gradient=True)".format(POR_NOMBRE))),
    _w("backward_zero_grads", "backward deja todos los gradientes en cero.", {T_BACK_B, T_BACK_P},
       ffnn_backward=BASE_FFNN.split("    def backward")[0] + '''    def backward(self, x, y, y_pred):
        for p in self.parameters():
            p.grad = torch.zeros_like(p)
'''),
    _w("backward_only_last_layer", "backward solo llena los gradientes de U y c, no los de las capas escondidas.",
       {T_BACK_B, T_BACK_P},
       ffnn_backward=_mut(BASE_FFNN, "            for k in reversed(range(len(self.Ws))):\n",
                          "            for k in []:\n")),
    _w("backward_last_hidden_layer_only", "backward solo retrocede hasta la última capa escondida (falla con 2 o más capas).",
       {T_BACK_B, T_BACK_P},
       ffnn_backward=_mut(BASE_FFNN, "            for k in reversed(range(len(self.Ws))):\n",
                          "            for k in [len(self.Ws) - 1]:\n")),
    _w("backward_wrong_h_index", "backward usa h(k) en vez de h(k-1) para dL/dW(k).", {T_BACK_B, T_BACK_P},
       ffnn_backward=_mut(BASE_FFNN, "self.Ws[k].grad = hs[k].T @ dL_du", "self.Ws[k].grad = hs[k + 1].T @ dL_du")),
    _w("backward_fprime_at_output", "backward evalúa f' en h(k) y no en la pre-activación u(k).",
       {T_BACK_B, T_BACK_P},
       ffnn_backward=_mut(_mut(BASE_FFNN, "df = f(us[k], gradient=True)", "df = f(hs[k + 1], gradient=True)"),
                          "f(us[k], p, gradient=True)", "f(hs[k + 1], p, gradient=True)")),
    _w("backward_ignores_layer_param", "backward usa beta = alpha = 1 al derivar las capas swish y celu.",
       {T_BACK_P},
       ffnn_backward=_mut(BASE_FFNN, "df, df_dp = f(us[k], p, gradient=True)",
                          "df, df_dp = f(us[k], gradient=True)")),

    # ---------------------------------------------------------------- Part 4a: SGD
    _w("sgd_rebinds_parameter", "SGD reasigna p = p - lr * grad a una variable local: la red no cambia.", {T_SGD},
       sgd=_mut(BASE_SGD, "                    p -= self.lr * p.grad",
                "                    p = p - self.lr * p.grad")),
    _w("sgd_keeps_generator", "SGD guarda el generador de parámetros: desde el segundo paso no actualiza nada.",
       {T_SGD}, sgd=_mut(BASE_SGD, "self.parameters = list(parameters)", "self.parameters = parameters")),
    _w("sgd_crashes_on_none_grad", "SGD falla con un parámetro cuyo gradiente es None.", {T_SGD},
       sgd=_mut(BASE_SGD, "                if p.grad is not None:\n                    p -= self.lr * p.grad",
                "                p -= self.lr * p.grad")),
    _w("sgd_plus", "SGD suma el gradiente en vez de restarlo.", {T_SGD},
       sgd=_mut(BASE_SGD, "p -= self.lr * p.grad", "p += self.lr * p.grad")),
    _w("sgd_ignores_lr", "SGD usa una tasa de aprendizaje fija en vez de lr.", {T_SGD},
       sgd=_mut(BASE_SGD, "p -= self.lr * p.grad", "p -= 0.01 * p.grad")),

    # ---------------------------------------------------------------- Part 4b: RandomDataset
    _w("dataset_new_sample_each_read", "RandomDataset genera un ejemplo nuevo cada vez que se lee.", {T_DATASET},
       random_dataset=_mut(BASE_DATASET, "        return self.X[i], self.Y[i]",
                           "        return torch.randn(self.X.shape[1]), self.Y[i]")),
    _w("dataset_integer_labels", "RandomDataset devuelve la clase como entero y no como vector one-hot.",
       {T_DATASET},
       random_dataset=_mut(BASE_DATASET, "torch.nn.functional.one_hot(torch.randint(0, C, (N,)), C).float()",
                           "torch.randint(0, C, (N,))")),
    _w("dataset_float64", "RandomDataset entrega x en float64 en vez de float32.", {T_DATASET},
       random_dataset=_mut(BASE_DATASET, "torch.randn(N, F)", "torch.randn(N, F, dtype=torch.float64)")),
    _w("dataset_label_shape_1xC", "RandomDataset entrega y con forma (1, C) en vez de (C,).", {T_DATASET},
       random_dataset=_mut(BASE_DATASET, "torch.nn.functional.one_hot(torch.randint(0, C, (N,)), C).float()",
                           "torch.nn.functional.one_hot(torch.randint(0, C, (N, 1)), C).float()")),
    _w("dataset_len_features", "len(RandomDataset) devuelve el número de características y no N.", {T_DATASET},
       random_dataset=_mut(BASE_DATASET, "        return self.N", "        return self.X.shape[1]")),

    # ---------------------------------------------------------------- Part 4c: training loop
    _w("entrenar_no_step", "entrenar_FFNN nunca llama a optimizador.step(): la red no aprende.", {T_ENTRENAR},
       entrenar=_mut(BASE_ENTRENAR, "            optimizador.step()\n", "")),
    _w("entrenar_loss_per_epoch", "entrenar_FFNN devuelve una pérdida por época y no una por iteración.",
       {T_ENTRENAR},
       entrenar=_mut(_mut(BASE_ENTRENAR, "            perdidas.append(perdida.item())\n", ""),
                     "        if verbose:\n", "        perdidas.append(perdida.item())\n        if verbose:\n")),
    _w("entrenar_ignores_batch_size", "entrenar_FFNN ignora batch_size y usa siempre lotes de 1.", {T_ENTRENAR},
       entrenar=_mut(BASE_ENTRENAR, "batch_size=batch_size", "batch_size=1")),
    _w("entrenar_drop_last", "entrenar_FFNN descarta el último lote incompleto (drop_last=True).", {T_ENTRENAR},
       entrenar=_mut(BASE_ENTRENAR, "shuffle=True)", "shuffle=True, drop_last=True)")),
]

# The hint (``tarea2_grader.tarea2.hidden.PISTAS`` key) each mistake must get in its feedback, decided from
# the outputs alone; None where the failure message itself already names the mistake (autograd,
# a missing .grad, a pair instead of a tensor) or where the outputs do not identify it.
HINTS = {
    "relu_grad_one_at_zero": "relu0", "relu_grad_from_output": "relu_unos", "sig_grad_plus": "sig_signo",
    "tanh_grad_no_square": "tanh_cuadrado", "swish_dx_missing_beta": "swish_beta",
    "swish_dbeta_missing_x": "swish_x", "swish_dx_sigmoid_of_x": "swish_sigma_x", "celu_dx_exp_x": "celu_exp",
    "celu_dalpha_missing_term": "celu_falta_termino", "celu_dalpha_sign": "celu_signo_termino",
    "celu_gradient_single_tensor": None, "swish_pair_swapped": "par_al_reves", "sig_grad_uses_autograd": None,
    "celoss_sum": "suma_batch", "celoss_ignores_estable": "sin_acotar", "celoss_always_clamps": "acota_siempre",
    "celoss_fixed_epsilon": "epsilon_fijo", "celoss_log_q_plus_eps": "q_mas_eps",
    "celoss_one_hot_only": "solo_one_hot", "celoss_no_batch_mean": "por_ejemplo",
    "dL_duLm1_missing_1_over_B": "falta_B", "dL_duLm1_sign_flipped": "signo", "dL_duLm1_divides_by_C": "divide_C",
    "dL_duLm1_forgets_softmax_grad": "sin_softmax", "dL_duLm1_hardcoded_B": "B_fijo",
    "dL_duLm1_hardcoded": None, "dL_duLm1_uses_autograd": None,
    "dL_dc_mean": "sesgo_promedio", "dL_dc_keepdim": "keepdim", "dL_dU_wrong_transpose": "transpuesto",
    "dL_dU_divides_by_B_again": "doble_B", "dL_dhL_uses_U_not_UT": None, "ultima_capa_uses_autograd": None,
    "capa_fprime_at_output": "fprima_en_h", "capa_bias_mean": "sesgo_promedio", "capa_missing_fprime": "sin_fprima",
    "capa_ignores_param": "param_uno", "capa_dh_prev_skips_fprime": "dh_sin_fprima", "capa_uses_autograd": None,
    "capa_autograd_saved_engine": None, "capa_dispatch_by_name": "desconocida",
    "backward_dispatch_by_name": "desconocida", "backward_autograd_saved_engine": None,
    "backward_missing_1_over_B": "falta_B", "backward_calls_autograd": None, "backward_zero_grads": "ceros",
    "backward_only_last_layer": None, "backward_last_hidden_layer_only": None, "backward_wrong_h_index": None,
    "backward_fprime_at_output": "fprima_en_h", "backward_ignores_layer_param": "param_uno",
    "sgd_rebinds_parameter": "sin_cambio", "sgd_keeps_generator": "generador", "sgd_crashes_on_none_grad": "grad_none",
    "sgd_plus": "suma_grad", "sgd_ignores_lr": "lr_fijo",
    "dataset_new_sample_each_read": "dataset_fijo", "dataset_integer_labels": "one_hot", "dataset_float64": "float32",
    "dataset_label_shape_1xC": "forma_y", "dataset_len_features": "largo",
    "entrenar_no_step": "sin_step", "entrenar_loss_per_epoch": "por_epoca", "entrenar_ignores_batch_size": "lote_uno",
    "entrenar_drop_last": "ultimo_lote",
}
# What the failing tests' message must say (a regular expression), where the mistake has its own message.
MESSAGES = {
    "capa_autograd_saved_engine": "coinciden con los que da autograd a través de las activaciones de este test",
    "backward_autograd_saved_engine": "coinciden con los que da autograd a través de las activaciones de este test",
}
for _record in WRONG:
    _record["hint"] = HINTS[_record["name"]]
    _record["message"] = MESSAGES.get(_record["name"])

# Correct cells in the typical style above (checked to get full marks, so that a failing
# record is known to fail because of its one mistake).
BASE_CELLS = {
    "derivadas_codigo": BASE_DERIVADAS,
    "celoss": BASE_CELOSS,
    "dL_duLm1": BASE_DL_DULM1,
    "ultima_capa": BASE_ULTIMA,
    "capas_escondidas": BASE_CAPA,
    "ffnn_backward": BASE_FFNN,
    "sgd": BASE_SGD,
    "random_dataset": BASE_DATASET,
    "entrenar": BASE_ENTRENAR,
}
