"""Copy detection per answer cell: pure functions, no nbgrader, no student code run.

Notebooks are read as JSON only.  For every answer cell (by ``grade_id``) each student's text is
reduced to tokens: code through Python's ``tokenize`` with local names, numbers and strings
collapsed (renaming a variable changes nothing) but keywords, builtins, the modules and every
attribute name kept (``torch.tanh`` and ``torch.sigmoid`` stay different: copydetect's tokenizer
turns every name into one token, which makes short answers of this assignment, made of torch
calls, all look alike); markdown derivations lowercased, accents, LaTeX spacing and synonyms
(``\\dfrac``/``\\frac``, ``\\left``...) and Spanish stop words removed.  Code k-grams never cross a
statement boundary, so reordered independent statements keep their fingerprints.  The k-grams
are winnowed (Schleimer, Wilkerson, Aiken 2003); those that also occur in the release (stub,
given code, the statement's formulas) are dropped, and the tokens they cover do not count as the
student's own.  A cell with fewer own tokens than a minimum is "demasiado corta" and never
flagged.  Fingerprints found in the reference solution or in a large share of the class weigh
less (as MOSS ignores common code) and are labelled.  Pairs are only compared when they share
a fingerprint (an inverted index), never every pair in full.
"""
from __future__ import annotations

import csv
import io
import json
import keyword
import math
import os
import re
import tokenize
import builtins
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

# ---------------------------------------------------------------- settings


@dataclass
class Ajustes:
    """Knobs of the comparison (the README states the defaults)."""

    umbral: float = 0.5          # a cell pair at or above this similarity is flagged
    k_codigo: int = 5            # tokens per code k-gram (inside one statement)
    k_texto: int = 4             # tokens per markdown k-gram
    ventana: int = 4             # winnowing window (k-grams)
    minimo_propio: int = 40      # own tokens below this: "demasiado corta", never flagged
    comun_fraccion: float = 0.25  # a fingerprint in at least this share of the class is common...
    comun_minimo: int = 10       # ... and in at least this many students
    peso_comun: float = 0.2      # weight of a common fingerprint
    peso_referencia: float = 0.3  # weight of a code fingerprint found in the reference solution
    peso_referencia_texto: float = 0.7  # the same in a derivation (prose copied from the key is evidence)


CORTA = "demasiado corta"
KEEP_NAMES = frozenset({"torch", "math", "np", "numpy", "nn", "F", "functional", "self", "super"}
                       | {n for n in dir(builtins) if not n.startswith("_")})
CODE_STUB_LINES = re.compile(r"^[ \t]*[!%].*$", re.M)  # shell and magic lines: not Python
FALLBACK_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\"[^\"\n]*\"|'[^'\n]*'|#[^\n]*|\n|[^\s\w]")
MD_TOKEN = re.compile(r"\\[a-z]+|[a-z0-9]+|[^\s\w{}$*#`]")
LATEX_DROP = re.compile(r"\\(?:left|right|big|bigg|Big|Bigg|bigl|bigr|Bigl|Bigr|displaystyle|quad|qquad|"
                        r"mathrm|mathit|mathbf|mathcal|mathbb|text|operatorname|,|;|!|:)(?![a-zA-Z])")
LATEX_SYNONYMS = (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cdot", "*"), ("\\times", "*"),
                  ("\\top", "t"), ("^{\\prime}", "'"), ("\\odot", "*"), ("\\circ", "*"))
STOP_WORDS = frozenset(
    "a al algo como con cual cuando de del donde e el ella en entonces era es esa ese eso esta este esto "
    "hay la las lo los mas me mi muy ni no o para pero por porque que se si sin sobre son su sus tambien "
    "tiene un una uno unos unas y ya asi cada ser usando usamos vale queda da the of and to is".split())


# ---------------------------------------------------------------- tokens


@dataclass
class Token:
    """One normalised token and where it sits in the original text (character offsets)."""

    texto: str
    inicio: int
    fin: int


def _line_offsets(source: str) -> List[int]:
    """Offset of the start of every line (1-based line numbers index it with n - 1)."""
    offsets, total = [], 0
    for line in source.splitlines(keepends=True) or [""]:
        offsets.append(total)
        total += len(line)
    offsets.append(total)
    return offsets


