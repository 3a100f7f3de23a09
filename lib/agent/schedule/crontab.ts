/**
 * A policy as one crontab line, for machines without systemd (or users who
 * prefer cron): the policy's own cron expression, then the command quoted
 * for `sh` (cron runs the rest of the line with /bin/sh).
 *
 * @module
 */
import type { CronSchedule } from "../../policy/cron.ts";
import { commandLine } from "../../cli/shell_quote.ts";

/** `<cron expression> <sh-quoted command>`, ready for `crontab -e`. */
export function crontabLine(schedule: CronSchedule, command: string[]): string {
  const expression = schedule.expression.split(/\s+/).join(" ");
  // cron turns an unescaped % into a newline, even inside quotes.
  return `${expression} ${commandLine(command, "sh").replaceAll("%", "\\%")}`;
}
