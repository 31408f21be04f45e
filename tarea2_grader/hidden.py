"""Hidden tests of Tarea 2, run inside the student's kernel at autograde time.

Each public ``test_*`` function takes the notebook's namespace (``globals()`` of
the test cell), checks the student's answer on fresh random inputs against
``torch.autograd`` in float64, and raises :class:`Incorrecto` with a Spanish
message naming the wrong quantity and its maximum relative error. Messages
never print hidden inputs, and tracebacks stop at the public function.
"""
import contextlib
import io
import math
import re
import warnings

import torch

from tarea2_grader import refs
from tarea2_grader.selfcheck import error_relativo

TOL64 = 1e-4   # relative to max|reference|: accepts float32 arithmetic inside
TOL32 = 2e-3   # inputs in float32
DTYPE = torch.float64


class Incorrecto(AssertionError):
    """A hidden test failed; the message is meant for the student.

    IPython shows ``_render_traceback_()`` instead of a traceback, so the
    notebook and its feedback show the Spanish message alone: no hidden-test
    lines, no file paths of the grader.
    """

    def _render_traceback_(self):
        return [f"\x1b[0;31mIncorrecto\x1b[0m: {self}"]


class UsoDeAutograd(Exception):
    """Raised when student gradient code calls torch's autograd."""


# --------------------------------------------------------------------------- running student code

@contextlib.contextmanager
def _silencio():
    """Swallow stdout/stderr and warnings: nbgrader scores any stderr as a failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield


class _EngineSpy:
    """Stands in for torch's autograd engine and records any use."""

    def __init__(self, engine, log):
        self._engine, self._log = engine, log

    def run_backward(self, *args, **kwargs):
        self._log.append("el motor de autograd (backward / autograd.grad)")
        raise UsoDeAutograd("autograd")

    def __getattr__(self, name):
        return getattr(self._engine, name)


def _autograd_entry_points():
    """(owner, attribute, label) of every public way to ask torch for a gradient."""
    import torch.autograd.forward_ad as fwd
    import torch.autograd.functional as fun
    import torch.func as tfunc
    points = [(torch.Tensor, "backward", "Tensor.backward"),
              (torch.autograd, "backward", "torch.autograd.backward"),
              (torch.autograd, "grad", "torch.autograd.grad"),
              (fwd, "make_dual", "torch.autograd.forward_ad")]
    points += [(tfunc, n, f"torch.func.{n}") for n in
               ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize")
               if hasattr(tfunc, n)]
    points += [(fun, n, f"torch.autograd.functional.{n}") for n in
               ("jacobian", "hessian", "vjp", "jvp", "vhp", "hvp")]
    return points


@contextlib.contextmanager
def _sin_autograd(log):
    """Make every autograd entry point record its use in ``log`` and fail."""
    saved = []

    def trap(label):
        def f(*args, **kwargs):
            log.append(label)
            raise UsoDeAutograd(label)
        return f

    for owner, name, label in _autograd_entry_points():
        saved.append((owner, name, owner.__dict__.get(name, getattr(owner, name))))
        setattr(owner, name, trap(label))
    var = torch.autograd.variable.Variable
    engine = var.__dict__["_execution_engine"]
    var._execution_engine = _EngineSpy(engine, log)
    try:
        yield
    finally:
        var._execution_engine = engine
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def _llamar(nombre, fn, *args, **kwargs):
    """Call student code silently, with autograd banned; turn any failure into a Spanish message."""
    log = []
    try:
        with _silencio(), _sin_autograd(log):
            out = fn(*args, **kwargs)
    except UsoDeAutograd:
        out = None
    except Exception as e:  # the student's code raised: report it, never our inputs
        if not log:
            raise Incorrecto(f"{nombre} lanzó {type(e).__name__}: {str(e)[:200]}") from None
    if log:
        raise Incorrecto(f"{nombre} usa autograd ({log[0]}): en esta tarea los gradientes se calculan "
                         "a mano, así que esta parte vale 0 puntos.") from None
    return out


def _buscar(ns, nombre, que="la función"):
    if nombre not in ns:
        raise Incorrecto(f"No encontré {que} `{nombre}`: ¿ejecutaste su celda y mantuviste el nombre?")
    return ns[nombre]


