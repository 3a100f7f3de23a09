import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import zlib from "node:zlib";
import { GzipMemberWriter, PIECE_SIZE } from "./gzip_member.ts";

function pseudoRandomText(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = 97 + ((x >>> 16) % 7); // compressible but not trivial
  }
  return out;
}

async function member(data: Uint8Array, writes: number[]): Promise<Uint8Array> {
  const writer = new GzipMemberWriter(6);
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const size of writes) {
    parts.push(...await writer.write(data.subarray(offset, offset + size)));
    offset += size;
  }
  parts.push(...await writer.finish());
  return new Uint8Array(Buffer.concat(parts));
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
  const writer = new GzipMemberWriter(6);
  const parts: Uint8Array[] = [];
  let offset = 0;
  while (offset < data.length) {
    const spare = writer.spare();
    const n = Math.min(spare.length, data.length - offset, 100_000);
    spare.set(data.subarray(offset, offset + n));
    offset += n;
    parts.push(...await writer.commit(n));
  }
  parts.push(...await writer.finish());
  assert.deepEqual(new Uint8Array(zlib.gunzipSync(Buffer.concat(parts))), data);
  assert.deepEqual(writer.inputLength, data.length);
});

Deno.test("concatenated members decode as one stream (multi-member gzip)", async () => {
  const a = pseudoRandomText(1000, 1);
  const b = pseudoRandomText(PIECE_SIZE + 3, 2);
  const both = Buffer.concat([await member(a, [a.length]), await member(b, [b.length])]);
  assert.deepEqual(new Uint8Array(zlib.gunzipSync(both)), new Uint8Array(Buffer.concat([a, b])));
});
