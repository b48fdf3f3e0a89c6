"""What every orchestrator that runs steps as processes shares.

The command line of each step (built and validated before any step starts), the
environment that hands the whole stack to the step process, the log folder, how a
step's exit is judged against ML Metadata, and how a failed step's log is shown.
The ``subprocess`` and ``ray`` orchestrators differ only in where the process runs.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stepwire import constants, source_utils
from stepwire.pipeline_ir import PipelineIndex
from stepwire.stack_config import StackConfig

if TYPE_CHECKING:
    from stepwire._protos import Pipeline as Pb2Pipeline
    from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
    from stepwire.runs import RunReader
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

LOG_TAIL_LINES = 15
"""Lines of a failed step's log printed under its progress line."""


@dataclass(frozen=True)
class StepProcessPlan:
    """The processes of one run: a command line and the upstream steps of each step.

    Attributes:
        commands: Step name to its full command line.
        upstream: Step name to the names of the steps it waits for.
        order: Step names in a topological order.
    """

    commands: dict[str, list[str]]
    upstream: dict[str, set[str]]
    order: list[str]


def plan_step_processes(
    config: type[StepEntrypointConfiguration],
    steps: list[BaseStep],
    pb2_pipeline: Pb2Pipeline,
    stack: Stack,
    run_name: str,
) -> StepProcessPlan:
    """Builds (and so validates) every step's command line before any step starts.

    Args:
        config: The entrypoint configuration the orchestrator launches steps with.
        steps: The steps in a topological order.
        pb2_pipeline: The compiled pipeline.
        stack: The stack the steps run on.
        run_name: The run name.

    Returns:
        The plan.
    """
    index = PipelineIndex(pb2_pipeline)
    command = config.get_entrypoint_command()
    commands = {
        step.name: command
        + config.get_entrypoint_arguments(
            step=step,
            pb2_pipeline=pb2_pipeline,
            run_name=run_name,
            stack=stack,
            pipeline_index=index,
        )
        for step in steps
    }
    upstream = {step.name: set(index.node(step.name).upstream_nodes) for step in steps}
    return StepProcessPlan(commands, upstream, [step.name for step in steps])


def step_environment(stack: Stack) -> dict[str, str]:
    """The environment of a step process: this one's, with the whole stack handed over.

    The step side resolves its stack from the environment, so every stack variable
    this process inherited is replaced by the stack's own (a database server or an
    artifact store chosen in code included), and the user's modules are made
    importable.

    Args:
        stack: The stack the step runs on.

    Returns:
        The variables.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in StackConfig.environment_names()
    }
    env.update(stack.to_config().to_environment())
    root = import_root()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def import_root() -> str:
    """The folder from which the user's main module is importable by its name.

    Returns:
        The folder.
    """
    name = constants.USER_MAIN_MODULE
    module = sys.modules.get(name) if name else None
    module_file = getattr(module, "__file__", None)
    if name and module_file:
        path = Path(module_file).resolve()
        depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
        return os.fspath(path.parents[depth])
    return os.fspath(source_utils.get_source_root_path())


def log_folder(stack: Stack, run_name: str) -> Path:
    """The folder the run's step logs go to, created.

    Args:
        stack: The stack.
        run_name: The run name.

    Returns:
        ``<artifact store>/.logs/<run>``, or ``./.stepwire/.logs/<run>`` when the
        artifact store is not a local folder.
    """
    if stack.artifact_store.is_remote:
        base = Path.cwd() / ".stepwire"
    else:
        base = Path(stack.artifact_store.path)
    folder = base / ".logs" / run_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class RecordedOutcomes:
    """What ML Metadata holds of one run's steps, read by the orchestrator.

    One connection for the whole run, opened on first use: opening ML Metadata
    costs a few milliseconds (more on a server), and the orchestrator asks after
    every step. The worker threads that ask share it in turn. The connection is
    guarded: step processes are writing to the same store meanwhile.

    Args:
        stack: The stack.
        pipeline_name: The pipeline name.
        run_name: The run name.
    """

    def __init__(self, stack: Stack, pipeline_name: str, run_name: str) -> None:
        self._stack = stack
        self.pipeline_name = pipeline_name
        self.run_name = run_name
        self._reader: RunReader | None = None
        self._lock = threading.Lock()

    def _read(self) -> RunReader:
        if self._reader is None:
            from stepwire.runs import RunReader

            self._reader = RunReader(self._stack.metadata_store.open_store())
        return self._reader

    def status(self, step_name: str) -> str | None:
        """What ML Metadata says of a step (whose process exited 0, or was lost).

        The exit code says the process succeeded; ML Metadata says whether the step
        ran, came from the cache, or never finished (a step that ended its process
        early with ``os._exit(0)``).

        Args:
            step_name: The step name.

        Returns:
            ``completed``, ``cached``, another status, or None when nothing is
            recorded.
        """
        with self._lock:
            return self._read().step_status(self.run_name, self.pipeline_name, step_name)

    def attempt(self, step_name: str) -> tuple[int, str] | None:
        """Which attempt a step's latest execution is, and where it ran.

        Args:
            step_name: The step name.

        Returns:
            ``(attempt, node)``, or None when nothing is recorded.
        """
        with self._lock:
            return self._read().step_attempt(self.run_name, self.pipeline_name, step_name)


def judge_exit(
    outcomes: RecordedOutcomes, step_name: str, *, code: int, log: Path
) -> tuple[str, str]:
    """A step's status and error line from its exit code, its log and ML Metadata.

    Args:
        outcomes: The run's records.
        step_name: The step name.
        code: The process's exit code.
        log: The file holding what the process printed.

    Returns:
        ``(status, error)``: ``completed`` or ``cached`` with no error, or ``failed``
        with the one line that says why.
    """
    if code != 0:
        return "failed", first_error_line(log, code)
    status = outcomes.status(step_name)
    if status in ("completed", "cached"):
        return status, ""
    return "failed", (
        f"exited 0, but its execution in run '{outcomes.run_name}' is "
        f"{status or 'missing'}, not completed or cached"
    )


def first_error_line(log: Path, code: int) -> str:
    """The entrypoint's one ``stepwire: ...`` line, without its prefix.

    Args:
        log: The file holding what the step process printed.
        code: Its exit code.

    Returns:
        The line, or a phrase naming the exit code and the log when there is none.
    """
    lines = log.read_text("utf-8", errors="replace").splitlines()
    for line in lines:
        if line.startswith("stepwire: "):
            return line.removeprefix("stepwire: ")
    for line in lines:
        if "No module named 'stepwire" in line:
            # The interpreter of the step's command is not the one stepwire is
            # installed in: say which, in one line.
            interpreter = line.split(":", 1)[0].strip() or "the step's interpreter"
            return (
                f"the step's interpreter {interpreter} cannot import stepwire (exit code "
                f"{code}): install stepwire there, or launch steps with the interpreter "
                "that has it"
            )
    return f"exit code {code}, see {log}"


def print_tail(log: Path, run_name: str, step_name: str) -> None:
    """Prints the end of a failed step's log and where the whole log is.

    Args:
        log: The log file.
        run_name: The run.
        step_name: The step.
    """
    import shlex

    for line in log.read_text("utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]:
        print(f"      | {line}", file=sys.stderr)
    print(
        f"      full log: {log} (kept with the run: "
        f"stepwire logs {shlex.quote(run_name)} {shlex.quote(step_name)})",
        file=sys.stderr,
        flush=True,
    )
