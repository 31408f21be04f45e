"""Tarea 2's parts table for the static review (:mod:`tarea2_grader.engine.review`): for each hidden
test, the answer cell and the names its code reaches, as the probes of
:mod:`tarea2_grader.tarea2.probes` call them.

The runner reviews a submission against the tests module's ``PARTES_REVISION`` (``hidden`` offers
this table).  ``python -m tarea2_grader.tarea2.review_roots cuaderno.ipynb ...`` prints every mark.
"""
from __future__ import annotations

from typing import Dict

from tarea2_grader.engine.review.records import Parte
from tarea2_grader.tarea2.activaciones import DERIVADAS, TABLA

__all__ = ["PARTES_REVISION"]

# What the tests of Parts 2c, 3a and 4c lend the student's code (ayudas.REFERENCIAS): the
# notebook's activations (from the activation table) and CELoss.
_PRESTADOS = frozenset({a.nombre for a in TABLA if a.en_cuaderno} | {"CELoss"})
_SALIDA = frozenset({"hL", "U", "c", "y", "y_pred", "dL_duLm1"})  # pruebas_capas._plan_ultima_capa's inputs

PARTES_REVISION: Dict[str, Parte] = {
    **{test: Parte("derivadas_codigo", nombres=tuple(nombres)) for test, nombres in DERIVADAS.items()},
    "test_celoss": Parte("celoss", nombres=("CELoss",)),
    "test_dL_duLm1": Parte("dL_duLm1", reejecuta="dL_duLm1", entradas=frozenset({"y", "y_pred"})),
    "test_ultima_capa": Parte("ultima_capa", reejecuta="dL_dU", entradas=_SALIDA),
    "test_capa_escondida_basicas": Parte("capas_escondidas", nombres=("grad_capa_escondida",),
                                         prestados=_PRESTADOS),
    "test_capa_escondida_param": Parte("capas_escondidas", nombres=("grad_capa_escondida",),
                                       prestados=_PRESTADOS),
    "test_backward_basicas": Parte("ffnn_backward", nombres=("FFNN",), prestados=_PRESTADOS),
    "test_backward_param": Parte("ffnn_backward", nombres=("FFNN",), prestados=_PRESTADOS),
    "test_sgd": Parte("sgd", nombres=("SGD",)),
    "test_dataset": Parte("random_dataset", nombres=("RandomDataset",)),
    "test_entrenar": Parte("entrenar", nombres=("entrenar_FFNN",), prestados=_PRESTADOS),
}


if __name__ == "__main__":
    import sys

    from tarea2_grader.engine.review import reach
    sys.exit(reach.main(sys.argv[1:], PARTES_REVISION))
