"""The trusted side's channel to the sandboxed agent: warm sandboxes and one session per student.

A :class:`WarmSandbox` is one sandbox (:mod:`tarea2_grader.engine.sandbox`) whose agent
(``sandboxed/agent.py``) has paid its imports once; :data:`WARM_SANDBOXES` keeps the idle ones, by
configuration, for the threads of this process.  A :class:`Session` is the channel to the holder
that runs one student's cells and probes.  Everything is framed and encoded by the boundary's
one codec, :mod:`tarea2_grader.sandboxed.protocol`, whose docstring lists every message; what
comes back is untrusted, and a reply that is late, missing or malformed raises :class:`Lost`.
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


class Lost(Exception):
    """The sandbox stopped answering (dead, out of time, or talking nonsense)."""


class TimedOut(Lost):
    """No answer before the deadline (the process may still be running)."""


class Crashed(Lost):
    """The student's process ended, or its channel carried something other than the answer."""


def _read_frame(sock, deadline):
    """One frame from ``sock`` before ``deadline`` (raises Lost)."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOut("sin respuesta a tiempo")
            sock.settimeout(left)
            try:
                chunk = sock.recv(min(n - len(buf), 1 << 20))
            except socket.timeout:
                raise TimedOut("sin respuesta a tiempo") from None
            except OSError as exc:
                raise Crashed(str(exc)) from None
            if not chunk:
                raise Crashed("el proceso terminó")
            buf += chunk
        return buf
    try:
        return protocol.read_frame_with(exact)
    except protocol.FrameTooLarge:
        raise Crashed("respuesta demasiado grande") from None
    except (ValueError, RecursionError):
        raise Crashed("respuesta ilegible") from None


class _Launcher:
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

    def launch(self, fn):
        box, done = [], threading.Event()
        self._q.put((fn, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value


_LAUNCHER: List[_Launcher] = []
_LOCK = threading.Lock()


def _launch(fn):
    with _LOCK:
        if not _LAUNCHER:
            _LAUNCHER.append(_Launcher())
    return _LAUNCHER[0].launch(fn)


class WarmSandbox:
    """One warm sandbox: the agent's anchor, imports paid once, grading students one at a time."""

    def __init__(self, limits: sandbox.Limits, isolate: bool):
        self.limits, self.isolate = limits, isolate
        self.scratch = sandbox.new_scratch()
        self._control, theirs = socket.socketpair()
        argv, workdir = sandbox.command(self.scratch, "", isolate, limits.disk_mb, limits.python)
        config = {"fd": theirs.fileno(), "memory_mb": limits.memory_mb, "cpu_seconds": limits.cpu_seconds,
                  "isolated": isolate, "workdir": workdir}
        argv[-1] = json.dumps(config)
        self.group = sandbox.TaskGroup("{}-{}".format(os.getpid(), os.path.basename(self.scratch)))
        argv = self.group.wrap(argv)
        env = None
        if not isolate:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": self.scratch}
        self._log: List[str] = []
        self.proc = _launch(lambda: subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(theirs.fileno(),), start_new_session=True, env=env, cwd=self.scratch))
        theirs.close()
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        self.alive = True
        self.students = 0
        try:
            ready = _read_frame(self._control, time.monotonic() + READY_TIMEOUT)
        except Lost as exc:
            ready = str(exc)
        if not (isinstance(ready, dict) and ready.get("id") == "ready"):
            self.close()
            self._drainer.join(timeout=5)  # what the failed start wrote, read to its end (it explains why)
            raise Lost("el entorno de corrección no arrancó: " + self.log_tail()[-800:])

    def _drain(self):
        for line in iter(self.proc.stdout.readline, b""):
            self._log.append(line.decode("utf-8", "replace"))
            del self._log[:-200]

    def log_tail(self) -> str:
        """The last lines the agent's processes wrote to their stdout/stderr."""
        return "".join(self._log)

    def _control_request(self, msg, fds=(), limit=30.0) -> dict:
        msg = dict(msg, id=secrets.token_hex(8))
        try:
            data = protocol.pack(msg)
            if fds:
                socket.send_fds(self._control, [data], list(fds))
            else:
                self._control.sendall(data)
            reply = _read_frame(self._control, time.monotonic() + limit)
        except (Lost, OSError) as exc:
            self.alive = False
            raise Lost(str(exc)) from None
        if not isinstance(reply, dict) or reply.get("id") != msg["id"] or reply.get("status") != "ok":
            self.alive = False
            raise Lost("el entorno de corrección no respondió como se esperaba")
        return reply

    def session(self) -> "Session":
        """A fresh holder for the next student, forked from the untouched anchor."""
        mine, theirs = socket.socketpair()
        try:
            self._control_request({"op": "alumno"}, fds=[theirs.fileno()])
        finally:
            theirs.close()
        self.students += 1
        return Session(mine, self)

    def end_student(self) -> dict:
        """End the current student's holder and its processes (its files stay); how it ended."""
        reply = self._control_request({"op": "terminar"}, limit=30.0)
        return {k: reply[k] for k in ("signal", "exit") if k in reply}

    def clean(self):
        """After a student: end everything it left in the sandbox, empty the scratch folder."""
        self._control_request({"op": "limpiar"}, limit=60.0)
        sandbox.empty_folder(self.scratch)

    def close(self):
        """End the sandbox and everything in it; remove the scratch folder."""
        self.alive = False
        _close_socket(self._control)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc)
        self.group.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)


