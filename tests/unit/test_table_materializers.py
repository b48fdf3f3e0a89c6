"""The pandas, pyarrow and polars materializers against real files, and how they are found.

Every value written is read back by a second materializer instance and compared with
pandas' and Arrow's strictest equality (dtypes, index, names, ``freq``, ``attrs``).
What Parquet would change must be refused when written, naming the column, and leave
no data file behind.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from stepwire.artifacts import DataArtifact, type_registry
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import (
    ArrowIpcMaterializer,
    ArrowMaterializer,
    BaseMaterializer,
    BuiltInMaterializer,
    MaterializerRegistry,
    PandasMaterializer,
    PolarsIpcMaterializer,
    PolarsMaterializer,
    SklearnMaterializer,
    default_materializer_registry,
)
from stepwire.materializers.artifact_metadata import (
    MAX_PROPERTY_CHARS,
    ArtifactVersionError,
    compatibility_key,
)
from stepwire.materializers.materializer_registry import LAZY_BUILTINS


def artifact_at(path: Path) -> DataArtifact:
    artifact = DataArtifact()
    artifact.uri = str(path)
    return artifact


def roundtrip(materializer: type[BaseMaterializer], value: Any, path: Path) -> Any:
    materializer(artifact_at(path)).handle_return(value)
    return materializer(artifact_at(path)).handle_input(type(value))


def properties(artifact: DataArtifact) -> dict[str, Any]:
    """The artifact's custom properties as plain values."""
    found: dict[str, Any] = {}
    for key, value in artifact.mlmd_artifact.custom_properties.items():
        found[key] = value.int_value if value.HasField("int_value") else value.string_value
    return found


def with_attrs(frame: pd.DataFrame, **attrs: Any) -> pd.DataFrame:
    frame.attrs.update(attrs)
    return frame


