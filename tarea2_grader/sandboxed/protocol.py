"""The boundary between the trusted grader and the sandboxed agent: its one codec, and its schema.

Both sides import this module and nothing else of each other: the agent (``sandboxed/agent.py``,
run inside bubblewrap, where this file is bound read-only beside it at ``/run/tarea2/``) and the
trusted side (:mod:`tarea2_grader.engine.session`, :mod:`tarea2_grader.engine.runner`,
:mod:`tarea2_grader.engine.tamano`).  Standard library only (torch is imported inside the
functions that build or describe a tensor); it decides nothing.  Everything that crosses the
boundary from the sandbox is untrusted: the trusted side decodes replies strictly
(:mod:`tarea2_grader.engine.wire`) and never runs them.

Frames
    A 4-byte big-endian length, then that many bytes of UTF-8 JSON (``NaN`` and ``Infinity``
    allowed).  A reader refuses a frame longer than :data:`MAX_FRAME` bytes.

Values (:func:`encode`, :func:`decode`)
    ``None``, booleans, numbers and strings as themselves (an integer beyond 2**62 as a float);
    a list as a list; a tuple as ``{"__tuple__": [values]}``; a dict with string keys as a dict of
    values; a strided real or boolean tensor as ``{"__tensor__": {"dtype": "float64", "shape":
    [2, 3], "data": [6 numbers, row-major]}}`` (dtypes: float64, float32, float16, bfloat16,
    int64, int32, int16, int8, uint8, bool); anything else, and anything nested deeper than 20,
    as ``{"__type__": "<its type's name>"}``.

Sizes (:func:`content_size`)
    An output's size is the UTF-8 bytes of every string inside it.  A string that was left out
    for its size is replaced by :data:`OMITTED_PREFIX` followed by that size in decimal.

The agent's configuration: ``argv[1]`` of ``python -B agent.py`` is a JSON object
    ``{"fd": int (the control socket), "workdir": str, "isolated": bool (inside bubblewrap),
    "memory_mb": int, "cpu_seconds": int}``.

The control channel (supervisor <-> anchor, a socket pair; every request carries an ``"id"``
(str) that its reply repeats)
    * on start the anchor sends ``{"id": "ready", "status": "ok", "torch": str (its version)}``;
    * ``{"op": "alumno", "id"}`` with one file descriptor attached (``SCM_RIGHTS``): the socket of
      the next student; the anchor forks that student's holder -> ``{"id", "status": "ok"}``;
    * ``{"op": "terminar", "id"}``: end the holder and every process but the anchor -> ``{"id",
      "status": "ok", "signal": int}`` (the holder died on that signal) or ``{"id", "status": "ok",
      "exit": int or null}``;
    * ``{"op": "limpiar", "id"}``: end the student's processes, empty the scratch folders ->
      ``{"id", "status": "ok" or "error", "left": [pid (int) or "shm:<id>", "msg:<id>",
      "sem:<id>" (str), what could not be removed]}``;
    * ``{"op": "fin"}``, or the end of the channel: the anchor exits;
    * any other request -> ``{"id", "status": "error"}``.

The student channel (supervisor <-> one student's holder; every request carries ``"id"`` (str)
and ``"timeout"`` (float, seconds: the supervisor's limit), and its reply repeats the ``"id"``)
    * on start the holder sends ``{"id": "ready", "status": "ok", "barrera": bool (the process
      barrier is installed), "motivo": str (why not, else "")}``, before any student statement;
    * ``{"op": "cell", "id", "timeout", "source": str, "max_output": int (bytes of content one
      output keeps), "max_cell": int (bytes of content the cell's outputs keep together), "replay":
      bool (optional: the cell is run again to rebuild the state; no outputs come back)}`` -> ``{"id", "status":
      "ok", "memory": bool (an output is a MemoryError), "outputs": [output, ...] (absent on
      replay)}``.  An output is nbformat-shaped: ``{"output_type": "stream", "name": "stdout" or
      "stderr", "text": str, "resto": omitted marker (optional: what was dropped)}``,
      ``{"output_type": "display_data", "data": {mime: value}, "metadata": {...}}``,
      ``{"output_type": "execute_result", "execution_count": int, "data", "metadata"}`` or
      ``{"output_type": "error", "ename": str, "evalue": str, "traceback": [str]}``; an output
      left out for its size is ``{"output_type": "display_data", "metadata": {}, "data":
      {"text/plain": omitted marker}}``;
    * ``{"op": "test", "id", "timeout", "probe": str (a function of probe_source), "probe_source":
      str (Python), "helpers_source": str (Python, or "" when the test lends no helpers),
      "inputs": value}`` -> ``{"id", "status": "ok", "result": value (what the probe
      returned)}``, or ``{"id", "status": "memory" or "error", "error": str}``;
    * ``{"op": "fin"}``, or the end of the channel: the holder exits;
    * any other request -> ``{"id", "status": "error", "error": str}``.
"""
import json
import os
import re
import struct

