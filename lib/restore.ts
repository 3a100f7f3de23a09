/**
 * The restore use case: manifest → header → full stream or ranged segments →
 * decrypt → gunzip → tar → verified files under `outDir`.
 *
 * A full restore reads the object as one stream. A selective restore
 * (`only`) fetches just the chunks that hold the selected entries' segments.
 */
import path from "node:path";
import type { CatalogEntry, SegmentRecord } from "./archive/catalog.ts";
import { EntryTable } from "./archive/entry_table.ts";
import { gunzip } from "./archive/gunzip.ts";
import { Extractor, type RestoreFailure } from "./archive/extractor.ts";
import { parseTar } from "./archive/tar.ts";
import { decryptChunkRun } from "./crypto/chunk_range.ts";
import type { Keyring } from "./crypto/keys.ts";
import {
  CHUNK_SIZE,
  chunkByteRange,
  decryptStream,
  HEADER_SIZE,
  openHeader,
  type StreamKeys,
} from "./crypto/stream.ts";
import { integrityError, IntellistorError } from "./errors.ts";
import { compilePatterns } from "./glob.ts";
import {
  assertManifestFor,
  type Manifest,
  openManifest,
  parseBackupKey,
  parseManifest,
} from "./manifest.ts";
import { currentPlatform, ensureDirectory, type Platform } from "./safe_path.ts";
import type { Storage } from "./storage/storage.ts";
import { MeterStream, readAll } from "./streams.ts";

export interface RestoreOptions {
  storage: Storage;
  keyring: Keyring;
  /** The object key, `backups/…/backup.tar.gz.enc`. */
  key: string;
  outDir: string;
  /** Glob patterns on relative_path (lib/glob.ts); none = everything. */
  only?: string[];
  overwrite?: boolean;
  platform?: Platform;
  /** Aborting it stops the restore; no unverified file keeps its name. */
  signal?: AbortSignal;
}

export interface RestoreWarning {
  path: string;
  message: string;
}

export interface RestoreResult {
  backup_id: string;
  policy: string;
  timestamp: string;
  key_backup: string;
  out: string;
  /** Entries of the manifest selected by --only (all entries without it). */
  found: number;
  restored: number;
  bytes: number;
  /** "failed" when an entry is not intact in the backup (a failure of kind "integrity"). */
  integrity: "ok" | "failed";
  /** Entries not restored, and why; any makes the restore fail (exit 13 or 1). */
  failures: RestoreFailure[];
  /** Restored entries the backup itself could not read completely (zero-filled). */
  warnings: RestoreWarning[];
  downloaded_bytes: number;
  selective: boolean;
  duration_ms: number;
}

/** Largest manifest accepted (a manifest is read into memory). */
const MANIFEST_LIMIT = 1 << 30;

/**
 * Reads the backup object's header (its first HEADER_SIZE bytes, one ranged
 * read) and opens it with the keyring: the backup's keys.
 */
export async function openObjectHeader(
  storage: Storage,
  key: string,
  keyring: Keyring,
): Promise<StreamKeys> {
  const header = await readAll(await storage.get(key, { start: 0, end: HEADER_SIZE }), HEADER_SIZE);
  if (header.length !== HEADER_SIZE) throw integrityError(`Backup object "${key}" is truncated`);
  return await openHeader(header, keyring);
}

/**
 * A backup's manifest, checked to be the given object's, and the object's
 * keys from its header: what a restore reads before anything else.
 */
async function openBackup(storage: Storage, givenKey: string, keyring: Keyring) {
  const { objectKey: key, manifestKey } = parseBackupKey(givenKey);
  const manifest = await fetchManifest(storage, key, manifestKey);
  assertManifestFor(manifest.value, key);
  const keys = await openObjectHeader(storage, key, keyring);
  return { key, manifest, keys };
}

/** One entry of a backup, as `list --key` shows it. */
export interface BackupEntry {
  relative_path: string;
  type: CatalogEntry["type"];
  /** Bytes (0 for directories and links). */
  size: number;
  /** Modification time, ISO 8601 to the millisecond. */
  mtime: string;
  /** A link's target. */
  link?: string;
}

export interface ListEntriesOptions {
  storage: Storage;
  keyring: Keyring;
  /** The object key, `backups/…/backup.tar.gz.enc`. */
  key: string;
  /** Glob patterns on relative_path, as restore's --only; none = every entry. */
  only?: string[];
  platform?: Platform;
  /**
   * Called for each matching entry, in archive order, as the manifest is read.
   * Synchronous: what it throws ends the listing with that error; a promise
   * returned (an async function) is refused, as it could not be awaited.
   */
  onEntry: (entry: BackupEntry) => void;
}

