"""A/B of the sandbox CPU per reference student, a base commit against this tree (issue 19, goal e).

Run ``make bench BENCH_ARGS="--ab b9cea39"``, i.e.
``python -m tools.bench_clase --ab b9cea39 [--rondas 3] [--alumnos 6]``.

1. The base commit's ``tarea2_grader/``, ``source/`` and ``nbgrader_config.py`` are extracted
   into a temporary folder (``git archive``, :func:`materializar`), removed at the end.  The new
   side is the tree this module runs from (uncommitted changes included; the report says so).
2. ``--rondas`` rounds; in each, one fresh interpreter per side (this one, ``sys.executable``,
   with ``PYTHONPATH`` set to that side's tree) runs :mod:`tools.bench_ab_lado`: it grades
   its own commit's source notebook (the reference solution) with
   ``runner.grade(nb, seed, until_last_test=True)``, first one warm-up student (it pays for
   starting the sandbox: reported apart, not in the medians), then ``--alumnos`` students.  Both
   sides of a round get the same seeds; rounds get different ones.  The order alternates
   (base first, then new first, ...), so a load that drifts during the run weighs on both.
3. Per student: the sandbox CPU (the sandbox tree's user + system seconds), the trusted CPU (the
   grading process's own) and wall time (:mod:`tools.bench_ab_lado`).
4. The report (Spanish): the median sandbox CPU per reference student on each side over all
   rounds, the ratio new/base against the goal (at most :data:`META`), the medians of each round,
   the load.  It is printed and written to its section of ``docs/benchmark.md``.

Every student on both sides must get the notebook's full automatic points, in a sandbox;
otherwise the measurement is not valid: the report says so, nothing is written to the doc, and
the exit status is 3.  A valid run exits 0 when the goal is met, 1 when it is not.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
SECTION = "ab"
META = 1.10  # goal (e): the median sandbox CPU per reference student rises by at most 10%
ARBOL = ("tarea2_grader", "source", "nbgrader_config.py")  # what a side needs to grade
NOTEBOOK = Path("source") / "tarea2" / "tarea2.ipynb"
LADOS = ("base", "nuevo")
INVALIDA = 3  # exit status of a run whose measurement is not valid

# Loads bench_ab_lado.py by path in the side's interpreter, where tarea2_grader is the side's.
CARGADOR = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('bench_ab_lado', sys.argv[1])\n"
            "mod = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(mod)\n"
            "sys.exit(mod.lado(sys.argv[2:]))\n")
LADO_PY = Path(__file__).resolve().parent / "bench_ab_lado.py"


class MedicionInvalida(Exception):
    """A side could not be measured (its process failed, or it wrote no rows)."""


# --------------------------------------------------------------------------- trees

def git(args: Sequence[str], repo: Path = ROOT, **kwargs) -> subprocess.CompletedProcess:
    """``git -C repo args``; raises on failure."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, **kwargs)


def describir(commit: str, repo: Path = ROOT) -> str:
    """The short hash of ``commit``."""
    return git(["rev-parse", "--short", commit + "^{commit}"], repo, capture_output=True, text=True).stdout.strip()


def materializar(commit: str, destino: Path, repo: Path = ROOT, rutas: Sequence[str] = ARBOL) -> Path:
    """Extract ``rutas`` of ``commit`` (as committed) into ``destino``; returns ``destino``."""
    destino.mkdir(parents=True, exist_ok=True)
    archivo = git(["archive", "--format=tar", commit, "--", *rutas], repo, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(destino)], input=archivo, check=True)
    return destino


@contextlib.contextmanager
def arbol_de(commit: str, repo: Path = ROOT):
    """A temporary folder holding ``commit``'s tree (:func:`materializar`), removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="tarea2_ab_base_"))
    try:
        yield materializar(commit, tmp, repo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cambios_sin_commit(repo: Path = ROOT) -> bool:
    """Whether the working tree's grading files differ from HEAD."""
    out = git(["status", "--porcelain", "--", *ARBOL], repo, capture_output=True, text=True).stdout
    return bool(out.strip())


# --------------------------------------------------------------------------- one side

