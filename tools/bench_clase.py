"""Benchmark of grading a whole class end to end (issue 8): ``make bench``.

Run ``python -m tools.bench_clase [--alumnos 300] [--muestra 42]``.

1. A synthetic class: ``--alumnos`` students in Moodle folders (distinct ids, one zip): one of
   each kind of :data:`KINDS` first, then the kinds in a real class's proportions (loops and
   kernel killers 1 in 50 each, :func:`kind_sequence`), built from the example submissions of
   :mod:`tools.examples` (two styles of correct answers, one of them saved by Colab and
   renamed, typical mistakes, an untouched release, an infinite loop, a kernel killer).
2. Each run grades a fresh scratch course (``__main__.prepare_demo_course``) with the same
   ``semillas.json``, hence the same hidden inputs, as the instructor does, in its own process:

   * ``1 trabajador`` and ``2 trabajadores`` on the first ``--muestra`` students (the same
     mix): ``python -m tarea2_grader grade --workers N``, i.e. ``make grade``;
   * ``nbgrader tal como viene`` on the same sample: the course config without the trusted
     runner (:func:`bench.stock_config`), ``generate_assignment``, ``zip_collect``,
     ``autograde``, ``generate_feedback`` and ``export`` (its grades.csv);
   * ``clase completa``: ``make grade --workers 2`` on the whole class; then, on that graded
     course, ``python -m tarea2_grader informe`` (``make informe``), timed on its own.

   Wall time is measured end to end (from starting the command to grades.csv) and per phase
   (the timestamps of the pipeline's ``== ... ==`` headers as they are printed); the cost of
   each student comes from the verdict cache (``veredictos/*.json``: ``alumno`` and
   ``resultado.segundos``).
3. Every grades.csv row of the 2-worker runs is compared with the 1-worker run's, column by
   column; every difference is reported (one in the ``observaciones`` notes alone, e.g. a cell
   that ran out of time under load in one run only, is listed but does not change a grade).
4. The report (Spanish) goes to stdout and to its own section of ``docs/benchmark.md``
   (:func:`bench.write_section`), saying which goals were met, with the numbers.

Nothing here changes how grading works: it only runs the real commands and reads their files.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import dataclasses
import datetime
import json
import os
import random
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import nbformat

from tools import bench
from tarea2_grader.engine import cells
from tools import examples
from tarea2_grader.integration import nbplugin
from tarea2_grader.commands import autograde_pass
from tarea2_grader.commands import pregrading
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.parallel import workers as parallel
from tarea2_grader.__main__ import prepare_demo_course

ROOT = bench.ROOT
SECTION = "clase"

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

GOAL_CLASS = 300          # students ...
GOAL_CLASS_S = 600.0      # ... graded end to end within 10 minutes (2 workers)
GOAL_SPEEDUP = 1.8        # 2 workers vs 1, same students
GOAL_LOOP_S = 30.0        # seconds a looping student may cost
GOAL_BUDGET_SLACK = 2.0   # no student's sandbox time past the budget by more than this (issue 20)
GOAL_REPORT_SHARE = 0.10  # the course report (make informe) costs at most this share of the class run (issue 22)

# The pipeline's headers (pipeline.grade prints them as each phase starts), in order.
PHASES = (("preparacion", None), ("pregrade", r"^== corrigiendo"), ("autograde", r"^== gradebook"),
          ("feedback", r"^== retroalimentaci"), ("notas", r"^== notas"))
PHASE_LABELS = {"preparacion": "preparación", "pregrade": "corrección en paralelo",
                "autograde": "pasada de nbgrader", "feedback": "retroalimentación", "notas": "notas"}


# --------------------------------------------------------------------------- the class

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


def write_seeds(course: Course, seeds: Dict[str, int]) -> None:
    """The same recorded seeds (hidden inputs) in every course of the benchmark."""
    with open(course.path(nbplugin.SEEDS_FILE), "w", encoding="utf-8") as fh:
        json.dump({course.assignment: seeds}, fh, indent=1, sort_keys=True)


def new_course(root: Path, class_dir: Path, seeds: Dict[str, int], stock: bool = False) -> Course:
    """A scratch course with the class's zip and seeds; ``stock``: without the trusted runner."""
    course = prepare_demo_course(str(root), str(class_dir))
    write_seeds(course, seeds)
    if stock:
        config = Path(course.path("nbgrader_config.py"))
        config.write_text(bench.stock_config(config.read_text(encoding="utf-8")), encoding="utf-8")
    return course


