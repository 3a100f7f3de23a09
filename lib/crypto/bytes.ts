/**
 * Small byte helpers for the encrypted format: big-endian encoders, concat,
 * text, hex and base64. Every result is a `Uint8Array<ArrayBuffer>`, which is
 * what Web Crypto accepts.
 */

/** Concatenates byte arrays into one new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A copy of `bytes` backed by its own ArrayBuffer (never a view into a larger buffer). */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

function checkUnsigned(value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${value} does not fit the encoding (0..${max})`);
  }
}

/** 4-byte big-endian encoding of an unsigned 32-bit integer. */
export function be32(value: number): Uint8Array<ArrayBuffer> {
  checkUnsigned(value, 0xffff_ffff);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** 8-byte big-endian encoding of a non-negative safe integer. */
export function be64(value: number): Uint8Array<ArrayBuffer> {
  checkUnsigned(value, Number.MAX_SAFE_INTEGER);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

/** 11-byte big-endian encoding of a non-negative safe integer (the STREAM nonce counter). */
export function be88(value: number): Uint8Array<ArrayBuffer> {
  checkUnsigned(value, Number.MAX_SAFE_INTEGER);
  const out = new Uint8Array(11);
  // The top 3 bytes stay zero: JS safe integers need at most 53 bits.
  new DataView(out.buffer).setBigUint64(3, BigInt(value));
  return out;
}

/** UTF-8 encoding of a string. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

/** Cryptographically random bytes. */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(length));
}

/** Lower-case hexadecimal. */
export function toHex(bytes: Uint8Array): string {
  return bytes.toHex();
}

/** Standard base64 with padding. */
export function toBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/**
 * Decodes standard base64 (padding optional, surrounding or embedded ASCII
 * whitespace ignored). Returns `undefined` when the text is not base64, so the
 * caller can word the error without echoing the (possibly secret) value.
 */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  try {
    return Uint8Array.fromBase64(text);
  } catch {
    return undefined;
  }
}

/** Byte-wise equality (not constant-time: use only for public values such as key ids). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
