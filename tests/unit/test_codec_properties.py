"""Properties of the generated entrypoint codec (hypothesis)."""

from __future__ import annotations

import base64
import hashlib
import string
import zlib
from typing import Any

import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STORE_PREFIX = "mem://refs/"

# --------------------------------------------------------------------------- #
# Messages.

# Text a protobuf string and an argv element can hold: no surrogates, no NUL.
TEXT_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
text = st.text(TEXT_CHARS, max_size=12)
plain = st.text(TEXT_CHARS, min_size=1, max_size=24)


def _has_canonical_number_text(value: float) -> bool:
    # RFC 8785 writes doubles in [2^53, 1e21) as integer digits, which the codec
    # then reads as an integer beyond 2^53 and refuses (test_codec_consistency).
    return abs(value) < 2**53 or abs(value) >= 1e21


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False).filter(_has_canonical_number_text),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=4
        )
    ),
    max_leaves=16,
)
json_objects = st.dictionaries(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8), json_values, max_size=5
)
string_maps = st.dictionaries(text, text, max_size=5)
custom_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,10}", fullmatch=True).filter(
    lambda name: name not in codec.FLAGS
)
customs = st.dictionaries(custom_names, st.text(TEXT_CHARS, max_size=12), max_size=3)
thresholds = st.sampled_from(
    [
        codec.DEFAULT_THRESHOLDS,
        codec.Thresholds(compress_above_bytes=8, reference_above_bytes=10_000),
        codec.Thresholds(compress_above_bytes=8, reference_above_bytes=40),
        codec.Thresholds(compress_above_bytes=16, reference_above_bytes=16),
    ]
)


@st.composite
def messages(draw: st.DrawFn) -> codec.EntrypointArgs:
    args = codec.EntrypointArgs(
        entrypoint_config_source=draw(plain),
        main_module_source=draw(plain),
        step_source=draw(plain),
        pipeline_json=rfc8785.dumps(draw(json_objects)).decode("utf-8"),
    )
    args.input_artifact_sources.update(draw(string_maps))
    args.materializer_sources.update(draw(string_maps))
    if draw(st.booleans()):
        args.contract_version = 1
    run_name = draw(st.none() | plain)
    if run_name is not None:
        args.run_name = run_name
    return args


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, payload: bytes, sha256_hex: str) -> str:
        uri = STORE_PREFIX + sha256_hex
        self.objects[uri] = payload
        return uri

    def read(self, uri: str) -> bytes:
        return self.objects[uri]


# --------------------------------------------------------------------------- #
# Round trips.


@SETTINGS
@given(args=messages(), custom=customs, limits=thresholds)
def test_round_trips(
    args: codec.EntrypointArgs, custom: dict[str, str], limits: codec.Thresholds
) -> None:
    store = MemoryStore()
    argv = codec.encode(args, custom=custom, store=store, thresholds=limits)
    # decode(encode(x)) == x, custom options included.
    decoded = codec.decode(argv, custom_options=frozenset(custom), read_reference=store.read)
    assert decoded.args == args
    assert dict(decoded.custom) == custom
    # encode(decode(argv)) == argv for a canonical argv.
    again = codec.encode(decoded.args, custom=dict(decoded.custom), store=store, thresholds=limits)
    assert again == argv


@settings(SETTINGS, max_examples=100)
@given(args=messages())
def test_canonical_argv_shape(args: codec.EntrypointArgs) -> None:
    argv = codec.encode(args)
    flags = [element[2:].partition("=")[0] for element in argv if element.startswith("--")]
    order = [option.flag for option in codec.OPTIONS]
    assert flags == sorted(flags, key=order.index)
    assert set(flags) >= codec.REQUIRED_FLAGS
    assert ("contract_version" in flags) == args.HasField("contract_version")
    assert ("run_name" in flags) == args.HasField("run_name")


# --------------------------------------------------------------------------- #
# Arbitrary input: ArgumentError or success, nothing else.

FLAG_NAMES = [*sorted(codec.FLAGS), "extra", "unknown_option"]
junk_text = st.text(max_size=16)  # surrogates and NUL included
base64_junk = st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode()) | st.text(
    string.ascii_letters + string.digits + "+/=-_ \n", max_size=16
)
json_payloads = st.one_of(
    json_values.map(rfc8785.dumps),
    st.sampled_from([b"{}", b"[]", b"null", b'{"a":1,"a":2}', b'{"a":NaN}', b"\xff", b""]),
    st.binary(max_size=16),
)
compressed_junk = st.one_of(
    json_payloads.map(lambda b: "zlib:" + base64.b64encode(zlib.compress(b)).decode()),
    json_payloads.map(lambda b: "zlib:" + base64.b64encode(zlib.compress(b)[:-3]).decode()),
    base64_junk.map(lambda s: "zlib:" + s),
)
reference_junk = st.one_of(
    json_payloads.map(lambda b: f"ref:sha256:{hashlib.sha256(b).hexdigest()}:mem://known"),
    st.builds(
        lambda h, uri: f"ref:sha256:{h}:{uri}",
        st.text("0123456789abcdefABCDEF", min_size=62, max_size=66),
        junk_text,
    ),
    junk_text.map(lambda s: "ref:" + s),
)
values = st.one_of(
    junk_text,
    base64_junk,
    json_payloads.map(lambda b: base64.b64encode(b).decode()),
    compressed_junk,
    reference_junk,
    st.integers(-5, 2**33).map(str),
)
options = st.sampled_from(FLAG_NAMES).map(lambda f: "--" + f)
elements = st.one_of(
    options,
    st.builds(lambda o, v: f"{o}={v}", options, values),
    values,
    st.sampled_from(["--", "-", "-x", "--=", "--unknown"]),
)


def _reader(payload: bytes) -> Any:
    def read(uri: str) -> bytes:
        if uri == "mem://known":
            return payload
        raise KeyError(uri)

    return read


def _decode_or_refuse(argv: list[str], custom_options: frozenset[str], reader: Any) -> None:
    try:
        codec.decode(argv, custom_options=custom_options, read_reference=reader)
    except codec.ArgumentError as exc:
        refusal: codec.ArgumentError | None = exc
    else:
        refusal = None
    if refusal is not None:
        assert isinstance(refusal.kind, codec.ErrorKind)
        assert str(refusal)
        assert "\n" not in str(refusal)


@SETTINGS
@given(
    argv=st.lists(elements, max_size=20),
    custom_options=st.sets(st.sampled_from(["extra", "other"])),
    stored=json_payloads,
)
def test_arbitrary_argv_only_argument_error(
    argv: list[str], custom_options: set[str], stored: bytes
) -> None:
    _decode_or_refuse(argv, frozenset(custom_options), _reader(stored))


@SETTINGS
@given(args=messages(), data=st.data())
def test_mutated_canonical_argv_only_argument_error(
    args: codec.EntrypointArgs, data: st.DataObject
) -> None:
    argv = codec.encode(args, custom={"extra": "x"})
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(argv)))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "insert" or index == len(argv):
            argv.insert(index, data.draw(elements))
        elif action == "replace":
            argv[index] = data.draw(elements)
        else:
            del argv[index]
    stored = data.draw(json_payloads)
    _decode_or_refuse(argv, frozenset({"extra"}), _reader(stored))
