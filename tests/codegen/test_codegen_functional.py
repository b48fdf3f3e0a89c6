"""A codec generated from a small inline contract, imported and used."""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import shutil
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from stepwire import codec_runtime
from stepwire_codegen.generate import Target, render_files, write_tree

ROOT = Path(__file__).resolve().parents[2]
OPTIONS_PROTO = "stepwire/entrypoint/v1/options.proto"
PACKAGE = "demo_gen"

DEMO_PROTO = """\
syntax = "proto3";

package demo.v1;

import "stepwire/entrypoint/v1/options.proto";

// The arguments of the demo tool.
//
// A second paragraph of the message comment.
message DemoArgs {
  option (stepwire.entrypoint.v1.message) = {
    contract_version: 1
    compress_above_bytes: 64
    reference_above_bytes: 256
    max_payload_bytes: 1048576
    max_json_depth: 64
    max_inflated_bytes: 65536
    max_json_nodes: 1000
  };

  // Name of the thing to run, 100% plain.
  string target = 1 [(stepwire.entrypoint.v1.field) = {
    flag: "target"
    encoding: ENCODING_PLAIN
    required: true
  }];

  // Credentials for the service; they never appear inline.
  map<string, string> secrets = 2 [(stepwire.entrypoint.v1.field) = {
    flag: "secrets"
    encoding: ENCODING_BASE64_JSON
    required: true
    sensitive: true
  }];

  // Run id placeholder that the orchestrator fills in.
  optional string run_id = 3 [(stepwire.entrypoint.v1.field) = {
    flag: "run_id"
    encoding: ENCODING_PLAIN
    required: false
    late_bound: true
  }];

  // Free-form labels.
  map<string, string> labels = 4 [(stepwire.entrypoint.v1.field) = {
    flag: "labels"
    encoding: ENCODING_BASE64_JSON
    required: false
  }];

  // Tool configuration as JSON.
  optional string config = 5 [(stepwire.entrypoint.v1.field) = {
    flag: "config_json"
    encoding: ENCODING_BASE64_JSON
    required: false
    json_message: "demo.v1.Config"
  }];

  // The contract version of the command line.
  optional uint32 contract_version = 6 [(stepwire.entrypoint.v1.field) = {
    flag: "contract_version"
    encoding: ENCODING_DECIMAL
    required: false
  }];
}
"""


def _contract(root: Path, demo_path: str) -> Path:
    options = root / OPTIONS_PROTO
    options.parent.mkdir(parents=True)
    shutil.copyfile(ROOT / "contract" / OPTIONS_PROTO, options)
    demo = root / demo_path
    demo.parent.mkdir(parents=True, exist_ok=True)
    demo.write_text(DEMO_PROTO, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    base = tmp_path_factory.mktemp("demo")
    # Under the `stepwire/` prefix, so that the import of options.proto is
    # rewritten into the generated package (see test_other_prefix_imports).
    root = _contract(base / "contract", "stepwire/demo/v1/demo.proto")
    write_tree(render_files(Target(root, "stepwire", PACKAGE)), base / PACKAGE)
    sys.path.insert(0, str(base))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(f"{PACKAGE}.demo.v1.demo_args_codec")
    finally:
        sys.path.remove(str(base))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, payload: bytes, sha256_hex: str) -> str:
        uri = f"mem://demo/{sha256_hex}"
        self.objects[uri] = payload
        return uri

    def read(self, uri: str) -> bytes:
        return self.objects[uri]


def _args(demo: ModuleType, **fields: object) -> object:
    args = demo.DemoArgs(target="tool.main")
    args.secrets["token"] = "s3cr3t"
    for name, value in fields.items():
        if isinstance(value, dict):
            getattr(args, name).update(value)
        else:
            setattr(args, name, value)
    return args


def test_module_constants(demo: ModuleType) -> None:
    assert demo.CONTRACT_VERSION == 1
    assert demo.MAX_PAYLOAD_BYTES == 1048576
    assert (demo.MAX_INFLATED_BYTES, demo.MAX_JSON_NODES) == (65536, 1000)
    assert demo.Thresholds(64, 256) == demo.DEFAULT_THRESHOLDS
    assert [o.flag for o in demo.OPTIONS] == [
        "target",
        "secrets",
        "run_id",
        "labels",
        "config_json",
        "contract_version",
    ]
    assert {"target", "secrets"} == demo.REQUIRED_FLAGS
    assert {"secrets"} == demo.SENSITIVE_FLAGS
    assert {"run_id"} == demo.LATE_BOUND_FLAGS
    assert demo.OPTIONS[4].json_message == "demo.v1.Config"
    assert demo.OPTIONS[4].field == "config"
    assert "The arguments of the demo tool." in demo.__doc__
    assert "A second paragraph" in demo.__doc__
    assert {k.value for k in demo.ErrorKind} >= {"missing_option", "needs_reference_store"}
    # The contract-independent part is the hand-written runtime, shared by every codec.
    assert demo.ErrorKind is codec_runtime.ErrorKind
    assert demo.ArgumentError is codec_runtime.ArgumentError
    assert demo.scan is codec_runtime.scan
    assert demo.parse_custom_arguments is codec_runtime.parse_custom_arguments


