"""Normalize a student's submission so that nbgrader can grade it.

Real submissions come back from Colab/the LMS reshaped: nbformat 4.0, Colab
metadata, per-cell ``metadata.id``, cells copied, moved or deleted, nbgrader
metadata lost.  nbgrader matches cells only by ``metadata.nbgrader.grade_id``,
so such a notebook is silently graded 0 or aborts autograde.  ``repair_notebook``
fixes that in place and says, in Spanish, what it changed:

1. read whatever nbformat version, upgrade to 4.5 with unique cell ids, drop
   Colab's notebook/cell metadata noise, restore the kernelspec;
2. align the submission's cells with the release notebook (what the student
   received): cells that kept their ``grade_id`` and unchanged cells are
   anchors; between anchors, cells that lost their nbgrader metadata are
   matched to the release's nbgrader cells: read-only and test cells by content
   similarity, answer cells by position and by the names they define (taken
   from the source notebook's solution);
3. a ``grade_id`` present twice keeps its metadata on exactly one cell (the
   aligned one); the others lose their nbgrader metadata;
4. missing test/read-only/graded cells are put back from the release at their
   place (nbgrader's own ``add_missing_cells`` fails when the previous source
   cell is also missing).
"""
from __future__ import annotations

import ast
import copy
import functools
import json
import os
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Dict, List, Optional, Set, Tuple

import nbformat
from nbformat.notebooknode import NotebookNode
from rapidfuzz import fuzz

COLAB_NB_KEYS = ("colab", "accelerator", "gpuClass", "kaggle", "widgets")
COLAB_CELL_KEYS = ("id", "colab", "colab_type", "outputId", "executionInfo", "pycharm")
LOCKED_MATCH = 0.5        # similarity needed to take a cell as a read-only/test cell (same gap)
LOCKED_MATCH_FAR = 0.85   # ... anywhere in the notebook
INSTRUCTION_MATCH = 0.85  # a cell this similar to an instruction cell is that instruction
NAMES_MATCH = 0.5         # share of the solution's names an answer cell must define


class NotebookUnreadable(Exception):
    """The file cannot be read as a notebook; the message is the Spanish reason."""


@dataclass
class RefCell:
    """One cell of the release notebook, with what matching needs."""

    index: int
    cell: NotebookNode
    grade_id: Optional[str]
    kind: str  # "answer", "locked" (read-only or test) or "plain"
    names: Set[str] = field(default_factory=set)
    graded: bool = False

    @property
    def key(self) -> str:
        """Alignment key."""
        return "gid:" + self.grade_id if self.grade_id else source_key(self.cell)


@dataclass
class RepairReport:
    """What ``repair_notebook`` found and changed (Spanish messages)."""

    restored: List[str] = field(default_factory=list)
    duplicates: List[str] = field(default_factory=list)
    reinserted: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def messages(self) -> List[str]:
        """Human-readable Spanish summary, one string per kind of change."""
        out = list(self.notes)
        if self.restored:
            out.append("metadatos de nbgrader recuperados en: " + ", ".join(self.restored))
        if self.duplicates:
            out.append("celdas duplicadas (se calificó una sola copia): " + ", ".join(self.duplicates))
        if self.reinserted:
            out.append("celdas que faltaban, repuestas desde el enunciado: " + ", ".join(self.reinserted))
        if self.dropped:
            out.append("metadatos de nbgrader desconocidos eliminados en " + str(len(self.dropped)) + " celda(s)")
        return out


# ---------------------------------------------------------------- reading

def read_lenient(path: str) -> NotebookNode:
    """Read any nbformat-4-convertible notebook, or raise NotebookUnreadable."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise NotebookUnreadable(f"no se pudo leer el archivo ({exc.strerror})") from exc
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotebookUnreadable("el archivo no es un notebook válido (no es JSON)") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        raise NotebookUnreadable("el archivo no es un notebook válido (no tiene celdas)")
    data.setdefault("metadata", {})
    data.setdefault("nbformat", 4)
    data.setdefault("nbformat_minor", 0)
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types
        raise NotebookUnreadable("el archivo no es un notebook válido ({})".format(type(exc).__name__)) from exc
    for cell in nb.cells:
        if not isinstance(cell.get("source", ""), str):
            raise NotebookUnreadable("el archivo no es un notebook válido (celda corrupta)")
    return nb


def source_key(cell) -> str:
    """Whitespace-insensitive key of a cell's type and source."""
    lines = [ln.rstrip() for ln in cell.get("source", "").strip().splitlines()]
    return "src:" + cell.get("cell_type", "") + ":" + "\n".join(ln for ln in lines if ln)


