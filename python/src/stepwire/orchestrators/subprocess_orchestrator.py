"""The ``subprocess`` orchestrator (the default): every step in its own process.

Each step runs as ``get_entrypoint_command() + get_entrypoint_arguments(...)``,
exactly as an orchestrator for containers or pods would launch it. Independent
steps run in parallel, up to ``max_parallel`` at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from stepwire import constants, io_utils, source_utils
from stepwire.entrypoints.codec import RUN_NAME_OPTION, ArgumentError, ErrorKind
from stepwire.entrypoints.step_entrypoint_configuration import (
    DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND,
    StepEntrypointConfiguration,
)
from stepwire.orchestrators.base_orchestrator import BaseOrchestrator, RuntimeConfiguration
from stepwire.orchestrators.progress import PipelineRunFailedError, ProgressReporter, RunSummary
from stepwire.pipeline_ir import PipelineIndex
from stepwire.stack_config import StackConfig

if TYPE_CHECKING:
    from stepwire._protos import Pipeline as Pb2Pipeline
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

ENV_MAX_PARALLEL = "STEPWIRE_MAX_PARALLEL"
"""Environment variable that bounds the number of step processes at a time."""

_LOG_TAIL_LINES = 15


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

    def __init__(self, max_parallel: int | None = None) -> None:
        """Creates the orchestrator.

        Args:
            max_parallel: Step processes at a time; defaults to
                ``$STEPWIRE_MAX_PARALLEL`` or the number of cores.
        """
        self.max_parallel = max_parallel or _default_parallelism()

    def _child_environment(self, stack: Stack) -> dict[str, str]:
        # The step side resolves its stack from the environment: hand it this whole
        # stack (a MySQL store chosen in code included), replacing whatever stack
        # variables this process inherited, and make the user's modules importable.
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in StackConfig.environment_names()
        }
        env.update(stack.to_config().to_environment())
        root = _import_root()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        return env

    def _log_folder(self, stack: Stack, run_name: str) -> Path:
        if stack.artifact_store.is_remote:
            base = Path.cwd() / ".stepwire"
        else:
            base = Path(stack.artifact_store.path)
        folder = base / ".logs" / run_name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

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
        config = SubprocessEntrypointConfiguration
        command = config.get_entrypoint_command()
        # Build and validate every command line before any step starts.
        index = PipelineIndex(pb2_pipeline)
        commands = {
            step.name: command
            + config.get_entrypoint_arguments(
                step=step,
                pb2_pipeline=pb2_pipeline,
                run_name=run_name,
                stack=stack,
                pipeline_index=index,
            )
            for step in sorted_list_of_steps
        }
        upstream = {
            step.name: set(index.node(step.name).upstream_nodes) for step in sorted_list_of_steps
        }
        env = self._child_environment(stack)
        logs = self._log_folder(stack, run_name)
        summary = RunSummary(pipeline=pipeline.name, run_name=run_name)
        width = max((len(name) for name in commands), default=0)
        progress = ProgressReporter(summary, width)
        progress.header(self.max_parallel)

        pending = [step.name for step in sorted_list_of_steps]
        running: dict[Future[tuple[int, float]], str] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel) as pool:
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
                        running[pool.submit(_run_process, commands[name], env, log)] = name
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    code, seconds = future.result()
                    log = logs / f"{name}.log"
                    status = (
                        self._outcome(stack, pipeline.name, run_name, name) if code == 0 else None
                    )
                    if status in ("completed", "cached"):
                        progress.finished(name, status, seconds)
                    elif code == 0:
                        # Exit 0 is not enough: a step process that ended itself early
                        # (os._exit(0)) leaves no COMPLETE or CACHED execution behind.
                        reason = (
                            f"exited 0, but its execution in run '{run_name}' is "
                            f"{status or 'missing'}, not completed or cached"
                        )
                        progress.finished(name, "failed", seconds, reason)
                        _print_tail(log)
                    else:
                        progress.finished(name, "failed", seconds, _first_error_line(log, code))
                        _print_tail(log)
        progress.footer()
        if not summary.succeeded:
            raise PipelineRunFailedError(summary)
        return summary

    @staticmethod
    def _outcome(stack: Stack, pipeline_name: str, run_name: str, step_name: str) -> str | None:
        # The child's exit code says it succeeded; ML Metadata says whether it
        # ran, its outputs came from the cache, or it did not finish at all.
        from stepwire.runs import RunReader

        # Guarded: step processes are writing to the same store right now.
        return RunReader(stack.metadata_store.open_store()).step_status(
            run_name, pipeline_name, step_name
        )


def _import_root() -> str:
    """The folder from which the user's main module is importable by its name."""
    name = constants.USER_MAIN_MODULE
    module = sys.modules.get(name) if name else None
    module_file = getattr(module, "__file__", None)
    if name and module_file:
        path = Path(module_file).resolve()
        depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
        return os.fspath(path.parents[depth])
    return os.fspath(source_utils.get_source_root_path())


def _run_process(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    start = time.monotonic()
    # A step's log may hold user data: owner and group only, like its outputs.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, io_utils.FILE_MODE)
    with os.fdopen(fd, "wb") as output:
        code = subprocess.call(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    return code, time.monotonic() - start


def _first_error_line(log: Path, code: int) -> str:
    # The entrypoint prints one line saying what was wrong, prefixed `stepwire:`.
    for line in log.read_text("utf-8", errors="replace").splitlines():
        if line.startswith("stepwire: "):
            return line.removeprefix("stepwire: ")
    return f"exit code {code}, see {log}"


def _print_tail(log: Path) -> None:
    lines = log.read_text("utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    for line in lines:
        print(f"      | {line}", file=sys.stderr)
    print(f"      full log: {log}", file=sys.stderr, flush=True)
