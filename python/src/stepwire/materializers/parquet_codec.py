"""Arrow tables in Parquet files that read back with exactly the schema they were written with.

Parquet cannot hold every Arrow type as itself: ``timestamp[s]`` reads back as
``timestamp[ms]``, ``date64`` as ``date32``, a dictionary of integers as plain
integers, list and map children are renamed, and some types (month-day-nano
intervals, run-end encoded arrays) cannot be written at all. This module:

* checks, before anything is written, that every column of a schema either comes back
  as itself or can be cast back to it exactly (a round trip of an empty table with
  that schema, which costs a millisecond, not a copy of the data); a column that
  cannot is an error naming it;
* writes the original schema (Arrow's IPC form, base64) into the caller's metadata,
  and casts a table read back to it.

Imported by the pandas and pyarrow materializers when they write or read, never when
they are only registered: pyarrow's import is the cost of using them.
"""

from __future__ import annotations

import base64
import io
from typing import IO, Any

# pyarrow ships no type information (see the report of the materializers change for
# the mypy override); "unused-ignore" keeps the line valid once the override exists.
import pyarrow as pa
import pyarrow.parquet as pq

from stepwire.exceptions import StepInterfaceError

#: Compression of the data pages: zstd at its default level writes about as fast as
#: snappy (pyarrow's default) and makes smaller files.
DEFAULT_COMPRESSION = "zstd"


def encode_schema(schema: Any) -> str:
    """The schema in Arrow's IPC form, base64, for ``metadata.json``.

    Args:
        schema: A ``pyarrow.Schema``.

    Returns:
        ASCII text.
    """
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> Any:
    """The schema :func:`encode_schema` wrote.

    Args:
        text: The base64 text.

    Returns:
        The ``pyarrow.Schema``.
    """
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text, validate=True)))


def restore(table: Any, schema: Any) -> Any:
    """Casts a table read from Parquet back to the schema it was written with.

    Args:
        table: The ``pyarrow.Table`` as Parquet returned it.
        schema: The schema it had when written.

    Returns:
        The table with exactly ``schema`` (types, names, field and schema metadata).

    Raises:
        pyarrow.ArrowInvalid: If a column cannot be cast back (not a file this module
            wrote for that schema).
    """
    if table.schema.equals(schema, check_metadata=True):
        return table
    columns = [
        column if column.type.equals(field.type) else column.cast(field.type)
        for column, field in zip(table.columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _round_trip_problem(schema: Any, compression: str) -> str | None:
    """Why an empty table of ``schema`` does not come back as itself, or None."""
    buffer = io.BytesIO()
    try:
        write(schema.empty_table(), buffer, compression=compression)
        buffer.seek(0)
        back = pq.read_table(buffer)
    except (pa.ArrowException, ValueError, TypeError) as e:
        types = ", ".join(str(field.type) for field in schema)
        return f"Parquet cannot hold {types} ({e})"
    if len(back.schema) != len(schema):
        return f"Parquet reads back {len(back.schema)} columns instead of {len(schema)}"
    try:
        restored = restore(back, schema)
    except (pa.ArrowException, ValueError, TypeError):
        changed = [
            f"{field.type} would read back as {read.type}"
            for field, read in zip(schema, back.schema, strict=True)
            if not field.type.equals(read.type)
        ]
        return "; ".join(changed) or "Parquet changes it"
    if not restored.schema.equals(schema, check_metadata=True):
        return "Parquet changes its type or metadata"
    return None


def check_storable(schema: Any, *, compression: str = DEFAULT_COMPRESSION, hint: str) -> None:
    """Refuses a schema that Parquet would not give back exactly.

    Args:
        schema: The ``pyarrow.Schema`` to write.
        compression: The compression the data will be written with.
        hint: The sentence of the message that says what the user can do instead.

    Raises:
        StepInterfaceError: Naming every column that would change or cannot be
            written, and what would happen to it.
    """
    if _round_trip_problem(schema, compression) is None:
        return
    # Only now column by column, to name the culprits: one probe per column would
    # cost a second for a table of a few thousand columns.
    problems = []
    for field in schema:
        problem = _round_trip_problem(pa.schema([field]), compression)
        if problem is not None:
            problems.append(f"column {field.name!r}: {problem}")
    if not problems:
        problems.append(f"the schema's metadata does not survive: {schema.metadata!r}")
    raise StepInterfaceError("; ".join(problems) + f". {hint}")


def write(table: Any, file: IO[bytes], *, compression: str = DEFAULT_COMPRESSION) -> None:
    """Writes a table as Parquet; call :func:`check_storable` on its schema first.

    Args:
        table: The ``pyarrow.Table``.
        file: A binary file open for writing.
        compression: Parquet compression codec.
    """
    pq.write_table(
        table, file, compression=compression, use_dictionary=_dictionary_columns(table.schema)
    )


def _dictionary_columns(schema: Any) -> list[str]:
    """The columns worth dictionary-encoding: text, bytes and dictionaries.

    pyarrow tries a dictionary for every column by default and falls back once it
    grows too large, which for numbers is mostly wasted work: on a million rows of
    floats and integers, encoding only these columns writes a quarter faster and a
    few percent smaller.
    """
    kinds = (
        pa.types.is_string,
        pa.types.is_large_string,
        pa.types.is_binary,
        pa.types.is_large_binary,
        pa.types.is_dictionary,
    )
    return [field.name for field in schema if any(kind(field.type) for kind in kinds)]


def read(source: str | IO[bytes], schema: Any) -> Any:
    """Reads a Parquet file written by :func:`write`, with its original schema.

    Args:
        source: A local path (read natively) or a binary file.
        schema: The schema recorded when it was written.

    Returns:
        The ``pyarrow.Table``.
    """
    return restore(pq.read_table(source), schema)