def similarity(a: str, b: str) -> float:
    """Similarity of two sources in [0, 1]."""
    if not a.strip() and not b.strip():
        return 1.0
    return fuzz.ratio(a, b) / 100.0


def defined_names(source: str) -> Set[str]:
    """Top-level functions, classes and variables a code cell defines."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        found = re.findall(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.M)
        return {name for pair in found for name in pair if name}
    names: Set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
    return names


# ---------------------------------------------------------------- reference

def nbgrader_meta(cell) -> dict:
    """The cell's nbgrader metadata dict (empty when absent or malformed)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def cell_kind(meta: dict) -> str:
    """'answer', 'locked' or 'plain' for a cell's nbgrader metadata."""
    if meta.get("solution"):
        return "answer"
    if meta.get("locked") or meta.get("grade"):
        return "locked"
    return "plain"


def load_reference(release_path: str, source_path: Optional[str] = None) -> List[RefCell]:
    """Cells of the release notebook, with the names each answer's solution defines."""
    release = nbformat.read(release_path, as_version=4)
    solutions: Dict[str, str] = {}
    if source_path:
        source = nbformat.read(source_path, as_version=4)
        for cell in source.cells:
            meta = nbgrader_meta(cell)
            if meta.get("solution") and cell.cell_type == "code":
                solutions[meta.get("grade_id", "")] = cell.source
    refs = []
    for i, cell in enumerate(release.cells):
        meta = nbgrader_meta(cell)
        kind = cell_kind(meta)
        gid = meta.get("grade_id") if kind != "plain" else None
        ref = RefCell(i, cell, gid, kind if gid else "plain", graded=bool(meta.get("grade")))
        if ref.kind == "answer" and cell.cell_type == "code":
            ref.names = defined_names(solutions.get(gid, "")) or defined_names(cell.source)
        refs.append(ref)
    return refs


def reference(release_path: str, source_path: Optional[str] = None) -> Tuple[Tuple[RefCell, ...], dict]:
    """:func:`load_reference` and the release's notebook metadata, read once per version of the
    two files for a whole class (repairing never changes them: it copies what it takes)."""
    def version(path):
        st = os.stat(path)
        return path, st.st_mtime_ns, st.st_size
    return _reference(version(release_path), version(source_path) if source_path else None)


@functools.lru_cache(maxsize=4)
def _reference(release: tuple, source: Optional[tuple]) -> Tuple[Tuple[RefCell, ...], dict]:
    refs = tuple(load_reference(release[0], source[0] if source else None))
    return refs, nbformat.read(release[0], as_version=4).metadata


# ---------------------------------------------------------------- normalizing

def normalize_format(nb: NotebookNode, refs_nb_meta: dict, report: RepairReport) -> None:
    """Upgrade to nbformat 4.5 with unique ids and strip Colab metadata noise."""
    if nb.get("nbformat_minor", 0) < 5:
        report.notes.append("formato nbformat 4.{} actualizado a 4.5".format(nb.get("nbformat_minor", 0)))
    nb.nbformat, nb.nbformat_minor = 4, 5
    if any(k in nb.metadata for k in COLAB_NB_KEYS):
        report.notes.append("guardado por Colab: metadatos de Colab eliminados")
    for key in COLAB_NB_KEYS:
        nb.metadata.pop(key, None)
    for key in ("kernelspec", "language_info"):
        if key in refs_nb_meta:
            nb.metadata[key] = copy.deepcopy(refs_nb_meta[key])
    seen: Set[str] = set()
    for n, cell in enumerate(nb.cells):
        for key in COLAB_CELL_KEYS:
            cell.metadata.pop(key, None)
        cid = cell.get("id")
        if not isinstance(cid, str) or not re.match(r"^[a-zA-Z0-9-_]{1,64}$", cid) or cid in seen:
            cid = "celda-{}".format(n)
            while cid in seen:
                cid += "x"
        cell["id"] = cid
        seen.add(cid)
        for out in cell.get("outputs", []):
            if isinstance(out.get("metadata"), dict):
                for key in COLAB_CELL_KEYS:
                    out.metadata.pop(key, None)


def submission_key(cell, known_ids: Set[str]) -> str:
    """Alignment key of a submitted cell: its grade_id if it kept a known one."""
    meta = nbgrader_meta(cell)
    gid = meta.get("grade_id")
    if gid in known_ids and cell_kind(meta) != "plain":
        return "gid:" + gid
    return source_key(cell)


# ---------------------------------------------------------------- matching

