"""The A/B benchmark of sandbox CPU between commits (``make bench BENCH_ARGS="--ab COMMIT"``).

What is tested: the figures (medians without the warm-ups, ratio, verdict against the goal), what
makes a measurement invalid, the report, the exit statuses and the doc section, extracting a
commit's tree, and that the per-student measurement puts a descendant's CPU on the sandbox side
and the grading process's own on the trusted side.  No timing assertion: the figures come from a
real ``make bench`` run.  One end-to-end run (HEAD against itself, one round of one student: both
sides really graded in the sandbox) checks the whole path.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import bench_ab
from tools import bench_ab_lado
from tools import bench_clase

from tests.support import course_facts
from tests.support.repo import REPO

ROOT = Path(REPO)


# --------------------------------------------------------------------------- synthetic rounds

def side(raiz, sandbox, puntos=72.0, maximo=72.0, aislado=True, runner=None):
    """One side's data as bench_ab_lado writes it: a warm-up far off every median, then ``sandbox``."""
    filas = [dict(semilla=0, puntos=maximo, sandbox_cpu=100.0, trusted_cpu=50.0, wall=200.0, notas=[],
                  aislado=True, calentamiento=True)]
    filas += [dict(semilla=i + 1, puntos=puntos, sandbox_cpu=s, trusted_cpu=s / 2, wall=3 * s,
                   notas=["una nota"] if puntos != maximo else [], aislado=aislado, calentamiento=False)
              for i, s in enumerate(sandbox)]
    return dict(raiz=raiz, runner=runner or raiz + "/tarea2_grader/engine/runner.py", maximo=maximo, filas=filas)


def rounds(base_values, new_values, **new_kwargs):
    """Synthetic rounds: ``base_values[i]`` and ``new_values[i]`` are round i+1's students."""
    out = []
    for n, (b, v) in enumerate(zip(base_values, new_values), start=1):
        out.append(dict(ronda=n, orden=list(bench_ab.orden(n)), carga=[1.0, 2.0, 3.0],
                        lados={"base": side("/tmp/base", b), "nuevo": side(str(ROOT), v, **new_kwargs)}))
    return out


def test_medians_leave_the_warm_ups_out_and_pool_every_round():
    s = bench_ab.resumir(rounds([[1.0, 2.0, 9.0], [1.5, 1.0, 1.2]], [[1.1, 2.2, 9.9], [1.6, 1.1, 1.3]]))
    assert s["lados"]["base"]["sandbox_cpu"] == pytest.approx(1.35)  # median of 1, 1, 1.2, 1.5, 2, 9
    assert s["lados"]["nuevo"]["sandbox_cpu"] == pytest.approx(1.45)
    assert s["lados"]["base"]["alumnos"] == 6
    assert s["lados"]["base"]["calentamiento_sandbox_cpu"] == 100.0  # reported apart
    assert s["lados"]["nuevo"]["trusted_cpu"] == pytest.approx(1.45 / 2)
    assert s["lados"]["nuevo"]["total_cpu"] == pytest.approx(1.45 * 1.5)  # each student's sandbox + trusted
    assert s["razon"] == pytest.approx(1.45 / 1.35)
    assert [(r["base"], r["nuevo"]) for r in s["rondas"]] == [(2.0, 2.2), (1.2, 1.3)]
    assert s["rondas"][1]["razon"] == pytest.approx(1.3 / 1.2)
    assert s["cumple"] is True and s["problemas"] == []


@pytest.mark.parametrize("ratio, expected", [(0.8, True), (1.10, True), (1.11, False), (2.0, False)])
def test_the_goal_is_at_most_ten_percent_more(ratio, expected):
    s = bench_ab.resumir(rounds([[1.0, 1.0, 1.0]], [[ratio, ratio, ratio]]))
    assert s["cumple"] is expected


def test_no_ratio_without_a_positive_base():
    assert bench_ab.razon(1.0, 0.0) is None and bench_ab.razon(None, 1.0) is None
    assert bench_ab.cumple(None) is None and bench_ab.mediana([]) is None


def test_sides_alternate_which_goes_first():
    assert [bench_ab.orden(n) for n in (1, 2, 3)] == [("base", "nuevo"), ("nuevo", "base"), ("base", "nuevo")]


@pytest.mark.parametrize("kwargs, words", [
    (dict(puntos=68.0), "obtuvo 68 de 72"),
    (dict(aislado=False), "sin sandbox"),
    (dict(runner="/otro/tarea2_grader/engine/runner.py"), "en vez del árbol"),
])
def test_a_student_without_full_marks_or_sandbox_makes_the_measurement_invalid(kwargs, words):
    s = bench_ab.resumir(rounds([[1.0, 1.0]], [[1.0, 1.0]], **kwargs))
    assert s["problemas"] and all(words in p for p in s["problemas"]), s["problemas"]


