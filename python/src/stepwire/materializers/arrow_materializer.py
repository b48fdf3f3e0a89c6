"""Materializers for ``pyarrow.Table``: Parquet (the default) or the Arrow IPC file format.

Parquet is smaller; a column Parquet cannot give back as itself, even after the cast
back to the written schema that :mod:`stepwire.materializers.parquet_codec` does, is
refused when written, naming it (dictionaries of non-strings, month-day-nano
intervals, run-end encoded arrays). The Arrow IPC file format holds every Arrow type
exactly: choose :class:`ArrowIpcMaterializer` for such a table, with
``step.with_return_materializers(ArrowIpcMaterializer)``.

Only imported when a step's signature or value involves a pyarrow ``Table``.
"""

from __future__ import annotations

from typing import Any, ClassVar

# pyarrow ships no type information (see the report of the materializers change for
# the mypy override); "unused-ignore" keeps the line valid once the override exists.
import pyarrow as pa

from stepwire import io_utils
from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import DataArtifact
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import artifact_metadata
from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.materializer_registry import register_builtin

#: Data file of each format under the artifact URI.
FILENAMES = {"parquet": "data.parquet", "arrow-ipc": "data.arrow"}


def _running_versions() -> dict[str, str]:
    return {"pyarrow": str(pa.__version__)}


def table_properties(table: Any, fmt: str, libraries: dict[str, str]) -> dict[str, int | str]:
    """The ML Metadata properties of an Arrow table: size, bounded schema, versions.

    Args:
        table: The ``pyarrow.Table``.
        fmt: The format it is stored in.
        libraries: Library name to version, of what wrote it.

    Returns:
        Property name (without the ``stepwire_`` prefix) to value.
    """
    fields = [(field.name, str(field.type)) for field in table.schema]
    return {
        "format": fmt,
        "rows": table.num_rows,
        "columns": table.num_columns,
        "schema": artifact_metadata.bounded_pairs(fields, len(fields)),
        "libraries": artifact_metadata.libraries_json(libraries),
        "summary": f"Arrow table of {table.num_rows:,} rows \u00d7 {table.num_columns:,} columns",
    }


class ArrowMaterializer(BaseMaterializer):
    """Stores a ``pyarrow.Table`` as Parquet, with exactly its schema on reading.

    Reads either format, whichever the artifact holds; writes :attr:`FILE_FORMAT`.
    Each artifact records in ML Metadata its row and column count, a bounded schema
    and the pyarrow version that wrote it.

    Attributes:
        FILE_FORMAT: ``"parquet"`` or ``"arrow-ipc"``.
        COMPRESSION: Compression codec of the data (Parquet pages, IPC buffers).
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pa.Table,)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (DataArtifact,)
    # Registered by register_builtin below, after any user materializer of the type.
    SKIP_REGISTRATION = True
    FILE_FORMAT: ClassVar[str] = "parquet"
    COMPRESSION: ClassVar[str] = "zstd"

    def handle_input(self, data_type: type) -> Any:
        """Reads the stored table.

        Args:
            data_type: The type the consuming step declares.

        Returns:
            The table.

        Raises:
            ArtifactVersionError: If a newer pyarrow wrote it.
        """
        super().handle_input(data_type)
        details = artifact_metadata.read_metadata(
            self.artifact.uri, _running_versions(), formats=tuple(FILENAMES)
        )
        uri = io_utils.join(self.artifact.uri, FILENAMES[details["format"]])
        if details["format"] == "arrow-ipc":
            with io_utils.open_file(uri, "rb") as f:
                return pa.ipc.open_file(f).read_all()
        from stepwire.materializers import parquet_codec

        schema = parquet_codec.decode_schema(details["arrow_schema"])
        if "://" in uri:
            with io_utils.open_file(uri, "rb") as f:
                return parquet_codec.read(f, schema)
        return parquet_codec.read(uri, schema)

    def handle_return(self, data: Any) -> None:
        """Writes the table.

        Args:
            data: The table.

        Raises:
            StepInterfaceError: For a column Parquet cannot give back as itself.
        """
        super().handle_return(data)
        uri = self.artifact.uri
        fmt = self.FILE_FORMAT
        if fmt not in FILENAMES:
            raise StepInterfaceError(
                f"{type(self).__name__}.FILE_FORMAT is {fmt!r}; use one of {list(FILENAMES)}."
            )
        details: dict[str, Any] = {"compression": self.COMPRESSION}
        path = io_utils.join(uri, FILENAMES[fmt])
        if fmt == "parquet":
            from stepwire.materializers import parquet_codec

            try:
                parquet_codec.check_storable(
                    data.schema,
                    compression=self.COMPRESSION,
                    hint="Convert those columns, or store the table with ArrowIpcMaterializer.",
                )
            except StepInterfaceError as e:
                raise StepInterfaceError(
                    f"{type(self).__name__} cannot store this table: {e}"
                ) from e
            details["arrow_schema"] = parquet_codec.encode_schema(data.schema)
            with io_utils.write_whole(path) as f:
                parquet_codec.write(data, f, compression=self.COMPRESSION)
        else:
            options = pa.ipc.IpcWriteOptions(compression=self.COMPRESSION)
            with (
                io_utils.write_whole(path) as f,
                pa.ipc.new_file(f, data.schema, options=options) as w,
            ):
                w.write_table(data)
        libraries = _running_versions()
        artifact_metadata.write_metadata(uri, fmt, libraries, **details)
        artifact_metadata.record_properties(self.artifact, table_properties(data, fmt, libraries))


class ArrowIpcMaterializer(ArrowMaterializer):
    """Stores a ``pyarrow.Table`` in the Arrow IPC file format, which holds every Arrow type.

    Not registered for any type: choose it for a step's output with
    ``with_return_materializers(ArrowIpcMaterializer)``.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pa.Table,)
    SKIP_REGISTRATION = True
    FILE_FORMAT: ClassVar[str] = "arrow-ipc"


register_builtin(ArrowMaterializer)
