/**
 * The v1 format as a public contract (docs/FORMAT.md): frozen known-answer
 * fixtures (§5.12), manifest binding (§5.13), GNU tar compatibility (§5.14),
 * gzip segment layout (§1), and an independent reader written from the
 * document alone with node:crypto (docs/FORMAT.md "Reading a backup without
 * this tool").
 *
 * The fixtures under tests/fixtures/ were made once by
 * tests/fixtures/make_fixtures.ts and are never regenerated here.
 */
import assert from "node:assert/strict";
import {
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  scryptSync,
  timingSafeEqual,
} from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { runBackup } from "../lib/backup.ts";
import type { CatalogEntry } from "../lib/archive/catalog.ts";
import { parseTar } from "../lib/archive/tar.ts";
import { type Keyring, keyringFromEnv } from "../lib/crypto/keys.ts";
import { decryptStream, HEADER_SIZE, openHeader, type StreamKeys } from "../lib/crypto/stream.ts";
import { IntellistorError } from "../lib/errors.ts";
import {
  type Manifest,
  manifestKeyFor,
  openManifest,
  parseManifest,
  type SealedContent,
} from "../lib/manifest.ts";
import { validatePolicy } from "../lib/policy/policy.ts";
import { type RestoreResult, runRestore } from "../lib/restore.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { readAll } from "../lib/streams.ts";
import type { ExpectedEntry } from "./fixtures/make_fixtures.ts";
import { makeSampleTree, pseudoRandomBytes } from "./support/tree.ts";
import { withTempDir } from "./support/temp.ts";

// ---------- the documented fixture secrets (docs/FORMAT.md) ----------

/** base64 of the 32 bytes 0x00, 0x01, …, 0x1f. */
const FIXTURE_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/** base64 of the 32 bytes 0x20, 0x21, …, 0x3f. */
const OTHER_KEY = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
/** NFC: "é" is U+00E9. */
const FIXTURE_PASSPHRASE = "Intellistor fixture passphrase: caf\u00e9";
const OTHER_PASSPHRASE = "not the fixture passphrase";

const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
const GOOD_FIXTURES = ["good_multichunk", "good_passphrase", "good_rawkey"];
const FAIL_FIXTURES = [
  "fail_appended",
  "fail_chunk_flip",
  "fail_header_flip",
  "fail_kdf_downgrade",
  "fail_manifest_format",
  "fail_manifest_public_changed",
  "fail_manifest_sealed_changed",
  "fail_manifest_swapped",
  "fail_truncated",
  "fail_version_unsupported",
  "fail_wrong_key",
  "fail_wrong_passphrase",
];

interface GoodExpected {
  fixture: string;
  env: Record<string, string>;
  object_key: string;
  object_sha256: string;
  object_size: number;
  key_id: string;
  kdf: { id: string };
  segments: number;
  chunk_count: number;
  entries: ExpectedEntry[];
}

interface FailExpected {
  fixture: string;
  derived_from?: string;
  env: Record<string, string>;
  object_key: string;
  error: "INTEGRITY" | "WRONG_KEY" | "FORMAT_UNSUPPORTED";
}

interface Fixture<E> {
  name: string;
  object: Uint8Array;
  manifestText: string;
  expected: E;
}

// ---------- helpers ----------

async function fixtureNames(prefix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const item of Deno.readDir(FIXTURES)) {
    if (item.isDirectory && item.name.startsWith(prefix)) names.push(item.name);
  }
  return names.sort();
}

async function readFixture<E>(name: string): Promise<Fixture<E>> {
  const dir = path.join(FIXTURES, name);
  return {
    name,
    object: await Deno.readFile(path.join(dir, "backup.tar.gz.enc")),
    manifestText: await Deno.readTextFile(path.join(dir, "manifest.json")),
    expected: JSON.parse(await Deno.readTextFile(path.join(dir, "expected.json"))) as E,
  };
}

