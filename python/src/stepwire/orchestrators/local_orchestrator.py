"""The ``local`` orchestrator: every step in this process, in order, for debugging."""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING

from stepwire import redaction, step_logs
from stepwire.orchestrators.base_orchestrator import BaseOrchestrator, RuntimeConfiguration
from stepwire.orchestrators.progress import PipelineRunFailedError, ProgressReporter, RunSummary
from stepwire.pipeline_ir import PipelineIndex
from stepwire.step_launcher import connect_metadata, launch_step

if TYPE_CHECKING:
    from stepwire._protos import Pipeline as Pb2Pipeline
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep


class LocalOrchestrator(BaseOrchestrator):
    """Runs every step in the calling process, one after the other.

    Exceptions of a step propagate with their full traceback, so a debugger
    can stop inside the step. Steps whose upstream failed are not started.
    """

    def prepare_or_run_pipeline(
        self,
        sorted_list_of_steps: list[BaseStep],
        pipeline: BasePipeline,
        pb2_pipeline: Pb2Pipeline,
        stack: Stack,
        runtime_configuration: RuntimeConfiguration,
    ) -> RunSummary:
        """Runs the steps in topological order.

        Args:
            sorted_list_of_steps: The steps in a topological order.
            pipeline: The pipeline.
            pb2_pipeline: Its compiled IR.
            stack: The stack to run on.
            runtime_configuration: Holds the run name.

        Returns:
            What happened to each step.

        Raises:
            PipelineRunFailedError: If a step failed; its exception is the cause.
        """
        run_name = runtime_configuration.run_name
        summary = RunSummary(pipeline=pipeline.name, run_name=run_name)
        width = max((len(step.name) for step in sorted_list_of_steps), default=0)
        progress = ProgressReporter(summary, width)
        progress.header(None)
        failure: BaseException | None = None
        index = PipelineIndex(pb2_pipeline)
        # One connection for the run's launches: opening ML Metadata costs a step a
        # few milliseconds, a fifth of a trivial step here.
        mlmd = connect_metadata(stack)
        for step in sorted_list_of_steps:
            if failure is not None:
                progress.skipped(step.name, next(iter(summary.errors)))
                continue
            progress.started(step.name)
            start = time.monotonic()
            try:
                # The step's output is kept with the run, as a step process's is.
                with step_logs.capture_output(
                    stack.artifact_store.path, run_name, step.name
                ) as log:
                    try:
                        result = launch_step(
                            step, run_name, pb2_pipeline, stack, index=index, mlmd=mlmd
                        )
                    except Exception as exc:
                        text = "".join(traceback.format_exception(exc))
                        log.write(redaction.redact(text).encode())
                        raise
            except Exception as exc:  # reported, then re-raised after the summary
                failure = exc
                message = redaction.redact(str(exc))
                progress.finished(step.name, "failed", time.monotonic() - start, message)
                continue
            progress.finished(step.name, result.outcome.value, result.duration_seconds)
        progress.footer()
        if failure is not None:
            raise PipelineRunFailedError(summary) from failure
        return summary
