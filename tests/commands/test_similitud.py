"""Copy detection per answer cell (tarea2_grader/commands/similitud.py): precision on real implementations.

Distinct implementations of each answer cell come from the repository's corpora: the reference
solution, the alternative solution and its correct variants (tests/support/submissions/alt_correct.py),
the typical cells and every wrong record built on them (wrong.py), the honest Colab corpus
(honest.py) and two derivations written here in a student's own words.  Cells built from one
another by a text edit (``X.replace(...)``, one mutation of a base cell) are one lineage: they are
copies by construction, and the test checks that they are, instead of trusting the list.
Planted copies are disguised the way students do it (renamed variables, reordered independent
statements, changed comments and blank lines, a reworded derivation); each must score above
every pair of distinct implementations, and none of those may reach the flag threshold.
"""
import difflib
import itertools
import json

import nbformat
import pytest

from tools import examples
from tarea2_grader.commands import fingerprints, similitud

from tests.support.disguises import DISGUISES, rename_variables
from tests.support.repo import load_submissions

AJUSTES = fingerprints.ComparisonSettings()
WRONG, ALT, HONEST = (load_submissions(n, "sim") for n in ("wrong", "alt_correct", "honest"))
REFERENCE = examples.reference_answers()
RELEASE = similitud.read_json_notebook(examples.RELEASE)
SOURCE = similitud.read_json_notebook(examples.SOURCE)
ANSWER_TYPES = {gid: tipo for gid, (tipo, _src) in similitud.cells_by_id(RELEASE).items()
                if gid in similitud.answer_ids(RELEASE)}

# Variants written as an edit of an alternative cell (alt_correct.py: DERIVADAS.replace, FFNN_CELL.replace).
DERIVED_FROM_ALT = ("relu_grad_bool", "ffnn_other_attribute_names", "ffnn_without_3b",
                    "ffnn_backward_recomputes_forward")

# Two derivations of dL_duLm1_md in a student's own words (different routes), and a reworded copy of the first.
DERIVACION_1 = r"""Sea $z = u^{(L+1)}$ y $p = \mathrm{softmax}(z)$. La pérdida de un ejemplo es $\ell = -\sum_c y_c \log p_c$.
Derivando el softmax: $\partial p_c / \partial z_k = p_c(\delta_{ck} - p_k)$.
Por regla de la cadena,
$$\frac{\partial \ell}{\partial z_k} = -\sum_c \frac{y_c}{p_c} p_c (\delta_{ck} - p_k) = -y_k + p_k \sum_c y_c = p_k - y_k$$
porque $y$ es one-hot y sus componentes suman uno. Como $L$ es el promedio sobre el batch de tamaño $B$,
cada fila se divide por $B$:
$$\frac{\partial L}{\partial u^{(L+1)}} = \frac{\hat{y} - y}{B}.$$
"""
DERIVACION_2 = r"""Para cada fila $i$ del batch, $\hat y_i = \text{softmax}(u_i)$ y la entropía cruzada es $-\sum_j y_{ij}\log\hat y_{ij}$.
Uso la identidad $\log \hat y_{ij} = u_{ij} - \log\sum_m e^{u_{im}}$, entonces la pérdida de la fila es
$-\sum_j y_{ij} u_{ij} + \log \sum_m e^{u_{im}}$ (pues $\sum_j y_{ij}=1$).
Derivando respecto de $u_{ik}$: el primer término da $-y_{ik}$ y el segundo da $e^{u_{ik}}/\sum_m e^{u_{im}} = \hat y_{ik}$.
Promediando sobre las $B$ filas queda $\dfrac{\partial \mathcal L}{\partial u^{(L+1)}} = \dfrac{1}{B}(\hat y - y)$, de forma $B\times C$.
"""
DERIVACION_1_REESCRITA = r"""Llamemos $z = u^{(L+1)}$ y $p = \mathrm{softmax}(z)$. Para un solo ejemplo la pérdida vale $\ell = -\sum_c y_c \log p_c$.
La derivada de la softmax es $\partial p_c / \partial z_k = p_c(\delta_{ck} - p_k)$.
Aplicando la cadena,
$$\frac{\partial \ell}{\partial z_k} = -\sum_c \frac{y_c}{p_c}\, p_c \left(\delta_{ck} - p_k\right) = -y_k + p_k \sum_c y_c = p_k - y_k$$
ya que $y$ es un vector one-hot cuyas entradas suman 1. Dado que $L$ promedia sobre un batch de $B$ ejemplos,
hay que dividir cada fila entre $B$:
$$\frac{\partial L}{\partial u^{(L+1)}} = \frac{\hat{y} - y}{B}.$$
"""


