import assert from "node:assert/strict";
import { IntellistorError } from "../errors.ts";
import { be32, be64, be88, bytesEqual, concatBytes, fromBase64, utf8 } from "./bytes.ts";
import { generateRootKey, type Keyring, keyringFromEnv } from "./keys.ts";
import {
  CHUNK_SIZE,
  chunkByteRange,
  chunkCount,
  createStreamKeys,
  decryptChunk,
  decryptStream,
  encryptedSize,
  encryptStream,
  HEADER_SIZE,
  manifestKey,
  openHeader,
  SEALED_CHUNK_SIZE,
  type StreamKeys,
  TAG_SIZE,
} from "./stream.ts";

// ---------- helpers ----------

function keyKeyring(): Keyring {
  return keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
}

/** Deterministic pseudo-random bytes (xorshift), fast for large sizes. */
function sampleBytes(length: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Splits bytes into pieces of the given sizes, cycling through them. */
function split(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  let turn = 0;
  while (offset < bytes.length) {
    const size = sizes[turn++ % sizes.length];
    pieces.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

interface Collected {
  output: Uint8Array<ArrayBuffer>;
  error?: unknown;
}

/** Pipes pieces through a transform and collects everything emitted, even when it fails. */
async function run(
  pieces: Uint8Array[],
  transform: TransformStream<Uint8Array, Uint8Array>,
): Promise<Collected> {
  const emitted: Uint8Array[] = [];
  try {
    await ReadableStream.from(pieces).pipeThrough(transform).pipeTo(
      new WritableStream({ write: (chunk) => void emitted.push(chunk) }),
    );
    return { output: concatBytes(...emitted) };
  } catch (error) {
    return { output: concatBytes(...emitted), error };
  }
}

async function encrypt(
  keys: StreamKeys,
  plaintext: Uint8Array,
  pieceSizes: number[] = [plaintext.length || 1],
  chunksPerKey?: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const result = await run(split(plaintext, pieceSizes), encryptStream(keys, { chunksPerKey }));
  if (result.error) throw result.error;
  return result.output;
}

function decrypt(
  object: Uint8Array,
  keyring: Keyring,
  pieceSizes: number[] = [object.length || 1],
  options?: { chunksPerKey?: number; onKeys?: (keys: StreamKeys) => void },
): Promise<Collected> {
  return run(split(object, pieceSizes), decryptStream(keyring, options));
}

function assertCode(error: unknown, code: string): void {
  assert.ok(error instanceof IntellistorError, `expected IntellistorError ${code}, got ${error}`);
  assert.equal(error.code, code, error.message);
}

/** Decryption must fail with `code` and, unless allowed, release no plaintext. */
async function assertRejected(
  object: Uint8Array,
  keyring: Keyring,
  code: string,
  options?: { allowPartialOutput?: boolean; chunksPerKey?: number },
): Promise<void> {
  const result = await decrypt(object, keyring, undefined, options);
  assertCode(result.error, code);
  if (!options?.allowPartialOutput) assert.equal(result.output.length, 0, "plaintext was released");
}

/** The sealed chunks of an object (the last one may be short). */
function chunksOf(object: Uint8Array): Uint8Array<ArrayBuffer>[] {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  for (let at = HEADER_SIZE; at < object.length; at += SEALED_CHUNK_SIZE) {
    chunks.push(object.slice(at, at + SEALED_CHUNK_SIZE));
  }
  return chunks;
}

function headerOf(object: Uint8Array): Uint8Array<ArrayBuffer> {
  return object.slice(0, HEADER_SIZE);
}

async function newBackup(keyring: Keyring, plaintext: Uint8Array) {
  const keys = await createStreamKeys(keyring);
  return { keys, object: await encrypt(keys, plaintext) };
}

// A passphrase-made header, shared by the tests that need one (scrypt costs ~1 s).
const passphraseKeyring = keyringFromEnv({ INTELLISTOR_PASSPHRASE: "correct horse battery" });
let passphraseBackup: Promise<{ keys: StreamKeys; object: Uint8Array }> | undefined;
function getPassphraseBackup() {
  passphraseBackup ??= newBackup(passphraseKeyring, utf8("secret payload"));
  return passphraseBackup;
}

// ---------- §5 ----------

Deno.test("format §5.1: round trips at boundary sizes and the object size formula holds", async () => {
  const keyring = keyKeyring();
  for (const size of [0, 1, 65535, 65536, 65537, 131072, 131073, 1_000_003]) {
    const plaintext = sampleBytes(size, size + 7);
    const keys = await createStreamKeys(keyring);
    const object = await encrypt(keys, plaintext);
    assert.equal(object.length, encryptedSize(size), `size formula for ${size}`);
    assert.equal(object.length, 172 + size + 16 * Math.max(1, Math.ceil(size / 65536)));
    assert.equal(chunksOf(object).length, chunkCount(size));
    const result = await decrypt(object, keyring);
    assert.equal(result.error, undefined);
    assert.ok(bytesEqual(result.output, plaintext), `round trip of ${size} bytes`);
  }
});

Deno.test("format §5.1: output does not depend on how the input is chunked", async () => {
  const keyring = keyKeyring();
  const keys = await createStreamKeys(keyring);
  const plaintext = sampleBytes(200_000, 3);
  const reference = await encrypt(keys, plaintext);
  const chunkings = [[1000], [65535], [65536], [65537], [100_000], [7, 65529, 0, 131072, 3]];
  for (const sizes of chunkings) {
    const object = await encrypt(keys, plaintext, sizes);
    // Same keys and counter nonces: identical bytes prove the chunking was normalised.
    assert.ok(bytesEqual(object, reference), `input chunking ${sizes}`);
  }
  for (const sizes of [[171], [172], [173], [65552], [65553], [40_000, 90_000]]) {
    const result = await decrypt(reference, keyring, sizes);
    assert.equal(result.error, undefined, `object chunking ${sizes}`);
    assert.ok(bytesEqual(result.output, plaintext), `object chunking ${sizes}`);
  }
  // One byte at a time, over a smaller object.
  const small = plaintext.subarray(0, 70_000);
  const byteByByte = await decrypt(await encrypt(keys, small, [1]), keyring, [1]);
  assert.equal(byteByByte.error, undefined);
  assert.ok(bytesEqual(byteByByte.output, small));
});

Deno.test("format §5.2: empty input gives one 16-byte final chunk", async () => {
  const keyring = keyKeyring();
  const { keys, object } = await newBackup(keyring, new Uint8Array(0));
  assert.equal(object.length, HEADER_SIZE + TAG_SIZE);
  assert.equal((await decryptChunk(keys, 0, true, object.subarray(HEADER_SIZE))).length, 0);
  const result = await decrypt(object, keyring);
  assert.equal(result.error, undefined);
  assert.equal(result.output.length, 0);
});

Deno.test("format §5.2: exactly one chunk of input gives a single full final chunk, no empty trailer", async () => {
  const keyring = keyKeyring();
  const keys = await createStreamKeys(keyring);
  const plaintext = sampleBytes(CHUNK_SIZE, 9);
  const object = await encrypt(keys, plaintext, [30_000]);
  assert.equal(object.length, HEADER_SIZE + SEALED_CHUNK_SIZE);
  const opened = await decryptChunk(keys, 0, true, object.subarray(HEADER_SIZE));
  assert.ok(bytesEqual(opened, plaintext));
  await assert.rejects(decryptChunk(keys, 0, false, object.subarray(HEADER_SIZE)));
});

Deno.test("format §5.3: truncation anywhere is rejected", async () => {
  const keyring = keyKeyring();
  const { object } = await newBackup(keyring, sampleBytes(150_000));
  const cuts = {
    "inside the header": 100,
    "after the header": HEADER_SIZE,
    "at a chunk boundary": HEADER_SIZE + SEALED_CHUNK_SIZE,
    "at the last chunk boundary": HEADER_SIZE + 2 * SEALED_CHUNK_SIZE,
    "mid-chunk": HEADER_SIZE + SEALED_CHUNK_SIZE + 1000,
    "inside a tag": HEADER_SIZE + 2 * SEALED_CHUNK_SIZE + 10,
    "one byte short": object.length - 1,
  };
  for (const [where, length] of Object.entries(cuts)) {
    const result = await decrypt(object.subarray(0, length), keyring);
    assertCode(result.error, "INTEGRITY");
    assert.ok(result.output.length < 150_000, where);
  }
  // An object that is exactly full chunks: dropping the whole final chunk is detected too.
  const full = await newBackup(keyring, sampleBytes(2 * CHUNK_SIZE));
  const cut = await decrypt(full.object.subarray(0, HEADER_SIZE + SEALED_CHUNK_SIZE), keyring);
  assertCode(cut.error, "INTEGRITY");
});

Deno.test("format §5.4: reordered, duplicated or dropped chunks are rejected", async () => {
  const keyring = keyKeyring();
  const { object } = await newBackup(keyring, sampleBytes(4 * CHUNK_SIZE + 500));
  const header = headerOf(object);
  const [c0, c1, c2, c3, c4] = chunksOf(object);
  const variants = {
    "swapped": [c1, c0, c2, c3, c4],
    "duplicated": [c0, c0, c1, c2, c3, c4],
    "duplicated last full": [c0, c1, c2, c3, c3, c4],
    "middle dropped": [c0, c1, c3, c4],
    "first dropped": [c1, c2, c3, c4],
  };
  for (const [name, chunks] of Object.entries(variants)) {
    const result = await decrypt(concatBytes(header, ...chunks), keyring);
    assertCode(result.error, "INTEGRITY");
    assert.ok(result.output.length < 4 * CHUNK_SIZE + 500, name);
  }
});

Deno.test("format §5.5: anything appended after the final chunk is rejected", async () => {
  const keyring = keyKeyring();
  for (const size of [100_000, 2 * CHUNK_SIZE]) {
    const { object } = await newBackup(keyring, sampleBytes(size));
    const chunks = chunksOf(object);
    const appended = {
      "one byte": new Uint8Array([0]),
      "a copy of the final chunk": chunks[chunks.length - 1],
      "junk": sampleBytes(1000, 5),
    };
    for (const [name, extra] of Object.entries(appended)) {
      const result = await decrypt(concatBytes(object, extra), keyring);
      assertCode(result.error, "INTEGRITY");
      assert.ok(result.output.length < size, `${name} after ${size} bytes`);
    }
  }
});

Deno.test("format §5.6: a chunk or header spliced from another backup under the same key is rejected", async () => {
  const keyring = keyKeyring();
  const plaintext = sampleBytes(3 * CHUNK_SIZE);
  const a = await newBackup(keyring, plaintext);
  const b = await newBackup(keyring, plaintext);
  const aChunks = chunksOf(a.object);
  const bChunks = chunksOf(b.object);

  const chunkSpliced = concatBytes(headerOf(a.object), aChunks[0], bChunks[1], aChunks[2]);
  assertCode((await decrypt(chunkSpliced, keyring)).error, "INTEGRITY");

  const headerSpliced = concatBytes(headerOf(b.object), ...aChunks);
  await assertRejected(headerSpliced, keyring, "INTEGRITY");

  // Sanity: both originals are valid, so the splice is what was rejected.
  assert.equal((await decrypt(a.object, keyring)).error, undefined);
  assert.equal((await decrypt(b.object, keyring)).error, undefined);
});

Deno.test("format §5.7: every header byte flipped is rejected before any plaintext is released", async () => {
  const keyring = keyKeyring();
  const { object } = await newBackup(keyring, sampleBytes(1000));
  const expectedCode = (at: number) => {
    if (at < 12) return "FORMAT_UNSUPPORTED"; // magic, version, suite, chunk_log2, reserved
    if (at < 44) return "INTEGRITY"; // stream_id: bound by the wrap AAD and the MAC
    if (at < 60) return "WRONG_KEY"; // key_id
    if (at < 80) return "FORMAT_UNSUPPORTED"; // kdf fields must be zero for a raw key
    return "INTEGRITY"; // wrap nonce, wrapped DEK, MAC
  };
  for (let at = 0; at < HEADER_SIZE; at++) {
    const tampered = object.slice();
    tampered[at] ^= 0x01;
    const result = await decrypt(tampered, keyring);
    assertCode(result.error, expectedCode(at));
    assert.equal(result.output.length, 0, `plaintext released with header byte ${at} flipped`);
  }
});

Deno.test("format §5.8: a bit flipped in any chunk's ciphertext or tag is rejected", async () => {
  const keyring = keyKeyring();
  const size = 2 * CHUNK_SIZE + 5000;
  const { object } = await newBackup(keyring, sampleBytes(size));
  const chunkStarts = [0, 1, 2].map((i) => HEADER_SIZE + i * SEALED_CHUNK_SIZE);
  const chunkEnds = [chunkStarts[1], chunkStarts[2], object.length];
  for (let i = 0; i < 3; i++) {
    const tagStart = chunkEnds[i] - TAG_SIZE;
    const positions = {
      "first ciphertext byte": chunkStarts[i],
      "middle ciphertext byte": Math.floor((chunkStarts[i] + tagStart) / 2),
      "first tag byte": tagStart,
      "last tag byte": chunkEnds[i] - 1,
    };
    for (const [where, at] of Object.entries(positions)) {
      const tampered = object.slice();
      tampered[at] ^= 0x80;
      const result = await decrypt(tampered, keyring);
      assertCode(result.error, "INTEGRITY");
      // Only chunks before the damaged one may have been released.
      assert.ok(result.output.length <= i * CHUNK_SIZE, `chunk ${i} ${where}`);
    }
  }
});

Deno.test("format §5.9: a backup whose key id is not in the keyring fails with WRONG_KEY", async () => {
  const made = keyKeyring();
  const other = keyKeyring();
  const { keys, object } = await newBackup(made, sampleBytes(100));
  const result = await decrypt(object, other);
  assertCode(result.error, "WRONG_KEY");
  assert.equal(result.output.length, 0);
  const message = (result.error as Error).message;
  assert.ok(message.includes(keys.keyIdHex), "message names the backup's key id");
  const otherKeys = await createStreamKeys(other);
  assert.ok(message.includes(otherKeys.keyIdHex), "message lists the available key ids");
  assert.ok((result.error as IntellistorError).hint.includes("INTELLISTOR_OLD_KEYS"));
});

Deno.test("format §5.9: a forged header with the right key id but another secret is rejected", async () => {
  const victim = keyKeyring();
  const attacker = keyKeyring();
  const victimKeyId = (await createStreamKeys(victim)).header.slice(44, 60);
  const { object } = await newBackup(attacker, sampleBytes(100));
  const forged = object.slice();
  forged.set(victimKeyId, 44);
  await assertRejected(forged, victim, "INTEGRITY");
});

Deno.test("format §5.9: a wrong passphrase fails with WRONG_KEY, the right one opens", async () => {
  const { object } = await getPassphraseBackup();
  const wrong = keyringFromEnv({ INTELLISTOR_PASSPHRASE: "incorrect horse battery" });
  await assertRejected(object, wrong, "WRONG_KEY");
  const right = await decrypt(object, passphraseKeyring);
  assert.equal(right.error, undefined);
  assert.deepEqual(right.output, utf8("secret payload"));
});

Deno.test("format §5.10: a changed version, suite or chunk size is rejected as unsupported", async () => {
  const keyring = keyKeyring();
  const { object } = await newBackup(keyring, sampleBytes(100));
  for (const [at, value] of [[8, 2], [8, 0], [9, 2], [9, 0], [10, 17], [10, 15], [11, 1]]) {
    const downgraded = object.slice();
    downgraded[at] = value;
    await assertRejected(downgraded, keyring, "FORMAT_UNSUPPORTED");
  }
});

Deno.test("format §5.10: scrypt parameters out of bounds are rejected without running scrypt", async () => {
  const { keys, object } = await getPassphraseBackup();
  assert.deepEqual(
    { ...keys.kdf, salt: undefined },
    { id: "scrypt", log2N: 17, r: 8, p: 1, salt: undefined },
  );
  assert.deepEqual([...object.subarray(60, 64)], [1, 17, 8, 1]);
  // [offset, value]: log2N 16 / 21 / 40, r 7 / 9, p 2 / 0, kdf id 2, raw with scrypt fields.
  const cases = [[61, 16], [61, 21], [61, 40], [62, 7], [62, 9], [63, 2], [63, 0], [60, 2], [
    60,
    0,
  ]];
  for (const [at, value] of cases) {
    const tampered = object.slice();
    tampered[at] = value;
    const started = performance.now();
    await assertRejected(tampered, passphraseKeyring, "FORMAT_UNSUPPORTED");
    assert.ok(performance.now() - started < 500, `byte ${at} = ${value} ran scrypt`);
  }
});

Deno.test("format §5.11: the same input encrypted twice gives unrelated ciphertexts", async () => {
  const keyring = keyKeyring();
  const plaintext = sampleBytes(3 * CHUNK_SIZE);
  const a = await newBackup(keyring, plaintext);
  const b = await newBackup(keyring, plaintext);
  assert.ok(!bytesEqual(a.keys.streamId, b.keys.streamId));
  const aBody = a.object.subarray(HEADER_SIZE);
  const bBody = b.object.subarray(HEADER_SIZE);
  let sameBytes = 0;
  for (let i = 0; i < aBody.length; i++) if (aBody[i] === bBody[i]) sameBytes++;
  // Unrelated bytes agree about 1 time in 256.
  assert.ok(sameBytes / aBody.length < 0.01, `${sameBytes} of ${aBody.length} bytes equal`);
});

Deno.test("format §5.11: decryption works across a chunk-key group boundary", async () => {
  const keyring = keyKeyring();
  const keys = await createStreamKeys(keyring);
  const plaintext = sampleBytes(5 * CHUNK_SIZE + 123);
  const object = await encrypt(keys, plaintext, [50_000], 2);
  const result = await decrypt(object, keyring, [70_000], { chunksPerKey: 2 });
  assert.equal(result.error, undefined);
  assert.ok(bytesEqual(result.output, plaintext));
  // Groups really use different keys: with the default group size chunk 2 fails.
  const mismatched = await decrypt(object, keyring);
  assertCode(mismatched.error, "INTEGRITY");
  assert.equal(mismatched.output.length, 2 * CHUNK_SIZE);
  // Chunk 1 (group 0) and chunk 2 (group 1) both open by index.
  const chunks = chunksOf(object);
  for (const i of [1, 2, 5]) {
    const opened = await decryptChunk(keys, i, i === 5, chunks[i], { chunksPerKey: 2 });
    assert.ok(bytesEqual(opened, plaintext.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)));
  }
});

// ---------- layout, ranged reads, keys ----------

Deno.test("format §2: header, chunk nonces and AAD match the spec when recomputed independently", async () => {
  const rootB64 = generateRootKey();
  const keyring = keyringFromEnv({ INTELLISTOR_KEY: rootB64 });
  const plaintext = sampleBytes(CHUNK_SIZE + 10);
  const { object } = await newBackup(keyring, plaintext);
  const h = headerOf(object);
  assert.deepEqual([...h.subarray(0, 12)], [
    0x89,
    0x42,
    0x4b,
    0x45,
    0x0d,
    0x0a,
    0x1a,
    0x0a,
    1,
    1,
    16,
    0,
  ]);
  assert.deepEqual([...h.subarray(60, 80)], new Array(20).fill(0), "raw key: kdf fields zero");

  const subtle = crypto.subtle;
  const hkdf = async (
    ikm: Uint8Array<ArrayBuffer>,
    salt: Uint8Array<ArrayBuffer>,
    info: string | Uint8Array<ArrayBuffer>,
  ) => {
    const base = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
    const infoBytes = typeof info === "string" ? utf8(info) : info;
    return new Uint8Array(
      await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: infoBytes }, base, 256),
    );
  };
  const aes = (raw: Uint8Array<ArrayBuffer>) =>
    subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"]);
  const root = fromBase64(rootB64)!;
  // 32 zero bytes: RFC 5869's default salt, equivalent to the empty salt the code uses.
  const zeroSalt = new Uint8Array(32);
  assert.deepEqual(h.subarray(44, 60), (await hkdf(root, zeroSalt, "bkp1 key-id")).subarray(0, 16));
  const kek = await aes(await hkdf(root, zeroSalt, "bkp1 kek"));
  const dek = new Uint8Array(
    await subtle.decrypt(
      { name: "AES-GCM", iv: h.slice(80, 92), additionalData: h.slice(0, 80) },
      kek,
      h.slice(92, 140),
    ),
  );
  const streamId = h.slice(12, 44);
  const macKey = await subtle.importKey(
    "raw",
    await hkdf(dek, streamId, "bkp1 header-mac"),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  assert.ok(await subtle.verify("HMAC", macKey, h.slice(140), h.slice(0, 140)));
  const k0 = await aes(await hkdf(dek, streamId, concatBytes(utf8("bkp1 chunk-key"), be32(0))));
  const chunks = chunksOf(object);
  const open = (i: number, f: number) =>
    subtle.decrypt(
      {
        name: "AES-GCM",
        iv: concatBytes(be88(i), new Uint8Array([f])),
        additionalData: concatBytes(h.subarray(0, 44), be64(i), new Uint8Array([f])),
      },
      k0,
      chunks[i],
    );
  assert.ok(bytesEqual(new Uint8Array(await open(0, 0)), plaintext.subarray(0, CHUNK_SIZE)));
  assert.ok(bytesEqual(new Uint8Array(await open(1, 1)), plaintext.subarray(CHUNK_SIZE)));
});

Deno.test("chunkByteRange and decryptChunk decrypt a middle range of an encrypted object", async () => {
  const keyring = keyKeyring();
  const size = 4 * CHUNK_SIZE + 777;
  const plaintext = sampleBytes(size, 11);
  const { object } = await newBackup(keyring, plaintext);
  const total = chunkCount(size);
  assert.equal(total, 5);
  const keys = await openHeader(headerOf(object), keyring);

  for (const [first, last] of [[1, 2], [2, 2], [3, 4], [0, 4]]) {
    const { start, end } = chunkByteRange(first, last, total, size);
    const range = object.subarray(start, end);
    const opened: Uint8Array[] = [];
    for (let i = first; i <= last; i++) {
      const at = (i - first) * SEALED_CHUNK_SIZE;
      const sealed = range.subarray(at, Math.min(at + SEALED_CHUNK_SIZE, range.length));
      opened.push(await decryptChunk(keys, i, i === total - 1, sealed));
    }
    const expected = plaintext.subarray(
      first * CHUNK_SIZE,
      Math.min((last + 1) * CHUNK_SIZE, size),
    );
    assert.ok(bytesEqual(concatBytes(...opened), expected), `chunks ${first}–${last}`);
  }
  assert.deepEqual(chunkByteRange(4, 4, 5, size), {
    start: object.length - 777 - 16,
    end: object.length,
  });

  const [, c1] = chunksOf(object);
  await assert.rejects(decryptChunk(keys, 2, false, c1), (e) => (assertCode(e, "INTEGRITY"), true));
  await assert.rejects(decryptChunk(keys, 1, true, c1), (e) => (assertCode(e, "INTEGRITY"), true));
  assert.throws(() => chunkByteRange(0, 5, 5, size), RangeError);
  assert.throws(() => chunkByteRange(0, 1, 4, size), RangeError);
});

Deno.test("encryptedSize and chunkCount follow the size formula", () => {
  assert.equal(chunkCount(0), 1);
  assert.equal(chunkCount(65536), 1);
  assert.equal(chunkCount(65537), 2);
  assert.equal(encryptedSize(0), 188);
  assert.equal(encryptedSize(65536), 172 + 65536 + 16);
  assert.equal(encryptedSize(65537), 172 + 65537 + 32);
  assert.equal(encryptedSize(64 * 2 ** 30), 172 + 64 * 2 ** 30 + 16 * 2 ** 20);
});

Deno.test("decryptStream reports the verified keys before releasing plaintext, and they open the manifest key", async () => {
  const keyring = keyKeyring();
  const { keys, object } = await newBackup(keyring, sampleBytes(100_000));
  let reported: StreamKeys | undefined;
  const events: string[] = [];
  await ReadableStream.from(split(object, [5000]))
    .pipeThrough(decryptStream(keyring, {
      onKeys: (k) => {
        reported = k;
        events.push("keys");
      },
    }))
    .pipeTo(new WritableStream({ write: () => void events.push("data") }));
  assert.ok(reported !== undefined);
  assert.equal(events[0], "keys");
  assert.equal(events.filter((e) => e === "keys").length, 1);
  assert.deepEqual(reported.streamId, keys.streamId);
  assert.equal(reported.keyIdHex, keys.keyIdHex);

  const iv = new Uint8Array(12);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv },
    await manifestKey(keys),
    utf8("inner manifest"),
  );
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv },
    await manifestKey(reported),
    sealed,
  );
  assert.deepEqual(new Uint8Array(opened), utf8("inner manifest"));
  const other = await createStreamKeys(keyring);
  await assert.rejects(
    crypto.subtle.decrypt({ name: "AES-GCM", iv }, await manifestKey(other), sealed),
  );
});

Deno.test("StreamKeys serialise to public fields only", async () => {
  const keys = await createStreamKeys(keyKeyring());
  const json = JSON.parse(JSON.stringify(keys));
  assert.deepEqual(Object.keys(json).sort(), ["kdf", "keyId", "streamId"]);
  assert.equal(json.keyId, keys.keyIdHex);
  assert.equal(keys.header.length, HEADER_SIZE);
  assert.equal(keys.streamId.length, 32);
  assert.match(keys.keyIdHex, /^[0-9a-f]{32}$/);
});

Deno.test("opening a passphrase header again with the same keyring reuses the scrypt result", async () => {
  const { object } = await getPassphraseBackup();
  const fresh = keyringFromEnv({ INTELLISTOR_PASSPHRASE: "correct horse battery" });
  let started = performance.now();
  await openHeader(headerOf(object), fresh);
  const first = performance.now() - started;
  started = performance.now();
  await openHeader(headerOf(object), fresh);
  const second = performance.now() - started;
  assert.ok(second * 4 < first, `first open ${first} ms, second ${second} ms`);
});
