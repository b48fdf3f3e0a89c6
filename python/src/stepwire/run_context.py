"""The stack of the pipeline run being scheduled, for seed API calls that take no stack.

``BaseOrchestrator.run`` sets it for the duration of ``prepare_or_run_pipeline``, so an
orchestrator written against the seed API (``get_entrypoint_arguments(step=...,
pb2_pipeline=...)`` without a stack) still writes by-reference values to the stack of
the run it builds arguments for. It is a context variable set once at the run's entry,
not a lookup of the process's configuration.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stepwire.stack import Stack

_run_stack: contextvars.ContextVar[Stack | None] = contextvars.ContextVar(
    "stepwire_run_stack", default=None
)


def current_run_stack() -> Stack | None:
    """Returns the stack of the run being scheduled, if any.

    Returns:
        The stack ``BaseOrchestrator.run`` was given, or None outside a run.
    """
    return _run_stack.get()


@contextlib.contextmanager
def run_stack(stack: Stack) -> Iterator[None]:
    """Makes ``stack`` the current run's stack inside the ``with`` block.

    Args:
        stack: The stack the run is scheduled on.

    Yields:
        Nothing.
    """
    token = _run_stack.set(stack)
    try:
        yield
    finally:
        _run_stack.reset(token)
