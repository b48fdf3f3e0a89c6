"""Orchestrator classes by name, so a stack configuration can pick one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepwire.exceptions import StackConfigError

if TYPE_CHECKING:
    from stepwire.orchestrators.base_orchestrator import BaseOrchestrator

# A value is a class, or the class source of one, imported only when first used:
# this lets a module register an orchestrator without importing it.
_orchestrators: dict[str, type[BaseOrchestrator] | str] = {
    "local": "stepwire.orchestrators.local_orchestrator.LocalOrchestrator",
    "subprocess": "stepwire.orchestrators.subprocess_orchestrator.SubprocessOrchestrator",
    "ray": "stepwire.orchestrators.ray_orchestrator.RayOrchestrator",
}


def register_orchestrator(name: str, cls: type[BaseOrchestrator] | str) -> None:
    """Makes an orchestrator available to stack configurations under a name.

    Args:
        name: The name used in ``stepwire.yaml`` / ``STEPWIRE_ORCHESTRATOR``.
        cls: A ``BaseOrchestrator`` subclass, or its class source (``pkg.mod.Class``),
            imported on first use. A later registration of the same name replaces it.
    """
    _orchestrators[name] = cls


def registered_orchestrators() -> list[str]:
    """Returns the registered names.

    Returns:
        The names, sorted.
    """
    return sorted(_orchestrators)


def name_of_orchestrator(cls: type[BaseOrchestrator]) -> str:
    """Returns the name a stack configuration selects an orchestrator class by.

    Args:
        cls: The orchestrator class.

    Returns:
        The name it is registered under, else its class source (``pkg.module.Class``),
        which :func:`get_orchestrator_class` loads as well.
    """
    from stepwire.source_utils import resolve_importable_class

    source = resolve_importable_class(cls)
    for name, entry in _orchestrators.items():
        if entry is cls or entry == source:
            return name
    return source


def get_orchestrator_class(name: str) -> type[BaseOrchestrator]:
    """Returns the orchestrator class registered under a name.

    A name that is not registered but contains a dot is loaded as a class source, so a
    configuration can name any orchestrator class directly.

    Args:
        name: A registered name or a class source.

    Returns:
        The orchestrator class.

    Raises:
        StackConfigError: If the name is unknown or does not load a BaseOrchestrator.
    """
    from stepwire.orchestrators.base_orchestrator import BaseOrchestrator
    from stepwire.source_utils import load_source_path_class

    entry = _orchestrators.get(name)
    if entry is None and "." not in name:
        raise StackConfigError(
            f"No orchestrator named '{name}' is registered (known: "
            f"{registered_orchestrators()}); register it with register_orchestrator() or "
            "give a class source such as 'my_package.module.MyOrchestrator'."
        )
    source = entry if isinstance(entry, str) else name
    if entry is None or isinstance(entry, str):
        try:
            loaded = load_source_path_class(source)
        except (ImportError, AttributeError, TypeError) as e:
            raise StackConfigError(f"Cannot load orchestrator '{name}': {e}") from e
    else:
        loaded = entry
    if not issubclass(loaded, BaseOrchestrator):
        raise StackConfigError(f"Orchestrator '{name}' ({loaded!r}) is not a BaseOrchestrator.")
    return loaded
