"""Launching one step of a pipeline run on TFX's portable launcher and ML Metadata.

This is the one place a step is launched, whoever asks (the step entrypoint in a step
process, the ``local`` orchestrator in-process, ``BaseOrchestrator.run_step``). It takes
the stack explicitly and owns, for one step:

* binding a private copy of the IR to the run and to the stack's artifact store (the
  caller's IR is never modified);
* the one re-run policy: a step that already completed in the run is an error
  (:class:`~stepwire.exceptions.DuplicateRunNameError`) unless the caller tolerates it;
* removing outputs an earlier failed or killed attempt of the same execution left,
  since TFX reuses its execution id and output paths;
* scrubbing ``sys.argv`` while the launcher is built, because TFX's Python executor
  operator copies it into every executor's ``extra_flags``;
* classifying the outcome from the execution's state in ML Metadata, since TFX returns
  the same ``ExecutionInfo`` shape for a cache hit, a duplicate and an input
  resolution failure;
* opening ML Metadata through :mod:`stepwire.mlmd_guard`, so step processes sharing a
  SQLite file take turns instead of failing with "Concurrent writes aborted".
"""

from __future__ import annotations

import enum
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from stepwire import _protos, attempt_claims, attempts, io_utils
from stepwire.exceptions import (
    DuplicateRunNameError,
    InfrastructureError,
    InputResolutionError,
    PipelineIRError,
    StepwireError,
)
from stepwire.pipeline_ir import PipelineIndex, bind_run

if TYPE_CHECKING:
    from tfx.orchestration import metadata
    from tfx.orchestration.portable.data_types import ExecutionInfo

    from stepwire.mlmd_guard import CallStats, GuardedMetadata
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

logger = logging.getLogger(__name__)


class StepOutcome(enum.Enum):
    """How a launched step ended, read from ML Metadata after the launch."""

    #: The executor ran and the execution is COMPLETE.
    COMPLETED = "completed"
    #: TFX reused the outputs of an earlier execution with the same cache key.
    CACHED = "cached"
    #: The step had already completed in this run and re-runs were tolerated, so
    #: nothing was launched.
    ALREADY_COMPLETED = "already_completed"


class RerunPolicy(enum.Enum):
    """What launching a step that already completed in its run does."""

    #: Raise :class:`~stepwire.exceptions.DuplicateRunNameError` (exit code 67).
    FAIL = "fail"
    #: Launch nothing and report :attr:`StepOutcome.ALREADY_COMPLETED`.
    TOLERATE = "tolerate"


@dataclass(frozen=True)
class StepRunResult:
    """The result of launching one step.

    Attributes:
        step_name: The step (node id).
        run_name: The run it was launched in.
        outcome: How it ended.
        execution_id: Its ML Metadata execution id.
        execution_info: What TFX's launcher returned (None if nothing was launched).
        duration_seconds: Wall time of the launch.
        pipeline_node: The node that ran, bound to the run (its contexts and output
            paths hold the run id and the artifact store, not parameters).
        pipeline: The bound IR the node belongs to.
    """

    step_name: str
    run_name: str
    outcome: StepOutcome
    execution_id: int | None
    execution_info: ExecutionInfo | None
    duration_seconds: float
    pipeline_node: _protos.PipelineNode
    pipeline: _protos.Pipeline


