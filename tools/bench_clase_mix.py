"""The synthetic class of ``make bench`` (``tools.bench_clase``): who is in it and what they hand in.

``--alumnos`` students in Moodle folders with distinct ids: one of each kind of :data:`KINDS`
first, then the kinds in a real class's proportions (:func:`kind_sequence`), the adversaries
last in a large class; their notebooks are built from the example submissions of
:mod:`tools.examples`.  Each run grades a fresh scratch course with the same recorded seeds.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Dict, List, Sequence

import nbformat

from tools import bench_end_to_end, examples
from tarea2_grader.__main__ import prepare_demo_course
from tarea2_grader.integration.course import Course
from tarea2_grader.engine import cells
from tarea2_grader.integration import seeds as seeds_file

# The class mix: (kind, example id or None, what it is, students per 50).  The first students are
# one of each kind, in this order (so any sample of 7 or more has them all); the rest follow the
# weights, interleaved.  Loops and kernel killers are rare in a real class: 1 in 50 each (the
# issue's own class had 1 looping student in 42); the untouched release 2 in 50.
# "alternativa" is the alternative correct answers in a plain notebook (no example has it alone).
KINDS = (
    ("referencia", "1001", "solución de referencia", 14),
    ("bucle", None, "`SGD.step` con un bucle infinito (la solución de referencia en lo demás)", 1),
    ("colab", "1004", "otra solución correcta guardada por Colab como «Copia de tarea2.ipynb»", 8),
    ("errores", "1003", "errores típicos en varias partes", 12),
    ("mata_kernel", "1006", "`os._exit` en la celda de CELoss", 1),
    ("sin_tocar", "1002", "el enunciado sin tocar", 2),
    ("alternativa", None, "otra solución correcta (estilo distinto), notebook normal", 12),
    # Adversaries (issue 20): weight 0, one of each at the end of a class of ADVERSARIES_FROM or more;
    # the reference solution apart from what is said.  Each must cost at most the budget + 2 s.
    ("dormilon", None, "cada celda de respuesta duerme justo bajo el límite por celda", 0),
    ("choques", None, "cada celda de respuesta termina su propio proceso (`os._exit`)", 0),
    ("hilos", None, "5000 hilos en una celda de respuesta", 0),
    ("salida_enorme", None, "una imagen de 40 MB en la salida de una celda", 0),
)
ADVERSARIES = tuple(k[0] for k in KINDS if k[3] == 0)
ADVERSARIES_FROM = 20  # smaller classes (the tests' samples) have none
FIRST_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Gabriela", "Hugo", "Irene",
               "Javier", "Karen", "Luis", "Marta", "Nicolas", "Olga", "Pablo", "Rocio")
LAST_NAMES = ("Torres", "Rojas", "Munoz", "Fuentes", "Vidal", "Soto", "Pinto", "Reyes", "Lagos",
              "Castro", "Vera", "Silva", "Nunez", "Araya")
FIRST_ID = 200001


@dataclasses.dataclass
class Student:
    """One synthetic student: id, Moodle folder, file name and kind of submission."""

    sid: str
    folder: str
    filename: str
    kind: str


def looping_step(sgd_source: str) -> str:
    """The SGD cell with a ``step`` that never returns: it is called by a check cell and by tests."""
    return sgd_source.replace("def step(self):", "def step(self):\n        while True:\n            pass", 1)


THREAD_FLOOD = """import threading
_parar = threading.Event()
for _ in range(5000):
    try:
        threading.Thread(target=_parar.wait, daemon=True).start()
    except RuntimeError:
        break
_parar.set()
"""
HUGE_IMAGE = """from IPython.display import Image, display
display(Image(data=b"\\x89PNG\\r\\n\\x1a\\n" + bytes(40_000_000), format="png"))
"""


def adversary_answers(reference: Dict[str, str], cell_seconds: float) -> Dict[str, Dict[str, str]]:
    """{adversary kind: answer cells}: the reference answers with what each adversary adds."""
    code = [gid for gid in cells.answer_cell_ids(examples.SOURCE) if gid in reference]
    first = code[0]
    return {
        "dormilon": {g: "import time\ntime.sleep({:g})\n".format(max(cell_seconds - 1, 0.5)) + reference[g] for g in code},
        "choques": {g: "import os\nos._exit(3)\n" + reference[g] for g in code},
        "hilos": {first: THREAD_FLOOD + reference[first]},
        "salida_enorme": {first: HUGE_IMAGE + reference[first]},
    }


def mix_texts(cell_seconds: float = 15.0) -> Dict[str, tuple]:
    """{kind: (file name, file text)} for every kind of :data:`KINDS` (``cell_seconds``: the cell limit)."""
    shipped = examples.submissions()
    reference = examples.reference_answers()
    built = {"alternativa": examples.fill(examples.alternative_answers(reference)),
             "bucle": examples.fill(dict(reference, sgd=looping_step(reference["sgd"])))}
    for kind, answers in adversary_answers(reference, cell_seconds).items():
        built[kind] = examples.fill(dict(reference, **answers))
    texts = {}
    for kind, example_id, _what, _weight in KINDS:
        if example_id is None:
            texts[kind] = ("tarea2.ipynb", nbformat.writes(built[kind]) + "\n")
        else:
            _folder, name, text = shipped[example_id]
            texts[kind] = (name, text)
    return texts


def kind_sequence(n: int) -> List[str]:
    """The kind of each of ``n`` students: one of each kind first, then by weight (smooth
    weighted round robin: every 50 students after the first ones follow the weights exactly)."""
    adversaries = list(ADVERSARIES) if n >= ADVERSARIES_FROM else []
    n -= len(adversaries)
    kinds = [k[0] for k in KINDS if k[3]][:n]
    weights = {k[0]: k[3] for k in KINDS if k[3]}
    total = sum(weights.values())
    current = dict.fromkeys(weights, 0)
    while len(kinds) < n:
        for kind in current:
            current[kind] += weights[kind]
        chosen = max(current, key=lambda k: current[k])  # first in KINDS order on ties
        current[chosen] -= total
        kinds.append(chosen)
    return kinds + adversaries


def roster(n: int) -> List[Student]:
    """``n`` students with distinct ids (same number of digits: sorted = created order)."""
    students = []
    for i, kind in enumerate(kind_sequence(n)):
        sid = str(FIRST_ID + i)
        name = "{} {}".format(FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)])
        students.append(Student(sid, examples.folder(name, sid), "", kind))
    return students


def write_class(out_dir: Path, students: Sequence[Student], texts: Dict[str, tuple]) -> None:
    """The class as an LMS bulk download unpacked in ``out_dir`` (one Moodle folder each)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    for st in students:
        name, text = texts[st.kind]
        st.filename = name
        examples.write(str(out_dir / st.folder / name), text)


def write_seeds(course: Course, chosen: Dict[str, int]) -> None:
    """The same recorded seeds (hidden inputs) in every course of the benchmark."""
    seeds_file.write(course.root, course.assignment, chosen)


def new_course(root: Path, class_dir: Path, seeds: Dict[str, int], stock: bool = False) -> Course:
    """A scratch course with the class's zip and seeds; ``stock``: without the trusted runner."""
    course = prepare_demo_course(str(root), str(class_dir))
    write_seeds(course, seeds)
    if stock:
        config = Path(course.path("nbgrader_config.py"))
        config.write_text(bench_end_to_end.stock_config(config.read_text(encoding="utf-8")), encoding="utf-8")
    return course
