"""The untrusted side of grading: runs one student's notebook inside the sandbox.

This file is executed as a script inside the sandbox (``python agent.py``); it imports
nothing from ``tarea2_grader`` (which the sandbox cannot see), only the standard library,
IPython and torch.  It decides nothing: it runs the student's cells and the probes that
the trusted supervisor (:mod:`tarea2_grader.engine.runner`) sends, and reports what happened.
Student code runs in this process tree, so everything here may be tampered with; the
supervisor treats every reply as untrusted data.

Processes (all inside the sandbox's own PID namespace):

* the *anchor* (the script's first process) imports torch and IPython once; for each student
  the supervisor sends, it forks a fresh *holder* from that untouched state, and after the
  student it ends every process the student left and empties the scratch folders, so one
  sandbox grades many students one after another without paying the imports again;
* the *holder* runs the student's cells, one after another, in its own namespace.  When a
  cell dies (``os._exit``, a signal, the memory cap) or runs past its time, the supervisor has
  the anchor end the holder and everything it started (``terminar``), then a new holder runs
  again the cells that had finished: grading carries on with the state from before that cell,
  so a crash costs only that cell.  (Forking a *trial* per cell gave the same guarantee at
  about 35 ms per cell, more than most cells take.);
* the holder cannot create processes: right after it is forked, before its first request, the
  anchor's code installs a seccomp filter (:func:`install_process_barrier`, inherited and
  irremovable) that denies ``fork``, ``vfork``, ``execve`` and every ``clone`` but a thread's.
  So the student never has another process: not while a cell runs, not while a test runs;
* each hidden test runs in the holder itself: the *probe* code and the grader's inputs arrive,
  the probe calls the student's functions and the holder sends back what they returned.  Helper
  code a test lends is put back out of the student's namespace afterwards, and a test only ever
  receives helpers of parts graded before it, so what stays reachable grades nothing later.

Wire format: frames of a 4-byte big-endian length and UTF-8 JSON, on a socket shared with the
supervisor (its number comes in the configuration).  Tensors travel as ``{"__tensor__": {"dtype", "shape", "data"}}``.
"""
import base64
import io
import json
import os
import signal
import struct
import sys
import time

PROTO_FD = 3  # replaced by the "fd" of the agent's configuration
MAX_FRAME = 64 * 1024 * 1024

# --------------------------------------------------------------------------- frames


def write_all(fd, data):
    """Write every byte of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_frame(fd, obj):
    """Write one frame (length + JSON) to ``fd``."""
    data = json.dumps(obj, allow_nan=True).encode("utf-8")
    write_all(fd, struct.pack(">I", len(data)) + data)


def _read_exact(fd, n):
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    """Read one frame from ``fd``; None at end of file."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    if n > MAX_FRAME:
        raise ValueError("frame too large")
    data = _read_exact(fd, n)
    return None if data is None else json.loads(data.decode("utf-8"))


# --------------------------------------------------------------------------- values


def encode(value, depth=0):
    """A JSON-able description of ``value``: tensors, numbers, strings, lists, dicts."""
    import torch

    if depth > 20:
        return {"__type__": "demasiado anidado"}
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.layout != torch.strided or t.is_complex() or t.dtype not in _encodable():
            return {"__type__": "Tensor de tipo {}".format(str(t.dtype).replace("torch.", ""))}
        t = t.to("cpu")
        flat = t.reshape(-1).tolist()
        return {"__tensor__": {"dtype": str(t.dtype).replace("torch.", ""),
                               "shape": list(t.shape), "data": flat}}
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 62:
            return float(value)
        return value
    if isinstance(value, (list, tuple)):
        items = [encode(v, depth + 1) for v in value]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: encode(v, depth + 1) for k, v in value.items()}
    return {"__type__": type(value).__name__}


def decode(value):
    """Inverse of :func:`encode` for the grader's inputs (trusted data)."""
    import torch

    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            spec = value["__tensor__"]
            dtype = getattr(torch, spec["dtype"])
            return torch.tensor(spec["data"], dtype=dtype).reshape(spec["shape"])
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    return value


