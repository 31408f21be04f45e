"""nbgrader's gradebook preprocessors with one SQLAlchemy engine per gradebook in each process.

Each of nbgrader's ``OverwriteKernelspec``, ``OverwriteCells``, ``SaveAutoGrades`` and
``AssignLatePenalties`` opens ``nbgrader.api.Gradebook(db_url)`` once per student, and each
``Gradebook`` builds a new SQLAlchemy engine: it reflects the database's table names, runs
``create_all`` (a ``PRAGMA table_info`` per table) and, since an engine's compiled-statement cache
starts empty, compiles every query it makes again (about 0.1 s of CPU per student in an
autograde pass that takes its verdicts from the cache).

:class:`SharedEngineGradebook` is nbgrader's ``Gradebook``: the first one opened on a database in
this process is built by nbgrader's own ``__init__`` (tables and alembic version created if
missing); the next ones reuse its engine, so the tables are not checked again and compiled
statements are reused.  Each still gets its own new session, runs ``check_course`` as nbgrader's
does, and ``close`` (nbgrader's) removes the session and disposes the engine's pool, so every
gradebook still talks to the database over a fresh connection, with the same transactions.

``OverwriteCells`` and ``SaveAutoGrades`` also look up one row per nbgrader cell (source cell,
grade cell, grade, comment), each a join query: :class:`NotebookLookupGradebook` answers them
from one query per notebook (same rows, same objects of the session; anything else by nbgrader's
own method).

``SaveAutoGrades`` commits after every cell, and a session's commit normally expires every row it
has loaded, so the next cell's row (already in the lookup) was loaded again, one query per cell.
The session of a :class:`NotebookLookupGradebook` keeps its rows as they were committed
(``expire_on_commit=False``): the same commits, without the reloads.  It lives for one
preprocessor on one notebook, and nothing else writes those rows meanwhile.

The ``Shared*`` preprocessors (in ``c.Autograde.sanitize_preprocessors`` and
``c.Autograde.autograde_preprocessors``) are nbgrader's, with their ``preprocess`` opening one of
these gradebooks instead; their per-cell steps are nbgrader's own (inherited).
:func:`share_converter_engine` makes the ``Autograde`` converter's own gradebooks (five per
student, in ``init_assignment``) :class:`SharedEngineGradebook` too; the long-lived autograde pass
(:func:`tarea2_grader.integration.nbgrader_cli.serve_batches`) calls it.

All of this is the fast path ``sharedgb`` (:mod:`tarea2_grader.integration.fastpaths`): with it off
(switched off, or nbgrader's code it relies on changed), each ``Shared*`` preprocessor is its
nbgrader base (``preprocess`` is nbgrader's), :func:`open_gradebook` gives nbgrader's
``Gradebook`` and :func:`share_converter_engine` does nothing.
"""
import json
import os
import threading
from collections import defaultdict

from nbgrader.api import (Assignment, Comment, Grade, Gradebook, GradeCell, Notebook, SolutionCell, SourceCell,
                          Student, SubmittedAssignment, SubmittedNotebook)
from nbgrader.preprocessors import (AssignLatePenalties, NbGraderPreprocessor, OverwriteCells,
                                    OverwriteKernelspec, SaveAutoGrades)

from tarea2_grader.integration import fastpaths

PATH = "sharedgb"

_engines = {}
_lock = threading.Lock()


def forget_engines() -> None:
    """Drop the shared engines (the next gradebook of each database is built by nbgrader again)."""
    with _lock:
        _engines.clear()


def database_key(db_url: str):
    """What identifies the database at ``db_url`` for sharing its engine, or None: not shared.

    An SQLite file is identified by the file itself too (one deleted or replaced since is another
    database, which nbgrader's ``__init__`` sets up again); a file that does not exist yet and an
    in-memory database (a new empty one for each nbgrader gradebook) are never shared.
    """
    if not db_url.startswith("sqlite"):
        return db_url
    if not db_url.startswith("sqlite:///") or db_url[len("sqlite:///"):] in ("", ":memory:"):
        return None
    try:
        st = os.stat(db_url[len("sqlite:///"):])
    except OSError:
        return None
    return db_url, st.st_dev, st.st_ino


def open_gradebook(db_url: str, config=None) -> Gradebook:
    """A gradebook on ``db_url``: a :class:`SharedEngineGradebook`, or nbgrader's own with the path off."""
    return SharedEngineGradebook(db_url) if fastpaths.active(PATH, config) else Gradebook(db_url)


