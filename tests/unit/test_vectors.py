"""The language-neutral vectors of ``contract/testdata`` against the Python codec."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec

TESTDATA = Path(__file__).resolve().parents[2] / "contract" / "testdata"
VALID: list[dict[str, Any]] = json.loads((TESTDATA / "valid.json").read_text("utf-8"))["cases"]
INVALID: list[dict[str, Any]] = json.loads((TESTDATA / "invalid.json").read_text("utf-8"))["cases"]
JSON_FLAGS = frozenset(o.flag for o in codec.OPTIONS if o.encoding is codec.Encoding.BASE64_JSON)
ENCODE_ONLY_KINDS = frozenset({codec.ErrorKind.NEEDS_REFERENCE_STORE})

# Vectors the codec gets wrong today. Strict xfail: fixing the codec turns the
# case into an XPASS failure, so the entry must then be removed.
KNOWN_CODEC_BUGS: dict[str, str] = {}


class MemoryStore:
    """The vectors' reference store: each payload at ``prefix + sha256 hex``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.objects: dict[str, bytes] = {}

    def put(self, payload: bytes, sha256_hex: str) -> str:
        assert hashlib.sha256(payload).hexdigest() == sha256_hex
        uri = self.prefix + sha256_hex
        self.objects[uri] = payload
        return uri


def reader(case: dict[str, Any]) -> Callable[[str], bytes]:
    objects = {uri: base64.b64decode(data) for uri, data in case.get("objects", {}).items()}

    def read(uri: str) -> bytes:
        if uri not in objects:
            raise FileNotFoundError(uri)
        return objects[uri]

    return read


def message(case: dict[str, Any]) -> codec.EntrypointArgs:
    return json_format.ParseDict(case["message"], codec.EntrypointArgs())


def thresholds(case: dict[str, Any]) -> codec.Thresholds:
    if "thresholds" not in case:
        return codec.DEFAULT_THRESHOLDS
    return codec.Thresholds(**case["thresholds"])


def inflate(element: str) -> bytes:
    return zlib.decompress(base64.b64decode(element.removeprefix(codec.COMPRESSED_PREFIX)))


def assert_same_argv(actual: list[str], expected: list[str]) -> None:
    """Exact comparison, except compressed JSON values: by decompressed payload."""
    assert len(actual) == len(expected), (actual, expected)
    previous = None
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        is_json_value = previous is not None and previous[2:] in JSON_FLAGS
        if is_json_value and want.startswith(codec.COMPRESSED_PREFIX):
            assert got.startswith(codec.COMPRESSED_PREFIX), (index, got[:80])
            assert inflate(got) == inflate(want), index
        else:
            assert got == want, index
        previous = want


def expected_form(element: str) -> codec.Form:
    if element.startswith(codec.COMPRESSED_PREFIX):
        return codec.Form.COMPRESSED
    if element.startswith("ref:"):
        return codec.Form.REFERENCE
    return codec.Form.INLINE


def params(cases: list[dict[str, Any]], direction: str) -> list[Any]:
    selected = []
    for case in cases:
        directions = case.get("directions", [case.get("direction", "decode")])
        if direction not in directions:
            continue
        marks = []
        if case["name"] in KNOWN_CODEC_BUGS:
            reason = KNOWN_CODEC_BUGS[case["name"]]
            marks.append(pytest.mark.xfail(reason=reason, strict=True, raises=ValueError))
        selected.append(pytest.param(case, id=case["name"], marks=marks))
    return selected


# --------------------------------------------------------------------------- #
# The files themselves.


def test_case_counts() -> None:
    assert len(VALID) >= 40
    assert len(INVALID) >= 40


def test_names_unique() -> None:
    for cases in (VALID, INVALID):
        names = [case["name"] for case in cases]
        assert len(names) == len(set(names))


def test_every_error_kind_is_covered() -> None:
    decode_kinds = {c["error"] for c in INVALID if c.get("direction", "decode") == "decode"}
    every = {kind.value for kind in codec.ErrorKind}
    assert every - {kind.value for kind in ENCODE_ONLY_KINDS} <= decode_kinds
    assert {c["error"] for c in INVALID} == every


def test_cases_are_well_formed() -> None:
    kinds = {kind.value for kind in codec.ErrorKind}
    for case in VALID:
        assert set(case["directions"]) in ({"encode", "decode"}, {"decode"}), case["name"]
        assert case["description"]
        if "custom" in case:
            assert sorted(case["custom"]) == sorted(case["custom_options"]), case["name"]
    for case in INVALID:
        assert case["error"] in kinds, case["name"]
        assert case.get("direction", "decode") in ("encode", "decode"), case["name"]
        assert case["flag"] is None or isinstance(case["flag"], str)


