/**
 * Manifests of many entries (docs/FORMAT.md §6.2): sealed and opened in
 * pieces, because the JSON of about two million entries is longer than the
 * longest string V8 can hold. The default count keeps the suite fast;
 * `test:stress` sets INTELLISTOR_MANIFEST_ENTRIES above that limit, and the
 * test then checks that the whole document could not have been one string.
 *
 * Also: the sealed plaintext stays what every v1 reader reads (one gzip
 * member of `JSON.stringify`), and what another writer may seal (several gzip
 * members, indented JSON) still opens.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import type { CatalogEntry } from "../lib/archive/catalog.ts";
import { EntryTable } from "../lib/archive/entry_table.ts";
import { generateRootKey, keyringFromEnv } from "../lib/crypto/keys.ts";
import { createStreamKeys, manifestKey, type StreamKeys } from "../lib/crypto/stream.ts";
import {
  canonicalJson,
  type Manifest,
  MANIFEST_FORMAT,
  openManifest,
  type PublicManifest,
  type SealedContent,
  SealedContentWriter,
  sealGzippedContent,
  sealManifest,
} from "../lib/manifest.ts";

const ENTRIES = Number(Deno.env.get("INTELLISTOR_MANIFEST_ENTRIES") ?? "20000");
const encoder = new TextEncoder();

async function sample(count: number): Promise<
  { keys: StreamKeys; publicManifest: PublicManifest; content: SealedContent }
> {
  const keys = await createStreamKeys(keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() }));
  const streamId = Buffer.from(keys.streamId).toString("hex");
  const entries: CatalogEntry[] = [];
  for (let i = 0; i < count; i++) {
    const name = `srv/d${Math.floor(i / 1000)}/file-${i}.txt`;
    entries.push({
      relative_path: name,
      type: "file",
      size: i,
      mode: 0o644,
      mtime: 1_700_000_000_000 + i,
      sha256: (i % 256).toString(16).padStart(2, "0").repeat(32),
      source: `/${name}`,
      segment: 0,
      tar_offset: i * 1024,
    });
  }
  const publicManifest: PublicManifest = {
    format: MANIFEST_FORMAT,
    backup_id: crypto.randomUUID(),
    policy_id: "large",
    timestamp: "20261126T120000Z",
    host: "host",
    client_version: "test",
    object: {
      key: "backups/large/o/backup.tar.gz.enc",
      size: 1,
      sha256: "00".repeat(32),
      stream_id: streamId,
      chunk_count: 1,
      plaintext_size: 100,
    },
    key: { key_id: keys.keyIdHex, kdf: keys.kdf },
    summary: { files: count, dirs: 0, symlinks: 0, bytes: 0, skipped: 0 },
  };
  const content: SealedContent = {
    backup_id: publicManifest.backup_id,
    policy_id: publicManifest.policy_id,
    stream_id: streamId,
    object_key: publicManifest.object.key,
    sources: ["/srv"],
    entries,
    segments: [{ gz_offset: 0, gz_length: 100, tar_offset: 0, tar_length: count * 1024 }],
    warnings: [{ path: "/srv/locked", message: "permission denied", skipped: true }],
  };
  return { keys, publicManifest, content };
}

/** The sealed plaintext, opened by hand as FORMAT.md §6.2 describes it. */
async function sealedPlaintext(manifest: Manifest, keys: StreamKeys): Promise<Uint8Array> {
  const { sealed, ...publicPart } = manifest;
  const blob = Buffer.from(sealed, "base64");
  return new Uint8Array(
    await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: new Uint8Array(blob.subarray(0, 12)),
        additionalData: encoder.encode(canonicalJson(publicPart)),
      },
      await manifestKey(keys),
      new Uint8Array(blob.subarray(12)),
    ),
  );
}

/** Seals `plaintext` as another writer could (the real key and AAD). */
async function sealRaw(
  publicManifest: PublicManifest,
  plaintext: Uint8Array<ArrayBuffer>,
  keys: StreamKeys,
): Promise<Manifest> {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: encoder.encode(canonicalJson(publicManifest)) },
    await manifestKey(keys),
    plaintext,
  );
  const sealed = Buffer.concat([nonce, new Uint8Array(ciphertext)]).toString("base64");
  return { ...publicManifest, sealed };
}

Deno.test(`large manifest: ${ENTRIES} entries are sealed and opened, every one intact`, async () => {
  const { keys, publicManifest, content } = await sample(ENTRIES);
  // As a backup seals it: entry by entry, as the archive goes.
  const writer = new SealedContentWriter(content);
  for (const entry of content.entries) writer.addEntry(entry);
  assert.deepStrictEqual(writer.counts, { file: ENTRIES, dir: 0, symlink: 0 });
  const manifest = await sealGzippedContent(
    publicManifest,
    writer.finish(content.segments, content.warnings),
    keys,
  );
  const opened = await openManifest(manifest, keys);
  assert.equal(opened.entries.length, ENTRIES);
  for (const i of [0, 1, Math.floor(ENTRIES / 2), ENTRIES - 1]) {
    assert.deepStrictEqual(opened.entries[i], content.entries[i]);
  }
  assert.deepStrictEqual(opened.segments, content.segments);
  assert.deepStrictEqual(opened.warnings, content.warnings);
  assert.deepStrictEqual(opened.sources, content.sources);

  const plaintext = await sealedPlaintext(manifest, keys);
  let wholeText: string | undefined;
  try {
    wholeText = JSON.stringify(content);
  } catch (error) {
    // Beyond V8's longest string: only writing in pieces could have sealed it.
    assert.ok(error instanceof RangeError, String(error));
  }
  if (wholeText !== undefined) {
    // The same bytes a reader of the whole document (every earlier version) reads.
    assert.equal(new TextDecoder().decode(zlib.gunzipSync(plaintext)), wholeText);
  } else {
    assert.ok(ENTRIES > 1_000_000, "JSON.stringify failed on a small manifest");
  }
});

