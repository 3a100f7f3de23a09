import assert from "node:assert/strict";
import { jsonPieces, parseJsonChunks } from "./large_json.ts";

const encoder = new TextEncoder();

/** The bytes in chunks of `size`, all in one buffer overwritten by the next chunk. */
function* reusedChunks(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  const buffer = new Uint8Array(size);
  for (let offset = 0; offset < bytes.length; offset += size) {
    const piece = bytes.subarray(offset, offset + size);
    buffer.fill(0x7b); // stale bytes must never be read
    buffer.set(piece);
    yield buffer.subarray(0, piece.length);
  }
}

/** A deterministic pseudo-random source (xorshift32). */
function random(seed: number): (below: number) => number {
  let state = seed;
  return (below) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % below;
  };
}

function randomValue(next: (below: number) => number, depth: number): unknown {
  const strings = ["", "a", 'quote " and \\ slash', "é€😀", "\u0000\n\t", "[{,:}]", "__proto__"];
  switch (next(depth > 3 ? 6 : 8)) {
    case 0:
      return null;
    case 1:
      return next(2) === 0;
    case 2:
      return [0, -1, 1.5, 1e21, -0.000001, 2 ** 53 - 1][next(6)];
    case 3:
    case 4:
    case 5:
      return strings[next(strings.length)];
    case 6:
      return Array.from({ length: next(5) }, () => randomValue(next, depth + 1));
    default:
      return Object.fromEntries(
        Array.from(
          { length: next(5) },
          (_, i) => [`${strings[next(strings.length)]}${i}`, randomValue(next, depth + 1)],
        ),
      );
  }
}

/** JSON text with random whitespace between tokens (as another writer may format it). */
function withWhitespace(text: string, next: (below: number) => number): string {
  const spaces = [" ", "\n", "\t", "\r\n  ", ""];
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i];
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    out += ",:[]{}".includes(c) ? `${spaces[next(5)]}${c}${spaces[next(5)]}` : c;
  }
  return out;
}

Deno.test("jsonPieces: joined, the pieces are JSON.stringify's text", () => {
  const values: unknown[] = [
    {},
    [],
    null,
    7,
    "text",
    { entries: [], segments: [{ a: 1 }], name: "x" },
    { kept: 1, dropped: undefined, fn: () => 1, list: [undefined, () => 1, { deep: [1, [2]] }] },
    { "__proto__": [1], "é€😀": "é€😀" },
  ];
  const next = random(7);
  for (let i = 0; i < 300; i++) values.push(randomValue(next, 0));
  for (const value of values) {
    assert.deepStrictEqual([...jsonPieces(value)].join(""), JSON.stringify(value));
  }
});

Deno.test("jsonPieces: an array member is written one element per piece", () => {
  const entries = Array.from({ length: 1000 }, (_, i) => ({ relative_path: `f${i}` }));
  const pieces = [...jsonPieces({ entries })];
  assert.deepStrictEqual(pieces.length, 1003); // `{"entries":[`, the elements, `]`, `}`
  assert.deepStrictEqual(
    Math.max(...pieces.map((p) => p.length)),
    '{"relative_path":"f999"}'.length + 1,
  );
});

Deno.test("parseJsonChunks: equals JSON.parse, whatever the whitespace and chunk size", () => {
  const next = random(11);
  for (let i = 0; i < 400; i++) {
    const value = i % 2 === 0
      ? { entries: randomValue(next, 1), other: randomValue(next, 0), list: [randomValue(next, 1)] }
      : randomValue(next, 0);
    const text = withWhitespace(JSON.stringify(value), next);
    const bytes = encoder.encode(text);
    for (const size of [1, 2, 5, 64, 1 << 16]) {
      assert.deepStrictEqual(parseJsonChunks(reusedChunks(bytes, size)), JSON.parse(text), text);
    }
  }
});