def test_canonical_pipeline_json_in_valid_messages() -> None:
    import rfc8785

    def number(text: str) -> int | float:
        # RFC 8785 numbers are doubles: integers beyond 2^53 read as floats.
        value = int(text)
        return value if abs(value) < 2**53 else float(text)

    for case in VALID:
        text = case["message"]["pipeline_json"]
        assert rfc8785.dumps(json.loads(text, parse_int=number)).decode() == text, case["name"]


# --------------------------------------------------------------------------- #
# Valid vectors.


@pytest.mark.parametrize("case", params(VALID, "encode"))
def test_valid_encode(case: dict[str, Any]) -> None:
    store = MemoryStore(case["store"]) if "store" in case else None
    argv = codec.encode(
        message(case), custom=case.get("custom"), store=store, thresholds=thresholds(case)
    )
    assert_same_argv(argv, case["argv"])
    if store is not None:
        expected = {uri: base64.b64decode(data) for uri, data in case.get("objects", {}).items()}
        assert store.objects
        for uri, payload in store.objects.items():
            assert expected[uri] == payload


@pytest.mark.parametrize("case", params(VALID, "decode"))
def test_valid_decode(case: dict[str, Any]) -> None:
    decoded = codec.decode(
        case["argv"], custom_options=case.get("custom_options", ()), read_reference=reader(case)
    )
    assert decoded.args == message(case)
    assert dict(decoded.custom) == case.get("custom", {})
    argv = case["argv"]
    for index, element in enumerate(argv):
        name, joined, value = element[2:].partition("=")
        if name in JSON_FLAGS and element.startswith("--"):
            raw = value if joined else argv[index + 1]
            assert decoded.forms[name] is expected_form(raw)


# --------------------------------------------------------------------------- #
# Invalid vectors.


@pytest.mark.parametrize("case", params(INVALID, "decode"))
def test_invalid_decode(case: dict[str, Any]) -> None:
    with pytest.raises(codec.ArgumentError) as caught:
        codec.decode(
            case["argv"],
            custom_options=case.get("custom_options", ()),
            read_reference=reader(case),
        )
    assert caught.value.kind.value == case["error"]
    assert caught.value.flag == case["flag"]
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", params(INVALID, "encode"))
def test_invalid_encode(case: dict[str, Any]) -> None:
    with pytest.raises(codec.EncodeError) as caught:
        codec.encode(message(case), custom=case.get("custom"), thresholds=thresholds(case))
    assert caught.value.kind.value == case["error"]
    assert caught.value.flag == case["flag"]


# --------------------------------------------------------------------------- #
# What a language-neutral file cannot say.


def test_reference_without_reader() -> None:
    case = next(c for c in VALID if c["name"] == "reference_small_map")
    with pytest.raises(codec.ArgumentError) as caught:
        codec.decode(case["argv"])
    assert caught.value.kind is codec.ErrorKind.REFERENCE_UNAVAILABLE
    assert caught.value.flag == "materializer_sources"


def test_reader_raising_any_exception() -> None:
    case = next(c for c in VALID if c["name"] == "reference_small_map")

    def broken(uri: str) -> bytes:
        raise RuntimeError(f"network down for {uri}")

    with pytest.raises(codec.ArgumentError) as caught:
        codec.decode(case["argv"], read_reference=broken)
    assert caught.value.kind is codec.ErrorKind.REFERENCE_UNAVAILABLE


def test_referenced_payload_too_large() -> None:
    payload = b" " * (codec.MAX_PAYLOAD_BYTES + 1)
    digest = hashlib.sha256(payload).hexdigest()
    case = next(c for c in VALID if c["name"] == "minimal")
    argv = list(case["argv"])
    argv[argv.index("--pipeline_json") + 1] = f"ref:sha256:{digest}:mem://big"
    with pytest.raises(codec.ArgumentError) as caught:
        codec.decode(argv, read_reference=lambda uri: payload)
    assert caught.value.kind is codec.ErrorKind.PAYLOAD_TOO_LARGE
    assert caught.value.flag == "pipeline_json"


def test_reference_needs_store_at_contract_thresholds() -> None:
    case = next(c for c in VALID if c["name"] == "reference_pipeline_json")
    with pytest.raises(codec.EncodeError) as caught:
        codec.encode(message(case))
    assert caught.value.kind is codec.ErrorKind.NEEDS_REFERENCE_STORE
    assert caught.value.flag == "pipeline_json"
