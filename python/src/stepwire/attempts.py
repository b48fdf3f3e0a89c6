"""Which attempt of a step an execution is, and where it ran, recorded in ML Metadata.

A step may be launched more than once in a run: an orchestrator retries a step that
exited 70 or 75, an engine resubmits a task whose node died, a user resumes a failed
run under the same name. TFX reuses the unfinished execution for the next launch, so
without a record ML Metadata would only show the last attempt. Each launch therefore
writes three custom properties on its execution once it has ended:

* ``stepwire_attempt``: the attempt number, 1 for the first launch of the step in the
  run, counted from what ML Metadata already holds (so every launcher's retries count,
  whoever made them);
* ``stepwire_node``: where the attempt ran (``$STEPWIRE_NODE`` if the orchestrator
  names the node, else the host name);
* ``stepwire_attempts``: the last attempts, oldest first, as
  ``"1 on 10.0.0.3: FAILED; 2 on 10.0.0.2: COMPLETE"``.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from stepwire import _protos

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger(__name__)

ATTEMPT_PROPERTY = "stepwire_attempt"
"""Custom property of an execution: which launch of the step in its run it was (from 1)."""

NODE_PROPERTY = "stepwire_node"
"""Custom property of an execution: where its last attempt ran."""

HISTORY_PROPERTY = "stepwire_attempts"
"""Custom property of an execution: its last attempts, ``"N on NODE: STATE"``, ``; ``-joined."""

ENV_NODE = "STEPWIRE_NODE"
"""Names the node a step process runs on; orchestrators that know it set it."""

MAX_HISTORY = 20
"""Attempts kept in ``stepwire_attempts``: the newest, so a retry loop cannot grow it."""


def this_node() -> str:
    """Where this step process runs.

    Returns:
        ``$STEPWIRE_NODE``, or the host name when the orchestrator did not say.
    """
    return os.environ.get(ENV_NODE) or socket.gethostname()


def attempt_of(execution: Any) -> int:
    """The attempt number recorded on an execution.

    Args:
        execution: An ML Metadata execution.

    Returns:
        The number, or 1 for an execution recorded before attempts were (or by a
        launch that could not record it).
    """
    value = execution.custom_properties.get(ATTEMPT_PROPERTY)
    return int(value.int_value) if value is not None and value.int_value > 0 else 1


def next_attempt(previous: Iterable[Any]) -> int:
    """The number of the attempt about to be launched.

    Args:
        previous: The executions the step already has in the run.

    Returns:
        1 if it has none, else one more than the highest attempt recorded.
    """
    return max((attempt_of(e) for e in previous), default=0) + 1


def record_attempt(execution: Any, attempt: int, node: str) -> None:
    """Writes the attempt's properties onto an execution (not yet stored).

    Args:
        execution: The execution, in its final state for this attempt.
        attempt: The attempt number.
        node: Where it ran.
    """
    state = _protos.MLMDExecution.State.Name(execution.last_known_state)
    properties = execution.custom_properties
    earlier = properties[HISTORY_PROPERTY].string_value if HISTORY_PROPERTY in properties else ""
    entries = [e for e in earlier.split("; ") if e]
    entries.append(f"{attempt} on {node}: {state}")
    properties[HISTORY_PROPERTY].string_value = "; ".join(entries[-MAX_HISTORY:])
    properties[ATTEMPT_PROPERTY].int_value = attempt
    properties[NODE_PROPERTY].string_value = node
