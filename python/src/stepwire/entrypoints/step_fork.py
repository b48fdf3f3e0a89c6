"""Becoming the step process a warm parent's request describes: at once, or as a spare.

A child of the warm parent (:mod:`stepwire.entrypoints.warm_parent`) becomes
exactly what a cold ``python -m stepwire.entrypoints.step_entrypoint ARGS`` would
be: the step's output file as its stdout and stderr, its working directory, its
environment and ``sys.argv``, then a supervisor with the step under it.

Forking a warm interpreter, and forking it again for the supervised child, is most
of what a warm step waits for before its code runs. So the warm parent keeps one
*spare*: a step process forked ahead of its request, whose supervised child is
forked too, both waiting. A request handed to the spare (:func:`hand_over`) is
applied in both: the spare takes the output file, the working directory and the
environment, passes them and the command line to its child over a pipe, and
supervises it from there as :func:`~stepwire.entrypoints.supervisor.supervise`
would. Only requests the spare suits (:func:`spare_suits`: a supervised step) go
to it; the warm parent forks the next spare while the step runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from stepwire import io_utils
from stepwire.entrypoints import step_entrypoint, supervisor
from stepwire.entrypoints.frames import receive_frame, send_frame

_PR_SET_PDEATHSIG = 1
_REQUEST_KEYS = ("argv", "env", "cwd", "die_with_parent")


def become_step(request: Mapping[str, Any], output_fd: int) -> NoReturn:
    """In a fresh child of the warm parent: becomes the requested step process.

    Args:
        request: The request (``argv``, ``env``, ``cwd``, ``die_with_parent``).
        output_fd: The step's output file; it becomes stdout and stderr.
    """
    try:
        _attach_output(request, output_fd)
        _apply(request)
        step_entrypoint.run_as_main(sys.argv[1:])
    except BaseException:  # a child must never return into the parent's loop
        _print_exception()
    step_entrypoint.leave(70)


@dataclass
class Spare:
    """A step process forked ahead of its request, in the warm parent.

    Attributes:
        pid: Its process id.
        sock: The warm parent's end of the socket the request goes over.
    """

    pid: int
    sock: socket.socket


def spare_suits(request: Mapping[str, Any]) -> bool:
    """Whether a request may go to a spare: its step runs supervised.

    Args:
        request: The request.

    Returns:
        False for ``STEPWIRE_SUPERVISE=0`` and for ``--help``.
    """
    env = request.get("env")
    argv = request.get("argv")
    return (
        isinstance(env, dict)
        and supervisor.enabled(env)
        and isinstance(argv, list)
        and argv not in (["--help"], ["-h"])
    )


def fork_spare(after_fork: Callable[[], None]) -> Spare | None:
    """In the warm parent: forks a spare step process.

    Args:
        after_fork: Run first in the spare: closes what it inherited of the warm
            parent's loop and restores the signals a step process starts with.

    Returns:
        The spare, or None if the system would not fork now.
    """
    ours, theirs = socket.socketpair()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        ours.close()
        _serve_one(theirs, after_fork)
    theirs.close()
    return Spare(pid, ours)


def hand_over(spare: Spare, request: Mapping[str, Any], output_fd: int) -> bool:
    """In the warm parent: gives the spare its request; the output fd stays the caller's.

    Args:
        spare: The spare (used up either way).
        request: The request.
        output_fd: The step's output file.

    Returns:
        False if the spare has gone (killed while it waited): fork a step instead.
    """
    try:
        send_frame(spare.sock, _request_of(request), (output_fd,))
    except OSError:
        return False
    finally:
        spare.sock.close()
    return True


def _serve_one(sock: socket.socket, after_fork: Callable[[], None]) -> NoReturn:
    """In the spare: forks its supervised child, waits for the request, supervises."""
    try:
        after_fork()
        go_read, go_write = os.pipe()
        supervision = supervisor.start(
            lambda: _await_step(go_read, (go_write, sock.fileno())), capture=True
        )
        os.close(go_read)
        _idle_signals()
        frame = receive_frame(sock)
        sock.close()
        if frame is None or len(frame[1]) != 1:
            # The warm parent ended (or sent no output file): the child, whose
            # pipe ends with this process, ends without a word.
            os._exit(0)
        # From here on a signal is the step's: held until the supervision forwards it.
        signal.pthread_sigmask(signal.SIG_BLOCK, supervisor.CAUGHT_SIGNALS)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        request, [output_fd] = frame
        _attach_output(request, output_fd)
        _apply(request)
        if os.waitpid(supervision.pid, os.WNOHANG)[0]:
            # The waiting child was killed: start the step as a fresh child would.
            os.close(go_write)
            step_entrypoint.run_as_main(sys.argv[1:])
        io_utils.write_to_fd(go_write, json.dumps(_request_of(request)).encode("utf-8"))
        os.close(go_write)
        supervision.wait_and_exit()
    except SystemExit as exit_:
        step_entrypoint.leave(exit_.code if isinstance(exit_.code, int) else 1)
    except BaseException:  # a child must never return into the parent's loop
        _print_exception()
    step_entrypoint.leave(70)


def _idle_signals() -> None:
    """While a spare waits: stopped by a signal as any idle process, deaf to Ctrl-C.

    Nothing runs yet, so a signal is not held for a step it was not sent to.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, supervisor.CAUGHT_SIGNALS)


def _await_step(go_read: int, inherited: tuple[int, ...]) -> NoReturn:
    """In the spare's supervised child: waits for the request, then runs the step."""
    for fd in inherited:
        os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for a running step
    data = _read_all(go_read)
    os.close(go_read)
    if not data:
        os._exit(0)  # the spare was not used
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _apply(json.loads(data))
    from stepwire import _fast_imports
    from stepwire.entrypoints.exit_codes import run_and_exit

    _fast_imports.install()
    run_and_exit(step_entrypoint.main)


def _request_of(request: Mapping[str, Any]) -> dict[str, Any]:
    return {key: request.get(key) for key in _REQUEST_KEYS}


def _attach_output(request: Mapping[str, Any], output_fd: int) -> None:
    """Makes the output file stdout and stderr; ends with the launcher if asked."""
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    if request.get("die_with_parent"):
        # As a cold step process of a Ray task: ended when its launcher is.
        _die_with(os.getppid())


def _apply(request: Mapping[str, Any]) -> None:
    """Takes the request's working directory, environment and command line."""
    os.chdir(str(request.get("cwd") or "."))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    sys.argv = [str(step_entrypoint.__file__), *map(str, request["argv"])]


def _die_with(parent_pid: int) -> None:
    """Ends this process when the one that forked it ends (Linux; a step of a Ray task)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(0)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _print_exception() -> None:
    import traceback

    with contextlib.suppress(Exception):
        traceback.print_exc()
