"""The seed of each student's hidden inputs: the one module that draws, keeps and reads it.

A seed is drawn the first time a student is graded (by the parallel grading, or by nbgrader's
pass when that did not run) and kept in ``semillas.json`` at the course root, never inside the
sandbox, so a regrade reproduces the same hidden inputs.  ``TrustedExecute.fresh_seeds`` draws
new ones.  Everything else that carries a seed has it from here: the grading job and its cache
key, the autograded notebook's metadata, the pass record and the ``semilla`` column of grades.csv.

The file: ``{"<assignment>": {"<student>": <seed>, ...}, ...}``, written atomically under a lock
(the workers' coordinator and nbgrader's pass may draw at the same time).
"""
import contextlib
import fcntl
import json
import os
import secrets

FILE = "semillas.json"


def draw() -> int:
    """A fresh seed for a student's hidden inputs."""
    return secrets.randbits(62)


@contextlib.contextmanager
def _locked(path: str):
    with open(path + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _save(path: str, seeds: dict) -> None:
    """Write the whole file atomically (a reader sees the old one or the new one)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(seeds, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read(root: str) -> dict:
    """{assignment: {student: seed}} from the course's seeds file ({} when there is none yet)."""
    path = os.path.join(root, FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def of_student(root: str, assignment: str, student: str, fresh: bool = False) -> int:
    """The recorded seed of a student (drawn and recorded on first use, or when ``fresh``)."""
    path = os.path.join(root, FILE)
    with _locked(path):
        seeds = read(root)
        mine = seeds.setdefault(assignment, {})
        if fresh or student not in mine:
            mine[student] = draw()
            _save(path, seeds)
        return int(mine[student])


def write(root: str, assignment: str, chosen: dict) -> None:
    """Record ``chosen`` ({student: seed}) as the seeds of ``assignment`` (benchmarks and tests
    that grade the same hidden inputs in several courses)."""
    path = os.path.join(root, FILE)
    with _locked(path):
        seeds = read(root)
        seeds[assignment] = {str(k): int(v) for k, v in chosen.items()}
        _save(path, seeds)
