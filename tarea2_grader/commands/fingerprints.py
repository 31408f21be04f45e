"""Fingerprints of one answer cell for copy detection (similitud.py): tokens, k-grams, winnowing.

Each student's text is reduced to tokens: code through Python's ``tokenize`` with local names,
numbers and strings collapsed (renaming a variable changes nothing) but keywords, builtins, the
modules and every attribute name kept (``torch.tanh`` and ``torch.sigmoid`` stay different:
copydetect's tokenizer turns every name into one token, which makes short answers of this
assignment, made of torch calls, all look alike); markdown derivations lowercased, accents, LaTeX
spacing and synonyms (``\\dfrac``/``\\frac``, ``\\left``...) and Spanish stop words removed.  Code
k-grams never cross a statement boundary, so reordered independent statements keep their
fingerprints.  The k-grams are winnowed (Schleimer, Wilkerson, Aiken 2003); those that also occur
in the release (stub, given code, the statement's formulas) are dropped, and the tokens they cover
do not count as the student's own.  Pure functions on text.
"""
from __future__ import annotations

import builtins
import io
import keyword
import re
import tokenize
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Dict, Iterable, List, Set, Tuple

# ---------------------------------------------------------------- settings


@dataclass
class ComparisonSettings:
    """Knobs of the comparison (the README states the defaults)."""

    threshold: float = 0.5              # a cell pair at or above this similarity is flagged
    k_code: int = 5                     # tokens per code k-gram (inside one statement)
    k_text: int = 4                     # tokens per markdown k-gram
    window: int = 4                     # winnowing window (k-grams)
    min_own_tokens: int = 40            # own tokens below this: "demasiado corta", never flagged
    common_share: float = 0.25          # a fingerprint in at least this share of the class is common...
    common_min_students: int = 10       # ... and in at least this many students
    common_weight: float = 0.2          # weight of a common fingerprint
    reference_weight: float = 0.3       # weight of a code fingerprint found in the reference solution
    reference_text_weight: float = 0.7  # the same in a derivation (prose copied from the key is evidence)


TOO_SHORT = "demasiado corta"
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

    text: str
    start: int
    end: int


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
                grams.append((_hash(t.text for t in seg[i:i + k]), base + i, base + i + k))
        elif n >= 3:
            grams.append((_hash(t.text for t in seg), base, base + n))
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
class FingerprintedCell:
    """One student's answer cell, fingerprinted."""

    kind: str                  # "code" or "markdown"
    source: str
    tokens: List[Token]
    prints: Dict[int, List[Tuple[int, int]]]  # own fingerprint -> token spans where it occurs
    own_tokens: int            # tokens not covered by the release's k-grams

    def is_too_short(self, settings: ComparisonSettings) -> bool:
        """Too little of the student's own content to compare."""
        return self.own_tokens < settings.min_own_tokens


def segments_of(kind: str, source: str) -> List[List[Token]]:
    """Token segments: statements for code, the whole text for markdown."""
    if kind == "code":
        return code_statements(source)
    return [markdown_tokens(source)]


def all_grams(kind: str, source: str, settings: ComparisonSettings) -> Set[int]:
    """Every k-gram hash of a text (for the release and the reference, nothing winnowed)."""
    k = settings.k_code if kind == "code" else settings.k_text
    return {h for h, _s, _e in kgrams(segments_of(kind, source), k)}


def fingerprint_cell(kind: str, source: str, given: Set[int], settings: ComparisonSettings) -> FingerprintedCell:
    """A student's cell: winnowed fingerprints minus those of the release (``given``)."""
    segments = segments_of(kind, source)
    tokens = [t for seg in segments for t in seg]
    k = settings.k_code if kind == "code" else settings.k_text
    grams = kgrams(segments, k)
    covered = [False] * len(tokens)
    for h, s, e in grams:
        if h in given:
            for i in range(s, e):
                covered[i] = True
    prints: Dict[int, List[Tuple[int, int]]] = {}
    for h, s, e in winnow(grams, settings.window):
        if h not in given:
            prints.setdefault(h, []).append((s, e))
    return FingerprintedCell(kind, source, tokens, prints, covered.count(False))

