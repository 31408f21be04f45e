"""Copy detection per answer cell: pure functions, no nbgrader, no student code run.

Notebooks are read as JSON only.  For every answer cell (by ``grade_id``) each student's text is
fingerprinted (fingerprints.py: normalised tokens, winnowed k-grams, those of the release dropped).
A cell with fewer own tokens than a minimum is "demasiado corta" and never flagged.  Fingerprints
found in the reference solution or in a large share of the class weigh less (as MOSS ignores
common code) and are labelled.  Pairs are only compared when they share a fingerprint (an
inverted index), never every pair in full.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

from tarea2_grader.commands.fingerprints import ComparisonSettings, FingerprintedCell, all_grams, fingerprint_cell

# ---------------------------------------------------------------- notebooks (JSON only)


def _text(value) -> str:
    """A cell's source, stored as a string or a list of lines."""
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def read_json_notebook(data) -> dict:
    """A notebook as plain JSON data (a path, bytes or text); {} when it is not one."""
    try:
        if isinstance(data, (bytes, bytearray)):
            data = data.decode("utf-8", errors="replace")
        elif not (isinstance(data, str) and data.lstrip().startswith("{")):
            with open(data, encoding="utf-8", errors="replace") as fh:
                data = fh.read()
        nb = json.loads(data)
    except (OSError, ValueError):
        return {}
    return nb if isinstance(nb, dict) and isinstance(nb.get("cells"), list) else {}


def cells_by_id(nb: dict) -> Dict[str, Tuple[str, str]]:
    """grade_id -> (cell type, source) of cells with nbgrader metadata (the first of each id)."""
    found: Dict[str, Tuple[str, str]] = {}
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict):
            continue
        meta = cell.get("metadata") or {}
        nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
        gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
        if isinstance(gid, str) and gid not in found:
            kind = "code" if cell.get("cell_type") == "code" else "markdown"
            found[gid] = (kind, _text(cell.get("source")))
    return found


def answer_ids(release_nb: dict) -> List[str]:
    """The answer cells of the release (nbgrader ``solution``), in order."""
    ids = []
    for cell in release_nb.get("cells", []):
        nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
        if nbg.get("solution") and nbg.get("grade_id"):
            ids.append(nbg["grade_id"])
    return ids


def given_grams(release_nb: dict, settings: ComparisonSettings) -> Dict[str, Set[int]]:
    """Every k-gram the release gives each answer cell: the cell's own stub and given code, and for
    a derivation also the statement's text and formulas (the release's other markdown cells)."""
    answers = set(answer_ids(release_nb))
    statement: Set[int] = set()
    for cell in release_nb.get("cells", []):
        nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
        if cell.get("cell_type") == "markdown" and nbg.get("grade_id") not in answers:
            statement |= all_grams("markdown", _text(cell.get("source")), settings)
    given = {}
    for gid, (kind, src) in cells_by_id(release_nb).items():
        given[gid] = all_grams(kind, src, settings) | (statement if kind == "markdown" else set())
    return given


MARKERS = re.compile(r"^[ \t]*### (?:BEGIN|END) (?:SOLUTION|HIDDEN TESTS)[ \t]*$", re.M)


def reference_grams(source_cells: Dict[str, Tuple[str, str]], ids: Iterable[str],
                    settings: ComparisonSettings) -> Dict[str, Set[int]]:
    """k-grams of the reference solution, per answer cell (from the master notebook's cells)."""
    out = {}
    for gid in ids:
        if gid in source_cells:
            kind, src = source_cells[gid]
            out[gid] = all_grams(kind, MARKERS.sub("", src), settings)
    return out


def antecedent_notebooks(folder: str) -> Dict[str, dict]:
    """Notebooks under ``antecedentes/`` (folders like a bulk download, or zips), by label."""
    found: Dict[str, dict] = {}
    if not os.path.isdir(folder):
        return found
    for root, _dirs, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if name.endswith(".ipynb"):
                nb = read_json_notebook(path)
                if nb:
                    found["antecedentes/" + rel] = nb
            elif name.endswith(".zip"):
                found.update(_zip_notebooks(path, "antecedentes/" + rel))
    return found


def _zip_notebooks(path: str, label: str) -> Dict[str, dict]:
    """Notebooks inside a zip (read in memory, never extracted)."""
    found = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".ipynb") and info.file_size < 50_000_000:
                    nb = read_json_notebook(zf.read(info))
                    if nb:
                        found[label + ":" + info.filename] = nb
    except (OSError, zipfile.BadZipFile):
        pass
    return found


# ---------------------------------------------------------------- declared partners, dismissals


