/**
 * JSON documents larger than one JavaScript string.
 *
 * V8 caps a string at about 512 MiB, which a manifest reaches at roughly two
 * million entries (~250 bytes each): `JSON.stringify` and `JSON.parse` of the
 * whole document would fail for a large file server. Both directions here
 * handle a top-level object's array members one element at a time, so no
 * string is ever larger than one element; the text is exactly what
 * `JSON.stringify` writes and `JSON.parse` reads.
 */
import { concatBytes } from "./crypto/bytes.ts";

/**
 * `JSON.stringify(value)` in pieces, for plain data (no `toJSON`, no
 * replacer): the arrays that are members of a top-level object are written
 * one element per piece. Joined, the pieces equal `JSON.stringify(value)`.
 */
export function* jsonPieces(value: unknown): Generator<string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const text = JSON.stringify(value);
    if (text !== undefined) yield text;
    return;
  }
  let separator = "{";
  for (const [key, member] of Object.entries(value)) {
    if (Array.isArray(member)) {
      yield `${separator}${JSON.stringify(key)}:[`;
      for (let i = 0; i < member.length; i++) {
        // Like JSON.stringify, an element it cannot write (undefined, a function) is null.
        yield (i === 0 ? "" : ",") + (JSON.stringify(member[i]) ?? "null");
      }
      yield "]";
    } else {
      const text = JSON.stringify(member);
      if (text === undefined) continue; // dropped, as JSON.stringify drops it
      yield `${separator}${JSON.stringify(key)}:${text}`;
    }
    separator = ",";
  }
  yield separator === "{" ? "{}" : "}";
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const END = -1;

/**
 * `JSON.parse` of UTF-8 bytes given in chunks (a chunk may be overwritten once
 * the next one is requested). A top-level object's array members are parsed
 * one element at a time; every other value is parsed whole by `JSON.parse`,
 * which also judges each value's syntax. Throws a SyntaxError for what
 * `JSON.parse` would refuse. A leading byte-order mark is ignored, as
 * TextDecoder ignores it.
 *
 * `take`, if given, sees each of those array elements as it is parsed, with
 * its member's key; when it returns true the element is not kept in the
 * array (the caller keeps it in a form of its own, or drops it).
 */
export function parseJsonChunks(
  chunks: Iterable<Uint8Array>,
  take?: (key: string, element: unknown) => boolean,
): unknown {
  const input = new ByteReader(chunks[Symbol.iterator]());
  input.skipByteOrderMark();
  input.skipWhitespace();
  const value = input.peek() === OPEN_BRACE ? readObject(input, take) : readValue(input);
  input.skipWhitespace();
  if (input.peek() !== END) throw new SyntaxError("Unexpected data after the JSON value");
  return value;
}

function readObject(
  input: ByteReader,
  take?: (key: string, element: unknown) => boolean,
): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  readList(input, OPEN_BRACE, CLOSE_BRACE, () => {
    if (input.peek() !== QUOTE) throw new SyntaxError("Expected a property name");
    const key = readValue(input) as string;
    input.skipWhitespace();
    input.expect(COLON);
    input.skipWhitespace();
    const value = input.peek() === OPEN_BRACKET
      ? readArray(input, take && ((element) => take(key, element)))
      : readValue(input);
    // An own property even for "__proto__", as JSON.parse makes it; a repeated key's last value wins.
    Object.defineProperty(object, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  });
  return object;
}

function readArray(input: ByteReader, take?: (element: unknown) => boolean): unknown[] {
  const array: unknown[] = [];
  readList(input, OPEN_BRACKET, CLOSE_BRACKET, () => {
    const element = readValue(input);
    if (!take?.(element)) array.push(element);
  });
  return array;
}

