"""Where student code runs: a bubblewrap sandbox (or, without bubblewrap, a bare subprocess).

The sandbox sees a read-only system (``/usr`` and the few ``/etc`` files programs need), the
Python installation and the course's virtual environment, and nothing else of the machine:
not the course folder (grader, references, hidden tests, source notebook, gradebook,
grades.csv, feedback), nothing of the package but the agent's own files (:func:`agent_files`:
the ``sandboxed/`` zone, the boundary's codec among them) bound read-only at ``/run/tarea2``,
not other students, not ``/root`` or ``/home``.  Its only writable place is a fresh scratch
folder; it has no network, its own PID, IPC, UTS and ``/tmp``, no
capabilities, and, when the grader runs as root, it runs as an unprivileged user.  When the
grader goes, the sandbox goes (``--die-with-parent``), with every process a student started.

Without bubblewrap (macOS, a locked-down server) grading refuses to start unless the course sets
``c.TrustedExecute.require_sandbox = False``; then the same agent runs as a plain subprocess:
verdicts still come from outside it and the time and memory limits still apply, but files are
not isolated; :func:`no_isolation_warning` says so once, in Spanish, and every row of grades.csv.
"""
import dataclasses
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

SANDBOXED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sandboxed")
AGENT = os.path.join(SANDBOXED, "agent.py")
INSIDE_FOLDER = "/run/tarea2"  # the agent's files, read-only, side by side
INSIDE_AGENT = INSIDE_FOLDER + "/agent.py"
INSIDE_WORK = "/tmp/trabajo"
NOBODY = 65534
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "passwd", "group",
             "fonts", "ssl", "alternatives", "mime.types")

_warned = []


@dataclasses.dataclass
class Limits:
    """Per-student limits (nbgrader_config.py: ``c.TrustedExecute.<name>``)."""

    cell_timeout: float = 15.0     # wall seconds per notebook cell
    test_timeout: float = 10.0     # wall seconds per hidden test (all its calls)
    memory_mb: int = 3072          # address space each student process may add to what imports use
    cpu_seconds: int = 600         # CPU seconds per process (a student's cells, a test)
    timeout_after_loop: float = 3.0  # wall seconds per cell and per test once one has run out of time
    budget: float = 60.0           # seconds of sandbox time for everything one notebook causes
    disk_mb: int = 512             # the student's working folder (a tmpfs: RAM), besides /tmp and /dev/shm
    static_review: bool = True     # read the submitted source for machine-made derivatives (engine/review/)
    python: str = ""               # the interpreter the sandbox runs (empty: the course's virtual environment)
    output_bytes: int = 2000000    # content kept per output (c.SizeLimits.output_mb; tarea2_grader/engine/tamano.py)
    notebook_bytes: int = 20000000  # content kept for all of a notebook's outputs (c.SizeLimits.notebook_mb)


def bwrap_path():
    """The bubblewrap binary, or None."""
    return shutil.which("bwrap")


def bwrap_works():
    """Whether bubblewrap can create a sandbox here (it needs user namespaces or root)."""
    return bwrap_diagnosis() is None


def bwrap_diagnosis():
    """None when bubblewrap can create a sandbox here, else why not (Spanish, for the instructor)."""
    path = bwrap_path()
    if not path:
        return "bubblewrap (bwrap) no está instalado"
    try:
        run = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "bubblewrap ({}) no se pudo ejecutar ({})".format(path, exc)
    if run.returncode != 0:
        err = run.stderr.decode("utf-8", "replace").strip()[-300:]
        return "bubblewrap ({}) no logra crear un sandbox aquí (salió con código {}{})".format(
            path, run.returncode, ": " + err if err else "")
    return None


def no_isolation_warning():
    """The one Spanish warning printed when student files cannot be isolated."""
    if _warned:
        return None
    _warned.append(True)
    return ("aviso: bubblewrap (bwrap) no está disponible: cada notebook corre en un proceso aparte y los "
            "veredictos se calculan fuera de él, pero el código del estudiante puede leer y escribir archivos "
            "de este computador. Instálalo con `sudo apt-get install bubblewrap` (Debian/Ubuntu) o "
            "`sudo dnf install bubblewrap` (Fedora); `make grade` lo instala solo cuando corre como root.")


def agent_files():
    """The files bound into the sandbox: the modules of ``sandboxed/`` (the agent and its siblings,
    the boundary's codec among them), and nothing else of the package."""
    return sorted(name for name in os.listdir(SANDBOXED) if name.endswith(".py") and name != "__init__.py")


def _python_roots(python=None):
    """Folders the interpreter and the virtual environment live in (real paths: the sandbox binds
    nothing through a symbolic link), those of ``python`` included."""
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), os.path.realpath(sys.exec_prefix),
             os.path.realpath(sys.base_exec_prefix)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    # the executable's own folder and the one its symlink points to
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    if python:
        roots.update(_installation_of(python))
    inside_usr = [r for r in roots if r == "/usr" or r.startswith("/usr/")]
    others = sorted(r for r in roots if r not in inside_usr)
    # drop folders already inside another bound folder
    return [r for r in others if not any(r != o and r.startswith(o + os.sep) for o in others)]


def _installation_of(python):
    """Real folders an interpreter needs: its virtual environment (when it is one), the folder of the
    executable it links to, and that installation's prefix (its ``lib/python3.*``)."""
    folders = {os.path.dirname(python), os.path.dirname(os.path.realpath(python))}
    venv = os.path.dirname(os.path.dirname(python))
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        folders.add(os.path.realpath(venv))
    base = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    lib = os.path.join(base, "lib")
    if os.path.isdir(lib) and any(n.startswith("python3") for n in os.listdir(lib)):
        folders.add(base)
    return {os.path.realpath(f) for f in folders}


