"""The trusted side's channel to the sandboxed agent: warm sandboxes and one session per student.

A :class:`Taller` is one sandbox (:mod:`tarea2_grader.engine.sandbox`) whose agent
(``sandboxed/agent.py``) has paid its imports once; :data:`TALLERES` keeps the idle ones, by
configuration, for the threads of this process.  A :class:`Sesion` is the channel to the holder
that runs one student's cells and probes.  Everything is framed and encoded by the boundary's
one codec, :mod:`tarea2_grader.sandboxed.protocol`, whose docstring lists every message; what
comes back is untrusted, and a reply that is late, missing or malformed raises :class:`Perdido`.
The notebook walk and the verdicts are in :mod:`tarea2_grader.engine.runner`.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Dict, List

from tarea2_grader.engine import sandbox
from tarea2_grader.sandboxed import protocol

MARGIN = 10.0  # seconds the supervisor waits beyond the agent's own limit (a test) before giving up on it
READY_TIMEOUT = 180.0


class Perdido(Exception):
    """The sandbox stopped answering (dead, out of time, or talking nonsense)."""


class Vencido(Perdido):
    """No answer before the deadline (the process may still be running)."""


class Caido(Perdido):
    """The student's process ended, or its channel carried something other than the answer."""


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
    try:
        return protocol.read_frame_with(exact)
    except protocol.FrameTooLarge:
        raise Caido("respuesta demasiado grande") from None
    except (ValueError, RecursionError):
        raise Caido("respuesta ilegible") from None


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
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        self.vivo = True
        self.alumnos = 0
        try:
            ready = _leer_frame(self._control, time.monotonic() + READY_TIMEOUT)
        except Perdido as exc:
            ready = str(exc)
        if not (isinstance(ready, dict) and ready.get("id") == "ready"):
            self.cerrar()
            self._drainer.join(timeout=5)  # what the failed start wrote, read to its end (it explains why)
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
            data = protocol.pack(msg)
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
        sandbox.empty_folder(self.scratch)

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
        self.motivo_barrera = bounded_text(ready.get("motivo"), 200) or "desconocido"

    def pedir(self, msg: dict, limite: float, margen: float = MARGIN) -> dict:
        """Send one request; return the reply that carries its id.

        Raises :class:`Vencido` when no reply came within ``limite + margen`` seconds and
        :class:`Caido` when the process ended or the channel carried anything else.
        """
        if not self.vivo:
            raise Caido(self.motivo)
        msg = dict(msg, id=secrets.token_hex(8), timeout=limite)
        try:
            self._sock.sendall(protocol.pack(msg))
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


def bounded_text(valor, limite=200000):
    """``valor`` when it is a string of at most ``limite`` characters, else its text cut there ("" for none)."""
    return valor if isinstance(valor, str) and len(valor) <= limite else (str(valor)[:limite] if valor else "")

