"""The stack: the orchestrator, artifact store and metadata store a pipeline runs on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stepwire.artifact_store import ArtifactStore
from stepwire.metadata_store import BaseMetadataStore, MySQLMetadataStore, SQLiteMetadataStore
from stepwire.orchestrators.registry import get_orchestrator_class, register_orchestrator
from stepwire.stack_config import MySQLConfig, StackConfig, load_stack_config

if TYPE_CHECKING:
    from stepwire.orchestrators.base_orchestrator import BaseOrchestrator

__all__ = ["Stack", "get_active_stack", "register_orchestrator", "stack_from_config"]


@dataclass
class Stack:
    """The components a pipeline runs on.

    Attributes:
        orchestrator: Runs the steps.
        artifact_store: Holds the step outputs.
        metadata_store: Records executions, artifacts and runs (ML Metadata).
        name: A label for logs.
    """

    orchestrator: BaseOrchestrator
    artifact_store: ArtifactStore
    metadata_store: BaseMetadataStore
    name: str = "default"

    def prepare_step_run(self) -> None:
        """Hook run right before a step executes; the default does nothing."""

    def cleanup_step_run(self) -> None:
        """Hook run right after a step executed, even if it failed; the default does nothing."""


def stack_from_config(config: StackConfig) -> Stack:
    """Builds a stack from a resolved configuration.

    Args:
        config: The configuration.

    Returns:
        The stack, with a new orchestrator instance.

    Raises:
        StackConfigError: If the orchestrator is unknown.
    """
    metadata: BaseMetadataStore
    if isinstance(config.metadata_store, MySQLConfig):
        metadata = MySQLMetadataStore(config.metadata_store)
    else:
        metadata = SQLiteMetadataStore(config.metadata_store.path)
    return Stack(
        orchestrator=get_orchestrator_class(config.orchestrator)(),
        artifact_store=ArtifactStore(config.artifact_store),
        metadata_store=metadata,
        name=str(config.config_file) if config.config_file else "default",
    )


def get_active_stack() -> Stack:
    """Returns the stack configured for this process (see :mod:`stepwire.stack_config`).

    The configuration is read on every call, so changed ``STEPWIRE_*`` variables take
    effect at once.

    Returns:
        The stack.

    Raises:
        StackConfigError: If the configuration is invalid.
    """
    return stack_from_config(load_stack_config())
