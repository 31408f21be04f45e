"""The trusted grader of one notebook: student code in the sandbox, every verdict here.

:func:`calificar` runs a student's notebook cell by cell in a sandboxed agent
(:mod:`tarea2_grader.sandboxed.agent`, :mod:`tarea2_grader.engine.sandbox`) and, for each hidden test cell,
draws the test's inputs from the student's seed, has a probe process call the student's code on
them, and computes the verdict in this process (:mod:`tarea2_grader.tarea2.hidden`).  No student code
ever runs here: what comes back is decoded as plain data (:mod:`tarea2_grader.engine.wire`), and a test
whose answer never arrives (cell missing, process dead or out of time, reply malformed) fails
with a reason.

Tests run in the order the course declares them (:data:`hidden.PRUEBAS`), each as soon as its
cell and every earlier test's cell have been reached, so helper code lent to a later test
(correct activations, a correct network) is never reachable while an earlier test that grades
it runs, even in a notebook whose cells were moved.

This is the one grading path: nbgrader's autograde reaches it through
:class:`tarea2_grader.integration.nbplugin.TrustedExecute`, and the test suite calls it directly.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import Dict, List, Optional

from tarea2_grader.sandboxed import agent
from tarea2_grader.engine import cells
from tarea2_grader.engine import sandbox
from tarea2_grader.engine import tamano

# hidden and wire (torch) are imported when first needed, so that a sandbox can start warming up
# while this process imports torch: see _Talleres.precalentar.

DECLARACION = re.compile(r"""\bevaluar\(\s*["'](test_\w+)["']\s*\)""")
MARGIN = 10.0  # seconds the supervisor waits beyond the agent's own limit (a test) before giving up on it
CELL_SLACK = 0.5  # a cell runs in the holder itself: the supervisor ends it this long past its limit
MAX_REPOSICIONES = 12  # holders rebuilt for one student (cells past their limit, or that end the process)
READY_TIMEOUT = 180.0

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


class Perdido(Exception):
    """The sandbox stopped answering (dead, out of time, or talking nonsense)."""


class Vencido(Perdido):
    """No answer before the deadline (the process may still be running)."""


class Caido(Perdido):
    """The student's process ended, or its channel carried something other than the answer."""


@dataclasses.dataclass
class Veredicto:
    """The trusted verdict of one hidden test cell."""

    prueba: Optional[str]
    ok: bool
    mensaje: str
    marcada: bool = False  # the static review flagged the graded code: a person must review it


@dataclasses.dataclass
class Resultado:
    """What grading one notebook produced."""

    semilla: int
    outputs: Dict[int, List[dict]]
    veredictos: Dict[int, Veredicto]
    notas: List[str]
    aislado: bool
    segundos: float = 0.0
    sandbox_s: float = 0.0  # sandbox time charged to the student's budget
    falla: str = ""  # non-empty: the grading machinery failed (no sandbox), so these verdicts grade nothing

    def puntos(self, nb) -> Dict[str, float]:
        """grade_id -> points of every autograded test cell (full points or 0)."""
        out = {}
        for i, v in self.veredictos.items():
            meta = nb.cells[i].metadata.get("nbgrader", {})
            out[meta.get("grade_id")] = float(meta.get("points", 0)) if v.ok else 0.0
        return out

    def mensajes(self, nb) -> Dict[str, str]:
        """grade_id -> the verdict's message."""
        return {nb.cells[i].metadata.get("nbgrader", {}).get("grade_id"): v.mensaje for i, v in self.veredictos.items()}

    def marcadas(self, nb) -> List[str]:
        """grade_ids of the test cells the static review flagged, in notebook order."""
        return [nb.cells[i].metadata.get("nbgrader", {}).get("grade_id")
                for i, v in sorted(self.veredictos.items()) if v.marcada]

    def como_datos(self) -> dict:
        """Plain JSON data (what a grading worker sends back to the coordinator)."""
        return {"semilla": self.semilla, "aislado": self.aislado, "segundos": self.segundos, "sandbox_s": self.sandbox_s,
                "notas": list(self.notas), "falla": self.falla,
                "outputs": [[i, outs] for i, outs in sorted(self.outputs.items())],
                "veredictos": [[i, v.prueba, v.ok, v.mensaje, v.marcada] for i, v in sorted(self.veredictos.items())]}

    @classmethod
    def desde_datos(cls, data: dict) -> "Resultado":
        """The inverse of :meth:`como_datos`."""
        return cls(int(data["semilla"]), {int(i): outs for i, outs in data["outputs"]},
                   {int(v[0]): Veredicto(v[1], bool(v[2]), v[3], bool(v[4:5] and v[4])) for v in data["veredictos"]},
                   list(data["notas"]), bool(data["aislado"]), float(data["segundos"]),
                   float(data.get("sandbox_s", 0.0)), str(data.get("falla") or ""))


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


# --------------------------------------------------------------------------- the sandboxed agent


def _leer_frame(sock, deadline):
    """One frame from ``sock`` before ``deadline`` (raises Perdido)."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Vencido("sin respuesta a tiempo")
            sock.settimeout(left)
            try:
                chunk = sock.recv(min(n - len(buf), 1 << 20))
            except socket.timeout:
                raise Vencido("sin respuesta a tiempo") from None
            except OSError as exc:
                raise Caido(str(exc)) from None
            if not chunk:
                raise Caido("el proceso terminó")
            buf += chunk
        return buf
    (n,) = struct.unpack(">I", exact(4))
    if n > agent.MAX_FRAME:
        raise Caido("respuesta demasiado grande")
    try:
        return json.loads(exact(n).decode("utf-8"))
    except (ValueError, RecursionError):
        raise Caido("respuesta ilegible") from None


def _frame(msg) -> bytes:
    data = json.dumps(msg, allow_nan=True).encode("utf-8")
    return struct.pack(">I", len(data)) + data


class _Lanzador:
    """Starts sandboxes from one long-lived thread.

    bubblewrap's ``--die-with-parent`` ties the sandbox's life to the *thread* that started it;
    a worker thread that ends would take its warm sandbox with it.
    """

    def __init__(self):
        import queue
        self._q = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="tarea2-lanzador").start()

    def _loop(self):
        while True:
            fn, box, done = self._q.get()
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed back to the caller
                box.append((False, exc))
            done.set()

    def lanzar(self, fn):
        box, done = [], threading.Event()
        self._q.put((fn, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value


_LANZADOR: List[_Lanzador] = []
_LOCK = threading.Lock()


def _lanzar(fn):
    with _LOCK:
        if not _LANZADOR:
            _LANZADOR.append(_Lanzador())
    return _LANZADOR[0].lanzar(fn)


class Taller:
    """One warm sandbox: the agent's anchor, imports paid once, grading students one at a time."""

    def __init__(self, limites: sandbox.Limites, aislar: bool):
        self.limites, self.aislar = limites, aislar
        self.scratch = sandbox.nuevo_scratch()
        self._control, theirs = socket.socketpair()
        argv, workdir = sandbox.comando(self.scratch, "", aislar, limites.disk_mb, limites.python)
        config = {"fd": theirs.fileno(), "memory_mb": limites.memory_mb, "cpu_seconds": limites.cpu_seconds,
                  "isolated": aislar, "workdir": workdir}
        argv[-1] = json.dumps(config)
        self.grupo = sandbox.GrupoDeTareas("{}-{}".format(os.getpid(), os.path.basename(self.scratch)))
        argv = self.grupo.envolver(argv)
        env = None
        if not aislar:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": self.scratch}
        self._log: List[str] = []
        self.proc = _lanzar(lambda: subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(theirs.fileno(),), start_new_session=True, env=env, cwd=self.scratch))
        theirs.close()
        threading.Thread(target=self._drain, daemon=True).start()
        self.vivo = True
        self.alumnos = 0
        try:
            ready = _leer_frame(self._control, time.monotonic() + READY_TIMEOUT)
        except Perdido as exc:
            ready = str(exc)
        if not (isinstance(ready, dict) and ready.get("id") == "ready"):
            self.cerrar()
            raise Perdido("el entorno de corrección no arrancó: " + self.registro()[-800:])

    def _drain(self):
        for line in iter(self.proc.stdout.readline, b""):
            self._log.append(line.decode("utf-8", "replace"))
            del self._log[:-200]

    def registro(self) -> str:
        """The last lines the agent's processes wrote to their stdout/stderr."""
        return "".join(self._log)

    def _control_pedir(self, msg, fds=(), limite=30.0) -> dict:
        msg = dict(msg, id=secrets.token_hex(8))
        try:
            data = _frame(msg)
            if fds:
                socket.send_fds(self._control, [data], list(fds))
            else:
                self._control.sendall(data)
            reply = _leer_frame(self._control, time.monotonic() + limite)
        except (Perdido, OSError) as exc:
            self.vivo = False
            raise Perdido(str(exc)) from None
        if not isinstance(reply, dict) or reply.get("id") != msg["id"] or reply.get("status") != "ok":
            self.vivo = False
            raise Perdido("el entorno de corrección no respondió como se esperaba")
        return reply

    def sesion(self) -> "Sesion":
        """A fresh holder for the next student, forked from the untouched anchor."""
        mine, theirs = socket.socketpair()
        try:
            self._control_pedir({"op": "alumno"}, fds=[theirs.fileno()])
        finally:
            theirs.close()
        self.alumnos += 1
        return Sesion(mine, self)

    def terminar(self) -> dict:
        """End the current student's holder and its processes (its files stay); how it ended."""
        reply = self._control_pedir({"op": "terminar"}, limite=30.0)
        return {k: reply[k] for k in ("signal", "exit") if k in reply}

    def limpiar(self):
        """After a student: end everything it left in the sandbox, empty the scratch folder."""
        self._control_pedir({"op": "limpiar"}, limite=60.0)
        agent._wipe(self.scratch)

    def cerrar(self):
        """End the sandbox and everything in it; remove the scratch folder."""
        self.vivo = False
        _cerrar(self._control)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _matar_grupo(self.proc)
        self.grupo.quitar()
        shutil.rmtree(self.scratch, ignore_errors=True)


class Sesion:
    """The channel to one student's holder inside a :class:`Taller`."""

    def __init__(self, sock, taller):
        self._sock, self.taller = sock, taller
        self.vivo, self.motivo = True, ""
        try:
            ready = _leer_frame(self._sock, time.monotonic() + 30)
        except Perdido as exc:
            ready = str(exc)
        if not (isinstance(ready, dict) and ready.get("id") == "ready"):
            self.vivo, self.motivo = False, "el proceso del estudiante no arrancó"
            ready = {}
        # Written by the anchor's code in the new holder before it reads any request, so before any
        # student statement: trustworthy.
        self.barrera = ready.get("barrera") is True
        self.motivo_barrera = _texto(ready.get("motivo"), 200) or "desconocido"

    def pedir(self, msg: dict, limite: float, margen: float = MARGIN) -> dict:
        """Send one request; return the reply that carries its id.

        Raises :class:`Vencido` when no reply came within ``limite + margen`` seconds and
        :class:`Caido` when the process ended or the channel carried anything else.
        """
        if not self.vivo:
            raise Caido(self.motivo)
        msg = dict(msg, id=secrets.token_hex(8), timeout=limite)
        try:
            self._sock.sendall(_frame(msg))
            reply = _leer_frame(self._sock, time.monotonic() + limite + margen)
        except OSError as exc:
            self.vivo, self.motivo = False, str(exc)
            raise Caido(self.motivo) from None
        except Perdido as exc:
            self.vivo, self.motivo = False, str(exc)
            raise
        if not isinstance(reply, dict) or reply.get("id") != msg["id"]:
            self.vivo, self.motivo = False, "la comunicación con el corrector fue alterada"
            raise Caido(self.motivo)
        return reply

    def cerrar(self):
        """Close the channel (the holder exits); the taller cleans up afterwards."""
        self.vivo = False
        _cerrar(self._sock)


def _cerrar(sock):
    try:
        sock.close()
    except OSError:
        pass


class _Talleres:
    """Idle warm sandboxes, by configuration, shared by the threads of this process."""

    def __init__(self):
        self._idle: Dict[tuple, List[Taller]] = {}
        self._todos: List[Taller] = []
        self._calentando: Dict[tuple, int] = {}
        self._lock = threading.Condition()
        import atexit
        atexit.register(self.cerrar_todos)

    @staticmethod
    def _clave(limites, aislar):
        return (limites.memory_mb, limites.cpu_seconds, limites.disk_mb, limites.python, aislar)

    def precalentar(self, limites, aislar, cuantos: int = 1) -> None:
        """Start sandboxes in the background until ``cuantos`` are warm or warming (their torch
        imports overlap this process's own work)."""
        for _ in range(max(1, cuantos)):
            if not self._uno_mas(limites, aislar, cuantos):
                return

    def _uno_mas(self, limites, aislar, cuantos) -> bool:
        key = self._clave(limites, aislar)
        with self._lock:
            if len(self._idle.get(key, [])) + self._calentando.get(key, 0) >= max(1, cuantos):
                return False
            self._calentando[key] = self._calentando.get(key, 0) + 1

        def warm():
            try:
                taller = Taller(limites, aislar)
            except Perdido:
                taller = None
            with self._lock:
                self._calentando[key] -= 1
                if taller is not None:
                    self._todos.append(taller)
                    self._idle.setdefault(key, []).append(taller)
                self._lock.notify_all()

        threading.Thread(target=warm, daemon=True, name="tarea2-precalentar").start()
        return True

    def tomar(self, limites, aislar) -> Taller:
        key = self._clave(limites, aislar)
        with self._lock:
            while True:
                idle = self._idle.setdefault(key, [])
                while idle:
                    taller = idle.pop()
                    if taller.vivo and taller.proc.poll() is None:
                        return taller
                    taller.cerrar()
                if not self._calentando.get(key):
                    break
                self._lock.wait(timeout=READY_TIMEOUT)
        taller = Taller(limites, aislar)
        with self._lock:
            self._todos.append(taller)
        return taller

    def devolver(self, taller: Taller):
        key = self._clave(taller.limites, taller.aislar)
        try:
            if taller.vivo:
                taller.limpiar()
        except Perdido:
            taller.vivo = False
        if not taller.vivo or taller.proc.poll() is not None:
            taller.cerrar()
            return
        with self._lock:
            self._idle.setdefault(key, []).append(taller)

    def cerrar_todos(self):
        with self._lock:
            todos, self._todos, self._idle = list(self._todos), [], {}
        for taller in todos:
            taller.cerrar()


TALLERES = _Talleres()


def _matar_grupo(proc):
    """Kill the agent and, outside bubblewrap, whatever its processes left behind."""
    import psutil
    try:
        procs = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# --------------------------------------------------------------------------- outputs


def _error(ename, evalue):
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": ["{}: {}".format(ename, evalue)]}


def _texto(valor, limite=200000):
    return valor if isinstance(valor, str) and len(valor) <= limite else (str(valor)[:limite] if valor else "")


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
        return {"output_type": "error", "ename": _texto(o.get("ename"), 200) or "Error",
                "evalue": _texto(o.get("evalue"), 4000), "traceback": [_texto(t, 20000) for t in tb[:50]]}
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
                        self.falla = "no se pudo iniciar el sandbox ({})".format(_texto(str(exc), 600))
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
                self.espacio = max(0, self.espacio - tamano.content_size(s))
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
               "inputs": agent.encode(self.pruebas.para_la_sonda(datos))}
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
            return Veredicto(nombre, False, "No se pudo evaluar {}: {}".format(corto, _texto(reply.get("error"), 300)))
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


