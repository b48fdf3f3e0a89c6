// The command line of a stepwire step, both ways, as contract/README.md states it.
//
// encode(message) -> the canonical argv; decode(argv) -> the message, the custom
// options and the form each JSON option came in. Refusals carry the spec's error
// kind and the flag they concern, and come in the spec's order (section 6).

import { createHash } from "node:crypto";
import { deflateSync, inflateSync } from "node:zlib";
import { create, isFieldSet } from "@bufbuild/protobuf";
import type { Message } from "@bufbuild/protobuf";
import { decodeBase64, encodeBase64 } from "./base64";
import { canonicalStringMap, canonicalize, countValues, firstValueCharacter, JsonSyntaxError } from "./jcs";
import { Encoding, ErrorKind, kindName, loadContract } from "./contract";
import type { Contract, OptionSpec, Thresholds } from "./contract";
import type { EntrypointArgs } from "./gen/stepwire/entrypoint/v1/entrypoint_pb";

export type Form = "inline" | "compressed" | "reference";

export const COMPRESSED_PREFIX = "zlib:";
export const REFERENCE_PREFIX = "ref:";
const REFERENCE = /^ref:sha256:([0-9a-f]{64}):(.+)$/s;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const UINT32_MAX = 4294967295;
const CUSTOM_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
// In a `u` regex a surrogate pair is one code point: this matches lone halves only.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
// Section 3.3.1: a payload whose first character after whitespace is one of these
// is an array or a string, whatever follows; its shape is known before parsing.
const STARTS_NOT_AN_OBJECT = new Set(["[", '"']);

/** A refusal: `kind` is the spec's lower-case error kind, `flag` the option or null. */
export class ContractViolation extends Error {
  readonly code: ErrorKind;
  readonly kind: string;
  readonly flag: string | null;

  constructor(code: ErrorKind, message: string, flag: string | null) {
    // One line, whatever the values quoted in it hold.
    super(message.replace(/[\r\n]+/g, " "));
    this.code = code;
    this.kind = kindName(code);
    this.flag = flag;
  }
}

/** A command line that cannot be read. */
export class ArgumentError extends ContractViolation {
  override name = "ArgumentError";
}

/** A message that cannot be written as a command line. */
export class EncodeError extends ContractViolation {
  override name = "EncodeError";
}

type Refusal = new (code: ErrorKind, message: string, flag: string | null) => ContractViolation;

/** Keeps by-reference payloads; returns the URI the command line names. */
export interface ReferenceStore {
  put(payload: Uint8Array, sha256Hex: string): string;
}

/** Fetches a referenced payload; throws when it cannot. */
export type ReferenceReader = (uri: string) => Uint8Array;

export interface EncodeOptions {
  readonly custom?: Readonly<Record<string, string>>;
  readonly store?: ReferenceStore;
  readonly thresholds?: Partial<Thresholds>;
}

export interface DecodeOptions {
  readonly customOptions?: Iterable<string>;
  readonly readReference?: ReferenceReader;
}

export interface Decoded<M extends Message = Message> {
  readonly message: M;
  readonly custom: Record<string, string>;
  /** The form of each JSON option that was given, by flag. */
  readonly forms: Record<string, Form>;
}

function byCodePoints(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0) as number);
  const y = Array.from(b, (c) => c.codePointAt(0) as number);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  }
  return x.length - y.length;
}

