"""One side of the A/B benchmark (:mod:`tools.bench_ab`): grade reference students and
measure each one's CPU.

:mod:`tools.bench_ab` runs this file *by path*, in a fresh interpreter whose
``PYTHONPATH`` is one side's tree (the base commit's, or the working tree), so the
``tarea2_grader`` it grades with is that side's.  That is why nothing of this package is imported
at module level: only :func:`lado` imports the side's ``runner``, once it runs.

Per student (:func:`medir`), with the same seeds on both sides:

* ``sandbox_cpu``: CPU seconds (user + system) of this process's descendants, i.e. the
  bubblewrap sandbox tree (anchor, holders, probes): for each live descendant its own time plus
  its reaped children's (``psutil``), plus this process's ``RUSAGE_CHILDREN`` (descendants it
  reaped itself); the difference between before and after the student;
* ``trusted_cpu``: this process's own CPU (``RUSAGE_SELF``), the trusted side;
* ``wall``: wall seconds of ``runner.grade`` (``runner.calificar`` in a base commit
  from before the engine's names were English).
"""
import ctypes
import json
import os
import resource
import sys
import time

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adoptar_huerfanos() -> bool:
    """Become the reaper of our descendants' orphans, so their CPU time stays in this tree."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def cpu_descendientes() -> float:
    """CPU seconds so far of every descendant of this process, live or reaped."""
    import psutil
    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # gone since the listing: its time is in its parent's reaped children now
        total += t.user + t.system + t.children_user + t.children_system
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + usage.ru_utime + usage.ru_stime


def cpu_propio() -> float:
    """CPU seconds (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def medir(corregir, nb, semilla: int) -> dict:
    """Grade ``nb`` with ``semilla`` through ``corregir`` and say what it cost.

    ``corregir(nb, semilla)`` returns the runner's ``Resultado``."""
    sandbox0, propio0, reloj0 = cpu_descendientes(), cpu_propio(), time.perf_counter()
    resultado = corregir(nb, semilla)
    reloj, propio, sandbox = time.perf_counter() - reloj0, cpu_propio() - propio0, cpu_descendientes() - sandbox0
    return {"semilla": semilla, "puntos": sum(resultado.puntos(nb).values()), "sandbox_cpu": sandbox,
            "trusted_cpu": propio, "wall": reloj, "notas": list(resultado.notas), "aislado": resultado.aislado}


def lado(argv) -> int:
    """``argv``: the JSON configuration file (notebook, warm-up seed, seeds) and the output file,
    where one JSON object per student is appended as soon as it is graded."""
    config_path, out_path = argv
    with open(config_path, encoding="utf-8") as fh:
        config = json.load(fh)
    adoptar_huerfanos()
    import nbformat
    try:
        from tarea2_grader.engine import runner
    except ImportError:  # a base commit from before the trust-zone folders
        from tarea2_grader import runner
    nb = nbformat.read(config["notebook"], as_version=4)
    if hasattr(runner, "grade"):
        es_prueba = runner.is_test

        def corregir(cuaderno, semilla):
            return runner.grade(cuaderno, semilla, until_last_test=True)
    else:  # a base commit from before the engine's names were English
        es_prueba = getattr(runner, "es_test")
        viejo = getattr(runner, "calificar")

        def corregir(cuaderno, semilla):
            return viejo(cuaderno, semilla, **{"hasta_ultimo_test": True})
    maximo = sum(float(c.metadata.get("nbgrader", {}).get("points", 0)) for c in nb.cells if es_prueba(c))

    with open(out_path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"runner": os.path.abspath(runner.__file__), "maximo": maximo}) + "\n")
        out.flush()
        for calentamiento, semilla in [(True, config["calentamiento"])] + [(False, s) for s in config["semillas"]]:
            fila = dict(medir(corregir, nb, semilla), calentamiento=calentamiento)
            out.write(json.dumps(fila) + "\n")
            out.flush()
    return 0
