"""The collection plan the collector saves (integration/collect.py, ``plan_de_recoleccion.json``):
plain JSON beside the extracted folder, paths relative to it, written atomically, read back strictly."""
import json
import os
import shutil

import pytest

from tarea2_grader.integration import collect

# An extracted download with every part of a plan: a student with two notebooks, a flat Moodle
# file (the student's file name is the pattern's file_id), a plain folder, a non-ASCII id, a
# notebook of no student.
DOWNLOAD = {
    "zip/Ana Pérez_1001_assignsubmission_file_/Copia de tarea2.ipynb": "{}",
    "zip/Ana Pérez_1001_assignsubmission_file_/otro.ipynb": '{"cells": []}',
    "zip/Luis_77_assignsubmission_file_tarea2.ipynb": '{"cells": []}',
    "zip/abc123/tarea2.ipynb": '{"cells": []}',
    "zip/José/tarea2.ipynb": '{"cells": []}',
    "suelto.ipynb": '{"cells": []}',
}


def extracted_folder(root):
    """Write DOWNLOAD under ``root``; returns it as a string."""
    for rel, text in DOWNLOAD.items():
        path = os.path.join(str(root), *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    return str(root)


def plan_of(root):
    return collect.plan_collection(root, collect.DEFAULT_PATTERNS, "tarea2.ipynb")


def test_a_saved_plan_reads_back_equal_with_relative_paths(tmp_path):
    root = extracted_folder(tmp_path / "extracted")
    plan = plan_of(root)
    assert plan.students["1001"].skipped() and plan.unmatched == ["suelto.ipynb"]
    assert plan.bad_ids == ["zip/José/tarea2.ipynb"] and plan.students["77"].names
    path = collect.save_plan(plan, root)
    assert path == str(tmp_path / collect.PLAN_FILE)
    assert sorted(os.listdir(tmp_path)) == sorted(["extracted", collect.PLAN_FILE])  # no temporary left
    assert collect.read_plan(root) == plan
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    assert str(tmp_path) not in text
    assert json.loads(text)["students"]["1001"]["chosen"] == "zip/Ana Pérez_1001_assignsubmission_file_/otro.ipynb"
    # moved elsewhere with its folder, the plan is the same plan under the new place
    moved = tmp_path / "otro_lugar"
    shutil.copytree(root, str(moved / "extracted"))
    shutil.copy(path, str(moved / collect.PLAN_FILE))
    assert collect.read_plan(str(moved / "extracted")) == plan_of(str(moved / "extracted"))


def test_no_saved_plan_is_none(tmp_path):
    assert collect.read_plan(extracted_folder(tmp_path / "extracted")) is None


def test_a_failed_write_leaves_the_former_plan_whole(tmp_path, monkeypatch):
    root = extracted_folder(tmp_path / "extracted")
    plan = plan_of(root)
    collect.save_plan(plan, root)

    def dump_half(data, fh, **kwargs):
        fh.write('{"version": 1, "stud')
        raise OSError("disco lleno")
    monkeypatch.setattr(collect.json, "dump", dump_half)
    with pytest.raises(OSError, match="disco lleno"):
        collect.save_plan(collect.CollectionPlan(), root)
    monkeypatch.undo()
    assert collect.read_plan(root) == plan
    assert sorted(os.listdir(tmp_path)) == sorted(["extracted", collect.PLAN_FILE])


def good_data():
    """A saved plan's JSON data (students 1001 and 77 of DOWNLOAD, no folder needed)."""
    return {"version": 1, "target": "tarea2.ipynb",
            "students": {"1001": {"candidates": ["a/x.ipynb", "a/y.ipynb"], "chosen": "a/y.ipynb",
                                  "names": {"a/x.ipynb": "x.ipynb", "a/y.ipynb": "y.ipynb"}},
                         "77": {"candidates": ["b_tarea2.ipynb"], "chosen": "b_tarea2.ipynb",
                                "names": {"b_tarea2.ipynb": "tarea2.ipynb"}}},
            "unmatched": ["suelto.ipynb"], "bad_ids": []}


def spoiled(change):
    """good_data() with ``change`` applied to it."""
    data = good_data()
    change(data)
    return json.dumps(data)


MALFORMED = {
    "not JSON": "esto no es JSON {",
    "empty": "",
    "a list": "[]",
    "nested too deep": "[" * 200000,
    "another version": spoiled(lambda d: d.update(version=2)),
    "a key missing": spoiled(lambda d: d.pop("bad_ids")),
    "an extra key": spoiled(lambda d: d.update(extra=1)),
    "chosen not a candidate": spoiled(lambda d: d["students"]["77"].update(chosen="otro.ipynb")),
    "an absolute path": spoiled(lambda d: d["students"]["77"].update(
        candidates=["/etc/passwd"], chosen="/etc/passwd", names={"/etc/passwd": "tarea2.ipynb"})),
    "a path going up": spoiled(lambda d: d.update(unmatched=["../fuera.ipynb"])),
    "a non-ASCII id": spoiled(lambda d: d["students"].update(José=d["students"].pop("77"))),
    "a name missing": spoiled(lambda d: d["students"]["1001"]["names"].pop("a/x.ipynb")),
    "a number for a path": spoiled(lambda d: d.update(bad_ids=[3])),
    "a student as a list": spoiled(lambda d: d["students"].update({"77": []})),
}


def test_the_good_data_reads():
    plan = collect.plan_from_json(good_data(), "/raiz")
    assert plan.students["1001"].chosen == os.path.join("/raiz", "a", "y.ipynb")
    assert plan.students["77"].name_of(plan.students["77"].chosen) == "tarea2.ipynb"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_plan_is_refused_with_a_reason(tmp_path, case):
    root = str(tmp_path / "extracted")
    with open(collect.plan_path(root), "w", encoding="utf-8") as fh:
        fh.write(MALFORMED[case])
    with pytest.raises(collect.PlanUnreadable) as err:
        collect.read_plan(root)
    assert str(err.value)


def test_bytes_that_are_not_text_are_refused(tmp_path):
    root = str(tmp_path / "extracted")
    with open(collect.plan_path(root), "wb") as fh:
        fh.write(b"\xff\xfe{\x00")
    with pytest.raises(collect.PlanUnreadable):
        collect.read_plan(root)
