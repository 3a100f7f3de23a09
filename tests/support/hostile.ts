/**
 * Builds hostile backups: VALID bkpenc v1 objects and sealed manifests (the
 * real createStreamKeys / encryptStream / sealManifest) whose tar content and
 * manifest are written by the attacker. The threat is a compromised writer: it
 * holds the key, so the manifest may list the hostile entries too, or
 * disagree with the tar on purpose.
 *
 * Also: an "arena" (a temporary directory holding --out, an empty sentinel
 * directory and a secret file next to it, and the store) with the checks the
 * hostile and fuzz tests share: nothing written outside --out, no temporary
 * `.intellistor-*.partial` file left behind.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import path from "node:path";
import zlib from "node:zlib";
import type { CatalogEntry, SegmentRecord } from "../../lib/archive/catalog.ts";
import {
  encodePaxRecord,
  encodeTarHeader,
  TAR_BLOCK,
  TAR_END,
  tarEntryType,
  tarPadding,
} from "../../lib/archive/tar.ts";
import { type Keyring, keyringFromEnv } from "../../lib/crypto/keys.ts";
import {
  chunkCount,
  createStreamKeys,
  encryptStream,
  manifestKey,
  type StreamKeys,
} from "../../lib/crypto/stream.ts";
import {
  canonicalJson,
  type Manifest,
  MANIFEST_FORMAT,
  MANIFEST_NAME,
  OBJECT_NAME,
  type PublicManifest,
  type SealedContent,
  sealManifest,
} from "../../lib/manifest.ts";
import { LocalStorage } from "../../lib/storage/local.ts";
import { bytesStream, readAll } from "../../lib/streams.ts";
import { concatBytes } from "../../lib/crypto/bytes.ts";
import { VERSION } from "../../lib/version.ts";

/** A public test secret (bytes 0x40, 0x41, …, 0x5f); never use it for real data. */
export const HOSTILE_KEY = btoa(
  String.fromCharCode(...Array.from({ length: 32 }, (_, i) => 0x40 + i)),
);

export function hostileKeyring(): Keyring {
  return keyringFromEnv({ INTELLISTOR_KEY: HOSTILE_KEY });
}

/** One tar entry, as the attacker writes it. */
export interface HostileEntry {
  /** The name in the tar, as is (a directory gets no "/" added unless written here). */
  name: string;
  /** ustar typeflag: "0" file (default), "5" dir, "2" symlink, "1" hard link, "3"/"4" devices, "6" FIFO… */
  typeflag?: string;
  /** The entry's data (files). */
  data?: Uint8Array | string;
  /** The size the header claims; defaults to the data's length. More than the data = a lying header. */
  claimedSize?: number;
  /** Put the size in a PAX `size` record (for sizes beyond ustar's 8 GiB). */
  paxSize?: boolean;
  linkname?: string;
  mode?: number;
  mtimeMs?: number;
  /**
   * How the sealed manifest lists the entry: the truth by default (what the
   * parser will report: name, type, size, offset, link, SHA-256 of `data`),
   * `"unlisted"`, or fields that override the truth (a manifest that lies).
   */
  manifest?: "unlisted" | (Partial<CatalogEntry> & Record<string, unknown>);
  /** Start a new segment (gzip member) with this entry. */
  newSegment?: boolean;
}

export interface HostileBackupSpec {
  entries: HostileEntry[];
  /** Manifest records with no tar entry behind them (a "missing" entry). */
  extraManifestEntries?: (Partial<CatalogEntry> & { relative_path: string })[];
  /** End the tar right after the last entry, without the two zero blocks. */
  omitEnd?: boolean;
  /** Last chance to rewrite the sealed content before it is sealed. */
  editContent?: (content: SealedContent) => void;
  /**
   * Replaces the whole tar before compression (the manifest keeps describing
   * the original); the result is one segment.
   */
  editTar?: (tar: Uint8Array) => Uint8Array;
  /** Replaces the .tar.gz before it is encrypted (e.g. with bytes that are not gzip). */
  editPayload?: (payload: Uint8Array) => Uint8Array;
  /**
   * Write the object and manifest as plain files in the store's layout instead
   * of through LocalStorage.put (no fsync: fast enough for thousands of cases).
   */
  direct?: boolean;
  policyId?: string;
}

