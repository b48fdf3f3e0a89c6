"""File access under artifact URIs: local paths directly, remote URIs through fsspec.

fsspec is imported only for a remote URI (``s3://...``): a step on a local store
does not pay its import.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
import shutil
import stat
from collections.abc import Iterator
from typing import IO, Any

_FILE_SCHEME = "file://"


def _fs_and_path(uri: str) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def local_path(uri: str) -> str:
    """The path of a local URI (``file:///x`` or a plain path).

    Args:
        uri: A URI that :func:`is_remote` says is local.

    Returns:
        The path.
    """
    return uri.removeprefix(_FILE_SCHEME)


def is_remote(uri: str) -> bool:
    """Tells whether a URI names a non-local filesystem (``s3://...``, ``gs://...``).

    Args:
        uri: A local path or an fsspec URI.

    Returns:
        True for a URI with a scheme other than ``file``.
    """
    scheme, sep, _ = uri.partition("://")
    return bool(sep) and scheme != "file"


def is_inside(uri: str, root: str) -> bool:
    """Tells whether ``uri`` is ``root`` itself or below it, after resolving ``..``.

    Args:
        uri: A local path or URI.
        root: The folder it must be in (same scheme).

    Returns:
        True if it is inside.
    """
    if is_remote(uri) or is_remote(root):
        scheme, _, rest = uri.partition("://")
        root_scheme, _, root_rest = root.partition("://")
        if scheme != root_scheme:
            return False
        path, base = posixpath.normpath("/" + rest), posixpath.normpath("/" + root_rest)
        return path == base or path.startswith(base.rstrip("/") + "/")
    path, base = os.path.realpath(uri), os.path.realpath(root)
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def join(base: str, *parts: str) -> str:
    """Joins path parts below a local path or a URI.

    Args:
        base: A local path or an fsspec URI.
        *parts: Path components to append.

    Returns:
        The joined path; URIs are joined with ``/`` whatever the platform.
    """
    if "://" in base:
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def open_file(uri: str, mode: str = "rb") -> IO[Any]:
    """Opens a file under a local path or fsspec URI.

    Args:
        uri: The file to open.
        mode: A binary or text mode, as for :func:`open`.

    Returns:
        A file object usable as a context manager.
    """
    if not is_remote(uri):
        return open(local_path(uri), mode)
    import fsspec

    file: IO[Any] = fsspec.open(uri, mode).open()
    return file


def makedirs(uri: str) -> None:
    """Creates a directory and its parents; existing ones are fine.

    Args:
        uri: The directory to create.
    """
    if not is_remote(uri):
        os.makedirs(local_path(uri), exist_ok=True)
        return
    fs, path = _fs_and_path(uri)
    fs.makedirs(path, exist_ok=True)


def exists(uri: str) -> bool:
    """Tells whether a file or directory exists.

    Args:
        uri: The path to check.

    Returns:
        True if it exists.
    """
    if not is_remote(uri):
        return os.path.exists(local_path(uri))
    fs, path = _fs_and_path(uri)
    return bool(fs.exists(path))


def remove_tree(uri: str) -> None:
    """Removes a directory tree if it exists.

    Args:
        uri: The directory to remove.
    """
    if not is_remote(uri):
        path = local_path(uri)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        return
    fs, path = _fs_and_path(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


FILE_MODE = 0o640
"""Mode of the files stepwire writes (outputs, references, logs): never world-readable."""


@contextlib.contextmanager
def write_whole(uri: str, *, durable: bool = False) -> Iterator[IO[bytes]]:
    """Opens a file for writing such that it is whole or absent, never partial.

    On a local disk the ``with`` block writes a new file beside the target (mode
    :data:`FILE_MODE`), renamed over it when the block ends without an error, so a
    reader (or a later launch) never finds a partial file at the final path,
    whatever happens to the writer. An object store publishes an object whole when
    its upload completes, and only if the block ends without an error. The parent
    folder is created.

    Args:
        uri: The file to write.
        durable: Also ``fsync`` the file before the rename, so it survives a crash of
            the machine, not only of the process.

    Yields:
        The binary file to write to.
    """
    parent = posixpath.dirname(uri) if "://" in uri else os.path.dirname(uri)
    if parent:
        makedirs(parent)
    if is_remote(uri):
        fs, path = _fs_and_path(uri)
        remote = fs.open(path, "wb")
        try:
            yield remote
        except BaseException:
            # Closing an fsspec file commits it, even in a `with` that raised: a
            # failed write must be dropped instead, so no partial object appears.
            discard = getattr(remote, "discard", None)
            if callable(discard):
                discard()
            # Marked closed, so that garbage collection does not close (commit) it.
            with contextlib.suppress(AttributeError):
                remote.closed = True
            raise
        remote.close()
        return
    path = local_path(uri)
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as local:
            yield local
            if durable:
                local.flush()
                os.fsync(local.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_bytes(uri: str, data: bytes, *, durable: bool = False) -> None:
    """Writes bytes to a file, whole or not at all (see :func:`write_whole`).

    Args:
        uri: The file to write.
        data: The content.
        durable: Also ``fsync`` it before it takes the final name.
    """
    with write_whole(uri, durable=durable) as file:
        file.write(data)


def read_bytes(uri: str) -> bytes:
    """Reads a whole file.

    Args:
        uri: The file to read.

    Returns:
        Its content.
    """
    with open_file(uri, "rb") as f:
        data: bytes = f.read()
    return data


class NotRegularFileError(OSError):
    """A path that names a FIFO, a device, a folder: anything but a regular file."""


def read_regular_file(path: str, limit: int, *, follow_links: bool) -> bytes:
    """Reads at most ``limit`` bytes, plus one to tell, of a local regular file.

    Opened without blocking, so a FIFO cannot hang the reader, and refused unless
    it is a regular file, so ``/dev/zero`` cannot fill memory.

    Args:
        path: The file.
        limit: The most bytes the caller accepts.
        follow_links: Whether a symbolic link is followed (a secret volume is made
            of them) or refused (``OSError`` with ``errno.ELOOP``).

    Returns:
        Its first ``limit + 1`` bytes at most: more than ``limit`` means it is larger.

    Raises:
        OSError: If it cannot be opened.
        NotRegularFileError: If it is not a regular file.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(f"{path} is not a regular file")
        data: bytes = file.read(limit + 1)
    return data


def write_to_fd(fd: int, data: bytes) -> None:
    """Writes all of ``data`` to a file descriptor; a reader that has gone is ignored.

    For the copies of a step's output to whoever reads a process (a terminal, a
    pipe): ``os.write`` may write less than it is given, and a closed reader must
    not end the copy to the step's log.

    Args:
        fd: The descriptor.
        data: What to write.
    """
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view) :]