@contextlib.contextmanager
def _activaciones_de_referencia(ns):
    """Put the reference activations and CELoss in the notebook's namespace while a test runs.

    This isolates parts: a wrong derivative in Part 1 does not cost points in
    Parts 2 and 3, whether the student's code calls ``f(..., gradient=True)``
    or compares ``f is relu``.
    """
    saved = {n: ns[n] for n in refs.REFERENCIAS if n in ns}
    ns.update(refs.REFERENCIAS)
    try:
        yield
    finally:
        for n in refs.REFERENCIAS:
            ns.pop(n, None)
        ns.update(saved)


# --------------------------------------------------------------------------- comparisons

def _comparar(nombre, obtenido, esperado, tol):
    """Return None if ``obtenido`` matches, else a Spanish description of the difference."""
    if not isinstance(obtenido, torch.Tensor):
        return f"{nombre}: se esperaba un tensor y llegó {type(obtenido).__name__}"
    if tuple(obtenido.shape) != tuple(esperado.shape):
        return f"{nombre}: forma {tuple(obtenido.shape)}, se esperaba {tuple(esperado.shape)}"
    obt = obtenido.detach().to("cpu", torch.float64)
    esp = esperado.detach().to("cpu", torch.float64)
    fin_o, fin_e = torch.isfinite(obt), torch.isfinite(esp)
    if not torch.equal(fin_o, fin_e):
        return f"{nombre}: tiene nan o inf donde no corresponde"
    if not (obt[~fin_o].nan_to_num(1.0) == esp[~fin_e].nan_to_num(1.0)).all():
        return f"{nombre}: los valores infinitos no coinciden"
    rel = error_relativo(obt[fin_o], esp[fin_e])
    if not rel <= tol:  # also catches nan
        return f"{nombre}: error relativo máximo {rel:.1e} (tolerancia {tol:.0e})"
    return None


def _exigir(problemas, que):
    problemas = list(dict.fromkeys(p.replace("torch.float", "float") for p in problemas if p))
    if problemas:
        extra = f" (y {len(problemas) - 3} más)" if len(problemas) > 3 else ""
        raise Incorrecto(f"{que}:\n  - " + "\n  - ".join(problemas[:3]) + extra)


def _entorno_intacto():
    """Canary: the comparisons still tell equal from different (student code may patch torch)."""
    a = torch.tensor([1.0, -3.0], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    try:
        sano = (error_relativo(a, b) == 4.0 and _comparar("a", a, b, 1e-3) is not None
                and _comparar("b", b, b.clone(), 1e-3) is None and torch.equal(a, a.clone())
                and not torch.equal(a, b))
    except Exception:
        sano = False
    if not sano:
        raise Incorrecto("El código entregado modificó funciones de torch que usa la corrección: "
                         "esta parte no se puede calificar automáticamente (se revisará a mano).")


def _publico(fn):
    """Run a test; re-raise its failure from here so the traceback shows no test code."""
    def wrapper(ns):
        try:
            _entorno_intacto()
            fn(ns)
        except Incorrecto as e:
            mensaje = str(e)
        else:
            print(f"Tests ocultos de {fn.__name__[5:]}: ok")
            return
        raise Incorrecto(mensaje) from None
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _gen(semilla):
    g = torch.Generator().manual_seed(semilla)
    return g


def _randn(g, *shape, dtype=DTYPE):
    return torch.randn(*shape, generator=g, dtype=dtype)


def _entero(g, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=g).item())


# --------------------------------------------------------------------------- Part 1a

