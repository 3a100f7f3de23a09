/**
 * A policy as one crontab line, for machines without systemd (or users who
 * prefer cron): the policy's own cron expression, then the command quoted
 * for `sh` (cron runs the rest of the line with /bin/sh).
 *
 * cron starts every run, however long the last one lasts: a run stuck on a
 * hung mount would hold the agent's lock, and every later run would exit
 * "already running", unnoticed. So the command runs under `timeout(1)`
 * (coreutils, and busybox), which sends it SIGTERM after the time limit (the
 * agent stops cleanly and keeps its log), and SIGKILL 90 s later if it has
 * not ended, as systemd does.
 *
 * @module
 */
import type { CronSchedule } from "../../policy/cron.ts";
import { commandLine } from "../../cli/shell_quote.ts";

/** Seconds between timeout's SIGTERM and its SIGKILL (systemd's default TimeoutStopSec). */
const KILL_AFTER_SECONDS = 90;

/**
 * `<cron expression> [timeout …] <sh-quoted command>`, ready for `crontab -e`;
 * `timeLimitSeconds` 0 means no limit.
 */
export function crontabLine(
  schedule: CronSchedule,
  command: string[],
  timeLimitSeconds: number,
): string {
  const expression = schedule.expression.split(/\s+/).join(" ");
  const limited = timeLimitSeconds > 0
    ? ["timeout", "-k", `${KILL_AFTER_SECONDS}`, `${timeLimitSeconds}`, ...command]
    : command;
  // cron turns an unescaped % into a newline, even inside quotes.
  return `${expression} ${commandLine(limited, "sh").replaceAll("%", "\\%")}`;
}
