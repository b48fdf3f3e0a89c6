"""Encode and decode must agree: what one produces, the other accepts.

Each test accepts either fix (refuse earlier, or accept later). The strict xfails
are places where the generated codec disagrees with itself today; fixing the
codec turns them into XPASS failures, and the marker must then go.
"""

from __future__ import annotations

import base64

import pytest

from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec


def _minimal(**fields: object) -> codec.EntrypointArgs:
    args = codec.EntrypointArgs(
        entrypoint_config_source="pkg.Config",
        main_module_source="pkg.main",
        step_source="pkg.Step",
        pipeline_json="{}",
    )
    for name, value in fields.items():
        setattr(args, name, value)
    return args


def _encode_then_decode(args: codec.EntrypointArgs) -> None:
    """Either encode refuses the message, or decode reads back exactly it."""
    try:
        argv = codec.encode(args)
    except codec.EncodeError:
        return
    assert codec.decode(argv).args == args


def _decode_then_encode(argv: list[str]) -> None:
    """Either decode refuses the argv, or its result can be encoded and read back."""
    try:
        decoded = codec.decode(argv)
    except codec.ArgumentError:
        return
    assert codec.decode(codec.encode(decoded.args)).args == decoded.args


@pytest.mark.parametrize("version", [0, 2])
def test_contract_version_out_of_range(version: int) -> None:
    _encode_then_decode(_minimal(contract_version=version))


def test_nul_in_map_value() -> None:
    args = _minimal()
    args.materializer_sources["out"] = "a\x00b"
    _encode_then_decode(args)


@pytest.mark.parametrize("literal", ["1e16", "9.007199254740992e15", "12345678901234567890.0"])
def test_large_double_canonical_text(literal: str) -> None:
    argv = codec.encode(_minimal())
    payload = base64.b64encode(f'{{"a":{literal}}}'.encode()).decode()
    argv[argv.index("--pipeline_json") + 1] = payload
    _decode_then_encode(argv)


def test_decimal_digits_within_limit() -> None:
    """4300 digits (Python's int() limit) are still refused as bad_value."""
    argv = [*codec.encode(_minimal()), "--contract_version", "1" * 4300]
    with pytest.raises(codec.ArgumentError) as caught:
        codec.decode(argv)
    assert caught.value.kind is codec.ErrorKind.BAD_VALUE
