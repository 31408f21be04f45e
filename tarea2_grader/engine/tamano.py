"""Size limits on what students send and on what of theirs is kept or shown.

One policy for every student output and attachment, wherever it comes from (the cells run while
grading, the outputs submitted for the cells after the last test, markdown attachments):

* an output (or attachment) whose content is over ``SizeLimits.output_mb`` is replaced by a short
  Spanish note that says how big it was and which limit it passed; a text stream keeps its
  beginning, up to the limit, before the note;
* the outputs and attachments of one notebook together stay within ``SizeLimits.notebook_mb``
  (less what the rest of the notebook takes): the first ones in notebook order are kept, the
  rest are replaced by notes.

An output's *size* is the number of bytes of its content: every string it holds (each encoded
image, each text, each traceback line) in UTF-8, keys and JSON punctuation left out
(:func:`tarea2_grader.sandboxed.protocol.content_size`, the measure both sides of the sandbox
use).  1 MB here is 1,000,000 bytes.

Submitted files are capped before anything reads them whole: :func:`read_shrunk` reads a JSON file
in chunks and replaces each string longer than a limit by a short marker that records its size,
so a 150 MB notebook is parsed as a few hundred kB; :func:`cap_submission` does this once for a
submitted notebook and writes the capped notebook back, so every later reading is small.  What a
zip may expand to is checked in :mod:`tarea2_grader.integration.collect`.

Limits, set in ``nbgrader_config.py`` (``c.SizeLimits.<name>``): ``file_mb`` (each submitted
file, uncompressed), ``archive_mb`` (everything extracted from one LMS download), ``archive_entries``
(entries in one archive), ``output_mb`` and ``notebook_mb``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import List, Optional

from traitlets import Float, Integer
from traitlets.config import Configurable

from tarea2_grader.sandboxed.protocol import OMITTED_PREFIX, content_size, omitted_size

MB = 1000 * 1000

CHUNK = 1 << 20
# The body of a JSON string from its opening quote: plain bytes, or escapes (unrolled loop).
_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)


class SizeLimits(Configurable):
    """Size caps on submissions, outputs and attachments (``c.SizeLimits.<name>`` in nbgrader_config.py)."""

    file_mb = Float(200.0, help="MB each submitted file may take, uncompressed; larger ones are refused "
                                "with a reason in the student's row.").tag(config=True)
    archive_mb = Float(4096.0, help="MB everything extracted from one LMS download (zip or tar, nested "
                                    "archives included) may take.").tag(config=True)
    archive_entries = Integer(100000, help="Entries one archive may hold (an archive with more is not "
                                           "opened).").tag(config=True)
    output_mb = Float(2.0, help="MB of content per student output or markdown attachment kept in the "
                                "autograded notebook (formgrader, feedback); a larger one is replaced by "
                                "a note.").tag(config=True)
    notebook_mb = Float(20.0, help="MB of content per autograded notebook: outputs and attachments past "
                                   "it are replaced by notes.").tag(config=True)

    def caps(self) -> "Caps":
        """The output and notebook caps in bytes."""
        return Caps(int(self.output_mb * MB), int(self.notebook_mb * MB))


@dataclass(frozen=True)
class Caps:
    """Output and notebook caps, in bytes."""

    output: int = 2 * MB
    notebook: int = 20 * MB


# ---------------------------------------------------------------- sizes and notes


def fmt_mb(nbytes: int) -> str:
    """A size in Spanish: '150 MB', '2,5 MB', '2 MB', '300 kB', '12 bytes'."""
    if nbytes >= 10 * MB or (nbytes >= MB and nbytes % MB == 0):
        return "{:.0f} MB".format(nbytes / MB)
    if nbytes >= MB:
        return "{:.1f} MB".format(nbytes / MB).replace(".", ",")
    if nbytes >= 1000:
        return "{:.0f} kB".format(nbytes / 1000)
    return "{} bytes".format(nbytes)


def note_text(nbytes: int, limit: int, what: str = "salida", per_notebook: bool = False) -> str:
    """The Spanish note that takes the place of an output or attachment that was cut."""
    article = "omitido" if what == "adjunto" else "omitida"
    if per_notebook:
        why = "el notebook ya llegó al límite de {} para salidas y adjuntos".format(fmt_mb(limit))
    else:
        why = "supera el límite de {} por {}".format(fmt_mb(limit), what)
    return "({} de {} {}: {})".format(what, fmt_mb(nbytes), article, why)


def _cut_stream(output: dict, keep_bytes: int, note: str) -> dict:
    """A stream output's beginning followed by the note, within ``keep_bytes`` (or the note alone)."""
    name = "stderr" if output.get("name") == "stderr" else "stdout"
    alone = {"output_type": "stream", "name": name, "text": note + "\n"}
    text = output.get("text")
    if isinstance(text, list):
        text = "".join(t for t in text if isinstance(t, str))
    if not isinstance(text, str) or omitted_size(text) is not None:
        return alone
    note = note.replace(" omitida:", " recortada, se muestra el comienzo:", 1)
    keep = keep_bytes - content_size({"o": "stream", "n": name, "t": note}) - 2  # two newlines
    head = text.encode("utf-8")[:max(0, keep)].decode("utf-8", "ignore")
    if not head:
        return alone
    head += "" if head.endswith("\n") else "\n"
    return {"output_type": "stream", "name": name, "text": head + note + "\n"}


