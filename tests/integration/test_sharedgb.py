"""The shared-engine gradebook preprocessors (tarea2_grader/integration/sharedgb.py) do exactly what nbgrader's do:
same lookups, same notebooks, same logs, same gradebook rows, for a whole autograde pass and for
edge cases (deleted, renamed, edited locked cells, task cells, late submissions)."""
import contextlib
import copy
import json
import logging
import os
import shutil
import sqlite3

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import (AssignLatePenalties, OverwriteCells, OverwriteKernelspec,
                                    SaveAutoGrades)

from tests.support.fake_course import student_notebook
from tests.support.repo import REPO

from tarea2_grader.commands import autograde_pass
from tarea2_grader.commands import pregrading
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.integration import sharedgb
from tarea2_grader.integration.sharedgb import (NotebookLookupGradebook, SharedAssignLatePenalties, SharedEngineGradebook,
                                    SharedOverwriteCells, SharedOverwriteKernelspec, SharedSaveAutoGrades)

STOCK_TO_SHARED = {
    "nbgrader.preprocessors.OverwriteKernelspec": "tarea2_grader.integration.sharedgb.SharedOverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells": "tarea2_grader.integration.sharedgb.SharedOverwriteCells",
    "nbgrader.preprocessors.SaveAutoGrades": "tarea2_grader.integration.sharedgb.SharedSaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties": "tarea2_grader.integration.sharedgb.SharedAssignLatePenalties",
}
PAIRS = [(OverwriteKernelspec, SharedOverwriteKernelspec), (OverwriteCells, SharedOverwriteCells),
         (SaveAutoGrades, SharedSaveAutoGrades), (AssignLatePenalties, SharedAssignLatePenalties)]

GOOD = {"cuadrado": "def cuadrado(x):\n    return x * x", "suma": "def suma(a, b):\n    return a + b",
        "explica_md": "Porque sí."}
# student -> (answers, drop_meta, delete): the kinds of notebook nbgrader's passes treat differently.
STUDENTS = {
    "s01": (GOOD, (), ()),
    "s02": (dict(GOOD, suma="def suma(a, b):\n    return a - b"), (), ()),
    "s03": ({}, (), ()),  # the release untouched: "No response." comments
    "s04": (GOOD, (), ("test_suma",)),  # a deleted test cell, put back by OverwriteCells
    "s05": (dict(GOOD, dado="import math\nBASE = 4"), (), ()),  # an edited locked cell
    "s06": (GOOD, ("test_cuadrado",), ()),  # a test cell without its nbgrader metadata
    "s07": (dict(GOOD, test_suma="pass"), (), ()),  # an emptied locked test
    "s08": (GOOD, (), ()),  # a renamed grade id: nbgrader's OverwriteCells fails on it
}
FAILS = {"s08"}
LATE = "s02"  # submitted after the due date


def write_submissions(course):
    rel = course.path("release", "tarea2", "tarea2.ipynb")
    for student, (answers, drop_meta, delete) in STUDENTS.items():
        nb = student_notebook(rel, answers, drop_meta=drop_meta, delete=delete)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if student == "s05" and meta.get("grade_id") == "test_suma":  # a changed point value
                meta["points"] = 30
            if student == "s08" and meta.get("grade_id") == "explica_md":
                meta["grade_id"] = "inventada"
        if student == "s07":
            nb.metadata["kernelspec"] = {"display_name": "Otro", "language": "python", "name": "otro"}
        path = course.submitted_nb(student)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        nbformat.write(nb, path)
        stamp = "2030-01-02 10:00:00.000000 UTC" if student == LATE else "2020-01-02 10:00:00.000000 UTC"
        with open(os.path.join(os.path.dirname(path), "timestamp.txt"), "w") as fh:
            fh.write(stamp)


def use_shared(course, shared=True):
    """Point the course's config at the shared preprocessors (or leave nbgrader's)."""
    path = course.path("nbgrader_config.py")
    text = open(path).read()
    for stock, ours in STOCK_TO_SHARED.items():
        text = text.replace('"{}"'.format(stock), '"{}"'.format(ours)) if shared else text
    open(path, "w").write(text)
    assert ("sharedgb" in text) == shared


