"""Materializer for pandas ``DataFrame`` and ``Series``: Parquet through pyarrow, no pickle.

A value reads back equal to what was written, with the same dtypes (categoricals,
timezone-aware datetimes, nullable and string dtypes included), index (named,
multi-level, range), column labels and order, ``attrs``, and a ``DatetimeIndex``'s
``freq``. Where Parquet and pyarrow would change something, this module either puts it
back, from what it records in ``metadata.json``, or refuses the value when it is
written, naming the column:

* put back: the time unit of ``datetime64[s]``, ``time32[s]``-like columns (Parquet
  has no seconds), object columns of strings (pyarrow reads them as pandas' ``str``
  dtype), the storage of ``string[python]`` columns, an index's ``freq``;
* refused: object columns holding anything but strings, bytes or dates (a mix of
  types, lists, dicts, numbers), missing values other than ``None`` in an object
  column, categoricals of non-strings (Parquet keeps their values, not the
  categories), complex numbers, sparse columns, duplicate column labels, and anything
  else that a round trip of the first rows shows would not come back identical.

Only imported when a step's signature or value involves a pandas type (see
:mod:`stepwire.materializers.materializer_registry`); pyarrow only when a value is
written or read.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, ClassVar

import numpy as np

# pandas ships no type information (see the report of the materializers change for
# the mypy override); "unused-ignore" keeps the line valid once the override exists.
import pandas as pd

from stepwire import io_utils
from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import DataArtifact
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import artifact_metadata, value_codec
from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.materializer_registry import register_builtin

#: File holding the data under the artifact URI.
DEFAULT_FILENAME = "data.parquet"
#: Column label a Series is stored under; its own name is kept in ``metadata.json``.
_SERIES_COLUMN = "series"
#: What an object column may hold: the kinds pyarrow stores as one Arrow type that
#: reads back as the same Python objects.
_OBJECT_KINDS = frozenset({"string", "bytes", "date", "empty"})
_EXTRA = "pandas"


def _running_versions() -> dict[str, str]:
    pa = artifact_metadata.require("pyarrow", _EXTRA)
    return {"pandas": str(pd.__version__), "pyarrow": str(pa.__version__)}


def _column(frame: Any, position: int) -> str:
    """Names a column in messages; the one column of a stored Series is the Series."""
    label = frame.columns[position]
    return "the Series" if frame.shape[1] == 1 and label == _SERIES_COLUMN else f"column {label!r}"


def _check_object_values(values: Any, what: str) -> None:
    """Refuses an object column (or index) whose values would not read back the same."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _OBJECT_KINDS:
        held = sorted({type(v).__qualname__ for v in values if v is not None})
        raise StepInterfaceError(
            f"{what} has dtype object holding {', '.join(held[:5])} values "
            f"({kind}), which Parquet would not give back as the same Python objects; give "
            "it a dtype (astype('str'), astype('Int64'), pd.to_datetime, ...) or keep only "
            "strings, bytes or dates in it."
        )
    missing = np.asarray(values, dtype=object)[np.asarray(pd.isna(values), dtype=bool)]
    if any(value is not None for value in missing):
        raise StepInterfaceError(
            f"{what} has dtype object with missing values other than None (NaN or NA), "
            "which would read back as None; use None, or astype('str') for text."
        )


def _dtype_plan(dtype: Any) -> dict[str, Any] | None:
    """What to put back for a column or index of this dtype after pyarrow reads it."""
    if pd.api.types.is_object_dtype(dtype):
        return {"object": True}
    if isinstance(dtype, pd.StringDtype):
        return {"string": dtype.storage, "na": "NA" if dtype.na_value is pd.NA else "nan"}
    return None


def _string_dtype(plan: dict[str, Any]) -> Any:
    return pd.StringDtype(plan["string"], na_value=pd.NA if plan["na"] == "NA" else np.nan)


def _object_array(column: Any) -> Any:
    # Through Python objects: to_pandas would make pandas' str dtype of them, and
    # turning that back into objects would make None into NaN.
    values = np.empty(len(column), dtype=object)
    values[:] = column.to_pylist()
    return values