def launch_step(
    step: BaseStep,
    run_name: str,
    pb2_pipeline: _protos.Pipeline,
    stack: Stack,
    *,
    index: PipelineIndex | None = None,
    rerun: RerunPolicy = RerunPolicy.FAIL,
    before_launch: Callable[[_protos.PipelineNode], None] | None = None,
    before_claim: Callable[[_protos.PipelineNode], None] | None = None,
    mlmd: GuardedMetadata | None = None,
) -> StepRunResult:
    """Launches one step of a pipeline run and reports how it ended.

    Args:
        step: The step; its executor class must exist where the IR names it.
        run_name: The run name, the same for every step of the run.
        pb2_pipeline: The compiled (possibly dehydrated) pipeline; not modified.
        stack: The stack: its artifact store is the pipeline root, its metadata store
            records the execution.
        index: An index of ``pb2_pipeline``, if the caller has one (saves unpacking
            its deployment config again).
        rerun: What to do when the step already completed in this run.
        before_launch: Called with the bound node right before TFX launches it (the
            step process's supervisor learns from it which execution to watch).
        before_claim: Called with the bound node right before the step's attempt is
            claimed (the step process tells its supervisor whose claim to release).
        mlmd: A connection to the stack's metadata store that the caller keeps
            across launches (the ``local`` orchestrator, one per run: opening ML
            Metadata costs a few milliseconds); by default, one for this launch.

    Returns:
        The outcome, read from ML Metadata, with the bound node that ran.

    Raises:
        DuplicateRunNameError: If the step already completed in this run and
            ``rerun`` is :attr:`RerunPolicy.FAIL`.
        InputResolutionError: If its inputs cannot be found for this run.
        PipelineIRError: If the IR cannot describe this step.
        InfrastructureError: If the artifact or metadata store cannot be used.
        StepwireError: If the execution ends in an unexpected state.
    """
    index = index or PipelineIndex(pb2_pipeline)
    # Validate the IR's view of this step before binding a copy of it.
    index.node(step.name)
    executor_spec = index.executor_spec(step.name)
    index.custom_driver_spec(step.name)
    _check_artifact_store(stack.artifact_store.path)
    pipeline = bind_run(pb2_pipeline, run_name, stack.artifact_store.path)
    node = _bound_node(pipeline, step.name)
    # One connection for the whole launch, TFX's launcher included: calls take
    # turns with other step processes on a SQLite file and are retried on a fresh
    # store when ML Metadata aborts them (stepwire.mlmd_guard).
    if mlmd is None:
        mlmd = connect_metadata(stack)
    cost_before = replace(mlmd.stats)
    if before_claim is not None:
        before_claim(node)
    # Exactly one live attempt per step and run: the holder of the newest claim,
    # every older one dead, is the only launch that may touch the step's files.
    claim = _claim(mlmd, stack, node, run_name, step.name)
    ended = "failed"
    try:
        result = _launch_claimed(
            step, run_name, pipeline, stack, node, mlmd, claim, executor_spec, rerun, before_launch
        )
        ended = result.outcome.value
        return result
    finally:
        attempt_claims.release(mlmd, claim, ended)
        _log_metadata_cost(mlmd, cost_before)


def _claim(
    mlmd: GuardedMetadata, stack: Stack, node: _protos.PipelineNode, run_name: str, step: str
) -> attempt_claims.Claim:
    """Claims the step's next attempt, a store that cannot be used being one clear line."""
    node_context = dict(node_contexts(node)).get("node", step)
    try:
        return attempt_claims.claim_attempt(mlmd, node_context, run_name, step=step)
    except StepwireError:
        raise
    except Exception as e:
        raise InfrastructureError(
            f"the metadata store {stack.metadata_store.describe()} cannot be used: "
            f"{' '.join(str(e).split()) or type(e).__name__}"
        ) from e


