"""Probes: the untrusted half of each hidden test, run inside the sandbox.

A probe receives the student's namespace, the inputs the trusted grader drew for this
student, and (for tests of later parts) the helpers of :mod:`tarea2_grader.tarea2.ayudas`.  It calls
the student's code and returns what came back: values, the exception a call raised, or the
autograd entry point it used.  It decides nothing: the verdict is computed by
:mod:`tarea2_grader.tarea2.hidden` in the grader's own process, from these observations.

Standalone on purpose (imports the standard library and torch only): the supervisor sends
this file's text to each probe process.  Each probe returns plain data (dicts, lists,
tensors, numbers); a call's result is ``{"ok": value}``, ``{"error": "Tipo: mensaje"}`` or
``{"autograd": "Tensor.backward"}``.
"""
import contextlib
import io
import warnings

import torch

# --------------------------------------------------------------------------- calling student code


class UsoDeAutograd(BaseException):
    """Raised by the traps when student code asks autograd for a gradient."""


def _engine_spy(engine, log):
    """Stands in for torch's autograd engine and records any use (the real one is not an attribute)."""
    class EngineSpy:
        def run_backward(self, *args, **kwargs):
            log.append("el motor de autograd (backward / autograd.grad)")
            raise UsoDeAutograd("autograd")

        def __getattr__(self, name):
            return getattr(engine, name)

    return EngineSpy()


