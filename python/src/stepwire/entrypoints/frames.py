"""Frames between the warm parent and its clients: a length, a JSON object, file descriptors.

The warm parent (:mod:`stepwire.entrypoints.warm_parent`), the processes it forks
ahead of their steps (:mod:`stepwire.entrypoints.step_fork`) and the orchestrators'
launcher (:mod:`stepwire.orchestrators.warm_launch`) speak this over stream sockets.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = 64 << 20
"""The largest frame accepted: a step's environment and command line fit many times."""


def send_frame(sock: socket.socket, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    """Sends one JSON frame (a 4-byte length, then the JSON), with file descriptors.

    Args:
        sock: A connected stream socket.
        message: The message.
        fds: File descriptors to pass with it (``SCM_RIGHTS``).
    """
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    frame = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [frame], list(fds))
        if sent < len(frame):
            sock.sendall(frame[sent:])
        # Not sendall(b"") when all of it went: that still calls send(), which
        # fails if the receiver already read the frame and closed its end, and the
        # sender would take a delivered frame for a lost one.
    else:
        sock.sendall(frame)


def receive_frame(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """Receives one frame sent by :func:`send_frame`.

    Args:
        sock: A connected stream socket.

    Returns:
        The message and the file descriptors that came with it, or None at the end
        of the stream.

    Raises:
        ValueError: If the frame is malformed or larger than :data:`MAX_FRAME_BYTES`.
    """
    data, fds, _flags, _address = socket.recv_fds(sock, _HEADER.size, 4)
    if not data:
        return None
    data += _receive_exactly(sock, _HEADER.size - len(data))
    (length,) = _HEADER.unpack(data)
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"a frame of {length} bytes")
    message = json.loads(_receive_exactly(sock, length))
    if not isinstance(message, dict):
        raise ValueError("a frame that is not a JSON object")
    return message, fds


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ValueError("the stream ended inside a frame")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
