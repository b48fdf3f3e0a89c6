"""The supervisor's side of a step's output: passed through, and kept in the store.

The supervised child's stdout and stderr are pipes to the supervisor, which copies
every byte to its own stdout and stderr (so whoever launched the step process sees
exactly what it printed, as before) and to the step's log in the artifact store
(:mod:`stepwire.step_logs`) once the child has said which run and step it is and
on which stack. What the child prints before that is held (bounded) and written
first.

The child's messages arrive on a third pipe, read in the same loop, so a child
that prints a lot never blocks on a full message pipe and the log starts as soon
as the launch does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stepwire import io_utils, redaction

if TYPE_CHECKING:
    from stepwire.step_logs import StepLogWriter

ENV_STEP_LOGS = "STEPWIRE_STEP_LOGS"
"""Set to ``0`` to keep no log of the step in the artifact store."""

MAX_MESSAGES_BYTES = 1 << 20
_CHUNK = 65536
_POLL_SECONDS = 0.05
_ARTIFACT_STORE = "STEPWIRE_ARTIFACT_STORE"


def enabled() -> bool:
    """Tells whether step logs are kept in the artifact store.

    Returns:
        False when ``STEPWIRE_STEP_LOGS`` is ``0``/``false``/``no``/``off``.
    """
    return os.environ.get(ENV_STEP_LOGS, "").strip().lower() not in {"0", "false", "no", "off"}


@dataclass
class OutputPipes:
    """The two pipes that carry the child's stdout and stderr to the supervisor."""

    out_read: int
    out_write: int
    err_read: int
    err_write: int

    @classmethod
    def create(cls) -> OutputPipes:
        """Makes the pipes (before the fork).

        Returns:
            The pipes.
        """
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        return cls(out_read, out_write, err_read, err_write)

    def attach_child(self) -> None:
        """In the child: makes the pipes its fd 1 and 2."""
        os.dup2(self.out_write, 1)
        os.dup2(self.err_write, 2)
        for fd in (self.out_read, self.out_write, self.err_read, self.err_write):
            os.close(fd)

    def attach_parent(self) -> None:
        """In the parent: keeps only the read ends."""
        os.close(self.out_write)
        os.close(self.err_write)