def _launch_claimed(  # noqa: PLR0917 - the launch's whole state, passed once
    step: BaseStep,
    run_name: str,
    pipeline: _protos.Pipeline,
    stack: Stack,
    node: _protos.PipelineNode,
    mlmd: GuardedMetadata,
    claim: attempt_claims.Claim,
    executor_spec: Any,
    rerun: RerunPolicy,
    before_launch: Callable[[_protos.PipelineNode], None] | None,
) -> StepRunResult:
    """Launches the step once this process holds its newest attempt's claim."""
    previous: list[_protos.MLMDExecution] = []
    if claim.attempt > 1:
        # The first claim of a step in a run is taken before any launch of it
        # registers an execution, so only a later attempt can find one (an attempt
        # 1 racing a launch outside stepwire is still caught: TFX then reuses a
        # COMPLETE execution, which is refused below).
        with _opened(mlmd, stack) as m:
            previous = _executions_of_node_in_run(m, node)
    done = [e for e in previous if _is_successful(e)]
    if done:
        if rerun is RerunPolicy.FAIL:
            raise DuplicateRunNameError(
                run_name, f"step '{step.name}' already completed in that run"
            )
        logger.warning(
            "Step '%s' already succeeded in run '%s': not executed again (re-runs tolerated).",
            step.name,
            run_name,
        )
        return StepRunResult(
            step.name,
            run_name,
            StepOutcome.ALREADY_COMPLETED,
            done[0].id,
            None,
            0.0,
            node,
            pipeline,
        )
    # TFX reuses an unfinished execution with the same id, hence the same output
    # paths: clear whatever an earlier attempt left there. Every earlier attempt is
    # dead: this process holds the newest claim, taken after theirs ended.
    for execution in previous:
        _remove_outputs_of(execution, node, pipeline, stack.artifact_store.path)

    step_launcher = _build_launcher(
        node,
        mlmd,
        pipeline,
        executor_spec=executor_spec,
        step_name=step.name,
    )
    if before_launch is not None:
        before_launch(node)
    attempt = claim.attempt
    logger.info("Step '%s' of run '%s' starting (attempt %d).", step.name, run_name, attempt)
    start = time.monotonic()
    execution_info = None
    try:
        with attempt_claims.Heartbeat(lambda: connect_metadata(stack), claim):
            execution_info = _run_launcher(step_launcher, stack, mlmd, node)
    except BaseException as e:
        if _store_failed(e):
            # More calls to a metadata server that just went away only wait, and
            # ML Metadata's MySQL client can crash reconnecting: the claim expires.
            claim.store_lost = True
        raise
    finally:
        recorded = None
        if not claim.store_lost:
            recorded = _record_attempt(mlmd, node, execution_info, attempt)
            claim.store_lost = recorded is None
    duration = time.monotonic() - start

    if execution_info is None or execution_info.execution_id is None:
        # TFX's Skip: no execution at all, e.g. an input channel resolved to nothing.
        with mlmd as m:
            raise _input_resolution_error(m, node, step.name, run_name, "")
    execution_id: int = execution_info.execution_id
    with mlmd as m:
        if recorded is None or [e.id for e in recorded] != [execution_id]:
            recorded = m.store.get_executions_by_id([execution_id])
        [execution] = recorded
        outcome = _classify(m, execution, node, step.name, run_name)
    if outcome is StepOutcome.COMPLETED and execution_info.execution_output_uri is None:
        # COMPLETE without an executor output URI: TFX found the execution already
        # succeeded and skipped it (another launch won the race since our check).
        raise DuplicateRunNameError(run_name, f"step '{step.name}' already completed in that run")
    logger.info("Step '%s' of run '%s' %s in %.2fs.", step.name, run_name, outcome.value, duration)
    return StepRunResult(
        step.name, run_name, outcome, execution_id, execution_info, duration, node, pipeline
    )


def _build_launcher(
    node: _protos.PipelineNode,
    mlmd: GuardedMetadata,
    pipeline: _protos.Pipeline,
    *,
    executor_spec: Any,
    step_name: str,
) -> Any:
    """TFX's portable launcher for the bound node."""
    from stepwire.in_process_launcher import InProcessLauncher

    # The launcher builds the executor operator right away, which imports the
    # executor class and copies sys.argv[1:] into the executor's extra_flags.
    saved_argv = sys.argv
    sys.argv = sys.argv[:1]
    try:
        return InProcessLauncher(
            pipeline_node=node,
            mlmd_connection=mlmd,
            pipeline_info=pipeline.pipeline_info,
            pipeline_runtime_spec=pipeline.runtime_spec,
            executor_spec=executor_spec,
            custom_driver_spec=None,
        )
    except (ImportError, AttributeError) as e:
        raise PipelineIRError(
            f"the executor '{executor_spec.class_path}' of step '{step_name}' cannot be "
            f"loaded: {e}; the IR must name the module the step's executor is generated in"
        ) from e
    finally:
        sys.argv = saved_argv


