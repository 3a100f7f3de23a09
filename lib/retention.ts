/**
 * Retention: which of a policy's backups to keep, and deleting the others.
 *
 * The rules are restic's `forget --keep-*`: backups are taken newest first;
 * `keep_last` keeps the newest N; `keep_daily` keeps the newest backup of each
 * of the last N days that have one (likewise weeks, Monday to Sunday, and
 * months), in local time; when there are fewer such days (weeks, months) than
 * asked for, the oldest backup is kept too. A backup any rule keeps is kept.
 * All 0 keeps every backup.
 *
 * Deleting is the one thing a backup tool must never get wrong, so a backup
 * is only counted (and so only ever deleted) when:
 * - its manifest opens with the keyring: a forged or damaged manifest, or a
 *   backup under another key, can take no slot;
 * - it was made by this policy on this host: the same host name and the same
 *   source paths in its sealed manifest (restic groups by host and paths).
 *   Another machine or policy file using the same policy id is left alone;
 * - it is not dated after now (a wrong clock): such a backup is left alone,
 *   so it can never push out the real ones;
 * - it archived at least one file: the empty backups of a share that was not
 *   mounted must not push out the real ones either;
 * - it is where its manifest says it was written: a copy is not a backup.
 * Incomplete objects (a backup still running) are never touched either.
 *
 * A backup is deleted manifest first: from that moment it is no longer a
 * backup, and a prune stopped halfway leaves at most an object without a
 * manifest, which `list` shows as incomplete.
 */
import { hostname } from "node:os";
import type { Keyring } from "./crypto/keys.ts";
import {
  integrityError,
  IntellistorError,
  isStop,
  STORE_FAILURES,
  toIntellistorError,
} from "./errors.ts";
import { assertStoreStillThere, type BackupListing, listBackups } from "./list.ts";
import { type Manifest, manifestKeyFor, openManifestHead } from "./manifest.ts";
import { comparisonKey, type Policy, type Retention, validatePolicy } from "./policy/policy.ts";
import { openObjectHeader } from "./restore.ts";
import type { Storage } from "./storage/storage.ts";

/** "new": the backup an agent run just made, which its own prune never deletes. */
export type KeepReason = "last" | "daily" | "weekly" | "monthly" | "oldest" | "new";

export interface RetainedBackup {
  key_backup: string;
  timestamp: string;
  /** The rules that keep it ("oldest": a time rule had room left). */
  reasons: KeepReason[];
}

export interface RemovedBackup {
  key_backup: string;
  timestamp: string;
}

/** A backup prune left alone without counting it, and why. */
export interface UntouchedBackup {
  key_backup: string;
  reason: string;
}

export interface PruneResult {
  policy: string;
  /** The host whose backups were counted. */
  host: string;
  /** True when nothing was deleted because only a plan was asked for. */
  dry_run: boolean;
  /** Newest first. */
  kept: RetainedBackup[];
  /** Newest first; deleted unless `dry_run`. */
  removed: RemovedBackup[];
  /** Never counted, never deleted: other hosts or paths, unverifiable, dated after now. */
  untouched: UntouchedBackup[];
  /** Listed by `list` as damaged or incomplete: left alone. */
  damaged: number;
  incomplete: number;
}

export interface PruneOptions {
  storage: Storage;
  policy: Policy;
  /** Opens each manifest: only backups that verify are counted. */
  keyring: Keyring;
  /** Whose backups to count; this machine's host name by default. */
  host?: string;
  /** Print the plan, delete nothing. */
  dryRun?: boolean;
  /** The present; backups dated after it are left alone. */
  now?: Date;
  /** Stops the prune between two backups' deletions (never between a manifest and its object). */
  signal?: AbortSignal;
  /**
   * Backups (`key_backup`) kept whatever the rules say, with reason "new": the
   * agent's own new backup. A backup is dated when it starts, so one that ran
   * longer than another started after it counts as the older.
   */
  keep?: readonly string[];
}

/** A backup dated up to this much after now still counts (clocks differ a little). */
const CLOCK_TOLERANCE_MS = 10 * 60_000;

/** True when the policy asks for any backup to be deleted at all. */
export function retentionEnabled(retention: Retention): boolean {
  return retention.keep_last > 0 || retention.keep_daily > 0 || retention.keep_weekly > 0 ||
    retention.keep_monthly > 0;
}

