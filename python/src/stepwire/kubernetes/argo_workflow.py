"""An Argo ``Workflow`` for one run of a pipeline: a DAG of one template per step.

Argo starts a step when the steps it depends on have succeeded, runs independent
steps in parallel, and does not start the dependents of a failed step: the same
semantics as the ``subprocess`` and ``ray`` orchestrators.
"""

from __future__ import annotations

from typing import Any

from stepwire.kubernetes.settings import (
    PIPELINE_LABEL,
    RUN_LABEL,
    STEP_LABEL,
    ClusterSettings,
    dns_label,
)
from stepwire.kubernetes.step_pods import (
    PipelinePods,
    StepPod,
    node_selector,
    pod_annotations,
    step_container,
)
from stepwire.steps.resources import NODE_LOSS_RETRIES, RETRYABLE_EXIT_CODES

API_VERSION = "argoproj.io/v1alpha1"
DAG_TEMPLATE = "pipeline"

_RETRYABLE = ", ".join(str(code) for code in sorted(RETRYABLE_EXIT_CODES))
RETRY_ON_EXIT_CODES = (
    f'lastRetry.status == "Error" || '
    f'(lastRetry.status == "Failed" && asInt(lastRetry.exitCode) in [{_RETRYABLE}])'
)
"""Retry a pod Argo lost (``Error``: its node went, it was evicted) or a 70 or 75."""
RETRY_ON_ERROR_ONLY = 'lastRetry.status == "Error"'
"""For a step without retries: only a lost pod is launched again."""


def retry_strategy(step: StepPod) -> dict[str, Any]:
    """The step's ``retryStrategy``, from the exit-code table.

    A step with ``retries`` is launched again after a 70, a 75 or a lost pod, up to
    ``retries`` times in all (Argo has one limit for every cause); a step without
    is launched again only after a lost pod, up to 3 times, as on Ray. 64-67 never.

    Args:
        step: The step.

    Returns:
        The strategy.
    """
    if step.retries:
        limit, expression = step.retries, RETRY_ON_EXIT_CODES
    else:
        limit, expression = NODE_LOSS_RETRIES, RETRY_ON_ERROR_ONLY
    return {"limit": str(limit), "retryPolicy": "Always", "expression": expression}


def step_template(pods: PipelinePods, step: StepPod, settings: ClusterSettings) -> dict[str, Any]:
    """The template that runs one step.

    Args:
        pods: The plan.
        step: The step.
        settings: The cluster settings.

    Returns:
        The template.
    """
    container, unmapped = step_container(pods, step, settings)
    template: dict[str, Any] = {
        "name": step.name,
        "metadata": {
            "labels": {STEP_LABEL: step.name},
            "annotations": pod_annotations(step, unmapped),
        },
        "retryStrategy": retry_strategy(step),
        "container": container,
    }
    selector = node_selector(step, settings)
    if selector:
        template["nodeSelector"] = selector
    return template


def argo_workflow(pods: PipelinePods, settings: ClusterSettings) -> dict[str, Any]:
    """The Workflow that runs the planned run.

    Args:
        pods: The plan.
        settings: The cluster settings.

    Returns:
        The Workflow, ready for ``yaml.safe_dump``.
    """
    tasks = []
    for step in pods.steps:
        task: dict[str, Any] = {"name": step.name, "template": step.name}
        if step.upstream:
            task["dependencies"] = list(step.upstream)
        tasks.append(task)
    metadata: dict[str, Any] = {
        "name": dns_label(pods.run_name),
        "labels": {
            PIPELINE_LABEL: dns_label(pods.pipeline),
            RUN_LABEL: dns_label(pods.run_name),
        },
    }
    if settings.namespace:
        metadata["namespace"] = settings.namespace
    spec: dict[str, Any] = {
        "entrypoint": DAG_TEMPLATE,
        "templates": [
            {"name": DAG_TEMPLATE, "dag": {"tasks": tasks}},
            *(step_template(pods, step, settings) for step in pods.steps),
        ],
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": metadata, "spec": spec}
