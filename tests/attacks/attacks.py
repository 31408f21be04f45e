"""A library of hostile Tarea 2 submissions: what a student who read this whole repository would try.

``ATTACKS`` is a list of records, each a dict with

* ``name``: ascii identifier (pytest id, student id suffix, and the ``PWNED_<name>`` marker of
  every file or process the attack plants);
* ``description``: one Spanish line saying what the attack tries;
* ``cells``: {answer grade_id: full cell source}; every answer cell not listed keeps its release
  stub, so the honest part of each attack earns 0 points;
* ``json`` (optional): a function that edits the submitted notebook's raw JSON (a dict) after
  the cells are filled in, for attacks that live in the file rather than in the code.

Each attack would have worked against a naive nbgrader setup (student code and hidden tests in
one kernel, the kernel running with the grader's files and permissions).  Against the course's
trusted grading (student code in a sandbox, verdicts outside it) every attack must earn 0, leave
the course and the repository untouched, leave no process behind, and change nobody else's grade:
``tests/test_attacks.py`` grades them all through ``pipeline.grade``.

Attack code is plain student code: it runs inside the sandbox, so it cannot import anything from
this repository; whatever it needs is in the cell's source.
"""
import base64
import json

from tarea2_grader.examples import SOURCE
from tarea2_grader.harness import stub_sources

STUBS = stub_sources(SOURCE)
MARKER = "PWNED_"


def antes(grade_id, codigo):
    """The release stub of ``grade_id`` with ``codigo`` in front (runs before the stub's raise)."""
    return codigo.strip("\n") + "\n\n\n" + STUBS[grade_id]


def despues(grade_id, codigo):
    """The release stub of ``grade_id`` followed by ``codigo`` (stubs that only define functions)."""
    return STUBS[grade_id].rstrip("\n") + "\n\n\n" + codigo.strip("\n") + "\n"


# --------------------------------------------------------------------------- shared snippets (student code)

# Finds the course folder the way a student who read the repository would: walking up from the
# working directory and from the usual homes, and through every process's cwd.
BUSCAR_CURSO = r'''
import os, glob

def _candidatas():
    vistas = set()
    raices = [os.getcwd(), "/work", "/work/main", "/root", "/home", "/tmp", "/srv", "/opt", "/"]
    raices += [v for v in os.environ.values() if v.startswith("/")]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                raices.append(os.readlink("/proc/%s/cwd" % pid))
            except OSError:
                pass
    for r in raices:
        d = os.path.abspath(r)
        while d not in vistas:
            vistas.add(d)
            yield d
            if d == "/":
                break
            d = os.path.dirname(d)
        for patron in ("*", "*/*", "*/*/*"):
            for sub in glob.glob(os.path.join(r, patron)):
                if os.path.isdir(sub) and sub not in vistas:
                    vistas.add(sub)
                    yield sub

def buscar_curso(*nombres):
    """Folders that contain any of ``nombres`` (relative paths)."""
    halladas = []
    for d in _candidatas():
        for n in nombres:
            if os.path.exists(os.path.join(d, n)):
                halladas.append((d, n))
    return halladas
'''


def _b64(texto):
    return base64.b64encode(texto.encode()).decode()


# --------------------------------------------------------------------------- the attacks

ATTACKS = []


def ataque(name, description, cells, json_edit=None):
    record = {"name": name, "description": description, "cells": cells}
    if json_edit is not None:
        record["json"] = json_edit
    ATTACKS.append(record)


