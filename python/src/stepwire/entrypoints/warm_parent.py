"""A warm parent: step processes forked from an interpreter that has already imported TFX.

A cold step process spends most of its life starting Python and importing the
stepwire runtime, TFX's launcher and ML Metadata. The warm parent does that once,
then forks one child per step. The child becomes exactly what a cold
``python -m stepwire.entrypoints.step_entrypoint ARGS`` would be: the step's own
environment, working directory, ``sys.argv`` and output file, and the same
:func:`~stepwire.entrypoints.step_entrypoint.run_as_main` (a supervisor and the step
under it). Its exit status is reported to whoever asked. One child is forked ahead
of its request, with its supervised child, and waits (a spare,
:mod:`stepwire.entrypoints.step_fork`): a request it suits goes to it, and the next
spare is forked while that step runs.

The parent is a process of its own (``python -m stepwire.entrypoints.warm_parent FD``),
started by :mod:`stepwire.orchestrators.warm_launch`, so nothing the orchestrator
does (threads, ML Metadata connections) is in it. It keeps itself fork-safe:
one thread, no ML Metadata or SQLite handle; before every fork it checks that it
has one thread, and asks for a cold launch instead if not.

The protocol, over the stream socket ``FD`` (one JSON frame each way, see
:func:`send_frame`):

* parent → client: ``{"ready": pid}`` once warm, or ``{"refused": why}``;
* client → parent: ``{"id": n, "argv": [...], "env": {...}, "cwd": path,
  "die_with_parent": bool}`` with the step's output file descriptor attached;
* parent → client: ``{"id": n, "pid": pid}`` once forked (or ``{"id": n, "cold":
  why}`` when it will not fork), then ``{"id": n, "status": wait_status,
  "cpu_seconds": s}``.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
from typing import Any

from stepwire.entrypoints import step_fork
from stepwire.entrypoints.frames import receive_frame, send_frame

ENV_WARM_PROCESSES = "STEPWIRE_WARM_PROCESSES"
"""Set to ``0`` to start every step process cold (no warm parent)."""

IMPORT_TIME_VARIABLES = ("STEPWIRE_FULL_TFX_IMPORTS", "PYTHONPATH", "PYTHONHASHSEED")
"""Variables read while the runtime is imported: a request that differs in one starts cold."""


def thread_count() -> int:
    """The threads of this process, as the kernel counts them (native ones included).

    Returns:
        The count; 1 is what forking safely needs.
    """
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


WARM_MODULES = (
    # What step_entrypoint.main() and the step runner import before user code runs.
    "stepwire.entrypoints.step_entrypoint",
    "stepwire.entrypoints.step_runner",
    "stepwire.entrypoints.step_entrypoint_configuration",
    "stepwire.entrypoints.supervisor",
    "stepwire.entrypoints.step_output",
    "stepwire.step_logs",  # the supervisor's copy of the step's output
    "stepwire.pipelines",
    "stepwire.orchestrators.subprocess_orchestrator",  # the default configuration class
    "stepwire.step_launcher",
    "stepwire.stack",
    "stepwire.mlmd_guard",
    "stepwire.artifact_filesystem",
    # What the launch imports on first use: TFX's launcher and ML Metadata.
    "tfx.orchestration.portable.launcher",
    "stepwire.in_process_launcher",
    "tfx.orchestration.portable.execution_publish_utils",
    "tfx.orchestration.portable.inputs_utils",
    "tfx.orchestration.portable.outputs_utils",
    "tfx.orchestration.portable.mlmd.execution_lib",
    "tfx.orchestration.portable.runtime_parameter_utils",
    "tfx.types.standard_artifacts",
    "ml_metadata.metadata_store",
    "sqlite3",
    "encodings.utf_16_be",  # RFC 8785 orders keys by their UTF-16 code units
)
"""Imported once by the warm parent; never numpy or anything else that starts threads."""


def _warm_up() -> None:
    """Imports what every step process imports, so children start with it done."""
    import importlib

    from stepwire import _fast_imports

    _fast_imports.install()
    for name in WARM_MODULES:
        importlib.import_module(name)


class _Server:
    """The warm parent's loop: requests in, children forked, exit statuses out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: dict[int, int] = {}  # pid -> request id
        self.spare: step_fork.Spare | None = None
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        os.set_blocking(self.wake_read, False)

    def serve(self) -> None:
        """Runs until the client closes the socket."""
        # SIGCHLD wakes the loop through the pipe; Ctrl-C is for the steps, not us.
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._refill()
        while True:
            readable, _, _ = select.select([self.sock.fileno(), self.wake_read], [], [])
            if self.wake_read in readable:
                while True:
                    try:
                        if not os.read(self.wake_read, 4096):
                            break
                    except BlockingIOError:
                        break
            self._reap()
            if self.sock.fileno() in readable:
                try:
                    frame = receive_frame(self.sock)
                except (OSError, ValueError):
                    frame = None
                if frame is None:
                    return
                self._start(*frame)
                self._refill()

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare.pid:
                self.spare.sock.close()  # it died waiting: the next request forks
                self.spare = None
            request = self.children.pop(pid, None)
            if request is not None:
                # CPU time of the step process and of the children it waited for
                # (its step), as a cold launch's rusage would count it.
                cpu = usage.ru_utime + usage.ru_stime
                send_frame(self.sock, {"id": request, "status": status, "cpu_seconds": cpu})

    def _refill(self) -> None:
        """Forks the next spare step process, unless one waits or forking is not safe."""
        if self.spare is None and thread_count() == 1:
            self.spare = step_fork.fork_spare(self._leave_the_loop)

    def _start(self, request: dict[str, Any], fds: list[int]) -> None:
        number = request.get("id")
        why = self._why_not(request, fds)
        if why:
            for fd in fds:
                os.close(fd)
            send_frame(self.sock, {"id": number, "cold": why})
            return
        pid = self._hand_to_spare(request, fds[0])
        if pid is None:
            pid = os.fork()
            if pid == 0:
                self._leave_the_loop()
                step_fork.become_step(request, fds[0])
        os.close(fds[0])
        self.children[pid] = int(number)  # type: ignore[arg-type]
        send_frame(self.sock, {"id": number, "pid": pid})

    def _hand_to_spare(self, request: dict[str, Any], output_fd: int) -> int | None:
        """The spare's pid once it has the request; None to fork the step instead."""
        spare, self.spare = self.spare, None
        if spare is None or not step_fork.spare_suits(request):
            self.spare = spare
            return None
        if not step_fork.hand_over(spare, request, output_fd):
            return None  # it died waiting; reaped (and ignored) by _reap
        return spare.pid

    def _why_not(self, request: dict[str, Any], fds: list[int]) -> str:
        """Why this request must start cold, or the empty string."""
        if len(fds) != 1 or not isinstance(request.get("id"), int):
            return "a malformed request"
        env = request.get("env")
        if not isinstance(env, dict) or not isinstance(request.get("argv"), list):
            return "a malformed request"
        for name in IMPORT_TIME_VARIABLES:
            if env.get(name) != os.environ.get(name):
                return f"{name} differs from the warm parent's"
        threads = thread_count()
        if threads != 1:
            return f"the warm parent has {threads} threads; forking it is not safe"
        return ""

    def _leave_the_loop(self) -> None:
        """In a child: drops the loop's signals and descriptors, as a step process starts."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.sock.close()
        os.close(self.wake_read)
        os.close(self.wake_write)
        if self.spare is not None:
            self.spare.sock.close()


def main(argv: list[str] | None = None) -> None:
    """Warms up, then serves the client on the socket whose fd is the one argument.

    Args:
        argv: ``[FD]``; ``sys.argv[1:]`` by default.
    """
    arguments = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(arguments[0]))
    # No PR_SET_PDEATHSIG here: it follows the thread that started this process,
    # not its process. The socket ends when the client does, however it ends, and
    # the loop leaves then.
    try:
        _warm_up()
    except Exception as e:  # a parent that cannot warm up: the client starts steps cold
        _tell(sock, {"refused": f"warming up failed: {type(e).__name__}: {e}"})
        return
    threads = thread_count()
    if threads != 1:
        _tell(sock, {"refused": f"{threads} threads after warming up; forking is not safe"})
        return
    if _tell(sock, {"ready": os.getpid()}):
        _Server(sock).serve()


def _tell(sock: socket.socket, message: dict[str, Any]) -> bool:
    """Sends the client one frame; False when it has gone (it stopped before we were warm)."""
    try:
        send_frame(sock, message)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    main()
