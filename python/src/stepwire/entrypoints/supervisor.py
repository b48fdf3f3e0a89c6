"""The step process's supervisor: the truth about how a step ended, whatever its code does.

A Kubernetes Job or an Argo step sees only the exit code of the step process. User
code can end that process itself (``os._exit(0)``, a segfault in native code, the
kernel's OOM killer), and ML Metadata would keep the execution RUNNING while the exit
code said success. So the step entrypoint forks once, before it imports TFX: the child
runs the entrypoint; the parent (a few MiB, importing nothing more) waits for it and
turns its end into the documented exit code.

The child tells the parent, over a pipe, what it knows as it learns it: the step's
names, the stack and node contexts once the launch starts, and the exit code it is
about to exit with. A child that ends any other way (a signal, an exit code it did not
announce) is a failure: the parent marks the step's unfinished execution FAILED in ML
Metadata, writes the failure record, prints the one line and exits ``step_failed``
(70), or ``infrastructure`` (75) when the parent itself was asked to stop.

``STEPWIRE_SUPERVISE=0`` runs the step in the process itself (for a debugger); so does
a platform without ``os.fork``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from stepwire.entrypoints import exit_codes, step_output, supervisor_channel

ENV_SUPERVISE = "STEPWIRE_SUPERVISE"
"""Set to ``0`` to run the step without a supervising parent process."""

_FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
CAUGHT_SIGNALS = frozenset({*_FORWARDED, signal.SIGINT})
"""What a supervisor handles: held (blocked) until it does."""
_PR_SET_PDEATHSIG = 1


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Tells whether the step runs under a supervisor in this environment.

    Args:
        environ: The environment to read the setting from; this process's by default.

    Returns:
        False when ``STEPWIRE_SUPERVISE`` is ``0``/``false``/``no``/``off``, or
        ``os.fork`` does not exist here.
    """
    setting = (os.environ if environ is None else environ).get(ENV_SUPERVISE, "")
    return hasattr(os, "fork") and setting.strip().lower() not in {"0", "false", "no", "off"}


def supervise(entry: Callable[[], NoReturn]) -> NoReturn:
    """Runs ``entry`` in a forked child and exits with the code its end maps to.

    Args:
        entry: What the step process does; it ends by ``sys.exit`` after
            :func:`supervisor_channel.report_exit` (``exit_codes.run_and_exit``
            does both).
    """
    if not enabled():
        entry()
    start(entry, capture=step_output.enabled()).wait_and_exit()


class Supervision:
    """A forked child under this process's supervision, not yet waited for.

    Args:
        pid: The child.
        messages_fd: The read end of the child's message pipe.
        pipes: The child's output pipes (parent side attached), or None.
    """

    def __init__(self, pid: int, messages_fd: int, pipes: step_output.OutputPipes | None) -> None:
        self.pid = pid
        self._messages_fd = messages_fd
        self._pipes = pipes

    def wait_and_exit(self) -> NoReturn:
        """Forwards signals to the child, copies its output, exits with its verdict."""
        pid = self.pid
        stopped_by: list[int] = []

        def forward(signum: int, _frame: object) -> None:
            stopped_by.append(signum)
            os.kill(pid, signum)

        for signum in _FORWARDED:
            signal.signal(signum, forward)
        # Ctrl-C reaches the whole process group, the child included: not forwarded twice.
        signal.signal(signal.SIGINT, lambda signum, _frame: stopped_by.append(signum))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, CAUGHT_SIGNALS)
        status, log = step_output.pump(pid, self._messages_fd, self._pipes)
        messages = step_output.parse_messages(bytes(log.messages))
        # The verdict's own line (a child that died) belongs in the step's log too.
        with log.tee_stderr():
            code = _verdict(status, messages, stopped_by)
        log.close()
        sys.exit(code)


def start(entry: Callable[[], NoReturn], *, capture: bool) -> Supervision:
    """Forks the child that runs ``entry``; the caller waits for it later.

    The signals the supervisor forwards stay blocked in this process until
    :meth:`Supervision.wait_and_exit` handles them: one that arrives meanwhile
    waits. (The warm parent's spare step processes fork their child this way
    before they know their step.)

    Args:
        entry: What the child does (it never returns).
        capture: Whether the child's stdout and stderr come through pipes (to be
            kept in the step's log); otherwise it writes to this process's.

    Returns:
        The supervision, in this process.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pipes = step_output.OutputPipes.create() if capture else None
    parent_pid = os.getpid()
    # Signals that arrive while the parent is not yet forwarding them wait: blocked
    # before the fork, unblocked once the handlers are in place (the child unblocks
    # them at once, with their default actions).
    signal.pthread_sigmask(signal.SIG_BLOCK, CAUGHT_SIGNALS)
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, CAUGHT_SIGNALS)
        os.close(read_end)
        if pipes is not None:
            pipes.attach_child()
        supervisor_channel.open_channel(write_end)
        _die_with_parent(parent_pid)
        entry()
    os.close(write_end)
    if pipes is not None:
        pipes.attach_parent()
    return Supervision(pid, read_end, pipes)


def _die_with_parent(parent_pid: int) -> None:
    """Has the kernel end this child if the supervising parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(int(exit_codes.ExitCode.INFRASTRUCTURE))


