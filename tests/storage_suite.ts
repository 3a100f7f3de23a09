/**
 * The contract every `Storage` must keep (lib/storage/storage.ts), as one
 * suite run against each implementation — like restic's backend tests.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { IntellistorError } from "../lib/errors.ts";
import type { Storage } from "../lib/storage/storage.ts";

/** A fresh, empty store for one test, and ways to look behind it. */
export interface StorageFixture {
  storage: Storage;
  /** Closes the store and removes everything the fixture created. */
  cleanup(): Promise<void>;
  /**
   * Writes started but neither finished nor cleaned up: temp files for a
   * directory, incomplete multipart uploads for S3.
   */
  incompleteUploads?(): Promise<number>;
  /** Bytes the backend already holds for writes still in progress (temp files, uploaded parts). */
  pendingWriteBytes?(): Promise<number>;
  /** How far `put` may read ahead of `pendingWriteBytes` (default 16 MiB). */
  readAheadLimit?: number;
  /** The multipart part size the store was configured with (default 5 MiB), to test around it. */
  partSize?: number;
}

const MiB = 1024 * 1024;

/**
 * Deno 2.9 runs its leak sanitizers only when asked: these tests ask, so an
 * unclosed file, socket or timer fails them whatever flags `deno test` got.
 */
export const leakChecks = { sanitizeOps: true, sanitizeResources: true } as const;

/**
 * Registers the contract tests for one implementation; `make` is called once
 * per test and must return an empty store.
 *
 * @example
 * ```ts
 * storageContractTests("LocalStorage", async () => {
 *   const directory = await Deno.makeTempDir();
 *   return {
 *     storage: new LocalStorage(directory),
 *     cleanup: () => Deno.remove(directory, { recursive: true }),
 *   };
 * });
 * ```
 */