def _code_name(name: str, previous: List[str]) -> str:
    """A NAME token: keywords, builtins, modules and attributes (not ``self``'s) kept; others 'V'."""
    if keyword.iskeyword(name) or name in KEEP_NAMES:
        return name
    if len(previous) >= 1 and previous[-1] == "." and not (len(previous) >= 2 and previous[-2] == "self"):
        return name
    return "V"


def code_statements(source: str) -> List[List[Token]]:
    """Code as statements of normalised tokens; comments, blank lines and magics dropped."""
    cleaned = CODE_STUB_LINES.sub(lambda m: " " * len(m.group(0)), source)
    try:
        return _tokenize_statements(cleaned)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _fallback_statements(cleaned)


def _tokenize_statements(source: str) -> List[List[Token]]:
    """``tokenize`` pass (raises on code it cannot tokenize)."""
    offsets = _line_offsets(source)
    statements, current, texts = [], [], []
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NEWLINE:
            if current:
                statements.append(current)
            current = []
            continue
        if tok.type in skip or not tok.string.strip():
            continue
        if tok.type == tokenize.NAME:
            text = _code_name(tok.string, texts)
        elif tok.type == tokenize.NUMBER:
            text = "N"
        elif tok.type == tokenize.STRING:
            text = "S"
        else:
            text = tok.string
        texts.append(tok.string)
        start = offsets[tok.start[0] - 1] + tok.start[1]
        end = offsets[tok.end[0] - 1] + tok.end[1]
        current.append(Token(text, start, end))
    if current:
        statements.append(current)
    return statements


def _fallback_statements(source: str) -> List[List[Token]]:
    """A rough regex tokenizer for text that is not valid Python (one statement per line)."""
    statements, current, texts = [], [], []
    for m in FALLBACK_TOKEN.finditer(source):
        raw = m.group(0)
        if raw == "\n":
            if current:
                statements.append(current)
            current = []
            continue
        if raw.startswith("#"):
            continue
        if raw[0].isalpha() or raw[0] == "_":
            text = _code_name(raw, texts)
        elif raw[0].isdigit():
            text = "N"
        elif raw[0] in "\"'":
            text = "S"
        else:
            text = raw
        texts.append(raw)
        current.append(Token(text, m.start(), m.end()))
    if current:
        statements.append(current)
    return statements