def scramble(course):
    """Every score, flag, comment and penalty a pass writes, set to something it never writes."""
    db = sqlite3.connect(course.path("gradebook.db"))
    db.execute("update grade set auto_score = 999, needs_manual_grade = 1 - coalesce(needs_manual_grade, 0)")
    db.execute("update comment set auto_comment = 'basura'")
    db.execute("update submitted_notebook set late_submission_penalty = 77")
    db.commit()
    db.close()


def dump(course):
    """Every gradebook row (sorted) and every autograded notebook's text."""
    db = sqlite3.connect(course.path("gradebook.db"))
    out = {}
    for (table,) in db.execute("select name from sqlite_master where type='table' order by name"):
        cols = [r[1] for r in db.execute("pragma table_info({})".format(table))]
        rows = [dict(zip(cols, r)) for r in db.execute("select * from {}".format(table))]
        out[table] = sorted(rows, key=lambda d: json.dumps(d, sort_keys=True, default=str))
    db.close()
    for student in STUDENTS:
        path = course.autograded_nb(student)
        out[path[len(course.root):]] = autograded_text(course, student) if os.path.exists(path) else None
    return out


def autograded_text(course, student):
    """The autograded notebook's text, where a cell nbgrader put back (a new random id) has id "nueva"."""
    submitted = {c.get("id") for c in nbformat.read(course.submitted_nb(student), as_version=4).cells}
    data = json.loads(open(course.autograded_nb(student), encoding="utf-8").read())
    for cell in data["cells"]:
        if cell.get("id") not in submitted:
            cell["id"] = "nueva"
    return json.dumps(data, indent=1, sort_keys=True)


def scrambled_students(rows):
    """Students with a score, comment or penalty that :func:`scramble` set and no pass rewrote."""
    student_of = {a["id"]: a["student_id"] for a in rows["submitted_assignment"]}
    notebook_of = {n["id"]: student_of[n["assignment_id"]] for n in rows["submitted_notebook"]}
    found = {notebook_of[g["notebook_id"]] for g in rows["grade"] if g["auto_score"] == 999}
    found |= {notebook_of[c["notebook_id"]] for c in rows["comment"] if c["auto_comment"] == "basura"}
    return found | {student_of[n["assignment_id"]] for n in rows["submitted_notebook"]
                    if n["late_submission_penalty"] == 77}


def one_pass(course):
    te = pregrading.trusted_settings(course)
    results = autograde_pass.autograde_all(course, list(STUDENTS), extra_args=pregrading.trusted_args(te))
    with open(autograde_pass.autograde_log(course), encoding="utf-8") as fh:
        log = fh.read().replace(course.root, "<curso>")
    # a traceback's frames name the file of each preprocessor: the rest must be the same
    return results, "".join(line for line in log.splitlines(True) if not line.startswith(" "))


@pytest.fixture(scope="module")
def twin_courses(fake_course_factory, tmp_path_factory):
    """One graded class in two copies: nbgrader's preprocessors and the shared ones."""
    stock = fake_course_factory("sharedgb_stock")
    write_submissions(stock)
    with Gradebook("sqlite:///" + stock.path("gradebook.db")) as gb:
        gb.update_or_create_assignment("tarea2", duedate="2025-01-01 00:00:00 UTC")
    first, _log = one_pass(stock)  # grades every student once: verdicts in the cache
    assert {s for s, r in first.items() if r.failure} == FAILS, first
    # nbgrader refuses s08's notebook itself: the student's reason, not a failure of the machinery
    assert not any(first[s].machinery for s in FAILS), [first[s] for s in FAILS]
    assert first["s08"].failure.startswith("nbgrader no pudo corregir el notebook (KeyError"), first["s08"]
    ours = Course(str(tmp_path_factory.mktemp("sharedgb_ours")))
    shutil.copytree(stock.root, ours.root, dirs_exist_ok=True)
    use_shared(ours)
    return stock, ours


