"""The static autograd review (:mod:`tarea2_grader.engine.review`): pure analysis, no sandbox, no nbgrader.

* nothing is marked on correct code: the reference solution, the typical correct cells, the second
  correct solution and its variants, every wrong submission that does not use autograd, the demo's
  example submissions and an honest corpus written like Colab students (``tests/support/submissions/honest.py``);
* every wrong submission that uses autograd is marked in the parts that reach it, at its cell;
* evasions written by a student who has read the analyser are marked at the right cell and line;
* line numbers survive IPython syntax, and hostile cells (unreadable, huge, deeply nested, null
  bytes, control characters) never crash the review.
"""
from __future__ import annotations

import copy
import functools
import glob
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tarea2_grader.engine import cells as nbcells
from tarea2_grader.engine.review import allowlist, records, source
from tarea2_grader.engine.review.reach import revisar, revisar_nb
from tarea2_grader.engine.review.records import Celda, Marca, texto_marca
from tarea2_grader.tarea2.review_roots import PARTES_REVISION as PARTES

from tests.support.repo import REPO, SUBMISSIONS as SUBMISSIONS_DIR

ROOT = Path(REPO)
SOURCE_NB = ROOT / "source" / "tarea2" / "tarea2.ipynb"
SUBMISSIONS = Path(SUBMISSIONS_DIR)


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wrong = _load(SUBMISSIONS / "wrong.py", "tarea2_revision_wrong")
alt_correct = _load(SUBMISSIONS / "alt_correct.py", "tarea2_revision_alt")
honest = _load(SUBMISSIONS / "honest.py", "tarea2_revision_honest")

T_BASICAS, T_SWISH, T_CELU = "test_derivadas_basicas", "test_derivadas_swish", "test_derivadas_celu"
T_DULM1, T_ULTIMA = "test_dL_duLm1", "test_ultima_capa"
T_CAPA_B, T_CAPA_P = "test_capa_escondida_basicas", "test_capa_escondida_param"
T_BACK_B, T_BACK_P = "test_backward_basicas", "test_backward_param"
T_SGD, T_ENTRENAR = "test_sgd", "test_entrenar"

# The wrong submissions that use autograd, and the parts whose graded code reaches it. BASE swish
# calls sig, so a sig with autograd in its gradient branch is reachable from the swish test too
# (the review cannot tell that swish never asks sig for its derivative).
AUTOGRAD_WRONG = {
    "sig_grad_uses_autograd": {T_BASICAS, T_SWISH},
    "dL_duLm1_uses_autograd": {T_DULM1},
    "ultima_capa_uses_autograd": {T_ULTIMA},
    "capa_uses_autograd": {T_CAPA_B, T_CAPA_P},
    "backward_calls_autograd": {T_BACK_B, T_BACK_P},
    # autograd through the network past the in-process traps (saved engine): decoys and this review
    "capa_autograd_saved_engine": {T_CAPA_B, T_CAPA_P},
    "backward_autograd_saved_engine": {T_BACK_B, T_BACK_P},
}


@functools.lru_cache(maxsize=1)
def _fuente():
    return nbformat.read(str(SOURCE_NB), as_version=4)


def _notebook(cells=None, added=()):
    """The source notebook with answer cells replaced and cells added.

    ``added``: (grade_id of the cell it follows, label, source) or (grade_id, source); returns
    (notebook, {label or grade_id: 1-based cell number}).
    """
    nb = copy.deepcopy(_fuente())
    cells = cells or {}
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in cells:
            c.source = cells[gid]
    for n, extra in enumerate(added):
        despues, etiqueta, fuente = extra if len(extra) == 3 else (extra[0], "+{}".format(n), extra[1])
        pos = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == despues)
        nueva = nbformat.v4.new_code_cell(fuente)
        nueva.metadata["etiqueta"] = etiqueta
        nb.cells.insert(pos + 1, nueva)
    numeros = {}
    for i, c in enumerate(nb.cells, start=1):
        etiqueta = c.metadata.get("etiqueta") or c.metadata.get("nbgrader", {}).get("grade_id")
        if etiqueta:
            numeros[etiqueta] = i
    return nb, numeros


