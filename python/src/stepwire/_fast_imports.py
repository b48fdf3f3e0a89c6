"""Keeps the parts of TFX's imports that a step process never runs out of it.

Importing TFX's portable launcher costs about 0.7 s on a 2-core machine, and about
half of it is code a local step never runs:

* ``launcher`` imports every executor operator at module level:
  ``beam_executor_operator`` (Beam, and TFX telemetry) and
  ``docker_executor_operator`` (the docker client and requests);
* ``tfx.utils.telemetry_utils``, imported by TFX's ML Metadata helpers, imports
  ``googleapiclient.http`` (with oauth2client, httplib2, pyparsing and pyasn1) only
  to subclass its ``HttpRequest`` for Google Cloud clients;
* ``tfx/__init__`` imports ``unittest.mock`` (with ``unittest`` and ``asyncio``) only
  to put a ``MagicMock`` in ``sys.modules["tfx_bsl.arrow.sql_util"]`` when ``tfx_bsl``
  is missing.

A stepwire step only ever runs a ``PythonClassExecutableSpec``. :func:`install`,
called first thing in the step process, therefore registers light stand-ins:

* for the two operator modules, in ``sys.modules`` for good: they define the
  operator classes the launcher's registry names, and instantiating one raises
  :class:`SkippedOperatorError` with a clear message;
* for ``googleapiclient.http`` and ``unittest``/``unittest.mock``, only while
  ``tfx.utils.telemetry_utils`` and ``tfx/__init__`` are executed, and only when the
  real modules are not already imported. They are removed right after, so any
  later ``import unittest.mock`` or ``import googleapiclient.http`` gets the real
  module. What stays behind: ``telemetry_utils.TFXHttpRequest`` (used by TFX's
  Google Cloud clients only) derives from a stand-in that raises when
  instantiated, and ``sys.modules["tfx_bsl.arrow.sql_util"]`` is an empty module
  instead of a ``MagicMock``.

All of this leans on TFX internals (module names, what they import, the launcher's
operator registry), so it is only done for the ``ml-pipelines-sdk`` release it was
written for, :data:`WRITTEN_FOR_TFX`: with any other version installed, or none found,
:func:`install` installs nothing and logs one warning saying why.

Nothing on disk is changed. Set ``STEPWIRE_FULL_TFX_IMPORTS=1`` to import TFX's
real modules instead.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import types
from typing import TYPE_CHECKING, Any, NoReturn, cast

if TYPE_CHECKING:  # importlib.abc alone costs ~30 ms: the classes below are duck-typed
    import importlib.abc
    import importlib.machinery
    from collections.abc import Callable, Sequence

ENV_FULL_TFX_IMPORTS = "STEPWIRE_FULL_TFX_IMPORTS"
"""Environment variable that turns the stand-ins off (any value but empty or ``0``)."""

TFX_DISTRIBUTION = "ml-pipelines-sdk"
"""The distribution whose internals the stand-ins depend on."""

WRITTEN_FOR_TFX = "1.21.0"
"""The only :data:`TFX_DISTRIBUTION` version the stand-ins are installed for.

