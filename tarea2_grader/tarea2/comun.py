"""What the hidden tests of Tarea 2 share: tolerances, the registry, the hint texts, the decoys.

The tests themselves are in :mod:`~tarea2_grader.tarea2.pruebas_parte1` (Part 1),
:mod:`~tarea2_grader.tarea2.pruebas_capas` (Parts 2 and 3) and
:mod:`~tarea2_grader.tarea2.pruebas_parte4` (Part 4); each registers its tests in ``REGISTRO``
when imported, and :mod:`~tarea2_grader.tarea2.hidden` imports them in the notebook's order.
"""
import torch

from tarea2_grader.engine import registry
from tarea2_grader.engine.registry import comparar
from tarea2_grader.tarea2.activaciones import TABLA

TOL64 = 1e-4   # relative to max|reference|: accepts float32 arithmetic inside
TOL32 = 2e-3   # inputs in float32
# A derivative with respect to an activation's parameter is measured against at least 1 (the
# ``escala`` of registry.error_relativo).  It is 0 at T = 0 and can be tiny over a whole small T
# (celu: entries just below 0, where e^(T/α) − 1 − (T/α)·e^(T/α) ≈ −(T/α)²/2; swish: entries near
# 0 or far from it, where 1 − σ(βT) is close to 0).  A correct formula computes it from terms of
# size about 1, so float32 rounding (in float32 inputs, or inside a float64 call) exceeded the
# tolerance relative to such a tiny result (CI seed 342172385592853844; seeds 1332 and 1642 with
# float32 arithmetic inside).  Every typical mistake is off by the size of those terms: it still fails.
ESCALA_PARAMETRO = 1.0
DTYPE = torch.float64

# Typical mistakes recognised from the outputs alone (never from the source): each key is
# proposed where the student's output equals the reference's output under that mistake.  The
# hints about one activation's derivative are in its entry of the activation table.
PISTAS = {
    "en_la_salida": "la derivada se evaluó en f(T) y no en T.",
    "signo": "el signo está invertido.",
    "par_al_reves": "el par está al revés: primero la derivada respecto de T, luego la del parámetro.",
    "param_uno": "parece que se usó el parámetro igual a 1 en vez del β o α recibido.",
    "suma_batch": "parece que sumaste sobre el batch: la pérdida es el promedio (divide por B).",
    "sin_acotar": "con estable=True hay que acotar Q por abajo en epsilon antes del logaritmo.",
    "acota_siempre": "con estable=False no se debe acotar Q.",
    "epsilon_fijo": "se ignoró el argumento epsilon.",
    "q_mas_eps": "hay que acotar Q (Q.clamp(min=epsilon)), no sumarle epsilon.",
    "solo_one_hot": "P puede ser cualquier distribución, no solo one-hot: usa la suma de P·log Q.",
    "falta_B": "parece que falta dividir por B, el tamaño del batch.",
    "divide_C": "dividiste por el número de clases: debe ser B, el tamaño del batch.",
    "sin_softmax": "ese es el gradiente respecto de ŷ; falta pasar por la softmax: ∂L/∂u = (ŷ − y)/B.",
    "B_fijo": "dividiste por un número fijo: usa B = y.shape[0], el tamaño del batch que llega.",
    "sesgo_promedio": "el gradiente del sesgo se promedió en vez de sumarse sobre el batch.",
    "doble_B": "dividiste por B dos veces: dL_duLm1 ya incluye el 1/B.",
    "transpuesto": "el resultado está transpuesto: revisa el orden de la multiplicación.",
    "falta_UT": "falta transponer U: ∂L/∂h(L) = ∂L/∂u(L+1) · Uᵀ.",
    "fprima_en_h": "f' se evaluó en h = f(u) y no en la pre-activación u.",
    "sin_fprima": "falta multiplicar por f'(u) (la derivada de la activación).",
    "dh_sin_fprima": "∂L/∂h(k−1) debe pasar por f'(u): (∂L/∂h ⊙ f'(u)) · Wᵀ.",
    "desconocida": "solo fallan los casos con una activación que no es de la Parte 1: f puede ser cualquiera con la "
                   "interfaz; no decidas nada por su nombre (si tiene parámetro, llega en p) y toma su derivada de "
                   "f(u, gradient=True) o f(u, p, gradient=True).",
    "ceros": "los gradientes quedaron en cero.",
    "sin_cambio": "los parámetros no cambiaron: actualízalos en su lugar (p -= lr * p.grad dentro de torch.no_grad()).",
    "generador": "desde el segundo paso no cambia nada: guarda list(parameters); un generador se agota.",
    "suma_grad": "sumaste el gradiente: en descenso de gradiente se resta.",
    "lr_fijo": "el paso no es proporcional a lr: usa la tasa de aprendizaje que llega.",
    "grad_none": "hay parámetros con grad None: step() debe saltárselos.",
    "por_ejemplo": "CELoss devuelve una pérdida por ejemplo: falta promediar sobre el batch (.mean()).",
    "keepdim": "sobra una dimensión: suma sobre el batch sin keepdim para obtener forma (C,).",
    "dataset_fijo": "genera los ejemplos una sola vez (en __init__) y en __getitem__ solo devuélvelos.",
    "one_hot": "y debe ser un vector one-hot, por ejemplo torch.eye(C)[clase], no el número de la clase.",
    "float32": "crea x en float32 (torch.randn produce float32 por defecto; evita .double()).",
    "forma_y": "y tiene una dimensión de más: debe tener forma (C,), no (1, C).",
    "largo": "__len__ debe devolver N, el número de ejemplos (no el número de características).",
    "sin_step": "falta llamar a optimizador.step() después de backward en cada iteración.",
    "lote_uno": "se ignoró batch_size: cada lote debe tener batch_size ejemplos (el último puede ser menor).",
    "ultimo_lote": "no descartes el último lote incompleto: cada época recorre todos los ejemplos.",
    "por_epoca": "devuelve la pérdida de cada iteración, no una por época.",
}
PISTAS.update({clave: texto for a in TABLA for clave, texto in a.pistas.items()})


