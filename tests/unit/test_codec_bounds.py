"""The bounds on a JSON payload (contract section 3.3.1): inflated size, shape, value count.

Issue 14 section 5: an 87 KB ``zlib:`` value inflated to 64 MiB of nested empty
lists, and the decoder took 3.2 GiB and 23 s to parse it only to refuse its shape;
in a step that was a MemoryError, exit 70. Each bound is pinned here at its edge,
the bombs by the memory their refusal takes (tracemalloc, never the time).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stepwire_testkit import StackDir, explain

from stepwire import codec_runtime as rt
from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec

K = rt.ErrorKind
MiB = 2**20
CONFIG = "stepwire.orchestrators.subprocess_orchestrator.SubprocessEntrypointConfiguration"


def argv(pipeline: str = "e30=", inputs: str = "e30=") -> list[str]:
    """A command line that is valid but for the two JSON values given."""
    return [
        "--entrypoint_config_source",
        CONFIG,
        "--main_module_source",
        "bounds_test_module",
        "--step_source",
        "bounds_test_module.Step",
        "--pipeline_json",
        pipeline,
        "--input_artifact_sources",
        inputs,
        "--materializer_sources",
        "e30=",
    ]


def compressed(chunks: Iterator[bytes]) -> str:
    """The ``zlib:`` element of the concatenated chunks, compressed as they come."""
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(chunk) for chunk in chunks]
    parts.append(compressor.flush())
    return rt.COMPRESSED_PREFIX + base64.b64encode(b"".join(parts)).decode("ascii")


def nested_lists(size: int, prefix: bytes = b"[") -> Iterator[bytes]:
    """``[[],[],...,[]]`` (after ``prefix``) of exactly ``size`` bytes, 1 MiB at a time."""
    body = size - len(prefix) - 3  # the prefix, the last "[]" and the closing "]"
    yield prefix
    count, rest = divmod(body, 3)
    step = MiB // 3
    for start in range(0, count, step):
        yield b"[]," * min(step, count - start)
    yield b" " * rest + b"[]]"


def the_issue_bomb() -> str:
    """The bomb of issue 14: 64 MiB of nested empty lists in an 87 KB element."""
    return compressed(nested_lists(64 * MiB))


def zeros(values: int) -> bytes:
    """``{"a":[0,...]}`` holding exactly ``values`` JSON values."""
    return b'{"a":[' + b",".join([b"0"] * (values - 2)) + b"]}"


def refusal(call: Callable[[], Any]) -> rt.CodecError:
    with pytest.raises(rt.CodecError) as caught:
        call()
    return caught.value


def peak_bytes(call: Callable[[], Any]) -> tuple[rt.CodecError, int]:
    """The refusal ``call`` raises and the peak of what Python allocated meanwhile."""
    tracemalloc.start()
    try:
        error = refusal(call)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return error, peak


# --------------------------------------------------------------------------- #
# The inflated size.


def test_the_issue_bomb_stops_at_the_inflated_bound() -> None:
    element = the_issue_bomb()
    assert 80_000 < len(element) < 90_000  # the 87 KB class of the issue
    error, peak = peak_bytes(lambda: codec.decode(argv(pipeline=element)))
    assert (error.kind, error.flag) == (K.PAYLOAD_TOO_LARGE, "pipeline_json")
    assert str(error) == (
        "--pipeline_json: decompresses to more than the 4194304 bytes of max_inflated_bytes"
    )
    # 4 MiB + 1 inflated at most, and no parse: it was 3.2 GiB.
    assert peak < 16 * MiB, peak


def test_exactly_the_inflated_bound_inflates() -> None:
    # Exactly the bound and one byte more: only the second is refused while inflating.
    at = compressed(nested_lists(codec.MAX_INFLATED_BYTES, prefix=b' {"a":['))
    over = compressed(nested_lists(codec.MAX_INFLATED_BYTES + 1, prefix=b' {"a":['))
    # At the bound the bytes inflate; their 1.4 million lists then break the value count.
    error = refusal(lambda: codec.decode(argv(pipeline=at)))
    assert error.kind is K.PAYLOAD_TOO_LARGE
    assert "max_json_nodes" in str(error)
    error = refusal(lambda: codec.decode(argv(pipeline=over)))
    assert error.kind is K.PAYLOAD_TOO_LARGE
    assert "max_inflated_bytes" in str(error)


def test_the_encoder_never_compresses_past_the_inflated_bound() -> None:
    class Store:
        def put(self, payload: bytes, sha256_hex: str) -> str:
            return f"mem://{sha256_hex}"

    value = {"a": "x" * 100}  # compresses to less than half its inline element
    size = len(rfc8785.dumps(value))

    def pack(max_inflated_bytes: int, reference_above_bytes: int, store: Any) -> str:
        return rt.pack_json(
            "f",
            value,
            sensitive=False,
            store=store,
            thresholds=codec.Thresholds(16, reference_above_bytes),
            max_payload_bytes=1000,
            max_inflated_bytes=max_inflated_bytes,
        )

    assert pack(size, 100, None).startswith(rt.COMPRESSED_PREFIX)
    # One byte over: the inline element is the candidate, by reference when too long.
    assert pack(size - 1, 100, Store()).startswith(rt.REFERENCE_PREFIX)
    assert base64.b64decode(pack(size - 1, 10_000, None)) == rfc8785.dumps(value)


# --------------------------------------------------------------------------- #
# The shape, from the first character.


def test_a_wrong_shape_bomb_fails_on_its_first_character() -> None:
    # Exactly the inflated bound, 1398102 values: refused without counting them.
    element = compressed(nested_lists(codec.MAX_INFLATED_BYTES))
    error, peak = peak_bytes(lambda: codec.decode(argv(pipeline=element)))
    assert (error.kind, error.flag) == (K.WRONG_JSON_SHAPE, "pipeline_json")
    assert str(error) == "--pipeline_json: expected a JSON object, the value starts with '['"
    assert peak < 24 * MiB, peak  # the bytes and their text; a parse takes hundreds


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"[]", K.WRONG_JSON_SHAPE),
        (b' \t\r\n["a",', K.WRONG_JSON_SHAPE),  # not JSON either: the shape comes first
        (b'"unterminated', K.WRONG_JSON_SHAPE),
        (b"1", K.WRONG_JSON_SHAPE),  # once parsed
        (b"null", K.WRONG_JSON_SHAPE),
        (b"nope", K.BAD_JSON),
        (b"", K.BAD_JSON),
        (b"\xef\xbb\xbf{}", K.BAD_JSON),  # a byte order mark is not JSON whitespace
        (b"[\xff]", K.BAD_UTF8),  # UTF-8 is checked before the shape
    ],
)
def test_shape_before_the_parse(payload: bytes, kind: rt.ErrorKind) -> None:
    inline = base64.b64encode(payload).decode("ascii")
    for args in (argv(pipeline=inline), argv(inputs=inline)):
        assert refusal(lambda args=args: codec.decode(args)).kind is kind


def test_the_encoder_checks_the_shape_first() -> None:
    error = refusal(lambda: rt.json_object_out("f", '  ["a",', 500, 1000))
    assert (error.kind, type(error)) == (K.WRONG_JSON_SHAPE, rt.EncodeError)


# --------------------------------------------------------------------------- #
# The number of values.


def test_the_node_bound_at_its_edge() -> None:
    at = compressed(iter([zeros(codec.MAX_JSON_NODES)]))
    decoded = codec.decode(argv(pipeline=at))
    assert len(json.loads(decoded.args.pipeline_json)["a"]) == codec.MAX_JSON_NODES - 2
    over = compressed(iter([zeros(codec.MAX_JSON_NODES + 1)]))
    error = refusal(lambda: codec.decode(argv(pipeline=over)))
    assert (error.kind, error.flag) == (K.PAYLOAD_TOO_LARGE, "pipeline_json")
    assert str(error) == (
        "--pipeline_json: the payload holds 1000001 JSON values, more than the 1000000 of "
        "max_json_nodes"
    )


def test_an_object_bomb_is_counted_not_parsed() -> None:
    # The right shape, within the inflated bound, 1.4 million values.
    element = compressed(nested_lists(codec.MAX_INFLATED_BYTES, prefix=b'{"a":['))
    error, peak = peak_bytes(lambda: codec.decode(argv(pipeline=element)))
    assert (error.kind, error.flag) == (K.PAYLOAD_TOO_LARGE, "pipeline_json")
    assert peak < 40 * MiB, peak  # a few copies of 4 MiB; the parse would take ~100 MiB


def test_by_reference_too_many_values() -> None:
    payload = zeros(codec.MAX_JSON_NODES + 1)
    digest = hashlib.sha256(payload).hexdigest()
    reference = f"{rt.REFERENCE_PREFIX}{digest}:mem://big"
    error = refusal(lambda: codec.decode(argv(inputs=reference), read_reference=lambda _: payload))
    assert (error.kind, error.flag) == (K.PAYLOAD_TOO_LARGE, "input_artifact_sources")


@pytest.mark.parametrize("bound", [1, 2, 3, 7])
def test_the_count_edge_with_small_bounds(bound: int) -> None:
    # {"k0":"","k1":"",...}: the object and one string per entry.
    def element(values: int) -> str:
        entries = {f"k{i}": "" for i in range(values - 1)}
        return base64.b64encode(rfc8785.dumps(entries)).decode("ascii")

    def unpack(values: int) -> Any:
        return rt.unpack_json(
            "f",
            element(values),
            None,
            max_payload_bytes=MiB,
            max_inflated_bytes=MiB,
            max_json_depth=500,
            max_json_nodes=bound,
        )

    value, _ = unpack(bound)
    assert len(value) == bound - 1
    assert refusal(lambda: unpack(bound + 1)).kind is K.PAYLOAD_TOO_LARGE
    # The encoder refuses the same: maps and JSON text.
    assert len(rt.string_map_out("f", {f"k{i}": "" for i in range(bound - 1)}, bound)) == bound - 1
    error = refusal(lambda: rt.string_map_out("f", {f"k{i}": "" for i in range(bound)}, bound))
    assert (error.kind, type(error)) == (K.PAYLOAD_TOO_LARGE, rt.EncodeError)
    text = json.dumps({f"k{i}": "" for i in range(bound)})
    error = refusal(lambda: rt.json_object_out("f", text, 500, bound))
    assert (error.kind, type(error)) == (K.PAYLOAD_TOO_LARGE, rt.EncodeError)


def test_the_count_comes_before_the_syntax() -> None:
    # Duplicate names and an unclosed object: over the bound, the count decides.
    element = base64.b64encode(b'{"a":0,"a":0,"a":0').decode("ascii")
    error = refusal(
        lambda: rt.unpack_json(
            "f",
            element,
            None,
            max_payload_bytes=MiB,
            max_inflated_bytes=MiB,
            max_json_depth=500,
            max_json_nodes=3,
        )
    )
    assert error.kind is K.PAYLOAD_TOO_LARGE


def _values(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_values(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(item) for item in value)
    return 1


JSON_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8) | st.sampled_from(
    ['"', "\\", ":", ",", "[", "]", "{", "}", " ", '\\"', "\\\\"]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(JSON_TEXT, children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES, st.sampled_from([None, 0, 2]), st.booleans())
def test_the_count_is_the_number_of_values(
    value: Any, indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert rt.count_json_values(text.encode("utf-8")) == _values(value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")))
def test_the_count_of_any_bytes(payload: bytes) -> None:
    # Defined for every text: an int, never an error, never above a value per byte.
    assert rt.count_json_values(payload) <= len(payload)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (b'{"a":[1,"b",null]}', 5),  # the example of the contract
        (b"", 0),
        (b"nope", 1),
        (b'"\\"[{:,"', 1),  # an escaped quote inside a string
        (b'"ends with a backslash\\', 1),
        (b'"unterminated [[[', 1),
        (b"1 2 3", 3),
        (b"::", -2),
    ],
)
def test_the_count_of_some_texts(text: bytes, count: int) -> None:
    assert rt.count_json_values(text) == count


# --------------------------------------------------------------------------- #
# Exhaustion is a payload error, never a crash.


def test_running_out_of_memory_is_payload_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: object, **kwargs: object) -> Any:
        raise MemoryError

    monkeypatch.setattr(rt, "_parse_json", no_memory)
    error = refusal(lambda: codec.decode(argv()))
    assert (error.kind, error.flag) == (K.PAYLOAD_TOO_LARGE, "pipeline_json")
    assert str(error) == "--pipeline_json: this process ran out of memory holding the payload"
    monkeypatch.undo()
    monkeypatch.setattr(rfc8785, "dumps", no_memory)
    error = refusal(lambda: codec.decode(argv()))
    assert (error.kind, error.flag) == (K.PAYLOAD_TOO_LARGE, "pipeline_json")
    monkeypatch.undo()
    # A reader that runs out of memory too: not an unavailable reference.
    reference = f"{rt.REFERENCE_PREFIX}{'0' * 64}:mem://big"
    error = refusal(lambda: codec.decode(argv(inputs=reference), read_reference=no_memory))
    assert (error.kind, error.flag) == (K.PAYLOAD_TOO_LARGE, "input_artifact_sources")


def test_the_step_entrypoint_exits_64_with_one_line(tmp_path: Path) -> None:
    stack = StackDir(tmp_path)
    record = tmp_path / "record.json"
    proc = subprocess.run(
        [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", *argv(the_issue_bomb())],
        cwd=tmp_path,
        env=stack.env(STEPWIRE_FAILURE_RECORD=str(record)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 64, explain(proc)
    assert proc.stderr.splitlines() == [
        "stepwire: bad_arguments: --pipeline_json: decompresses to more than the 4194304 bytes "
        "of max_inflated_bytes"
    ], explain(proc)
    parsed = json.loads(record.read_text(encoding="utf-8"))
    assert (parsed["error_kind"], parsed["option"]) == ("payload_too_large", "pipeline_json")