def _probar_activacion(ns, nombre, semillas):
    f = _buscar(ns, nombre)
    ref = refs.ACTIVACIONES[nombre]
    problemas = []
    for s in semillas:
        g = _gen(s)
        forma = (_entero(g, 2, 6), _entero(g, 2, 7))
        for dtype, tol in ((torch.float64, TOL64), (torch.float32, TOL32)):
            T = _randn(g, *forma, dtype=dtype) * 2.5
            T[0, 0] = 0.0  # relu'(0) = 0; swish and celu are smooth there
            if ref.param is None:
                got = _llamar(f"{nombre}(T, gradient=True)", f, T.clone(), gradient=True)
                exp = refs.derivada_autograd(nombre, T)
                problemas.append(_comparar(f"{nombre}'(T) en {dtype}", got, exp[0], tol))
                continue
            for p in (0.5 + 2 * torch.rand(1, generator=g).item(), torch.tensor(0.3 + torch.rand(1, generator=g).item())):
                kw = {ref.param: p, "gradient": True}
                got = _llamar(f"{nombre}(T, {ref.param}, gradient=True)", f, T.clone(), **kw)
                exp = refs.derivada_autograd(nombre, T, p)
                if not (isinstance(got, (tuple, list)) and len(got) == 2):
                    problemas.append(f"{nombre}(T, {ref.param}, gradient=True) debe devolver el par "
                                     f"(d/dT, d/d{ref.param}); llegó {type(got).__name__}")
                    break
                tipo = "tensor" if isinstance(p, torch.Tensor) else "float"
                problemas.append(_comparar(f"d{nombre}/dT ({ref.param} {tipo}, {dtype})", got[0], exp[0], tol))
                problemas.append(_comparar(f"d{nombre}/d{ref.param} ({ref.param} {tipo}, {dtype})", got[1], exp[1], tol))
        # gradient=False must still be the activation itself
        T = _randn(g, 3, 4)
        got = _llamar(f"{nombre}(T)", f, T.clone())
        problemas.append(_comparar(f"{nombre}(T) (gradient=False)", got, ref(T), TOL64))
    _exigir(problemas, f"La derivada de {nombre} no coincide con torch.autograd")


@_publico
def test_derivadas_basicas(ns):
    """sig, tanh and relu derivatives (relu'(0) = 0) against autograd of torch's own functions."""
    for nombre in ("sig", "tanh", "relu"):
        _probar_activacion(ns, nombre, semillas=(101, 102))


@_publico
def test_derivadas_swish(ns):
    """swish derivatives w.r.t. T and beta; beta a float or a 0-dim tensor."""
    _probar_activacion(ns, "swish", semillas=(201, 202))


@_publico
def test_derivadas_celu(ns):
    """celu derivatives w.r.t. T and alpha; alpha a float or a 0-dim tensor."""
    _probar_activacion(ns, "celu", semillas=(301, 302))


# --------------------------------------------------------------------------- Part 1b

@_publico
def test_celoss(ns):
    """CELoss: value, 0-dim, mean over the batch, ``estable`` and ``epsilon`` honoured."""
    CELoss = _buscar(ns, "CELoss")
    problemas = []
    g = _gen(401)
    for dtype, tol in ((torch.float64, TOL64), (torch.float32, TOL32)):
        B, C = _entero(g, 3, 9), _entero(g, 3, 6)
        Q = torch.softmax(_randn(g, B, C, dtype=dtype) * 2, dim=1)
        P = torch.softmax(_randn(g, B, C, dtype=dtype), dim=1)  # a distribution, not only one-hot
        Y = torch.eye(C, dtype=dtype)[torch.randint(0, C, (B,), generator=g)]
        for nombre, PP in (("P distribución", P), ("P one-hot", Y)):
            got = _llamar("CELoss(Q, P)", CELoss, Q.clone(), PP.clone())
            if isinstance(got, torch.Tensor) and got.dim() != 0:
                problemas.append(f"CELoss debe devolver un tensor de 0 dimensiones; llegó forma {tuple(got.shape)}")
                continue
            problemas.append(_comparar(f"CELoss ({nombre}, {dtype})", got, refs.celoss(Q, PP), tol))
        # zeros in Q: estable=True clamps at epsilon
        Qz = Q.clone()
        Qz[0, :] = 0.0
        Qz[0, 0] = 1.0
        Yz = Y.clone()
        Yz[0] = 0
        Yz[0, 1] = 1.0
        got = _llamar("CELoss(Q, P, estable=True) con ceros en Q", CELoss, Qz.clone(), Yz.clone())
        problemas.append(_comparar(f"CELoss con ceros en Q y estable=True ({dtype})", got, refs.celoss(Qz, Yz, True, 1e-8), tol))
        got = _llamar("CELoss(Q, P, estable=True, epsilon=1e-3)", CELoss, Qz.clone(), Yz.clone(), estable=True, epsilon=1e-3)
        problemas.append(_comparar(f"CELoss con epsilon=1e-3 ({dtype})", got, refs.celoss(Qz, Yz, True, 1e-3), tol))
    # estable=False must not clamp: tiny but positive probabilities give large losses
    Qt = torch.softmax(_randn(g, 5, 4), dim=1)
    Qt[:, 2] = 1e-12
    Yt = torch.eye(4, dtype=DTYPE)[[2, 2, 0, 1, 2]]
    got = _llamar("CELoss(Q, P, estable=False)", CELoss, Qt.clone(), Yt.clone(), estable=False)
    problemas.append(_comparar("CELoss con estable=False y Q muy pequeño", got, refs.celoss(Qt, Yt, False), TOL64))
    _exigir(problemas, "CELoss no coincide con la entropía cruzada esperada")


