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
* only accepts ASCII student ids;
* saves the plan it collected by (which file went to which student, what it skipped) as
  ``plan_de_recoleccion.json`` beside the extracted folder, paths relative to it: ``make grade``'s
  notes and ``make devolver`` read that file instead of scanning the folder again (a malformed
  file is treated as absent; without one they recompute the plan, as before this file existed).

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
``c.ZipCollectApp.collector_plugin = "tarea2_grader.integration.collect.LmsCollectorPlugin"``,
so a plain ``nbgrader zip_collect tarea2 --force`` behaves like ``make grade``.

Archives are opened by :class:`SafeExtractorPlugin` (``c.ZipCollectApp.extractor_plugin``), which
extracts with size limits (``c.SizeLimits``, :mod:`tarea2_grader.engine.tamano`): each file at most
``file_mb`` uncompressed (whatever the archive declares: bytes are counted as they come out), each
student at most ``file_mb`` in all, the whole download at most ``archive_mb``, an archive with more
than ``archive_entries`` entries is not opened, and an archive inside another is opened one level
only.  Only the files the collector can take (notebooks) and nested archives are extracted.  What
it refuses is listed in ``rechazados.json`` beside the extracted folder; ``make grade`` puts each
refusal in that student's row.
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

from nbgrader.plugins import ExtractorPlugin, FileNameCollectorPlugin

from tarea2_grader.engine import tamano

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
    target: str = ""  # the name every collected notebook gets ('' : its own name)


def normalize_name(name: str) -> str:
    """Lower-case ASCII form of a file name, for comparing it with ``tarea2.ipynb``."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9.]", "", text.lower())


def is_junk(relpath: str) -> bool:
    """True for macOS resource forks, checkpoints and hidden files."""
    parts = relpath.split("/")
    return any(p in JUNK_PARTS for p in parts) or parts[-1].startswith(".")


def is_json_notebook(path: str) -> bool:
    """True when ``path`` parses as JSON with a ``cells`` list (read in chunks: long strings are
    skipped, never held whole)."""
    data = tamano.load_shrunk(path, 4096)
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
    plan = CollectionPlan(target=target)
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


# ---------------------------------------------------------------- the saved plan

PLAN_FILE = "plan_de_recoleccion.json"
PLAN_VERSION = 1


class PlanUnreadable(ValueError):
    """A saved plan that is not one this module wrote; the message is the Spanish reason."""


def plan_path(extracted_root: str) -> str:
    """Where the collector saves its plan: beside the extracted folder."""
    return os.path.join(os.path.dirname(os.path.abspath(extracted_root)), PLAN_FILE)


def plan_to_json(plan: CollectionPlan, extracted_root: str) -> dict:
    """The plan as plain JSON data, every path relative to ``extracted_root`` ('/'-separated)."""
    def rel(path: str) -> str:
        return os.path.relpath(path, extracted_root).replace(os.sep, "/")
    students = {sid: {"candidates": [rel(p) for p in e.candidates], "chosen": rel(e.chosen),
                      "names": {rel(p): e.name_of(p) for p in e.candidates}}
                for sid, e in sorted(plan.students.items())}
    return {"version": PLAN_VERSION, "target": plan.target, "students": students,
            "unmatched": list(plan.unmatched), "bad_ids": list(plan.bad_ids)}


def _strings(value, what: str) -> List[str]:
    """``value`` when it is a list of strings, else PlanUnreadable."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanUnreadable("'{}' no es una lista de textos".format(what))
    return value


def _relative(value: str) -> str:
    """A stored path when it is relative and plain ('/'-separated, no '..'), else PlanUnreadable."""
    if safe_member_name(value) != value:
        raise PlanUnreadable("la ruta {!r} no es relativa a la carpeta extraída".format(value[:200]))
    return value


