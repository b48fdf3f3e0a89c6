from stepwire._gen.entrypoint.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EntrypointArgs(_message.Message):
    __slots__ = ("entrypoint_config_source", "main_module_source", "step_source", "pipeline_json", "input_artifact_sources", "materializer_sources", "contract_version", "run_name")
    class InputArtifactSourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MaterializerSourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENTRYPOINT_CONFIG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MAIN_MODULE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    STEP_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_JSON_FIELD_NUMBER: _ClassVar[int]
    INPUT_ARTIFACT_SOURCES_FIELD_NUMBER: _ClassVar[int]
    MATERIALIZER_SOURCES_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_NAME_FIELD_NUMBER: _ClassVar[int]
    entrypoint_config_source: str
    main_module_source: str
    step_source: str
    pipeline_json: str
    input_artifact_sources: _containers.ScalarMap[str, str]
    materializer_sources: _containers.ScalarMap[str, str]
    contract_version: int
    run_name: str
    def __init__(self, entrypoint_config_source: _Optional[str] = ..., main_module_source: _Optional[str] = ..., step_source: _Optional[str] = ..., pipeline_json: _Optional[str] = ..., input_artifact_sources: _Optional[_Mapping[str, str]] = ..., materializer_sources: _Optional[_Mapping[str, str]] = ..., contract_version: _Optional[int] = ..., run_name: _Optional[str] = ...) -> None: ...
