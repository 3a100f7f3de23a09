/**
 * Installing, removing and reading a policy's systemd timer, through a
 * CommandRunner for every `systemctl` call.
 *
 * - install: write `<name>.service` and `<name>.timer` into the unit
 *   directory, `systemctl [--user] daemon-reload`, then
 *   `systemctl [--user] enable --now <name>.timer`.
 * - remove: `disable --now <name>.timer`, delete both files, `daemon-reload`.
 * - status: `show <name>.timer -p NextElapseUSecRealtime,LastTriggerUSec,ActiveState`
 *   and `show <name>.service -p ExecMainStatus,Result,ExecMainExitTimestamp`.
 *
 * @module
 */
import path from "node:path";
import { EXIT_CODE_MEANINGS, IntellistorError } from "../../errors.ts";
import type { CommandRunner } from "./runner.ts";
import { type SystemdUnits, unitName } from "./systemd.ts";

/** User units (the default) or system units. */
export type SystemdScope = "user" | "system";

/** Where systemd looks for units written by an administrator. */
export const SYSTEM_UNIT_DIR = "/etc/systemd/system";

/** The unit directory: `$XDG_CONFIG_HOME/systemd/user` (or `~/.config/…`) for user units. */
export function unitDirectory(
  scope: SystemdScope,
  env: Record<string, string | undefined>,
  systemDir = SYSTEM_UNIT_DIR,
): string {
  if (scope === "system") return systemDir;
  if (env.XDG_CONFIG_HOME) return path.join(env.XDG_CONFIG_HOME, "systemd", "user");
  if (!env.HOME) {
    throw new IntellistorError(
      "USAGE",
      "Cannot find your home directory (HOME is not set) for user units",
      "Set HOME, or install system-wide with --system (as root).",
    );
  }
  return path.join(env.HOME, ".config", "systemd", "user");
}

/** The two files of a policy's units in a directory. */
export function unitFiles(directory: string, policyId: string): { service: string; timer: string } {
  const name = unitName(policyId);
  return {
    service: path.join(directory, `${name}.service`),
    timer: path.join(directory, `${name}.timer`),
  };
}

/** Writes the units and enables the timer. Returns the files written. */
export async function installSystemdTimer(
  runner: CommandRunner,
  scope: SystemdScope,
  directory: string,
  units: SystemdUnits,
  policyId: string,
): Promise<{ service: string; timer: string }> {
  const files = unitFiles(directory, policyId);
  await Deno.mkdir(directory, { recursive: true });
  await Deno.writeTextFile(files.service, units.service);
  await Deno.writeTextFile(files.timer, units.timer);
  const hint = `The unit files are written (${files.timer}); fix the problem and run the ` +
    "same install again. " + busHint(scope);
  await systemctl(runner, scope, ["daemon-reload"], hint);
  await systemctl(runner, scope, ["enable", "--now", `${units.name}.timer`], hint);
  return files;
}

/** Stops and disables the timer and deletes both files. Returns the files deleted. */
export async function removeSystemdTimer(
  runner: CommandRunner,
  scope: SystemdScope,
  directory: string,
  policyId: string,
): Promise<string[]> {
  const files = unitFiles(directory, policyId);
  const present = await existing([files.timer, files.service]);
  if (present.length === 0) throw notInstalled(scope, files.timer);
  await systemctl(
    runner,
    scope,
    ["disable", "--now", `${unitName(policyId)}.timer`],
    busHint(scope),
  );
  for (const file of present) await Deno.remove(file);
  await systemctl(runner, scope, ["daemon-reload"], busHint(scope));
  return present;
}

/** The timer as systemd reports it. */
export interface SystemdStatus {
  timer: string;
  scheduler: "systemd";
  scope: SystemdScope;
  unit_files: { service: string; timer: string };
  on_calendar: string[];
  command: string | null;
  /** ActiveState of the timer: "active" while scheduled. */
  timer_state: string | null;
  next_run_time: string | null;
  last_trigger_time: string | null;
  /** Result of the last run: "success", "exit-code", … */
  last_result: string | null;
  last_exit_status: number | null;
  last_exit_time: string | null;
  /** The last run's outcome in words (this program's exit codes, systemd's results). */
  last_result_meaning: string;
}

/**
 * What the service's Result and ExecMainStatus say of the last run. Before
 * any run systemd reports Result=success and status 0: a service that never
 * exited (no ExecMainExitTimestamp) has not run since systemd started.
 */