# --------------------------------------------------------------------------- runs

def load1() -> Optional[float]:
    """The 1-minute load average (None where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux ``PR_SET_CHILD_SUBREAPER``).

    A process whose parent exits first (a sandbox outliving its worker, say) is then reparented
    here instead of to init, and its CPU time reaches this process's ``RUSAGE_CHILDREN`` when it
    is reaped.  False where the system cannot do it (the CPU figures then miss such processes)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children_cpu() -> float:
    """CPU seconds (user + system) of every reaped descendant of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reap_orphans(grace: float = 30.0) -> int:
    """Reap the orphans adopted from a finished command, waiting ``grace`` seconds for them to
    exit and killing the rest.  Returns how many were still alive when the command ended."""
    import psutil
    left = []
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:  # zombies are dead, only not reaped yet
                left.append(child)
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + grace
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return len(left)
        if pid == 0:
            if time.monotonic() > deadline:
                for child in psutil.Process().children():
                    nbgrader_run.kill_tree(child.pid)
                deadline = float("inf")
            time.sleep(0.05)


def run_timed(cmd: Sequence[str], cwd: str, log_path: Path, timeout: float,
              markers: Sequence[tuple] = ()) -> dict:
    """Run ``cmd`` (stdout and stderr to ``log_path``); wall seconds, return code, the time at
    which each ``markers`` regex first matched a line of stdout (seconds since the start), and
    the CPU seconds of the command and all its descendants (``cpu_s``: None unless
    :func:`adopt_orphans` works here; ``orphans``: its processes still alive when it ended).

    Nothing else may run child processes of this process meanwhile: its orphans are reaped here."""
    seen: Dict[str, float] = {}
    compiled = [(name, re.compile(rx, re.M)) for name, rx in markers if rx]
    counted = adopt_orphans()
    cpu_start = children_cpu()
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=nbgrader_run.nbgrader_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def follow():
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace")
                log.write(line)
                for name, rx in compiled:
                    if name not in seen and rx.search(line):
                        seen[name] = time.perf_counter() - start

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            nbgrader_run.kill_tree(proc.pid)
            proc.wait()
        reader.join(timeout=30)
    wall = time.perf_counter() - start
    orphans = reap_orphans() if counted else None
    return {"wall_s": wall, "returncode": proc.returncode, "marks": seen,
            "cpu_s": children_cpu() - cpu_start if counted else None, "orphans": orphans}


def phase_seconds(marks: Dict[str, float], wall: float) -> Dict[str, Optional[float]]:
    """Seconds of each phase of :data:`PHASES` from the header times (None: header not seen)."""
    times = [0.0] + [marks.get(name) for name, _rx in PHASES[1:]] + [wall]
    out = {}
    for k, (name, _rx) in enumerate(PHASES):
        t0, t1 = times[k], times[k + 1]
        out[name] = None if t0 is None or t1 is None else t1 - t0
    return out


def verdict_costs(course: Course, field: str = "segundos") -> Dict[str, float]:
    """{student: seconds the grader spent on them} from the course's verdict cache (``field``:
    ``segundos``, the wall time of their grading, or ``sandbox_s``, what their budget was charged)."""
    folder = Path(course.path(parallel.CACHE_DIRNAME))
    costs = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        data = json.loads(path.read_text(encoding="utf-8"))
        student = str(data["alumno"])  # twice when nbgrader's pass graded them again: the worse
        costs[student] = max(costs.get(student, 0.0), float(data["resultado"].get(field, 0.0)))
    return costs


def run_trusted(name: str, course: Course, workers: int, work: Path, cell_timeout: Optional[float],
                students: int) -> dict:
    """``python -m tarea2_grader grade --workers N`` (``make grade``) on ``course``, timed."""
    cmd = [sys.executable, "-m", "tarea2_grader", "grade", "--course", course.root, "--workers", str(workers)]
    if cell_timeout:
        cmd += ["--timeout-celda", "{:g}".format(cell_timeout)]
    load_start = load1()
    run = run_timed(cmd, str(ROOT), work / (name + ".log"), timeout=900 + 120 * students, markers=PHASES)
    return dict(name=name, kind="trusted", workers=workers, students=students, root=course.root,
                command=shlex.join(["python", *cmd[1:3], "grade", "--workers", str(workers)]),
                wall_s=run["wall_s"], returncode=run["returncode"], cpu_s=run["cpu_s"], orphans=run["orphans"],
                phases=phase_seconds(run["marks"], run["wall_s"]), load_start=load_start, load_end=load1(),
                grades=str(Path(course.path("grades.csv"))), costs=verdict_costs(course),
                sandbox=verdict_costs(course, "sandbox_s"),
                from_cache=sorted(autograde_pass.passed_from_cache(course)),
                log=str(work / (name + ".log")))


