"""Runs the contract's vectors through both implementations and compares with the vectors.

Usage (from the repository root)::

    .venv/bin/python tests/conformance/run_conformance.py [--clean-install] [--no-build]

Both ``contract/testdata/valid.json`` and ``invalid.json`` are turned into encode and
decode requests (every direction a vector names). The TypeScript launcher answers all
of them in one ``node`` process; the Python codec
(``stepwire._gen.entrypoint.v1.entrypoint_args_codec``) answers the same requests in
this process. Each answer is checked against the vector, as ``contract/testdata/
README.md`` says: argv element by element (a compressed JSON value by its inflated
payload), decoded messages field by field, custom values, the form of each JSON
option, the payloads put in the reference store, and for refusals the error kind,
the flag and a one-line message naming the flag.

``expected_failures/<implementation>.txt`` lists the cases an implementation is known
to fail (one name a line, ``#`` comments). A listed case that passes, or a listed
name that is no vector, is itself an error, so the lists cannot go stale. The exit
status is 0 when every answer matches or is an expected failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script; pytest puts this folder first itself
    sys.path.insert(0, str(HERE))

import ts_launcher  # noqa: E402

TESTDATA = ts_launcher.REPO / "contract" / "testdata"
EXPECTED_FAILURES = HERE / "expected_failures"
IMPLEMENTATIONS = ("typescript", "python")
COMPRESSED = "zlib:"

Answer = dict[str, Any]


@dataclass(frozen=True)
class Check:
    """One direction of one vector."""

    case: dict[str, Any]
    file: str
    direction: str

    @property
    def name(self) -> str:
        return self.case["name"]

    @property
    def label(self) -> str:
        return f"{self.file}/{self.name} ({self.direction})"

    def request(self) -> dict[str, Any]:
        case = self.case
        if self.direction == "encode":
            return {
                "op": "encode",
                "message": case["message"],
                "custom": case.get("custom"),
                # Invalid encode cases are encoded without a store (testdata README).
                "store": case.get("store") if self.file == "valid" else None,
                "thresholds": case.get("thresholds"),
            }
        return {
            "op": "decode",
            "argv": case["argv"],
            "custom_options": case.get("custom_options", []),
            "objects": case.get("objects", {}),
        }


@dataclass
class Report:
    """What one run found."""

    checks: int = 0
    failures: dict[str, list[str]] = field(default_factory=dict)
    expected: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def load_checks() -> list[Check]:
    """Every (vector, direction) pair of both files."""
    checks: list[Check] = []
    for file in ("valid", "invalid"):
        cases = json.loads((TESTDATA / f"{file}.json").read_text("utf-8"))["cases"]
        for case in cases:
            if file == "valid":
                directions = case["directions"]
            else:
                directions = [case.get("direction", "decode")]
            checks.extend(Check(case, file, direction) for direction in directions)
    return checks


def read_expected_failures(implementation: str) -> set[str]:
    path = EXPECTED_FAILURES / f"{implementation}.txt"
    if not path.exists():
        return set()
    names = set()
    for line in path.read_text("utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


# --------------------------------------------------------------------------- #
# The contract, as the harness needs it: which flags carry JSON.


def json_flags() -> frozenset[str]:
    """The flags of ``ENCODING_BASE64_JSON`` options, read from the descriptors."""
    from stepwire._gen.entrypoint.v1 import entrypoint_pb2, options_pb2

    flags = set()
    for descriptor in entrypoint_pb2.EntrypointArgs.DESCRIPTOR.fields:
        options = descriptor.GetOptions().Extensions[options_pb2.field]
        if options.encoding == options_pb2.ENCODING_BASE64_JSON:
            flags.add(options.flag)
    return frozenset(flags)


# --------------------------------------------------------------------------- #
# The Python implementation, answering the same requests as the TypeScript CLI.


def python_answers(requests: list[dict[str, Any]]) -> list[Answer]:
    from google.protobuf import json_format

    from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec

    class MemoryStore:
        def __init__(self, prefix: str) -> None:
            self.prefix = prefix
            self.objects: dict[str, str] = {}

        def put(self, payload: bytes, sha256_hex: str) -> str:
            uri = self.prefix + sha256_hex
            self.objects[uri] = base64.b64encode(payload).decode("ascii")
            return uri

    def encode(request: dict[str, Any]) -> Any:
        message = json_format.ParseDict(request["message"], codec.EntrypointArgs())
        store = MemoryStore(request["store"]) if request.get("store") else None
        thresholds = codec.DEFAULT_THRESHOLDS
        if request.get("thresholds"):
            thresholds = codec.Thresholds(**request["thresholds"])
        argv = codec.encode(
            message, custom=request.get("custom"), store=store, thresholds=thresholds
        )
        return {"argv": argv, "stored": store.objects if store else {}}

    def decode(request: dict[str, Any]) -> Any:
        objects = {uri: base64.b64decode(data) for uri, data in request["objects"].items()}

        def read(uri: str) -> bytes:
            if uri not in objects:
                raise FileNotFoundError(uri)
            return objects[uri]

        decoded = codec.decode(
            request["argv"], custom_options=request["custom_options"], read_reference=read
        )
        return {
            "message": json_format.MessageToDict(decoded.args, preserving_proto_field_name=True),
            "custom": dict(decoded.custom),
            "forms": {flag: form.value for flag, form in decoded.forms.items()},
        }

    answers: list[Answer] = []
    for request in requests:
        try:
            answers.append({"ok": (encode if request["op"] == "encode" else decode)(request)})
        except codec.CodecError as e:
            error = {"kind": e.kind.value, "flag": e.flag, "message": str(e)}
            answers.append({"error": error})
        except Exception:
            answers.append({"crash": traceback.format_exc()})
    return answers


# --------------------------------------------------------------------------- #
# Comparing an answer with the vector.


def _inflate(element: str) -> bytes:
    return zlib.decompress(base64.b64decode(element[len(COMPRESSED) :], validate=True))


def _argv_problems(actual: list[str], expected: list[str], flags: frozenset[str]) -> list[str]:
    if len(actual) != len(expected):
        return [f"argv has {len(actual)} elements, the vector {len(expected)}"]
    problems = []
    previous: str | None = None
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        is_json_value = previous is not None and previous[2:] in flags
        if is_json_value and want.startswith(COMPRESSED):
            if not got.startswith(COMPRESSED):
                problems.append(f"argv[{index}] is not compressed")
            else:
                try:
                    same = _inflate(got) == _inflate(want)
                except (ValueError, zlib.error) as e:
                    problems.append(f"argv[{index}] does not inflate: {e}")
                    continue
                if not same:
                    problems.append(f"argv[{index}] inflates to another payload")
        elif got != want:
            problems.append(f"argv[{index}] is {_short(got)}, the vector has {_short(want)}")
        previous = want
    return problems


def _expected_forms(argv: list[str], flags: frozenset[str]) -> dict[str, str]:
    forms = {}
    for index, element in enumerate(argv):
        if not element.startswith("--"):
            continue
        name, joined, value = element[2:].partition("=")
        if name in flags and (joined or index + 1 < len(argv)):
            raw = value if joined else argv[index + 1]
            if raw.startswith(COMPRESSED):
                forms[name] = "compressed"
            elif raw.startswith("ref:"):
                forms[name] = "reference"
            else:
                forms[name] = "inline"
    return forms


def _same_message(actual: dict[str, Any], expected: dict[str, Any]) -> bool:
    from google.protobuf import json_format

    from stepwire._gen.entrypoint.v1 import entrypoint_pb2

    parse = json_format.ParseDict
    try:
        return bool(
            parse(actual, entrypoint_pb2.EntrypointArgs())
            == parse(expected, entrypoint_pb2.EntrypointArgs())
        )
    except json_format.ParseError:
        return actual == expected


def problems(check: Check, answer: Answer, flags: frozenset[str]) -> list[str]:
    """What is wrong with one answer; empty when it matches the vector."""
    case = check.case
    if "crash" in answer:
        return [f"crashed: {answer['crash'].strip().splitlines()[-1]}"]
    if check.file == "invalid":
        if "error" not in answer:
            return [f"accepted; the vector expects {case['error']} (flag {case['flag']})"]
        error = answer["error"]
        found = []
        if (error["kind"], error["flag"]) != (case["error"], case["flag"]):
            found.append(
                f"refused with {error['kind']} (flag {error['flag']}), "
                f"the vector expects {case['error']} (flag {case['flag']})"
            )
        if "\n" in error["message"] or "\r" in error["message"]:
            found.append("the error message is not one line")
        if case["flag"] is not None and case["flag"] not in error["message"]:
            found.append(f"the error message does not name {case['flag']}")
        return found
    if "error" in answer:
        error = answer["error"]
        return [f"refused with {error['kind']} (flag {error['flag']}): {error['message']}"]
    result = answer["ok"]
    if check.direction == "encode":
        found = _argv_problems(result["argv"], case["argv"], flags)
        if case.get("store"):
            stored = result.get("stored", {})
            expected = case.get("objects", {})
            if not stored:
                found.append("nothing was put in the reference store")
            for uri, data in stored.items():
                if uri not in expected:
                    found.append(f"stored an unexpected object at {uri}")
                elif base64.b64decode(data) != base64.b64decode(expected[uri]):
                    found.append(f"stored other bytes at {uri}")
        return found
    found = []
    if not _same_message(result["message"], case["message"]):
        found.append("decoded another message")
    if result["custom"] != case.get("custom", {}):
        found.append(f"decoded custom options {result['custom']}, the vector {case.get('custom')}")
    expected_forms = _expected_forms(case["argv"], flags)
    if result["forms"] != expected_forms:
        found.append(f"forms {result['forms']}, the argv has {expected_forms}")
    return found


# --------------------------------------------------------------------------- #
# Reporting.


def _short(value: Any, limit: int = 160) -> Any:
    """The value with long strings cut, for printing."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}...(+{len(value) - limit})"
    if isinstance(value, list):
        shown = [_short(v, limit) for v in value[:40]]
        return shown + ([f"...(+{len(value) - 40} items)"] if len(value) > 40 else [])
    if isinstance(value, dict):
        return {k: _short(v, limit) for k, v in value.items()}
    return value