@dataclass
class _Pump:
    """What the supervisor collects while the child runs."""

    messages: bytearray = field(default_factory=bytearray)
    held: bytearray = field(default_factory=bytearray)
    writer: StepLogWriter | None = None
    failed: str = ""
    _parsed: int = 0
    _names: dict[str, str] = field(default_factory=dict)

    def output(self, data: bytes) -> None:
        """Keeps a chunk of the child's output for its log."""
        if self.writer is not None:
            self._write(data)
        elif not self.failed:
            from stepwire.step_logs import max_bytes

            self.held += data
            if len(self.held) > max_bytes():
                del self.held[: len(self.held) - max_bytes()]

    def _write(self, data: bytes) -> None:
        assert self.writer is not None
        try:
            self.writer.write(data)
        except Exception as e:  # the step matters more than its log
            self.failed = f"{type(e).__name__}: {e}"
            self.writer = None

    def message_bytes(self, data: bytes) -> None:
        """Keeps the child's messages; starts the log once names and stack are known.

        A secret the child reports is redacted from everything copied after it.
        """
        if len(self.messages) + len(data) > MAX_MESSAGES_BYTES:
            return
        self.messages += data
        end = self.messages.rfind(b"\n")
        if end < self._parsed:
            return
        for line in bytes(self.messages[self._parsed : end]).splitlines():
            self._learn(line)
        self._parsed = end + 1

    def _learn(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if isinstance(message.get("secret"), str):
            redaction.register(message["secret"])
        if self.writer is not None or self.failed:
            return
        for key, value in (message.get("context") or {}).items():
            if value:
                self._names[key] = str(value)
        root = (message.get("launch") or {}).get("stack", {}).get(_ARTIFACT_STORE)
        if root and "run" in self._names and "step" in self._names:
            self._open(str(root))

    def _open(self, root: str) -> None:
        try:
            from stepwire.step_logs import StepLogWriter

            self.writer = StepLogWriter(root, self._names["run"], self._names["step"])
        except Exception as e:  # the step matters more than its log
            self.failed = f"{type(e).__name__}: {e}"
            return
        held, self.held = bytes(self.held), bytearray()
        self._write(held)

    def close(self) -> None:
        """Writes the rest of the log; says on stderr if it could not be kept."""
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception as e:  # the step matters more than its log
                self.failed = f"{type(e).__name__}: {e}"
            else:
                return
            finally:
                self.writer = None
        if self.failed:
            print(
                f"stepwire warning: the step's log could not be kept in the artifact store "
                f"({self.failed})",
                file=sys.stderr,
                flush=True,
            )


def _read(fd: int) -> bytes | None:
    """What ``fd`` holds now: its bytes, ``b""`` at its end, None if nothing yet."""
    try:
        return os.read(fd, _CHUNK)
    except BlockingIOError:
        return None


class _TeeRaw(io.RawIOBase):
    """The supervisor's own stderr while it reports: to fd 2 and to the step's log."""

    def __init__(self, log: StepLog) -> None:
        super().__init__()
        self._log = log

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        io_utils.write_to_fd(2, chunk)
        self._log.output(chunk)
        return len(chunk)


class StepLog(_Pump):
    """The step's log as the supervisor keeps it, and the child's messages."""

    @contextlib.contextmanager
    def tee_stderr(self) -> Iterator[None]:
        """Copies what the supervisor itself prints to stderr (its verdict) into the log.

        Yields:
            Nothing; ``sys.stderr`` is restored after.
        """
        original = sys.stderr
        original.flush()
        stream = io.TextIOWrapper(
            io.BufferedWriter(_TeeRaw(self)),
            encoding=getattr(original, "encoding", None) or "utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
        sys.stderr = stream
        try:
            yield
        finally:
            stream.flush()
            sys.stderr = original


def pump(pid: int, messages_fd: int, pipes: OutputPipes | None) -> tuple[int, StepLog]:
    """Runs while the child runs: copies its output, keeps its log, reads its messages.

    Args:
        pid: The child.
        messages_fd: The read end of the child's message pipe.
        pipes: The child's output pipes, or None when its output is not captured.

    Returns:
        The child's wait status, and its log (not yet closed) with its messages.
    """
    log = StepLog()
    # The message pipe comes first in every round: a secret the child reported
    # before it printed it is known before its output is copied.
    sinks: dict[int, Any] = {messages_fd: log.message_bytes}
    if pipes is not None:
        sinks.update(_output_sinks(log, pipes, keep=enabled()))
    status: int | None = None
    while sinks:
        done, waited = os.waitpid(pid, os.WNOHANG)
        if done:
            status = waited
            # The child is gone: take what is buffered, but do not wait for a
            # grandchild that still holds a pipe open.
            for fd, sink in sinks.items():
                os.set_blocking(fd, False)
                while data := _read(fd):
                    sink(data)
                sink(b"")  # the end: what a redactor held back is passed on
            break
        readable, _, _ = select.select(list(sinks), [], [], _POLL_SECONDS)
        for fd in sorted(readable, key=lambda fd: fd != messages_fd):
            data = _read(fd)
            if data:
                sinks[fd](data)
            elif data is not None:
                sinks.pop(fd)(b"")  # the end: what a redactor held back is passed on
    for fd in (messages_fd, *(() if pipes is None else (pipes.out_read, pipes.err_read))):
        with contextlib.suppress(OSError):
            os.close(fd)
    if status is None:
        _, status = os.waitpid(pid, 0)
    return status, log


def _output_sinks(log: StepLog, pipes: OutputPipes, *, keep: bool) -> dict[int, Any]:
    """What takes each chunk of the child's stdout and stderr: ``b""`` marks the end."""
    sinks: dict[int, Any] = {}
    for read_end, own_fd in ((pipes.out_read, 1), (pipes.err_read, 2)):
        redactor = redaction.StreamRedactor()

        def sink(data: bytes, own_fd: int = own_fd, redactor: Any = redactor) -> None:
            data = redactor.feed(data) if data else redactor.flush()
            io_utils.write_to_fd(own_fd, data)
            if keep:
                log.output(data)

        sinks[read_end] = sink
    return sinks


def parse_messages(data: bytes) -> list[dict[str, Any]]:
    """The child's messages, one JSON object a line.

    Args:
        data: What it wrote to the message pipe.

    Returns:
        The messages; a torn last line of a killed child is left out.
    """
    messages = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return messages
