"""The contract as a small frozen model: the only code that reads descriptors.

Templates see only these dataclasses. Custom options are read through a private
descriptor pool built from the descriptor set itself, so the generator needs no
previously compiled copy of ``options.proto`` (the bootstrap module that other
generators check in): the contract being compiled is the one that is read.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message as _ProtoMessage

from stepwire_codegen.errors import ContractError

OPTIONS_PACKAGE = "stepwire.entrypoint.v1"
"""Proto package of ``options.proto``, whose extensions the model reads."""

_FIELD_EXTENSION = f"{OPTIONS_PACKAGE}.field"
_MESSAGE_EXTENSION = f"{OPTIONS_PACKAGE}.message"
VERSION_FLAG = "contract_version"
"""A DECIMAL option with this flag carries the contract version of the argv."""
_ERROR_KIND_ENUM = "ErrorKind"
_ENCODING_ENUM = "Encoding"
_ENCODING_PREFIX = "ENCODING_"
_FLAG_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# SourceCodeInfo path components (descriptor.proto field numbers).
_MESSAGE_TYPE = 4
_MESSAGE_FIELD = 2
_ENUM_TYPE = 5
_ENUM_VALUE = 2

_F = descriptor_pb2.FieldDescriptorProto


class Encoding(enum.Enum):
    """Encodings of ``options.proto`` that the generator has a template for.

    Each is matched to the contract's ``Encoding`` value of the same name
    (``ENCODING_PLAIN`` is ``PLAIN``), never to a number.
    """

    PLAIN = "plain"
    DECIMAL = "decimal"
    BASE64_JSON = "base64_json"

    @property
    def template(self) -> str:
        """The macro file that encodes and decodes a value of this encoding."""
        return f"_encoding_{self.value}.j2"


class Kind(enum.Enum):
    """Shapes of field supported by the contract rules."""

    STRING = "string"
    UINT32 = "uint32"
    STRING_MAP = "string_map"

    @property
    def template(self) -> str:
        """The macro file that reads and writes a field of this shape on the message."""
        return f"_kind_{self.value}.j2"


@dataclass(frozen=True)
class Field:
    """One option of an entrypoint message.

    Attributes:
        name: The proto field name.
        number: The proto field number; options are emitted in this order.
        kind: The field's shape.
        has_presence: Whether an unset field differs from its default.
        flag: The command-line option name, without ``--``.
        encoding: How the value is encoded.
        required: Whether a command line without the option is invalid.
        sensitive: Whether the value may only travel by reference.
        late_bound: Whether the orchestrator fills the value in at launch.
        json_message: For JSON text fields, the message whose JSON form it holds.
        doc: The field's leading comment.
    """

    name: str
    number: int
    kind: Kind
    has_presence: bool
    flag: str
    encoding: Encoding
    required: bool
    sensitive: bool
    late_bound: bool
    json_message: str
    doc: str

    @property
    def summary(self) -> str:
        """The first paragraph of the comment, on one line (for ``--help``)."""
        paragraph = self.doc.strip().split("\n\n", 1)[0]
        return " ".join(paragraph.split())


@dataclass(frozen=True)
class Message:
    """An entrypoint message: a message that carries the stepwire message options.

    Attributes:
        name: The message name.
        full_name: The fully qualified proto name.
        proto_file: The proto file that defines it.
        proto_module: Python module name of its ``_pb2`` module, relative to the
            generated package (for example ``entrypoint.v1.entrypoint_pb2``).
        doc: The message's leading comment.
        contract_version: The contract version the message defines.
        compress_above_bytes: Inline length above which values are compressed.
        reference_above_bytes: Compressed length above which values go by reference.
        max_payload_bytes: Bound on decompressed and referenced payloads.
        max_json_depth: Bound on the nesting of JSON payloads.
        max_inflated_bytes: Bound on the payload of a compressed value.
        max_json_nodes: Bound on the number of JSON values in a payload.
        fields: Its fields, by field number.
    """

    name: str
    full_name: str
    proto_file: str
    proto_module: str
    doc: str
    contract_version: int
    compress_above_bytes: int
    reference_above_bytes: int
    max_payload_bytes: int
    max_json_depth: int
    max_inflated_bytes: int
    max_json_nodes: int
    fields: tuple[Field, ...]

    @property
    def version_field(self) -> Field | None:
        """The field that carries the contract version, if the message has one."""
        for field in self.fields:
            if field.flag == VERSION_FLAG and field.encoding is Encoding.DECIMAL:
                return field
        return None

    @property
    def codec_module(self) -> str:
        """Module name of the codec generated for this message."""
        return self.proto_module.rsplit(".", 1)[0] + "." + _snake(self.name) + "_codec"


@dataclass(frozen=True)
class EnumValue:
    """One value of an enum of ``options.proto`` (``ErrorKind``, ``Encoding``).

    Attributes:
        name: The value's name without the enum's prefix, e.g. ``MISSING_OPTION``
            or ``PLAIN`` (for ``ENCODING_PLAIN``): the member name in the runtime.
        number: Its number.
        doc: Its comment.
    """

    name: str
    number: int
    doc: str

    @property
    def value(self) -> str:
        """The lower-case name, e.g. ``missing_option``: the member value in the runtime."""
        return self.name.lower()


@dataclass(frozen=True)
class Contract:
    """Everything the templates need.

    Attributes:
        proto_files: The compiled proto files of the contract, sorted.
        messages: The entrypoint messages.
        error_kinds: The error kinds of ``options.proto``, unspecified excluded.
        encodings: The encodings of ``options.proto``, unspecified excluded.
        options_file: The proto file that defines those enums.
    """

    proto_files: tuple[str, ...]
    messages: tuple[Message, ...]
    error_kinds: tuple[EnumValue, ...]
    encodings: tuple[EnumValue, ...] = ()
    options_file: str = ""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def python_module_of(proto_file: str, strip_prefix: str) -> str:
    """Maps a proto file path to its module name inside the generated package.

    Args:
        proto_file: The proto file path, e.g. ``stepwire/entrypoint/v1/x.proto``.
        strip_prefix: Leading path component dropped in the output tree.

    Returns:
        The dotted module name, e.g. ``entrypoint.v1.x_pb2``.
    """
    path = proto_file.removesuffix(".proto") + "_pb2"
    if strip_prefix and path.startswith(strip_prefix + "/"):
        path = path[len(strip_prefix) + 1 :]
    return path.replace("/", ".")


class _OptionReader:
    """Reads the stepwire custom options out of raw descriptor options."""

    def __init__(self, descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
        pool = descriptor_pool.DescriptorPool()
        for file_proto in descriptor_set.file:
            pool.Add(file_proto)
        try:
            # Typed as Any: the stubs expect extension handles of generated
            # classes, and these come from a private pool.
            self._field_ext: Any = pool.FindExtensionByName(_FIELD_EXTENSION)
            self._message_ext: Any = pool.FindExtensionByName(_MESSAGE_EXTENSION)
        except KeyError as exc:
            raise ContractError(
                f"contract: the options extensions {_FIELD_EXTENSION} and "
                f"{_MESSAGE_EXTENSION} are not defined (import options.proto)"
            ) from exc
        # Building the classes of the options' own file registers the
        # extensions with the option message classes of this pool.
        message_factory.GetMessageClassesForFiles(
            [
                pool.FindFileContainingSymbol(_FIELD_EXTENSION).name,
                "google/protobuf/descriptor.proto",
            ],
            pool,
        )
        self._field_options = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("google.protobuf.FieldOptions")
        )
        self._message_options = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("google.protobuf.MessageOptions")
        )

    def field(self, proto: descriptor_pb2.FieldDescriptorProto) -> _ProtoMessage | None:
        options = self._field_options.FromString(proto.options.SerializeToString())
        if not options.HasExtension(self._field_ext):
            return None
        value: _ProtoMessage = options.Extensions[self._field_ext]
        return value

    def message(self, proto: descriptor_pb2.DescriptorProto) -> _ProtoMessage | None:
        options = self._message_options.FromString(proto.options.SerializeToString())
        if not options.HasExtension(self._message_ext):
            return None
        value: _ProtoMessage = options.Extensions[self._message_ext]
        return value


def _comments(file_proto: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    comments: dict[tuple[int, ...], str] = {}
    for location in file_proto.source_code_info.location:
        if location.leading_comments:
            lines = [line.removeprefix(" ") for line in location.leading_comments.splitlines()]
            comments[tuple(location.path)] = "\n".join(lines).strip()
    return comments


def _kind(
    message: descriptor_pb2.DescriptorProto, field: descriptor_pb2.FieldDescriptorProto
) -> Kind | None:
    if field.label == _F.LABEL_REPEATED:
        if field.type != _F.TYPE_MESSAGE:
            return None
        entry_name = field.type_name.rsplit(".", 1)[-1]
        for nested in message.nested_type:
            if nested.name == entry_name and nested.options.map_entry:
                key, value = nested.field[0], nested.field[1]
                if key.type == _F.TYPE_STRING and value.type == _F.TYPE_STRING:
                    return Kind.STRING_MAP
        return None
    if field.type == _F.TYPE_STRING:
        return Kind.STRING
    if field.type == _F.TYPE_UINT32:
        return Kind.UINT32
    return None


_ENCODINGS_BY_KIND = {
    Kind.STRING: {Encoding.PLAIN, Encoding.BASE64_JSON},
    Kind.UINT32: {Encoding.DECIMAL},
    Kind.STRING_MAP: {Encoding.BASE64_JSON},
}


def _build_field(
    where: str,
    message: descriptor_pb2.DescriptorProto,
    proto: descriptor_pb2.FieldDescriptorProto,
    options: _ProtoMessage | None,
    doc: str,
    *,
    encodings: dict[int, Encoding],
) -> Field:
    at = f"{where}.{proto.name}"
    if options is None:
        raise ContractError(f"{at}: field has no (stepwire.entrypoint.v1.field) options")
    kind = _kind(message, proto)
    if kind is None:
        raise ContractError(
            f"{at}: unsupported field type (use string, uint32 or map<string, string>)"
        )
    for name in ("flag", "encoding", "required"):
        if not options.HasField(name):
            raise ContractError(f"{at}: option {name!r} is not set")
    flag: str = getattr(options, "flag")  # noqa: B009 - dynamic message class
    if not _FLAG_PATTERN.match(flag):
        raise ContractError(f"{at}: flag {flag!r} must match {_FLAG_PATTERN.pattern}")
    encoding_number: int = getattr(options, "encoding")  # noqa: B009
    encoding = encodings.get(encoding_number)
    if encoding is None:
        raise ContractError(f"{at}: unknown encoding number {encoding_number}")
    if encoding not in _ENCODINGS_BY_KIND[kind]:
        raise ContractError(f"{at}: encoding {encoding.name} does not fit a {kind.value} field")
    required: bool = getattr(options, "required")  # noqa: B009
    sensitive: bool = getattr(options, "sensitive")  # noqa: B009
    late_bound: bool = getattr(options, "late_bound")  # noqa: B009
    json_message: str = getattr(options, "json_message")  # noqa: B009
    if late_bound and encoding is not Encoding.PLAIN:
        raise ContractError(f"{at}: a late_bound field must use ENCODING_PLAIN")
    if sensitive and encoding is not Encoding.BASE64_JSON:
        raise ContractError(
            f"{at}: a sensitive field must use ENCODING_BASE64_JSON (it travels by reference)"
        )
    if json_message and not (encoding is Encoding.BASE64_JSON and kind is Kind.STRING):
        raise ContractError(f"{at}: json_message applies only to BASE64_JSON string fields")
    has_presence = proto.proto3_optional or proto.HasField("oneof_index")
    if kind is not Kind.STRING_MAP and not required and not has_presence:
        raise ContractError(f"{at}: a field that is not required must be declared optional")
    if required and has_presence:
        raise ContractError(f"{at}: a required field must not be declared optional")
    return Field(
        name=proto.name,
        number=proto.number,
        kind=kind,
        has_presence=has_presence,
        flag=flag,
        encoding=encoding,
        required=required,
        sensitive=sensitive,
        late_bound=late_bound,
        json_message=json_message,
        doc=doc,
    )


# The message options, all required, in field-number order.
_MESSAGE_OPTIONS = (
    "contract_version",
    "compress_above_bytes",
    "reference_above_bytes",
    "max_payload_bytes",
    "max_json_depth",
    "max_inflated_bytes",
    "max_json_nodes",
)


def _int_option(at: str, options: _ProtoMessage, name: str) -> int:
    if not options.HasField(name):
        raise ContractError(f"{at}: message option {name!r} is not set")
    value: int = getattr(options, name)
    if value <= 0:
        raise ContractError(f"{at}: message option {name!r} must be positive")
    return value


def _enum_values(
    file_proto: descriptor_pb2.FileDescriptorProto, enum_name: str, prefix: str
) -> tuple[EnumValue, ...] | None:
    comments = _comments(file_proto)
    for enum_index, enum_proto in enumerate(file_proto.enum_type):
        if enum_proto.name == enum_name:
            values = (
                EnumValue(
                    name=value.name.removeprefix(prefix),
                    number=value.number,
                    doc=comments.get((_ENUM_TYPE, enum_index, _ENUM_VALUE, value_index), ""),
                )
                for value_index, value in enumerate(enum_proto.value)
                if value.number != 0
            )
            # By number, not declaration order: the order the runtime's copy follows.
            return tuple(sorted(values, key=lambda value: value.number))
    return None


def _template_encodings(values: tuple[EnumValue, ...]) -> dict[int, Encoding]:
    # By name, so that the numbers are the contract's. A value the generator has
    # no template for stays unmapped: a field using it is refused.
    known = {encoding.name: encoding for encoding in Encoding}
    return {value.number: known[value.name] for value in values if value.name in known}


def build_model(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
    proto_files: tuple[str, ...],
    strip_prefix: str,
) -> Contract:
    """Builds the model of the contract and checks its rules.

    Args:
        descriptor_set: Descriptors with source info, imports included.
        proto_files: The contract's own files (imports such as descriptor.proto
            are read but not modelled).
        strip_prefix: Leading path component dropped in the output tree.

    Returns:
        The contract model.

    Raises:
        ContractError: If the contract breaks a rule; the message names the file,
            the element and the rule.
    """
    reader = _OptionReader(descriptor_set)
    messages: list[Message] = []
    error_kinds: tuple[EnumValue, ...] = ()
    encoding_values: tuple[EnumValue, ...] = ()
    options_file = ""
    # The enums first: fields are read with the contract's encoding numbers.
    for file_proto in descriptor_set.file:
        if file_proto.package != OPTIONS_PACKAGE:
            continue
        kinds = _enum_values(file_proto, _ERROR_KIND_ENUM, "")
        encodings = _enum_values(file_proto, _ENCODING_ENUM, _ENCODING_PREFIX)
        if kinds is not None or encodings is not None:
            options_file = file_proto.name
        error_kinds = kinds if kinds is not None else error_kinds
        encoding_values = encodings if encodings is not None else encoding_values
    encoding_by_number = _template_encodings(encoding_values)
    for file_proto in descriptor_set.file:
        if file_proto.name not in proto_files:
            continue
        comments = _comments(file_proto)
        for index, message in enumerate(file_proto.message_type):
            where = f"{file_proto.name}: {message.name}"
            message_options = reader.message(message)
            field_options = [reader.field(field) for field in message.field]
            if message_options is None:
                if any(option is not None for option in field_options):
                    raise ContractError(
                        f"{where}: fields carry entrypoint options but the message has no "
                        "(stepwire.entrypoint.v1.message) options"
                    )
                continue
            fields = tuple(
                _build_field(
                    where,
                    message,
                    field,
                    field_options[field_index],
                    comments.get((_MESSAGE_TYPE, index, _MESSAGE_FIELD, field_index), ""),
                    encodings=encoding_by_number,
                )
                for field_index, field in enumerate(message.field)
            )
            fields = tuple(sorted(fields, key=lambda f: f.number))
            seen: dict[str, str] = {}
            for field in fields:
                if field.flag in seen:
                    raise ContractError(
                        f"{where}.{field.name}: flag {field.flag!r} is already used by "
                        f"field {seen[field.flag]!r}"
                    )
                seen[field.flag] = field.name
            package = f"{file_proto.package}." if file_proto.package else ""
            # In field-number order, so the first missing option is the one named.
            numbers = {name: _int_option(where, message_options, name) for name in _MESSAGE_OPTIONS}
            if numbers["max_inflated_bytes"] > numbers["max_payload_bytes"]:
                # A compressed payload is a payload: the larger bound could never apply.
                raise ContractError(
                    f"{where}: message option 'max_inflated_bytes' "
                    f"({numbers['max_inflated_bytes']}) exceeds 'max_payload_bytes' "
                    f"({numbers['max_payload_bytes']})"
                )
            messages.append(
                Message(
                    name=message.name,
                    full_name=package + message.name,
                    proto_file=file_proto.name,
                    proto_module=python_module_of(file_proto.name, strip_prefix),
                    doc=comments.get((_MESSAGE_TYPE, index), ""),
                    contract_version=numbers["contract_version"],
                    compress_above_bytes=numbers["compress_above_bytes"],
                    reference_above_bytes=numbers["reference_above_bytes"],
                    max_payload_bytes=numbers["max_payload_bytes"],
                    max_json_depth=numbers["max_json_depth"],
                    max_inflated_bytes=numbers["max_inflated_bytes"],
                    max_json_nodes=numbers["max_json_nodes"],
                    fields=fields,
                )
            )
    if messages and not error_kinds:
        raise ContractError(f"{OPTIONS_PACKAGE}: the ErrorKind enum is missing from options.proto")
    return Contract(
        proto_files=tuple(sorted(proto_files)),
        messages=tuple(messages),
        error_kinds=error_kinds,
        encodings=encoding_values,
        options_file=options_file,
    )