def _fold(text: str) -> str:
    """Lowercase without accents (same length is not needed: offsets come from the original)."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)).lower()


def markdown_tokens(source: str) -> List[Token]:
    """A derivation as tokens: words and LaTeX commands, spacing/synonyms/stop words removed.

    Offsets point into ``source``: the normalisation is done token by token on a same-length copy.
    """
    blanked = LATEX_DROP.sub(lambda m: " " * len(m.group(0)), source)
    tokens = []
    for m in re.finditer(r"\\[A-Za-z]+|[^\W_]+|[^\s\w{}$*#`]|_", blanked):
        raw = m.group(0)
        text = _fold(raw)
        for old, new in LATEX_SYNONYMS:
            if text == old:
                text = new
        if text in STOP_WORDS or not text.strip():
            continue
        tokens.append(Token(text, m.start(), m.end()))
    return tokens


# ---------------------------------------------------------------- fingerprints


def _hash(texts: Iterable[str]) -> int:
    """A stable 64-bit hash of a k-gram (CRC-32 and Adler-32 side by side: fast, and the same in
    every run, unlike Python's salted hash(), so that reruns give the same figures)."""
    data = "\x1f".join(texts).encode("utf-8")
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def kgrams(segments: List[List[Token]], k: int) -> List[Tuple[int, int, int]]:
    """(hash, first token, last token + 1) of every k-gram inside each segment, indices over all tokens.

    A segment shorter than k but with at least 3 tokens gives one gram of itself."""
    grams, base = [], 0
    for seg in segments:
        n = len(seg)
        if n >= k:
            for i in range(n - k + 1):
                grams.append((_hash(t.texto for t in seg[i:i + k]), base + i, base + i + k))
        elif n >= 3:
            grams.append((_hash(t.texto for t in seg), base, base + n))
        base += n
    return grams


def winnow(grams: List[Tuple[int, int, int]], w: int) -> List[Tuple[int, int, int]]:
    """Robust winnowing: the minimum hash of every window of w grams (rightmost on ties), once each."""
    if len(grams) <= w:
        return list(grams)
    chosen, last = [], -1
    for start in range(len(grams) - w + 1):
        window = grams[start:start + w]
        best = min(range(w), key=lambda i: (window[i][0], -i))
        if start + best != last:
            last = start + best
            chosen.append(grams[last])
    return chosen


@dataclass
class Celda:
    """One student's answer cell, fingerprinted."""

    tipo: str                      # "code" or "markdown"
    fuente: str
    tokens: List[Token]
    huellas: Dict[int, List[Tuple[int, int]]]  # own fingerprint -> token spans where it occurs
    propios: int                   # tokens not covered by the release's k-grams

    def es_corta(self, ajustes: Ajustes) -> bool:
        """Too little of the student's own content to compare."""
        return self.propios < ajustes.minimo_propio


def segments_of(tipo: str, source: str) -> List[List[Token]]:
    """Token segments: statements for code, the whole text for markdown."""
    if tipo == "code":
        return code_statements(source)
    return [markdown_tokens(source)]


def all_grams(tipo: str, source: str, ajustes: Ajustes) -> Set[int]:
    """Every k-gram hash of a text (for the release and the reference, nothing winnowed)."""
    k = ajustes.k_codigo if tipo == "code" else ajustes.k_texto
    return {h for h, _s, _e in kgrams(segments_of(tipo, source), k)}


def fingerprint_cell(tipo: str, source: str, dado: Set[int], ajustes: Ajustes) -> Celda:
    """A student's cell: winnowed fingerprints minus those of the release (``dado``)."""
    segments = segments_of(tipo, source)
    tokens = [t for seg in segments for t in seg]
    k = ajustes.k_codigo if tipo == "code" else ajustes.k_texto
    grams = kgrams(segments, k)
    covered = [False] * len(tokens)
    for h, s, e in grams:
        if h in dado:
            for i in range(s, e):
                covered[i] = True
    huellas: Dict[int, List[Tuple[int, int]]] = {}
    for h, s, e in winnow(grams, ajustes.ventana):
        if h not in dado:
            huellas.setdefault(h, []).append((s, e))
    return Celda(tipo, source, tokens, huellas, covered.count(False))


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
            tipo = "code" if cell.get("cell_type") == "code" else "markdown"
            found[gid] = (tipo, _text(cell.get("source")))
    return found


def answer_ids(release_nb: dict) -> List[str]:
    """The answer cells of the release (nbgrader ``solution``), in order."""
    ids = []
    for cell in release_nb.get("cells", []):
        nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
        if nbg.get("solution") and nbg.get("grade_id"):
            ids.append(nbg["grade_id"])
    return ids


def given_grams(release_nb: dict, ajustes: Ajustes) -> Dict[str, Set[int]]:
    """Every k-gram the release gives each answer cell: the cell's own stub and given code, and for
    a derivation also the statement's text and formulas (the release's other markdown cells)."""
    answers = set(answer_ids(release_nb))
    statement: Set[int] = set()
    for cell in release_nb.get("cells", []):
        nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
        if cell.get("cell_type") == "markdown" and nbg.get("grade_id") not in answers:
            statement |= all_grams("markdown", _text(cell.get("source")), ajustes)
    given = {}
    for gid, (tipo, src) in cells_by_id(release_nb).items():
        given[gid] = all_grams(tipo, src, ajustes) | (statement if tipo == "markdown" else set())
    return given


MARKERS = re.compile(r"^[ \t]*### (?:BEGIN|END) (?:SOLUTION|HIDDEN TESTS)[ \t]*$", re.M)


def reference_grams(source_cells: Dict[str, Tuple[str, str]], ids: Iterable[str],
                    ajustes: Ajustes) -> Dict[str, Set[int]]:
    """k-grams of the reference solution, per answer cell (from the master notebook's cells)."""
    out = {}
    for gid in ids:
        if gid in source_cells:
            tipo, src = source_cells[gid]
            out[gid] = all_grams(tipo, MARKERS.sub("", src), ajustes)
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
class Coincidencia:
    """One cell of one pair that shares fingerprints."""

    a: str
    b: str
    celda: str
    similitud: float
    estado: str = ""                                   # "marcada", "companeros", "descartada" or ""
    tramos_a: List[Tuple[int, int, str]] = field(default_factory=list)  # (start, end, label) in a's source
    tramos_b: List[Tuple[int, int, str]] = field(default_factory=list)
    fragmento: str = ""


@dataclass
class Resultado:
    """Everything the report needs from the comparison."""

    celdas: List[str]
    alumnos: List[str]
    antecedentes: List[str]
    fuentes: Dict[str, Dict[str, Celda]]               # document -> grade_id -> cell
    cortas: Dict[str, List[str]]                       # grade_id -> documents too short to compare
    coincidencias: List[Coincidencia]                  # every compared cell pair, best first
    comunes: Dict[str, Set[int]]
    referencia: Dict[str, Set[int]]
    ajustes: Ajustes

    def marcadas(self) -> List[Coincidencia]:
        """Flagged cell pairs, best first."""
        return [c for c in self.coincidencias if c.estado == "marcada"]

    def grupos(self) -> List[List[str]]:
        """Clusters: connected components of the flagged pairs, biggest first."""
        return clusters((c.a, c.b) for c in self.marcadas())


def weight(h: int, tipo: str, comunes: Set[int], referencia: Set[int], ajustes: Ajustes) -> float:
    """How much a shared fingerprint counts: less when common in the class or in the reference."""
    w = 1.0
    if h in comunes:
        w = min(w, ajustes.peso_comun)
    if h in referencia:
        w = min(w, ajustes.peso_referencia if tipo == "code" else ajustes.peso_referencia_texto)
    return w


def similarity(x: Celda, y: Celda, comunes: Set[int], referencia: Set[int], ajustes: Ajustes) -> float:
    """Dice coefficient of two cells' fingerprint sets, shared fingerprints weighted (0 to 1).

    Only the shared part is discounted: two cells made of nothing but common or reference
    fragments score at most that fragments' weight, whatever their size."""
    shared = x.huellas.keys() & y.huellas.keys()
    both = sum(weight(h, x.tipo, comunes, referencia, ajustes) for h in shared)
    size = len(x.huellas) + len(y.huellas)
    return 2 * both / size if size else 0.0


def label(h: int, comunes: Set[int], referencia: Set[int]) -> str:
    """Why a shared fragment is discounted ('' when it is not)."""
    if h in referencia:
        return "referencia"
    if h in comunes:
        return "comun"
    return ""


def spans(cell: Celda, shared: Set[int], comunes: Set[int], referencia: Set[int]) -> List[Tuple[int, int, str]]:
    """Character ranges of the shared fingerprints in a cell's source, merged, each with its label."""
    marks = []
    for h in shared:
        for s, e in cell.huellas[h]:
            marks.append((cell.tokens[s].inicio, cell.tokens[e - 1].fin, label(h, comunes, referencia)))
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


def common_prints(fuentes: Dict[str, Dict[str, Celda]], alumnos: List[str], gid: str,
                  ajustes: Ajustes) -> Set[int]:
    """Fingerprints of a cell found in a large share of the class (antecedentes do not count)."""
    counts: Dict[int, int] = {}
    for s in alumnos:
        cell = fuentes.get(s, {}).get(gid)
        if cell is not None:
            for h in cell.huellas:
                counts[h] = counts.get(h, 0) + 1
    cutoff = max(ajustes.comun_minimo, math.ceil(ajustes.comun_fraccion * len(alumnos)))
    return {h for h, n in counts.items() if n >= cutoff}


def candidate_pairs(docs: Dict[str, Celda], skip: Set[int], antecedentes: Set[str]) -> Set[Tuple[str, str]]:
    """Pairs that share at least one fingerprint outside ``skip``, through an inverted index.

    Two earlier submissions are never paired with each other."""
    index: Dict[int, List[str]] = {}
    for doc, cell in docs.items():
        for h in cell.huellas:
            if h not in skip:
                index.setdefault(h, []).append(doc)
    pairs = set()
    for posting in index.values():
        posting.sort()
        for i, a in enumerate(posting):
            for b in posting[i + 1:]:
                if not (a in antecedentes and b in antecedentes):
                    pairs.add((a, b))
    return pairs


def state(a: str, b: str, gid: str, sim: float, partners: Set[frozenset],
          dismissed: Set[Tuple[frozenset, str]], ajustes: Ajustes) -> str:
    """'marcada' at or above the threshold unless the pair declared it or the instructor dismissed it."""
    if sim < ajustes.umbral:
        return ""
    pair = frozenset((a, b))
    if pair in partners:
        return "companeros"
    if (pair, gid) in dismissed or (pair, "*") in dismissed:
        return "descartada"
    return "marcada"


def compare(release_nb: dict, source_nb: dict, students: Dict[str, dict],
            antecedentes: Optional[Dict[str, dict]] = None, ajustes: Optional[Ajustes] = None,
            partners: Set[frozenset] = frozenset(), dismissed: Set[Tuple[frozenset, str]] = frozenset()) -> Resultado:
    """Compare every answer cell of ``students`` (and earlier submissions) pair by pair through the index."""
    ajustes = ajustes or Ajustes()
    antecedentes = antecedentes or {}
    ids = answer_ids(release_nb)
    release_cells = cells_by_id(release_nb)
    dado = given_grams(release_nb, ajustes)
    referencia = reference_grams(cells_by_id(source_nb), ids, ajustes)
    alumnos, previos = sorted(students), sorted(antecedentes)
    fuentes: Dict[str, Dict[str, Celda]] = {}
    cortas: Dict[str, List[str]] = {gid: [] for gid in ids}
    done: Dict[Tuple[str, str], Celda] = {}  # the same text (an untouched stub, a shared file) once
    for doc, nb in list(students.items()) + list(antecedentes.items()):
        fuentes[doc] = {}
        for gid, (tipo, src) in cells_by_id(nb).items():
            if gid not in cortas or tipo != release_cells[gid][0]:
                continue
            if (gid, src) not in done:
                done[(gid, src)] = fingerprint_cell(tipo, src, dado.get(gid, set()), ajustes)
            cell = done[(gid, src)]
            if cell.es_corta(ajustes):
                if doc in students:
                    cortas[gid].append(doc)
                continue
            fuentes[doc][gid] = cell
    found, comunes_all = [], {}
    for gid in ids:
        comunes = comunes_all[gid] = common_prints(fuentes, alumnos, gid, ajustes)
        ref = referencia.get(gid, set())
        docs = {d: cells[gid] for d, cells in fuentes.items() if gid in cells}
        for a, b in sorted(candidate_pairs(docs, comunes, set(previos))):
            sim = similarity(docs[a], docs[b], comunes, ref, ajustes)
            found.append(pair_match(a, b, gid, sim, docs, comunes, ref, partners, dismissed, ajustes))
    found.sort(key=lambda c: (-c.similitud, c.a, c.b, c.celda))
    return Resultado(ids, alumnos, previos, fuentes, cortas, found, comunes_all, referencia, ajustes)


def pair_match(a, b, gid, sim, docs, comunes, ref, partners, dismissed, ajustes) -> Coincidencia:
    """One compared cell pair; highlighted ranges only from half the threshold up (the rest is noise)."""
    match = Coincidencia(a, b, gid, round(sim, 4), state(a, b, gid, sim, partners, dismissed, ajustes))
    if sim >= ajustes.umbral / 2:
        shared = docs[a].huellas.keys() & docs[b].huellas.keys()
        match.tramos_a = spans(docs[a], shared, comunes, ref)
        match.tramos_b = spans(docs[b], shared, comunes, ref)
        match.fragmento = longest_fragment(docs[a].fuente, match.tramos_a)
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
