/**
 * Which days a cron schedule fires on, as a union of simple day sets that
 * both Task Scheduler and systemd can name.
 *
 * Vixie cron: when BOTH day fields are restricted (neither starts with `*`),
 * a day matches if EITHER matches, so the result is two sets; otherwise a day
 * must match both lists (one of which is usually every day).
 *
 * @module
 */
import type { CronSchedule } from "../../policy/cron.ts";

/** One set of days; `months` is every month (1-12) when the cron does not restrict them. */
export type DaySet =
  | { kind: "every_day"; months: number[] }
  /** 0 = Sunday. */
  | { kind: "weekdays"; daysOfWeek: number[]; months: number[] }
  | { kind: "month_days"; daysOfMonth: number[]; months: number[] }
  /** Days matching both lists: e.g. "0 0 *\/2 * MON" (odd days that are Mondays). */
  | {
    kind: "weekdays_and_month_days";
    daysOfWeek: number[];
    daysOfMonth: number[];
    months: number[];
  };

const ALL_MONTH_DAYS = 31;
const ALL_WEEKDAYS = 7;

/** The days the schedule fires on, as a union of day sets (one or two). */
export function cronDaySets(schedule: CronSchedule): DaySet[] {
  const months = schedule.months;
  const everyMonthDay = schedule.daysOfMonth.length === ALL_MONTH_DAYS;
  const everyWeekday = schedule.daysOfWeek.length === ALL_WEEKDAYS;
  if (schedule.dayOfMonthRestricted && schedule.dayOfWeekRestricted) {
    // Either list matching is enough, so a list that holds every day wins.
    if (everyMonthDay || everyWeekday) return [{ kind: "every_day", months }];
    return [
      { kind: "weekdays", daysOfWeek: schedule.daysOfWeek, months },
      { kind: "month_days", daysOfMonth: schedule.daysOfMonth, months },
    ];
  }
  if (everyMonthDay && everyWeekday) return [{ kind: "every_day", months }];
  if (everyMonthDay) return [{ kind: "weekdays", daysOfWeek: schedule.daysOfWeek, months }];
  if (everyWeekday) return [{ kind: "month_days", daysOfMonth: schedule.daysOfMonth, months }];
  return [{
    kind: "weekdays_and_month_days",
    daysOfWeek: schedule.daysOfWeek,
    daysOfMonth: schedule.daysOfMonth,
    months,
  }];
}

/** True when the list holds all twelve months. */
export function isEveryMonth(months: number[]): boolean {
  return months.length === 12;
}
