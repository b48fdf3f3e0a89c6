"""Pipeline runs as ML Metadata recorded them: what ``stepwire runs`` shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from stepwire import _protos
from stepwire.attempts import HISTORY_PROPERTY, NODE_PROPERTY, attempt_of
from stepwire.mlmd_guard import list_all

_PIPELINE = "pipeline"
_PIPELINE_RUN = "pipeline_run"
_NODE = "node"
_OUTPUT_EVENTS = frozenset({_protos.MLMDEvent.OUTPUT, _protos.MLMDEvent.DECLARED_OUTPUT})
_State = _protos.MLMDExecution.State


@dataclass(frozen=True)
class ArtifactRecord:
    """One output artifact of a step.

    Attributes:
        output: The output name.
        type_name: The artifact type recorded in ML Metadata.
        uri: Where the artifact's data is.
    """

    output: str
    type_name: str
    uri: str


@dataclass(frozen=True)
class StepRecord:
    """One step execution of a run.

    Attributes:
        step: The step name (the node id).
        status: ``completed``, ``cached``, ``failed``, ``running``, ``new`` or ``canceled``.
        start: When the execution was registered.
        end: When it was last updated.
        outputs: Its output artifacts.
        attempt: Which launch of the step in the run its last attempt was (from 1).
        node: Where its last attempt ran ("" if not recorded).
        history: Its last attempts, ``"N on NODE: STATE"``, oldest first.
    """

    step: str
    status: str
    start: dt.datetime
    end: dt.datetime
    outputs: tuple[ArtifactRecord, ...]
    attempt: int = 1
    node: str = ""
    history: tuple[str, ...] = ()

    @property
    def cached(self) -> bool:
        """Whether the step's outputs came from the cache."""
        return self.status == "cached"

    @property
    def duration(self) -> float:
        """Seconds between registration and last update."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class RunRecord:
    """A pipeline run.

    Attributes:
        pipeline: The pipeline name.
        run_name: The run name.
        steps: Its step executions, in start order.
    """

    pipeline: str
    run_name: str
    steps: tuple[StepRecord, ...]

    @property
    def start(self) -> dt.datetime | None:
        """When the first step started."""
        return min((s.start for s in self.steps), default=None)

    @property
    def end(self) -> dt.datetime | None:
        """When the last step ended."""
        return max((s.end for s in self.steps), default=None)

    @property
    def status(self) -> str:
        """``failed`` if a step failed, ``running`` if one has not ended, else ``completed``."""
        statuses = {s.status for s in self.steps}
        if "failed" in statuses:
            return "failed"
        if statuses & {"running", "new"}:
            return "running"
        return "completed"


def _time(milliseconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(milliseconds / 1000, tz=dt.timezone.utc)


def _string_property(execution: Any, name: str) -> str:
    value = execution.custom_properties.get(name)
    return str(value.string_value) if value is not None else ""


def _status(execution: Any) -> str:
    name: str = _State.Name(execution.last_known_state)
    return {"COMPLETE": "completed"}.get(name, name.lower())


class RunReader:
    """Reads runs from an ML Metadata store."""

    def __init__(self, store: Any) -> None:
        """Creates the reader.

        Args:
            store: An ``ml_metadata.MetadataStore`` or a
                :class:`stepwire.mlmd_guard.GuardedMetadataStore`.
        """
        self._store = store

    def _executions_of(self, context_id: int) -> list[Any]:
        # Through list_all even on a raw store: ML Metadata's default listing (newest
        # first, 100 a page) drops a row at a page boundary when ids and creation
        # times disagree, i.e. a step of a run of more than 100 steps.
        return list_all(self._store, "get_executions_by_context", context_id)

    def _context_type_names(self) -> dict[int, str]:
        return {t.id: t.name for t in self._store.get_context_types()}

    def list_runs(self) -> list[RunRecord]:
        """All runs, newest first.

        Returns:
            The runs.
        """
        runs = [self._run(context) for context in self._store.get_contexts_by_type(_PIPELINE_RUN)]
        epoch = dt.datetime.fromtimestamp(0, tz=dt.timezone.utc)
        return sorted(runs, key=lambda run: run.start or epoch, reverse=True)

    def get_run(self, run_name: str) -> RunRecord:
        """One run by name.

        Args:
            run_name: The run name.

        Returns:
            The run.

        Raises:
            KeyError: If no run has that name.
        """
        context = self._store.get_context_by_type_and_name(_PIPELINE_RUN, run_name)
        if context is None:
            raise KeyError(f"no run named {run_name!r} in the metadata store")
        return self._run(context)

    def step_status(self, run_name: str, pipeline: str, step: str) -> str | None:
        """The status of one step's latest execution in a run, read cheaply.

        Args:
            run_name: The run name.
            pipeline: The pipeline name.
            step: The step name.

        Returns:
            The status, or None if the step has no execution in that run.
        """
        latest = self._latest_execution(run_name, pipeline, step)
        return None if latest is None else _status(latest)

    def step_attempt(self, run_name: str, pipeline: str, step: str) -> tuple[int, str] | None:
        """Which attempt one step's latest execution in a run is, and where it ran.

        Args:
            run_name: The run name.
            pipeline: The pipeline name.
            step: The step name.

        Returns:
            ``(attempt, node)``, or None if the step has no execution in that run.
        """
        latest = self._latest_execution(run_name, pipeline, step)
        if latest is None:
            return None
        return attempt_of(latest), _string_property(latest, NODE_PROPERTY)

    def _latest_execution(self, run_name: str, pipeline: str, step: str) -> Any:
        run = self._store.get_context_by_type_and_name(_PIPELINE_RUN, run_name)
        node = self._store.get_context_by_type_and_name(_NODE, f"{pipeline}.{step}")
        if run is None or node is None:
            return None
        in_run = {e.id for e in self._executions_of(run.id)}
        executions = [e for e in self._executions_of(node.id) if e.id in in_run]
        if not executions:
            return None
        return max(executions, key=lambda e: (e.last_update_time_since_epoch, e.id))

    def _run(self, run_context: Any) -> RunRecord:
        type_names = self._context_type_names()
        executions = self._executions_of(run_context.id)
        pipeline = ""
        steps: list[StepRecord] = []
        for execution in executions:
            node = ""
            for context in self._store.get_contexts_by_execution(execution.id):
                kind = type_names.get(context.type_id)
                if kind == _PIPELINE:
                    pipeline = context.name
                elif kind == _NODE:
                    node = context.name
            step = node.split(".", 1)[1] if pipeline and node.startswith(pipeline + ".") else node
            steps.append(
                StepRecord(
                    step=step,
                    status=_status(execution),
                    start=_time(execution.create_time_since_epoch),
                    end=_time(execution.last_update_time_since_epoch),
                    outputs=self._outputs(execution.id),
                    attempt=attempt_of(execution),
                    node=_string_property(execution, NODE_PROPERTY),
                    history=tuple(
                        e for e in _string_property(execution, HISTORY_PROPERTY).split("; ") if e
                    ),
                )
            )
        steps.sort(key=lambda s: (s.start, s.step))
        return RunRecord(pipeline=pipeline, run_name=run_context.name, steps=tuple(steps))

    def _outputs(self, execution_id: int) -> tuple[ArtifactRecord, ...]:
        events = [
            e
            for e in self._store.get_events_by_execution_ids([execution_id])
            if e.type in _OUTPUT_EVENTS
        ]
        if not events:
            return ()
        artifacts = {
            a.id: a for a in self._store.get_artifacts_by_id([e.artifact_id for e in events])
        }
        type_ids = sorted({a.type_id for a in artifacts.values()})
        types = {t.id: t.name for t in self._store.get_artifact_types_by_id(type_ids)}
        records = []
        for event in events:
            artifact = artifacts[event.artifact_id]
            keys = [step.key for step in event.path.steps if step.HasField("key")]
            records.append(
                ArtifactRecord(
                    output=keys[0] if keys else "",
                    type_name=types.get(artifact.type_id, ""),
                    uri=artifact.uri,
                )
            )
        return tuple(sorted(records, key=lambda r: r.output))