def run_report(course: Course, work: Path, students: int) -> dict:
    """``python -m tarea2_grader informe`` (``make informe``) on a graded ``course``, timed."""
    cmd = [sys.executable, "-m", "tarea2_grader", "informe", "--course", course.root]
    log = work / "informe.log"
    run = run_timed(cmd, str(ROOT), log, timeout=600 + 2 * students)
    return dict(command=shlex.join(["python", *cmd[1:4]]), students=students, root=course.root,
                wall_s=run["wall_s"], returncode=run["returncode"], cpu_s=run["cpu_s"], log=str(log))


STOCK_STEPS = (("preparacion", ["generate_assignment", "--force"]), ("preparacion", ["zip_collect", "--force"]),
               ("autograde", ["autograde", "--force"]), ("feedback", ["generate_feedback", "--force"]),
               ("notas", ["export"]))


def run_stock(name: str, course: Course, work: Path, cell_timeout: Optional[float], students: int) -> dict:
    """Plain nbgrader commands on ``course`` (whose config has no trusted runner), timed."""
    phases = {p: 0.0 for p, _rx in PHASES}
    phases["pregrade"] = None
    load_start = load1()
    total, codes, cpu, orphans = 0.0, {}, 0.0, 0
    log = work / (name + ".log")
    log.write_text("", encoding="utf-8")
    for phase, args in STOCK_STEPS:
        args = [*args, course.assignment_arg] if args[0] != "export" else list(args)
        if args[0] == "autograde" and cell_timeout:
            args.append("--Execute.timeout={:d}".format(int(cell_timeout)))
        step_log = work / "{}-{}.log".format(name, args[0])
        run = run_timed([sys.executable, "-m", "nbgrader", *args], course.root, step_log,
                        timeout=600 + 120 * students)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(step_log.read_text(encoding="utf-8"))
        phases[phase] += run["wall_s"]
        total += run["wall_s"]
        cpu, orphans = (None if a is None or run[key] is None else a + run[key]
                        for a, key in ((cpu, "cpu_s"), (orphans, "orphans")))
        codes[args[0]] = run["returncode"]
    text = log.read_text(encoding="utf-8")
    failed = sorted(set(re.findall(r"There was an error processing assignment '[^']*' for student '([^']+)'", text)))
    return dict(name=name, kind="stock", workers=1, students=students, root=course.root,
                command="nbgrader generate_assignment, zip_collect, autograde, generate_feedback, export",
                wall_s=total, returncode=max(codes.values()), returncodes=codes, phases=phases,
                cpu_s=cpu, orphans=orphans,
                load_start=load_start, load_end=load1(), grades=course.path("grades.csv"), costs={},
                failed=failed, log=str(log))


# --------------------------------------------------------------------------- comparing grades

def read_grades(path) -> Dict[str, Dict[str, str]]:
    """grades.csv as {student_id: {column: text}} ({} when the run wrote none)."""
    if not os.path.exists(path):
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


NOTES_COLUMN = "observaciones"  # notes, not points: a difference there is reported, not a grade change


def grade_diffs(diffs: Sequence[dict]) -> List[dict]:
    """The differences that change a grade (every column but the notes)."""
    return [d for d in diffs if d["column"] != NOTES_COLUMN]


def compare_grades(reference_csv, other_csv, students: Sequence[str]) -> List[dict]:
    """Every difference between two grades.csv for ``students``: one dict per (student, column),
    column "(fila)" when the student has no row in one of them."""
    ref, other = read_grades(reference_csv), read_grades(other_csv)
    diffs = []
    for sid in students:
        a, b = ref.get(sid), other.get(sid)
        if a is None or b is None:
            diffs.append(dict(student=sid, column="(fila)", reference="falta" if a is None else "está",
                              other="falta" if b is None else "está"))
            continue
        for column in a:
            if a[column] != b.get(column):
                diffs.append(dict(student=sid, column=column, reference=a[column], other=b.get(column)))
    return diffs


