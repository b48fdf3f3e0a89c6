// Strict JSON (RFC 8259) reading straight into the canonical form of RFC 8785.
//
// JSON.parse cannot be used: it keeps the last of duplicate names silently, and
// the contract refuses duplicates. This parser refuses them, refuses lone
// surrogate escapes and numbers that overflow a double, and builds the canonical
// text bottom-up while it reads, so nothing is recursive: a deeply nested text
// cannot overflow the stack.
//
// RFC 8785 defines its serialization by ECMAScript's: numbers as
// Number.prototype.toString writes them (JSON.stringify of a finite number) and
// strings as JSON.stringify writes them (short escapes for \b \t \n \f \r, \u00xx
// in lower case for the other controls, `"` and `\` escaped, everything else
// raw). Well-formed strings are all this parser lets through, so JSON.stringify
// is exactly the RFC's serializer for the leaves. Members are sorted by the
// UTF-16 code units of their names, which is what JavaScript's `<` compares.

export class JsonSyntaxError extends Error {}

export type JsonKind = "object" | "array" | "string" | "number" | "boolean" | "null";

/** One member of the top-level object, for the shape checks of the caller. */
export interface TopMember {
  readonly name: string;
  readonly kind: JsonKind;
  /** The decoded string, when `kind` is "string". */
  readonly text?: string;
}

export interface Canonical {
  /** The RFC 8785 form of the whole text. */
  readonly canonical: string;
  /** The kind of the top-level value. */
  readonly kind: JsonKind;
  /** The members of the top-level value, when it is an object, in canonical order. */
  readonly members?: readonly TopMember[];
}

interface ObjectFrame {
  readonly type: "object";
  readonly members: [string, string][];
  readonly names: Set<string>;
  readonly top: TopMember[] | null;
  name: string;
}

interface ArrayFrame {
  readonly type: "array";
  readonly items: string[];
}

type Frame = ObjectFrame | ArrayFrame;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
const SHORT_ESCAPES: Record<string, string> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