Compared as an exact string: any other release may import, name or register its
modules differently. Check the module docstring against the new release before
changing it.
"""

_logger = logging.getLogger(__name__)

_PORTABLE = "tfx.orchestration.portable"
_LAUNCHER = f"{_PORTABLE}.launcher"
_TELEMETRY = "tfx.utils.telemetry_utils"

STAND_IN_MARK = "__stepwire_stand_in__"
"""Attribute set on every stand-in module."""


class SkippedOperatorError(RuntimeError):
    """Something TFX did not import in a stepwire step process was used."""


def _raising_class(qualified: str, what: str, base: type = object) -> type:
    """A class that raises :class:`SkippedOperatorError` when instantiated."""
    module_name, _, class_name = qualified.rpartition(".")

    def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise SkippedOperatorError(
            f"{qualified} is not loaded in a stepwire step process: {what} Set "
            f"{ENV_FULL_TFX_IMPORTS}=1 to load the real module."
        )

    namespace: dict[str, Any] = {
        "__init__": refuse,
        "__module__": module_name,
        "__doc__": f"stepwire stand-in for {qualified}; raises when instantiated.",
    }
    return type(class_name, (base,), namespace)


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name, f"stepwire stand-in for {name}.")
    module.__dict__.update(attributes)
    module.__dict__[STAND_IN_MARK] = True
    return module


def _operator_module(name: str, class_name: str, needs: str) -> types.ModuleType:
    operator = _raising_class(
        f"{name}.{class_name}",
        f"stepwire steps run Python class executors only, and this operator (which needs "
        f"{needs}) is replaced by a stand-in to save start-up time.",
    )
    # Read by the launcher's operator registry at most.
    operator.SUPPORTED_EXECUTOR_SPEC_TYPE = []  # type: ignore[attr-defined]
    operator.SUPPORTED_PLATFORM_CONFIG_TYPE = []  # type: ignore[attr-defined]
    return _module(name, **{class_name: operator})


def _googleapiclient_http() -> dict[str, types.ModuleType]:
    request = _raising_class(
        "googleapiclient.http.HttpRequest",
        "TFX's telemetry subclasses it for Google Cloud clients, which a step never uses.",
    )
    return {"googleapiclient.http": _module("googleapiclient.http", HttpRequest=request)}


def _unittest_mock() -> dict[str, types.ModuleType]:
    def magic_mock(*args: Any, **kwargs: Any) -> types.ModuleType:
        # tfx/__init__ calls MagicMock() once, for sys.modules["tfx_bsl.arrow.sql_util"].
        return _module("tfx_bsl.arrow.sql_util")

    mock = _module("unittest.mock", MagicMock=magic_mock)
    return {"unittest": _module("unittest", mock=mock, __path__=[]), "unittest.mock": mock}


class _ScopedStandInLoader:
    """Runs a module's real loader with stand-ins present in ``sys.modules``."""

    def __init__(
        self, real: importlib.abc.Loader, stand_ins: Callable[[], dict[str, types.ModuleType]]
    ) -> None:
        self._real = real
        self._stand_ins = stand_ins

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # Only names nobody imported yet: a module that is already real stays real.
        added = {n: m for n, m in self._stand_ins().items() if n not in sys.modules}
        sys.modules.update(added)
        try:
            self._real.exec_module(module)
        finally:
            for name, stand_in in added.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]
            module.__loader__ = self._real
            if module.__spec__ is not None:
                module.__spec__.loader = self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _ScopedStandInFinder:
    """Gives chosen modules a loader that runs them with stand-ins present."""

    def __init__(self, targets: dict[str, Callable[[], dict[str, types.ModuleType]]]) -> None:
        self._targets = dict(targets)

    @property
    def targets(self) -> frozenset[str]:
        """The modules not imported through this finder yet."""
        return frozenset(self._targets)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        stand_ins = self._targets.pop(fullname, None)
        if stand_ins is None:
            return None
        if not self._targets and self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    loader = _ScopedStandInLoader(spec.loader, stand_ins)
                    spec.loader = cast("importlib.abc.Loader", loader)
                return spec
        return None


def _normalize(name: str) -> str:
    # The name key importlib.metadata files a distribution's metadata directory under.
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _metadata_version(info_dir: str) -> str | None:
    """The ``Version`` header of a metadata directory, as importlib.metadata reads it."""
    for file_name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info_dir, file_name), encoding="utf-8") as metadata:
                for line in metadata:  # The headers end at the first empty line.
                    if not line.strip("\r\n"):
                        break
                    key, colon, value = line.partition(":")
                    if colon and key.lower() == "version":
                        # Stripped as importlib.metadata's email parser strips it.
                        return value.lstrip(" \t").rstrip("\r\n")
            return None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            continue
    return None


def _version_on_sys_path(distribution: str) -> str | None:
    """The version importlib.metadata would find for ``distribution``, when it is plain.

    Plain is the usual layout: the first ``<name>-<version>.dist-info`` (or
    ``.egg-info``) directory in the first directory on ``sys.path`` that has one,
    with a ``METADATA`` (``PKG-INFO``) file. For anything else (a zip or an ``.egg``
    on ``sys.path``, an egg-info file, no metadata found) it returns None.
    """
    wanted = _normalize(distribution)
    for entry in sys.path:
        if not isinstance(entry, str) or entry.lower().endswith(".egg"):
            return None
        root = entry or "."
        try:
            children = os.listdir(root)
        except FileNotFoundError:  # E.g. pythonXY.zip, which is usually absent.
            continue
        except OSError:  # A zip archive, or unreadable: importlib.metadata knows better.
            return None
        for child in children:
            low = child.lower()
            name = low.rpartition(".")[0].partition("-")[0]
            if low.endswith((".dist-info", ".egg-info")) and _normalize(name) == wanted:
                return _metadata_version(os.path.join(root, child))
    return None


