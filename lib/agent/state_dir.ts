/**
 * The agent's state directory (locks and local logs) and the rule for the
 * paths a scheduled run is given: fully qualified, since the scheduler starts
 * it in another working directory.
 */
import path from "node:path";
import { IntellistorError } from "../errors.ts";

/**
 * Where the agent keeps locks and local logs when not told otherwise:
 * %ProgramData%\Intellistor on Windows (SYSTEM has no user profile worth
 * using), /var/lib/intellistor for root, else the user's XDG state directory.
 */
export function defaultStateDir(env: Record<string, string | undefined>): string {
  const configured = env.INTELLISTOR_STATE_DIR;
  if (configured) {
    // Relative, the lock would depend on the working directory: a run by hand
    // and the scheduler's would not see each other's lock.
    if (!isFullyQualified(configured)) {
      throw new IntellistorError(
        "USAGE",
        `INTELLISTOR_STATE_DIR must be an absolute path, got "${configured}"`,
        "The scheduler starts the agent in another working directory: give a full path, " +
          (Deno.build.os === "windows"
            ? 'e.g. "C:\\ProgramData\\Intellistor".'
            : 'e.g. "/var/lib/intellistor".'),
      );
    }
    return configured;
  }
  if (Deno.build.os === "windows") {
    return path.join(env.ProgramData ?? env.PROGRAMDATA ?? "C:\\ProgramData", "Intellistor");
  }
  if (Deno.uid() === 0) return "/var/lib/intellistor";
  const stateHome = env.XDG_STATE_HOME || path.join(env.HOME ?? "/tmp", ".local", "state");
  return path.join(stateHome, "intellistor");
}

/**
 * An absolute path that names its volume too: on Windows "\dir" is relative
 * to the current drive, so only "C:\…" and "\\server\share\…" qualify.
 */
export function isFullyQualified(value: string): boolean {
  if (Deno.build.os !== "windows") return path.isAbsolute(value);
  return /^[A-Za-z]:[\\/]|^[\\/]{2}[^\\/]/.test(value);
}