def _autograd_entry_points():
    """(owner, attribute, label) of every public way to ask torch for a gradient."""
    import torch.autograd.forward_ad as fwd
    import torch.autograd.functional as fun
    import torch.func as tfunc
    points = [(torch.Tensor, "backward", "Tensor.backward"),
              (torch.autograd, "backward", "torch.autograd.backward"),
              (torch.autograd, "grad", "torch.autograd.grad"),
              (fwd, "make_dual", "torch.autograd.forward_ad")]
    points += [(tfunc, n, "torch.func." + n) for n in
               ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize")
               if hasattr(tfunc, n)]
    points += [(fun, n, "torch.autograd.functional." + n) for n in
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
    var._execution_engine = _engine_spy(engine, log)
    try:
        yield
    finally:
        var._execution_engine = engine
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


@contextlib.contextmanager
def _silencio():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield


def llamar(fn, *args, **kwargs):
    """Call student code silently with autograd banned; describe what happened."""
    log = []
    try:
        with _silencio(), _sin_autograd(log):
            out = fn(*args, **kwargs)
    except UsoDeAutograd:
        pass
    except MemoryError:
        raise
    except Exception as e:
        if not log:
            return {"error": "{}: {}".format(type(e).__name__, str(e)[:200])}
    if log:
        return {"autograd": log[0]}
    return {"ok": out}


def _buscar(ns, nombre):
    if nombre not in ns:
        return {"falta": nombre}
    return None


@contextlib.contextmanager
def _prestar(ns, ayudas):
    """Put the lent reference activations and CELoss in the namespace while the probe runs, then
    put back what the student had (the probe runs in the student's own process)."""
    prestadas = ayudas["REFERENCIAS"]
    antes = {n: ns[n] for n in prestadas if n in ns}
    ns.update(prestadas)
    try:
        yield
    finally:
        for n in prestadas:
            ns.pop(n, None)
        ns.update(antes)


# --------------------------------------------------------------------------- Part 1


def activaciones(ns, datos, ayudas):
    """f(T, [p,] gradient=True) and f(T) for each case."""
    salida = []
    for caso in datos["casos"]:
        falta = _buscar(ns, caso["nombre"])
        if falta:
            return falta
        f = ns[caso["nombre"]]
        kw = dict(caso.get("kw") or {})
        salida.append(llamar(f, caso["T"].clone(), **kw))
    return {"resultados": salida}


def celoss(ns, datos, ayudas):
    """CELoss(Q, P, **kw) for each case."""
    falta = _buscar(ns, "CELoss")
    if falta:
        return falta
    return {"resultados": [llamar(ns["CELoss"], c["Q"].clone(), c["P"].clone(), **(c.get("kw") or {}))
                           for c in datos["casos"]]}


# --------------------------------------------------------------------------- Part 2


def reejecutar(ns, datos, ayudas):
    """Run the student's answer cell again in a copy of the namespace with new inputs."""
    from IPython.core.inputtransformer2 import TransformerManager
    codigo = compile(TransformerManager().transform_cell(datos["fuente"]), "<celda del estudiante>", "exec")
    salida = []
    for caso in datos["casos"]:
        ns2 = dict(ns)
        for n in datos["salidas"]:
            ns2.pop(n, None)
        ns2.update(caso)
        ns2.setdefault("get_ipython", lambda: None)
        r = llamar(exec, codigo, ns2)
        if "ok" in r:
            r = {"ok": {n: ns2[n] for n in datos["salidas"] if n in ns2}}
        salida.append(r)
    return {"resultados": salida}


def capa(ns, datos, ayudas):
    """grad_capa_escondida(dL_dh, h_prev, W, b, f, p) with the lent activations."""
    falta = _buscar(ns, "grad_capa_escondida")
    if falta:
        return falta
    with _prestar(ns, ayudas):
        fn = ns["grad_capa_escondida"]
        salida = [llamar(fn, c["dL_dh"].clone(), c["h_prev"].clone(), c["W"].clone(), c["b"].clone(),
                         ayudas["ACTIVACIONES"][c["f"]], c["p"]) for c in datos["casos"]]
    return {"resultados": salida}


# --------------------------------------------------------------------------- Part 3


def _parametros(red):
    r = llamar(lambda: [(p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
                        for p in red.parameters()])
    return r


def backward(ns, datos, ayudas):
    """Build the student's FFNN with given weights, run forward and backward, read every .grad."""
    falta = _buscar(ns, "FFNN")
    if falta:
        return falta
    salida = []
    with _prestar(ns, ayudas):
        FFNN = ns["FFNN"]
        for c in datos["casos"]:
            fs = [ayudas["ACTIVACIONES"][n] for n in c["fs"]]
            r = llamar(FFNN, c["F"], list(c["l_h"]), fs, c["C"], list(c["params"]))
            if "ok" not in r:
                salida.append({"etapa": "FFNN", **r})
                continue
            red = r["ok"]
            r = llamar(red.load_weights, [w.clone() for w in c["Ws"]], c["U"].clone(),
                       [b.clone() for b in c["bs"]], c["c"].clone())
            if "ok" not in r:
                salida.append({"etapa": "load_weights", **r})
                continue
            r = llamar(red.forward, c["x"].clone())
            if "ok" not in r:
                salida.append({"etapa": "forward", **r})
                continue
            y_pred = r["ok"]
            r = llamar(red.backward, c["x"].clone(), c["y"].clone(), y_pred)
            if "ok" not in r:
                salida.append({"etapa": "backward", **r})
                continue
            salida.append({"y_pred": y_pred, "parametros": _parametros(red)})
    return {"resultados": salida}


# --------------------------------------------------------------------------- Part 4


def sgd(ns, datos, ayudas):
    """Two steps of the student's SGD on parameters given as a generator, one without grad."""
    falta = _buscar(ns, "SGD")
    if falta:
        return falta
    ps = [torch.nn.Parameter(t.clone()) for t in datos["iniciales"]]
    for p, g in zip(ps, datos["grads"]):
        p.grad = g.clone()
    ids = [id(p) for p in ps]
    r = llamar(ns["SGD"], (p for p in ps), datos["lr"])
    if "ok" not in r:
        return {"etapa": "SGD(parameters, lr)", **r}
    opt = r["ok"]
    pasos = []
    for _ in range(2):
        r = llamar(opt.step)
        if "ok" not in r:
            return {"etapa": "step()", **r}
        pasos.append([p.detach().clone() for p in ps])
    return {"pasos": pasos, "mismos_objetos": [id(p) for p in ps] == ids}


def dataset(ns, datos, ayudas):
    """Length, items read twice, and the first examples of RandomDataset(N, F, C)."""
    falta = _buscar(ns, "RandomDataset")
    if falta:
        return falta
    salida = []
    for N, F, C in datos["tamanos"]:
        r = llamar(ns["RandomDataset"], N, F, C)
        if "ok" not in r:
            salida.append({"etapa": "RandomDataset({}, {}, {})".format(N, F, C), **r})
            continue
        ds = r["ok"]
        obs = {"es_dataset": isinstance(ds, torch.utils.data.Dataset), "largo": llamar(len, ds), "items": []}
        for i in (0, N // 2, N - 1):
            obs["items"].append([llamar(ds.__getitem__, i), llamar(ds.__getitem__, i)])
        obs["primeros"] = [llamar(ds.__getitem__, i) for i in range(min(N, 6))]
        salida.append(obs)
    return {"resultados": salida}


class _Registro:
    """Wraps the lent network and optimizer to record each call of the training loop."""

    def __init__(self):
        self.eventos = []


def entrenar(ns, datos, ayudas):
    """Train the lent reference network with the student's loop; record every call."""
    falta = _buscar(ns, "entrenar_FFNN")
    if falta:
        return falta
    reg = _Registro()
    with _prestar(ns, ayudas):
        red = ayudas["RedDeReferencia"](datos["Ws"], datos["bs"], datos["U"], datos["c"], datos["l_a"])
        forward, backward = red.forward, red.backward

        def forward_registrado(x):
            reg.eventos.append(["forward", None])
            return forward(x)

        def backward_registrado(x, y, y_pred):
            reg.eventos.append(["backward", {"x": x.detach().clone(), "y": y.detach().clone()}])
            return backward(x, y, y_pred)

        red.forward, red.backward = forward_registrado, backward_registrado
        opt = ayudas["SGDReferencia"](red.parameters(), datos["lr"])
        step = opt.step

        def step_registrado():
            reg.eventos.append(["step", None])
            return step()

        opt.step = step_registrado
        data = torch.utils.data.TensorDataset(datos["x"], datos["y"])
        r = llamar(ns["entrenar_FFNN"], red, data, opt, epochs=datos["epochs"], batch_size=datos["batch_size"])
    if "ok" in r:
        perdidas = r["ok"]
        if isinstance(perdidas, (list, tuple)):
            r = {"ok": [float(v) if isinstance(v, (int, float)) or
                        (isinstance(v, torch.Tensor) and v.numel() == 1) else None for v in perdidas]}
        else:
            r = {"ok": {"tipo": type(perdidas).__name__}}
    final = [p.detach().clone() for p in red.parameters()]
    return {"perdidas": r, "eventos": reg.eventos, "finales": final}