def _installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None if it is not installed."""
    # importlib.metadata is the authority, but importing it costs ~55 ms (email,
    # zipfile, ...; ~20 ms of it on top of what TFX imports anyway), a sizeable part of
    # what the stand-ins save. The usual layout is therefore read directly, in the
    # same order, and importlib.metadata only asked when that finds nothing.
    version = _version_on_sys_path(distribution)
    if version is not None:
        return version
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution) or None
    except importlib.metadata.PackageNotFoundError:
        return None


# Cached: one lookup per process, and one warning however often it is asked.
@functools.cache
def _version_mismatch() -> str | None:
    """Why the stand-ins do not fit the installed TFX, or None if they do."""
    version = _installed_version(TFX_DISTRIBUTION)
    if version == WRITTEN_FOR_TFX:  # Exact: "1.21" or "1.21.0.post1" is another release.
        return None
    # repr: shows stray blanks, and keeps the warning on one line whatever the metadata.
    found = "none is installed" if version is None else f"{version!r} is installed"
    reason = (
        f"stepwire imports TFX in full, without its import stand-ins (start-up ~0.4 s "
        f"slower): they were written for {TFX_DISTRIBUTION} {WRITTEN_FOR_TFX!r} but "
        f"{found}. Set {ENV_FULL_TFX_IMPORTS}=1 to silence this warning."
    )
    _logger.warning(reason)
    return reason


def enabled() -> bool:
    """Whether the stand-ins should be installed in this process.

    The first call that gets past ``STEPWIRE_FULL_TFX_IMPORTS`` looks up the
    installed ``ml-pipelines-sdk`` version and, if it is not
    :data:`WRITTEN_FOR_TFX`, logs one warning; later calls reuse the answer.

    Returns:
        False when ``STEPWIRE_FULL_TFX_IMPORTS`` asks for the real modules, or when
        the installed ``ml-pipelines-sdk`` is not :data:`WRITTEN_FOR_TFX`.
    """
    if os.environ.get(ENV_FULL_TFX_IMPORTS, "") not in ("", "0"):
        return False
    return _version_mismatch() is None


def install() -> list[str]:
    """Installs the stand-ins, unless TFX's launcher is already imported or they are off.

    Call it first thing in a step process, before anything imports TFX. Calling it
    again installs nothing more.

    Returns:
        The modules this call replaced by stand-ins or set up to be imported with
        them; empty when it installed nothing.
    """
    if _LAUNCHER in sys.modules or not enabled():
        return []
    installed = []
    operators = {
        f"{_PORTABLE}.beam_executor_operator": ("BeamExecutorOperator", "apache-beam"),
        f"{_PORTABLE}.docker_executor_operator": ("DockerExecutorOperator", "docker"),
    }
    for name, (class_name, needs) in operators.items():
        if name not in sys.modules:
            sys.modules[name] = _operator_module(name, class_name, needs)
            installed.append(name)
    # An earlier install() may have set up a module that is not imported yet.
    pending = {
        name
        for finder in sys.meta_path
        if isinstance(finder, _ScopedStandInFinder)
        for name in finder.targets
    }
    scoped = {
        name: factory
        for name, factory in (("tfx", _unittest_mock), (_TELEMETRY, _googleapiclient_http))
        if name not in sys.modules and name not in pending
    }
    if scoped:
        sys.meta_path.insert(0, _ScopedStandInFinder(scoped))
        installed += scoped
    return installed


__all__ = [
    "ENV_FULL_TFX_IMPORTS",
    "STAND_IN_MARK",
    "TFX_DISTRIBUTION",
    "WRITTEN_FOR_TFX",
    "SkippedOperatorError",
    "enabled",
    "install",
]
