"""The report of ``make bench`` (``tools.bench_clase``): grades compared, goals, the Spanish section.

Every grades.csv row of a run is compared with the 1-worker run's, column by column
(:func:`compare_grades`); :func:`summarize` turns the runs into speedups, per-kind costs and the
goals met; :func:`render` writes the markdown section of ``docs/benchmark.md``.
"""
from __future__ import annotations

import csv
import os
import statistics
from typing import Dict, List, Optional, Sequence

from tools.bench_clase_mix import ADVERSARIES, KINDS
from tools.bench_clase_runs import PHASES

GOAL_CLASS = 300          # students ...
GOAL_CLASS_S = 600.0      # ... graded end to end within 10 minutes (2 workers)
GOAL_SPEEDUP = 1.8        # 2 workers vs 1, same students
GOAL_LOOP_S = 30.0        # seconds a looping student may cost
GOAL_BUDGET_SLACK = 2.0   # no student's sandbox time past the budget by more than this (issue 20)
GOAL_REPORT_SHARE = 0.10  # the course report (make informe) costs at most this share of the class run (issue 22)
PHASE_LABELS = {"preparacion": "preparación", "pregrade": "corrección en paralelo",
                "autograde": "pasada de nbgrader", "feedback": "retroalimentación", "notas": "notas"}


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