export function storageContractTests(name: string, make: () => Promise<StorageFixture>): void {
  const test = (title: string, body: (fixture: StorageFixture) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, leakChecks, async () => {
      const fixture = await make();
      try {
        await body(fixture);
      } finally {
        await fixture.cleanup();
      }
    });

  test("put then get returns the same bytes for empty, small, part-sized and multipart bodies", async (fixture) => {
    const { storage } = fixture;
    const partSize = fixture.partSize ?? 5 * MiB;
    const sizes = [0, 1, 1000, partSize, 2 * partSize + 12_345];
    for (const [index, size] of sizes.entries()) {
      const key = `round-trip/object-${size}`;
      const info = await storage.put(key, generatedStream(size, index));
      assert.deepEqual(info, { key, size });
      assert.equal(
        await sha256OfStream(await storage.get(key)),
        await sha256OfStream(generatedStream(size, index)),
        `content of ${size}-byte object`,
      );
      assert.deepEqual(await storage.head(key), { key, size });
    }
  });

  test("get with a range returns exactly those bytes, also across part boundaries", async (fixture) => {
    const { storage } = fixture;
    const partSize = fixture.partSize ?? 5 * MiB;
    const size = 2 * partSize + 777;
    const seed = 42;
    await storage.put("ranges/object", generatedStream(size, seed));
    const ranges = [
      { start: 0, end: 100 },
      { start: 12_345, end: 67_890 },
      { start: size - 100, end: size },
      { start: partSize - 10, end: partSize + 10 },
      { start: partSize - 1, end: 2 * partSize + 1 },
      { start: 0, end: 1 },
      { start: partSize, end: partSize + 1 },
      { start: size - 1, end: size },
      { start: 0, end: size },
    ];
    for (const range of ranges) {
      const actual = await bytesOfStream(await storage.get("ranges/object", range));
      assert.equal(
        actual.length,
        range.end - range.start,
        `length of [${range.start}, ${range.end})`,
      );
      assert.ok(
        bytesEqual(actual, generatedBytes(range.start, range.end, seed)),
        `content of [${range.start}, ${range.end})`,
      );
    }
  });

  test("get with an empty range or one past the end returns no bytes beyond the object", async ({ storage }) => {
    await storage.put("ranges/short", generatedStream(1000, 3));
    assert.equal(
      (await bytesOfStream(await storage.get("ranges/short", { start: 10, end: 10 }))).length,
      0,
    );
    const tail = await bytesOfStream(await storage.get("ranges/short", { start: 990, end: 2000 }));
    assert.ok(bytesEqual(tail, generatedBytes(990, 1000, 3)));
    assert.equal(
      (await bytesOfStream(await storage.get("ranges/short", { start: 1000, end: 1010 }))).length,
      0,
    );
    assert.equal(
      (await bytesOfStream(await storage.get("ranges/short", { start: 5000, end: 6000 }))).length,
      0,
    );
  });

  test("get rejects an invalid range with a RangeError", async ({ storage }) => {
    await storage.put("ranges/any", generatedStream(10, 1));
    for (const range of [{ start: 5, end: 4 }, { start: -1, end: 4 }, { start: 0.5, end: 4 }]) {
      await assert.rejects(() => storage.get("ranges/any", range), RangeError);
    }
  });

  test("a get stream cancelled after its first chunk releases what it held", async ({ storage }) => {
    const size = 3 * MiB;
    await storage.put("cancel/object", generatedStream(size, 2));
    const reader = (await storage.get("cancel/object", { start: 1, end: size })).getReader();
    const first = await reader.read();
    assert.ok(first.value && first.value.length > 0);
    assert.ok(bytesEqual(first.value, generatedBytes(1, 1 + first.value.length, 2)));
    await reader.cancel();
    // Deno's resource sanitizer fails this test if a file or socket stayed open; the store still works.
    assert.ok(
      bytesEqual(
        await bytesOfStream(await storage.get("cancel/object", { start: 5, end: 9 })),
        generatedBytes(5, 9, 2),
      ),
    );
  });

  test("head reports the size of a present object and undefined for a missing one", async ({ storage }) => {
    await storage.put("head/present", generatedStream(4321, 5));
    assert.deepEqual(await storage.head("head/present"), { key: "head/present", size: 4321 });
    assert.equal(await storage.head("head/missing"), undefined);
    assert.equal(await storage.head("head"), undefined, "a key prefix is not an object");
  });

  test("get of a missing key rejects with BACKUP_NOT_FOUND naming the key", async ({ storage }) => {
    const error = await rejection(storage.get("missing/backup.tar.gz.enc"));
    assertIntellistorError(error, "BACKUP_NOT_FOUND");
    assert.match(error.message, /missing\/backup\.tar\.gz\.enc/);
    assertIntellistorError(
      await rejection(storage.get("missing/backup.tar.gz.enc", { start: 0, end: 10 })),
      "BACKUP_NOT_FOUND",
    );
    assertIntellistorError(
      await rejection(storage.get("missing/backup.tar.gz.enc", { start: 0, end: 0 })),
      "BACKUP_NOT_FOUND",
    );
  });

  test("list yields the objects under a prefix in key order with their sizes", async ({ storage }) => {
    const keys = [
      "list/z",
      "list/a/b",
      "list/é",
      "list/a-c",
      "list/b/c/d",
      "list/a.txt",
      "other/x",
      "listing",
    ];
    for (const [index, key] of keys.entries()) {
      await storage.put(key, generatedStream(index * 10, index));
    }
    const sizeOf = (key: string) => keys.indexOf(key) * 10;
    const listed = async (prefix: string) => {
      const objects = [];
      for await (const object of storage.list(prefix)) objects.push(object);
      return objects;
    };
    // S3 order is UTF-8 byte order: "-" (0x2D) < "." (0x2E) < "/" (0x2F) < letters < "é".
    const expected = ["list/a-c", "list/a.txt", "list/a/b", "list/b/c/d", "list/z", "list/é"];
    assert.deepEqual(await listed("list/"), expected.map((key) => ({ key, size: sizeOf(key) })));
    assert.deepEqual(
      (await listed("list/a")).map((object) => object.key),
      ["list/a-c", "list/a.txt", "list/a/b"],
    );
    assert.deepEqual((await listed("list/b/")).map((object) => object.key), ["list/b/c/d"]);
    assert.deepEqual((await listed("list")).map((object) => object.key), [...expected, "listing"]);
    assert.deepEqual((await listed("")).map((object) => object.key), [
      ...expected,
      "listing",
      "other/x",
    ]);
    assert.deepEqual(await listed("nothing/"), []);
  });

  test("delete removes an object and ignores a missing key", async ({ storage }) => {
    await storage.put("delete/a/one", generatedStream(10, 1));
    await storage.put("delete/a/two", generatedStream(20, 2));
    await storage.delete("delete/a/one");
    assert.equal(await storage.head("delete/a/one"), undefined);
    assertIntellistorError(await rejection(storage.get("delete/a/one")), "BACKUP_NOT_FOUND");
    assert.deepEqual(await listKeys(storage, "delete/"), ["delete/a/two"]);
    await storage.delete("delete/a/one");
    await storage.delete("delete/never/existed");
    await storage.delete("delete/a/two");
    assert.deepEqual(await listKeys(storage, "delete/"), []);
  });

  test("put over an existing key replaces the object", async ({ storage }) => {
    await storage.put("overwrite/key", generatedStream(5000, 1));
    await storage.put("overwrite/key", generatedStream(300, 2));
    assert.ok(
      bytesEqual(
        await bytesOfStream(await storage.get("overwrite/key")),
        generatedBytes(0, 300, 2),
      ),
    );
    assert.deepEqual(await listAll(storage, "overwrite/"), [{ key: "overwrite/key", size: 300 }]);
  });

  test("a body that fails before the first part makes put reject and leaves nothing", async (fixture) => {
    const failure = new Error("source file vanished");
    const error = await rejection(
      fixture.storage.put("failing/small", failingStream(100_000, failure)),
    );
    assert.equal(error, failure, "put rejects with the body's own error");
    assert.equal(await fixture.storage.head("failing/small"), undefined);
    assert.deepEqual(await listKeys(fixture.storage, "failing/"), []);
    if (fixture.incompleteUploads) assert.equal(await fixture.incompleteUploads(), 0);
  });

  test("a body that fails after several parts makes put reject and leaves nothing", async (fixture) => {
    const partSize = fixture.partSize ?? 5 * MiB;
    const failure = new Error("disk read error");
    const error = await rejection(
      fixture.storage.put("failing/large", failingStream(2 * partSize + 1000, failure)),
    );
    assert.equal(error, failure);
    assert.equal(await fixture.storage.head("failing/large"), undefined);
    if (fixture.incompleteUploads) assert.equal(await fixture.incompleteUploads(), 0);
  });

  test("a failed put over an existing key keeps the previous object", async (fixture) => {
    const partSize = fixture.partSize ?? 5 * MiB;
    await fixture.storage.put("failing/kept", generatedStream(2000, 9));
    await assert.rejects(() =>
      fixture.storage.put("failing/kept", failingStream(partSize + 10, new Error("boom")))
    );
    assert.ok(
      bytesEqual(
        await bytesOfStream(await fixture.storage.get("failing/kept")),
        generatedBytes(0, 2000, 9),
      ),
    );
    if (fixture.incompleteUploads) assert.equal(await fixture.incompleteUploads(), 0);
  });

  test("keys with Unicode, spaces and punctuation round-trip and list unchanged", async ({ storage }) => {
    const keys = [
      "unicode/日本語/ファイル.txt",
      "unicode/emoji 😀 file",
      "unicode/ümlaut é (1) [x] +&=.tar",
    ];
    for (const [index, key] of keys.entries()) {
      await storage.put(key, generatedStream(100 + index, index));
      assert.ok(
        bytesEqual(
          await bytesOfStream(await storage.get(key)),
          generatedBytes(0, 100 + index, index),
        ),
      );
    }
    // Code point order: "e" < "ü" < "日" < "😀" (UTF-16 order would put 😀 before 日).
    assert.deepEqual(await listKeys(storage, "unicode/"), [
      "unicode/emoji 😀 file",
      "unicode/ümlaut é (1) [x] +&=.tar",
      "unicode/日本語/ファイル.txt",
    ]);
  });

  test("unsafe keys are rejected as programmer errors", async ({ storage }) => {
    const unsafe = ["", "/absolute", "a/../b", "..", "a//b", "a\\b", "trailing/", "./a"];
    for (const key of unsafe) {
      await assert.rejects(() => storage.put(key, generatedStream(1, 1)), TypeError, `put ${key}`);
      await assert.rejects(() => storage.get(key), TypeError, `get ${key}`);
      await assert.rejects(() => storage.head(key), TypeError, `head ${key}`);
      await assert.rejects(() => storage.delete(key), TypeError, `delete ${key}`);
    }
    await assert.rejects(() => listKeys(storage, "../"), TypeError);
  });

  test("put streams a large body, reading only a bounded amount ahead of what is stored", async (fixture) => {
    // Resident memory is too noisy to prove this (V8 lets ~64 MiB of dead buffers pile up,
    // more under `deno test`); comparing what put has pulled with what the backend holds is exact.
    const size = 64 * MiB;
    const readAheadLimit = fixture.readAheadLimit ?? 16 * MiB;
    let produced = 0;
    let furthestAhead = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (fixture.pendingWriteBytes) {
          furthestAhead = Math.max(furthestAhead, produced - await fixture.pendingWriteBytes());
        }
        if (produced >= size) {
          controller.close();
          return;
        }
        const length = Math.min(MiB, size - produced);
        // A fresh buffer each time: a store may keep chunks it has not written yet.
        controller.enqueue(new Uint8Array(length).fill(produced / MiB));
        produced += length;
      },
    }, { highWaterMark: 0 });
    assert.deepEqual(await fixture.storage.put("streaming/large", body), {
      key: "streaming/large",
      size,
    });
    assert.deepEqual(await fixture.storage.head("streaming/large"), {
      key: "streaming/large",
      size,
    });
    assert.ok(
      furthestAhead <= readAheadLimit,
      `put read ${(furthestAhead / MiB).toFixed(1)} MiB ahead of what the store held ` +
        `(limit ${readAheadLimit / MiB} MiB)`,
    );
  });
}