def _encodable():
    import torch

    return (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
            torch.int16, torch.int8, torch.uint8, torch.bool)


# --------------------------------------------------------------------------- running cells


def _plain(text, limit=200000):
    return text if len(text) <= limit else text[:limit] + "\n[... salida recortada ...]\n"


# A string left out for its size; the supervisor (tarea2_grader.engine.tamano) reads the size and shows a note.
OMITTED_PREFIX = "\x00tarea2-omitido:"


def _size(value, depth=0):
    """Characters of every string inside an output (what the supervisor measures, near enough)."""
    if isinstance(value, str):
        digits = value[len(OMITTED_PREFIX):] if value.startswith(OMITTED_PREFIX) else ""
        return int(digits) if digits.isdigit() else len(value)
    if depth > 20:
        return 0
    if isinstance(value, dict):
        return sum(_size(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size(v, depth + 1) for v in value)
    return 0


def shrink_outputs(outputs, max_output, max_cell):
    """Replace the outputs over ``max_output`` characters, and those past ``max_cell`` for the cell,
    by a stand-in that records their size: the reply stays small and the supervisor writes the note."""
    total = 0
    for i, out in enumerate(outputs):
        size = _size(out)
        if size > max_output or total + size > max_cell:
            if out.get("output_type") == "stream" and total + max_output <= max_cell:
                text = out.get("text", "")[:max_output]
                outputs[i] = {"output_type": "stream", "name": out.get("name"), "text": text,
                              "resto": OMITTED_PREFIX + str(max(0, size - len(text)))}
            else:
                outputs[i] = {"output_type": "display_data", "metadata": {},
                              "data": {"text/plain": OMITTED_PREFIX + str(size)}}
        total += _size(outputs[i])
    return outputs


class _Stream(io.TextIOBase):
    """sys.stdout / sys.stderr stand-in that appends stream outputs to the cell's record."""

    def __init__(self, name, outputs):
        self.name, self._outputs = name, outputs

    def writable(self):
        return True

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def write(self, s):
        if not isinstance(s, str):
            s = str(s)
        if not s:
            return 0
        last = self._outputs[-1] if self._outputs else None
        if last is not None and last.get("output_type") == "stream" and last.get("name") == self.name \
                and "parts" in last:
            if last["kept"] <= Cell.max_output:  # past it, only the size is kept
                last["parts"].append(s)
                last["kept"] += len(s)
            else:
                last["dropped"] += len(s)
        else:
            self._outputs.append({"output_type": "stream", "name": self.name, "parts": [s], "kept": len(s),
                                  "dropped": 0})
        return len(s)

    @staticmethod
    def finish(outputs):
        """Join each stream's pieces into its text (a string grown piece by piece costs quadratic time)."""
        for out in outputs:
            if isinstance(out, dict) and isinstance(out.get("parts"), list):
                out["text"] = "".join(str(p) for p in out.pop("parts"))
                out.pop("kept", None)
                dropped = out.pop("dropped", 0)
                if isinstance(dropped, int) and dropped > 0:
                    out["resto"] = OMITTED_PREFIX + str(dropped)

    def flush(self):
        pass


def _jsonable_bundle(data):
    out = {}
    for mime, value in (data or {}).items():
        if not isinstance(mime, str):
            continue
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        if isinstance(value, (str, list, dict, int, float, bool)) or value is None:
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue
            out[mime] = value
    return out


class Cell:
    """Outputs of the cell being run (nbformat-shaped dicts)."""

    outputs = []
    max_output = 2 * 1000 * 1000  # characters one stream keeps (the request's max_output)


def make_shell(workdir):
    """An IPython shell whose displays, results and tracebacks land in ``Cell.outputs``."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
            Cell.outputs.append({"output_type": "display_data", "data": _jsonable_bundle(data),
                                 "metadata": _jsonable_bundle(metadata or {})})

        def clear_output(self, wait=False):
            del Cell.outputs[:]

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            Cell.outputs.append({"output_type": "execute_result", "execution_count": self.prompt_count,
                                 "data": _jsonable_bundle(format_dict), "metadata": {}})

        def finish_displayhook(self):
            pass

    class Shell(InteractiveShell):
        def system(self, cmd):
            """``!cmd`` and ``%pip``: grading runs no other process (a Colab ``!pip install`` is harmless)."""
            print("(durante la corrección no se ejecutan comandos del sistema: !{})".format(str(cmd)[:200]))

        system_piped = system_raw = system

        def getoutput(self, cmd, split=True, depth=0):
            self.system(cmd)
            return []

        def enable_gui(self, gui=None):
            """``%matplotlib inline`` (Colab's default) needs no event loop, and grading opens no windows."""

        def _showtraceback(self, etype, evalue, stb):
            Cell.outputs.append({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                                 "evalue": _plain(str(evalue), 4000),
                                 "traceback": [_plain(self.InteractiveTB.stb2text(stb), 20000)]})

        def showsyntaxerror(self, filename=None, running_compiled_code=False):
            etype, value, _tb = self._get_exc_info()
            Cell.outputs.append({"output_type": "error", "ename": etype.__name__,
                                 "evalue": _plain(str(value), 4000),
                                 "traceback": ["{}: {}".format(etype.__name__, value)]})

    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    cfg.HistoryManager.enabled = False
    cfg.InteractiveShell.colors = "nocolor"
    cfg.InteractiveShell.xmode = "Plain"
    cfg.InteractiveShell.autocall = 0
    # instance(): display(), plt.show() and get_ipython() find this shell, not a new default one
    shell = Shell.instance(config=cfg, ipython_dir=os.path.join(workdir, ".ipython"),
                           display_pub_class=Publisher, displayhook_class=Hook)
    try:
        shell.enable_matplotlib("inline")
    except Exception:  # matplotlib is optional for the student's code
        pass
    return shell


def reset_process_signals():
    """Undo what a finished cell may have armed in this process (alarms, handlers)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    signal.setitimer(signal.ITIMER_PROF, 0)
    for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGVTALRM, signal.SIGPROF):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    sys.settrace(None)
    sys.setprofile(None)


def run_cell(shell, source):
    """Run one cell in the shell; return its outputs."""
    Cell.outputs = outputs = []
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream("stdout", outputs), _Stream("stderr", outputs)
    try:
        shell.run_cell(source, store_history=True, silent=False)
    except BaseException as exc:  # IPython machinery itself failed
        outputs.append({"output_type": "error", "ename": type(exc).__name__, "evalue": str(exc)[:4000],
                        "traceback": []})
    finally:
        sys.stdout, sys.stderr = saved
        _Stream.finish(outputs)
    return outputs


# --------------------------------------------------------------------------- probes (hidden tests)


def run_probe(shell, msg):
    """Inside the probe process: run the requested probe on the student's namespace."""
    probe_ns = {"__name__": "sonda"}
    exec(compile(msg["probe_source"], "<sonda>", "exec"), probe_ns)
    helpers = {}
    if msg.get("helpers_source"):
        helper_ns = {"__name__": "ayudas"}
        exec(compile(msg["helpers_source"], "<ayudas>", "exec"), helper_ns)
        helpers = helper_ns
    inputs = decode(msg["inputs"])
    probe = probe_ns[msg["probe"]]
    return probe(shell.user_ns, inputs, helpers)


# --------------------------------------------------------------------------- the process barrier

# Linux syscall numbers, by machine: (audit arch, clone, clone3, denied, aimed at a process).
# Denied: fork, vfork, execve, execveat, ptrace.  Aimed at a process (first argument a pid, allowed
# only for the caller itself): kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo,
# pidfd_send_signal, pidfd_open.
_SYSCALLS = {
    "x86_64": (0xC000003E, 56, 435, (57, 58, 59, 322, 101), (62, 200, 234, 129, 297, 424, 434)),
    "aarch64": (0xC00000B7, 220, 435, (221, 281, 117), (129, 130, 131, 138, 240, 424, 434)),
}
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38


def _barrier_program(machine, own_pid):
    """The classic-BPF seccomp program of a holder whose pid is ``own_pid``, as (code, jt, jf, k) tuples.

    Threads stay allowed (``clone`` with ``CLONE_THREAD``); ``clone3`` answers ENOSYS so that the C
    library falls back to ``clone``, whose flags a classic filter can read; ``fork``, ``vfork``,
    ``execve``, ``execveat``, ``ptrace`` and every other ``clone`` fail with EPERM, and so does a
    signal (or a pidfd) aimed at any process but the holder itself: the anchor and the sandbox's
    init cannot be signalled.  A system call made with another architecture's numbering (x32,
    32-bit) fails too.
    """
    arch, clone, clone3, denied, aimed = _SYSCALLS[machine]
    ld_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    body = [("ld", 4), ("jeq", arch, None, "deny"), ("ld", 0)]
    if machine == "x86_64":
        body.append(("jge", _X32_BIT, "deny", None))
    body += [("jeq", nr, "deny", None) for nr in denied]
    body += [("jeq", nr, "self", None) for nr in aimed]
    body += [("jeq", clone3, "enosys", None), ("jeq", clone, None, "allow"),
             ("ld", 16),  # the low 32 bits of clone's first argument (flags), little-endian
             ("jset", _CLONE_THREAD, "allow", "deny"),
             ("self",), ("ld", 16), ("jeq", own_pid, None, "deny"),  # the first argument is our pid
             ("ld", 20), ("jeq", 0, "allow", "deny"),                # ... and not a negative number
             ("allow",), ("deny",), ("enosys",)]
    labels, real = {}, []  # "self" marks a place; "allow", "deny", "enosys" are also return instructions
    for op in body:
        if op[0] in ("allow", "deny", "enosys", "self"):
            labels[op[0]] = len(real)
        if op[0] != "self":
            real.append(op)
    codes = {"jeq": jeq, "jge": jge, "jset": jset}
    program = []
    for i, op in enumerate(real):
        def offset(target):
            return 0 if target is None else labels[target] - i - 1
        if op[0] == "ld":
            program.append((ld_abs, 0, 0, op[1]))
        elif op[0] in codes:
            program.append((codes[op[0]], offset(op[2]), offset(op[3]), op[1]))
        else:
            k = {"allow": _RET_ALLOW, "deny": _RET_ERRNO | _EPERM, "enosys": _RET_ERRNO | _ENOSYS}[op[0]]
            program.append((ret, 0, 0, k))
    return program


def install_process_barrier():
    """Forbid this process and everything it runs from ever creating another process.

    Called by the anchor's code in a freshly forked holder, before the holder reads its first
    request, so before any student statement: the filter is inherited and cannot be removed, and
    the student's code (cells, and the hidden tests' calls, which run in this same process) has no
    other process to delegate to.  Returns ``(True, "")`` or ``(False, reason)`` where the machine
    does not allow it (not Linux, an unknown architecture, seccomp disabled).
    """
    import ctypes
    import platform

    machine = platform.machine()
    if not sys.platform.startswith("linux") or machine not in _SYSCALLS:
        return False, "seccomp no disponible en {} {}".format(sys.platform, machine)

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    rows = _barrier_program(machine, os.getpid())
    filters = (SockFilter * len(rows))(*[SockFilter(*row) for row in rows])
    prog = SockFprog(len(rows), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, None, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False, "prctl(NO_NEW_PRIVS) falló (errno {})".format(ctypes.get_errno())
    if libc.prctl(22, 2, ctypes.cast(ctypes.pointer(prog), ctypes.c_void_p), 0, 0) != 0:  # SECCOMP_MODE_FILTER
        return False, "seccomp no disponible (errno {})".format(ctypes.get_errno())
    return True, ""


def force_single_process_loaders(torch):
    """A ``DataLoader`` asked for worker processes loads in the calling process instead: grading
    runs without other processes, and a student's ``num_workers=2`` must not cost points."""
    loader = torch.utils.data.DataLoader
    original = loader.__init__

    def __init__(self, *args, **kwargs):
        workers = args[5] if len(args) > 5 else kwargs.get("num_workers")  # DataLoader's 6th parameter
        if workers:
            if len(args) > 5:
                args = args[:5] + (0,) + args[6:]
            else:
                kwargs["num_workers"] = 0
            kwargs.pop("prefetch_factor", None)
            kwargs.pop("persistent_workers", None)
        original(self, *args, **kwargs)

    __init__.__wrapped__ = original
    loader.__init__ = __init__


# --------------------------------------------------------------------------- the holder loop


def _silence_stdio():
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)


def _wait_child(pid):
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return {"exit": None}
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _is_memory_error(exc):
    text = "{}: {}".format(type(exc).__name__, exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "not enough memory" in text


def handle_cell(shell, msg):
    """Run the cell here, in the holder, and reply with its outputs.

    No fork per cell (a fork of a process with torch loaded costs about 35 ms here, more than
    most cells): when a cell runs past its limit or ends this process, the supervisor ends the
    holder and rebuilds the state before that cell in a fresh one, by running the cells that
    had succeeded again (``replay``: no outputs sent back).
    """
    Cell.max_output = int(msg.get("max_output") or Cell.max_output)
    outputs = run_cell(shell, msg["source"])
    reset_process_signals()
    shrink_outputs(outputs, Cell.max_output, int(msg.get("max_cell") or MAX_FRAME // 4))
    memory = any(o.get("output_type") == "error" and o.get("ename") == "MemoryError" for o in outputs)
    reply = {"id": msg["id"], "status": "ok", "memory": memory}
    if not msg.get("replay"):
        reply["outputs"] = outputs
    try:
        data = json.dumps(reply, allow_nan=True).encode("utf-8")
    except Exception:  # outputs that cannot be serialized
        data = json.dumps(dict(reply, outputs=[{"output_type": "error", "ename": "ValueError",
                                                 "evalue": "salida no serializable", "traceback": []}])).encode("utf-8")
    write_all(PROTO_FD, struct.pack(">I", len(data)) + data)


def handle_test(shell, msg):
    """Run one hidden test's probe here, in the holder, and reply with what it found.

    The holder has no other process and cannot create one (:func:`install_process_barrier`), so
    the probe runs on the student's own state with nothing else of the student's running.  A probe
    that loops, or ends this process, is handled like such a cell: the supervisor ends the holder
    and rebuilds the state in a new one.
    """
    saved = sys.stdout, sys.stderr
    sink = io.StringIO()
    sys.stdout = sys.stderr = sink  # a test shows nothing: its verdict is decided outside
    try:
        result = {"status": "ok", "result": encode(run_probe(shell, msg))}
    except BaseException as exc:
        kind = "memory" if _is_memory_error(exc) else "error"
        result = {"status": kind, "error": "{}: {}".format(type(exc).__name__, str(exc)[:300])}
    finally:
        sys.stdout, sys.stderr = saved
        reset_process_signals()
    result["id"] = msg["id"]
    try:
        write_frame(PROTO_FD, result)
    except Exception as exc:
        write_frame(PROTO_FD, {"id": msg["id"], "status": "error", "error": "respuesta no serializable ({})".format(exc)})


def serve(shell):
    """The holder's loop: one request at a time from the supervisor."""
    while True:
        msg = read_frame(PROTO_FD)
        if msg is None or msg.get("op") == "fin":
            os._exit(0)
        if msg["op"] == "cell":
            handle_cell(shell, msg)
        elif msg["op"] == "test":
            handle_test(shell, msg)
        else:
            write_frame(PROTO_FD, {"id": msg.get("id"), "status": "error", "error": "operación desconocida"})


def set_limits(memory_mb, cpu_seconds):
    """Cap this process tree: address space above what the imports already use, CPU seconds per process."""
    import resource

    if memory_mb:
        size = 0
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmSize:"):
                        size = int(line.split()[1]) * 1024
            limit = size + int(memory_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (OSError, ValueError):  # no /proc (macOS): the wall-clock limits still apply
            pass
    if cpu_seconds:
        resource.setrlimit(resource.RLIMIT_CPU, (int(cpu_seconds), int(cpu_seconds)))


def _prctl(option, value):
    try:
        import ctypes
        ctypes.CDLL(None).prctl(option, value, 0, 0, 0)
    except Exception:
        pass


def _descendants():
    """PIDs of every process below this one (read from /proc; psutil where there is none)."""
    if not os.path.isdir("/proc"):
        try:
            import psutil
            return {p.pid for p in psutil.Process().children(recursive=True)}
        except Exception:
            return set()
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/{}/stat".format(name)) as fh:
                    stat = fh.read()
                parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    me, found, changed = os.getpid(), set(), True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if pid not in found and (ppid == me or ppid in found):
                found.add(pid)
                changed = True
    return found


def _others(isolated):
    """Processes to end after a student: in the sandbox, all but PID 1 and us; else our descendants."""
    if not isolated:
        return _descendants()
    me = os.getpid()
    return {int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) not in (1, me)}


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _wipe_around(folder, protected):
    """Empty ``folder`` but keep the (read-only, bound) paths in ``protected`` and their parents:
    a course checked out under /tmp has its venv mounted there inside the sandbox."""
    inside = [p for p in protected if p.startswith(folder.rstrip("/") + "/")]
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        if path in inside:
            continue
        if any(p.startswith(path + "/") for p in inside) and not os.path.islink(path):
            _wipe_around(path, inside)
        else:
            _remove(path)


def _remove(path):
    """Delete a file, link or folder tree; a folder the student made unwritable is given back
    first, never following a symlink."""
    import shutil

    def fix(func, target, _exc):
        try:
            for t in (os.path.dirname(target), target):
                if not os.path.islink(t):
                    os.chmod(t, 0o700)
            func(target)
        except OSError:
            pass

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=fix)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _wipe(folder, keep=()):
    """Remove everything inside ``folder`` except the names in ``keep``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name not in keep:
            _remove(os.path.join(folder, name))


def _end_others(isolated):
    """SIGKILL every process but the anchor (and the sandbox's init) until none is left."""
    for _ in range(50):
        victims = _others(isolated)
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
        _reap()


def end_holder(holder, config):
    """End the student's holder and every process it started (not its files); return how the
    holder ended: ``{"signal": n}`` or ``{"exit": n}``.  A holder that died on its own keeps its
    own status; one still running (a cell past its limit) ends with SIGKILL."""
    death = {"exit": None}
    if holder:
        _kill(holder)
        death = _wait_child(holder)
    _end_others(config.get("isolated", False))
    return death


def clean_up(config):
    """After a student: end every process it left, empty its folders. Returns what was left."""
    isolated = config.get("isolated", False)
    _end_others(isolated)
    workdir = config["workdir"]
    _wipe(workdir)
    left = []
    if isolated:
        protected = {workdir, os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
                     os.path.dirname(os.path.abspath(__file__))}
        _wipe_around("/tmp", protected)
        _wipe("/dev/shm")
        left = _remove_sysv_ipc()  # the sandbox's own IPC namespace: only this student's objects
    os.chdir(workdir)
    return sorted(_others(isolated)) + left


def _sysv_ipc_ids():
    """{kind: [ids]} of the SysV shared memory, message queues and semaphores that exist."""
    found = {}
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        found[kind] = [int(row.split()[1]) for row in rows if len(row.split()) > 1]
    return found


def _remove_sysv_ipc():
    """Remove every SysV IPC object (a student could leave data in them for the next one)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ipc_rmid = 0
    for kind, ids in _sysv_ipc_ids().items():
        for ident in ids:
            if kind == "shm":
                libc.shmctl(ident, ipc_rmid, None)
            elif kind == "msg":
                libc.msgctl(ident, ipc_rmid, None)
            else:
                libc.semctl(ident, 0, ipc_rmid)
    return ["{}:{}".format(kind, i) for kind, ids in _sysv_ipc_ids().items() for i in ids]


def _set_environment(workdir):
    os.chdir(workdir)
    os.environ.update({"NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg", "HOME": workdir,
                       "MPLCONFIGDIR": os.path.join(workdir, ".matplotlib")})
    sys.path.insert(0, workdir)


def warm_up(torch):
    """Pay here, once, what torch does on first use: the first ``autograd.grad`` with
    ``grad_outputs`` imports ``torch.fx``'s symbolic shapes and sympy (about 0.6 s), the later
    calls take microseconds.  Every holder forks from this state, so no student, and no holder
    rebuilt after a crash or a loop, pays it again."""
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    y = torch.sigmoid(x * x)
    torch.autograd.grad(y, (x,), grad_outputs=torch.ones_like(y))
    (torch.tanh(x) * x).sum().backward()
    torch.nn.functional.cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]))
    import torch.utils.data  # noqa: F401  (Part 4's Dataset and DataLoader)


def main():
    """The anchor: import once, then fork a fresh holder for each student the supervisor sends.

    The control socket carries requests ``alumno`` (with the student's own socket attached: fork
    that student's holder), ``terminar`` (end the holder and its processes, keep its files: a cell
    ran past its limit or killed it, and the supervisor rebuilds the state in a new holder) and
    ``limpiar`` (end that student's processes, empty the scratch folder).  The anchor never runs
    student code and is not dumpable, so no student can inspect or alter it; each student starts
    from the same untouched, already imported state.
    """
    import socket

    config = json.loads(sys.argv[1])
    control = socket.socket(fileno=int(config["fd"]))
    workdir = config["workdir"]
    _set_environment(workdir)
    import torch  # noqa: F401  (paid once, before any fork)

    torch.set_num_threads(1)
    warm_up(torch)
    force_single_process_loaders(torch)
    shell = make_shell(os.path.join(os.environ.get("TMPDIR", workdir), ".ipython-agente"))
    set_limits(config.get("memory_mb"), config.get("cpu_seconds"))
    _prctl(4, 0)  # PR_SET_DUMPABLE: no ptrace, no /proc/<pid>/mem from student processes
    if not config.get("isolated"):
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans stay below us, so they can be ended
    _silence_stdio()
    write_frame(control.fileno(), {"id": "ready", "status": "ok", "torch": torch.__version__})
    holder = None
    while True:
        msg, fds = _read_control(control)
        if msg is None or msg.get("op") == "fin":
            os._exit(0)
        if msg.get("op") == "alumno" and fds:
            pid = holder = os.fork()
            if pid == 0:
                global PROTO_FD
                control.close()
                for extra in fds[1:]:
                    os.close(extra)
                PROTO_FD = fds[0]
                barrier, reason = install_process_barrier()  # before any student statement
                write_frame(PROTO_FD, {"id": "ready", "status": "ok", "barrera": barrier, "motivo": reason})
                serve(shell)
                os._exit(0)
            for fd in fds:
                os.close(fd)
            write_frame(control.fileno(), {"id": msg.get("id"), "status": "ok"})
        elif msg.get("op") == "terminar":
            death = end_holder(holder, config)
            holder = None
            write_frame(control.fileno(), dict({"id": msg.get("id"), "status": "ok"}, **death))
        elif msg.get("op") == "limpiar":
            left = clean_up(config)
            write_frame(control.fileno(), {"id": msg.get("id"), "status": "ok" if not left else "error",
                                           "left": left})
        else:
            for fd in fds:
                os.close(fd)
            write_frame(control.fileno(), {"id": msg.get("id"), "status": "error"})


def _read_control(control):
    """One control frame, and the file descriptors that came with it."""
    import socket

    try:
        data, fds, _flags, _addr = socket.recv_fds(control, 1 << 16, 4)
    except OSError:
        return None, []
    if len(data) < 4:
        return None, fds
    (n,) = struct.unpack(">I", data[:4])
    body = data[4:]
    while len(body) < n:
        chunk = control.recv(n - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body.decode("utf-8")), fds


if __name__ == "__main__":
    main()
