import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import zlib from "node:zlib";
import { createPieceDeflater } from "./deflate_pool.ts";
import { GzipMemberWriter, type PendingChunk, PIECE_SIZE } from "./gzip_member.ts";

/** Runs `body` with a two-worker deflater, closed afterwards. */
async function withDeflater<T>(
  body: (deflater: ReturnType<typeof createPieceDeflater>) => Promise<T>,
): Promise<T> {
  const deflater = createPieceDeflater(2);
  try {
    return await body(deflater);
  } finally {
    deflater.close();
  }
}

function pseudoRandomText(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = 97 + ((x >>> 16) % 7); // compressible but not trivial
  }
  return out;
}

function member(data: Uint8Array, writes: number[], level = 6): Promise<Uint8Array> {
  return withDeflater(async (deflater) => {
    const writer = new GzipMemberWriter(level, deflater);
    const parts: PendingChunk[] = [];
    let offset = 0;
    for (const size of writes) {
      parts.push(...writer.write(data.subarray(offset, offset + size)));
      offset += size;
    }
    parts.push(...writer.finish());
    return new Uint8Array(Buffer.concat(await Promise.all(parts)));
  });
}

Deno.test("GzipMemberWriter output is one gzip member that zlib and gzip(1) decode", async () => {
  for (const size of [0, 1, PIECE_SIZE - 1, PIECE_SIZE, PIECE_SIZE + 1, 3 * PIECE_SIZE + 17]) {
    const data = pseudoRandomText(size, size);
    const gz = await member(
      data,
      size === 0 ? [] : [Math.ceil(size / 3), size - Math.ceil(size / 3)],
    );
    assert.deepEqual(new Uint8Array(zlib.gunzipSync(gz)), data, `size ${size}`);
    const gzip = spawnSync("gzip", ["-dc"], { input: gz, maxBuffer: 1 << 28 });
    assert.deepEqual(gzip.status, 0, `gzip -t on size ${size}: ${gzip.stderr}`);
    assert.deepEqual(new Uint8Array(gzip.stdout), data);
  }
});

Deno.test("GzipMemberWriter spare()/commit() writes the same stream as write()", async () => {
  const data = pseudoRandomText(2 * PIECE_SIZE + 5);
  await withDeflater(async (deflater) => {
    const writer = new GzipMemberWriter(6, deflater);
    const parts: PendingChunk[] = [];
    let offset = 0;
    while (offset < data.length) {
      const spare = writer.spare();
      const n = Math.min(spare.length, data.length - offset, 100_000);
      spare.set(data.subarray(offset, offset + n));
      offset += n;
      parts.push(...writer.commit(n));
    }
    parts.push(...writer.finish());
    const gz = Buffer.concat(await Promise.all(parts));
    assert.deepEqual(new Uint8Array(zlib.gunzipSync(gz)), data);
    assert.deepEqual(writer.inputLength, data.length);
  });
});

Deno.test("incompressible pieces are stored, not grown, and still decode", async () => {
  const random = new Uint8Array(3 * PIECE_SIZE + 100);
  for (let i = 0; i < random.length; i += 65536) {
    crypto.getRandomValues(random.subarray(i, i + 65536));
  }
  // Text in the middle piece: it must still be compressed.
  const text = pseudoRandomText(PIECE_SIZE);
  random.set(text, PIECE_SIZE);
  const randomBytes = random.length - text.length;
  for (const level of [1, 6, 9]) {
    const gz = await member(random, [random.length], level);
    assert.deepEqual(new Uint8Array(zlib.gunzipSync(gz)), random, `level ${level}`);
    const textAlone = (await member(text, [text.length], level)).length;
    // Stored blocks cost 5 bytes per 64 KiB; level 1's static codes would add ~5 %.
    const storedAtMost = randomBytes * 1.001 + 100;
    assert.ok(gz.length <= storedAtMost + textAlone, `level ${level}: ${gz.length} bytes`);
  }
});

Deno.test("concatenated members decode as one stream (multi-member gzip)", async () => {
  const a = pseudoRandomText(1000, 1);
  const b = pseudoRandomText(PIECE_SIZE + 3, 2);
  const both = Buffer.concat([await member(a, [a.length]), await member(b, [b.length])]);
  assert.deepEqual(new Uint8Array(zlib.gunzipSync(both)), new Uint8Array(Buffer.concat([a, b])));
});
