import assert from "node:assert/strict";
import { formatTimestamp } from "./backup.ts";
import type { BackupListing } from "./list.ts";
import { IntellistorError } from "./errors.ts";
import { parseTimestamp, planRetention } from "./retention.ts";
import { DEFAULT_RETENTION, type Retention } from "./policy/policy.ts";

/** The key timestamp (UTC) of a local time: the rules work on local days, whatever TZ is. */
function local(month: number, day: number, hour: number): string {
  return formatTimestamp(new Date(2026, month - 1, day, hour));
}

/** A listed backup taken at `timestamp`. */
function at(timestamp: string, id = "a"): BackupListing {
  return {
    backup_id: id,
    timestamp,
    host: "h",
    key_backup: `backups/p/${timestamp}/${id}/backup.tar.gz.enc`,
    files: 1,
    bytes: 1,
    size: 1,
    skipped: 0,
  };
}

function plan(backups: BackupListing[], rules: Partial<Retention>) {
  const { kept, removed } = planRetention(backups, { ...DEFAULT_RETENTION, ...rules });
  return {
    kept: kept.map((b) => `${b.timestamp} ${b.reasons.join(",")}`),
    removed: removed.map((b) => b.timestamp),
  };
}

// Thursday 2026-10-29 to Tuesday 2026-11-03, a Saturday missed, two backups on Monday.
const [THU, FRI, SUN, MON_MORNING, MON_EVENING, TUE] = [
  local(10, 29, 12),
  local(10, 30, 12),
  local(11, 1, 12),
  local(11, 2, 8),
  local(11, 2, 16),
  local(11, 3, 12),
];
const BACKUPS = [THU, FRI, SUN, MON_MORNING, MON_EVENING, TUE].map((timestamp) => at(timestamp));

Deno.test("retention: with no rule every backup is kept", () => {
  assert.deepEqual(plan(BACKUPS, {}).removed, []);
  assert.equal(plan(BACKUPS, {}).kept.length, BACKUPS.length);
  assert.deepEqual(plan([], { keep_last: 3 }), { kept: [], removed: [] });
});

Deno.test("retention: keep_last keeps the newest N, whatever their order in the listing", () => {
  assert.deepEqual(plan([...BACKUPS].reverse(), { keep_last: 2 }), {
    kept: [`${TUE} last`, `${MON_EVENING} last`],
    removed: [MON_MORNING, SUN, FRI, THU],
  });
  // Two backups in the same second are two backups.
  const twins = [at(TUE, "a"), at(TUE, "b")];
  assert.equal(plan(twins, { keep_last: 2 }).removed.length, 0);
});

Deno.test("retention: keep_daily keeps each day's newest, counting only days with backups", () => {
  assert.deepEqual(plan(BACKUPS, { keep_daily: 3 }), {
    kept: [`${TUE} daily`, `${MON_EVENING} daily`, `${SUN} daily`],
    removed: [MON_MORNING, FRI, THU],
  });
});

Deno.test("retention: weeks run Monday to Sunday; months by calendar", () => {
  // Mon 2 and Tue 3 Nov are one week; Sun 1 Nov ends the week before (with Thu 29, Fri 30 Oct).
  assert.deepEqual(plan(BACKUPS, { keep_weekly: 2 }), {
    kept: [`${TUE} weekly`, `${SUN} weekly`],
    removed: [MON_EVENING, MON_MORNING, FRI, THU],
  });
  // Two months of backups for five monthly slots: the oldest backup is kept too (restic 0.17).
  assert.deepEqual(plan(BACKUPS, { keep_monthly: 5 }), {
    kept: [`${TUE} monthly`, `${FRI} monthly`, `${THU} oldest`],
    removed: [MON_EVENING, MON_MORNING, SUN],
  });
});

Deno.test("retention: a time rule with room left keeps the oldest backup as well, as restic does", () => {
  const oneDay = [local(11, 2, 8), local(11, 2, 12), local(11, 2, 16)].map((t) => at(t));
  assert.deepEqual(plan(oneDay, { keep_daily: 7 }), {
    kept: [`${local(11, 2, 16)} daily`, `${local(11, 2, 8)} oldest`],
    removed: [local(11, 2, 12)],
  });
  // keep_last has no such rule.
  assert.deepEqual(plan(oneDay, { keep_last: 1 }).removed.length, 2);
});

Deno.test("retention: a backup any rule keeps is kept, with every rule that keeps it", () => {
  assert.deepEqual(plan(BACKUPS, { keep_last: 1, keep_daily: 2, keep_monthly: 2 }), {
    kept: [
      `${TUE} last,daily,monthly`,
      `${MON_EVENING} daily`,
      `${FRI} monthly`,
    ],
    removed: [MON_MORNING, SUN, THU],
  });
});

Deno.test("parseTimestamp() reads the keys' UTC timestamps and refuses anything else", () => {
  assert.equal(parseTimestamp("20261127T020304Z").toISOString(), "2026-11-27T02:03:04.000Z");
  assert.throws(() => parseTimestamp("2026-11-27"), IntellistorError);
});