def cap_output(output: dict, caps: Caps, room: Optional[int] = None) -> dict:
    """``output`` itself when its content is at most ``caps.output`` bytes and at most ``room`` (what
    is left of the notebook's cap; no notebook cap when None); else a note in its place (a stream
    keeps its beginning, within the same bytes)."""
    size = content_size(output)
    room = size if room is None else room
    if size <= caps.output and size <= room:
        return output
    if size > caps.output:
        note, keep = note_text(size, caps.output), min(caps.output, room)
    else:
        note, keep = note_text(size, caps.notebook, per_notebook=True), room
    if isinstance(output, dict) and output.get("output_type") == "stream":
        return _cut_stream(output, keep, note)
    return {"output_type": "stream", "name": "stdout", "text": note + "\n"}


# ---------------------------------------------------------------- whole notebooks


@dataclass
class Report:
    """What :func:`cap_notebook` cut."""

    outputs: int = 0
    attachments: int = 0
    largest: int = 0   # bytes of the largest item cut
    rest: int = 0      # bytes of the notebook without its outputs and attachments

    def messages(self) -> List[str]:
        """Spanish notes for the student's row (empty when nothing was cut)."""
        items = []
        if self.outputs:
            items.append("{} salida(s)".format(self.outputs))
        if self.attachments:
            items.append("{} adjunto(s)".format(self.attachments))
        if not items:
            return []
        return ["{} omitida(s) por tamaño (la mayor, de {}): se reemplazaron por una nota".format(
            " y ".join(items), fmt_mb(self.largest))]


def _cells(nb) -> list:
    cells = nb.get("cells") if isinstance(nb, dict) else None
    return cells if isinstance(cells, list) else []


def notebook_rest_size(nb) -> int:
    """Bytes of a notebook's content other than its outputs and attachments."""
    total = content_size({k: v for k, v in nb.items() if k != "cells"})
    for cell in _cells(nb):
        if isinstance(cell, dict):
            total += content_size({k: v for k, v in cell.items() if k not in ("outputs", "attachments")})
    return total


def _cap_attachments(cell: dict, caps: Caps, room: int, report: Report) -> int:
    """Drop the attachments of a markdown cell over the caps, with a note in its text; the room left."""
    attachments = cell.get("attachments")
    if not isinstance(attachments, dict) or not attachments:
        return room
    notes = []
    for name in list(attachments):
        size = content_size(attachments[name])
        if size <= caps.output and size <= room:
            room -= size
            continue
        per_notebook = size <= caps.output
        note = note_text(size, caps.notebook if per_notebook else caps.output, "adjunto", per_notebook)
        notes.append(note.replace("(adjunto ", "(adjunto '{}' ".format(str(name)[:100]), 1))
        del attachments[name]
        report.attachments += 1
        report.largest = max(report.largest, size)
    if notes:
        source = cell.get("source")
        source = "".join(source) if isinstance(source, list) else (source if isinstance(source, str) else "")
        cell["source"] = source.rstrip("\n") + "\n\n" + "\n\n".join("*{}*".format(n) for n in notes)
    return room