class SharedEngineGradebook(Gradebook):
    """nbgrader's ``Gradebook`` on the engine of the first one opened on ``db_url``'s database in this
    process (:func:`database_key`)."""

    def __init__(self, db_url: str, course_id: str = "default_course", authenticator=None):
        key = database_key(db_url)
        engine = _engines.get(key) if key is not None else None
        if engine is None:
            super().__init__(db_url, course_id, authenticator)  # nbgrader's set-up of the database
            key = database_key(db_url)  # the file exists now
            if key is not None:
                with _lock:
                    _engines.setdefault(key, self.engine)
            return
        from sqlalchemy.orm import scoped_session, sessionmaker
        self.engine = engine
        self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
        self.check_course(course_id=course_id)
        self.course_id = course_id
        self.authenticator = authenticator


class NotebookLookupGradebook(SharedEngineGradebook):
    """:class:`SharedEngineGradebook` whose per-cell lookups of one notebook come from one query.

    ``find_source_cell``, ``find_graded_cell``, ``find_grade`` and ``find_comment`` are called once
    per nbgrader cell of a student's notebook by ``OverwriteCells`` and ``SaveAutoGrades``, each a
    join query.  Here the first call for a (notebook, assignment[, student]) runs nbgrader's join
    once without the cell name and keeps {cell name: rows}; a name with exactly one row gets that
    row (what nbgrader's ``.one()`` on the same join returns: the same object of this session); any
    other name is answered by nbgrader's own method (its fallback to task cells, ``MissingEntry``,
    ``MultipleResultsFound``).  The lookup lives as long as this gradebook, i.e. one preprocessor on
    one notebook, during which those preprocessors add or delete no cell, grade or comment rows.
    """

    def __init__(self, db_url: str, course_id: str = "default_course", authenticator=None):
        super().__init__(db_url, course_id, authenticator)
        self.db().expire_on_commit = False  # see the module's docstring

    def _lookup(self, key, build):
        tables = self.__dict__.setdefault("_lookups", {})
        if key not in tables:
            rows = defaultdict(list)
            for name, row in build():
                rows[name].append(row)
            tables[key] = rows
        return tables[key]

    def _unique(self, key, build, name):
        rows = self._lookup(key, build).get(name, ())
        return rows[0] if len(rows) == 1 else None

    def find_source_cell(self, name, notebook, assignment):
        def build():
            return self.db.query(SourceCell.name, SourceCell)\
                .select_from(SourceCell)\
                .join(Notebook, Notebook.id == SourceCell.notebook_id)\
                .join(Assignment, Assignment.id == Notebook.assignment_id)\
                .filter(Notebook.name == notebook, Assignment.name == assignment)\
                .all()
        found = self._unique(("source", notebook, assignment), build, name)
        return found if found is not None else super().find_source_cell(name, notebook, assignment)

    def find_graded_cell(self, name, notebook, assignment):
        def build():
            return self.db.query(GradeCell.name, GradeCell)\
                .select_from(GradeCell)\
                .join(Notebook, Notebook.id == GradeCell.notebook_id)\
                .join(Assignment, Assignment.id == Notebook.assignment_id)\
                .filter(Notebook.name == notebook, Assignment.name == assignment)\
                .all()
        found = self._unique(("graded", notebook, assignment), build, name)
        return found if found is not None else super().find_graded_cell(name, notebook, assignment)

    def _submitted(self, row, cell, notebook, assignment, student):
        return self.db.query(cell.name, row)\
            .select_from(row)\
            .join(cell, cell.id == row.cell_id)\
            .join(SubmittedNotebook, SubmittedNotebook.id == row.notebook_id)\
            .join(Notebook, Notebook.id == SubmittedNotebook.notebook_id)\
            .join(SubmittedAssignment, SubmittedAssignment.id == SubmittedNotebook.assignment_id)\
            .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id)\
            .join(Student, Student.id == SubmittedAssignment.student_id)\
            .filter(Notebook.name == notebook, Assignment.name == assignment, Student.id == student)\
            .all()

    def find_grade(self, grade_cell, notebook, assignment, student):
        found = self._unique(("grade", notebook, assignment, student),
                             lambda: self._submitted(Grade, GradeCell, notebook, assignment, student), grade_cell)
        return found if found is not None else super().find_grade(grade_cell, notebook, assignment, student)

    def find_comment(self, solution_cell, notebook, assignment, student):
        found = self._unique(("comment", notebook, assignment, student),
                             lambda: self._submitted(Comment, SolutionCell, notebook, assignment, student),
                             solution_cell)
        return found if found is not None else super().find_comment(solution_cell, notebook, assignment, student)