def implementations():
    """{grade_id: [(lineage, name, source)]} of every distinct-or-derived implementation in the repository."""
    found = {}

    def add(gid, lineage, name, src):
        found.setdefault(gid, []).append((lineage, name, src))

    for gid, src in REFERENCE.items():
        add(gid, "referencia", "referencia", src)
    for gid, src in ALT.CELLS.items():
        add(gid, "alternativa", "alternativa", src)
    for v in ALT.VARIANTS:
        for gid, src in v["cells"].items():
            add(gid, "alternativa" if v["name"] in DERIVED_FROM_ALT else "variante:" + v["name"], v["name"], src)
    for gid, src in WRONG.BASE_CELLS.items():
        add(gid, "wrong", "wrong:BASE", src)
    for r in WRONG.WRONG:
        for gid, src in r["cells"].items():
            add(gid, "wrong", "wrong:" + r["name"], src)
    for r in HONEST.HONEST:
        for gid, src in r["cells"].items():
            body = fingerprints.CODE_STUB_LINES.sub("", src).strip()
            lineage = "wrong" if body == HONEST.DERIVADAS.strip() else "honesto:" + body[:200]
            add(gid, lineage, "honesto:" + r["name"], src)
    add("dL_duLm1_md", "derivacion1", "derivacion1", DERIVACION_1)
    add("dL_duLm1_md", "derivacion2", "derivacion2", DERIVACION_2)
    return found


IMPLEMENTATIONS = implementations()


GIVEN = similitud.given_grams(RELEASE, AJUSTES)
REFERENCE_GRAMS = similitud.reference_grams(similitud.cells_by_id(SOURCE), list(ANSWER_TYPES), AJUSTES)


def cell(gid, src):
    """A fingerprinted answer cell, the release's own text removed."""
    return fingerprints.fingerprint_cell(ANSWER_TYPES[gid], src, GIVEN[gid], AJUSTES)


def sim(gid, a, b):
    """Similarity of two sources of one cell, reference fragments discounted (no class: nothing common)."""
    return similitud.similarity(cell(gid, a), cell(gid, b), set(), REFERENCE_GRAMS.get(gid, set()), AJUSTES)


# ---------------------------------------------------------------- disguises


def mostly_reference(gid, src):
    """Whether most of a cell's fingerprints are the reference's: the canonical way to write it (SGD's
    four lines), which a copy cannot be told apart from; the report discounts them on purpose."""
    prints = cell(gid, src).prints
    return sum(1 for h in prints if h in REFERENCE_GRAMS.get(gid, ())) > len(prints) / 2


def plants():
    """(grade_id, name, original, disguised copy) for every code cell long enough to compare that is
    not mostly the reference's code (one per lineage)."""
    out = []
    for gid, items in IMPLEMENTATIONS.items():
        if ANSWER_TYPES[gid] != "code":
            continue
        seen = set()
        for lineage, name, src in items:
            if lineage == "referencia" or lineage in seen or cell(gid, src).is_too_short(AJUSTES) \
                    or mostly_reference(gid, src):
                continue
            seen.add(lineage)
            for how, disguise in DISGUISES.items():
                out.append((gid, "{}~{}".format(name, how), src, disguise(src)))
    out.append(("dL_duLm1_md", "derivacion1~reescrita", DERIVACION_1, DERIVACION_1_REESCRITA))
    return out


PLANTS = plants()


