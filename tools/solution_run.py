"""Run the master notebook's code cells in a plain Python process (no Jupyter needed).

Used to run the reference solution's training on another device, e.g. a GPU
machine that has torch but no Jupyter stack::

    python -m tools.solution_run --device cuda

Hidden-test sections are left out (they need an IPython kernel); the visible
self-checks run. Prints each cell's wall time and what the cells print.
"""
import argparse
import json
import os
import pathlib
import re
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "tarea2" / "tarea2.ipynb"
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", re.S)


def code_cells(path=SOURCE, only_graded=False):
    """(grade_id, source) of every code cell, hidden tests removed, read as plain JSON.

    Cells without a grade_id are named "celda <index>", or left out with ``only_graded``.
    """
    nb = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        gid = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
        if cell["cell_type"] != "code" or (only_graded and not gid):
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        yield gid or f"celda {i}", HIDDEN.sub("", source)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="override DISPOSITIVO (cpu, cuda)")
    args = parser.parse_args(argv)
    os.environ.pop("NBGRADER_EXECUTION", None)
    os.environ.setdefault("MPLBACKEND", "Agg")
    ns = {"__name__": "__main__"}
    total = time.perf_counter()
    for gid, src in code_cells():
        if gid == "preparacion" and args.device:
            src += f"\nDISPOSITIVO = {args.device!r}\nprint('DISPOSITIVO =', DISPOSITIVO)"
        start = time.perf_counter()
        exec(compile(src, f"<{gid}>", "exec"), ns)
        if args.device == "cuda":
            import torch
            torch.cuda.synchronize()
        print(f"--- {gid}: {time.perf_counter() - start:.2f} s", flush=True)
    print(f"--- total: {time.perf_counter() - total:.2f} s")


if __name__ == "__main__":
    main()
