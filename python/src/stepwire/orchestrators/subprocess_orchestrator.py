"""The ``subprocess`` orchestrator (the default): every step in its own process.

Each step runs as ``get_entrypoint_command() + get_entrypoint_arguments(...)``,
exactly as an orchestrator for containers or pods would launch it. Independent
steps run in parallel, up to ``max_parallel`` at a time.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepwire import constants, io_utils
from stepwire.entrypoints.codec import RUN_NAME_OPTION, ArgumentError, ErrorKind
from stepwire.entrypoints.exit_codes import ExitCode
from stepwire.entrypoints.step_entrypoint_configuration import (
    DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND,
    StepEntrypointConfiguration,
)
from stepwire.entrypoints.warm_parent import ENV_WARM_PROCESSES
from stepwire.orchestrators.base_orchestrator import BaseOrchestrator, RuntimeConfiguration
from stepwire.orchestrators.progress import PipelineRunFailedError, ProgressReporter, RunSummary
from stepwire.orchestrators.step_processes import (
    RecordedOutcomes,
    judge_exit,
    log_folder,
    plan_step_processes,
    print_tail,
    step_environment,
)
from stepwire.orchestrators.warm_launch import WarmLauncher, WarmParentDiedError
from stepwire.steps.resources import RETRYABLE_EXIT_CODES

if TYPE_CHECKING:
    from stepwire._protos import Pipeline as Pb2Pipeline
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

ENV_MAX_PARALLEL = "STEPWIRE_MAX_PARALLEL"
"""Environment variable that bounds the number of step processes at a time."""


class SubprocessEntrypointConfiguration(StepEntrypointConfiguration):
    """The configuration the ``subprocess`` orchestrator launches steps with.

    The run name travels in the contract's late-bound ``--run_name`` option,
    and the command is this interpreter, so a virtual environment that is not
    activated still runs the steps.
    """

    @classmethod
    def get_entrypoint_command(cls) -> list[str]:
        """Runs the entrypoint with the interpreter of the orchestrating process.

        Returns:
            The command.
        """
        return [sys.executable, *DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND[1:]]

    def get_run_name(self, pipeline_name: str) -> str:
        """Reads the run name from ``--run_name``.

        Args:
            pipeline_name: The name of the pipeline.

        Returns:
            The run name.

        Raises:
            ArgumentError: If the command line has no ``--run_name``.
        """
        run_name = self.entrypoint_args.get(RUN_NAME_OPTION)
        if not run_name:
            raise ArgumentError(
                ErrorKind.MISSING_OPTION,
                f"--{RUN_NAME_OPTION}: required by {type(self).__name__} for pipeline "
                f"{pipeline_name}",
                RUN_NAME_OPTION,
            )
        return str(run_name)


def _default_parallelism() -> int:
    configured = os.environ.get(ENV_MAX_PARALLEL, "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return os.cpu_count() or 1


class SubprocessOrchestrator(BaseOrchestrator):
    """Runs each step in a fresh process through the step entrypoint."""

    def __init__(self, max_parallel: int | None = None, warm: bool | None = None) -> None:
        """Creates the orchestrator.

        Args:
            max_parallel: Step processes at a time; defaults to
                ``$STEPWIRE_MAX_PARALLEL`` or the number of cores.
            warm: Fork step processes from a warm parent
                (:mod:`stepwire.orchestrators.warm_launch`); defaults to on, unless
                ``STEPWIRE_WARM_PROCESSES=0``. Where it cannot be (not Linux), steps
                start cold either way.
        """
        self.max_parallel = max_parallel or _default_parallelism()
        self.warm = warm
        self._warm_launcher: WarmLauncher | None = None

    def run(
        self, pipeline: BasePipeline, run_name: str | None = None, stack: Stack | None = None
    ) -> Any:
        """Runs the pipeline, the warm parent warming up while it compiles.

        Args:
            pipeline: As for :meth:`BaseOrchestrator.run`.
            run_name: As for :meth:`BaseOrchestrator.run`.
            stack: As for :meth:`BaseOrchestrator.run`.

        Returns:
            As for :meth:`BaseOrchestrator.run`.
        """
        if stack is None or constants.should_prevent_pipeline_execution():
            return super().run(pipeline, run_name, stack)
        # Its imports take about as long as compiling a pipeline of 50 steps and
        # building their command lines: on a second core, the first step waits
        # for neither.
        with WarmLauncher(self._warm_environment(stack)) as launcher:
            launcher.start()
            self._warm_launcher = launcher
            try:
                return super().run(pipeline, run_name, stack)
            finally:
                self._warm_launcher = None

    def _warm_environment(self, stack: Stack) -> dict[str, str]:
        """The environment the warm parent starts with; it says "cold" when warm is off."""
        env = step_environment(stack)
        return env if self.warm is not False else {**env, ENV_WARM_PROCESSES: "0"}

    def prepare_or_run_pipeline(
        self,
        sorted_list_of_steps: list[BaseStep],
        pipeline: BasePipeline,
        pb2_pipeline: Pb2Pipeline,
        stack: Stack,
        runtime_configuration: RuntimeConfiguration,
    ) -> RunSummary:
        """Runs every step in its own process, independent steps in parallel.

        Args:
            sorted_list_of_steps: The steps in a topological order.
            pipeline: The pipeline.
            pb2_pipeline: Its compiled IR.
            stack: The stack to run on.
            runtime_configuration: Holds the run name.

        Returns:
            What happened to each step.

        Raises:
            PipelineRunFailedError: If a step failed; its dependents were not started.
        """
        run_name = runtime_configuration.run_name
        plan = plan_step_processes(
            SubprocessEntrypointConfiguration, sorted_list_of_steps, pb2_pipeline, stack, run_name
        )
        commands, upstream = plan.commands, plan.upstream
        env = step_environment(stack)
        logs = log_folder(stack, run_name)
        summary = RunSummary(pipeline=pipeline.name, run_name=run_name)
        width = max((len(name) for name in commands), default=0)
        progress = ProgressReporter(summary, width)
        progress.header(self.max_parallel)

        steps = {step.name: step for step in sorted_list_of_steps}
        pending = list(steps)
        running: dict[Future[tuple[int, float, int]], str] = {}
        outcomes = RecordedOutcomes(stack, pipeline.name, run_name)
        with contextlib.ExitStack() as resources:
            warm = self._warm_launcher or resources.enter_context(
                WarmLauncher(self._warm_environment(stack))
            )
            pool = resources.enter_context(ThreadPoolExecutor(self.max_parallel))
            while pending or running:
                for name in list(pending):
                    failed = [
                        u
                        for u in upstream[name]
                        if summary.statuses.get(u) in {"failed", "skipped"}
                    ]
                    if failed:
                        pending.remove(name)
                        progress.skipped(name, failed[0])
                    elif len(running) < self.max_parallel and all(
                        summary.statuses.get(u) in {"completed", "cached"} for u in upstream[name]
                    ):
                        pending.remove(name)
                        progress.started(name)
                        log = logs / f"{name}.log"
                        launch = _StepLaunch(commands[name], env, log, steps[name].RETRIES, warm)
                        launch.recorded = functools.partial(outcomes.status, name)
                        running[pool.submit(launch.run)] = name
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    code, seconds, attempts = future.result()
                    log = logs / f"{name}.log"
                    status, error = judge_exit(outcomes, name, code=code, log=log)
                    where = f"attempt {attempts}" if attempts > 1 else ""
                    progress.finished(name, status, seconds, error, where)
                    if status == "failed":
                        print_tail(log, run_name, name)
        progress.footer()
        if not summary.succeeded:
            raise PipelineRunFailedError(summary)
        return summary


class _StepLaunch:
    """The attempts of one step process: warm when it can be, cold otherwise."""

    def __init__(
        self, command: list[str], env: dict[str, str], log: Path, retries: int, warm: WarmLauncher
    ) -> None:
        self.command, self.env, self.log, self.retries, self.warm = command, env, log, retries, warm
        self.recorded: Callable[[], str | None] = lambda: None
        """What ML Metadata holds for the step (its status), asked when its end is unknown."""

    def run(self) -> tuple[int, float, int]:
        """Runs the step process, again while it exits 70 or 75 and ``retries`` allow.

        Returns:
            The last exit code, the wall time of all attempts, and how many there
            were. The last attempt's log is ``log``; an earlier one's is kept beside
            it as ``<step>.attempt-<n>.log``.
        """
        start = time.monotonic()
        attempts = 0
        log = self.log
        while True:
            attempts += 1
            # A step's log may hold user data: owner and group only, like its outputs.
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, io_utils.FILE_MODE)
            with os.fdopen(fd, "wb") as output:
                code = self._attempt(output.fileno())
            if code not in RETRYABLE_EXIT_CODES or attempts > self.retries:
                return code, time.monotonic() - start, attempts
            log.replace(log.with_name(f"{log.stem}.attempt-{attempts}.log"))

    def _attempt(self, output: int) -> int:
        try:
            code = self.warm.call(self.command, self.env, output)
        except WarmParentDiedError as e:
            # The step process has ended, but not as the warm parent's child: its exit
            # status is lost. What it published is not: ML Metadata tells.
            if self.recorded() in ("completed", "cached"):
                return int(ExitCode.SUCCESS)
            os.write(output, f"stepwire: infrastructure: {e}; it did not publish\n".encode())
            return int(ExitCode.INFRASTRUCTURE)
        if code is None:
            code = subprocess.call(self.command, env=self.env, stdout=output, stderr=output)
        return code