# 1. The grader's own modules: rebind the verdict in sys.modules (works when tests share the kernel).
ataque(
    "parchar_hidden", "Importa tarea2_grader.hidden y reemplaza evaluar, veredicto y PRUEBAS para que todo pase.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import sys, types

def _todo_ok(*args, **kwargs):
    print("Tests ocultos: ok")
    return None

for _ruta in ("/work/main", "/work", "/root", "..", "../.."):
    sys.path.append(_ruta)
try:
    from tarea2_grader import hidden as _h
except Exception as _e:
    print("no pude importar hidden:", type(_e).__name__)
    _h = types.ModuleType("tarea2_grader.hidden")
    sys.modules["tarea2_grader"] = types.ModuleType("tarea2_grader")
    sys.modules["tarea2_grader.hidden"] = _h
    sys.modules["tarea2_grader"].hidden = _h
_h.evaluar = _todo_ok
_h.veredicto = lambda *a, **k: None
_h.PRUEBAS = {}
for _m in list(sys.modules.values()):
    for _n in ("evaluar", "veredicto", "comparar", "exigir", "juzgar"):
        if hasattr(_m, _n):
            try:
                setattr(_m, _n, _todo_ok)
            except Exception:
                pass
evaluar = _todo_ok
hidden = _h
''')})


# 2. Autograd with a saved reference to the real engine: the probe's trap replaces the class
# attribute, not the object a student kept (and the spy keeps the real engine in `_engine`).
ataque(
    "autograd_motor_guardado",
    "Calcula las derivadas con el motor de autograd guardado antes de que el test lo intercepte.",
    {"derivadas_codigo": r'''
import torch
from torch.autograd import variable as _variable

_MOTOR = getattr(_variable.Variable, "_execution" + "_engine")


def _motor():
    actual = getattr(_variable.Variable, "_execution" + "_engine")
    return getattr(actual, "_engine", _MOTOR)


def _derivadas(fn, T, p=None):
    X = T.detach().clone().requires_grad_(True)
    entradas = [X]
    P = None
    if p is not None:
        P = (torch.as_tensor(p, dtype=T.dtype) * torch.ones_like(T)).detach().requires_grad_(True)
        entradas.append(P)
    with torch.enable_grad():
        y = (fn(X) if P is None else fn(X, P)).sum()
        g = _motor().run_backward((y,), (torch.ones_like(y),), False, False, tuple(entradas), True, False)
    return g[0] if P is None else (g[0], g[1])


def sig(T, gradient=False):
    if gradient:
        return _derivadas(torch.sigmoid, T)
    return torch.sigmoid(T)


def tanh(T, gradient=False):
    if gradient:
        return _derivadas(torch.tanh, T)
    return torch.tanh(T)


def relu(T, gradient=False):
    if gradient:
        return _derivadas(torch.relu, T)
    return torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    if gradient:
        return _derivadas(lambda X, B=torch.as_tensor(beta, dtype=T.dtype): X * torch.sigmoid(B * X), T, beta)
    return T * torch.sigmoid(beta * T)


def celu(T, alpha=1.0, gradient=False):
    if gradient:
        return _derivadas(lambda X, A=torch.as_tensor(alpha, dtype=T.dtype):
                          torch.where(X > 0, X, A * torch.expm1(X / A)), T, alpha)
    return torch.clamp(T, min=0) + torch.clamp(alpha * (torch.exp(T / alpha) - 1), max=0)
'''})


# 3. The probe lends the reference network to backward's test: find it up the call stack.
ataque(
    "red_prestada_en_la_pila",
    "FFNN.backward busca en la pila de llamadas la red de referencia que el test presta y copia sus gradientes.",
    {"ffnn_backward": despues("ffnn_backward", r'''
import sys


def _prestado(nombre):
    f = sys._getframe(1)
    while f is not None:
        for v in list(f.f_locals.values()):
            if isinstance(v, dict) and nombre in v:
                return v[nombre]
        f = f.f_back
    raise NotImplementedError()


def _backward_prestado(self, x, y, y_pred):
    Red = _prestado("RedDeReferencia")
    ref = Red([W.detach() for W in self.Ws], [b.detach() for b in self.bs], self.U.detach(), self.c.detach(), [])
    fs = []
    for k, f in enumerate(self.fs):
        p = self.param_de_capa(k)
        if p is None:
            fs.append(f)
        else:
            p = p.detach()
            fs.append(lambda T, gradient=False, f=f, p=p: f(T, p, gradient=True)[0] if gradient else f(T, p))
    ref.fs = fs
    ref.backward(x, y, y_pred.detach())
    for mio, suyo in zip(list(self.Ws) + list(self.bs) + [self.U, self.c],
                         list(ref.Ws) + list(ref.bs) + [ref.U, ref.c]):
        mio.grad = suyo.grad


FFNN.backward = _backward_prestado
''')})


# 4. What one probe saw, the next one reads: keep the lent helpers in the working folder.
ataque(
    "ayudas_guardadas_en_disco",
    "grad_capa_escondida guarda en disco el código de ayuda que le presta el test y SGD lo usa después.",
    {"capas_escondidas": r'''
import os
import sys

_CACHE = os.path.join(os.getcwd(), ".cache_PWNED_ayudas_guardadas_en_disco.py")


def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    f_ = sys._getframe(1)
    while f_ is not None:
        for v in list(f_.f_locals.values()):
            if isinstance(v, dict) and isinstance(v.get("helpers_source"), str) and v["helpers_source"]:
                with open(_CACHE, "w") as fh:
                    fh.write(v["helpers_source"])
        f_ = f_.f_back
    raise NotImplementedError()
''', "sgd": r'''
import os

_CACHE = os.path.join(os.getcwd(), ".cache_PWNED_ayudas_guardadas_en_disco.py")


class SGD:
    def __init__(self, parameters, lr):
        ns = {}
        with open(_CACHE) as fh:
            exec(fh.read(), ns)
        self._opt = ns["SGDReferencia"](parameters, lr)

    def step(self):
        self._opt.step()
'''})
