"""Generate the example submissions in ``examples/`` that ``make demo`` grades.

Run ``python -m tools.examples`` after changing the source notebook (and
``make release``).  Each example is a Moodle-style folder
``<Nombre Apellido>_<id>_assignsubmission_file_/<file>.ipynb`` built from the
release notebook (what students receive) plus answer sources:

* 1001 perfect: the reference solutions, hidden tests absent as in any real submission;
* 1002 empty: the release untouched;
* 1003 typical mistakes: wrong cells from ``tests/submissions/wrong.py`` (or our own);
* 1004 Colab: an alternative correct solution saved by Colab as "Copia de tarea2.ipynb"
  (nbformat 4.0, Colab metadata, per-cell ids, lost nbgrader metadata, a duplicated test cell);
* 1005 misbehaving: an infinite loop in the optional MNIST cell, warnings on stderr and an
  attempt to cheat by patching ``torch.allclose`` and ``math.isclose``;
* 1006 kernel killer: calls ``os._exit`` in the CELoss cell;
* 1007 corrupt: a file that is not a notebook.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
from typing import Dict, Tuple

import nbformat

from tarea2_grader.integration.pauta import PY_KEY, RUBRIC

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(REPO, "source", "tarea2", "tarea2.ipynb")
RELEASE = os.path.join(REPO, "release", "tarea2", "tarea2.ipynb")
EXAMPLES = os.path.join(REPO, "examples")
SUBMISSIONS = os.path.join(REPO, "tests", "support", "submissions")

MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
WRONG_PICKS = ("relu_grad_from_output", "celoss_sum", "capa_fprime_at_output", "sgd_rebinds_parameter")
ALT_PICKS = ("derivadas_codigo", "celoss", "dL_duLm1", "ultima_capa", "capas_escondidas", "sgd",
             "random_dataset")
COLAB_LOST_META = ("test_celoss", "celoss", "ultima_capa_md")
COLAB_DUPLICATE = "test_dataset"


def folder(name: str, student_id: str) -> str:
    """Moodle's per-student folder name."""
    return "{}_{}_assignsubmission_file_".format(name, student_id)


def load_module(path: str):
    """Import a Python file by path (None when it does not exist)."""
    if not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_teacher_notes(source: str) -> str:
    """An answer as a student would write it: the key without the rubric and the keys' Python lines."""
    stripped = PY_KEY.sub("", RUBRIC.sub("", source))
    return source if stripped == source else re.sub(r"\n{3,}", "\n\n", stripped)


def reference_answers() -> Dict[str, str]:
    """Answer cell sources of the source notebook, solution markers and teacher notes removed."""
    nb = nbformat.read(SOURCE, as_version=4)
    answers = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answers[meta["grade_id"]] = without_teacher_notes(MARKER.sub("", cell.source)).rstrip() + "\n"
    return answers


