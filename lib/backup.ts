/**
 * The backup use case: walk → tar → gzip segments → encrypt → storage, then
 * the sealed manifest, written last: a backup without a manifest does not exist.
 */
import { Buffer } from "node:buffer";
import { hostname } from "node:os";
import { createArchiveStream } from "./archive/archive_writer.ts";
import type { BackupWarning } from "./archive/catalog.ts";
import { walkSources } from "./archive/walk.ts";
import type { Keyring } from "./crypto/keys.ts";
import { chunkCount, createStreamKeys, encryptStream } from "./crypto/stream.ts";
import { IntellistorError } from "./errors.ts";
import { compilePatterns } from "./glob.ts";
import {
  MANIFEST_FORMAT,
  MANIFEST_NAME,
  OBJECT_NAME,
  type PublicManifest,
  SealedContentWriter,
  sealGzippedContent,
} from "./manifest.ts";
import { checkPathsExist, type Policy } from "./policy/policy.ts";
import { LocalStorage } from "./storage/local.ts";
import type { Storage } from "./storage/storage.ts";
import { bytesStream, forkTo, MeterStream } from "./streams.ts";
import { VERSION } from "./version.ts";

export interface BackupOptions {
  policy: Policy;
  storage: Storage;
  keyring: Keyring;
  /** A second store that receives a copy of both files (the CLI's `--out`). */
  localCopy?: Storage;
  /**
   * Other paths never archived even inside a source (the CLI's .env file).
   * A local store and local copy are always left out: each backup would
   * otherwise hold every earlier one, and itself half-written.
   */
  skipPaths?: string[];
  /**
   * Aborting it while the archive is made stops the backup, and nothing is
   * committed (no manifest); once the whole object is stored, the backup is
   * completed instead.
   */
  signal?: AbortSignal;
  /** Injectable clock (tests). */
  now?: () => Date;
  /** The backup's id (a new UUID by default); the agent names its log after it. */
  backupId?: string;
  segmentTarget?: number;
  /** Threads that compress; one per core by default. */
  workers?: number;
  /** See ArchiveOptions.smallFileLimit. */
  smallFileLimit?: number;
}

export interface BackupResult {
  backup_id: string;
  timestamp: string;
  policy: string;
  key_backup: string;
  key_manifest: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  compressed_bytes: number;
  duration_ms: number;
  warnings: BackupWarning[];
  /** True when some source entries could not be read completely (exit code 3). */
  partial: boolean;
}

/** `20260131T174311Z`: sortable, and safe in object keys and file names. */
export function formatTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

/**
 * Backs up the policy's paths into `storage` (what `intellistor backup` does):
 * the encrypted object first, then its sealed manifest, so that a backup
 * exists only once complete. Source files that cannot be read are
 * `warnings` (and `partial`), not errors. Rejects with an IntellistorError
 * (POLICY_INVALID for a missing source, the store's errors…), or with the
 * signal's reason when aborted (an AbortError for `abort()`).
 */
