"""Property tests of the JSON form used by the built-in materializer."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepwire.materializers import value_codec

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
)
keys = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.tuples(inner, inner),
    max_leaves=4,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.just(value_codec.TAG), inner, max_size=4)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal with identical types at every level; NaN equals NaN, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or repr(a) == repr(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return bool(a == b)


@given(values)
def test_decode_of_encode_is_identity(value: Any) -> None:
    text = value_codec.dumps(value)
    assert text.isascii()
    assert same(value_codec.loads(text), value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([value_codec.TAG, "items", "value", "base64", "x"]), inner, max_size=3
        )
    ),
    max_leaves=10,
)


@given(st.text() | json_values.map(json.dumps))
def test_any_input_decodes_or_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        value_codec.loads(text)


def test_plain_json_stays_plain() -> None:
    assert value_codec.dumps({"a": [1, 2.5, "x", None, True]}) == (
        '{"a": [1, 2.5, "x", null, true]}'
    )


def test_unknown_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown tag"):
        value_codec.loads('{"$sw": "set", "items": []}')