/** Lays a fixture out in a local store: object at its key, manifest.json beside it. */
async function stage(
  storeRoot: string,
  objectKey: string,
  object: Uint8Array,
  manifestText: string,
): Promise<void> {
  const objectPath = path.join(storeRoot, ...objectKey.split("/"));
  await Deno.mkdir(path.dirname(objectPath), { recursive: true });
  await Deno.writeFile(objectPath, object);
  await Deno.writeTextFile(
    path.join(storeRoot, ...manifestKeyFor(objectKey).split("/")),
    manifestText,
  );
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

interface FoundEntry {
  type: "file" | "dir" | "symlink" | "other";
  path: string;
}

/** Every entry under `root` (relative "/"-paths), without following symlinks. */
async function listTree(root: string): Promise<Map<string, FoundEntry>> {
  const out = new Map<string, FoundEntry>();
  async function visit(relative: string): Promise<void> {
    const absolute = path.join(root, ...relative.split("/").filter(Boolean));
    for await (const item of Deno.readDir(absolute)) {
      const childRelative = relative === "" ? item.name : `${relative}/${item.name}`;
      const childPath = path.join(absolute, item.name);
      const info = await Deno.lstat(childPath);
      const type = info.isSymlink
        ? "symlink"
        : info.isDirectory
        ? "dir"
        : info.isFile
        ? "file"
        : "other";
      out.set(childRelative, { type, path: childPath });
      if (type === "dir") await visit(childRelative);
    }
  }
  try {
    await visit("");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out;
}

/** A failed restore must leave no file (not even a temporary one) and no symlink in --out. */
async function assertNothingWritten(outDir: string, context: string): Promise<void> {
  const written = [...await listTree(outDir)].filter(([, entry]) => entry.type !== "dir");
  assert.deepEqual(written.map(([name]) => name), [], `${context}: files left in --out`);
}

function assertCode(error: unknown, codes: string[], context: string): void {
  assert.ok(
    error instanceof IntellistorError,
    `${context}: expected IntellistorError ${codes.join("/")}, got ${error}`,
  );
  assert.ok(codes.includes(error.code), `${context}: got ${error.code}: ${error.message}`);
}

/** Checks restored entries under `outDir` against the expected entries, and nothing more. */
async function assertRestored(
  outDir: string,
  entries: ExpectedEntry[],
  context: string,
): Promise<void> {
  const found = await listTree(outDir);
  const wanted = new Set(entries.map((e) => e.relative_path));
  for (const name of found.keys()) {
    // Parent directories of a selection are created even when not selected.
    const isParent = entries.some((e) => e.relative_path.startsWith(`${name}/`));
    assert.ok(wanted.has(name) || isParent, `${context}: unexpected ${name}`);
  }
  for (const entry of entries) {
    const got = found.get(entry.relative_path);
    const where = `${context}: ${entry.relative_path}`;
    assert.ok(got !== undefined, `${where} was not restored`);
    assert.equal(got.type, entry.type, where);
    if (entry.type === "symlink") {
      assert.equal(await Deno.readLink(got.path), entry.link, where);
      continue;
    }
    const info = await Deno.lstat(got.path);
    assert.equal(info.mode! & 0o777, entry.mode & 0o777, `${where}: mode`);
    assert.equal(info.mtime!.getTime(), entry.mtime, `${where}: mtime`);
    if (entry.type === "file") {
      const data = await Deno.readFile(got.path);
      assert.equal(data.length, entry.size, `${where}: size`);
      assert.equal(sha256Hex(data), entry.sha256, `${where}: sha256`);
    }
  }
}

/** The manifest-facing fields of a catalog entry, as expected.json lists them. */
function describedEntry(entry: CatalogEntry): ExpectedEntry {
  const out: ExpectedEntry = {
    relative_path: entry.relative_path,
    type: entry.type,
    size: entry.size,
    mode: entry.mode,
    mtime: entry.mtime,
  };
  if (entry.sha256 !== undefined) out.sha256 = entry.sha256;
  if (entry.link !== undefined) out.link = entry.link;
  return out;
}

/** A glob pattern matching exactly `name` (lib/glob.ts: brackets escape special characters). */
function exactPattern(name: string): string {
  return name.replace(/[*?[{]/g, (c) => `[${c}]`);
}

function decryptAll(object: Uint8Array, keyring: Keyring): Promise<Uint8Array> {
  return readAll(ReadableStream.from([object]).pipeThrough(decryptStream(keyring)));
}

async function openFixtureManifest(
  object: Uint8Array,
  manifestText: string,
  keyring: Keyring,
): Promise<{ keys: StreamKeys; manifest: Manifest; content: SealedContent }> {
  const keys = await openHeader(object.subarray(0, HEADER_SIZE), keyring);
  const manifest = parseManifest(manifestText, "manifest.json");
  return { keys, manifest, content: await openManifest(manifest, keys) };
}

/** A fresh backup of `source` into `storeRoot` (fixed clock, optional segment target). */
async function backupTree(
  source: string,
  storeRoot: string,
  keyring: Keyring,
  options: { segmentTarget?: number; now?: string } = {},
) {
  const policy = validatePolicy({
    id: "format-test",
    paths: [source],
    schedule: "0 2 * * *",
    destination: { type: "local", path: storeRoot },
  }, "format test policy");
  const storage = new LocalStorage(storeRoot);
  const result = await runBackup({
    policy,
    storage,
    keyring,
    segmentTarget: options.segmentTarget,
    now: options.now === undefined ? undefined : () => new Date(options.now!),
  });
  assert.deepEqual(result.warnings, []);
  const object = await Deno.readFile(path.join(storeRoot, ...result.key_backup.split("/")));
  const manifestText = await Deno.readTextFile(
    path.join(storeRoot, ...result.key_manifest.split("/")),
  );
  return { result, object, manifestText, storage };
}

// ---------- §5.12 known-answer fixtures ----------

Deno.test("format §5.12: good_* fixtures restore to their expected entries", async () => {
  assert.deepEqual(await fixtureNames("good_"), GOOD_FIXTURES);
  for (const name of GOOD_FIXTURES) {
    const fixture = await readFixture<GoodExpected>(name);
    const { expected } = fixture;
    // The fixture secrets are the documented ones, and the files are untouched.
    for (const value of Object.values(expected.env)) {
      assert.ok([FIXTURE_KEY, FIXTURE_PASSPHRASE].includes(value), `${name}: undocumented secret`);
    }
    assert.equal(sha256Hex(fixture.object), expected.object_sha256, `${name}: object changed`);
    assert.equal(fixture.object.length, expected.object_size);
    const keyring = keyringFromEnv(expected.env);

    // The sealed manifest decodes to the expected entries, in archive order.
    const { keys, manifest, content } = await openFixtureManifest(
      fixture.object,
      fixture.manifestText,
      keyring,
    );
    assert.equal(keys.keyIdHex, expected.key_id, `${name}: key_id`);
    assert.equal(manifest.key.key_id, expected.key_id);
    assert.equal(manifest.key.kdf.id, expected.kdf.id);
    assert.equal(manifest.object.key, expected.object_key);
    assert.equal(manifest.object.chunk_count, expected.chunk_count);
    assert.equal(content.segments.length, expected.segments);
    assert.deepEqual(content.entries.map(describedEntry), expected.entries, `${name}: entries`);

    await withTempDir("format", async (work) => {
      const storeRoot = path.join(work, "store");
      await stage(storeRoot, expected.object_key, fixture.object, fixture.manifestText);
      const storage = new LocalStorage(storeRoot);

      const outDir = path.join(work, "full");
      const full = await runRestore({ storage, keyring, key: expected.object_key, outDir });
      assert.equal(full.integrity, "ok", `${name}: ${JSON.stringify(full.failures)}`);
      assert.equal(full.found, expected.entries.length);
      assert.equal(full.restored, expected.entries.length);
      assert.ok(full.downloaded_bytes >= fixture.object.length + fixture.manifestText.length);
      await assertRestored(outDir, expected.entries, name);

      // Ranged restore (docs/FORMAT.md §8) of the last file only.
      const last = expected.entries.findLast((e) => e.type === "file")!;
      const onlyDir = path.join(work, "only");
      const only = await runRestore({
        storage,
        keyring,
        key: expected.object_key,
        outDir: onlyDir,
        only: [exactPattern(last.relative_path)],
      });
      assert.equal(only.integrity, "ok", `${name}: ${JSON.stringify(only.failures)}`);
      assert.equal(only.restored, 1);
      await assertRestored(onlyDir, [last], `${name} --only`);
      if (name === "good_multichunk") {
        // tail/ lies in chunk 1: chunk 0 (65,552 sealed bytes) is never downloaded.
        assert.ok(
          only.downloaded_bytes < fixture.manifestText.length + fixture.object.length - 65536,
          `ranged restore downloaded ${only.downloaded_bytes} bytes`,
        );
      }
      await storage.close();
    });
  }
});

Deno.test("format §5.12: good_* fixtures open after key rotation and with an NFD passphrase", async () => {
  const rotated: Record<string, Record<string, string>> = {
    good_rawkey: {
      INTELLISTOR_KEY: OTHER_KEY,
      INTELLISTOR_OLD_KEYS: `${OTHER_KEY},${FIXTURE_KEY}`,
    },
    good_multichunk: { INTELLISTOR_KEY: OTHER_KEY, INTELLISTOR_OLD_KEYS: FIXTURE_KEY },
    good_passphrase: {
      INTELLISTOR_PASSPHRASE: OTHER_PASSPHRASE,
      INTELLISTOR_OLD_PASSPHRASE_1: FIXTURE_PASSPHRASE.normalize("NFD"),
    },
  };
  assert.notEqual(FIXTURE_PASSPHRASE.normalize("NFD"), FIXTURE_PASSPHRASE);
  for (const name of GOOD_FIXTURES) {
    const fixture = await readFixture<GoodExpected>(name);
    const keyring = keyringFromEnv(rotated[name]);
    const { content } = await openFixtureManifest(fixture.object, fixture.manifestText, keyring);
    assert.equal(content.entries.length, fixture.expected.entries.length);
    const payload = await decryptAll(fixture.object, keyring);
    assert.equal(payload.length, JSON.parse(fixture.manifestText).object.plaintext_size);
  }
});

/** Fixtures damaged in the object's chunks only: a restore keeps what it can verify. */
const DAMAGED_CHUNKS = ["fail_truncated", "fail_chunk_flip", "fail_appended"];

Deno.test("format §5.12: fail_* fixtures are rejected with their expected error", async () => {
  assert.deepEqual(await fixtureNames("fail_"), FAIL_FIXTURES);
  for (const name of FAIL_FIXTURES) {
    const fixture = await readFixture<FailExpected>(name);
    const { expected } = fixture;
    assert.equal(JSON.parse(fixture.manifestText).object.key, expected.object_key);
    await withTempDir("format", async (work) => {
      const storeRoot = path.join(work, "store");
      await stage(storeRoot, expected.object_key, fixture.object, fixture.manifestText);
      const storage = new LocalStorage(storeRoot);
      const outDir = path.join(work, "out");
      let error: unknown;
      let result: RestoreResult | undefined;
      try {
        result = await runRestore({
          storage,
          keyring: keyringFromEnv(expected.env),
          key: expected.object_key,
          outDir,
        });
      } catch (caught) {
        error = caught;
      }
      if (result === undefined) {
        assertCode(error, [expected.error], name);
        await assertNothingWritten(outDir, name);
      } else {
        // Damage to the object's chunks: the restore goes on past it, keeps the
        // entries it could verify, and reports the rest (docs/FORMAT.md §8).
        assert.ok(DAMAGED_CHUNKS.includes(name), `${name}: restored ${JSON.stringify(result)}`);
        assert.equal(result.integrity, "failed", name);
        assert.ok(result.failures.length > 0, name);
        for (const failure of result.failures) {
          assert.match(failure.message, /damaged part of the backup object|undamaged parts/, name);
        }
        const lost = new Set(result.failures.map((f) => f.path));
        const source = await readFixture<GoodExpected>(expected.derived_from!);
        const kept = source.expected.entries.filter((e) => !lost.has(e.relative_path));
        assert.equal(result.restored, kept.length, name);
        await assertRestored(outDir, kept, name);
      }
      await storage.close();
    });
  }
});

// ---------- §5.13 manifest binding ----------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Paths of every value in the public part (objects and leaves), e.g. ["object", "size"]. */
function publicPaths(value: Json, prefix: string[] = []): string[][] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [prefix];
  const out: string[][] = prefix.length > 0 ? [prefix] : [];
  for (const [key, child] of Object.entries(value)) {
    if (prefix.length === 0 && key === "sealed") continue;
    out.push(...publicPaths(child, [...prefix, key]));
  }
  return out;
}

function parentOf(root: Json, at: string[]): Record<string, Json> {
  let node = root as Record<string, Json>;
  for (const key of at.slice(0, -1)) node = node[key] as Record<string, Json>;
  return node;
}

/** Every single-field change of the public part: changed value, changed type, deleted, added. */
function publicMutations(manifestText: string): { label: string; text: string }[] {
  const original = JSON.parse(manifestText) as Json;
  const out: { label: string; text: string }[] = [];
  const mutate = (label: string, edit: (copy: Json) => void) => {
    const copy = structuredClone(original);
    edit(copy);
    out.push({ label, text: JSON.stringify(copy, null, 2) });
  };
  for (const at of publicPaths(original)) {
    const name = at.join(".");
    const key = at[at.length - 1];
    const value = parentOf(original, at)[key];
    if (typeof value === "number") {
      mutate(`${name} + 1`, (c) => void (parentOf(c, at)[key] = value + 1));
      mutate(`${name} as a string`, (c) => void (parentOf(c, at)[key] = String(value)));
    } else if (typeof value === "string") {
      const last = value.slice(-1);
      const changed = value.slice(0, -1) + (last === "0" ? "1" : "0");
      mutate(`${name} last character changed`, (c) => void (parentOf(c, at)[key] = changed));
      mutate(`${name} with a trailing space`, (c) => void (parentOf(c, at)[key] = `${value} `));
    } else if (value !== null && typeof value === "object") {
      mutate(`${name} with an extra field`, (c) => {
        (parentOf(c, at)[key] as Record<string, Json>).extra = 1;
      });
    }
    mutate(`${name} deleted`, (c) => void delete parentOf(c, at)[key]);
  }
  mutate("extra top-level field", (c) => void ((c as Record<string, Json>).extra = "x"));
  mutate("extra top-level null field", (c) => void ((c as Record<string, Json>).extra = null));
  return out;
}

async function assertManifestRejected(
  text: string,
  keys: StreamKeys,
  codes: string[],
  label: string,
): Promise<void> {
  let error: unknown;
  try {
    await openManifest(parseManifest(text, label), keys);
  } catch (caught) {
    error = caught;
  }
  assert.ok(error !== undefined, `${label}: the manifest was accepted`);
  assertCode(error, codes, label);
}

Deno.test("format §5.13: a manifest with a changed public field, a changed sealed blob or from another backup is rejected", async () => {
  await withTempDir("format", async (work) => {
    const source = path.join(work, "source");
    await Deno.mkdir(path.join(source, "dir"), { recursive: true });
    await Deno.writeTextFile(path.join(source, "a.txt"), "alpha\n");
    await Deno.writeTextFile(path.join(source, "dir", "b.txt"), "beta\n");
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: OTHER_KEY });
    const a = await backupTree(source, path.join(work, "store"), keyring);
    await Deno.writeTextFile(path.join(source, "a.txt"), "alpha, later\n");
    const b = await backupTree(source, path.join(work, "store"), keyring);
    const keysA = await openHeader(a.object.subarray(0, HEADER_SIZE), keyring);

    // Positive controls: the manifest opens, whatever its key order and whitespace.
    const original = await openManifest(parseManifest(a.manifestText, "a"), keysA);
    const reordered = Object.fromEntries(Object.entries(JSON.parse(a.manifestText)).reverse());
    const compact = await openManifest(parseManifest(JSON.stringify(reordered), "a2"), keysA);
    assert.deepEqual(compact, original);

    // Every public field, one at a time, including nested ones.
    const mutations = publicMutations(a.manifestText);
    const labels = mutations.map((m) => m.label);
    for (
      const wanted of [
        "object.size + 1",
        "key.key_id last character changed",
        "summary.files + 1",
        "key.kdf.id last character changed",
        "host deleted",
        "object.stream_id last character changed",
      ]
    ) {
      assert.ok(labels.includes(wanted), `mutation ${wanted} was not tried`);
    }
    assert.ok(mutations.length > 60, `only ${mutations.length} mutations`);
    for (const mutation of mutations) {
      const codes = mutation.label.startsWith("format ")
        ? ["FORMAT_UNSUPPORTED", "INTEGRITY"]
        : ["INTEGRITY"];
      await assertManifestRejected(mutation.text, keysA, codes, mutation.label);
    }

    // The sealed blob: nonce, ciphertext and tag bytes flipped, truncated, replaced.
    const manifestA = JSON.parse(a.manifestText);
    const blob = Uint8Array.fromBase64(manifestA.sealed);
    const sealedVariants: Record<string, string> = {
      "empty": "",
      "truncated to 27 bytes": blob.subarray(0, 27).toBase64(),
      "last byte dropped": blob.subarray(0, blob.length - 1).toBase64(),
      "byte appended": new Uint8Array([...blob, 0]).toBase64(),
      "sealed blob of backup B": JSON.parse(b.manifestText).sealed,
    };
    for (const at of [0, 11, 12, Math.floor(blob.length / 2), blob.length - 17, blob.length - 1]) {
      const flipped = blob.slice();
      flipped[at] ^= 0x01;
      sealedVariants[`byte ${at} flipped`] = flipped.toBase64();
    }
    for (const [label, sealed] of Object.entries(sealedVariants)) {
      const text = JSON.stringify({ ...manifestA, sealed });
      await assertManifestRejected(text, keysA, ["INTEGRITY"], `sealed: ${label}`);
    }

    // Another backup's manifest (same key) paired with this object: rollback / substitution.
    await assertManifestRejected(b.manifestText, keysA, ["INTEGRITY"], "manifest of B");
    const disguised = JSON.parse(b.manifestText);
    disguised.object.stream_id = manifestA.object.stream_id;
    await assertManifestRejected(
      JSON.stringify(disguised),
      keysA,
      ["INTEGRITY"],
      "manifest of B claiming A's stream id",
    );

    // End to end: restore refuses and writes nothing.
    const e2e: Record<string, string> = {
      "public field changed": JSON.stringify({
        ...manifestA,
        summary: { ...manifestA.summary, files: manifestA.summary.files + 1 },
      }),
      "manifest of another backup": b.manifestText,
    };
    for (const [label, text] of Object.entries(e2e)) {
      const manifestPath = path.join(work, "store", ...a.result.key_manifest.split("/"));
      await Deno.writeTextFile(manifestPath, text);
      const outDir = path.join(work, `out-${label.replaceAll(" ", "-")}`);
      await assert.rejects(
        () => runRestore({ storage: a.storage, keyring, key: a.result.key_backup, outDir }),
        (error) => {
          assertCode(error, ["INTEGRITY"], label);
          return true;
        },
      );
      await assertNothingWritten(outDir, label);
    }

    // The frozen manifest fixtures: the good one opens, the edited ones do not.
    const good = await readFixture<GoodExpected>("good_rawkey");
    const fixtureKeyring = keyringFromEnv(good.expected.env);
    const fixtureKeys = await openHeader(good.object.subarray(0, HEADER_SIZE), fixtureKeyring);
    await openManifest(parseManifest(good.manifestText, "good_rawkey"), fixtureKeys);
    for (
      const name of [
        "fail_manifest_public_changed",
        "fail_manifest_sealed_changed",
        "fail_manifest_swapped",
      ]
    ) {
      const fixture = await readFixture<FailExpected>(name);
      assert.deepEqual(fixture.object, good.object);
      await assertManifestRejected(fixture.manifestText, fixtureKeys, ["INTEGRITY"], name);
    }
    await a.storage.close();
    await b.storage.close();
  });
});

// ---------- §5.14 GNU tar ----------

const GNU_TAR = "/usr/bin/tar";

async function runTar(
  args: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = new Deno.Command(GNU_TAR, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { LC_ALL: "C.UTF-8", TZ: "UTC" },
  });
  const child = command.spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function modeString(type: string, mode: number): string {
  const kind = type === "dir" ? "d" : type === "symlink" ? "l" : "-";
  let bits = "";
  for (let shift = 6; shift >= 0; shift -= 3) {
    const triple = (mode >> shift) & 7;
    bits += (triple & 4 ? "r" : "-") + (triple & 2 ? "w" : "-") + (triple & 1 ? "x" : "-");
  }
  return kind + bits;
}

Deno.test("format §5.14: GNU tar lists exactly the manifest's entries after decryption", async () => {
  const version = await runTar(["--version"]);
  assert.match(version.stdout, /GNU tar/, "these checks need GNU tar at /usr/bin/tar");
  await withTempDir("format", async (work) => {
    const source = path.join(work, "source");
    await makeSampleTree(source, { largeFileSize: 150_000 });
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: FIXTURE_KEY });
    const { object, manifestText, storage } = await backupTree(
      source,
      path.join(work, "store"),
      keyring,
    );
    await storage.close();
    const { content } = await openFixtureManifest(object, manifestText, keyring);
    const entries = content.entries;
    // The tree holds what §5.14 asks for.
    assert.ok(entries.some((e) => e.relative_path.length > 100 && e.type === "file"));
    assert.ok(entries.some((e) => [...e.relative_path].some((c) => c.codePointAt(0)! > 0x7f)));
    assert.ok(entries.some((e) => e.type === "symlink"));
    assert.ok(entries.some((e) => e.type === "file" && e.size === 0));
    assert.ok(entries.some((e) => e.type === "dir" && e.relative_path === "pasta vazia"));

    const payload = await decryptAll(object, keyring);
    const archive = path.join(work, "payload.tar.gz");
    await Deno.writeFile(archive, payload);

    const listing = await runTar(["--quoting-style=literal", "-tzvf", "-"], payload);
    assert.equal(listing.code, 0, listing.stderr);
    assert.equal(listing.stderr, "");
    const lines = listing.stdout.split("\n").filter((line) => line !== "");
    const parsed = lines.map((line) => {
      const match = /^(\S{10}) (\S+)\s+(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*)$/.exec(line);
      assert.ok(match, `unexpected tar -tv line: ${line}`);
      const [, mode, , size, , rest] = match;
      const [name, link] = mode.startsWith("l") ? rest.split(" -> ") : [rest, undefined];
      return { mode, size: Number(size), name, link };
    });
    const expectedNames = entries.map((e) =>
      e.type === "dir" ? `${e.relative_path}/` : e.relative_path
    );
    // Same names, same order: nothing missing, nothing extra (no PaxHeader entries).
    assert.deepEqual(parsed.map((p) => p.name), expectedNames);
    parsed.forEach((listed, i) => {
      const entry = entries[i];
      assert.equal(listed.mode, modeString(entry.type, entry.mode), entry.relative_path);
      assert.equal(listed.size, entry.size, entry.relative_path);
      assert.equal(listed.link, entry.link, entry.relative_path);
    });
    // The plain listing (tar -tzf) gives the same names.
    const plain = await runTar(["--quoting-style=literal", "-tzf", archive]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(plain.stdout.split("\n").filter((l) => l !== ""), expectedNames);

    // Extraction gives files with the manifest's SHA-256s.
    const extracted = path.join(work, "extracted");
    await Deno.mkdir(extracted);
    const extract = await runTar(["-xzf", archive, "-C", extracted]);
    assert.equal(extract.code, 0, extract.stderr);
    assert.equal(extract.stderr, "");
    const found = await listTree(extracted);
    assert.deepEqual([...found.keys()].sort(), entries.map((e) => e.relative_path).sort());
    for (const entry of entries) {
      const got = found.get(entry.relative_path)!;
      assert.equal(got.type, entry.type, entry.relative_path);
      if (entry.type === "file") {
        assert.equal(sha256Hex(await Deno.readFile(got.path)), entry.sha256, entry.relative_path);
      } else if (entry.type === "symlink") {
        assert.equal(await Deno.readLink(got.path), entry.link);
      }
    }
  });
});

