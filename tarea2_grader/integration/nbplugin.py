"""nbgrader integration: ``TrustedExecute`` takes the place of nbgrader's ``Execute``.

The course's ``nbgrader_config.py`` puts it first in ``Autograde.autograde_preprocessors``, so
``make grade`` and a plain ``nbgrader autograde`` both grade through
:func:`tarea2_grader.engine.runner.grade`: the student's cells run in the sandbox, each hidden test
cell gets the trusted verdict as its output (the message on stdout when it passes, an
``Incorrecto`` error when it fails), and nbgrader's own ``SaveAutoGrades`` turns those outputs
into points in the gradebook, which only this (trusted) process writes.  Formgrader,
``generate_feedback`` and the export keep working as with any nbgrader course.

The seed of each student's hidden inputs comes from :mod:`tarea2_grader.integration.seeds` (its
one owner); it is also written into the autograded notebook's metadata.

What the pass did for each student (verdicts from the cache or graded now, a failure of the grading
machinery, seed, notes) goes to the coordinator as one structured record per student
(:mod:`tarea2_grader.integration.records`, in ``TrustedExecute.record_dir``), never through the log.
"""
import os

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Integer, Unicode

from tarea2_grader.integration import pauta
from tarea2_grader.integration import records
from tarea2_grader.integration import seeds
from tarea2_grader.engine import runner
from tarea2_grader.engine import sandbox
from tarea2_grader.engine import tamano

META_KEY = "tarea2_calificacion"


def course_root(resources) -> str:
    """The course folder: where nbgrader keeps the gradebook (else the working directory)."""
    url = (resources.get("nbgrader") or {}).get("db_url") or ""
    if url.startswith("sqlite:///"):
        return os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
    return os.getcwd()


NOT_RERUN = ("[Salidas que entregó el estudiante. Las celdas posteriores al último test no se vuelven a "
             "ejecutar al corregir: no cambian ningún punto automático.]\n")
NOT_RERUN_EMPTY = ("[La entrega no trae salidas de esta celda. Las celdas posteriores al último test no se "
                   "vuelven a ejecutar al corregir: no cambian ningún punto automático.]\n")


def submitted_outputs(nb, submitted, caps: tamano.Caps = tamano.Caps()) -> dict:
    """{cell index: outputs} for the code cells after ``nb``'s last test cell, from ``submitted``.

    Each cell gets the outputs of the submitted code cell with the same source (in order, each
    used once), sanitized and size-capped like any student output, after a line that says where
    they come from; an answer cell without submitted outputs gets that line alone.
    """
    last = runner.last_test(nb)
    pool = [c for c in submitted.cells if c.cell_type == "code"]
    used, shown = set(), {}
    for i, cell in enumerate(nb.cells):
        if i <= last or cell.cell_type != "code":
            continue
        match = next((j for j, c in enumerate(pool) if j not in used and c.source == cell.source), None)
        outputs = []
        if match is not None:
            used.add(match)
            raw = pool[match].get("outputs") or []
            capped = (tamano.cap_output(x, caps) if isinstance(x, dict) else x for x in raw[:500])
            outputs = [o for o in (runner.sanitized(x) for x in capped) if o]
        answer = (cell.metadata.get("nbgrader") or {}).get("solution")
        if outputs or answer:
            label = {"output_type": "stream", "name": "stdout", "text": NOT_RERUN if outputs else NOT_RERUN_EMPTY}
            shown[i] = [label] + outputs
    return shown


def add_rubrics(nb, resources) -> int:
    """After each hand-graded cell, a read-only cell with its key and rubric from the source notebook.

    Formgrader shows the autograded notebook, so the grader sees them beside the student's answer;
    the feedback drops them (``pauta.RemoveRubricCells``).  Returns how many were added.
    """
    info = resources.get("nbgrader") or {}
    source = os.path.join(course_root(resources), "source", info.get("assignment", ""),
                          info.get("notebook", "") + ".ipynb")
    rubrics = pauta.source_rubrics(source) if os.path.exists(source) else {}
    return pauta.insert_rubric_cells(nb, rubrics)


#: What nbgrader's log says (for people) for a student whose verdicts came from the workers' cache.
FROM_CACHE_LOG = "Veredictos de %s ya calculados (corrección en paralelo)"
#: What it says for a student the grading machinery could not grade (the coordinator reads the record).
MACHINERY_LOG = "Falla del corrector con %s: %s"


class MachineryFailure(RuntimeError):
    """The grading machinery (not the student) failed: nothing may be written for this student."""


