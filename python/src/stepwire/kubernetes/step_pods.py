"""The pod side of every manifest: a step's container, its resources and the stack.

Each step's container runs exactly the command line the ``subprocess`` orchestrator
would run (``python -m stepwire.entrypoints.step_entrypoint`` and the arguments
``get_entrypoint_arguments`` builds), so a step in a pod is the same step process
as on any other orchestrator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepwire.constants import ENV_TOLERATE_RERUN
from stepwire.entrypoints.step_entrypoint_configuration import (
    DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND,
)
from stepwire.exceptions import StackConfigError
from stepwire.kubernetes.settings import (
    GPU_RESOURCE,
    STEP_ANNOTATION,
    UNMAPPED_ANNOTATION,
    ClusterSettings,
    unique_labels,
)
from stepwire.orchestrators.base_orchestrator import BaseOrchestrator
from stepwire.orchestrators.step_processes import plan_step_processes
from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration
from stepwire.stack_config import ENV_CONFIG, SQLiteConfig

if TYPE_CHECKING:
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack
    from stepwire.steps.resources import Resources

CONTAINER_NAME = "step"
"""The step's container in every pod (podFailurePolicy rules name it)."""

SECRET_VARIABLES = frozenset(
    {
        "STEPWIRE_METADATA_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_CONNECTION_STRING",
    }
)
"""Variables that hold credentials: they reach a pod only from the Secret."""


@dataclass(frozen=True)
class StepPod:
    """One step of the pipeline, as a pod runs it.

    Attributes:
        step: The step name (the node id).
        name: Its Kubernetes name (an RFC 1123 label, distinct in the pipeline).
        upstream: The Kubernetes names of the steps it waits for.
        args: The step entrypoint's arguments.
        resources: The step's resources.
        retries: How many more launches a 70 or 75 allows.
    """

    step: str
    name: str
    upstream: tuple[str, ...]
    args: tuple[str, ...]
    resources: Resources
    retries: int


@dataclass(frozen=True)
class PipelinePods:
    """Every step of one run of a pipeline, in a topological order.

    Attributes:
        pipeline: The pipeline name.
        run_name: The run the manifest launches.
        steps: The steps.
        env: The stack's variables (no credentials), as the pods get them.
    """

    pipeline: str
    run_name: str
    steps: tuple[StepPod, ...]
    env: dict[str, str]


def check_stack_is_shared(stack: Stack) -> None:
    """Refuses a stack that pods on different nodes cannot share.

    Args:
        stack: The stack.

    Raises:
        StackConfigError: If ML Metadata is a SQLite file or the artifact store a
            local folder.
    """
    config = stack.to_config()
    if isinstance(config.metadata_store, SQLiteConfig):
        raise StackConfigError(
            f"pods cannot share the metadata store SQLite file {config.metadata_store.path}: "
            "use a MySQL or PostgreSQL server (STEPWIRE_METADATA_TYPE)"
        )
    if not stack.artifact_store.is_remote:
        raise StackConfigError(
            f"pods cannot share the artifact store folder {stack.artifact_store.path}: "
            "use an object store (s3://, gs://, az://)"
        )


def pod_environment(stack: Stack, settings: ClusterSettings) -> dict[str, str]:
    """The stack as a pod's variables, without credentials.

    Args:
        stack: The stack.
        settings: The cluster settings.

    Returns:
        Names to values; ``STEPWIRE_CONFIG`` is empty (no file in the image is read).
    """
    env = {
        name: value
        for name, value in stack.to_config().to_environment().items()
        if name not in SECRET_VARIABLES
    }
    env[ENV_CONFIG] = ""
    env["PYTHONPATH"] = settings.workdir
    # The engine retries a pod that was lost, and one lost after its step published
    # must not fail the run: such a retry exits 0 ("already succeeded"), not 67.
    env[ENV_TOLERATE_RERUN] = "1"
    return env