function byCodeUnits(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/** Serializes one string as RFC 8785 does (the caller guarantees it is well-formed). */
export function canonicalString(value: string): string {
  return JSON.stringify(value);
}

/** The RFC 8785 text of an object whose values are all strings (a map field). */
export function canonicalStringMap(entries: Iterable<[string, string]>): string {
  const members = [...entries].map(([k, v]): [string, string] => [k, canonicalString(v)]);
  members.sort(byCodeUnits);
  return "{" + members.map(([k, v]) => canonicalString(k) + ":" + v).join(",") + "}";
}

/**
 * Parses one JSON text strictly and returns its canonical form.
 *
 * @throws JsonSyntaxError for anything that is not one RFC 8259 JSON text with a
 *   canonical form (duplicate names, lone surrogate escapes, overflowing numbers).
 */
export function canonicalize(text: string, maxDepth = Number.POSITIVE_INFINITY): Canonical {
  const n = text.length;
  let i = 0;
  const stack: Frame[] = [];
  // Set when the top-level object closes.
  let topMembers: TopMember[] | undefined;

  const fail = (why: string): never => {
    throw new JsonSyntaxError(`${why} at offset ${i}`);
  };
  const skipWhitespace = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const readHex4 = (): number => {
    const hex = text.slice(i, i + 4);
    if (!HEX4.test(hex)) fail("bad \\u escape");
    i += 4;
    return parseInt(hex, 16);
  };
  const readString = (): string => {
    // At the opening quote.
    i++;
    let out = "";
    let start = i;
    for (;;) {
      if (i >= n) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c >= 0xd800 && c <= 0xdfff) {
        // A raw surrogate must be half of a pair (text from UTF-8 always is).
        const next = text.charCodeAt(i + 1);
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          i += 2;
          continue;
        }
        fail("lone surrogate");
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      i++;
      const e = text[i];
      if (e === undefined) fail("unterminated escape");
      if (e !== "u") {
        const short = SHORT_ESCAPES[e as string];
        if (short === undefined) fail("bad escape");
        out += short;
        i++;
      } else {
        i++;
        const unit = readHex4();
        if (unit >= 0xdc00 && unit <= 0xdfff) fail("lone low surrogate escape");
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (text[i] !== "\\" || text[i + 1] !== "u") fail("lone high surrogate escape");
          i += 2;
          const low = readHex4();
          if (low < 0xdc00 || low > 0xdfff) fail("lone high surrogate escape");
          out += String.fromCharCode(unit, low);
        } else {
          out += String.fromCharCode(unit);
        }
      }
      start = i;
    }
  };
  const readName = (): string => {
    skipWhitespace();
    if (text[i] !== '"') fail("expected a member name");
    const name = readString();
    skipWhitespace();
    if (text[i] !== ":") fail("expected ':'");
    i++;
    return name;
  };

  for (;;) {
    // Read one value: a scalar, an empty container, or the opening of a container.
    skipWhitespace();
    let value: string;
    let kind: JsonKind;
    let decoded: string | undefined;
    const c = text[i];
    if (c === "{") {
      if (stack.length + 1 > maxDepth) fail(`objects and arrays nested deeper than ${maxDepth}`);
      i++;
      skipWhitespace();
      if (text[i] === "}") {
        i++;
        value = "{}";
        kind = "object";
      } else {
        const frame: ObjectFrame = {
          type: "object",
          members: [],
          names: new Set(),
          top: stack.length === 0 ? [] : null,
          name: readName(),
        };
        frame.names.add(frame.name);
        stack.push(frame);
        continue;
      }
    } else if (c === "[") {
      if (stack.length + 1 > maxDepth) fail(`objects and arrays nested deeper than ${maxDepth}`);
      i++;
      skipWhitespace();
      if (text[i] === "]") {
        i++;
        value = "[]";
        kind = "array";
      } else {
        stack.push({ type: "array", items: [] });
        continue;
      }
    } else if (c === '"') {
      decoded = readString();
      value = canonicalString(decoded);
      kind = "string";
    } else if (c === "t" && text.startsWith("true", i)) {
      i += 4;
      value = "true";
      kind = "boolean";
    } else if (c === "f" && text.startsWith("false", i)) {
      i += 5;
      value = "false";
      kind = "boolean";
    } else if (c === "n" && text.startsWith("null", i)) {
      i += 4;
      value = "null";
      kind = "null";
    } else {
      NUMBER.lastIndex = i;
      const match = NUMBER.exec(text);
      if (match === null) fail(i >= n ? "unexpected end" : "unexpected character");
      const literal = (match as RegExpExecArray)[0];
      const number = Number(literal);
      if (!Number.isFinite(number)) fail("number overflows a double");
      i += literal.length;
      value = JSON.stringify(number);
      kind = "number";
    }

    // Hand the value to the enclosing containers, closing every one that ends here.
    for (;;) {
      const frame = stack[stack.length - 1];
      if (frame === undefined) {
        skipWhitespace();
        if (i !== n) fail("text after the value");
        return { canonical: value, kind, members: topMembers };
      }
      skipWhitespace();
      if (frame.type === "array") {
        frame.items.push(value);
        if (text[i] === ",") {
          i++;
          break;
        }
        if (text[i] !== "]") fail("expected ',' or ']'");
        i++;
        stack.pop();
        value = "[" + frame.items.join(",") + "]";
        kind = "array";
        decoded = undefined;
        continue;
      }
      frame.members.push([frame.name, value]);
      frame.top?.push(
        decoded === undefined ? { name: frame.name, kind } : { name: frame.name, kind, text: decoded },
      );
      if (text[i] === ",") {
        i++;
        frame.name = readName();
        if (frame.names.has(frame.name)) fail(`duplicate name ${JSON.stringify(frame.name)}`);
        frame.names.add(frame.name);
        break;
      }
      if (text[i] !== "}") fail("expected ',' or '}'");
      i++;
      stack.pop();
      frame.members.sort(byCodeUnits);
      value = "{" + frame.members.map(([k, v]) => canonicalString(k) + ":" + v).join(",") + "}";
      kind = "object";
      decoded = undefined;
      if (frame.top !== null) {
        frame.top.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        topMembers = frame.top;
      }
    }
  }
}

/**
 * The number of JSON values of a text, counted without parsing it (contract
 * section 3.3.1), so that a reader can refuse a payload before it builds anything.
 *
 * Outside string literals (a `"` to the next `"` that no backslash escapes, or to
 * the end of the text): every `[` and `{`, every string literal, and every run of
 * characters other than JSON whitespace, `"` and `[ ] { } : ,` (a number or a
 * literal), minus every `:` (one per member name). For a JSON text that is its
 * number of values; for any other text it is still defined, and every reader
 * gets the same count.
 */
export function countValues(text: string): number {
  const n = text.length;
  let count = 0;
  let inRun = false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    switch (c) {
      case 0x22: // '"': the whole literal, escapes included
        count++;
        inRun = false;
        for (i++; i < n; i++) {
          const d = text.charCodeAt(i);
          if (d === 0x5c) i++;
          else if (d === 0x22) break;
        }
        break;
      case 0x5b: // '['
      case 0x7b: // '{'
        count++;
        inRun = false;
        break;
      case 0x3a: // ':'
        count--;
        inRun = false;
        break;
      case 0x5d: // ']'
      case 0x7d: // '}'
      case 0x2c: // ','
      case 0x20:
      case 0x09:
      case 0x0a:
      case 0x0d:
        inRun = false;
        break;
      default:
        if (!inRun) count++;
        inRun = true;
    }
  }
  return count;
}

/** The first character after JSON whitespace, or "" for none. */
export function firstValueCharacter(text: string): string {
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    i++;
  }
  return text.charAt(i);
}
