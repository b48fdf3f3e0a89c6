"""The generator refuses a contract whose enums differ from the runtime's copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stepwire import codec_runtime
from stepwire_codegen.errors import ContractError
from stepwire_codegen.generate import Target, find_protos, render_files
from stepwire_codegen.model import build_model
from stepwire_codegen.protoc import run_protoc
from stepwire_codegen.runtime import DEFAULT_RUNTIME, check_runtime

ROOT = Path(__file__).resolve().parents[2]
OPTIONS_PROTO = "stepwire/entrypoint/v1/options.proto"
WHERE = f"{OPTIONS_PROTO}: "


def _contract(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    """A copy of the real contract with ``options.proto`` edited."""
    copy = tmp_path / "contract"
    shutil.copytree(ROOT / "contract", copy, ignore=shutil.ignore_patterns("testdata", "*.md"))
    options = copy / OPTIONS_PROTO
    text = options.read_text("utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    options.write_text(text, "utf-8")
    return copy


def _refusal(root: Path, runtime: str = DEFAULT_RUNTIME) -> str:
    with pytest.raises(ContractError) as caught:
        render_files(Target(root, "stepwire", "stepwire._gen", runtime))
    text = str(caught.value)
    assert "\n" not in text
    return text


LAST_KIND = "  NEEDS_REFERENCE_STORE = 19;\n"


def test_real_contract_matches_the_runtime() -> None:
    root = ROOT / "contract"
    protos = find_protos(root)
    contract = build_model(run_protoc(root, protos).descriptor_set, tuple(protos), "stepwire")
    check_runtime(contract, DEFAULT_RUNTIME)  # no refusal
    assert [k.value for k in contract.error_kinds] == [k.value for k in codec_runtime.ErrorKind]
    assert [e.value for e in contract.encodings] == [e.value for e in codec_runtime.Encoding]


def test_error_kind_only_in_the_contract(tmp_path: Path) -> None:
    root = _contract(tmp_path, (LAST_KIND, LAST_KIND + "  FUTURE_KIND = 20;\n"))
    assert _refusal(root) == (
        f"{WHERE}enum ErrorKind differs from stepwire.codec_runtime.ErrorKind "
        "(only in the contract: FUTURE_KIND='future_kind'); change both together"
    )


def test_error_kind_only_in_the_runtime(tmp_path: Path) -> None:
    root = _contract(tmp_path, (LAST_KIND, ""))
    assert _refusal(root) == (
        f"{WHERE}enum ErrorKind differs from stepwire.codec_runtime.ErrorKind "
        "(only in stepwire.codec_runtime: NEEDS_REFERENCE_STORE='needs_reference_store'); "
        "change both together"
    )


def test_error_kind_renamed(tmp_path: Path) -> None:
    root = _contract(tmp_path, ("  BAD_UTF8 = 7;", "  BAD_TEXT = 7;"))
    text = _refusal(root)
    assert text.startswith(f"{WHERE}enum ErrorKind differs from stepwire.codec_runtime.ErrorKind")
    assert "only in the contract: BAD_TEXT='bad_text'" in text
    assert "only in stepwire.codec_runtime: BAD_UTF8='bad_utf8'" in text


def test_encoding_only_in_the_contract(tmp_path: Path) -> None:
    root = _contract(
        tmp_path,
        ("  ENCODING_BASE64_JSON = 3;\n", "  ENCODING_BASE64_JSON = 3;\n  ENCODING_HEX = 4;\n"),
    )
    assert _refusal(root) == (
        f"{WHERE}enum Encoding differs from stepwire.codec_runtime.Encoding "
        "(only in the contract: HEX='hex'); change both together"
    )


def test_cli_refuses_in_one_line(tmp_path: Path) -> None:
    root = _contract(tmp_path, (LAST_KIND, LAST_KIND + "  FUTURE_KIND = 20;\n"))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "stepwire_codegen", str(root), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"stepwire-codegen: {WHERE}enum ErrorKind differs")
    assert "FUTURE_KIND='future_kind'" in line
    assert not out.exists()


# --------------------------------------------------------------------------- #
# Drift on the runtime's side, with stand-in runtimes.

_RUNTIME = """\
import enum

class Encoding(enum.Enum):
    PLAIN = "plain"
    DECIMAL = "decimal"
    BASE64_JSON = "base64_json"

class ErrorKind(enum.Enum):
{kinds}
"""


def _runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), "utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def _kinds(members: list[codec_runtime.ErrorKind]) -> str:
    return "\n".join(f"    {kind.name} = {kind.value!r}" for kind in members)


def test_runtime_with_another_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kinds = list(codec_runtime.ErrorKind)
    kinds[0], kinds[1] = kinds[1], kinds[0]
    name = _runtime(
        monkeypatch, tmp_path, "reordered_runtime", _RUNTIME.format(kinds=_kinds(kinds))
    )
    text = _refusal(ROOT / "contract", name)
    assert text.startswith(
        f"{WHERE}enum ErrorKind differs from reordered_runtime.ErrorKind (same values in another "
        "order: the contract has MISSING_OPTION='missing_option', MISSING_VALUE='missing_value',"
    )


def test_runtime_with_another_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = _RUNTIME.format(kinds=_kinds(list(codec_runtime.ErrorKind)))
    source = source.replace('PLAIN = "plain"', 'PLAIN = "text"')
    name = _runtime(monkeypatch, tmp_path, "revalued_runtime", source)
    assert _refusal(ROOT / "contract", name) == (
        f"{WHERE}enum Encoding differs from revalued_runtime.Encoding (only in the contract: "
        "PLAIN='plain'; only in revalued_runtime: PLAIN='text'); change both together"
    )


def test_runtime_without_an_enum(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = _runtime(monkeypatch, tmp_path, "partial_runtime", "ErrorKind = 3\n")
    assert _refusal(ROOT / "contract", name) == (
        f"{WHERE}enum ErrorKind: partial_runtime.ErrorKind is not an enum"
    )
    name = _runtime(monkeypatch, tmp_path, "empty_runtime", "")
    assert _refusal(ROOT / "contract", name) == (
        f"{WHERE}enum ErrorKind: empty_runtime defines no ErrorKind"
    )


def test_runtime_not_importable() -> None:
    text = _refusal(ROOT / "contract", "no_such_runtime_module")
    assert text.startswith(f"{WHERE}the runtime no_such_runtime_module cannot be imported")


def test_contract_without_messages_needs_no_runtime(contract_root: Path) -> None:
    files = render_files(Target(contract_root, "stepwire", "x", "no_such_runtime_module"))
    assert not any(path.endswith("_codec.py") for path in files)
