"""The step entrypoint: run one step of a pipeline from one command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration

__all__ = ["StepEntrypointConfiguration"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `python -m stepwire.entrypoints.step_entrypoint` imports
    # this package first, and its supervising parent must not pay for the codec.
    if name == "StepEntrypointConfiguration":
        from stepwire.entrypoints.step_entrypoint_configuration import (
            StepEntrypointConfiguration,
        )

        return StepEntrypointConfiguration
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
