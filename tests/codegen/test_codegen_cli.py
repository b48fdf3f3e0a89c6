"""``python -m stepwire_codegen``: writing, ``--check`` and its exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stepwire_codegen.__main__ import FIX_COMMAND, main

ROOT = Path(__file__).resolve().parents[2]
GENERATED = "python/src/stepwire/_gen"
ENTRYPOINT_PROTO = "stepwire/entrypoint/v1/entrypoint.proto"


def codegen(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepwire_codegen", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _snapshot(tree: Path) -> dict[str, bytes]:
    return {
        p.relative_to(tree).as_posix(): p.read_bytes()
        for p in sorted(tree.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _copy_contract(tmp_path: Path) -> Path:
    copy = tmp_path / "contract"
    shutil.copytree(ROOT / "contract", copy, ignore=shutil.ignore_patterns("testdata", "*.md"))
    return copy


def test_check_passes_on_checked_in_tree() -> None:
    result = codegen("contract", GENERATED, "--check")
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout
    assert result.stderr == ""


def test_check_reports_drift(tmp_path: Path) -> None:
    copy = _copy_contract(tmp_path)
    proto = copy / ENTRYPOINT_PROTO
    text = proto.read_text("utf-8")
    old = "// Importable module of the script the user ran to start the pipeline."
    assert old in text
    proto.write_text(text.replace(old, "// Importable module of THE script the user ran."), "utf-8")
    before = _snapshot(ROOT / GENERATED)

    result = codegen(copy, GENERATED, "--check")

    assert result.returncode == 1
    assert "--- checked-in/entrypoint/v1/entrypoint_args_codec.py" in result.stdout
    assert "+++ generated/entrypoint/v1/entrypoint_args_codec.py" in result.stdout
    assert '+        help="Importable module of THE script the user ran.' in result.stdout
    assert '-        help="Importable module of the script the user ran' in result.stdout
    assert FIX_COMMAND == "nox -s regenerate"
    assert "nox -s regenerate" in result.stderr
    assert "1 generated file(s) differ" in result.stderr
    assert _snapshot(ROOT / GENERATED) == before  # --check writes nothing


def test_contract_error_exit_code(tmp_path: Path) -> None:
    copy = _copy_contract(tmp_path)
    proto = copy / ENTRYPOINT_PROTO
    text = proto.read_text("utf-8")
    proto.write_text(text.replace('flag: "step_source"', 'flag: "main_module_source"'), "utf-8")
    result = codegen(copy, tmp_path / "out")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "stepwire-codegen: stepwire/entrypoint/v1/entrypoint.proto: EntrypointArgs.step_source: "
        "flag 'main_module_source' is already used by field 'main_module_source'"
    ]
    assert not (tmp_path / "out").exists()


def test_write_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gen"
    contract = str(ROOT / "contract")
    assert main([contract, str(out), "--package", "stepwire._gen"]) == 0
    assert "wrote 9 files" in capsys.readouterr().out
    assert _snapshot(out) == _snapshot(ROOT / GENERATED)
    assert main([contract, str(out), "--check"]) == 0
    (out / "entrypoint" / "v1" / "entrypoint_args_codec.py").write_text("# edited\n")
    assert main([contract, str(out), "--check"]) == 1
    captured = capsys.readouterr()
    assert "-# edited" in captured.out
    assert "fix with: nox -s regenerate" in captured.err


def test_package_option_rewrites_imports(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert main([str(ROOT / "contract"), str(out), "--package", "other.pkg"]) == 0
    codec = (out / "entrypoint" / "v1" / "entrypoint_args_codec.py").read_text("utf-8")
    assert "from other.pkg.entrypoint.v1.entrypoint_pb2 import EntrypointArgs" in codec
    pb2 = (out / "entrypoint" / "v1" / "entrypoint_pb2.py").read_text("utf-8")
    assert "from other.pkg.entrypoint.v1 import options_pb2" in pb2