export interface ListEntriesResult {
  backup_id: string;
  policy: string;
  timestamp: string;
  key_backup: string;
  /** Entries handed to onEntry. */
  count: number;
}

/**
 * The entries of one backup (those `only` selects), from its sealed manifest:
 * what a restore would write, without downloading the backup itself (only
 * its manifest and header are read). Needs the key, as the names are sealed.
 */
export async function listEntries(options: ListEntriesOptions): Promise<ListEntriesResult> {
  const platform = options.platform ?? currentPlatform;
  const matcher = options.only?.length
    ? compilePatterns(options.only, { caseInsensitive: platform === "windows" })
    : undefined;
  const { key, manifest, keys } = await openBackup(options.storage, options.key, options.keyring);
  let count = 0;
  await openManifest(manifest.value, keys, (entry) => {
    if (matcher !== undefined && !matcher(entry.relative_path)) return;
    count++;
    const listed: BackupEntry = {
      relative_path: entry.relative_path,
      type: entry.type,
      size: entry.size,
      // A time no Date can hold (a manifest written by hand) is shown as its number.
      mtime: Math.abs(entry.mtime) <= 8.64e15
        ? new Date(entry.mtime).toISOString()
        : String(entry.mtime),
    };
    if (entry.link !== undefined) listed.link = entry.link;
    const returned: unknown = options.onEntry(listed);
    if (returned instanceof Promise) {
      returned.catch(() => {}); // refused below: its failure is not left unhandled
      throw new TypeError("listEntries: onEntry must be synchronous (it returned a promise)");
    }
  });
  const { backup_id, policy_id, timestamp } = manifest.value;
  return { backup_id, policy: policy_id, timestamp, key_backup: key, count };
}

/**
 * Restores a backup, or the entries `only` selects, into `outDir` (what
 * `intellistor restore` does): every file verified against its SHA-256 and
 * given its name only then, nothing written outside `outDir`. Resolves even
 * when some entries failed: check `integrity` and `failures`. Rejects with
 * an IntellistorError (BACKUP_NOT_FOUND, WRONG_KEY, OUTPUT_EXISTS, NO_MATCH,
 * INTEGRITY…) when nothing can be restored, or with the signal's reason.
 */
export async function runRestore(options: RestoreOptions): Promise<RestoreResult> {
  const startedMs = performance.now();
  const platform = options.platform ?? currentPlatform;
  // Patterns are checked before anything is downloaded.
  const matcher = options.only?.length
    ? compilePatterns(options.only, { caseInsensitive: platform === "windows" })
    : undefined;
  const { storage } = options;
  const { key, manifest, keys } = await openBackup(storage, options.key, options.keyring);
  const reads = { downloaded: manifest.bytes + HEADER_SIZE };
  // Every entry is held, compactly, to check the archive's against; each is
  // selected or not as it is read.
  const entries = new EntryTable();
  const content = await openManifest(
    manifest.value,
    keys,
    (entry) => entries.add(entry, matcher?.(entry.relative_path) ?? true),
  );
  // Every pattern must match something, as with GNU tar: a typo among several is not ignored.
  const unmatched = matcher?.unmatched() ?? [];
  if (unmatched.length > 0) {
    throw new IntellistorError(
      "NO_MATCH",
      `No entry of backup ${manifest.value.backup_id} matches --only ${
        unmatched.map((p) => JSON.stringify(p)).join(" ")
      }`,
      noMatchHint(unmatched, entries, content.sources.length > 1, platform === "windows"),
    );
  }

  const extractor = new Extractor({
    // Absolute once: each entry's destination is then joined to it as it is.
    outDir: path.resolve(options.outDir),
    known: entries,
    selected: entries.selectedNames(),
    overwrite: options.overwrite ?? false,
    platform,
    signal: options.signal,
  });
  // Before anything is downloaded.
  if (!options.overwrite) extractor.refuseExistingOutput();
  await ensureDirectory(options.outDir, "", platform);

  const pass: Pass = {
    storage,
    key,
    keys,
    manifest: manifest.value,
    segments: content.segments,
    entries,
    extractor,
    reads,
  };
  try {
    try {
      if (matcher === undefined) await restoreWholeObject(pass, options.keyring);
      else await restoreSegments(pass);
    } catch (error) {
      if (!isDamage(error)) throw error;
      await salvage(pass, error);
    }
  } catch (error) {
    extractor.close();
    // Files already restored were each verified and stay; say so, and how to
    // go on, since a second run into the same --out meets them (OUTPUT_EXISTS).
    // (A system error is passed on as Deno raised it, for SDK callers.)
    const restored = extractor.restored;
    if (restored === 0 || !(error instanceof IntellistorError)) throw error;
    throw new IntellistorError(
      error.code,
      `${error.message} (${restored} ${
        restored === 1 ? "entry had" : "entries had"
      } been restored and verified)`,
      options.overwrite || error.code === "INTERRUPTED"
        ? error.hint
        : `${error.hint} To restore into the same --out again, ` +
          "add --overwrite (it replaces what this run restored).",
      { cause: error },
    );
  }
  await extractor.finish();

  return {
    backup_id: manifest.value.backup_id,
    policy: manifest.value.policy_id,
    timestamp: manifest.value.timestamp,
    key_backup: key,
    out: path.resolve(options.outDir),
    found: entries.selectedCount,
    restored: extractor.restored,
    bytes: extractor.bytes,
    integrity: extractor.failures.some((failure) => failure.kind === "integrity") ? "failed" : "ok",
    failures: extractor.failures,
    warnings: [...entries.selectedIndexes()].filter((i) => entries.isIncomplete(i)).map((i) => ({
      path: entries.path(i),
      message: "the backup could not read this file to its end; the rest is zeros",
    })),
    downloaded_bytes: reads.downloaded,
    selective: matcher !== undefined,
    duration_ms: Math.round(performance.now() - startedMs),
  };
}

