"""The reference entrenar_FFNN, run in a real kernel: what the student sees when the loss stops being finite.

The runs are made non-finite by construction (no 900 iterations of waiting): an optimizer that makes alpha
negative after a given step (the way SGD breaks a celu network, issue 9), and an infinite learning rate.
"""
import json
import math

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from tools.solution_run import code_cells

pytestmark = pytest.mark.slow

# The master notebook's cells that entrenar_FFNN needs, in notebook order.
REFERENCE = ("preparacion", "tarea1_softmax", "derivadas_codigo", "celoss", "ffnn_backward", "sgd",
             "random_dataset", "entrenar")

SETUP = """\
class SGDQueRompeAlpha(SGD):
    # Counts the steps; after step `romper_en` it sets the celu layer's alpha to -0.001.
    def __init__(self, red, lr, romper_en):
        super().__init__(red.parameters(), lr)
        self.red, self.romper_en, self.pasos = red, romper_en, 0

    def step(self):
        super().step()
        self.pasos += 1
        if self.pasos == self.romper_en:
            self.red.param_de_capa(1).data.fill_(-0.001)

def estado(red, perdidas, **extra):
    return json.dumps(dict(perdidas=[v if math.isfinite(v) else repr(v) for v in perdidas],
                           no_finitos=[n for n, p in red.named_parameters() if not torch.isfinite(p).all()],
                           **extra))
import json
datos = RandomDataset(40, 4, 3)  # batch 16: 3 iterations per epoch
"""

# Each run: the training cell (whose output is what the student sees), then a cell printing the state as JSON.
RUNS = {
    "alpha_negativo": ("""\
torch.manual_seed(0)
red = FFNN(4, [8, 8], [swish, celu], 3, [1.0, 0.5])
opt = SGDQueRompeAlpha(red, 0.1, romper_en=4)
historial = {}
perdidas = entrenar_FFNN(red, datos, opt, epochs=2, batch_size=16, verbose=False, historial=historial)
""", "print(estado(red, perdidas, pasos=opt.pasos, aciertos=len(historial['acierto']), "
     "alpha=red.param_de_capa(1).item(), beta=red.param_de_capa(0).item()))"),
    "lr_infinito": ("""\
torch.manual_seed(0)
red = FFNN(4, [8], [relu], 3)
perdidas = entrenar_FFNN(red, datos, SGD(red.parameters(), math.inf), epochs=2, batch_size=16, verbose=True)
""", "print(estado(red, perdidas))"),
    "normal": ("""\
torch.manual_seed(0)
red = FFNN(4, [8], [celu], 3)
perdidas = entrenar_FFNN(red, datos, SGD(red.parameters(), 0.1), epochs=2, batch_size=16, verbose=True)
""", "print(estado(red, perdidas))"),
}


def stdout(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.fixture(scope="module")
def runs():
    """name -> (what the training cell printed, the state after it), from one kernel."""
    sources = dict(code_cells(only_graded=True))
    cells = [new_code_cell(sources[gid]) for gid in REFERENCE] + [new_code_cell(SETUP)]
    for entrenar, estado in RUNS.values():
        cells += [new_code_cell(entrenar), new_code_cell(estado)]
    nb = new_notebook(cells=cells)
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    errors = [c.source[:60] for c in nb.cells if any(o.output_type == "error" for o in c.outputs)]
    assert errors == []
    out, start = {}, len(REFERENCE) + 1
    for i, name in enumerate(RUNS):
        entrenar, estado = nb.cells[start + 2 * i], nb.cells[start + 2 * i + 1]
        out[name] = stdout(entrenar), json.loads(stdout(estado))
    return out


def aviso(printed):
    """The warning's lines, from its first line on."""
    lines = printed.splitlines()
    first = [i for i, line in enumerate(lines) if line.startswith("AVISO:")]
    assert len(first) == 1, printed
    return lines[first[0]:]


def test_negative_alpha_is_reported_with_iteration_epoch_and_values_even_with_verbose_false(runs):
    printed, state = runs["alpha_negativo"]
    lines = aviso(printed)
    # 4 steps ran, alpha became -0.001 and the 5th forward (epoch 2, its 2nd iteration) overflowed.
    assert "la pérdida dejó de ser finita (nan) en la iteración 5 de 6 (época 2/2)" in lines[0]
    assert "Se detiene el entrenamiento" in lines[0] and "(iteraciones que faltaban: 1)" in lines[0]
    assert lines[1] == "  Parámetros con nan o inf: ninguno (se desbordó un cálculo dentro de la red)"
    assert state["no_finitos"] == []
    assert lines[2] == ("  Parámetros de las activaciones: beta de la capa 1 = {:.4g}, alpha de la capa 2 = -0.001 "
                        "(debe ser positivo)".format(state["beta"]))
    assert "Parte 4d" in lines[3]
    # Training stopped there: no step after the non-finite loss, and the list keeps one value per iteration.
    assert state["pasos"] == 4
    assert state["alpha"] == pytest.approx(-0.001)
    perdidas = state["perdidas"]
    assert len(perdidas) == 6 and all(isinstance(v, float) for v in perdidas[:4])
    assert perdidas[4:] == ["nan", "nan"]
    assert state["aciertos"] == 6


def test_infinite_learning_rate_names_the_parameters_that_became_non_finite(runs):
    printed, state = runs["lr_infinito"]
    lines = aviso(printed)
    # The first step multiplies every gradient by inf: the 2nd forward is the first non-finite loss.
    assert "la pérdida dejó de ser finita (nan) en la iteración 2 de 6 (época 1/2)" in lines[0]
    assert "la lista de pérdidas se completa con nan (iteraciones que faltaban: 4)" in lines[0]
    assert sorted(state["no_finitos"]) == ["U", "Ws.0", "bs.0", "c"]
    assert lines[1].startswith("  Parámetros con nan o inf: ")
    assert sorted(lines[1].split(": ", 1)[1].split(", ")) == ["U", "Ws[0]", "bs[0]", "c"]
    assert not any("activaciones" in line for line in lines)  # a relu network has no beta or alpha
    assert math.isfinite(state["perdidas"][0]) and state["perdidas"][1:] == ["nan"] * 5
    assert "pérdida media" not in printed  # no epoch summary once training stopped


def test_a_run_that_stays_finite_never_warns(runs):
    printed, state = runs["normal"]
    assert "AVISO" not in printed
    assert "época 1/2: pérdida media" in printed and "época 2/2: pérdida media" in printed
    assert len(state["perdidas"]) == 6 and all(isinstance(v, float) for v in state["perdidas"])


@pytest.mark.parametrize("seed", [0, 1, 2**40 + 7])
def test_the_reference_still_passes_the_hidden_training_test(seed):
    """The stop-and-warn path keeps entrenar_FFNN's contract: the hidden test replays every batch and
    compares losses and final weights (hidden.test_entrenar), here on the master notebook's reference."""
    from tarea2_grader.tarea2 import hidden
    from tools.bench import load_reference
    assert hidden.evaluar_en_proceso(load_reference(), "test_entrenar", seed) is None
