/**
 * `intellistor schedule install | remove | status`: hands a policy to the OS
 * scheduler (Windows Task Scheduler, or a systemd timer / crontab line on
 * Linux), which then runs `<self> agent run --policy ABS --env-file ABS`
 * on the policy's cron schedule.
 */
import path from "node:path";
import { defaultStateDir } from "../agent/state_dir.ts";
import { crontabLine } from "../agent/schedule/crontab.ts";
import { type CommandRunner, denoCommandRunner } from "../agent/schedule/runner.ts";
import {
  installWindowsTask,
  removeWindowsTask,
  schtasksPath,
  windowsTaskStatus,
} from "../agent/schedule/schtasks.ts";
import {
  installSystemdTimer,
  removeSystemdTimer,
  SYSTEM_UNIT_DIR,
  type SystemdScope,
  systemdStatus,
  unitDirectory,
} from "../agent/schedule/systemctl.ts";
import { onCalendarExpressions, systemdUnits, unitName } from "../agent/schedule/systemd.ts";
import { describeTrigger, taskTriggers } from "../agent/schedule/task_triggers.ts";
import { DEFAULT_TIME_LIMIT, timeLimitSeconds } from "../agent/schedule/time_limit.ts";
import {
  isSystemAccount,
  renderTaskXml,
  taskDescription,
  taskPath,
} from "../agent/schedule/windows_task.ts";
import { quoteWindowsArgument, windowsArguments } from "../agent/schedule/windows_quote.ts";
import { loadEnvironment } from "../config/env.ts";
import { IntellistorError } from "../errors.ts";
import { type CronSchedule, parseCron } from "../policy/cron.ts";
import { readPolicy } from "../policy/policy.ts";
import { parseFlags, required } from "./args.ts";
import { type CliIo, printJson } from "./io.ts";
import { commandLine, detectShell } from "./shell_quote.ts";

export const scheduleHelp =
  `Usage: intellistor schedule install --policy FILE --env-file FILE [flags]
       intellistor schedule status  (--policy FILE | --id ID) [--system]
       intellistor schedule remove  (--policy FILE | --id ID) [--system]

Hands the policy to the OS scheduler, which then runs, on the policy's cron:
  <this program> agent run --policy <absolute FILE> --env-file <absolute .env>
Windows: the Task Scheduler task "\\Intellistor\\<policy id>", run as SYSTEM
(whether anyone is logged on or not); create it from an elevated prompt.
Linux: the systemd timer "intellistor-<policy id>.timer", or a crontab line.

  --policy FILE        the policy: its id names the task, its cron becomes the triggers
  --env-file FILE      the .env the scheduled runs read; required for install
                       (the scheduler does not pass on your shell's environment)
  --id ID              status/remove: the policy id, when the policy file is gone
  --print              install: print what would be installed (the task XML, or the
                       systemd units and a crontab line) and change nothing
  --time-limit DUR     install: the scheduler stops a run that lasts longer, so the
                       next one is not held up (ISO 8601, default ${DEFAULT_TIME_LIMIT}; PT0S: none)
Windows:
  --user NAME          run as this account instead of SYSTEM (needs --password-env)
  --password-env VAR   environment variable holding that account's password; it is
                       typed into schtasks' prompt, never put on a command line
Linux:
  --user-units         your user's timer in ~/.config/systemd/user (the default)
  --system             a system timer in ${SYSTEM_UNIT_DIR} (run as root)

Windows runs exactly the cron's times or refuses: every N minutes/hours, one or
more times a day, days of the week, days of the month (and months).
Exit codes: 0 ok, 1 the scheduler failed (SCHEDULER_FAILED, with its message),
2 usage or a cron Task Scheduler cannot run exactly (SCHEDULE_UNSUPPORTED),
10 no timer installed for the policy (Linux; SCHEDULE_NOT_FOUND).`;

