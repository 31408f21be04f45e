"""Honest Tarea 2 submissions written the way Colab students write them: the autograd review must mark nothing.

``HONEST`` is a list of records, each a dict with

* ``name``: ascii identifier (pytest id);
* ``description``: one Spanish line saying what is unusual about it;
* ``cells``: {answer grade_id: full cell source}; cells not listed keep the reference solution;
* ``added`` (optional): cells the student added, a list of (grade_id of the cell they follow, source),
  with no nbgrader metadata.

Every record is correct code that computes its gradients by hand; what it adds is what real
notebooks carry: ``!pip`` lines, cell magics, Drive mounts, ``gc.collect()``, progress bars, plots,
and the student's own checks against ``torch.autograd`` in cells that no hidden test grades.
"""

DERIVADAS = '''import torch


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
        return s + beta * T * s * (1 - s), T ** 2 * s * (1 - s)
    return T * s


def celu(T, alpha=1.0, gradient=False):
    if gradient:
        e = torch.exp(torch.clamp(T, max=0) / alpha)
        return torch.where(T > 0, torch.ones_like(T), e), torch.where(T > 0, torch.zeros_like(T), e - 1 - (T / alpha) * e)
    return torch.clamp(T, min=0) + torch.clamp(alpha * (torch.exp(torch.clamp(T, max=0) / alpha) - 1), max=0)
'''

ENTRENAR_TQDM = '''!pip install tqdm
from tqdm.auto import tqdm
import gc


def entrenar_FFNN(red, dataset, optimizador, epochs=1, batch_size=1, device='cpu', verbose=True):
    red.to(device)
    cargador = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    perdidas = []
    for epoca in tqdm(range(epochs), disable=not verbose):
        for x, y in cargador:
            x, y = x.to(device), y.to(device)
            y_pred = red.forward(x)
            red.backward(x, y, y_pred)
            optimizador.step()
            perdidas.append(CELoss(y_pred, y).item())
        gc.collect()
        if device == 'cuda':
            torch.cuda.empty_cache()
    return perdidas
'''

FFNN_GETATTR = '''import inspect

import torch.nn.functional as F


class FFNN(torch.nn.Module):
    def __init__(self, F_, l_h, l_a, C, l_a_params=None):
        super().__init__()
        dims = [F_] + list(l_h) + [C]
        self.n_capas = len(l_h)
        self.fs = list(l_a)
        for k, (d0, d1) in enumerate(zip(dims, dims[1:])):
            setattr(self, f"W{k}", torch.nn.Parameter(torch.randn(d0, d1) * (2 / d0) ** 0.5))
            setattr(self, f"b{k}", torch.nn.Parameter(torch.zeros(d1)))
        params = list(l_a_params) if l_a_params is not None else [None] * len(self.fs)
        self.nombres_param = []
        for k, (f, p) in enumerate(zip(self.fs, params)):
            if len(inspect.signature(f).parameters) > 2:  # f(T, parametro, gradient): swish, celu, ...
                self.register_parameter(f"p{k}", torch.nn.Parameter(torch.tensor(1.0 if p is None else float(p))))
                self.nombres_param.append(f"p{k}")
            else:
                self.nombres_param.append(None)

    @property
    def Ws(self):
        return [getattr(self, f"W{k}") for k in range(self.n_capas)]

    @property
    def bs(self):
        return [getattr(self, f"b{k}") for k in range(self.n_capas)]

    @property
    def U(self):
        return getattr(self, f"W{self.n_capas}")

    @property
    def c(self):
        return getattr(self, f"b{self.n_capas}")

    def param_de_capa(self, k):
        nombre = self.nombres_param[k]
        return None if nombre is None else getattr(self, nombre)

    def load_weights(self, Ws, U, bs, c):
        for k, (W, b) in enumerate(zip(list(Ws) + [U], list(bs) + [c])):
            setattr(self, f"W{k}", torch.nn.Parameter(W))
            setattr(self, f"b{k}", torch.nn.Parameter(b))
        for nombre in self.nombres_param:
            if nombre is not None:
                p = getattr(self, nombre)
                p.data = p.data.to(U.dtype)

    def __repr__(self):
        return f"FFNN({self.n_capas} capas escondidas)"

    def forward(self, x):
        self.hs, self.us = [x], []
        for k, f in enumerate(self.fs):
            u = self.hs[-1] @ getattr(self, f"W{k}") + getattr(self, f"b{k}")
            p = self.param_de_capa(k)
            self.us.append(u)
            self.hs.append(f(u) if p is None else f(u, p))
        return F.softmax(self.hs[-1] @ self.U + self.c, dim=1)

    @torch.no_grad()
    def backward(self, x, y, y_pred):
        self.forward(x)
        dL_du = (y_pred - y) / x.shape[0]
        self.U.grad = self.hs[-1].T @ dL_du
        self.c.grad = dL_du.sum(0)
        dL_dh = dL_du @ self.U.T
        for k in reversed(range(self.n_capas)):
            f, p = self.fs[k], self.param_de_capa(k)
            if p is None:
                dL_du = dL_dh * f(self.us[k], gradient=True)
            else:
                d_du, d_dp = f(self.us[k], p, gradient=True)
                p.grad = (dL_dh * d_dp).sum()
                dL_du = dL_dh * d_du
            W = getattr(self, f"W{k}")
            W.grad = self.hs[k].T @ dL_du
            getattr(self, f"b{k}").grad = dL_du.sum(0)
            dL_dh = dL_du @ W.T
'''