REVISION_SIN_MARCA = "sin la marca: correcto, {:g} puntos; una persona revisará esta parte y puede devolvérselos."


def con_revision(v: Veredicto, revision, puntos) -> Veredicto:
    """The verdict of a test whose graded code the static review flagged: 0 points, every mark named
    (cell, line, construct) and what the values alone earned."""
    if revision is None or not revision.marcas.get(v.prueba):
        return v
    from tarea2_grader.engine.review import records
    marcas = revision.marcas[v.prueba]
    lineas = [records.texto_marca(m) for m in marcas[:5]] + (["(y {} más)".format(len(marcas) - 5)] if len(marcas) > 5 else [])
    if v.ok:
        cola = REVISION_SIN_MARCA.format(float(puntos or 0))
    else:
        cola = "sin la marca: " + v.mensaje
    return Veredicto(v.prueba, False, "\n".join(lineas) + "\n" + cola, marcada=True)


def calificar(nb, semilla: int, limites: Optional[sandbox.Limites] = None, pruebas=None,
              aislar: Optional[bool] = None, hasta_ultimo_test: bool = False) -> Resultado:
    """Grade one notebook (an nbformat v4 NotebookNode) with the student's seed.

    ``aislar`` chooses bubblewrap (default: whenever it works here).  ``hasta_ultimo_test`` skips
    the cells after the last test cell (they cannot change any verdict; the test suite uses it).
    """
    limites = limites or sandbox.Limites()
    if pruebas is None:
        from tarea2_grader.tarea2 import hidden as pruebas
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


def nueva_semilla() -> int:
    """A fresh seed for a student's hidden inputs."""
    return secrets.randbits(62)