def read_rows(path: str) -> List[List[str]]:
    """The rows of a small CSV file kept by the instructor ([] when absent); header skipped."""
    if not path or not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [[c.strip() for c in row] for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    if rows and rows[0] and rows[0][0].lower().startswith("alumno"):
        rows = rows[1:]
    return [r for r in rows if not r[0].startswith("#")]


def read_partners(path: str) -> Set[frozenset]:
    """Pairs allowed to share work: every pair inside each row (a row may list a whole group)."""
    pairs = set()
    for row in read_rows(path):
        group = [c for c in row if c]
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                pairs.add(frozenset((a, b)))
    return pairs


def read_dismissals(path: str) -> Set[Tuple[frozenset, str]]:
    """(pair, cell) the instructor dismissed after reading them; cell '*' dismisses the whole pair."""
    out = set()
    for row in read_rows(path):
        if len(row) >= 2 and row[0] and row[1]:
            cell = row[2] if len(row) >= 3 and row[2] else "*"
            out.add((frozenset((row[0], row[1])), cell))
    return out


# ---------------------------------------------------------------- comparison


@dataclass
class Match:
    """One cell of one pair that shares fingerprints."""

    a: str
    b: str
    grade_id: str
    score: float
    status: str = ""  # "marcada", "companeros", "descartada" or ""
    spans_a: List[Tuple[int, int, str]] = field(default_factory=list)  # (start, end, label) in a's source
    spans_b: List[Tuple[int, int, str]] = field(default_factory=list)
    fragment: str = ""


@dataclass
class ComparisonResult:
    """Everything the report needs from the comparison."""

    cell_ids: List[str]
    student_ids: List[str]
    earlier_ids: List[str]                                  # earlier submissions (antecedentes/)
    fingerprinted: Dict[str, Dict[str, FingerprintedCell]]  # document -> grade_id -> cell
    too_short: Dict[str, List[str]]                         # grade_id -> documents too short to compare
    matches: List[Match]                                    # every compared cell pair, best first
    common: Dict[str, Set[int]]
    reference: Dict[str, Set[int]]
    settings: ComparisonSettings

    def flagged(self) -> List[Match]:
        """Flagged cell pairs, best first."""
        return [c for c in self.matches if c.status == "marcada"]

    def groups(self) -> List[List[str]]:
        """Clusters: connected components of the flagged pairs, biggest first."""
        return clusters((c.a, c.b) for c in self.flagged())


def weight(h: int, kind: str, common: Set[int], reference: Set[int], settings: ComparisonSettings) -> float:
    """How much a shared fingerprint counts: less when common in the class or in the reference."""
    w = 1.0
    if h in common:
        w = min(w, settings.common_weight)
    if h in reference:
        w = min(w, settings.reference_weight if kind == "code" else settings.reference_text_weight)
    return w


def similarity(x: FingerprintedCell, y: FingerprintedCell, common: Set[int], reference: Set[int],
               settings: ComparisonSettings) -> float:
    """Dice coefficient of two cells' fingerprint sets, shared fingerprints weighted (0 to 1).

    Only the shared part is discounted: two cells made of nothing but common or reference
    fragments score at most that fragments' weight, whatever their size."""
    shared = x.prints.keys() & y.prints.keys()
    both = sum(weight(h, x.kind, common, reference, settings) for h in shared)
    size = len(x.prints) + len(y.prints)
    return 2 * both / size if size else 0.0


def label(h: int, common: Set[int], reference: Set[int]) -> str:
    """Why a shared fragment is discounted ('' when it is not)."""
    if h in reference:
        return "referencia"
    if h in common:
        return "comun"
    return ""


def spans(cell: FingerprintedCell, shared: Set[int], common: Set[int],
          reference: Set[int]) -> List[Tuple[int, int, str]]:
    """Character ranges of the shared fingerprints in a cell's source, merged, each with its label."""
    marks = []
    for h in shared:
        for s, e in cell.prints[h]:
            marks.append((cell.tokens[s].start, cell.tokens[e - 1].end, label(h, common, reference)))
    marks.sort()
    merged: List[Tuple[int, int, str]] = []
    for s, e, lab in marks:
        if merged and s <= merged[-1][1]:  # overlapping: one range, own if any part of it is own
            ps, pe, plab = merged[-1]
            merged[-1] = (ps, max(e, pe), plab if plab == lab else "")
        else:
            merged.append((s, e, lab))
    return merged


def longest_fragment(source: str, ranges: List[Tuple[int, int, str]], limit: int = 200) -> str:
    """The longest own (not discounted) shared fragment, else the longest one, on one line."""
    if not ranges:
        return ""
    own = [r for r in ranges if not r[2]] or ranges
    s, e, _ = max(own, key=lambda r: r[1] - r[0])
    return " ".join(source[s:e].split())[:limit]


def common_prints(fingerprinted: Dict[str, Dict[str, FingerprintedCell]], student_ids: List[str], gid: str,
                  settings: ComparisonSettings) -> Set[int]:
    """Fingerprints of a cell found in a large share of the class (earlier submissions do not count)."""
    counts: Dict[int, int] = {}
    for s in student_ids:
        cell = fingerprinted.get(s, {}).get(gid)
        if cell is not None:
            for h in cell.prints:
                counts[h] = counts.get(h, 0) + 1
    cutoff = max(settings.common_min_students, math.ceil(settings.common_share * len(student_ids)))
    return {h for h, n in counts.items() if n >= cutoff}


def candidate_pairs(docs: Dict[str, FingerprintedCell], skip: Set[int], earlier: Set[str]) -> Set[Tuple[str, str]]:
    """Pairs that share at least one fingerprint outside ``skip``, through an inverted index.

    Two earlier submissions are never paired with each other."""
    index: Dict[int, List[str]] = {}
    for doc, cell in docs.items():
        for h in cell.prints:
            if h not in skip:
                index.setdefault(h, []).append(doc)
    pairs = set()
    for posting in index.values():
        posting.sort()
        for i, a in enumerate(posting):
            for b in posting[i + 1:]:
                if not (a in earlier and b in earlier):
                    pairs.add((a, b))
    return pairs


def state(a: str, b: str, gid: str, sim: float, partners: Set[frozenset],
          dismissed: Set[Tuple[frozenset, str]], settings: ComparisonSettings) -> str:
    """'marcada' at or above the threshold unless the pair declared it or the instructor dismissed it."""
    if sim < settings.threshold:
        return ""
    pair = frozenset((a, b))
    if pair in partners:
        return "companeros"
    if (pair, gid) in dismissed or (pair, "*") in dismissed:
        return "descartada"
    return "marcada"


def compare(release_nb: dict, source_nb: dict, students: Dict[str, dict],
            earlier: Optional[Dict[str, dict]] = None, settings: Optional[ComparisonSettings] = None,
            partners: Set[frozenset] = frozenset(),
            dismissed: Set[Tuple[frozenset, str]] = frozenset()) -> ComparisonResult:
    """Compare every answer cell of ``students`` (and earlier submissions) pair by pair through the index."""
    settings = settings or ComparisonSettings()
    earlier = earlier or {}
    ids = answer_ids(release_nb)
    release_cells = cells_by_id(release_nb)
    given = given_grams(release_nb, settings)
    reference = reference_grams(cells_by_id(source_nb), ids, settings)
    student_ids, earlier_ids = sorted(students), sorted(earlier)
    fingerprinted: Dict[str, Dict[str, FingerprintedCell]] = {}
    too_short: Dict[str, List[str]] = {gid: [] for gid in ids}
    done: Dict[Tuple[str, str], FingerprintedCell] = {}  # the same text (an untouched stub, a shared file) once
    for doc, nb in list(students.items()) + list(earlier.items()):
        fingerprinted[doc] = {}
        for gid, (kind, src) in cells_by_id(nb).items():
            if gid not in too_short or kind != release_cells[gid][0]:
                continue
            if (gid, src) not in done:
                done[(gid, src)] = fingerprint_cell(kind, src, given.get(gid, set()), settings)
            cell = done[(gid, src)]
            if cell.is_too_short(settings):
                if doc in students:
                    too_short[gid].append(doc)
                continue
            fingerprinted[doc][gid] = cell
    found, common_by_cell = [], {}
    for gid in ids:
        common = common_by_cell[gid] = common_prints(fingerprinted, student_ids, gid, settings)
        ref = reference.get(gid, set())
        docs = {d: cells[gid] for d, cells in fingerprinted.items() if gid in cells}
        for a, b in sorted(candidate_pairs(docs, common, set(earlier_ids))):
            sim = similarity(docs[a], docs[b], common, ref, settings)
            found.append(pair_match(a, b, gid, sim, docs, common, ref, partners, dismissed, settings))
    found.sort(key=lambda c: (-c.score, c.a, c.b, c.grade_id))
    return ComparisonResult(ids, student_ids, earlier_ids, fingerprinted, too_short, found, common_by_cell, reference,
                            settings)


def pair_match(a, b, gid, sim, docs, common, ref, partners, dismissed, settings) -> Match:
    """One compared cell pair; highlighted ranges only from half the threshold up (the rest is noise)."""
    match = Match(a, b, gid, round(sim, 4), state(a, b, gid, sim, partners, dismissed, settings))
    if sim >= settings.threshold / 2:
        shared = docs[a].prints.keys() & docs[b].prints.keys()
        match.spans_a = spans(docs[a], shared, common, ref)
        match.spans_b = spans(docs[b], shared, common, ref)
        match.fragment = longest_fragment(docs[a].source, match.spans_a)
    return match


def clusters(pairs: Iterable[Tuple[str, str]]) -> List[List[str]]:
    """Connected components of a graph given by its edges (union-find), biggest first."""
    parent: Dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: Dict[str, List[str]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g))


def spreadsheet_safe(text: str) -> str:
    """Text that a spreadsheet shows as text, never as a formula (leading = + - @ tab or CR)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
