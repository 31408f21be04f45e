"""The activations of Tarea 2: the one table of them, and which hidden tests use each.

Each :class:`Activacion` gives its name and parameter (as the notebook's signature spells
it), its value and derivative in closed form, its reference written with torch's own functions
(checked by autograd on the trusted side), and the typical mistakes in its derivative with the
hint each one earns.  Everything else is built from this table: the closed forms and decoys
lent to student code (:mod:`tarea2_grader.tarea2.ayudas`), the ground truth
(:mod:`tarea2_grader.tarea2.refs`), the hints and the plans of the hidden tests
(:mod:`tarea2_grader.tarea2.pruebas_parte1`, :mod:`tarea2_grader.tarea2.pruebas_capas`).

To add an activation: one entry in ``TABLA`` (in the notebook's order) and its name in the
lists at the end (``DERIVADAS``, ``CAPAS``, ``REDES``); see ``docs/guia-nueva-activacion.md``.

Standalone on purpose (torch and the standard library only): its text is sent into the sandbox before
:mod:`~tarea2_grader.tarea2.ayudas`, which builds the lent activations from it.  Nothing here
calls autograd: the mistakes' derivatives ``d`` are passed in by the trusted side.
"""
import torch


def _param(p, T):
    return torch.as_tensor(p, dtype=T.dtype, device=T.device)


class Activacion:
    """One activation.

    ``valor(T, p)`` and ``derivada(T, p)`` are the closed forms (``p`` is None without a
    parameter; the derivative is d/dT, or the pair (d/dT, d/dparam)); ``referencia(U, p)`` is the
    same function with torch's own operations, right at the kinks; ``errores_dT`` and
    ``errores_dp`` are (hint key, ``fn(T, p, d)``): the output of a typical wrong derivative,
    where ``d(T, p)`` gives the true derivatives (float64, by autograd); ``pistas`` are the texts
    of the keys that only this activation uses; ``en_cuaderno`` is False for an activation the
    notebook never shows (the tests use it to catch code that decides by name).
    """

    def __init__(self, nombre, valor, derivada, referencia, parametro=None, defecto=1.0, en_cuaderno=True,
                 errores_dT=(), errores_dp=(), pistas=None):
        self.nombre, self.parametro, self.defecto = nombre, parametro, defecto
        self.valor, self.derivada, self.referencia = valor, derivada, referencia
        self.en_cuaderno = en_cuaderno
        self.errores_dT, self.errores_dp = tuple(errores_dT), tuple(errores_dp)
        self.pistas = dict(pistas or {})


# --------------------------------------------------------------------------- closed forms

def _sig_d(T, p):
    s = torch.sigmoid(T)
    return s * (1 - s)


def _tanh_d(T, p):
    t = torch.tanh(T)
    return 1 - t * t


def _swish(T, p):
    return T * torch.sigmoid(_param(p, T) * T)


def _swish_d(T, p):
    b = _param(p, T)
    s = torch.sigmoid(b * T)
    return s + b * T * s * (1 - s), T * T * s * (1 - s)


def _celu(T, p):
    a = _param(p, T)
    e = torch.exp(torch.clamp(T, max=0) / a)
    return torch.where(T > 0, T, a * (e - 1))


def _celu_d(T, p):
    a = _param(p, T)
    e = torch.exp(torch.clamp(T, max=0) / a)
    d_dT = torch.where(T > 0, torch.ones_like(T), e)
    d_da = torch.where(T > 0, torch.zeros_like(T), e - 1 - T * e / a)
    return d_dT, d_da


def _softplus(T, p):
    """log(1 + exp(beta T)) / beta: smooth everywhere."""
    b = _param(p, T)
    return torch.logaddexp(torch.zeros_like(T), b * T) / b


def _softplus_d(T, p):
    b = _param(p, T)
    s = torch.sigmoid(b * T)
    return s, (T * s - _softplus(T, p)) / b


# --------------------------------------------------------------------------- typical mistakes

def _swish_sin_beta(T, p, d):
    s = torch.sigmoid(float(p) * T)
    return s + T * s * (1 - s)


def _swish_sigma_x(T, p, d):
    sx = torch.sigmoid(T)
    return sx + float(p) * T * sx * (1 - sx)


def _swish_sin_x(T, p, d):
    s = torch.sigmoid(float(p) * T)
    return T * s * (1 - s)


def _celu_e(T, p):
    return torch.exp(torch.clamp(T, max=0) / float(p))


def _celu_falta_termino(T, p, d):
    return torch.where(T > 0, torch.zeros_like(T), _celu_e(T, p) - 1)


def _celu_signo_termino(T, p, d):
    e = _celu_e(T, p)
    return torch.where(T > 0, torch.zeros_like(T), e - 1 + T * e / float(p))


def _param_uno_dT(T, p, d):
    return d(T, 1.0)[0]


