"""``docs/benchmark.md``, the file every benchmark writes: its header and one section per command.

Each command (``tools.bench``, ``tools.bench_clase``, ``tools.bench_ab``) replaces only its own
section between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->`` markers; the last
one, the history of earlier runs, is written by hand and kept.  Also the machine's CPU name,
which every report states.
"""
from __future__ import annotations

import contextlib
import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "benchmark.md"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()



DOC_HEADER = """# Benchmarks de la Tarea 2

Generado por `make bench` (la corrección de un curso entero de punta a punta,
`python -m tools.bench_clase`; con `BENCH_ARGS="--ab COMMIT"`, la CPU del sandbox por
alumno de referencia de COMMIT contra este árbol, `tools.bench_ab`) y `make bench-referencia` (la solución de referencia,
`python -m tools.bench`; `--device cuda` para la sección CUDA, `--correccion` para la
comparación de un alumno con nbgrader). Cada comando reemplaza sólo su propia sección; la última, la
historia de las mediciones anteriores, se escribe a mano.

En las secciones de la solución de referencia, cada cifra de las tablas 1 y 2 es una **razón**
entre dos variantes medidas lado a lado en la misma corrida (alternadas, repetidas, mediana de las
razones por par; entre paréntesis, el rango intercuartil): la máquina es compartida y ruidosa, así
que los milisegundos absolutos sólo orientan. La tabla 3 sí son segundos absolutos. Por defecto se
usa 1 hilo intra-op (ver la línea «Hilos» de la tabla 2); `--threads 0` deja el valor por defecto
de torch.
"""


SECTIONS = ("clase", "ab", "cpu", "cuda", "correccion", "historia")  # "historia": written by hand, kept


def _marker(device: str, end: bool) -> str:
    return f"<!-- bench:{device}:{'end' if end else 'start'} -->"


def write_section(path: Path, name: str, text: str) -> None:
    """Write the header and section ``name`` (one of SECTIONS) of ``path``, keeping the others."""
    sections = {}
    if path.exists():
        old = path.read_text(encoding="utf-8")
        for sec in SECTIONS:
            m = re.search(re.escape(_marker(sec, False)) + r".*?" + re.escape(_marker(sec, True)),
                          old, re.S)
            if m:
                sections[sec] = m.group(0)
    sections[name] = f"{_marker(name, False)}\n{text}\n{_marker(name, True)}"
    body = [DOC_HEADER] + [sections[s] for s in SECTIONS if s in sections]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body).rstrip() + "\n", encoding="utf-8")