Deno.test("parseJsonChunks: take sees each top-level array element in order, and keeps it out", () => {
  const text = '{"entries":[{"n":1},[2],3],"keep":[4,5],"nested":{"entries":[6]},"n":7}';
  const seen: [string, unknown][] = [];
  const parsed = parseJsonChunks(reusedChunks(encoder.encode(text), 3), (key, element) => {
    seen.push([key, element]);
    return key === "entries";
  });
  assert.deepStrictEqual(seen, [
    ["entries", { n: 1 }],
    ["entries", [2]],
    ["entries", 3],
    ["keep", 4],
    ["keep", 5],
  ]);
  // Taken elements are left out; the others, and nested arrays, are as JSON.parse makes them.
  assert.deepStrictEqual(parsed, { entries: [], keep: [4, 5], nested: { entries: [6] }, n: 7 });
});

Deno.test("parseJsonChunks: '__proto__' is an own property, a repeated key keeps its last value", () => {
  const parsed = parseJsonChunks([encoder.encode('{"__proto__":[1],"a":1,"a":[2]}')]) as Record<
    string,
    unknown
  >;
  assert.deepStrictEqual(Object.getPrototypeOf(parsed), Object.prototype);
  assert.deepStrictEqual(Object.getOwnPropertyDescriptor(parsed, "__proto__")?.value, [1]);
  assert.deepStrictEqual(parsed.a, [2]);
});

Deno.test("parseJsonChunks: a leading byte-order mark is ignored, as TextDecoder ignores it", () => {
  assert.deepStrictEqual(
    parseJsonChunks([
      new Uint8Array([0xef, 0xbb]),
      encoder.encode('\uFEFF{"a":[]}')
        .subarray(2),
    ]),
    { a: [] },
  );
});

Deno.test("parseJsonChunks: refuses what JSON.parse refuses", () => {
  const invalid = [
    "",
    " ",
    "{",
    "}",
    '{"a":1,}',
    '{"a" 1}',
    '{"a":}',
    '{,"a":1}',
    '{"a":[1,]}',
    '{"a":[1 2]}',
    '{"a":[,1]}',
    '{"a":[1}',
    '{"a":{]}',
    '{"a":tru}',
    '{"a":"x}',
    '{"a":"x\\',
    '{"a":1}x',
    '{"a":1} {}',
    "{a:1}",
    '{"a":01}',
    '{"a":[1]]',
    "[1,]",
    '"unterminated',
    "\uFEFF\uFEFF{}",
  ];
  for (const text of invalid) {
    assert.throws(() => JSON.parse(text.replace(/^\uFEFF/, "")), SyntaxError, text);
    for (const size of [1, 3, 1 << 16]) {
      assert.throws(
        () => parseJsonChunks(reusedChunks(encoder.encode(text), size)),
        SyntaxError,
        text,
      );
    }
  }
});

Deno.test("parseJsonChunks: any one changed byte gives JSON.parse's answer, value or refusal", () => {
  const next = random(23);
  const decoder = new TextDecoder();
  const alphabet = encoder.encode(' \n"\\,:[]{}0123456789-+.eEtrufalsn\u00e9x');
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const bytes = encoder.encode(
      JSON.stringify({
        entries: [randomValue(next, 2), randomValue(next, 2)],
        b: randomValue(next, 2),
      }),
    );
    bytes[next(bytes.length)] = alphabet[next(alphabet.length)];
    let expected: { value: unknown } | undefined;
    try {
      expected = { value: JSON.parse(decoder.decode(bytes)) };
    } catch {
      refused++;
    }
    const text = decoder.decode(bytes);
    if (expected === undefined) {
      assert.throws(() => parseJsonChunks(reusedChunks(bytes, 1 + next(9))), SyntaxError, text);
    } else {
      assert.deepStrictEqual(
        parseJsonChunks(reusedChunks(bytes, 1 + next(9))),
        expected.value,
        text,
      );
    }
  }
  // Both outcomes were exercised.
  assert.deepStrictEqual(refused > 300 && refused < 2700, true, `${refused} refused`);
});
