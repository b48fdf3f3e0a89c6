"""The by-reference form's storage: content-addressed files in the artifact store."""

from __future__ import annotations

import errno
import hashlib

from stepwire import io_utils
from stepwire.codec_runtime import ReferenceTooLargeError
from stepwire.entrypoints.codec import MAX_PAYLOAD_BYTES

REFERENCES_FOLDER = ".references"
"""Folder of the artifact store that holds by-reference payloads, by sha256."""


class ArtifactStoreReferences:
    """Stores and reads by-reference payloads under one artifact store root.

    Writing is content-addressed (``<root>/.references/<sha256>``), so the same
    payload is stored once however many steps and runs use it. Reading accepts
    only URIs inside that folder, so a command line cannot make a step read an
    arbitrary file.
    """

    def __init__(self, artifact_store_root: str) -> None:
        """Creates the store.

        Args:
            artifact_store_root: A local path or fsspec URI of the artifact store.
        """
        self.folder = io_utils.join(artifact_store_root, REFERENCES_FOLDER)

    def put(self, payload: bytes, sha256_hex: str) -> str:
        """Stores a payload unless a whole copy of it is already there.

        A file already at the payload's name is trusted only if its bytes hash to
        that name; anything else there (a partial write of an older version, a
        corrupted copy) is replaced. The write itself is whole or nothing
        (:func:`stepwire.io_utils.write_bytes`), so two builders of the same
        payload never leave a mixed file.

        Args:
            payload: The bytes.
            sha256_hex: Their SHA-256, which names the file.

        Returns:
            The URI to put in the command line.
        """
        uri = io_utils.join(self.folder, sha256_hex)
        if not self._holds(uri, sha256_hex):
            io_utils.write_bytes(uri, payload, durable=True)
        return uri

    def _holds(self, uri: str, sha256_hex: str) -> bool:
        """Whether ``uri`` holds exactly the payload of that SHA-256."""
        if not io_utils.exists(uri):
            return False
        try:
            existing = self.read(uri)
        except (OSError, ValueError):
            return False
        return hashlib.sha256(existing).hexdigest() == sha256_hex

    def read(self, uri: str) -> bytes:
        """Reads a payload; the codec verifies its size and sha256.

        Args:
            uri: A URI taken from a command line.

        Returns:
            The stored bytes.

        Raises:
            PermissionError: If the URI is outside this store's references folder, or
                (on a local disk) a link, a FIFO or anything but a regular file.
            ReferenceTooLargeError: If it holds more than the contract's maximum payload.
        """
        name = uri.removeprefix(self.folder)
        if name == uri or not name.startswith(("/", "\\")) or not name[1:].isalnum():
            raise PermissionError(f"{uri!r} is not inside the artifact store's {self.folder!r}")
        if not io_utils.is_remote(uri):
            return _read_local_regular_file(io_utils.local_path(uri), uri)
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
        # Refuse an oversized object before reading it into memory.
        size = int(fs.size(path))
        if size > MAX_PAYLOAD_BYTES:
            raise ReferenceTooLargeError(
                f"{uri!r} holds {size} bytes, above the {MAX_PAYLOAD_BYTES} allowed"
            )
        return io_utils.read_bytes(uri)


def _read_local_regular_file(path: str, uri: str) -> bytes:
    """Reads at most the maximum payload (plus one byte, to tell) of a regular file.

    Opened without following a link and without blocking, so a link to a file
    elsewhere or to ``/dev/zero`` is refused, and a FIFO cannot hang the step.
    """
    try:
        data = io_utils.read_regular_file(path, MAX_PAYLOAD_BYTES, follow_links=False)
    except io_utils.NotRegularFileError:
        raise PermissionError(f"{uri!r} is not a regular file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise PermissionError(f"{uri!r} is a link; references are regular files") from None
        raise
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ReferenceTooLargeError(
            f"{uri!r} holds more than the {MAX_PAYLOAD_BYTES} bytes allowed"
        )
    return data
