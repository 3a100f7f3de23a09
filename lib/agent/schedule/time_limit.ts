/**
 * How long a scheduled run may last before the OS scheduler stops it, given
 * as an ISO 8601 duration (Task Scheduler's own notation) for both systems:
 * Task Scheduler's ExecutionTimeLimit, systemd's TimeoutStartSec=.
 *
 * @module
 */
import { IntellistorError } from "../../errors.ts";

/** A backup that runs longer is stuck; the next scheduled run must not wait behind it. */
export const DEFAULT_TIME_LIMIT = "PT12H";

/** The duration in seconds (0: no limit); USAGE when it is not a supported ISO 8601 duration. */
export function timeLimitSeconds(value: string): number {
  const match = /^P(?=\d|T\d)(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(value);
  if (!match) {
    throw new IntellistorError(
      "USAGE",
      `"${value}" is not an ISO 8601 duration`,
      'Give the time limit like "PT12H" (12 hours), "PT90M" or "P1D"; "PT0S" means no limit.',
    );
  }
  const [days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0));
  return ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
}
