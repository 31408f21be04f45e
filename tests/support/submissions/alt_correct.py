"""A second correct solution of Tarea 2, written from the spec only, in another style.

``CELLS`` maps answer-cell grade_ids to a full replacement source. Style choices that differ from
the reference on purpose: closed forms through ``torch.where``/``einsum`` instead of ``@``,
float32 arithmetic inside the activations (cast back to the input dtype), float64 inside the
network's backward (cast back to each parameter's dtype), a forward that caches its activations
for backward, parameters stored as individually registered attributes, and a training loop that
batches by hand instead of using a DataLoader.

``VARIANTS`` lists further correct ways to write single cells (each a record with ``name``,
``description`` and ``cells``, and ``xfail`` with a reason while the hidden tests are known to
reject it); each must also get full marks.
"""

DERIVADAS = r'''
import torch


def _f32(T, valor):
    """A float or 0-dim tensor parameter as a detached float32 tensor next to T."""
    return torch.as_tensor(valor).detach().to(device=T.device, dtype=torch.float32)


def sig(T, gradient=False):
    if gradient:
        s = torch.reciprocal(1.0 + torch.exp(-T.detach().to(torch.float32)))
        return (s - s.square()).to(T.dtype)
    return torch.reciprocal(1 + torch.exp(-T))


def tanh(T, gradient=False):
    if gradient:
        z = T.detach().to(torch.float32)
        e2 = torch.exp(-2.0 * z.abs())
        t = torch.sign(z) * (1.0 - e2) / (1.0 + e2)
        return (1.0 - t.square()).to(T.dtype)
    return 2 * sig(2 * T) - 1


def relu(T, gradient=False):
    if gradient:
        return torch.where(T > 0, torch.ones_like(T), torch.zeros_like(T))
    return torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    if not gradient:
        return T * sig(beta * T)
    z, b = T.detach().to(torch.float32), _f32(T, beta)
    s = torch.reciprocal(1.0 + torch.exp(-b * z))
    ds = s * (1.0 - s)                 # sigmoid'(b z)
    d_dT = s + b * z * ds              # product rule, chain through b z
    d_dbeta = z.square() * ds          # d/db of z * sigmoid(b z)
    return d_dT.to(T.dtype), d_dbeta.to(T.dtype)


def celu(T, alpha=1.0, gradient=False):
    if not gradient:
        return torch.clamp(T, min=0) + torch.clamp(alpha * (torch.exp(T / alpha) - 1), max=0)
    z, a = T.detach().to(torch.float32), _f32(T, alpha)
    negativo = z <= 0
    e = torch.exp(torch.where(negativo, z, torch.zeros_like(z)) / a)
    d_dT = torch.where(negativo, e, torch.ones_like(z))
    d_dalpha = torch.where(negativo, (e - 1.0) - (z / a) * e, torch.zeros_like(z))
    return d_dT.to(T.dtype), d_dalpha.to(T.dtype)
'''

CELOSS = r'''
def CELoss(Q, P, estable=True, epsilon=1e-8):
    logQ = torch.log(torch.clamp(Q, min=epsilon)) if estable else torch.log(Q)
    por_ejemplo = -torch.einsum("bc,bc->b", P.to(logQ.dtype), logQ)
    return por_ejemplo.sum() / Q.shape[0]
'''

CATEGORICAL = r'''
def CategoricalCELoss(Q, Target, estable=True, epsilon=1e-8):
    elegidas = Q.gather(1, Target.long().view(-1, 1)).squeeze(1)
    if estable:
        elegidas = elegidas.clamp_min(epsilon)
    return -elegidas.log().mean()
'''

DL_DULM1 = r'''
n_ejemplos = len(y)
dL_duLm1 = torch.sub(y_pred, y).div(n_ejemplos)
'''

ULTIMA_CAPA = r'''
dL_dU = torch.einsum("bi,bj->ij", hL, dL_duLm1)
dL_dc = torch.einsum("bj->j", dL_duLm1)
dL_dhL = torch.einsum("bj,ij->bi", dL_duLm1, U)
'''

