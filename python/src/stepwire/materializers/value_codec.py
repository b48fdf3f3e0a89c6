"""A JSON form for built-in Python values that reads back exactly what was written.

Plain JSON loses information: tuples come back as lists, dictionary keys become
strings, bytes and non-finite floats cannot be written at all. This codec writes the
JSON-native cases as themselves and tags the rest with an object holding the key
:data:`TAG`:

=====================================  ==============================================
value                                  JSON form
=====================================  ==============================================
``None``, ``bool``, ``int``, ``str``   itself
finite ``float``                       itself (Python writes floats exactly, ``-0.0``
                                       included)
``nan``, ``inf``, ``-inf``             ``{"$sw": "float", "value": "nan"}``
``bytes``                              ``{"$sw": "bytes", "base64": "..."}``
``list``                               array
``tuple``                              ``{"$sw": "tuple", "items": [...]}``
``dict`` with only ``str`` keys, none  object
equal to ``"$sw"``
any other ``dict``                     ``{"$sw": "dict", "items": [[key, value], ...]}``
=====================================  ==============================================

Only these exact types are accepted, at any depth: subclasses (``numpy.float64``,
``IntEnum`` members, namedtuples, ``OrderedDict``) would come back as the plain
built-in, so they are refused with the path of the offending value instead.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

#: Key marking a tagged object. A user dict containing it is itself written tagged,
#: so a plain JSON object in the output never holds this key.
TAG = "$sw"

_FLOAT_NAMES = frozenset({"nan", "inf", "-inf"})


class UnsupportedValueError(TypeError):
    """A value (or a part of it) has a type the codec does not store faithfully."""


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _encode(value: Any, path: str, active: set[int]) -> Any:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {TAG: "float", "value": _float_name(value)}
    if kind is bytes:
        return {TAG: "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if kind not in (list, tuple, dict):
        raise UnsupportedValueError(
            f"value at {path} has type {kind.__module__}.{kind.__qualname__}; only None, "
            "bool, int, float, str, bytes, list, tuple and dict (exactly these types, not "
            "subclasses) are stored. Convert it (e.g. float(x), list(x)) or register a "
            "materializer for its type."
        )
    if id(value) in active:
        raise UnsupportedValueError(f"value at {path} contains itself.")
    active.add(id(value))
    try:
        return _encode_container(value, path, active)
    finally:
        active.discard(id(value))


def _encode_container(
    value: list[Any] | tuple[Any, ...] | dict[Any, Any], path: str, active: set[int]
) -> Any:
    if isinstance(value, list):
        return [_encode(item, f"{path}[{i}]", active) for i, item in enumerate(value)]
    if isinstance(value, tuple):
        items = [_encode(item, f"{path}[{i}]", active) for i, item in enumerate(value)]
        return {TAG: "tuple", "items": items}
    if all(type(key) is str for key in value) and TAG not in value:
        return {key: _encode(item, f"{path}[{key!r}]", active) for key, item in value.items()}
    pairs = [
        [_encode(key, f"{path} key {key!r}", active), _encode(item, f"{path}[{key!r}]", active)]
        for key, item in value.items()
    ]
    return {TAG: "dict", "items": pairs}


def _decode_tagged(data: dict[str, Any]) -> Any:
    tag = data[TAG]
    if tag == "float":
        name = data["value"]
        if name not in _FLOAT_NAMES:
            raise ValueError(f"unknown float name {name!r}")
        # A fresh float each time: a shared NaN object would make tuples that
        # hold it compare equal (identity), merging distinct dictionary keys.
        return float(name)
    if tag == "bytes":
        return base64.b64decode(data["base64"], validate=True)
    if tag == "tuple":
        return tuple(_decode(item) for item in data["items"])
    if tag == "dict":
        return {_decode(key): _decode(item) for key, item in data["items"]}
    raise ValueError(f"Unknown tag {tag!r} in stored value.")


def _decode(data: Any) -> Any:
    if isinstance(data, list):
        return [_decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if TAG in data:
        return _decode_tagged(data)
    return {key: _decode(item) for key, item in data.items()}


def dumps(value: Any) -> str:
    """Encodes a value as ASCII JSON text.

    Args:
        value: A value built from the supported types.

    Returns:
        The JSON text.

    Raises:
        UnsupportedValueError: If some part of the value has another type.
    """
    return json.dumps(_encode(value, "top level", set()), allow_nan=False, ensure_ascii=True)


def loads(text: str | bytes) -> Any:
    """Decodes JSON text written by :func:`dumps`.

    Args:
        text: The JSON text.

    Returns:
        A value equal to, and of the same types as, the one that was encoded.

    Raises:
        ValueError: If the text is not valid JSON or not in the form :func:`dumps`
            writes (unknown tags, malformed tagged objects).
    """
    data = json.loads(text)
    try:
        return _decode(data)
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        # Missing fields or wrongly shaped tagged objects: not something dumps() wrote.
        raise ValueError(f"Malformed stored value: {e!r}") from e
