"""The contract model (``stepwire_codegen.model``) and the rules it enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stepwire_codegen.errors import ContractError
from stepwire_codegen.generate import find_protos
from stepwire_codegen.model import Contract, Encoding, Kind, build_model, python_module_of
from stepwire_codegen.protoc import run_protoc

ROOT = Path(__file__).resolve().parents[2]
DEMO = "demo/v1/demo.proto"
HEADER = """\
syntax = "proto3";

package demo.v1;

import "stepwire/entrypoint/v1/options.proto";

"""


def message_options(**overrides: int | None) -> str:
    """The ``(stepwire.entrypoint.v1.message)`` option; ``None`` leaves one out."""
    values: dict[str, int | None] = {
        "contract_version": 1,
        "compress_above_bytes": 4096,
        "reference_above_bytes": 98304,
        "max_payload_bytes": 1048576,
        "max_json_depth": 64,
        "max_inflated_bytes": 65536,
        "max_json_nodes": 1000,
    }
    values.update(overrides)
    body = " ".join(f"{key}: {value}" for key, value in values.items() if value is not None)
    return f"  option (stepwire.entrypoint.v1.message) = {{ {body} }};\n"


def field(declaration: str, number: int, comment: str = "", **options: object) -> str:
    """One field; ``options`` become its ``(stepwire.entrypoint.v1.field)`` entries.

    Strings are quoted unless they name an ``ENCODING_*`` value; without options
    the field carries none.
    """
    lines = [f"  // {comment}\n"] if comment else []
    if options:
        parts = []
        for key, value in options.items():
            if isinstance(value, bool):
                parts.append(f"{key}: {str(value).lower()}")
            elif isinstance(value, str) and not value.startswith("ENCODING_"):
                parts.append(f'{key}: "{value}"')
            else:
                parts.append(f"{key}: {value}")
        body = " ".join(parts)
        lines.append(
            f"  {declaration} = {number} [(stepwire.entrypoint.v1.field) = {{ {body} }}];\n"
        )
    else:
        lines.append(f"  {declaration} = {number};\n")
    return "".join(lines)


def plain(name: str, number: int, *, required: bool = True, **extra: object) -> str:
    declaration = f"string {name}" if required else f"optional string {name}"
    options: dict[str, object] = {"flag": name, "encoding": "ENCODING_PLAIN", "required": required}
    return field(declaration, number, **{**options, **extra})


def message(*fields: str, options: str | None = None, name: str = "Demo", doc: str = "") -> str:
    head = f"// {doc}\n" if doc else ""
    opts = message_options() if options is None else options
    return f"{head}message {name} {{\n{opts}{''.join(fields)}}}\n"


def build(root: Path, *messages: str, header: str = HEADER) -> Contract:
    proto = root / DEMO
    proto.parent.mkdir(parents=True, exist_ok=True)
    proto.write_text(header + "\n".join(messages), encoding="utf-8")
    protos = find_protos(root)
    compiled = run_protoc(root, protos)
    return build_model(compiled.descriptor_set, tuple(protos), "demo")


def refusal(root: Path, *messages: str, header: str = HEADER) -> str:
    with pytest.raises(ContractError) as caught:
        build(root, *messages, header=header)
    text = str(caught.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------- #
# The real contract.


@pytest.fixture(scope="module")
def real() -> Contract:
    root = ROOT / "contract"
    protos = find_protos(root)
    return build_model(run_protoc(root, protos).descriptor_set, tuple(protos), "stepwire")


def test_real_contract_message(real: Contract) -> None:
    assert real.proto_files == (
        "stepwire/entrypoint/v1/entrypoint.proto",
        "stepwire/entrypoint/v1/options.proto",
    )
    (entry,) = real.messages
    assert entry.full_name == "stepwire.entrypoint.v1.EntrypointArgs"
    assert entry.proto_file == "stepwire/entrypoint/v1/entrypoint.proto"
    assert entry.proto_module == "entrypoint.v1.entrypoint_pb2"
    assert entry.codec_module == "entrypoint.v1.entrypoint_args_codec"
    assert (entry.contract_version, entry.compress_above_bytes) == (1, 4096)
    assert (entry.reference_above_bytes, entry.max_payload_bytes) == (98304, 64 * 2**20)
    assert entry.max_json_depth == 500
    assert (entry.max_inflated_bytes, entry.max_json_nodes) == (4 * 2**20, 1_000_000)
    assert entry.doc.startswith("The arguments of one step entrypoint invocation.")
    assert entry.version_field is not None
    assert entry.version_field.name == "contract_version"


def test_real_contract_fields(real: Contract) -> None:
    fields = real.messages[0].fields
    assert [f.number for f in fields] == list(range(1, 9))
    assert [(f.flag, f.encoding, f.kind, f.required) for f in fields] == [
        ("entrypoint_config_source", Encoding.PLAIN, Kind.STRING, True),
        ("main_module_source", Encoding.PLAIN, Kind.STRING, True),
        ("step_source", Encoding.PLAIN, Kind.STRING, True),
        ("pipeline_json", Encoding.BASE64_JSON, Kind.STRING, True),
        ("input_artifact_sources", Encoding.BASE64_JSON, Kind.STRING_MAP, True),
        ("materializer_sources", Encoding.BASE64_JSON, Kind.STRING_MAP, True),
        ("contract_version", Encoding.DECIMAL, Kind.UINT32, False),
        ("run_name", Encoding.PLAIN, Kind.STRING, False),
    ]
    by_flag = {f.flag: f for f in fields}
    assert [f.flag for f in fields if f.late_bound] == ["run_name"]
    assert not any(f.sensitive for f in fields)
    assert by_flag["pipeline_json"].json_message == "tfx.orchestration.Pipeline"
    assert [f.flag for f in fields if f.has_presence] == ["contract_version", "run_name"]
    assert all(f.doc for f in fields)
    assert by_flag["step_source"].summary.startswith(
        "Importable source (`package.module.StepClass`)"
    )
    assert "\n" not in by_flag["step_source"].summary


def test_real_contract_error_kinds(real: Contract) -> None:
    kinds = real.error_kinds
    assert [k.number for k in kinds] == list(range(1, 20))
    assert kinds[0].name == "MISSING_OPTION"
    assert kinds[0].value == "missing_option"
    assert kinds[0].doc == "A required option is absent."
    assert all(k.doc for k in kinds)
    assert "ERROR_KIND_UNSPECIFIED" not in {k.name for k in kinds}


def test_real_contract_encodings(real: Contract) -> None:
    assert real.options_file == "stepwire/entrypoint/v1/options.proto"
    assert [(e.name, e.number, e.value) for e in real.encodings] == [
        ("PLAIN", 1, "plain"),
        ("DECIMAL", 2, "decimal"),
        ("BASE64_JSON", 3, "base64_json"),
    ]
    assert real.encodings[0].doc.startswith("The value's UTF-8 text as it is.")
    assert [e.value for e in real.encodings] == [e.value for e in Encoding]


def test_encodings_are_matched_by_name(contract_root: Path) -> None:
    # Renumbered in options.proto: the model follows the names, not the numbers.
    options = contract_root / "stepwire/entrypoint/v1/options.proto"
    text = options.read_text("utf-8")
    text = text.replace("ENCODING_PLAIN = 1;", "ENCODING_PLAIN = 9;")
    options.write_text(text.replace("ENCODING_DECIMAL = 2;", "ENCODING_DECIMAL = 1;"), "utf-8")
    contract = build(
        contract_root,
        message(
            plain("a", 1),
            field("optional uint32 n", 2, flag="n", encoding="ENCODING_DECIMAL", required=False),
        ),
    )
    assert [f.encoding for f in contract.messages[0].fields] == [Encoding.PLAIN, Encoding.DECIMAL]
    assert [(e.name, e.number) for e in contract.encodings] == [
        ("DECIMAL", 1),
        ("BASE64_JSON", 3),
        ("PLAIN", 9),
    ]


def test_encoding_without_template(contract_root: Path) -> None:
    options = contract_root / "stepwire/entrypoint/v1/options.proto"
    text = options.read_text("utf-8")
    options.write_text(
        text.replace("ENCODING_BASE64_JSON = 3;", "ENCODING_BASE64_JSON = 3;\n  ENCODING_HEX = 4;"),
        "utf-8",
    )
    text = refusal(
        contract_root,
        message(field("string a", 1, flag="a", encoding="ENCODING_HEX", required=True)),
    )
    assert text == f"{DEMO}: Demo.a: unknown encoding number 4"


def test_python_module_of() -> None:
    assert python_module_of("stepwire/entrypoint/v1/x.proto", "stepwire") == "entrypoint.v1.x_pb2"
    assert python_module_of("other/v1/x.proto", "stepwire") == "other.v1.x_pb2"
    assert python_module_of("stepwirex/y.proto", "stepwire") == "stepwirex.y_pb2"
    assert python_module_of("a/b.proto", "") == "a.b_pb2"


# --------------------------------------------------------------------------- #
# Inline contracts that follow the rules.


def test_inline_contract(contract_root: Path) -> None:
    contract = build(
        contract_root,
        message(
            plain("name", 2, comment="The name.\n  //\n  // More detail."),
            field(
                "map<string, string> secret",
                1,
                "A secret map.",
                flag="secret",
                encoding="ENCODING_BASE64_JSON",
                required=False,
                sensitive=True,
            ),
            plain("run", 3, required=False, late_bound=True),
            field(
                "optional string config",
                4,
                flag="config_json",
                encoding="ENCODING_BASE64_JSON",
                required=False,
                json_message="demo.v1.Config",
            ),
            field(
                "optional uint32 count",
                5,
                flag="count",
                encoding="ENCODING_DECIMAL",
                required=False,
            ),
            name="ToolArgs",
            doc="A demo tool.",
        ),
        "message Helper {\n  string x = 1;\n}\n",
    )
    (tool,) = contract.messages  # Helper carries no entrypoint options: not modelled
    assert tool.name == "ToolArgs"
    assert tool.full_name == "demo.v1.ToolArgs"
    assert tool.doc == "A demo tool."
    assert tool.proto_module == "v1.demo_pb2"
    assert tool.codec_module == "v1.tool_args_codec"
    assert tool.version_field is None  # "count" is DECIMAL but not the version flag
    assert [f.number for f in tool.fields] == [1, 2, 3, 4, 5]
    secret, name, run, config, count = tool.fields
    assert (secret.kind, secret.sensitive, secret.required, secret.has_presence) == (
        Kind.STRING_MAP,
        True,
        False,
        False,
    )
    assert name.doc == "The name.\n\nMore detail."
    assert name.summary == "The name."
    assert (run.late_bound, run.has_presence) == (True, True)
    assert (config.flag, config.json_message) == ("config_json", "demo.v1.Config")
    assert (count.kind, count.encoding) == (Kind.UINT32, Encoding.DECIMAL)
    assert len(contract.error_kinds) == 19


def test_no_entrypoint_message(contract_root: Path) -> None:
    contract = build(contract_root, "message Plain {\n  string x = 1;\n}\n")
    assert contract.messages == ()


# --------------------------------------------------------------------------- #
# Refusals: one line naming the file, the message and the field.

AT = re.escape(f"{DEMO}: Demo.")


def test_two_fields_one_flag(contract_root: Path) -> None:
    text = refusal(contract_root, message(plain("a", 1), plain("b", 2, flag="a")))
    assert re.fullmatch(AT + r"b: flag 'a' is already used by field 'a'", text)


def test_field_without_options(contract_root: Path) -> None:
    text = refusal(contract_root, message(plain("a", 1), field("string b", 2)))
    assert re.fullmatch(AT + r"b: field has no \(stepwire.entrypoint.v1.field\) options", text)


@pytest.mark.parametrize("missing", ["flag", "encoding", "required"])
def test_option_not_set(contract_root: Path, missing: str) -> None:
    options: dict[str, object] = {"flag": "a", "encoding": "ENCODING_PLAIN", "required": True}
    del options[missing]
    text = refusal(contract_root, message(field("string a", 1, **options)))
    assert text == f"{DEMO}: Demo.a: option '{missing}' is not set"


@pytest.mark.parametrize("flag", ["Upper", "1digit", "with-dash", "_lead", ""])
def test_bad_flag(contract_root: Path, flag: str) -> None:
    text = refusal(contract_root, message(plain("a", 1, flag=flag)))
    assert text.startswith(f"{DEMO}: Demo.a: flag {flag!r} must match ")


def test_unknown_encoding_number(contract_root: Path) -> None:
    # protoc itself refuses a number outside the (closed, proto2) enum.
    text = refusal(
        contract_root, message(field("string a", 1, flag="a", encoding=7, required=True))
    )
    assert "protoc failed" in text
    assert str(contract_root) in text


def test_encoding_unspecified(contract_root: Path) -> None:
    text = refusal(
        contract_root,
        message(field("string a", 1, flag="a", encoding="ENCODING_UNSPECIFIED", required=True)),
    )
    assert text == f"{DEMO}: Demo.a: unknown encoding number 0"


@pytest.mark.parametrize(
    ("declaration", "encoding", "kind"),
    [
        ("optional uint32 a", "ENCODING_PLAIN", "uint32"),
        ("optional uint32 a", "ENCODING_BASE64_JSON", "uint32"),
        ("optional string a", "ENCODING_DECIMAL", "string"),
        ("map<string, string> a", "ENCODING_PLAIN", "string_map"),
        ("map<string, string> a", "ENCODING_DECIMAL", "string_map"),
    ],
)
def test_encoding_does_not_fit_type(
    contract_root: Path, declaration: str, encoding: str, kind: str
) -> None:
    text = refusal(
        contract_root,
        message(field(declaration, 1, flag="a", encoding=encoding, required=False)),
    )
    name = encoding.removeprefix("ENCODING_")
    assert text == f"{DEMO}: Demo.a: encoding {name} does not fit a {kind} field"


@pytest.mark.parametrize(
    "declaration",
    ["int64 a", "bool a", "bytes a", "repeated string a", "map<string, int32> a", "Other a"],
)
def test_unsupported_type(contract_root: Path, declaration: str) -> None:
    text = refusal(
        contract_root,
        message(field(declaration, 1, flag="a", encoding="ENCODING_PLAIN", required=True)),
        "message Other {}\n",
    )
    assert text.startswith(f"{DEMO}: Demo.a: unsupported field type")


@pytest.mark.parametrize("encoding", ["ENCODING_BASE64_JSON", "ENCODING_DECIMAL"])
def test_late_bound_not_plain(contract_root: Path, encoding: str) -> None:
    declaration = "optional uint32 a" if encoding == "ENCODING_DECIMAL" else "optional string a"
    text = refusal(
        contract_root,
        message(
            field(declaration, 1, flag="a", encoding=encoding, required=False, late_bound=True)
        ),
    )
    assert text == f"{DEMO}: Demo.a: a late_bound field must use ENCODING_PLAIN"


def test_sensitive_not_base64_json(contract_root: Path) -> None:
    text = refusal(contract_root, message(plain("a", 1, sensitive=True)))
    assert text.startswith(f"{DEMO}: Demo.a: a sensitive field must use ENCODING_BASE64_JSON")


@pytest.mark.parametrize(
    ("declaration", "encoding"),
    [("string a", "ENCODING_PLAIN"), ("map<string, string> a", "ENCODING_BASE64_JSON")],
)
def test_json_message_misplaced(contract_root: Path, declaration: str, encoding: str) -> None:
    text = refusal(
        contract_root,
        message(
            field(declaration, 1, flag="a", encoding=encoding, required=True, json_message="x.Y")
        ),
    )
    assert text == f"{DEMO}: Demo.a: json_message applies only to BASE64_JSON string fields"


def test_required_declared_optional(contract_root: Path) -> None:
    text = refusal(
        contract_root,
        message(field("optional string a", 1, flag="a", encoding="ENCODING_PLAIN", required=True)),
    )
    assert text == f"{DEMO}: Demo.a: a required field must not be declared optional"


@pytest.mark.parametrize(
    ("declaration", "encoding"),
    [("string a", "ENCODING_PLAIN"), ("uint32 a", "ENCODING_DECIMAL")],
)
def test_not_required_without_presence(
    contract_root: Path, declaration: str, encoding: str
) -> None:
    text = refusal(
        contract_root,
        message(field(declaration, 1, flag="a", encoding=encoding, required=False)),
    )
    assert text == f"{DEMO}: Demo.a: a field that is not required must be declared optional"


@pytest.mark.parametrize(
    "option",
    [
        "contract_version",
        "compress_above_bytes",
        "reference_above_bytes",
        "max_payload_bytes",
        "max_json_depth",
        "max_inflated_bytes",
        "max_json_nodes",
    ],
)
def test_message_option_missing_or_zero(contract_root: Path, option: str) -> None:
    text = refusal(contract_root, message(plain("a", 1), options=message_options(**{option: None})))
    assert text == f"{DEMO}: Demo: message option {option!r} is not set"
    text = refusal(contract_root, message(plain("a", 1), options=message_options(**{option: 0})))
    assert text == f"{DEMO}: Demo: message option {option!r} must be positive"


def test_inflated_bound_above_payload_bound(contract_root: Path) -> None:
    options = message_options(max_payload_bytes=1024, max_inflated_bytes=1025)
    text = refusal(contract_root, message(plain("a", 1), options=options))
    assert text == (
        f"{DEMO}: Demo: message option 'max_inflated_bytes' (1025) exceeds "
        "'max_payload_bytes' (1024)"
    )


def test_field_options_without_message_options(contract_root: Path) -> None:
    text = refusal(contract_root, message(plain("a", 1), options=""))
    assert text.startswith(f"{DEMO}: Demo: fields carry entrypoint options but the message has no")


def test_protoc_syntax_error(contract_root: Path) -> None:
    text = refusal(contract_root, "message Broken {\n  string a = ;\n}\n")
    assert text.startswith(f"{contract_root}: protoc failed")


def test_options_not_imported(tmp_path: Path) -> None:
    root = tmp_path / "contract"
    text = refusal(root, "message Plain {}\n", header='syntax = "proto3";\npackage demo.v1;\n')
    assert "are not defined (import options.proto)" in text


def test_no_proto_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"no \.proto files found"):
        find_protos(tmp_path)