CAPAS = r'''
def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    u = torch.einsum("bi,ij->bj", h_prev, W) + b
    derivada = f(u, gradient=True) if p is None else f(u, p, gradient=True)[0]
    delta = dL_dh * derivada
    dL_dW = torch.einsum("bi,bj->ij", h_prev, delta)
    dL_db = torch.einsum("bj->j", delta)
    dL_dh_prev = torch.einsum("bj,ij->bi", delta, W)
    return dL_dW, dL_db, dL_dh_prev
'''

FFNN_CELL = r'''
import inspect


class FFNN(torch.nn.Module):
    """Same public behaviour as Tarea 1's network; backward reuses what forward cached."""

    def __init__(self, F, l_h, l_a, C, l_a_params=None):
        super().__init__()
        anchos = [F, *l_h]
        self.fs = list(l_a)
        self.Ws = torch.nn.ParameterList()
        self.bs = torch.nn.ParameterList()
        for ent, sal in zip(anchos[:-1], anchos[1:]):
            self.Ws.append(torch.nn.Parameter(torch.randn(ent, sal) * (2.0 / ent) ** 0.5))
            self.bs.append(torch.nn.Parameter(torch.zeros(sal)))
        self.U = torch.nn.Parameter(torch.randn(anchos[-1], C) / anchos[-1] ** 0.5)
        self.c = torch.nn.Parameter(torch.zeros(C))
        iniciales = [None] * len(self.fs) if l_a_params is None else list(l_a_params)
        self.nombres_param = []
        for k, f in enumerate(self.fs):
            firma = [n for n in inspect.signature(f).parameters if n != "gradient"]
            if len(firma) > 1:  # f(T, <parámetro>, gradient=False)
                nombre = f"param_capa_{k}"
                valor = 1.0 if iniciales[k] is None else float(iniciales[k])
                self.register_parameter(nombre, torch.nn.Parameter(torch.tensor(valor)))
                self.nombres_param.append(nombre)
            else:
                self.nombres_param.append(None)
        self._guardado = None

    def _param(self, k):
        return None if self.nombres_param[k] is None else getattr(self, self.nombres_param[k])

    def load_weights(self, Ws, U, bs, c):
        self.Ws = torch.nn.ParameterList([torch.nn.Parameter(W) for W in Ws])
        self.bs = torch.nn.ParameterList([torch.nn.Parameter(b) for b in bs])
        self.U = torch.nn.Parameter(U)
        self.c = torch.nn.Parameter(c)
        for k in range(len(self.fs)):
            p = self._param(k)
            if p is not None:
                p.data = p.data.to(U.dtype)

    def resumen(self):
        for nombre, p in self.named_parameters():
            print(f"{nombre:>14}: {tuple(p.shape)}")
        print(f"{sum(p.numel() for p in self.parameters())} parámetros en total")

    def _propagar(self, x):
        hs, us = [x], []
        for k, f in enumerate(self.fs):
            u = torch.einsum("bi,ij->bj", hs[-1], self.Ws[k]) + self.bs[k]
            p = self._param(k)
            us.append(u)
            hs.append(f(u) if p is None else f(u, p))
        return hs, us, torch.softmax(torch.einsum("bi,ij->bj", hs[-1], self.U) + self.c, dim=1)

    def forward(self, x):
        hs, us, y_pred = self._propagar(x)
        self._guardado = (x.detach().clone(), [h.detach() for h in hs], [u.detach() for u in us])
        return y_pred

    def backward(self, x, y, y_pred):
        with torch.no_grad():
            g = self._guardado
            if g is not None and g[0].shape == x.shape and torch.equal(g[0], x.detach()):
                hs, us = g[1], g[2]
            else:
                hs, us, _ = self._propagar(x.detach())
            d = torch.float64
            delta = (y_pred.detach().to(d) - y.to(d)) / x.shape[0]
            self.U.grad = torch.einsum("bi,bj->ij", hs[-1].to(d), delta).to(self.U.dtype)
            self.c.grad = delta.sum(dim=0).to(self.c.dtype)
            dh = torch.einsum("bj,ij->bi", delta, self.U.detach().to(d))
            for k in range(len(self.fs) - 1, -1, -1):
                f, p = self.fs[k], self._param(k)
                if p is None:
                    fp = f(us[k], gradient=True).to(d)
                else:
                    d_du, d_dp = f(us[k], p.detach(), gradient=True)
                    fp = d_du.to(d)
                    p.grad = torch.sum(dh * d_dp.to(d)).to(p.dtype)
                delta = dh * fp
                self.Ws[k].grad = torch.einsum("bi,bj->ij", hs[k].to(d), delta).to(self.Ws[k].dtype)
                self.bs[k].grad = delta.sum(dim=0).to(self.bs[k].dtype)
                dh = torch.einsum("bj,ij->bi", delta, self.Ws[k].detach().to(d))
'''

