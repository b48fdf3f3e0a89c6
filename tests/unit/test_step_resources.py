"""Step resources and retries, and how the ray orchestrator maps them to task options."""

from __future__ import annotations

import math

import pytest

from stepwire.exceptions import StepInterfaceError
from stepwire.orchestrators.ray_orchestrator import task_options
from stepwire.steps import Resources, step
from stepwire.steps.resources import NODE_LOSS_RETRIES


@step(resources=Resources(cpus=0.5, memory=2**30, custom={"stepwire_worker": 1}), retries=2)
def placed() -> int:
    return 1


@step
def plain() -> int:
    return 1


def test_a_step_carries_its_resources_and_retries() -> None:
    assert Resources(cpus=0.5, memory=2**30, custom={"stepwire_worker": 1}) == placed.RESOURCES
    assert placed.RETRIES == 2
    assert Resources() == plain.RESOURCES
    assert plain.RETRIES == 0
    assert placed.RESOURCES.describe() == "cpus=0.5, memory=1073741824, stepwire_worker=1"
    assert Resources().describe() == "nothing in particular"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpus": -1}, "cpus must not be negative"),
        ({"gpus": math.nan}, "gpus must be a finite number"),
        ({"memory": 1.5}, "whole number of bytes"),
        ({"custom": {"": 1}}, "is empty"),
        ({"custom": {"x": -2}}, "must not be negative"),
        ({"accelerator_type": ""}, "non-empty string"),
    ],
)
def test_bad_resources_are_refused_when_declared(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(StepInterfaceError, match=message):
        Resources(**kwargs)  # type: ignore[arg-type]


def test_bad_retries_are_refused() -> None:
    with pytest.raises(StepInterfaceError, match="retries must be a whole number"):
        step(retries=-1)
    with pytest.raises(StepInterfaceError, match=r"must be a stepwire\.steps\.Resources"):
        step(resources={"cpus": 1})  # type: ignore[arg-type]


def test_ray_task_options() -> None:
    assert task_options(placed.RESOURCES) == {
        "num_cpus": 0.5,
        "memory": 2**30,
        "resources": {"stepwire_worker": 1},
        "max_retries": NODE_LOSS_RETRIES,
        "retry_exceptions": False,
    }
    assert task_options(Resources(gpus=1, accelerator_type="A100"))["num_gpus"] == 1
    assert task_options(Resources())["num_cpus"] == 1


def test_the_ray_scheduling_strategy_is_checked_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stepwire.exceptions import StackConfigError
    from stepwire.orchestrators.ray_orchestrator import ENV_SCHEDULING, RayOrchestrator

    monkeypatch.delenv(ENV_SCHEDULING, raising=False)
    assert RayOrchestrator().scheduling == "DEFAULT"
    monkeypatch.setenv(ENV_SCHEDULING, "spread")
    assert RayOrchestrator().scheduling == "SPREAD"
    assert RayOrchestrator(scheduling="DEFAULT").scheduling == "DEFAULT"
    with pytest.raises(StackConfigError, match=r"STEPWIRE_RAY_SCHEDULING='PACK': expected one"):
        RayOrchestrator(scheduling="PACK")
