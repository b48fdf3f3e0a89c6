"""Which execution of a step in a run the orchestrators judge: its newest one in that run.

A real SQLite ML Metadata store in a temporary folder, written the way TFX records a
step (pipeline, run and node contexts, each execution associated with all three).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from stepwire.attempts import ATTEMPT_PROPERTY
from stepwire.runs import RunReader

PIPELINE = "p"
STEP = "s"


class Records:
    """A store holding executions of one step, in runs of one pipeline."""

    def __init__(self, folder: Path) -> None:
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(folder / "metadata.db")
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = metadata_store.MetadataStore(config)
        self.types = {
            name: self.store.put_context_type(pb.ContextType(name=name))
            for name in ("pipeline", "pipeline_run", "node")
        }
        self.execution_type = self.store.put_execution_type(pb.ExecutionType(name="step"))
        self.pipeline = self._context("pipeline", PIPELINE)
        self.node = self._context("node", f"{PIPELINE}.{STEP}")
        self.runs: dict[str, pb.Context] = {}

    def _context(self, kind: str, name: str) -> pb.Context:
        context = pb.Context(type_id=self.types[kind], name=name)
        [context.id] = self.store.put_contexts([context])
        return context

    def execution(self, run: str, state: Any, attempt: int = 1) -> int:
        """Records an execution of the step in ``run``; returns its id."""
        if run not in self.runs:
            self.runs[run] = self._context("pipeline_run", run)
        execution = pb.Execution(type_id=self.execution_type, last_known_state=state)
        execution.custom_properties[ATTEMPT_PROPERTY].int_value = attempt
        execution_id, _, _ = self.store.put_execution(
            execution, [], [self.pipeline, self.runs[run], self.node]
        )
        return int(execution_id)

    def update(self, execution_id: int, state: Any) -> None:
        [execution] = self.store.get_executions_by_id([execution_id])
        execution.last_known_state = state
        self.store.put_executions([execution])


def test_the_newest_execution_in_the_run_is_judged_not_a_newer_one_of_another_run(
    tmp_path: Path,
) -> None:
    records = Records(tmp_path)
    records.execution("r1", pb.Execution.COMPLETE)
    records.execution("r2", pb.Execution.FAILED)  # newer, in another run
    reader = RunReader(records.store)
    assert reader.step_status("r1", PIPELINE, STEP) == "completed"
    assert reader.step_status("r2", PIPELINE, STEP) == "failed"
    assert reader.step_attempt("r1", PIPELINE, STEP) == (1, "")


def test_a_later_attempt_in_the_run_is_the_one_judged(tmp_path: Path) -> None:
    records = Records(tmp_path)
    first = records.execution("r1", pb.Execution.RUNNING, attempt=1)
    records.execution("r2", pb.Execution.COMPLETE)
    records.execution("r1", pb.Execution.COMPLETE, attempt=2)
    time.sleep(0.01)  # update times have a resolution of a millisecond
    records.update(first, pb.Execution.FAILED)  # the dead attempt marked FAILED last
    reader = RunReader(records.store)
    # The newest update wins, as it always did: the first attempt, marked last.
    assert reader.step_status("r1", PIPELINE, STEP) == "failed"
    assert reader.step_attempt("r1", PIPELINE, STEP) == (1, "")


def test_no_execution_in_the_run_or_no_run_is_none(tmp_path: Path) -> None:
    records = Records(tmp_path)
    records.execution("r1", pb.Execution.COMPLETE)
    records.runs["r3"] = records._context("pipeline_run", "r3")  # a run without the step
    reader = RunReader(records.store)
    assert reader.step_status("r3", PIPELINE, STEP) is None
    assert reader.step_status("missing", PIPELINE, STEP) is None
    assert reader.step_status("r1", PIPELINE, "other") is None
    # A run that appears after a first look is found (only found contexts are cached).
    assert reader.step_status("late", PIPELINE, STEP) is None
    records.execution("late", pb.Execution.COMPLETE)
    assert reader.step_status("late", PIPELINE, STEP) == "completed"