def distinct_pairs():
    """(grade_id, name a, name b, similarity) of every pair of distinct lineages, both long enough."""
    out = []
    for gid, items in IMPLEMENTATIONS.items():
        for (la, na, a), (lb, nb, b) in itertools.combinations(items, 2):
            if la != lb and not cell(gid, a).is_too_short(AJUSTES) and not cell(gid, b).is_too_short(AJUSTES):
                out.append((gid, na, nb, sim(gid, a, b)))
    return out


# ---------------------------------------------------------------- the tests


def test_the_lineages_are_copies_by_construction():
    """What the test treats as one lineage really is one text edited: near-identical raw text."""
    alt_by_name = {v["name"]: v["cells"] for v in ALT.VARIANTS}
    for name in DERIVED_FROM_ALT:
        [(gid, src)] = alt_by_name[name].items()
        assert difflib.SequenceMatcher(None, src, ALT.CELLS[gid]).ratio() > 0.9, name
    assert difflib.SequenceMatcher(None, HONEST.DERIVADAS, WRONG.BASE_DERIVADAS).ratio() > 0.85


def test_disguises_change_the_text_but_keep_python_valid():
    for gid, name, original, copy in PLANTS:
        if ANSWER_TYPES[gid] == "code":
            assert copy != original or name.endswith("~reordenada"), name
            compile(fingerprints.CODE_STUB_LINES.sub("", copy), name, "exec")
    renamed = [p for p in PLANTS if p[1].endswith("~renombrada")]
    assert sum(1 for p in renamed if "mi_" in p[3]) == len(renamed)
    reordered = [p for p in PLANTS if p[1].endswith("~reordenada")]
    assert sum(1 for p in reordered if p[3] != p[2]) >= len(reordered) // 3


@pytest.mark.slow
def test_every_planted_copy_ranks_above_every_pair_of_distinct_implementations():
    distinct = distinct_pairs()
    planted = [(gid, name, sim(gid, original, copy)) for gid, name, original, copy in PLANTS]
    assert len(distinct) >= 300 and len(planted) > 40
    worst_distinct = max(distinct, key=lambda d: d[3])
    weakest_plant = min(planted, key=lambda p: p[2])
    assert weakest_plant[2] > worst_distinct[3], (weakest_plant, worst_distinct)
    assert worst_distinct[3] < AJUSTES.threshold, worst_distinct
    assert weakest_plant[2] >= AJUSTES.threshold, weakest_plant
    print("distinct pairs: {}, max {:.3f} {}; planted copies: {}, min {:.3f} {}".format(
        len(distinct), worst_distinct[3], worst_distinct[:3], len(planted), weakest_plant[2], weakest_plant[:2]))


def test_torch_functions_stay_apart_local_names_do_not():
    def texts(src):
        return [t.text for stmt in fingerprints.code_statements(src) for t in stmt]
    assert texts("y = torch.tanh(x)") != texts("y = torch.sigmoid(x)")
    assert texts("y = torch.tanh(x)  # hola\n\n") == texts("salida = torch.tanh(entrada)")
    assert texts("z = a.sum(dim=0)") != texts("z = a.mean(dim=0)")
    assert texts("self.pesos = W") == texts("self.Ws = W")


def notebook(answers):
    """The release notebook (JSON data) with answer cells replaced."""
    return json.loads(nbformat.writes(examples.fill(answers)))


def honest_class():
    """Students whose answers come from distinct lineages (reference, alternative, typical, honest)."""
    honest = {gid: src for r in HONEST.HONEST for gid, src in r["cells"].items() if gid != "derivadas_codigo"}
    return {"ref": dict(REFERENCE), "alt": dict(ALT.CELLS), "tipico": dict(WRONG.BASE_CELLS), "honesto": honest}


def test_one_cell_copied_among_honest_answers_is_the_only_flag():
    answers = honest_class()
    copier = {gid: src for v in ALT.VARIANTS if v["name"] not in DERIVED_FROM_ALT
              for gid, src in v["cells"].items()}  # the variants: a fifth way to write each cell
    copier["random_dataset"] = DISGUISES["todo"](ALT.CELLS["random_dataset"])
    students = {name: notebook(a) for name, a in answers.items()}
    students["copion"] = notebook(copier)
    res = similitud.compare(RELEASE, SOURCE, students, settings=AJUSTES)
    flagged = [(m.a, m.b, m.grade_id) for m in res.flagged()]
    assert flagged == [("alt", "copion", "random_dataset")], flagged
    assert res.groups() == [["alt", "copion"]]
    [m] = res.flagged()
    assert m.spans_a and m.spans_b and m.fragment