def _student_from_json(sid, data, extracted_root: str) -> StudentFiles:
    """One student's entry of a saved plan, its paths under ``extracted_root``."""
    if not isinstance(sid, str) or not ASCII_ID.match(sid) or not isinstance(data, dict) \
            or set(data) != {"candidates", "chosen", "names"}:
        raise PlanUnreadable("la entrada del alumno {!r} está mal formada".format(str(sid)[:50]))
    candidates = [_relative(c) for c in _strings(data["candidates"], sid + ".candidates")]
    names = data["names"]
    if data["chosen"] not in candidates or not isinstance(names, dict) or set(names) != set(candidates) \
            or not all(isinstance(n, str) and n for n in names.values()):
        raise PlanUnreadable("la entrada del alumno {} está mal formada".format(sid))
    full = {c: os.path.join(extracted_root, *c.split("/")) for c in candidates}
    return StudentFiles(sid, [full[c] for c in candidates], full[data["chosen"]],
                        {full[c]: names[c] for c in candidates})


def plan_from_json(data, extracted_root: str) -> CollectionPlan:
    """The plan saved by :func:`plan_to_json`, its paths under ``extracted_root``; PlanUnreadable
    when ``data`` is anything else."""
    keys = {"version", "target", "students", "unmatched", "bad_ids"}
    if not isinstance(data, dict) or set(data) != keys:
        raise PlanUnreadable("no tiene las claves {}".format(", ".join(sorted(keys))))
    if data["version"] != PLAN_VERSION or not isinstance(data["target"], str) \
            or not isinstance(data["students"], dict):
        raise PlanUnreadable("versión, nombre del notebook o alumnos mal formados")
    students = {sid: _student_from_json(sid, entry, extracted_root) for sid, entry in data["students"].items()}
    return CollectionPlan(students, [_relative(p) for p in _strings(data["unmatched"], "unmatched")],
                          [_relative(p) for p in _strings(data["bad_ids"], "bad_ids")], data["target"])