def with_columns_name(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    frame.columns.name = name
    return frame


N = 6
FRAMES = {
    "column order and numpy dtypes": pd.DataFrame(
        {
            "z": np.arange(N, dtype=np.int8),
            "a": np.linspace(0, 1, N, dtype=np.float32),
            "m": np.array([2**64 - 1] * N, dtype=np.uint64),
            "b": [True, False] * (N // 2),
            "f16": np.arange(N, dtype=np.float16),
        }
    ),
    "categoricals, ordered, with unused categories": pd.DataFrame(
        {
            "c": pd.Categorical(list("abcabc"), categories=["c", "b", "a", "unused"], ordered=True),
            "u": pd.Categorical(list("xyxyxy")),
        }
    ),
    "timezone-aware datetimes in several zones and units": pd.DataFrame(
        {
            "paris": pd.date_range("2024-03-30", periods=N, freq="h", tz="Europe/Paris"),
            "tokyo_s": pd.date_range("2024-01-01", periods=N, unit="s", tz="Asia/Tokyo"),
            "utc_ns": pd.date_range("2024-01-01", periods=N, freq="ns", tz="UTC", unit="ns"),
        }
    ),
    "naive datetimes and durations in seconds": pd.DataFrame(
        {
            "when": pd.date_range("2020-01-01", periods=N, unit="s"),
            "took": pd.to_timedelta(range(N), unit="s").as_unit("s"),
            "extremes": pd.to_datetime(["1677-09-22", "2262-04-11"] * 3).as_unit("ns"),
        }
    ),
    "nullable, string, period and interval dtypes": pd.DataFrame(
        {
            "i": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "b": pd.array([True, None, False, True, True, False], dtype="boolean"),
            "f": pd.array([1.5, None, 2, 3, 4, 5], dtype="Float32"),
            "s_python": pd.array(["a", None, "c", "d", "e", "f"], dtype="string[python]"),
            "s_arrow": pd.array(["a", None, "c", "d", "e", "f"], dtype="string[pyarrow]"),
            "s_str": pd.Series(["a", None, "c", "d", "e", "f"], dtype="str"),
            "p": pd.period_range("2020-01", periods=N, freq="M"),
            "iv": pd.interval_range(0, N),
            "arrow_int": pd.array(range(N), dtype="int64[pyarrow]"),
        }
    ),
    "object columns of strings, bytes and dates with None": pd.DataFrame(
        {
            "text": pd.Series(["a", None, "c", "d", "e", "f"], dtype=object),
            "raw": pd.Series([b"x", None, b"\x00", b"", b"y", b"z"], dtype=object),
            "day": pd.Series([dt.date(2020, 1, i + 1) for i in range(N)], dtype=object),
            "nothing": pd.Series([None] * N, dtype=object),
        }
    ),
    "a named string index": pd.DataFrame(
        {"v": range(N)}, index=pd.Index(list("uvwxyz"), name="key")
    ),
    "an object index with None": pd.DataFrame(
        {"v": range(N)}, index=pd.Index([*"uvwxy", None], dtype=object, name="key")
    ),
    "a multi-level index": pd.DataFrame(
        {"v": range(N)},
        index=pd.MultiIndex.from_product([["x", "y"], [1, 2, 3]], names=["letter", "number"]),
    ),
    "multi-level column labels with names": pd.DataFrame(
        [[1, 2]] * N,
        columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")], names=["l0", "l1"]),
    ),
    "a range index that does not start at 0": pd.DataFrame(
        {"v": range(N)}, index=pd.RangeIndex(10, 10 + 3 * N, 3, name="r")
    ),
    "a datetime index with freq and tz": pd.DataFrame(
        {"v": range(N)}, index=pd.date_range("2020-01-01", periods=N, freq="D", tz="UTC")
    ),
    "a timedelta index with freq": pd.DataFrame(
        {"v": range(N)}, index=pd.timedelta_range(0, periods=N, freq="s")
    ),
    "a period index": pd.DataFrame(
        {"v": range(N)}, index=pd.period_range("2020", periods=N, freq="Q")
    ),
    "a categorical index": pd.DataFrame(
        {"v": range(N)}, index=pd.CategoricalIndex(list("abcabc"), name="cat")
    ),
    "a float index with NaN": pd.DataFrame(
        {"v": range(N)}, index=pd.Index([1.0, np.nan, 3, 4, 5, 6])
    ),
    "integer column labels": pd.DataFrame({0: range(N), 1: range(N)}),
    "float column labels": pd.DataFrame({1.5: range(N)}),
    "attrs and a columns name": with_columns_name(
        with_attrs(pd.DataFrame({"v": range(N)}), source="unit test", shape=[N, 1]), "cols"
    ),
    "no columns": pd.DataFrame(),
    "no rows": pd.DataFrame({"a": pd.Series([], dtype="int8"), "t": pd.Series([], dtype="str")}),
}
SERIES = {
    "named": pd.Series([1, 2, 3], name="target"),
    "unnamed": pd.Series([1.5, 2.0, np.nan]),
    "an int name": pd.Series([1.5, 2.0, 3.0], name=3),
    "a tuple name": pd.Series(["a", "b"], name=("a", 1)),
    "categorical with a named index": pd.Series(
        pd.Categorical(list("ab")), index=pd.Index(["p", "q"], name="i"), name="c"
    ),
    "object strings": pd.Series(["a", None], dtype=object, name="o"),
}


def assert_pandas_identical(back: Any, value: Any) -> None:
    assert type(back) is type(value)
    if isinstance(value, pd.Series):
        pd.testing.assert_series_equal(back, value, check_exact=True, check_freq=True)
    else:
        pd.testing.assert_frame_equal(back, value, check_exact=True, check_freq=True)
        assert list(back.columns) == list(value.columns)
    assert back.attrs == value.attrs
    assert getattr(back.index, "freq", None) == getattr(value.index, "freq", None)
    if isinstance(value.index, pd.MultiIndex) or value.index.dtype == object:
        # Objects, not pandas' str dtype.
        assert [type(v) for v in back.index] == [type(v) for v in value.index]


@pytest.mark.parametrize("name", list(FRAMES))
def test_dataframes_read_back_identical(name: str, tmp_path: Path) -> None:
    frame = FRAMES[name]
    back = roundtrip(PandasMaterializer, frame, tmp_path)
    assert_pandas_identical(back, frame)
    for position, dtype in enumerate(frame.dtypes):
        if pd.api.types.is_object_dtype(dtype):
            assert [type(v) for v in back.iloc[:, position]] == [
                type(v) for v in frame.iloc[:, position]
            ]


@pytest.mark.parametrize("name", list(SERIES))
def test_series_read_back_identical(name: str, tmp_path: Path) -> None:
    series = SERIES[name]
    back = roundtrip(PandasMaterializer, series, tmp_path)
    assert_pandas_identical(back, series)
    assert back.name == series.name
    assert type(back.name) is type(series.name)


class SubFrame(pd.DataFrame):
    pass


def _mixed_late() -> pd.DataFrame:
    # The odd values come after the rows the write-time probe round-trips.
    values = ["x"] * 1500 + [1] * 500
    return pd.DataFrame({"fine": range(2000), "late": pd.Series(values, dtype=object)})


REFUSED = {
    "object of mixed types": (
        pd.DataFrame({"fine": range(4), "m": pd.Series([1, "a", 2.5, None], dtype=object)}),
        r"column 'm' has dtype object holding float, int, str values",
    ),
    "object of lists": (
        pd.DataFrame({"lists": pd.Series([[1], [2, 3]], dtype=object)}),
        r"column 'lists' has dtype object holding list values",
    ),
    "object of dicts": (
        pd.DataFrame({"d": pd.Series([{"a": 1}, {"b": 2}], dtype=object)}),
        r"column 'd' has dtype object holding dict values",
    ),
    "object of ints": (
        pd.DataFrame({"n": pd.Series([1, 2], dtype=object)}),
        r"column 'n' has dtype object holding int values",
    ),
    "object of decimals": (
        pd.DataFrame({"d": pd.Series([decimal.Decimal("1.5")], dtype=object)}),
        r"column 'd' has dtype object holding Decimal values",
    ),
    "object of datetimes": (
        pd.DataFrame({"d": pd.Series([dt.datetime(2020, 1, 1)], dtype=object)}),
        r"column 'd' has dtype object holding datetime values",
    ),
    "mixed types after the probed rows": (_mixed_late(), r"column 'late' has dtype object"),
    "NaN in an object column of strings": (
        pd.DataFrame({"s": pd.Series(["a", np.nan], dtype=object)}),
        r"column 's' has dtype object with missing values other than None",
    ),
    "an object index of mixed types": (
        pd.DataFrame({"v": [1, 2]}, index=pd.Index([1, "a"], dtype=object, name="k")),
        r"the index 'k' has dtype object holding int, str values",
    ),
    "categorical of integers": (
        pd.DataFrame({"c": pd.Categorical([1, 2, 1])}),
        r"column 'c': dictionary<values=int64.* would read back as int64",
    ),
    "complex numbers": (
        pd.DataFrame({"z": np.array([1j, 2], dtype=complex)}),
        r"column 'z': .*complex128",
    ),
    "sparse data": (
        pd.DataFrame({"sp": pd.arrays.SparseArray([0, 1])}),
        r"column 'sp': Sparse",
    ),
    "duplicate column labels": (
        pd.DataFrame([[1, 2]], columns=["a", "a"]),
        r"column labels \['a'\] are used more than once",
    ),
    "column labels of mixed types": (
        pd.DataFrame({0: [1], "0": [2]}),
        r"column names of mixed type",
    ),
    "attrs that are not JSON": (
        with_attrs(pd.DataFrame({"v": [1]}), n=np.int64(1)),
        r"attrs",
    ),
    "flags that Parquet drops": (
        pd.DataFrame({"v": [1]}).set_flags(allows_duplicate_labels=False),
        r"allows_duplicate_labels would be reset",
    ),
    "a DataFrame subclass": (SubFrame({"v": [1]}), r"not SubFrame"),
    "a Series name that cannot be kept": (
        pd.Series([1], name=pd.Timestamp("2020-01-01")),
        r"cannot store this Series: its name Timestamp",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_what_parquet_cannot_hold_is_refused_when_written(name: str, tmp_path: Path) -> None:
    value, message = REFUSED[name]
    with pytest.raises(StepInterfaceError, match=message):
        PandasMaterializer(artifact_at(tmp_path)).handle_return(value)
    assert not (tmp_path / "data.parquet").exists()
    assert not (tmp_path / "metadata.json").exists()


def test_a_dataframe_records_its_shape_schema_and_versions(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"when": pd.date_range("2020", periods=3, tz="UTC"), "n": [1, 2, 3]},
        index=pd.Index(["a", "b", "c"], name="key"),
    )
    artifact = artifact_at(tmp_path)
    PandasMaterializer(artifact).handle_return(frame)
    recorded = properties(artifact)
    assert recorded["stepwire_rows"] == 3
    assert recorded["stepwire_columns"] == 2
    # The unit of a date range is pandas' own choice (ns before 3, us since).
    assert json.loads(recorded["stepwire_schema"]) == [
        ["when", str(frame["when"].dtype)],
        ["n", "int64"],
    ]
    assert json.loads(recorded["stepwire_libraries"]) == {
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
    }
    assert recorded["stepwire_format"] == "parquet"
    assert recorded["stepwire_summary"] == "DataFrame of 3 rows \u00d7 2 columns"
    assert "'key'" in recorded["stepwire_index"]
    series = artifact_at(tmp_path / "series")
    PandasMaterializer(series).handle_return(pd.Series([1.5] * 1200, name="y"))
    assert properties(series)["stepwire_summary"] == "Series 'y' of 1,200 rows, float64"


def test_the_recorded_schema_is_bounded(tmp_path: Path) -> None:
    wide = pd.DataFrame({f"column_{i:04d}_{'x' * 100}": [i] for i in range(500)})
    artifact = artifact_at(tmp_path)
    PandasMaterializer(artifact).handle_return(wide)
    recorded = properties(artifact)
    assert recorded["stepwire_columns"] == 500
    schema = json.loads(recorded["stepwire_schema"])
    assert len(recorded["stepwire_schema"]) <= MAX_PROPERTY_CHARS
    assert schema[-1][0] == "\u2026"
    assert schema[-1][1] == f"{500 - (len(schema) - 1)} more"
    assert all(len(name) <= 80 for name, _ in schema)


def _claim_written_by(path: Path, library: str, version: str) -> None:
    document = json.loads((path / "metadata.json").read_text())
    document["libraries"][library] = version
    (path / "metadata.json").write_text(json.dumps(document))


def _next_major(version: str) -> str:
    return f"{compatibility_key(version)[0] + 1}.0.0"


@pytest.mark.parametrize(
    ("materializer", "value", "library", "installed"),
    [
        (PandasMaterializer, pd.DataFrame({"a": [1]}), "pandas", pd.__version__),
        (PandasMaterializer, pd.DataFrame({"a": [1]}), "pyarrow", pa.__version__),
        (ArrowMaterializer, pa.table({"a": [1]}), "pyarrow", pa.__version__),
        (ArrowIpcMaterializer, pa.table({"a": [1]}), "pyarrow", pa.__version__),
        (PolarsMaterializer, pl.DataFrame({"a": [1]}), "polars", pl.__version__),
    ],
)
def test_reading_what_a_newer_major_release_wrote_names_both_versions(
    materializer: type[BaseMaterializer], value: Any, library: str, installed: str, tmp_path: Path
) -> None:
    materializer(artifact_at(tmp_path)).handle_return(value)
    newer = _next_major(installed)
    _claim_written_by(tmp_path, library, newer)
    with pytest.raises(ArtifactVersionError) as raised:
        materializer(artifact_at(tmp_path)).handle_input(type(value))
    assert f"written with {library} {newer}, newer than the {library} {installed}" in str(
        raised.value
    )
    # An older release, or a newer minor one, is read.
    _claim_written_by(tmp_path, library, "0.1.0")
    materializer(artifact_at(tmp_path)).handle_input(type(value))


def test_a_newer_stepwire_layout_is_refused(tmp_path: Path) -> None:
    PandasMaterializer(artifact_at(tmp_path)).handle_return(pd.DataFrame({"a": [1]}))
    document = json.loads((tmp_path / "metadata.json").read_text())
    document["layout"] += 1
    (tmp_path / "metadata.json").write_text(json.dumps(document))
    with pytest.raises(ArtifactVersionError, match="newer than the layout 1"):
        PandasMaterializer(artifact_at(tmp_path)).handle_input(pd.DataFrame)


def test_compatibility_keys_compare_numbers_not_strings() -> None:
    assert compatibility_key("10.0.1") > compatibility_key("9.9")
    assert compatibility_key("2.2.3") == compatibility_key("2.9.0") == (2,)
    assert compatibility_key("1.10.0", parts=2) > compatibility_key("1.9.1", parts=2)
    assert compatibility_key("0.16.0") == (0, 16)  # 0.x: the minor counts
    assert compatibility_key("3.0.0rc1") == (3,)
    with pytest.raises(ValueError, match="release number"):
        compatibility_key("dev")


ARROW_COLUMNS = {
    "small ints and uint64": pa.array([1, 2, None], pa.uint64()),
    "large and view strings": pa.array(["a", None, "c"], pa.large_string()),
    "string views": pa.array(["a", None, "c"], pa.string_view()),
    "dictionary of strings": pa.array(["a", "b", "a"]).dictionary_encode(),
    "timestamp in seconds": pa.array([0, 1, None], pa.timestamp("s")),
    "timestamp with a zone": pa.array([0, 1, 2], pa.timestamp("ns", "Europe/Paris")),
    "date64": pa.array([0, 86_400_000, None], pa.date64()),
    "time32 in seconds": pa.array([1, 2, 3], pa.time32("s")),
    "durations": pa.array([1, 2, None], pa.duration("s")),
    "decimals": pa.array(
        [decimal.Decimal("1.50"), None, decimal.Decimal("-2.25")], pa.decimal128(5, 2)
    ),
    "lists": pa.array([[1], [], None]),
    "large lists": pa.array([[1], [], None], pa.large_list(pa.int64())),
    "fixed-size lists": pa.array([[1, 2]] * 3, pa.list_(pa.int64(), 2)),
    "maps": pa.array([[("a", 1)], [], None], pa.map_(pa.string(), pa.int64())),
    "structs": pa.array([{"a": 1, "b": "x"}, None, {"a": 2, "b": None}]),
    "nulls": pa.nulls(3),
    "fixed-size binary": pa.array([b"xy", None, b"zz"], pa.binary(2)),
}
IPC_ONLY = {
    "dictionary of ints": pa.array([1, 2, 1]).dictionary_encode(),
    "month-day-nano intervals": pa.array(
        [pa.MonthDayNano([1, 2, 3])] * 3, pa.month_day_nano_interval()
    ),
    "run-end encoded": pa.RunEndEncodedArray.from_arrays([3], [1]),
}


def _table(column: Any) -> pa.Table:
    schema = pa.schema(
        [pa.field("c", column.type, metadata={"unit": "m"}), pa.field("other", pa.int32())],
        metadata={"source": "unit test"},
    )
    return pa.Table.from_arrays([column, pa.array([1, 2, 3], pa.int32())], schema=schema)


@pytest.mark.parametrize("name", list(ARROW_COLUMNS))
@pytest.mark.parametrize("materializer", [ArrowMaterializer, ArrowIpcMaterializer])
def test_arrow_tables_read_back_with_their_exact_schema(
    materializer: type[BaseMaterializer], name: str, tmp_path: Path
) -> None:
    table = _table(ARROW_COLUMNS[name])
    back = roundtrip(materializer, table, tmp_path)
    assert back.equals(table, check_metadata=True), (back.schema, table.schema)


@pytest.mark.parametrize("name", list(IPC_ONLY))
def test_what_parquet_cannot_hold_is_refused_and_ipc_keeps(name: str, tmp_path: Path) -> None:
    table = _table(IPC_ONLY[name])
    with pytest.raises(StepInterfaceError, match=r"column 'c': .*ArrowIpcMaterializer"):
        ArrowMaterializer(artifact_at(tmp_path / "parquet")).handle_return(table)
    assert not (tmp_path / "parquet").exists()
    ArrowIpcMaterializer(artifact_at(tmp_path / "ipc")).handle_return(table)
    # The default materializer reads whichever format the artifact holds.
    back = ArrowMaterializer(artifact_at(tmp_path / "ipc")).handle_input(pa.Table)
    assert back.equals(table, check_metadata=True)


def test_an_arrow_table_records_its_shape_and_schema(tmp_path: Path) -> None:
    artifact = artifact_at(tmp_path)
    ArrowIpcMaterializer(artifact).handle_return(_table(pa.array([1.5, 2.5, None])))
    recorded = properties(artifact)
    assert (recorded["stepwire_rows"], recorded["stepwire_columns"]) == (3, 2)
    assert json.loads(recorded["stepwire_schema"]) == [["c", "double"], ["other", "int32"]]
    assert recorded["stepwire_format"] == "arrow-ipc"
    assert json.loads(recorded["stepwire_libraries"]) == {"pyarrow": pa.__version__}


POLARS_FRAME = pl.DataFrame(
    {
        "i8": pl.Series([1, 2, None, 4], dtype=pl.Int8),
        "u64": pl.Series([1, 2, 3, 2**64 - 1], dtype=pl.UInt64),
        "i128": pl.Series([1, 2, 3, 4], dtype=pl.Int128),
        "f32": pl.Series([1.5, None, 3, 4], dtype=pl.Float32),
        "text": ["a", None, "c", "d"],
        "cat": pl.Series(list("abca"), dtype=pl.Categorical),
        "enum": pl.Series(list("abca"), dtype=pl.Enum(["c", "b", "a"])),
        "paris": pl.datetime_range(
            dt.datetime(2024, 3, 30),
            dt.datetime(2024, 4, 2),
            "1d",
            time_zone="Europe/Paris",
            eager=True,
        ),
        "ns": pl.datetime_range(
            dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 4), "1d", time_unit="ns", eager=True
        ),
        "took": [dt.timedelta(seconds=i) for i in range(4)],
        "day": [dt.date(2020, 1, i + 1) for i in range(4)],
        "clock": [dt.time(i) for i in range(4)],
        "lists": [[1], [2, 3], [], None],
        "array": pl.Series([[1, 2]] * 4, dtype=pl.Array(pl.Int64, 2)),
        "struct": [{"a": 1, "b": "x"}, None, {"a": 2, "b": None}, {"a": 3, "b": "z"}],
        "decimal": pl.Series([decimal.Decimal("1.50")] * 4, dtype=pl.Decimal(10, 2)),
        "binary": [b"x", None, b"", b"\x00"],
        "null": pl.Series([None] * 4, dtype=pl.Null),
    }
)


@pytest.mark.parametrize("materializer", [PolarsMaterializer, PolarsIpcMaterializer])
def test_polars_frames_read_back_identical(
    materializer: type[BaseMaterializer], tmp_path: Path
) -> None:
    back = roundtrip(materializer, POLARS_FRAME, tmp_path)
    assert back.schema == POLARS_FRAME.schema
    assert back.equals(POLARS_FRAME, null_equal=True)
    assert roundtrip(materializer, pl.DataFrame(), tmp_path / "empty").shape == (0, 0)


@pytest.mark.parametrize("materializer", [PolarsMaterializer, PolarsIpcMaterializer])
def test_polars_object_columns_are_refused_by_name(
    materializer: type[BaseMaterializer], tmp_path: Path
) -> None:
    frame = pl.DataFrame({"fine": [1], "py": pl.Series([object()], dtype=pl.Object)})
    with pytest.raises(StepInterfaceError, match=r"columns \['py'\] have the polars Object"):
        materializer(artifact_at(tmp_path)).handle_return(frame)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_a_polars_frame_records_its_shape_and_schema(tmp_path: Path) -> None:
    artifact = artifact_at(tmp_path)
    PolarsMaterializer(artifact).handle_return(POLARS_FRAME)
    recorded = properties(artifact)
    assert (recorded["stepwire_rows"], recorded["stepwire_columns"]) == POLARS_FRAME.shape
    assert json.loads(recorded["stepwire_schema"])[:2] == [["i8", "Int8"], ["u64", "UInt64"]]
    assert json.loads(recorded["stepwire_libraries"]) == {"polars": pl.__version__}


def test_registry_finds_the_table_materializers_by_type_and_base() -> None:
    registry = default_materializer_registry
    assert registry[pd.DataFrame] is PandasMaterializer
    assert registry[pd.Series] is PandasMaterializer
    assert registry[SubFrame] is PandasMaterializer  # found, then refused when written
    assert registry[pa.Table] is ArrowMaterializer
    assert registry[pl.DataFrame] is PolarsMaterializer
    assert type_registry.get_artifact_type(pd.DataFrame) == (DataArtifact,)
    assert type_registry.get_artifact_type(SubFrame) == (DataArtifact,)
    assert type_registry.get_artifact_type(pa.Table) == (DataArtifact,)
    with pytest.raises(StepInterfaceError, match="No materializer"):
        registry[pd.Timestamp]


class Tagged:
    pass


class TaggedFrame(pd.DataFrame):
    pass


class TaggedFrameMaterializer(BuiltInMaterializer):
    """A user's materializer for its own DataFrame subclass (stores nothing useful)."""

    ASSOCIATED_TYPES = (TaggedFrame,)


class DeeperFrame(TaggedFrame):
    pass


def test_a_users_materializer_wins_for_its_type_and_subclasses() -> None:
    registry = default_materializer_registry
    assert registry[TaggedFrame] is TaggedFrameMaterializer
    # The nearest registered base wins over pandas' DataFrame.
    assert registry[DeeperFrame] is TaggedFrameMaterializer


def test_a_lazy_builtin_yields_to_a_user_materializer_registered_before_it() -> None:
    # In a fresh process: the user's materializer for pd.DataFrame itself exists
    # before the built-in is imported, and keeps both its place and artifact type.
    script = """
import pandas as pd
from stepwire.artifacts import ModelArtifact, type_registry
from stepwire.materializers import BuiltInMaterializer, default_materializer_registry


class Mine(BuiltInMaterializer):
    ASSOCIATED_TYPES = (pd.DataFrame,)
    ASSOCIATED_ARTIFACT_TYPES = (ModelArtifact,)


assert default_materializer_registry[pd.DataFrame] is Mine
assert default_materializer_registry[pd.Series].__name__ == "PandasMaterializer"
assert default_materializer_registry[pd.DataFrame] is Mine
assert type_registry.get_artifact_type(pd.DataFrame) == (ModelArtifact,)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_registries_without_lazy_builtins_know_nothing_of_them() -> None:
    registry = MaterializerRegistry()
    assert not registry.is_registered(pd.DataFrame)
    # The stand-ins the artifact type registry holds match nothing else.
    for builtin in LAZY_BUILTINS:
        assert not builtin.handles(int)
        assert not builtin.handles(Tagged)


def test_looking_up_other_types_imports_no_library() -> None:
    script = """
import sys
from stepwire.artifacts import type_registry
from stepwire.materializers import default_materializer_registry as registry
import numpy as np

for t in (int, float, str, bytes, list, dict, tuple, bool, np.ndarray):
    registry[t]
    type_registry.get_artifact_type(t)
assert not registry.is_registered(complex)
heavy = ("pandas", "pyarrow", "polars", "sklearn", "skops", "scipy")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or "stepwire.materializers." in m))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.replace("'", '"')) == [
        "stepwire.materializers.base_materializer",
        "stepwire.materializers.builtin_materializer",
        "stepwire.materializers.materializer_registry",
        "stepwire.materializers.numpy_materializer",
        "stepwire.materializers.value_codec",
    ]