function quote(text: string): string {
  const shown = text.length > 60 ? text.slice(0, 60) + "..." : text;
  return JSON.stringify(shown);
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function checkCustomNames(contract: Contract, names: Iterable<string>, Err: Refusal): string[] {
  const sorted = [...new Set(names)].sort(byCodePoints);
  for (const name of sorted) {
    if (!CUSTOM_NAME.test(name)) {
      throw new Err(
        ErrorKind.BAD_CUSTOM_OPTION,
        `custom option name ${quote(name)} does not match [A-Za-z_][A-Za-z0-9_-]*`,
        null,
      );
    }
    if (contract.byFlag.has(name)) {
      throw new Err(ErrorKind.OPTION_CLASH, `--${name}: a custom option reuses a contract flag`, name);
    }
  }
  return sorted;
}

/** The rules of PLAIN text (section 3.1); custom values may be empty (section 4). */
function checkText(flag: string, value: string, mayBeEmpty: boolean, Err: Refusal): void {
  if (!mayBeEmpty && value === "") throw new Err(ErrorKind.EMPTY_VALUE, `--${flag}: empty value`, flag);
  if (value.includes("\0")) throw new Err(ErrorKind.BAD_VALUE, `--${flag}: the value holds U+0000`, flag);
  if (LONE_SURROGATE.test(value)) {
    throw new Err(ErrorKind.BAD_UTF8, `--${flag}: the value is not valid UTF-8 text`, flag);
  }
}

/** Appends one option: two elements, or one joined element when the value starts with '-'. */
function pushOption(argv: string[], flag: string, value: string): void {
  if (value.startsWith("-")) argv.push(`--${flag}=${value}`);
  else argv.push(`--${flag}`, value);
}

export class Codec<M extends Message = Message> {
  readonly contract: Contract;

  constructor(contract: Contract = loadContract()) {
    this.contract = contract;
  }

  // ------------------------------------------------------------------ encode

  /** The canonical argv of a message (section 1.1). */
  encode(message: M, options: EncodeOptions = {}): string[] {
    const contract = this.contract;
    const thresholds: Thresholds = { ...contract.thresholds, ...options.thresholds };
    const custom = options.custom ?? {};
    const customNames = checkCustomNames(contract, Object.keys(custom), EncodeError);
    const argv: string[] = [];
    const fields = message as unknown as Record<string, unknown>;
    for (const option of contract.options) {
      const value = fields[option.field.localName];
      const { flag } = option;
      if (option.shape === "map") {
        const entries = Object.entries((value ?? {}) as Record<string, string>);
        if (!option.required && entries.length === 0) continue;
        pushOption(
          argv,
          flag,
          this.encodeJson(option, this.mapPayload(option, entries), thresholds, options.store),
        );
        continue;
      }
      // Set: present for a field with explicit presence (proto3 `optional`), not
      // the default for an optional field without; a required one always is.
      const explicit = option.field.proto.proto3Optional === true;
      const set = option.required && !explicit ? true : isFieldSet(message, option.field);
      if (!set) {
        if (option.required) throw new EncodeError(ErrorKind.MISSING_OPTION, `--${flag}: required`, flag);
        continue;
      }
      switch (option.encoding) {
        case Encoding.PLAIN:
          checkText(flag, value as string, false, EncodeError);
          pushOption(argv, flag, value as string);
          break;
        case Encoding.DECIMAL: {
          const number = value as number;
          if (!Number.isInteger(number) || number < 0 || number > UINT32_MAX) {
            throw new EncodeError(ErrorKind.BAD_VALUE, `--${flag}: not a uint32`, flag);
          }
          // A version this encoder does not implement would be refused by the
          // runtime (0) or lie about the command line (a newer one). The spec
          // names no kind for the encoder; bad_value, as the Python codec.
          if (option === contract.versionOption && (number === 0 || number > contract.contractVersion)) {
            throw new EncodeError(
              ErrorKind.BAD_VALUE,
              `--${flag}: this encoder writes contract versions 1 to ${contract.contractVersion}, not ${number}`,
              flag,
            );
          }
          pushOption(argv, flag, String(number));
          break;
        }
        case Encoding.BASE64_JSON:
          pushOption(
            argv,
            flag,
            this.encodeJson(option, this.stringPayload(option, value as string), thresholds, options.store),
          );
          break;
        default:
          throw new Error(`unreachable: encoding ${option.encoding}`);
      }
    }
    for (const name of customNames) {
      const value = custom[name] as string;
      checkText(name, value, true, EncodeError);
      pushOption(argv, name, value);
    }
    return argv;
  }

  private mapPayload(option: OptionSpec, entries: [string, string][]): string {
    // The object and one string per entry, checked first as a decoder counts first.
    const values = entries.length + 1;
    if (values > this.contract.maxJsonNodes) {
      throw new EncodeError(
        ErrorKind.PAYLOAD_TOO_LARGE,
        `--${option.flag}: ${values} JSON values, more than the ${this.contract.maxJsonNodes} of max_json_nodes`,
        option.flag,
      );
    }
    for (const [key, value] of entries) {
      for (const text of [key, value]) {
        checkText(option.flag, text, true, EncodeError);
      }
    }
    return canonicalStringMap(entries);
  }

  private stringPayload(option: OptionSpec, text: string): string {
    const { flag } = option;
    if (LONE_SURROGATE.test(text)) {
      throw new EncodeError(ErrorKind.BAD_UTF8, `--${flag}: the JSON text is not valid Unicode`, flag);
    }
    // The decoder's order: the first character, the number of values, the parse.
    if (option.jsonMessage !== null) this.checkObjectStart(option, text, EncodeError);
    this.checkValueCount(option, text, EncodeError);
    let parsed;
    try {
      parsed = canonicalize(text, this.contract.maxJsonDepth);
    } catch (e) {
      if (e instanceof JsonSyntaxError)
        throw new EncodeError(ErrorKind.BAD_JSON, `--${flag}: ${e.message}`, flag);
      throw e;
    }
    if (option.jsonMessage !== null && parsed.kind !== "object") {
      throw new EncodeError(
        ErrorKind.WRONG_JSON_SHAPE,
        `--${flag}: a ${option.jsonMessage} is a JSON object, not ${parsed.kind}`,
        flag,
      );
    }
    return parsed.canonical;
  }

  /** Section 3.3: inline, else compressed when shorter, else by reference. */
  private encodeJson(
    option: OptionSpec,
    canonical: string,
    thresholds: Thresholds,
    store?: ReferenceStore,
  ): string {
    const { flag } = option;
    const payload = Buffer.from(canonical, "utf8");
    if (payload.length > this.contract.maxPayloadBytes) {
      throw new EncodeError(
        ErrorKind.PAYLOAD_TOO_LARGE,
        `--${flag}: ${payload.length} bytes, more than ${this.contract.maxPayloadBytes}`,
        flag,
      );
    }
    let element = encodeBase64(payload);
    // A reader inflates no more than max_inflated_bytes: a larger payload is never compressed.
    if (element.length > thresholds.compressAboveBytes && payload.length <= this.contract.maxInflatedBytes) {
      const compressed = COMPRESSED_PREFIX + encodeBase64(deflateSync(payload, { level: 9 }));
      if (compressed.length < element.length) element = compressed;
    }
    if (option.sensitive || element.length > thresholds.referenceAboveBytes) {
      if (store === undefined) {
        throw new EncodeError(
          ErrorKind.NEEDS_REFERENCE_STORE,
          `--${flag}: the value must go by reference (${element.length} characters) and no store was given`,
          flag,
        );
      }
      const digest = sha256Hex(payload);
      const uri = store.put(payload, digest);
      if (uri === "" || uri.includes("\0"))
        throw new Error(`reference store returned a bad URI ${quote(uri)}`);
      element = `${REFERENCE_PREFIX}sha256:${digest}:${uri}`;
    }
    return element;
  }

  // ------------------------------------------------------------------ decode

  /** Reads a command line (section 1.2), in the error order of section 6. */
  decode(argv: readonly string[], options: DecodeOptions = {}): Decoded<M> {
    const contract = this.contract;
    const customNames = checkCustomNames(contract, options.customOptions ?? [], ArgumentError);
    const customs = new Set(customNames);

    // 1. The scan, left to right.
    const found = new Map<string, string>();
    for (let i = 0; i < argv.length; i++) {
      const element = argv[i] as string;
      if (!element.startsWith("--") || element === "--") {
        throw new ArgumentError(
          ErrorKind.UNEXPECTED_ARGUMENT,
          `unexpected argument ${quote(element)} at position ${i}`,
          null,
        );
      }
      const equals = element.indexOf("=");
      const name = equals < 0 ? element.slice(2) : element.slice(2, equals);
      if (!contract.byFlag.has(name) && !customs.has(name)) {
        // Unknown: skipped, with its value when it has one.
        const next = argv[i + 1];
        if (equals < 0 && next !== undefined && !next.startsWith("-")) i++;
        continue;
      }
      // An element both repeated and without value is reported as missing_value:
      // section 6 lists the scan's kinds in that order. (The spec does not say
      // more; the Python codec does the same.)
      let value: string;
      if (equals >= 0) {
        value = element.slice(equals + 1);
      } else {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith("--")) {
          throw new ArgumentError(ErrorKind.MISSING_VALUE, `--${name}: no value`, name);
        }
        value = next;
      }
      if (found.has(name)) throw new ArgumentError(ErrorKind.REPEATED_OPTION, `--${name}: given twice`, name);
      found.set(name, value);
      if (equals < 0) i++;
    }

    // 2. The contract version, before any other option is looked at.
    const version = contract.versionOption;
    const versionText = found.get(version.flag);
    let versionValue: number | undefined;
    if (versionText !== undefined) {
      versionValue = this.decimal(version, versionText);
      if (versionValue === 0) {
        throw new ArgumentError(ErrorKind.BAD_VALUE, `--${version.flag}: versions start at 1`, version.flag);
      }
      if (versionValue > contract.contractVersion) {
        throw new ArgumentError(
          ErrorKind.UNSUPPORTED_CONTRACT_VERSION,
          `--${version.flag}: the command line is for contract version ${versionValue}, ` +
            `this runtime implements version ${contract.contractVersion}`,
          version.flag,
        );
      }
    }

    // 3. The contract's options in field-number order.
    const message = create(contract.schema) as unknown as M;
    const fields = message as unknown as Record<string, unknown>;
    const forms: Record<string, Form> = {};
    for (const option of contract.options) {
      const { flag } = option;
      const raw = found.get(flag);
      if (raw === undefined) {
        if (option.required) throw new ArgumentError(ErrorKind.MISSING_OPTION, `--${flag}: required`, flag);
        continue;
      }
      let value: unknown;
      switch (option.encoding) {
        case Encoding.PLAIN:
          checkText(flag, raw, false, ArgumentError);
          value = raw;
          break;
        case Encoding.DECIMAL:
          value = option === version ? versionValue : this.decimal(option, raw);
          break;
        case Encoding.BASE64_JSON: {
          const [payload, form] = this.payload(option, raw, options.readReference);
          value = this.json(option, payload);
          forms[flag] = form;
          break;
        }
        default:
          throw new Error(`unreachable: encoding ${option.encoding}`);
      }
      fields[option.field.localName] = value;
    }

    // 4. The custom options, by name.
    const custom: Record<string, string> = {};
    for (const name of customNames) {
      const value = found.get(name);
      if (value === undefined) throw new ArgumentError(ErrorKind.MISSING_OPTION, `--${name}: required`, name);
      checkText(name, value, true, ArgumentError);
      custom[name] = value;
    }
    return { message, custom, forms };
  }

  private decimal(option: OptionSpec, text: string): number {
    if (!DECIMAL.test(text) || text.length > 10 || Number(text) > UINT32_MAX) {
      throw new ArgumentError(
        ErrorKind.BAD_VALUE,
        `--${option.flag}: ${quote(text)} is not a decimal number from 0 to ${UINT32_MAX}`,
        option.flag,
      );
    }
    return Number(text);
  }

  /** The payload bytes of a JSON option and the form they came in. */
  private payload(option: OptionSpec, raw: string, read?: ReferenceReader): [Uint8Array, Form] {
    const { flag } = option;
    const max = this.contract.maxPayloadBytes;
    if (raw.startsWith(COMPRESSED_PREFIX)) {
      const maxInflated = this.contract.maxInflatedBytes;
      const stream = decodeBase64(raw.slice(COMPRESSED_PREFIX.length));
      if (stream === null)
        throw new ArgumentError(ErrorKind.BAD_BASE64, `--${flag}: not standard base64 after zlib:`, flag);
      let inflated;
      try {
        // Node stops inflating as soon as the output passes the bound.
        inflated = inflateSync(stream, { maxOutputLength: maxInflated, info: true }) as unknown as {
          buffer: Buffer;
          engine: { bytesWritten: number };
        };
      } catch (e) {
        if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
          throw new ArgumentError(
            ErrorKind.PAYLOAD_TOO_LARGE,
            `--${flag}: inflates to more than the ${maxInflated} bytes of max_inflated_bytes`,
            flag,
          );
        }
        throw new ArgumentError(
          ErrorKind.BAD_COMPRESSED,
          `--${flag}: not a complete zlib stream (${(e as Error).message})`,
          flag,
        );
      }
      if (inflated.engine.bytesWritten !== stream.length) {
        throw new ArgumentError(
          ErrorKind.BAD_COMPRESSED,
          `--${flag}: bytes after the end of the zlib stream`,
          flag,
        );
      }
      return [inflated.buffer, "compressed"];
    }
    if (raw.startsWith(REFERENCE_PREFIX)) {
      const match = REFERENCE.exec(raw);
      if (match === null || raw.includes("\0")) {
        throw new ArgumentError(
          ErrorKind.BAD_REFERENCE,
          `--${flag}: not ref:sha256:<64 lower-case hex>:<uri>`,
          flag,
        );
      }
      const [, digest, uri] = match as unknown as [string, string, string];
      if (read === undefined) {
        throw new ArgumentError(
          ErrorKind.REFERENCE_UNAVAILABLE,
          `--${flag}: no reader for ${quote(uri)}`,
          flag,
        );
      }
      let bytes: Uint8Array;
      try {
        bytes = read(uri);
      } catch (e) {
        throw new ArgumentError(
          ErrorKind.REFERENCE_UNAVAILABLE,
          `--${flag}: cannot fetch ${quote(uri)}: ${(e as Error).message}`,
          flag,
        );
      }
      if (bytes.length > max) {
        throw new ArgumentError(
          ErrorKind.PAYLOAD_TOO_LARGE,
          `--${flag}: ${quote(uri)} holds more than ${max} bytes`,
          flag,
        );
      }
      if (sha256Hex(bytes) !== digest) {
        throw new ArgumentError(
          ErrorKind.SHA256_MISMATCH,
          `--${flag}: ${quote(uri)} does not have sha256 ${digest}`,
          flag,
        );
      }
      return [bytes, "reference"];
    }
    const bytes = decodeBase64(raw);
    if (bytes === null) throw new ArgumentError(ErrorKind.BAD_BASE64, `--${flag}: not standard base64`, flag);
    return [bytes, "inline"];
  }

  /** Section 3.3.1: a payload that starts like an array or a string is no object. */
  private checkObjectStart(option: OptionSpec, text: string, Err: Refusal): void {
    const first = firstValueCharacter(text);
    if (STARTS_NOT_AN_OBJECT.has(first)) {
      throw new Err(
        ErrorKind.WRONG_JSON_SHAPE,
        `--${option.flag}: a JSON object is expected, the value starts with ${JSON.stringify(first)}`,
        option.flag,
      );
    }
  }

  /** Section 3.3.1: at most max_json_nodes values, counted before the parse. */
  private checkValueCount(option: OptionSpec, text: string, Err: Refusal): void {
    const count = countValues(text);
    if (count > this.contract.maxJsonNodes) {
      throw new Err(
        ErrorKind.PAYLOAD_TOO_LARGE,
        `--${option.flag}: ${count} JSON values, more than the ${this.contract.maxJsonNodes} of max_json_nodes`,
        option.flag,
      );
    }
  }

  /** The decoded value of a JSON option: canonical text, or a map of strings. */
  private json(option: OptionSpec, payload: Uint8Array): string | Record<string, string> {
    const { flag } = option;
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(payload);
    } catch {
      throw new ArgumentError(ErrorKind.BAD_UTF8, `--${flag}: the payload is not UTF-8`, flag);
    }
    // Before the parse: the shape from the first character, then the number of values.
    if (option.shape === "map" || option.jsonMessage !== null) this.checkObjectStart(option, text, ArgumentError);
    this.checkValueCount(option, text, ArgumentError);
    let parsed;
    try {
      parsed = canonicalize(text, this.contract.maxJsonDepth);
    } catch (e) {
      if (e instanceof JsonSyntaxError)
        throw new ArgumentError(ErrorKind.BAD_JSON, `--${flag}: not JSON: ${e.message}`, flag);
      // V8 out of room for a string or an array: the payload is too large for this process.
      if (e instanceof RangeError)
        throw new ArgumentError(ErrorKind.PAYLOAD_TOO_LARGE, `--${flag}: out of memory: ${e.message}`, flag);
      throw e;
    }
    if (option.shape !== "map") {
      if (option.jsonMessage !== null && parsed.kind !== "object") {
        throw new ArgumentError(
          ErrorKind.WRONG_JSON_SHAPE,
          `--${flag}: a ${option.jsonMessage} is a JSON object, not ${parsed.kind}`,
          flag,
        );
      }
      return parsed.canonical;
    }
    if (parsed.kind !== "object") {
      throw new ArgumentError(
        ErrorKind.WRONG_JSON_SHAPE,
        `--${flag}: a JSON object of strings, not ${parsed.kind}`,
        flag,
      );
    }
    const members = parsed.members ?? [];
    for (const member of members) {
      if (member.kind !== "string") {
        throw new ArgumentError(
          ErrorKind.WRONG_JSON_SHAPE,
          `--${flag}: the value of ${quote(member.name)} is ${member.kind}, not a string`,
          flag,
        );
      }
    }
    const map: Record<string, string> = {};
    for (const member of members) {
      if (member.name.includes("\0") || (member.text as string).includes("\0")) {
        throw new ArgumentError(ErrorKind.BAD_VALUE, `--${flag}: a map string holds U+0000`, flag);
      }
      Object.defineProperty(map, member.name, {
        value: member.text,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return map;
  }
}

let defaultCodec: Codec<EntrypointArgs> | undefined;

/** The canonical argv of an `EntrypointArgs` (the contract this code was generated from). */
export function encode(message: EntrypointArgs, options: EncodeOptions = {}): string[] {
  defaultCodec ??= new Codec<EntrypointArgs>();
  return defaultCodec.encode(message, options);
}

/** Reads the argv of an `EntrypointArgs` command line. */
export function decode(argv: readonly string[], options: DecodeOptions = {}): Decoded<EntrypointArgs> {
  defaultCodec ??= new Codec<EntrypointArgs>();
  return defaultCodec.decode(argv, options);
}
