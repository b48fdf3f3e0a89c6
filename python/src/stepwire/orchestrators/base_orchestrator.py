"""The base class of orchestrators, and running one step with TFX's portable launcher.

:meth:`BaseOrchestrator.run_step` is a copy of what TFX's local DAG runner does for a
single node, with the traps of the original fixed:

* the run id is substituted into a private copy of the IR, never the caller's;
* a step that already completed in this run is an error, not a silent skip;
* after ``launch()``, the execution's state in ML Metadata decides the outcome, since
  TFX returns the same ``ExecutionInfo`` shape for a cache hit, a duplicate and an input
  resolution failure;
* ``sys.argv`` is scrubbed while the launcher is built, because TFX's Python executor
  operator copies it into every executor's ``extra_flags``;
* outputs left by a failed or interrupted attempt of the same execution are removed
  before TFX reuses its execution id and output paths;
* every prepare/cleanup pair runs in ``try``/``finally``;
* ML Metadata is opened through :mod:`stepwire.mlmd_guard`, so step processes that
  share a SQLite file take turns instead of failing with "Concurrent writes aborted".
"""

from __future__ import annotations

import datetime
import enum
import logging
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepwire import _protos, io_utils
from stepwire.exceptions import DuplicateRunNameError, InputResolutionError, StepwireError

if TYPE_CHECKING:
    from tfx.orchestration import metadata
    from tfx.orchestration.portable.data_types import ExecutionInfo

    from stepwire.mlmd_guard import GuardedMetadata
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

logger = logging.getLogger(__name__)

_PIPELINE_NODE = "pipeline_node"


@dataclass(frozen=True)
class RuntimeConfiguration:
    """Per-run settings handed to :meth:`BaseOrchestrator.prepare_or_run_pipeline`.

    Attributes:
        run_name: The run name; every step of the run must be launched with it.
    """

    run_name: str