def _revisar(cells=None, added=()):
    nb, numeros = _notebook(cells, added)
    return revisar_nb(nb, PARTES), numeros, nb


def _sin_marcas(rev):
    lineas = ["{}: {}".format(m.prueba, texto_marca(m, con_detalle=True)) for m in rev.todas()]
    assert not lineas, "\n".join(lineas)


# --------------------------------------------------------------------------- the table and the records


def test_parts_table_names_every_autograded_test():
    assert set(PARTES) == set(nbcells.autograded_points(SOURCE_NB))
    respuestas = set(nbcells.answer_cell_ids(SOURCE_NB))
    for prueba, parte in PARTES.items():
        assert parte.celda in respuestas, prueba
        assert bool(parte.nombres) != bool(parte.reejecuta), prueba


def test_module_does_not_import_torch():
    """The review itself is torch-free (the course's table reads the activation table, which is not)."""
    codigo = ("import sys, tarea2_grader.engine.review.reach; "
              "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", codigo], cwd=str(ROOT), capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert r.returncode == 0, r.stderr


def test_result_is_json_and_renders_one_line():
    rev, numeros, _ = _revisar(dict(wrong.BASE_CELLS, **next(
        w["cells"] for w in wrong.WRONG if w["name"] == "capa_uses_autograd")))
    datos = json.loads(json.dumps(rev.como_datos()))
    assert set(datos["marcas"]) == set(PARTES)
    m = rev.marcas[T_CAPA_B][-1]
    assert isinstance(m, Marca) and m.celda == numeros["capas_escondidas"] and m.grade_id == "capas_escondidas"
    assert texto_marca(m) == "revisión: celda {}, línea {}: torch.autograd.grad".format(m.celda, m.linea)
    assert "\n" not in texto_marca(m, con_detalle=True)


# --------------------------------------------------------------------------- correct code: no marks


def test_reference_solution_has_no_marks():
    rev = revisar_nb(_fuente(), PARTES)
    _sin_marcas(rev)
    assert not rev.revisar_notebook and not rev.notas


@pytest.mark.parametrize("caso", ["base_cells", "alt_correct"] + ["variant:" + v["name"] for v in alt_correct.VARIANTS])
def test_correct_solutions_have_no_marks(caso):
    if caso == "base_cells":
        cells = wrong.BASE_CELLS
    elif caso == "alt_correct":
        cells = alt_correct.CELLS
    else:
        cells = next(v["cells"] for v in alt_correct.VARIANTS if "variant:" + v["name"] == caso)
    rev, _, _ = _revisar(cells)
    _sin_marcas(rev)
    assert not rev.revisar_notebook


@pytest.mark.parametrize("registro", [w for w in wrong.WRONG if w["name"] not in AUTOGRAD_WRONG],
                         ids=lambda w: w["name"])
def test_wrong_without_autograd_has_no_marks(registro):
    rev, _, _ = _revisar(registro["cells"])
    _sin_marcas(rev)


def test_every_autograd_record_exists():
    assert set(AUTOGRAD_WRONG) <= {w["name"] for w in wrong.WRONG}


@pytest.mark.parametrize("registro", [w for w in wrong.WRONG if w["name"] in AUTOGRAD_WRONG], ids=lambda w: w["name"])
def test_wrong_with_autograd_is_marked_in_its_parts(registro):
    rev, numeros, _ = _revisar(dict(wrong.BASE_CELLS, **registro["cells"]))
    assert set(rev.partes_marcadas()) == AUTOGRAD_WRONG[registro["name"]]
    assert registro["fails"] <= set(rev.partes_marcadas())
    celdas = {numeros[g] for g in registro["cells"]}
    for m in rev.todas():
        assert m.celda in celdas and m.grade_id in registro["cells"], m
    assert any("torch.autograd" in m.construccion or m.construccion == "Tensor.backward()" for m in rev.todas())


def _ejemplos():
    return sorted(glob.glob(str(ROOT / "examples" / "*" / "*.ipynb")))