CHEQUEO = r'''
def chequeo_gradiente(red, x, y, epsilon=1e-6):
    y_pred = red.forward(x)
    red.backward(x, y, y_pred)
    G = torch.cat([p.grad.detach().reshape(-1).double() for p in red.parameters()])
    aprox = []
    with torch.no_grad():
        for p in red.parameters():
            plano = p.data.view(-1)
            for i in range(plano.numel()):
                guardado = plano[i].item()
                plano[i] = guardado + epsilon
                mas = CELoss(red.forward(x), y).item()
                plano[i] = guardado - epsilon
                menos = CELoss(red.forward(x), y).item()
                plano[i] = guardado
                aprox.append((mas - menos) / (2 * epsilon))
    A = torch.tensor(aprox, dtype=torch.float64)
    return float(((G - A) ** 2).sum() / ((G ** 2).sum() + (A ** 2).sum()))
'''

SGD_CELL = r'''
class SGD:
    def __init__(self, parameters, lr):
        self.grupo = [p for p in parameters]
        self.lr = lr

    def step(self):
        for p in self.grupo:
            if p.grad is None:
                continue
            p.data.add_(p.grad.data, alpha=-self.lr)
'''

DATASET = r'''
class RandomDataset(torch.utils.data.Dataset):
    def __init__(self, N, F, C):
        super().__init__()
        self.X = torch.randn(N, F, dtype=torch.float32)
        etiquetas = torch.randint(low=0, high=C, size=(N,))
        self.Y = torch.eye(C, dtype=torch.float32)[etiquetas]

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, i):
        return self.X[i], self.Y[i]
'''

ENTRENAR = r'''
import math
import time


def entrenar_FFNN(red, dataset, optimizador, epochs=1, batch_size=1, device='cpu', verbose=True):
    red.to(device)
    N = len(dataset)
    por_epoca = math.ceil(N / batch_size)
    historia = []
    inicio = time.time()
    for epoca in range(epochs):
        orden = torch.randperm(N).tolist()
        for it in range(por_epoca):
            indices = orden[it * batch_size:(it + 1) * batch_size]
            pares = [dataset[i] for i in indices]
            x = torch.stack([a for a, _ in pares]).to(device)
            y = torch.stack([b for _, b in pares]).to(device)
            y_pred = red.forward(x)
            perdida = CELoss(y_pred, y)
            red.backward(x, y, y_pred)
            optimizador.step()
            historia.append(perdida.item())
            if verbose and ((it + 1) % max(1, por_epoca // 4) == 0 or it + 1 == por_epoca):
                print(f"\rÉpoca {epoca + 1}/{epochs}  iteración {it + 1}/{por_epoca}  "
                      f"pérdida {historia[-1]:.4f}  ({time.time() - inicio:.1f} s)", end="")
        if verbose:
            print()
    return historia
'''