Deno.test(`large manifest: ${ENTRIES} entries opened one by one into a restore's table`, async () => {
  const { keys, publicManifest, content } = await sample(ENTRIES);
  const manifest = await sealManifest(publicManifest, content, keys);
  const table = new EntryTable();
  let handed = 0;
  const opened = await openManifest(manifest, keys, (entry) => {
    const listed = content.entries[handed++];
    if (handed % 997 === 1) assert.deepStrictEqual(entry, listed);
    else assert.equal(entry.relative_path, listed.relative_path);
    table.add(entry, entry.size % 3 === 0);
  });
  // Handed over in order and not kept: the restore holds them only in its table.
  assert.equal(handed, ENTRIES);
  assert.deepStrictEqual(opened.entries, []);
  assert.deepStrictEqual(opened.segments, content.segments);
  assert.equal(table.length, ENTRIES);
  assert.equal(table.selectedCount, Math.ceil(ENTRIES / 3));
  for (const i of [0, 1, Math.floor(ENTRIES / 2), ENTRIES - 1]) {
    const entry = content.entries[i];
    assert.deepStrictEqual(table.get(entry.relative_path), { ...entry, source: "" });
  }
});

Deno.test("a caller's own failure while taking entries is passed on, never called manifest damage", async () => {
  const { keys, publicManifest, content } = await sample(100);
  const manifest = await sealManifest(publicManifest, content, keys);
  const closed = new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
  let handed = 0;
  await assert.rejects(
    openManifest(manifest, keys, () => {
      if (++handed === 10) throw closed; // `list --key | head`: stdout closed
    }),
    (error: unknown) => error === closed,
  );
});

Deno.test("large manifest: a bad entry is refused alike, whole or one by one", async () => {
  const cases: [string, (entries: CatalogEntry[]) => void][] = [
    ["entries[7].sha256 is not a SHA-256", (entries) => (entries[7].sha256 = "00")],
    ["entries[9].segment names no segment", (entries) => (entries[9].segment = 1)],
    ["entries[2] has a bad size, mode or tar_offset", (entries) => (entries[2].size = -1)],
  ];
  for (const [problem, spoil] of cases) {
    const { keys, publicManifest, content } = await sample(12);
    spoil(content.entries);
    const manifest = await sealManifest(publicManifest, content, keys);
    const expected = (error: unknown) =>
      (error as { code?: string }).code === "INTEGRITY" &&
      (error as Error).message === `The manifest's sealed part is malformed: ${problem}`;
    await assert.rejects(openManifest(manifest, keys), expected, problem);
    await assert.rejects(openManifest(manifest, keys, () => {}), expected, problem);
  }
});

Deno.test("large manifest: entry by entry or whole, the sealed JSON is JSON.stringify's", async () => {
  const { keys, publicManifest, content } = await sample(5);
  content.entries.push(
    { ...content.entries[0], relative_path: "d", type: "dir", size: 0, sha256: undefined },
    { ...content.entries[1], relative_path: "l", type: "symlink", link: "../é€😀" },
    { ...content.entries[2], relative_path: "x", incomplete: true },
  );
  content.warnings.push({ path: '/srv/\u0000"q"', message: "é", skipped: false });
  const writer = new SealedContentWriter(content);
  for (const entry of content.entries) writer.addEntry(entry);
  assert.deepStrictEqual(writer.counts, { file: 6, dir: 1, symlink: 1 });
  const gunzipped = (plaintext: Uint8Array) => new TextDecoder().decode(zlib.gunzipSync(plaintext));
  const expected = JSON.stringify(content);
  assert.equal(gunzipped(writer.finish(content.segments, content.warnings)), expected);
  const whole = await sealManifest(publicManifest, content, keys);
  assert.equal(gunzipped(await sealedPlaintext(whole, keys)), expected);
});

Deno.test("large manifest: sealed content another writer may produce still opens", async () => {
  const { keys, publicManifest, content } = await sample(3000);
  const text = JSON.stringify(content, null, 2);
  const half = Math.floor(text.length / 2);
  // Two gzip members (still one valid gzip file), with indented JSON.
  const plaintext = new Uint8Array(Buffer.concat([
    zlib.gzipSync(encoder.encode(text.slice(0, half))),
    zlib.gzipSync(encoder.encode(text.slice(half)), { level: 1 }),
  ]));
  const opened = await openManifest(await sealRaw(publicManifest, plaintext, keys), keys);
  assert.deepStrictEqual(opened, content);
});

Deno.test("large manifest: sealed gzip cut short is refused as INTEGRITY", async () => {
  const { keys, publicManifest, content } = await sample(3000);
  const whole = zlib.gzipSync(encoder.encode(JSON.stringify(content)));
  for (const cut of [whole.length - 4, Math.floor(whole.length / 2), 12]) {
    const plaintext = new Uint8Array(whole.subarray(0, cut));
    await assert.rejects(
      openManifest(await sealRaw(publicManifest, plaintext, keys), keys),
      (error: unknown) => (error as { code?: string }).code === "INTEGRITY",
      `cut at ${cut}`,
    );
  }
});
