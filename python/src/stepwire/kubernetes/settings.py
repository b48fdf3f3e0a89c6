"""What a manifest needs to know about the cluster, and Kubernetes' naming rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stepwire.exceptions import StackConfigError

KINDS = ("argo", "jobs", "rayjob")
"""What ``stepwire manifests`` writes: an Argo Workflow, a Job per step, a RayJob."""

DEFAULT_SECRET = "stepwire-stack"
DEFAULT_WORKDIR = "/app"
DEFAULT_ACCELERATOR_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"

STEP_ANNOTATION = "stepwire.dev/step"
"""Annotation of a step's pod template: the step's name, which a Kubernetes name may not hold."""
UPSTREAM_ANNOTATION = "stepwire.dev/upstream"
"""Annotation of a step's Job: the steps it waits for, comma-separated."""
UNMAPPED_ANNOTATION = "stepwire.dev/unmapped-resources"
"""Annotation of a step's pod: resources it asks for that Kubernetes has no name for."""
STEP_LABEL = "stepwire.dev/step"
"""Label of a step's pods: its Kubernetes name (``kubectl logs -l stepwire.dev/step=split``)."""
PIPELINE_LABEL = "stepwire.dev/pipeline"
RUN_LABEL = "stepwire.dev/run"

_MAX_LABEL = 63
_INVALID = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how the pods run.

    Attributes:
        image: The container image; it holds stepwire and the pipeline's modules,
            importable from ``workdir``.
        namespace: The namespace of every object, or None for kubectl's.
        secret: The Secret whose keys become the pods' environment: the metadata
            store's password (``STEPWIRE_METADATA_PASSWORD``) and the object
            store's credentials (``AWS_ACCESS_KEY_ID``...).
        workdir: The folder in the image the pipeline's modules import from.
        service_account: The pods' service account, or None for the namespace's.
        accelerator_label: The node label ``accelerator_type`` is matched against.
    """

    image: str
    namespace: str | None = None
    secret: str = DEFAULT_SECRET
    workdir: str = DEFAULT_WORKDIR
    service_account: str | None = None
    accelerator_label: str = DEFAULT_ACCELERATOR_LABEL

    def __post_init__(self) -> None:
        """Checks the values Kubernetes would refuse only at apply time.

        Raises:
            StackConfigError: If the image is empty or a name is not a DNS label.
        """
        if not self.image.strip():
            raise StackConfigError("a Kubernetes manifest needs an image (--image)")
        for what, value in (
            ("namespace", self.namespace),
            ("secret", self.secret),
            ("service account", self.service_account),
        ):
            if value is not None and dns_label(value) != value:
                raise StackConfigError(
                    f"the {what} {value!r} is not a Kubernetes name (lower-case letters, "
                    "digits and '-', at most 63)"
                )
        if not self.workdir.startswith("/"):
            raise StackConfigError(f"the workdir {self.workdir!r} must be an absolute path")


def dns_label(name: str, limit: int = _MAX_LABEL) -> str:
    """A name Kubernetes and Argo accept (RFC 1123 label) made from any name.

    Args:
        name: The name, e.g. a step's ``load_data``.
        limit: The longest result.

    Returns:
        Lower case, other characters as ``-``, trimmed: ``load-data``.
    """
    label = _INVALID.sub("-", name.lower()).strip("-")[:limit].rstrip("-")
    return label or "x"


def unique_labels(names: list[str], limit: int = _MAX_LABEL) -> dict[str, str]:
    """A distinct :func:`dns_label` for each name (``a_b`` and ``a-b`` both exist).

    Args:
        names: The names.
        limit: The longest label.

    Returns:
        Name to label.
    """
    taken: set[str] = set()
    labels: dict[str, str] = {}
    for name in names:
        label = dns_label(name, limit)
        n = 1
        while label in taken:
            n += 1
            suffix = f"-{n}"
            label = dns_label(name, limit - len(suffix)) + suffix
        taken.add(label)
        labels[name] = label
    return labels
