"""nbgrader integration: ``TrustedExecute`` takes the place of nbgrader's ``Execute``.

The course's ``nbgrader_config.py`` puts it first in ``Autograde.autograde_preprocessors``, so
``make grade`` and a plain ``nbgrader autograde`` both grade through
:func:`tarea2_grader.runner.calificar`: the student's cells run in the sandbox, each hidden test
cell gets the trusted verdict as its output (the message on stdout when it passes, an
``Incorrecto`` error when it fails), and nbgrader's own ``SaveAutoGrades`` turns those outputs
into points in the gradebook, which only this (trusted) process writes.  Formgrader,
``generate_feedback`` and the export keep working as with any nbgrader course.

The seed of each student's hidden inputs is drawn the first time the student is graded and kept
in ``semillas.json`` at the course root (never inside the sandbox), so a regrade reproduces the
same inputs; it is also written into the autograded notebook's metadata.
"""
import contextlib
import fcntl
import json
import os

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Integer, Unicode

from tarea2_grader import pauta, runner, sandbox

SEEDS_FILE = "semillas.json"
META_KEY = "tarea2_calificacion"


def course_root(resources) -> str:
    """The course folder: where nbgrader keeps the gradebook (else the working directory)."""
    url = (resources.get("nbgrader") or {}).get("db_url") or ""
    if url.startswith("sqlite:///"):
        return os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
    return os.getcwd()


@contextlib.contextmanager
def _locked(path):
    with open(path + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_seeds(root: str) -> dict:
    """{assignment: {student: seed}} from the course's seeds file."""
    path = os.path.join(root, SEEDS_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def seed_for(root: str, assignment: str, student: str, fresh: bool = False) -> int:
    """The recorded seed of a student (drawn and recorded on first use, or when ``fresh``)."""
    path = os.path.join(root, SEEDS_FILE)
    with _locked(path):
        seeds = read_seeds(root)
        mine = seeds.setdefault(assignment, {})
        if fresh or student not in mine:
            mine[student] = runner.nueva_semilla()
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(seeds, fh, indent=1, sort_keys=True)
            os.replace(tmp, path)
        return int(mine[student])


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


class TrustedExecute(NbGraderPreprocessor):
    """Run the notebook in the sandbox and write the trusted verdicts into the test cells."""

    cell_timeout = Float(sandbox.Limites.cell_timeout, help="Wall seconds per notebook cell.").tag(config=True)
    test_timeout = Float(sandbox.Limites.test_timeout, help="Wall seconds per hidden test.").tag(config=True)
    memory_mb = Integer(sandbox.Limites.memory_mb,
                        help="MiB each student process may allocate beyond what imports use.").tag(config=True)
    cpu_seconds = Integer(sandbox.Limites.cpu_seconds, help="CPU seconds per student process.").tag(config=True)
    student_timeout = Float(sandbox.Limites.student_timeout, help="Wall seconds per notebook.").tag(config=True)
    require_sandbox = Bool(False, help="Refuse to grade when bubblewrap is not available.").tag(config=True)
    fresh_seeds = Bool(False, help="Draw new hidden inputs instead of reusing the recorded seed.").tag(config=True)
    tests_module = Unicode("tarea2_grader.hidden", help="Module that defines the hidden tests.").tag(config=True)
    use_cache = Bool(True, help="Reuse verdicts already computed for exactly this notebook, seed, limits and "
                                "grader code (by `make grade`'s parallel workers or an earlier run), from "
                                "<course>/veredictos/.").tag(config=True)

    def limits(self) -> sandbox.Limites:
        """The configured per-student limits."""
        return sandbox.Limites(self.cell_timeout, self.test_timeout, self.memory_mb, self.cpu_seconds,
                               self.student_timeout)

    def graded(self, nb, seed, aislar, student, root) -> "runner.Resultado":
        """The verdicts for ``nb``: from the cache when this exact job was graded, else graded now."""
        import importlib

        from tarea2_grader import workers
        cache = workers.VerdictCache(os.path.join(root, workers.CACHE_DIRNAME))
        key = workers.job_key(nb, seed, self.limits(), self.tests_module)
        if self.use_cache:
            cached = cache.get(key)
            if cached is not None and cached.aislado == aislar:
                self.log.info("Veredictos de %s ya calculados (corrección en paralelo)", student)
                return cached
        runner.TALLERES.precalentar(self.limits(), aislar)  # its imports overlap the next line's
        pruebas = importlib.import_module(self.tests_module)
        self.log.info("Calificando %s en %s (semilla %d)", student,
                      "bubblewrap" if aislar else "un proceso aparte, sin aislar archivos", seed)
        result = runner.calificar(nb, seed, self.limits(), pruebas, aislar)
        cache.put(key, student, result)
        return result

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader") or {}
        student, assignment = info.get("student", "desconocido"), info.get("assignment", "tarea")
        aislar = runner.aislamiento_disponible()
        if self.require_sandbox and not aislar:
            raise RuntimeError(sandbox.aviso_sin_aislamiento() or "bubblewrap no está disponible")
        seed = seed_for(course_root(resources), assignment, student, self.fresh_seeds)
        result = self.graded(nb, seed, aislar, student, course_root(resources))
        from tarea2_grader import inert
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                inert.markdown_cell(cell)  # a student's answer, shown to TAs in formgrader
                continue
            if cell.cell_type != "code":
                continue
            cell.outputs = [nbformat.from_dict(o) for o in result.outputs.get(i, [])]
            cell.execution_count = None
        inert.notebook_metadata(nb)  # widget state: rendered by a script in formgrader and feedback
        add_rubrics(nb, resources)
        nb.metadata[META_KEY] = {"semilla": seed, "aislado": aislar, "notas": result.notas,
                                 "segundos": round(result.segundos, 1)}
        return nb, resources