def test_lazy_names_of_the_package_import_their_module() -> None:
    import stepwire.materializers as package

    assert package.SklearnMaterializer is SklearnMaterializer
    with pytest.raises(AttributeError, match="NoSuchMaterializer"):
        package.NoSuchMaterializer  # noqa: B018


@pytest.mark.parametrize(
    ("materializer", "value"),
    [
        (PandasMaterializer, FRAMES["categoricals, ordered, with unused categories"]),
        (ArrowMaterializer, _table(ARROW_COLUMNS["timestamp in seconds"])),
        (ArrowIpcMaterializer, _table(IPC_ONLY["dictionary of ints"])),
        (PolarsMaterializer, POLARS_FRAME),
        (PolarsIpcMaterializer, POLARS_FRAME),
    ],
)
def test_an_object_store_uri_is_written_and_read_through_fsspec(
    materializer: type[BaseMaterializer], value: Any, request: pytest.FixtureRequest
) -> None:
    # fsspec's in-memory filesystem stands for s3:// and gs://: the same file-object
    # code path, without a server.
    uri = f"memory://stepwire-tests/{request.node.name}"
    artifact = DataArtifact()
    artifact.uri = uri
    materializer(artifact).handle_return(value)
    back = materializer(artifact).handle_input(type(value))
    if isinstance(value, pd.DataFrame):
        assert_pandas_identical(back, value)
    elif isinstance(value, pl.DataFrame):
        assert back.equals(value, null_equal=True)
    else:
        assert back.equals(value, check_metadata=True)