/**
 * The pattern rule, and for a backup of several paths, where every name
 * starts with its path's folder, the form of the pattern that would match.
 */
function noMatchHint(
  unmatched: string[],
  entries: EntryTable,
  severalPaths: boolean,
  caseInsensitive: boolean,
): string {
  const rule = 'Patterns apply to relative_path: without "/" they match a file or directory ' +
    'name at any depth ("*.png"), with "/" they match from the start ("docs/*").';
  if (!severalPaths) return rule;
  const folders = new Set<string>();
  for (let i = 0; i < entries.length; i++) folders.add(entries.path(i).split("/")[0]);
  const suggestions: string[] = [];
  for (const pattern of unmatched.filter((p) => p.includes("/"))) {
    for (const folder of folders) {
      const candidate = `${folder}/${pattern}`;
      const matches = compilePatterns([candidate], { caseInsensitive });
      let found = false;
      for (let i = 0; i < entries.length && !found; i++) found = matches(entries.path(i));
      if (found) {
        suggestions.push(JSON.stringify(candidate));
        break;
      }
    }
  }
  const names = [...folders].slice(0, 5).map((name) => JSON.stringify(name)).join(", ");
  return `${rule} This backup holds several paths: each name starts with its path's folder ` +
    `(${names})` + (suggestions.length > 0 ? `; try ${suggestions.join(" ")}.` : ".");
}

/** One restore's reading of its backup object, and where the entries go. */
interface Pass {
  storage: Storage;
  key: string;
  keys: StreamKeys;
  manifest: Manifest;
  segments: SegmentRecord[];
  entries: EntryTable;
  extractor: Extractor;
  /** Bytes read from the store so far. */
  reads: { downloaded: number };
}

/** Full restore: the object as one stream. */
async function restoreWholeObject(pass: Pass, keyring: Keyring): Promise<void> {
  const meter = new MeterStream();
  const tarStream = (await pass.storage.get(pass.key))
    .pipeThrough(meter)
    .pipeThrough(decryptStream(keyring))
    .pipeThrough(readAhead())
    .pipeThrough(gunzip())
    .pipeThrough(readAhead());
  try {
    await extractGzipStream(pass.extractor, tarStream);
  } finally {
    pass.reads.downloaded += meter.bytes;
  }
  const { sha256, size } = pass.manifest.object;
  if (meter.digest() !== sha256 || meter.bytes !== size) {
    throw integrityError("The backup object's SHA-256 differs from the manifest");
  }
}

/**
 * Selective restore: only the chunks holding the selected entries' segments,
 * one ranged read per run of adjacent segments.
 */
async function restoreSegments(pass: Pass): Promise<void> {
  const { entries } = pass;
  const selectedSegments = new Set<number>();
  for (const i of entries.selectedIndexes()) selectedSegments.add(entries.segment(i));
  const indexes = [...selectedSegments].sort((a, b) => a - b);
  for (const run of contiguousRuns(indexes, pass.segments)) {
    await restoreRun(pass, run[0], run[run.length - 1]);
  }
}