/** What the tests replace: the OS, and where files go. */
export interface SchedulePlatform {
  /** Deno.build.os by default; "windows" selects Task Scheduler, anything else systemd. */
  os?: string;
  /** Directory of system units (default /etc/systemd/system). */
  systemUnitDir?: string;
  /** Directory for the temporary task XML (default: the system's). */
  tempDir?: string;
}

const FLAGS = {
  policy: { type: "string" },
  "env-file": { type: "string" },
  id: { type: "string" },
  print: { type: "boolean" },
  user: { type: "string" },
  "password-env": { type: "string" },
  "time-limit": { type: "string" },
  "user-units": { type: "boolean" },
  system: { type: "boolean" },
} as const;

type Flags = ReturnType<typeof parseFlags<typeof FLAGS>>;

/** `schedule <install|remove|status> …`; prints one JSON document. */
export async function scheduleCommand(
  argv: string[],
  io: CliIo,
  runner: CommandRunner = denoCommandRunner,
  platform: SchedulePlatform = {},
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "install" && sub !== "remove" && sub !== "status") {
    throw new IntellistorError(
      "USAGE",
      `schedule: unknown sub-command ${JSON.stringify(sub ?? "")}`,
      'Use "intellistor schedule install|status|remove --policy FILE" ' +
        '(see "intellistor schedule --help").',
    );
  }
  const command = `schedule ${sub}`;
  const flags = parseFlags(command, rest, FLAGS);
  const windows = (platform.os ?? Deno.build.os) === "windows";
  checkFlagsFitOs(command, flags, windows);
  if (sub === "install") {
    return windows
      ? await installOnWindows(command, flags, io, runner, platform)
      : await installOnLinux(command, flags, io, runner, platform);
  }
  const { policyId, schedule: policySchedule } = await policyIdOf(command, flags, io);
  const schtasks = schtasksPath(io.env);
  // remove and status need only the policy id: they work after the policy file is gone (--id).
  if (sub === "remove") {
    if (windows) {
      printJson(io, {
        removed: await removeWindowsTask(runner, schtasks, policyId),
        scheduler: "windows-task-scheduler",
      });
    } else {
      const scope = scopeOf(flags);
      const directory = unitDirectory(scope, io.env, platform.systemUnitDir);
      const deleted = await removeSystemdTimer(runner, scope, directory, policyId);
      printJson(io, {
        removed: `${unitName(policyId)}.timer`,
        scheduler: "systemd",
        scope,
        deleted_files: deleted,
      });
    }
    return 0;
  }
  if (windows) {
    const status = await windowsTaskStatus(runner, schtasks, policyId);
    const expected = (schedule: CronSchedule) => taskTriggers(schedule).map(describeTrigger);
    printJson(io, { ...status, ...scheduleCheck(policySchedule, status.triggers, expected) });
  } else {
    const scope = scopeOf(flags);
    const directory = unitDirectory(scope, io.env, platform.systemUnitDir);
    const status = await systemdStatus(runner, scope, directory, policyId);
    printJson(io, {
      ...status,
      ...scheduleCheck(policySchedule, status.on_calendar, onCalendarExpressions),
    });
  }
  return 0;
}

interface Prepared {
  policyId: string;
  schedule: CronSchedule;
  /** argv of the scheduled run. */
  run: string[];
  workingDirectory: string;
  checkCommand: string;
}

