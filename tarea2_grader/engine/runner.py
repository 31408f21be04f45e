"""The trusted grader of one notebook: student code in the sandbox, every verdict here.

:func:`grade` runs a student's notebook cell by cell in a sandboxed agent
(:mod:`tarea2_grader.engine.session`, :mod:`tarea2_grader.engine.sandbox`) and, for each hidden test
cell, draws the test's inputs from the student's seed, has the student's process call the student's
code on them through a probe, and computes the verdict in this process with the course's tests
module (``TrustedExecute.tests_module``, by default :data:`DEFAULT_TESTS_MODULE`; the engine names
the course only there and loads it by name).  No student code ever runs here: what comes back is
decoded as plain data (:mod:`tarea2_grader.engine.wire`), and a test whose answer never arrives (cell
missing, process dead or out of time, reply malformed) fails with a reason
(:mod:`tarea2_grader.engine.verdicts`).

Tests run in the order the course declares them (the tests module's ``PRUEBAS``), each as soon as its
cell and every earlier test's cell have been reached, so helper code lent to a later test
(correct activations, a correct network) is never reachable while an earlier test that grades
it runs, even in a notebook whose cells were moved.

This is the one grading path: nbgrader's autograde reaches it through
:class:`tarea2_grader.integration.nbplugin.TrustedExecute`, and the test suite calls it directly.
"""
from __future__ import annotations

import importlib
import re
import signal
import time
from typing import Dict, List, Optional

from tarea2_grader.engine import cells
from tarea2_grader.engine import sandbox
from tarea2_grader.engine import tamano
from tarea2_grader.engine.session import (MARGIN, WARM_SANDBOXES, Crashed, Lost, Session, WarmSandbox, TimedOut,
                                          bounded_text)
from tarea2_grader.engine.verdicts import Resultado, Veredicto, con_revision
from tarea2_grader.sandboxed import protocol

# The course's tests and wire (torch) are imported when first needed, so that a sandbox can start
# warming up while this process imports torch: see session._WarmSandboxes.prewarm.

#: The course graded when none is named (the default of ``c.TrustedExecute.tests_module``).
DEFAULT_TESTS_MODULE = "tarea2_grader.tarea2.hidden"
DECLARATION = re.compile(r"""\bevaluar\(\s*["'](test_\w+)["']\s*\)""")
CELL_SLACK = 0.5  # a cell runs in the holder itself: the supervisor ends it this long past its limit
MAX_REBUILDS = 12  # holders rebuilt for one student (cells past their limit, or that end the process)

MSG_CELL_TIMEOUT = "la celda superó el límite de {:g} s y se interrumpió"
MSG_CELL_CRASH = "la celda hizo terminar el proceso ({}); se siguió con el estado anterior a ella"
MSG_LOST = "no se ejecutó: el proceso del estudiante ya no responde ({})"
MSG_BUDGET = ("se agotó el presupuesto de {:g} s de tiempo en el sandbox para todo tu notebook "
              "(celdas, tests y reconstrucciones tras una celda que se colgó o terminó el proceso): "
              "lo que quedaba no se ejecutó y sus tests valen 0")
NO_PROCESSES = ("Los tests corren sin otros procesos tuyos: durante la corrección tu código no puede crear "
                "procesos (subprocess, multiprocessing, os.fork) ni usar los que haya creado una celda.")
NO_BARRIER = ("sin barrera de procesos: el código del estudiante pudo crear otros procesos durante los tests "
              "(autograd en otro proceso no se detecta)")
NO_CGROUP = "sin límite de tareas por alumno: sus hilos cuentan en el límite del usuario compartido"
# Exceptions that a missing process explains (fork/exec denied, a helper's pipe gone): only these
# get NO_PROCESSES, so an unfinished part's NotImplementedError is not told about processes.
_PROCESS_ERRORS = re.compile(r" lanzó (PermissionError|BlockingIOError|ChildProcessError|OSError|BrokenPipeError|"
                             r"EOFError|ConnectionError|ConnectionResetError|ConnectionRefusedError|"
                             r"CalledProcessError|BrokenProcessPool|SubprocessError)\b")
