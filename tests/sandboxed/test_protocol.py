"""The boundary's one codec (``sandboxed/protocol.py``), as both sides use it.

The agent writes and reads frames on file descriptors, the trusted session reads them from a
socket with a deadline; both must agree on the frame, refuse an oversized one, and measure an
output's size the same way (the agent shrinks what the supervisor would cut anyway).
"""
import os
import socket
import struct
import time

import pytest
import torch

from tarea2_grader.engine import session
from tarea2_grader.engine import tamano
from tarea2_grader.engine import wire
from tarea2_grader.sandboxed import kernel
from tarea2_grader.sandboxed import protocol


def test_a_frame_the_agent_writes_is_read_by_the_session_and_the_end_is_none():
    mine, theirs = socket.socketpair()
    message = {"id": "x", "status": "ok", "valor": float("nan"), "texto": "ñandú"}
    protocol.write_frame(theirs.fileno(), message)
    got = session._read_frame(mine, time.monotonic() + 5)
    assert got["texto"] == "ñandú" and got["valor"] != got["valor"]  # NaN crosses as NaN
    mine.sendall(protocol.pack({"op": "fin"}))
    assert protocol.read_frame(theirs.fileno()) == {"op": "fin"}
    mine.close()
    assert protocol.read_frame(theirs.fileno()) is None
    theirs.close()


@pytest.mark.parametrize("raw,reason", [
    (struct.pack(">I", protocol.MAX_FRAME + 1), "respuesta demasiado grande"),
    (struct.pack(">I", 3) + b"\xff{]", "respuesta ilegible"),
])
def test_an_oversized_or_unreadable_frame_is_refused_on_both_sides(raw, reason):
    read_fd, write_fd = os.pipe()
    os.write(write_fd, raw)
    with pytest.raises(ValueError):
        protocol.read_frame(read_fd)
    os.close(read_fd)
    os.close(write_fd)
    mine, theirs = socket.socketpair()
    theirs.sendall(raw)
    with pytest.raises(session.Crashed, match=reason):
        session._read_frame(mine, time.monotonic() + 5)
    mine.close()
    theirs.close()


def test_values_round_trip_and_what_is_not_data_is_named():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    encoded = protocol.encode({"t": t, "par": (1, "a"), "obj": object()})
    assert encoded["obj"] == {"__type__": "object"}
    back = protocol.decode(encoded)
    assert torch.equal(back["t"], t) and back["par"] == (1, "a")
    assert torch.equal(wire.decode(encoded)["t"], t)


def test_the_agent_shrinks_by_the_measure_the_supervisor_caps_by():
    """600 'ñ' are 1,212 bytes of content with the stream's name and type: over a 1,000-byte cap on
    both sides, though they are fewer than 1,000 characters."""
    out = {"output_type": "stream", "name": "stdout", "text": "ñ" * 600}
    assert protocol.content_size(out) == tamano.content_size(out) == 1212
    assert tamano.cap_output(out, tamano.Caps(output=1000)) is not out
    assert "resto" in kernel.shrink_outputs([dict(out)], 1000, 10 ** 6)[0]
    plain = {"output_type": "stream", "name": "stdout", "text": "n" * 600}
    assert kernel.shrink_outputs([dict(plain)], 1000, 10 ** 6)[0] == plain