/** The byte at `position` of generated content `seed`: cheap, and different almost everywhere. */
function generatedByte(position: number, seed: number): number {
  return (Math.imul(position ^ Math.imul(seed, 0x27d4eb2d), 0x9e3779b1) ^ (position >>> 11)) >>> 24;
}

/** Bytes [start, end) of generated content `seed`. */
export function generatedBytes(start: number, end: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(end - start);
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = generatedByte(start + index, seed);
  }
  return bytes;
}

/**
 * `size` bytes of generated content, in fresh chunks of an odd size so chunk
 * and part boundaries never line up. `onChunk` runs before each chunk is made.
 */
export function generatedStream(
  size: number,
  seed: number,
  onChunk?: () => void,
): ReadableStream<Uint8Array> {
  const chunkSize = 256 * 1024 + 13;
  let position = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      onChunk?.();
      if (position >= size) {
        controller.close();
        return;
      }
      const end = Math.min(size, position + chunkSize);
      controller.enqueue(generatedBytes(position, end, seed));
      position = end;
    },
  }, { highWaterMark: 0 });
}

/** Generated content that errors with `error` once `failAfter` bytes were produced. */
export function failingStream(failAfter: number, error: Error): ReadableStream<Uint8Array> {
  const source = generatedStream(failAfter, 1).getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await source.read();
      if (done) controller.error(error);
      else controller.enqueue(value);
    },
  }, { highWaterMark: 0 });
}

/** SHA-256 (hex) of a stream, read piece by piece. */
export async function sha256OfStream(stream: ReadableStream<Uint8Array>): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest("hex");
}

/** Reads a (small) stream into one array. */
export async function bytesOfStream(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

async function listAll(storage: Storage, prefix: string) {
  const objects = [];
  for await (const object of storage.list(prefix)) objects.push(object);
  return objects;
}

async function listKeys(storage: Storage, prefix: string): Promise<string[]> {
  return (await listAll(storage, prefix)).map((object) => object.key);
}

/** The reason `promise` rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Error, `rejected with a non-Error: ${String(error)}`);
    return error;
  }
  assert.fail("expected a rejection");
}

/** Asserts that `error` is an IntellistorError with `code`. */
export function assertIntellistorError(
  error: unknown,
  code: IntellistorError["code"],
): asserts error is IntellistorError {
  assert.ok(
    error instanceof IntellistorError,
    `expected IntellistorError ${code}, got ${String(error)}`,
  );
  assert.equal(error.code, code, error.message);
}
