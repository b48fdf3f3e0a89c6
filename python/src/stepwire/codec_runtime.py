"""The part of the entrypoint codec that does not depend on the contract.

A generated codec (``stepwire._gen.<...>_codec``) holds what the ``.proto`` files
decide: the option table, the message's limits and an encoder and a decoder
unrolled field by field. Everything they call lives here: the text checks, the
decimal, base64, zlib and by-reference forms, canonical JSON (RFC 8785), the
argv scanner and the errors. The rules are those of ``contract/README.md``.

This module imports only the standard library and ``rfc8785``, never another
part of stepwire: the generated codec imports it, and ``stepwire.entrypoints.
codec`` imports the generated codec, so the import graph stays acyclic.

``ErrorKind`` and ``Encoding`` mirror enums of ``options.proto``. They are
written out here so that this module stands alone; the code generator compares
them with the contract on every run and refuses to generate when they differ,
so they cannot drift apart.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import enum
import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import rfc8785

__all__ = [
    "COMPRESSED_PREFIX",
    "REFERENCE_PREFIX",
    "ArgumentError",
    "CodecError",
    "EncodeError",
    "Encoding",
    "ErrorKind",
    "Form",
    "OptionSpec",
    "ReferenceReader",
    "ReferenceStore",
    "ReferenceTooLargeError",
    "ThresholdsLike",
    "add_option_arguments",
    "check_custom_option_names",
    "check_text",
    "check_version_in",
    "check_version_out",
    "count_json_values",
    "decimal_in",
    "emit",
    "emit_custom",
    "json_object_in",
    "json_object_out",
    "pack_json",
    "parse_custom_arguments",
    "plain_in",
    "plain_out",
    "read_custom",
    "required_value",
    "scan",
    "string_map_in",
    "string_map_out",
    "unpack_json",
]

COMPRESSED_PREFIX = "zlib:"
"""Prefix of the compressed form: ``zlib:`` + base64 of a zlib stream of the payload."""

REFERENCE_PREFIX = "ref:sha256:"
"""Prefix of the by-reference form: ``ref:sha256:<64 hex digits>:<uri>``."""


# --------------------------------------------------------------------------- #
# Enums. ErrorKind and Encoding are checked against options.proto by the code
# generator (stepwire_codegen.runtime): add a value there and here together.


class Encoding(enum.Enum):
    """How an option's value becomes the text of its argv element."""

    PLAIN = "plain"
    """The value's text as it is; never compressed nor referenced."""
    DECIMAL = "decimal"
    """A non-negative integer in ASCII digits, without sign or leading zeros."""
    BASE64_JSON = "base64_json"
    """Canonical JSON as standard base64, or its compressed or by-reference form."""


class Form(enum.Enum):
    """The form an ``ENCODING_BASE64_JSON`` value took on the command line."""

    INLINE = "inline"
    COMPRESSED = "compressed"
    REFERENCE = "reference"


