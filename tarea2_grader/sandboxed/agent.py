"""The untrusted side of grading: runs one student's notebook inside the sandbox.

This file is executed as a script inside the sandbox (``python agent.py``); of ``tarea2_grader``
(which the sandbox cannot see) it imports only its siblings, bound beside it at ``/run/tarea2/``:
the boundary's codec (:mod:`protocol`), the shell that runs cells (:mod:`kernel`) and the limits
and clean-up around each student (:mod:`cleanup`); besides them, only the standard library,
IPython and torch.  It decides nothing: it runs the student's cells and the probes that the
trusted supervisor (:mod:`tarea2_grader.engine.session`, driven by
:mod:`tarea2_grader.engine.runner`) sends, and reports what happened.
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

Wire format and every message: :mod:`protocol` (frames of a 4-byte big-endian length and UTF-8
JSON, on sockets shared with the supervisor, whose numbers come in the configuration).
"""
import io
import json
import os
import sys

if __package__:  # imported as tarea2_grader.sandboxed.agent (the test suite)
    from tarea2_grader.sandboxed import cleanup, kernel, protocol
else:  # inside the sandbox: the agent's files are bound side by side at /run/tarea2
    import cleanup
    import kernel
    import protocol
    for _name in ("cleanup", "kernel", "protocol"):  # a student's own module of one of these names
        del sys.modules[_name]                        # is theirs to import (this one keeps its refs)

PROTO_FD = 3  # replaced by the "fd" of the agent's configuration


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
    inputs = protocol.decode(msg["inputs"])
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
    kernel.Cell.max_output = int(msg.get("max_output") or kernel.Cell.max_output)
    outputs = kernel.run_cell(shell, msg["source"])
    kernel.reset_process_signals()
    kernel.shrink_outputs(outputs, kernel.Cell.max_output, int(msg.get("max_cell") or protocol.MAX_FRAME // 4))
    memory = any(o.get("output_type") == "error" and o.get("ename") == "MemoryError" for o in outputs)
    reply = {"id": msg["id"], "status": "ok", "memory": memory}
    if not msg.get("replay"):
        reply["outputs"] = outputs
    try:
        data = protocol.pack(reply)
    except Exception:  # outputs that cannot be serialized
        data = protocol.pack(dict(reply, outputs=[{"output_type": "error", "ename": "ValueError",
                                                   "evalue": "salida no serializable", "traceback": []}]))
    protocol.write_all(PROTO_FD, data)


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
        result = {"status": "ok", "result": protocol.encode(run_probe(shell, msg))}
    except BaseException as exc:
        kind = "memory" if _is_memory_error(exc) else "error"
        result = {"status": kind, "error": "{}: {}".format(type(exc).__name__, str(exc)[:300])}
    finally:
        sys.stdout, sys.stderr = saved
        kernel.reset_process_signals()
    result["id"] = msg["id"]
    try:
        protocol.write_frame(PROTO_FD, result)
    except Exception as exc:
        protocol.write_frame(PROTO_FD, {"id": msg["id"], "status": "error", "error": "respuesta no serializable ({})".format(exc)})


def serve(shell):
    """The holder's loop: one request at a time from the supervisor."""
    while True:
        msg = protocol.read_frame(PROTO_FD)
        if msg is None or msg.get("op") == "fin":
            os._exit(0)
        if msg["op"] == "cell":
            handle_cell(shell, msg)
        elif msg["op"] == "test":
            handle_test(shell, msg)
        else:
            protocol.write_frame(PROTO_FD, {"id": msg.get("id"), "status": "error", "error": "operación desconocida"})


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
    shell = kernel.make_shell(os.path.join(os.environ.get("TMPDIR", workdir), ".ipython-agente"))
    cleanup.set_limits(config.get("memory_mb"), config.get("cpu_seconds"))
    cleanup.prctl(4, 0)  # PR_SET_DUMPABLE: no ptrace, no /proc/<pid>/mem from student processes
    if not config.get("isolated"):
        cleanup.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans stay below us, so they can be ended
    _silence_stdio()
    protocol.write_frame(control.fileno(), {"id": "ready", "status": "ok", "torch": torch.__version__})
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
                protocol.write_frame(PROTO_FD, {"id": "ready", "status": "ok", "barrera": barrier, "motivo": reason})
                serve(shell)
                os._exit(0)
            for fd in fds:
                os.close(fd)
            protocol.write_frame(control.fileno(), {"id": msg.get("id"), "status": "ok"})
        elif msg.get("op") == "terminar":
            death = cleanup.end_holder(holder, config)
            holder = None
            protocol.write_frame(control.fileno(), dict({"id": msg.get("id"), "status": "ok"}, **death))
        elif msg.get("op") == "limpiar":
            left = cleanup.clean_up(config)
            protocol.write_frame(control.fileno(), {"id": msg.get("id"), "status": "ok" if not left else "error",
                                           "left": left})
        else:
            for fd in fds:
                os.close(fd)
            protocol.write_frame(control.fileno(), {"id": msg.get("id"), "status": "error"})


def _read_control(control):
    """One control frame, and the file descriptors that came with it."""
    import socket

    try:
        data, fds, _flags, _addr = socket.recv_fds(control, 1 << 16, 4)
    except OSError:
        return None, []
    if len(data) < 4:
        return None, fds
    n = protocol.length_of(data[:4])
    body = data[4:]
    while len(body) < n:
        chunk = control.recv(n - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return protocol.unpack_body(body), fds


if __name__ == "__main__":
    main()