# --------------------------------------------------------------------------- Parts 2a and 2b: re-run the answer cell

_MARCA = "tarea2_grader"


def _asigna(src, variable):
    """Whether ``src`` assigns ``variable`` at top level (plain, tuple, annotated or augmented)."""
    import ast
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        arbol = ast.parse(TransformerManager().transform_cell(src))
    except SyntaxError:
        return re.search(rf"\b{re.escape(variable)}\b\s*=[^=]", src) is not None
    for nodo in ast.walk(arbol):
        objetivos = (nodo.targets if isinstance(nodo, ast.Assign) else
                     [nodo.target] if isinstance(nodo, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) else [])
        for objetivo in objetivos:
            if any(isinstance(n, ast.Name) and n.id == variable for n in ast.walk(objetivo)):
                return True
    return False


def _celda_que_asigna(ns, variable):
    """Source of the last executed cell that assigns ``variable`` (IPython's input history)."""
    historia = ns.get("In") or ns.get("_ih") or []
    for src in reversed(list(historia)):
        if src and _MARCA not in src and variable in src and _asigna(src, variable):
            return src
    raise Incorrecto(f"No encontré la celda que calcula `{variable}`: ¿la ejecutaste antes de este test?")


def _reejecutar(ns, src, nuevos, nombres):
    """Run the student's cell again in a copy of the namespace with new inputs; return the named outputs."""
    from IPython.core.inputtransformer2 import TransformerManager
    codigo = TransformerManager().transform_cell(src)
    ns2 = dict(ns)
    for n in nombres:
        ns2.pop(n, None)
    ns2.update(nuevos)
    ns2.setdefault("get_ipython", lambda: None)
    _llamar("tu celda", exec, compile(codigo, "<celda del estudiante>", "exec"), ns2)
    faltan = [n for n in nombres if n not in ns2]
    if faltan:
        raise Incorrecto(f"Tu celda no define {', '.join(faltan)}")
    return [ns2[n] for n in nombres]


def _capa_de_salida(g, B, d, C):
    """Random hL, U, c, one-hot y and y_pred = softmax(hL U + c), float64."""
    hL = _randn(g, B, d)
    U = _randn(g, d, C)
    c = _randn(g, C)
    y = torch.eye(C, dtype=DTYPE)[torch.randint(0, C, (B,), generator=g)]
    y_pred = torch.softmax(hL @ U + c, dim=1)
    return hL, U, c, y, y_pred


@_publico
def test_dL_duLm1(ns):
    """Re-run the dL_duLm1 cell on new y, y_pred of other shapes; compare with autograd."""
    src = _celda_que_asigna(ns, "dL_duLm1")
    problemas = []
    for s in (501, 502, 503):
        g = _gen(s)
        B, d, C = _entero(g, 2, 9), _entero(g, 2, 5), _entero(g, 2, 6)
        hL, U, c, y, y_pred = _capa_de_salida(g, B, d, C)
        (got,) = _reejecutar(ns, src, {"y": y, "y_pred": y_pred}, ["dL_duLm1"])
        exp = refs.grad_ultima_capa(hL, U, c, y)["u"]
        problemas.append(_comparar(f"dL_duLm1 (B={B}, C={C})", got, exp, TOL64))
    _exigir(problemas, "dL_duLm1 no coincide con torch.autograd en entradas nuevas")


