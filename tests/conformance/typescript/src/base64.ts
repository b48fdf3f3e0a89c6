// Standard base64 (RFC 4648 section 4) as the contract reads and writes it.
//
// Node's Buffer.from(text, "base64") is lenient (it skips whitespace and other
// characters, accepts the URL-safe alphabet and any padding), so decoding checks
// the text itself first, then that the bytes encode back to it.

const ALPHABET = /^[A-Za-z0-9+/]*(={0,2})$/;

/** Standard base64 with `=` padding. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/**
 * Decodes standard base64, padded or not.
 *
 * @returns The bytes, or null when the text is not canonical standard base64
 *   (another alphabet, whitespace, a length of 4n+1, misplaced or wrong padding,
 *   non-zero padding bits).
 */
export function decodeBase64(text: string): Uint8Array | null {
  const match = ALPHABET.exec(text);
  if (match === null) return null;
  const padding = (match[1] as string).length;
  const body = text.slice(0, text.length - padding);
  const rest = body.length % 4;
  if (rest === 1) return null;
  if (padding > 0 && (text.length % 4 !== 0 || padding !== 4 - rest)) return null;
  const bytes = Buffer.from(body, "base64");
  // Non-zero padding bits: the bytes would encode to other text.
  const padded = body + "=".repeat(rest === 0 ? 0 : 4 - rest);
  if (bytes.toString("base64") !== padded) return null;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
