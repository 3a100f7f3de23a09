/**
 * A cron schedule as Windows Task Scheduler calendar triggers: a faithful
 * translation, or a SCHEDULE_UNSUPPORTED error that says why and lists the
 * forms that work. Never an approximation.
 *
 * How it translates:
 * - The days (see day_sets.ts) become ScheduleByDay (every day),
 *   ScheduleByWeek (days of the week) or ScheduleByMonth (days of the month,
 *   with months); both day fields restricted → both kinds (cron ORs them).
 * - The times of day become, per day set, either
 *   - one trigger per time ("30 1,13 * * *" → 01:30 and 13:30), or
 *   - ONE trigger with a repetition when the times are evenly spaced
 *     ("*\/15 * * * *", "0 *\/6 * * *", "*\/15 9-17 * * *"), or
 *   - one repeating trigger per range of hours when the minutes divide the
 *     hour evenly ("*\/10 8-11,14-17 * * *" → two triggers),
 *   whichever needs fewer triggers. A repetition is used for 3 or more runs;
 *   two runs are clearer as two triggers.
 * - Task Scheduler runs a repetition at start, start+interval, … up to and
 *   INCLUDING start+duration (IRepetitionPattern docs: interval 1 min,
 *   duration 4 min → 5 launches). So duration = (runs - 1) × interval, never
 *   P1D: a P1D duration would also fire at 24:00, i.e. at midnight of the
 *   next day, which is wrong when that day is not scheduled (Friday → Saturday).
 *
 * What cannot be translated (refused):
 * - times that are not evenly spaced and too many for one trigger each:
 *   "*\/7 * * * *" (…:49, :56, then :00 of the next hour — not a fixed step),
 *   "5-10 * * * *" (six minutes each hour); they would need 216 / 144
 *   triggers. (One hourly-repeating trigger per minute value could express
 *   some of them; that is left out to keep the supported forms simple.)
 * - more than 48 triggers in all (Task Scheduler's limit per task);
 * - days of the week limited to some months ("0 2 * 6-8 MON"): the monthly
 *   day-of-week trigger counts weeks of the month ("first", "last"), which
 *   does not map exactly onto "every Monday in June";
 * - both day lists ANDed, which happens when one starts with `*` but is not
 *   every day ("0 0 *\/2 * MON": odd days that are Mondays).
 *
 * @module
 */
import { IntellistorError } from "../../errors.ts";
import { consecutiveRuns, type CronSchedule } from "../../policy/cron.ts";
import { cronDaySets, type DaySet, isEveryMonth } from "./day_sets.ts";

/** Task Scheduler accepts at most this many triggers in one task. */
export const MAX_TRIGGERS = 48;

/** Which days a trigger fires on. */
export type TaskDays =
  | { kind: "daily" }
  /** 0 = Sunday … 6 = Saturday, sorted. */
  | { kind: "weekly"; daysOfWeek: number[] }
  /** Days 1-31 and months 1-12, sorted; a day a month lacks (31 in April) is skipped, as in cron. */
  | { kind: "monthly"; daysOfMonth: number[]; months: number[] };

/** One CalendarTrigger. */
export interface TaskTrigger {
  /** First start, in minutes after local midnight. */
  startMinute: number;
  /** Further starts the same day: every `intervalMinutes`, the last at start + `durationMinutes`. */
  repetition?: { intervalMinutes: number; durationMinutes: number };
  days: TaskDays;
}

/** The supported forms, for error hints and the README. */
export const SUPPORTED_WINDOWS_FORMS = [
  '"0 2 * * *"             every day at one time',
  '"30 1,13 * * *"         every day at several times (one trigger each, 48 at most)',
  '"*/15 * * * *"          every N minutes, N dividing 60 (evenly spaced times)',
  '"0 */6 * * *"           every N hours',
  '"*/15 9-17 * * *"       every N minutes within a range of hours',
  '"*/10 8-11,14-17 * * *" every N minutes (N dividing 60) within several ranges of hours',
  '"0 2 * * MON-FRI"       on days of the week',
  '"0 3 1,15 * *"          on days of the month, also in some months only: "0 3 1 1,7 *"',
  '"0 2 1 * MON"           both day fields: a day matching either runs (as in cron)',
] as const;

/** The hint of every SCHEDULE_UNSUPPORTED error. */
export const SUPPORTED_FORMS_HINT =
  "Change the policy's schedule to a form Task Scheduler can run exactly. Supported forms:\n" +
  SUPPORTED_WINDOWS_FORMS.map((line) => `  ${line}`).join("\n") +
  "\nMacros such as @daily and @hourly work too. Not supported: times of day that are not " +
  'evenly spaced and too many to list ("*/7 * * * *", "5-10 * * * *"), weekdays limited to ' +
  "some months, more than 48 triggers.";

/**
 * The Task Scheduler triggers equivalent to the schedule.
 *
 * @throws IntellistorError SCHEDULE_UNSUPPORTED naming the cron and why.
 */
export function taskTriggers(schedule: CronSchedule): TaskTrigger[] {
  const daySets = cronDaySets(schedule).map((set) => taskDays(schedule, set));
  const times = timePatterns(schedule);
  const count = daySets.length * times.length;
  if (count > MAX_TRIGGERS) {
    const timesText = times.length === 1 ? "1 trigger per day pattern" : `${times.length} times`;
    throw unsupported(
      schedule,
      `it needs ${count} triggers (${timesText} × ${daySets.length} day pattern(s)) and ` +
        `Task Scheduler allows ${MAX_TRIGGERS}`,
    );
  }
  return daySets.flatMap((days) =>
    times.map((time): TaskTrigger => ({
      startMinute: time.start,
      ...(time.count > 1
        ? {
          repetition: {
            intervalMinutes: time.interval,
            durationMinutes: (time.count - 1) * time.interval,
          },
        }
        : {}),
      days,
    }))
  );
}