def _run_launcher(
    step_launcher: Any, stack: Stack, mlmd: GuardedMetadata, node: _protos.PipelineNode
) -> Any:
    """Runs the launch between the stack's hooks; a stopped step is marked FAILED."""
    stack.prepare_step_run()
    try:
        return step_launcher.launch()
    except Exception as error:
        # TFX records a failure of the executor; one before it (creating the output
        # folders, for example) leaves the registered execution RUNNING. This launch
        # holds the step's claim, so an unfinished execution of it is this one's.
        if not _store_failed(error):
            reason = f"the launch failed before the step ended: {type(error).__name__}: {error}"
            mark_unfinished_failed(mlmd, node_contexts(node), reason)
        raise
    except BaseException as stop:
        # TFX marks an execution FAILED only for an Exception: a step that calls
        # sys.exit(), is interrupted or raises a bare BaseException would stay
        # RUNNING for ever.
        reason = f"the step stopped with {type(stop).__name__}({getattr(stop, 'code', '')})"
        mark_unfinished_failed(mlmd, node_contexts(node), reason)
        raise
    finally:
        stack.cleanup_step_run()


def _store_failed(error: BaseException) -> bool:
    """Whether a launch failed because the metadata store could not be used."""
    from stepwire.mlmd_guard import MetadataClientError

    if isinstance(error, (InfrastructureError, MetadataClientError)):
        return True
    return type(error).__module__.startswith("ml_metadata")


def _record_attempt(
    mlmd: GuardedMetadata,
    node: _protos.PipelineNode,
    execution_info: Any,
    attempt: int,
) -> list[_protos.MLMDExecution] | None:
    """Records the attempt's number and node on its execution, once it has ended.

    Best effort: when ML Metadata cannot be written the launch has already failed
    or succeeded, and that outcome, not this record, is what the step reports.

    Returns:
        The executions read and recorded (the launch's one, or none), or None if
        ML Metadata did not answer.
    """
    execution_id = getattr(execution_info, "execution_id", None)
    try:
        with mlmd as m:
            if execution_id is not None:
                executions = list(m.store.get_executions_by_id([execution_id]))
            else:
                # The launch raised: the execution it registered is the node's newest.
                executions = sorted(_executions_of_node_in_run(m, node), key=lambda e: e.id)[-1:]
            for execution in executions:
                attempts.record_attempt(execution, attempt, attempts.this_node())
            if executions:
                m.store.put_executions(executions)
    except Exception as e:  # the outcome of the launch matters more than this record
        logger.warning("Could not record attempt %d in ML Metadata: %s", attempt, e)
        return None
    return executions


def _bound_node(pipeline: _protos.Pipeline, node_id: str) -> _protos.PipelineNode:
    """The node in the bound copy (the index validated that it exists)."""
    return next(
        wrapper.pipeline_node
        for wrapper in pipeline.nodes
        if wrapper.WhichOneof("node") == "pipeline_node"
        and wrapper.pipeline_node.node_info.id == node_id
    )


def _check_artifact_store(root: str) -> None:
    """Fails before launching if TFX's file layer cannot write below ``root``."""
    from tfx.dsl.io import filesystem_registry

    if io_utils.is_remote(root):
        # A remote store gets its fsspec filesystem registered with TFX here (a
        # local one needs neither it nor fsspec).
        from stepwire.artifact_filesystem import check_artifact_store

        check_artifact_store(root)
    try:
        filesystem_registry.DEFAULT_FILESYSTEM_REGISTRY.get_filesystem_for_path(root)
    except Exception as e:
        raise InfrastructureError(
            f"the artifact store {root!r} cannot be used: TFX's file layer has no "
            f"filesystem for it ({e})"
        ) from e
    if not io_utils.is_remote(root):
        try:
            io_utils.makedirs(root)
        except OSError as e:
            raise InfrastructureError(f"the artifact store {root!r} cannot be used: {e}") from e