MSG_SANDBOX_DOWN = ("el entorno de corrección (el sandbox entero, no solo tu proceso) terminó dos veces mientras "
                    "corría tu código, también en un sandbox nuevo: lo que quedaba no se ejecutó y sus tests valen 0")


def is_test(cell) -> bool:
    """An autograded test cell: code, graded, not an answer."""
    return cells.is_test_cell(cell)


def last_test(nb) -> int:
    """Index of the last autograded test cell (-1 when there is none)."""
    return max((i for i, c in enumerate(nb.cells) if is_test(c)), default=-1)


def declared_test(source: str) -> Optional[str]:
    """The hidden test a test cell declares (``hidden.evaluar("test_x")``), or None."""
    m = DECLARATION.search(source or "")
    return m.group(1) if m else None


def _death_description(reply) -> str:
    sig = reply.get("signal")
    if sig == signal.SIGXCPU:
        return "tiempo de CPU excedido"
    if sig == signal.SIGKILL:
        return "señal 9: ¿memoria agotada?"
    if sig:
        try:
            return "señal {} ({})".format(sig, signal.Signals(sig).name)
        except ValueError:
            return "señal {}".format(sig)
    if reply.get("exit") is None:
        return "el proceso terminó"
    return "salió con código {}".format(reply.get("exit"))


# --------------------------------------------------------------------------- outputs


def _error(ename, evalue):
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": ["{}: {}".format(ename, evalue)]}