# --------------------------------------------------------------------------- summary

def per_student(run: dict) -> float:
    """Wall seconds per student of one run."""
    return run["wall_s"] / max(1, run["students"])


def cores_busy(run: dict) -> Optional[float]:
    """How many cores the run kept busy on average: its CPU seconds over its wall seconds."""
    return run["cpu_s"] / run["wall_s"] if run.get("cpu_s") is not None and run["wall_s"] > 0 else None


def summarize(results: dict) -> dict:
    """Speedups, goals and per-kind costs from the runs (added to ``results``)."""
    runs = {r["name"]: r for r in results["runs"]}
    one, two, full = runs["uno"], runs.get("dos", runs["clase"]), runs["clase"]
    kinds = {s["sid"]: s["kind"] for s in results["class"]}
    costs = full["costs"]
    by_kind = {}
    for kind, _id, _what, _weight in KINDS:
        values = [c for sid, c in costs.items() if kinds.get(sid) == kind]
        if values:
            charged = [c for sid, c in full.get("sandbox", {}).items() if kinds.get(sid) == kind]
            by_kind[kind] = dict(n=len(values), median=statistics.median(values), max=max(values),
                                 sandbox_max=max(charged) if charged else None)
    slowest = max(costs.items(), key=lambda kv: kv[1]) if costs else None
    loops = [c for sid, c in costs.items() if kinds.get(sid) == "bucle"]
    for run in (one, runs.get("dos")) if "dos" in runs else (one,):
        loops += [c for sid, c in run["costs"].items() if kinds.get(sid) == "bucle"]
    ungraded = sorted(set(kinds) - set(costs))
    charged = [(c, sid, run["name"]) for run in results["runs"] for sid, c in run.get("sandbox", {}).items()]
    worst = max(charged) if charged else None
    pre_one, pre_two = one["phases"].get("pregrade"), two["phases"].get("pregrade")
    cores = results["machine"]["cores"] or 1
    ceiling = None
    if one.get("cpu_s") and two.get("cpu_s"):
        floor = two["cpu_s"] / cores  # seconds the 2-worker run needs with every core busy
        ceiling = dict(n=cores, cpu=two["cpu_s"], floor=floor, one=one["wall_s"],
                       busy=cores_busy(one), ceiling=one["wall_s"] / floor)
    summary = dict(
        speedup=one["wall_s"] / two["wall_s"], ceiling=ceiling,
        speedup_pregrade=(pre_one / pre_two) if pre_one and pre_two else None,
        per_student_full=per_student(full), rate_full=60.0 * full["students"] / full["wall_s"],
        projected_300=per_student(full) * GOAL_CLASS,
        by_kind=by_kind, slowest=slowest, loop_max=max(loops) if loops else None,
        budget_max=None if worst is None else dict(seconds=worst[0], student=worst[1], run=worst[2],
                                                  kind=kinds.get(worst[1])),
        not_in_cache=ungraded,
    )
    diffs = results["diffs"]
    summary["goals"] = dict(
        clase=summary["per_student_full"] * GOAL_CLASS <= GOAL_CLASS_S,
        aceleracion=summary["speedup"] >= GOAL_SPEEDUP,
        iguales=not any(grade_diffs(d) for d in diffs.values()),
        bucle=None if summary["loop_max"] is None else summary["loop_max"] <= GOAL_LOOP_S,
        presupuesto=None if worst is None else worst[0] <= results["args"]["budget"] + GOAL_BUDGET_SLACK,
        informe=report_goal(results.get("informe"), full),
    )
    report = results.get("informe")
    summary["informe_ratio"] = report["wall_s"] / full["wall_s"] if report else None
    results["summary"] = summary
    return summary


def report_goal(report: Optional[dict], full: dict) -> Optional[bool]:
    """Whether the course report cost at most :data:`GOAL_REPORT_SHARE` of the class run's wall time
    (None: not measured; a report that failed misses the goal)."""
    if not report:
        return None
    return report["returncode"] == 0 and report["wall_s"] <= GOAL_REPORT_SHARE * full["wall_s"]


