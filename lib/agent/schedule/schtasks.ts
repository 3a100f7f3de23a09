/**
 * Registering, removing and reading a policy's task with `schtasks.exe`,
 * through a CommandRunner (so the exact argument vectors are testable).
 *
 * - install: the XML goes to a temporary file as UTF-16 LE with a BOM, then
 *   `schtasks /Create /XML <file> /TN \Intellistor\<id> /RU SYSTEM /F`
 *   (or `/RU <user> /RP *` with the password written to schtasks' prompt on
 *   stdin, so it never appears on a command line); the file is deleted.
 * - remove: `schtasks /Delete /TN … /F`.
 * - status: `schtasks /Query /TN … /XML` (the definition) and
 *   `schtasks /Query /TN … /V /FO CSV` (last/next run, last result).
 *
 * @module
 */
import { EXIT_CODE_MEANINGS, IntellistorError } from "../../errors.ts";
import { parseCsv } from "./csv.ts";
import type { CommandRunner } from "./runner.ts";
import { describeTrigger } from "./task_triggers.ts";
import { readTaskXml, type TaskDefinition } from "./task_xml_reader.ts";
import { encodeUtf16LeWithBom, isSystemAccount, taskPath } from "./windows_task.ts";

/** Where schtasks lives; an absolute path so that PATH cannot substitute another program. */
export function schtasksPath(env: Record<string, string | undefined>): string {
  const root = env.SystemRoot ?? env.SYSTEMROOT ?? env.windir ?? "C:\\Windows";
  return `${root}\\System32\\schtasks.exe`;
}

/** What registering needs. */
export interface WindowsInstallOptions {
  runner: CommandRunner;
  schtasks: string;
  policyId: string;
  xml: string;
  /** Run-as account; undefined or SYSTEM for LocalSystem. */
  user?: string;
  /** The named user's password (never for SYSTEM). */
  password?: string;
  /** Where the temporary XML file goes (default: the system's temp directory). */
  tempDir?: string;
}

