"""TFX's file layer on fsspec: object stores as artifact stores, without TensorFlow.

TFX reads and writes artifacts through ``tfx.dsl.io.fileio``, which knows local paths
only unless TensorFlow's ``gfile`` is installed. :func:`register_artifact_filesystem`
registers :class:`FsspecFilesystem` for the scheme of a remote artifact store, so the
launcher and stepwire's materializers go through the same fsspec implementation
(``s3fs``, ``gcsfs``, ``adlfs``, or fsspec's own ``memory``).

Object stores have no folders: a "folder" exists once an object exists below it.
Removing a tree that holds nothing is therefore not an error (TFX removes the output
folders of a failed step, which an object store never had, and an error there would
replace the step's real exception).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from tfx.dsl.io import filesystem, filesystem_registry

from stepwire.exceptions import InfrastructureError

# Which extra of the stepwire package installs the fsspec implementation of a scheme.
_EXTRA_OF_SCHEME = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}

# Ahead of TensorFlow's gfile plugin (priority 0 in TFX) when both are present, so a
# step's outputs go through the same implementation as stepwire's own reads.
_PRIORITY = -10


@dataclass(frozen=True)
class FileStat:
    """What :meth:`FsspecFilesystem.stat` returns, in ``os.stat`` and gfile terms.

    Attributes:
        length: Size in bytes.
        st_size: The same, as ``os.stat_result`` names it.
        st_mtime: Modification time in seconds since the epoch, 0 if unknown.
        mtime_nsec: The same in nanoseconds, as TensorFlow's gfile names it.
        is_directory: Whether the path is a folder (a prefix in an object store).
    """

    length: int
    st_size: int
    st_mtime: float
    mtime_nsec: int
    is_directory: bool


def _fs(uri: Any) -> tuple[Any, str]:
    path = uri.decode() if isinstance(uri, bytes) else str(uri)
    fs, stripped = fsspec.core.url_to_fs(path)
    return fs, stripped


def _uri(like: Any, path: str) -> str:
    """A path fsspec returned, as a URI of the scheme TFX passed in (``like``)."""
    scheme = (like.decode() if isinstance(like, bytes) else str(like)).partition("://")[0]
    # fsspec strips `s3://` to `bucket/key` and `memory://` to `/key`: either way
    # the URI is the scheme, `://`, and the path without its leading slash.
    return f"{scheme}://{path.lstrip('/')}"


def _not_found(e: BaseException) -> Exception:
    error = filesystem.NotFoundError(str(e))
    error.__cause__ = e
    return error


def _mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        timestamp = getattr(value, "timestamp", None)
        if callable(timestamp):
            return float(timestamp())
    return 0.0


class FsspecFilesystem(filesystem.Filesystem):
    """A TFX ``Filesystem`` on fsspec, for the schemes it is registered for."""

    SUPPORTED_SCHEMES: list[str] = []  # noqa: RUF012 - TFX's own class attribute

    @staticmethod
    def open(name: Any, mode: str = "r") -> Any:
        """Opens a file (text or binary mode).

        Args:
            name: The file's URI.
            mode: As for :func:`open`.

        Returns:
            A file object.

        Raises:
            NotFoundError: If a file opened for reading does not exist.
        """
        fs, path = _fs(name)
        try:
            return fs.open(path, mode)
        except FileNotFoundError as e:
            raise _not_found(e) from e

    @staticmethod
    def copy(src: Any, dst: Any, overwrite: bool = False) -> None:
        """Copies one file.

        Args:
            src: The file to copy.
            dst: Where to.
            overwrite: Whether an existing ``dst`` may be replaced.

        Raises:
            OSError: If ``dst`` exists and ``overwrite`` is false.
            NotFoundError: If ``src`` does not exist.
        """
        src_fs, src_path = _fs(src)
        dst_fs, dst_path = _fs(dst)
        if not overwrite and dst_fs.exists(dst_path):
            raise OSError(f"Destination file {dst!r} already exists and overwrite is false.")
        try:
            if src_fs is dst_fs:
                src_fs.copy(src_path, dst_path)
                return
            with src_fs.open(src_path, "rb") as reader, dst_fs.open(dst_path, "wb") as writer:
                for chunk in iter(lambda: reader.read(1 << 20), b""):
                    writer.write(chunk)
        except FileNotFoundError as e:
            raise _not_found(e) from e

    @staticmethod
    def exists(path: Any) -> bool:
        """Tells whether a file or folder exists.

        Args:
            path: The URI.

        Returns:
            True if it does.
        """
        fs, stripped = _fs(path)
        return bool(fs.exists(stripped))

    @staticmethod
    def glob(pattern: Any) -> list[Any]:
        """Lists what matches a pattern.

        Args:
            pattern: A URI with ``*`` and ``?``.

        Returns:
            The matching URIs.
        """
        fs, stripped = _fs(pattern)
        return [_uri(pattern, p) for p in fs.glob(stripped)]

    @staticmethod
    def isdir(path: Any) -> bool:
        """Tells whether a path is a folder (a prefix holding objects).

        Args:
            path: The URI.

        Returns:
            True if it is.
        """
        fs, stripped = _fs(path)
        return bool(fs.isdir(stripped))

    @staticmethod
    def listdir(path: Any) -> list[Any]:
        """Lists the names in a folder.

        Args:
            path: The folder's URI.

        Returns:
            The entries' base names.

        Raises:
            NotFoundError: If the folder does not exist.
        """
        fs, stripped = _fs(path)
        try:
            entries = fs.ls(stripped, detail=False)
        except FileNotFoundError as e:
            raise _not_found(e) from e
        return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    @staticmethod
    def makedirs(path: Any) -> None:
        """Creates a folder and its parents; existing ones are fine.

        Args:
            path: The folder's URI.
        """
        fs, stripped = _fs(path)
        fs.makedirs(stripped, exist_ok=True)

    @staticmethod
    def mkdir(path: Any) -> None:
        """Creates one folder.

        Args:
            path: The folder's URI.

        Raises:
            NotFoundError: If its parent does not exist.
        """
        fs, stripped = _fs(path)
        try:
            fs.mkdir(stripped, create_parents=False)
        except FileNotFoundError as e:
            raise _not_found(e) from e

    @staticmethod
    def remove(path: Any) -> None:
        """Removes one file.

        Args:
            path: The file's URI.

        Raises:
            NotFoundError: If it does not exist.
        """
        fs, stripped = _fs(path)
        try:
            fs.rm_file(stripped)
        except FileNotFoundError as e:
            raise _not_found(e) from e

    @staticmethod
    def rename(src: Any, dst: Any, overwrite: bool = False) -> None:
        """Moves a file or folder (a copy then a delete in an object store).

        Args:
            src: What to move.
            dst: Where to.
            overwrite: Whether an existing ``dst`` may be replaced.

        Raises:
            OSError: If ``dst`` exists and ``overwrite`` is false.
            NotFoundError: If ``src`` does not exist.
        """
        fs, src_path = _fs(src)
        _, dst_path = _fs(dst)
        if not overwrite and fs.exists(dst_path):
            raise OSError(f"Destination path {dst!r} already exists and overwrite is false.")
        try:
            fs.mv(src_path, dst_path, recursive=True)
        except FileNotFoundError as e:
            raise _not_found(e) from e

    @staticmethod
    def rmtree(path: Any) -> None:
        """Removes a folder and everything below it; one that holds nothing is fine.

        Args:
            path: The folder's URI.
        """
        fs, stripped = _fs(path)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(stripped, recursive=True)

    @staticmethod
    def stat(path: Any) -> FileStat:
        """Describes a file or folder.

        Args:
            path: The URI.

        Returns:
            Its size, modification time and kind.

        Raises:
            NotFoundError: If it does not exist.
        """
        fs, stripped = _fs(path)
        try:
            info = fs.info(stripped)
        except FileNotFoundError as e:
            raise _not_found(e) from e
        size = int(info.get("size") or 0)
        mtime = _mtime(info)
        return FileStat(size, size, mtime, int(mtime * 1e9), info.get("type") == "directory")

    @staticmethod
    def walk(
        top: Any,
        topdown: bool = True,
        onerror: Callable[..., None] | None = None,
    ) -> Iterable[tuple[Any, list[Any], list[Any]]]:
        """Walks a folder tree as :func:`os.walk` does.

        Args:
            top: The folder's URI.
            topdown: Whether a folder comes before the folders below it.
            onerror: Called with the error if listing fails.

        Yields:
            ``(folder URI, subfolder names, file names)``.
        """
        fs, stripped = _fs(top)
        walked: Iterator[tuple[str, list[str], list[str]]] = fs.walk(
            stripped, topdown=topdown, on_error=onerror if onerror else "omit"
        )
        for root, dirs, files in walked:
            yield _uri(top, root), dirs, files


def scheme_of(uri: str) -> str | None:
    """The scheme of a URI (``s3`` of ``s3://bucket/key``), None for a local path.

    Args:
        uri: A path or URI.

    Returns:
        The scheme, or None for a local path or ``file://``.
    """
    scheme, sep, _ = uri.partition("://")
    if not sep or scheme == "file":
        return None
    return scheme


def register_artifact_filesystem(uri: str) -> None:
    """Lets TFX's file layer read and write below ``uri`` through fsspec.

    A no-op for a local path. Registering the same scheme again is a no-op too.

    Args:
        uri: The artifact store's path or URI.

    Raises:
        InfrastructureError: If fsspec has no implementation for the scheme, or the
            package that provides it is not installed; the message names the extra.
    """
    scheme = scheme_of(uri)
    if scheme is None:
        return
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as e:
        extra = _EXTRA_OF_SCHEME.get(scheme)
        hint = f"install stepwire[{extra}]" if extra else f"install fsspec's {scheme!r} package"
        raise InfrastructureError(
            f"the artifact store {uri!r} needs a filesystem for {scheme}:// that is "
            f"not installed; {hint} ({' '.join(str(e).split())})"
        ) from e
    except ValueError as e:
        raise InfrastructureError(
            f"the artifact store {uri!r} has the scheme {scheme}://, which fsspec does not know"
        ) from e
    prefix = f"{scheme}://"
    if prefix in FsspecFilesystem.SUPPORTED_SCHEMES:
        return
    FsspecFilesystem.SUPPORTED_SCHEMES.append(prefix)
    # The registry reads SUPPORTED_SCHEMES when a class is registered: register it
    # again for each new scheme (the registry keeps one entry per scheme).
    filesystem_registry.DEFAULT_FILESYSTEM_REGISTRY.register(FsspecFilesystem, priority=_PRIORITY)


# Schemes whose first path component is a bucket (or container) that must exist:
# TFX would otherwise create it on the first `makedirs`, wherever credentials allow.
_BUCKET_SCHEMES = frozenset(_EXTRA_OF_SCHEME)


def check_artifact_store(uri: str) -> None:
    """Makes sure a step can write below ``uri`` before it is launched.

    Registers the fsspec filesystem for a remote store, then asks an object store
    for its bucket once: a missing package, an unknown scheme, an endpoint that
    cannot be reached, refused credentials or a missing bucket are one line now,
    instead of an error in the middle of the step.

    Args:
        uri: The artifact store's path or URI.

    Raises:
        InfrastructureError: If the store cannot be used; the message names the
            scheme, the bucket or the endpoint, and the extra to install.
    """
    register_artifact_filesystem(uri)
    scheme = scheme_of(uri)
    if scheme not in _BUCKET_SCHEMES:
        return
    fs, path = fsspec.core.url_to_fs(uri)
    bucket = path.split("/", 1)[0]
    try:
        fs.info(bucket)
    except FileNotFoundError:
        raise InfrastructureError(
            f"the artifact store {uri!r} cannot be used: its bucket {bucket!r} does not "
            f"exist{_endpoint_phrase(fs)}"
        ) from None
    except Exception as e:
        raise InfrastructureError(
            f"the artifact store {uri!r} cannot be used{_endpoint_phrase(fs)}: "
            f"{type(e).__name__}: {' '.join(str(e).split())}"
        ) from None


def _endpoint_phrase(fs: Any) -> str:
    """`` at <endpoint>`` when the filesystem says where it connects."""
    kwargs = getattr(fs, "client_kwargs", None) or {}
    endpoint = kwargs.get("endpoint_url") or getattr(fs, "endpoint_url", None)
    if not endpoint:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") if fs.protocol[0] == "s3" else None
    return f" at {endpoint}" if endpoint else ""
