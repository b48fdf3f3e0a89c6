"""The stack: the orchestrator, artifact store and metadata store a pipeline runs on.

A stack is resolved once per process, at its entry (the CLI, ``pipeline.run()``, the
step entrypoint's ``main()``), and handed down from there. Across a process boundary it
travels whole, as :meth:`Stack.to_config` plus :meth:`StackConfig.to_environment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stepwire.artifact_store import ArtifactStore
from stepwire.metadata_store import (
    BaseMetadataStore,
    MySQLMetadataStore,
    PostgreSQLMetadataStore,
    SQLiteMetadataStore,
    metadata_store_from_config,
)
from stepwire.orchestrators.registry import (
    get_orchestrator_class,
    name_of_orchestrator,
    register_orchestrator,
)
from stepwire.stack_config import MetadataConfig, SQLiteConfig, StackConfig, load_stack_config

if TYPE_CHECKING:
    from pathlib import Path

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
        project_root: The folder the configuration was read in; ``None`` for a stack
            built in code (it then resolves relative to the current directory).
        config_file: The ``stepwire.yaml`` it was read from, if any.
    """

    orchestrator: BaseOrchestrator
    artifact_store: ArtifactStore
    metadata_store: BaseMetadataStore
    name: str = "default"
    project_root: Path | None = None
    config_file: Path | None = None

    def prepare_step_run(self) -> None:
        """Hook run right before a step executes; the default does nothing."""

    def cleanup_step_run(self) -> None:
        """Hook run right after a step executed, even if it failed; the default does nothing."""

    def to_config(self) -> StackConfig:
        """The configuration that resolves to this stack in another process.

        Returns:
            The stack's configuration: ``to_config().to_environment()`` hands the whole
            stack (orchestrator, artifact store, metadata store) to a step process.

        Raises:
            TypeError: If the metadata store is a kind a configuration cannot name.
        """
        from pathlib import Path

        store = self.metadata_store
        metadata: MetadataConfig
        if isinstance(store, SQLiteMetadataStore):
            metadata = SQLiteConfig(str(Path(store.path).resolve()))
        elif isinstance(store, MySQLMetadataStore | PostgreSQLMetadataStore):
            metadata = store.config
        else:
            raise TypeError(
                f"The metadata store {type(store).__name__} cannot be handed to another "
                "process: only SQLite, MySQL and PostgreSQL stores have a configuration."
            )
        artifacts = self.artifact_store.path
        if not self.artifact_store.is_remote:
            # Absolute, like the SQLite path: another process may start elsewhere.
            artifacts = str(Path(artifacts).resolve())
        return StackConfig(
            project_root=self.project_root or Path.cwd(),
            config_file=self.config_file,
            orchestrator=name_of_orchestrator(type(self.orchestrator)),
            artifact_store=artifacts,
            metadata_store=metadata,
        )


def stack_from_config(config: StackConfig) -> Stack:
    """Builds a stack from a resolved configuration.

    Args:
        config: The configuration.

    Returns:
        The stack, with a new orchestrator instance.

    Raises:
        StackConfigError: If the orchestrator is unknown.
    """
    return Stack(
        orchestrator=get_orchestrator_class(config.orchestrator)(),
        artifact_store=ArtifactStore(config.artifact_store),
        metadata_store=metadata_store_from_config(config.metadata_store),
        name=str(config.config_file) if config.config_file else "default",
        project_root=config.project_root,
        config_file=config.config_file,
    )


def get_active_stack() -> Stack:
    """Resolves the stack configured for this process (see :mod:`stepwire.stack_config`).

    Only a process's entry calls it (the CLI, ``pipeline.run()`` without a stack, the
    step entrypoint), once; everything below receives the stack it resolved.

    Returns:
        The stack.

    Raises:
        StackConfigError: If the configuration is invalid.
    """
    return stack_from_config(load_stack_config())
