"""Loading user code in the entrypoint, with one error type for every way it fails."""

from __future__ import annotations

from types import ModuleType

from stepwire import source_utils
from stepwire.exceptions import StepwireError


class UserCodeLoadError(StepwireError, TypeError):
    """User code named by the command line cannot be loaded.

    The module does not import (whatever it raises while imported: an
    ``ImportError``, a ``SyntaxError``, a ``RuntimeError`` of its own), the class is
    missing, it is not the expected subclass, or the module exits while it is
    imported. Deterministic, so not worth retrying. A ``TypeError``, as the seed API
    documents for a class of the wrong kind.
    """


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_class(source: str, base: type, what: str) -> type:
    """Loads a class from its source and checks its base class.

    Args:
        source: ``module.Class``, possibly pinned.
        base: The class it must subclass.
        what: What the class is for, for the message (``"step"``).

    Returns:
        The class.

    Raises:
        UserCodeLoadError: If it cannot be loaded or has the wrong base.
    """
    try:
        loaded = source_utils.load_source_path_class(source)
    except SystemExit as exc:
        raise UserCodeLoadError(f"importing the {what} `{source}` called exit({exc.code})") from exc
    except Exception as exc:  # any error while importing user code is the user's
        raise UserCodeLoadError(f"cannot load the {what} `{source}`: {_reason(exc)}") from exc
    if not isinstance(loaded, type) or not issubclass(loaded, base):
        raise UserCodeLoadError(
            f"the {what} source `{source}` passed to the entrypoint is not pointing to a "
            f"`{base.__module__}.{base.__qualname__}` subclass."
        )
    return loaded


def import_user_module(module_source: str) -> ModuleType:
    """Imports the user's main module once, as the entrypoint needs it.

    Args:
        module_source: Importable module of the user's script.

    Returns:
        The module.

    Raises:
        UserCodeLoadError: If it cannot be imported or exits while imported.
    """
    try:
        return source_utils.import_main_module(module_source)
    except SystemExit as exc:
        raise UserCodeLoadError(
            f"importing the main module `{module_source}` called exit({exc.code})"
        ) from exc
    except Exception as exc:  # any error while importing user code is the user's
        raise UserCodeLoadError(
            f"cannot import the main module `{module_source}`: {_reason(exc)}"
        ) from exc
