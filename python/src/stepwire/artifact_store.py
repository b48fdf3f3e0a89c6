"""The artifact store: the root under which step outputs are written."""

from __future__ import annotations

from dataclasses import dataclass

from stepwire import io_utils


@dataclass(frozen=True)
class ArtifactStore:
    """Where a stack's artifacts live: a local directory or an fsspec URI.

    The path is the pipeline root of compiled pipelines; TFX lays outputs out below it
    as ``<pipeline root>/<step>/<output>/<execution id>``.

    Attributes:
        path: Absolute local path or fsspec URI (``s3://bucket/prefix``).
    """

    path: str

    @property
    def is_remote(self) -> bool:
        """Whether the store is on a non-local filesystem.

        Returns:
            True for a URI with a scheme other than ``file``.
        """
        return io_utils.is_remote(self.path)
