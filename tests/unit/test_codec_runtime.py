"""The hand-written codec runtime: its scanner, custom arguments and import graph."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from stepwire import codec_runtime as rt
from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec
from stepwire.entrypoints import codec as entrypoint_codec

K = rt.ErrorKind
KNOWN = frozenset({"alpha", "beta"})
NAMES = frozenset({"name", "other", "x-y"})


# --------------------------------------------------------------------------- #
# Where the names live.


def test_generated_codec_re_exports_the_runtime() -> None:
    for name in (
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
        "parse_custom_arguments",
        "scan",
    ):
        assert name in codec.__all__
        assert getattr(codec, name) is getattr(rt, name), name
    assert entrypoint_codec.scan is rt.scan
    assert entrypoint_codec.parse_custom_arguments is rt.parse_custom_arguments
    assert {"scan", "parse_custom_arguments"} <= set(entrypoint_codec.__all__)


def test_runtime_imports_only_the_standard_library_and_rfc8785() -> None:
    tree = ast.parse(Path(rt.__file__).read_text("utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "rfc8785" in imported
    assert imported - {"rfc8785"} <= sys.stdlib_module_names | {"__future__"}


def test_importing_the_runtime_imports_no_other_stepwire_module() -> None:
    code = (
        "import sys, stepwire.codec_runtime\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'stepwire'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "['stepwire', 'stepwire.codec_runtime']"


# --------------------------------------------------------------------------- #
# scan


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {}),
        (["--alpha", "1", "--beta=2"], {"alpha": "1", "beta": "2"}),
        (["--alpha=", "--beta", ""], {"alpha": "", "beta": ""}),
        (["--alpha", "-1"], {"alpha": "-1"}),  # a single '-' starts a value
        (["--alpha=--x"], {"alpha": "--x"}),
        (["--alpha=a=b"], {"alpha": "a=b"}),  # split at the first '='
        (["--future", "v", "--alpha", "1"], {"alpha": "1"}),  # unknown: skipped with its value
        (["--future", "--alpha", "1"], {"alpha": "1"}),
        (["--future=1", "--future=2", "--alpha", "1"], {"alpha": "1"}),  # unknown may repeat
    ],
)
def test_scan_reads_the_known_options(argv: list[str], expected: dict[str, str]) -> None:
    assert rt.scan(argv, KNOWN) == expected


@pytest.mark.parametrize(
    ("argv", "kind", "flag"),
    [
        (["stray"], K.UNEXPECTED_ARGUMENT, None),
        (["--"], K.UNEXPECTED_ARGUMENT, None),
        (["-alpha", "1"], K.UNEXPECTED_ARGUMENT, None),
        (["--alpha", "1", "2"], K.UNEXPECTED_ARGUMENT, None),
        # An unknown option never takes a value that starts with '-': it is a stray.
        (["--future", "-v"], K.UNEXPECTED_ARGUMENT, None),
        (["--alpha"], K.MISSING_VALUE, "alpha"),
        (["--alpha", "--beta", "1"], K.MISSING_VALUE, "alpha"),
        (["--alpha", "1", "--alpha=2"], K.REPEATED_OPTION, "alpha"),
        # The value is read before the repetition is checked (spec 1.2).
        (["--alpha", "1", "--alpha"], K.MISSING_VALUE, "alpha"),
        # Left to right: the first problem is the one reported.
        (["--alpha", "1", "--alpha", "2", "stray"], K.REPEATED_OPTION, "alpha"),
    ],
)
def test_scan_refusals(argv: list[str], kind: rt.ErrorKind, flag: str | None) -> None:
    with pytest.raises(rt.ArgumentError) as caught:
        rt.scan(argv, KNOWN)
    assert (caught.value.kind, caught.value.flag) == (kind, flag)
    assert "\n" not in str(caught.value)
    if flag is not None:
        assert f"--{flag}" in str(caught.value)


def test_scan_refuses_an_element_that_is_not_text() -> None:
    with pytest.raises(rt.ArgumentError) as caught:
        rt.scan(["--alpha", "1", b"--beta"], KNOWN)  # type: ignore[list-item]
    assert caught.value.kind is K.UNEXPECTED_ARGUMENT
    assert "argument 2 is not a string" in str(caught.value)


def test_scan_is_what_decode_reads() -> None:
    argv = codec.encode(
        codec.EntrypointArgs(
            entrypoint_config_source="a.B",
            main_module_source="m",
            step_source="s.T",
            pipeline_json="{}",
            run_name="-r",
        ),
        custom={"extra": ""},
    )
    raw = rt.scan(argv, codec.FLAGS | {"extra"})
    assert raw["run_name"] == "-r"
    assert raw["extra"] == ""
    assert raw["pipeline_json"] == "e30="


# --------------------------------------------------------------------------- #
# parse_custom_arguments


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {}),
        (["--name", "value", "--other=value"], {"name": "value", "other": "value"}),
        (["--name", ""], {"name": ""}),
        (["--name="], {"name": ""}),
        (["--name=-0.5"], {"name": "-0.5"}),
        (["--name", "-0.5"], {"name": "-0.5"}),  # as the scanner reads it
        (["--name=--x"], {"name": "--x"}),
        (["--name=a=b"], {"name": "a=b"}),
        (["--x-y", "1"], {"x-y": "1"}),
        (["--other", "2", "--name", "1"], {"other": "2", "name": "1"}),  # the order given
        (["--name", "with space"], {"name": "with space"}),
    ],
)
def test_parse_custom_arguments(argv: list[str], expected: dict[str, str]) -> None:
    result = rt.parse_custom_arguments(argv, NAMES)
    assert result == expected
    assert list(result) == list(expected)


@pytest.mark.parametrize(
    ("argv", "kind", "flag", "message"),
    [
        (["--nope", "1"], K.BAD_CUSTOM_OPTION, "nope", "--nope: not a custom option"),
        (["--nope=1"], K.BAD_CUSTOM_OPTION, "nope", "(declared: name, other, x-y)"),
        (["--=1"], K.BAD_CUSTOM_OPTION, "", "--: not a custom option"),
        (["--name", "1", "--name", "2"], K.REPEATED_OPTION, "name", "--name: given more than once"),
        (["--name=1", "--name="], K.REPEATED_OPTION, "name", "--name"),
        (["--name"], K.MISSING_VALUE, "name", "--name: no value given"),
        (["--name", "--other", "1"], K.MISSING_VALUE, "name", "--name"),
        # A value that starts with '--' is only unambiguous joined.
        (["--name", "--x"], K.MISSING_VALUE, "name", "write --name=VALUE"),
        (["value"], K.UNEXPECTED_ARGUMENT, None, "custom argument 0: 'value' is not an option"),
        (["--name", "1", "2"], K.UNEXPECTED_ARGUMENT, None, "custom argument 2: '2'"),
        (["--"], K.UNEXPECTED_ARGUMENT, None, "custom argument 0: '--'"),
        (["-name", "1"], K.UNEXPECTED_ARGUMENT, None, "'-name'"),
        # The value is read before the repetition is checked, as by the scanner.
        (["--name", "1", "--name"], K.MISSING_VALUE, "name", "--name"),
        # Left to right: the first problem is the one reported.
        (["--nope", "--name"], K.BAD_CUSTOM_OPTION, "nope", "--nope"),
    ],
)
def test_parse_custom_arguments_refusals(
    argv: list[str], kind: rt.ErrorKind, flag: str | None, message: str
) -> None:
    with pytest.raises(rt.EncodeError) as caught:
        rt.parse_custom_arguments(argv, NAMES)
    assert (caught.value.kind, caught.value.flag) == (kind, flag)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_parse_custom_arguments_without_declared_names() -> None:
    assert rt.parse_custom_arguments([], frozenset()) == {}
    with pytest.raises(rt.EncodeError) as caught:
        rt.parse_custom_arguments(["--name", "1"], frozenset())
    assert caught.value.kind is K.BAD_CUSTOM_OPTION
    assert "(declared: none)" in str(caught.value)


def test_parse_custom_arguments_refuses_an_element_that_is_not_text() -> None:
    with pytest.raises(rt.EncodeError) as caught:
        rt.parse_custom_arguments([1], NAMES)  # type: ignore[list-item]
    assert caught.value.kind is K.UNEXPECTED_ARGUMENT


def test_parsed_custom_arguments_travel_unchanged() -> None:
    # What parse_custom_arguments accepts, encode writes and decode reads back.
    custom = rt.parse_custom_arguments(["--other=-1", "--name", "", "--x-y", "v"], NAMES)
    args = codec.EntrypointArgs(
        entrypoint_config_source="a.B",
        main_module_source="m",
        step_source="s.T",
        pipeline_json="{}",
    )
    argv = codec.encode(args, custom=custom)
    assert argv[-5:] == ["--name", "", "--other=-1", "--x-y", "v"]
    assert dict(codec.decode(argv, custom_options=NAMES).custom) == custom


def test_scan_lists_the_options_it_skips_in_order() -> None:
    unknown: list[str] = []
    values = rt.scan(
        ["--b", "1", "--known", "k", "--a=2", "--b", "2", "--c", "--known2=v"],
        frozenset({"known", "known2"}),
        unknown=unknown,
    )
    assert values == {"known": "k", "known2": "v"}
    assert unknown == ["b", "a", "c"]
