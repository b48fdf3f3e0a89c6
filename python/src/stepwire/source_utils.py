"""Turning classes into importable *sources* and back.

Vocabulary: a *class source* is ``package.module.Class``; a *module source* is
``package.module``. Either may end in a pin, ``@<something>``, which is stripped
(and not checked) when loading.

The one rule that is easy to get wrong (#3119 upstream): when a source names the file
that is already running as ``__main__`` (``run.Trainer`` while ``python run.py`` runs),
loading it must return the ``__main__`` module object. Importing the file a second time
under its real name would run its top-level code again and create a second, different
``Trainer`` class.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType

from stepwire import constants

_MAIN = "__main__"


def strip_pin(source: str) -> str:
    """Removes a trailing ``@pin`` from a source.

    Args:
        source: A class or module source, possibly pinned (``pkg.mod.Cls@v1``).

    Returns:
        The source without its pin.
    """
    return source.split("@", 1)[0]


def resolve_class(cls: type) -> str:
    """Returns the class source ``module.Class`` of a class.

    A class defined in the running script keeps the module ``__main__``; see
    :func:`resolve_importable_class` for a source that another process can import.

    Args:
        cls: A class defined at module level.

    Returns:
        The class source.

    Raises:
        ValueError: If the class is not a module-level attribute (defined in a function).
    """
    qualname = cls.__qualname__
    if "<locals>" in qualname or "." in qualname:
        raise ValueError(
            f"Class '{qualname}' of module '{cls.__module__}' is not defined at module "
            "level, so no other process can import it; move it to the top of its module."
        )
    return f"{cls.__module__}.{qualname}"


def resolve_importable_class(cls: type) -> str:
    """Returns a class source that a fresh process can import.

    Same as :func:`resolve_class`, except that ``__main__`` is replaced by the module
    source of the user's script (:data:`stepwire.constants.USER_MAIN_MODULE`, else the
    source of the running ``__main__``). Used for sources stored in ML Metadata.

    Args:
        cls: A class defined at module level.

    Returns:
        The importable class source; it still starts with ``__main__`` only when the
        running ``__main__`` has no file (interactive session).
    """
    source = resolve_class(cls)
    module_source, class_name = source.rsplit(".", 1)
    if module_source != _MAIN:
        return source
    main_source = constants.USER_MAIN_MODULE
    if main_source is None:
        try:
            main_source = get_module_source_from_module(sys.modules[_MAIN])
        except ValueError:
            return source
    return f"{main_source}.{class_name}"


def get_source_root_path() -> Path:
    """Returns the directory that user module sources are relative to.

    That is the directory of the running script (``python run.py``), the directory
    above the package of a module run with ``python -m pkg.run``, or the current
    working directory when ``__main__`` has no file.

    Returns:
        An absolute, resolved path.
    """
    main = sys.modules.get(_MAIN)
    main_file = getattr(main, "__file__", None)
    if main is None or main_file is None:
        return Path.cwd().resolve()
    path = Path(main_file).resolve()
    spec_name = _main_spec_name(main)
    if spec_name is not None:
        # `python -m pkg.run` (or `-m pkg`, running pkg/__main__.py): the root is the
        # sys.path entry the module was found in, one level up per name component.
        return path.parents[len(spec_name.split(".")) - 1]
    return path.parent


def _main_spec_name(main: ModuleType) -> str | None:
    """Returns the real module name of ``__main__`` if it was run with ``python -m``.

    For ``python -m pkg`` that is ``pkg.__main__``: the file that runs, not the package.
    """
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if isinstance(name, str) and name != _MAIN:
        return name
    return None


def get_module_source_from_module(module: ModuleType) -> str:
    """Returns the importable module source of a module.

    A module imported under its own name is importable by that name. For ``__main__``,
    the source is the script's path relative to the source root
    (:func:`get_source_root_path`) with ``.py`` dropped and separators turned into dots,
    e.g. ``run`` for ``python run.py`` or ``src.run`` for a root above ``src/``.

    Args:
        module: The module to resolve.

    Returns:
        The module source.

    Raises:
        ValueError: If ``__main__`` has no file, is not a ``.py`` file, or lies outside
            the source root.
    """
    if module.__name__ != _MAIN:
        return module.__name__
    spec_name = _main_spec_name(module)
    if spec_name is not None:
        return spec_name
    module_file = getattr(module, "__file__", None)
    if module_file is None:
        raise ValueError(
            "The running __main__ module has no file (interactive session or notebook), "
            "so steps defined in it cannot be imported by another process."
        )
    path = Path(module_file).resolve()
    root = get_source_root_path()
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ValueError(
            f"Module file '{path}' lies outside the source root '{root}'; run the script "
            "from inside the project."
        ) from None
    if relative.suffix != ".py":
        raise ValueError(f"Module file '{path}' is not a .py file.")
    parts = relative.with_suffix("").parts
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_main_module_source(module_source: str) -> bool:
    """Tells whether a module source names the file running as ``__main__``.

    Args:
        module_source: A module source, e.g. ``run``.

    Returns:
        True if importing ``module_source`` would load the running script again.
    """
    main = sys.modules.get(_MAIN)
    if main is None:
        return False
    try:
        return get_module_source_from_module(main) == module_source
    except ValueError:
        return False


def import_main_module(module_source: str) -> ModuleType:
    """Imports a module source, never importing the running script twice.

    Args:
        module_source: A module source, possibly pinned.

    Returns:
        ``sys.modules["__main__"]`` if the source names the running script, else the
        imported module.

    Raises:
        ImportError: If the module cannot be imported; the message names the source.
    """
    module_source = strip_pin(module_source)
    if module_source == _MAIN or is_main_module_source(module_source):
        return sys.modules[_MAIN]
    try:
        return importlib.import_module(module_source)
    except ImportError as e:
        raise ImportError(
            f"Cannot import module '{module_source}': {e}. Is the project root on "
            "sys.path (run from the project root or set PYTHONPATH)?",
            name=module_source,
        ) from e


@contextmanager
def _prepended_sys_path(path: str | None) -> Iterator[None]:
    if path is None or path in sys.path:
        yield
        return
    sys.path.insert(0, path)
    try:
        yield
    finally:
        with suppress(ValueError):
            sys.path.remove(path)


def load_source_path_class(source: str, import_path: str | None = None) -> type:
    """Loads the class a class source points to.

    Args:
        source: A class source ``module.Class``, possibly pinned; the pin is ignored.
        import_path: Optional directory put first on ``sys.path`` during the import.

    Returns:
        The class.

    Raises:
        ImportError: If the module cannot be imported.
        AttributeError: If the module has no attribute of that name.
        TypeError: If the attribute is not a class.
    """
    unpinned = strip_pin(source)
    if "." not in unpinned:
        raise ImportError(f"Source '{source}' is not of the form 'module.Class'.")
    module_source, class_name = unpinned.rsplit(".", 1)
    with _prepended_sys_path(os.fspath(import_path) if import_path else None):
        module = import_main_module(module_source)
    try:
        obj = getattr(module, class_name)
    except AttributeError:
        raise AttributeError(
            f"Module '{module_source}' has no attribute '{class_name}' (source '{source}')."
        ) from None
    if not isinstance(obj, type):
        raise TypeError(f"Source '{source}' points to {obj!r}, which is not a class.")
    return obj
