"""Smoke test of the benchmark: ``--quick`` runs, checks the gradients and writes a table.

No timing assertion here: timing claims come from ``make bench`` runs, never from unit tests.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tarea2_grader import bench

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    doc, raw = tmp / "benchmark.md", tmp / "bench.json"
    doc.write_text("# viejo\n\n<!-- bench:cuda:start -->\n## CUDA\nfila vieja\n<!-- bench:cuda:end -->\n")
    proc = subprocess.run([sys.executable, "-m", "tarea2_grader.bench", "--quick", "--output", str(doc),
                           "--json", str(raw)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc, doc.read_text(), json.loads(raw.read_text())


def test_quick_run_succeeds_and_prints_the_tables(quick_run):
    proc, _doc, _raw = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "### 1." in proc.stdout and "### 2." in proc.stdout
    assert "### 3." not in proc.stdout  # --quick skips the end-to-end timings


def test_gradients_and_losses_checked_equal(quick_run):
    _proc, _doc, raw = quick_run
    assert raw["backward"] and raw["epoch"]
    acts = {a for r in raw["backward"] for a in r["size"]["activations"]}
    assert {"relu", "swish", "celu"} <= acts
    for r in raw["backward"]:
        assert r["grads_equal"] and r["grad_rel_err_f64"] <= bench.GRAD_TOL_F64, r
    for r in raw["epoch"]:
        assert r["losses_equal"], r


def test_every_figure_is_a_positive_finite_ratio(quick_run):
    _proc, _doc, raw = quick_run
    for r in raw["backward"] + raw["epoch"]:
        assert r["ratio"] > 0 and r["ratio"] < float("inf")
        lo, hi = r["ratio_iqr"]
        assert lo <= r["ratio"] <= hi
        assert r["reps"] >= 3


def test_markdown_table_is_well_formed_and_keeps_the_other_device(quick_run):
    _proc, doc, raw = quick_run
    assert "fila vieja" in doc  # a CPU run leaves the CUDA section alone
    assert doc.index("<!-- bench:cpu:start -->") < doc.index("<!-- bench:cuda:start -->")
    for key in ("Fecha:", "Máquina:", "torch " + raw["machine"]["torch"], "hilos intra-op:",
                "Comando: `python -m tarea2_grader.bench --quick"):
        assert key in doc, key
    tables = re.findall(r"((?:^\|.*\|\n)+)", doc, re.M)
    assert len(tables) == 2
    for table, rows in zip(tables, (raw["backward"], raw["epoch"])):
        lines = table.strip().splitlines()
        widths = {line.count("|") for line in lines}
        assert len(widths) == 1, table  # header, separator and rows have the same columns
        assert len(lines) == 2 + len(rows)
        assert "DISTINT" not in table