def interpreter(python=""):
    """The interpreter the sandbox runs: ``python`` when configured, else the virtual environment's.

    Its folder is resolved (a ``.venv`` reached through a symbolic link would not exist inside the
    sandbox) but not the file itself: a virtual environment's ``bin/python`` links to the base
    interpreter, and only the path inside the environment finds its ``pyvenv.cfg``.
    """
    if not python:
        python = os.path.join(sys.prefix, "bin", "python") if sys.prefix != sys.base_prefix else sys.executable
    python = os.path.abspath(python)
    return os.path.join(os.path.realpath(os.path.dirname(python)), os.path.basename(python))


TMP_MB = 128   # the sandbox's /tmp (RAM)
SHM_MB = 64    # its /dev/shm (RAM)


def _tmpfs(path, size_mb):
    """bwrap arguments for a world-writable (sticky) tmpfs of ``size_mb`` MiB at ``path``."""
    return ["--perms", "01777", "--size", str(int(size_mb) * 1024 * 1024), "--tmpfs", path]


def command(scratch, config_json, use_bwrap=True, disk_mb=512, python=""):
    """The argv that starts the agent for one student, and the folder it works in.

    In bubblewrap every writable place is a tmpfs of a fixed size (the working folder
    ``disk_mb``, ``/tmp`` and ``/dev/shm`` :data:`TMP_MB` / :data:`SHM_MB`): what a student writes
    is capped, and counted in the sandbox, not on the course's disk.  ``python``: the interpreter
    (:func:`interpreter`).
    """
    python = interpreter(python)
    if not use_bwrap:
        return [python, "-B", AGENT, config_json], scratch
    roots = _python_roots(python)
    args = [bwrap_path(), *_tmpfs("/tmp", TMP_MB)]
    for folder in _ancestors(roots + [INSIDE_AGENT]):
        args += ["--perms", "0755", "--dir", folder]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in ETC_FILES:
        args += ["--ro-bind-try", "/etc/" + name, "/etc/" + name]
    for root in roots:
        args += ["--ro-bind", root, root]
    args += ["--dev", "/dev", *_tmpfs("/dev/shm", SHM_MB), "--remount-ro", "/dev", "--proc", "/proc",
             *_tmpfs(INSIDE_WORK, disk_mb)]
    for name in agent_files():
        args += ["--ro-bind", os.path.join(SANDBOXED, name), INSIDE_FOLDER + "/" + name]
    args += ["--chdir", INSIDE_WORK, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
             "--unshare-cgroup-try", "--die-with-parent", "--new-session",
             "--clearenv", "--setenv", "PATH", os.path.dirname(python) + ":/usr/bin:/bin",
             "--setenv", "LANG", "C.UTF-8", "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "TMPDIR", INSIDE_WORK,
             "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    if os.geteuid() == 0:
        # Root outside: the student runs as an unprivileged user with no capabilities.
        os.chown(scratch, NOBODY, NOBODY)
        args += ["--", shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid={}".format(NOBODY),
                 "--regid={}".format(NOBODY), "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]
    else:
        args += ["--unshare-user", "--cap-drop", "ALL", "--"]
    args += [python, "-B", INSIDE_AGENT, config_json]
    return args, INSIDE_WORK


def _ancestors(paths):
    """Every parent folder of the bound paths, outermost first (bwrap would make them 0700)."""
    found = []
    for path in paths:
        parts = os.path.dirname(path).strip("/").split("/")
        for i in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:i])
            if folder not in found and folder not in ("/usr", "/tmp") and not folder.startswith("/usr/"):
                found.append(folder)
    return found


def empty_folder(folder):
    """Remove everything inside ``folder`` (what a student left in a scratch folder), never following
    a symbolic link; a folder the student made unwritable is given back first."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        _remove(os.path.join(folder, name))


def _remove(path):
    """Delete a file, link or folder tree."""
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


def new_scratch():
    """A fresh, private scratch folder for one student."""
    path = tempfile.mkdtemp(prefix="tarea2-alumno-")
    os.chmod(path, 0o700)
    return path


PIDS_CGROUP = "/sys/fs/cgroup/pids"
PIDS_MAX = 256  # tasks (processes and threads) of one sandbox: its anchor and the one student it grades


class TaskGroup:
    """A cgroup (v1 ``pids``) for one sandbox: every task in it counts against :data:`PIDS_MAX`, whatever
    the user, so one student's threads cannot use up the machine's or another sandbox's.

    Needs root and a writable ``pids`` hierarchy; elsewhere :attr:`path` is None and
    :attr:`reason` says why (the other limits still apply).
    """

    def __init__(self, name):
        self.path, self.reason = None, ""
        base = os.path.join(PIDS_CGROUP, "tarea2")
        if os.geteuid() != 0 or not os.path.isdir(PIDS_CGROUP):
            self.reason = "sin cgroups (se necesita root y la jerarquía pids de cgroup v1)"
            return
        try:
            os.makedirs(base, exist_ok=True)
            path = os.path.join(base, name)
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "pids.max"), "w") as fh:
                fh.write(str(PIDS_MAX))
            self.path = path
        except OSError as exc:
            self.reason = "no se pudo crear el cgroup pids ({})".format(exc.strerror or exc)

    def wrap(self, argv):
        """``argv`` started inside this cgroup (the shell puts itself in, then becomes argv)."""
        if self.path is None:
            return argv
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path] + list(argv)

    def remove(self):
        """Remove the cgroup (once its tasks are gone)."""
        if self.path is not None:
            try:
                os.rmdir(self.path)
            except OSError:
                pass