def _encode(frame: Any) -> tuple[Any, dict[str, Any]]:
    """The Arrow table of a frame, and what ``_decode`` needs to give it back exactly."""
    pa = artifact_metadata.require("pyarrow", _EXTRA)
    if frame.columns.has_duplicates:
        duplicated = frame.columns[frame.columns.duplicated()].unique()
        raise StepInterfaceError(
            f"column labels {list(duplicated)} are used more than once; "
            "Parquet needs unique column names."
        )
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if pd.api.types.is_object_dtype(column.dtype):
            _check_object_values(column, _column(frame, position))
    if frame.index.nlevels == 1 and pd.api.types.is_object_dtype(frame.index.dtype):
        name = frame.index.name
        _check_object_values(frame.index, "the index" + ("" if name is None else f" {name!r}"))
    try:
        with warnings.catch_warnings(record=True) as caught:
            # pyarrow warns, and goes on, where it changes something (column labels of
            # mixed types become strings, attrs that are not JSON are dropped).
            warnings.simplefilter("always")
            table = pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise StepInterfaceError(
            f"pyarrow cannot convert this DataFrame for Parquet: {_failing_column(frame)}{e}"
        ) from e
    if caught:
        raise StepInterfaceError(
            "pyarrow would change it: " + " ".join(str(w.message) for w in caught)
        )
    index_fields = [
        entry if isinstance(entry, str) else None
        for entry in table.schema.pandas_metadata["index_columns"]
    ]
    index_plan = None
    if frame.index.nlevels == 1 and index_fields[0] is not None:
        index_plan = _dtype_plan(frame.index.dtype)
    # A PeriodIndex has its freq in its dtype, which Parquet keeps.
    timed = isinstance(frame.index, (pd.DatetimeIndex, pd.TimedeltaIndex))
    freq = frame.index.freqstr if timed else None
    details = {
        "columns": [_dtype_plan(dtype) for dtype in frame.dtypes],
        "index": {"field": index_fields[0], "plan": index_plan} if index_plan else None,
        "freq": freq,
    }
    return table, details


def _failing_column(frame: Any) -> str:
    """``"column 'x': "`` for the first column pyarrow refuses on its own, else ``""``."""
    pa = artifact_metadata.require("pyarrow", _EXTRA)
    for position in range(frame.shape[1]):
        try:
            pa.Table.from_pandas(frame.iloc[:, [position]], preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError):
            return f"{_column(frame, position)}: "
    return ""


def _decode(table: Any, details: dict[str, Any]) -> Any:
    """The frame ``_encode`` turned into ``table``."""
    frame = table.to_pandas()
    for position, plan in enumerate(details["columns"]):
        if plan is None:
            continue
        if plan.get("object"):
            # A Series of explicit dtype: a bare object array would be inferred as str.
            values = _object_array(table.column(position))
            frame.isetitem(position, pd.Series(values, index=frame.index, dtype=object))
        elif frame.dtypes.iloc[position] != _string_dtype(plan):
            frame.isetitem(position, frame.iloc[:, position].astype(_string_dtype(plan)))
    index = details.get("index")
    if index is not None:
        plan = index["plan"]
        if plan.get("object"):
            values = _object_array(table.column(index["field"]))
            frame.index = pd.Index(values, dtype=object, name=frame.index.name)
        elif frame.index.dtype != _string_dtype(plan):
            frame.index = frame.index.astype(_string_dtype(plan))
    if details.get("freq"):
        index_type = type(frame.index)  # DatetimeIndex or TimedeltaIndex, as written
        frame.index = index_type(frame.index, freq=details["freq"])
    return frame


def _series_name(series: Any) -> str:
    try:
        return value_codec.dumps(series.name)
    except value_codec.UnsupportedValueError as e:
        raise StepInterfaceError(f"its name {series.name!r} cannot be kept: {e}") from e


def _as_frame(data: Any) -> Any:
    return data.to_frame(name=_SERIES_COLUMN) if isinstance(data, pd.Series) else data


def _from_frame(frame: Any, details: dict[str, Any]) -> Any:
    if details["kind"] != "Series":
        return frame
    series = frame.iloc[:, 0]
    series.name = value_codec.loads(details["series_name"])
    return series


def _differences(expected: Any, actual: Any) -> list[str]:
    """What differs between a value and its round trip, by column where possible."""
    testing = pd.testing
    problems = []
    expected_frame, actual_frame = _as_frame(expected), _as_frame(actual)
    if expected_frame.shape[1] != actual_frame.shape[1]:
        return [f"{actual_frame.shape[1]} columns instead of {expected_frame.shape[1]}"]
    for position in range(expected_frame.shape[1]):
        want, got = expected_frame.iloc[:, position], actual_frame.iloc[:, position]
        label = _column(expected_frame, position)
        if want.dtype != got.dtype:
            problems.append(f"{label}: {want.dtype} would read back as {got.dtype}")
            continue
        try:
            testing.assert_series_equal(
                got, want, check_exact=True, check_index=False, check_flags=False
            )
        except AssertionError:
            problems.append(f"{label}: its values would change")
    checks = (
        ("the index", expected.index, actual.index),
        ("the column labels", expected_frame.columns, actual_frame.columns),
    )
    for what, want_index, got_index in checks:
        try:
            testing.assert_index_equal(got_index, want_index, exact="equiv", check_exact=True)
        except AssertionError:
            problems.append(f"{what} would read back as {got_index[:3]!r}...")
        else:
            if getattr(want_index, "freq", None) != getattr(got_index, "freq", None):
                problems.append(f"{what} would lose its freq {want_index.freqstr!r}")
    if expected.attrs != actual.attrs:
        problems.append(f"attrs would read back as {actual.attrs!r}")
    if expected.flags.allows_duplicate_labels != actual.flags.allows_duplicate_labels:
        problems.append("flags.allows_duplicate_labels would be reset")
    if isinstance(expected, pd.Series) and expected.name != actual.name:
        problems.append(f"the name would read back as {actual.name!r}")
    return problems


