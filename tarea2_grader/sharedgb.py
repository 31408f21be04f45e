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

The ``Shared*`` preprocessors (in ``c.Autograde.sanitize_preprocessors`` and
``c.Autograde.autograde_preprocessors``) are nbgrader's, with their ``preprocess`` opening a
:class:`SharedEngineGradebook` instead; their per-cell steps are nbgrader's own (inherited).
nbgrader itself is not patched: the converter's own gradebooks (``Autograde.init_assignment``)
are unchanged.
"""
import json
import threading

from nbgrader.api import Gradebook
from nbgrader.preprocessors import (AssignLatePenalties, NbGraderPreprocessor, OverwriteCells,
                                    OverwriteKernelspec, SaveAutoGrades)

_engines = {}
_lock = threading.Lock()


def forget_engines() -> None:
    """Drop the shared engines (the next gradebook of each database is built by nbgrader again)."""
    with _lock:
        _engines.clear()


class SharedEngineGradebook(Gradebook):
    """nbgrader's ``Gradebook`` on the engine of the first one opened on ``db_url`` in this process."""

    def __init__(self, db_url: str, course_id: str = "default_course", authenticator=None):
        engine = _engines.get(db_url)
        if engine is None:
            super().__init__(db_url, course_id, authenticator)  # nbgrader's set-up of the database
            with _lock:
                _engines.setdefault(db_url, self.engine)
            return
        from sqlalchemy.orm import scoped_session, sessionmaker
        self.engine = engine
        self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
        self.check_course(course_id=course_id)
        self.course_id = course_id
        self.authenticator = authenticator


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
    """nbgrader's ``OverwriteCells`` with a :class:`SharedEngineGradebook`."""

    def preprocess(self, nb, resources):
        _ids(self, resources, student=False)
        self.gradebook = SharedEngineGradebook(self.db_url)
        with self.gradebook:
            nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)
            if self.add_missing_cells:
                nb, resources = self.add_missing_grade_cells(nb, resources)
                nb, resources = self.add_missing_task_cells(nb, resources)
        return nb, resources


class SharedSaveAutoGrades(SaveAutoGrades):
    """nbgrader's ``SaveAutoGrades`` with a :class:`SharedEngineGradebook`."""

    def preprocess(self, nb, resources):
        _ids(self, resources)
        self.gradebook = SharedEngineGradebook(self.db_url)
        with self.gradebook:
            nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)
        return nb, resources


class SharedAssignLatePenalties(AssignLatePenalties):
    """nbgrader's ``AssignLatePenalties`` with a :class:`SharedEngineGradebook`."""

    def preprocess(self, nb, resources):
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