class TrustedExecute(NbGraderPreprocessor):
    """Run the notebook in the sandbox and write the trusted verdicts into the test cells."""

    cell_timeout = Float(sandbox.Limits.cell_timeout, help="Wall seconds per notebook cell.").tag(config=True)
    test_timeout = Float(sandbox.Limits.test_timeout, help="Wall seconds per hidden test.").tag(config=True)
    memory_mb = Integer(sandbox.Limits.memory_mb,
                        help="MiB each student process may allocate beyond what imports use.").tag(config=True)
    cpu_seconds = Integer(sandbox.Limits.cpu_seconds, help="CPU seconds per student process.").tag(config=True)
    disk_mb = Integer(sandbox.Limits.disk_mb, help="MiB a student may write in their working folder (a tmpfs "
                                                    "in the sandbox; /tmp and /dev/shm are capped too).").tag(config=True)
    static_review = Bool(sandbox.Limits.static_review,
                         help="Zero (for a person to review) the tests whose graded code reaches a machine-made "
                              "derivative, read from the submitted source (tarea2_grader/engine/review/).").tag(config=True)
    budget = Float(sandbox.Limits.budget,
                   help="Seconds of sandbox time per student for everything their notebook causes (cells, "
                        "hidden tests, rebuilds after a crash); past it, every remaining test scores 0 with a "
                        "message that says so.").tag(config=True)
    timeout_after_loop = Float(sandbox.Limits.timeout_after_loop,
                               help="Wall seconds per cell and per test once a cell or test of the same "
                                    "student has run out of time (a loop costs one full limit, not one "
                                    "per cell that calls it).").tag(config=True)
    require_sandbox = Bool(True, help="Refuse to grade when bubblewrap is not available (False: grade without "
                                      "isolating files, and say so in every row).").tag(config=True)
    sandbox_python = Unicode("", help="The interpreter that runs student code in the sandbox (empty: the course's "
                                      "virtual environment).").tag(config=True)
    fresh_seeds = Bool(False, help="Draw new hidden inputs instead of reusing the recorded seed.").tag(config=True)
    tests_module = Unicode(runner.DEFAULT_TESTS_MODULE, help="Module that defines the hidden tests.").tag(config=True)
    use_cache = Bool(True, help="Reuse verdicts already computed for exactly this notebook, seed, limits and "
                                "grader code (by `make grade`'s parallel workers or an earlier run), from "
                                "<course>/veredictos/.").tag(config=True)
    record_dir = Unicode("", help="Folder where one JSON record per graded student says what this pass did "
                                  "(tarea2_grader/integration/records.py); `make grade` sets it and reads "
                                  "them. Empty: no records.").tag(config=True)

    rerun_after_last_test = Bool(False, help="Run the cells after the last hidden test again when grading. They "
                                             "cannot change any autograded point; by default the outputs the "
                                             "student submitted for them (plots for hand grading) are shown "
                                             "instead, made inert.").tag(config=True)

    def limits(self) -> sandbox.Limits:
        """The configured per-student limits."""
        caps = tamano.SizeLimits(config=self.config).caps()
        return sandbox.Limits(self.cell_timeout, self.test_timeout, self.memory_mb, self.cpu_seconds,
                              self.timeout_after_loop, self.budget, self.disk_mb, self.static_review,
                              python=self.sandbox_python, output_bytes=caps.output,
                              notebook_bytes=caps.notebook)

    def graded(self, nb, seed, isolate, student, root):
        """(verdicts for ``nb``, whether they came from the cache): from the cache when this exact job
        was graded, else graded now."""

        from tarea2_grader.parallel import workers
        cache = workers.VerdictCache(os.path.join(root, workers.CACHE_DIRNAME))
        key = workers.job_key(nb, seed, self.limits(), self.tests_module, self.rerun_after_last_test, [root])
        if self.use_cache:
            cached = cache.get(key)
            if cached is not None and cached.aislado == isolate:
                self.log.info(FROM_CACHE_LOG, student)
                return cached, True
        runner.WARM_SANDBOXES.prewarm(self.limits(), isolate)  # its imports overlap the next line's
        workers.one_torch_thread()
        tests = workers.load_tests(self.tests_module, [root])
        self.log.info("Calificando %s en %s (semilla %d)", student,
                      "bubblewrap" if isolate else "un proceso aparte, sin aislar archivos", seed)
        result = runner.grade(nb, seed, self.limits(), tests, isolate,
                              until_last_test=not self.rerun_after_last_test)
        if result.falla:
            self.machinery_failure(student, result.falla)
        try:
            cache.put(key, student, result)
        except OSError as exc:  # the cache only saves time: the verdicts still go to the gradebook
            self.log.warning("No se pudo guardar en veredictos/ el resultado de %s: %s", student, exc)
        return result, False

    def record(self, record: records.PassRecord) -> None:
        """Tell the coordinator what this pass did for the student (when it asked: ``record_dir``)."""
        if self.record_dir:
            records.write_record(self.record_dir, record)

    def machinery_failure(self, student: str, why: str) -> None:
        """The machinery could not grade ``student``: say so (record and log) and stop their notebook."""
        self.log.error(MACHINERY_LOG, student, why)
        self.record(records.PassRecord(student, machinery=why))
        raise MachineryFailure(why)

    def show_submitted_outputs(self, nb, resources) -> None:
        """The cells after the last test were not run: show what the student submitted, made inert."""
        from nbgrader.coursedir import CourseDirectory
        info = resources.get("nbgrader") or {}
        coursedir = CourseDirectory(config=self.config)
        coursedir.root = course_root(resources)
        path = os.path.join(coursedir.format_path(coursedir.submitted_directory, info.get("student", ""),
                                                  info.get("assignment", "")), info.get("notebook", "") + ".ipynb")
        caps = tamano.SizeLimits(config=self.config).caps()
        try:  # read in chunks: a string over the output cap is never held whole
            submitted = nbformat.reads(tamano.read_shrunk(path, caps.output).decode("utf-8-sig"), as_version=4)
        except Exception:  # no readable submission here (e.g. graded from another folder)
            submitted = nbformat.v4.new_notebook()
        for i, outputs in submitted_outputs(nb, submitted, caps).items():
            nb.cells[i].outputs = [nbformat.from_dict(o) for o in outputs]

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader") or {}
        student, assignment = info.get("student", "desconocido"), info.get("assignment", "tarea")
        isolate = runner.isolation_available()
        if self.require_sandbox and not isolate:
            self.machinery_failure(student, sandbox.bwrap_diagnosis() or "bubblewrap no está disponible")
        seed = seeds.of_student(course_root(resources), assignment, student, self.fresh_seeds)
        result, from_cache = self.graded(nb, seed, isolate, student, course_root(resources))
        from tarea2_grader.engine import inert
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                inert.markdown_cell(cell)  # a student's answer, shown to TAs in formgrader
                continue
            if cell.cell_type != "code":
                continue
            cell.outputs = [nbformat.from_dict(o) for o in result.outputs.get(i, [])]
            cell.execution_count = None
        if not self.rerun_after_last_test:
            self.show_submitted_outputs(nb, resources)
        inert.notebook_metadata(nb)  # widget state: rendered by a script in formgrader and feedback
        flagged = result.marcadas(nb)  # by cell index: before the rubric cells are inserted
        cut = tamano.cap_notebook(nb, tamano.SizeLimits(config=self.config).caps())  # before the rubrics
        add_rubrics(nb, resources)
        notes = result.notas + cut.messages()
        nb.metadata[META_KEY] = {"semilla": seed, "aislado": isolate, "notas": notes,
                                 "segundos": round(result.segundos, 1), FLAGGED_KEY: flagged}
        self.record(records.PassRecord(student, from_cache, None, seed, isolate, list(notes),
                                       round(result.segundos, 1), list(flagged)))
        return nb, resources


