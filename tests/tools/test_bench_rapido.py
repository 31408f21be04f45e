"""The fast-path benchmark (``python -m tools.bench_rapido``): its configurations and figures.

What is tested: which environment each configuration sets, the rotation of the rounds, the
medians and savings (against the warm all-on run, as a share of the cold one when there is one),
the grade comparison that fails the benchmark, and the report's rows.  No timing assertion: the
figures come from a real run (``docs/rapido.md``).
"""
from pathlib import Path

from tarea2_grader.integration import fastpaths
from tools import bench_rapido


def grades(folder: Path, name: str, points: str) -> str:
    path = folder / name
    path.write_text("student_id,semilla,puntos\n1001,7,{}\n".format(points), encoding="utf-8")
    return str(path)


def run(config, rnd, wall, cpu, path, code=0):
    return dict(config=config, round=rnd, wall_s=wall, cpu_s=cpu, returncode=code, grades=path)


def test_configurations_set_the_switches():
    configs = bench_rapido.configurations(["arranque", "lotes"], ["arranque", "lotes"])
    assert configs["todas"] == {}
    assert configs["ninguna"] == {fastpaths.ENV_MASTER: "0"}
    assert configs["sin_lotes"] == {fastpaths.ENV_WITHOUT: "lotes"}
    assert configs["sin_arranque+lotes"] == {fastpaths.ENV_WITHOUT: "arranque,lotes"}
    assert "ninguna" not in bench_rapido.configurations(["lotes"], all_off=False)


def test_each_round_starts_one_configuration_later():
    names = ["a", "b", "c"]
    assert [bench_rapido.rotated(names, r)[0] for r in range(4)] == ["a", "b", "c", "a"]
    assert sorted(bench_rapido.rotated(names, 2)) == names


def test_savings_are_medians_against_all_on_as_a_share_of_the_cold_run(tmp_path):
    same = grades(tmp_path, "a.csv", "72")
    runs = [run("todas_en_frio", r, w, 2 * w, same) for r, w in enumerate((300.0, 400.0, 320.0))]
    runs += [run("todas", r, w, w, same) for r, w in enumerate((60.0, 50.0, 90.0))]
    runs += [run("sin_lotes", r, w, w + 5, same) for r, w in enumerate((70.0, 64.0, 100.0))]
    summary = bench_rapido.summarize(runs, ["todas_en_frio", "todas", "sin_lotes"], ["1001"])
    row = summary["table"]["sin_lotes"]
    assert row["wall"] == 70.0 and summary["table"]["todas"]["wall"] == 60.0
    assert row["wall_saving"] == 10.0
    assert abs(row["wall_share"] - 10.0 / 320.0) < 1e-12
    assert abs(row["cpu_share"] - 15.0 / 640.0) < 1e-12
    assert summary["table"]["todas_en_frio"]["wall_saving"] is None
    assert summary["diffs"] == []


def test_without_a_cold_run_the_share_is_of_all_on(tmp_path):
    same = grades(tmp_path, "a.csv", "72")
    runs = [run("todas", 0, 100.0, 100.0, same), run("sin_x", 0, 110.0, 100.0, same)]
    row = bench_rapido.summarize(runs, ["todas", "sin_x"], ["1001"])["table"]["sin_x"]
    assert abs(row["wall_share"] - 0.10) < 1e-12 and row["cpu_saving"] == 0.0


def test_a_different_grade_is_reported(tmp_path):
    runs = [run("todas", 0, 100.0, 100.0, grades(tmp_path, "a.csv", "72")),
            run("sin_x", 0, 110.0, 100.0, grades(tmp_path, "b.csv", "70")),
            run("sin_y", 0, 110.0, 100.0, str(tmp_path / "missing.csv"))]
    diffs = bench_rapido.summarize(runs, ["todas", "sin_x", "sin_y"], ["1001"])["diffs"]
    assert {(d["config"], d["column"]) for d in diffs} == {("sin_x", "puntos"), ("sin_y", "grades.csv")}


def test_report_names_the_warm_mode_and_every_configuration(tmp_path):
    same = grades(tmp_path, "a.csv", "72")
    runs = [run("todas_en_frio", 0, 300.0, 600.0, same), run("todas", 0, 60.0, 60.0, same),
            run("sin_lotes", 0, 75.0, 80.0, same)]
    names = ["todas_en_frio", "todas", "sin_lotes"]
    results = dict(args=dict(alumnos=1, rondas=1, workers=2, calientes=True), paths=["lotes"],
                   machine=dict(cpu="cpu", cores=2, date="hoy"), command="python -m tools.bench_rapido",
                   summary=bench_rapido.summarize(runs, names, ["1001"]), elapsed_s=1.0)
    text = bench_rapido.render(results)
    assert "--veredictos-previos" in text
    assert "| sin_lotes | 75.0 | 80.0 | 15.0 s (+5.0 %) | 20.0 s (+3.3 %) | 1 | 0 |" in text
    assert "idénticas" in text


