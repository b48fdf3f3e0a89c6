"""``stepwire manifests``: load a pipeline, plan its pods, write the YAML."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from stepwire.kubernetes.argo_workflow import argo_workflow
from stepwire.kubernetes.ray_job import image_target, ray_job
from stepwire.kubernetes.settings import KINDS
from stepwire.kubernetes.step_jobs import step_jobs
from stepwire.kubernetes.step_pods import plan_pods

if TYPE_CHECKING:
    from stepwire.kubernetes.settings import ClusterSettings
    from stepwire.pipelines.base_pipeline import BasePipeline
    from stepwire.stack import Stack


def manifests(
    kind: str,
    target: str,
    pipeline: BasePipeline,
    *,
    stack: Stack,
    run_name: str,
    settings: ClusterSettings,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """The objects of one kind for one run of a pipeline.

    Args:
        kind: One of :data:`KINDS`.
        target: The ``FILE_OR_MODULE:PIPELINE`` the pipeline was loaded from.
        pipeline: The pipeline.
        stack: The stack the pods use.
        run_name: The run.
        settings: The cluster settings.
        workers: Worker pods of a RayJob.

    Returns:
        The objects.

    Raises:
        ValueError: If ``kind`` is unknown.
    """
    if kind == "rayjob":
        job = ray_job(image_target(target), pipeline, stack, run_name, settings, workers=workers)
        return [job]
    pods = plan_pods(pipeline, stack, run_name, settings)
    if kind == "argo":
        return [argo_workflow(pods, settings)]
    if kind == "jobs":
        return step_jobs(pods, settings)
    raise ValueError(f"unknown manifest kind {kind!r}; expected one of {', '.join(KINDS)}")


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Objects as one YAML stream, ``---`` between them, keys in the order built.

    Args:
        objects: The objects.

    Returns:
        The text.
    """
    return yaml.safe_dump_all(objects, sort_keys=False, width=100, explicit_start=True)