@_publico
def test_ultima_capa(ns):
    """Re-run the ultima_capa cell on a new last layer; compare dL_dU, dL_dc, dL_dhL with autograd."""
    src = _celda_que_asigna(ns, "dL_dU")
    nombres = ["dL_dU", "dL_dc", "dL_dhL"]
    problemas = []
    for s in (601, 602, 603):
        g = _gen(s)
        B, d, C = _entero(g, 2, 9), _entero(g, 2, 6), _entero(g, 2, 6)
        hL, U, c, y, y_pred = _capa_de_salida(g, B, d, C)
        exp = refs.grad_ultima_capa(hL, U, c, y)
        nuevos = {"hL": hL, "U": U, "c": c, "y": y, "y_pred": y_pred, "dL_duLm1": exp["u"]}
        got = _reejecutar(ns, src, nuevos, nombres)
        for n, t, k in zip(nombres, got, ("U", "c", "h")):
            problemas.append(_comparar(f"{n} (B={B}, C={C})", t, exp[k], TOL64))
    _exigir(problemas, "Los gradientes de la última capa no coinciden con torch.autograd")


# --------------------------------------------------------------------------- Part 2c

def _probar_capa(ns, nombres_f, semillas):
    grad_capa = _buscar(ns, "grad_capa_escondida")
    problemas = []
    with _activaciones_de_referencia(ns):
        for s in semillas:
            g = _gen(s)
            for nombre in nombres_f:
                f = refs.ACTIVACIONES[nombre]
                B, d0, d1 = _entero(g, 2, 8), _entero(g, 2, 6), _entero(g, 2, 6)
                for dtype, tol in ((torch.float64, TOL64), (torch.float32, TOL32)):
                    h_prev = _randn(g, B, d0, dtype=dtype)
                    W = _randn(g, d0, d1, dtype=dtype)
                    b = _randn(g, d1, dtype=dtype)  # non-zero biases keep u off the kinks
                    dL_dh = _randn(g, B, d1, dtype=dtype)
                    p = None if f.param is None else 0.4 + 1.5 * torch.rand(1, generator=g).item()
                    got = _llamar(f"grad_capa_escondida(..., {nombre})", grad_capa,
                                  dL_dh.clone(), h_prev.clone(), W.clone(), b.clone(), f, p)
                    exp = refs.grad_capa_autograd(dL_dh, h_prev, W, b, nombre, p)
                    if not (isinstance(got, (tuple, list)) and len(got) == 3):
                        problemas.append("grad_capa_escondida debe devolver (dL_dW, dL_db, dL_dh_prev)")
                        continue
                    for n, t, e in zip(("dL_dW", "dL_db", "dL_dh_prev"), got, exp):
                        problemas.append(_comparar(f"{n} con {nombre} ({dtype})", t, e, tol))
    _exigir(problemas, "grad_capa_escondida no coincide con torch.autograd")


@_publico
def test_capa_escondida_basicas(ns):
    """grad_capa_escondida for sig, tanh and relu layers."""
    _probar_capa(ns, ("sig", "tanh", "relu"), semillas=(701, 702))


@_publico
def test_capa_escondida_param(ns):
    """grad_capa_escondida for swish and celu layers with non-trivial beta/alpha."""
    _probar_capa(ns, ("swish", "celu"), semillas=(801, 802))


# --------------------------------------------------------------------------- Part 3a

def _red_aleatoria(ns, g, nombres_f, dtype):
    """Build the student's FFNN with random weights; return it with the weights and inputs."""
    FFNN = _buscar(ns, "FFNN", "la clase")
    L = len(nombres_f)
    F, C, B = _entero(g, 2, 6), _entero(g, 2, 5), _entero(g, 3, 8)
    l_h = [_entero(g, 2, 6) for _ in range(L)]
    fs = [refs.ACTIVACIONES[n] for n in nombres_f]
    params = [None if f.param is None else round(0.5 + 1.5 * torch.rand(1, generator=g).item(), 3) for f in fs]
    dims = [F] + l_h
    Ws = [_randn(g, dims[i], dims[i + 1], dtype=dtype) * 0.8 for i in range(L)]
    bs = [_randn(g, dims[i + 1], dtype=dtype) * 0.5 for i in range(L)]
    U = _randn(g, l_h[-1], C, dtype=dtype) * 0.8
    c = _randn(g, C, dtype=dtype) * 0.5
    red = _llamar("FFNN(F, l_h, l_a, C, l_a_params)", FFNN, F, l_h, fs, C, params)
    _llamar("load_weights", red.load_weights, [w.clone() for w in Ws], U.clone(), [b.clone() for b in bs], c.clone())
    x = _randn(g, B, F, dtype=dtype)
    y = torch.eye(C, dtype=dtype)[torch.randint(0, C, (B,), generator=g)]
    return red, dict(Ws=Ws, bs=bs, U=U, c=c, fs=nombres_f, params=params), x, y