/** Registers (or replaces, /F) the task. Returns the task path. */
export async function installWindowsTask(options: WindowsInstallOptions): Promise<string> {
  const name = taskPath(options.policyId);
  const system = isSystemAccount(options.user);
  if (!system && options.password === undefined) {
    throw new IntellistorError(
      "USAGE",
      `A task that runs as "${options.user}" needs that account's password`,
      "Put it in an environment variable and name it with --password-env VAR.",
    );
  }
  const file = await Deno.makeTempFile({
    dir: options.tempDir,
    prefix: "intellistor-task-",
    suffix: ".xml",
  });
  try {
    await Deno.writeFile(file, encodeUtf16LeWithBom(options.xml));
    const args = ["/Create", "/XML", file, "/TN", name];
    // "/RP *" makes schtasks ask for the password on its input.
    args.push(...(system ? ["/RU", "SYSTEM"] : ["/RU", options.user!.trim(), "/RP", "*"]));
    args.push("/F");
    const result = await options.runner.run(
      options.schtasks,
      args,
      system ? {} : { stdin: `${options.password}\r\n` },
    );
    if (result.code !== 0) {
      throw failed(
        "/Create",
        result,
        system
          ? "A task that runs as SYSTEM can only be created from an elevated prompt " +
            '("Run as administrator").'
          : "Check the account name (DOMAIN\\user or .\\user) and its password, and that " +
            "the account may log on as a batch job.",
      );
    }
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  return name;
}

/** Deletes the task. Returns the task path. */
export async function removeWindowsTask(
  runner: CommandRunner,
  schtasks: string,
  policyId: string,
): Promise<string> {
  const name = taskPath(policyId);
  const result = await runner.run(schtasks, ["/Delete", "/TN", name, "/F"]);
  if (result.code !== 0) {
    throw failed(
      "/Delete",
      result,
      `Check the name with: schtasks /Query /TN "${name}". ` +
        "Deleting a SYSTEM task needs an elevated prompt.",
    );
  }
  return name;
}

/** The task as Windows reports it. */
export interface WindowsTaskStatus {
  task: string;
  scheduler: "windows-task-scheduler";
  /** "Ready", "Running", "Disabled" (as schtasks words it, possibly localized). */
  status: string | null;
  next_run_time: string | null;
  last_run_time: string | null;
  last_result: string | null;
  last_result_meaning: string | null;
  triggers: string[];
  run_as: string | null;
  logon_type: string | null;
  command: string | null;
  working_directory: string | null;
  settings: Record<string, string>;
  /** How the CSV columns were found: by their English names, or by position. */
  columns: "by-name" | "by-position";
}

/** Reads the task's definition and its run state. */
export async function windowsTaskStatus(
  runner: CommandRunner,
  schtasks: string,
  policyId: string,
): Promise<WindowsTaskStatus> {
  const name = taskPath(policyId);
  const notInstalledHint = "Is it installed? Install it with: intellistor schedule install " +
    "--policy FILE --env-file FILE (from an elevated prompt).";
  const xmlResult = await runner.run(schtasks, ["/Query", "/TN", name, "/XML"]);
  if (xmlResult.code !== 0) throw failed("/Query /XML", xmlResult, notInstalledHint);
  let definition: TaskDefinition;
  try {
    definition = readTaskXml(xmlResult.stdout);
  } catch (error) {
    throw new IntellistorError(
      "SCHEDULER_FAILED",
      `schtasks /Query /XML returned a task definition that cannot be read: ${
        error instanceof Error ? error.message : String(error)
      }`,
      `Look at it with: schtasks /Query /TN "${name}" /XML`,
    );
  }
  const csvResult = await runner.run(schtasks, ["/Query", "/TN", name, "/V", "/FO", "CSV"]);
  if (csvResult.code !== 0) throw failed("/Query /V /FO CSV", csvResult, notInstalledHint);
  const state = runState(csvResult.stdout);
  const exec = definition.exec;
  return {
    task: name,
    scheduler: "windows-task-scheduler",
    status: state.status,
    next_run_time: state.nextRun,
    last_run_time: state.lastRun,
    last_result: state.lastResult,
    last_result_meaning: state.lastResult === null ? null : lastResultMeaning(state.lastResult),
    triggers: definition.triggers.map((read) =>
      read.trigger !== undefined
        ? describeTrigger(read.trigger)
        : `${read.type} starting ${read.startBoundary ?? "(no start)"}`
    ),
    run_as: definition.principal.userId ?? null,
    logon_type: definition.principal.logonType ?? null,
    command: exec === undefined
      ? null
      : [exec.command, exec.arguments].filter((part) => part).join(" "),
    working_directory: exec?.workingDirectory ?? null,
    settings: definition.settings,
    columns: state.columns,
  };
}

interface RunState {
  status: string | null;
  nextRun: string | null;
  lastRun: string | null;
  lastResult: string | null;
  columns: "by-name" | "by-position";
}

// schtasks' verbose CSV columns: HostName, TaskName, Next Run Time, Status, Logon Mode,
// Last Run Time, Last Result, … Header names are translated on non-English
// Windows, so the fixed positions are the fallback.
const POSITIONS = { nextRun: 2, status: 3, lastRun: 5, lastResult: 6 };

/** The run state from `/V /FO CSV` (one row per trigger; the run fields repeat). */
export function runState(csv: string): RunState {
  const [header, first] = parseCsv(csv);
  if (header === undefined || first === undefined) {
    return { status: null, nextRun: null, lastRun: null, lastResult: null, columns: "by-name" };
  }
  const index = (name: string) => header.findIndex((column) => column.trim() === name);
  const named = {
    nextRun: index("Next Run Time"),
    status: index("Status"),
    lastRun: index("Last Run Time"),
    lastResult: index("Last Result"),
  };
  const byName = Object.values(named).every((position) => position >= 0);
  const at = byName ? named : POSITIONS;
  const value = (position: number) => {
    const text = first[position]?.trim();
    return text === undefined || text === "" ? null : text;
  };
  return {
    status: value(at.status),
    nextRun: value(at.nextRun),
    lastRun: value(at.lastRun),
    lastResult: value(at.lastResult),
    columns: byName ? "by-name" : "by-position",
  };
}

const RESULT_MEANINGS: Record<number, string> = {
  ...EXIT_CODE_MEANINGS,
  0x41300: "ready (the task is about to run)",
  0x41301: "running now",
  0x41303: "has not run yet",
  0x41306: "terminated by the user or the time limit",
  0x8004131f: "an instance was already running, so this one did not start",
  0x80070002: "the program was not found (was the executable moved?)",
  0x8007010b: "the working directory does not exist",
};

/** What a "Last Result" value means: our exit codes and Task Scheduler's own. */
export function lastResultMeaning(value: string): string | null {
  const parsed = value.startsWith("0x") ? Number.parseInt(value, 16) : Number(value);
  if (!Number.isInteger(parsed)) return null;
  // schtasks prints HRESULTs as signed decimals.
  const code = parsed < 0 ? parsed + 2 ** 32 : parsed;
  return RESULT_MEANINGS[code] ?? `exit code ${code} (0x${code.toString(16)})`;
}

function failed(
  operation: string,
  result: { code: number; stdout: string; stderr: string },
  hint: string,
): IntellistorError {
  const said = (result.stderr.trim() || result.stdout.trim() || "(no message)").slice(0, 2000);
  return new IntellistorError(
    "SCHEDULER_FAILED",
    `schtasks ${operation} failed (exit code ${result.code}): ${said}`,
    hint,
  );
}