#: Where TrustedExecute lists, in the autograded notebook's metadata, the test cells the static review flagged.
FLAGGED_KEY = "marcadas"


def flagged_cells(nb_metadata) -> list:
    """grade_ids of the test cells that TrustedExecute recorded as flagged by the static review."""
    meta = (nb_metadata or {}).get(META_KEY) or {}
    found = meta.get(FLAGGED_KEY, []) if isinstance(meta, dict) else []
    return [g for g in found if isinstance(g, str)] if isinstance(found, list) else []


class MarkFlaggedForReview(NbGraderPreprocessor):
    """After nbgrader's ``SaveAutoGrades``: the test cells the static review flagged need manual grading.

    A flagged cell scores 0 automatically; setting ``needs_manual_grade`` on its gradebook row makes
    formgrader list it ("needs manual grade"), where the TA reads the "revisión: ..." message and may
    type the points in the cell's score box (``Grade.manual_score``, which nbgrader prefers to the
    automatic score).  The list of flagged cells is the one ``TrustedExecute`` wrote into this
    notebook's metadata (computed outside the student's process); a notebook with none opens no
    gradebook.
    """

    def preprocess(self, nb, resources):
        flagged = flagged_cells(nb.metadata)
        if not flagged:
            return nb, resources
        from nbgrader.api import MissingEntry
        from tarea2_grader.integration.sharedgb import open_gradebook
        info = resources["nbgrader"]
        with open_gradebook(info["db_url"], self.config) as gb:
            for grade_id in flagged:
                try:
                    grade = gb.find_grade(grade_id, info["notebook"], info["assignment"], info["student"])
                except MissingEntry:  # not a grade cell of this assignment: nothing to list
                    self.log.warning("Celda marcada sin nota en el gradebook: %s", grade_id)
                    continue
                grade.needs_manual_grade = True
            gb.db.commit()
        return nb, resources
