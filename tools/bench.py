"""Benchmark of the Tarea 2 reference solution (issue 3).

Run ``python -m tools.bench [--device cuda] [--quick] [--threads N]`` (``make bench-referencia``).

The reference code is the master notebook's own cells (``preparacion``, ``herramientas``,
``tarea1_softmax``, ``derivadas_codigo``, ``celoss``, ``ffnn_backward``, ``sgd``,
``entrenar``), exec'd into one namespace; no kernel. Three measurements:

1. **backward**: one "forward + gradient" step of the reference ``FFNN``, manual
   (``forward`` under ``torch.no_grad()`` + ``red.backward(x, y, y_pred)``, which reuses the
   cached intermediates) against ``torch.autograd`` (``forward`` with grad +
   ``CELoss(...).backward()``) on the same network object and data. The gradients of both are
   compared once per size in float64; the timing is in float32.
2. **epoch**: one epoch of the reference loop (``entrenar_FFNN`` + ``FFNN`` + ``SGD``) against
   the same loop written with ``torch.nn.Linear`` + ``torch.optim.SGD`` + autograd, started
   from the same weights, on the same data, batches and shuffling order (the per-iteration
   losses of the first epoch are compared).
3. **end to end** (CPU only, skipped by ``--quick``): wall-clock seconds of a real
   ``nbgrader autograde`` of one reference submission in a temporary course, and of a full
   run of the solution notebook with nbclient. These two are absolute seconds, not ratios.

The machine this runs on is shared and noisy, so every figure of 1 and 2 is a ratio of two
contenders timed side by side in the same run: the contenders alternate (ABBA order), each
sample is long enough for the clock, the garbage collector is off while timing, and the ratio
reported is the median of the per-pair ratios, with its interquartile range.

Threads: by default 1 intra-op thread (``torch.set_num_threads`` here, ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` for the kernels of section 3). On a shared 2-core machine two OpenMP threads
stall on each other whenever another process holds a core; the "threads" row of the epoch
table measures that effect side by side. ``--threads 0`` keeps torch's default.

The tables go to stdout and to ``docs/benchmark.md`` (one section per device: a CUDA run
replaces only the CUDA section). A ``--quick`` run (small sizes, a few seconds, no section 3)
writes a file only when ``--output`` is given.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from tools.bench_doc import DOC_PATH, ROOT, cpu_model, write_section
from tools.bench_end_to_end import bench_autograde, bench_notebook
from tools.bench_training import (QUICK_SIZES, SIZES, Size, bench_backward, bench_epoch, bench_threads,
                                  load_reference)


# --------------------------------------------------------------------------- report

def machine_info(device: torch.device, threads: int, default_threads: int) -> dict:
    info = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=cpu_model(), cores=os.cpu_count(), torch=torch.__version__,
        threads=threads, default_threads=default_threads, python=platform.python_version(),
        load_start=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _fmt_ratio(r: dict) -> str:
    lo, hi = r["ratio_iqr"]
    return f"**{r['ratio']:.2f}** ({lo:.2f}–{hi:.2f})"


def _goal(flag) -> str:
    return "—" if flag is None else ("sí" if flag else "**no**")


def render(results: dict) -> str:
    """Markdown tables of one run (one device)."""
    m = results["machine"]
    dev = results["device"]
    lines = []
    title = "CUDA" if dev == "cuda" else "CPU"
    if results.get("correccion"):
        title = "Corrección: corrector confiable (sandbox) vs nbgrader sin él"
    lines.append(f"## {title}{' (--quick)' if results['quick'] else ''}")
    lines.append("")
    hw = f"GPU {m['gpu']} (CUDA {m['cuda']}), CPU {m['cpu']}" if dev == "cuda" else f"CPU {m['cpu']}"
    load = f"carga media 1 min {m['load_start']:.1f} al empezar, {m['load_end']:.1f} al terminar"
    lines.append(f"- Fecha: {m['date']}")
    lines.append(f"- Máquina: {hw}, {m['cores']} núcleos; {load}")
    lines.append(f"- torch {m['torch']}, Python {m['python']}; hilos intra-op: {m['threads']} "
                 f"(por defecto de torch aquí: {m['default_threads']})")
    lines.append(f"- Comando: `{results['command']}` ({results['elapsed_s']:.0f} s en total)")
    lines.append("")
    if results.get("correccion"):
        lines.append("Segundos de pared de `nbgrader autograde` con la configuración del curso (el código del "
                     "estudiante en bubblewrap, los veredictos fuera de él) y, lado a lado en la misma corrida, "
                     "con la de nbgrader tal como viene (todo en el kernel del estudiante). Generado con "
                     "`python -m tools.bench --correccion`.")
        lines.append("")

    if results["backward"]:
        lines += _render_ratios(results)
    lines += _render_end_to_end(results)
    return "\n".join(lines)


def _render_ratios(results: dict) -> list:
    """Tables 1 and 2: manual backward and one epoch against torch."""
    lines = []
    lines.append("### 1. Paso forward + gradiente: `backward` manual vs `torch.autograd`")
    lines.append("")
    lines.append("Mismo `FFNN` y mismos datos; manual = `forward` con `torch.no_grad()` + "
                 "`red.backward(x, y, y_pred)`; autograd = `forward` + `CELoss(...).backward()`. "
                 "Gradientes comparados en float64, tiempos en float32. Razón: mediana de las "
                 "razones por par (rango intercuartil). «solo matmul»: los mismos productos de "
                 "matrices sin nada más, relativo al paso con autograd (un piso para ambos).")
    lines.append("")
    lines.append("| tamaño | F | capas | activaciones | batch | err. rel. grad. (f64) "
                 "| manual ms | autograd ms | manual/autograd | solo matmul/autograd | meta ≤ 0.9 |")
    lines.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|:---:|")
    for r in results["backward"]:
        s = r["size"]
        ok = "" if r["grads_equal"] else " **DISTINTOS**"
        lines.append(f"| {s['name']} | {s['features']} | {Size(**s).layers} | {Size(**s).acts} "
                     f"| {s['batch']} | {r['grad_rel_err_f64']:.1e}{ok} | {r['manual_ms']:.2f} "
                     f"| {r['autograd_ms']:.2f} | {_fmt_ratio(r)} | {r['matmul_ratio']:.2f} "
                     f"| {_goal(r['goal'])} |")
    lines.append("")

    lines.append("### 2. Una época: `entrenar_FFNN` + `FFNN` + `SGD` vs `torch.nn.Linear` + "
                 "`torch.optim.SGD` + autograd")
    lines.append("")
    lines.append("Mismos pesos iniciales, datos, batches y orden de barajado (`DataLoader`); "
                 "mismas activaciones y `softmax`/`CELoss` del notebook. "
                 "«dif. pérdidas»: máxima diferencia absoluta entre las pérdidas por iteración "
                 "de la primera época (float32).")
    lines.append("")
    lines.append("| tamaño | F | capas | activaciones | batch | ejemplos | dif. pérdidas "
                 "| referencia ms/época | torch ms/época | referencia/torch | meta ≤ 1.1 |")
    lines.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|:---:|")
    for r in results["epoch"]:
        s = r["size"]
        ok = "" if r["losses_equal"] else " **DISTINTAS**"
        lines.append(f"| {s['name']} | {s['features']} | {Size(**s).layers} | {Size(**s).acts} "
                     f"| {s['batch']} | {r['samples']} | {r['loss_max_abs_diff']:.1e}{ok} "
                     f"| {r['reference_ms']:.1f} | {r['torch_ms']:.1f} | {_fmt_ratio(r)} "
                     f"| {_goal(r['goal'])} |")
    t = results.get("threads")
    if t:
        s = t["size"]
        lines.append("")
        lines.append(f"Hilos: una época de `entrenar_FFNN` con la red más pesada de la celda "
                     f"`graficos` ({Size(**s).acts} {Size(**s).layers}, {t['samples']} ejemplos, "
                     f"batch {s['batch']}): {t['threads_many']} hilos {t['many_ms']:.0f} ms vs "
                     f"{t['threads_few']} hilo(s) {t['few_ms']:.0f} ms, razón {_fmt_ratio(t)}.")
    lines.append("")
    return lines


def _render_end_to_end(results: dict) -> list:
    """Table 3: absolute seconds of grading and of the whole notebook."""
    lines = []
    e2e = results.get("end_to_end")
    if e2e:
        lines.append("### 3. De punta a punta (segundos absolutos, no razones)")
        lines.append("")
        lines.append("| medida | segundos | detalle |")
        lines.append("|---|---:|---|")
        for r in e2e:
            if r["kind"] == "autograde":
                lines.append(f"| `nbgrader autograde` de 1 entrega (la solución), corrector confiable "
                             f"(sandbox) | {r['seconds']:.1f} | tests automáticos {r['score']:g}/{r['max_score']:g}; "
                             f"nbgrader sin el corrector (kernel del estudiante, lado a lado): "
                             f"{r['stock_seconds']:.1f} s, razón {r['seconds'] / r['stock_seconds']:.2f} |")
                lines.append(f"| por alumno, curso de {r['class_size']} en una corrida, corrector confiable "
                             f"| {r['class_per_student']:.1f} | sandbox caliente reutilizado; nbgrader sin el "
                             f"corrector: {r['stock_class_per_student']:.1f} s por alumno, razón "
                             f"{r['class_per_student'] / r['stock_class_per_student']:.2f}; mediana de "
                             f"{r['rounds']} rondas alternadas |")
            elif r["kind"] == "notebook":
                slow = ", ".join(f"`{c['cell']}` {c['seconds']:.1f} s" for c in r["slowest"])
                goal = "meta < 60 s: " + ("sí" if r["goal"] else "**no**")
                errs = f"; **{r['errors']} celda(s) con error**" if r["errors"] else ""
                lines.append(f"| notebook de solución completo (nbclient, sin NBGRADER_EXECUTION) "
                             f"| {r['seconds']:.1f} | {goal}; más lentas: {slow}{errs} |")
            elif r["kind"] == "error":
                lines.append(f"| {r['what']} | — | falló: {r['error']} |")
        lines.append("")
    return lines



def write_doc(path: Path, results: dict) -> None:
    """Write this run's section (its device, or the grading comparison), keeping the others."""
    write_section(path, "correccion" if results.get("correccion") else results["device"], render(results))


