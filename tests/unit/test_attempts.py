"""The attempt record on an execution (stepwire.attempts)."""

from __future__ import annotations

import socket

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from stepwire import attempts


def _execution(state: int = pb.Execution.FAILED) -> pb.Execution:
    execution = pb.Execution()
    execution.last_known_state = state  # type: ignore[assignment]
    return execution


def test_the_first_attempt_is_one_and_each_retry_counts_on() -> None:
    assert attempts.next_attempt([]) == 1
    first = _execution()
    assert attempts.attempt_of(first) == 1  # nothing recorded yet: an old execution
    attempts.record_attempt(first, 1, "a")
    assert attempts.next_attempt([first]) == 2
    attempts.record_attempt(first, 2, "b")
    assert attempts.next_attempt([first, _execution()]) == 3


def test_the_history_keeps_the_newest_attempts_in_order() -> None:
    execution = _execution()
    for attempt in range(1, attempts.MAX_HISTORY + 6):
        attempts.record_attempt(execution, attempt, f"node-{attempt}")
    history = execution.custom_properties[attempts.HISTORY_PROPERTY].string_value.split("; ")
    assert len(history) == attempts.MAX_HISTORY
    assert history[0] == "6 on node-6: FAILED"
    last = attempts.MAX_HISTORY + 5
    assert history[-1] == f"{last} on node-{last}: FAILED"
    assert execution.custom_properties[attempts.NODE_PROPERTY].string_value == f"node-{last}"


def test_the_node_is_the_orchestrators_name_for_it_else_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(attempts.ENV_NODE, raising=False)
    assert attempts.this_node() == socket.gethostname()
    monkeypatch.setenv(attempts.ENV_NODE, "10.0.0.3")
    assert attempts.this_node() == "10.0.0.3"