interface Rule {
  reason: KeepReason;
  /** Periods still to keep. */
  left: number;
  period: (date: Date, index: number) => string;
  /** The period of the last backup this rule kept. */
  last?: string;
}

/**
 * Splits `backups` into kept and removed under `retention`. Pure: the local
 * time zone is the process's (TZ), as for the schedule.
 */
export function planRetention(
  backups: readonly Pick<BackupListing, "key_backup" | "timestamp" | "backup_id">[],
  retention: Retention,
): { kept: RetainedBackup[]; removed: RemovedBackup[] } {
  const newestFirst = [...backups].sort((a, b) =>
    b.timestamp.localeCompare(a.timestamp) || b.backup_id.localeCompare(a.backup_id)
  );
  if (!retentionEnabled(retention)) {
    return {
      kept: newestFirst.map((b) => ({
        key_backup: b.key_backup,
        timestamp: b.timestamp,
        reasons: [],
      })),
      removed: [],
    };
  }
  // Each rule keeps the first (newest) backup of each period, for `left` periods.
  // "last" makes every backup a period of its own: two in one second are two.
  const rules: Rule[] = [
    { reason: "last", left: retention.keep_last, period: (_, index) => String(index) },
    { reason: "daily", left: retention.keep_daily, period: localDay },
    { reason: "weekly", left: retention.keep_weekly, period: localWeek },
    { reason: "monthly", left: retention.keep_monthly, period: localMonth },
  ];
  const reasons = newestFirst.map((): KeepReason[] => []);
  for (const [index, backup] of newestFirst.entries()) {
    const date = parseTimestamp(backup.timestamp);
    for (const rule of rules) {
      if (rule.left === 0) continue;
      const period = rule.period(date, index);
      if (period === rule.last) continue;
      rule.last = period;
      rule.left--;
      reasons[index].push(rule.reason);
    }
  }
  // As restic (0.17): a time rule with periods left over also keeps the oldest backup.
  const oldest = reasons.length - 1;
  const room = rules.some((rule) => rule.reason !== "last" && rule.left > 0);
  if (oldest >= 0 && room && reasons[oldest].length === 0) reasons[oldest].push("oldest");
  const kept: RetainedBackup[] = [];
  const removed: RemovedBackup[] = [];
  for (const [index, backup] of newestFirst.entries()) {
    const entry = { key_backup: backup.key_backup, timestamp: backup.timestamp };
    if (reasons[index].length > 0) kept.push({ ...entry, reasons: reasons[index] });
    else removed.push(entry);
  }
  return { kept, removed };
}

/**
 * Applies the policy's retention to its backups in the store: lists them,
 * counts those this policy made on this host (each verified with the key),
 * plans, and (unless `dryRun`) deletes the ones no rule keeps. A failed
 * delete, or a stop, ends the prune with an error that says how many backups
 * had been deleted; running it again goes on.
 */
export async function pruneBackups(options: PruneOptions): Promise<PruneResult> {
  const { storage, keyring } = options;
  const policy = validatePolicy(options.policy, "policy"); // an SDK caller's too
  const host = options.host ?? hostname();
  const latest = (options.now ?? new Date()).getTime() + CLOCK_TOLERANCE_MS;
  const counted: BackupListing[] = [];
  const untouched: UntouchedBackup[] = [];
  // Each manifest is checked as the listing reads it, never fetched twice.
  const listing = await listBackups(storage, policy.id, {
    explainEmpty: false,
    inspect: async (backup, manifest) => {
      const reason = await whyNotCounted(storage, keyring, backup, manifest, policy, host, latest);
      if (reason === undefined) counted.push(backup);
      else if (reason !== GONE) untouched.push({ key_backup: backup.key_backup, reason });
    },
  });
  const plan = keepAnyway(planRetention(counted, policy.retention), options.keep ?? []);
  if (!options.dryRun) {
    let deleted = 0;
    try {
      for (const backup of plan.removed) {
        options.signal?.throwIfAborted();
        await storage.delete(manifestKeyFor(backup.key_backup));
        await storage.delete(backup.key_backup);
        deleted++;
      }
    } catch (error) {
      throw stoppedPruning(error, deleted, plan.removed.length);
    }
  }
  return {
    policy: policy.id,
    host,
    dry_run: options.dryRun ?? false,
    ...plan,
    untouched,
    damaged: listing.damaged.length,
    incomplete: listing.incomplete.length,
  };
}

