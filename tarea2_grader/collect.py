"""nbgrader ``zip_collect`` plugin for LMS bulk downloads (Moodle by default).

``nbgrader zip_collect tarea2`` extracts the zips in ``downloaded/tarea2/archive/``
into ``downloaded/tarea2/extracted/`` and asks a *collector plugin*, file by file,
which student a file belongs to.  This plugin:

* matches each path **relative to the extracted folder** (nbgrader's own
  ``FileNameCollectorPlugin`` matches the absolute path) against a list of
  regular expressions, the first match wins.  Each must define the named group
  ``student_id``; ``file_id`` is optional;
* takes any single ``.ipynb`` per student whatever its name ("Copia de
  tarea2.ipynb", "Copy of tarea2.ipynb", "tarea2 (1).ipynb") and collects it
  under the assignment's notebook name (``tarea2.ipynb``), so autograde does not
  skip it as an unknown notebook;
* when a student sent several notebooks, keeps one (valid JSON first, then the
  name closest to ``tarea2.ipynb``, then the largest file) and skips the others
  instead of letting zip_collect abort on a "duplicate submission file";
* only accepts ASCII student ids.

Default patterns (tried in this order)::

    Moodle, one folder per student:  <Nombre Apellido>_<id>_assignsubmission_file_/<file>.ipynb
                                     (Moodle 4.1 and later: no final underscore)
    Moodle, flat:                    <Nombre Apellido>_<id>_assignsubmission_file_<file>.ipynb
    plain:                           <student_id>/<file>.ipynb

Any folders above those (e.g. the zip's own folder) are ignored.

Adapting it to another LMS: add to ``nbgrader_config.py`` either one pattern
(it then replaces the defaults)::

    c.LmsCollectorPlugin.named_regexp = r"^(?:.*/)?(?P<student_id>[0-9]+)-[^/]*\\.ipynb$"

or a list of patterns tried in order::

    c.LmsCollectorPlugin.patterns = [
        r"^(?:.*/)?(?P<student_id>[a-z0-9]+)_entrega/(?P<file_id>[^/]+)$",
        r"^(?:.*/)?(?P<student_id>[A-Za-z0-9._-]+)/(?P<file_id>[^/]+)$",
    ]

The course's ``nbgrader_config.py`` selects the plugin with
``c.ZipCollectApp.collector_plugin = "tarea2_grader.collect.LmsCollectorPlugin"``,
so a plain ``nbgrader zip_collect tarea2 --force`` behaves like ``make grade``.
"""
from __future__ import annotations

import glob
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from traitlets import List as ListTrait
from traitlets import Unicode

from nbgrader.plugins import FileNameCollectorPlugin

MOODLE_FOLDER = (
    r"^(?:.*/)?(?P<name>[^/]*?)_(?P<student_id>[0-9]+)_assignsubmission_file_?/"
    r"(?:.*/)?(?P<file_id>[^/]+)$"
)
MOODLE_FLAT = (
    r"^(?:.*/)?(?P<name>[^/]*?)_(?P<student_id>[0-9]+)_assignsubmission_file_"
    r"(?P<file_id>[^/]+)$"
)
PLAIN = r"^(?:.*/)?(?P<student_id>[^/]+)/(?P<file_id>[^/]+)$"
DEFAULT_PATTERNS = [MOODLE_FOLDER, MOODLE_FLAT, PLAIN]

ASCII_ID = re.compile(r"^[A-Za-z0-9._-]+$")
JUNK_PARTS = ("__MACOSX", ".ipynb_checkpoints")


@dataclass
class StudentFiles:
    """The notebooks found for one student and the one chosen for grading."""

    student_id: str
    candidates: List[str] = field(default_factory=list)
    chosen: Optional[str] = None
    names: Dict[str, str] = field(default_factory=dict)

    def name_of(self, path: str) -> str:
        """The file name the student gave (the pattern's file_id, else the base name)."""
        return self.names.get(path) or os.path.basename(path)

    def skipped(self) -> List[str]:
        """Candidates that were not chosen."""
        return [c for c in self.candidates if c != self.chosen]


@dataclass
class CollectionPlan:
    """What the collector does with every file under the extracted folder."""

    students: Dict[str, StudentFiles] = field(default_factory=dict)
    unmatched: List[str] = field(default_factory=list)
    bad_ids: List[str] = field(default_factory=list)


def normalize_name(name: str) -> str:
    """Lower-case ASCII form of a file name, for comparing it with ``tarea2.ipynb``."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9.]", "", text.lower())


def is_junk(relpath: str) -> bool:
    """True for macOS resource forks, checkpoints and hidden files."""
    parts = relpath.split("/")
    return any(p in JUNK_PARTS for p in parts) or parts[-1].startswith(".")


def is_json_notebook(path: str) -> bool:
    """True when ``path`` parses as JSON with a ``cells`` list."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("cells"), list)