/** `open close`, or `open item (, item)* close`, whitespace anywhere between. */
function readList(input: ByteReader, open: number, close: number, readItem: () => void): void {
  input.expect(open);
  input.skipWhitespace();
  if (input.peek() === close) {
    input.skip();
    return;
  }
  for (;;) {
    input.skipWhitespace();
    readItem();
    input.skipWhitespace();
    const next = input.next();
    if (next === close) return;
    if (next !== COMMA) {
      throw new SyntaxError(`Expected ',' or '${String.fromCharCode(close)}' in JSON`);
    }
  }
}

/** One whole value, its extent found by brackets and quotes, its syntax judged by JSON.parse. */
function readValue(input: ByteReader): unknown {
  input.startCapture();
  const first = input.peek();
  if (first === QUOTE) skipString(input);
  else if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    do {
      const byte = input.peek();
      if (byte === QUOTE) {
        skipString(input);
        continue;
      }
      if (byte === END) throw new SyntaxError("Unexpected end of JSON input");
      if (byte === OPEN_BRACE || byte === OPEN_BRACKET) depth++;
      else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) depth--;
      input.skip();
    } while (depth > 0);
  } else {
    // A number, true, false or null: up to the next delimiter.
    for (;;) {
      const byte = input.peek();
      if (
        byte === END || byte === COMMA || byte === CLOSE_BRACE || byte === CLOSE_BRACKET ||
        byte === QUOTE || byte === OPEN_BRACE || byte === OPEN_BRACKET || isWhitespace(byte)
      ) break;
      input.skip();
    }
  }
  return JSON.parse(input.endCapture());
}

function skipString(input: ByteReader): void {
  input.expect(QUOTE);
  for (;;) {
    const byte = input.next();
    if (byte === END) throw new SyntaxError("Unterminated string in JSON");
    if (byte === QUOTE) return;
    if (byte === BACKSLASH && input.next() === END) {
      throw new SyntaxError("Unterminated string in JSON");
    }
  }
}

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/**
 * Bytes of the chunks, one at a time, and the text of a captured span. JSON's
 * structural characters are ASCII, and no byte of a multi-byte UTF-8
 * character is, so spans always cut between characters.
 */
class ByteReader {
  readonly #chunks: Iterator<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #at = 0;
  #ended = false;
  /** Captured bytes of earlier chunks (copied: a chunk may be reused), or undefined. */
  #captured: Uint8Array[] | undefined;
  #captureStart = 0;
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor(chunks: Iterator<Uint8Array>) {
    this.#chunks = chunks;
  }

  peek(): number {
    while (this.#at >= this.#chunk.length) {
      if (this.#ended || !this.#nextChunk()) return END;
    }
    return this.#chunk[this.#at];
  }

  next(): number {
    const byte = this.peek();
    if (byte !== END) this.#at++;
    return byte;
  }

  skip(): void {
    this.next();
  }

  expect(byte: number): void {
    if (this.next() !== byte) {
      throw new SyntaxError(`Expected '${String.fromCharCode(byte)}' in JSON`);
    }
  }

  skipWhitespace(): void {
    while (isWhitespace(this.peek())) this.#at++;
  }

  skipByteOrderMark(): void {
    if (this.peek() !== 0xef) return;
    for (const byte of [0xef, 0xbb, 0xbf]) {
      if (this.next() !== byte) throw new SyntaxError("Unexpected token in JSON");
    }
  }

  startCapture(): void {
    this.#captured = [];
    this.#captureStart = this.#at;
  }

  endCapture(): string {
    const parts = this.#captured!;
    this.#captured = undefined;
    const last = this.#chunk.subarray(this.#captureStart, this.#at);
    if (parts.length === 0) return this.#decoder.decode(last);
    return this.#decoder.decode(concatBytes(...parts, last));
  }

  #nextChunk(): boolean {
    if (this.#captured !== undefined) {
      this.#captured.push(this.#chunk.slice(this.#captureStart));
      this.#captureStart = 0;
    }
    this.#chunk = new Uint8Array(0);
    this.#at = 0;
    const next = this.#chunks.next();
    if (next.done) {
      this.#ended = true;
      return false;
    }
    this.#chunk = next.value;
    return true;
  }
}
