"""One Kubernetes ``Job`` per step, for a scheduler of the user's own.

A plain Job knows nothing of the other steps: the scheduler applies a step's Job
when the Jobs of the steps named in its ``stepwire.dev/upstream`` annotation have
succeeded. Retries follow the exit-code table through ``podFailurePolicy``.
"""

from __future__ import annotations

from typing import Any

from stepwire.kubernetes.settings import (
    PIPELINE_LABEL,
    RUN_LABEL,
    STEP_LABEL,
    UPSTREAM_ANNOTATION,
    ClusterSettings,
    dns_label,
)
from stepwire.kubernetes.step_pods import (
    CONTAINER_NAME,
    PipelinePods,
    StepPod,
    node_selector,
    pod_annotations,
    step_container,
)
from stepwire.steps.resources import RETRYABLE_EXIT_CODES

_NAME_LIMIT = 63


def pod_failure_policy() -> dict[str, Any]:
    """Fail the Job at once on any exit but 70 and 75; a disrupted pod does not count.

    Returns:
        The ``podFailurePolicy``.
    """
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "NotIn",
                    "values": sorted(RETRYABLE_EXIT_CODES),
                },
            },
            # Evicted, preempted, its node drained: not the step's fault.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]
    }


def step_job(pods: PipelinePods, step: StepPod, settings: ClusterSettings) -> dict[str, Any]:
    """The Job that runs one step once (and again after a 70 or 75, up to ``retries``).

    Args:
        pods: The plan.
        step: The step.
        settings: The cluster settings.

    Returns:
        The Job.
    """
    container, unmapped = step_container(pods, step, settings)
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    selector = node_selector(step, settings)
    if selector:
        pod_spec["nodeSelector"] = selector
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    labels = {PIPELINE_LABEL: dns_label(pods.pipeline), RUN_LABEL: dns_label(pods.run_name)}
    prefix = dns_label(pods.run_name, _NAME_LIMIT - len(step.name) - 1)
    metadata: dict[str, Any] = {
        "name": f"{prefix}-{step.name}"[:_NAME_LIMIT].rstrip("-"),
        "labels": labels,
        "annotations": {
            **pod_annotations(step, {}),
            UPSTREAM_ANNOTATION: ",".join(step.upstream),
        },
    }
    if settings.namespace:
        metadata["namespace"] = settings.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": step.retries,
            "podFailurePolicy": pod_failure_policy(),
            "template": {
                "metadata": {
                    "labels": {**labels, STEP_LABEL: step.name},
                    "annotations": pod_annotations(step, unmapped),
                },
                "spec": pod_spec,
            },
        },
    }


def step_jobs(pods: PipelinePods, settings: ClusterSettings) -> list[dict[str, Any]]:
    """A Job per step, in a topological order.

    Args:
        pods: The plan.
        settings: The cluster settings.

    Returns:
        The Jobs.
    """
    return [step_job(pods, step, settings) for step in pods.steps]