def connect_metadata(stack: Stack) -> GuardedMetadata:
    """A guarded ML Metadata connection for the stack, to launch steps over.

    Args:
        stack: The stack.

    Returns:
        The connection, not opened yet (the first ``with`` opens it).

    Raises:
        InfrastructureError: If the stack's metadata store cannot be used.
    """
    from stepwire.mlmd_guard import GuardedMetadata

    try:
        return GuardedMetadata(stack.metadata_store.get_tfx_metadata_config())
    except StepwireError:
        raise
    except Exception as e:  # e.g. the SQLite file's folder cannot be created
        raise InfrastructureError(
            f"the metadata store {stack.metadata_store.describe()} cannot be used: "
            f"{' '.join(str(e).split()) or type(e).__name__}"
        ) from e


class _opened:  # noqa: N801 - used like a function: `with _opened(mlmd, stack) as m`
    """Enters a guarded connection, turning any failure to open it into one clear line."""

    def __init__(self, mlmd: GuardedMetadata, stack: Stack) -> None:
        self._mlmd = mlmd
        self._stack = stack

    def __enter__(self) -> Any:
        try:
            return self._mlmd.__enter__()
        except StepwireError:
            raise
        except Exception as e:
            raise InfrastructureError(
                f"the metadata store {self._stack.metadata_store.describe()} cannot be "
                f"opened: {' '.join(str(e).split()) or type(e).__name__}"
            ) from e

    def __exit__(self, *exc_info: Any) -> None:
        self._mlmd.__exit__(*exc_info)


def _log_metadata_cost(mlmd: GuardedMetadata, before: CallStats) -> None:
    """Logs what the launch's ML Metadata calls cost, lock waits included."""
    stats = mlmd.stats
    logger.info(
        "ML Metadata: %d calls, %.1f ms in them, %.1f ms waiting for other processes.",
        stats.calls - before.calls,
        (stats.seconds_in_calls - before.seconds_in_calls) * 1000,
        (stats.seconds_waiting - before.seconds_waiting) * 1000,
    )


def _find_context(m: metadata.Metadata, type_name: str, name: str) -> _protos.MLMDContext | None:
    """Returns the context of a type and name, or None (also when the type is unknown)."""
    return m.store.get_context_by_type_and_name(type_name, name)


def _executions_in_contexts(
    m: metadata.Metadata, contexts: list[tuple[str, str]]
) -> list[_protos.MLMDExecution]:
    """Executions attached to every one of the contexts ``(type, name)``; [] if one is new."""
    from tfx.orchestration.portable.mlmd import execution_lib

    found = []
    for type_name, name in contexts:
        context = _find_context(m, type_name, name)
        if context is None:
            return []
        found.append(context)
    executions: list[_protos.MLMDExecution] = (
        execution_lib.get_executions_associated_with_all_contexts(m, found)
    )
    return executions


def node_contexts(node: _protos.PipelineNode) -> list[tuple[str, str]]:
    """The ``(type, name)`` of each context of a bound node: pipeline, run and node.

    Args:
        node: A node bound to a run.

    Returns:
        The contexts, as TFX registers them.
    """
    return [(spec.type.name, spec.name.field_value.string_value) for spec in node.contexts.contexts]


def _executions_of_node_in_run(
    m: metadata.Metadata, node: _protos.PipelineNode
) -> list[_protos.MLMDExecution]:
    """Returns the executions attached to all of a node's contexts (pipeline, run, node)."""
    return _executions_in_contexts(m, node_contexts(node))


def _is_successful(execution: _protos.MLMDExecution) -> bool:
    from tfx.orchestration.portable.mlmd import execution_lib

    return bool(execution_lib.is_execution_successful(execution))


def _remove_outputs_of(
    execution: _protos.MLMDExecution,
    node: _protos.PipelineNode,
    pipeline: _protos.Pipeline,
    store_root: str,
) -> None:
    from tfx.orchestration.portable import outputs_utils

    resolver = outputs_utils.OutputsResolver(
        node, pipeline.pipeline_info, pipeline.runtime_spec, pipeline.execution_mode
    )
    logger.info(
        "Removing outputs of the unfinished execution %d of step '%s' before retrying it.",
        execution.id,
        node.node_info.id,
    )
    # Not outputs_utils.remove_output_dirs: it raises for paths that are already gone
    # (TFX removes them itself when the executor raised).
    for artifacts in resolver.generate_output_artifacts(execution.id).values():
        for artifact in artifacts:
            # Never remove anything outside the store, whatever the IR's output keys say.
            if not io_utils.is_inside(artifact.uri, store_root):
                raise PipelineIRError(
                    f"the output path {artifact.uri!r} of step '{node.node_info.id}' is not "
                    f"inside the artifact store {store_root!r}; nothing was removed"
                )
            io_utils.remove_tree(artifact.uri)


