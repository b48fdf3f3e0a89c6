"""Orchestrators: run the steps of a pipeline; the base class launches single steps."""

from stepwire.orchestrators.base_orchestrator import (
    BaseOrchestrator,
    RuntimeConfiguration,
    StepOutcome,
    StepRunResult,
)
from stepwire.orchestrators.registry import (
    get_orchestrator_class,
    register_orchestrator,
    registered_orchestrators,
)

__all__ = [
    "BaseOrchestrator",
    "RuntimeConfiguration",
    "StepOutcome",
    "StepRunResult",
    "get_orchestrator_class",
    "register_orchestrator",
    "registered_orchestrators",
]