export interface HostileBackup {
  storage: LocalStorage;
  /** The object key (what `--key` names). */
  key: string;
  manifestKey: string;
  keyring: Keyring;
  keys: StreamKeys;
  tar: Uint8Array;
  /** The .tar.gz before encryption. */
  payload: Uint8Array;
  /** The encrypted object as stored. */
  object: Uint8Array;
  manifest: Manifest;
  manifestText: string;
  content: SealedContent;
}

const encoder = new TextEncoder();

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function asBytes(data: Uint8Array | string | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return typeof data === "string" ? encoder.encode(data) : data;
}

/** The name the tar parser reports: trailing "/" removed (but "/" stays "/"). */
export function parsedName(name: string): string {
  return name.length > 1 ? name.replace(/\/+$/, "") || "/" : name;
}

// ---------------------------------------------------------------- tar headers

interface RawHeader {
  name: string;
  typeflag: string;
  size: number;
  linkname: string;
  mode: number;
  mtimeSeconds: number;
}

function writeOctal(block: Uint8Array, at: number, width: number, value: number): void {
  const text = `${value.toString(8).padStart(width - 1, "0")}\0`;
  for (let i = 0; i < text.length; i++) block[at + i] = text.charCodeAt(i);
}

function writeBytes(block: Uint8Array, at: number, width: number, bytes: Uint8Array): void {
  block.set(bytes.subarray(0, width), at);
}

/** A ustar block written by hand: any name, any typeflag (what encodeTarHeader refuses). */
function ustarBlock(fields: RawHeader): Uint8Array {
  const block = new Uint8Array(TAR_BLOCK);
  writeBytes(block, 0, 100, encoder.encode(fields.name));
  writeOctal(block, 100, 8, fields.mode & 0o7777);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtimeSeconds);
  block[156] = fields.typeflag.charCodeAt(0);
  writeBytes(block, 157, 100, encoder.encode(fields.linkname));
  writeBytes(block, 257, 8, encoder.encode("ustar\x0000"));
  writeOctal(block, 329, 8, 0);
  writeOctal(block, 337, 8, 0);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  const checksum = `${sum.toString(8).padStart(6, "0")}\0 `;
  for (let i = 0; i < 8; i++) block[148 + i] = checksum.charCodeAt(i);
  return block;
}

function fitsUstar(value: string): boolean {
  return encoder.encode(value).length <= 100 && /^[\x20-\x7e]*$/.test(value);
}

/** Header blocks (PAX 'x' when needed, then ustar) written by hand. */
function rawHeader(entry: HostileEntry, size: number): Uint8Array {
  const linkname = entry.linkname ?? "";
  const mtimeSeconds = Math.floor((entry.mtimeMs ?? 1_700_000_000_000) / 1000);
  const records: Uint8Array[] = [];
  if (!fitsUstar(entry.name)) records.push(encodePaxRecord("path", entry.name));
  if (!fitsUstar(linkname)) records.push(encodePaxRecord("linkpath", linkname));
  const paxSize = entry.paxSize || size >= 8 ** 11;
  if (paxSize) records.push(encodePaxRecord("size", String(size)));
  const main = ustarBlock({
    name: fitsUstar(entry.name) ? entry.name : "hostile-fallback-name",
    typeflag: entry.typeflag ?? "0",
    size: paxSize ? 0 : size,
    linkname: fitsUstar(linkname) ? linkname : "",
    mode: entry.mode ?? 0o644,
    mtimeSeconds,
  });
  if (records.length === 0) return main;
  const body = concatBytes(...records);
  const pax = ustarBlock({
    name: "PaxHeader/hostile",
    typeflag: "x",
    size: body.length,
    linkname: "",
    mode: 0o644,
    mtimeSeconds,
  });
  return concatBytes(pax, body, new Uint8Array(tarPadding(body.length)), main);
}