def correr_lado(raiz: Path, calentamiento: int, semillas: Sequence[int], trabajo: Path, nombre: str,
                timeout: float) -> dict:
    """Grade the warm-up and ``semillas`` in a fresh interpreter with ``raiz`` on PYTHONPATH.

    Returns ``{"runner": path of the runner it used, "maximo": the notebook's automatic points,
    "filas": one dict per student}``; raises :class:`MedicionInvalida` when the process fails."""
    config, salida = trabajo / (nombre + ".json"), trabajo / (nombre + ".jsonl")
    config.write_text(json.dumps({"notebook": str(raiz / NOTEBOOK), "calentamiento": calentamiento,
                                  "semillas": list(semillas)}), encoding="utf-8")
    salida.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(raiz))
    try:
        proc = subprocess.run([sys.executable, "-c", CARGADOR, str(LADO_PY), str(config), str(salida)],
                              cwd=str(raiz), env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MedicionInvalida("{}: no terminó en {:.0f} s".format(nombre, timeout)) from None
    lineas = salida.read_text(encoding="utf-8").splitlines() if salida.exists() else []
    if proc.returncode != 0 or len(lineas) != 2 + len(semillas):
        raise MedicionInvalida("{}: el proceso terminó con código {} y {} filas: {}".format(
            nombre, proc.returncode, max(0, len(lineas) - 1), (proc.stderr or "")[-1500:]))
    cabecera = json.loads(lineas[0])
    return dict(cabecera, filas=[json.loads(x) for x in lineas[1:]])


def carga() -> Optional[List[float]]:
    """The load averages (1, 5, 15 min), or None where the system has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


# --------------------------------------------------------------------------- figures

def mediana(valores: Sequence[Optional[float]]) -> Optional[float]:
    """The median of the known values, or None of nothing."""
    valores = [v for v in valores if v is not None]
    return statistics.median(valores) if valores else None


def razon(nuevo: Optional[float], base: Optional[float]) -> Optional[float]:
    """new / base, or None when either is unknown or base is not positive."""
    if nuevo is None or base is None or base <= 0:
        return None
    return nuevo / base


def cumple(r: Optional[float], meta: float = META) -> Optional[bool]:
    """Whether the ratio meets the goal (None when there is no ratio)."""
    return None if r is None else r <= meta


def valor(fila: dict, clave: str) -> float:
    """A row's ``clave``; ``total_cpu`` is its sandbox plus trusted CPU."""
    if clave == "total_cpu":
        return fila["sandbox_cpu"] + fila["trusted_cpu"]
    return fila[clave]


def medidas(filas: Sequence[dict], clave: str, calentamiento: bool = False) -> List[float]:
    """``clave`` (:func:`valor`) of the rows that are (or are not) warm-ups."""
    return [valor(f, clave) for f in filas if bool(f.get("calentamiento")) == calentamiento]


def problemas(rondas: Sequence[dict]) -> List[str]:
    """Why the measurement is not valid (empty when it is): a student below full marks, a side
    that graded without the sandbox, or with another side's runner."""
    out = []
    for r in rondas:
        for lado in LADOS:
            datos = r["lados"][lado]
            for f in datos["filas"]:
                if f["puntos"] != datos["maximo"]:
                    out.append("ronda {}, {}: la semilla {} obtuvo {:g} de {:g} puntos automáticos ({})".format(
                        r["ronda"], lado, f["semilla"], f["puntos"], datos["maximo"], "; ".join(f["notas"])))
                if not f["aislado"]:
                    out.append("ronda {}, {}: la semilla {} se corrigió sin sandbox (bubblewrap)".format(
                        r["ronda"], lado, f["semilla"]))
            if not os.path.realpath(datos["runner"]).startswith(os.path.realpath(datos["raiz"]) + os.sep):
                out.append("ronda {}, {}: se corrigió con {} en vez del árbol {}".format(
                    r["ronda"], lado, datos["runner"], datos["raiz"]))
    return out


def resumir(rondas: Sequence[dict]) -> dict:
    """Medians per side over all rounds (warm-ups apart), the ratios, the verdict, and each round's."""
    def todas(lado, clave, cal=False):
        return [x for r in rondas for x in medidas(r["lados"][lado]["filas"], clave, cal)]

    out = {"lados": {}, "rondas": []}
    for lado in LADOS:
        out["lados"][lado] = {
            "alumnos": len(todas(lado, "sandbox_cpu")),
            "sandbox_cpu": mediana(todas(lado, "sandbox_cpu")),
            "trusted_cpu": mediana(todas(lado, "trusted_cpu")),
            "total_cpu": mediana(todas(lado, "total_cpu")),
            "wall": mediana(todas(lado, "wall")),
            "calentamiento_sandbox_cpu": mediana(todas(lado, "sandbox_cpu", True)),
            "calentamiento_wall": mediana(todas(lado, "wall", True)),
            "maximo": sorted({r["lados"][lado]["maximo"] for r in rondas}),
        }
    for clave in ("sandbox_cpu", "trusted_cpu", "total_cpu", "wall", "calentamiento_sandbox_cpu"):
        out["razon_" + clave] = razon(out["lados"]["nuevo"][clave], out["lados"]["base"][clave])
    out["razon"] = out["razon_sandbox_cpu"]
    out["cumple"] = cumple(out["razon"])
    for r in rondas:
        med = {lado: mediana(medidas(r["lados"][lado]["filas"], "sandbox_cpu")) for lado in LADOS}
        out["rondas"].append({"ronda": r["ronda"], "orden": r["orden"], "carga": r.get("carga"),
                              "base": med["base"], "nuevo": med["nuevo"], "razon": razon(med["nuevo"], med["base"])})
    out["problemas"] = problemas(rondas)
    return out


# --------------------------------------------------------------------------- report

def _s(x: Optional[float], digits: int = 2) -> str:
    """A number for the tables ("—" when unknown)."""
    return "—" if x is None else "{:.{}f}".format(x, digits)


def _carga(c: Optional[Sequence[float]]) -> str:
    return "—" if not c else " / ".join("{:.2f}".format(x) for x in c)


def render(resultados: dict) -> str:
    """The Spanish markdown section of one A/B run."""
    m, s, a = resultados["maquina"], resultados["resumen"], resultados["args"]
    base, nuevo = s["lados"]["base"], s["lados"]["nuevo"]
    lineas = ["## CPU del sandbox por alumno de referencia: A/B entre commits (issue 19, meta e)", ""]
    lineas.append("- Fecha: {}. Comando: `{}`".format(m["fecha"], resultados["comando"]))
    lineas.append("- Máquina: CPU {}, {} núcleos; carga media (1 / 5 / 15 min) {} al empezar y {} al terminar. "
                  "La máquina es compartida: por eso los lados se alternan.".format(
                      m["cpu"], m["nucleos"], _carga(m["carga_inicio"]), _carga(m["carga_fin"])))
    lineas.append("- Base: `{}`. Nuevo: `{}`{}.".format(
        resultados["base"], resultados["nuevo"], " con cambios sin commit" if resultados["sucio"] else ""))
    lineas.append("- {} rondas; en cada una, un proceso por lado (el mismo intérprete, con el `tarea2_grader/` de ese "
                  "lado) corrige la solución de referencia de su propio notebook fuente con `runner.grade(nb, "
                  "semilla, until_last_test=True)`: 1 alumno de calentamiento (arranca el sandbox; aparte, fuera "
                  "de las medianas) y luego {} alumnos, con las mismas semillas en ambos lados y semillas nuevas en "
                  "cada ronda. El orden se alterna (base primero, luego nuevo primero).".format(a["rondas"], a["alumnos"]))
    lineas.append("- CPU del sandbox: segundos de CPU (usuario + sistema) de los procesos descendientes del proceso "
                  "que corrige (bubblewrap, el ancla, los procesos del alumno y las sondas), entre antes y después de "
                  "cada alumno. CPU confiable: la del proceso que corrige (`RUSAGE_SELF`; en el nuevo incluye la "
                  "revisión estática del código).")
    lineas += ["", "| por alumno de referencia (mediana) | base | nuevo | nuevo/base |", "|---|---|---|---|"]
    filas = (("CPU del sandbox (s)", "sandbox_cpu"), ("CPU confiable (s)", "trusted_cpu"),
             ("CPU en total, sandbox + confiable (s)", "total_cpu"), ("tiempo de reloj (s)", "wall"))
    for etiqueta, clave in filas:
        lineas.append("| {} | {} | {} | {} |".format(etiqueta, _s(base[clave]), _s(nuevo[clave]),
                                                     _s(s["razon_" + clave])))
    lineas.append("| calentamiento: CPU del sandbox (s) | {} | {} | {} |".format(
        _s(base["calentamiento_sandbox_cpu"]), _s(nuevo["calentamiento_sandbox_cpu"]),
        _s(s["razon_calentamiento_sandbox_cpu"])))
    lineas += ["", "| ronda | orden | carga 1 min al empezar | CPU del sandbox base (mediana, s) | nuevo | nuevo/base |",
               "|---|---|---|---|---|---|"]
    for r in s["rondas"]:
        lineas.append("| {} | {} | {} | {} | {} | {} |".format(
            r["ronda"], " → ".join(r["orden"]), _s(r["carga"][0] if r["carga"] else None),
            _s(r["base"]), _s(r["nuevo"]), _s(r["razon"])))
    lineas.append("")
    puntos = "/".join("{:g}".format(x) for x in sorted(set(base["maximo"] + nuevo["maximo"])))
    if s["problemas"]:
        lineas.append("**Medición no válida**: no todos los alumnos obtuvieron todos los puntos automáticos en un sandbox:")
        lineas += ["- " + p for p in s["problemas"]]
    else:
        lineas.append("Todos los alumnos ({} por lado, calentamiento incluido) obtuvieron {} puntos automáticos en "
                      "ambos lados, en el sandbox.".format(base["alumnos"] + a["rondas"], puntos))
        lineas.append("")
        veredicto = {True: "**CUMPLE**", False: "**NO CUMPLE**", None: "—"}[s["cumple"]]
        lineas.append("Meta (e): la mediana de CPU del sandbox por alumno de referencia sube a lo más un {:.0f} % "
                      "(nuevo/base ≤ {:.2f}): {:.2f} → {}.".format((META - 1) * 100, META, s["razon"] or 0, veredicto))
    return "\n".join(lineas)


# --------------------------------------------------------------------------- main

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench_clase",
                                description="Compara la CPU del sandbox por alumno de referencia entre un commit base "
                                            "y este árbol, alternando los lados (issue 19, meta e).")
    p.add_argument("--ab", required=True, metavar="COMMIT", help="el commit base (p. ej. b9cea39)")
    p.add_argument("--rondas", type=int, default=3, help="rondas base/nuevo alternadas (por defecto %(default)s)")
    p.add_argument("--alumnos", type=int, default=6,
                   help="alumnos de referencia por lado y ronda, además del de calentamiento (por defecto %(default)s)")
    p.add_argument("--semilla", type=int, default=2026, help="semilla de las semillas de los alumnos")
    p.add_argument("--salida", type=Path, default=None,
                   help="markdown donde se escribe la sección (por defecto docs/benchmark.md)")
    p.add_argument("--json", type=Path, default=None, help="también los resultados en bruto, en JSON")
    return p


