"""A graded copy of the course and a Jupyter server with formgrader, for browser tests and docs.

``graded_course(root, notebooks)`` copies the course (source/ and its config) into ``root``,
generates the release, submits the given notebooks and grades them with ``pipeline.grade``.

A Jupyter server with formgrader on the loopback:

``jupyter_server(root, token)`` starts ``jupyter server`` from a course root (so nbgrader reads
that course's ``nbgrader_config.py``, as when an instructor runs ``make lab``), waits until it
answers and kills its whole process tree on exit.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat

from tarea2_grader.commands import pipeline
from tarea2_grader.integration.course import Course
from tarea2_grader.integration.nbgrader_run import kill_tree, nbgrader_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll ``url`` until it answers 200; raise if the server died or never answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("jupyter server terminó con código {}".format(proc.returncode))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("jupyter server no respondió en {:g} s".format(timeout))


@contextlib.contextmanager
def jupyter_server(root: str, token: str, log_path: str, timeout: float = 90):
    """Run ``jupyter server`` in ``root`` on 127.0.0.1; yield its base URL (no trailing slash)."""
    port = free_port()
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port={}".format(port), "--ServerApp.port_retries=0",
           "--IdentityProvider.token={}".format(token), "--ServerApp.root_dir={}".format(root)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=nbgrader_env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base = "http://127.0.0.1:{}".format(port)
    try:
        _wait_until_up("{}/api/status?token={}".format(base, token), proc, timeout)
        yield base
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=10)


def submission_id(root: str, course_id: str, student: str, assignment: str = "tarea2",
                  notebook: str = "tarea2") -> str:
    """The gradebook id formgrader uses in ``/formgrader/submissions/<id>/``."""
    from nbgrader.api import Gradebook
    with Gradebook("sqlite:///" + os.path.join(root, "gradebook.db"), course_id) as gb:
        return gb.find_submission_notebook(assignment, notebook, student).id


def graded_course(root: str, notebooks) -> Course:
    """A copy of this course at ``root`` with ``notebooks`` ({student: notebook}) submitted and graded."""
    shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)
    course = Course(root)
    pipeline.release(course)
    for student, nb in notebooks.items():
        path = course.submitted_nb(student)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        nbformat.write(nb, path)
    pipeline.grade(course, quiet=True)
    return course