// ---------- §1 gzip segments ----------

Deno.test("format §1: one gzip member per segment at the recorded offsets, cut at entry boundaries", async () => {
  const SEGMENT_TARGET = 64 * 1024;
  await withTempDir("format", async (work) => {
    const source = path.join(work, "source");
    await Deno.mkdir(path.join(source, "sub"), { recursive: true });
    for (let i = 0; i < 14; i++) {
      const size = 7_000 + i * 2_500;
      const data = i % 2 === 0
        ? pseudoRandomBytes(size, i + 1)
        : new TextEncoder().encode(`line ${i}\n`.repeat(size / 7));
      await Deno.writeFile(path.join(source, i < 7 ? "" : "sub", `f${i}.bin`), data);
    }
    await Deno.writeFile(path.join(source, "large.bin"), pseudoRandomBytes(200_000, 99));
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: OTHER_KEY });
    const { object, manifestText, storage } = await backupTree(
      source,
      path.join(work, "store"),
      keyring,
      { segmentTarget: SEGMENT_TARGET },
    );
    await storage.close();
    const { manifest, content } = await openFixtureManifest(object, manifestText, keyring);
    const payload = await decryptAll(object, keyring);
    const segments = content.segments;
    assert.equal(payload.length, manifest.object.plaintext_size);
    assert.ok(segments.length >= 4, `only ${segments.length} segments`);

    // Members tile the payload and the tar stream, in order, with no gaps.
    const wholeTar = new Uint8Array(zlib.gunzipSync(payload));
    let gzAt = 0;
    let tarAt = 0;
    for (const [index, segment] of segments.entries()) {
      assert.equal(segment.gz_offset, gzAt, `segment ${index} gz_offset`);
      assert.equal(segment.tar_offset, tarAt, `segment ${index} tar_offset`);
      const member = payload.subarray(segment.gz_offset, segment.gz_offset + segment.gz_length);
      // The reproducible member header: 1f 8b, deflate, no flags, MTIME 0, XFL 0, OS 255.
      assert.deepEqual([...member.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
      const tar = new Uint8Array(zlib.gunzipSync(member)); // one member, decoded on its own
      assert.equal(tar.length, segment.tar_length, `segment ${index} tar_length`);
      assert.deepEqual(tar, wholeTar.subarray(segment.tar_offset, segment.tar_offset + tar.length));
      const trailer = new DataView(member.buffer, member.byteOffset + member.length - 8, 8);
      assert.equal(trailer.getUint32(0, true), zlib.crc32(tar), `segment ${index} CRC-32`);
      assert.equal(trailer.getUint32(4, true), tar.length, `segment ${index} ISIZE`);

      // Each member is a self-contained run of whole tar entries.
      const inSegment = content.entries.filter((e) => e.segment === index);
      const parsed: { path: string; offset: number }[] = [];
      for await (
        const entry of parseTar(ReadableStream.from([tar]), {
          allowMissingEnd: true,
          startOffset: segment.tar_offset,
        })
      ) {
        parsed.push({ path: entry.path, offset: entry.offset });
      }
      assert.deepEqual(
        parsed,
        inSegment.map((e) => ({ path: e.relative_path, offset: e.tar_offset })),
        `segment ${index} entries`,
      );
      if (index > 0) assert.equal(inSegment[0]?.tar_offset, segment.tar_offset);
      const last = index === segments.length - 1;
      // Several entries only while under the target (the last one also holds the end blocks).
      if (inSegment.length > 1) {
        assert.ok(segment.tar_length - (last ? 1024 : 0) <= SEGMENT_TARGET, `segment ${index}`);
      }
      gzAt += segment.gz_length;
      tarAt += segment.tar_length;
    }
    assert.equal(gzAt, payload.length);
    assert.equal(tarAt, wholeTar.length);
    assert.deepEqual(wholeTar.subarray(wholeTar.length - 1024), new Uint8Array(1024));
    // The file larger than the target is a segment by itself.
    const large = content.entries.find((e) => e.relative_path === "large.bin")!;
    assert.equal(content.entries.filter((e) => e.segment === large.segment).length, 1);
  });
});