# --------------------------------------------------------------------------- main

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the networks run (cuda: sections 1 and 2 only)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, a few seconds, no end-to-end timings (smoke test)")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads for torch here and for the kernels (0: torch's default; "
                        "default 1)")
    p.add_argument("--output", type=Path, default=None,
                   help=f"markdown file to write (default {DOC_PATH.relative_to(ROOT)}; "
                        "--quick writes only when this is given)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON")
    p.add_argument("--correccion", action="store_true",
                   help="only the grading benchmark (trusted runner vs stock nbgrader), CPU")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timing per comparison (default 12, 0.5 with --quick)")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    started = time.perf_counter()
    default_threads = torch.get_num_threads()
    threads = args.threads if args.threads > 0 else default_threads
    torch.set_num_threads(threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no hay GPU CUDA disponible (el curso nunca la requiere)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 12.0)
    sizes = QUICK_SIZES if args.quick else SIZES

    results = dict(device=device.type, quick=args.quick, correccion=args.correccion,
                   command=shlex.join(["python", "-m", "tools.bench", *argv]),
                   machine=machine_info(device, threads, default_threads),
                   backward=[], epoch=[], threads=None, end_to_end=[])
    ref = load_reference()

    def progress(msg):
        print(f"[bench {time.perf_counter() - started:5.0f} s] {msg}", file=sys.stderr, flush=True)

    if args.correccion:
        sizes = ()
    for size in sizes:
        progress(f"backward {size.name} {size.layers} {size.acts} batch {size.batch}")
        results["backward"].append(bench_backward(ref, size, device, budget))
    epoch_sizes = sizes if args.quick else sizes[:3]
    if args.correccion:
        progress("nbgrader autograde: corrector confiable vs nbgrader sin él")
        results["end_to_end"].append(bench_autograde(threads if args.threads > 0 else None))
    for size in epoch_sizes:
        progress(f"época {size.name} {size.layers} {size.acts} batch {size.batch}")
        results["epoch"].append(bench_epoch(ref, size, device, budget * 1.25))
    if device.type == "cpu" and not args.quick and not args.correccion and default_threads > threads:
        progress(f"época con {default_threads} vs {threads} hilo(s)")
        results["threads"] = bench_threads(ref, default_threads, threads, budget * 1.5)
    if device.type == "cpu" and not args.quick and not args.correccion:
        for what, fn in (("nbgrader autograde", bench_autograde), ("notebook completo", bench_notebook)):
            progress(what)
            try:
                results["end_to_end"].append(fn(threads if args.threads > 0 else None))
            except Exception as exc:  # reported in the table, the rest still stands
                results["end_to_end"].append(dict(kind="error", what=what,
                                                  error=f"{type(exc).__name__}: {exc}"[:300]))
    results["machine"]["load_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results["elapsed_s"] = time.perf_counter() - started

    text = render(results)
    print(text)
    output = args.output if args.output is not None else (None if args.quick else DOC_PATH)
    if output is not None:
        write_doc(output, results)
        print(f"escrito: {output}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    bad = [r for r in results["backward"] if not r["grads_equal"]]
    bad += [r for r in results["epoch"] if not r["losses_equal"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
