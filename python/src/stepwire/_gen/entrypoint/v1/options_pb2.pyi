from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_PLAIN: _ClassVar[Encoding]
    ENCODING_DECIMAL: _ClassVar[Encoding]
    ENCODING_BASE64_JSON: _ClassVar[Encoding]

class ErrorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_KIND_UNSPECIFIED: _ClassVar[ErrorKind]
    MISSING_OPTION: _ClassVar[ErrorKind]
    MISSING_VALUE: _ClassVar[ErrorKind]
    REPEATED_OPTION: _ClassVar[ErrorKind]
    UNEXPECTED_ARGUMENT: _ClassVar[ErrorKind]
    EMPTY_VALUE: _ClassVar[ErrorKind]
    BAD_VALUE: _ClassVar[ErrorKind]
    BAD_UTF8: _ClassVar[ErrorKind]
    BAD_BASE64: _ClassVar[ErrorKind]
    BAD_JSON: _ClassVar[ErrorKind]
    WRONG_JSON_SHAPE: _ClassVar[ErrorKind]
    BAD_COMPRESSED: _ClassVar[ErrorKind]
    PAYLOAD_TOO_LARGE: _ClassVar[ErrorKind]
    BAD_REFERENCE: _ClassVar[ErrorKind]
    REFERENCE_UNAVAILABLE: _ClassVar[ErrorKind]
    SHA256_MISMATCH: _ClassVar[ErrorKind]
    UNSUPPORTED_CONTRACT_VERSION: _ClassVar[ErrorKind]
    BAD_CUSTOM_OPTION: _ClassVar[ErrorKind]
    OPTION_CLASH: _ClassVar[ErrorKind]
    NEEDS_REFERENCE_STORE: _ClassVar[ErrorKind]
ENCODING_UNSPECIFIED: Encoding
ENCODING_PLAIN: Encoding
ENCODING_DECIMAL: Encoding
ENCODING_BASE64_JSON: Encoding
ERROR_KIND_UNSPECIFIED: ErrorKind
MISSING_OPTION: ErrorKind
MISSING_VALUE: ErrorKind
REPEATED_OPTION: ErrorKind
UNEXPECTED_ARGUMENT: ErrorKind
EMPTY_VALUE: ErrorKind
BAD_VALUE: ErrorKind
BAD_UTF8: ErrorKind
BAD_BASE64: ErrorKind
BAD_JSON: ErrorKind
WRONG_JSON_SHAPE: ErrorKind
BAD_COMPRESSED: ErrorKind
PAYLOAD_TOO_LARGE: ErrorKind
BAD_REFERENCE: ErrorKind
REFERENCE_UNAVAILABLE: ErrorKind
SHA256_MISMATCH: ErrorKind
UNSUPPORTED_CONTRACT_VERSION: ErrorKind
BAD_CUSTOM_OPTION: ErrorKind
OPTION_CLASH: ErrorKind
NEEDS_REFERENCE_STORE: ErrorKind
FIELD_FIELD_NUMBER: int
field: _descriptor.FieldDescriptor
MESSAGE_FIELD_NUMBER: int
message: _descriptor.FieldDescriptor

class FieldOptions(_message.Message):
    __slots__ = ("flag", "encoding", "required", "sensitive", "late_bound", "json_message")
    FLAG_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    SENSITIVE_FIELD_NUMBER: _ClassVar[int]
    LATE_BOUND_FIELD_NUMBER: _ClassVar[int]
    JSON_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    flag: str
    encoding: Encoding
    required: bool
    sensitive: bool
    late_bound: bool
    json_message: str
    def __init__(self, flag: _Optional[str] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., required: _Optional[bool] = ..., sensitive: _Optional[bool] = ..., late_bound: _Optional[bool] = ..., json_message: _Optional[str] = ...) -> None: ...

class MessageOptions(_message.Message):
    __slots__ = ("contract_version", "compress_above_bytes", "reference_above_bytes", "max_payload_bytes", "max_json_depth", "max_inflated_bytes", "max_json_nodes")
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPRESS_ABOVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ABOVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_JSON_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MAX_INFLATED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_JSON_NODES_FIELD_NUMBER: _ClassVar[int]
    contract_version: int
    compress_above_bytes: int
    reference_above_bytes: int
    max_payload_bytes: int
    max_json_depth: int
    max_inflated_bytes: int
    max_json_nodes: int
    def __init__(self, contract_version: _Optional[int] = ..., compress_above_bytes: _Optional[int] = ..., reference_above_bytes: _Optional[int] = ..., max_payload_bytes: _Optional[int] = ..., max_json_depth: _Optional[int] = ..., max_inflated_bytes: _Optional[int] = ..., max_json_nodes: _Optional[int] = ...) -> None: ...