// ---------- reading without this tool ----------

/** Canonical JSON as docs/FORMAT.md defines it, written independently of lib/manifest.ts. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(record[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

function hkdf(key: Uint8Array, salt: Uint8Array, info: Uint8Array | string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", key, salt, info, 32));
}

function gcmOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  const decipher = createDecipheriv("aes-256-gcm", key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const head = decipher.update(sealed.subarray(0, sealed.length - 16));
  return new Uint8Array([...head, ...decipher.final()]);
}

function be(value: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = bytes - 1, v = BigInt(value); i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function cat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(parts.flatMap((p) => [...p]));
}

Deno.test("format: good_* fixtures decrypt with node:crypto alone, following docs/FORMAT.md", async () => {
  const text = (s: string) => new TextEncoder().encode(s);
  for (const name of GOOD_FIXTURES) {
    const { object, manifestText, expected } = await readFixture<GoodExpected>(name);
    const F = object.subarray(0, 44);
    const E = object.subarray(44, 140);
    const mac = object.subarray(140, 172);
    // F: magic, version 1, suite 1, chunk_log2 16, reserved 0, stream_id.
    assert.deepEqual([...F.subarray(0, 12)], [
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
    const streamId = F.subarray(12, 44);
    const keyId = E.subarray(0, 16);
    const [kdfId, log2N, r, p] = E.subarray(16, 20);
    const kdfSalt = E.subarray(20, 36);

    // 1. The root secret.
    let root: Uint8Array;
    if (kdfId === 0) {
      assert.deepEqual([log2N, r, p, ...kdfSalt], new Array(19).fill(0));
      root = Uint8Array.fromBase64(expected.env.INTELLISTOR_KEY);
    } else {
      assert.deepEqual([kdfId, log2N, r, p], [1, 17, 8, 1]);
      root = new Uint8Array(
        scryptSync(
          text(expected.env.INTELLISTOR_PASSPHRASE.normalize("NFC")),
          cat(text("bkp1/scrypt"), kdfSalt),
          32,
          { N: 2 ** log2N, r, p, maxmem: 512 * 1024 * 1024 },
        ),
      );
    }
    // 2. KEK and key_id: HKDF-SHA-256 with an empty salt.
    const kek = hkdf(root, new Uint8Array(0), "bkp1 kek");
    assert.deepEqual(hkdf(root, new Uint8Array(0), "bkp1 key-id").subarray(0, 16), keyId);
    assert.equal(keyId.toHex(), expected.key_id);
    // 3. Unwrap the DEK: AAD = F ‖ E[0..36) (header bytes 0..80).
    const dek = gcmOpen(kek, E.subarray(36, 48), E.subarray(48, 96), object.subarray(0, 80));
    assert.equal(dek.length, 32);
    // 4. Verify the header MAC before using anything else.
    const macKey = hkdf(dek, streamId, "bkp1 header-mac");
    const computed = createHmac("sha256", macKey).update(object.subarray(0, 140)).digest();
    assert.ok(timingSafeEqual(computed, mac), `${name}: header MAC`);
    // 5. Decrypt the chunks: K_g, nonce BE88(i) ‖ f, AAD F ‖ BE64(i) ‖ f.
    const chunks = Math.max(1, Math.ceil((object.length - 172) / (65536 + 16)));
    assert.equal(chunks, expected.chunk_count);
    const plain: Uint8Array[] = [];
    for (let i = 0; i < chunks; i++) {
      const f = new Uint8Array([i === chunks - 1 ? 1 : 0]);
      const key = hkdf(dek, streamId, cat(text("bkp1 chunk-key"), be(Math.floor(i / 2 ** 20), 4)));
      const sealed = object.subarray(
        172 + i * 65552,
        Math.min(object.length, 172 + (i + 1) * 65552),
      );
      plain.push(gcmOpen(key, cat(be(i, 11), f), sealed, cat(F, be(i, 8), f)));
    }
    const payload = cat(...plain);
    assert.deepEqual(payload, await decryptAll(object, keyringFromEnv(expected.env)));
    assert.equal(object.length, 172 + payload.length + 16 * chunks);

    // 6. The sealed manifest: HKDF(DEK, stream_id, "bkp1 manifest"), AAD = canonical public part.
    const manifest = JSON.parse(manifestText);
    const blob = Uint8Array.fromBase64(manifest.sealed);
    const { sealed: _sealed, ...publicPart } = manifest;
    const inner = gcmOpen(
      hkdf(dek, streamId, "bkp1 manifest"),
      blob.subarray(0, 12),
      blob.subarray(12),
      text(canonical(publicPart)),
    );
    const content = JSON.parse(new TextDecoder().decode(zlib.gunzipSync(inner)));
    assert.equal(content.stream_id, streamId.toHex());
    assert.equal(content.object_key, manifest.object.key);
    assert.deepEqual(content.entries.map(describedEntry), expected.entries);

    // 7. gunzip + tar: GNU tar lists the expected entries.
    const listing = await runTar(["--quoting-style=literal", "-tzf", "-"], payload);
    assert.equal(listing.code, 0, listing.stderr);
    assert.deepEqual(
      listing.stdout.split("\n").filter((l) => l !== ""),
      expected.entries.map((e) => (e.type === "dir" ? `${e.relative_path}/` : e.relative_path)),
    );
  }
});

// ---------- the reference reader printed in docs/FORMAT.md ----------

const DOC = fileURLToPath(new URL("../docs/FORMAT.md", import.meta.url));

function pythonWithCryptography(): boolean {
  try {
    return new Deno.Command("python3", {
      args: ["-c", "import cryptography"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "format: the reference reader in docs/FORMAT.md decrypts the fixtures",
  ignore: !pythonWithCryptography(),
  fn: async () => {
    const doc = await Deno.readTextFile(DOC);
    const section = /<!-- reference-reader:begin -->([\s\S]*?)<!-- reference-reader:end -->/
      .exec(doc);
    assert.ok(section, "docs/FORMAT.md has no reference reader");
    const code = /```python\n([\s\S]*?)```/.exec(section[1]);
    assert.ok(code, "the reference reader is not a python block");
    await withTempDir("format", async (work) => {
      const script = path.join(work, "read_bkpenc_v1.py");
      await Deno.writeTextFile(script, code[1]);
      const read = async (name: string, env: Record<string, string>) => {
        const dir = path.join(FIXTURES, name);
        const output = await new Deno.Command("python3", {
          args: [script, path.join(dir, "backup.tar.gz.enc"), path.join(dir, "manifest.json")],
          env: { ...env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        return { ...output, stderr: new TextDecoder().decode(output.stderr) };
      };
      // Independent processes: run them side by side.
      const goods = GOOD_FIXTURES.map(async (name) => {
        const { object, expected } = await readFixture<GoodExpected>(name);
        const result = await read(name, expected.env);
        assert.equal(result.code, 0, `${name}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`manifest ok: ${expected.entries.length} entries`));
        assert.deepEqual(result.stdout, await decryptAll(object, keyringFromEnv(expected.env)));
      });
      const fails = FAIL_FIXTURES.map(async (name) => {
        const { expected } = await readFixture<FailExpected>(name);
        const result = await read(name, expected.env);
        assert.notEqual(result.code, 0, `${name}: the reference reader accepted it`);
      });
      await Promise.all([...goods, ...fails]);
    });
  },
});
