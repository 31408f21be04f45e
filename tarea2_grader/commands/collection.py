"""The collection and repair steps of ``make grade``: the LMS zips into submitted/, with a
Spanish note per student about what they sent, and each notebook repaired before it is graded."""
from __future__ import annotations

import glob
import os
import shutil
from typing import Dict, List, Optional, Sequence

from tarea2_grader.engine import repair
from tarea2_grader.engine import tamano
from tarea2_grader.integration import collect
from tarea2_grader.integration.course import Course
from tarea2_grader.integration.grade_table import StudentResult
from tarea2_grader.integration.nbgrader_run import check, load_config, run_nbgrader


# ---------------------------------------------------------------- collect

def collector_args(course: Course) -> List[str]:
    """Command-line options selecting our collector and extractor when the config names none."""
    cfg = load_config(course)
    args = []
    if "collector_plugin" not in cfg.ZipCollectApp:
        args.append("--ZipCollectApp.collector_plugin=tarea2_grader.integration.collect.LmsCollectorPlugin")
    if "extractor_plugin" not in cfg.ZipCollectApp:
        args.append("--ZipCollectApp.extractor_plugin=tarea2_grader.integration.collect.SafeExtractorPlugin")
    return args


def collection_plan(course: Course):
    """(plan, collected notebook name): which file of the extracted LMS download went to which
    student, as the collector saved it when it collected (``plan_de_recoleccion.json`` beside the
    extracted folder, :func:`collect.save_plan`); (None, name) when the course uses another collector.

    Without a saved plan (a class collected before the collector saved one) or with a malformed
    one, the plan is recomputed from the extracted folder as the collector would have made it, and
    a notice says so when that folder holds any notebook."""
    cfg = load_config(course)
    plugin_cls = cfg.ZipCollectApp.get("collector_plugin", "tarea2_grader.integration.collect.LmsCollectorPlugin")
    if plugin_cls not in ("tarea2_grader.integration.collect.LmsCollectorPlugin", collect.LmsCollectorPlugin):
        return None, course.notebook + ".ipynb"
    plugin = collect.LmsCollectorPlugin(config=cfg)
    target = plugin.notebook_name or course.notebook + ".ipynb"
    plan = saved_plan(course)
    if plan is None:
        plan = collect.plan_collection(course.extracted_dir, plugin.active_patterns(), target,
                                       tuple(plugin.valid_ext))
        if plan.students or plan.unmatched or plan.bad_ids:
            print("  aviso: no hay plan de recolección guardado ({}): se recalcula desde {}".format(
                collect.PLAN_FILE, course.extracted_dir))
    return plan, plan.target or target


def saved_plan(course: Course) -> Optional[collect.CollectionPlan]:
    """The plan the collector saved for the course's extracted folder; None when there is none or
    it is malformed (with a notice)."""
    try:
        return collect.read_plan(course.extracted_dir)
    except collect.PlanUnreadable as exc:
        print("  aviso: {} está mal formado ({}); se ignora".format(collect.plan_path(course.extracted_dir), exc))
        return None


def collection_notes(course: Course) -> Dict[str, List[str]]:
    """Spanish notes per student about renamed or extra notebooks they sent."""
    plan, target = collection_plan(course)
    if plan is None:
        return {}
    notes: Dict[str, List[str]] = {}
    for sid, entry in plan.students.items():
        items = notes.setdefault(sid, [])
        name = entry.name_of(entry.chosen)
        if name != target:
            items.append("notebook entregado como '{}'".format(name))
        if entry.skipped():
            items.append("envió {} notebooks; se corrigió '{}' (ignorados: {})".format(
                len(entry.candidates), name, ", ".join(entry.name_of(p) for p in entry.skipped())))
    for rel in plan.unmatched + plan.bad_ids:
        print("  aviso: archivo sin alumno reconocible, ignorado: " + rel)
    for sid, reason in refusal_notes(course).items():
        notes.setdefault(sid, []).append(reason)
    return notes