# --------------------------------------------------------------------------- report and main

def results(rs):
    return dict(comando="python -m tools.bench_clase --ab abc1234", args=dict(rondas=len(rs), alumnos=3),
                base="abc1234", nuevo="def5678", sucio=False,
                maquina=dict(fecha="hoy", cpu="una CPU", nucleos=2, carga_inicio=[1.0, 1.5, 2.0],
                             carga_fin=[3.0, 3.5, 4.0]),
                rondas=rs, resumen=bench_ab.resumir(rs))


def table(text, first_header):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| " + first_header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_report_gives_the_medians_the_ratio_each_round_and_the_verdict():
    text = bench_ab.render(results(rounds([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]], [[1.0, 2.5, 3.0], [2.0, 2.4, 2.4]])))
    rows = {r[0]: r[1:] for r in table(text, "por alumno")}
    assert rows["CPU del sandbox (s)"] == ["2.00", "2.40", "1.20"]
    assert rows["CPU en total, sandbox + confiable (s)"] == ["3.00", "3.60", "1.20"]
    assert rows["calentamiento: CPU del sandbox (s)"] == ["100.00", "100.00", "1.00"]
    per_round = table(text, "ronda")
    assert [r[:2] + r[3:] for r in per_round] == [["1", "base → nuevo", "2.00", "2.50", "1.25"],
                                                 ["2", "nuevo → base", "2.00", "2.40", "1.20"]]
    assert "1.00 / 1.50 / 2.00" in text and "3.00 / 3.50 / 4.00" in text and "`abc1234`" in text
    assert "1.20 → **NO CUMPLE**" in text and "72 puntos automáticos" in text


def test_an_invalid_report_says_why_and_gives_no_verdict():
    text = bench_ab.render(results(rounds([[1.0]], [[1.0]], puntos=0.0)))
    assert "Medición no válida" in text and "obtuvo 0 de 72" in text
    assert "CUMPLE" not in text


@pytest.fixture
def fake_rounds(monkeypatch):
    """bench_ab.main with the measurement replaced by ``box[0]`` (its arguments kept in ``calls``)."""
    box, calls = [], []

    def medir_rondas(raices, rondas, alumnos, semilla, trabajo, progreso=None):
        calls.append(dict(raices=raices, rondas=rondas, alumnos=alumnos, base_tree=sorted(
            p.name for p in raices["base"].iterdir())))
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    monkeypatch.setattr(bench_ab, "medir_rondas", medir_rondas)
    return box, calls


@pytest.mark.parametrize("new, status", [(1.05, 0), (1.5, 1)])
def test_main_writes_its_section_and_exits_by_the_goal(fake_rounds, tmp_path, new, status):
    box, calls = fake_rounds
    box.append(rounds([[1.0, 1.0, 1.0]] * 3, [[new, new, new]] * 3))
    doc, raw = tmp_path / "benchmark.md", tmp_path / "ab.json"
    doc.write_text("# viejo\n\n<!-- bench:clase:start -->\n## Clase\nfila vieja\n<!-- bench:clase:end -->\n")
    assert bench_clase.main(["--ab", "HEAD", "--rondas", "3", "--alumnos", "2", "--salida", str(doc),
                             "--json", str(raw)]) == status
    assert calls[0]["rondas"] == 3 and calls[0]["alumnos"] == 2
    assert calls[0]["raices"]["nuevo"] == bench_ab.ROOT
    assert calls[0]["base_tree"] == ["nbgrader_config.py", "source", "tarea2_grader"]  # HEAD's, extracted
    assert not calls[0]["raices"]["base"].exists()  # and removed afterwards
    text = doc.read_text()
    assert "fila vieja" in text and text.index("bench:clase:start") < text.index("bench:ab:start")
    assert ("**CUMPLE**" if status == 0 else "**NO CUMPLE**") in text
    assert json.loads(raw.read_text())["resumen"]["razon"] == pytest.approx(new)


def test_main_refuses_an_invalid_measurement_and_leaves_the_doc_alone(fake_rounds, tmp_path, capsys):
    box, _calls = fake_rounds
    box.append(rounds([[1.0]], [[1.0]], puntos=36.0))
    doc = tmp_path / "benchmark.md"
    assert bench_ab.main(["--ab", "HEAD", "--salida", str(doc)]) == bench_ab.INVALIDA
    assert not doc.exists()
    assert "Medición no válida" in capsys.readouterr().out


def test_a_side_that_fails_is_an_invalid_measurement(fake_rounds, tmp_path):
    box, _calls = fake_rounds
    box.append(bench_ab.MedicionInvalida("nuevo_1: el proceso terminó con código 1"))
    doc = tmp_path / "benchmark.md"
    assert bench_ab.main(["--ab", "HEAD", "--salida", str(doc)]) == bench_ab.INVALIDA
    assert not doc.exists()