/** Everything install needs, checked before anything is written. */
async function prepare(
  command: string,
  flags: Flags,
  io: CliIo,
  windows: boolean,
): Promise<Prepared> {
  const policyPath = path.resolve(io.cwd, required(command, "policy", flags.policy));
  const envFlag = flags["env-file"];
  if (envFlag === undefined || envFlag === "") {
    throw new IntellistorError(
      "USAGE",
      `${command}: --env-file is required`,
      "The scheduler does not pass on your shell's environment: name the .env file that " +
        "holds the key and the storage credentials (e.g. C:\\intellistor\\.env or " +
        "/etc/intellistor/.env).",
    );
  }
  const policy = await readPolicy(policyPath, { requirePaths: false });
  // Names the missing file clearly (ENV_FILE_NOT_FOUND) and refuses a non-text one.
  const { env, envFile } = await loadEnvironment({}, { envFile: envFlag, cwd: io.cwd });
  // What every scheduled run would refuse is refused now (a relative INTELLISTOR_STATE_DIR).
  defaultStateDir(env);
  const schedule = parseCron(policy.schedule);
  const run = [...io.self, "agent", "run", "--policy", policyPath, "--env-file", envFile!];
  const status = [...io.self, "schedule", "status", "--policy", policyPath];
  return {
    policyId: policy.id,
    schedule,
    run,
    // The agent needs no working directory; the program's own is a stable, existing one.
    workingDirectory: (windows ? path.win32 : path.posix).dirname(io.self[0]),
    checkCommand: commandLine(status, detectShell(windows ? "windows" : "linux", io.env)),
  };
}

async function installOnWindows(
  command: string,
  flags: Flags,
  io: CliIo,
  runner: CommandRunner,
  platform: SchedulePlatform,
): Promise<number> {
  const prepared = await prepare(command, flags, io, true);
  const user = flags.user;
  let password: string | undefined;
  if (!isSystemAccount(user)) {
    const variable = flags["password-env"];
    if (variable === undefined) {
      throw new IntellistorError(
        "USAGE",
        `${command}: --user ${user} needs --password-env VAR`,
        "Task Scheduler stores the account's password to run the task while nobody is " +
          "logged on. Put it in an environment variable (e.g. $env:TASK_PASSWORD = …) and " +
          "pass --password-env TASK_PASSWORD.",
      );
    }
    password = io.env[variable];
    if (password === undefined || password === "") {
      throw new IntellistorError(
        "USAGE",
        `${command}: the environment variable ${variable} (--password-env) is not set`,
        `Set ${variable} to the password of ${user} in this shell, then run the command again.`,
      );
    }
  }
  const triggers = taskTriggers(prepared.schedule);
  const timeLimit = flags["time-limit"] ?? DEFAULT_TIME_LIMIT;
  const xml = renderTaskXml(triggers, {
    policyId: prepared.policyId,
    command: prepared.run,
    workingDirectory: prepared.workingDirectory,
    user,
    executionTimeLimit: timeLimit,
    description: taskDescription(prepared.policyId, prepared.schedule),
  });
  const [program, ...args] = prepared.run;
  const summary = {
    scheduler: "windows-task-scheduler",
    policy: prepared.policyId,
    cron: prepared.schedule.expression,
    triggers: triggers.map(describeTrigger),
    run_as: isSystemAccount(user) ? "SYSTEM" : user!.trim(),
    // Exactly what Task Scheduler starts: Command, then Arguments.
    command: `${quoteWindowsArgument(program)} ${windowsArguments(args)}`,
    working_directory: prepared.workingDirectory,
    time_limit: timeLimit,
  };
  if (flags.print) {
    printJson(io, { task: taskPath(prepared.policyId), ...summary, installed: false, xml });
    return 0;
  }
  const installed = await installWindowsTask({
    runner,
    schtasks: schtasksPath(io.env),
    policyId: prepared.policyId,
    xml,
    user,
    password,
    tempDir: platform.tempDir,
  });
  printJson(io, {
    installed,
    ...summary,
    xml: "given to schtasks as a temporary UTF-16 file, then deleted (see it with --print)",
    check: prepared.checkCommand,
  });
  return 0;
}