def _ids(pp, resources, student=True) -> None:
    info = resources['nbgrader']
    pp.notebook_id = info['notebook']
    pp.assignment_id = info['assignment']
    if student:
        pp.student_id = info['student']
    pp.db_url = info['db_url']


class SharedOverwriteKernelspec(OverwriteKernelspec):
    """nbgrader's ``OverwriteKernelspec`` with a :class:`SharedEngineGradebook`."""

    def preprocess(self, nb, resources):
        if not fastpaths.active(PATH, self.config):
            return super().preprocess(nb, resources)
        info = resources['nbgrader']
        with SharedEngineGradebook(info['db_url']) as gb:
            kernelspec = gb.find_notebook(info['notebook'], info['assignment']).kernelspec
            if kernelspec is not None:
                kernelspec = json.loads(kernelspec)
            self.log.debug("Source notebook kernelspec: {}".format(kernelspec))
            self.log.debug("Submitted notebook kernelspec: {}".format(nb.metadata.get('kernelspec', None)))
            if kernelspec:
                self.log.debug("Overwriting submitted notebook kernelspec: {}".format(kernelspec))
                nb.metadata['kernelspec'] = kernelspec
        return nb, resources


class SharedOverwriteCells(OverwriteCells):
    """nbgrader's ``OverwriteCells`` with a :class:`NotebookLookupGradebook`."""

    def preprocess(self, nb, resources):
        if not fastpaths.active(PATH, self.config):
            return super().preprocess(nb, resources)
        _ids(self, resources, student=False)
        self.gradebook = NotebookLookupGradebook(self.db_url)
        with self.gradebook:
            nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)
            if self.add_missing_cells:
                nb, resources = self.add_missing_grade_cells(nb, resources)
                nb, resources = self.add_missing_task_cells(nb, resources)
        return nb, resources


class SharedSaveAutoGrades(SaveAutoGrades):
    """nbgrader's ``SaveAutoGrades`` with a :class:`NotebookLookupGradebook`."""

    def preprocess(self, nb, resources):
        if not fastpaths.active(PATH, self.config):
            return super().preprocess(nb, resources)
        _ids(self, resources)
        self.gradebook = NotebookLookupGradebook(self.db_url)
        with self.gradebook:
            nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)
        return nb, resources


class SharedAssignLatePenalties(AssignLatePenalties):
    """nbgrader's ``AssignLatePenalties`` with a :class:`SharedEngineGradebook`."""

    def preprocess(self, nb, resources):
        if not fastpaths.active(PATH, self.config):
            return super().preprocess(nb, resources)
        _ids(self, resources)
        self.init_plugin()
        self.gradebook = SharedEngineGradebook(self.db_url)
        with self.gradebook:
            nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)
            assignment = self.gradebook.find_submission(self.assignment_id, self.student_id)
            notebook = self.gradebook.find_submission_notebook(self.notebook_id, self.assignment_id,
                                                               self.student_id)
            notebook.late_submission_penalty = None  # reset to None (zero)
            if assignment.total_seconds_late > 0:
                self.log.warning("{} is {} seconds late".format(assignment, assignment.total_seconds_late))
                late_penalty = self.plugin_inst.late_submission_penalty(
                    self.student_id, notebook.score, assignment.total_seconds_late)
                self.log.warning("Late submission penalty: {}".format(late_penalty))
                if late_penalty is not None:
                    late_penalty = self._check_late_penalty(notebook, late_penalty)
                    notebook.late_submission_penalty = late_penalty
            self.gradebook.db.commit()
        return nb, resources


def share_converter_engine() -> None:
    """Make the gradebooks that nbgrader's ``Autograde`` converter opens itself
    :class:`SharedEngineGradebook` in this process (its module's ``Gradebook`` name: nbgrader's
    code is unchanged); nothing with the path off."""
    if not fastpaths.active(PATH):
        return
    from nbgrader.converters import autograde
    autograde.Gradebook = SharedEngineGradebook