def report_text(report: Optional[dict], full: dict) -> str:
    """The measured cost of the course report for the goals table."""
    if not report:
        return "—"
    if report["returncode"] != 0:
        return "falló (código {}; ver `informe.log` en la carpeta de trabajo)".format(report["returncode"])
    return ("{:.1f} s, {:.1f} % de los {:.0f} s de la clase completa ({} alumnos; esa corrida ya lo escribe una vez "
            "al terminar, como `make grade`)").format(report["wall_s"], 100 * report["wall_s"] / full["wall_s"],
                                                      full["wall_s"], full["students"])


# --------------------------------------------------------------------------- report

def _s(x: Optional[float], digits: int = 1) -> str:
    """A number for the tables ("—" when unknown)."""
    return "—" if x is None else "{:.{}f}".format(x, digits)


def _yes(flag: Optional[bool]) -> str:
    """A goal's verdict for the tables."""
    return "—" if flag is None else ("sí" if flag else "**no**")


def loop_text(summary: dict, args: dict) -> str:
    """The measured cost of the looping students, next to a correct one's and the cell limit."""
    if summary["loop_max"] is None:
        return "ninguno en la clase"
    text = "el peor, en todas las corridas: {:.1f} s (límite por celda: {:g} s".format(summary["loop_max"], args["cell_limit"])
    ref = summary["by_kind"].get("referencia")
    if ref:
        text += "; la solución de referencia: mediana {:.1f} s".format(ref["median"])
    return text + ")"


RUN_LABELS = {"uno": "1 trabajador", "dos": "2 trabajadores", "stock": "nbgrader tal como viene",
              "clase": "2 trabajadores, clase completa"}


