"""Built-in materializers against real files, and the two registries."""

from __future__ import annotations

import collections
import enum
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepwire.artifacts import (
    ArtifactTypeRegistry,
    DataArtifact,
    ModelArtifact,
    StatisticsArtifact,
    type_registry,
)
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import (
    BaseMaterializer,
    BuiltInMaterializer,
    BytesMaterializer,
    MaterializerRegistry,
    NumpyMaterializer,
    default_materializer_registry,
)


def artifact_at(path: Path) -> DataArtifact:
    artifact = DataArtifact()
    artifact.uri = str(path)
    return artifact


def roundtrip(materializer: type[BaseMaterializer], value: Any, path: Path) -> Any:
    materializer(artifact_at(path)).handle_return(value)
    return materializer(artifact_at(path)).handle_input(type(value))


@pytest.mark.parametrize(
    "value",
    [
        0,
        -(2**80),
        True,
        1.5,
        -0.0,
        "héllo \ud800",
        [1, "a", None, [2.5]],
        (1, (2, b"\x00\xff"), []),
        {"a": {"b": (1, 2)}, "c": None},
        {1: "int key", (1, "t"): {b"k": float("inf")}, "$sw": "reserved key"},
    ],
)
def test_builtin_values_read_back_identical(value: Any, tmp_path: Path) -> None:
    back = roundtrip(BuiltInMaterializer, value, tmp_path)
    assert repr(back) == repr(value)
    assert type(back) is type(value)
    assert (tmp_path / "data.json").read_bytes().isascii()


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.float64(1.0), "numpy.float64"),
        (collections.OrderedDict(a=1), "OrderedDict"),
        ({"x": Colour.RED}, r"value at top level\['x'\] has type .*Colour"),
        ({"s": {1, 2}}, "has type builtins.set"),
    ],
)
def test_builtin_refuses_values_it_would_change(value: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(StepInterfaceError, match=message):
        BuiltInMaterializer(artifact_at(tmp_path)).handle_return(value)


def test_builtin_refuses_cycles(tmp_path: Path) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    with pytest.raises(StepInterfaceError, match="contains itself"):
        BuiltInMaterializer(artifact_at(tmp_path)).handle_return(cyclic)


def test_bytes_are_stored_raw(tmp_path: Path) -> None:
    data = bytes(range(256))
    assert roundtrip(BytesMaterializer, data, tmp_path) == data
    assert (tmp_path / "data.bin").read_bytes() == data


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int16).reshape(3, 4),
        np.array(3.5),
        np.array(["a", "bc"]),
        np.zeros(2, dtype=[("x", "<f4"), ("y", "<i8")]),
    ],
)
def test_numpy_arrays_read_back_identical(array: np.ndarray, tmp_path: Path) -> None:
    back = roundtrip(NumpyMaterializer, array, tmp_path)
    assert type(back) is np.ndarray
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_numpy_refuses_object_arrays_and_subclasses(tmp_path: Path) -> None:
    with pytest.raises(StepInterfaceError, match="pickle"):
        NumpyMaterializer(artifact_at(tmp_path)).handle_return(np.array([{}, None], dtype=object))
    with pytest.raises(StepInterfaceError, match="MaskedArray"):
        NumpyMaterializer(artifact_at(tmp_path)).handle_return(np.ma.masked_array([1, 2]))
    assert not (tmp_path / "data.npy").exists()


def test_materializer_checks_the_declared_type(tmp_path: Path) -> None:
    with pytest.raises(StepInterfaceError, match="not bytes"):
        BuiltInMaterializer(artifact_at(tmp_path)).handle_input(bytes)


def test_default_registry_maps_builtin_types() -> None:
    assert default_materializer_registry[int] is BuiltInMaterializer
    assert default_materializer_registry[bool] is BuiltInMaterializer
    assert default_materializer_registry[bytes] is BytesMaterializer
    assert default_materializer_registry[np.ndarray] is NumpyMaterializer
    # A subclass finds its one registered base.
    assert default_materializer_registry[collections.OrderedDict] is BuiltInMaterializer
    with pytest.raises(StepInterfaceError, match="No materializer is registered"):
        default_materializer_registry[complex]
    assert type_registry.get_artifact_type(dict) == (DataArtifact, StatisticsArtifact)


class Base:
    pass


class Other:
    pass


class Both(Base, Other):
    pass


def test_registry_lookup_rules() -> None:
    registry = MaterializerRegistry()
    registry.register_materializer_type(Base, BuiltInMaterializer)
    registry.register_materializer_type(Base, NumpyMaterializer)  # first one wins
    assert registry[Base] is BuiltInMaterializer
    assert registry[Both] is BuiltInMaterializer
    registry.register_materializer_type(Other, BytesMaterializer)
    with pytest.raises(StepInterfaceError, match="Several materializers match"):
        registry[Both]
    registry.register_and_overwrite_type(Both, NumpyMaterializer)
    assert registry[Both] is NumpyMaterializer
    assert not registry.is_registered(int)

    artifacts = ArtifactTypeRegistry()
    artifacts.register_integration(Base, (DataArtifact,))
    artifacts.register_integration(Other, (ModelArtifact,))
    assert artifacts.get_artifact_type(Base) == (DataArtifact,)
    with pytest.raises(StepInterfaceError, match="Several artifact types match"):
        artifacts.get_artifact_type(Both)
    with pytest.raises(StepInterfaceError, match="No artifact type"):
        artifacts.get_artifact_type(int)


def test_materializer_class_must_declare_types() -> None:
    with pytest.raises(StepInterfaceError, match="ASSOCIATED_TYPES"):

        class Nothing(BaseMaterializer):
            pass

    with pytest.raises(StepInterfaceError, match="ASSOCIATED_ARTIFACT_TYPES"):

        class WrongArtifacts(BaseMaterializer):
            ASSOCIATED_TYPES = (Base,)
            ASSOCIATED_ARTIFACT_TYPES = (int,)  # type: ignore[assignment]