DATASET_DUNDER = '''class RandomDataset(torch.utils.data.Dataset):
    """Un dataset aleatorio fijo: N ejemplos de F características y C clases."""

    def __init__(self, N, F, C):
        super().__init__()
        self.X = torch.randn(N, F)
        self.Y = torch.eye(C)[torch.randint(0, C, (N,))]

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        if i >= self.__len__():
            raise IndexError(i)
        return self.X[i], self.Y[i]

    def __repr__(self):
        return f"{type(self).__name__}({self.__len__()} ejemplos)"
'''

SGD_DECORADO = '''import math


class SGD:
    def __init__(self, parameters, lr):
        self.parameters = [p for p in parameters]
        self.lr = lr
        self.pasos = 0

    @torch.no_grad()
    def step(self):
        for p in self.parameters:
            if p.grad is None:
                continue
            assert math.isfinite(self.lr)
            p.sub_(self.lr * p.grad)
        self.pasos += 1
'''

ENTRENAR_GRAFICO = '''%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import clear_output


def entrenar_FFNN(red, dataset, optimizador, epochs=1, batch_size=1, device='cpu', verbose=True):
    red.to(device)
    cargador = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    perdidas = []
    for epoca in range(epochs):
        for x, y in cargador:
            x, y = x.to(device), y.to(device)
            with torch.set_grad_enabled(False):
                y_pred = red.forward(x)
            red.backward(x, y, y_pred)
            optimizador.step()
            perdidas.append(float(CELoss(y_pred, y)))
        if verbose:
            clear_output(wait=True)
            plt.plot(np.convolve(perdidas, np.ones(5) / 5, mode="valid"))
            plt.xlabel("iteración")
            plt.show()
    return perdidas
'''

CAPA_CON_AYUDANTES = '''def _suma_batch(M):
    return M.sum(dim=0)


def _derivada_activacion(f, u, p):
    return f(u, gradient=True) if p is None else f(u, p, gradient=True)[0]


def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    u = h_prev @ W + b
    dL_du = dL_dh * _derivada_activacion(f, u, p)
    return h_prev.T @ dL_du, _suma_batch(dL_du), dL_du @ W.T
'''

CHEQUEO_AUTOGRAD_DERIVADAS = '''# Mi propia verificación con autograd (no es parte de la respuesta)
X = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
for f, g in ((sig, torch.sigmoid), (tanh, torch.tanh), (relu, torch.relu)):
    (d_auto,) = torch.autograd.grad(g(X).sum(), X)
    print(f.__name__, torch.allclose(f(X.detach(), gradient=True), d_auto))
B = torch.full_like(X, 1.5).requires_grad_(True)
d_x, d_b = torch.autograd.grad((X * torch.sigmoid(B * X)).sum(), (X, B))
print("swish", torch.allclose(swish(X.detach(), 1.5, gradient=True)[0], d_x))
'''

CHEQUEO_BACKWARD = '''# Comparo mi backward con loss.backward() de PyTorch
torch.manual_seed(0)
red_prueba = FFNN(4, [5, 3], [relu, tanh], 3).double()
x_p = torch.randn(6, 4, dtype=torch.float64)
y_p = torch.eye(3, dtype=torch.float64)[torch.tensor([0, 1, 2, 0, 1, 2])]
perdida = CELoss(red_prueba(x_p), y_p, estable=False)
perdida.backward()
auto = [p.grad.clone() for p in red_prueba.parameters()]
for p in red_prueba.parameters():
    p.grad = None
red_prueba.backward(x_p, y_p, red_prueba(x_p))
print(all(torch.allclose(a, p.grad) for a, p in zip(auto, red_prueba.parameters())))
'''

CHEQUEO_CAPA = '''# Verifico mi capa con autograd, como en la celda dada
h_, W_, b_ = (t.clone().requires_grad_(True) for t in (h_prev, W, b))
esperado_mio = torch.autograd.grad(torch.tanh(h_ @ W_ + b_), (W_, b_, h_), grad_outputs=dL_dh)
print([torch.allclose(a, e) for a, e in zip(grad_capa_escondida(dL_dh, h_prev, W, b, tanh), esperado_mio)])
'''

DRIVE = '''from google.colab import drive
drive.mount('/content/drive')
%cd /content/drive/MyDrive/tareas
import os
print(os.listdir('.'))
'''