/** encodeTarHeader when it accepts the entry (so the bytes are the real writer's), else by hand. */
function headerFor(entry: HostileEntry, size: number): Uint8Array {
  const typeflag = entry.typeflag ?? "0";
  const type = typeflag === "0"
    ? "file"
    : typeflag === "5"
    ? "dir"
    : typeflag === "2"
    ? "symlink"
    : undefined;
  if (type !== undefined && !entry.paxSize) {
    try {
      return encodeTarHeader({
        path: entry.name,
        type,
        size,
        mode: entry.mode ?? 0o644,
        mtimeMs: entry.mtimeMs ?? 1_700_000_000_000,
        linkname: entry.linkname,
      });
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
    }
  }
  return rawHeader(entry, size);
}

// ---------------------------------------------------------------- backups

/** Builds the tar and the truthful catalog (before the attacker's overrides). */
function buildTar(spec: HostileBackupSpec): {
  segmentsTar: Uint8Array[][];
  entries: CatalogEntry[];
} {
  const segmentsTar: Uint8Array[][] = [[]];
  const entries: CatalogEntry[] = [];
  let offset = 0;
  for (const entry of spec.entries) {
    if (entry.newSegment && segmentsTar[segmentsTar.length - 1].length > 0) segmentsTar.push([]);
    const current = segmentsTar[segmentsTar.length - 1];
    const data = asBytes(entry.data);
    const typeflag = entry.typeflag ?? "0";
    const size = entry.claimedSize ?? data.length;
    const header = headerFor(entry, size);
    const type = tarEntryType(typeflag);
    const truth: CatalogEntry = {
      relative_path: parsedName(entry.name),
      type: type as CatalogEntry["type"],
      size,
      mode: entry.mode ?? 0o644,
      mtime: entry.mtimeMs ?? 1_700_000_000_000,
      source: `/hostile-source/${entry.name}`,
      segment: segmentsTar.length - 1,
      tar_offset: offset,
    };
    if (type === "file") truth.sha256 = sha256Hex(data);
    if (entry.linkname !== undefined) truth.link = entry.linkname;
    if (entry.manifest !== "unlisted") entries.push({ ...truth, ...(entry.manifest ?? {}) });
    // Data is written as given: a header may claim more than follows it.
    const padding = data.length === size ? tarPadding(size) : 0;
    current.push(header, data, new Uint8Array(padding));
    offset += header.length + data.length + padding;
  }
  if (!spec.omitEnd) segmentsTar[segmentsTar.length - 1].push(TAR_END);
  return { segmentsTar, entries };
}

/**
 * Writes a hostile backup into `storeDir` (a LocalStorage) and returns where
 * it is and what it holds. The object and manifest are valid: they open with
 * `keyring`, and every attack is in the tar or in what the sealed manifest says.
 */