def render(results: dict) -> str:
    """The Spanish markdown section of one benchmark run."""
    m, s, args = results["machine"], results["summary"], results["args"]
    n, sample = args["alumnos"], args["muestra"]
    lines = ["## Corrección de un curso completo (`make bench`)", ""]
    lines.append("- Fecha: {}".format(m["date"]))
    lines.append("- Máquina: CPU {}, {} núcleos; carga media 1 min {} al empezar, {} al terminar. La máquina "
                 "es compartida con otras tareas: las cifras son ruidosas (ver la carga de cada corrida)."
                 .format(m["cpu"], m["cores"], _s(m["load_start"]), _s(m["load_end"])))
    lines.append("- Comando: `{}` ({:.0f} s en total)".format(results["command"], results["elapsed_s"]))
    mix = ", ".join("{} ({})".format(kind, sum(1 for st in results["class"] if st["kind"] == kind))
                    for kind, _id, _what, _weight in KINDS)
    lines.append("- Curso sintético: {} alumnos en carpetas de Moodle dentro de un zip: {}. Los primeros son uno "
                 "de cada tipo; el resto sigue la proporción de una clase real, por cada 50 alumnos: {} "
                 "(en la clase de 42 del issue hubo 1 alumno con un bucle). Todas las corridas usan el mismo "
                 "`semillas.json` (las mismas entradas ocultas).".format(
                     n, mix, ", ".join("{} {}".format(k[3], k[0]) for k in KINDS)))
    lines.append("- Límites: los de `nbgrader_config.py`{}; nbgrader tal como viene: `Execute.timeout` de {}."
                 .format("" if not args["timeout_celda"] else ", con `--timeout-celda {:g}`".format(args["timeout_celda"]),
                         "{:g} s por celda".format(args["timeout_celda"]) if args["timeout_celda"]
                         else "30 s por celda (su valor por defecto)"))
    stock_n = args.get("muestra_nbgrader", sample)
    if sample < n or stock_n < n:
        lines.append("- **Muestra**: las corridas con 1 y con 2 trabajadores (para la aceleración) corrigen los "
                     "primeros {} alumnos y la de nbgrader tal como viene, los primeros {} (la misma mezcla), y se "
                     "informan por alumno; la clase completa de {} se corrige con 2 trabajadores.".format(
                         sample, stock_n, n))
    lines.append("")
    lines.append("### Corridas (segundos de pared, de punta a punta: recoger el zip → retroalimentación → grades.csv)")
    lines.append("")
    head = ["corrida", "alumnos", "total s", "s por alumno", "alumnos/min"] + [PHASE_LABELS[p] for p, _ in PHASES] + [
        "CPU s", "núcleos ocupados", "carga al empezar → terminar"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * (len(head) - 2) + "---|")
    for run in results["runs"]:
        cells = [RUN_LABELS[run["name"]], str(run["students"]), _s(run["wall_s"]), _s(per_student(run), 2),
                 _s(60.0 * run["students"] / run["wall_s"])]
        cells += [_s(run["phases"].get(p)) for p, _ in PHASES]
        cells += [_s(run.get("cpu_s")), _s(cores_busy(run), 2)]
        cells.append("{} → {}".format(_s(run["load_start"]), _s(run["load_end"])))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Fases: preparación = arrancar, sincronizar el gradebook y `zip_collect`; corrección en "
                 "paralelo = reparar cada notebook justo antes de corregirlo, el código de cada alumno en su "
                 "sandbox (los trabajadores), y mientras tanto "
                 "`nbgrader autograde` (un solo proceso) sobre cada alumno apenas está corregido; pasada de nbgrader = lo "
                 "que queda de `nbgrader autograde` (con los veredictos ya calculados) cuando terminan los "
                 "trabajadores; notas = grades.csv (`nbgrader export` "
                 "en la corrida de nbgrader tal como viene, que no tiene corrección en paralelo). CPU s = "
                 "segundos de CPU (usuario + sistema) del comando y de todos sus procesos, sandboxes incluidos; "
                 "núcleos ocupados = CPU s / total s.")
    for run in results["runs"]:
        again = sorted(set(run["costs"]) - set(run.get("from_cache", run["costs"])))
        if again:
            lines.append("")
            lines.append("**{}: la pasada de nbgrader volvió a corregir a {} alumno(s)** (no encontró sus veredictos "
                         "en `veredictos/`; ¿cambió el código de `tarea2_grader/` durante la corrida?): {}.".format(
                             RUN_LABELS[run["name"]], len(again), ", ".join(again)))
    stock = next((r for r in results["runs"] if r["name"] == "stock"), None)
    one = next(r for r in results["runs"] if r["name"] == "uno")
    if stock:
        extra = "; no pudo corregir a {} alumno(s): {}".format(len(stock["failed"]), ", ".join(stock["failed"])) \
            if stock["failed"] else ""
        lines.append("")
        lines.append("nbgrader tal como viene (el notebook entero en el kernel del estudiante, sin aislamiento ni "
                     "reparación): {:.2f} s por alumno, {:.2f} veces lo de 1 trabajador con el corrector confiable{}. "
                     "Sus notas no se comparan: los tests ocultos de este curso sólo se califican con el corrector "
                     "confiable y en nbgrader tal como viene dan 0 a propósito; su tiempo es el de ejecutar cada "
                     "notebook, generar la retroalimentación y exportar las notas.".format(
                         per_student(stock), per_student(stock) / per_student(one), extra))
    lines.append("")
    lines.append("### Metas")
    lines.append("")
    lines.append("| meta | medido | ¿cumplida? |")
    lines.append("|---|---|:---:|")
    full = next(r for r in results["runs"] if r["name"] == "clase")
    measured = "{} alumnos en {:.0f} s ({:.2f} s por alumno, {:.1f} alumnos/min)".format(
        full["students"], full["wall_s"], s["per_student_full"], s["rate_full"])
    if full["students"] != GOAL_CLASS:
        measured += "; proyección a {}: {:.0f} s".format(GOAL_CLASS, s["projected_300"])
    lines.append("| {} alumnos en ≤ 10 min con 2 trabajadores (≤ 2 s por alumno) | {} | {} |".format(
        GOAL_CLASS, measured, _yes(s["goals"]["clase"])))
    speed = "{:.2f}× de punta a punta en los mismos {} alumnos".format(s["speedup"], sample)
    if s["speedup_pregrade"]:
        speed += " ({:.2f}× en la corrección en paralelo)".format(s["speedup_pregrade"])
    if s.get("ceiling"):
        speed += ("; techo en {n} núcleos: la corrida de 2 trabajadores gastó {cpu:.0f} s de CPU, que {n} núcleos "
                  "no pueden hacer en menos de {floor:.0f} s, y 1 trabajador tardó {one:.0f} s (con {busy:.2f} "
                  "núcleos ocupados): como mucho {ceiling:.2f}×").format(**s["ceiling"])
    lines.append("| 2 trabajadores al menos {:g}× más rápido que 1 | {} | {} |".format(
        GOAL_SPEEDUP, speed, _yes(s["goals"]["aceleracion"])))
    compared = "; ".join("{}: {} alumnos, {} diferencia(s) en las notas y {} en las observaciones".format(
        RUN_LABELS[k], results["compared"][k], len(grade_diffs(v)), len(v) - len(grade_diffs(v)))
        for k, v in results["diffs"].items())
    lines.append("| cada nota igual a la de la corrida secuencial (grades.csv, columna por columna; las "
                 "observaciones se informan aparte) | {} | {} |".format(
        compared, _yes(s["goals"]["iguales"])))
    lines.append("| ningún alumno con un bucle cuesta más de {:g} s | {} | {} |".format(
        GOAL_LOOP_S, loop_text(s, results["args"]), 
        _yes(s["goals"]["bucle"])))
    worst = s.get("budget_max")
    lines.append("| ningún alumno gasta más que el presupuesto ({:g} s) + {:g} s de tiempo en el sandbox, haga lo que "
                 "haga (adversarios: {}) | {} | {} |".format(
                     args["budget"], GOAL_BUDGET_SLACK, ", ".join(ADVERSARIES),
                     "—" if worst is None else "el que más: {seconds:.1f} s, alumno {student} ({kind}, corrida {run})"
                     .format(**worst), _yes(s["goals"].get("presupuesto"))))
    lines.append("| el informe cuesta ≤ {:g} % de corregir la clase (`python -m tarea2_grader informe` sobre la "
                 "clase completa ya corregida) | {} | {} |".format(
                     100 * GOAL_REPORT_SHARE, report_text(results.get("informe"), full), _yes(s["goals"].get("informe"))))
    for key, diffs in results["diffs"].items():
        for d in diffs:
            lines.append("")
            lines.append("- **Diferencia** ({}): alumno {}, columna `{}`: secuencial «{}», {} «{}»".format(
                RUN_LABELS[key], d["student"], d["column"], d["reference"], RUN_LABELS[key], d["other"]))
    lines.append("")
    lines.append("### Costo por alumno según el tipo de entrega (clase completa, `veredictos/*.json`)")
    lines.append("")
    lines.append("| tipo | qué es | alumnos | mediana s | máximo s | sandbox máx. s (presupuesto) |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for kind, _id, what, _weight in KINDS:
        k = s["by_kind"].get(kind)
        if k:
            lines.append("| {} | {} | {} | {} | {} | {} |".format(kind, what, k["n"], _s(k["median"]), _s(k["max"]),
                                                             _s(k.get("sandbox_max"))))
    lines.append("")
    if s["slowest"]:
        sid, secs = s["slowest"]
        kind = next(st["kind"] for st in results["class"] if st["sid"] == sid)
        lines.append("El alumno más lento: {} ({}), {:.1f} s.".format(sid, kind, secs))
    if s["not_in_cache"]:
        lines.append("Sin veredicto en `veredictos/` (corregidos aparte o no corregidos): {}.".format(
            ", ".join(s["not_in_cache"])))
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def cell_limit(timeout_celda: Optional[float]) -> float:
    """Seconds per cell that ``make grade`` applies: the command line's, else the course config's."""
    from tarea2_grader.__main__ import autograde_args
    return pregrading.trusted_settings(Course(str(ROOT)), autograde_args(timeout_celda)).cell_timeout


def budget_limit() -> float:
    """Sandbox seconds per student that ``make grade`` charges at most (the course config's budget)."""
    return pregrading.trusted_settings(Course(str(ROOT))).budget


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench_clase",
                                description="Corrige un curso sintético de punta a punta (make bench) con 1 y 2 "
                                            "trabajadores y con nbgrader tal como viene, y escribe el informe.")
    p.add_argument("--alumnos", type=int, default=GOAL_CLASS, help="alumnos de la clase (por defecto %(default)s)")
    p.add_argument("--muestra", type=int, default=42,
                   help="alumnos de la muestra para 1 trabajador, 2 trabajadores y nbgrader tal como viene "
                        "(por defecto %(default)s; como mucho --alumnos)")
    p.add_argument("--muestra-nbgrader", type=int, default=None,
                   help="alumnos de la corrida de nbgrader tal como viene (por defecto, los de --muestra); "
                        "es la más lenta: con menos, el benchmark termina antes")
    p.add_argument("--timeout-celda", type=float, default=None,
                   help="segundos por celda (por defecto los de nbgrader_config.py; nbgrader tal como viene: 30)")
    p.add_argument("--semilla", type=int, default=2026, help="semilla de las semillas de los alumnos")
    p.add_argument("--trabajo", type=Path, default=None,
                   help="carpeta donde quedan los cursos y registros (por defecto una temporal que se borra)")
    p.add_argument("--salida", type=Path, default=bench.DOC_PATH,
                   help="markdown donde se escribe la sección (por defecto docs/benchmark.md)")
    p.add_argument("--json", type=Path, default=None, help="también los resultados en bruto, en JSON")
    p.add_argument("--ab", metavar="COMMIT", default=None,
                   help="en vez de todo lo anterior: A/B de la CPU del sandbox por alumno de referencia entre COMMIT "
                        "y este árbol (tools.bench_ab; --ab COMMIT --help para sus opciones)")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--ab" or a.startswith("--ab=") for a in argv):
        from tools import bench_ab
        return bench_ab.main(argv)
    args = parser().parse_args(argv)
    if args.alumnos < 1 or not 1 <= args.muestra or (args.muestra_nbgrader is not None and args.muestra_nbgrader < 1):
        print("--alumnos, --muestra y --muestra-nbgrader deben ser al menos 1", file=sys.stderr)
        return 2
    sample = min(args.muestra, args.alumnos)
    stock_sample = min(args.muestra_nbgrader or sample, args.alumnos)
    started = time.perf_counter()
    keep = args.trabajo is not None
    work = args.trabajo.resolve() if keep else Path(tempfile.mkdtemp(prefix="tarea2_bench_clase_"))
    if work.exists() and keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    def progress(msg):
        print("[bench {:5.0f} s] {}".format(time.perf_counter() - started, msg), file=sys.stderr, flush=True)

    results = dict(command=shlex.join(["python", "-m", "tools.bench_clase", *argv]),
                   args=dict(alumnos=args.alumnos, muestra=sample, muestra_nbgrader=stock_sample,
                             timeout_celda=args.timeout_celda,
                             cell_limit=cell_limit(args.timeout_celda), budget=budget_limit()),
                   machine=dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                cpu=bench.cpu_model(), cores=os.cpu_count(), load_start=load1()),
                   runs=[], diffs={}, compared={}, work=str(work))
    try:
        students = roster(args.alumnos)
        texts = mix_texts(results["args"]["cell_limit"])
        write_class(work / "clase", students, texts)
        write_class(work / "muestra", students[:sample], texts)
        if stock_sample != sample:
            write_class(work / "muestra_nbgrader", students[:stock_sample], texts)
        results["class"] = [dataclasses.asdict(st) for st in students]
        rng = random.Random(args.semilla)
        seeds = {st.sid: rng.getrandbits(62) for st in students}
        sample_ids = [st.sid for st in students[:sample]]

        stock_class = "muestra" if stock_sample == sample else "muestra_nbgrader"
        plan = [("uno", "muestra", 1), ("dos", "muestra", 2), ("stock", stock_class, None), ("clase", "clase", 2)]
        if sample == args.alumnos:
            plan = [p for p in plan if p[0] != "dos"]  # the whole class is the sample
        for name, which, workers in plan:
            n = {"muestra": sample, "muestra_nbgrader": stock_sample}.get(which, args.alumnos)
            course = new_course(work / ("curso_" + name), work / which, seeds, stock=workers is None)
            progress("{}: {} alumnos".format(RUN_LABELS[name], n))
            if workers is None:
                run = run_stock(name, course, work, args.timeout_celda, n)
            else:
                run = run_trusted(name, course, workers, work, args.timeout_celda, n)
            progress("{}: {:.0f} s ({:.2f} s por alumno), código {}".format(
                RUN_LABELS[name], run["wall_s"], per_student(run), run["returncode"]))
            results["runs"].append(run)
            if name == "clase":
                results["informe"] = run_report(course, work, n)
                progress("informe del curso: {:.1f} s, código {}".format(
                    results["informe"]["wall_s"], results["informe"]["returncode"]))
        runs = {r["name"]: r for r in results["runs"]}
        for name in ("dos", "clase"):
            if name in runs:
                results["diffs"][name] = compare_grades(runs["uno"]["grades"], runs[name]["grades"], sample_ids)
                results["compared"][name] = len(sample_ids)
        summarize(results)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_end"] = load1()
    results["elapsed_s"] = time.perf_counter() - started
    text = render(results)
    print(text)
    if args.salida:
        bench.write_section(args.salida, SECTION, text)
        print("escrito: {}".format(args.salida), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return 1 if any(grade_diffs(d) for d in results["diffs"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