def _like(original, new: dict):
    """``new`` as a NotebookNode when ``original`` is one (nbgrader's preprocessors use attributes)."""
    import nbformat
    return nbformat.from_dict(new) if isinstance(original, nbformat.NotebookNode) else new


def cap_notebook(nb, caps: Caps = Caps()) -> Report:
    """Cap every output and attachment of ``nb`` in place (see the module docstring).

    The notebook's other content (sources, metadata) is measured first; what is left of
    ``caps.notebook`` goes to the outputs and attachments in notebook order.
    """
    report = Report(rest=notebook_rest_size(nb))
    room = max(0, caps.notebook - report.rest)
    for cell in _cells(nb):
        if not isinstance(cell, dict):
            continue
        room = _cap_attachments(cell, caps, room, report)
        outputs = cell.get("outputs")
        if not isinstance(outputs, list):
            continue
        for j, output in enumerate(outputs):
            capped = cap_output(output, caps, room)
            if capped is not output:
                report.outputs += 1
                report.largest = max(report.largest, content_size(output))
                outputs[j] = _like(output, capped)
            room = max(0, room - content_size(outputs[j]))
    return report


# ---------------------------------------------------------------- files read in chunks


def read_shrunk(path: str, max_string: int) -> bytes:
    """The JSON text of ``path`` with every string longer than ``max_string`` bytes (as written,
    escapes included) replaced by a marker that records that size.

    The file is read in chunks of 1 MiB and only the strings that are kept are held in memory.  It
    does not check that the file is JSON: :func:`json.loads` on the result does.
    """
    out: List[bytes] = []
    current: List[bytes] = []
    length, in_string, carry = 0, False, b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            data = carry + chunk
            carry = b""
            if not data:
                break
            pos = 0
            while pos < len(data):
                if not in_string:
                    quote = data.find(b'"', pos)
                    if quote < 0:
                        out.append(data[pos:])
                        break
                    out.append(data[pos:quote + 1])
                    in_string, length, current, pos = True, 0, [], quote + 1
                    continue
                end = _BODY.match(data, pos).end()
                piece = data[pos:end]
                length += len(piece)
                if length <= max_string:
                    current.append(piece)
                else:
                    current = []
                if end >= len(data):
                    break
                if data[end:end + 1] == b"\\":  # an escape cut by the chunk's end
                    if not chunk:
                        break
                    carry = data[end:]
                    break
                if length <= max_string:
                    out.append(b"".join(current))
                else:
                    out.append(('\\u0000' + OMITTED_PREFIX[1:] + str(length)).encode("ascii"))
                out.append(b'"')
                in_string, current, pos = False, [], end + 1
            if not chunk:
                break
    if in_string:  # unterminated: leave it for json.loads to reject
        out.append(b"".join(current))
    return b"".join(out)


def load_shrunk(path: str, max_string: int):
    """The JSON value of ``path`` read through :func:`read_shrunk`; None when it is not JSON."""
    try:
        return json.loads(read_shrunk(path, max_string).decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


class TooLarge(Exception):
    """A submitted notebook over a cap that cutting outputs cannot fix; the message is the Spanish reason."""


def cap_submission(path: str, limits: SizeLimits) -> List[str]:
    """Cap a submitted notebook in place before anything else reads it; Spanish notes for the row.

    Raises :class:`TooLarge` when the file is over ``file_mb`` or its content other than outputs
    and attachments is over ``notebook_mb``.  A file that is not JSON is left as it is (the
    repair step gives the reason).
    """
    caps = limits.caps()
    size = os.path.getsize(path)
    if size > limits.file_mb * MB:
        raise TooLarge("el notebook entregado pesa {} y supera el límite de {} por archivo".format(
            fmt_mb(size), fmt_mb(int(limits.file_mb * MB))))
    if size <= caps.output and size <= caps.notebook:
        return []  # nothing in it can be over a cap
    data = load_shrunk(path, caps.output)
    if not isinstance(data, dict):
        return []
    report = cap_notebook(data, caps)
    if report.rest > caps.notebook:
        raise TooLarge("el notebook pesa {} sin contar salidas ni adjuntos y supera el límite de {} por "
                       "notebook".format(fmt_mb(report.rest), fmt_mb(caps.notebook)))
    tmp = path + ".tamano"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
    os.replace(tmp, path)
    return report.messages()
