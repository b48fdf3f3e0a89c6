"""Kubernetes names and resources of step pods (stepwire.kubernetes)."""

from __future__ import annotations

import pytest

from stepwire.exceptions import StackConfigError
from stepwire.kubernetes.settings import ClusterSettings, dns_label, unique_labels
from stepwire.kubernetes.step_pods import container_resources
from stepwire.steps.resources import Resources


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("load_data", "load-data"),
        ("Train.Model", "train-model"),
        ("__x__", "x"),
        ("___", "x"),
        ("a" * 80, "a" * 63),
        ("run-" + "b" * 70, ("run-" + "b" * 70)[:63]),
    ],
)
def test_any_name_becomes_an_rfc_1123_label(name: str, label: str) -> None:
    assert dns_label(name) == label


def test_names_that_collide_as_labels_get_distinct_labels() -> None:
    labels = unique_labels(["a_b", "a-b", "A.B", "c" * 70, "c" * 71])
    assert labels["a_b"] == "a-b"
    assert labels["a-b"] == "a-b-2"
    assert labels["A.B"] == "a-b-3"
    assert len(set(labels.values())) == 5
    assert all(len(label) <= 63 for label in labels.values())


def test_resources_map_to_requests_limits_and_what_kubernetes_cannot_name() -> None:
    spec, unmapped = container_resources(
        "s", Resources(cpus=2, memory=512, gpus=2, custom={"ray_only": 0.5, "x.io/dev": 1})
    )
    assert spec == {
        "requests": {"cpu": "2", "memory": "512"},
        "limits": {"memory": "512", "nvidia.com/gpu": "2", "x.io/dev": "1"},
    }
    assert unmapped == {"ray_only": "0.5"}
    assert container_resources("s", Resources()) == ({}, {})
    assert container_resources("s", Resources(cpus=0.25))[0] == {"requests": {"cpu": "250m"}}


def test_a_fraction_of_a_gpu_is_refused_naming_the_step() -> None:
    with pytest.raises(StackConfigError, match=r"step 'train' asks for 0.5 of nvidia.com/gpu"):
        container_resources("train", Resources(gpus=0.5))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"image": " "}, "needs an image"),
        ({"image": "i", "namespace": "My_NS"}, "namespace 'My_NS' is not a Kubernetes name"),
        ({"image": "i", "workdir": "app"}, "must be an absolute path"),
    ],
)
def test_cluster_settings_are_checked(settings: dict[str, str], message: str) -> None:
    with pytest.raises(StackConfigError, match=message):
        ClusterSettings(**settings)  # type: ignore[arg-type]
