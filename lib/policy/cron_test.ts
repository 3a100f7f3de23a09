import assert from "node:assert/strict";
import { CronError, type CronSchedule, nextRun, parseCron } from "./cron.ts";

function range(start: number, end: number, step = 1): number[] {
  const values: number[] = [];
  for (let value = start; value <= end; value += step) values.push(value);
  return values;
}

function assertCronError(expression: string, message: string | RegExp): void {
  assert.throws(() => parseCron(expression), (error: unknown) => {
    assert(error instanceof CronError, `expected a CronError, got ${error}`);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

/** Local-time date, as nextRun works in local time. */
function local(year: number, month: number, day: number, hour = 0, minute = 0): Date {
  return new Date(year, month - 1, day, hour, minute);
}

Deno.test("the seed's default schedule fires every day at 02:00", () => {
  const schedule = parseCron("0 2 * * *");
  assert.deepEqual(
    schedule,
    {
      expression: "0 2 * * *",
      minutes: [0],
      hours: [2],
      daysOfMonth: range(1, 31),
      months: range(1, 12),
      daysOfWeek: range(0, 6),
      dayOfMonthRestricted: false,
      dayOfWeekRestricted: false,
    } satisfies CronSchedule,
  );
});

Deno.test("lists, ranges and steps expand to sorted unique values", () => {
  const schedule = parseCron("5,1,5,30-32 */6 1-10/3 2-12/5 1-5");
  assert.deepEqual(schedule.minutes, [1, 5, 30, 31, 32]);
  assert.deepEqual(schedule.hours, [0, 6, 12, 18]);
  assert.deepEqual(schedule.daysOfMonth, [1, 4, 7, 10]);
  assert.deepEqual(schedule.months, [2, 7, 12]);
  assert.deepEqual(schedule.daysOfWeek, [1, 2, 3, 4, 5]);
  assert.equal(schedule.dayOfMonthRestricted, true);
  assert.equal(schedule.dayOfWeekRestricted, true);
});

Deno.test("surrounding and repeated whitespace between fields is accepted", () => {
  const schedule = parseCron("  30\t4  * *   *  ");
  assert.equal(schedule.expression, "30\t4  * *   *");
  assert.deepEqual(schedule.minutes, [30]);
  assert.deepEqual(schedule.hours, [4]);
});

Deno.test("step edge cases", () => {
  assert.deepEqual(parseCron("*/59 * * * *").minutes, [0, 59]);
  assert.deepEqual(parseCron("0-59/1 * * * *").minutes, range(0, 59));
  assert.deepEqual(parseCron("10-20/15 * * * *").minutes, [10]);
  assert.deepEqual(parseCron("0 */23 * * *").hours, [0, 23]);
  assert.deepEqual(parseCron("0 0 */31 * *").daysOfMonth, [1]);
  assert.deepEqual(parseCron("0 0 * * */2").daysOfWeek, [0, 2, 4, 6]);
  assert.deepEqual(parseCron("0 0 * * */7").daysOfWeek, [0]);
  assertCronError("*/0 * * * *", "minute: step 0 is out of range 1-59");
  assertCronError("*/60 * * * *", "minute: step 60 is out of range 1-59");
  assertCronError("0 */24 * * *", "hour: step 24 is out of range 1-23");
  assertCronError("*/x * * * *", 'minute: step "x" is not a whole number');
  assertCronError("*/ * * * *", 'minute: step "" is not a whole number');
  assertCronError("5/10 * * * *", 'minute: step "5/10" needs a range or "*", e.g. "5-59/10"');
  assertCronError("*/2/3 * * * *", 'minute: "*/2/3" has more than one "/"');
});

Deno.test("month and weekday names are accepted in any case, also in ranges", () => {
  const schedule = parseCron("0 0 * jan,Mar,DEC mon-FRI");
  assert.deepEqual(schedule.months, [1, 3, 12]);
  assert.deepEqual(schedule.daysOfWeek, [1, 2, 3, 4, 5]);
  assert.deepEqual(parseCron("0 0 * * SUN,sat").daysOfWeek, [0, 6]);
  assert.deepEqual(parseCron("0 0 * JUN-AUG *").months, [6, 7, 8]);
});

Deno.test("7 is Sunday, and a weekday range may end at Sunday", () => {
  assert.deepEqual(parseCron("0 0 * * 7").daysOfWeek, [0]);
  assert.deepEqual(parseCron("0 0 * * 0,7").daysOfWeek, [0]);
  assert.deepEqual(parseCron("0 0 * * 0-7").daysOfWeek, range(0, 6));
  assert.deepEqual(parseCron("0 0 * * 5-7").daysOfWeek, [0, 5, 6]);
  assert.deepEqual(parseCron("0 0 * * FRI-SUN").daysOfWeek, [0, 5, 6]);
});

Deno.test("a day field starting with * is unrestricted, as in Vixie cron", () => {
  const schedule = parseCron("0 0 */2 * 1");
  assert.equal(schedule.dayOfMonthRestricted, false);
  assert.equal(schedule.dayOfWeekRestricted, true);
  assert.deepEqual(schedule.daysOfMonth, range(1, 31, 2));
});

Deno.test("macros expand to their five fields, in any case", () => {
  const expectations: Record<string, string> = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@HOURLY": "0 * * * *",
  };
  for (const [macro, fields] of Object.entries(expectations)) {
    const schedule = parseCron(macro);
    assert.equal(schedule.expression, macro);
    assert.deepEqual({ ...schedule, expression: "" }, { ...parseCron(fields), expression: "" });
  }
});

Deno.test("@reboot and unknown macros are refused", () => {
  assertCronError("@reboot", /^@reboot is not supported: a backup schedule needs a time/);
  assertCronError("@often", /^unknown macro "@often" \(expected one of @yearly, /);
});

Deno.test("a wrong number of fields is refused", () => {
  assertCronError(
    "0 2 * *",
    "expected 5 cron fields (minute hour day-of-month month day-of-week), got 4",
  );
  assertCronError("0 0 2 * * *", /got 6$/);
  assertCronError("", /^it is empty/);
  assertCronError("   ", /^it is empty/);
});

Deno.test("out-of-range values name the field and its range", () => {
  assertCronError("60 * * * *", "minute: 60 is out of range 0-59");
  assertCronError("0 24 * * *", "hour: 24 is out of range 0-23");
  assertCronError("0 0 0 * *", "day-of-month: 0 is out of range 1-31");
  assertCronError("0 0 32 * *", "day-of-month: 32 is out of range 1-31");
  assertCronError("0 0 * 13 *", "month: 13 is out of range 1-12");
  assertCronError("0 0 * 0 *", "month: 0 is out of range 1-12");
  assertCronError("0 0 * * 8", "day-of-week: 8 is out of range 0-7");
});

Deno.test("malformed items are refused", () => {
  assertCronError("a * * * *", 'minute: "a" is not valid (expected a number 0-59)');
  assertCronError(
    "0 0 * JANUARY *",
    'month: "JANUARY" is not valid (expected a number 1-12 or a name JAN-DEC)',
  );
  assertCronError("0 0 * * MON-", 'day-of-week: "MON-" is not a range (expected "a-b")');
  assertCronError("0 0 * * -1", 'day-of-week: "-1" is not a range (expected "a-b")');
  assertCronError("1-2-3 * * * *", 'minute: "1-2-3" is not a range (expected "a-b")');
  assertCronError("1,,2 * * * *", 'minute: empty item in list "1,,2"');
  assertCronError("30-10 * * * *", 'minute: range "30-10" goes backwards (30 > 10)');
  assertCronError("0 0 * DEC-JAN *", 'month: range "DEC-JAN" goes backwards (12 > 1)');
  assertCronError("0 0 ? * *", /^day-of-month: "\?" is not valid/);
  assertCronError("0 0 * JAN MONDAY", /^day-of-week: "MONDAY" is not valid \(.* a name SUN-SAT\)$/);
  assertCronError("1.5 * * * *", /^minute: "1\.5" is not valid/);
});

Deno.test("a day that never occurs in the chosen months is refused", () => {
  assertCronError(
    "0 0 31 2 *",
    /^day-of-month: 31 never occurs in FEB, so the schedule would never run$/,
  );
  assertCronError("0 0 30,31 FEB *", /never occurs in FEB/);
  assertCronError("0 0 31 4,6,9,11 *", /never occurs in APR,JUN,SEP,NOV/);
  parseCron("0 0 29 2 *");
  parseCron("0 0 31 2,3 *");
  // With a weekday as well, the weekday alone can fire the schedule.
  parseCron("0 0 31 2 MON");
});

Deno.test("nextRun finds the same day's time when it is still ahead", () => {
  const schedule = parseCron("0 2 * * *");
  assert.deepEqual(nextRun(schedule, local(2026, 1, 31, 1, 30)), local(2026, 1, 31, 2, 0));
});

Deno.test("nextRun is strictly after the given time", () => {
  const schedule = parseCron("0 2 * * *");
  assert.deepEqual(nextRun(schedule, local(2026, 1, 31, 2, 0)), local(2026, 2, 1, 2, 0));
  const atSeconds = new Date(2026, 0, 31, 1, 59, 59, 999);
  assert.deepEqual(nextRun(schedule, atSeconds), local(2026, 1, 31, 2, 0));
  const everyMinute = parseCron("* * * * *");
  assert.deepEqual(
    nextRun(everyMinute, new Date(2026, 0, 31, 10, 15, 30)),
    local(2026, 1, 31, 10, 16),
  );
});

Deno.test("nextRun crosses month and year ends", () => {
  const daily = parseCron("0 2 * * *");
  assert.deepEqual(nextRun(daily, local(2026, 1, 31, 3, 0)), local(2026, 2, 1, 2, 0));
  assert.deepEqual(nextRun(daily, local(2025, 12, 31, 23, 59)), local(2026, 1, 1, 2, 0));
  const monthly = parseCron("30 4 31 * *");
  assert.deepEqual(nextRun(monthly, local(2026, 1, 31, 5, 0)), local(2026, 3, 31, 4, 30));
  const leap = parseCron("0 0 29 2 *");
  assert.deepEqual(nextRun(leap, local(2025, 3, 1)), local(2028, 2, 29, 0, 0));
});

Deno.test("nextRun steps through hours and minutes", () => {
  const schedule = parseCron("15,45 9-17/4 * * *");
  assert.deepEqual(nextRun(schedule, local(2026, 5, 4, 9, 15)), local(2026, 5, 4, 9, 45));
  assert.deepEqual(nextRun(schedule, local(2026, 5, 4, 9, 45)), local(2026, 5, 4, 13, 15));
  assert.deepEqual(nextRun(schedule, local(2026, 5, 4, 17, 45)), local(2026, 5, 5, 9, 15));
});

Deno.test("nextRun matches either day field when both are restricted", () => {
  // The 13th of the month, or any Friday. 2026-02-01 is a Sunday.
  const schedule = parseCron("0 0 13 * FRI");
  assert.deepEqual(nextRun(schedule, local(2026, 2, 1)), local(2026, 2, 6));
  assert.deepEqual(nextRun(schedule, local(2026, 2, 10)), local(2026, 2, 13));
  assert.deepEqual(nextRun(schedule, local(2026, 2, 13)), local(2026, 2, 20));
});

Deno.test("nextRun requires both day fields when one starts with *", () => {
  // Odd days of the month that are also Mondays. 2026-02-02 is a Monday (even).
  const schedule = parseCron("0 0 */2 * MON");
  assert.deepEqual(nextRun(schedule, local(2026, 2, 1)), local(2026, 2, 9));
  const weekdays = parseCron("0 8 * * MON-FRI");
  // 2026-01-30 is a Friday.
  assert.deepEqual(nextRun(weekdays, local(2026, 1, 30, 9, 0)), local(2026, 2, 2, 8, 0));
});

Deno.test("nextRun honours the month list", () => {
  const schedule = parseCron("0 3 1 JAN,JUL *");
  assert.deepEqual(nextRun(schedule, local(2026, 1, 1, 3, 0)), local(2026, 7, 1, 3, 0));
  assert.deepEqual(nextRun(schedule, local(2026, 7, 1, 3, 0)), local(2027, 1, 1, 3, 0));
});
