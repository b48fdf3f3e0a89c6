"""Which artifact types a Python type is stored as."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepwire.exceptions import StepInterfaceError

if TYPE_CHECKING:
    from stepwire.artifacts.base_artifact import BaseArtifact


class ArtifactTypeRegistry:
    """Maps Python types to the artifact types their values may be stored as.

    Materializers register their associated types here when their class is created;
    the first artifact type of a match is what a step output of that Python type is
    declared as in the pipeline.
    """

    def __init__(self) -> None:
        self._artifact_types: dict[type, tuple[type[BaseArtifact], ...]] = {}

    def register_integration(
        self, key: type, artifact_types: tuple[type[BaseArtifact], ...]
    ) -> None:
        """Registers the artifact types of a Python type; a later call replaces it.

        Args:
            key: The Python type.
            artifact_types: Artifact classes, the preferred one first.

        Raises:
            StepInterfaceError: If ``artifact_types`` is empty.
        """
        if not artifact_types:
            raise StepInterfaceError(f"No artifact types given for {key!r}.")
        self._artifact_types[key] = tuple(artifact_types)

    def get_artifact_type(self, key: type) -> tuple[type[BaseArtifact], ...]:
        """Returns the artifact types a Python type is stored as.

        Args:
            key: The Python type.

        Returns:
            The registered artifact types of ``key`` itself, else those of its one
            registered superclass (or of several superclasses that agree).

        Raises:
            StepInterfaceError: If no registered type or several disagreeing ones match.
        """
        if key in self._artifact_types:
            return self._artifact_types[key]
        candidates = {
            types for base, types in self._artifact_types.items() if issubclass(key, base)
        }
        if len(candidates) == 1:
            return candidates.pop()
        if not candidates:
            raise StepInterfaceError(
                f"No artifact type is registered for {key!r}; register a materializer "
                "whose ASSOCIATED_TYPES include it."
            )
        raise StepInterfaceError(
            f"Several artifact types match {key!r} through its base classes "
            f"({sorted(t.__name__ for types in candidates for t in types)}); register "
            "a materializer for it directly."
        )


#: The registry stepwire's materializers register into.
type_registry = ArtifactTypeRegistry()
