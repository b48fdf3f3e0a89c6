"""Each step's output, kept with its run in the artifact store.

A step process's stdout and stderr (the user's prints, stepwire's lines, a
traceback) are written to ``<artifact store>/.stepwire/logs/<run>/<step>.log``,
whichever orchestrator launched it, by the step process's supervisor
(:mod:`stepwire.entrypoints.supervisor`), which sees everything the step printed,
even what a crashing step printed last. ``stepwire logs RUN STEP`` prints it.

* **Bounded, tail kept.** At most ``$STEPWIRE_STEP_LOG_MAX_BYTES`` (4 MiB by
  default) are kept: when a step prints more, its first bytes go and the log
  starts with a line saying how many.
* **Followable where the store allows it.** In a local folder the log grows as the
  step prints (``stepwire logs --follow``); in an object store, which cannot
  append, it is written once, when the step process ends.
* **Every attempt.** A retry moves the earlier attempt's log to
  ``<step>.attempt-<n>.log`` before writing its own.
* **Not world-readable**, like every file that may hold user data.

This module imports nothing but the standard library until it writes to an object
store: the supervisor stays small.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator

from stepwire import io_utils, redaction

ENV_MAX_BYTES = "STEPWIRE_STEP_LOG_MAX_BYTES"
"""The most bytes of a step's output its log keeps (the tail)."""
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
LOG_FOLDER = (".stepwire", "logs")
"""Where below the artifact store the logs of every run are."""

_FILE_MODE = 0o640
_FOLDER_MODE = 0o750
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")
_ATTEMPT = re.compile(r"\.attempt-(\d+)\.log$")
_QUIET_POLLS = 3


def max_bytes() -> int:
    """The configured bound of a step's log.

    Returns:
        ``$STEPWIRE_STEP_LOG_MAX_BYTES``, or 4 MiB when unset or not a positive number.
    """
    configured = os.environ.get(ENV_MAX_BYTES, "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else DEFAULT_MAX_BYTES


def _component(name: str) -> str:
    """A run or step name as one safe path component (``/`` and the like escaped)."""
    escaped = _UNSAFE.sub(lambda m: "%" + "%".join(f"{b:02X}" for b in m.group().encode()), name)
    return escaped if escaped not in {"", ".", ".."} else f"%{escaped}"


def _is_remote(uri: str) -> bool:
    scheme, sep, _ = uri.partition("://")
    return bool(sep) and scheme != "file"


def _local(uri: str) -> str:
    return uri.removeprefix("file://")


def run_log_folder(artifact_root: str, run_name: str) -> str:
    """The folder (or URI prefix) holding the logs of one run.

    Args:
        artifact_root: The artifact store's root.
        run_name: The run.

    Returns:
        ``<root>/.stepwire/logs/<run>``.
    """
    return "/".join([artifact_root.rstrip("/"), *LOG_FOLDER, _component(run_name)])


def log_uri(artifact_root: str, run_name: str, step_name: str, attempt: int | None = None) -> str:
    """Where a step's log is.

    Args:
        artifact_root: The artifact store's root.
        run_name: The run.
        step_name: The step.
        attempt: An earlier attempt's number; None for the last attempt's log.

    Returns:
        The path or URI.
    """
    suffix = ".log" if attempt is None else f".attempt-{attempt}.log"
    return f"{run_log_folder(artifact_root, run_name)}/{_component(step_name)}{suffix}"


def earlier_attempts(artifact_root: str, run_name: str, step_name: str) -> list[int]:
    """The numbers of the earlier attempts whose logs are kept, in order.

    Args:
        artifact_root: The artifact store's root.
        run_name: The run.
        step_name: The step.

    Returns:
        The numbers.
    """
    folder = run_log_folder(artifact_root, run_name)
    prefix = _component(step_name) + ".attempt-"
    if _is_remote(artifact_root):
        from stepwire import io_utils

        fs, path = io_utils._fs_and_path(folder)
        try:
            names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
        except FileNotFoundError:
            names = []
    else:
        try:
            names = os.listdir(_local(folder))
        except FileNotFoundError:
            names = []
    found = [_ATTEMPT.search(n) for n in names if n.startswith(prefix)]
    return sorted(int(m.group(1)) for m in found if m)


class StepLogWriter:
    """Writes one attempt's log: the tail of what the step printed, at most ``limit`` bytes.

    Args:
        artifact_root: The artifact store's root.
        run_name: The run.
        step_name: The step.
        limit: The most bytes kept; :func:`max_bytes` by default.
    """

    def __init__(
        self, artifact_root: str, run_name: str, step_name: str, limit: int | None = None
    ) -> None:
        self.uri = log_uri(artifact_root, run_name, step_name)
        self._root, self._run, self._step = artifact_root, run_name, step_name
        self._limit = limit or max_bytes()
        self._remote = _is_remote(artifact_root)
        self._tail = bytearray()
        self._dropped = 0
        self._file: int | None = None
        self._written = 0
        self._started = False

    def _start(self) -> None:
        """Moves an earlier attempt's log aside; opens a local log for appending."""
        self._started = True
        if self._remote:
            from stepwire import io_utils

            if io_utils.exists(self.uri):
                fs, path = io_utils._fs_and_path(self.uri)
                fs.mv(path, io_utils._fs_and_path(self._next_attempt_uri())[1])
            return
        path = _local(self.uri)
        os.makedirs(os.path.dirname(path), mode=_FOLDER_MODE, exist_ok=True)
        if os.path.exists(path):
            os.replace(path, _local(self._next_attempt_uri()))
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, _FILE_MODE)

    def _next_attempt_uri(self) -> str:
        earlier = earlier_attempts(self._root, self._run, self._step)
        return log_uri(self._root, self._run, self._step, (earlier[-1] if earlier else 0) + 1)

    def write(self, data: bytes) -> None:
        """Adds what the step printed.

        Args:
            data: The bytes, as they came.
        """
        if not data:
            return
        if not self._started:
            self._start()
        self._tail += data
        if len(self._tail) > self._limit:
            cut = len(self._tail) - self._limit
            del self._tail[:cut]
            self._dropped += cut
        if self._file is not None:
            os.write(self._file, data)
            self._written += len(data)
            # A local log may grow to twice the bound before it is cut to the tail.
            if self._written > 2 * self._limit:
                self._rewrite_local()

    def _content(self) -> bytes:
        if not self._dropped:
            return bytes(self._tail)
        note = f"[stepwire: the first {self._dropped} bytes of this log were dropped]\n"
        return note.encode() + bytes(self._tail)

    def _rewrite_local(self) -> None:
        assert self._file is not None
        content = self._content()
        os.ftruncate(self._file, 0)
        os.write(self._file, content)
        self._written = len(content)

    def close(self) -> None:
        """Writes what is left: the bounded log to an object store, or a local log cut."""
        if not self._started:
            self._start()
        if self._file is not None:
            if self._dropped:
                self._rewrite_local()
            os.close(self._file)
            self._file = None
            return
        if self._remote:
            from stepwire import io_utils

            io_utils.write_bytes(self.uri, self._content())


