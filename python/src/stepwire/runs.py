"""Pipeline runs as ML Metadata recorded them: what ``stepwire runs`` shows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stepwire import _protos
from stepwire.attempts import HISTORY_PROPERTY, NODE_PROPERTY, attempt_of
from stepwire.constants import INTERNAL_EXECUTION_PARAMETER_PREFIX
from stepwire.mlmd_guard import list_all
from stepwire.step_launcher import FAILURE_PROPERTY

_PIPELINE = "pipeline"
_PIPELINE_RUN = "pipeline_run"
_NODE = "node"
_OUTPUT_EVENTS = frozenset({_protos.MLMDEvent.OUTPUT, _protos.MLMDEvent.DECLARED_OUTPUT})
_INPUT_EVENTS = frozenset({_protos.MLMDEvent.INPUT, _protos.MLMDEvent.DECLARED_INPUT})
_State = _protos.MLMDExecution.State
# What TFX records about how an execution ended: ExecutionResult as JSON.
_EXECUTION_RESULT = "__execution_result__"
# Execution properties that are not the step's parameters: TFX's records, stepwire's
# inputs to the cache key, and stepwire's records of the launch (attempt, node,
# failure, and whatever it records there later).
_NOT_PARAMETERS = ("__", INTERNAL_EXECUTION_PARAMETER_PREFIX, "stepwire_")
# A failure message is shown on one page line or in a summary: keep its end.
_MAX_FAILURE = 2000


@dataclass(frozen=True)
class ArtifactRecord:
    """One output artifact of a step.

    Attributes:
        output: The output name.
        type_name: The artifact type recorded in ML Metadata.
        uri: Where the artifact's data is.
        datatype: The Python type the step returned, as the artifact records it
            (``builtins.dict``; "" if not recorded).
        materializer: The class path of the materializer that wrote it ("" if not
            recorded).
        summary: What the materializer said of the value, without loading it
            (``DataFrame of 1,437 rows x 64 columns``; "" if it said nothing).
    """

    output: str
    type_name: str
    uri: str
    datatype: str = ""
    materializer: str = ""
    summary: str = ""


@dataclass(frozen=True)
class InputRecord:
    """One input artifact of a step, and which step of the run produced it.

    Attributes:
        input: The input name.
        type_name: The artifact type recorded in ML Metadata.
        uri: Where the artifact's data is.
        step: The step of the same run that output it ("" if none of the run's
            executions did, e.g. an artifact imported from elsewhere).
        output: That step's output name ("" when ``step`` is "").
    """

    input: str
    type_name: str
    uri: str
    step: str = ""
    output: str = ""


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
        parameters: Its parameters, ``(name, value)`` sorted by name, each value as
            the execution records it (the JSON text stepwire passes to TFX, e.g.
            ``0.05`` or ``"adam"``). Properties named ``__*`` (TFX's), ``stepwire-*``
            and ``stepwire_*`` (stepwire's) are not parameters and are left out.
        inputs: Its input artifacts, sorted by input name. Only an execution that
            resolved its inputs has them: a step that never ran has none.
        failure: Why it failed, as ML Metadata records it ("" if it did not, or if
            nothing was recorded).
    """

    step: str
    status: str
    start: dt.datetime
    end: dt.datetime
    outputs: tuple[ArtifactRecord, ...]
    attempt: int = 1
    node: str = ""
    history: tuple[str, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    inputs: tuple[InputRecord, ...] = ()
    failure: str = ""

    @property
    def cached(self) -> bool:
        """Whether the step's outputs came from the cache."""
        return self.status == "cached"

    @property
    def duration(self) -> float:
        """Seconds between registration and last update."""
        return (self.end - self.start).total_seconds()

    @property
    def upstream(self) -> tuple[str, ...]:
        """The steps of the run whose outputs it read, sorted (none for a step that never ran)."""
        return tuple(sorted({i.step for i in self.inputs if i.step and i.step != self.step}))


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


def _value_text(value: Any) -> str:
    kind = value.WhichOneof("value")
    # One line whatever the kind: a struct or proto value prints over several.
    return "" if kind is None else " ".join(str(getattr(value, kind)).split())


def _parameters(execution: Any) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for properties in (execution.properties, execution.custom_properties):
        for name, value in properties.items():
            if not name.startswith(_NOT_PARAMETERS):
                found[name] = _value_text(value)
    return tuple(sorted(found.items()))


def _failure(execution: Any, status: str) -> str:
    # Both records may be left over from an earlier attempt of the same execution,
    # so they say why only while the execution is failed.
    if status != "failed":
        return ""
    reason = _string_property(execution, FAILURE_PROPERTY)
    if not reason:
        result = _string_property(execution, _EXECUTION_RESULT)
        try:
            reason = str(json.loads(result).get("resultMessage", "")) if result else ""
        except (ValueError, AttributeError):
            reason = result
    return reason[-_MAX_FAILURE:]


def _artifact_string(artifact: Any, name: str) -> str:
    for properties in (artifact.properties, artifact.custom_properties):
        if name in properties:
            return str(properties[name].string_value)
    return ""


def _event_key(event: Any) -> tuple[str, int]:
    """The name and index an event's path gives its artifact (``("", 0)`` if none)."""
    keys = [step.key for step in event.path.steps if step.HasField("key")]
    indexes = [step.index for step in event.path.steps if step.HasField("index")]
    return (keys[0] if keys else "", indexes[0] if indexes else 0)


@dataclass(frozen=True)
class _RunEvents:
    """The events of a run's executions and the artifacts they name, read in three calls."""

    by_execution: dict[int, list[Any]]
    artifacts: dict[int, Any]
    type_names: dict[int, str]

    def producers(self, step_of: dict[int, str]) -> dict[int, tuple[str, str]]:
        """Artifact id to the ``(step, output)`` of the run that output it, earliest first."""
        found: dict[int, tuple[str, str]] = {}
        for execution_id in sorted(self.by_execution):
            for event in self.by_execution[execution_id]:
                if event.type in _OUTPUT_EVENTS:
                    found.setdefault(
                        event.artifact_id, (step_of[execution_id], _event_key(event)[0])
                    )
        return found

    def outputs(self, execution_id: int) -> tuple[ArtifactRecord, ...]:
        """The output artifacts of one execution, sorted by output name."""
        records = []
        for event in self.by_execution.get(execution_id, []):
            if event.type not in _OUTPUT_EVENTS:
                continue
            artifact = self.artifacts[event.artifact_id]
            records.append(
                ArtifactRecord(
                    output=_event_key(event)[0],
                    type_name=self.type_names.get(artifact.type_id, ""),
                    uri=artifact.uri,
                    datatype=_artifact_string(artifact, "datatype"),
                    materializer=_artifact_string(artifact, "materializer"),
                    summary=_artifact_string(artifact, "stepwire_summary"),
                )
            )
        return tuple(sorted(records, key=lambda r: r.output))

    def inputs(
        self, execution_id: int, producers: dict[int, tuple[str, str]]
    ) -> tuple[InputRecord, ...]:
        """The input artifacts of one execution and their producers, sorted by input name."""
        keyed = []
        for event in self.by_execution.get(execution_id, []):
            if event.type not in _INPUT_EVENTS:
                continue
            artifact = self.artifacts[event.artifact_id]
            step, output = producers.get(event.artifact_id, ("", ""))
            name, index = _event_key(event)
            record = InputRecord(
                input=name,
                type_name=self.type_names.get(artifact.type_id, ""),
                uri=artifact.uri,
                step=step,
                output=output,
            )
            keyed.append(((name, index), record))
        return tuple(record for _, record in sorted(keyed, key=lambda pair: pair[0]))


class RunReader:
    """Reads runs from an ML Metadata store."""

    def __init__(self, store: Any) -> None:
        """Creates the reader.

        Args:
            store: An ``ml_metadata.MetadataStore`` or a
                :class:`stepwire.mlmd_guard.GuardedMetadataStore`.
        """
        self._store = store
        self._context_ids: dict[tuple[str, str], int] = {}

    def _context_id(self, type_name: str, name: str) -> int | None:
        """A context's id; one that exists is looked up once (contexts are never deleted)."""
        key = (type_name, name)
        if key not in self._context_ids:
            context = self._store.get_context_by_type_and_name(type_name, name)
            if context is None:
                return None
            self._context_ids[key] = context.id
        return self._context_ids[key]

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
        run = self._context_id(_PIPELINE_RUN, run_name)
        node = self._context_id(_NODE, f"{pipeline}.{step}")
        if run is None or node is None:
            return None
        # The orchestrators ask after every step: the node's executions, newest
        # first, are checked for the run one at a time. The newest is nearly always
        # the one just launched, so this costs about three small reads, where
        # listing the run's executions grew with every step of the run.
        newest_first = sorted(
            self._executions_of(node),
            key=lambda e: (e.last_update_time_since_epoch, e.id),
            reverse=True,
        )
        for execution in newest_first:
            if any(c.id == run for c in self._store.get_contexts_by_execution(execution.id)):
                return execution
        return None

    def _run(self, run_context: Any) -> RunRecord:
        type_names = self._context_type_names()
        executions = self._executions_of(run_context.id)
        pipeline = ""
        nodes: dict[int, str] = {}
        for execution in executions:
            nodes[execution.id] = ""
            for context in self._store.get_contexts_by_execution(execution.id):
                kind = type_names.get(context.type_id)
                if kind == _PIPELINE:
                    pipeline = context.name
                elif kind == _NODE:
                    nodes[execution.id] = context.name
        step_of = {
            execution_id: node.split(".", 1)[1]
            if pipeline and node.startswith(pipeline + ".")
            else node
            for execution_id, node in nodes.items()
        }
        events = self._events(list(nodes))
        producers = events.producers(step_of)
        steps = [self._step(e, step_of[e.id], events, producers) for e in executions]
        steps.sort(key=lambda s: (s.start, s.step))
        return RunRecord(pipeline=pipeline, run_name=run_context.name, steps=tuple(steps))

    @staticmethod
    def _step(
        execution: Any, step: str, events: _RunEvents, producers: dict[int, tuple[str, str]]
    ) -> StepRecord:
        status = _status(execution)
        return StepRecord(
            step=step,
            status=status,
            start=_time(execution.create_time_since_epoch),
            end=_time(execution.last_update_time_since_epoch),
            outputs=events.outputs(execution.id),
            attempt=attempt_of(execution),
            node=_string_property(execution, NODE_PROPERTY),
            history=tuple(
                e for e in _string_property(execution, HISTORY_PROPERTY).split("; ") if e
            ),
            parameters=_parameters(execution),
            inputs=events.inputs(execution.id, producers),
            failure=_failure(execution, status),
        )

    def _events(self, execution_ids: Iterable[int]) -> _RunEvents:
        ids = sorted(execution_ids)
        by_execution: dict[int, list[Any]] = {i: [] for i in ids}
        if not ids:
            return _RunEvents(by_execution, {}, {})
        for event in self._store.get_events_by_execution_ids(ids):
            by_execution[event.execution_id].append(event)
        artifact_ids = sorted({e.artifact_id for found in by_execution.values() for e in found})
        artifacts = (
            {a.id: a for a in self._store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
        )
        type_ids = sorted({a.type_id for a in artifacts.values()})
        types = (
            {t.id: t.name for t in self._store.get_artifact_types_by_id(type_ids)}
            if type_ids
            else {}
        )
        return _RunEvents(by_execution, artifacts, types)
