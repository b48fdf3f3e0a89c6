"""What a supervised step process tells its supervisor, over the pipe it inherited.

The child side of :mod:`stepwire.entrypoints.supervisor`: one JSON object a line,
written as the child learns things. Outside a supervised child every call is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from stepwire import redaction

if TYPE_CHECKING:
    from stepwire._protos import PipelineNode
    from stepwire.stack import Stack

_channel: int | None = None
"""In the supervised child: the pipe's write end; None when not supervised."""


def open_channel(fd: int) -> None:
    """Makes ``fd`` the pipe this process reports to (called once, after the fork).

    Args:
        fd: The pipe's write end.
    """
    global _channel  # noqa: PLW0603 - set once, in the child, right after the fork
    _channel = fd
    redaction.add_listener(report_secret)


def report_secret(value: str) -> None:
    """Tells the supervisor a secret value, so it redacts the output it copies after.

    Args:
        value: The secret (over the private pipe to the parent only).
    """
    _send({"secret": value})


def _send(message: dict[str, Any]) -> None:
    if _channel is None:
        return
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")
    # OSError: the parent is gone, and PR_SET_PDEATHSIG ends this process too.
    with contextlib.suppress(OSError):
        os.write(_channel, data)


def report_context(pipeline: str | None, step: str | None, run: str | None) -> None:
    """Tells the supervisor the pipeline, step and run names known so far.

    Args:
        pipeline: The pipeline name, if known.
        step: The step name, if known.
        run: The run name, if known.
    """
    _send({"context": {"pipeline": pipeline, "step": step, "run": run}})


def report_claimant(stack: Stack, node: PipelineNode) -> None:
    """Tells the supervisor whose attempt claims to release if the child dies from now on.

    Sent before the claim is taken: a child killed between taking it and
    :func:`report_launch` must not leave it held until its lease runs out.

    Args:
        stack: The stack the step runs on.
        node: The bound node.
    """
    if _channel is not None:
        _send({"claimant": _launch_details(stack, node)})


def report_launch(stack: Stack, node: PipelineNode) -> None:
    """Tells the supervisor which execution to mark FAILED if the child dies.

    Sent once the child holds the step's claim: an unfinished execution of the
    node in the run is then its own.

    Args:
        stack: The stack the step runs on (its metadata store is the one to mark in).
        node: The bound node, whose contexts (pipeline, run, node) find the execution.
    """
    if _channel is not None:
        _send({"launch": _launch_details(stack, node)})


def _launch_details(stack: Stack, node: PipelineNode) -> dict[str, Any]:
    import socket

    from stepwire.attempt_claims import owner_prefix
    from stepwire.step_launcher import node_contexts

    # Over a pipe to the parent only: the stack's variables may hold a password.
    return {
        "stack": stack.to_config().to_environment(),
        "contexts": node_contexts(node),
        # Whose attempt claims to release if this process dies.
        "owner": owner_prefix(socket.gethostname(), os.getpid()),
    }


def report_exit(code: int) -> None:
    """Tells the supervisor the exit code the child is about to exit with.

    Args:
        code: The code.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    _send({"exit": int(code)})