def semillas_de_ronda(rng: random.Random, alumnos: int) -> tuple:
    """(warm-up seed, the students' seeds) of one round."""
    return rng.getrandbits(62), [rng.getrandbits(62) for _ in range(alumnos)]


def orden(ronda: int) -> tuple:
    """Which side goes first in round ``ronda`` (1-based): base in odd rounds, new in even ones."""
    return LADOS if ronda % 2 else LADOS[::-1]


def medir_rondas(raices: Dict[str, Path], rondas: int, alumnos: int, semilla: int, trabajo: Path,
                 progreso=lambda msg: None) -> List[dict]:
    """Run the rounds (:func:`correr_lado` for each side, in :func:`orden`)."""
    rng = random.Random(semilla)
    timeout = 600 + 180 * (alumnos + 1)
    out = []
    for n in range(1, rondas + 1):
        calentamiento, semillas = semillas_de_ronda(rng, alumnos)
        ronda = {"ronda": n, "orden": list(orden(n)), "carga": carga(), "lados": {}}
        for lado in orden(n):
            progreso("ronda {}/{}: {} ({} alumnos + calentamiento)".format(n, rondas, lado, alumnos))
            datos = correr_lado(raices[lado], calentamiento, semillas, trabajo, "{}_{}".format(lado, n), timeout)
            ronda["lados"][lado] = dict(datos, raiz=str(raices[lado]))
        out.append(ronda)
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.rondas < 1 or args.alumnos < 1:
        print("--rondas y --alumnos deben ser al menos 1", file=sys.stderr)
        return 2
    from tools import bench_doc

    def progreso(msg):
        print("[bench ab {}] {}".format(datetime.datetime.now().strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)

    resultados = dict(comando=shlex.join(["python", "-m", "tools.bench_clase", *argv]),
                      args=dict(rondas=args.rondas, alumnos=args.alumnos, semilla=args.semilla),
                      base=describir(args.ab), nuevo=describir("HEAD"), sucio=cambios_sin_commit(),
                      maquina=dict(fecha=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                   cpu=bench_doc.cpu_model(), nucleos=os.cpu_count(), carga_inicio=carga()))
    trabajo = Path(tempfile.mkdtemp(prefix="tarea2_ab_"))
    try:
        with arbol_de(args.ab) as raiz_base:
            resultados["rondas"] = medir_rondas({"base": raiz_base, "nuevo": ROOT}, args.rondas, args.alumnos,
                                                args.semilla, trabajo, progreso)
    except MedicionInvalida as exc:
        print("medición no válida: " + str(exc), file=sys.stderr)
        return INVALIDA
    finally:
        shutil.rmtree(trabajo, ignore_errors=True)
    resultados["maquina"]["carga_fin"] = carga()
    resultados["resumen"] = resumir(resultados["rondas"])
    texto = render(resultados)
    print(texto)
    if args.json:
        args.json.write_text(json.dumps(resultados, indent=1, ensure_ascii=False), encoding="utf-8")
    if resultados["resumen"]["problemas"]:
        print("medición no válida: no se escribió el informe", file=sys.stderr)
        return INVALIDA
    salida = args.salida or bench_doc.DOC_PATH
    bench_doc.write_section(salida, SECTION, texto)
    print("escrito: {}".format(salida), file=sys.stderr)
    return 0 if resultados["resumen"]["cumple"] else 1


if __name__ == "__main__":
    sys.exit(main())
