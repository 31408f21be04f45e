"""The trusted grader of one notebook: student code in the sandbox, every verdict here.

:func:`calificar` runs a student's notebook cell by cell in a sandboxed agent
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
from tarea2_grader.engine.session import (MARGIN, TALLERES, Caido, Perdido, Sesion, Taller, Vencido,
                                          bounded_text)
from tarea2_grader.engine.verdicts import Resultado, Veredicto, con_revision
from tarea2_grader.sandboxed import protocol

# The course's tests and wire (torch) are imported when first needed, so that a sandbox can start
# warming up while this process imports torch: see session._Talleres.precalentar.

#: The course graded when none is named (the default of ``c.TrustedExecute.tests_module``).
DEFAULT_TESTS_MODULE = "tarea2_grader.tarea2.hidden"
DECLARACION = re.compile(r"""\bevaluar\(\s*["'](test_\w+)["']\s*\)""")
CELL_SLACK = 0.5  # a cell runs in the holder itself: the supervisor ends it this long past its limit
MAX_REPOSICIONES = 12  # holders rebuilt for one student (cells past their limit, or that end the process)

MSG_TIMEOUT_CELDA = "la celda superó el límite de {:g} s y se interrumpió"
MSG_CRASH_CELDA = "la celda hizo terminar el proceso ({}); se siguió con el estado anterior a ella"
MSG_PERDIDO = "no se ejecutó: el proceso del estudiante ya no responde ({})"
MSG_PRESUPUESTO = ("se agotó el presupuesto de {:g} s de tiempo en el sandbox para todo tu notebook "
                   "(celdas, tests y reconstrucciones tras una celda que se colgó o terminó el proceso): "
                   "lo que quedaba no se ejecutó y sus tests valen 0")
SIN_PROCESOS = ("Los tests corren sin otros procesos tuyos: durante la corrección tu código no puede crear "
                "procesos (subprocess, multiprocessing, os.fork) ni usar los que haya creado una celda.")
SIN_BARRERA = ("sin barrera de procesos: el código del estudiante pudo crear otros procesos durante los tests "
               "(autograd en otro proceso no se detecta)")
SIN_CGROUP = "sin límite de tareas por alumno: sus hilos cuentan en el límite del usuario compartido"
# Exceptions that a missing process explains (fork/exec denied, a helper's pipe gone): only these
# get SIN_PROCESOS, so an unfinished part's NotImplementedError is not told about processes.
_DE_PROCESOS = re.compile(r" lanzó (PermissionError|BlockingIOError|ChildProcessError|OSError|BrokenPipeError|"
                          r"EOFError|ConnectionError|ConnectionResetError|ConnectionRefusedError|"
                          r"CalledProcessError|BrokenProcessPool|SubprocessError)\b")
MSG_TALLER_CAIDO = ("el entorno de corrección (el sandbox entero, no solo tu proceso) terminó dos veces mientras "
                    "corría tu código, también en un sandbox nuevo: lo que quedaba no se ejecutó y sus tests valen 0")


def es_test(cell) -> bool:
    """An autograded test cell: code, graded, not an answer."""
    return cells.is_test_cell(cell)


def ultimo_test(nb) -> int:
    """Index of the last autograded test cell (-1 when there is none)."""
    return max((i for i, c in enumerate(nb.cells) if es_test(c)), default=-1)


def prueba_declarada(source: str) -> Optional[str]:
    """The hidden test a test cell declares (``hidden.evaluar("test_x")``), or None."""
    m = DECLARACION.search(source or "")
    return m.group(1) if m else None


def _descripcion_muerte(reply) -> str:
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


def saneada(o) -> Optional[dict]:
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


def salida_de_veredicto(v: Veredicto) -> List[dict]:
    """What a test cell shows: the trusted verdict."""
    if v.ok:
        return [{"output_type": "stream", "name": "stdout", "text": v.mensaje + "\n"}]
    return [_error("Incorrecto", v.mensaje)]


# --------------------------------------------------------------------------- grading


class _Calificacion:
    def __init__(self, nb, semilla, limites, pruebas, aislar):
        self.nb, self.semilla, self.limites, self.pruebas = nb, semilla, limites, pruebas
        self.aislar = aislar
        self.outputs: Dict[int, List[dict]] = {}
        self.espacio = limites.notebook_bytes  # content the notebook's outputs may still keep
        self.veredictos: Dict[int, Veredicto] = {}
        self.notas: List[str] = []
        self.fuentes: List[str] = []
        self.inicio = time.monotonic()
        self.sesion: Optional[Sesion] = None
        self.taller: Optional[Taller] = None
        self.perdido = ""
        self.tras_bucle = False  # once a cell or test ran out of time, the rest get timeout_after_loop
        self.estado: List[list] = []  # [source, seconds] of the cells that succeeded: what a new holder replays
        self.reposiciones = 0
        self.gastado = 0.0  # seconds of sandbox time charged to this student
        self.falla = ""  # the machinery failed: this student is left ungraded (Resultado.falla)
        self.caidas = 0  # whole sandboxes lost while this student's code ran

    # -- the session

    def _sesion(self) -> Optional[Sesion]:
        if self.sesion is None and not self.perdido:
            for intento in range(2):  # a warm sandbox that died meanwhile is replaced once
                try:
                    if self.taller is None:
                        self.taller = TALLERES.tomar(self.limites, self.aislar)
                    self.sesion = self.taller.sesion()
                    if not self.sesion.vivo:  # no student statement has run in it yet
                        self.sesion = None
                        raise Perdido("el proceso del estudiante no arrancó en el sandbox")
                    if not self.sesion.barrera and not any(n.startswith(SIN_BARRERA) for n in self.notas):
                        self.notas.append("{} ({})".format(SIN_BARRERA, self.sesion.motivo_barrera))
                    if self.aislar and self.taller.grupo.ruta is None and not any(n.startswith(SIN_CGROUP) for n in self.notas):
                        self.notas.append("{} ({})".format(SIN_CGROUP, self.taller.grupo.motivo))
                    break
                except Perdido as exc:
                    if self.taller is not None:
                        self.taller.cerrar()
                        self.taller = None
                    self.perdido = str(exc) if intento else ""
                    if intento:  # a fresh sandbox is out of the student's reach: the machinery failed
                        self.falla = "no se pudo iniciar el sandbox ({})".format(bounded_text(str(exc), 600))
        return self.sesion if not self.perdido else None

    def _limite(self, base: float) -> float:
        return min(base, self.limites.timeout_after_loop) if self.tras_bucle else base

    def _agotado(self, gid: str, limite: float) -> None:
        if not self.tras_bucle:
            self.notas.append("desde {} (¿un bucle infinito?), cada celda y test siguiente tuvo como máximo "
                              "{:g} s".format(gid, self.limites.timeout_after_loop))
        self.tras_bucle = True

    def _restante(self) -> float:
        """Seconds of the student's sandbox budget still unspent."""
        return self.limites.budget - self.gastado

    def sin_presupuesto(self) -> bool:
        return self._restante() <= 0

    def _pedir(self, msg, limite, margen=MARGIN):
        """One request to the student's holder, charged to the student's budget (the wall time the
        holder spends on it: their cells, their functions called by a test, replays).  Raises
        :class:`Vencido` or :class:`Caido` when this request failed (the holder can be rebuilt:
        :meth:`_reponer`), plain :class:`Perdido` when the student cannot be graded any further
        (the budget is spent, or the holder cannot be replaced)."""
        sesion = self._sesion()
        if sesion is None:
            raise Perdido(self.perdido)
        if self.sin_presupuesto():
            if not self.perdido:
                self.perdido = MSG_PRESUPUESTO.format(self.limites.budget)
                self.notas.append(self.perdido)
            raise Perdido(self.perdido)
        inicio = time.monotonic()
        try:
            return sesion.pedir(msg, min(limite, self._restante()), margen)
        finally:
            self.gastado += time.monotonic() - inicio

    def _reponer(self) -> dict:
        """End the holder (a request ran past its limit, or the process ended) and start a new one
        in the state before that request: a fresh holder from the anchor runs again every cell
        that had succeeded.  Returns how the old holder ended ({} when unknown)."""
        muerte: dict = {}
        if self.sesion is not None:
            self.sesion.cerrar()
            self.sesion = None
        if self.taller is not None:
            try:
                muerte = self.taller.terminar()
            except Perdido:  # the whole sandbox went with it: the next request takes another one
                self.taller.cerrar()
                self.taller = None
                muerte = {"sandbox": True}
                self.caidas += 1
                if self.caidas >= 2:  # retried once on a fresh sandbox: now it is the student's
                    self.perdido = MSG_TALLER_CAIDO
                    return muerte
        if self.perdido:
            return muerte
        self.reposiciones += 1
        if self.reposiciones > MAX_REPOSICIONES:
            self.perdido = "su código terminó o excedió el tiempo {} veces".format(MAX_REPOSICIONES)
            return muerte
        for paso in list(self.estado):
            fuente, segundos = paso
            try:
                self._pedir({"op": "cell", "source": fuente, "replay": True},
                            min(self.limites.cell_timeout, 2 * segundos + 2.0), CELL_SLACK)
            except (Vencido, Caido):  # it succeeded before, not now: it is left out of the state
                self.estado.remove(paso)
                self.notas.append("una celda que había terminado no terminó al ejecutarse de nuevo "
                                  "(para rehacer el estado): se siguió sin ella")
                self._reponer()
                return muerte
            except Perdido:
                return muerte
        return muerte

    # -- cells

    def celda(self, i, cell, reintento=False):
        limite = self._limite(self.limites.cell_timeout)
        gid = cell.metadata.get("nbgrader", {}).get("grade_id") or "celda {}".format(i + 1)
        inicio = time.monotonic()
        try:
            reply = self._pedir({"op": "cell", "source": cell.source, "max_output": self.limites.output_bytes,
                                 "max_cell": self.limites.notebook_bytes}, limite, CELL_SLACK)
        except Vencido:
            self._reponer()
            if self.sin_presupuesto():
                self.outputs[i] = [_error("PresupuestoAgotado", MSG_PRESUPUESTO.format(self.limites.budget))]
                return
            self.outputs[i] = [_error("TiempoExcedido", MSG_TIMEOUT_CELDA.format(limite))]
            self.notas.append("celda interrumpida por tiempo (¿bucle infinito?): {}".format(gid))
            self._agotado(gid, limite)
            return
        except Caido:
            muerte = self._reponer()
            if muerte.get("sandbox") and not reintento and not self.perdido:
                return self.celda(i, cell, reintento=True)  # the sandbox died: once more, on a fresh one
            if self.perdido:
                self.outputs[i] = [_error("NoEjecutada", MSG_PERDIDO.format(self.perdido))]
                return
            desc = _descripcion_muerte(muerte)
            self.outputs[i] = [_error("ProcesoTerminado", MSG_CRASH_CELDA.format(desc))]
            self.notas.append("la celda {} hizo terminar el proceso ({}): se corrigió el resto".format(gid, desc))
            return
        except Perdido as exc:
            self.outputs[i] = [_error("NoEjecutada", MSG_PERDIDO.format(exc))]
            return
        outs = reply.get("outputs") if isinstance(reply.get("outputs"), list) else []
        self.outputs[i] = self._acotadas(outs[:500], gid)
        self.fuentes.append(cell.source)
        self.estado.append([cell.source, time.monotonic() - inicio])
        if reply.get("memory"):
            self.notas.append("memoria excedida en {}".format(gid))

    def _acotadas(self, outs, gid: str) -> List[dict]:
        """Untrusted outputs made valid and inert, each within the size caps (tarea2_grader/engine/tamano.py):
        what the notebook's earlier cells kept counts against the notebook's cap."""
        caps = tamano.Caps(self.limites.output_bytes, self.limites.notebook_bytes)
        kept, cut = [], 0
        for o in outs:
            capped = tamano.cap_output(o, caps, self.espacio) if isinstance(o, dict) else o
            cut += capped is not o
            s = saneada(capped)
            if s:
                kept.append(s)
                self.espacio = max(0, self.espacio - protocol.content_size(s))
        if cut:
            self.notas.append("{} salida(s) de {} omitida(s) o recortada(s) por tamaño".format(cut, gid))
        return kept

    # -- tests

    def prueba(self, nombre, fuentes, reintento=False) -> Veredicto:
        spec = self.pruebas.PRUEBAS[nombre]
        try:
            datos = self.pruebas.plan_de(nombre, self.semilla, self.pruebas.Contexto(fuentes))
        except self.pruebas.Incorrecto as exc:
            return Veredicto(nombre, False, str(exc))
        except Exception as exc:  # e.g. a student cell that no parser can read
            return Veredicto(nombre, False, "No se pudo preparar {}: {}".format(nombre, type(exc).__name__))
        msg = {"op": "test", "probe": spec.sonda, "probe_source": self.pruebas.fuente_sonda(),
               "helpers_source": self.pruebas.fuente_ayudas(nombre) if spec.ayudas else "",
               "inputs": protocol.encode(self.pruebas.para_la_sonda(datos))}
        corto = nombre[5:] if nombre.startswith("test_") else nombre
        limite = self._limite(self.limites.test_timeout)
        try:
            # The probe runs in the holder: past its limit the holder is ended and rebuilt.
            reply = self._pedir(msg, limite, CELL_SLACK)
        except Vencido:
            self._reponer()
            if self.sin_presupuesto():
                return Veredicto(nombre, False, "No se evaluó {}: {}.".format(corto, MSG_PRESUPUESTO.format(self.limites.budget)))
            self._agotado(nombre, limite)
            return Veredicto(nombre, False, "tiempo excedido: las llamadas a tu código en {} no terminaron en {:g} s "
                                            "(¿un bucle infinito?). {}".format(corto, limite, SIN_PROCESOS))
        except Caido:
            muerte = self._reponer()
            if muerte.get("sandbox") and not reintento and not self.perdido:
                return self.prueba(nombre, fuentes, reintento=True)  # the sandbox died: once more, on a fresh one
            if self.perdido:
                return Veredicto(nombre, False, "No se pudo evaluar {}: {}.".format(corto, self.perdido))
            desc = _descripcion_muerte(muerte)
            return Veredicto(nombre, False, "Tu código hizo terminar el proceso durante {} ({}).".format(corto, desc))
        except Perdido as exc:
            if self.sin_presupuesto():
                return Veredicto(nombre, False, "No se evaluó {}: {}.".format(corto, MSG_PRESUPUESTO.format(self.limites.budget)))
            return Veredicto(nombre, False, "No se pudo evaluar {}: el proceso del estudiante ya no responde ({}).".format(corto, exc))
        status = reply.get("status")
        if status == "memory":
            return Veredicto(nombre, False, "memoria excedida: tu código en {} pidió más memoria que el límite "
                                            "({} MiB).".format(corto, self.limites.memory_mb))
        if status == "crashed":
            return Veredicto(nombre, False, "Tu código hizo terminar el proceso durante {} ({}).".format(corto, _descripcion_muerte(reply)))
        if status != "ok":
            return Veredicto(nombre, False, "No se pudo evaluar {}: {}".format(corto, bounded_text(reply.get("error"), 300)))
        from tarea2_grader.engine import wire
        try:
            obs = wire.decodificar(reply.get("result"))
        except wire.Malformado:
            return Veredicto(nombre, False, "La respuesta de tu código para {} llegó malformada.".format(corto))
        mensaje = self.pruebas.veredicto(nombre, datos, obs)
        if mensaje is None:
            return Veredicto(nombre, True, "Tests ocultos de {}: ok".format(corto))
        if _DE_PROCESOS.search(mensaje):  # maybe a process, or one a cell meant to start, was missing
            mensaje += "\n" + SIN_PROCESOS
        return Veredicto(nombre, False, mensaje)

    def run(self, hasta_ultimo_test=False):
        cells = self.nb.cells
        tests = {i: prueba_declarada(c.source) for i, c in enumerate(cells) if es_test(c)}
        orden = [n for n in self.pruebas.PRUEBAS if n in tests.values()]
        alcanzadas: Dict[str, List[str]] = {}
        hechas: Dict[str, Veredicto] = {}
        ultimo = ultimo_test(self.nb)

        def correr_pendientes(final=False):
            for nombre in orden:
                if nombre in hechas:
                    continue
                if nombre not in alcanzadas:
                    if final:
                        continue
                    return
                hechas[nombre] = self.prueba(nombre, alcanzadas[nombre])

        for i, cell in enumerate(cells):
            if cell.cell_type != "code":
                continue
            if i in tests:
                nombre = tests[i]
                if nombre is None or nombre not in self.pruebas.PRUEBAS:
                    continue
                alcanzadas.setdefault(nombre, list(self.fuentes))
                correr_pendientes()
                continue
            if hasta_ultimo_test and i > ultimo:
                break
            self.celda(i, cell)
        correr_pendientes(final=True)
        revision = self._revision()
        for i, nombre in tests.items():
            if nombre is None or nombre not in self.pruebas.PRUEBAS:
                v = Veredicto(nombre, False, "Esta celda de test no declara ningún test oculto del curso: no suma puntos.")
            else:
                v = con_revision(hechas[nombre], revision, cells[i].metadata.get("nbgrader", {}).get("points", 0))
            self.veredictos[i] = v
            self.outputs[i] = salida_de_veredicto(v)
        if self.sin_presupuesto():
            if MSG_PRESUPUESTO.format(self.limites.budget) not in self.notas:
                self.notas.append(MSG_PRESUPUESTO.format(self.limites.budget))
        elif self.perdido:
            self.notas.append("el proceso del estudiante dejó de responder: " + self.perdido)

    def _revision(self):
        """The static review of the submitted source (:mod:`tarea2_grader.engine.review`), or None when off."""
        if not self.limites.static_review:
            return None
        from tarea2_grader.engine.review import reach, records
        try:
            resultado = reach.revisar_nb(self.nb, partes=getattr(self.pruebas, "PARTES_REVISION", {}))
        except Exception as exc:  # the analysis of hostile text failed: a person looks, no part is zeroed
            self.notas.append("revisar a mano: la revisión del código no pudo terminar ({})".format(type(exc).__name__))
            return None
        for motivo in resultado.revisar_notebook:
            self.notas.append("revisar a mano: " + records.seguro(motivo, 200))
        marcadas = resultado.partes_marcadas()
        if marcadas:
            self.notas.append("revisión: {} parte(s) marcada(s) por usar una derivada hecha por máquina "
                              "({}); una persona debe revisarlas".format(len(marcadas), ", ".join(marcadas)))
        return resultado

    def cerrar(self):
        if self.sesion is not None:
            self.sesion.cerrar()
        if self.taller is not None:
            TALLERES.devolver(self.taller)


def calificar(nb, semilla: int, limites: Optional[sandbox.Limites] = None, pruebas=None,
              aislar: Optional[bool] = None, hasta_ultimo_test: bool = False) -> Resultado:
    """Grade one notebook (an nbformat v4 NotebookNode) with the student's seed.

    ``aislar`` chooses bubblewrap (default: whenever it works here).  ``hasta_ultimo_test`` skips
    the cells after the last test cell (they cannot change any verdict; the test suite uses it).
    """
    limites = limites or sandbox.Limites()
    if pruebas is None:
        pruebas = importlib.import_module(DEFAULT_TESTS_MODULE)
    if aislar is None:
        aislar = aislamiento_disponible()
    t0 = time.monotonic()
    trabajo = _Calificacion(nb, int(semilla), limites, pruebas, aislar)
    try:
        trabajo.run(hasta_ultimo_test)
    finally:
        trabajo.cerrar()
    return Resultado(int(semilla), trabajo.outputs, trabajo.veredictos, trabajo.notas, aislar,
                     time.monotonic() - t0, round(trabajo.gastado, 3), trabajo.falla)


_DISPONIBLE: List[bool] = []


def aislamiento_disponible() -> bool:
    """Whether bubblewrap works here (checked once per process); warns in Spanish when it does not."""
    if not _DISPONIBLE:
        ok = sandbox.bwrap_works()
        _DISPONIBLE.append(ok)
        if not ok:
            aviso = sandbox.aviso_sin_aislamiento()
            if aviso:
                import sys
                print(aviso, file=sys.stderr)
    return _DISPONIBLE[0]


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