async function installOnLinux(
  command: string,
  flags: Flags,
  io: CliIo,
  runner: CommandRunner,
  platform: SchedulePlatform,
): Promise<number> {
  const prepared = await prepare(command, flags, io, false);
  const scope = scopeOf(flags);
  const timeLimit = flags["time-limit"] ?? DEFAULT_TIME_LIMIT;
  const limitSeconds = timeLimitSeconds(timeLimit);
  const units = systemdUnits(prepared.schedule, {
    policyId: prepared.policyId,
    command: prepared.run,
    workingDirectory: prepared.workingDirectory,
    scope,
    timeLimitSeconds: limitSeconds,
  });
  const crontab = crontabLine(prepared.schedule, prepared.run, limitSeconds);
  const summary = {
    scheduler: "systemd",
    scope,
    policy: prepared.policyId,
    cron: prepared.schedule.expression,
    on_calendar: units.onCalendar,
    command: commandLine(prepared.run, "sh"),
    time_limit: timeLimit,
  };
  if (flags.print) {
    printJson(io, {
      timer: `${units.name}.timer`,
      ...summary,
      installed: false,
      crontab,
      units: { name: units.name, service: units.service, timer: units.timer },
    });
    return 0;
  }
  const directory = unitDirectory(scope, io.env, platform.systemUnitDir);
  const files = await installSystemdTimer(runner, scope, directory, units, prepared.policyId);
  printJson(io, {
    installed: `${units.name}.timer`,
    ...summary,
    unit_files: files,
    check: prepared.checkCommand,
    notes: scope === "user"
      ? [
        "A user timer runs only while you have a session, unless lingering is on: " +
        "loginctl enable-linger " + (io.env.USER ?? "$USER"),
      ]
      : [],
  });
  return 0;
}

/** The policy id from --id, or from --policy with the policy's schedule. */
async function policyIdOf(
  command: string,
  flags: Flags,
  io: CliIo,
): Promise<{ policyId: string; schedule?: string }> {
  if (flags.id !== undefined && flags.policy !== undefined) {
    throw new IntellistorError("USAGE", `${command}: give --policy or --id, not both`, "");
  }
  if (flags.id !== undefined) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(flags.id)) {
      throw new IntellistorError(
        "USAGE",
        `${command}: "${flags.id}" is not a policy id`,
        "A policy id is letters, digits, '.', '_' and '-' (as in the policy's id: field).",
      );
    }
    return { policyId: flags.id };
  }
  const policyFile = required(command, "policy", flags.policy);
  const policy = await readPolicy(path.resolve(io.cwd, policyFile), { requirePaths: false });
  return { policyId: policy.id, schedule: policy.schedule };
}

/**
 * Whether the installed triggers are the policy's schedule now: a policy
 * whose `schedule:` was edited after `schedule install` still runs on the
 * old one until the task is installed again.
 */
function scheduleCheck(
  policySchedule: string | undefined,
  installed: string[],
  expected: (schedule: CronSchedule) => string[],
): Record<string, unknown> {
  if (policySchedule === undefined) return {};
  let wanted: string[] | undefined;
  try {
    wanted = expected(parseCron(policySchedule));
  } catch {
    wanted = undefined; // a cron this scheduler cannot run: not what is installed either
  }
  const matches = wanted !== undefined && wanted.length === installed.length &&
    wanted.every((item, i) => item === installed[i]);
  return {
    policy_schedule: policySchedule,
    schedule_matches_policy: matches,
    ...(matches ? {} : {
      note: "The policy's schedule differs from the installed one: run " +
        '"intellistor schedule install" again to apply it.',
    }),
  };
}

function scopeOf(flags: Flags): SystemdScope {
  return flags.system ? "system" : "user";
}

function checkFlagsFitOs(command: string, flags: Flags, windows: boolean): void {
  const misplaced = windows
    ? (["user-units", "system"] as const).filter((flag) => flags[flag] !== undefined)
    : (["user", "password-env"] as const).filter((flag) => flags[flag] !== undefined);
  if (flags.system && flags["user-units"]) {
    throw new IntellistorError(
      "USAGE",
      `${command}: --system and --user-units exclude each other`,
      "",
    );
  }
  if (misplaced.length > 0) {
    throw new IntellistorError(
      "USAGE",
      `${command}: ${misplaced.map((flag) => `--${flag}`).join(", ")} ` +
        `${misplaced.length === 1 ? "applies" : "apply"} only on ${windows ? "Linux" : "Windows"}`,
      `Run "intellistor schedule --help" for the flags of each system.`,
    );
  }
}