class StepOutcome(enum.Enum):
    """How a launched step ended, read from ML Metadata after the launch."""

    #: The executor ran and the execution is COMPLETE.
    COMPLETED = "completed"
    #: TFX reused the outputs of an earlier execution with the same cache key.
    CACHED = "cached"
    #: The step had already completed in this run and re-runs were tolerated, so
    #: nothing was launched.
    ALREADY_COMPLETED = "already_completed"


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
    """

    step_name: str
    run_name: str
    outcome: StepOutcome
    execution_id: int | None
    execution_info: ExecutionInfo | None
    duration_seconds: float


def default_run_name(pipeline_name: str) -> str:
    """Returns ``<pipeline>-<dd_Mon_yy-HH_MM_SS_micro>`` for the current time.

    Args:
        pipeline_name: The pipeline name.

    Returns:
        A run name that is unique unless two runs start in the same microsecond.
    """
    return f"{pipeline_name}-{datetime.datetime.now():%d_%b_%y-%H_%M_%S_%f}"


class BaseOrchestrator(ABC):
    """Runs pipelines: decides where and in which order each step runs.

    Subclasses implement :meth:`prepare_or_run_pipeline`; whatever runs a step
    (in-process, or a step entrypoint in another process) ends in :meth:`run_step`.
    """

    @abstractmethod
    def prepare_or_run_pipeline(
        self,
        sorted_list_of_steps: list[BaseStep],
        pipeline: BasePipeline,
        pb2_pipeline: _protos.Pipeline,
        stack: Stack,
        runtime_configuration: RuntimeConfiguration,
    ) -> Any:
        """Runs the steps of a compiled pipeline, or prepares them to run.

        Args:
            sorted_list_of_steps: The steps in a topological order.
            pipeline: The pipeline.
            pb2_pipeline: Its compiled IR (the run id is still a placeholder).
            stack: The stack the pipeline runs on.
            runtime_configuration: Per-run settings, the run name among them.

        Returns:
            Anything the orchestrator wants to hand back to ``pipeline.run()``.
        """

    def run(
        self, pipeline: BasePipeline, run_name: str | None = None, stack: Stack | None = None
    ) -> Any:
        """Compiles a pipeline, orders its steps and hands them to the subclass.

        Args:
            pipeline: The pipeline.
            run_name: The run name; generated when omitted.
            stack: The stack; defaults to the active stack.

        Returns:
            What :meth:`prepare_or_run_pipeline` returns.

        Raises:
            DuplicateRunNameError: If ML Metadata already holds a run of that name.
        """
        from stepwire.mlmd_guard import GuardedMetadata

        if stack is None:
            from stepwire.stack import get_active_stack

            stack = get_active_stack()
        run_name = run_name or default_run_name(pipeline.name)
        pb2_pipeline = pipeline.compile(pipeline_root=stack.artifact_store.path)
        with GuardedMetadata(stack.metadata_store.get_tfx_metadata_config()) as m:
            if _find_context(m, "pipeline_run", run_name) is not None:
                raise DuplicateRunNameError(
                    run_name,
                    "ML Metadata already holds a pipeline run of that name "
                    f"(pipeline '{pipeline.name}')",
                )
        sorted_steps = self._get_sorted_steps(pipeline, pb2_pipeline)
        logger.info("Running pipeline '%s' as run '%s'.", pipeline.name, run_name)
        return self.prepare_or_run_pipeline(
            sorted_list_of_steps=sorted_steps,
            pipeline=pipeline,
            pb2_pipeline=pb2_pipeline,
            stack=stack,
            runtime_configuration=RuntimeConfiguration(run_name=run_name),
        )

    @staticmethod
    def _get_sorted_steps(pipeline: BasePipeline, pb2_pipeline: _protos.Pipeline) -> list[BaseStep]:
        """Returns the pipeline's steps in the compiler's (topological) node order."""
        by_name = {step.name: step for step in pipeline.steps.values()}
        return [
            by_name[node.pipeline_node.node_info.id]
            for node in pb2_pipeline.nodes
            if node.WhichOneof("node") == _PIPELINE_NODE
        ]

    @staticmethod
    def _get_node_with_step_name(
        step_name: str, pb2_pipeline: _protos.Pipeline
    ) -> _protos.PipelineNode:
        """Returns the pipeline node of a step.

        Args:
            step_name: The step name (node id).
            pb2_pipeline: The compiled pipeline.

        Returns:
            The first pipeline node with that id.

        Raises:
            KeyError: If there is none.
        """
        for node in pb2_pipeline.nodes:
            if (
                node.WhichOneof("node") == _PIPELINE_NODE
                and node.pipeline_node.node_info.id == step_name
            ):
                return node.pipeline_node
        raise KeyError(f"Step {step_name} not found in pipeline {pb2_pipeline.pipeline_info.id}")

    def run_step(
        self,
        step: BaseStep,
        run_name: str,
        pb2_pipeline: _protos.Pipeline,
        *,
        stack: Stack | None = None,
    ) -> ExecutionInfo | None:
        """Launches one step of a pipeline run with TFX's portable launcher.

        Args:
            step: The step; its executor class must exist where the IR names it.
            run_name: The run name, the same for every step of the run.
            pb2_pipeline: The compiled (possibly dehydrated) pipeline; not modified.
            stack: The stack whose metadata store is used; defaults to the active one.

        Returns:
            TFX's ``ExecutionInfo`` of the execution.

        Raises:
            DuplicateRunNameError: If the step already completed in this run.
            InputResolutionError: If its inputs cannot be found for this run.
        """
        return self.launch_step(step, run_name, pb2_pipeline, stack=stack).execution_info

    def launch_step(
        self,
        step: BaseStep,
        run_name: str,
        pb2_pipeline: _protos.Pipeline,
        *,
        stack: Stack | None = None,
        allow_rerun: bool = False,
    ) -> StepRunResult:
        """Launches one step like :meth:`run_step` and reports how it ended.

        Args:
            step: The step; its executor class must exist where the IR names it.
            run_name: The run name, the same for every step of the run.
            pb2_pipeline: The compiled (possibly dehydrated) pipeline; not modified.
            stack: The stack whose metadata store is used; defaults to the active one.
            allow_rerun: Report :attr:`StepOutcome.ALREADY_COMPLETED` instead of raising
                when the step already completed in this run.

        Returns:
            The outcome, read from ML Metadata.

        Raises:
            DuplicateRunNameError: If the step already completed in this run and
                ``allow_rerun`` is false.
            InputResolutionError: If its inputs cannot be found for this run.
            StepwireError: If the IR is already bound to another run or the execution
                ends in an unexpected state.
        """
        from tfx.orchestration.local import runner_utils
        from tfx.orchestration.portable import launcher

        from stepwire.mlmd_guard import GuardedMetadata

        if stack is None:
            from stepwire.stack import get_active_stack

            stack = get_active_stack()
        pipeline = _bind_run(pb2_pipeline, run_name)
        node = self._get_node_with_step_name(step.name, pipeline)
        deployment_config = runner_utils.extract_local_deployment_config(pipeline)
        executor_spec = runner_utils.extract_executor_spec(deployment_config, step.name)
        custom_driver_spec = runner_utils.extract_custom_driver_spec(deployment_config, step.name)
        # One connection for the whole launch, TFX's launcher included: calls take
        # turns with other step processes on a SQLite file and are retried on a fresh
        # store when ML Metadata aborts them (stepwire.mlmd_guard).
        mlmd = GuardedMetadata(stack.metadata_store.get_tfx_metadata_config())

        with mlmd as m:
            previous = _executions_of_node_in_run(m, node)
            done = [e for e in previous if _is_successful(e)]
            if done:
                if not allow_rerun:
                    raise DuplicateRunNameError(
                        run_name, f"step '{step.name}' already completed in that run"
                    )
                logger.info("Step '%s' already completed in run '%s'.", step.name, run_name)
                return StepRunResult(
                    step.name, run_name, StepOutcome.ALREADY_COMPLETED, done[0].id, None, 0.0
                )
        # TFX reuses an unfinished execution with the same id, hence the same output
        # paths: clear whatever an earlier failed or killed attempt left there.
        for execution in previous:
            _remove_outputs_of(execution, node, pipeline)

        # The launcher builds the executor operator right away, which imports the
        # executor class and copies sys.argv[1:] into the executor's extra_flags.
        saved_argv = sys.argv
        sys.argv = sys.argv[:1]
        try:
            step_launcher = launcher.Launcher(
                pipeline_node=node,
                mlmd_connection=mlmd,
                pipeline_info=pipeline.pipeline_info,
                pipeline_runtime_spec=pipeline.runtime_spec,
                executor_spec=executor_spec,
                custom_driver_spec=custom_driver_spec,
            )
        except (ImportError, AttributeError, ValueError) as e:
            class_path = getattr(executor_spec, "class_path", "?")
            raise StepwireError(
                f"Cannot load the executor '{class_path}' of step '{step.name}': {e}. The "
                "executor class must be generated in the module the IR names before launching."
            ) from e
        finally:
            sys.argv = saved_argv

        logger.info("Step '%s' of run '%s' starting.", step.name, run_name)
        start = time.monotonic()
        stack.prepare_step_run()
        try:
            execution_info = step_launcher.launch()
        finally:
            stack.cleanup_step_run()
        duration = time.monotonic() - start

        if execution_info is None or execution_info.execution_id is None:
            # TFX's Skip: no execution at all, e.g. an input channel resolved to nothing.
            raise InputResolutionError(step.name, run_name, "TFX registered no execution")
        execution_id: int = execution_info.execution_id
        with mlmd as m:
            [execution] = m.store.get_executions_by_id([execution_id])
        outcome = _classify(execution, step.name, run_name)
        if outcome is StepOutcome.COMPLETED and execution_info.execution_output_uri is None:
            # COMPLETE without an executor output URI: TFX found the execution already
            # succeeded and skipped it (another launch won the race since our check).
            raise DuplicateRunNameError(
                run_name, f"step '{step.name}' already completed in that run"
            )
        logger.info(
            "Step '%s' of run '%s' %s in %.2fs.", step.name, run_name, outcome.value, duration
        )
        _log_metadata_cost(mlmd)
        return StepRunResult(step.name, run_name, outcome, execution_id, execution_info, duration)


def _log_metadata_cost(mlmd: GuardedMetadata) -> None:
    """Logs what the launch's ML Metadata calls cost, lock waits included."""
    stats = mlmd.stats
    logger.info(
        "ML Metadata: %d calls, %.1f ms in them, %.1f ms waiting for other processes.",
        stats.calls,
        stats.seconds_in_calls * 1000,
        stats.seconds_waiting * 1000,
    )


