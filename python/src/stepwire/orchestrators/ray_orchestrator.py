"""The ``ray`` orchestrator: each step a Ray task that runs the step's command line.

The DAG is expressed to Ray: each step's task takes the results of its upstream
steps' tasks as arguments, so Ray starts a step when its inputs are done and runs
independent steps in parallel, on whichever nodes offer what the step asks for
(``@step(resources=Resources(...))``). A task runs exactly
``get_entrypoint_command() + get_entrypoint_arguments(...)`` as a child process of
the Ray worker, with the whole stack in its environment (Ray workers inherit the
raylet's environment, not the driver's), so a step on Ray is the same step process
as on any other orchestrator.

Retries follow the exit-code table: a step that exits 70 (``step_failed``) or 75
(``infrastructure``) is launched again, up to its ``retries``, on any node; 64-67
never. A task lost with its node is resubmitted by Ray (``max_retries``), and the
step process then finds the earlier attempt's unfinished execution and cleans up
after it. Needs ``pip install 'stepwire[ray]'``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepwire import io_utils
from stepwire.attempts import ENV_NODE
from stepwire.entrypoints.warm_parent import IMPORT_TIME_VARIABLES
from stepwire.exceptions import StackConfigError, StepwireError
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
from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration
from stepwire.orchestrators.warm_launch import WarmLauncher, WarmParentDiedError
from stepwire.steps.resources import NODE_LOSS_RETRIES, RETRYABLE_EXIT_CODES, Resources

if TYPE_CHECKING:
    from stepwire._protos import Pipeline as Pb2Pipeline
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

ENV_RESOURCE_WAIT = "STEPWIRE_RAY_RESOURCE_WAIT"
"""Seconds to wait for a node that offers what a step asks for (default 30)."""

DEFAULT_RESOURCE_WAIT = 30.0

ENV_SCHEDULING = "STEPWIRE_RAY_SCHEDULING"
"""Ray's scheduling strategy for the steps' tasks: ``DEFAULT`` or ``SPREAD``."""

SCHEDULING_STRATEGIES = ("DEFAULT", "SPREAD")

_MAX_LOG_BYTES = 4 * 1024 * 1024
_PR_SET_PDEATHSIG = 1


class UnschedulableStepError(StepwireError):
    """No node of the Ray cluster offers what a step asks for."""


@dataclass(frozen=True)
class StepAttempts:
    """What a step's task did: the result one task hands to its downstream tasks.

    Attributes:
        step: The step name.
        code: The exit code of the last attempt (None if the step was not launched).
        attempts: How many times the step process was launched.
        node_ip: The address of the node of the last attempt.
        seconds: Wall time of all attempts.
        log: What the last attempt printed (its tail, at most 4 MiB).
        skipped_because: The upstream step that failed, when the step was not launched.
    """

    step: str
    code: int | None
    attempts: int
    node_ip: str
    seconds: float
    log: bytes
    skipped_because: str = ""


def _die_with_parent() -> None:
    """In the step process: get SIGTERM when the Ray worker that started it dies.

    Ray kills a worker with SIGKILL when a task is cancelled or its node goes; the
    step's supervisor then forwards the SIGTERM to the step, whose execution is
    marked FAILED, instead of a step running on unsupervised.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def run_step_attempts(
    step: str, command: list[str], env: dict[str, str], retries: int, *upstream: StepAttempts
) -> StepAttempts:
    """The body of a step's Ray task: launches the step process, retrying 70 and 75.

    Args:
        step: The step name.
        command: Its full command line.
        env: Its environment.
        retries: How many more launches a retryable exit allows.
        *upstream: The results of the upstream steps' tasks (Ray passes them once
            they are done, which is how the DAG reaches Ray).

    Returns:
        What happened.
    """
    import ray

    node_ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    for previous in upstream:
        if previous.code != 0:
            failed = previous.skipped_because or previous.step
            return StepAttempts(step, None, 0, node_ip, 0.0, b"", failed)
    # The step process records the node on its execution (stepwire.attempts).
    env = {**env, ENV_NODE: node_ip}
    start = time.monotonic()
    attempts, code, log = 0, 0, b""
    while True:
        attempts += 1
        code, log = _launch(command, env)
        if code not in RETRYABLE_EXIT_CODES or attempts > retries:
            break
    return StepAttempts(step, code, attempts, node_ip, time.monotonic() - start, log)


_worker_launchers: dict[tuple[str | None, ...], WarmLauncher] = {}
"""This Ray worker's warm parents, by the import-time variables of the steps they serve."""