export async function runBackup(options: BackupOptions): Promise<BackupResult> {
  const { policy, storage } = options;
  const now = options.now ?? (() => new Date());
  const started = now();
  const startedMs = performance.now();
  const timestamp = formatTimestamp(started);
  const backupId = options.backupId ?? crypto.randomUUID();
  const prefix = `backups/${policy.id}/${timestamp}/${backupId}/`;
  const objectKey = prefix + OBJECT_NAME;
  const manifestKey = prefix + MANIFEST_NAME;

  // A missing source (an unmounted disk, a share not connected) fails the
  // backup, for the agent and the SDK as for the CLI: archiving nothing and
  // reporting it as a partial success would look healthy night after night.
  await checkPathsExist(policy, policy.id);
  // Read now, not after the upload: without the permission (an SDK caller's
  // --allow-sys=hostname) the backup fails before any work, not after all of it.
  const host = hostname();
  const keys = await createStreamKeys(options.keyring);
  const warnings: BackupWarning[] = [];
  const warn = (warning: BackupWarning) => warnings.push(warning);
  // Windows file names are case-insensitive, so are exclusions there.
  const excluded = policy.exclude.length > 0
    ? compilePatterns(policy.exclude, { caseInsensitive: Deno.build.os === "windows" })
    : undefined;
  const ownDirectories = [storage, options.localCopy]
    .filter((store) => store instanceof LocalStorage)
    .map((store) => store.location);
  const skipPaths = [...ownDirectories, ...(options.skipPaths ?? [])];
  const sources = walkSources(policy.paths, { excluded, skipPaths, warn });
  const streamIdHex = Buffer.from(keys.streamId).toString("hex");
  const sealedContent = new SealedContentWriter({
    backup_id: backupId,
    policy_id: policy.id,
    stream_id: streamIdHex,
    object_key: objectKey,
    sources: policy.paths,
  });
  const { stream: archive, catalog } = createArchiveStream(sources, {
    compressionLevel: policy.compression.level,
    segmentTarget: options.segmentTarget,
    workers: options.workers,
    smallFileLimit: options.smallFileLimit,
    warn,
    onEntry: (entry) => sealedContent.addEntry(entry),
    signal: options.signal,
  });
  const objectMeter = new MeterStream();
  let encrypted = archive.pipeThrough(encryptStream(keys)).pipeThrough(objectMeter);
  let localObject: Promise<unknown> | undefined;
  if (options.localCopy !== undefined) {
    const copy = options.localCopy;
    const fork = forkTo((side) => copy.put(objectKey, side));
    encrypted = encrypted.pipeThrough(fork.stream);
    localObject = fork.done;
  }

  let summary: PublicManifest["summary"];
  let localManifestWritten = false;
  try {
    const remotePut = storage.put(objectKey, encrypted);
    // A store that fails without reading the body (an SDK caller's) would
    // leave the archive, its worker threads and the local copy waiting.
    remotePut.catch((error) => {
      if (!encrypted.locked) encrypted.cancel(error).catch(() => {});
    });
    const [remote, local] = await Promise.allSettled([
      remotePut,
      localObject ?? Promise.resolve(),
    ]);
    // When the local copy's disk fails, its error (not the broken pipe it
    // causes upstream) is the one to report.
    if (local.status === "rejected" && local.reason instanceof IntellistorError) throw local.reason;
    if (remote.status === "rejected") throw remote.reason;
    if (local.status === "rejected") throw local.reason;
    summary = await commitManifest();
  } catch (error) {
    // Nothing may stay half-done: an object without its manifest is removed,
    // unless the manifest did land (a lost reply) — then the backup exists.
    // A store that cannot say (unreachable) keeps the object: `list` shows it
    // as a backup or as incomplete, and a complete one is never broken.
    const manifestState = await storage.head(manifestKey).then(
      (info) => (info === undefined ? "absent" : "present"),
      () => "unknown",
    );
    if (manifestState === "absent") {
      await Promise.allSettled([
        storage.delete(objectKey),
        options.localCopy?.delete(objectKey),
        options.localCopy?.delete(manifestKey),
      ]);
    } else if (manifestState === "unknown" && !localManifestWritten) {
      // The local copy is a backup only with its manifest.
      await options.localCopy?.delete(objectKey).catch(() => {});
    }
    throw error;
  }

  async function commitManifest(): Promise<PublicManifest["summary"]> {
    const publicManifest: PublicManifest = {
      format: MANIFEST_FORMAT,
      backup_id: backupId,
      policy_id: policy.id,
      timestamp,
      host,
      client_version: VERSION,
      object: {
        key: objectKey,
        size: objectMeter.bytes,
        sha256: objectMeter.digest(),
        stream_id: streamIdHex,
        // The payload is the archive's gzip output, counted as it went out.
        chunk_count: chunkCount(catalog.gzBytes),
        plaintext_size: catalog.gzBytes,
      },
      key: { key_id: keys.keyIdHex, kdf: keys.kdf },
      summary: {
        files: sealedContent.counts.file,
        dirs: sealedContent.counts.dir,
        symlinks: sealedContent.counts.symlink,
        bytes: catalog.contentBytes,
        skipped: warnings.filter((w) => w.skipped).length,
      },
    };
    const manifest = await sealGzippedContent(
      publicManifest,
      sealedContent.finish(catalog.segments, warnings),
      keys,
    );
    const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
    // The local copy's manifest first: the remote manifest is the commit point.
    await options.localCopy?.put(manifestKey, bytesStream(manifestBytes));
    localManifestWritten = true;
    await storage.put(manifestKey, bytesStream(manifestBytes));
    return publicManifest.summary;
  }

  return {
    backup_id: backupId,
    timestamp,
    policy: policy.id,
    key_backup: objectKey,
    key_manifest: manifestKey,
    files: summary.files,
    dirs: summary.dirs,
    symlinks: summary.symlinks,
    bytes: catalog.contentBytes,
    compressed_bytes: objectMeter.bytes,
    duration_ms: Math.round(performance.now() - startedMs),
    warnings,
    partial: warnings.some((warning) => !warning.special),
  };
}