def _show(label: str, value: Any) -> str:
    return f"    {label}: {json.dumps(_short(value), ensure_ascii=True)}"


def _expectation(check: Check) -> Any:
    case = check.case
    if check.file == "invalid":
        return {"error": case["error"], "flag": case["flag"]}
    if check.direction == "encode":
        return {"argv": case["argv"]}
    return {"message": case["message"], "custom": case.get("custom", {})}


def run(
    implementations: Iterable[str] = IMPLEMENTATIONS,
    *,
    build: bool = True,
    clean_install: bool = False,
    out: Callable[[str], None] = print,
) -> Report:
    """Runs the vectors through the implementations and prints what differs."""
    implementations = tuple(implementations)
    report = Report()
    checks = load_checks()
    report.checks = len(checks)
    requests = [check.request() for check in checks]
    flags = json_flags()
    answers: dict[str, list[Answer]] = {}
    if "typescript" in implementations:
        if not build:
            ts_launcher.use_existing_build()
        else:
            start = time.monotonic()
            steps = ts_launcher.build(clean_install=clean_install)
            report.seconds["typescript build"] = time.monotonic() - start
            out("TypeScript build: " + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()))
        start = time.monotonic()
        answers["typescript"] = ts_launcher.run_batch(requests)
        report.seconds["typescript vectors"] = time.monotonic() - start
    if "python" in implementations:
        start = time.monotonic()
        answers["python"] = python_answers(requests)
        report.seconds["python vectors"] = time.monotonic() - start

    names = {check.name for check in checks}
    for implementation in implementations:
        listed = read_expected_failures(implementation)
        for name in sorted(listed - names):
            report.errors.append(f"[{implementation}] expected_failures lists {name!r}: no vector")
        failed: dict[str, list[str]] = {}
        for check, answer in zip(checks, answers[implementation], strict=True):
            found = problems(check, answer, flags)
            if not found:
                continue
            failed.setdefault(check.name, []).extend(f"{check.direction}: {p}" for p in found)
            if check.name in listed:
                continue
            lines = [f"FAIL [{implementation}] {check.label}"]
            lines += [f"    - {p}" for p in found]
            lines.append(_show("vector", _expectation(check)))
            for other in implementations:
                lines.append(_show(other, answers[other][checks.index(check)]))
            out("\n".join(lines))
            report.errors.append(f"[{implementation}] {check.label}: {'; '.join(found)}")
        report.failures[implementation] = sorted(failed)
        report.expected[implementation] = sorted(set(failed) & listed)
        for name in sorted((listed & names) - set(failed)):
            report.errors.append(f"[{implementation}] {name} passes but is an expected failure")
    for implementation in implementations:
        failing = len(report.failures[implementation])
        expected = len(report.expected[implementation])
        out(
            f"{implementation}: {report.checks} checks of {len(names)} vectors, "
            f"{failing} vectors failing ({expected} expected)"
        )
    for line in report.errors:
        if "expected_failures" in line or "expected failure" in line:
            out(f"ERROR {line}")
    out("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.seconds.items()))
    out("conformance: " + ("OK" if report.ok else f"{len(report.errors)} problem(s)"))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean-install", action="store_true", help="always run npm ci")
    parser.add_argument("--no-build", action="store_true", help="use the existing dist/")
    parser.add_argument(
        "--only", choices=IMPLEMENTATIONS, action="append", help="run one implementation"
    )
    args = parser.parse_args(argv)
    report = run(
        args.only or IMPLEMENTATIONS, build=not args.no_build, clean_install=args.clean_install
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