@pytest.mark.parametrize("ruta", _ejemplos(), ids=lambda p: Path(p).parent.name.split("_")[1])
def test_examples_have_no_marks(ruta):
    texto = Path(ruta).read_text(encoding="utf-8")
    try:
        nb = json.loads(texto)
    except json.JSONDecodeError:
        assert "1007" in ruta  # the demo's corrupt file: not a notebook, nothing to review
        return
    rev = revisar_nb(nb, PARTES)
    _sin_marcas(rev)
    assert not rev.revisar_notebook


@pytest.mark.parametrize("registro", honest.HONEST, ids=lambda r: r["name"])
def test_honest_corpus_has_no_marks(registro):
    rev, _, _ = _revisar(registro["cells"], registro.get("added", ()))
    _sin_marcas(rev)
    assert not rev.revisar_notebook
    assert not rev.notas


def test_honest_corpus_is_well_formed():
    nombres = [r["name"] for r in honest.HONEST]
    assert len(nombres) == len(set(nombres)) >= 10
    respuestas = set(nbcells.answer_cell_ids(SOURCE_NB))
    for r in honest.HONEST:
        assert r["description"].strip() and "\n" not in r["description"]
        assert set(r["cells"]) <= respuestas


# --------------------------------------------------------------------------- evasions


def _derivadas_con_relu(gradiente, cabecera=""):
    """BASE derivatives with relu's gradient branch replaced by ``gradiente`` (8-space indented lines)."""
    base = wrong.BASE_DERIVADAS
    viejo = "    if gradient:\n        return (T > 0).to(T.dtype)\n"
    assert base.count(viejo) == 1
    return cabecera + base.replace(viejo, "    if gradient:\n" + gradiente)


_X = "        X = T.detach().clone().requires_grad_(True)\n"