export async function writeHostileBackup(
  storeDir: string,
  spec: HostileBackupSpec,
  keyring: Keyring = hostileKeyring(),
): Promise<HostileBackup> {
  const built = buildTar(spec);
  const { entries } = built;
  let { segmentsTar } = built;
  if (spec.editTar !== undefined) {
    segmentsTar = [[spec.editTar(concatBytes(...segmentsTar.flat()))]];
    for (const entry of entries) entry.segment = 0;
  }
  const segments: SegmentRecord[] = [];
  const members: Uint8Array[] = [];
  let gzOffset = 0;
  let tarOffset = 0;
  for (const parts of segmentsTar) {
    const tar = concatBytes(...parts);
    const member = new Uint8Array(zlib.gzipSync(tar));
    segments.push({
      gz_offset: gzOffset,
      gz_length: member.length,
      tar_offset: tarOffset,
      tar_length: tar.length,
    });
    members.push(member);
    gzOffset += member.length;
    tarOffset += tar.length;
  }
  const tar = concatBytes(...segmentsTar.flat());
  const payload = spec.editPayload?.(concatBytes(...members)) ?? concatBytes(...members);

  const keys = await createStreamKeys(keyring);
  const object = await readAll(bytesStream(payload).pipeThrough(encryptStream(keys)));
  const policyId = spec.policyId ?? "hostile";
  const backupId = crypto.randomUUID();
  const timestamp = "20260101T000000Z";
  const prefix = `backups/${policyId}/${timestamp}/${backupId}/`;
  const key = prefix + OBJECT_NAME;
  const manifestKey = prefix + MANIFEST_NAME;
  const streamId = Array.from(keys.streamId, (b) => b.toString(16).padStart(2, "0")).join("");

  for (const extra of spec.extraManifestEntries ?? []) {
    entries.push({
      type: "file",
      size: 0,
      mode: 0o644,
      mtime: 1_700_000_000_000,
      sha256: sha256Hex(new Uint8Array(0)),
      source: `/hostile-source/${extra.relative_path}`,
      segment: 0,
      tar_offset: 0,
      ...extra,
    });
  }
  const content: SealedContent = {
    backup_id: backupId,
    policy_id: policyId,
    stream_id: streamId,
    object_key: key,
    sources: ["/hostile-source"],
    entries,
    segments,
    warnings: [],
  };
  spec.editContent?.(content);
  // editContent may leave anything in entries (a hostile manifest): count what is countable.
  const listed: unknown[] = Array.isArray(content.entries) ? content.entries : [];
  const count = (type: string) =>
    listed.filter((e) => (e as CatalogEntry | null)?.type === type).length;
  const publicManifest: PublicManifest = {
    format: MANIFEST_FORMAT,
    backup_id: backupId,
    policy_id: policyId,
    timestamp,
    host: "compromised-writer",
    client_version: VERSION,
    object: {
      key,
      size: object.length,
      sha256: sha256Hex(object),
      stream_id: streamId,
      chunk_count: chunkCount(payload.length),
      plaintext_size: payload.length,
    },
    key: { key_id: keys.keyIdHex, kdf: keys.kdf },
    summary: {
      files: count("file"),
      dirs: count("dir"),
      symlinks: count("symlink"),
      bytes: 0,
      skipped: 0,
    },
  };
  const manifest = await sealManifest(publicManifest, content, keys);
  const manifestText = JSON.stringify(manifest, null, 2) + "\n";
  const storage = new LocalStorage(storeDir);
  if (spec.direct) {
    const directory = path.join(storage.location, ...prefix.split("/").filter(Boolean));
    await Deno.mkdir(directory, { recursive: true });
    await Deno.writeFile(path.join(directory, OBJECT_NAME), object);
    await Deno.writeFile(path.join(directory, MANIFEST_NAME), encoder.encode(manifestText));
  } else {
    await storage.put(key, bytesStream(object));
    await storage.put(manifestKey, bytesStream(encoder.encode(manifestText)));
  }
  return {
    storage,
    key,
    manifestKey,
    keyring,
    keys,
    tar,
    payload,
    object,
    manifest,
    manifestText,
    content,
  };
}

/**
 * Replaces a stored object's bytes in place (a plain write: no fsync, no
 * rename, unlike LocalStorage.put; fast enough for thousands of fuzz cases).
 */
export async function replaceStored(
  backup: HostileBackup,
  key: string,
  bytes: Uint8Array,
): Promise<void> {
  await Deno.writeFile(path.join(backup.storage.location, ...key.split("/")), bytes);
}

/**
 * Seals arbitrary bytes as the manifest's sealed part (as the key holder can:
 * the real manifest key and AAD) and stores that manifest. `sealManifest`
 * always seals gzip of JSON; this can seal anything.
 */
export async function sealRawManifest(
  backup: HostileBackup,
  plaintext: Uint8Array<ArrayBuffer>,
): Promise<void> {
  const { sealed: _sealed, ...publicManifest } = backup.manifest;
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: encoder.encode(canonicalJson(publicManifest)) },
      await manifestKey(backup.keys),
      plaintext,
    ),
  );
  const sealed = btoa(String.fromCharCode(...nonce, ...ciphertext));
  const text = JSON.stringify({ ...publicManifest, sealed }, null, 2) + "\n";
  await replaceStored(backup, backup.manifestKey, encoder.encode(text));
}

