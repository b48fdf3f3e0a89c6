"""Materializers for ``polars.DataFrame``: Parquet (the default) or the Arrow IPC file format.

Written and read by polars itself (no pyarrow on the way). polars keeps its own schema
in both formats, so categoricals, enums, timezone-aware datetimes, durations,
decimals, lists, arrays and structs read back as themselves. A column of the
``Object`` dtype (arbitrary Python objects) cannot be stored and is refused by name,
and so is any column whose dtype a round trip of an empty frame with the same schema
shows would change.

Only imported when a step's signature or value involves a polars ``DataFrame``.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar, Literal

import polars as pl

from stepwire import io_utils
from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import DataArtifact
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import artifact_metadata
from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.materializer_registry import register_builtin

#: Data file of each format under the artifact URI.
FILENAMES = {"parquet": "data.parquet", "arrow-ipc": "data.arrow"}
#: The codecs both formats have.
Compression = Literal["zstd", "lz4", "uncompressed"]


def _running_versions() -> dict[str, str]:
    return {"polars": pl.__version__}


def _write(frame: pl.DataFrame, file: Any, fmt: str, compression: Compression) -> None:
    if fmt == "parquet":
        frame.write_parquet(file, compression=compression)
    else:
        frame.write_ipc(file, compression=compression)


def _read(source: Any, fmt: str) -> pl.DataFrame:
    if fmt == "parquet":
        return pl.read_parquet(source)
    return pl.read_ipc(source)


def _check_storable(frame: pl.DataFrame, fmt: str, compression: Compression) -> None:
    """Refuses Object columns, and any dtype an empty round trip does not keep."""
    objects = [name for name, dtype in frame.schema.items() if dtype == pl.Object]
    if objects:
        raise StepInterfaceError(
            f"columns {objects} have the polars Object dtype (arbitrary Python objects), "
            "which neither Parquet nor Arrow IPC can hold; convert them to a typed column."
        )
    buffer = io.BytesIO()
    empty = frame.clear()
    _write(empty, buffer, fmt, compression)
    buffer.seek(0)
    back = _read(buffer, fmt)
    if back.schema != empty.schema:
        changed = [
            f"column {name!r} ({dtype}) would read back as {back.schema.get(name)}"
            for name, dtype in empty.schema.items()
            if back.schema.get(name) != dtype
        ]
        raise StepInterfaceError("; ".join(changed or ["the schema would change"]) + ".")


class PolarsMaterializer(BaseMaterializer):
    """Stores a ``polars.DataFrame`` as Parquet.

    Reads either format, whichever the artifact holds; writes :attr:`FILE_FORMAT`.
    Exactly ``polars.DataFrame`` is stored (a ``LazyFrame`` must be collected first).
    Each artifact records in ML Metadata its row and column count, a bounded schema
    and the polars version that wrote it.

    Attributes:
        FILE_FORMAT: ``"parquet"`` or ``"arrow-ipc"``.
        COMPRESSION: Compression codec of the data.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pl.DataFrame,)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (DataArtifact,)
    # Registered by register_builtin below, after any user materializer of the type.
    SKIP_REGISTRATION = True
    FILE_FORMAT: ClassVar[str] = "parquet"
    COMPRESSION: ClassVar[Compression] = "zstd"

    def handle_input(self, data_type: type) -> Any:
        """Reads the stored frame.

        Args:
            data_type: The type the consuming step declares.

        Returns:
            The frame.

        Raises:
            ArtifactVersionError: If a newer polars wrote it.
        """
        super().handle_input(data_type)
        details = artifact_metadata.read_metadata(
            self.artifact.uri, _running_versions(), formats=tuple(FILENAMES)
        )
        fmt = details["format"]
        uri = io_utils.join(self.artifact.uri, FILENAMES[fmt])
        if "://" in uri:
            with io_utils.open_file(uri, "rb") as f:
                return _read(f, fmt)
        return _read(uri, fmt)

    def handle_return(self, data: Any) -> None:
        """Writes the frame.

        Args:
            data: The frame.

        Raises:
            StepInterfaceError: For a subclass, and for columns that cannot be stored
                as themselves, naming them.
        """
        super().handle_return(data)
        fmt = self.FILE_FORMAT
        if fmt not in FILENAMES:
            raise StepInterfaceError(
                f"{type(self).__name__}.FILE_FORMAT is {fmt!r}; use one of {list(FILENAMES)}."
            )
        if type(data) is not pl.DataFrame:
            raise StepInterfaceError(
                f"{type(self).__name__} stores exactly polars.DataFrame, not "
                f"{type(data).__qualname__}."
            )
        try:
            _check_storable(data, fmt, self.COMPRESSION)
        except StepInterfaceError as e:
            raise StepInterfaceError(f"{type(self).__name__} cannot store this frame: {e}") from e
        uri = self.artifact.uri
        with io_utils.write_whole(io_utils.join(uri, FILENAMES[fmt])) as f:
            _write(data, f, fmt, self.COMPRESSION)
        libraries = _running_versions()
        artifact_metadata.write_metadata(uri, fmt, libraries, compression=self.COMPRESSION)
        fields = [(name, str(dtype)) for name, dtype in data.schema.items()]
        rows, columns = data.shape
        artifact_metadata.record_properties(
            self.artifact,
            {
                "format": fmt,
                "rows": rows,
                "columns": columns,
                "schema": artifact_metadata.bounded_pairs(fields, len(fields)),
                "libraries": artifact_metadata.libraries_json(libraries),
                "summary": f"polars DataFrame of {rows:,} rows \u00d7 {columns:,} columns",
            },
        )


class PolarsIpcMaterializer(PolarsMaterializer):
    """Stores a ``polars.DataFrame`` in the Arrow IPC file format (faster to read back).

    Not registered for any type: choose it for a step's output with
    ``with_return_materializers(PolarsIpcMaterializer)``.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pl.DataFrame,)
    SKIP_REGISTRATION = True
    FILE_FORMAT: ClassVar[str] = "arrow-ipc"


register_builtin(PolarsMaterializer)
