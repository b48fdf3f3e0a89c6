"""Launching step processes from a warm parent: a fork instead of a cold interpreter.

:class:`WarmLauncher` starts one warm parent (:mod:`stepwire.entrypoints.warm_parent`)
for the step environment of a run and asks it for each step process. A step gets
the command line, environment, working directory and output file a cold launch
would give it, and its exit code the way ``subprocess.call`` reports one (a
negative number for a signal).

:meth:`WarmLauncher.call` returns None whenever the step must start cold
instead: warm processes are off (``STEPWIRE_WARM_PROCESSES=0``), the platform has
no ``fork`` (not Linux), the command is not the step entrypoint run by this
interpreter, or the warm parent refused (it could not warm up, or was no longer
fork-safe). A warm parent that died is started again for the next step.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stepwire.entrypoints.frames import receive_frame, send_frame
from stepwire.entrypoints.warm_parent import ENV_WARM_PROCESSES

ENTRYPOINT_MODULE = "stepwire.entrypoints.step_entrypoint"
_READY_TIMEOUT_SECONDS = 120.0


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Tells whether step processes may start warm here.

    Args:
        environ: The environment to read the setting from; this process's by default.

    Returns:
        False on a platform without ``fork`` or ``/proc`` (not Linux), or when
        ``STEPWIRE_WARM_PROCESSES`` is ``0``/``false``/``no``/``off``.
    """
    setting = (os.environ if environ is None else environ).get(ENV_WARM_PROCESSES, "")
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and hasattr(socket, "send_fds")
        and setting.strip().lower() not in {"0", "false", "no", "off"}
    )


class WarmParentDiedError(RuntimeError):
    """The warm parent ended while a step it forked was running."""


@dataclass
class _Pending:
    """One request's progress, filled in by the reader thread."""

    done: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None
    """The connection to the warm parent that was asked (only its end loses the request)."""
    pid: int | None = None
    status: int | None = None
    cpu_seconds: float = 0.0
    cold: str = ""
    lost: bool = False


