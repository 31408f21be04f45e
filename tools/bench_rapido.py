"""What each fast path saves (issue 21, item 4): ``python -m tools.bench_rapido [--alumnos 300] [--rondas 3]``.

One synthetic class (:mod:`tools.bench_clase`'s builder: the same mix, the same seeds in every
run) is graded by ``python -m tarea2_grader grade --workers N`` (``make grade``) under these
configurations (:mod:`tarea2_grader.integration.fastpaths`, set through the environment):

* ``todas``: every fast path on;
* ``ninguna``: ``TAREA2_RAPIDO=0``, stock nbgrader;
* ``sin_X`` for each path X: ``TAREA2_RAPIDO_SIN=X``, every path on but X;
* ``base`` with ``--base COMMIT``: that commit's package, source notebook, release and
  ``nbgrader_config.py``, extracted into the work folder (:func:`tools.bench_ab.materializar`),
  grade the same class (``PYTHONPATH`` and the working directory set there); the report gives new/base.

Each round grades every configuration once, on a fresh scratch course, in an order rotated by
one each round (alternated, so a slow moment of the machine does not fall on one configuration).
The medians of wall and CPU seconds (the command and all its descendants) go into a table; the
saving of path X is ``median(sin_X) - median(todas)``, also as a share of ``median(todas)``.
Every run's grades.csv is compared with the first ``todas`` run's (the seed column aside): a
difference is reported, and the exit status is 1.

``--veredictos-previos`` (warm verdicts): the first round starts with one cold ``todas`` run (the
whole ``make grade``: the reference for the shares), whose verdict cache (``veredictos/``) is then
copied into the scratch course of every configuration of every round (same seeds, so every key is
found).  The workers find every student in the cache, so those runs time what the fast paths
touch (start-up, the nbgrader pass, feedback, grades.csv) without the student code in the sandbox,
which no path changes.  A path's saving is measured on the warm runs and given as a share of the
cold run: one cold run is enough for a denominator (its noise moves a 3 % share by about a tenth
of a point); the savings, differences of warm runs, get the rounds.  On two saturated cores the
pass overlaps the workers in a cold run, so a warm wall saving is about an upper bound of the
cold one; CPU seconds add up either way.

``--una-vez A,B``: those configurations run in the first round only (a path whose saving is far
from the 5 % line needs no median to be placed).  Every run is appended to ``corridas.json`` in
the work folder as it ends; ``--resumir FILE`` writes the report from such a file (a benchmark
stopped early reports the rounds it finished).

The table (Spanish) is printed and written to ``docs/rapido.md``.  Nothing here changes grading.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from tarea2_grader.integration import fastpaths
from tarea2_grader.parallel.workers import CACHE_DIRNAME
from tools import bench, bench_ab, bench_clase

DOC_PATH = bench_clase.ROOT / "docs" / "rapido.md"
ALL_ON, ALL_OFF, COLD, BASE = "todas", "ninguna", "todas_en_frio", "base"
GOAL_BASE = 1.05  # issue 21: make grade at most 5 % slower than at the renovation's first commit
BASE_TREE = ("tarea2_grader", "source", "release", "nbgrader_config.py")  # what the base grades with


def configurations(paths: List[str], together: List[str] = (), all_off: bool = True,
                   base: Optional[Path] = None) -> Dict[str, Dict[str, str]]:
    """{configuration: environment it sets}: all on, all off, all on but each path, all on but
    the paths ``together`` at once (``sin_A+B``), and the checkout ``base`` (its package first)."""
    configs = {ALL_ON: {}}
    if base is not None:
        configs[BASE] = {"PYTHONPATH": str(base)}
    if all_off:
        configs[ALL_OFF] = {fastpaths.ENV_MASTER: "0"}
    for name in paths:
        configs["sin_" + name] = {fastpaths.ENV_WITHOUT: name}
    if together:
        configs["sin_" + "+".join(together)] = {fastpaths.ENV_WITHOUT: ",".join(together)}
    return configs


def rotated(names: List[str], round_number: int) -> List[str]:
    """``names`` rotated left by ``round_number`` (each round starts one configuration later)."""
    k = round_number % len(names)
    return names[k:] + names[:k]


def with_environment(env: Dict[str, str], run):
    """``run()`` with the variables of ``env`` set (and the other fast-path ones unset) meanwhile."""
    keys = (fastpaths.ENV_MASTER, fastpaths.ENV_WITHOUT, *env)
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in keys:
            os.environ.pop(k, None)
        os.environ.update(env)
        return run()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def use_checkout(course, tree: Path) -> None:
    """Give ``course`` the source notebook, release and ``nbgrader_config.py`` of checkout ``tree``."""
    for name in ("source", "release"):
        shutil.rmtree(course.path(name))
        shutil.copytree(tree / name, course.path(name))
    shutil.copy(tree / "nbgrader_config.py", course.path("nbgrader_config.py"))


def grade_once(name: str, env: Dict[str, str], work: Path, round_number: int, seeds, workers: int,
               timeout_celda: Optional[float], students: int, warm_from: Optional[Path] = None,
               keep_cache: Optional[Path] = None) -> dict:
    """One timed ``make grade`` of the class under configuration ``name``; its grades.csv is kept.

    ``warm_from``: a verdict cache copied into the scratch course first; ``keep_cache``: where the
    run's own verdict cache is copied to afterwards.  A ``PYTHONPATH`` in ``env`` names another
    checkout: it grades, from its own folder, with its own course files."""
    course = bench_clase.new_course(work / "curso", work / "clase", seeds)
    tree = Path(env["PYTHONPATH"]) if "PYTHONPATH" in env else bench_clase.ROOT
    if tree != bench_clase.ROOT:
        use_checkout(course, tree)
    if warm_from is not None:
        shutil.copytree(warm_from, course.path(CACHE_DIRNAME))
    tag = "{}_{}".format(name, round_number)
    run = with_environment(env, lambda: bench_clase.run_trusted(tag, course, workers, work, timeout_celda, students,
                                                                root=tree))
    kept = work / ("grades_" + tag + ".csv")
    if os.path.exists(run["grades"]):
        shutil.copy(run["grades"], kept)
    if keep_cache is not None and os.path.isdir(course.path(CACHE_DIRNAME)):
        shutil.rmtree(keep_cache, ignore_errors=True)
        shutil.copytree(course.path(CACHE_DIRNAME), keep_cache)
    shutil.rmtree(course.root, ignore_errors=True)
    return dict(config=name, round=round_number, wall_s=run["wall_s"], cpu_s=run["cpu_s"],
                returncode=run["returncode"], grades=str(kept), warm=warm_from is not None)


def mine_of(runs: List[dict], name: str) -> List[dict]:
    return [r for r in runs if r["config"] == name]


def summarize(runs: List[dict], configs: List[str], sids: List[str]) -> dict:
    """Medians per configuration, each path's saving, and the grade differences against all-on."""
    table = {}
    for name in configs:
        mine = mine_of(runs, name)
        table[name] = dict(wall=bench_ab.mediana([r["wall_s"] for r in mine]),
                           cpu=bench_ab.mediana([r["cpu_s"] for r in mine]),
                           runs=len(mine), failed=sum(1 for r in mine if r["returncode"] != 0))
    base = table[ALL_ON]
    whole = table.get(COLD, base)  # the shares are of a whole make grade: the cold run when there is one
    for name, row in table.items():
        for key in ("wall", "cpu"):
            delta = None if row[key] is None or base[key] is None or name == COLD else row[key] - base[key]
            row[key + "_saving"] = delta
            row[key + "_share"] = delta / whole[key] if delta is not None and whole[key] else None
    reference = next(r["grades"] for r in runs if r["config"] == ALL_ON)
    diffs = []
    for r in runs:
        if os.path.exists(r["grades"]):
            found = bench_clase.compare_grades(reference, r["grades"], sids)
        else:
            found = [dict(student="*", column="grades.csv", reference="está", other="falta")]
        diffs += [dict(d, config=r["config"], round=r["round"]) for d in found if d["column"] != "semilla"]
    return dict(table=table, diffs=diffs)


