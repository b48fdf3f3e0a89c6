"""Which materializer reads and writes values of a Python type.

The materializers of third-party types (pandas, pyarrow, polars, scikit-learn) are
*lazy built-ins*: each is described here by the public names of the types it handles
(:data:`LAZY_BUILTINS`) and its module is imported only when a lookup meets a type
that is, or derives from, one of them. Such a type can only exist once its library
has been imported, so the check reads ``sys.modules`` and never imports a library
itself: a step that passes ints imports neither pandas nor the materializer of it.
"""

from __future__ import annotations

import abc
import importlib
import logging
import sys
from typing import TYPE_CHECKING, ClassVar

from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import DataArtifact, ModelArtifact
from stepwire.artifacts.type_registry import ArtifactTypeRegistry, type_registry
from stepwire.exceptions import StepInterfaceError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from stepwire.materializers.base_materializer import BaseMaterializer

logger = logging.getLogger(__name__)


class LazyBuiltin:
    """A built-in materializer whose module is imported when a value's type needs it.

    A plain class, not a dataclass: every step process defines it, and the
    dataclass decorator alone would cost it most of a millisecond.

    Attributes:
        types: The handled types by public name, ``"module:qualified.name"``.
        module: The stepwire module that defines and registers the materializer.
        artifact_types: The artifact types its outputs are declared as, the preferred
            first; the same as the materializer's ``ASSOCIATED_ARTIFACT_TYPES``.
    """

    __slots__ = ("artifact_types", "module", "types")

    def __init__(
        self, *, types: tuple[str, ...], module: str, artifact_types: tuple[type[BaseArtifact], ...]
    ) -> None:
        self.types = types
        self.module = module
        self.artifact_types = artifact_types

    def __repr__(self) -> str:
        return f"LazyBuiltin(types={self.types!r}, module={self.module!r})"

    def loaded_types(self) -> tuple[type, ...]:
        """The handled types whose modules are imported already.

        Returns:
            The classes; empty while their library is not imported.
        """
        found: list[type] = []
        for name in self.types:
            module_name, _, qualified = name.partition(":")
            target: object = sys.modules.get(module_name)
            for part in qualified.split("."):
                target = getattr(target, part, None)
            if isinstance(target, type):
                found.append(target)
        return tuple(found)

    def handles(self, key: type) -> bool:
        """Tells whether a type is, or derives from, one of the handled types.

        Args:
            key: A Python type.

        Returns:
            True if the materializer would be found for it.
        """
        loaded = self.loaded_types()
        return bool(loaded) and issubclass(key, loaded)


#: The lazy built-ins. The extras that install their libraries are named in
#: python/pyproject.toml (stepwire[pandas], [arrow], [polars], [sklearn]).
LAZY_BUILTINS: tuple[LazyBuiltin, ...] = (
    # numpy too: importing it costs ~70 ms and starts OpenBLAS's threads, which a
    # step that passes no array should not pay (and a warm parent must not have).
    LazyBuiltin(
        types=("numpy:ndarray",),
        module="stepwire.materializers.numpy_materializer",
        artifact_types=(DataArtifact,),
    ),
    LazyBuiltin(
        types=("pandas:DataFrame", "pandas:Series"),
        module="stepwire.materializers.pandas_materializer",
        artifact_types=(DataArtifact,),
    ),
    LazyBuiltin(
        types=("pyarrow:Table",),
        module="stepwire.materializers.arrow_materializer",
        artifact_types=(DataArtifact,),
    ),
    LazyBuiltin(
        types=("polars:DataFrame",),
        module="stepwire.materializers.polars_materializer",
        artifact_types=(DataArtifact,),
    ),
    LazyBuiltin(
        # The mixins too: tutorials annotate `-> ClassifierMixin`, and a mixin is not
        # a BaseEstimator subclass.
        types=(
            "sklearn.base:BaseEstimator",
            "sklearn.base:ClassifierMixin",
            "sklearn.base:RegressorMixin",
            "sklearn.base:ClusterMixin",
            "sklearn.base:TransformerMixin",
        ),
        module="stepwire.materializers.sklearn_materializer",
        artifact_types=(ModelArtifact,),
    ),
)


