import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { readAll } from "../streams.ts";
import { encodeTarHeader, parseTar, TAR_END } from "./tar.ts";
import { createPieceDeflater } from "./deflate_pool.ts";
import {
  crc32Combine,
  GzipMemberWriter,
  type PendingChunk,
  PendingPiece,
  PIECE_SIZE,
} from "./gzip_member.ts";

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

/** The bytes of a member's output, in order. */
async function bytesOf(parts: PendingChunk[]): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    chunks.push(part instanceof PendingPiece ? (await part.done).output : await part);
  }
  return new Uint8Array(Buffer.concat(chunks));
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
    return await bytesOf(parts);
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
    const gz = await bytesOf(parts);
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

Deno.test("crc32Combine gives the CRC-32 of the concatenation, as zlib computes it", () => {
  for (const [lengthA, lengthB] of [[0, 0], [0, 5], [5, 0], [1, 1], [1000, 3], [70_000, 1 << 20]]) {
    const a = pseudoRandomText(lengthA, lengthA + 1);
    const b = pseudoRandomText(lengthB, lengthB + 7);
    const whole = zlib.crc32(Buffer.concat([a, b]));
    assert.equal(
      crc32Combine(zlib.crc32(a), zlib.crc32(b), b.length),
      whole,
      `${lengthA}+${lengthB}`,
    );
  }
});

Deno.test("writeFile: files are read into their piece where it is deflated; marks follow them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const names = ["a", "gone", "shrinks", "b"];
    const contents = [pseudoRandomText(700, 1), pseudoRandomText(10, 2), pseudoRandomText(300, 3)];
    await Deno.writeFile(`${dir}/a`, contents[0]);
    await Deno.writeFile(`${dir}/shrinks`, contents[1]); // the layout says 600 bytes
    await Deno.writeFile(`${dir}/b`, contents[2]);
    const sizes = [700, 5, 600, 300];
    await withDeflater(async (deflater) => {
      const writer = new GzipMemberWriter<string>(6, deflater);
      const parts: PendingChunk<string>[] = [];
      // A full piece of literal bytes first, so that the files land in the second piece.
      parts.push(...writer.write(pseudoRandomText(PIECE_SIZE - 100, 9)));
      names.forEach((name, i) => {
        const header = {
          path: name,
          type: "file" as const,
          size: sizes[i],
          mode: 0o644,
          mtimeMs: 0,
        };
        parts.push(
          ...writer.writeFile(encodeTarHeader(header), `${dir}/${name}`, sizes[i], name),
        );
      });
      writer.mark("end");
      parts.push(...writer.write(TAR_END));
      parts.push(...writer.finish());
      const pieces = parts.filter((p) => p instanceof PendingPiece);
      const second = await (pieces[1] as PendingPiece<string>).done;
      const tar = new Uint8Array(zlib.gunzipSync(await bytesOf(parts))).subarray(PIECE_SIZE - 100);
      assert.equal(second.length, tar.length);
      const entries = [];
      for await (const entry of parseTar(ReadableStream.from([tar]))) {
        entries.push({
          path: entry.path,
          size: entry.size,
          data: await readAll(ReadableStream.from(entry.body)),
        });
      }
      assert.deepEqual(entries.map((e) => [e.path, e.size]), [["a", 700], ["shrinks", 10], [
        "b",
        300,
      ]]);
      assert.deepEqual(entries.map((e) => e.data), [contents[0], contents[1], contents[2]]);
      // Each mark's offset is where its header now starts; the vanished file's says why.
      const byName = new Map(second.marks.map((m) => [m.value, m]));
      assert.match((byName.get("gone")!.file as { problem: string }).problem, /vanished/);
      assert.deepEqual(byName.get("shrinks")!.file, {
        sha256: createHash("sha256").update(contents[1]).digest("hex"),
        size: 10,
      });
      // a: 512 + 700 + 324; gone: taken out; shrinks: 512 + 10 + 502 (was 1536); b: 1024.
      assert.equal(byName.get("a")!.offset, 0);
      assert.equal(byName.get("shrinks")!.offset, 1536);
      assert.equal(byName.get("b")!.offset, 1536 + 1024);
      assert.equal(byName.get("end")!.offset, 1536 + 1024 + 1024);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFile: a file that grew is read again whole, or beyond 1 MiB keeps its listed size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = pseudoRandomText(2048, 5);
    const huge = pseudoRandomText((1 << 20) + 1, 6);
    await Deno.writeFile(`${dir}/log`, log);
    await Deno.writeFile(`${dir}/huge`, huge);
    await Deno.writeFile(`${dir}/after`, pseudoRandomText(100, 7));
    const cases = [
      { name: "log", listed: 0, archived: log, grew: false },
      { name: "log", listed: 512, archived: log, grew: false },
      { name: "log", listed: 1000, archived: log, grew: false },
      { name: "huge", listed: 1000, archived: huge.subarray(0, 1000), grew: true },
    ];
    for (const { name, listed, archived, grew } of cases) {
      await withDeflater(async (deflater) => {
        const writer = new GzipMemberWriter<string>(6, deflater);
        const parts: PendingChunk<string>[] = [];
        for (const [file, size] of [[name, listed], ["after", 100]] as const) {
          const header = { path: file, type: "file" as const, size, mode: 0o644, mtimeMs: 0 };
          parts.push(...writer.writeFile(encodeTarHeader(header), `${dir}/${file}`, size, file));
        }
        parts.push(...writer.write(TAR_END));
        parts.push(...writer.finish());
        const piece = await (parts.find((p) => p instanceof PendingPiece) as PendingPiece<string>)
          .done;
        const sha256 = createHash("sha256").update(archived).digest("hex");
        const expected = grew
          ? { sha256, size: archived.length, grew: true }
          : { sha256, size: archived.length };
        assert.deepEqual(piece.marks[0].file, expected, `${name} listed at ${listed}`);
        const tar = new Uint8Array(zlib.gunzipSync(await bytesOf(parts)));
        const entries = [];
        for await (const entry of parseTar(ReadableStream.from([tar]))) {
          const data = await readAll(ReadableStream.from(entry.body));
          entries.push({ path: entry.path, offset: entry.offset, data });
        }
        assert.deepEqual(entries.map((e) => e.path), [name, "after"]);
        assert.deepEqual(entries[0].data, archived);
        // The next entry's mark follows it wherever it moved.
        assert.equal(piece.marks[1].offset, entries[1].offset);
        assert.equal(piece.length, tar.length);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a piece that fails fails where it is awaited; the pieces after it are dropped quietly", async () => {
  let calls = 0;
  const deflater = createPieceDeflater(0);
  const failing: typeof deflater = {
    takeBuffer: () => deflater.takeBuffer(),
    deflate: (...args) =>
      ++calls === 2 ? Promise.reject(new Error("disk on fire")) : deflater.deflate(...args),
    close: () => deflater.close(),
  };
  const writer = new GzipMemberWriter(6, failing);
  const parts = writer.write(pseudoRandomText(3 * PIECE_SIZE));
  parts.push(...writer.finish());
  const [header, first, second] = parts;
  assert.ok(header instanceof Uint8Array);
  assert.ok(first instanceof PendingPiece && second instanceof PendingPiece);
  assert.ok((await first.done).output.length > 0);
  await assert.rejects(second.done, /disk on fire/);
  // The rest (a later piece, the trailer) is never awaited: the test would
  // end with an unhandled rejection if they were not marked as handled.
  await new Promise((resolve) => setTimeout(resolve, 10));
});
