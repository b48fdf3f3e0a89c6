"""The base class of materializers: they write step outputs and read step inputs."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, cast

from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import DataArtifact
from stepwire.artifacts.type_registry import type_registry
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers.materializer_registry import default_materializer_registry


class BaseMaterializerMeta(type):
    """Registers every materializer class for its associated types when it is defined.

    Defining (importing) a materializer is what makes it known, which is why a step
    process imports the user's main module before it runs the step.
    """

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]
    ) -> BaseMaterializerMeta:
        """Creates and registers a materializer class.

        Args:
            name: Class name.
            bases: Base classes.
            namespace: Class body.

        Returns:
            The new class.

        Raises:
            StepInterfaceError: If ``ASSOCIATED_TYPES`` or ``ASSOCIATED_ARTIFACT_TYPES``
                are malformed.
        """
        cls = super().__new__(mcs, name, bases, namespace)
        if not bases or namespace.get("SKIP_REGISTRATION", False):
            # BaseMaterializer itself, or an intermediate base meant to be subclassed.
            return cls
        associated_types = namespace.get("ASSOCIATED_TYPES", ())
        if not isinstance(associated_types, tuple) or not associated_types:
            raise StepInterfaceError(
                f"Materializer {name} must set ASSOCIATED_TYPES to a non-empty tuple of types."
            )
        artifact_types = getattr(cls, "ASSOCIATED_ARTIFACT_TYPES", ())
        for candidate in (*associated_types, *artifact_types):
            if not inspect.isclass(candidate):
                raise StepInterfaceError(f"Materializer {name}: {candidate!r} is not a class.")
        if not artifact_types or not all(issubclass(t, BaseArtifact) for t in artifact_types):
            raise StepInterfaceError(
                f"Materializer {name}: ASSOCIATED_ARTIFACT_TYPES must be a non-empty tuple "
                "of BaseArtifact subclasses."
            )
        materializer = cast("type[BaseMaterializer]", cls)
        for associated_type in associated_types:
            default_materializer_registry.register_materializer_type(associated_type, materializer)
            type_registry.register_integration(associated_type, artifact_types)
        return cls


class BaseMaterializer(metaclass=BaseMaterializerMeta):
    """Reads and writes values of some Python types under an artifact's URI.

    Subclasses set ``ASSOCIATED_TYPES`` (the Python types they handle) and optionally
    ``ASSOCIATED_ARTIFACT_TYPES`` (the artifact types their output is declared as, the
    first one preferred), then override :meth:`handle_input` and :meth:`handle_return`,
    calling ``super()`` first for the type checks. Files must be written through
    :mod:`stepwire.io_utils` so that a remote artifact store works.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = ()
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (DataArtifact,)

    def __init__(self, artifact: BaseArtifact) -> None:
        """Binds the materializer to one artifact.

        Args:
            artifact: The artifact whose URI is read or written.
        """
        self.artifact = artifact

    def _check_type(self, data_type: type) -> None:
        if not issubclass(data_type, self.ASSOCIATED_TYPES):
            raise StepInterfaceError(
                f"{type(self).__name__} handles {[t.__name__ for t in self.ASSOCIATED_TYPES]}, "
                f"not {data_type.__name__}."
            )

    def handle_input(self, data_type: type) -> Any:
        """Reads the artifact's value.

        Args:
            data_type: The type the consuming step declares for it.

        Returns:
            The value (subclasses return it; the base only checks the type).

        Raises:
            StepInterfaceError: If this materializer does not handle ``data_type``.
        """
        self._check_type(data_type)
        return None

    def handle_return(self, data: Any) -> None:
        """Writes a value under the artifact's URI.

        Args:
            data: The value a step returned.

        Raises:
            StepInterfaceError: If this materializer does not handle the value's type.
        """
        self._check_type(type(data))
