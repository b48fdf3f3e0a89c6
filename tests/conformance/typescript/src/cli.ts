// The launcher's command line, for the conformance harness and the end-to-end test.
//
//   node dist/cli.js batch < requests.json > answers.json
//     requests: [{"op": "encode", "message": {...}, "custom"?, "store"?, "thresholds"?}
//                | {"op": "decode", "argv": [...], "custom_options"?, "objects"?}, ...]
//     answers, one per request, in order: {"ok": ...} | {"error": {kind, flag, message}}
//                                         | {"crash": "..."}
//       encode ok: {"argv": [...], "stored": {"<uri>": "<base64>"}}
//       decode ok: {"message": <proto3 JSON, proto field names>, "custom": {...},
//                   "forms": {"<flag>": "inline" | "compressed" | "reference"}}
//
//   node dist/cli.js launch --fields DIR [--custom NAME=VALUE]... [--store-dir DIR]
//                           [--compress-above N] [--reference-above N]
//     Builds a step's argv from files: DIR/<flag> holds the value of each option
//     the contract defines (text for PLAIN, decimal text for DECIMAL, JSON text for
//     BASE64_JSON, canonical or not). contract_version defaults to the contract's.
//     By-reference payloads go to --store-dir/<sha256>. Prints the argv as JSON.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create, isFieldSet } from "@bufbuild/protobuf";
import type { JsonValue, Message } from "@bufbuild/protobuf";
import { decodeBase64, encodeBase64 } from "./base64";
import { Codec, ContractViolation } from "./codec";
import type { ReferenceStore } from "./codec";
import { Encoding } from "./contract";
import type { Thresholds } from "./contract";
import { canonicalize } from "./jcs";

type Json = JsonValue;
type Answer =
  | { ok: Json }
  | { error: { kind: string; flag: string | null; message: string } }
  | { crash: string };

const codec = new Codec();
const schema = codec.contract.schema;

/** An own property, even for the name `__proto__` (plain assignment would set the prototype). */
function define(target: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * A message from its proto3 JSON (proto or JSON field names).
 *
 * Not protobuf-es's fromJson/toJson: they refuse strings with lone surrogates
 * (which the encode vectors use to ask for bad_utf8) and drop a map key named
 * `__proto__` (they assign into plain objects; bufbuild/protobuf-es#1451 was
 * closed as unlikely to matter).
 */
function messageFromJson(json: Record<string, unknown>): Message {
  const message = create(schema);
  const fields = message as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(json)) {
    const option = codec.contract.options.find((o) => o.field.name === name || o.field.jsonName === name);
    if (option === undefined) throw new Error(`no field ${name}`);
    if (option.shape === "map") {
      const map: Record<string, string> = {};
      for (const [key, text] of Object.entries(value as Record<string, unknown>)) {
        if (typeof text !== "string") throw new Error(`${name}[${key}]: not a string`);
        define(map, key, text);
      }
      fields[option.field.localName] = map;
    } else if (option.shape === "uint32") {
      if (typeof value !== "number") throw new Error(`${name}: not a number`);
      fields[option.field.localName] = value;
    } else {
      if (typeof value !== "string") throw new Error(`${name}: not a string`);
      fields[option.field.localName] = value;
    }
  }
  return message;
}

/** The proto3 JSON of a message, with proto field names (maps always written). */
function messageToJson(message: Message): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  const fields = message as unknown as Record<string, unknown>;
  for (const option of codec.contract.options) {
    const value = fields[option.field.localName];
    if (option.shape === "map") {
      const map: Record<string, unknown> = {};
      for (const [key, text] of Object.entries(value as Record<string, string>)) define(map, key, text);
      json[option.field.name] = map;
    } else if (isFieldSet(message, option.field)) {
      json[option.field.name] = value;
    }
  }
  return json;
}

function thresholdsOf(json: unknown): Partial<Thresholds> | undefined {
  if (json === null || json === undefined) return undefined;
  const t = json as Record<string, number>;
  const out: { compressAboveBytes?: number; referenceAboveBytes?: number } = {};
  if (t["compress_above_bytes"] !== undefined) out.compressAboveBytes = t["compress_above_bytes"];
  if (t["reference_above_bytes"] !== undefined) out.referenceAboveBytes = t["reference_above_bytes"];
  return out;
}

/** The vectors' store: each payload in memory at `prefix + <sha256 hex>`. */
class MemoryStore implements ReferenceStore {
  readonly objects: Record<string, string> = {};
  constructor(private readonly prefix: string) {}
  put(payload: Uint8Array, sha256Hex: string): string {
    const uri = this.prefix + sha256Hex;
    this.objects[uri] = encodeBase64(payload);
    return uri;
  }
}