def _unfinished_upstream(m: metadata.Metadata, node: _protos.PipelineNode) -> str:
    """Says which upstream step has an execution in the run that never completed, if any."""
    contexts = node_contexts(node)
    run_contexts = [c for c in contexts if c[0] != "node"]
    pipeline_name = node.contexts.contexts[0].name.field_value.string_value
    states = _protos.MLMDExecution
    for upstream in node.upstream_nodes:
        upstream_context = ("node", f"{pipeline_name}.{upstream}")
        executions = _executions_in_contexts(m, [*run_contexts, upstream_context])
        if executions and not any(_is_successful(e) for e in executions):
            state = states.State.Name(executions[-1].last_known_state)
            run_name = next((name for kind, name in run_contexts if kind == "pipeline_run"), "")
            return (
                f"upstream step '{upstream}' has an execution in run '{run_name}' that never "
                f"completed (state {state})"
            )
    return ""


def _input_resolution_error(
    m: metadata.Metadata, node: _protos.PipelineNode, step_name: str, run_name: str, detail: str
) -> InputResolutionError:
    return InputResolutionError(step_name, run_name, detail, _unfinished_upstream(m, node))


def _classify(
    m: metadata.Metadata,
    execution: _protos.MLMDExecution,
    node: _protos.PipelineNode,
    step_name: str,
    run_name: str,
) -> StepOutcome:
    """Maps the state ML Metadata holds for an execution to an outcome or an error."""
    from tfx.orchestration.portable.mlmd import execution_lib

    states = _protos.MLMDExecution
    state = execution.last_known_state
    if state == states.COMPLETE:
        return StepOutcome.COMPLETED
    if state == states.CACHED:
        return StepOutcome.CACHED
    if state == states.FAILED:
        # launch() raises when the step itself fails, so a FAILED execution after a
        # normal return means TFX gave up while resolving inputs.
        result = execution_lib.get_execution_result(execution, ignore_parse_errors=True)
        message = result.result_message if result is not None else ""
        last_line = next(
            (line.strip() for line in reversed(message.splitlines()) if line.strip()), ""
        )
        raise _input_resolution_error(m, node, step_name, run_name, last_line)
    state_name = states.State.Name(state)
    raise StepwireError(
        f"Step '{step_name}' of run '{run_name}' ended with its execution in state {state_name}."
    )


def mark_unfinished_failed(
    mlmd: GuardedMetadata, contexts: list[tuple[str, str]], reason: str
) -> list[int]:
    """Marks the executions of a node in a run that never finished as FAILED.

    Used when the step stopped in a way TFX does not record (``SystemExit``, or the
    supervisor's child dying), so ML Metadata does not keep a RUNNING execution that
    nothing runs any more.

    Args:
        mlmd: A guarded ML Metadata connection, not entered.
        contexts: The bound node's contexts ``(type, name)``: pipeline, run, node.
        reason: Why, recorded on the execution.

    Returns:
        The ids of the executions marked.
    """
    states = _protos.MLMDExecution
    with mlmd as m:
        unfinished = [
            e
            for e in _executions_in_contexts(m, contexts)
            if e.last_known_state in (states.NEW, states.RUNNING)
        ]
        for execution in unfinished:
            execution.last_known_state = states.FAILED
            execution.custom_properties[FAILURE_PROPERTY].string_value = reason[:1000]
        if unfinished:
            m.store.put_executions(unfinished)
    return [e.id for e in unfinished]


FAILURE_PROPERTY = "stepwire_failure"
"""Custom property of an execution the supervisor marked FAILED: why."""