/** A readable summary of one trigger, e.g. "Mon,Tue at 02:00, then every 15 min until 23:45". */
export function describeTrigger(trigger: TaskTrigger): string {
  const at = clock(trigger.startMinute);
  const when = trigger.repetition === undefined
    ? `at ${at}`
    : `at ${at}, then every ${minutesText(trigger.repetition.intervalMinutes)} until ${
      clock(trigger.startMinute + trigger.repetition.durationMinutes)
    }`;
  return `${describeDays(trigger.days)} ${when}`;
}

/** "HH:MM" for a minute of the day. */
export function clock(minuteOfDay: number): string {
  const hours = Math.floor(minuteOfDay / 60);
  const minutes = minuteOfDay % 60;
  return `${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}`;
}

const WEEKDAY_NAMES = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTH_NAMES = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
];

function describeDays(days: TaskDays): string {
  switch (days.kind) {
    case "daily":
      return "every day";
    case "weekly":
      return `every ${days.daysOfWeek.map((day) => WEEKDAY_NAMES[day]).join(",")}`;
    case "monthly": {
      const months = isEveryMonth(days.months)
        ? "every month"
        : days.months.map((month) => MONTH_NAMES[month - 1]).join(",");
      return `day ${days.daysOfMonth.join(",")} of ${months}`;
    }
  }
}

function minutesText(minutes: number): string {
  if (minutes % 60 === 0) return minutes === 60 ? "hour" : `${minutes / 60} hours`;
  return `${minutes} min`;
}

function taskDays(schedule: CronSchedule, set: DaySet): TaskDays {
  switch (set.kind) {
    case "every_day":
      return isEveryMonth(set.months)
        ? { kind: "daily" }
        // Every day of some months: days 1-31 of those months (a missing 31st is skipped).
        : { kind: "monthly", daysOfMonth: range(1, 31), months: set.months };
    case "weekdays":
      if (!isEveryMonth(set.months)) {
        throw unsupported(
          schedule,
          "it limits days of the week to some months, and Task Scheduler's monthly " +
            'day-of-week trigger counts weeks of the month ("first", "last") instead',
        );
      }
      return { kind: "weekly", daysOfWeek: set.daysOfWeek };
    case "month_days":
      return { kind: "monthly", daysOfMonth: set.daysOfMonth, months: set.months };
    case "weekdays_and_month_days":
      throw unsupported(
        schedule,
        "it runs only on days matching BOTH the day-of-month list and the weekday list " +
          "(a day field starting with * makes cron AND them), and Task Scheduler has no such trigger",
      );
  }
}

interface TimePattern {
  start: number;
  interval: number;
  count: number;
}

/** The times of day as the fewest patterns (see the module comment). */
function timePatterns(schedule: CronSchedule): TimePattern[] {
  const times = schedule.hours.flatMap((hour) =>
    schedule.minutes.map((minute) => hour * 60 + minute)
  );
  const perTime = times.map((start) => ({ start, interval: 0, count: 1 }));
  const whole = progression(times);
  if (whole !== undefined && times.length >= 3) {
    return [{ start: times[0], interval: whole, count: times.length }];
  }
  const perRange = hourRangePatterns(schedule);
  const chosen = perRange !== undefined && perRange.length < perTime.length ? perRange : perTime;
  if (chosen.length > MAX_TRIGGERS) {
    throw unsupported(
      schedule,
      `its ${times.length} times of day (${preview(times)}) are not evenly spaced, so each ` +
        `would need its own trigger, and Task Scheduler allows ${MAX_TRIGGERS}`,
    );
  }
  return chosen;
}

/**
 * When the minutes split each hour evenly ("*\/10" → 0,10,…,50), each run of
 * consecutive hours is one evenly spaced series: one repeating trigger.
 */
function hourRangePatterns(schedule: CronSchedule): TimePattern[] | undefined {
  const minutes = schedule.minutes;
  const step = progression(minutes);
  if (step === undefined || 60 % step !== 0 || minutes.length !== 60 / step) return undefined;
  const patterns: TimePattern[] = [];
  for (const [first, last] of consecutiveRuns(schedule.hours)) {
    const pattern = {
      start: first * 60 + minutes[0],
      interval: step,
      count: (last - first + 1) * minutes.length,
    };
    // Two runs read better as two plain triggers.
    if (pattern.count >= 3) patterns.push(pattern);
    else {
      for (let i = 0; i < pattern.count; i++) {
        patterns.push({ start: pattern.start + i * step, interval: 0, count: 1 });
      }
    }
  }
  return patterns;
}

/** The common difference when the sorted values are evenly spaced (2+ values). */
function progression(values: number[]): number | undefined {
  if (values.length < 2) return undefined;
  const step = values[1] - values[0];
  for (let i = 2; i < values.length; i++) {
    if (values[i] - values[i - 1] !== step) return undefined;
  }
  return step;
}

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

function preview(times: number[]): string {
  const shown = times.slice(0, 4).map(clock).join(", ");
  return times.length > 4 ? `${shown}, …` : shown;
}

function unsupported(schedule: CronSchedule, why: string): IntellistorError {
  return new IntellistorError(
    "SCHEDULE_UNSUPPORTED",
    `The schedule "${schedule.expression}" cannot be run exactly by Windows Task Scheduler: ${why}.`,
    SUPPORTED_FORMS_HINT,
  );
}