def _s(x: Optional[float]) -> str:
    return "—" if x is None else "{:.1f}".format(x)


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else "{:+.1f} %".format(100 * x)


def render(results: dict) -> str:
    """The report in Spanish markdown."""
    args, summary = results["args"], results["summary"]
    lines = ["# Ahorro de cada ruta rápida", "",
             "`{}` ({}; {} núcleos; {}).".format(results["command"], results["machine"]["cpu"],
                                                results["machine"]["cores"], results["machine"]["date"]),
             "Clase sintética de {} alumnos, `make grade --workers {}`, {} ronda(s) alternadas; medianas. "
             "Ahorro de una ruta = tiempo sin ella − tiempo con todas (en % del tiempo con todas{}).".format(
                 args["alumnos"], args["workers"], args["rondas"],
                 " en frío" if args.get("calientes") else ""), ""]
    if args.get("calientes"):
        lines += ["Con `--veredictos-previos`: la primera ronda empieza con una corrida completa en frío (`{}`), y "
                  "todas las demás parten de sus veredictos ya calculados (`veredictos/`): los trabajadores "
                  "no vuelven a correr el código de los alumnos, que ninguna ruta cambia, y el tiempo medido es "
                  "el de arrancar, la pasada de nbgrader, la retroalimentación y grades.csv. Con 2 núcleos "
                  "ocupados, en frío la pasada se superpone a los trabajadores, así que el ahorro de pared en "
                  "frío puede ser menor que el medido así; los segundos de CPU se suman igual.".format(COLD), ""]
    lines += ["| configuración | pared (s) | CPU (s) | ahorro pared | ahorro CPU | corridas | fallidas |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in summary["table"].items():
        plain = name in (ALL_ON, COLD)
        saving = "" if plain else "{} s ({})".format(_s(row["wall_saving"]), _pct(row["wall_share"]))
        cpu = "" if plain else "{} s ({})".format(_s(row["cpu_saving"]), _pct(row["cpu_share"]))
        lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            name, _s(row["wall"]), _s(row["cpu"]), saving, cpu, row["runs"], row["failed"]))
    known = [n for n in results["paths"] if n in fastpaths.PATHS]
    base, new = summary["table"].get(BASE), summary["table"][ALL_ON]
    if base:
        wall, cpu = bench_ab.razon(new["wall"], base["wall"]), bench_ab.razon(new["cpu"], base["cpu"])
        lines += ["", "Frente a `base` ({}): `todas`/`base` = {} en pared y {} en CPU (meta: a lo más {:.2f}).".format(
            results.get("base_commit", "?"), "—" if wall is None else "{:.3f}".format(wall),
            "—" if cpu is None else "{:.3f}".format(cpu), GOAL_BASE)]
    lines += ["", "Rutas (tarea2_grader/integration/fastpaths.py):", "", "```",
              fastpaths.describe(known), "```", ""] if known else [""]
    if summary["diffs"]:
        lines.append("**Notas distintas de las de `todas`** ({}):".format(len(summary["diffs"])))
        lines += ["- {config} (ronda {round}), alumno {student}, {column}: {reference} → {other}".format(**d)
                  for d in summary["diffs"][:50]]
    else:
        lines.append("Las notas (grades.csv, sin la columna semilla) son idénticas en todas las corridas.")
    lines.append("")
    if results["args"].get("una_vez"):
        lines.append("Medidas solo en la primera ronda: {}.".format(", ".join(results["args"]["una_vez"])))
    if results.get("elapsed_s") is not None:
        lines.append("Duración del benchmark: {:.0f} s.".format(results["elapsed_s"]))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench_rapido",
                                description="Mide cuánto ahorra cada ruta rápida corrigiendo una clase sintética.")
    p.add_argument("--alumnos", type=int, default=bench_clase.GOAL_CLASS, help="alumnos (por defecto %(default)s)")
    p.add_argument("--rondas", type=int, default=3, help="rondas alternadas (por defecto %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="trabajadores de make grade (por defecto %(default)s)")
    p.add_argument("--rutas", default=",".join(fastpaths.PATHS),
                   help="rutas a medir una por una, separadas por comas (por defecto todas)")
    p.add_argument("--timeout-celda", type=float, default=None, help="segundos por celda (por defecto la config)")
    p.add_argument("--semilla", type=int, default=2026, help="semilla de las semillas de los alumnos")
    p.add_argument("--trabajo", type=Path, default=None, help="carpeta de trabajo (por defecto una temporal)")
    p.add_argument("--juntas", default="",
                   help="además, todas las rutas menos estas a la vez (separadas por comas)")
    p.add_argument("--sin-ninguna", action="store_true", help="no medir la configuración sin ninguna ruta")
    p.add_argument("--veredictos-previos", action="store_true",
                   help="una corrida completa en frío y las configuraciones con sus veredictos ya calculados")
    p.add_argument("--una-vez", default="", help="configuraciones que corren solo en la primera ronda (separadas por comas)")
    p.add_argument("--lejos", type=float, default=None,
                   help="tras la primera ronda, no repetir las configuraciones cuyo ahorro pasa esta fracción del total (p. ej. 0.2)")
    p.add_argument("--base", default=None,
                   help="un commit de este repositorio que corrige la misma clase (p. ej. el primero de la renovación)")
    p.add_argument("--resumir", type=Path, default=None, help="escribir el informe desde un corridas.json guardado")
    p.add_argument("--salida", type=Path, default=DOC_PATH, help="markdown de salida (por defecto docs/rapido.md)")
    return p


RUNS_FILE = "corridas.json"


def save_run(work: Path, run: dict, runs: List[dict], context: dict) -> None:
    """Append ``run`` to ``runs`` and rewrite ``corridas.json`` (runs and context) in ``work``."""
    runs.append(run)
    tmp = work / (RUNS_FILE + ".tmp")
    tmp.write_text(json.dumps(dict(context, runs=runs), indent=1), encoding="utf-8")
    os.replace(tmp, work / RUNS_FILE)


def announce(started: float, r: int, run: dict) -> None:
    print("[bench {:5.0f} s] ronda {} {}: {:.1f} s pared, {} s CPU, código {}".format(
        time.perf_counter() - started, r + 1, run["config"], run["wall_s"],
        "?" if run["cpu_s"] is None else "{:.1f}".format(run["cpu_s"]), run["returncode"]), file=sys.stderr, flush=True)


def measure(args, work: Path, configs: Dict[str, Dict[str, str]], once: List[str], context: dict) -> List[dict]:
    """Every round's runs (the cold one first when ``--veredictos-previos``), saved as they end."""
    students = bench_clase.roster(args.alumnos)
    bench_clase.write_class(work / "clase", students, bench_clase.mix_texts(bench_clase.cell_limit(args.timeout_celda)))
    rng = random.Random(args.semilla)
    seeds = {st.sid: rng.getrandbits(62) for st in students}
    started, runs, warm = time.perf_counter(), [], None
    grade = lambda name, env, r, **kw: grade_once(name, env, work, r, seeds, args.workers, args.timeout_celda,
                                                  args.alumnos, **kw)
    if args.veredictos_previos:
        warm = work / "veredictos_previos"
        run = grade(COLD, {}, 0, keep_cache=warm)
        save_run(work, run, runs, context)
        announce(started, 0, run)
        if run["returncode"] != 0 or not warm.is_dir():
            raise SystemExit("la corrida en frío falló (código {}): ver {}".format(
                run["returncode"], work / (COLD + "_0.log")))
    for r in range(args.rondas):
        for name in rotated(list(configs), r):
            if r > 0 and name in once:
                continue
            run = grade(name, configs[name], r, warm_from=warm)
            save_run(work, run, runs, context)
            announce(started, r, run)
        if r == 0 and args.lejos:
            far = far_from_the_line(runs, args.lejos)
            once = list(once) + [n for n in far if n not in once]
            context["args"]["una_vez"] = once
            print("[bench] solo en la primera ronda (ahorro > {:.0%} del total): {}".format(
                args.lejos, ", ".join(far) or "ninguna"), file=sys.stderr, flush=True)
    return runs


def far_from_the_line(runs: List[dict], share: float) -> List[str]:
    """The configurations whose first-round wall saving exceeds ``share`` of the whole make grade
    (the cold run, else all-on): they are far from the 5 % line, one run places them."""
    first = {r["config"]: r["wall_s"] for r in runs if r["round"] == 0 and r["returncode"] == 0}
    base, whole = first.get(ALL_ON), first.get(COLD, first.get(ALL_ON))
    if not base or not whole:
        return []
    return [n for n, w in first.items() if n not in (ALL_ON, COLD) and w - base > share * whole]


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.resumir:
        saved = json.loads(args.resumir.read_text(encoding="utf-8"))
        runs, context = saved.pop("runs"), saved
        elapsed = None
    else:
        paths = [n.strip() for n in args.rutas.split(",") if n.strip()]
        together = [n.strip() for n in args.juntas.split(",") if n.strip()]
        once = [n.strip() for n in args.una_vez.split(",") if n.strip()]
        unknown = [n for n in paths + together if n not in fastpaths.PATHS]
        if unknown or args.alumnos < 1 or args.rondas < 1:
            print("rutas desconocidas: {}; --alumnos y --rondas deben ser al menos 1".format(unknown), file=sys.stderr)
            return 2
        started = time.perf_counter()
        work = args.trabajo.resolve() if args.trabajo else Path(tempfile.mkdtemp(prefix="tarea2_bench_rapido_"))
        work.mkdir(parents=True, exist_ok=True)
        base = bench_ab.materializar(args.base, work / "base", rutas=BASE_TREE) if args.base else None
        configs = configurations(paths, together, all_off=not args.sin_ninguna, base=base)
        context = dict(command="python -m tools.bench_rapido " + " ".join(argv if argv is not None else sys.argv[1:]),
                       args=dict(alumnos=args.alumnos, rondas=args.rondas, workers=args.workers,
                                 calientes=args.veredictos_previos, una_vez=once),
                       base_commit=bench_ab.describir(args.base) if base else None, paths=paths, names=([COLD] if args.veredictos_previos else []) + list(configs),
                       sids=[st.sid for st in bench_clase.roster(args.alumnos)],
                       machine=dict(cpu=bench.cpu_model(), cores=os.cpu_count(),
                                    date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
        try:
            runs = measure(args, work, configs, once, context)
        finally:
            if not args.trabajo:
                shutil.rmtree(work, ignore_errors=True)
        elapsed = time.perf_counter() - started
    names = [n for n in context["names"] if any(r["config"] == n for r in runs)]
    summary = summarize(runs, names, context["sids"])
    results = dict(context, summary=summary, elapsed_s=elapsed)
    text = render(results)
    print(text)
    args.salida.parent.mkdir(parents=True, exist_ok=True)
    args.salida.write_text(text + "\n", encoding="utf-8")
    print("escrito: {}".format(args.salida), file=sys.stderr)
    return 1 if summary["diffs"] else 0


if __name__ == "__main__":
    sys.exit(main())