def test_round_trip_sensitive_by_reference(demo: ModuleType) -> None:
    args = _args(demo, run_id="{{workflow.name}}", config='{ "b": 1, "a": [true] }')
    store = Store()
    argv = demo.encode(args, custom={"verbose": ""}, store=store)
    digest = hashlib.sha256(b'{"token":"s3cr3t"}').hexdigest()
    assert argv == [
        "--target",
        "tool.main",
        "--secrets",
        f"ref:sha256:{digest}:mem://demo/{digest}",
        "--run_id",
        "{{workflow.name}}",
        "--config_json",
        base64.b64encode(b'{"a":[true],"b":1}').decode(),
        "--verbose",
        "",
    ]
    assert "s3cr3t" not in " ".join(argv)
    decoded = demo.decode(argv, custom_options=["verbose"], read_reference=store.read)
    assert decoded.args.secrets == {"token": "s3cr3t"}
    assert decoded.args.run_id == "{{workflow.name}}"
    assert decoded.args.config == '{"a":[true],"b":1}'
    assert not decoded.args.labels
    assert dict(decoded.custom) == {"verbose": ""}
    assert decoded.forms["secrets"] is demo.Form.REFERENCE
    assert demo.encode(decoded.args, custom=dict(decoded.custom), store=store) == argv


def test_sensitive_needs_a_store(demo: ModuleType) -> None:
    with pytest.raises(demo.EncodeError) as caught:
        demo.encode(demo.DemoArgs(target="t"))  # even an empty map goes by reference
    assert caught.value.kind is demo.ErrorKind.NEEDS_REFERENCE_STORE
    assert caught.value.flag == "secrets"
    assert "--secrets" in str(caught.value)


def test_optional_map_only_when_non_empty(demo: ModuleType) -> None:
    store = Store()
    assert "--labels" not in demo.encode(_args(demo), store=store)
    argv = demo.encode(_args(demo, labels={"team": "ml"}), store=store)
    assert argv[argv.index("--labels") + 1] == base64.b64encode(b'{"team":"ml"}').decode()


def test_message_thresholds(demo: ModuleType) -> None:
    store = Store()
    compressible = {f"k{i}": "same value" for i in range(8)}
    argv = demo.encode(_args(demo, labels=compressible), store=store)
    assert argv[argv.index("--labels") + 1].startswith("zlib:")
    noisy = {hashlib.sha256(bytes([i])).hexdigest(): str(i) for i in range(8)}
    argv = demo.encode(_args(demo, labels=noisy), store=store)
    assert argv[argv.index("--labels") + 1].startswith("ref:sha256:")
    decoded = demo.decode(argv, read_reference=store.read)
    assert dict(decoded.args.labels) == noisy


def test_decode_refusals(demo: ModuleType) -> None:
    store = Store()
    argv = demo.encode(_args(demo), store=store)
    with pytest.raises(demo.ArgumentError) as caught:
        demo.decode([*argv, "--contract_version", "2"], read_reference=store.read)
    assert caught.value.kind is demo.ErrorKind.UNSUPPORTED_CONTRACT_VERSION
    with pytest.raises(demo.ArgumentError) as caught:
        demo.decode(argv[2:], read_reference=store.read)
    assert (caught.value.kind, caught.value.flag) == (demo.ErrorKind.MISSING_OPTION, "target")
    bomb = "zlib:" + base64.b64encode(zlib.compress(b" " * (1048576 + 1))).decode()
    with pytest.raises(demo.ArgumentError) as caught:
        demo.decode([*argv, "--labels", bomb], read_reference=store.read)
    assert caught.value.kind is demo.ErrorKind.PAYLOAD_TOO_LARGE


def test_inflated_and_node_bounds(demo: ModuleType) -> None:
    store = Store()
    # Within max_payload_bytes, past max_inflated_bytes: compressed, it is refused.
    bomb = "zlib:" + base64.b64encode(zlib.compress(b" " * (65536 + 1))).decode()
    argv = demo.encode(_args(demo), store=store)
    with pytest.raises(demo.ArgumentError) as caught:
        demo.decode([*argv, "--labels", bomb], read_reference=store.read)
    assert (caught.value.kind, caught.value.flag) == (demo.ErrorKind.PAYLOAD_TOO_LARGE, "labels")
    # The map's object and 999 strings are the 1000 values max_json_nodes allows.
    labels = {f"k{i}": "" for i in range(999)}
    argv = demo.encode(_args(demo, labels=labels), store=store)
    assert dict(demo.decode(argv, read_reference=store.read).args.labels) == labels
    with pytest.raises(demo.EncodeError) as refused:
        demo.encode(_args(demo, labels={**labels, "one more": ""}), store=store)
    assert (refused.value.kind, refused.value.flag) == (demo.ErrorKind.PAYLOAD_TOO_LARGE, "labels")
    # A payload above max_inflated_bytes is never compressed: it goes by reference.
    big = {"a": "x" * 70000}
    argv = demo.encode(_args(demo, labels=big), store=store)
    assert argv[argv.index("--labels") + 1].startswith(demo.REFERENCE_PREFIX)
    assert dict(demo.decode(argv, read_reference=store.read).args.labels) == big


def test_help_shows_field_comments(demo: ModuleType) -> None:
    parser = argparse.ArgumentParser(prog="demo")
    demo.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "Credentials for the service; they never appear inline." in text
    assert "Name of the thing to run, 100% plain." in text
    assert "--run_id" in text
    assert "--config_json" in text
    assert "DemoArgs options (contract version 1)" in text


def test_other_prefix_imports(tmp_path: Path) -> None:
    root = _contract(tmp_path / "contract", "demo/v1/demo.proto")
    files = render_files(Target(root, "demo", PACKAGE))
    assert "stepwire/entrypoint/v1/options_pb2.py" in files
    assert "from stepwire.entrypoint" not in files["v1/demo_pb2.py"]