class Session:
    """The channel to one student's holder inside a :class:`WarmSandbox`."""

    def __init__(self, sock, warm_sandbox):
        self._sock, self.warm_sandbox = sock, warm_sandbox
        self.alive, self.reason = True, ""
        try:
            ready = _read_frame(self._sock, time.monotonic() + 30)
        except Lost as exc:
            ready = str(exc)
        if not (isinstance(ready, dict) and ready.get("id") == "ready"):
            self.alive, self.reason = False, "el proceso del estudiante no arrancó"
            ready = {}
        # Written by the anchor's code in the new holder before it reads any request, so before any
        # student statement: trustworthy.
        self.barrier = ready.get("barrera") is True
        self.barrier_reason = bounded_text(ready.get("motivo"), 200) or "desconocido"

    def request(self, msg: dict, limit: float, margin: float = MARGIN) -> dict:
        """Send one request; return the reply that carries its id.

        Raises :class:`TimedOut` when no reply came within ``limit + margin`` seconds and
        :class:`Crashed` when the process ended or the channel carried anything else.
        """
        if not self.alive:
            raise Crashed(self.reason)
        msg = dict(msg, id=secrets.token_hex(8), timeout=limit)
        try:
            self._sock.sendall(protocol.pack(msg))
            reply = _read_frame(self._sock, time.monotonic() + limit + margin)
        except OSError as exc:
            self.alive, self.reason = False, str(exc)
            raise Crashed(self.reason) from None
        except Lost as exc:
            self.alive, self.reason = False, str(exc)
            raise
        if not isinstance(reply, dict) or reply.get("id") != msg["id"]:
            self.alive, self.reason = False, "la comunicación con el corrector fue alterada"
            raise Crashed(self.reason)
        return reply

    def close(self):
        """Close the channel (the holder exits); the warm sandbox cleans up afterwards."""
        self.alive = False
        _close_socket(self._sock)


def _close_socket(sock):
    try:
        sock.close()
    except OSError:
        pass


class _WarmSandboxes:
    """Idle warm sandboxes, by configuration, shared by the threads of this process."""

    def __init__(self):
        self._idle: Dict[tuple, List[WarmSandbox]] = {}
        self._all: List[WarmSandbox] = []
        self._warming: Dict[tuple, int] = {}
        self._lock = threading.Condition()
        import atexit
        atexit.register(self.close_all)

    @staticmethod
    def _key(limits, isolate):
        return (limits.memory_mb, limits.cpu_seconds, limits.disk_mb, limits.python, isolate)

    def prewarm(self, limits, isolate, count: int = 1) -> None:
        """Start sandboxes in the background until ``count`` are warm or warming (their torch
        imports overlap this process's own work)."""
        for _ in range(max(1, count)):
            if not self._one_more(limits, isolate, count):
                return

    def _one_more(self, limits, isolate, count) -> bool:
        key = self._key(limits, isolate)
        with self._lock:
            if len(self._idle.get(key, [])) + self._warming.get(key, 0) >= max(1, count):
                return False
            self._warming[key] = self._warming.get(key, 0) + 1

        def warm():
            try:
                warm_sandbox = WarmSandbox(limits, isolate)
            except Lost:
                warm_sandbox = None
            with self._lock:
                self._warming[key] -= 1
                if warm_sandbox is not None:
                    self._all.append(warm_sandbox)
                    self._idle.setdefault(key, []).append(warm_sandbox)
                self._lock.notify_all()

        threading.Thread(target=warm, daemon=True, name="tarea2-precalentar").start()
        return True

    def take(self, limits, isolate) -> WarmSandbox:
        key = self._key(limits, isolate)
        with self._lock:
            while True:
                idle = self._idle.setdefault(key, [])
                while idle:
                    warm_sandbox = idle.pop()
                    if warm_sandbox.alive and warm_sandbox.proc.poll() is None:
                        return warm_sandbox
                    warm_sandbox.close()
                if not self._warming.get(key):
                    break
                self._lock.wait(timeout=READY_TIMEOUT)
        warm_sandbox = WarmSandbox(limits, isolate)
        with self._lock:
            self._all.append(warm_sandbox)
        return warm_sandbox

    def give_back(self, warm_sandbox: WarmSandbox):
        key = self._key(warm_sandbox.limits, warm_sandbox.isolate)
        try:
            if warm_sandbox.alive:
                warm_sandbox.clean()
        except Lost:
            warm_sandbox.alive = False
        if not warm_sandbox.alive or warm_sandbox.proc.poll() is not None:
            warm_sandbox.close()
            return
        with self._lock:
            self._idle.setdefault(key, []).append(warm_sandbox)

    def close_all(self):
        with self._lock:
            everything, self._all, self._idle = list(self._all), [], {}
        for warm_sandbox in everything:
            warm_sandbox.close()


WARM_SANDBOXES = _WarmSandboxes()


def _kill_group(proc):
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


def bounded_text(value, limit=200000):
    """``value`` when it is a string of at most ``limit`` characters, else its text cut there ("" for none)."""
    return value if isinstance(value, str) and len(value) <= limit else (str(value)[:limit] if value else "")