def _launch(command: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Runs one step process on this node: warm from this worker's warm parent, or cold.

    A Ray worker outlives its tasks, so its warm parent serves every later step
    it runs. Either way the step process ends (SIGTERM, recorded by its
    supervisor) when this worker does.
    """
    key = tuple(env.get(name) for name in IMPORT_TIME_VARIABLES)
    launcher = _worker_launchers.get(key)
    if launcher is None:
        launcher = _worker_launchers[key] = WarmLauncher(env)
    with tempfile.TemporaryFile() as output:
        code: int | None
        try:
            code = launcher.call(command, env, output.fileno(), die_with_parent=True)
        except WarmParentDiedError as e:
            output.write(f"stepwire: infrastructure: {e}\n".encode())
            code = 75
        if code is None:
            code = subprocess.call(
                command, env=env, stdout=output, stderr=output, preexec_fn=_die_with_parent
            )
        size = output.seek(0, os.SEEK_END)
        output.seek(max(0, size - _MAX_LOG_BYTES))
        return code, output.read()


def task_options(resources: Resources) -> dict[str, Any]:
    """Ray's task options for what a step asks for.

    Args:
        resources: The step's resources.

    Returns:
        Keyword arguments for ``ray.remote(...).options``.
    """
    options: dict[str, Any] = {
        # One core unless the step says otherwise, as for any Ray task.
        "num_cpus": 1 if resources.cpus is None else resources.cpus,
        "max_retries": NODE_LOSS_RETRIES,
        # A step's own failures come back as exit codes, never as exceptions.
        "retry_exceptions": False,
    }
    if resources.gpus is not None:
        options["num_gpus"] = resources.gpus
    if resources.memory is not None:
        options["memory"] = resources.memory
    if resources.custom:
        options["resources"] = dict(resources.custom)
    if resources.accelerator_type is not None:
        options["accelerator_type"] = resources.accelerator_type
    return options


def _demand(resources: Resources) -> dict[str, float]:
    """The resources a node must have in total, in the names ``ray.nodes()`` uses."""
    demand: dict[str, float] = {"CPU": 1.0 if resources.cpus is None else resources.cpus}
    if resources.gpus:
        demand["GPU"] = resources.gpus
    if resources.memory:
        demand["memory"] = float(resources.memory)
    demand.update(resources.custom)
    if resources.accelerator_type:
        demand[f"accelerator_type:{resources.accelerator_type}"] = 0.001
    return {name: amount for name, amount in demand.items() if amount > 0}


def _offers(node: dict[str, Any], demand: dict[str, float]) -> bool:
    totals = node.get("Resources") or {}
    return all(totals.get(name, 0.0) >= amount for name, amount in demand.items())


def _resource_wait() -> float:
    configured = os.environ.get(ENV_RESOURCE_WAIT, "")
    try:
        return max(0.0, float(configured)) if configured else DEFAULT_RESOURCE_WAIT
    except ValueError:
        return DEFAULT_RESOURCE_WAIT


def wait_until_placeable(steps: list[BaseStep], wait: float) -> None:
    """Waits until, for every step, some live node offers what it asks for.

    Ray leaves a task that no node can run pending for ever; a run must fail with a
    line naming the step instead. Nodes may still be joining (or an autoscaler
    adding them), hence the wait.

    Args:
        steps: The steps of the run.
        wait: Seconds to wait at most.

    Raises:
        UnschedulableStepError: If a step still fits no node after ``wait`` seconds.
    """
    import ray

    deadline = time.monotonic() + wait
    while True:
        nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        missing = [s for s in steps if not any(_offers(n, _demand(s.RESOURCES)) for n in nodes)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            step = missing[0]
            offered = "; ".join(
                ", ".join(
                    f"{k}={v:g}"
                    for k, v in sorted((n.get("Resources") or {}).items())
                    if not k.startswith("node:")
                )
                for n in nodes
            )
            raise UnschedulableStepError(
                f"step '{step.name}' needs {step.RESOURCES.describe()}, which no node of the "
                f"Ray cluster offers after {wait:g}s ({ENV_RESOURCE_WAIT}); the nodes offer: "
                f"{offered or 'nothing (no live node)'}"
            )
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


class RayOrchestrator(BaseOrchestrator):
    """Runs each step as a Ray task on an existing cluster, or on a local one."""

    def __init__(
        self,
        address: str | None = None,
        resource_wait: float | None = None,
        scheduling: str | None = None,
    ) -> None:
        """Creates the orchestrator.

        Args:
            address: The cluster (``host:port`` of its GCS, or ``ray://...``); by
                default ``$RAY_ADDRESS``, else a local Ray started for the run.
                Ray's own token settings (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``)
                apply.
            resource_wait: Seconds to wait for a node that offers what a step asks
                for; by default ``$STEPWIRE_RAY_RESOURCE_WAIT`` or 30.
            scheduling: Ray's strategy for the steps' tasks: ``DEFAULT`` (Ray packs
                tasks on few nodes) or ``SPREAD`` (across the nodes, for steps that
                each want a machine); by default ``$STEPWIRE_RAY_SCHEDULING`` or
                ``DEFAULT``.

        Raises:
            StackConfigError: If ``scheduling`` is not one of those.
        """
        self.address = address
        self.resource_wait = _resource_wait() if resource_wait is None else resource_wait
        chosen = scheduling or os.environ.get(ENV_SCHEDULING) or "DEFAULT"
        if chosen.upper() not in SCHEDULING_STRATEGIES:
            raise StackConfigError(
                f"{ENV_SCHEDULING}={chosen!r}: expected one of {', '.join(SCHEDULING_STRATEGIES)}"
            )
        self.scheduling = chosen.upper()

    def prepare_or_run_pipeline(
        self,
        sorted_list_of_steps: list[BaseStep],
        pipeline: BasePipeline,
        pb2_pipeline: Pb2Pipeline,
        stack: Stack,
        runtime_configuration: RuntimeConfiguration,
    ) -> RunSummary:
        """Submits every step as a Ray task, the DAG as task dependencies.

        Args:
            sorted_list_of_steps: The steps in a topological order.
            pipeline: The pipeline.
            pb2_pipeline: Its compiled IR.
            stack: The stack to run on; its stores must be reachable from every node.
            runtime_configuration: Holds the run name.

        Returns:
            What happened to each step.

        Raises:
            PipelineRunFailedError: If a step failed; its dependents were not started.
            UnschedulableStepError: If no node offers what a step asks for.
        """
        try:
            import ray
        except ImportError as e:
            raise StackConfigError(
                f"the ray orchestrator needs Ray: install stepwire[ray] ({e})"
            ) from e

        run_name = runtime_configuration.run_name
        plan = plan_step_processes(
            SubprocessEntrypointConfiguration, sorted_list_of_steps, pb2_pipeline, stack, run_name
        )
        env = step_environment(stack)
        logs = log_folder(stack, run_name)
        summary = RunSummary(pipeline=pipeline.name, run_name=run_name)
        width = max((len(name) for name in plan.order), default=0)
        progress = ProgressReporter(summary, width)

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=self.address or os.environ.get("RAY_ADDRESS") or None,
                # Each step's output is kept in its log; the workers' is not echoed.
                log_to_driver=False,
                include_dashboard=False,
                configure_logging=False,
            )
        try:
            wait_until_placeable(sorted_list_of_steps, self.resource_wait)
            cpus = ray.cluster_resources().get("CPU", 0)  # type: ignore[no-untyped-call]
            progress.header(int(cpus) or None)
            task = ray.remote(run_step_attempts)
            refs: dict[str, Any] = {}
            for step in sorted_list_of_steps:
                upstream = [refs[name] for name in sorted(plan.upstream[step.name])]
                refs[step.name] = task.options(
                    name=f"{pipeline.name}.{step.name}",
                    scheduling_strategy=self.scheduling,
                    **task_options(step.RESOURCES),
                ).remote(step.name, plan.commands[step.name], env, step.RETRIES, *upstream)
                progress.submitted(step.name, "Ray")
            outcomes = RecordedOutcomes(stack, pipeline.name, run_name)
            self._collect(refs, _Run(outcomes, logs, progress))
        finally:
            if started_here:
                ray.shutdown()
        progress.footer()
        if not summary.succeeded:
            raise PipelineRunFailedError(summary)
        return summary

    @staticmethod
    def _collect(refs: dict[str, Any], run: _Run) -> None:
        """Reports each step as its task ends; Ctrl-C cancels the run's tasks."""
        import ray

        pending = {ref: name for name, ref in refs.items()}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    pending.pop(ref)
                    run.report(ray.get(ref))
        except KeyboardInterrupt:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise


@dataclass(frozen=True)
class _Run:
    """What reporting a step's end needs to know about its run."""

    outcomes: RecordedOutcomes
    logs: Path
    progress: ProgressReporter

    def _attempt(self, result: StepAttempts) -> int:
        """The attempt ML Metadata recorded, else the task's own count.

        The recorded one also counts the launches Ray made after a node was lost.
        """
        recorded = self.outcomes.attempt(result.step)
        return recorded[0] if recorded is not None else result.attempts

    def report(self, result: StepAttempts) -> None:
        """Writes the step's log, judges its exit against ML Metadata, prints its line."""
        if result.code is None:
            self.progress.skipped(result.step, result.skipped_because)
            return
        log = self.logs / f"{result.step}.log"
        # A step's log may hold user data: owner and group only, like its outputs.
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, io_utils.FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            file.write(result.log)
        status, error = judge_exit(self.outcomes, result.step, code=result.code, log=log)
        where = f"on {result.node_ip}, attempt {self._attempt(result)}"
        self.progress.finished(result.step, status, result.seconds, error, where)
        if status == "failed":
            print_tail(log, self.outcomes.run_name, result.step)