/** Restores the selected entries of segments `first` to `last` (adjacent) with one ranged read. */
async function restoreRun(pass: Pass, first: SegmentRecord, last: SegmentRecord): Promise<void> {
  const { firstChunk, range, gzStart, gzEnd } = runRange(pass, first, last);
  const meter = new MeterStream();
  const tarStream = (await pass.storage.get(pass.key, range))
    .pipeThrough(meter)
    .pipeThrough(decryptChunkRun(pass.keys, firstChunk, pass.manifest.object.chunk_count))
    .pipeThrough(slice(gzStart - firstChunk * CHUNK_SIZE, gzEnd - firstChunk * CHUNK_SIZE))
    .pipeThrough(gunzip());
  try {
    await extractGzipStream(pass.extractor, tarStream, first.tar_offset);
  } finally {
    pass.reads.downloaded += meter.bytes;
  }
}

/** The chunks, object bytes and payload bytes that segments `first` to `last` occupy. */
function runRange(pass: Pass, first: SegmentRecord, last: SegmentRecord) {
  const { chunk_count: totalChunks, plaintext_size: plaintextSize } = pass.manifest.object;
  const gzStart = first.gz_offset;
  const gzEnd = last.gz_offset + last.gz_length;
  const firstChunk = Math.floor(gzStart / CHUNK_SIZE);
  const lastChunk = Math.floor((gzEnd - 1) / CHUNK_SIZE);
  const range = chunkByteRange(firstChunk, lastChunk, totalChunks, plaintextSize);
  return { firstChunk, range, gzStart, gzEnd };
}

/** Damage to the backup object (authentication, gzip or tar), as opposed to the store failing. */
function isDamage(error: unknown): error is IntellistorError {
  return error instanceof IntellistorError && error.code === "INTEGRITY";
}

/**
 * After damage to the object ended a pass: every selected entry not yet
 * handled is restored with ranged reads, so that only the entries of
 * damaged segments are lost; those are reported in `failures`, like damage
 * that cost no entry. Segments are independent gzip members and chunks are
 * authenticated one by one, so a read can start at any segment.
 *
 * The first segment still waiting (the damaged one, or one the stages
 * before the parser had read past) is read on its own: restored, or its
 * entries lost. Then everything after it, in as few reads as there are runs
 * of adjacent segments, up to the next damage, which sends the loop round
 * again. Segments past the end of a truncated object are given up unread.
 */
async function salvage(pass: Pass, damage: IntellistorError): Promise<void> {
  const { extractor, entries, segments } = pass;
  extractor.resumeAfterDamage();
  const waiting = new Map<number, number[]>();
  for (const i of entries.selectedIndexes()) {
    if (extractor.handled(entries.path(i))) continue;
    const segment = entries.segment(i);
    const list = waiting.get(segment);
    if (list === undefined) waiting.set(segment, [i]);
    else list.push(i);
  }
  const order = [...waiting.keys()].sort((a, b) => a - b);
  for (const index of order) {
    if (segments[index] === undefined) {
      throw integrityError(`The manifest names a missing segment ${index}`);
    }
  }
  const storedSize = (await pass.storage.head(pass.key))?.size ?? 0;
  let lost = 0;
  const giveUp = (index: number, why: string) => {
    for (const i of waiting.get(index)!) {
      if (extractor.handled(entries.path(i))) continue;
      extractor.giveUp(
        entries.path(i),
        `lies in a damaged part of the backup object (${why}); not restored`,
      );
      lost++;
    }
  };
  const stillWaiting = (index: number) =>
    waiting.get(index)!.some((i) => !extractor.handled(entries.path(i)));
  const endOf = (index: number) => runRange(pass, segments[index], segments[index]).range.end;

  // Segments lie in increasing order in the object: those a truncated object
  // lacks are the last ones, given up without a read.
  let end = order.length;
  while (end > 0 && endOf(order[end - 1]) > storedSize) end--;
  for (const index of order.slice(end)) giveUp(index, "the stored object ends before it");

  let at = 0;
  while (at < end) {
    while (at < end && !stillWaiting(order[at])) at++;
    if (at === end) break;
    const index = order[at++];
    try {
      await restoreRun(pass, segments[index], segments[index]);
    } catch (error) {
      if (!isDamage(error)) throw error;
      giveUp(index, error.message);
    }
    // The rest, run by run, until the next damage sends the loop round again.
    try {
      for (const run of contiguousRuns(order.slice(at, end), segments)) {
        await restoreRun(pass, run[0], run[run.length - 1]);
      }
      break;
    } catch (error) {
      if (!isDamage(error)) throw error;
    }
  }
  if (lost === 0) {
    extractor.reportDamage(
      pass.key,
      `${damage.message}; every selected entry was restored from the undamaged parts`,
    );
  }
}

