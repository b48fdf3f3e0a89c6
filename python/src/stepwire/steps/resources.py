"""What a step needs from the machine it runs on, and how often it may be retried.

One small settings object, given to ``@step(resources=..., retries=...)`` or set on a
step class (``RESOURCES``, ``RETRIES``). Orchestrators that place steps map it to
their own terms: the ``ray`` orchestrator to Ray's task options. The step process
itself never reads it: it is about where a step runs, not what it computes, so it
is not part of the step's cache key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stepwire.exceptions import StepInterfaceError

RETRYABLE_EXIT_CODES = frozenset({70, 75})
"""``step_failed`` and ``infrastructure``: the exit codes a retry may cure (README)."""

NODE_LOSS_RETRIES = 3
"""How often an engine may launch again a step whose node (or pod) was lost, even a
step without ``retries``: the ``ray`` orchestrator's ``max_retries``, Argo's limit."""


def _non_negative(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StepInterfaceError(f"resources: {name} must be a finite number, got {value!r}.")
    if value < 0:
        raise StepInterfaceError(f"resources: {name} must not be negative, got {value!r}.")


@dataclass(frozen=True)
class Resources:
    """What one run of a step needs; None leaves the orchestrator's default.

    Attributes:
        cpus: CPU cores (fractions allowed).
        gpus: GPUs (fractions allowed).
        memory: Bytes of memory.
        custom: More resources by name, as the cluster names them
            (``{"stepwire_worker": 1}``, ``{"TPU": 4}``).
        accelerator_type: The kind of accelerator, for example ``"A100"``.
    """

    cpus: float | None = None
    gpus: float | None = None
    memory: int | None = None
    custom: Mapping[str, float] = field(default_factory=dict)
    accelerator_type: str | None = None

    def __post_init__(self) -> None:
        """Checks every value.

        Raises:
            StepInterfaceError: If a value is negative, not finite or of a wrong type.
        """
        _non_negative("cpus", self.cpus)
        _non_negative("gpus", self.gpus)
        if self.memory is not None and (
            isinstance(self.memory, bool) or not isinstance(self.memory, int) or self.memory < 0
        ):
            raise StepInterfaceError(
                f"resources: memory must be a whole number of bytes, got {self.memory!r}."
            )
        for name, amount in self.custom.items():
            if not isinstance(name, str) or not name:
                raise StepInterfaceError(f"resources: a custom resource name {name!r} is empty.")
            _non_negative(f"custom[{name!r}]", amount)
        if self.accelerator_type is not None and not (
            isinstance(self.accelerator_type, str) and self.accelerator_type
        ):
            raise StepInterfaceError("resources: accelerator_type must be a non-empty string.")
        # Frozen, and hashable through a copy of the mapping it was given.
        object.__setattr__(self, "custom", dict(self.custom))

    def describe(self) -> str:
        """Names what is asked, for a person.

        Returns:
            For example ``cpus=2, memory=1073741824, stepwire_worker=1``.
        """
        parts: list[str] = []
        for name in ("cpus", "gpus", "memory", "accelerator_type"):
            value: Any = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value}")
        parts += [f"{name}={amount}" for name, amount in sorted(self.custom.items())]
        return ", ".join(parts) or "nothing in particular"


def check_retries(retries: Any) -> int:
    """Checks a step's retry count.

    Args:
        retries: How many times a step that exits 70 or 75 may be launched again.

    Returns:
        The count.

    Raises:
        StepInterfaceError: If it is not a whole number from 0.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise StepInterfaceError(f"retries must be a whole number from 0, got {retries!r}.")
    return retries