def _bind_run(pb2_pipeline: _protos.Pipeline, run_name: str) -> _protos.Pipeline:
    """Returns a copy of the IR with the run id parameter set to ``run_name``."""
    from tfx.dsl.compiler import constants as compiler_constants
    from tfx.orchestration.portable import runtime_parameter_utils

    pipeline = _protos.Pipeline()
    pipeline.CopyFrom(pb2_pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        pipeline, {compiler_constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_name}
    )
    bound = pipeline.runtime_spec.pipeline_run_id.field_value.string_value
    if bound != run_name:
        raise StepwireError(
            f"The pipeline IR is already bound to run '{bound}', so it cannot run as "
            f"'{run_name}'; pass the IR as compiled, with the run id still a parameter."
        )
    return pipeline


def _find_context(m: metadata.Metadata, type_name: str, name: str) -> _protos.MLMDContext | None:
    """Returns the context of a type and name, or None (also when the type is unknown)."""
    return m.store.get_context_by_type_and_name(type_name, name)


def _executions_of_node_in_run(
    m: metadata.Metadata, node: _protos.PipelineNode
) -> list[_protos.MLMDExecution]:
    """Returns the executions attached to all of a node's contexts (pipeline, run, node)."""
    from tfx.orchestration.portable.mlmd import execution_lib

    contexts = []
    for spec in node.contexts.contexts:
        context = _find_context(m, spec.type.name, spec.name.field_value.string_value)
        if context is None:
            return []
        contexts.append(context)
    executions: list[_protos.MLMDExecution] = (
        execution_lib.get_executions_associated_with_all_contexts(m, contexts)
    )
    return executions


def _is_successful(execution: _protos.MLMDExecution) -> bool:
    from tfx.orchestration.portable.mlmd import execution_lib

    return bool(execution_lib.is_execution_successful(execution))


def _remove_outputs_of(
    execution: _protos.MLMDExecution, node: _protos.PipelineNode, pipeline: _protos.Pipeline
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
            io_utils.remove_tree(artifact.uri)


def _classify(execution: _protos.MLMDExecution, step_name: str, run_name: str) -> StepOutcome:
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
        raise InputResolutionError(step_name, run_name, last_line)
    state_name = states.State.Name(state)
    raise StepwireError(
        f"Step '{step_name}' of run '{run_name}' ended with its execution in state {state_name}."
    )