class ErrorKind(enum.Enum):
    """Every way a command line or a message can be refused (``contract/README.md``)."""

    MISSING_OPTION = "missing_option"
    """A required option is absent."""
    MISSING_VALUE = "missing_value"
    """A known option is the last element, or is followed by another option."""
    REPEATED_OPTION = "repeated_option"
    """A known option appears more than once."""
    UNEXPECTED_ARGUMENT = "unexpected_argument"
    """An element that is neither an option nor the value of one."""
    EMPTY_VALUE = "empty_value"
    """A plain value is empty."""
    BAD_VALUE = "bad_value"
    """A value breaks its encoding's rules (a NUL character, a malformed decimal)."""
    BAD_UTF8 = "bad_utf8"
    """Text that is not valid UTF-8."""
    BAD_BASE64 = "bad_base64"
    """Not standard base64, or base64 with non-zero padding bits."""
    BAD_JSON = "bad_json"
    """Not JSON, duplicate keys, non-finite or overflowing numbers, too deep, a lone surrogate."""
    WRONG_JSON_SHAPE = "wrong_json_shape"
    """JSON of the wrong shape (not starting like an object, a map value not a string)."""
    BAD_COMPRESSED = "bad_compressed"
    """A compressed value that is not a complete zlib stream."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    """A payload over ``max_payload_bytes``, ``max_inflated_bytes`` or ``max_json_nodes``."""
    BAD_REFERENCE = "bad_reference"
    """A by-reference value that does not follow ``ref:sha256:<hex>:<uri>``."""
    REFERENCE_UNAVAILABLE = "reference_unavailable"
    """A by-reference value whose URI cannot be read, or no reader is configured."""
    SHA256_MISMATCH = "sha256_mismatch"
    """The referenced payload does not have the sha256 the reference names."""
    UNSUPPORTED_CONTRACT_VERSION = "unsupported_contract_version"
    """The command line is for a newer contract version than the runtime knows."""
    BAD_CUSTOM_OPTION = "bad_custom_option"
    """A custom option name that is not a valid option name."""
    OPTION_CLASH = "option_clash"
    """A custom option that reuses a flag of the contract."""
    NEEDS_REFERENCE_STORE = "needs_reference_store"
    """Encoding only: a value must go by reference and no store was given."""


# --------------------------------------------------------------------------- #
# Errors and the types a generated codec is built from.


class CodecError(ValueError):
    """Base of the codec's errors: one line for a person, a kind for a program.

    Attributes:
        kind: What was wrong.
        flag: The option it concerns, if any.
    """

    def __init__(self, kind: ErrorKind, message: str, flag: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.flag = flag


class ArgumentError(CodecError):
    """A command line that the contract does not accept."""


class EncodeError(CodecError):
    """A message or custom option that cannot be turned into a valid command line."""


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """What the contract says about one option.

    Attributes:
        field: The proto field name.
        flag: The option name, without ``--``.
        encoding: How its value is encoded.
        required: Whether a command line without it is invalid.
        sensitive: Whether it travels only by reference (and is redacted).
        late_bound: Whether the orchestrator fills it in at launch.
        json_message: For JSON text, the protobuf message it holds.
        help: The contract's description of the option.
    """

    field: str
    flag: str
    encoding: Encoding
    required: bool
    sensitive: bool
    late_bound: bool
    json_message: str
    help: str


class ReferenceStore(Protocol):
    """Where the encoder puts values that take the by-reference form."""

    def put(self, payload: bytes, sha256_hex: str) -> str:
        """Stores a payload and returns the URI a reader will fetch it from.

        Args:
            payload: The canonical JSON bytes, as they are (not compressed).
            sha256_hex: The payload's SHA-256, 64 lowercase hex digits.

        Returns:
            A non-empty URI without NUL characters.
        """


ReferenceReader = Callable[[str], bytes]


class ReferenceTooLargeError(ValueError):
    """Raised by a :data:`ReferenceReader` that refuses a payload for its size.

    The reader stops reading at the bound, so the decoder cannot see the size
    itself; this tells it the value is ``payload_too_large``, not unavailable.
    """


"""Fetches the payload behind a by-reference URI."""


class ThresholdsLike(Protocol):
    """The two thresholds of a generated codec's ``Thresholds``.

    The defaults are message options, so the class with defaults is generated;
    the runtime only reads the two values.
    """

    @property
    def compress_above_bytes(self) -> int:
        """Inline elements longer than this are compressed (when that is shorter)."""

    @property
    def reference_above_bytes(self) -> int:
        """Elements still longer than this go by reference."""


# --------------------------------------------------------------------------- #
# Text, decimal and the shape of an option on the command line.

_CUSTOM_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?")
_REFERENCE = re.compile(r"ref:sha256:([0-9a-f]{64}):(.+)", re.DOTALL)
_UINT32_MAX = 2**32 - 1
# RFC 8785 numbers are IEEE 754 doubles: integers from here on are not exact.
_SAFE_MAGNITUDE = 2**53
# JSON whitespace (RFC 8259), and the first characters of the two kinds of
# value that can be large and are not objects: a payload whose first other
# character is one of these is an array or a string whatever follows, so its
# shape is known before it is parsed (spec section 3.3.1).
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STARTS_NOT_AN_OBJECT = frozenset('["')
# Counting a payload's values without parsing it (spec section 3.3.1). A string
# literal runs from a quote to the next quote that no backslash escapes, or to
# the end; the pattern is the unrolled loop, so it never backtracks.
_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
# Maps the bytes that end a run (JSON whitespace, the quote and the six
# structural characters) to b" " and every other byte to b"a": each run of
# b"a" is then one number, literal or other token.
_RUN_BYTES = bytes(0x20 if byte in b' \t\n\r"[]{}:,' else 0x61 for byte in range(256))


def _show(text: str, limit: int = 40) -> str:
    """A short, printable rendering of user input for one-line messages."""
    shown = repr(text[:limit])
    return shown + ("..." if len(text) > limit else "")


def emit(argv: list[str], flag: str, value: str) -> None:
    """Appends one option in its canonical form.

    Args:
        argv: The argv being built.
        flag: The option name, without ``--``.
        value: The encoded value.
    """
    # A value that starts with "-" would read as an option in the two-element
    # form; the joined form is the only unambiguous one for it.
    if value.startswith("-"):
        argv.append(f"--{flag}={value}")
    else:
        argv.extend((f"--{flag}", value))


def check_text(flag: str, value: str, error: type[CodecError]) -> None:
    """Refuses text that an argv element cannot carry.

    Args:
        flag: The option the value belongs to.
        value: The text.
        error: The error class to raise (encoding or decoding side).

    Raises:
        CodecError: Of class ``error``: ``BAD_VALUE`` for a NUL character,
            ``BAD_UTF8`` for a lone surrogate.
    """
    if "\x00" in value:
        raise error(ErrorKind.BAD_VALUE, f"--{flag}: the value contains a NUL character", flag)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Python decodes invalid argv bytes to lone surrogates (surrogateescape).
        raise error(
            ErrorKind.BAD_UTF8, f"--{flag}: the value is not valid UTF-8 text", flag
        ) from None


def plain_out(flag: str, value: str) -> str:
    """Encodes an ``ENCODING_PLAIN`` value.

    Args:
        flag: The option name.
        value: The field's text.

    Returns:
        The value, unchanged.

    Raises:
        EncodeError: If it is empty or is not text an argv can carry.
    """
    if not value:
        raise EncodeError(ErrorKind.EMPTY_VALUE, f"--{flag}: the value is empty", flag)
    check_text(flag, value, EncodeError)
    return value


def plain_in(flag: str, raw: str) -> str:
    """Decodes an ``ENCODING_PLAIN`` value.

    Args:
        flag: The option name.
        raw: The element's text.

    Returns:
        The value, unchanged.

    Raises:
        ArgumentError: If it is empty or is not valid text.
    """
    if not raw:
        raise ArgumentError(ErrorKind.EMPTY_VALUE, f"--{flag}: the value is empty", flag)
    check_text(flag, raw, ArgumentError)
    return raw


def decimal_in(flag: str, raw: str) -> int:
    """Decodes an ``ENCODING_DECIMAL`` value.

    Args:
        flag: The option name.
        raw: The element's text.

    Returns:
        The integer, from 0 to 2^32 - 1.

    Raises:
        ArgumentError: ``BAD_VALUE`` unless ``raw`` is ``0|[1-9][0-9]*`` in range.
    """
    # The length check comes first: int() refuses very long digit strings.
    if len(raw) > 10 or not _DECIMAL.fullmatch(raw) or int(raw) > _UINT32_MAX:
        raise ArgumentError(
            ErrorKind.BAD_VALUE,
            f"--{flag}: {_show(raw)} is not a decimal integer from 0 to {_UINT32_MAX}",
            flag,
        )
    return int(raw)


def required_value(values: Mapping[str, str], flag: str) -> str:
    """The raw value of a required option.

    Args:
        values: The raw values found by :func:`scan`.
        flag: The option name.

    Returns:
        Its raw value.

    Raises:
        ArgumentError: ``MISSING_OPTION`` if the command line lacks it.
    """
    raw = values.get(flag)
    if raw is None:
        raise ArgumentError(ErrorKind.MISSING_OPTION, f"--{flag}: required option is missing", flag)
    return raw


def check_version_out(flag: str, version: int, implemented: int) -> None:
    """Refuses to write a contract version this codec does not implement.

    Args:
        flag: The option that carries the version.
        version: The version the message asks for.
        implemented: The codec's contract version.

    Raises:
        EncodeError: ``BAD_VALUE`` unless ``1 <= version <= implemented``.
    """
    if not 1 <= version <= implemented:
        raise EncodeError(
            ErrorKind.BAD_VALUE,
            f"--{flag}: this codec writes versions 1 to {implemented}, not {version}",
            flag,
        )


def check_version_in(flag: str, raw: str | None, implemented: int) -> None:
    """Refuses a command line of another contract version (spec section 5).

    Called right after the scan, before any other option is read, because a
    newer contract may have changed them.

    Args:
        flag: The option that carries the version.
        raw: Its raw value, ``None`` when absent (which means version 1).
        implemented: The codec's contract version.

    Raises:
        ArgumentError: ``BAD_VALUE`` for a malformed version or 0,
            ``UNSUPPORTED_CONTRACT_VERSION`` for a newer one.
    """
    if raw is None:
        return
    version = decimal_in(flag, raw)
    if version > implemented:
        raise ArgumentError(
            ErrorKind.UNSUPPORTED_CONTRACT_VERSION,
            f"--{flag}: the command line is for contract version {version}; this runtime knows "
            f"versions up to {implemented}: upgrade stepwire where the step runs",
            flag,
        )
    if version == 0:
        raise ArgumentError(ErrorKind.BAD_VALUE, f"--{flag}: contract versions start at 1", flag)


# --------------------------------------------------------------------------- #
# ENCODING_BASE64_JSON: canonical JSON, base64, zlib and references.


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(flag: str, text: str, max_payload_bytes: int) -> bytes:
    # Bound the work before matching: base64 of the largest payload and padding.
    if len(text) > max_payload_bytes * 4 // 3 + 4:
        raise ArgumentError(
            ErrorKind.PAYLOAD_TOO_LARGE,
            f"--{flag}: the value is longer than {max_payload_bytes} bytes allow",
            flag,
        )
    if not _BASE64.fullmatch(text):
        raise ArgumentError(
            ErrorKind.BAD_BASE64,
            f"--{flag}: not standard base64 (A-Z a-z 0-9 + /, '=' padding): {_show(text)}",
            flag,
        )
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:  # pragma: no cover - the pattern admits only valid text
        raise ArgumentError(ErrorKind.BAD_BASE64, f"--{flag}: {exc}", flag) from None
    # b64decode ignores non-zero padding bits; the round trip catches them, so
    # every payload has exactly one base64 text (padding aside).
    if _b64(data) != padded:
        raise ArgumentError(
            ErrorKind.BAD_BASE64, f"--{flag}: base64 with non-zero padding bits", flag
        )
    return data


def _out_of_memory(flag: str, error: type[CodecError]) -> CodecError:
    # Within the bounds a value fits in a few hundred MiB; a process given less
    # is refused the value, in one line, like any payload too large for it.
    return error(
        ErrorKind.PAYLOAD_TOO_LARGE,
        f"--{flag}: this process ran out of memory holding the payload",
        flag,
    )


def _canonical_json(flag: str, value: Any, error: type[CodecError]) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, RecursionError, ValueError) as exc:
        raise error(
            ErrorKind.BAD_JSON, f"--{flag}: JSON without a canonical form ({exc})", flag
        ) from None
    except MemoryError:
        raise _out_of_memory(flag, error) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate names silently; the spec refuses them.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {_show(key)}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN, Infinity and -Infinity, which are not JSON.
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int | float:
    # RFC 8785 numbers are IEEE 754 doubles, as in JavaScript: an integer
    # beyond 2^53 stands for the nearest double, so every implementation reads
    # it (and writes its canonical text) alike. float() also avoids int()'s
    # refusal of very long digit strings; an overflow to infinity is refused
    # when the value is canonicalized.
    if len(text.lstrip("-")) <= 15:
        return int(text)
    value = float(text)
    return int(text) if abs(value) < _SAFE_MAGNITUDE else value


def _check_depth(value: Any, max_json_depth: int) -> None:
    # Iterative, so the check itself cannot run out of stack; one iterator per
    # open container, so its memory follows the depth, not the size.
    if not isinstance(value, (dict, list)):
        return
    open_containers = [iter(value.values() if isinstance(value, dict) else value)]
    while open_containers:
        for child in open_containers[-1]:
            if isinstance(child, (dict, list)):
                if len(open_containers) >= max_json_depth:
                    raise ValueError(f"objects and arrays nested deeper than {max_json_depth}")
                open_containers.append(iter(child.values() if isinstance(child, dict) else child))
                break
        else:
            open_containers.pop()


def count_json_values(payload: bytes) -> int:
    """Counts the JSON values of a payload without parsing it (spec section 3.3.1).

    Outside string literals: every ``[`` and ``{``, every string literal, and
    every run of bytes other than JSON whitespace, ``"`` and ``[ ] { } : ,`` (a
    number or a literal), minus every ``:`` (one per member name). For a JSON
    text that is its number of values; for any other text it is still defined,
    so a reader can refuse a payload before parsing it. Runs in C loops over a
    few copies of the payload, never building a value.

    Args:
        payload: The payload's UTF-8 bytes (the delimiters are ASCII, so the
            count is that of its text).

    Returns:
        The count.
    """
    stripped, strings = _STRING_LITERAL.subn(b'"', payload)
    runs = stripped.translate(_RUN_BYTES)
    atoms = runs.count(b" a") + runs.startswith(b"a")
    return stripped.count(b"[") + stripped.count(b"{") + strings - stripped.count(b":") + atoms


def _first_value_character(text: str) -> str:
    match = _JSON_WHITESPACE.match(text)  # always matches, if only the empty string
    start = match.end() if match else 0
    return text[start : start + 1]


def _check_object_start(flag: str, text: str, error: type[CodecError]) -> None:
    # Before the parse: a payload that is no object fails in O(1), however large.
    first = _first_value_character(text)
    if first in _STARTS_NOT_AN_OBJECT:
        raise error(
            ErrorKind.WRONG_JSON_SHAPE,
            f"--{flag}: expected a JSON object, the value starts with {first!r}",
            flag,
        )


def _check_value_count(
    flag: str, payload: bytes, max_json_nodes: int, error: type[CodecError]
) -> None:
    count = count_json_values(payload)
    if count > max_json_nodes:
        raise error(
            ErrorKind.PAYLOAD_TOO_LARGE,
            f"--{flag}: the payload holds {count} JSON values, more than the "
            f"{max_json_nodes} of max_json_nodes",
            flag,
        )


def _parse_json(text: str, max_json_depth: int) -> Any:
    value = json.loads(
        text,
        object_pairs_hook=_no_duplicates,
        parse_constant=_reject_constant,
        parse_int=_int,
    )
    _check_depth(value, max_json_depth)
    return value


def string_map_out(flag: str, mapping: Mapping[str, str], max_json_nodes: int) -> dict[str, str]:
    """The JSON value of a ``map<string, string>`` field, for :func:`pack_json`.

    Args:
        flag: The option name.
        mapping: The field's entries.
        max_json_nodes: The message's bound on the JSON values of a payload.

    Returns:
        The entries as a dict.

    Raises:
        EncodeError: ``PAYLOAD_TOO_LARGE`` for more entries than the bound
            allows (the object and one string each), ``BAD_VALUE`` if a key or
            value holds a NUL character.
    """
    if 1 + len(mapping) > max_json_nodes:
        raise EncodeError(
            ErrorKind.PAYLOAD_TOO_LARGE,
            f"--{flag}: {len(mapping)} entries make {1 + len(mapping)} JSON values, more than "
            f"the {max_json_nodes} of max_json_nodes",
            flag,
        )
    for text in (*mapping, *mapping.values()):
        if "\x00" in text:
            raise EncodeError(
                ErrorKind.BAD_VALUE, f"--{flag}: a string holds a NUL character", flag
            )
    return dict(mapping)


def json_object_out(flag: str, text: str, max_json_depth: int, max_json_nodes: int) -> object:
    """The JSON value of a string field that holds a JSON object, for :func:`pack_json`.

    The checks come in the decoder's order: the first character, the number
    of values, then the parse.

    Args:
        flag: The option name.
        text: The field's JSON text (any formatting).
        max_json_depth: The message's bound on nesting.
        max_json_nodes: The message's bound on the JSON values of a payload.

    Returns:
        The parsed object.

    Raises:
        EncodeError: ``WRONG_JSON_SHAPE`` if it is not an object,
            ``PAYLOAD_TOO_LARGE`` if it holds more values than the bound,
            ``BAD_JSON`` if the text is not JSON.
    """
    _check_object_start(flag, text, EncodeError)
    # surrogatepass: a lone surrogate is refused by the parse below, not here.
    _check_value_count(flag, text.encode("utf-8", "surrogatepass"), max_json_nodes, EncodeError)
    try:
        value = _parse_json(text, max_json_depth)
    except (ValueError, RecursionError) as exc:
        raise EncodeError(
            ErrorKind.BAD_JSON, f"--{flag}: the value is not JSON ({exc})", flag
        ) from None
    if not isinstance(value, dict):
        raise EncodeError(ErrorKind.WRONG_JSON_SHAPE, f"--{flag}: the JSON is not an object", flag)
    return value


def _json_in(flag: str, payload: bytes, max_json_depth: int, max_json_nodes: int) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ArgumentError(
            ErrorKind.BAD_UTF8, f"--{flag}: the payload is not UTF-8", flag
        ) from None
    # Spec section 3.3.1: the shape and the number of values before the parse,
    # so that a hostile payload costs a scan, never the values it describes.
    _check_object_start(flag, text, ArgumentError)
    _check_value_count(flag, payload, max_json_nodes, ArgumentError)
    try:
        return _parse_json(text, max_json_depth)
    except (ValueError, RecursionError) as exc:
        raise ArgumentError(
            ErrorKind.BAD_JSON, f"--{flag}: the payload is not JSON ({exc})", flag
        ) from None


def _object_in(flag: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ArgumentError(
            ErrorKind.WRONG_JSON_SHAPE,
            f"--{flag}: expected a JSON object, got {type(value).__name__}",
            flag,
        )
    return value


def json_object_in(flag: str, value: Any) -> str:
    """The canonical JSON text of a decoded JSON object.

    Args:
        flag: The option name.
        value: The value :func:`unpack_json` returned.

    Returns:
        Its RFC 8785 text, the form a decoded message always holds.

    Raises:
        ArgumentError: ``WRONG_JSON_SHAPE`` if it is not an object, ``BAD_JSON``
            if it has no canonical form.
    """
    return _canonical_json(flag, _object_in(flag, value), ArgumentError).decode("utf-8")


def string_map_in(flag: str, value: Any) -> dict[str, str]:
    """The entries of a ``map<string, string>`` field from its decoded JSON.

    Args:
        flag: The option name.
        value: The value :func:`unpack_json` returned.

    Returns:
        The entries.

    Raises:
        ArgumentError: ``WRONG_JSON_SHAPE`` unless it is an object of strings,
            ``BAD_JSON`` for a lone surrogate, ``BAD_VALUE`` for a NUL character.
    """
    mapping = _object_in(flag, value)
    # The canonical form first (spec section 3.3: bad_json before any wrong shape),
    # so a value that overflows a double is bad_json whatever its place. JSON text
    # may also hold escapes (\u0000, lone surrogates) that a protobuf string
    # cannot; they are refused here rather than deep in protobuf.
    _canonical_json(flag, mapping, ArgumentError)
    for key, item in mapping.items():
        if not isinstance(item, str):
            raise ArgumentError(
                ErrorKind.WRONG_JSON_SHAPE,
                f"--{flag}: the value of key {_show(key)} is {type(item).__name__}, not a string",
                flag,
            )
    for text in (*mapping, *mapping.values()):
        if "\x00" in text:
            raise ArgumentError(
                ErrorKind.BAD_VALUE, f"--{flag}: a string holds a NUL character", flag
            )
    return mapping


def pack_json(
    flag: str,
    value: object,
    *,
    sensitive: bool,
    store: ReferenceStore | None,
    thresholds: ThresholdsLike,
    max_payload_bytes: int,
    max_inflated_bytes: int,
) -> str:
    """Encodes an ``ENCODING_BASE64_JSON`` value in the form the spec chooses.

    Inline base64 of the canonical JSON; compressed when the inline element is
    above ``compress_above_bytes``, compression makes it shorter and the
    payload is at most ``max_inflated_bytes``; by reference when still above
    ``reference_above_bytes``, or always when the option is sensitive.

    Args:
        flag: The option name.
        value: The JSON value (see :func:`string_map_out`, :func:`json_object_out`).
        sensitive: Whether the option only ever travels by reference.
        store: Where by-reference payloads go; ``None`` makes them an error.
        thresholds: When the value leaves the inline form.
        max_payload_bytes: The message's bound on payloads.
        max_inflated_bytes: The message's bound on compressed payloads.

    Returns:
        The element's text.

    Raises:
        EncodeError: If the value has no canonical form, is too large, or must
            go by reference without a usable store.
    """
    payload = _canonical_json(flag, value, EncodeError)
    if len(payload) > max_payload_bytes:
        raise EncodeError(
            ErrorKind.PAYLOAD_TOO_LARGE,
            f"--{flag}: {len(payload)} bytes exceed the contract's {max_payload_bytes}",
            flag,
        )
    inline = _b64(payload)
    element = inline
    if not sensitive:
        if len(inline) <= thresholds.compress_above_bytes:
            return inline
        if len(payload) <= max_inflated_bytes:
            # Level 9: compressed bytes are not canonical anyway, so take the smallest.
            compressed = COMPRESSED_PREFIX + _b64(zlib.compress(payload, 9))
            element = min(inline, compressed, key=len)
        if len(element) <= thresholds.reference_above_bytes:
            return element
    if store is None:
        reason = (
            "it is sensitive"
            if sensitive
            else f"it is {len(element)} bytes even compressed, above "
            f"{thresholds.reference_above_bytes}"
        )
        raise EncodeError(
            ErrorKind.NEEDS_REFERENCE_STORE,
            f"--{flag}: the value must go by reference ({reason}) but no reference store is set",
            flag,
        )
    digest = hashlib.sha256(payload).hexdigest()
    uri = store.put(payload, digest)
    if not uri or "\x00" in uri:
        raise EncodeError(
            ErrorKind.BAD_REFERENCE, f"--{flag}: the store returned no usable URI", flag
        )
    return f"{REFERENCE_PREFIX}{digest}:{uri}"


def _inflate(flag: str, data: bytes, max_inflated_bytes: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        # Stops one byte past the bound: a small element never inflates further.
        payload = inflater.decompress(data, max_inflated_bytes + 1)
    except zlib.error as exc:
        raise ArgumentError(
            ErrorKind.BAD_COMPRESSED, f"--{flag}: not a zlib stream ({exc})", flag
        ) from None
    if len(payload) > max_inflated_bytes or inflater.unconsumed_tail:
        raise ArgumentError(
            ErrorKind.PAYLOAD_TOO_LARGE,
            f"--{flag}: decompresses to more than the {max_inflated_bytes} bytes of "
            "max_inflated_bytes",
            flag,
        )
    if not inflater.eof:
        raise ArgumentError(
            ErrorKind.BAD_COMPRESSED, f"--{flag}: the zlib stream is truncated", flag
        )
    if inflater.unused_data:
        raise ArgumentError(
            ErrorKind.BAD_COMPRESSED, f"--{flag}: bytes follow the end of the zlib stream", flag
        )
    return payload


def _dereference(
    flag: str, raw: str, read_reference: ReferenceReader | None, max_payload_bytes: int
) -> bytes:
    match = _REFERENCE.fullmatch(raw)
    if match is None or "\x00" in raw:
        raise ArgumentError(
            ErrorKind.BAD_REFERENCE,
            f"--{flag}: malformed reference, expected ref:sha256:<64 lowercase hex>:<uri>",
            flag,
        )
    digest, uri = match.groups()
    if read_reference is None:
        raise ArgumentError(
            ErrorKind.REFERENCE_UNAVAILABLE,
            f"--{flag}: the value is a reference to {_show(uri, 80)} and no reader is configured",
            flag,
        )
    try:
        payload = read_reference(uri)
    except (CodecError, MemoryError):  # out of memory is payload_too_large (unpack_json)
        raise
    except ReferenceTooLargeError as exc:
        raise ArgumentError(ErrorKind.PAYLOAD_TOO_LARGE, f"--{flag}: {exc}", flag) from None
    except Exception as exc:  # a reader's failure of any kind is this one error
        raise ArgumentError(
            ErrorKind.REFERENCE_UNAVAILABLE,
            f"--{flag}: cannot read {_show(uri, 80)}: {type(exc).__name__}: {exc}",
            flag,
        ) from exc
    if len(payload) > max_payload_bytes:
        raise ArgumentError(
            ErrorKind.PAYLOAD_TOO_LARGE,
            f"--{flag}: the referenced payload exceeds {max_payload_bytes} bytes",
            flag,
        )
    actual = hashlib.sha256(payload).hexdigest()
    if actual != digest:
        raise ArgumentError(
            ErrorKind.SHA256_MISMATCH,
            f"--{flag}: {_show(uri, 80)} has sha256 {actual}, the reference says {digest}",
            flag,
        )
    return payload


def unpack_json(
    flag: str,
    raw: str,
    read_reference: ReferenceReader | None,
    *,
    max_payload_bytes: int,
    max_inflated_bytes: int,
    max_json_depth: int,
    max_json_nodes: int,
) -> tuple[Any, Form]:
    """Decodes an ``ENCODING_BASE64_JSON`` element in any of its forms.

    Every such value of the contract is a JSON object (the text of a message, or
    a map): a payload that starts like another kind of value is refused before
    it is parsed, and so is one with more values than ``max_json_nodes``.

    Args:
        flag: The option name.
        raw: The element's text.
        read_reference: Fetches by-reference payloads; ``None`` makes them an error.
        max_payload_bytes: The message's bound on payloads.
        max_inflated_bytes: The message's bound on compressed payloads.
        max_json_depth: The message's bound on nesting.
        max_json_nodes: The message's bound on the JSON values of a payload.

    Returns:
        The parsed JSON value and the form the element took.

    Raises:
        ArgumentError: For any element the spec refuses (section 3.3); running
            out of memory on it is ``PAYLOAD_TOO_LARGE``.
    """
    try:
        # The prefixes hold ':', which base64 never does: no form hides another.
        if raw.startswith(COMPRESSED_PREFIX):
            data = _unb64(flag, raw[len(COMPRESSED_PREFIX) :], max_payload_bytes)
            payload, form = _inflate(flag, data, max_inflated_bytes), Form.COMPRESSED
        elif raw.startswith("ref:"):
            payload = _dereference(flag, raw, read_reference, max_payload_bytes)
            form = Form.REFERENCE
        else:
            payload, form = _unb64(flag, raw, max_payload_bytes), Form.INLINE
        return _json_in(flag, payload, max_json_depth, max_json_nodes), form
    except MemoryError:
        raise _out_of_memory(flag, ArgumentError) from None


# --------------------------------------------------------------------------- #
# The command line as a whole: the scan and the custom options.


def scan(
    argv: Sequence[str], known: frozenset[str], *, unknown: list[str] | None = None
) -> dict[str, str]:
    """Reads the raw values of the known options, left to right (spec section 1.2).

    ``--name value`` and ``--name=value`` both work; a value that starts with a
    single ``-`` is a value, one that starts with ``--`` is the next option.
    Options not in ``known`` are skipped, with the value that follows them if
    it does not start with ``-``, for forward compatibility.

    Args:
        argv: The argv elements, without the command.
        known: The option names to read, without ``--``.
        unknown: If given, the name of each skipped option is appended to it, once,
            in the order met (what a reader shows as options it does not know).

    Returns:
        The raw value of each known option present, by name.

    Raises:
        ArgumentError: ``UNEXPECTED_ARGUMENT`` for an element that is not an
            option nor a value (or not a string), ``MISSING_VALUE`` for a known
            option without a value, ``REPEATED_OPTION`` for a known option given
            twice; the first problem from the left is reported.
    """
    values: dict[str, str] = {}
    index = 0
    while index < len(argv):
        token = argv[index]
        if not isinstance(token, str):
            raise ArgumentError(
                ErrorKind.UNEXPECTED_ARGUMENT, f"argument {index} is not a string: {token!r}"
            )
        if not token.startswith("--") or token == "--":
            raise ArgumentError(
                ErrorKind.UNEXPECTED_ARGUMENT,
                f"argument {index}: {_show(token)} is not an option (options start with --)",
            )
        name, joined, value = token[2:].partition("=")
        following = argv[index + 1] if index + 1 < len(argv) else None
        if name in known:
            if not joined:
                if following is None or following.startswith("--"):
                    raise ArgumentError(ErrorKind.MISSING_VALUE, f"--{name}: no value given", name)
                value = following
                index += 1
            # After the value: "--x a --x" at the end is a missing value (spec 1.2).
            if name in values:
                raise ArgumentError(
                    ErrorKind.REPEATED_OPTION, f"--{name}: given more than once", name
                )
            values[name] = value
        else:
            if unknown is not None and name and name not in unknown:
                unknown.append(name)
            if not joined and following is not None and not following.startswith("-"):
                # An option of a newer contract: skip it and the value it carries.
                index += 1
        index += 1
    return values


def parse_custom_arguments(argv: Sequence[str], names: frozenset[str]) -> dict[str, str]:
    """Turns a configuration's custom argument list into values by option name.

    Stricter than :func:`scan`, because the list is written by a person rather
    than read from a launcher: every element must be part of a ``--name value``
    or ``--name=value`` pair whose name is declared. A value may be empty. As
    for :func:`scan`, an element starting with ``--`` is never taken for a
    value (write ``--name=--value``); ``-1`` is. Values are not checked here;
    ``encode`` checks them as custom values.

    Args:
        argv: The elements, for example ``["--name", "value", "--other=value"]``.
        names: The custom option names the configuration declares, without ``--``.

    Returns:
        The value of each option given, by name, in the order given.

    Raises:
        EncodeError: ``UNEXPECTED_ARGUMENT`` for an element that is neither an
            option nor its value, ``BAD_CUSTOM_OPTION`` for a name not in
            ``names``, ``MISSING_VALUE`` for an option without a value and
            ``REPEATED_OPTION`` for one given twice; the first problem from the
            left is reported.
    """
    values: dict[str, str] = {}
    index = 0
    while index < len(argv):
        token = argv[index]
        if not isinstance(token, str):
            raise EncodeError(
                ErrorKind.UNEXPECTED_ARGUMENT,
                f"custom argument {index} is not a string: {token!r}",
            )
        if not token.startswith("--") or token == "--":
            raise EncodeError(
                ErrorKind.UNEXPECTED_ARGUMENT,
                f"custom argument {index}: {_show(token)} is not an option "
                "(expected --name value or --name=value)",
            )
        name, joined, value = token[2:].partition("=")
        if name not in names:
            declared = ", ".join(sorted(names)) or "none"
            raise EncodeError(
                ErrorKind.BAD_CUSTOM_OPTION,
                f"--{name}: not a custom option of the configuration (declared: {declared})",
                name,
            )
        if not joined:
            following = argv[index + 1] if index + 1 < len(argv) else None
            if not isinstance(following, str) or following.startswith("--"):
                raise EncodeError(
                    ErrorKind.MISSING_VALUE,
                    f"--{name}: no value given (write --{name}=VALUE for a value that "
                    "starts with '--')",
                    name,
                )
            value = following
            index += 1
        if name in values:
            raise EncodeError(ErrorKind.REPEATED_OPTION, f"--{name}: given more than once", name)
        values[name] = value
        index += 1
    return values


def check_custom_option_names(
    custom_options: Iterable[str],
    flags: frozenset[str],
    error: type[CodecError] = ArgumentError,
) -> frozenset[str]:
    """Checks the names of a configuration's custom options (spec section 4).

    Args:
        custom_options: Option names without ``--``.
        flags: The contract's flags, which custom options must not reuse.
        error: The error class to raise (encoding or decoding side).

    Returns:
        The names as a frozen set.

    Raises:
        CodecError: Of class ``error``: ``BAD_CUSTOM_OPTION`` for a malformed
            name, ``OPTION_CLASH`` for a contract flag; the first name in sorted
            order is reported.
    """
    names = frozenset(custom_options)
    # Sorted, so that the error reported does not depend on set order.
    for name in sorted(names):
        if not isinstance(name, str) or not _CUSTOM_OPTION.fullmatch(name):
            raise error(
                ErrorKind.BAD_CUSTOM_OPTION,
                f"custom option {name!r} must match {_CUSTOM_OPTION.pattern} (no leading --)",
            )
        if name in flags:
            raise error(
                ErrorKind.OPTION_CLASH,
                f"custom option {name!r} is already an option of the contract",
                name,
            )
    return names


def emit_custom(argv: list[str], custom: Mapping[str, str]) -> None:
    """Appends the custom options, sorted by name (spec section 1.1).

    Args:
        argv: The argv being built.
        custom: The custom values by name; plain text, may be empty.

    Raises:
        EncodeError: If a value is not text an argv can carry.
    """
    for name in sorted(custom):
        check_text(name, custom[name], EncodeError)
        emit(argv, name, custom[name])


def read_custom(values: Mapping[str, str], names: frozenset[str]) -> dict[str, str]:
    """The values of the declared custom options, checked by name.

    Args:
        values: The raw values found by :func:`scan`.
        names: The declared custom option names.

    Returns:
        The value of every declared custom option.

    Raises:
        ArgumentError: ``MISSING_OPTION`` for an absent one (all are required),
            ``BAD_VALUE``/``BAD_UTF8`` for text an argv cannot carry.
    """
    custom: dict[str, str] = {}
    for name in sorted(names):
        if name not in values:
            raise ArgumentError(
                ErrorKind.MISSING_OPTION, f"--{name}: required custom option is missing", name
            )
        check_text(name, values[name], ArgumentError)
        custom[name] = values[name]
    return custom


def add_option_arguments(
    parser: argparse.ArgumentParser, title: str, options: Iterable[OptionSpec]
) -> None:
    """Declares options on an argparse parser, for ``--help``.

    Args:
        parser: The parser to extend.
        title: The title of the argument group.
        options: The options to declare; values stay raw text.
    """
    group = parser.add_argument_group(title)
    for option in options:
        group.add_argument(
            f"--{option.flag}",
            dest=option.flag,
            required=option.required,
            metavar=option.encoding.name,
            # argparse expands %-formats in help texts.
            help=option.help.replace("%", "%%"),
        )