def _verdict(status: int, messages: list[dict[str, Any]], stopped_by: list[int]) -> int:
    """The exit code of the step process, given how the child ended."""
    for message in messages:
        for key, value in message.get("context", {}).items():
            if value:
                setattr(exit_codes.context, key, value)
    announced = next((m["exit"] for m in reversed(messages) if "exit" in m), None)
    launch = next((m["launch"] for m in reversed(messages) if "launch" in m), None)
    claimant = next((m["claimant"] for m in reversed(messages) if "claimant" in m), None)
    if announced is not None:
        # The step's end was decided (and reported) before the process ended: what
        # happens after it, in atexit handlers or a native library's teardown,
        # does not change how the step ended.
        if announced == exit_codes.ExitCode.STEP_FAILED and stopped_by:
            # The step's own signal handler turned the stop into an error.
            return exit_codes.report(
                exit_codes.FailureKind.INFRASTRUCTURE,
                f"the step was stopped: this process received "
                f"{signal.Signals(stopped_by[0]).name} and forwarded it to the step",
            )
        return int(announced)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        how = f"was killed by signal {signal.Signals(signum).name} ({signum})"
        if signum == signal.SIGKILL and not stopped_by:
            how += ", perhaps by the kernel's out-of-memory killer"
    else:
        code = os.WEXITSTATUS(status)
        how = f"exited with code {code} before the step finished (for example os._exit({code}))"
    kind = (
        exit_codes.FailureKind.INFRASTRUCTURE if stopped_by else exit_codes.FailureKind.STEP_FAILED
    )
    if stopped_by:
        how += f" after this process received {signal.Signals(stopped_by[0]).name}"
    line = f"the step process {how}"
    if launch is not None:
        line += _mark_failed(launch, line)
    elif claimant is not None:  # it died before it launched: only its claim to let go
        _release_only(claimant)
    return exit_codes.report(kind, line)


def _release_claims(mlmd: Any, contexts: dict[str, str], owner: str) -> None:
    """Releases the dead child's attempt claim, so a retry need not wait for its lease."""
    from stepwire.attempt_claims import release_claims_of

    if owner and "node" in contexts and "pipeline_run" in contexts:
        release_claims_of(mlmd, contexts["node"], contexts["pipeline_run"], owner)


def _metadata_of(launch: dict[str, Any]) -> Any:
    """A guarded ML Metadata connection to the child's store (not entered)."""
    from stepwire.metadata_store import metadata_store_from_config
    from stepwire.mlmd_guard import GuardedMetadata
    from stepwire.stack_config import load_stack_config

    config = load_stack_config(environ=launch["stack"])
    store = metadata_store_from_config(config.metadata_store)
    return GuardedMetadata(store.get_tfx_metadata_config())


def _release_only(claimant: dict[str, Any]) -> None:
    """Releases the claims of a child that died before it launched (best effort)."""
    # Best effort: the lease still expires; the exit code matters more.
    with contextlib.suppress(Exception):
        contexts = dict((str(t), str(n)) for t, n in claimant["contexts"])
        _release_claims(_metadata_of(claimant), contexts, str(claimant.get("owner") or ""))


def _mark_failed(launch: dict[str, Any], reason: str) -> str:
    """Marks the node's unfinished executions in the run FAILED; says what it did."""
    try:
        from stepwire.step_launcher import mark_unfinished_failed

        mlmd = _metadata_of(launch)
        contexts = [(str(t), str(n)) for t, n in launch["contexts"]]
        marked = mark_unfinished_failed(mlmd, contexts, reason)
        _release_claims(mlmd, dict(contexts), str(launch.get("owner") or ""))
    except Exception as e:  # the exit code matters more than the record
        return f"; its execution could not be marked FAILED ({type(e).__name__}: {e})"
    if not marked:
        return ""
    return f"; execution {', '.join(map(str, marked))} marked FAILED in ML Metadata"
