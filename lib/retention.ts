/**
 * Retention: which of a policy's backups to keep, and deleting the others.
 *
 * The rules are restic's `forget --keep-*`: backups are taken newest first;
 * `keep_last` keeps the newest N; `keep_daily` keeps the newest backup of each
 * of the last N days that have one (likewise weeks, Monday to Sunday, and
 * months), in local time. A backup any rule keeps is kept. All 0 keeps every
 * backup. Only complete backups count: incomplete objects (a backup still
 * running) and damaged ones are never counted and never deleted here.
 *
 * A backup is deleted manifest first: from that moment it is no longer a
 * backup, and a prune stopped halfway leaves at most an object without a
 * manifest, which `list` shows as incomplete.
 */
import { type BackupListing, listBackups } from "./list.ts";
import { manifestKeyFor } from "./manifest.ts";
import type { Retention } from "./policy/policy.ts";
import type { Storage } from "./storage/storage.ts";

export type KeepReason = "last" | "daily" | "weekly" | "monthly";

export interface RetainedBackup {
  key_backup: string;
  timestamp: string;
  /** The rules that keep it. */
  reasons: KeepReason[];
}

export interface RemovedBackup {
  key_backup: string;
  timestamp: string;
}

export interface PruneResult {
  policy: string;
  /** True when nothing was deleted because only a plan was asked for. */
  dry_run: boolean;
  /** Newest first. */
  kept: RetainedBackup[];
  /** Newest first; deleted unless `dry_run`. */
  removed: RemovedBackup[];
  /** Listed by `list` as damaged or incomplete: left alone (see `list`). */
  untouched: { damaged: number; incomplete: number };
}

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
  backups: readonly BackupListing[],
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
  const kept: RetainedBackup[] = [];
  const removed: RemovedBackup[] = [];
  for (const [index, backup] of newestFirst.entries()) {
    const date = parseTimestamp(backup.timestamp);
    const reasons: KeepReason[] = [];
    for (const rule of rules) {
      if (rule.left === 0) continue;
      const period = rule.period(date, index);
      if (period === rule.last) continue;
      rule.last = period;
      rule.left--;
      reasons.push(rule.reason);
    }
    const entry = { key_backup: backup.key_backup, timestamp: backup.timestamp };
    if (reasons.length > 0) kept.push({ ...entry, reasons });
    else removed.push(entry);
  }
  return { kept, removed };
}

/**
 * Applies the policy's retention to its backups in `storage`: lists them,
 * plans, and (unless `dryRun`) deletes the ones no rule keeps. A failed
 * delete ends the prune with that error; running it again goes on.
 */
export async function pruneBackups(
  storage: Storage,
  policyId: string,
  retention: Retention,
  options: { dryRun?: boolean } = {},
): Promise<PruneResult> {
  const listing = await listBackups(storage, policyId);
  const plan = planRetention(listing.backups, retention);
  if (!options.dryRun) {
    for (const backup of plan.removed) {
      await storage.delete(manifestKeyFor(backup.key_backup));
      await storage.delete(backup.key_backup);
    }
  }
  return {
    policy: policyId,
    dry_run: options.dryRun ?? false,
    ...plan,
    untouched: { damaged: listing.damaged.length, incomplete: listing.incomplete.length },
  };
}

/** `20261127T020000Z` (UTC, as keys and manifests hold it) as a Date. */
export function parseTimestamp(timestamp: string): Date {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(timestamp);
  if (!match) throw new RangeError(`not a backup timestamp: ${timestamp}`);
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