def _param_uno_dp(T, p, d):
    return d(T, 1.0)[1]


# --------------------------------------------------------------------------- the table

TABLA = (
    Activacion("sig", lambda T, p: torch.sigmoid(T), _sig_d, lambda U, p: torch.sigmoid(U),
               errores_dT=[("en_la_salida", lambda T, p, d: d(torch.sigmoid(T), None)[0]),
                           ("sig_signo", lambda T, p, d: torch.sigmoid(T) * (1 + torch.sigmoid(T)))],
               pistas={"sig_signo": "σ'(T) = σ(T)·(1 − σ(T)): revisa el signo dentro del paréntesis."}),
    Activacion("tanh", lambda T, p: torch.tanh(T), _tanh_d, lambda U, p: torch.tanh(U),
               errores_dT=[("en_la_salida", lambda T, p, d: d(torch.tanh(T), None)[0]),
                           ("tanh_cuadrado", lambda T, p, d: 1 - torch.tanh(T))],
               pistas={"tanh_cuadrado": "tanh'(T) = 1 − tanh(T)²: falta el cuadrado."}),
    Activacion("relu", lambda T, p: torch.clamp(T, min=0), lambda T, p: (T > 0).to(T.dtype),
               lambda U, p: torch.relu(U),
               errores_dT=[("relu0", lambda T, p, d: (T >= 0).double()),
                           ("relu_unos", lambda T, p, d: torch.ones_like(T))],
               pistas={"relu0": "relu'(0) debe ser 0: usa T > 0 y no T >= 0.",
                       "relu_unos": "la derivada de relu vale 1 en todas partes: debe ser 0 donde T ≤ 0 "
                                    "(¿la calculaste desde la salida, que siempre es ≥ 0?)."}),
    Activacion("swish", _swish, _swish_d, lambda U, p: U * torch.sigmoid(p * U), parametro="beta",
               errores_dT=[("swish_beta", _swish_sin_beta), ("swish_sigma_x", _swish_sigma_x),
                           ("param_uno", _param_uno_dT)],
               errores_dp=[("swish_x", _swish_sin_x), ("param_uno", _param_uno_dp)],
               pistas={"swish_beta": "en d swish/dT falta el factor β de la regla de la cadena: "
                                     "d/dT σ(βT) = β·σ(βT)(1 − σ(βT)).",
                       "swish_x": "en d swish/dβ falta un factor T: d/dβ σ(βT) = T·σ(βT)(1 − σ(βT)).",
                       "swish_sigma_x": "se usó σ(T) donde va σ(βT)."}),
    Activacion("celu", _celu, _celu_d, lambda U, p: torch.where(U > 0, U, p * torch.expm1(U / p)),
               parametro="alpha",
               errores_dT=[("celu_exp", lambda T, p, d: torch.where(T > 0, torch.ones_like(T),
                                                                    torch.exp(torch.clamp(T, max=0)))),
                           ("param_uno", _param_uno_dT)],
               errores_dp=[("celu_falta_termino", _celu_falta_termino),
                           ("celu_signo_termino", _celu_signo_termino), ("param_uno", _param_uno_dp)],
               pistas={"celu_exp": "para T < 0, d celu/dT = exp(T/α): falta dividir T por α.",
                       "celu_falta_termino": "en d celu/dα falta el término −(T/α)·exp(T/α).",
                       "celu_signo_termino": "en d celu/dα el término (T/α)·exp(T/α) va con signo menos."}),
    # Not in the notebook: students never saw it (an activation with a parameter, lent by the
    # tests of Parts 2c and 3a to catch code that decides by the activation's name).
    Activacion("softplus", _softplus, _softplus_d, lambda U, p: torch.nn.functional.softplus(p * U) / p,
               parametro="beta", en_cuaderno=False),
)

ACTIVACIONES = {a.nombre: a for a in TABLA}  # name -> Activacion, in the notebook's order


# --------------------------------------------------------------------------- where each is graded
# Test name -> what it uses, in the notebook's order (the points are the notebook's metadata).

# Part 1a: the derivatives of these activations.
DERIVADAS = {"test_derivadas_basicas": ("sig", "tanh", "relu"),
             "test_derivadas_swish": ("swish",),
             "test_derivadas_celu": ("celu",)}

# Part 2c: grad_capa_escondida on one layer of each.
CAPAS = {"test_capa_escondida_basicas": ("sig", "tanh", "relu"),
         "test_capa_escondida_param": ("swish", "celu", "softplus")}

# Part 3a: FFNN.backward on networks with these layers, each drawn this many times.
REDES = {"test_backward_basicas": ((("relu",), ("sig", "tanh"), ("tanh", "relu", "sig")), 2),
         "test_backward_param": ((("swish",), ("celu", "swish"), ("relu", "celu"), ("softplus", "tanh")), 1)}
