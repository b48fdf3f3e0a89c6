"""The contract's vectors through the TypeScript launcher and the Python codec.

The whole run is ``run_conformance.run``; the other tests check that the harness
itself would notice a wrong answer and a stale expected-failures list.
"""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import pytest
import run_conformance
import ts_launcher

needs_node = pytest.mark.skipif(
    ts_launcher.node() is None,
    reason="node (Node.js 20+) is not installed: the TypeScript launcher cannot run",
)


@needs_node
def test_both_implementations_pass_every_vector() -> None:
    lines: list[str] = []
    report = run_conformance.run(out=lines.append)
    assert report.ok, "\n".join(lines + report.errors)


def test_python_alone_passes_every_vector() -> None:
    # Without node, this still runs the Python codec through the same comparisons.
    lines: list[str] = []
    report = run_conformance.run(["python"], out=lines.append)
    assert report.ok, "\n".join(lines + report.errors)


def test_a_stale_expected_failures_list_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = run_conformance.read_expected_failures("python")
    (tmp_path / "python.txt").write_text(
        "# a comment\n\nminimal  # passes\nno_such_vector\n" + "\n".join(sorted(listed)) + "\n"
    )
    monkeypatch.setattr(run_conformance, "EXPECTED_FAILURES", tmp_path)
    report = run_conformance.run(["python"], out=lambda line: None)
    assert sorted(report.errors) == [
        "[python] expected_failures lists 'no_such_vector': no vector",
        "[python] minimal passes but is an expected failure",
    ]


def _case(name: str) -> run_conformance.Check:
    return next(c for c in run_conformance.load_checks() if c.label == name)


def test_compressed_elements_compare_by_payload_and_the_rest_exactly() -> None:
    flags = run_conformance.json_flags()
    check = _case("valid/compressed_pipeline_json (encode)")
    argv = list(check.case["argv"])
    index = next(i for i, e in enumerate(argv) if e.startswith("zlib:"))
    payload = zlib.decompress(base64.b64decode(argv[index][5:]))

    # Another zlib level: the same payload, other bytes. Accepted.
    argv[index] = "zlib:" + base64.b64encode(zlib.compress(payload, 1)).decode()
    assert run_conformance.problems(check, {"ok": {"argv": argv, "stored": {}}}, flags) == []
    # The same payload inline where the vector compresses it. Refused.
    argv[index] = base64.b64encode(payload).decode()
    assert run_conformance.problems(check, {"ok": {"argv": argv, "stored": {}}}, flags)
    # Another payload compressed. Refused.
    argv[index] = "zlib:" + base64.b64encode(zlib.compress(payload + b" ")).decode()
    assert run_conformance.problems(check, {"ok": {"argv": argv, "stored": {}}}, flags)
    # Any other element differing. Refused.
    argv = list(check.case["argv"])
    argv[1] += "x"
    assert run_conformance.problems(check, {"ok": {"argv": argv, "stored": {}}}, flags)


def test_wrong_answers_are_reported() -> None:
    flags = run_conformance.json_flags()
    invalid = _case("invalid/order_field_number (decode)")
    right = {"error": {"kind": "empty_value", "flag": "step_source", "message": "--step_source: x"}}
    assert run_conformance.problems(invalid, right, flags) == []
    for wrong in (
        {"error": {"kind": "bad_base64", "flag": "materializer_sources", "message": "..."}},
        {"error": {"kind": "empty_value", "flag": "step_source", "message": "two\nlines"}},
        {"error": {"kind": "empty_value", "flag": "step_source", "message": "names nothing"}},
        {"ok": {}},
        {"crash": "Traceback\nBoom"},
    ):
        assert run_conformance.problems(invalid, wrong, flags), wrong

    valid = _case("valid/mixed_forms (decode)")
    message = dict(valid.case["message"])
    forms = run_conformance._expected_forms(valid.case["argv"], flags)
    good = {"ok": {"message": message, "custom": {}, "forms": forms}}
    assert run_conformance.problems(valid, good, flags) == []
    other = {**message, "run_name": "another"}
    assert run_conformance.problems(valid, {"ok": {**good["ok"], "message": other}}, flags)
    inline = dict.fromkeys(forms, "inline")
    assert run_conformance.problems(valid, {"ok": {**good["ok"], "forms": inline}}, flags)