@pytest.mark.slow
def test_a_pass_writes_what_nbgraders_preprocessors_write(twin_courses):
    stock, ours = twin_courses
    before = dump(stock)
    assert before == dump(ours)
    for course in twin_courses:
        scramble(course)
    assert scrambled_students(dump(stock)) == set(STUDENTS)  # the pass has everything to rewrite
    stock_results, stock_log = one_pass(stock)
    our_results, our_log = one_pass(ours)
    after = dump(stock)
    assert scrambled_students(after) == FAILS
    assert {k: v for k, v in after.items() if k not in ("grade", "comment", "submitted_notebook")} == \
        {k: v for k, v in before.items() if k not in ("grade", "comment", "submitted_notebook")}
    assert dump(ours) == after
    assert {s: (r.failure, r.notes) for s, r in our_results.items()} == \
        {s: (r.failure, r.notes) for s, r in stock_results.items()}
    assert our_log == stock_log
    assert "Veredictos de s01 ya calculados" in our_log
    # the cases did reach nbgrader's branches
    assert "Missing grade cell test_suma encountered" in our_log
    assert "Cell 'inventada' does not exist in the database" in our_log
    assert "Attribute 'checksum' for cell dado has changed" in our_log
    assert "Attribute 'points' for cell test_suma has changed" in our_log
    assert "s02" in our_log and "seconds late" in our_log
    rows = after["comment"]
    assert any(r["auto_comment"] == "No response." for r in rows)
    assert any(r["late_submission_penalty"] is not None for r in after["submitted_notebook"])


def copy_of(course, tmp_path, name):
    root = str(tmp_path / name)
    shutil.copytree(course.root, root)
    return Course(root)


def outcome(fn):
    """(kind of row, its id) or (exception type, message) of ``fn()``."""
    try:
        found = fn()
    except Exception as exc:  # any: both must fail the same way
        return type(exc).__name__, str(exc)
    return type(found).__name__, found.id


TASK_STUDENT = "s99"  # submitted after the task cell exists: it has its grade and comment


def add_task_cell(course, name="tarea_md"):
    """A task cell (nbgrader's other kind of graded cell) and a submission that has its grade and comment."""
    with Gradebook("sqlite:///" + course.path("gradebook.db"), "curso-de-prueba") as gb:
        gb.update_or_create_task_cell(name, "tarea2", "tarea2", max_score=2, cell_type="markdown")
        gb.update_or_create_source_cell(name, "tarea2", "tarea2", cell_type="markdown", locked=True,
                                        source="Describe.", checksum="0" * 32)
        gb.update_or_create_student(TASK_STUDENT)
        gb.add_submission("tarea2", TASK_STUDENT)


@pytest.mark.slow
@pytest.mark.parametrize("student", ["s01", TASK_STUDENT, "nadie"])
def test_lookups_answer_what_nbgraders_queries_answer(twin_courses, tmp_path, student):
    course = copy_of(twin_courses[0], tmp_path, "lookups")
    add_task_cell(course)
    url = "sqlite:///" + course.path("gradebook.db")
    names = ["dado", "cuadrado", "test_cuadrado", "explica_md", "suma", "test_suma", "tarea_md", "inventada", ""]
    calls = [("find_source_cell", ("tarea2", "tarea2")), ("find_source_cell", ("otro", "tarea2")),
             ("find_graded_cell", ("tarea2", "tarea2")), ("find_graded_cell", ("tarea2", "otra")),
             ("find_grade", ("tarea2", "tarea2", student)), ("find_comment", ("tarea2", "tarea2", student))]
    seen = set()
    for method, args in calls:
        with Gradebook(url) as stock, NotebookLookupGradebook(url) as ours:
            for name in names:
                expected = outcome(lambda: getattr(stock, method)(name, *args))
                got = outcome(lambda: getattr(ours, method)(name, *args))
                assert got == expected, (method, name, args)
                seen.add(expected[0])
    assert {"SourceCell", "GradeCell", "TaskCell", "MissingEntry"} <= seen
    if student != "nadie":
        assert {"Grade", "Comment"} <= seen


