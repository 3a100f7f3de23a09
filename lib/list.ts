/**
 * Lists the backups of a policy from the store. Only backups with a manifest
 * are complete; an object without one is reported as incomplete (a backup
 * that was interrupted or is still running), and a manifest that cannot be
 * read, belongs to another backup, or whose object is missing or not the size
 * it records, as damaged: one bad backup never hides the others.
 */
import { IntellistorError, isStop, STORE_FAILURES, toIntellistorError } from "./errors.ts";
import {
  assertManifestFor,
  type Manifest,
  MANIFEST_NAME,
  OBJECT_NAME,
  parseManifest,
} from "./manifest.ts";
import { LocalStorage } from "./storage/local.ts";
import type { Storage } from "./storage/storage.ts";
import { readAll } from "./streams.ts";

export interface BackupListing {
  backup_id: string;
  timestamp: string;
  host: string;
  key_backup: string;
  files: number;
  bytes: number;
  /** Size of the encrypted object. */
  size: number;
  skipped: number;
}

export interface ListResult {
  policy: string;
  backups: BackupListing[];
  /**
   * Objects whose manifest is missing, and (a local store) the temporary files
   * of writes a killed backup never finished: not restorable as backups.
   */
  incomplete: string[];
  /** Manifests that cannot be read, belong to another backup, or lack their object's bytes, with why. */
  damaged: DamagedBackup[];
  /**
   * Only when the policy has nothing in the store: which policies' backups it
   * does hold, since a mistyped id or prefix would look like "no backups".
   */
  note?: string;
}

export interface DamagedBackup {
  key_backup: string;
  key_manifest: string;
  message: string;
}

export interface ListOptions {
  /**
   * Called with each listed backup's manifest as it is read, so that a caller
   * (prune) need not fetch it again; its errors end the listing.
   */
  inspect?: (backup: BackupListing, manifest: Manifest) => Promise<void>;
  /** Look for other policies' backups when this one has nothing (`note`); true by default. */
  explainEmpty?: boolean;
}

/**
 * The policy's backups in `storage` (what `intellistor list` prints): complete
 * ones (with a manifest), incomplete objects and damaged manifests. Needs no
 * key. A local store whose directory does not exist is BUCKET_NOT_FOUND.
 */
export async function listBackups(
  storage: Storage,
  policyId: string,
  options: ListOptions = {},
): Promise<ListResult> {
  /** Object key → its stored size. */
  const objects = new Map<string, number>();
  const manifests: string[] = [];
  if (storage instanceof LocalStorage) await storage.assertExists();
  for await (const info of storage.list(`backups/${policyId}/`)) {
    if (info.key.endsWith(`/${OBJECT_NAME}`)) objects.set(info.key, info.size);
    else if (info.key.endsWith(`/${MANIFEST_NAME}`)) manifests.push(info.key);
  }
  const backups: BackupListing[] = [];
  const damaged: DamagedBackup[] = [];
  for (const key of manifests) {
    const objectKey = key.slice(0, -MANIFEST_NAME.length) + OBJECT_NAME;
    const storedSize = objects.get(objectKey);
    objects.delete(objectKey);
    let listed: { backup: BackupListing; manifest: Manifest };
    try {
      const text = new TextDecoder().decode(await readAll(await storage.get(key)));
      const manifest = parseManifest(text, key);
      assertManifestFor(manifest, objectKey);
      // An operator's health check: a manifest whose data is gone (deleted by
      // hand, expired by a lifecycle rule) or cut short is no backup.
      if (storedSize === undefined) {
        throw new IntellistorError(
          "INTEGRITY",
          `The backup object "${objectKey}" is missing; only its manifest is in the store`,
        );
      }
      if (storedSize !== manifest.object.size) {
        throw new IntellistorError(
          "INTEGRITY",
          `The backup object "${objectKey}" is ${storedSize} bytes; its manifest says ` +
            `${manifest.object.size} (truncated or replaced)`,
        );
      }
      const backup: BackupListing = {
        backup_id: manifest.backup_id,
        timestamp: manifest.timestamp,
        host: manifest.host,
        key_backup: objectKey,
        files: manifest.summary.files,
        bytes: manifest.summary.bytes,
        size: manifest.object.size,
        skipped: manifest.summary.skipped,
      };
      listed = { backup, manifest };
    } catch (error) {
      const failure = toIntellistorError(error);
      // The store failing is not damage to one backup: it ends the listing.
      if (STORE_FAILURES.has(failure.code)) throw failure;
      // Listed, then deleted before it was read (a prune running elsewhere): gone, not damaged.
      if (failure.code === "BACKUP_NOT_FOUND") {
        await assertStoreStillThere(storage);
        continue;
      }
      damaged.push({ key_backup: objectKey, key_manifest: key, message: failure.message });
      continue;
    }
    backups.push(listed.backup);
    // Not this backup's damage: whatever the callback throws ends the listing.
    await options.inspect?.(listed.backup, listed.manifest);
  }
  backups.sort((a, b) =>
    a.timestamp.localeCompare(b.timestamp) || a.backup_id.localeCompare(b.backup_id)
  );
  const incomplete = [...objects.keys()];
  if (storage.unfinished) {
    for await (const info of storage.unfinished(`backups/${policyId}/`)) incomplete.push(info.key);
  }
  const result: ListResult = { policy: policyId, backups, incomplete: incomplete.sort(), damaged };
  if (options.explainEmpty !== false && backups.length + incomplete.length + damaged.length === 0) {
    result.note = await whatElseIsStored(storage, policyId);
  }
  return result;
}

/**
 * After an object listed a moment ago was not found: it was deleted meanwhile
 * if the store is still there; a local store whose folder went away (a disk
 * unmounted, a share dropped) is BUCKET_NOT_FOUND instead. A missing S3
 * bucket already answers that way.
 */
export async function assertStoreStillThere(storage: Storage): Promise<void> {
  if (storage instanceof LocalStorage) await storage.assertExists();
}

/** Objects looked at for other policies' ids: enough for a hint, bounded on a large store. */
const OTHER_POLICIES_SCAN = 5_000;

/**
 * Says which policies have backups in the store, for a policy that has none
 * there; nothing when the store does not let us look (a user allowed to
 * list only this policy's folder still gets the empty list).
 */
async function whatElseIsStored(storage: Storage, policyId: string): Promise<string | undefined> {
  const ids = new Set<string>();
  let scanned = 0;
  try {
    for await (const { key } of storage.list("backups/")) {
      // backups/<id>/<timestamp>/<backup_id>/<name>: a stray file is no policy's.
      const parts = key.split("/");
      const backupFile = parts[4] === MANIFEST_NAME || parts[4] === OBJECT_NAME;
      if (parts.length === 5 && backupFile && parts[1] !== policyId) ids.add(parts[1]);
      if (++scanned >= OTHER_POLICIES_SCAN) break;
    }
  } catch (error) {
    if (isStop(error)) throw error;
    return undefined;
  }
  const none = `No backups of policy "${policyId}" in ${storage.location}`;
  if (ids.size === 0) {
    return `${none}, nor of any other policy. If backups were expected here, check the ` +
      "destination (bucket, prefix or path).";
  }
  const names = [...ids].map((id) => `"${id}"`).join(", ");
  const more = scanned >= OTHER_POLICIES_SCAN ? " (among others)" : "";
  return `${none}; it holds backups of policy ${names}${more}. Check the policy's id.`;
}