CELLS = {
    "derivadas_codigo": DERIVADAS,
    "celoss": CELOSS,
    "categorical_celoss": CATEGORICAL,
    "dL_duLm1": DL_DULM1,
    "ultima_capa": ULTIMA_CAPA,
    "capas_escondidas": CAPAS,
    "ffnn_backward": FFNN_CELL,
    "chequeo_gradiente": CHEQUEO,
    "sgd": SGD_CELL,
    "random_dataset": DATASET,
    "entrenar": ENTRENAR,
}


# Further correct ways to write single cells, each graded on its own (full marks expected).
VARIANTS = [
    {
        "name": "ultima_capa_tuple_assignment",
        "description": "Asigna los tres gradientes en una sola línea con una tupla.",
        "cells": {"ultima_capa": "dL_dU, dL_dc, dL_dhL = hL.T @ dL_duLm1, dL_duLm1.sum(0), dL_duLm1 @ U.T\n"},
    },
    {
        "name": "ultima_capa_from_y_pred",
        "description": "Calcula los gradientes de la última capa directamente desde y_pred e y.",
        "cells": {"ultima_capa": (
            "B = y.shape[0]\n"
            "delta = (y_pred - y) / B\n"
            "dL_dU = hL.t().mm(delta)\n"
            "dL_dc = delta.sum(dim=0)\n"
            "dL_dhL = delta.mm(U.t())\n")},
    },
    {
        "name": "ultima_capa_recomputes_dL_duLm1",
        "description": "La celda de la última capa vuelve a calcular dL_duLm1 antes de usarlo.",
        "cells": {"ultima_capa": (
            "dL_duLm1 = (y_pred - y) / y.shape[0]\n"
            "dL_dU = hL.T @ dL_duLm1\n"
            "dL_dc = dL_duLm1.sum(0)\n"
            "dL_dhL = dL_duLm1 @ U.T\n")},
    },
    {
        "name": "dL_duLm1_in_place_division",
        "description": "Calcula dL_duLm1 en dos pasos, dividiendo en su lugar.",
        "cells": {"dL_duLm1": "dL_duLm1 = y_pred - y\ndL_duLm1 /= y_pred.size(0)\nprint(dL_duLm1)\n"},
    },
    {
        "name": "dL_duLm1_annotated",
        "description": "Usa una anotación de tipo al asignar dL_duLm1.",
        "cells": {"dL_duLm1": "dL_duLm1: torch.Tensor = (y_pred - y) / y.shape[0]\n"},
    },
    {
        "name": "capas_escondidas_signature_dispatch",
        "description": "Distingue las activaciones con parámetro por su firma (inspect.signature), no por p.",
        "cells": {"capas_escondidas": (
            "import inspect\n"
            "def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):\n"
            "    u = h_prev @ W + b\n"
            "    if len(inspect.signature(f).parameters) == 3:\n"
            "        d_du, _ = f(u, 1.0 if p is None else p, gradient=True)\n"
            "    else:\n"
            "        d_du = f(u, gradient=True)\n"
            "    dL_du = dL_dh * d_du\n"
            "    return h_prev.T @ dL_du, dL_du.sum(0), dL_du @ W.T\n")},
    },
    {
        "name": "sgd_no_grad_in_place",
        "description": "SGD con torch.no_grad() y resta en su lugar.",
        "cells": {"sgd": (
            "class SGD:\n"
            "    def __init__(self, parameters, lr):\n"
            "        self.params = list(parameters)\n"
            "        self.lr = lr\n"
            "    def step(self):\n"
            "        with torch.no_grad():\n"
            "            for p in self.params:\n"
            "                if p.grad is not None:\n"
            "                    p -= self.lr * p.grad\n")},
    },
    {
        "name": "entrenar_dataloader",
        "description": "Entrena con DataLoader y muestra el progreso con print.",
        "cells": {"entrenar": (
            "def entrenar_FFNN(red, dataset, optimizador, epochs=1, batch_size=1, device='cpu', verbose=True):\n"
            "    red = red.to(device)\n"
            "    cargador = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)\n"
            "    perdidas = []\n"
            "    for e in range(epochs):\n"
            "        for x, y in cargador:\n"
            "            x, y = x.to(device), y.to(device)\n"
            "            y_pred = red(x)\n"
            "            red.backward(x, y, y_pred)\n"
            "            optimizador.step()\n"
            "            perdidas.append(CELoss(y_pred, y).item())\n"
            "        if verbose:\n"
            "            print(f'época {e + 1}: pérdida {perdidas[-1]:.4f}')\n"
            "    return perdidas\n")},
    },
    {
        "name": "ffnn_other_attribute_names",
        "description": "La red guarda sus pesos con otros nombres (pesos, sesgos) en vez de Ws, bs.",
        "cells": {"ffnn_backward": FFNN_CELL.replace("self.Ws", "self.pesos").replace("self.bs", "self.sesgos")},
    },
    {
        "name": "ffnn_without_3b",
        "description": "backward no llena el gradiente de beta/alpha (la parte 3b es opcional).",
        "cells": {"ffnn_backward": FFNN_CELL.replace(
            "                    p.grad = torch.sum(dh * d_dp.to(d)).to(p.dtype)\n", "")},
    },
    {
        "name": "ffnn_backward_recomputes_forward",
        "description": "backward recalcula la pasada hacia adelante y no usa el y_pred recibido.",
        "cells": {"ffnn_backward": FFNN_CELL.replace(
            "            delta = (y_pred.detach().to(d) - y.to(d)) / x.shape[0]",
            "            hs, us, y_nuevo = self._propagar(x.detach())\n"
            "            delta = (y_nuevo.to(d) - y.to(d)) / x.shape[0]")},
    },
    {
        "name": "dataset_seeded_per_item",
        "description": "RandomDataset genera cada ejemplo al leerlo, con una semilla propia por índice.",
        "cells": {"random_dataset": (
            "class RandomDataset(torch.utils.data.Dataset):\n"
            "    def __init__(self, N, F, C):\n"
            "        self.N, self.F, self.C = N, F, C\n"
            "        self.semilla = int(torch.randint(0, 2**31 - 1, (1,)))\n"
            "    def __len__(self):\n"
            "        return self.N\n"
            "    def __getitem__(self, i):\n"
            "        g = torch.Generator().manual_seed(self.semilla + i)\n"
            "        x = torch.randn(self.F, generator=g)\n"
            "        y = torch.zeros(self.C)\n"
            "        y[torch.randint(0, self.C, (1,), generator=g)] = 1.0\n"
            "        return x, y\n")},
    },
    {
        "name": "entrenar_tqdm_stderr",
        "description": "Muestra el progreso con tqdm (en la consola, por stderr).",
        "cells": {"entrenar": (
            "from tqdm import tqdm\n"
            "def entrenar_FFNN(red, dataset, optimizador, epochs=1, batch_size=1, device='cpu', verbose=True):\n"
            "    red.to(device)\n"
            "    cargador = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)\n"
            "    perdidas = []\n"
            "    for e in range(epochs):\n"
            "        for x, y in tqdm(cargador, disable=not verbose):\n"
            "            x, y = x.to(device), y.to(device)\n"
            "            y_pred = red.forward(x)\n"
            "            red.backward(x, y, y_pred)\n"
            "            optimizador.step()\n"
            "            perdidas.append(float(CELoss(y_pred, y)))\n"
            "    return perdidas\n")},
    },
    {
        "name": "relu_grad_bool",
        "description": "La derivada de relu se devuelve como tensor booleano (T > 0), sin convertir.",
        "cells": {"derivadas_codigo": DERIVADAS.replace(
            "        return torch.where(T > 0, torch.ones_like(T), torch.zeros_like(T))",
            "        return T > 0")},
    },
]
