"""The generated entrypoint codec, re-exported under a stable name.

Everything the runtime knows about option names and encodings comes from here,
that is from the contract through the code generator. The contract-independent
rules (the scanner, the encodings, the errors) are in ``stepwire.codec_runtime``;
the generated module re-exports them.
"""

from stepwire._gen.entrypoint.v1.entrypoint_args_codec import (
    CONTRACT_VERSION,
    FLAGS,
    MAX_INFLATED_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_NODES,
    MAX_PAYLOAD_BYTES,
    OPTIONS,
    REQUIRED_FLAGS,
    SENSITIVE_FLAGS,
    ArgumentError,
    CodecError,
    DecodedArgs,
    EncodeError,
    Encoding,
    EntrypointArgs,
    ErrorKind,
    Form,
    ReferenceReader,
    ReferenceStore,
    Thresholds,
    add_arguments,
    as_dict,
    check_custom_options,
    decode,
    encode,
    parse_custom_arguments,
    scan,
)

_FLAG_BY_FIELD = {option.field: option.flag for option in OPTIONS}

ENTRYPOINT_CONFIG_SOURCE_OPTION = _FLAG_BY_FIELD["entrypoint_config_source"]
MAIN_MODULE_SOURCE_OPTION = _FLAG_BY_FIELD["main_module_source"]
STEP_SOURCE_OPTION = _FLAG_BY_FIELD["step_source"]
PIPELINE_JSON_OPTION = _FLAG_BY_FIELD["pipeline_json"]
INPUT_ARTIFACT_SOURCES_OPTION = _FLAG_BY_FIELD["input_artifact_sources"]
MATERIALIZER_SOURCES_OPTION = _FLAG_BY_FIELD["materializer_sources"]
CONTRACT_VERSION_OPTION = _FLAG_BY_FIELD["contract_version"]
RUN_NAME_OPTION = _FLAG_BY_FIELD["run_name"]

__all__ = [
    "CONTRACT_VERSION",
    "CONTRACT_VERSION_OPTION",
    "ENTRYPOINT_CONFIG_SOURCE_OPTION",
    "FLAGS",
    "INPUT_ARTIFACT_SOURCES_OPTION",
    "MAIN_MODULE_SOURCE_OPTION",
    "MATERIALIZER_SOURCES_OPTION",
    "MAX_INFLATED_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_NODES",
    "MAX_PAYLOAD_BYTES",
    "OPTIONS",
    "PIPELINE_JSON_OPTION",
    "REQUIRED_FLAGS",
    "RUN_NAME_OPTION",
    "SENSITIVE_FLAGS",
    "STEP_SOURCE_OPTION",
    "ArgumentError",
    "CodecError",
    "DecodedArgs",
    "EncodeError",
    "Encoding",
    "EntrypointArgs",
    "ErrorKind",
    "Form",
    "ReferenceReader",
    "ReferenceStore",
    "Thresholds",
    "add_arguments",
    "as_dict",
    "check_custom_options",
    "decode",
    "encode",
    "parse_custom_arguments",
    "scan",
]