async function fetchManifest(
  storage: Storage,
  objectKey: string,
  manifestKey: string,
): Promise<{ value: Manifest; bytes: number }> {
  let bytes: Uint8Array;
  try {
    bytes = await readAll(await storage.get(manifestKey), MANIFEST_LIMIT);
  } catch (error) {
    if (!(error instanceof IntellistorError) || error.code !== "BACKUP_NOT_FOUND") throw error;
    const object = await storage.head(objectKey);
    throw new IntellistorError(
      "BACKUP_NOT_FOUND",
      object === undefined
        ? `No backup at "${objectKey}" in ${storage.location}`
        : `Backup "${objectKey}" is incomplete: it has no manifest (the backup did not finish)`,
      object === undefined
        ? notFoundHint(objectKey)
        : "Restore another backup; a backup exists only once its manifest is written.",
    );
  }
  return {
    value: parseManifest(new TextDecoder().decode(bytes), manifestKey),
    bytes: bytes.length,
  };
}

/** What to check when no backup is at a key; a key pasted with the prefix in front is named. */
function notFoundHint(objectKey: string): string {
  const inner = objectKey.indexOf("/backups/");
  if (!objectKey.startsWith("backups/") && inner > 0) {
    return `Keys are relative to the destination's prefix, as "s3.key_backup" prints them: try ` +
      `"${objectKey.slice(inner + 1)}".`;
  }
  return 'Check --key (the "s3.key_backup" value a backup printed) and the policy\'s destination.';
}

/** Groups sorted segment indexes into runs whose bytes are adjacent in the object. */
function contiguousRuns(indexes: number[], segments: SegmentRecord[]): SegmentRecord[][] {
  const runs: SegmentRecord[][] = [];
  let previous = -2;
  for (const index of indexes) {
    const segment = segments[index];
    if (segment === undefined) {
      throw integrityError(`The manifest names a missing segment ${index}`);
    }
    if (index === previous + 1) runs[runs.length - 1].push(segment);
    else runs.push([segment]);
    previous = index;
  }
  return runs;
}

/**
 * Bytes a stage may run ahead of the next: decryption and gunzip go on while
 * files are written. Not more: a buffer queued while many small files are
 * restored outlives two scavenges and is promoted, to wait for a full
 * collection (V8 runs one only after ~64 MiB of such garbage). With 8 MiB the
 * 2 GiB restore peaked at 155–171 MiB; with 2 MiB, 132–148, as fast.
 */
const READ_AHEAD = 2 << 20;

/** Lets the stages before it run up to READ_AHEAD bytes ahead of the stage after it. */
function readAhead(): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>(
    {},
    new ByteLengthQueuingStrategy({ highWaterMark: READ_AHEAD / 2 }),
    new ByteLengthQueuingStrategy({ highWaterMark: READ_AHEAD / 2 }),
  );
}

/** Passes bytes [start, end) of the stream through, dropping the rest. */
function slice(start: number, end: number): TransformStream<Uint8Array, Uint8Array> {
  let position = 0;
  return new TransformStream({
    transform(chunk, controller) {
      const from = Math.max(start - position, 0);
      const to = Math.min(end - position, chunk.length);
      if (from < to) controller.enqueue(chunk.subarray(from, to));
      position += chunk.length;
    },
    flush() {
      if (position < end) throw integrityError("A ranged read returned too few bytes");
    },
  });
}

/**
 * Feeds decompressed tar bytes to the extractor. The payload was authenticated
 * chunk by chunk, so a gzip error means the backup was written wrong or by
 * someone else: reported as an integrity failure, like any other corruption.
 */
async function extractGzipStream(
  extractor: Extractor,
  tarStream: ReadableStream<Uint8Array>,
  startOffset?: number,
): Promise<void> {
  const ranged = startOffset !== undefined;
  try {
    await extractor.consume(parseTar(tarStream, { allowMissingEnd: ranged, startOffset }));
  } catch (error) {
    await tarStream.cancel().catch(() => {});
    const zlibCode = (error as { code?: unknown })?.code;
    if (typeof zlibCode === "string" && zlibCode.startsWith("Z_")) {
      throw integrityError(`The backup's gzip data is corrupt (${zlibCode})`, { cause: error });
    }
    throw error;
  }
}