def plan_pods(
    pipeline: BasePipeline, stack: Stack, run_name: str, settings: ClusterSettings
) -> PipelinePods:
    """Compiles the pipeline and builds every step's command line.

    Args:
        pipeline: The pipeline.
        stack: The stack the pods use; it must be shareable.
        run_name: The run the manifest launches.
        settings: The cluster settings.

    Returns:
        The plan.
    """
    check_stack_is_shared(stack)
    pb2_pipeline = pipeline.compile()
    steps = BaseOrchestrator._get_sorted_steps(pipeline, pb2_pipeline)
    plan = plan_step_processes(
        SubprocessEntrypointConfiguration, steps, pb2_pipeline, stack, run_name
    )
    names = unique_labels(plan.order)
    skip = len(SubprocessEntrypointConfiguration.get_entrypoint_command())
    pods = tuple(
        StepPod(
            step=step.name,
            name=names[step.name],
            upstream=tuple(names[u] for u in sorted(plan.upstream[step.name])),
            args=tuple(plan.commands[step.name][skip:]),
            resources=step.RESOURCES,
            retries=step.RETRIES,
        )
        for step in steps
    )
    return PipelinePods(pipeline.name, run_name, pods, pod_environment(stack, settings))


def _quantity(cores: float) -> str:
    """Kubernetes' CPU quantity: whole cores, else millicores rounded up."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{math.ceil(cores * 1000)}m"


def container_resources(step: str, resources: Resources) -> tuple[dict[str, Any], dict[str, str]]:
    """A step's resources as a container's requests and limits.

    CPUs are requested, memory requested and limited (a step over it is killed,
    as Ray does), GPUs and resources with a domain (``example.com/fpga``) limited.
    Ray's plain custom resources (``stepwire_worker``) mean nothing to Kubernetes:
    they are returned to be recorded on the pod, not requested.

    Args:
        step: The step name, for errors.
        resources: What it asks for.

    Returns:
        The container's ``resources`` and the names and amounts not mapped.

    Raises:
        StackConfigError: If a GPU or extended resource amount is not whole.
    """
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    unmapped: dict[str, str] = {}
    if resources.cpus:
        requests["cpu"] = _quantity(resources.cpus)
    if resources.memory:
        requests["memory"] = limits["memory"] = str(resources.memory)
    whole = {GPU_RESOURCE: resources.gpus or 0.0}
    for name, amount in resources.custom.items():
        if "/" in name:
            whole[name] = amount
        else:
            unmapped[name] = f"{amount:g}"
    for name, amount in whole.items():
        if not amount:
            continue
        if not float(amount).is_integer():
            raise StackConfigError(
                f"step '{step}' asks for {amount:g} of {name}: Kubernetes counts it in whole units"
            )
        limits[name] = str(int(amount))
    spec: dict[str, Any] = {}
    if requests:
        spec["requests"] = requests
    if limits:
        spec["limits"] = limits
    return spec, unmapped


def env_list(env: dict[str, str]) -> list[dict[str, str]]:
    """Variables as a container's ``env``, sorted by name.

    Args:
        env: Names to values.

    Returns:
        The list.
    """
    return [{"name": name, "value": value} for name, value in sorted(env.items())]


def secret_env(settings: ClusterSettings) -> list[dict[str, Any]]:
    """The container's ``envFrom``: every key of the stack's Secret.

    Args:
        settings: The cluster settings.

    Returns:
        The list.
    """
    return [{"secretRef": {"name": settings.secret}}]


def step_container(
    pods: PipelinePods, step: StepPod, settings: ClusterSettings
) -> tuple[dict[str, Any], dict[str, str]]:
    """The container that runs one step.

    Args:
        pods: The plan.
        step: The step.
        settings: The cluster settings.

    Returns:
        The container, and the step's resources Kubernetes has no name for.
    """
    resources, unmapped = container_resources(step.step, step.resources)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "command": list(DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND),
        "args": list(step.args),
        "workingDir": settings.workdir,
        "env": env_list(pods.env),
        "envFrom": secret_env(settings),
    }
    if resources:
        container["resources"] = resources
    return container, unmapped


def pod_annotations(step: StepPod, unmapped: dict[str, str]) -> dict[str, str]:
    """A step pod's annotations: its name, and what Kubernetes could not request.

    Args:
        step: The step.
        unmapped: Resources without a Kubernetes name.

    Returns:
        The annotations.
    """
    annotations = {STEP_ANNOTATION: step.step}
    if unmapped:
        annotations[UNMAPPED_ANNOTATION] = ",".join(f"{k}={v}" for k, v in sorted(unmapped.items()))
    return annotations


def node_selector(step: StepPod, settings: ClusterSettings) -> dict[str, str]:
    """The nodes a step may run on: those with its accelerator, if it names one.

    Args:
        step: The step.
        settings: The cluster settings.

    Returns:
        The selector (empty when any node will do).
    """
    kind = step.resources.accelerator_type
    return {settings.accelerator_label: kind} if kind else {}