def _nombres_de_pesos(pesos):
    nombres = [(f"W({k + 1})", w) for k, w in enumerate(pesos["Ws"])]
    nombres += [(f"b({k + 1})", b) for k, b in enumerate(pesos["bs"])]
    return nombres + [("U", pesos["U"]), ("c", pesos["c"])]


def _probar_backward(ns, arquitecturas, semillas):
    problemas = []
    with _activaciones_de_referencia(ns):
        for s in semillas:
            for nombres_f in arquitecturas:
                g = _gen(s)
                for dtype, tol in ((torch.float64, TOL64), (torch.float32, TOL32)):
                    red, pesos, x, y = _red_aleatoria(ns, g, nombres_f, dtype)
                    exp = refs.grads_red_autograd(pesos, x, y)
                    y_pred = _llamar("forward", red.forward, x.clone())
                    problemas.append(_comparar(f"forward de una red {'-'.join(nombres_f)}", y_pred,
                                               exp["y_pred"], tol))
                    _llamar("backward", red.backward, x.clone(), y.clone(), y_pred)
                    params = list(red.parameters())
                    for nombre, valor in _nombres_de_pesos(pesos):
                        p = next((q for q in params if q.shape == valor.shape and torch.equal(q.detach().to(valor.dtype), valor)), None)
                        etiqueta = f"dL/d{nombre} en una red {'-'.join(nombres_f)} ({dtype})"
                        if p is None:
                            problemas.append(f"{nombre} no está entre red.parameters() después de load_weights")
                        elif p.grad is None:
                            problemas.append(f"{etiqueta}: backward no llenó .grad")
                        else:
                            problemas.append(_comparar(etiqueta, p.grad, exp[nombre], tol))
    _exigir(problemas, "Los gradientes de backward no coinciden con torch.autograd")


@_publico
def test_backward_basicas(ns):
    """FFNN.backward on networks of 1 to 3 sig/tanh/relu layers, float64 and float32."""
    _probar_backward(ns, [("relu",), ("sig", "tanh"), ("tanh", "relu", "sig")], semillas=(901, 902))


@_publico
def test_backward_param(ns):
    """FFNN.backward on networks with swish and celu layers (W, b, U, c gradients)."""
    _probar_backward(ns, [("swish",), ("celu", "swish"), ("relu", "celu")], semillas=(1001,))


# --------------------------------------------------------------------------- Part 4

@_publico
def test_sgd(ns):
    """SGD: in place, every step, from a generator of parameters, skipping grad=None."""
    SGD = _buscar(ns, "SGD", "la clase")
    g = _gen(1101)
    ps = [torch.nn.Parameter(_randn(g, 3, 4)), torch.nn.Parameter(_randn(g, 5)), torch.nn.Parameter(_randn(g, 2, 2))]
    inicial = [p.detach().clone() for p in ps]
    ids = [id(p) for p in ps]
    grads = [_randn(g, *p.shape) for p in ps[:2]]
    for p, gr in zip(ps, grads):
        p.grad = gr.clone()
    lr = 0.37
    opt = _llamar("SGD(parameters, lr)", SGD, (p for p in ps), lr)
    problemas = []
    for paso in (1, 2):
        _llamar("step()", opt.step)
        for i, (p, p0, gr) in enumerate(zip(ps, inicial, grads)):
            problemas.append(_comparar(f"parámetro {i} después del paso {paso}", p.detach(), p0 - paso * lr * gr, TOL64))
        problemas.append(_comparar(f"parámetro sin gradiente después del paso {paso}", ps[2].detach(), inicial[2], 0.0))
    if [id(p) for p in ps] != ids:
        problemas.append("step() debe modificar los parámetros en su lugar")
    _exigir(problemas, "SGD no actualiza los parámetros como p ← p − lr·p.grad")