/** Content-addressed files: `<dir>/<sha256 hex>`, named by their path. */
class FileStore implements ReferenceStore {
  constructor(private readonly dir: string) {}
  put(payload: Uint8Array, sha256Hex: string): string {
    mkdirSync(this.dir, { recursive: true });
    const path = join(this.dir, sha256Hex);
    if (!existsSync(path)) writeFileSync(path, payload);
    return path;
  }
}

function answer(run: () => Json): Answer {
  try {
    return { ok: run() };
  } catch (e) {
    if (e instanceof ContractViolation) return { error: { kind: e.kind, flag: e.flag, message: e.message } };
    return { crash: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}

function handle(request: Record<string, unknown>): Answer {
  switch (request["op"]) {
    case "encode":
      return answer(() => {
        const message = messageFromJson(request["message"] as Record<string, unknown>);
        const store = typeof request["store"] === "string" ? new MemoryStore(request["store"]) : undefined;
        const argv = codec.encode(message, {
          custom: (request["custom"] ?? undefined) as Record<string, string> | undefined,
          store,
          thresholds: thresholdsOf(request["thresholds"]),
        });
        return { argv, stored: store?.objects ?? {} };
      });
    case "decode":
      return answer(() => {
        const objects = (request["objects"] ?? {}) as Record<string, string>;
        const decoded = codec.decode(request["argv"] as string[], {
          customOptions: (request["custom_options"] ?? []) as string[],
          readReference: (uri: string) => {
            const data = Object.prototype.hasOwnProperty.call(objects, uri) ? objects[uri] : undefined;
            const bytes = data === undefined ? null : decodeBase64(data);
            if (bytes === null) throw new Error(`no object at ${uri}`);
            return bytes;
          },
        });
        return {
          message: messageToJson(decoded.message) as Json,
          custom: decoded.custom,
          forms: decoded.forms,
        };
      });
    default:
      return { crash: `unknown op ${JSON.stringify(request["op"])}` };
  }
}

function batch(): void {
  const requests = JSON.parse(readFileSync(0, "utf8")) as Record<string, unknown>[];
  process.stdout.write(JSON.stringify(requests.map(handle)) + "\n");
}

function launch(args: string[]): void {
  let fieldsDir: string | undefined;
  let storeDir: string | undefined;
  const custom: Record<string, string> = {};
  const thresholds: { compressAboveBytes?: number; referenceAboveBytes?: number } = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = args[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    if (arg === "--fields") fieldsDir = value;
    else if (arg === "--store-dir") storeDir = value;
    else if (arg === "--compress-above") thresholds.compressAboveBytes = Number(value);
    else if (arg === "--reference-above") thresholds.referenceAboveBytes = Number(value);
    else if (arg === "--custom") {
      const equals = value.indexOf("=");
      if (equals < 0) throw new Error("--custom takes NAME=VALUE");
      custom[value.slice(0, equals)] = value.slice(equals + 1);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (fieldsDir === undefined) throw new Error("--fields DIR is required");
  const message: Message = create(schema);
  const fields = message as unknown as Record<string, unknown>;
  for (const option of codec.contract.options) {
    const path = join(fieldsDir, option.flag);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, "utf8");
    if (option.shape === "map") {
      // Read strictly (no duplicate names), then keep the object of strings.
      const canonical = canonicalize(text, codec.contract.maxJsonDepth);
      if (canonical.kind !== "object" || canonical.members?.some((m) => m.kind !== "string")) {
        throw new Error(`${path}: a JSON object of strings is expected`);
      }
      const map: Record<string, string> = {};
      for (const member of canonical.members ?? []) define(map, member.name, member.text);
      fields[option.field.localName] = map;
    } else if (option.encoding === Encoding.DECIMAL) {
      fields[option.field.localName] = Number(text.trim());
    } else {
      fields[option.field.localName] = text;
    }
  }
  const version = codec.contract.versionOption;
  if (!existsSync(join(fieldsDir, version.flag)))
    fields[version.field.localName] = codec.contract.contractVersion;
  try {
    const argv = codec.encode(message, {
      custom,
      store: storeDir === undefined ? undefined : new FileStore(storeDir),
      thresholds,
    });
    process.stdout.write(JSON.stringify(argv) + "\n");
  } catch (e) {
    if (!(e instanceof ContractViolation)) throw e;
    process.stderr.write(`launcher: ${e.kind}: ${e.message}\n`);
    process.exitCode = 2;
  }
}

function main(argv: string[]): void {
  const [command, ...rest] = argv;
  if (command === "batch") batch();
  else if (command === "launch") launch(rest);
  else {
    process.stderr.write("usage: cli.js batch < requests.json | cli.js launch --fields DIR ...\n");
    process.exitCode = 64;
  }
}

main(process.argv.slice(2));