# Each evasion: cells, added cells (after, label, source), and what must be marked:
# (test, cell label, marker text on the marked line, construct substring).  Every mark must be in
# ``partes`` (default: the basic derivatives' test only, the one that grades relu).
EVASIONES = [
    dict(name="alias_import_in_other_cell",
         added=[("preparacion", "ayuda", "import torch.autograd as ag  # <<imp\n")],
         cells={"derivadas_codigo": _derivadas_con_relu(_X + "        return ag.grad(torch.relu(X).sum(), X)[0]  # <<use\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.autograd.grad"),
                (T_BASICAS, "ayuda", "<<imp", "torch.autograd")]),
    dict(name="from_import_grad_as_g",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        return g(torch.relu(X).sum(), X)[0]  # <<use\n",
             cabecera="from torch.autograd import grad as g  # <<imp\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.autograd.grad"),
                (T_BASICAS, "derivadas_codigo", "<<imp", "torch.autograd.grad")]),
    dict(name="getattr_concatenated_name",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        ag = getattr(torch, 'auto' + 'grad')  # <<use\n        return ag.grad(torch.relu(X).sum(), X)[0]\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "getattr con un nombre calculado sobre un módulo")]),
    dict(name="module_dict_lookup",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        return torch.__dict__['autograd'].grad(torch.relu(X).sum(), X)[0]  # <<use\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "acceso a un atributo dunder (__dict__)")]),
    dict(name="importlib_import_module",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        import importlib  # <<imp\n" + _X
             + "        m = importlib.import_module('torch.' + 'autograd')  # <<use\n"
             "        return m.grad(torch.relu(X).sum(), X)[0]\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<imp", "código dinámico (importlib)"),
                (T_BASICAS, "derivadas_codigo", "<<use", "importlib.import_module")]),
    dict(name="eval_string",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        g = eval('torch.autograd.grad')  # <<use\n        return g(torch.relu(X).sum(), X)[0]\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "código dinámico (eval)")]),
    dict(name="aten_backward_kernel",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        return torch.ops.aten.threshold_backward(torch.ones_like(T), T, 0)  # <<use\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.ops.aten.threshold_backward")]),
    dict(name="torch_C_functions",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        motor = torch._C._functions  # <<use\n        return (T > 0).to(T.dtype)\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch._C._functions")]),
    dict(name="forward_mode_dual_numbers",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        with torch.autograd.forward_ad.dual_level():  # <<use\n"
             "            d = torch.autograd.forward_ad.make_dual(T, torch.ones_like(T))\n"
             "            return torch.autograd.forward_ad.unpack_dual(torch.relu(d)).tangent\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.autograd.forward_ad.dual_level")]),
    dict(name="torch_func_grad",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        return torch.vmap(torch.func.grad(torch.relu))(T)  # <<use\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.func.grad")]),
    dict(name="sympy_diff",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        x = sympy.Symbol('x')\n"
             "        d = sympy.lambdify(x, sympy.diff(sympy.Max(0, x), x))  # <<use\n"
             "        return torch.tensor([float(d(v)) for v in T.flatten().tolist()]).reshape(T.shape)\n",
             cabecera="import sympy  # <<imp\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "diferenciación simbólica (sympy.diff)"),
                (T_BASICAS, "derivadas_codigo", "<<imp", "diferenciación simbólica (sympy)")]),
    dict(name="writefile_helper_module",
         added=[("preparacion", "ayuda",
                 "%%writefile ayuda.py\nimport torch\n\n\ndef derivada(f, T):\n"
                 "    X = T.detach().clone().requires_grad_(True)\n"
                 "    return torch.autograd.grad(f(X).sum(), X)[0]  # <<use\n")],
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        from ayuda import derivada\n        return derivada(torch.relu, T)\n")},
         marks=[(T_BASICAS, "ayuda", "<<use", "torch.autograd.grad")]),
    dict(name="writefile_module_imported_at_top",
         added=[("preparacion", "ayuda",
                 "%%writefile -a ayuda.py\nimport torch\n\ndef derivada(f, T):\n"
                 "    X = T.detach().clone().requires_grad_(True)\n"
                 "    f(X).sum().backward()  # <<use\n    return X.grad\n"),
                ("preparacion", "importa", "import ayuda\n")],
         cells={"derivadas_codigo": _derivadas_con_relu("        return ayuda.derivada(torch.relu, T)\n")},
         marks=[(T_BASICAS, "ayuda", "<<use", "Tensor.backward()")]),
    dict(name="helper_in_added_cell_calls_backward",
         added=[("derivadas_codigo", "ayuda",
                 "def derivada_auto(f, T):\n    X = T.detach().clone().requires_grad_(True)\n"
                 "    y = f(X).sum()\n    y.backward()  # <<use\n    return X.grad\n")],
         cells={"derivadas_codigo": _derivadas_con_relu("        return derivada_auto(torch.relu, T)\n")},
         marks=[(T_BASICAS, "ayuda", "<<use", "Tensor.backward()")]),
    dict(name="class_mro",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        base = T.__class__.__mro__[1]  # <<use\n        return (T > 0).to(T.dtype)\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "acceso a un atributo dunder (__class__)")]),
    dict(name="sys_modules_lookup",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        ag = sys.modules['torch'].autograd  # <<use\n        return ag.grad(torch.relu(X).sum(), X)[0]\n",
             cabecera="import sys\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "acceso a sys.modules")]),
    dict(name="subprocess_python",
         cells={"derivadas_codigo": _derivadas_con_relu(
             "        import subprocess\n"
             "        r = subprocess.run(['python', '-c', 'print(1)'], capture_output=True)  # <<use\n"
             "        return (T > 0).to(T.dtype)\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "creación de procesos (subprocess.run)")]),
    dict(name="module_alias_by_assignment",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        return t.autograd.grad(torch.relu(X).sum(), X)[0]  # <<use\n", cabecera="t = torch\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.autograd.grad")]),
    dict(name="default_argument_captures_grad",
         cells={"derivadas_codigo": wrong.BASE_DERIVADAS.replace(
             "def relu(T, gradient=False):\n    if gradient:\n        return (T > 0).to(T.dtype)\n",
             "def relu(T, gradient=False, _g=torch.autograd.grad):  # <<use\n    if gradient:\n"
             + _X + "        return _g(torch.relu(X).sum(), X)[0]\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.autograd.grad")]),
    dict(name="star_import_from_autograd",
         added=[("preparacion", "ayuda", "from torch.autograd import *  # <<imp\n")],
         cells={"derivadas_codigo": _derivadas_con_relu(_X + "        return grad(torch.relu(X).sum(), X)[0]  # <<use\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.autograd.grad"),
                (T_BASICAS, "ayuda", "<<imp", "torch.autograd")]),
    dict(name="getattr_as_value_reduce",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        g = functools.reduce(getattr, ['autograd', 'grad'], torch)  # <<use\n"
             "        return g(torch.relu(X).sum(), X)[0]\n", cabecera="import functools\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "getattr usado como valor")]),
    dict(name="operator_methodcaller_backward",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        operator.methodcaller('backward')(torch.relu(X).sum())  # <<use\n        return X.grad\n",
             cabecera="import operator\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "Tensor.backward()")]),
    dict(name="backward_with_constant_arguments",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        y = torch.relu(X)\n        y.backward(torch.ones_like(y), True)  # <<use\n        return X.grad\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "Tensor.backward()")]),
    dict(name="unicode_compatibility_identifiers",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        return ｔｏｒｃｈ.ａｕｔｏｇｒａｄ.grad(torch.relu(X).sum(), X)[0]  # <<use\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "torch.autograd.grad")]),
    dict(name="monkeypatched_backward_in_added_cell",
         added=[("ffnn_backward", "ayuda",
                 "def _backward_auto(self, x, y, y_pred):\n"
                 "    perdida = CELoss(self.forward(x), y, estable=False)\n"
                 "    with torch.enable_grad():  # <<grad\n"
                 "        perdida.backward()  # <<use\n\n\n"
                 "FFNN.backward = _backward_auto\n")],
         partes={T_BACK_B, T_BACK_P},
         marks=[(T_BACK_B, "ayuda", "<<use", "Tensor.backward()"), (T_BACK_P, "ayuda", "<<use", "Tensor.backward()"),
                (T_BACK_B, "ayuda", "<<grad", "torch.enable_grad")]),
    dict(name="rerun_cell_calls_helper_with_torch_func",
         added=[("datos_2b", "ayuda",
                 "def gradientes_salida(hL, U, c, y):\n"
                 "    f = lambda U_: CELoss(softmax(hL @ U_ + c, dim=1), y)\n"
                 "    return torch.func.grad(f)(U)  # <<use\n")],
         cells={"ultima_capa": "dL_dU = gradientes_salida(hL, U, c, y)\n"
                               "dL_dc = dL_duLm1.sum(dim=0)\ndL_dhL = dL_duLm1 @ U.T\n"},
         partes={T_ULTIMA},
         marks=[(T_ULTIMA, "ayuda", "<<use", "torch.func.grad")]),
    dict(name="loss_stored_on_self",
         cells={"ffnn_backward": wrong.BASE_FFNN.split("    def backward")[0]
                + "    def backward(self, x, y, y_pred):\n"
                  "        self.perdida = CELoss(self.forward(x), y, estable=False)\n"
                  "        self.perdida.backward()  # <<use\n"},
         partes={T_BACK_B, T_BACK_P},
         marks=[(T_BACK_B, "ffnn_backward", "<<use", "Tensor.backward()"),
                (T_BACK_P, "ffnn_backward", "<<use", "Tensor.backward()")]),
    dict(name="getattr_on_module_kept_in_self",
         cells={"sgd": "class SGD:\n    def __init__(self, parameters, lr):\n"
                       "        self.parameters, self.lr, self.m = list(parameters), lr, torch\n"
                       "    def step(self):\n        g = getattr(self.m, 'auto' + 'grad')  # <<use\n"},
         partes={T_SGD},
         marks=[(T_SGD, "sgd", "<<use", "getattr con un nombre calculado")]),
    dict(name="globals_lookup",
         cells={"derivadas_codigo": _derivadas_con_relu(
             _X + "        return globals()['torch'].autograd.grad(torch.relu(X).sum(), X)[0]  # <<use\n")},
         marks=[(T_BASICAS, "derivadas_codigo", "<<use", "código dinámico (globals)")]),
]


def _linea_de(fuente, marcador):
    lineas = [i for i, l in enumerate(fuente.split("\n"), start=1) if marcador in l]
    assert len(lineas) == 1, (marcador, lineas)
    return lineas[0]


@pytest.mark.parametrize("evasion", EVASIONES, ids=lambda e: e["name"])
def test_evasion_is_marked_at_its_line(evasion):
    rev, numeros, nb = _revisar(evasion.get("cells"), evasion.get("added", ()))
    todas = rev.todas()
    for prueba, etiqueta, marcador, texto in evasion["marks"]:
        celda = numeros[etiqueta]
        linea = _linea_de(nb.cells[celda - 1].source, marcador)
        encontradas = [m for m in rev.marcas[prueba] if m.celda == celda and m.linea == linea and texto in m.construccion]
        assert encontradas, "no mark {!r} at cell {} line {} in {}; marks:\n{}".format(
            texto, celda, linea, prueba, "\n".join("{}: {}".format(m.prueba, texto_marca(m)) for m in todas))
    partes = evasion.get("partes", {T_BASICAS})
    assert set(rev.partes_marcadas()) == partes


def test_at_least_twelve_evasions():
    assert len(EVASIONES) >= 12


# --------------------------------------------------------------------------- what is not reached


def test_checks_outside_graded_code_are_not_marked():
    added = [("derivadas_codigo", "import torch.autograd as ag\nX = torch.ones(3, requires_grad=True)\n"
                                  "(d,) = ag.grad(torch.sigmoid(X).sum(), X)\nfrom torch.func import grad\n"),
             ("celoss", "perdida = CELoss(torch.tensor([[0.5, 0.5]], requires_grad=True), torch.tensor([[1.0, 0.0]]))\n"
                        "perdida.backward()\nimport sympy\nprint(sympy.diff('x**2'))\n")]
    rev, _, _ = _revisar(wrong.BASE_CELLS, added)
    _sin_marcas(rev)


def test_rerun_cell_is_the_last_that_assigns_before_the_test():
    auto = "(dL_duLm1,) = torch.autograd.grad(CELoss(softmax(u, dim=1), y), u)  # revisión con autograd\n"
    prev = "u = u_ejemplo.clone().requires_grad_(True)\n"
    # after the test cell: never re-run, never marked
    rev, _, _ = _revisar(added=[("test_dL_duLm1", prev + auto)])
    assert not rev.marcas[T_DULM1]
    # between the answer and the test: that is the cell the test re-runs
    rev, numeros, _ = _revisar(added=[("dL_duLm1", "mio", prev + auto)])
    assert [(m.celda, m.linea) for m in rev.marcas[T_DULM1]] == [(numeros["mio"], 2)]


def test_lent_names_are_not_followed_at_call_time_but_captures_are():
    celoss_auto = ("def CELoss(Q, P, estable=True, epsilon=1e-8):\n"
                   "    Q = Q.detach().requires_grad_(True)\n"
                   "    perdida = -(P * torch.log(Q)).sum(dim=1).mean()\n"
                   "    perdida.backward()\n    return perdida\n")
    rev, _, _ = _revisar({"celoss": celoss_auto})  # the entrenar test lends its own CELoss
    assert rev.partes_marcadas() == ["test_celoss"]
    entrenar = wrong.BASE_ENTRENAR.replace("verbose=True):", "verbose=True, _perdida=CELoss):").replace(
        "perdida = CELoss(y_pred, y)", "perdida = _perdida(y_pred, y)")
    rev, _, _ = _revisar({"celoss": celoss_auto, "entrenar": entrenar})
    assert rev.partes_marcadas() == ["test_celoss", "test_entrenar"]


# --------------------------------------------------------------------------- IPython syntax and lines


def test_lines_map_back_through_magics():
    relu = ("def relu(T, gradient=False):\n    if gradient:\n"
            "        return torch.autograd.grad(torch.relu(T).sum(), T)[0]  # <<use\n"
            "    return torch.clamp(T, min=0)\n")
    cabeceras = ["\n\n!pip install -q tqdm\n%time a = 1 + \\\n    2\nimport torch\n\n",
                 "\n%%time\n\n", "%%capture salida\n!ls\n%matplotlib inline\n",
                 "# comentario\nx = !ls\nprint?\n  \n"]
    base = wrong.BASE_DERIVADAS.split("def relu")[0]
    for cabecera in cabeceras:
        fuente = cabecera + base + relu
        rev, numeros, _ = _revisar({"derivadas_codigo": fuente})
        esperado = _linea_de(fuente, "<<use")
        assert [(m.celda, m.linea) for m in rev.marcas[T_BASICAS]] == [(numeros["derivadas_codigo"], esperado)], cabecera


def test_line_magic_code_in_rerun_cell_is_analysed():
    fuente = ("dL_dU = hL.T @ dL_duLm1\n%time dL_dc = dL_duLm1.sum(0)\ndL_dhL = dL_duLm1 @ U.T\n"
              "%time g = torch.autograd.grad  # <<use\n")
    rev, numeros, _ = _revisar({"ultima_capa": fuente})
    assert [(m.celda, m.linea, m.construccion) for m in rev.marcas[T_ULTIMA]] == [
        (numeros["ultima_capa"], 4, "torch.autograd.grad")]


def test_magics_inside_graded_function_are_dynamic_code():
    fuente = _derivadas_con_relu("        !ls  # <<use\n        return (T > 0).to(T.dtype)\n")
    rev, _, _ = _revisar({"derivadas_codigo": fuente})
    assert [m.construccion for m in rev.marcas[T_BASICAS]] == ["comando de sistema (!ls  # <<use)"]


# --------------------------------------------------------------------------- hostile cells


def _celdas(*fuentes, graded=None):
    out = [Celda(i, None, f) for i, f in enumerate(fuentes, start=1)]
    if graded:
        out.append(Celda(len(out) + 1, "derivadas_codigo", graded))
    return out


def test_unreadable_cell_is_skipped_with_a_note():
    relu = _derivadas_con_relu("        return torch.autograd.grad(torch.relu(T).sum(), T)[0]\n", cabecera="import torch\n")
    rev = revisar(_celdas("def roto(:\n    pass\n", "x = 1\x00\n", graded=relu), PARTES)
    assert [m.celda for m in rev.marcas[T_BASICAS]] == [3]
    assert len(rev.notas) == 2 and all("se omite" in n for n in rev.notas)
    rev = revisar(_celdas(graded="def sig(T:\n"), PARTES)  # a graded cell that does not parse
    assert not rev.todas() and rev.notas


def test_huge_and_deeply_nested_cells_do_not_crash():
    enorme = "s = '" + "a" * (1 << 20) + "'\n!echo listo\n"
    parentesis = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    suma = "x = " + " + ".join(["1"] * 5000) + "\n"
    profunda = ("import torch\n\ndef relu(T, gradient=False):\n"
                "    return torch.autograd.grad(T.sum(), T)[0]" + " + 0" * 2500 + "\n")
    rev = revisar(_celdas(enorme, parentesis, suma, "ａ" * 3000 + " = 1\n", graded=profunda), PARTES)
    assert [(m.celda, m.linea, m.construccion) for m in rev.marcas[T_BASICAS]] == [(5, 4, "torch.autograd.grad")]
    assert len(rev.notas) == 2  # the two nestings Python itself cannot parse


def test_student_text_in_messages_is_safe():
    comando = "curl http://x/\x1b[2J\u202e" + "A" * 500
    fuente = "!" + comando + "\ndL_duLm1 = (y_pred - y) / y.shape[0]\n"
    rev, _, _ = _revisar({"dL_duLm1": fuente})
    (m,) = rev.marcas[T_DULM1]
    for texto in (m.construccion, m.detalle, texto_marca(m, con_detalle=True)):
        assert not any(ord(ch) < 32 or ch in "\u202e\u2028\x7f" for ch in texto), repr(texto)
    assert len(m.construccion) <= records.LIMITE and len(m.detalle) <= records.LIMITE
    assert "\\x1b" in m.construccion


def test_undefined_or_dynamic_names_give_a_review_note_and_no_mark():
    relu = _derivadas_con_relu("        return _magia(T)\n")
    rev, _, _ = _revisar({"derivadas_codigo": relu},
                         [("preparacion", "globals()['_magia'] = lambda T: torch.autograd.grad(T.sum(), T)[0]\n")])
    assert not rev.todas()
    assert any("_magia" in r for r in rev.revisar_notebook)
    assert any("globals()" in r for r in rev.revisar_notebook)


@pytest.mark.parametrize("ruta, esperado", [
    ("torch.exp", None), ("torch.nn.functional.relu", None), ("torch.utils.data.DataLoader", None),
    ("torch.autograd.grad", "torch.autograd.grad"), ("torch.autograd.no_grad", None),
    ("torch._C", "torch._C"), ("torch.Tensor.backward", "torch.Tensor.backward"),
    ("os.path.join", None), ("os.system", "creación de procesos (os.system)"), ("os.environ", None),
    ("sys.stdout", None), ("sys.modules", "acceso a sys.modules"), ("gc.collect", None),
    ("gc.get_objects", "recorrido de objetos vivos (gc.get_objects)"), ("google.colab.drive", None),
    ("google", None), ("tqdm.auto.tqdm", None), ("foo.bar", "módulo desconocido: foo"),
    ("jax.grad", "otra biblioteca de diferenciación automática (jax.grad)"),
    ("numpy._core", "nombre privado de un módulo (numpy._core)"),
    ("pickle.dump", None), ("pickle.load", "carga con pickle (pickle.load)"), ("inspect.signature", None),
    ("inspect.currentframe", "acceso a marcos de ejecución (inspect.currentframe)"),
    ("inspect.getsource", "inspect.getsource no está permitido"), ("torch.load", "carga con pickle (torch.load)"),
])
def test_allow_list(ruta, esperado):
    assert allowlist.juzgar_ruta(ruta) == esperado


def test_a_spurious_systemerror_of_the_ast_constructor_is_retried(monkeypatch):
    """CPython 3.11's "AST constructor recursion depth mismatch" (threads of the coordinator) must not
    leave a notebook unreviewed: the parse is retried once."""
    import ast as ast_module
    real, calls = ast_module.parse, []

    def flaky(text, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=3, after=40)")
        return real(text, *args, **kwargs)

    monkeypatch.setattr(source.ast, "parse", flaky)
    attack = {"derivadas_codigo": _derivadas_con_relu(_X + "        return torch.autograd.grad(torch.relu(X).sum(), X)[0]\n")}
    resultado, _, _ = _revisar(attack)
    assert len(calls) > 1 and T_BASICAS in resultado.partes_marcadas()


@pytest.mark.parametrize("fuente, esperado", [
    ("a, (dL_dU, b) = f()\n", True), ("dL_dU: float = 1\n", True), ("if (dL_dU := 2):\n    pass\n", True),
    ("!ls\nfor k in r:\n    dL_dU += k\n", True), ("dL_dU = (\n", True), ("print(dL_dU == 1)\n", False),
    ("dL_dU == 1 (\n", False), ("x = 'dL_dU = 1'\n", False)])
def test_asigna_finds_the_cell_that_assigns_a_variable(fuente, esperado):
    """One implementation for the review and hidden's plans: any target, IPython syntax, and a text
    search in a cell that neither Python nor IPython can read."""
    assert source.asigna(fuente, "dL_dU") is esperado


def test_asigna_retries_a_spurious_systemerror(monkeypatch):
    """hidden's plans find the re-run cell through the same locked, retried parse as the review."""
    real, calls = source.ast.parse, []

    def flaky(text, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch")
        return real(text, *args, **kwargs)

    monkeypatch.setattr(source.ast, "parse", flaky)
    assert source.asigna("dL_dU = 1\n", "dL_dU") and len(calls) == 2


def test_the_review_lends_what_the_tests_lend_and_reviews_every_test():
    """The review's table comes from the course: the names it treats as lent are exactly those the
    hidden tests lend (ayudas.REFERENCIAS), and every hidden test has its roots."""
    from tarea2_grader.tarea2 import ayudas, hidden, review_roots
    assert review_roots._PRESTADOS == set(ayudas.REFERENCIAS)
    assert list(review_roots.PARTES_REVISION) == list(hidden.PRUEBAS)