/** Moves the backups in `keys` from the plan's `removed` to its `kept` (newest first). */
function keepAnyway(plan: ReturnType<typeof planRetention>, keys: readonly string[]) {
  const rescued = plan.removed.filter((backup) => keys.includes(backup.key_backup));
  if (rescued.length === 0) return plan;
  const kept = [...plan.kept, ...rescued.map((b) => ({ ...b, reasons: ["new" as const] }))];
  return {
    kept: kept.sort((a, b) => b.timestamp.localeCompare(a.timestamp)),
    removed: plan.removed.filter((backup) => !rescued.includes(backup)),
  };
}

/**
 * A prune stopped (Ctrl+C, a store failing) while deleting: says how far it
 * got, since the backups already deleted are gone. Anything else (an SDK
 * caller's own abort reason, a system error) is passed on as it was raised.
 */
function stoppedPruning(error: unknown, deleted: number, planned: number): unknown {
  if (!(error instanceof IntellistorError) && !isStop(error)) return error;
  const failure = toIntellistorError(error);
  const progress = `${deleted} of the ${planned} backups to delete had been deleted`;
  return new IntellistorError(
    failure.code,
    `${failure.message} (${progress})`,
    failure.code === "INTERRUPTED"
      ? "The backups the rules keep were not touched; run prune again to delete the rest."
      : failure.hint,
    { cause: error },
  );
}

/** A listed backup deleted since (by a prune running elsewhere): left out altogether. */
const GONE = Symbol("gone");

/** Why a listed backup must not be counted, GONE, or undefined when it may. */
async function whyNotCounted(
  storage: Storage,
  keyring: Keyring,
  backup: BackupListing,
  manifest: Manifest,
  policy: Policy,
  host: string,
  latest: number,
): Promise<string | typeof GONE | undefined> {
  let sources: string[];
  try {
    if (!(parseTimestamp(backup.timestamp).getTime() <= latest)) {
      return "dated after now (is a clock wrong?)";
    }
    const keys = await openObjectHeader(storage, backup.key_backup, keyring);
    const head = await openManifestHead(manifest, keys);
    // Host names are case-insensitive.
    if (manifest.host.toLowerCase() !== host.toLowerCase()) {
      return `made on another host ("${manifest.host}")`;
    }
    // A copy (the two files copied to other folders) is not another backup.
    if (manifest.object.key !== backup.key_backup) {
      return `a copy of ${manifest.object.key}`;
    }
    // An empty backup (a share that was not mounted) must not push real ones out.
    if (manifest.summary.files === 0) return "archived no file";
    sources = head.sources;
  } catch (error) {
    const failure = toIntellistorError(error);
    if (STORE_FAILURES.has(failure.code)) throw failure;
    if (failure.code === "BACKUP_NOT_FOUND") {
      await assertStoreStillThere(storage);
      return GONE;
    }
    return `cannot be verified with this key: ${failure.message}`;
  }
  // Named, so that a rebuilt server's operator can write them back to prune these.
  if (!sameSources(sources, policy.paths)) return `made from other paths: ${sources.join(", ")}`;
  return undefined;
}

/** The same set of source paths, compared as the policy compares paths. */
function sameSources(a: readonly string[], b: readonly string[]): boolean {
  const key = (paths: readonly string[]) => JSON.stringify(paths.map(comparisonKey).sort());
  return key(a) === key(b);
}

/** `20261127T020000Z` (UTC, as keys and manifests hold it) as a Date. */
export function parseTimestamp(timestamp: string): Date {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(timestamp);
  if (!match) throw integrityError(`not a backup timestamp: ${timestamp}`);
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number);
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second));
}

function localDay(date: Date): string {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

function localMonth(date: Date): string {
  return `${date.getFullYear()}-${date.getMonth() + 1}`;
}

/** The local date of the Monday that starts `date`'s week. */
function localWeek(date: Date): string {
  const monday = new Date(date.getFullYear(), date.getMonth(), date.getDate());
  monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
  return localDay(monday);
}