MAX_FRAME = 64 * 1024 * 1024
HEADER = 4  # bytes of a frame's length

#: A string left out for its size; the number after it is that size.
OMITTED_PREFIX = "\x00tarea2-omitido:"
_OMITTED = re.compile(r"^\x00tarea2-omitido:(\d+)$")


class FrameTooLarge(ValueError):
    """A frame announced more than :data:`MAX_FRAME` bytes."""


# --------------------------------------------------------------------------- frames


def pack(obj) -> bytes:
    """One frame (length + JSON) holding ``obj``."""
    data = json.dumps(obj, allow_nan=True).encode("utf-8")
    return struct.pack(">I", len(data)) + data


def length_of(head: bytes) -> int:
    """The body length a frame's 4-byte header announces."""
    (n,) = struct.unpack(">I", head)
    return n


def unpack_body(data: bytes):
    """The JSON value of a frame's body."""
    return json.loads(data.decode("utf-8"))


def read_frame_with(read_exact):
    """One frame read through ``read_exact(n)`` (n bytes, or None at the end); None at the end.

    Raises :class:`FrameTooLarge`, and ValueError when the body is not UTF-8 JSON."""
    head = read_exact(HEADER)
    if head is None:
        return None
    n = length_of(head)
    if n > MAX_FRAME:
        raise FrameTooLarge("frame too large")
    data = read_exact(n)
    return None if data is None else unpack_body(data)


def write_all(fd, data):
    """Write every byte of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_frame(fd, obj):
    """Write one frame (length + JSON) to ``fd``."""
    write_all(fd, pack(obj))


def read_exact(fd, n):
    """Exactly ``n`` bytes from ``fd``; None when it ends first."""
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    """Read one frame from ``fd``; None at end of file."""
    return read_frame_with(lambda n: read_exact(fd, n))


# --------------------------------------------------------------------------- values


def encode(value, depth=0):
    """A JSON-able description of ``value``: tensors, numbers, strings, lists, dicts."""
    import torch

    if depth > 20:
        return {"__type__": "demasiado anidado"}
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.layout != torch.strided or t.is_complex() or t.dtype not in _encodable():
            return {"__type__": "Tensor de tipo {}".format(str(t.dtype).replace("torch.", ""))}
        t = t.to("cpu")
        flat = t.reshape(-1).tolist()
        return {"__tensor__": {"dtype": str(t.dtype).replace("torch.", ""),
                               "shape": list(t.shape), "data": flat}}
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 62:
            return float(value)
        return value
    if isinstance(value, (list, tuple)):
        items = [encode(v, depth + 1) for v in value]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: encode(v, depth + 1) for k, v in value.items()}
    return {"__type__": type(value).__name__}


def decode(value):
    """Inverse of :func:`encode` for the grader's inputs (trusted data; replies are decoded by
    :mod:`tarea2_grader.engine.wire`)."""
    import torch

    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            spec = value["__tensor__"]
            dtype = getattr(torch, spec["dtype"])
            return torch.tensor(spec["data"], dtype=dtype).reshape(spec["shape"])
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    return value


def _encodable():
    import torch

    return (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
            torch.int16, torch.int8, torch.uint8, torch.bool)


# --------------------------------------------------------------------------- sizes


def omitted_size(value):
    """The recorded size of a string left out for its size (None for any other value)."""
    if isinstance(value, str) and value.startswith(OMITTED_PREFIX):
        m = _OMITTED.match(value)
        return int(m.group(1)) if m else None
    return None


def text_size(value: str) -> int:
    """Bytes of a string in UTF-8 (a left-out string: its recorded size)."""
    left_out = omitted_size(value)
    if left_out is not None:
        return left_out
    return len(value) if value.isascii() else len(value.encode("utf-8", "replace"))


def content_size(obj, depth: int = 0) -> int:
    """Bytes of every string inside ``obj`` (dict values, list items), in UTF-8."""
    if isinstance(obj, str):
        return text_size(obj)
    if depth > 50:
        return 0
    if isinstance(obj, dict):
        return sum(content_size(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(content_size(v, depth + 1) for v in obj)
    return 0