def test_an_untouched_release_shared_by_many_students_looks_like_nothing():
    students = {"s{:02d}".format(n): json.loads(json.dumps(RELEASE)) for n in range(30)}
    res = similitud.compare(RELEASE, SOURCE, students, settings=AJUSTES)
    assert res.matches == []
    assert all(sorted(res.too_short[gid]) == sorted(students) for gid in res.cell_ids)


@pytest.mark.slow
def test_partners_dismissals_and_earlier_years(tmp_path):
    copied = dict(WRONG.BASE_CELLS)
    copied["random_dataset"] = DISGUISES["todo"](ALT.CELLS["random_dataset"])
    students = {"a": notebook(ALT.CELLS), "b": notebook(copied), "c": notebook(copied)}
    partners = tmp_path / "informe_companeros.csv"
    partners.write_text("alumno_a,alumno_b\nb,c\n", encoding="utf-8")
    dismissals = tmp_path / "informe_descartes.csv"
    dismissals.write_text("alumno_a,alumno_b,celda,motivo\na,b,random_dataset,revisado en clase\n", encoding="utf-8")
    res = similitud.compare(RELEASE, SOURCE, students, settings=AJUSTES,
                            partners=similitud.read_partners(str(partners)),
                            dismissed=similitud.read_dismissals(str(dismissals)))
    states = {(m.a, m.b): m.status for m in res.matches if m.grade_id == "random_dataset"}
    assert states == {("a", "b"): "descartada", ("a", "c"): "marcada", ("b", "c"): "companeros"}
    # last year's submission of the same cell, in a bulk-download layout under antecedentes/
    old = tmp_path / "antecedentes" / "Ana Perez_9001_assignsubmission_file_"
    old.mkdir(parents=True)
    (old / "tarea2.ipynb").write_text(nbformat.writes(examples.fill({"sgd": HONEST.SGD_DECORADO})), encoding="utf-8")
    previous = similitud.antecedent_notebooks(str(tmp_path / "antecedentes"))
    students = {"d": notebook({"sgd": rename_variables(HONEST.SGD_DECORADO)}), "e": notebook(ALT.CELLS)}
    res = similitud.compare(RELEASE, SOURCE, students, previous, AJUSTES)
    assert [(m.a, m.b, m.grade_id) for m in res.flagged()] == [
        ("antecedentes/Ana Perez_9001_assignsubmission_file_/tarea2.ipynb", "d", "sgd")]


@pytest.mark.slow
def test_only_pairs_sharing_a_fingerprint_are_compared(monkeypatch):
    """40 students with unrelated answers: the index avoids the 780 comparisons per cell."""
    names = sorted(n for n in dir(__import__("torch")) if n.islower() and n.isalpha())[:400]
    students = {}
    for s in range(40):
        calls = names[s * 10:(s + 1) * 10]
        body = "".join("    v{0} = torch.{1}(v{2}, dim={0})\n".format(i, f, i - 1) for i, f in enumerate(calls, 1))
        students["s{:02d}".format(s)] = notebook({"entrenar": "def entrenar_FFNN(red, dataset, optimizador):\n"
                                                              "    v0 = red\n" + body + "    return v10\n"})
    calls = []
    real = similitud.similarity
    monkeypatch.setattr(similitud, "similarity", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = similitud.compare(RELEASE, SOURCE, students, settings=AJUSTES)
    assert not res.flagged()
    assert len(calls) < 100


def test_similarity_csv_fragments_cannot_be_formulas():
    for text in ("=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\t=1"):
        assert similitud.spreadsheet_safe(text).startswith("'")
    assert similitud.spreadsheet_safe("dL_dU = hL.T") == "dL_dU = hL.T"