def candidate_rank(path: str, target: str, name: str = "") -> tuple:
    """Sort key: the best notebook to grade comes first (``name``: the student's file name)."""
    base = name or os.path.basename(path)
    norm, wanted = normalize_name(base), normalize_name(target)
    if base == target:
        name_score = 0
    elif norm == wanted:
        name_score = 1
    elif os.path.splitext(wanted)[0] in norm:
        name_score = 2
    else:
        name_score = 3
    size = os.path.getsize(path) if os.path.exists(path) else 0
    return (not is_json_notebook(path), name_score, -size, path)


def match_path(relpath: str, patterns: List[str]) -> Optional[dict]:
    """Return the groupdict of the first pattern matching ``relpath``."""
    for pattern in patterns:
        m = re.match(pattern, relpath)
        if m and m.groupdict().get("student_id"):
            return m.groupdict()
    return None


def plan_collection(extracted_root: str, patterns: List[str], target: str,
                    valid_ext=(".ipynb",)) -> CollectionPlan:
    """Decide, for every file under ``extracted_root``, which student gets it."""
    plan = CollectionPlan()
    files = sorted(glob.glob(os.path.join(glob.escape(extracted_root), "**", "*"), recursive=True))
    for path in files:
        if not os.path.isfile(path):
            continue
        rel = os.path.relpath(path, extracted_root).replace(os.sep, "/")
        if is_junk(rel) or os.path.splitext(rel)[1].lower() not in valid_ext:
            continue
        info = match_path(rel, patterns)
        if info is None:
            plan.unmatched.append(rel)
            continue
        sid = info["student_id"]
        if not ASCII_ID.match(sid):
            plan.bad_ids.append(rel)
            continue
        entry = plan.students.setdefault(sid, StudentFiles(sid))
        entry.candidates.append(path)
        entry.names[path] = os.path.basename(info.get("file_id") or "") or os.path.basename(path)
    for entry in plan.students.values():
        entry.chosen = sorted(entry.candidates, key=lambda p: candidate_rank(p, target, entry.names[p]))[0]
    return plan


def assignment_notebook(source_dir: str) -> str:
    """Name of the assignment's notebook when it has exactly one (else '')."""
    found = sorted(glob.glob(os.path.join(glob.escape(source_dir), "*.ipynb")))
    return os.path.basename(found[0]) if len(found) == 1 else ""


class LmsCollectorPlugin(FileNameCollectorPlugin):
    """Collector for Moodle-style and plain per-student folders (see module docstring)."""

    named_regexp = Unicode(
        "",
        help="One regular expression for the path relative to the extracted folder; "
             "when set it replaces `patterns`. Must define (?P<student_id>...).",
    ).tag(config=True)

    patterns = ListTrait(
        Unicode(), default_value=list(DEFAULT_PATTERNS),
        help="Regular expressions tried in order on the path relative to the "
             "extracted folder; each must define (?P<student_id>...).",
    ).tag(config=True)

    notebook_name = Unicode(
        "",
        help="Name every collected notebook gets; default: the assignment's only notebook.",
    ).tag(config=True)

    _plan: Optional[CollectionPlan] = None

    def active_patterns(self) -> List[str]:
        """The configured pattern list."""
        return [self.named_regexp] if self.named_regexp else list(self.patterns)

    def _course_paths(self):
        """(extracted folder, assignment source folder) from the running app."""
        app = self.parent
        extracted = app._format_collect_path(app.extracted_directory)
        source = app.coursedir.format_path(app.coursedir.source_directory, ".", app.coursedir.assignment_id)
        return extracted, source

    def target_name(self, source_dir: str) -> str:
        """The file name collected notebooks get."""
        return self.notebook_name or assignment_notebook(source_dir) or ""

    def plan(self) -> CollectionPlan:
        """The collection plan for the app's extracted folder (computed once)."""
        if self._plan is None:
            extracted, source = self._course_paths()
            self._plan = plan_collection(extracted, self.active_patterns(),
                                         self.target_name(source), tuple(self.valid_ext))
        return self._plan

    def collect(self, submitted_file: str) -> Optional[dict]:
        """Return nbgrader's collect info for the chosen notebook of each student."""
        plan = self.plan()
        for entry in plan.students.values():
            if os.path.abspath(submitted_file) == os.path.abspath(entry.chosen):
                _, source = self._course_paths()
                name = self.target_name(source) or os.path.basename(submitted_file)
                return {"student_id": entry.student_id, "file_id": name}
            if submitted_file in entry.candidates:
                self.log.warning("Skipping %s: student %s sent several notebooks, grading %s",
                                 submitted_file, entry.student_id, entry.chosen)
                return None
        return None
