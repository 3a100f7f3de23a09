/**
 * Five-field cron expressions (minute hour day-of-month month day-of-week)
 * with Vixie cron semantics, parsed into explicit value lists so that later
 * code can translate them into Windows Task Scheduler triggers or systemd
 * `OnCalendar=` lines.
 *
 * Accepted syntax, per field: `*`, a number, a list `a,b`, a range `a-b`, a
 * step `*\/n` or `a-b/n`; month names JAN–DEC and weekday names SUN–SAT in any
 * case (also inside ranges and lists, e.g. `MON-FRI`); 7 is Sunday as well as
 * 0 (a weekday range may end at 7 or SUN, e.g. `FRI-SUN`). Macros: `@yearly`,
 * `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
 * `@reboot` is refused: a backup schedule needs a time.
 *
 * Day matching follows Vixie cron: when both day-of-month and day-of-week are
 * restricted, a day matches if EITHER matches; a field counts as unrestricted
 * when it starts with `*` (so `*\/2` is unrestricted, as in Vixie cron).
 *
 * @module
 */

/** A parsed cron expression; every list is sorted and free of duplicates. */
export interface CronSchedule {
  /** The expression as given (trimmed). */
  expression: string;
  /** 0-59 */
  minutes: number[];
  /** 0-23 */
  hours: number[];
  /** 1-31 */
  daysOfMonth: number[];
  /** 1-12 */
  months: number[];
  /** 0-6, 0 = Sunday (7 in the expression becomes 0). */
  daysOfWeek: number[];
  /** False when the day-of-month field starts with `*`. */
  dayOfMonthRestricted: boolean;
  /** False when the day-of-week field starts with `*`. */
  dayOfWeekRestricted: boolean;
}

/** A cron expression that cannot be parsed; the message names the field and the problem. */
export class CronError extends Error {
  override readonly name = "CronError";
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const MONTH_NAMES = [
  "JAN",
  "FEB",
  "MAR",
  "APR",
  "MAY",
  "JUN",
  "JUL",
  "AUG",
  "SEP",
  "OCT",
  "NOV",
  "DEC",
] as const;
const WEEKDAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] as const;

const MINUTE: FieldSpec = { name: "minute", min: 0, max: 59 };
const HOUR: FieldSpec = { name: "hour", min: 0, max: 23 };
const DAY_OF_MONTH: FieldSpec = { name: "day-of-month", min: 1, max: 31 };
// Names are indexed from `min`: JAN is 1.
const MONTH: FieldSpec = { name: "month", min: 1, max: 12, names: MONTH_NAMES };
// 7 is accepted as Sunday and folded to 0 after parsing.
const DAY_OF_WEEK: FieldSpec = { name: "day-of-week", min: 0, max: 7, names: WEEKDAY_NAMES };

const MACROS: Readonly<Record<string, string>> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/** Days in each month of a leap year: the most any month can have. */
const MAX_DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Parses a 5-field cron expression or a macro such as `@daily`.
 *
 * @throws CronError e.g. `hour: 24 is out of range 0-23`.
 */
export function parseCron(expression: string): CronSchedule {
  if (typeof expression !== "string") {
    throw new CronError(`expected a cron expression as text, got ${typeof expression}`);
  }
  const trimmed = expression.trim();
  if (trimmed === "") {
    throw new CronError('it is empty (expected 5 cron fields such as "0 2 * * *")');
  }
  const fields = expandMacro(trimmed).split(/\s+/);
  if (fields.length !== 5) {
    throw new CronError(
      `expected 5 cron fields (minute hour day-of-month month day-of-week), got ${fields.length}`,
    );
  }
  const [minute, hour, dayOfMonth, month, dayOfWeek] = fields;
  const schedule: CronSchedule = {
    expression: trimmed,
    minutes: parseField(minute, MINUTE),
    hours: parseField(hour, HOUR),
    daysOfMonth: parseField(dayOfMonth, DAY_OF_MONTH),
    months: parseField(month, MONTH),
    daysOfWeek: sortedUnique(parseField(dayOfWeek, DAY_OF_WEEK).map((day) => day % 7)),
    dayOfMonthRestricted: !dayOfMonth.startsWith("*"),
    dayOfWeekRestricted: !dayOfWeek.startsWith("*"),
  };
  checkDayCanOccur(schedule);
  return schedule;
}

/**
 * The first time strictly after `after` (at whole minutes) when the schedule
 * fires, computed with the Date's local-time fields (the machine's time zone).
 */
export function nextRun(schedule: CronSchedule, after: Date): Date {
  const minutes = new Set(schedule.minutes);
  const hours = new Set(schedule.hours);
  const months = new Set(schedule.months);
  // Start at the next whole minute.
  let candidate = new Date(after.getTime());
  candidate.setSeconds(0, 0);
  candidate = new Date(candidate.getTime() + 60_000);
  // Any valid schedule fires within 28 years (the weekday calendar repeats).
  const lastYear = after.getFullYear() + 30;
  while (candidate.getFullYear() <= lastYear) {
    const year = candidate.getFullYear();
    const month = candidate.getMonth();
    const day = candidate.getDate();
    if (!months.has(month + 1)) {
      candidate = new Date(year, month + 1, 1, 0, 0);
    } else if (!dayMatches(schedule, candidate)) {
      candidate = new Date(year, month, day + 1, 0, 0);
    } else if (!hours.has(candidate.getHours())) {
      // Millisecond arithmetic keeps moving forward across DST changes.
      candidate = new Date(candidate.getTime() + (60 - candidate.getMinutes()) * 60_000);
    } else if (!minutes.has(candidate.getMinutes())) {
      candidate = new Date(candidate.getTime() + 60_000);
    } else {
      return candidate;
    }
  }
  throw new CronError(`"${schedule.expression}" never fires`);
}

