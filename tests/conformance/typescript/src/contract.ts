// The contract as the generated descriptors state it.
//
// Nothing here names a flag: every flag, encoding, requirement and threshold is
// read at startup from the `(stepwire.entrypoint.v1.field)` and
// `(stepwire.entrypoint.v1.message)` options embedded in the code protoc-gen-es
// generated from contract/stepwire/entrypoint/v1/*.proto.

import { getOption, hasOption, isFieldSet, ScalarType } from "@bufbuild/protobuf";
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { EntrypointArgsSchema } from "./gen/stepwire/entrypoint/v1/entrypoint_pb";
import {
  Encoding,
  ErrorKind,
  ErrorKindSchema,
  FieldOptionsSchema,
  MessageOptionsSchema,
  field as fieldOption,
  message as messageOption,
} from "./gen/stepwire/entrypoint/v1/options_pb";

export { Encoding, ErrorKind };

/** How one field of the message travels. */
export interface OptionSpec {
  readonly field: DescField;
  readonly flag: string;
  readonly encoding: Encoding;
  readonly required: boolean;
  readonly sensitive: boolean;
  readonly lateBound: boolean;
  /** For a JSON string field: the message whose proto3 JSON it holds (an object). */
  readonly jsonMessage: string | null;
  /** "map" for map<string, string>, else the scalar it holds. */
  readonly shape: "map" | "string" | "uint32";
}

export interface Thresholds {
  readonly compressAboveBytes: number;
  readonly referenceAboveBytes: number;
}

export interface Contract {
  readonly schema: DescMessage;
  /** Every option, in field-number order. */
  readonly options: readonly OptionSpec[];
  readonly byFlag: ReadonlyMap<string, OptionSpec>;
  /** The field that carries the contract version (named like the message option). */
  readonly versionOption: OptionSpec;
  /** The version this implementation reads and writes: the message option's. */
  readonly contractVersion: number;
  readonly thresholds: Thresholds;
  readonly maxPayloadBytes: number;
  readonly maxJsonDepth: number;
  /** The bound on the payload of a compressed value (at most maxPayloadBytes). */
  readonly maxInflatedBytes: number;
  /** The bound on the number of JSON values in a payload. */
  readonly maxJsonNodes: number;
}

export class ContractError extends Error {}

/** The lower-case name of an error kind, as the spec and the vectors write it. */
export function kindName(kind: ErrorKind): string {
  const value = ErrorKindSchema.value[kind];
  if (value === undefined) throw new ContractError(`unknown error kind ${kind}`);
  return value.name.toLowerCase();
}

function shapeOf(field: DescField): OptionSpec["shape"] {
  if (field.fieldKind === "map" && field.mapKey === ScalarType.STRING) {
    if (field.mapKind === "scalar" && field.scalar === ScalarType.STRING) return "map";
  }
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) return "string";
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.UINT32) return "uint32";
  throw new ContractError(`${field.name}: a field type the contract does not define`);
}

/** Reads the contract of an entrypoint message from its descriptor's options. */
export function loadContract(schema: DescMessage = EntrypointArgsSchema): Contract {
  if (!hasOption(schema, messageOption)) {
    throw new ContractError(`${schema.typeName} has no (stepwire.entrypoint.v1.message) option`);
  }
  const messageOptions = getOption(schema, messageOption);
  const options: OptionSpec[] = [];
  const byFlag = new Map<string, OptionSpec>();
  for (const field of [...schema.fields].sort((a, b) => a.number - b.number)) {
    if (!hasOption(field, fieldOption)) {
      throw new ContractError(`${field.name} has no (stepwire.entrypoint.v1.field) option`);
    }
    const o = getOption(field, fieldOption);
    if (!isFieldSet(o, FieldOptionsSchema.field.flag) || !/^[a-z][a-z0-9_]*$/.test(o.flag)) {
      throw new ContractError(`${field.name}: missing or malformed flag`);
    }
    if (o.encoding === Encoding.UNSPECIFIED || Encoding[o.encoding] === undefined) {
      throw new ContractError(`${field.name}: no encoding`);
    }
    if (o.lateBound && o.encoding !== Encoding.PLAIN) {
      throw new ContractError(`${field.name}: a late-bound option must be PLAIN`);
    }
    if (o.sensitive && o.encoding !== Encoding.BASE64_JSON) {
      // Sensitive values travel only by reference, which only BASE64_JSON has.
      throw new ContractError(`${field.name}: a sensitive option must be BASE64_JSON`);
    }
    if (byFlag.has(o.flag)) throw new ContractError(`flag ${o.flag} used twice`);
    const spec: OptionSpec = {
      field,
      flag: o.flag,
      encoding: o.encoding,
      required: o.required,
      sensitive: o.sensitive,
      lateBound: o.lateBound,
      jsonMessage: isFieldSet(o, FieldOptionsSchema.field.jsonMessage) ? o.jsonMessage : null,
      shape: shapeOf(field),
    };
    const fits =
      (spec.encoding === Encoding.PLAIN && spec.shape === "string") ||
      (spec.encoding === Encoding.DECIMAL && spec.shape === "uint32") ||
      (spec.encoding === Encoding.BASE64_JSON && spec.shape !== "uint32");
    if (!fits) throw new ContractError(`${field.name}: encoding does not fit the field type`);
    options.push(spec);
    byFlag.set(spec.flag, spec);
  }
  // The message option `contract_version` and the field that carries it share a
  // name (section 5); take the name from the option's own descriptor.
  const versionName = MessageOptionsSchema.field.contractVersion.name;
  const versionOption = options.find((o) => o.field.name === versionName);
  if (versionOption === undefined || versionOption.encoding !== Encoding.DECIMAL) {
    throw new ContractError(`no DECIMAL field ${versionName}`);
  }
  for (const name of [
    "contractVersion",
    "compressAboveBytes",
    "referenceAboveBytes",
    "maxPayloadBytes",
    "maxJsonDepth",
    "maxInflatedBytes",
    "maxJsonNodes",
  ] as const) {
    if (!isFieldSet(messageOptions, MessageOptionsSchema.field[name])) {
      throw new ContractError(`${schema.typeName}: message option ${name} is not set`);
    }
  }
  if (messageOptions.maxInflatedBytes > messageOptions.maxPayloadBytes) {
    throw new ContractError(`${schema.typeName}: max_inflated_bytes exceeds max_payload_bytes`);
  }
  return {
    schema,
    options,
    byFlag,
    versionOption,
    contractVersion: messageOptions.contractVersion,
    thresholds: {
      compressAboveBytes: messageOptions.compressAboveBytes,
      referenceAboveBytes: messageOptions.referenceAboveBytes,
    },
    maxPayloadBytes: messageOptions.maxPayloadBytes,
    maxJsonDepth: messageOptions.maxJsonDepth,
    maxInflatedBytes: messageOptions.maxInflatedBytes,
    maxJsonNodes: messageOptions.maxJsonNodes,
  };
}