def test_only_savings_far_above_the_line_skip_the_later_rounds():
    runs = [run("todas_en_frio", 0, 400.0, 800.0, ""), run("todas", 0, 130.0, 100.0, ""),
            run("sin_lotes", 0, 300.0, 100.0, ""), run("sin_cellmeta", 0, 140.0, 100.0, ""),
            run("sin_roto", 0, 900.0, 100.0, "", code=1), run("todas", 1, 500.0, 100.0, "")]
    assert bench_rapido.far_from_the_line(runs, 0.2) == ["sin_lotes"]  # 170 > 80; 10 < 80; a failed run is not placed
    assert bench_rapido.far_from_the_line(runs[1:3], 0.2) == ["sin_lotes"]  # no cold run: the share is of all-on
    assert bench_rapido.far_from_the_line(runs[2:3], 0.2) == []


def test_the_base_checkout_grades_with_its_own_package_and_course_files(tmp_path, monkeypatch):
    base = tmp_path / "base"
    for name in ("source", "release"):
        (base / name).mkdir(parents=True)
        (base / name / "marca.txt").write_text("base " + name, encoding="utf-8")
    (base / "nbgrader_config.py").write_text("# base\n", encoding="utf-8")
    configs = bench_rapido.configurations(["lotes"], all_off=False, base=base)
    assert configs["base"] == {"PYTHONPATH": str(base)} and configs["todas"] == {}

    course_root = tmp_path / "curso"

    class FakeCourse:
        root = str(course_root)

        def path(self, *parts):
            return str(course_root.joinpath(*parts))

    seen = {}

    def new_course(root, class_dir, seeds):
        for name in ("source", "release"):
            (course_root / name).mkdir(parents=True, exist_ok=True)
            (course_root / name / "marca.txt").write_text("nuevo", encoding="utf-8")
        (course_root / "nbgrader_config.py").write_text("# nuevo\n", encoding="utf-8")
        return FakeCourse()

    def run_trusted(tag, course, workers, work, timeout, students, root):
        seen.update(root=root, pythonpath=bench_rapido.os.environ.get("PYTHONPATH"),
                    config=(course_root / "nbgrader_config.py").read_text(encoding="utf-8"),
                    source=(course_root / "source" / "marca.txt").read_text(encoding="utf-8"))
        return dict(wall_s=1.0, cpu_s=1.0, returncode=0, grades=str(tmp_path / "ninguno.csv"))

    monkeypatch.setattr(bench_rapido.bench_clase, "new_course", new_course)
    monkeypatch.setattr(bench_rapido.bench_clase, "run_trusted", run_trusted)
    monkeypatch.setenv("PYTHONPATH", "/antes")
    bench_rapido.grade_once("base", configs["base"], tmp_path, 0, {}, 2, None, 1)
    assert seen == dict(root=base, pythonpath=str(base), config="# base\n", source="base source")
    assert bench_rapido.os.environ["PYTHONPATH"] == "/antes"
    bench_rapido.grade_once("todas", configs["todas"], tmp_path, 0, {}, 2, None, 1)
    assert seen["root"] == bench_rapido.bench_clase.ROOT and seen["source"] == "nuevo"


def test_report_gives_new_over_base(tmp_path):
    same = grades(tmp_path, "a.csv", "72")
    runs = [run("todas", r, w, w, same) for r, w in enumerate((100.0, 104.0, 90.0))]
    runs += [run("base", r, w, 2 * w, same) for r, w in enumerate((95.0, 100.0, 130.0))]
    results = dict(args=dict(alumnos=1, rondas=3, workers=2), paths=[], base_commit="717c1d9",
                   machine=dict(cpu="cpu", cores=2, date="hoy"), command="python -m tools.bench_rapido",
                   summary=bench_rapido.summarize(runs, ["todas", "base"], ["1001"]), elapsed_s=1.0)
    assert "`todas`/`base` = 1.000 en pared y 0.500 en CPU (meta: a lo más 1.05)" in bench_rapido.render(results)
