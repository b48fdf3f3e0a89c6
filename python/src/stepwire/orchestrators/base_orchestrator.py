"""The base class of orchestrators: they schedule a pipeline's steps, nothing more.

Where and when each step runs is the orchestrator's; launching one step on TFX's
portable launcher and ML Metadata is :mod:`stepwire.step_launcher`'s, below it.
:meth:`BaseOrchestrator.run_step` and :meth:`BaseOrchestrator._get_node_with_step_name`
keep the seed API's names and delegate there.
"""

from __future__ import annotations

import datetime
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepwire import _protos, constants
from stepwire.exceptions import DuplicateRunNameError, InfrastructureError, StepwireError
from stepwire.pipeline_ir import PipelineIndex
from stepwire.run_context import run_stack
from stepwire.step_launcher import StepOutcome, StepRunResult, launch_step

if TYPE_CHECKING:
    from tfx.orchestration.portable.data_types import ExecutionInfo

    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

logger = logging.getLogger(__name__)

__all__ = [
    "BaseOrchestrator",
    "RuntimeConfiguration",
    "StepOutcome",
    "StepRunResult",
    "default_run_name",
]


@dataclass(frozen=True)
class RuntimeConfiguration:
    """Per-run settings handed to :meth:`BaseOrchestrator.prepare_or_run_pipeline`.

    Attributes:
        run_name: The run name; every step of the run must be launched with it.
    """

    run_name: str


def default_run_name(pipeline_name: str) -> str:
    """Returns ``<pipeline>-<YYYY-MM-DDTHH-MM-SS-micro>`` for the current UTC time.

    ISO-like, so the names of a pipeline's runs sort in the order they started, and
    no character needs quoting in a shell, a URL or a Kubernetes label value.

    Args:
        pipeline_name: The pipeline name.

    Returns:
        A run name that is unique unless two runs start in the same microsecond.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{pipeline_name}-{now:%Y-%m-%dT%H-%M-%S-%f}Z"


class BaseOrchestrator(ABC):
    """Runs pipelines: decides where and in which order each step runs.

    Subclasses implement :meth:`prepare_or_run_pipeline`; whatever runs a step
    (in-process, or a step entrypoint in another process) ends in
    :func:`stepwire.step_launcher.launch_step`.
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
            pb2_pipeline: Its compiled IR (run id and pipeline root still parameters).
            stack: The stack the pipeline runs on; hand it whole to step processes
                (``stack.to_config().to_environment()``).
            runtime_configuration: Per-run settings, the run name among them.

        Returns:
            Anything the orchestrator wants to hand back to ``pipeline.run()``.
        """

    def run(
        self, pipeline: BasePipeline, run_name: str | None = None, stack: Stack | None = None
    ) -> Any:
        """Compiles a pipeline, orders its steps and hands them to the subclass.

        Does nothing, and says so, inside a step process: a step process that imports
        a module which starts a run at import time must not run the pipeline again.

        Args:
            pipeline: The pipeline.
            run_name: The run name; generated when omitted.
            stack: The stack to run on. Omitted, this call is an entry of its own (a
                script calling ``MyOrchestrator().run(p)``): ``pipeline.run`` resolves
                the process's stack and runs it on this orchestrator.

        Returns:
            What :meth:`prepare_or_run_pipeline` returns, or None when pipeline
            execution is prevented in this process.

        Raises:
            DuplicateRunNameError: If ML Metadata already holds a run of that name.
            InfrastructureError: If the metadata store cannot be read.
        """
        if constants.should_prevent_pipeline_execution():
            logger.info(
                "Not running pipeline '%s': pipeline execution is prevented in this process.",
                pipeline.name,
            )
            return None
        if stack is None:
            return pipeline.run(run_name=run_name, orchestrator=self)
        run_name = run_name or default_run_name(pipeline.name)
        pb2_pipeline = pipeline.compile()
        self._check_run_name_is_new(pipeline, stack, run_name)
        sorted_steps = self._get_sorted_steps(pipeline, pb2_pipeline)
        logger.info("Running pipeline '%s' as run '%s'.", pipeline.name, run_name)
        with run_stack(stack):
            return self.prepare_or_run_pipeline(
                sorted_list_of_steps=sorted_steps,
                pipeline=pipeline,
                pb2_pipeline=pb2_pipeline,
                stack=stack,
                runtime_configuration=RuntimeConfiguration(run_name=run_name),
            )

    @staticmethod
    def _check_run_name_is_new(pipeline: BasePipeline, stack: Stack, run_name: str) -> None:
        # Opening the store here, before any step process does, creates the database
        # and ML Metadata's schema if they are missing (`stepwire metadata init`):
        # step processes that open an empty server database at once race to create it.
        try:
            context = stack.metadata_store.open_store().get_context_by_type_and_name(
                "pipeline_run", run_name
            )
        except StepwireError:
            raise
        except Exception as e:
            raise InfrastructureError(
                f"the metadata store {stack.metadata_store.describe()} cannot be read: {e}"
            ) from e
        if context is not None:
            raise DuplicateRunNameError(
                run_name,
                f"ML Metadata already holds a pipeline run of that name (pipeline "
                f"'{pipeline.name}')",
            )

    @staticmethod
    def _get_sorted_steps(pipeline: BasePipeline, pb2_pipeline: _protos.Pipeline) -> list[BaseStep]:
        """Returns the pipeline's steps in the compiler's (topological) node order."""
        by_name = {step.name: step for step in pipeline.steps.values()}
        return [by_name[node_id] for node_id in PipelineIndex(pb2_pipeline).nodes]

    @staticmethod
    def _get_node_with_step_name(
        step_name: str, pb2_pipeline: _protos.Pipeline
    ) -> _protos.PipelineNode:
        """Returns the pipeline node of a step (the seed's name; see :class:`PipelineIndex`).

        Orchestrators that look up many nodes of one IR should build one
        :class:`~stepwire.pipeline_ir.PipelineIndex` and ask it instead.

        Args:
            step_name: The step name (node id).
            pb2_pipeline: The compiled pipeline.

        Returns:
            The first pipeline node with that id.

        Raises:
            KeyError: If there is none.
        """
        node = PipelineIndex(pb2_pipeline).nodes.get(step_name)
        if node is None:
            raise KeyError(
                f"Step {step_name} not found in pipeline {pb2_pipeline.pipeline_info.id}"
            )
        return node

    def run_step(
        self, step: BaseStep, run_name: str, pb2_pipeline: _protos.Pipeline, *, stack: Stack
    ) -> ExecutionInfo | None:
        """Launches one step of a pipeline run (the seed's name for :func:`launch_step`).

        Args:
            step: The step; its executor class must exist where the IR names it.
            run_name: The run name, the same for every step of the run.
            pb2_pipeline: The compiled (possibly dehydrated) pipeline; not modified.
            stack: The stack the step runs on.

        Returns:
            TFX's ``ExecutionInfo`` of the execution.

        Raises:
            DuplicateRunNameError: If the step already completed in this run.
            InputResolutionError: If its inputs cannot be found for this run.
        """
        return launch_step(step, run_name, pb2_pipeline, stack).execution_info