function dayMatches(schedule: CronSchedule, date: Date): boolean {
  const dayOfMonthMatches = schedule.daysOfMonth.includes(date.getDate());
  const dayOfWeekMatches = schedule.daysOfWeek.includes(date.getDay());
  if (schedule.dayOfMonthRestricted && schedule.dayOfWeekRestricted) {
    return dayOfMonthMatches || dayOfWeekMatches;
  }
  return dayOfMonthMatches && dayOfWeekMatches;
}

function expandMacro(expression: string): string {
  if (!expression.startsWith("@")) return expression;
  const macro = expression.toLowerCase();
  if (macro === "@reboot") {
    throw new CronError(
      '@reboot is not supported: a backup schedule needs a time, e.g. "@daily" or "0 2 * * *"',
    );
  }
  const fields = MACROS[macro];
  if (fields === undefined) {
    throw new CronError(
      `unknown macro "${expression}" (expected one of ${Object.keys(MACROS).join(", ")})`,
    );
  }
  return fields;
}

function parseField(text: string, spec: FieldSpec): number[] {
  const values: number[] = [];
  for (const item of text.split(",")) {
    if (item === "") throw new CronError(`${spec.name}: empty item in list "${text}"`);
    values.push(...parseItem(item, spec));
  }
  return sortedUnique(values);
}

function parseItem(item: string, spec: FieldSpec): number[] {
  const [range, stepText, ...extra] = item.split("/");
  if (extra.length > 0) throw new CronError(`${spec.name}: "${item}" has more than one "/"`);
  let start: number;
  let end: number;
  if (range === "*") {
    start = spec.min;
    end = spec.max;
  } else if (range.includes("-")) {
    const [startText, endText, ...rest] = range.split("-");
    if (rest.length > 0 || startText === "" || endText === "") {
      throw new CronError(`${spec.name}: "${range}" is not a range (expected "a-b")`);
    }
    start = parseValue(startText, spec);
    end = parseValue(endText, spec);
    // Lets "FRI-SUN" and "5-0" mean Friday to Sunday.
    if (spec === DAY_OF_WEEK && end === 0 && start > 0) end = 7;
    if (start > end) {
      throw new CronError(`${spec.name}: range "${range}" goes backwards (${start} > ${end})`);
    }
  } else {
    start = parseValue(range, spec);
    end = start;
    if (stepText !== undefined) {
      throw new CronError(
        `${spec.name}: step "${item}" needs a range or "*", e.g. "${range}-${spec.max}/${stepText}"`,
      );
    }
  }
  const step = stepText === undefined ? 1 : parseStep(stepText, spec);
  const values: number[] = [];
  for (let value = start; value <= end; value += step) values.push(value);
  return values;
}

function parseStep(text: string, spec: FieldSpec): number {
  if (!/^\d+$/.test(text)) {
    throw new CronError(`${spec.name}: step "${text}" is not a whole number`);
  }
  const step = Number(text);
  // As in cronie: a step must be at least 1 and at most the field's maximum.
  if (step < 1 || step > spec.max) {
    throw new CronError(`${spec.name}: step ${step} is out of range 1-${spec.max}`);
  }
  return step;
}

function parseValue(text: string, spec: FieldSpec): number {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    if (value < spec.min || value > spec.max) {
      throw new CronError(`${spec.name}: ${value} is out of range ${spec.min}-${spec.max}`);
    }
    return value;
  }
  const index = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  if (index >= 0) return index + spec.min;
  const expected = spec.names
    ? `a number ${spec.min}-${spec.max} or a name ${spec.names[0]}-${spec.names.at(-1)}`
    : `a number ${spec.min}-${spec.max}`;
  throw new CronError(`${spec.name}: "${text}" is not valid (expected ${expected})`);
}

/** Refuses a schedule that can never fire, such as "0 0 31 2 *" or "0 0 30 FEB *". */
function checkDayCanOccur(schedule: CronSchedule): void {
  // With both restricted, the weekday alone can fire the schedule.
  if (schedule.dayOfMonthRestricted && schedule.dayOfWeekRestricted) return;
  const possible = schedule.months.some((month) =>
    schedule.daysOfMonth.some((day) => day <= MAX_DAYS_IN_MONTH[month - 1])
  );
  if (!possible) {
    const months = schedule.months.map((month) => MONTH_NAMES[month - 1]).join(",");
    throw new CronError(
      `day-of-month: ${schedule.daysOfMonth.join(",")} never occurs in ${months}, ` +
        "so the schedule would never run",
    );
  }
}

function sortedUnique(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

/** Runs of consecutive values in a sorted list, as [first, last] pairs ([1,2,3,7] → [[1,3],[7,7]]). */
export function consecutiveRuns(values: readonly number[]): [number, number][] {
  const result: [number, number][] = [];
  for (const value of values) {
    const current = result.at(-1);
    if (current !== undefined && current[1] === value - 1) current[1] = value;
    else result.push([value, value]);
  }
  return result;
}