class PandasMaterializer(BaseMaterializer):
    """Stores a ``pandas.DataFrame`` or ``pandas.Series`` as one Parquet file.

    What is kept and what is refused is in the module docstring. Exactly these two
    types are stored: a subclass would read back as its base class, so it is refused.
    Each artifact records in ML Metadata its row and column count, a bounded schema
    (column names and dtypes) and the pandas and pyarrow versions that wrote it.

    Attributes:
        COMPRESSION: Parquet compression codec of the data.
        PROBE_ROWS: How many leading rows are round-tripped in memory before writing,
            to refuse what would not come back identical.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pd.DataFrame, pd.Series)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (DataArtifact,)
    # Registered by register_builtin below, after any user materializer of these types.
    SKIP_REGISTRATION = True
    COMPRESSION: ClassVar[str] = "zstd"
    PROBE_ROWS: ClassVar[int] = 1000

    def handle_input(self, data_type: type) -> Any:
        """Reads the stored DataFrame or Series.

        Args:
            data_type: The type the consuming step declares.

        Returns:
            The value.

        Raises:
            ArtifactVersionError: If a newer pandas or pyarrow wrote it.
        """
        super().handle_input(data_type)
        from stepwire.materializers import parquet_codec

        details = artifact_metadata.read_metadata(
            self.artifact.uri, _running_versions(), formats=("parquet",)
        )
        uri = io_utils.join(self.artifact.uri, DEFAULT_FILENAME)
        schema = parquet_codec.decode_schema(details["arrow_schema"])
        if "://" in uri:
            with io_utils.open_file(uri, "rb") as f:
                table = parquet_codec.read(f, schema)
        else:
            table = parquet_codec.read(uri, schema)
        return _from_frame(_decode(table, details), details)

    def handle_return(self, data: Any) -> None:
        """Writes the DataFrame or Series.

        Args:
            data: The value.

        Raises:
            StepInterfaceError: For subclasses, and for values Parquet would not give
                back identical, naming the column.
        """
        super().handle_return(data)
        from stepwire.materializers import parquet_codec

        if type(data) not in (pd.DataFrame, pd.Series):
            raise StepInterfaceError(
                f"{type(self).__name__} stores exactly pandas DataFrame and Series, not "
                f"{type(data).__qualname__}, which would read back as its base class."
            )
        kind = "Series" if isinstance(data, pd.Series) else "DataFrame"
        try:
            series_name = _series_name(data) if kind == "Series" else None
            table, details = _encode(_as_frame(data))
            parquet_codec.check_storable(
                table.schema,
                compression=self.COMPRESSION,
                hint="Convert those columns (categories to strings, or the column to its "
                "categories' dtype).",
            )
            self._probe(data, {**details, "kind": kind, "series_name": series_name})
        except StepInterfaceError as e:
            raise StepInterfaceError(f"{type(self).__name__} cannot store this {kind}: {e}") from e
        uri = self.artifact.uri
        with io_utils.write_whole(io_utils.join(uri, DEFAULT_FILENAME)) as f:
            parquet_codec.write(table, f, compression=self.COMPRESSION)
        libraries = _running_versions()
        artifact_metadata.write_metadata(
            uri,
            "parquet",
            libraries,
            kind=kind,
            series_name=series_name,
            arrow_schema=parquet_codec.encode_schema(table.schema),
            compression=self.COMPRESSION,
            **details,
        )
        self._record(data, kind, libraries)

    def _probe(self, data: Any, details: dict[str, Any]) -> None:
        """Round-trips the first rows through Parquet in memory; refuses any change."""
        from stepwire.materializers import parquet_codec

        head = data.iloc[: self.PROBE_ROWS]
        table, _ = _encode(_as_frame(head))
        buffer = io.BytesIO()
        parquet_codec.write(table, buffer, compression=self.COMPRESSION)
        buffer.seek(0)
        back = _from_frame(_decode(parquet_codec.read(buffer, table.schema), details), details)
        problems = _differences(head, back)
        if problems:
            raise StepInterfaceError("; ".join(problems) + ".")

    def _record(self, data: Any, kind: str, libraries: dict[str, str]) -> None:
        frame = _as_frame(data)
        rows, columns = frame.shape
        dtypes = [(str(label), str(dtype)) for label, dtype in frame.dtypes.items()]
        if kind == "Series":
            summary = f"Series {data.name!r} of {rows:,} rows, {data.dtype}"
        else:
            summary = f"DataFrame of {rows:,} rows \u00d7 {columns:,} columns"
        index_names = [str(name) for name in frame.index.names]
        artifact_metadata.record_properties(
            self.artifact,
            {
                "format": "parquet",
                "rows": rows,
                "columns": columns,
                "schema": artifact_metadata.bounded_pairs(dtypes, len(dtypes)),
                "index": artifact_metadata.clip(
                    f"{type(frame.index).__name__} {index_names} {frame.index.dtype}",
                    artifact_metadata.MAX_SUMMARY_CHARS,
                ),
                "libraries": artifact_metadata.libraries_json(libraries),
                "summary": artifact_metadata.clip(summary, artifact_metadata.MAX_SUMMARY_CHARS),
            },
        )


register_builtin(PandasMaterializer)