@pytest.mark.slow
def test_lookups_return_the_sessions_own_objects(twin_courses):
    url = "sqlite:///" + twin_courses[1].path("gradebook.db")
    with NotebookLookupGradebook(url) as gb:
        grade = gb.find_grade("test_suma", "tarea2", "tarea2", "s01")
        assert grade is Gradebook.find_grade(gb, "test_suma", "tarea2", "tarea2", "s01")
        cell = gb.find_source_cell("dado", "tarea2", "tarea2")
        assert cell is Gradebook.find_source_cell(gb, "dado", "tarea2", "tarea2")


@contextlib.contextmanager
def sql_statements(target=None):
    """The SQL statements run on ``target`` (an engine; every engine when None) meanwhile, in order,
    each on one line."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    target = Engine if target is None else target
    statements = []

    def seen(conn, cursor, statement, *rest):
        statements.append(" ".join(statement.split()))
    event.listen(target, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", seen)


@pytest.mark.slow
def test_lookups_make_one_query_per_notebook(twin_courses):
    url = "sqlite:///" + twin_courses[1].path("gradebook.db")
    counts = {}
    for cls in (Gradebook, NotebookLookupGradebook):
        with cls(url) as gb, sql_statements(gb.engine) as statements:
            for name in ("cuadrado", "test_cuadrado", "suma", "test_suma", "dado"):
                gb.find_source_cell(name, "tarea2", "tarea2")
            for name in ("test_cuadrado", "test_suma", "explica_md"):
                gb.find_grade(name, "tarea2", "tarea2", "s01")
            counts[cls] = len(statements)
    assert counts[Gradebook] == 8
    assert counts[NotebookLookupGradebook] == 2


@pytest.mark.slow
def test_shared_engine_is_built_by_nbgrader_once_per_database(tmp_path):
    sharedgb.forget_engines()
    url = "sqlite:///" + str(tmp_path / "nueva.db")
    with SharedEngineGradebook(url, "curso-x") as first:
        engine = first.engine
    with SharedEngineGradebook(url, "curso-y") as second:
        assert second.engine is engine
        second.update_or_create_student("e1")
    with SharedEngineGradebook(url, "curso-y") as third:  # after nbgrader's close (engine disposed)
        assert third.find_student("e1").id == "e1"
    other = "sqlite:///" + str(tmp_path / "otra.db")
    with SharedEngineGradebook(other) as gb:
        assert gb.engine is not engine
    # the same database as nbgrader's own Gradebook leaves it: tables, alembic version, courses
    reference = "sqlite:///" + str(tmp_path / "referencia.db")
    with Gradebook(reference, "curso-x"):
        pass
    with Gradebook(reference, "curso-y") as gb:
        gb.update_or_create_student("e1")

    def schema(path):
        db = sqlite3.connect(path)
        try:
            return (sorted(db.execute("select type, name, sql from sqlite_master")),
                    db.execute("select * from alembic_version").fetchall(),
                    sorted(db.execute("select id from course")))
        finally:
            db.close()
    assert schema(str(tmp_path / "nueva.db")) == schema(str(tmp_path / "referencia.db"))
    sharedgb.forget_engines()


@pytest.mark.slow
def test_a_new_database_file_is_set_up_by_nbgrader_again(tmp_path):
    sharedgb.forget_engines()
    path = tmp_path / "libro.db"
    url = "sqlite:///" + str(path)
    with SharedEngineGradebook(url) as gb:
        gb.update_or_create_student("e1")
        engine = gb.engine
    path.unlink()  # a new course at the same place, in the same process
    with SharedEngineGradebook(url) as gb:
        assert gb.engine is not engine
        assert gb.students == []
        gb.update_or_create_student("e2")
    with SharedEngineGradebook(url) as gb:
        assert [s.id for s in gb.students] == ["e2"]
    sharedgb.forget_engines()


@pytest.mark.slow
@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_databases_are_never_shared(url):
    with SharedEngineGradebook(url) as first:
        first.update_or_create_student("e1")
        engine = first.engine
    with SharedEngineGradebook(url) as second:  # nbgrader: a new, empty database each time
        assert second.engine is not engine
        assert second.students == []


def run_preprocessor(cls, course, student, nb, caplog):
    """(error or None, the notebook it returns, its log lines) of ``cls`` on a copy of ``nb``."""
    pp = cls(config=nbgrader_run.load_config(course))
    pp.log = logging.getLogger("sharedgb.prueba")
    resources = {"nbgrader": {"notebook": "tarea2", "assignment": "tarea2", "student": student,
                              "db_url": "sqlite:///" + course.path("gradebook.db")}}
    caplog.clear()
    error, out = None, None
    with caplog.at_level(logging.DEBUG, logger="sharedgb.prueba"):
        try:
            out = pp(copy.deepcopy(nb), resources)[0]
        except Exception as exc:  # any: both must fail the same way
            error = (type(exc).__name__, str(exc))
    lines = [r.getMessage() for r in caplog.records if r.name == "sharedgb.prueba"]
    # nbconvert's debug line names the class
    return error, out, [line.replace("preprocessor: Shared", "preprocessor: ") for line in lines]


@pytest.mark.slow
@pytest.mark.parametrize("stock, shared", PAIRS, ids=[p[0].__name__ for p in PAIRS])
@pytest.mark.parametrize("student", sorted(STUDENTS))
def test_each_preprocessor_does_what_nbgraders_does(twin_courses, tmp_path, caplog, stock, shared, student):
    base = twin_courses[0]
    nb = nbformat.read(base.submitted_nb(student), as_version=4)
    if stock in (SaveAutoGrades, AssignLatePenalties) and student not in FAILS:  # they see the autograded one
        nb = nbformat.read(base.autograded_nb(student), as_version=4)
    ran = {}
    for cls in (stock, shared):
        course = copy_of(base, tmp_path, cls.__name__)
        scramble(course)
        error, out, log = run_preprocessor(cls, course, student, nb, caplog)
        ran[cls] = (error, out, log, dump(course))
    assert ran[shared] == ran[stock]
    # the renamed grade id: MissingEntry in both gradebook passes over its cells
    fails = student in FAILS and stock in (OverwriteCells, SaveAutoGrades)
    assert (ran[stock][0] is not None) == fails, ran[stock][0]


def test_course_config_uses_the_shared_preprocessors_in_nbgraders_places():
    from nbgrader.converters.autograde import Autograde
    from traitlets.utils.importstring import import_item
    cfg = nbgrader_run.load_config(Course(REPO))
    for trait in ("sanitize_preprocessors", "autograde_preprocessors"):
        configured = [import_item(c) if isinstance(c, str) else c for c in getattr(cfg.Autograde, trait)]
        default = Autograde.class_traits()[trait].default()
        for cls in configured:
            for stock, shared in PAIRS:
                assert cls is not stock, "{} in {}: use {}".format(stock.__name__, trait, shared.__name__)
        shared = [c for c in configured if c.__module__ == "tarea2_grader.integration.sharedgb"]
        assert shared and all(any(issubclass(c, d) for d in default) for c in shared)
        positions = [default.index(next(d for d in default if issubclass(c, d))) for c in shared]
        assert positions == sorted(positions)


@pytest.mark.slow
def test_missing_entry_is_nbgraders(twin_courses):
    url = "sqlite:///" + twin_courses[1].path("gradebook.db")
    with NotebookLookupGradebook(url) as gb:
        with pytest.raises(MissingEntry, match="No such source cell: tarea2/tarea2/nada"):
            gb.find_source_cell("nada", "tarea2", "tarea2")


def statements_of(cls, course, student, nb, caplog):
    """The SQL statements that preprocessor ``cls`` runs on ``nb`` (every engine's, in order)."""
    with sql_statements() as statements:
        error = run_preprocessor(cls, course, student, nb, caplog)[0]
    assert error is None
    return statements


@pytest.mark.slow
def test_save_auto_grades_loads_no_row_again_after_each_commit(twin_courses, tmp_path, caplog):
    """nbgrader commits after every grade and comment; after a commit the shared gradebook's rows
    stay loaded, so the only row queries are the two lookups (grades, comments) of the notebook."""
    base = twin_courses[0]
    nb = nbformat.read(base.autograded_nb("s01"), as_version=4)
    cells = sum(1 for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                or c.metadata.get("nbgrader", {}).get("solution"))
    sharedgb.forget_engines()
    ran = {}
    for cls in (SaveAutoGrades, SharedSaveAutoGrades):
        course = copy_of(base, tmp_path, cls.__name__)
        run_preprocessor(cls, course, "s01", nb, caplog)  # the shared engine is built: not counted
        scramble(course)  # every grade and comment is written again
        statements = statements_of(cls, course, "s01", nb, caplog)
        ran[cls] = [s for s in statements if s.startswith("SELECT") and " JOIN " in s], statements
    stock, shared = ran[SaveAutoGrades], ran[SharedSaveAutoGrades]
    assert len(stock[0]) >= cells > 2
    assert len(shared[0]) == 2, shared[0]
    reloads = [s for s in shared[1] if s.startswith("SELECT") and s not in shared[0]
               and ("FROM grade " in s or "FROM comment " in s)]
    assert reloads == []
    updates = [s for s in shared[1] if s.startswith("UPDATE")]
    assert updates == [s for s in stock[1] if s.startswith("UPDATE")] and len(updates) >= cells


def init_assignments(course, students):
    """nbgrader's ``Autograde.init_assignment`` (gradebook rows of the student and the submission)
    for ``students``, in this process; how many gradebooks nbgrader's own ``__init__`` built."""
    from unittest import mock
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.converters import Autograde
    cfg = nbgrader_run.load_config(course)
    coursedir = CourseDirectory(config=cfg)
    coursedir.root = course.root  # the config's "." is the current folder
    converter = Autograde(coursedir=coursedir, config=cfg)
    with mock.patch.object(Gradebook, "__init__", autospec=True, side_effect=Gradebook.__init__) as built:
        for student in students:
            converter.notebooks = [course.submitted_nb(student)]  # convert_notebooks' glob
            converter.init_assignment("tarea2", student)
    return built.call_count


@pytest.mark.slow
def test_converter_gradebooks_share_one_engine_and_write_what_nbgraders_write(fake_course_factory, tmp_path,
                                                                               monkeypatch):
    from nbgrader.converters import autograde
    monkeypatch.setattr(autograde, "Gradebook", autograde.Gradebook)  # put back after the test
    students = ["s01", "s02", "s03"]
    stock = fake_course_factory("conversor")  # no submission in its gradebook yet
    write_submissions(stock)
    ours = copy_of(stock, tmp_path, "ours")
    built_stock = init_assignments(stock, students)
    sharedgb.forget_engines()
    sharedgb.share_converter_engine()
    assert autograde.Gradebook is SharedEngineGradebook
    built_ours = init_assignments(ours, students)
    assert built_stock >= 3 * len(students) and built_ours == 1
    assert submissions(ours) == submissions(stock)
    assert [s[0] for s in submissions(ours)] == students


def submissions(course):
    """Each submission of the gradebook by its natural keys (row ids are random)."""
    with Gradebook("sqlite:///" + course.path("gradebook.db")) as gb:
        return sorted((sub.student_id, str(sub.timestamp), sorted(
            (nb.name, nb.late_submission_penalty,
             sorted((g.name, g.auto_score, g.manual_score, g.needs_manual_grade) for g in nb.grades),
             sorted((c.name, c.auto_comment, c.manual_comment) for c in nb.comments))
            for nb in sub.notebooks)) for sub in gb.assignment_submissions("tarea2"))