# --------------------------------------------------------------------------- a commit's tree

def test_materialise_extracts_the_commit_as_committed(tmp_path):
    repo = tmp_path / "repo"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True,
                              text=True).stdout.strip()

    (repo / "tarea2_grader").mkdir(parents=True)
    (repo / "source" / "tarea2").mkdir(parents=True)
    (repo / "tarea2_grader" / "runner.py").write_text("VIEJO = 1\n")
    (repo / "source" / "tarea2" / "tarea2.ipynb").write_text("{}\n")
    (repo / "nbgrader_config.py").write_text("c = get_config()\n")
    (repo / "README.md").write_text("no es parte del árbol que corrige\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "uno")
    first = git("rev-parse", "HEAD")
    (repo / "tarea2_grader" / "runner.py").write_text("NUEVO = 2\n")
    (repo / "tarea2_grader" / "revision.py").write_text("\n")
    git("add", "-A")
    git("commit", "-qm", "dos")
    (repo / "tarea2_grader" / "runner.py").write_text("SIN COMMIT\n")

    with bench_ab.arbol_de(first[:7], repo) as tree:
        assert (tree / "tarea2_grader" / "runner.py").read_text() == "VIEJO = 1\n"
        assert not (tree / "tarea2_grader" / "revision.py").exists()
        assert (tree / "source" / "tarea2" / "tarea2.ipynb").exists() and (tree / "nbgrader_config.py").exists()
        assert not (tree / "README.md").exists()
    assert not tree.exists()
    assert bench_ab.describir(first, repo) == first[:7]
    assert bench_ab.cambios_sin_commit(repo)


# --------------------------------------------------------------------------- the measurement

# 0.5 s of CPU; /proc counts in clock ticks, so the assertions allow 0.05 s less.
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5:\n    pass\n"
BURN_THEN_WAIT = BURN + "import sys\nprint('listo', flush=True)\ntime.sleep(60)\n"
GRANDCHILD_THEN_WAIT = ("import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {!r}])\n"
                        "print('listo', flush=True)\ntime.sleep(60)\n").format(BURN)


class FakeResult:
    notas, aislado = [], True

    def puntos(self, nb):
        return {"a": 40.0, "b": 32.0}


def burns_in(code, live):
    """A grading function whose CPU is spent by a child process running ``code`` (left running if ``live``)."""
    started = []

    def grade(nb, semilla):
        if live:
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            started.append(proc)
            assert proc.stdout.readline().strip() == "listo"
        else:
            subprocess.run([sys.executable, "-c", code], check=True)
        return FakeResult()
    return grade, started


@pytest.mark.parametrize("code, live", [(BURN, False), (BURN_THEN_WAIT, True), (GRANDCHILD_THEN_WAIT, True)],
                         ids=["reaped child", "live child", "grandchild reaped by a live child"])
def test_a_descendants_cpu_is_sandbox_cpu(code, live):
    grade, started = burns_in(code, live)
    try:
        fila = bench_ab_lado.medir(grade, None, 7)
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
    assert fila["sandbox_cpu"] >= 0.45, fila
    assert fila["trusted_cpu"] < 0.3, fila
    assert fila["puntos"] == 72.0 and fila["semilla"] == 7


def test_the_grading_process_own_cpu_is_trusted_cpu():
    def grade(nb, semilla):
        t = time.process_time()
        while time.process_time() - t < 0.5:
            pass
        return FakeResult()

    fila = bench_ab_lado.medir(grade, None, 1)
    assert fila["trusted_cpu"] >= 0.45 and fila["sandbox_cpu"] < 0.2, fila


# --------------------------------------------------------------------------- end to end (slow)

@pytest.mark.slow
def test_end_to_end_one_round_one_student(tmp_path):
    doc, raw = tmp_path / "benchmark.md", tmp_path / "ab.json"
    proc = subprocess.run([sys.executable, "-m", "tools.bench_clase", "--ab", "HEAD", "--rondas", "1",
                           "--alumnos", "1", "--salida", str(doc), "--json", str(raw)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-3000:]  # valid; the goal may go either way
    data = json.loads(raw.read_text())
    assert data["resumen"]["problemas"] == []
    for lado in bench_ab.LADOS:
        datos = data["rondas"][0]["lados"][lado]
        full = course_facts.autograded_points()
        assert datos["maximo"] == full and [f["puntos"] for f in datos["filas"]] == [full, full]
        assert all(f["sandbox_cpu"] > 0 and f["aislado"] for f in datos["filas"])
    assert "bench:ab:start" in doc.read_text()