export function systemdResultMeaning(
  result: string | null,
  exitStatus: number | null,
  exitTime: string | null,
): string {
  // systemd forgets the last run when it restarts (a reboot).
  if (!exitTime || exitTime === "n/a") return "has not run since systemd started";
  if (result === "success" || result === "exit-code") {
    const code = exitStatus ?? 0;
    return EXIT_CODE_MEANINGS[code] ?? `exit code ${code}`;
  }
  const results: Record<string, string> = {
    timeout: "stopped at the time limit (--time-limit)",
    signal: "killed by a signal",
    "core-dump": "crashed (core dump)",
    resources: "could not start (resources: user, directory or file missing?)",
    "start-limit-hit": "not started: too many starts in a short time",
  };
  return (result && results[result]) ?? `systemd result "${result ?? "unknown"}"`;
}

/** Reads the unit files and asks systemd for the timer's and service's state. */
export async function systemdStatus(
  runner: CommandRunner,
  scope: SystemdScope,
  directory: string,
  policyId: string,
): Promise<SystemdStatus> {
  const name = unitName(policyId);
  const files = unitFiles(directory, policyId);
  let timerText: string;
  try {
    timerText = await Deno.readTextFile(files.timer);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw notInstalled(scope, files.timer);
    throw error;
  }
  const serviceText = await Deno.readTextFile(files.service).catch(() => "");
  const timer = properties(
    await systemctl(runner, scope, [
      "show",
      `${name}.timer`,
      "-p",
      "NextElapseUSecRealtime,LastTriggerUSec,ActiveState",
    ], busHint(scope)),
  );
  const service = properties(
    await systemctl(runner, scope, [
      "show",
      `${name}.service`,
      "-p",
      "ExecMainStatus,Result,ExecMainExitTimestamp",
    ], busHint(scope)),
  );
  const exitStatus = service.ExecMainStatus === undefined ? null : Number(service.ExecMainStatus);
  return {
    timer: `${name}.timer`,
    scheduler: "systemd",
    scope,
    unit_files: files,
    on_calendar: settingValues(timerText, "OnCalendar"),
    command: settingValues(serviceText, "ExecStart")[0] ?? null,
    timer_state: timer.ActiveState || null,
    next_run_time: timer.NextElapseUSecRealtime || null,
    last_trigger_time: timer.LastTriggerUSec || null,
    last_result: service.Result || null,
    last_exit_status: Number.isInteger(exitStatus) ? exitStatus : null,
    last_exit_time: service.ExecMainExitTimestamp || null,
    last_result_meaning: systemdResultMeaning(
      service.Result || null,
      Number.isInteger(exitStatus) ? exitStatus : null,
      service.ExecMainExitTimestamp || null,
    ),
  };
}

/** `systemctl [--user] <args>`; its stdout, or SCHEDULER_FAILED with its message. */
async function systemctl(
  runner: CommandRunner,
  scope: SystemdScope,
  args: string[],
  hint: string,
): Promise<string> {
  const fullArgs = scope === "user" ? ["--user", ...args] : args;
  const result = await runner.run("systemctl", fullArgs);
  if (result.code !== 0) {
    const said = (result.stderr.trim() || result.stdout.trim() || "(no message)").slice(0, 2000);
    throw new IntellistorError(
      "SCHEDULER_FAILED",
      `systemctl ${fullArgs.join(" ")} failed (exit code ${result.code}): ${said}`,
      hint,
    );
  }
  return result.stdout;
}

function busHint(scope: SystemdScope): string {
  return scope === "user"
    ? "User units need your systemd user session (log in on a console or over SSH, not " +
      "through su/sudo); or install system-wide with --system as root, or print a crontab " +
      "line with --print."
    : "System units need root: run it with sudo.";
}

function notInstalled(scope: SystemdScope, file: string): IntellistorError {
  return new IntellistorError(
    "SCHEDULE_NOT_FOUND",
    `No ${scope} timer is installed for this policy (${file} does not exist)`,
    scope === "user"
      ? "If it was installed with --system, add --system."
      : "If it was installed for a user, leave out --system and run it as that user.",
  );
}

/** `Key=Value` lines of `systemctl show`. */
function properties(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) result[line.slice(0, equals)] = line.slice(equals + 1).trim();
  }
  return result;
}

/** The values of `Key=` lines in a unit file. */
function settingValues(text: string, key: string): string[] {
  return text.split("\n")
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));
}

async function existing(files: string[]): Promise<string[]> {
  const present: string[] = [];
  for (const file of files) {
    try {
      await Deno.lstat(file);
      present.push(file);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return present;
}