class MaterializerRegistry:
    """Maps Python types to materializer classes."""

    def __init__(self, lazy_builtins: Iterable[LazyBuiltin] = ()) -> None:
        """Creates a registry.

        Args:
            lazy_builtins: Built-ins to import when a looked-up type needs them.
        """
        self.materializer_types: dict[type, type[BaseMaterializer]] = {}
        self._pending: list[LazyBuiltin] = list(lazy_builtins)

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

    def _import_builtins_for(self, key: type) -> None:
        """Imports the lazy built-ins that handle ``key``; their modules register them."""
        for builtin in tuple(self._pending):
            if builtin.handles(key):
                importlib.import_module(builtin.module)
                self._pending.remove(builtin)

    def __getitem__(self, key: type) -> type[BaseMaterializer]:
        """Returns the materializer for a type.

        Args:
            key: The Python type.

        Returns:
            The materializer registered for ``key`` itself, else the one registered
            for its nearest registered base classes: a base is passed over when a
            subclass of it that ``key`` also derives from is registered, so a user's
            materializer for ``MyModel(BaseEstimator)`` serves subclasses of
            ``MyModel`` although the built-in one is registered for ``BaseEstimator``.

        Raises:
            StepInterfaceError: If none, or several different ones, match.
        """
        if key in self.materializer_types:
            return self.materializer_types[key]
        self._import_builtins_for(key)
        if key in self.materializer_types:
            return self.materializer_types[key]
        matches = {
            base: materializer
            for base, materializer in self.materializer_types.items()
            if issubclass(key, base)
        }
        candidates = {
            materializer
            for base, materializer in matches.items()
            if not any(other is not base and issubclass(other, base) for other in matches)
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


class _NotYetImported(abc.ABC):
    """Stands in the artifact type registry for the types of one lazy built-in.

    The artifact type of a step output is looked up before its materializer is (when
    a step is wired, and when a step process rebuilds its executor), and that registry
    only knows types its materializers registered. ``issubclass(DataFrame, <this>)``
    answers for a lazy built-in's types without importing anything, so the lookup
    finds the built-in's artifact types; the real registration, once the built-in is
    imported, names the same ones.

    Subclasses are made by :func:`_stand_in`, one per lazy built-in.
    """

    BUILTIN: ClassVar[LazyBuiltin]

    @classmethod
    def __subclasshook__(cls, candidate: type) -> bool:
        """Answers ``issubclass(candidate, cls)`` by the public names of the types."""
        builtin: LazyBuiltin | None = cls.__dict__.get("BUILTIN")
        return builtin is not None and builtin.handles(candidate)


def _stand_in(builtin: LazyBuiltin) -> type:
    name = builtin.module.rsplit(".", 1)[-1]
    return type(f"_NotYetImported_{name}", (_NotYetImported,), {"BUILTIN": builtin})


def _register_stand_ins(registry: ArtifactTypeRegistry) -> None:
    for builtin in LAZY_BUILTINS:
        registry.register_integration(_stand_in(builtin), builtin.artifact_types)


#: The registry that materializer classes register into when they are defined.
default_materializer_registry = MaterializerRegistry(LAZY_BUILTINS)
_register_stand_ins(type_registry)


def register_builtin(materializer: type[BaseMaterializer]) -> None:
    """Registers a lazy built-in for its types, leaving alone types a user registered.

    A built-in module calls it for its materializer, which sets ``SKIP_REGISTRATION``
    so the metaclass does not register it: the metaclass would also *replace* the
    artifact types of a type a user's materializer had registered before the built-in
    was imported, while here the user's registration stays whole.

    Args:
        materializer: The built-in materializer class.
    """
    for key in materializer.ASSOCIATED_TYPES:
        if key in default_materializer_registry.materializer_types:
            logger.debug("%s is handled by a user materializer; %s yields.", key, materializer)
            continue
        default_materializer_registry.register_materializer_type(key, materializer)
        type_registry.register_integration(key, materializer.ASSOCIATED_ARTIFACT_TYPES)