# A mistake that explains another one's symptom too (forgetting f' everywhere also leaves
# dL_dh_prev without it): the broader one is named.
INCLUYE = {"sin_fprima": ("dh_sin_fprima",)}

# The course's tests, in the notebook's order (the order they run in).
REGISTRO = registry.Registro(registry.fuente_de("tarea2_grader.tarea2.probes"), paquete="tarea2_grader.tarea2",
                             pistas=PISTAS, incluye=INCLUYE)
prueba = REGISTRO.prueba
exigir = REGISTRO.exigir

# What the tests of later parts lend to the student's code (modules of this package, in order).
ACTIVACIONES_PRESTADAS = ("activaciones", "ayudas")
RED_PRESTADA = ("activaciones", "ayudas", "ayudas_red")


# The activations that the tests of Parts 2c and 3a lend are decoys (``ayudas``): exact values and
# exact ``f(u, gradient=True)``, but autograd sees another function through their forward.  Code
# that got its gradients from autograd anyway (past the probe's traps) returns exactly what
# autograd gives through the decoys, which no hand-written derivative can give.
SENUELO = ("{}: los gradientes coinciden con los que da autograd a través de las activaciones de este test, "
           "que no se pueden derivar con autograd (su derivada solo la da f(u, gradient=True)). En esta tarea "
           "los gradientes se calculan a mano, así que esta parte vale 0 puntos.")


CONOCIDAS = tuple(a.nombre for a in TABLA if a.en_cuaderno)  # the notebook's own activations


def pista_desconocida(fallidos, algun_caso_pasa):
    """The hint for code that only works with the notebook's own activations: every failed case
    uses one the notebook never showed (``fallidos``: the activations of each failed case)."""
    return ["desconocida"] if fallidos and algun_caso_pasa and all(
        set(fs) - set(CONOCIDAS) for fs in fallidos) else []


def como_autograd(obtenidos, por_autograd, esperados, tol):
    """Whether the outputs equal, one by one, what autograd gives through the decoy activations,
    where that differs clearly from the true gradients (so correct code can never match it)."""
    obtenidos, por_autograd, esperados = list(obtenidos), list(por_autograd), list(esperados)
    return (len(obtenidos) == len(por_autograd) > 0
            and all(comparar("", o, s, tol) is None for o, s in zip(obtenidos, por_autograd))
            and any(comparar("", s, e, 100 * tol) is not None for s, e in zip(por_autograd, esperados)))