@_publico
def test_dataset(ns):
    """RandomDataset: length, shapes, dtypes, one-hot labels, same item on every read."""
    RandomDataset = _buscar(ns, "RandomDataset", "la clase")
    problemas = []
    for N, F, C in ((17, 5, 3), (40, 2, 7)):
        ds = _llamar(f"RandomDataset({N}, {F}, {C})", RandomDataset, N, F, C)
        if not isinstance(ds, torch.utils.data.Dataset):
            problemas.append("RandomDataset debe heredar de torch.utils.data.Dataset")
        n = _llamar("len(dataset)", len, ds)
        if n != N:
            problemas.append(f"len(dataset) es {n}, se esperaba {N}")
        for i in (0, N // 2, N - 1):
            item = _llamar(f"dataset[{i}]", ds.__getitem__, i)
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                problemas.append("cada elemento debe ser un par (x, y)")
                break
            x, y = item
            if not (isinstance(x, torch.Tensor) and x.shape == (F,) and x.dtype == torch.float32):
                problemas.append(f"x debe ser un tensor float32 de forma ({F},)")
            if not (isinstance(y, torch.Tensor) and y.shape == (C,) and y.dtype == torch.float32
                    and bool(((y == 0) | (y == 1)).all()) and y.sum().item() == 1):
                problemas.append(f"y debe ser un vector one-hot float32 de forma ({C},)")
            x2, y2 = _llamar(f"dataset[{i}]", ds.__getitem__, i)
            if not (torch.equal(x, x2) and torch.equal(y, y2)):
                problemas.append(f"dataset[{i}] cambia cada vez que se lee: debe devolver siempre el mismo ejemplo")
        xs = torch.stack([ds[i][0] for i in range(min(N, 6))])
        if torch.equal(xs[0], xs[1]) and torch.equal(xs[1], xs[2]):
            problemas.append("los ejemplos son todos iguales: deben ser aleatorios")
    _exigir(problemas, "RandomDataset no cumple lo pedido")


@_publico
def test_entrenar(ns):
    """entrenar_FFNN: one loss per iteration, and the loss goes down clearly on learnable data."""
    entrenar = _buscar(ns, "entrenar_FFNN")
    g = _gen(1201)
    N, F, C = 90, 4, 3  # not a multiple of the batch size: the last batch is smaller
    x = _randn(g, N, F, dtype=torch.float32)
    centros = _randn(g, C, F, dtype=torch.float32) * 1.5
    clases = torch.randint(0, C, (N,), generator=g)
    x = x * 0.5 + centros[clases]
    y = torch.eye(C)[clases]
    datos = torch.utils.data.TensorDataset(x, y)
    problemas = []
    with _activaciones_de_referencia(ns):
        red = refs.RedDeReferencia(F, [8], ["tanh"], C, g)
        opt = refs.SGDReferencia(red.parameters(), 0.3)
        perdidas = _llamar("entrenar_FFNN", entrenar, red, datos, opt, epochs=6, batch_size=16)
    if not isinstance(perdidas, (list, tuple)) or not all(isinstance(v, (float, int)) or
                                                          (isinstance(v, torch.Tensor) and v.numel() == 1)
                                                          for v in perdidas):
        raise Incorrecto("entrenar_FFNN debe devolver una lista de floats (una pérdida por iteración)")
    perdidas = [float(v) for v in perdidas]
    esperadas = 6 * math.ceil(N / 16)
    if len(perdidas) != esperadas:
        problemas.append(f"devolvió {len(perdidas)} pérdidas; se esperaba una por iteración: {esperadas}")
    elif not all(math.isfinite(v) for v in perdidas):
        problemas.append("hay pérdidas nan o inf")
    else:
        inicio, fin = sum(perdidas[:6]) / 6, sum(perdidas[-6:]) / 6
        # over 40 shuffles a correct loop ends below 0.44 x the start; without step() it stays near 1 x
        if not fin < 0.6 * inicio:
            problemas.append(f"la pérdida no baja lo suficiente: de {inicio:.3f} a {fin:.3f} "
                             "(¿llamas a forward, backward y optimizador.step() en cada iteración?)")
    _exigir(problemas, "entrenar_FFNN no entrena como se espera")