class Aligner:
    """Maps release cells (by index) to submission cells (by index)."""

    def __init__(self, refs: List[RefCell], cells: List[NotebookNode]):
        self.refs = refs
        self.cells = cells
        self.known = {r.grade_id for r in refs if r.grade_id}
        self.ref_to_sub: Dict[int, int] = {}
        self.sub_to_ref: Dict[int, int] = {}
        self.how: Dict[int, str] = {}

    def claim(self, r: int, s: int, how: str) -> None:
        """Record that release cell r is submission cell s."""
        self.ref_to_sub[r] = s
        self.sub_to_ref[s] = r
        self.how[r] = how

    def free(self, s: int) -> bool:
        """Submission cell s is not matched yet."""
        return s not in self.sub_to_ref

    def run(self) -> None:
        """Anchors, moved tagged cells, gaps, then far matches."""
        rkeys = [r.key for r in self.refs]
        skeys = [submission_key(c, self.known) for c in self.cells]
        matcher = SequenceMatcher(None, rkeys, skeys, autojunk=False)
        gaps = []
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                for k in range(i2 - i1):
                    self.claim(i1 + k, j1 + k, "kept" if self.refs[i1 + k].grade_id else "plain")
            else:
                gaps.append((list(range(i1, i2)), list(range(j1, j2))))
        self.match_moved_tagged(skeys)
        for rs, ss in gaps:
            self.match_gap(rs, ss)
        self.match_far()

    def match_moved_tagged(self, skeys: List[str]) -> None:
        """A tagged cell found out of order still is that cell."""
        for ref in self.refs:
            if not ref.grade_id or ref.index in self.ref_to_sub:
                continue
            cands = [j for j, k in enumerate(skeys) if k == ref.key and self.free(j)]
            if cands:
                best = max(cands, key=lambda j: similarity(self.cells[j].source, ref.cell.source))
                self.claim(ref.index, best, "kept")

    def is_instruction(self, s: int, gap_refs: List[int]) -> bool:
        """Submission cell s is (nearly) a plain cell of the release."""
        cell = self.cells[s]
        return any(self.refs[r].kind == "plain" and self.refs[r].cell.cell_type == cell.cell_type
                   and similarity(self.refs[r].cell.source, cell.source) >= INSTRUCTION_MATCH
                   for r in gap_refs)

    def match_gap(self, rs: List[int], ss: List[int]) -> None:
        """Match release nbgrader cells to free submission cells between two anchors."""
        rs = [r for r in rs if r not in self.ref_to_sub]
        locked = [r for r in rs if self.refs[r].kind == "locked"]
        pairs = []
        for r in locked:
            for s in ss:
                if self.free(s) and self.cells[s].cell_type == self.refs[r].cell.cell_type:
                    sim = similarity(self.cells[s].source, self.refs[r].cell.source)
                    if sim >= LOCKED_MATCH:
                        pairs.append((sim, -abs(s - ss[0] - (r - rs[0])), r, s))
        for _sim, _d, r, s in sorted(pairs, reverse=True):
            if r not in self.ref_to_sub and self.free(s):
                self.claim(r, s, "restored")
        for r in rs:
            ref = self.refs[r]
            if ref.kind != "answer" or r in self.ref_to_sub:
                continue
            cands = [s for s in ss if self.free(s) and self.cells[s].cell_type == ref.cell.cell_type
                     and not self.is_instruction(s, rs)]
            best = self.best_answer(ref, cands, positional=True)
            if best is not None:
                self.claim(r, best, "restored")

    def best_answer(self, ref: RefCell, cands: List[int], positional: bool) -> Optional[int]:
        """The submission cell most likely to be the answer cell ``ref``."""
        if not cands:
            return None
        if ref.cell.cell_type == "code" and ref.names:
            scored = [(len(defined_names(self.cells[s].source) & ref.names) / len(ref.names), s) for s in cands]
            good = [(score, s) for score, s in scored if score >= NAMES_MATCH]
            if good:
                return max(good)[1]
            if not positional:
                return None
        if not positional:
            return None
        return max(cands, key=lambda s: (similarity(self.cells[s].source, ref.cell.source), -s))

    def match_far(self) -> None:
        """Last resort: very similar read-only/test cells and named answers anywhere."""
        for ref in self.refs:
            if not ref.grade_id or ref.index in self.ref_to_sub:
                continue
            free = [s for s in range(len(self.cells)) if self.free(s)
                    and self.cells[s].cell_type == ref.cell.cell_type]
            if ref.kind == "locked":
                scored = [(similarity(self.cells[s].source, ref.cell.source), s) for s in free]
                scored = [x for x in scored if x[0] >= LOCKED_MATCH_FAR]
                if scored:
                    self.claim(ref.index, max(scored)[1], "restored")
            elif ref.kind == "answer":
                best = self.best_answer(ref, free, positional=False)
                if best is not None:
                    self.claim(ref.index, best, "restored")