def refusal_notes(course: Course) -> Dict[str, str]:
    """{student: Spanish note} for the files the extractor refused (tarea2_grader/integration/collect.py)."""
    patterns = collect.LmsCollectorPlugin(config=load_config(course)).active_patterns()
    notes: Dict[str, List[str]] = {}
    for item in collect.read_refusals(course.extracted_dir):
        info = collect.match_path(item["archivo"], patterns)
        line = "no se extrajo '{}' ({})".format(item["archivo"].rsplit("/", 1)[-1], item.get("motivo", ""))
        if info and collect.ASCII_ID.match(info["student_id"]):
            notes.setdefault(info["student_id"], []).append(line)
        else:
            print("  aviso: no se extrajo {} ({})".format(item["archivo"], item.get("motivo", "")))
    return {sid: "; ".join(lines) for sid, lines in notes.items()}


def refused_students(collected: Dict[str, List[str]], students: Sequence[str]) -> Dict[str, "StudentResult"]:
    """Students with notes from the collection but nothing collected (every file they sent was
    refused): a row with the reason."""
    return {sid: StudentResult(sid, [], "entrega rechazada: " + "; ".join(notes))
            for sid, notes in collected.items() if sid not in students and notes}


def set_aside_unreadable_archives(course: Course) -> List[str]:
    """Move archives that are neither zip nor tar out of the way (zip_collect would abort on them)."""
    import tarfile
    import zipfile
    moved = []
    for name in sorted(os.listdir(course.archive_dir)):
        path = os.path.join(course.archive_dir, name)
        if os.path.isfile(path) and not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
            aside = course.path("downloaded", course.assignment, "ilegibles")
            os.makedirs(aside, exist_ok=True)
            shutil.move(path, os.path.join(aside, name))
            moved.append(name)
    return moved


def collect_archives(course: Course) -> Dict[str, List[str]]:
    """Extract and collect the zips in downloaded/<assignment>/archive/ (if any)."""
    if not os.path.isdir(course.archive_dir):
        return {}
    for name in set_aside_unreadable_archives(course):
        print("  aviso: '{}' no es un zip válido; se movió a downloaded/{}/ilegibles/ y se corrige el resto"
              .format(name, course.assignment))
    if not os.listdir(course.archive_dir):
        return {}
    if os.path.exists(collect.plan_path(course.extracted_dir)):  # the collector saves this collection's plan;
        os.remove(collect.plan_path(course.extracted_dir))      # a former one must not stand in for it
    check(run_nbgrader(course, ["zip_collect", course.assignment_arg, "--force",
                                *collector_args(course)]), "zip_collect")
    return collection_notes(course)


def rename_stray_notebook(course: Course, student: str) -> Optional[str]:
    """When a submitted folder has no <notebook>.ipynb, rename the best other notebook."""
    wanted = course.submitted_nb(student)
    if os.path.exists(wanted):
        return None
    others = glob.glob(os.path.join(glob.escape(course.submitted_dir(student)), "*.ipynb"))
    if not others:
        return None
    best = sorted(others, key=lambda p: collect.candidate_rank(p, os.path.basename(wanted)))[0]
    os.rename(best, wanted)
    return "notebook entregado como '{}'".format(os.path.basename(best))


# ---------------------------------------------------------------- repair

def repair_student(course: Course, student: str, release_nb: str, result: StudentResult) -> bool:
    """Repair a student's notebook in place; False (with a reason) when it cannot be graded."""
    note = rename_stray_notebook(course, student)
    if note and note not in result.notes:
        result.notes.append(note)
    path = course.submitted_nb(student)
    if not os.path.exists(path):
        result.failure = "no se encontró ningún notebook en la entrega"
        return False
    try:  # before anything reads the whole file: outputs and attachments over the size caps cut
        result.notes.extend(tamano.cap_submission(path, tamano.SizeLimits(config=load_config(course))))
    except tamano.TooLarge as exc:
        result.failure = str(exc)
        return False
    try:
        report = repair.repair_notebook(path, release_nb, course.source_nb)
    except repair.NotebookUnreadable as exc:
        result.failure = str(exc)
        return False
    except Exception as exc:  # e.g. valid JSON that is not a valid notebook: this student only
        result.failure = "el archivo no es un notebook válido ({}: {})".format(type(exc).__name__, str(exc)[:150])
        return False
    result.notes.extend(report.messages())
    return True