def sanitized(o) -> Optional[dict]:
    """A valid nbformat output built from an untrusted one (None to drop it)."""
    if not isinstance(o, dict):
        return None
    kind = o.get("output_type")
    if kind == "stream":  # its size is capped by tamano.cap_output, before
        text = o.get("text")
        text = "".join(t for t in text if isinstance(t, str)) if isinstance(text, list) else text
        return {"output_type": "stream", "name": "stderr" if o.get("name") == "stderr" else "stdout",
                "text": text if isinstance(text, str) else ""}
    if kind in ("display_data", "execute_result"):
        from tarea2_grader.engine import inert
        data = inert.bundle(o.get("data") if isinstance(o.get("data"), dict) else {})
        if not data:
            return None
        out = {"output_type": kind, "data": data, "metadata": {}}
        meta = o.get("metadata") if isinstance(o.get("metadata"), dict) else {}
        for mime in ("image/png", "image/jpeg"):  # plot sizes only
            size = meta.get(mime)
            if mime in data and isinstance(size, dict):
                out["metadata"][mime] = {k: v for k, v in size.items() if k in ("width", "height")
                                         and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if kind == "execute_result":
            count = o.get("execution_count")
            out["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
        return out
    if kind == "error":
        tb = o.get("traceback") if isinstance(o.get("traceback"), list) else []
        return {"output_type": "error", "ename": bounded_text(o.get("ename"), 200) or "Error",
                "evalue": bounded_text(o.get("evalue"), 4000), "traceback": [bounded_text(t, 20000) for t in tb[:50]]}
    return None


def verdict_output(v: Veredicto) -> List[dict]:
    """What a test cell shows: the trusted verdict."""
    if v.ok:
        return [{"output_type": "stream", "name": "stdout", "text": v.mensaje + "\n"}]
    return [_error("Incorrecto", v.mensaje)]


# --------------------------------------------------------------------------- grading


class _Grading:
    def __init__(self, nb, seed, limits, tests, isolate):
        self.nb, self.seed, self.limits, self.tests = nb, seed, limits, tests
        self.isolate = isolate
        self.outputs: Dict[int, List[dict]] = {}
        self.room = limits.notebook_bytes  # content the notebook's outputs may still keep
        self.verdicts: Dict[int, Veredicto] = {}
        self.notes: List[str] = []
        self.sources: List[str] = []
        self.start = time.monotonic()
        self.session: Optional[Session] = None
        self.warm_sandbox: Optional[WarmSandbox] = None
        self.lost = ""
        self.after_loop = False  # once a cell or test ran out of time, the rest get timeout_after_loop
        self.state: List[list] = []  # [source, seconds] of the cells that succeeded: what a new holder replays
        self.rebuilds = 0
        self.spent = 0.0  # seconds of sandbox time charged to this student
        self.failure = ""  # the machinery failed: this student is left ungraded (Resultado.falla)
        self.crashes = 0  # whole sandboxes lost while this student's code ran

    # -- the session

    def _session(self) -> Optional[Session]:
        if self.session is None and not self.lost:
            for attempt in range(2):  # a warm sandbox that died meanwhile is replaced once
                try:
                    if self.warm_sandbox is None:
                        self.warm_sandbox = WARM_SANDBOXES.take(self.limits, self.isolate)
                    self.session = self.warm_sandbox.session()
                    if not self.session.alive:  # no student statement has run in it yet
                        self.session = None
                        raise Lost("el proceso del estudiante no arrancó en el sandbox")
                    if not self.session.barrier and not any(n.startswith(NO_BARRIER) for n in self.notes):
                        self.notes.append("{} ({})".format(NO_BARRIER, self.session.barrier_reason))
                    if self.isolate and self.warm_sandbox.group.path is None and not any(n.startswith(NO_CGROUP) for n in self.notes):
                        self.notes.append("{} ({})".format(NO_CGROUP, self.warm_sandbox.group.reason))
                    break
                except Lost as exc:
                    if self.warm_sandbox is not None:
                        self.warm_sandbox.close()
                        self.warm_sandbox = None
                    self.lost = str(exc) if attempt else ""
                    if attempt:  # a fresh sandbox is out of the student's reach: the machinery failed
                        self.failure = "no se pudo iniciar el sandbox ({})".format(bounded_text(str(exc), 600))
        return self.session if not self.lost else None

    def _limit(self, base: float) -> float:
        return min(base, self.limits.timeout_after_loop) if self.after_loop else base

    def _ran_out(self, gid: str, limit: float) -> None:
        if not self.after_loop:
            self.notes.append("desde {} (¿un bucle infinito?), cada celda y test siguiente tuvo como máximo "
                              "{:g} s".format(gid, self.limits.timeout_after_loop))
        self.after_loop = True

    def _remaining(self) -> float:
        """Seconds of the student's sandbox budget still unspent."""
        return self.limits.budget - self.spent

    def out_of_budget(self) -> bool:
        return self._remaining() <= 0

    def _request(self, msg, limit, margin=MARGIN):
        """One request to the student's holder, charged to the student's budget (the wall time the
        holder spends on it: their cells, their functions called by a test, replays).  Raises
        :class:`TimedOut` or :class:`Crashed` when this request failed (the holder can be rebuilt:
        :meth:`_rebuild`), plain :class:`Lost` when the student cannot be graded any further
        (the budget is spent, or the holder cannot be replaced)."""
        session = self._session()
        if session is None:
            raise Lost(self.lost)
        if self.out_of_budget():
            if not self.lost:
                self.lost = MSG_BUDGET.format(self.limits.budget)
                self.notes.append(self.lost)
            raise Lost(self.lost)
        start = time.monotonic()
        try:
            return session.request(msg, min(limit, self._remaining()), margin)
        finally:
            self.spent += time.monotonic() - start

    def _rebuild(self) -> dict:
        """End the holder (a request ran past its limit, or the process ended) and start a new one
        in the state before that request: a fresh holder from the anchor runs again every cell
        that had succeeded.  Returns how the old holder ended ({} when unknown)."""
        death: dict = {}
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.warm_sandbox is not None:
            try:
                death = self.warm_sandbox.end_student()
            except Lost:  # the whole sandbox went with it: the next request takes another one
                self.warm_sandbox.close()
                self.warm_sandbox = None
                death = {"sandbox": True}
                self.crashes += 1
                if self.crashes >= 2:  # retried once on a fresh sandbox: now it is the student's
                    self.lost = MSG_SANDBOX_DOWN
                    return death
        if self.lost:
            return death
        self.rebuilds += 1
        if self.rebuilds > MAX_REBUILDS:
            self.lost = "su código terminó o excedió el tiempo {} veces".format(MAX_REBUILDS)
            return death
        for step in list(self.state):
            source, seconds = step
            try:
                self._request({"op": "cell", "source": source, "replay": True},
                              min(self.limits.cell_timeout, 2 * seconds + 2.0), CELL_SLACK)
            except (TimedOut, Crashed):  # it succeeded before, not now: it is left out of the state
                self.state.remove(step)
                self.notes.append("una celda que había terminado no terminó al ejecutarse de nuevo "
                                  "(para rehacer el estado): se siguió sin ella")
                self._rebuild()
                return death
            except Lost:
                return death
        return death

    # -- cells

    def run_cell(self, i, cell, retry=False):
        limit = self._limit(self.limits.cell_timeout)
        gid = cell.metadata.get("nbgrader", {}).get("grade_id") or "celda {}".format(i + 1)
        start = time.monotonic()
        try:
            reply = self._request({"op": "cell", "source": cell.source, "max_output": self.limits.output_bytes,
                                   "max_cell": self.limits.notebook_bytes}, limit, CELL_SLACK)
        except TimedOut:
            self._rebuild()
            if self.out_of_budget():
                self.outputs[i] = [_error("PresupuestoAgotado", MSG_BUDGET.format(self.limits.budget))]
                return
            self.outputs[i] = [_error("TiempoExcedido", MSG_CELL_TIMEOUT.format(limit))]
            self.notes.append("celda interrumpida por tiempo (¿bucle infinito?): {}".format(gid))
            self._ran_out(gid, limit)
            return
        except Crashed:
            death = self._rebuild()
            if death.get("sandbox") and not retry and not self.lost:
                return self.run_cell(i, cell, retry=True)  # the sandbox died: once more, on a fresh one
            if self.lost:
                self.outputs[i] = [_error("NoEjecutada", MSG_LOST.format(self.lost))]
                return
            desc = _death_description(death)
            self.outputs[i] = [_error("ProcesoTerminado", MSG_CELL_CRASH.format(desc))]
            self.notes.append("la celda {} hizo terminar el proceso ({}): se corrigió el resto".format(gid, desc))
            return
        except Lost as exc:
            self.outputs[i] = [_error("NoEjecutada", MSG_LOST.format(exc))]
            return
        outs = reply.get("outputs") if isinstance(reply.get("outputs"), list) else []
        self.outputs[i] = self._capped(outs[:500], gid)
        self.sources.append(cell.source)
        self.state.append([cell.source, time.monotonic() - start])
        if reply.get("memory"):
            self.notes.append("memoria excedida en {}".format(gid))

    def _capped(self, outs, gid: str) -> List[dict]:
        """Untrusted outputs made valid and inert, each within the size caps (tarea2_grader/engine/tamano.py):
        what the notebook's earlier cells kept counts against the notebook's cap."""
        caps = tamano.Caps(self.limits.output_bytes, self.limits.notebook_bytes)
        kept, cut = [], 0
        for o in outs:
            capped = tamano.cap_output(o, caps, self.room) if isinstance(o, dict) else o
            cut += capped is not o
            s = sanitized(capped)
            if s:
                kept.append(s)
                self.room = max(0, self.room - protocol.content_size(s))
        if cut:
            self.notes.append("{} salida(s) de {} omitida(s) o recortada(s) por tamaño".format(cut, gid))
        return kept

    # -- tests

    def run_test(self, name, sources, retry=False) -> Veredicto:
        spec = self.tests.PRUEBAS[name]
        try:
            data = self.tests.plan_de(name, self.seed, self.tests.Contexto(sources))
        except self.tests.Incorrecto as exc:
            return Veredicto(name, False, str(exc))
        except Exception as exc:  # e.g. a student cell that no parser can read
            return Veredicto(name, False, "No se pudo preparar {}: {}".format(name, type(exc).__name__))
        msg = {"op": "test", "probe": spec.sonda, "probe_source": self.tests.fuente_sonda(),
               "helpers_source": self.tests.fuente_ayudas(name) if spec.ayudas else "",
               "inputs": protocol.encode(self.tests.para_la_sonda(data))}
        short = name[5:] if name.startswith("test_") else name
        limit = self._limit(self.limits.test_timeout)
        try:
            # The probe runs in the holder: past its limit the holder is ended and rebuilt.
            reply = self._request(msg, limit, CELL_SLACK)
        except TimedOut:
            self._rebuild()
            if self.out_of_budget():
                return Veredicto(name, False, "No se evaluó {}: {}.".format(short, MSG_BUDGET.format(self.limits.budget)))
            self._ran_out(name, limit)
            return Veredicto(name, False, "tiempo excedido: las llamadas a tu código en {} no terminaron en {:g} s "
                                            "(¿un bucle infinito?). {}".format(short, limit, NO_PROCESSES))
        except Crashed:
            death = self._rebuild()
            if death.get("sandbox") and not retry and not self.lost:
                return self.run_test(name, sources, retry=True)  # the sandbox died: once more, on a fresh one
            if self.lost:
                return Veredicto(name, False, "No se pudo evaluar {}: {}.".format(short, self.lost))
            desc = _death_description(death)
            return Veredicto(name, False, "Tu código hizo terminar el proceso durante {} ({}).".format(short, desc))
        except Lost as exc:
            if self.out_of_budget():
                return Veredicto(name, False, "No se evaluó {}: {}.".format(short, MSG_BUDGET.format(self.limits.budget)))
            return Veredicto(name, False, "No se pudo evaluar {}: el proceso del estudiante ya no responde ({}).".format(short, exc))
        status = reply.get("status")
        if status == "memory":
            return Veredicto(name, False, "memoria excedida: tu código en {} pidió más memoria que el límite "
                                            "({} MiB).".format(short, self.limits.memory_mb))
        if status == "crashed":
            return Veredicto(name, False, "Tu código hizo terminar el proceso durante {} ({}).".format(short, _death_description(reply)))
        if status != "ok":
            return Veredicto(name, False, "No se pudo evaluar {}: {}".format(short, bounded_text(reply.get("error"), 300)))
        from tarea2_grader.engine import wire
        try:
            obs = wire.decode(reply.get("result"))
        except wire.Malformed:
            return Veredicto(name, False, "La respuesta de tu código para {} llegó malformada.".format(short))
        message = self.tests.veredicto(name, data, obs)
        if message is None:
            return Veredicto(name, True, "Tests ocultos de {}: ok".format(short))
        if _PROCESS_ERRORS.search(message):  # maybe a process, or one a cell meant to start, was missing
            message += "\n" + NO_PROCESSES
        return Veredicto(name, False, message)

    def run(self, until_last_test=False):
        cells = self.nb.cells
        tests = {i: declared_test(c.source) for i, c in enumerate(cells) if is_test(c)}
        order = [n for n in self.tests.PRUEBAS if n in tests.values()]
        reached: Dict[str, List[str]] = {}
        done: Dict[str, Veredicto] = {}
        last = last_test(self.nb)

        def run_pending(final=False):
            for name in order:
                if name in done:
                    continue
                if name not in reached:
                    if final:
                        continue
                    return
                done[name] = self.run_test(name, reached[name])

        for i, cell in enumerate(cells):
            if cell.cell_type != "code":
                continue
            if i in tests:
                name = tests[i]
                if name is None or name not in self.tests.PRUEBAS:
                    continue
                reached.setdefault(name, list(self.sources))
                run_pending()
                continue
            if until_last_test and i > last:
                break
            self.run_cell(i, cell)
        run_pending(final=True)
        review = self._review()
        for i, name in tests.items():
            if name is None or name not in self.tests.PRUEBAS:
                v = Veredicto(name, False, "Esta celda de test no declara ningún test oculto del curso: no suma puntos.")
            else:
                v = con_revision(done[name], review, cells[i].metadata.get("nbgrader", {}).get("points", 0))
            self.verdicts[i] = v
            self.outputs[i] = verdict_output(v)
        if self.out_of_budget():
            if MSG_BUDGET.format(self.limits.budget) not in self.notes:
                self.notes.append(MSG_BUDGET.format(self.limits.budget))
        elif self.lost:
            self.notes.append("el proceso del estudiante dejó de responder: " + self.lost)

    def _review(self):
        """The static review of the submitted source (:mod:`tarea2_grader.engine.review`), or None when off."""
        if not self.limits.static_review:
            return None
        from tarea2_grader.engine.review import reach, records
        try:
            result = reach.revisar_nb(self.nb, partes=getattr(self.tests, "PARTES_REVISION", {}))
        except Exception as exc:  # the analysis of hostile text failed: a person looks, no part is zeroed
            self.notes.append("revisar a mano: la revisión del código no pudo terminar ({})".format(type(exc).__name__))
            return None
        for reason in result.revisar_notebook:
            self.notes.append("revisar a mano: " + records.seguro(reason, 200))
        flagged = result.partes_marcadas()
        if flagged:
            self.notes.append("revisión: {} parte(s) marcada(s) por usar una derivada hecha por máquina "
                              "({}); una persona debe revisarlas".format(len(flagged), ", ".join(flagged)))
        return result

    def close(self):
        if self.session is not None:
            self.session.close()
        if self.warm_sandbox is not None:
            WARM_SANDBOXES.give_back(self.warm_sandbox)


def grade(nb, seed: int, limits: Optional[sandbox.Limits] = None, tests=None,
          isolate: Optional[bool] = None, until_last_test: bool = False) -> Resultado:
    """Grade one notebook (an nbformat v4 NotebookNode) with the student's seed.

    ``isolate`` chooses bubblewrap (default: whenever it works here).  ``until_last_test`` skips
    the cells after the last test cell (they cannot change any verdict; the test suite uses it).
    """
    limits = limits or sandbox.Limits()
    if tests is None:
        tests = importlib.import_module(DEFAULT_TESTS_MODULE)
    if isolate is None:
        isolate = isolation_available()
    t0 = time.monotonic()
    job = _Grading(nb, int(seed), limits, tests, isolate)
    try:
        job.run(until_last_test)
    finally:
        job.close()
    return Resultado(int(seed), job.outputs, job.verdicts, job.notes, isolate,
                     time.monotonic() - t0, round(job.spent, 3), job.failure)


_AVAILABLE: List[bool] = []


def isolation_available() -> bool:
    """Whether bubblewrap works here (checked once per process); warns in Spanish when it does not."""
    if not _AVAILABLE:
        ok = sandbox.bwrap_works()
        _AVAILABLE.append(ok)
        if not ok:
            warning = sandbox.no_isolation_warning()
            if warning:
                import sys
                print(warning, file=sys.stderr)
    return _AVAILABLE[0]


def warm_up_torch() -> None:
    """Pay in this process, once, what torch does on first use (the verdicts compare with
    ``torch.autograd``): the first ``autograd.grad`` with ``grad_outputs`` imports ``torch.fx``'s
    symbolic shapes and sympy (about 0.6 s), the later calls take microseconds.  The sandboxed
    agent warms its own torch the same way (``agent.warm_up``), out of this side's reach."""
    import torch

    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    y = torch.sigmoid(x * x)
    torch.autograd.grad(y, (x,), grad_outputs=torch.ones_like(y))
    (torch.tanh(x) * x).sum().backward()
    torch.nn.functional.cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]))
    import torch.utils.data  # noqa: F401  (Part 4's Dataset and DataLoader)