def apply_matches(nb: NotebookNode, refs: List[RefCell], al: Aligner, report: RepairReport) -> None:
    """Rewrite nbgrader metadata from the matches and put missing cells back."""
    for s, cell in enumerate(nb.cells):
        had = nbgrader_meta(cell)
        r = al.sub_to_ref.get(s)
        ref = refs[r] if r is not None else None
        if ref is not None and ref.grade_id:
            cell.metadata["nbgrader"] = copy.deepcopy(ref.cell.metadata["nbgrader"])
            if al.how[r] == "restored":
                report.restored.append(ref.grade_id)
        elif "nbgrader" in cell.metadata:
            del cell.metadata["nbgrader"]
            gid = had.get("grade_id")
            if gid in al.known and cell_kind(had) != "plain":
                if gid not in report.duplicates:
                    report.duplicates.append(gid)
            elif had and cell_kind(had) != "plain":
                report.dropped.append(str(gid))
    insert_missing(nb, refs, al, report)


def insert_missing(nb: NotebookNode, refs: List[RefCell], al: Aligner, report: RepairReport) -> None:
    """Put back, after the previous matched cell, release cells nbgrader needs."""
    order = [((s, 0, 0), cell) for s, cell in enumerate(nb.cells)]
    anchor = -1
    for ref in refs:
        if ref.index in al.ref_to_sub:
            anchor = max(anchor, al.ref_to_sub[ref.index])
            continue
        if not ref.grade_id or not (ref.kind == "locked" or ref.graded):
            continue
        cell = copy.deepcopy(ref.cell)
        cell["id"] = "repuesta-{}".format(ref.index)
        order.append(((anchor, 1, ref.index), cell))
        report.reinserted.append(ref.grade_id)
    nb.cells = [cell for _k, cell in sorted(order, key=lambda x: x[0])]


# Code that tries to change how grading works rather than answer: rebinding library
# functions (torch.allclose = ...), reaching into the grader or autograd's engine.
TAMPERING = [
    (re.compile(r"^\s*(torch|math|numpy|np|builtins)(\.\w+)+\s*=[^=]", re.M), "reasigna una función de biblioteca"),
    (re.compile(r"tarea2_grader|nbgrader"), "menciona el código de corrección"),
    (re.compile(r"sys\.modules|_execution_engine|_engine_run_backward|setattr\(\s*(torch|math|builtins)|__builtins__"),
     "manipula módulos, builtins o el motor de autograd"),
]


def tampering(nb: NotebookNode) -> List[str]:
    """Spanish notes for answer cells whose code looks like an attempt to fool the grader."""
    notes = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
            continue
        where = meta.get("grade_id") or "una celda sin identificar"
        for pattern, what in TAMPERING:
            if pattern.search(cell.source):
                notes.append("revisar a mano: la celda {} {}".format(where, what))
    return notes


def repair_nb(nb: NotebookNode, refs: List[RefCell], ref_meta: dict) -> RepairReport:
    """Repair an in-memory notebook against the release cells; return the report."""
    report = RepairReport()
    normalize_format(nb, ref_meta, report)
    aligner = Aligner(refs, nb.cells)
    aligner.run()
    apply_matches(nb, refs, aligner, report)
    report.notes.extend(tampering(nb))
    neutralize_markers(nb, report)
    nbformat.validate(nb)
    return report


NBGRADER_MARKER = re.compile(r"(BEGIN|END) (HIDDEN TESTS|SOLUTION)")


def neutralize_markers(nb: NotebookNode, report: RepairReport) -> None:
    """nbgrader's region markers typed in a student's own cell would break the feedback of the
    whole class (an unmatched "### BEGIN HIDDEN TESTS"): turn them into plain comments."""
    touched = []
    for n, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("locked") and not meta.get("solution"):
            continue  # the course's own cells: autograde restores them
        new = NBGRADER_MARKER.sub(lambda m: "{}-{} (marcador de nbgrader desactivado)".format(
            m.group(1), m.group(2).replace(" ", "-")), cell.source)
        if new != cell.source:
            cell.source = new
            touched.append(meta.get("grade_id") or "celda {}".format(n + 1))
    if touched:
        report.notes.append("marcadores de nbgrader desactivados en: " + ", ".join(touched))


def repair_notebook(path: str, release_path: str, source_path: Optional[str] = None,
                    out_path: Optional[str] = None) -> RepairReport:
    """Repair the notebook at ``path`` (in place unless ``out_path``).

    Raises NotebookUnreadable (with a Spanish message) when it is not a notebook.
    """
    nb = read_lenient(path)
    refs, ref_meta = reference(release_path, source_path)
    report = repair_nb(nb, list(refs), ref_meta)
    nbformat.write(nb, out_path or path)
    return report
