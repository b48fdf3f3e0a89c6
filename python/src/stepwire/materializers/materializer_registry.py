"""Which materializer reads and writes values of a Python type."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from stepwire.exceptions import StepInterfaceError

if TYPE_CHECKING:
    from stepwire.materializers.base_materializer import BaseMaterializer

logger = logging.getLogger(__name__)


class MaterializerRegistry:
    """Maps Python types to materializer classes."""

    def __init__(self) -> None:
        self.materializer_types: dict[type, type[BaseMaterializer]] = {}

    def register_materializer_type(self, key: type, type_: type[BaseMaterializer]) -> None:
        """Registers a materializer for a type unless one is registered already.

        The first registration wins so that importing a module later (for instance a
        user module that subclasses a built-in materializer) never silently changes how
        an existing type is stored.

        Args:
            key: The Python type.
            type_: The materializer class.
        """
        existing = self.materializer_types.get(key)
        if existing is None:
            self.materializer_types[key] = type_
        elif existing is not type_:
            logger.debug(
                "%s is already handled by %s; not registering %s for it.",
                key,
                existing.__name__,
                type_.__name__,
            )

    def register_and_overwrite_type(self, key: type, type_: type[BaseMaterializer]) -> None:
        """Registers a materializer for a type, replacing any earlier one.

        Args:
            key: The Python type.
            type_: The materializer class.
        """
        self.materializer_types[key] = type_

    def __getitem__(self, key: type) -> type[BaseMaterializer]:
        """Returns the materializer for a type.

        Args:
            key: The Python type.

        Returns:
            The materializer registered for ``key`` itself, else the one registered for
            its only registered superclass.

        Raises:
            StepInterfaceError: If none, or several different ones, match.
        """
        if key in self.materializer_types:
            return self.materializer_types[key]
        candidates = {
            materializer
            for base, materializer in self.materializer_types.items()
            if issubclass(key, base)
        }
        if len(candidates) == 1:
            return candidates.pop()
        if not candidates:
            raise StepInterfaceError(
                f"No materializer is registered for {key!r}; write a BaseMaterializer "
                "subclass with it in ASSOCIATED_TYPES or pass one to "
                "with_return_materializers()."
            )
        raise StepInterfaceError(
            f"Several materializers match {key!r} through its base classes "
            f"({sorted(m.__name__ for m in candidates)}); pass one explicitly with "
            "with_return_materializers()."
        )

    def is_registered(self, key: type) -> bool:
        """Tells whether a materializer would be found for a type.

        Args:
            key: The Python type.

        Returns:
            True if :meth:`__getitem__` would succeed.
        """
        try:
            self[key]
        except StepInterfaceError:
            return False
        return True


#: The registry that materializer classes register into when they are defined.
default_materializer_registry = MaterializerRegistry()
