"""Limits, reaping and wiping inside the sandbox: what the anchor does around each student.

Part of the sandboxed agent (:mod:`agent`), standard library only: the anchor caps its process
tree (:func:`set_limits`, :func:`prctl`), ends a student's holder and every process it left
(:func:`end_holder`), and after the student empties the scratch folders and the SysV IPC objects
(:func:`clean_up`), so the next student starts from nothing of the previous one's.
"""
import os
import signal
import sys
import time


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


def prctl(option, value):
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


