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
     runner (:func:`bench_end_to_end.stock_config`), ``generate_assignment``, ``zip_collect``,
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
   (:func:`bench_doc.write_section`), saying which goals were met, with the numbers.

Nothing here changes how grading works: it only runs the real commands and reads their files.
The class is built by :mod:`tools.bench_clase_mix`, the runs timed by :mod:`tools.bench_clase_runs`
and the grades compared and the report written by :mod:`tools.bench_clase_report`; here, the command.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from tools import bench_doc
from tools.bench_clase_mix import mix_texts, new_course, roster, write_class
from tools.bench_clase_report import (GOAL_CLASS, RUN_LABELS, compare_grades, grade_diffs, per_student, render,
                                      summarize)
from tools.bench_clase_runs import load1, run_report, run_stock, run_trusted
from tarea2_grader.commands import pregrading
from tarea2_grader.integration.course import Course

ROOT = bench_doc.ROOT
SECTION = "clase"


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
    p.add_argument("--salida", type=Path, default=bench_doc.DOC_PATH,
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
                                cpu=bench_doc.cpu_model(), cores=os.cpu_count(), load_start=load1()),
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
        bench_doc.write_section(args.salida, SECTION, text)
        print("escrito: {}".format(args.salida), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return 1 if any(grade_diffs(d) for d in results["diffs"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
