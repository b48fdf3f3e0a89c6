"""A KubeRay ``RayJob``: a Ray cluster in pods that runs the pipeline with ``ray``.

KubeRay creates the cluster, submits the entrypoint (``python -m stepwire run ...
--orchestrator ray``) to its head, and deletes the cluster when the run ends. The
driver on the head runs the pipeline as on any Ray cluster: each step a Ray task on
a worker, with the stack handed over explicitly. The worker group offers the most
any step asks for, so every step is placeable.
"""

from __future__ import annotations

import json
import math
import shlex
from importlib import metadata
from typing import TYPE_CHECKING, Any

from stepwire.kubernetes.settings import (
    GPU_RESOURCE,
    PIPELINE_LABEL,
    RUN_LABEL,
    ClusterSettings,
    dns_label,
)
from stepwire.kubernetes.step_pods import (
    check_stack_is_shared,
    env_list,
    pod_environment,
    secret_env,
)
from stepwire.stack_config import ENV_ORCHESTRATOR

if TYPE_CHECKING:
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack

API_VERSION = "ray.io/v1"
WORKER_GROUP = "steps"
DEFAULT_WORKER_MEMORY = 2 * 1024**3
"""A worker's memory when no step says what it needs."""
FINISHED_TTL_SECONDS = 600
"""How long the finished RayJob (and its logs) stays before KubeRay deletes it."""
RAY_VERSION_FALLBACK = "2.60.0"


def _ray_version() -> str:
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return RAY_VERSION_FALLBACK


def worker_offer(pipeline: BasePipeline) -> tuple[dict[str, int], dict[str, int]]:
    """What each worker offers: the most any step asks for, in whole units.

    Args:
        pipeline: The pipeline.

    Returns:
        The standard amounts (``cpu``, ``memory`` in bytes, ``gpu``) and Ray's
        custom resources.
    """
    steps = [step.RESOURCES for step in pipeline.steps.values()]
    cpus = max((r.cpus or 1 for r in steps), default=1)
    memory = max((r.memory or 0 for r in steps), default=0)
    gpus = max((r.gpus or 0 for r in steps), default=0)
    custom: dict[str, int] = {}
    for resources in steps:
        for name, amount in resources.custom.items():
            custom[name] = max(custom.get(name, 0), math.ceil(amount))
    standard = {
        "cpu": math.ceil(cpus),
        "memory": max(memory, DEFAULT_WORKER_MEMORY),
        "gpu": math.ceil(gpus),
    }
    return standard, custom


def _start_params_resources(custom: dict[str, int]) -> str:
    """KubeRay's form of ``ray start --resources``: quoted JSON with escaped quotes."""
    return '"' + json.dumps(custom, sort_keys=True).replace('"', '\\"') + '"'


def ray_job(
    target: str,
    pipeline: BasePipeline,
    stack: Stack,
    run_name: str,
    settings: ClusterSettings,
    *,
    workers: int = 1,
) -> dict[str, Any]:
    """The RayJob that runs one run of the pipeline.

    Args:
        target: ``MODULE:PIPELINE`` as importable in the image from ``workdir``.
        pipeline: The pipeline (its steps' resources size the workers).
        stack: The stack; it must be shareable by pods.
        run_name: The run.
        settings: The cluster settings.
        workers: Worker pods.

    Returns:
        The RayJob, ready for ``yaml.safe_dump``.
    """
    check_stack_is_shared(stack)
    env = {**pod_environment(stack, settings), ENV_ORCHESTRATOR: "ray"}
    standard, custom = worker_offer(pipeline)
    limits: dict[str, str] = {"cpu": str(standard["cpu"]), "memory": str(standard["memory"])}
    if standard["gpu"]:
        limits[GPU_RESOURCE] = str(standard["gpu"])
    head = {
        "name": "ray-head",
        "image": settings.image,
        "workingDir": settings.workdir,
        # The driver runs here: it reads the stack, password included, and hands it
        # to each step's task.
        "env": env_list(env),
        "envFrom": secret_env(settings),
        "resources": {"limits": {"cpu": "1", "memory": str(DEFAULT_WORKER_MEMORY)}},
    }
    worker = {
        "name": "ray-worker",
        "image": settings.image,
        "workingDir": settings.workdir,
        "env": env_list({"PYTHONPATH": settings.workdir}),
        "resources": {"requests": dict(limits), "limits": limits},
    }
    pod_extra: dict[str, Any] = {}
    if settings.service_account:
        pod_extra["serviceAccountName"] = settings.service_account
    worker_params: dict[str, str] = {}
    if custom:
        worker_params["resources"] = _start_params_resources(custom)
    entrypoint = shlex.join(
        ["python", "-m", "stepwire", "run", target, "--orchestrator", "ray", "--run-name", run_name]
    )
    labels = {PIPELINE_LABEL: dns_label(pipeline.name), RUN_LABEL: dns_label(run_name)}
    meta: dict[str, Any] = {"name": dns_label(run_name), "labels": labels}
    if settings.namespace:
        meta["namespace"] = settings.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "RayJob",
        "metadata": meta,
        "spec": {
            "entrypoint": entrypoint,
            "submissionMode": "K8sJobMode",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": FINISHED_TTL_SECONDS,
            # A failed run is not submitted again: its steps were retried already.
            "backoffLimit": 0,
            "rayClusterSpec": {
                "rayVersion": _ray_version(),
                "headGroupSpec": {
                    # The head runs the driver only; the steps run on the workers.
                    "rayStartParams": {"num-cpus": "0"},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [head], **pod_extra},
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": WORKER_GROUP,
                        "replicas": workers,
                        "minReplicas": workers,
                        "maxReplicas": workers,
                        "rayStartParams": worker_params,
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [worker], **pod_extra},
                        },
                    }
                ],
            },
        },
    }


def image_target(target: str) -> str:
    """The ``MODULE:PIPELINE`` form of a ``FILE:PIPELINE`` target, as the image imports it.

    Args:
        target: What was given to ``stepwire manifests``.

    Returns:
        ``pipelines/wine.py:p`` becomes ``wine:p``; a module form is kept.
    """
    location, _, name = target.rpartition(":")
    if location.endswith(".py"):
        location = location.rsplit("/", 1)[-1].removesuffix(".py")
    return f"{location}:{name}"