class WarmLauncher:
    """One warm parent for the step processes of a run, shared by the launching threads."""

    def __init__(self, env: Mapping[str, str]) -> None:
        """Creates the launcher; the warm parent starts on :meth:`start` or the first call.

        Args:
            env: The step environment the warm parent is started with (requests
                whose import-time variables differ start cold).
        """
        self._env = dict(env)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        # Started by start() and not yet warm: the socket to it and the process.
        self._starting: tuple[socket.socket, subprocess.Popen[bytes]] | None = None
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self.refused = "" if enabled(self._env) else "off"
        """Why steps start cold from now on; empty while the warm parent serves."""
        self.starts = 0
        """How many warm parents were started (a died one is started again)."""

    def call(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        stdout: int,
        cwd: str | None = None,
        *,
        die_with_parent: bool = False,
    ) -> int | None:
        """Runs a step process from the warm parent and waits for it.

        Args:
            command: The full command line, as a cold launch would run it.
            env: The step process's environment.
            stdout: The file descriptor its stdout and stderr go to.
            cwd: Its working directory; this process's by default.
            die_with_parent: End the step process (SIGTERM, which its supervisor
                forwards and records) when the warm parent ends, which ends with
                this process: what a Ray task wants of its step.

        Returns:
            Its exit code as ``subprocess.call`` gives it, or None when it must be
            started cold (nothing was run).

        Raises:
            WarmParentDiedError: If the warm parent died while the step ran (the
                step's own end is then unknown; ML Metadata knows it).
        """
        ended = self.call_with_usage(command, env, stdout, cwd, die_with_parent=die_with_parent)
        return None if ended is None else ended[0]

    def call_with_usage(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        stdout: int,
        cwd: str | None = None,
        *,
        die_with_parent: bool = False,
    ) -> tuple[int, float] | None:
        """:meth:`call`, also giving the step process's CPU time (its step's included).

        Args:
            command: As for :meth:`call`.
            env: As for :meth:`call`.
            stdout: As for :meth:`call`.
            cwd: As for :meth:`call`.
            die_with_parent: As for :meth:`call`.

        Returns:
            The exit code and the CPU seconds (user and system), or None when the
            step must be started cold.

        Raises:
            WarmParentDiedError: As for :meth:`call`.
        """
        prefix = [sys.executable, "-m", ENTRYPOINT_MODULE]
        if self.refused or list(command[:3]) != prefix:
            return None  # started cold by the caller
        request = {
            "argv": list(command[3:]),
            "env": dict(env),
            "cwd": cwd or os.getcwd(),
            "die_with_parent": die_with_parent,
        }
        sock, pending = self._submit(request, stdout)
        if sock is None or pending is None:
            return None
        pending.done.wait()
        if pending.cold:
            return None
        if pending.lost:
            if pending.pid is None:  # nothing was forked: start this one cold
                return None
            _wait_gone(pending.pid)
            raise WarmParentDiedError(
                f"the warm parent that forked step process {pending.pid} died while it ran"
            )
        assert pending.status is not None
        return os.waitstatus_to_exitcode(pending.status), pending.cpu_seconds

    def close(self) -> None:
        """Stops the warm parent (its running children are not touched)."""
        with self._lock:
            sock, process = self._sock, self._process
            self._sock, self._process = None, None
            unused, self._starting = self._starting, None
        if unused is not None:  # started, never called: it finds the socket closed
            unused[0].close()
            process = unused[1]
        if sock is not None:
            # The reader thread sees the end and closes the socket.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> WarmLauncher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _submit(
        self, request: dict[str, Any], stdout: int
    ) -> tuple[socket.socket | None, _Pending | None]:
        with self._lock:
            sock = self._sock if self._alive() else self._start()
            if sock is None:
                return None, None
            self._next_id += 1
            number = self._next_id
            pending = self._pending[number] = _Pending(sock=sock)
        request = {"id": number, **request}
        try:
            with self._send_lock:
                send_frame(sock, request, (stdout,))
        except OSError:
            pending.lost = True
            pending.done.set()
        return sock, pending

    def _alive(self) -> bool:
        return self._sock is not None and self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Starts the warm parent now, without waiting for it to be warm.

        It then imports what steps need while the caller does its own work (compiling
        the pipeline, building the command lines); the first :meth:`call` waits only
        for what is left of its warm-up.
        """
        with self._lock:
            if not self.refused and self._starting is None and not self._alive():
                self._starting = self._spawn()

    def _start(self) -> socket.socket | None:
        """Starts a warm parent (unless one is starting) and waits until it is warm.

        Returns:
            The socket to it, or None if it refused (steps then start cold).
        """
        if self.refused:
            return None
        starting, self._starting = self._starting, None
        starting = starting or self._spawn()
        if starting is None:
            return None
        ours, process = starting
        ours.settimeout(_READY_TIMEOUT_SECONDS)
        try:
            frame = receive_frame(ours)
        except (OSError, ValueError):
            frame = None
        ours.settimeout(None)
        if frame is None or "ready" not in frame[0]:
            reason = "it ended" if frame is None else str(frame[0].get("refused"))
            self.refused = f"the warm parent did not warm up ({reason})"
            ours.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            return None
        self._sock, self._process = ours, process
        threading.Thread(
            target=self._read, args=(ours,), name="stepwire-warm-reader", daemon=True
        ).start()
        return ours

    def _spawn(self) -> tuple[socket.socket, subprocess.Popen[bytes]] | None:
        """Starts a warm parent process; None (and :attr:`refused` set) if it cannot be."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.starts += 1
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "stepwire.entrypoints.warm_parent", str(theirs.fileno())],
                env=self._env,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # Its own errors (an import that fails) go where the orchestrator's go.
                stderr=None,
            )
        except OSError as e:
            self.refused = f"the warm parent could not be started: {e}"
            ours.close()
            return None
        finally:
            theirs.close()
        return ours, process

    def _read(self, sock: socket.socket) -> None:
        """Hands each answer of the warm parent to the request it answers."""
        try:
            while (frame := receive_frame(sock)) is not None:
                with self._lock:
                    self._answer(frame[0])
        except (OSError, ValueError):
            pass
        with self._lock:
            if self._sock is sock:
                self._sock = None
            # Requests this parent will never answer: forked ones are waited for by
            # their callers; the others start cold. A newer parent's are not its.
            lost = [n for n, pending in self._pending.items() if pending.sock is sock]
            for number in lost:
                pending = self._pending.pop(number)
                pending.lost = True
                pending.done.set()
        sock.close()

    def _answer(self, message: dict[str, Any]) -> None:
        """Records one answer (called with the lock held)."""
        number = message.get("id")
        if not isinstance(number, int) or number not in self._pending:
            return
        pending = self._pending[number]
        if "pid" in message:
            pending.pid = int(message["pid"])
            return
        if "status" in message:
            pending.status = int(message["status"])
            pending.cpu_seconds = float(message.get("cpu_seconds") or 0.0)
        else:
            pending.cold = str(message.get("cold") or "refused")
            if "threads" in pending.cold:
                self.refused = pending.cold  # no longer fork-safe: cold from now on
        del self._pending[number]
        pending.done.set()


def _wait_gone(pid: int) -> None:
    """Waits for a process that is not this one's child to end."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        while _exists(pid):
            time.sleep(0.05)
        return
    try:
        import select

        select.select([fd], [], [])
    finally:
        os.close(fd)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