def save_plan(plan: CollectionPlan, extracted_root: str) -> str:
    """Write the plan beside ``extracted_root`` atomically (temporary file, then os.replace); its path."""
    path = plan_path(extracted_root)
    tmp = "{}.{}.tmp".format(path, os.getpid())
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(plan_to_json(plan, extracted_root), fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_plan(extracted_root: str) -> Optional[CollectionPlan]:
    """The plan the collector saved for ``extracted_root``; None when there is no saved plan,
    PlanUnreadable (Spanish reason) when the file is not one :func:`save_plan` wrote."""
    path = plan_path(extracted_root)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise PlanUnreadable("no se pudo leer como JSON ({})".format(type(exc).__name__)) from None
    return plan_from_json(data, extracted_root)


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
        """The collection plan for the app's extracted folder (computed once, then saved beside
        it as ``plan_de_recoleccion.json`` for ``make grade``'s notes and ``make devolver``)."""
        if self._plan is None:
            extracted, source = self._course_paths()
            self._plan = plan_collection(extracted, self.active_patterns(),
                                         self.target_name(source), tuple(self.valid_ext))
            try:
                save_plan(self._plan, extracted)
            except OSError as exc:  # collecting matters more; the readers then recompute the plan
                self.log.warning("No se pudo guardar %s: %s", PLAN_FILE, exc)
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


# ---------------------------------------------------------------- extraction with size limits

REFUSALS_FILE = "rechazados.json"
ARCHIVE_EXTS = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz")
COPY_CHUNK = 1 << 20


class Refused(Exception):
    """A file that is not extracted; the message is the Spanish reason."""


def refusals_path(extracted_root: str) -> str:
    """Where the extractor lists what it refused: beside the extracted folder."""
    return os.path.join(os.path.dirname(os.path.abspath(extracted_root)), REFUSALS_FILE)


def safe_member_name(name: str) -> Optional[str]:
    """A member's path made relative and without '..' (None when nothing is left)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or None


def is_archive_name(name: str) -> bool:
    """True for the file names of archives (opened one level deep)."""
    return name.lower().endswith(ARCHIVE_EXTS)


def archive_stem(name: str) -> str:
    """The folder an archive is extracted into: its name without the archive extensions."""
    stem = name
    for ext in (".gz", ".tgz", ".bz2", ".xz", ".zip", ".tar"):
        if stem.lower().endswith(ext):
            stem = stem[:-len(ext)]
    return stem or name


def zip_entries(path: str) -> Optional[int]:
    """The number of entries a zip declares, read from its end record (before the directory is parsed)."""
    import zipfile
    try:
        with open(path, "rb") as fh:
            record = zipfile._EndRecData(fh)  # the standard library's own reader of that record
    except (OSError, ValueError, AttributeError):
        return None
    return None if record is None else int(record[zipfile._ECD_ENTRIES_TOTAL])


def _members(path: str, max_entries: int):
    """(name, declared size, opener) for each regular file of a zip or tar; Refused for one with too
    many entries or that cannot be read."""
    import tarfile
    import zipfile
    limit_msg = "tiene más de {} entradas: no se abre".format(max_entries)
    if zipfile.is_zipfile(path):
        entries = zip_entries(path)
        if entries is not None and entries > max_entries:
            raise Refused(limit_msg)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > max_entries:
                raise Refused(limit_msg)
            for info in infos:
                if not info.is_dir():
                    yield info.filename, info.file_size, (lambda info=info: zf.open(info))
        return
    try:
        tf = tarfile.open(path)
    except (tarfile.TarError, OSError) as exc:
        raise Refused("no es un archivo comprimido legible ({})".format(type(exc).__name__)) from None
    with tf:
        for count, member in enumerate(tf, 1):
            if count > max_entries:
                raise Refused(limit_msg)
            if member.isfile():
                yield member.name, member.size, (lambda member=member: tf.extractfile(member))


class _Extraction:
    """One extraction of the archive folder under size limits, and what it refused."""

    def __init__(self, limits: tamano.SizeLimits, root: str, valid_ext, patterns, log):
        self.file_cap = int(limits.file_mb * tamano.MB)
        self.total_cap = int(limits.archive_mb * tamano.MB)
        self.max_entries = int(limits.archive_entries)
        self.root, self.valid_ext, self.patterns, self.log = root, tuple(valid_ext), patterns, log
        self.used = 0
        self.per_student: Dict[str, int] = {}
        self.scanned = 0
        self.refused: List[dict] = []

    def _student(self, dest: str) -> str:
        info = match_path(os.path.relpath(dest, self.root).replace(os.sep, "/"), self.patterns)
        return info["student_id"] if info else ""

    def refuse(self, dest: str, reason: str) -> None:
        """Record a file left out and why."""
        rel = os.path.relpath(dest, self.root).replace(os.sep, "/")
        self.refused.append({"archivo": rel, "motivo": reason})
        self.log.warning("No se extrae %s: %s", rel, reason)

    def _room(self, dest: str, declared: int) -> int:
        """Bytes ``dest`` may take; Refused when its declared size is already over a limit."""
        student = self._student(dest)
        mine = self.per_student.get(student, 0)
        room = min(self.file_cap, self.total_cap - self.used, self.file_cap - mine if student else self.file_cap)
        if declared > self.file_cap:
            raise Refused("pesa {} descomprimido y supera el límite de {} por archivo".format(
                tamano.fmt_mb(declared), tamano.fmt_mb(self.file_cap)))
        if student and mine + declared > self.file_cap:
            raise Refused("con sus otros archivos suma más de {} descomprimido (límite por alumno)".format(
                tamano.fmt_mb(self.file_cap)))
        if declared > room:
            raise Refused("la descarga completa ya llegó al límite de {} descomprimidos".format(
                tamano.fmt_mb(self.total_cap)))
        return room

    def write(self, opener, dest: str, declared: int) -> None:
        """Copy a member to ``dest``, counting the bytes that really come out; Refused past a limit."""
        room = self._room(dest, declared)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        written = 0
        try:
            with opener() as src, open(dest, "wb") as out:
                while True:
                    chunk = src.read(COPY_CHUNK)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > room:
                        raise Refused("al descomprimirlo pasa de {} (más de lo que declara el archivo "
                                      "comprimido): no se extrae".format(tamano.fmt_mb(room)))
                    out.write(chunk)
        except Refused:
            os.remove(dest)
            raise
        except Exception as exc:  # a corrupt member, a wrong checksum, an unknown compression
            if os.path.exists(dest):
                os.remove(dest)
            raise Refused("no se pudo descomprimir ({}: {})".format(type(exc).__name__, str(exc)[:100])) from None
        self.used += written
        student = self._student(dest)
        if student:
            self.per_student[student] = self.per_student.get(student, 0) + written

    def archive(self, path: str, dest: str, depth: int = 0) -> None:
        """Extract the files of an archive that the collector can take into ``dest``."""
        try:
            for name, declared, opener in _members(path, self.max_entries):
                self.scanned += max(0, declared)
                if self.scanned > 4 * self.total_cap:  # a tar is read through to reach its next member
                    raise Refused("declara más de {} descomprimidos: no se sigue leyendo".format(
                        tamano.fmt_mb(4 * self.total_cap)))
                rel = safe_member_name(name)
                if rel:
                    self.member(opener, os.path.join(dest, *rel.split("/")), declared, depth)
        except Refused as exc:
            self.refuse(path if depth else dest, str(exc))
        except Exception as exc:  # a corrupt archive: this one only
            self.refuse(path if depth else dest, "no se pudo leer el archivo comprimido ({}: {})".format(
                type(exc).__name__, str(exc)[:100]))

    def member(self, opener, dest: str, declared: int, depth: int) -> None:
        """One file of an archive: a notebook is extracted, an archive opened if not too deep."""
        nested = is_archive_name(dest)
        if not nested and os.path.splitext(dest)[1].lower() not in self.valid_ext:
            return
        if nested and depth >= 1:
            self.refuse(dest, "es un archivo comprimido dentro de otro: no se abre (entregue el .ipynb)")
            return
        try:
            self.write(opener, dest, declared)
        except Refused as exc:
            self.refuse(dest, str(exc))
            return
        if nested:
            self.archive(dest, os.path.join(os.path.dirname(dest), archive_stem(os.path.basename(dest))), depth + 1)
            os.remove(dest)

    def copy(self, path: str, dest: str) -> None:
        """A plain file of the archive folder (not an archive): copied within the limits."""
        try:
            self.write(lambda: open(path, "rb"), dest, os.path.getsize(path))
        except Refused as exc:
            self.refuse(dest, str(exc))

    def save(self) -> None:
        """Write the list of refusals beside the extracted folder."""
        with open(refusals_path(self.root), "w", encoding="utf-8") as fh:
            json.dump(self.refused, fh, ensure_ascii=False, indent=1)


class SafeExtractorPlugin(ExtractorPlugin):
    """nbgrader's extractor with size limits (see the module docstring)."""

    def extract(self, archive_path: str, extracted_path: str) -> None:
        import tarfile
        import zipfile
        collector = LmsCollectorPlugin(config=self.config)
        job = _Extraction(tamano.SizeLimits(config=self.config), extracted_path, collector.valid_ext,
                          collector.active_patterns(), self.log)
        for root, _, files in os.walk(archive_path):
            dest = os.path.normpath(os.path.join(extracted_path, os.path.relpath(root, archive_path)))
            for name in sorted(files):
                path = os.path.join(root, name)
                if zipfile.is_zipfile(path) or (is_archive_name(name) and tarfile.is_tarfile(path)):
                    self.log.info("Extracting from: %s", path)
                    job.archive(path, os.path.join(dest, archive_stem(name)))
                else:
                    job.copy(path, os.path.join(dest, name))
        job.save()


def read_refusals(extracted_root: str) -> List[dict]:
    """What the last extraction refused ([] when nothing or no record)."""
    path = refusals_path(extracted_root)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict) and isinstance(r.get("archivo"), str)] \
        if isinstance(data, list) else []
