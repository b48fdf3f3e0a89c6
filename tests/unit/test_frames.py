"""Frames between the warm parent, its spares and its clients."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from stepwire.entrypoints import frames


def test_a_frame_with_descriptors_round_trips() -> None:
    ours, theirs = socket.socketpair()
    read_end, write_end = os.pipe()
    try:
        frames.send_frame(ours, {"id": 1, "argv": ["a"] * 10_000}, (write_end,))
        received = frames.receive_frame(theirs)
        assert received is not None
        message, fds = received
        assert message == {"id": 1, "argv": ["a"] * 10_000}
        assert len(fds) == 1
        os.write(fds[0], b"x")
        os.close(fds[0])
        assert os.read(read_end, 1) == b"x"
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        ours.close()
        theirs.close()


def test_a_frame_the_receiver_read_and_closed_at_once_counts_as_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A spare step process reads its request and closes its socket right away: the
    # sender must not take the delivered frame for a lost one (and fork the step
    # a second time).
    ours, theirs = socket.socketpair()
    real = socket.send_fds
    got: list[Any] = []

    def send_then_receiver_closes(sock: socket.socket, *args: Any) -> int:
        sent = real(sock, *args)
        got.append(frames.receive_frame(theirs))
        theirs.close()
        return sent

    monkeypatch.setattr(socket, "send_fds", send_then_receiver_closes)
    read_end, write_end = os.pipe()
    try:
        frames.send_frame(ours, {"id": 2}, (write_end,))
    finally:
        os.close(read_end)
        os.close(write_end)
        ours.close()
    [(message, fds)] = got
    assert message == {"id": 2}
    for fd in fds:
        os.close(fd)


def test_a_frame_too_large_or_not_an_object_is_refused() -> None:
    ours, theirs = socket.socketpair()
    try:
        ours.sendall((frames.MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
        with pytest.raises(ValueError, match="a frame of"):
            frames.receive_frame(theirs)
        ours.sendall(len(b"[1]").to_bytes(4, "big") + b"[1]")
        with pytest.raises(ValueError, match="not a JSON object"):
            frames.receive_frame(theirs)
        ours.close()
        assert frames.receive_frame(theirs) is None
    finally:
        theirs.close()