def read_log(
    artifact_root: str, run_name: str, step_name: str, attempt: int | None = None
) -> bytes:
    """A step's log as kept in the store.

    Args:
        artifact_root: The artifact store's root.
        run_name: The run.
        step_name: The step.
        attempt: An earlier attempt's number; None for the last attempt's log.

    Returns:
        The bytes.

    Raises:
        FileNotFoundError: If there is no such log.
    """
    uri = log_uri(artifact_root, run_name, step_name, attempt)
    if _is_remote(uri):
        from stepwire import io_utils

        return io_utils.read_bytes(uri)
    with open(_local(uri), "rb") as file:
        return file.read()


def follow_log(
    artifact_root: str,
    run_name: str,
    step_name: str,
    finished: Callable[[], bool],
    *,
    poll: float = 0.25,
) -> Iterator[bytes]:
    """Yields a local step log as it grows, until the step has finished.

    Args:
        artifact_root: The artifact store's root (a local folder).
        run_name: The run.
        step_name: The step.
        finished: Tells whether the step's execution has ended.
        poll: Seconds between looks.

    Yields:
        New bytes of the log.
    """
    path = _local(log_uri(artifact_root, run_name, step_name))
    offset = 0
    quiet_since_done = 0
    while True:
        # The execution ends before its process does (the last prints, the
        # supervisor's verdict): once it has, read until the log stops growing.
        done = quiet_since_done > 0 or finished()
        try:
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < offset:  # cut to its tail, or a new attempt began
                    offset = 0
                file.seek(offset)
                data = file.read()
        except FileNotFoundError:
            data = b""
        if data:
            offset += len(data)
            yield data
        if done:
            quiet_since_done = 1 if data else quiet_since_done + 1
            if quiet_since_done > _QUIET_POLLS:
                return
        time.sleep(poll)


class CapturedOutput:
    """What :func:`capture_output` hands its block: a way to add to the log only."""

    def __init__(self, writer: StepLogWriter) -> None:
        self._writer = writer
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Adds bytes to the step's log, not to the terminal.

        Args:
            data: The bytes.
        """
        with self._lock:
            self._writer.write(data)


@contextlib.contextmanager
def capture_output(artifact_root: str, run_name: str, step_name: str) -> Iterator[CapturedOutput]:
    """Keeps what this process prints to fd 1 and 2 in a step's log, for a step run in-process.

    The ``local`` orchestrator runs steps in its own process, without a supervisor:
    while the block runs, fds 1 and 2 are pipes that a thread copies to the
    terminal and to the log, so the log holds exactly what a step process's would.

    Args:
        artifact_root: The artifact store's root.
        run_name: The run.
        step_name: The step.

    Yields:
        The captured output, to add what only the log should get (a traceback).
    """
    writer = StepLogWriter(artifact_root, run_name, step_name)
    captured = CapturedOutput(writer)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    pipes = {fd: os.pipe() for fd in (1, 2)}
    threads = []
    for fd, (read_end, write_end) in pipes.items():
        os.dup2(write_end, fd)
        os.close(write_end)
        # The thread's own copy of the terminal: the saved fd is closed when the block ends.
        terminal = os.dup(saved[fd])
        thread = threading.Thread(
            target=_copy, args=(read_end, terminal, captured), name=f"stepwire-tee-{fd}"
        )
        thread.start()
        threads.append(thread)
    try:
        yield captured
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in saved.items():
            os.dup2(original, fd)  # closes the pipe's last write end: the thread ends
            os.close(original)
        for thread in threads:
            thread.join()
        writer.close()


def _copy(read_end: int, terminal: int, captured: CapturedOutput) -> None:
    """Copies a pipe to the terminal's fd and to the log until the pipe ends.

    The step runs in this process, so the secrets it read are this process's own
    and are redacted from both copies.
    """
    redactor = redaction.StreamRedactor()
    try:
        while True:
            chunk = os.read(read_end, 65536)
            data = redactor.feed(chunk) if chunk else redactor.flush()
            io_utils.write_to_fd(terminal, data)
            captured.write(data)
            if not chunk:
                break
    finally:
        os.close(read_end)
        os.close(terminal)