/** Seals `content` again (as the key holder can) with the backup's keys and stores that manifest. */
export async function resealManifest(
  backup: HostileBackup,
  content: SealedContent,
): Promise<string> {
  const { sealed: _sealed, ...publicManifest } = backup.manifest;
  const manifest = await sealManifest(publicManifest, content, backup.keys);
  const text = JSON.stringify(manifest, null, 2) + "\n";
  await replaceStored(backup, backup.manifestKey, encoder.encode(text));
  return text;
}

// ---------------------------------------------------------------- the arena

/**
 * A temporary directory laid out as
 * `root/{out, sentinel/, secret.txt, store/}`: the restore writes to `out`,
 * `sentinel` is an empty directory next to it and `secret.txt` a file next to
 * it; both must be untouched after any restore.
 */
export interface Arena {
  root: string;
  out: string;
  sentinel: string;
  secret: string;
  store: string;
  /** Names allowed directly under `root` (the test may add some, e.g. a policy file). */
  allowed: Set<string>;
  cleanup(): Promise<void>;
}

export const SECRET_CONTENT = "the attacker must not read, link or change this file\n";

export async function makeArena(prefix = "intellistor-hostile-"): Promise<Arena> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix }));
  const arena: Arena = {
    root,
    out: path.join(root, "out"),
    sentinel: path.join(root, "sentinel"),
    secret: path.join(root, "secret.txt"),
    store: path.join(root, "store"),
    allowed: new Set(["out", "sentinel", "secret.txt", "store"]),
    cleanup: () => Deno.remove(root, { recursive: true }).catch(() => {}),
  };
  await Deno.mkdir(arena.sentinel);
  await Deno.mkdir(arena.store);
  await Deno.writeTextFile(arena.secret, SECRET_CONTENT, { mode: 0o600 });
  return arena;
}

/** Every path under `dir` (relative, "/"-separated), symlinks not followed, with its kind. */
export async function listTree(dir: string): Promise<Map<string, Deno.FileInfo>> {
  const out = new Map<string, Deno.FileInfo>();
  async function visit(relative: string): Promise<void> {
    const absolute = relative === "" ? dir : path.join(dir, ...relative.split("/"));
    let names: string[];
    try {
      names = [];
      for await (const item of Deno.readDir(absolute)) names.push(item.name);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const name of names.sort()) {
      const child = relative === "" ? name : `${relative}/${name}`;
      const info = await Deno.lstat(path.join(absolute, name));
      out.set(child, info);
      if (info.isDirectory && !info.isSymlink) await visit(child);
    }
  }
  await visit("");
  return out;
}

/** Nothing appeared next to --out, the sentinel is empty, the secret is unchanged and not linked. */
export async function assertNothingOutside(arena: Arena, context: string): Promise<void> {
  const top: string[] = [];
  for await (const item of Deno.readDir(arena.root)) top.push(item.name);
  const unexpected = top.filter((name) => !arena.allowed.has(name));
  assert.deepEqual(unexpected, [], `${context}: written outside --out, in ${arena.root}`);
  const inSentinel = [...(await listTree(arena.sentinel)).keys()];
  assert.deepEqual(inSentinel, [], `${context}: written into the sentinel directory next to --out`);
  const secret = await Deno.lstat(arena.secret);
  assert.ok(secret.isFile, `${context}: secret.txt was replaced`);
  assert.equal(secret.nlink, 1, `${context}: a hard link to the file outside --out was made`);
  assert.equal(await Deno.readTextFile(arena.secret), SECRET_CONTENT, `${context}: secret changed`);
}

/** No temporary file (`.intellistor-*.partial`) is left anywhere under `dir`. */
export async function assertNoPartialFiles(dir: string, context: string): Promise<void> {
  const partial = [...(await listTree(dir)).keys()].filter((name) =>
    /(^|\/)\.intellistor-.*\.partial$/.test(name)
  );
  assert.deepEqual(partial, [], `${context}: temporary files left in --out`);
}

/** Both checks: nothing outside --out, no temporary file inside it. */
export async function assertContained(arena: Arena, context: string): Promise<void> {
  await assertNothingOutside(arena, context);
  await assertNoPartialFiles(arena.out, context);
}