def fill(answers: Dict[str, str]) -> nbformat.NotebookNode:
    """The release notebook with some answer cells replaced."""
    nb = nbformat.read(RELEASE, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[gid]
    return nb


def wrong_answers(reference: Dict[str, str]) -> Dict[str, str]:
    """Reference answers with typical mistakes in a few cells of different parts."""
    wrong = load_module(os.path.join(SUBMISSIONS, "wrong.py"))
    answers = dict(reference)
    if wrong is not None and hasattr(wrong, "WRONG"):
        records = {r["name"]: r for r in wrong.WRONG}
        for name in WRONG_PICKS:
            if name in records:
                answers.update(records[name]["cells"])
        return answers
    swaps = {"celoss": (".mean()", ".sum()"), "sgd": ("p -= ", "p = p - ")}
    for gid, (old, new) in swaps.items():
        if gid in answers and old in answers[gid]:
            answers[gid] = answers[gid].replace(old, new, 1)
    return answers


def alternative_answers(reference: Dict[str, str]) -> Dict[str, str]:
    """Parts 1, 2 and 4a-b from the alternative correct solution (tests/submissions/alt_correct.py).

    The network and training cells stay the reference's, to keep ``make demo`` short.
    """
    alt = load_module(os.path.join(SUBMISSIONS, "alt_correct.py"))
    answers = dict(reference)
    if alt is not None and hasattr(alt, "CELLS"):
        answers.update({gid: src for gid, src in alt.CELLS.items() if gid in ALT_PICKS})
    return answers


def misbehaving_answers(reference: Dict[str, str]) -> Dict[str, str]:
    """Correct answers plus a stuck cell, stderr warnings and a cheating attempt (wrong CELoss)."""
    answers = dict(reference)
    answers["derivadas_codigo"] = ("import warnings\n" + answers["derivadas_codigo"]
                                   + "\nwarnings.warn('UserWarning: probando derivadas')\n")
    answers["celoss"] = (
        "import math\nimport torch\n\n"
        "# «Truco»: que toda comparación dé verdadera.\n"
        "torch.allclose = lambda *args, **kwargs: True\n"
        "math.isclose = lambda *args, **kwargs: True\n\n"
        "def CELoss(Q, P, estable=True, epsilon=1e-8):\n"
        "    return torch.tensor(0.0, dtype=Q.dtype)\n")
    answers["mnist"] = "# Entreno \"para siempre\"...\nwhile True:\n    pass\n"
    return answers


def killer_answers(reference: Dict[str, str]) -> Dict[str, str]:
    """Correct answers, but the CELoss cell ends the kernel process."""
    answers = dict(reference)
    answers["celoss"] = answers["celoss"] + "\nimport os\nos._exit(0)  # «para reiniciar el entorno»\n"
    return answers


def edit_cells(nb: nbformat.NotebookNode, answers=None, drop_meta=(), delete=(), duplicate=()):
    """A copy of ``nb`` edited by grade_id, as students edit notebooks.

    answers: {grade_id: new source}; drop_meta: cells whose nbgrader metadata is lost;
    delete: cells removed; duplicate: cells copied right after themselves.
    """
    nb = copy.deepcopy(nb)
    answers = answers or {}
    cells = []
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in delete:
            continue
        if gid in answers:
            cell.source = answers[gid]
        cells.append(cell)
        if gid in duplicate:
            twin = copy.deepcopy(cell)
            twin["id"] = cell["id"] + "-copia"
            cells.append(twin)
        if gid in drop_meta:
            del cell.metadata["nbgrader"]
    nb.cells = cells
    return nb


def colab_json(nb: nbformat.NotebookNode) -> str:
    """The JSON text Colab saves: nbformat 4.0, its own metadata, metadata.id per cell."""
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = 0
    data["metadata"] = {"colab": {"provenance": [], "name": "Copia de tarea2.ipynb"},
                        "accelerator": "GPU", "gpuClass": "standard",
                        "kernelspec": {"name": "python3", "display_name": "Python 3"}}
    for n, cell in enumerate(data["cells"]):
        cell.pop("id", None)
        cell["metadata"]["id"] = "c0lab{:03d}xYz".format(n)
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def write(path: str, text: str) -> None:
    """Write a text file, creating folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def submissions() -> Dict[str, Tuple[str, str, str]]:
    """Every example as {student id: (Moodle folder, file name, file text)}, nothing written."""
    ref = reference_answers()
    return {
        "1001": (folder("Ana Torres", "1001"), "tarea2.ipynb", nbformat.writes(fill(ref)) + "\n"),
        "1002": (folder("Bruno Rojas", "1002"), "tarea2.ipynb", nbformat.writes(fill({})) + "\n"),
        "1003": (folder("Carla Munoz", "1003"), "tarea2.ipynb",
                 nbformat.writes(fill(wrong_answers(ref))) + "\n"),
        "1004": (folder("Diego Fuentes", "1004"), "Copia de tarea2.ipynb",
                 colab_json(edit_cells(fill(alternative_answers(ref)), drop_meta=COLAB_LOST_META,
                                       duplicate=(COLAB_DUPLICATE,)))),
        "1005": (folder("Elena Vidal", "1005"), "tarea2 (1).ipynb",
                 nbformat.writes(fill(misbehaving_answers(ref))) + "\n"),
        "1006": (folder("Felipe Soto", "1006"), "tarea2.ipynb",
                 nbformat.writes(fill(killer_answers(ref))) + "\n"),
        "1007": (folder("Gabriela Pinto", "1007"), "tarea2.ipynb",
                 "<html><body>Error 404: el archivo no se descargó bien</body></html>\n"),
    }


def generate(out_dir: str = EXAMPLES) -> Dict[str, str]:
    """Write every example under ``out_dir``; return {student id: relative path}."""
    examples = submissions()
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    written = {}
    for sid, (sub, name, text) in examples.items():
        rel = os.path.join(sub, name)
        write(os.path.join(out_dir, rel), text)
        written[sid] = rel
    return written


def main() -> None:
    """Regenerate examples/."""
    for sid, rel in generate().items():
        print("{}  examples/{}".format(sid, rel))


if __name__ == "__main__":
    main()