CAPA_INSPECT = '''import inspect


def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    u = h_prev @ W + b
    con_parametro = "beta" in inspect.signature(f).parameters or "alpha" in inspect.signature(f).parameters
    d_du = f(u, p, gradient=True)[0] if (con_parametro and p is not None) else f(u, gradient=True)
    dL_du = dL_dh * d_du
    return h_prev.T @ dL_du, dL_du.sum(0), dL_du @ W.T
'''

ENTRENAR_PICKLE = '''import pickle
import os


def entrenar_FFNN(red, dataset, optimizador, epochs=1, batch_size=1, device='cpu', verbose=True):
    red.to(device)
    cargador = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    perdidas = []
    for epoca in range(epochs):
        for x, y in cargador:
            x, y = x.to(device), y.to(device)
            y_pred = red(x)
            red.backward(x=x, y=y, y_pred=y_pred)
            optimizador.step()
            perdidas.append(CELoss(y_pred, y).item())
    if verbose:
        os.makedirs("resultados", exist_ok=True)
        with open(os.path.join("resultados", "perdidas.pkl"), "wb") as fh:
            pickle.dump(perdidas, fh)
    return perdidas
'''

HONEST = [
    {"name": "pip_tqdm_gc_entrenar",
     "description": "entrenar_FFNN empieza con !pip install tqdm, usa tqdm y llama a gc.collect() en cada época.",
     "cells": {"entrenar": ENTRENAR_TQDM}},
    {"name": "time_magic_derivadas",
     "description": "La celda de las derivadas empieza con %%time.",
     "cells": {"derivadas_codigo": "%%time\n" + DERIVADAS}},
    {"name": "time_magic_capa_blank_lines",
     "description": "La celda de la capa escondida empieza con líneas en blanco y %%time.",
     "cells": {"capas_escondidas": "\n\n%%time\n" + CAPA_CON_AYUDANTES}},
    {"name": "drive_mount_added_cell",
     "description": "Una celda agregada monta Google Drive, cambia de carpeta con %cd y lista archivos con os.",
     "cells": {}, "added": [("preparacion", DRIVE), ("preparacion", "import gc\ngc.collect()\n!nvidia-smi\n")]},
    {"name": "own_checks_with_autograd",
     "description": "Celdas agregadas que verifican las derivadas, la capa y backward con torch.autograd.grad y loss.backward().",
     "cells": {"derivadas_codigo": DERIVADAS},
     "added": [("derivadas_codigo", CHEQUEO_AUTOGRAD_DERIVADAS), ("chequeo_capa_escondida_param", CHEQUEO_CAPA),
               ("ffnn_backward", CHEQUEO_BACKWARD)]},
    {"name": "getattr_self_computed_names",
     "description": "FFNN guarda sus pesos como self.W0, self.W1... con setattr/getattr de nombres calculados.",
     "cells": {"ffnn_backward": FFNN_GETATTR}},
    {"name": "dunder_methods_on_self",
     "description": "RandomDataset llama a self.__len__(), define __repr__ y usa type(self).__name__.",
     "cells": {"random_dataset": DATASET_DUNDER}},
    {"name": "sgd_no_grad_decorator",
     "description": "SGD.step decorado con @torch.no_grad() y math importado en la misma celda.",
     "cells": {"sgd": SGD_DECORADO}},
    {"name": "matplotlib_in_entrenar",
     "description": "entrenar_FFNN grafica la pérdida con matplotlib y numpy, con %matplotlib inline y clear_output.",
     "cells": {"entrenar": ENTRENAR_GRAFICO}},
    {"name": "helpers_in_graded_cell",
     "description": "grad_capa_escondida usa funciones auxiliares propias definidas en la misma celda.",
     "cells": {"capas_escondidas": CAPA_CON_AYUDANTES}},
    {"name": "dL_duLm1_prints_and_pip",
     "description": "La celda de dL_duLm1 instala algo con !pip, imprime formas y calcula B en una variable.",
     "cells": {"dL_duLm1": "!pip install -q rich\nB = y.shape[0]\ndL_duLm1 = (y_pred - y) / B\n"
                           "print(dL_duLm1.shape)\n"}},
    {"name": "keyword_backward_inspect_pickle",
     "description": "backward llamado con argumentos por nombre, inspect.signature en la capa y pickle.dump de las pérdidas.",
     "cells": {"capas_escondidas": CAPA_INSPECT, "entrenar": ENTRENAR_PICKLE}},
    {"name": "ultima_capa_with_no_grad",
     "description": "La celda de la última capa calcula dentro de torch.no_grad() y reusa un nombre de las celdas dadas.",
     "cells": {"ultima_capa": "with torch.no_grad():\n    esperado = dL_duLm1\n    dL_dU = hL.T @ esperado\n"
                              "    dL_dc = esperado.sum(dim=0)\n    dL_dhL = esperado @ U.T\n"}},
]
