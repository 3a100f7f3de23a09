/**
 * The Windows Task Scheduler 1.2 task definition (XML) for a policy: its
 * cron as calendar triggers (task_triggers.ts), run whether anyone is logged
 * on or not (SYSTEM, or a named user with a stored password), catch-up of a
 * missed run, no overlap, no battery stop, a time limit, and one Exec action
 * running `<self> agent run --policy ABS --env-file ABS`.
 *
 * Element order follows the schema (MS-TSCH 2.5): the trigger base type is a
 * sequence (Enabled, StartBoundary, …, Repetition), the rest are xs:all.
 *
 * @module
 */
import { IntellistorError } from "../../errors.ts";
import type { CronSchedule } from "../../policy/cron.ts";
import { type TaskDays, type TaskTrigger, taskTriggers } from "./task_triggers.ts";
import { quoteWindowsArgument, windowsArguments } from "./windows_quote.ts";
import { DEFAULT_TIME_LIMIT, timeLimitSeconds } from "./time_limit.ts";
import { escapeXml } from "./xml.ts";

/** The Task Scheduler schema's namespace. */
export const TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task";
/** The well-known SID of LocalSystem, what "SYSTEM" registers as. */
export const SYSTEM_SID = "S-1-5-18";
/**
 * Triggers start on this local date. Any past date works (the schedule
 * applies from then on) and a fixed one keeps the XML reproducible, so the
 * golden files can compare it byte for byte. It has no time zone suffix:
 * the times are local, as in cron.
 */
export const START_DATE = "2026-01-01";

/** What the task runs and as whom. */
export interface WindowsTaskOptions {
  policyId: string;
  /** argv: the program, then its arguments. */
  command: string[];
  workingDirectory: string;
  /** Run-as account; default SYSTEM. A named user needs its password at registration. */
  user?: string;
  /** ISO 8601 duration; default PT12H. */
  executionTimeLimit?: string;
  description?: string;
}

/** `\Intellistor\<policy_id>`: the task's path in Task Scheduler. */
export function taskPath(policyId: string): string {
  return `\\Intellistor\\${policyId}`;
}

/** True for the names schtasks accepts for LocalSystem. */
export function isSystemAccount(user: string | undefined): boolean {
  if (user === undefined) return true;
  const upper = user.trim().toUpperCase();
  return upper === "SYSTEM" || upper === "NT AUTHORITY\\SYSTEM" || upper === SYSTEM_SID;
}

/**
 * The task XML (text; write it with `encodeUtf16LeWithBom`, as the
 * declaration says UTF-16).
 *
 * @throws IntellistorError SCHEDULE_UNSUPPORTED when the cron has no exact
 *   translation, USAGE for a bad time limit or a `%VAR%` in the command.
 */
export function windowsTaskXml(schedule: CronSchedule, options: WindowsTaskOptions): string {
  return renderTaskXml(taskTriggers(schedule), {
    ...options,
    description: options.description ?? taskDescription(options.policyId, schedule),
  });
}

/** The default RegistrationInfo Description: what the task is and where it came from. */
export function taskDescription(policyId: string, schedule: CronSchedule): string {
  return `Intellistor backup of policy "${policyId}" on the cron schedule ` +
    `"${schedule.expression}". Written by "intellistor schedule install"; ` +
    `check it with "intellistor schedule status".`;
}

/** The XML for already computed triggers. */
export function renderTaskXml(triggers: TaskTrigger[], options: WindowsTaskOptions): string {
  const [program, ...args] = options.command;
  if (program === undefined || program === "") {
    throw new IntellistorError("INTERNAL", "The scheduled command is empty", "");
  }
  checkNoEnvironmentReference([...options.command, options.workingDirectory]);
  const timeLimit = options.executionTimeLimit ?? DEFAULT_TIME_LIMIT;
  timeLimitSeconds(timeLimit);
  const e = escapeXml;
  const lines = [
    '<?xml version="1.0" encoding="UTF-16"?>',
    `<Task version="1.2" xmlns="${TASK_NAMESPACE}">`,
    "  <RegistrationInfo>",
    ...(options.description === undefined
      ? []
      : [`    <Description>${e(options.description)}</Description>`]),
    `    <URI>${e(taskPath(options.policyId))}</URI>`,
    "  </RegistrationInfo>",
    "  <Triggers>",
    ...triggers.flatMap(triggerLines),
    "  </Triggers>",
    "  <Principals>",
    '    <Principal id="Author">',
    ...principalLines(options.user),
    "    </Principal>",
    "  </Principals>",
    "  <Settings>",
    // Never two backups of one policy at once (the agent's lock is the second guard).
    "    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>",
    "    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>",
    "    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>",
    "    <AllowHardTerminate>true</AllowHardTerminate>",
    // A run missed while the server was off starts as soon as it is back.
    "    <StartWhenAvailable>true</StartWhenAvailable>",
    "    <AllowStartOnDemand>true</AllowStartOnDemand>",
    "    <Enabled>true</Enabled>",
    `    <ExecutionTimeLimit>${e(timeLimit)}</ExecutionTimeLimit>`,
    "    <Priority>7</Priority>",
    "  </Settings>",
    '  <Actions Context="Author">',
    "    <Exec>",
    // Quoted like the Task Scheduler UI writes a path with spaces.
    `      <Command>${e(quoteWindowsArgument(program))}</Command>`,
    ...(args.length === 0 ? [] : [`      <Arguments>${e(windowsArguments(args))}</Arguments>`]),
    `      <WorkingDirectory>${e(options.workingDirectory)}</WorkingDirectory>`,
    "    </Exec>",
    "  </Actions>",
    "</Task>",
  ];
  return lines.join("\n") + "\n";
}

/** UTF-16 little-endian with a byte order mark: what the XML declaration announces. */
export function encodeUtf16LeWithBom(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(2 + text.length * 2);
  bytes[0] = 0xff;
  bytes[1] = 0xfe;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    bytes[2 + 2 * i] = unit & 0xff;
    bytes[3 + 2 * i] = unit >> 8;
  }
  return bytes;
}

/** Minutes as an ISO 8601 duration: 15 → PT15M, 360 → PT6H, 1425 → PT23H45M. */
export function isoMinutes(minutes: number): string {
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return `PT${hours > 0 ? `${hours}H` : ""}${rest > 0 || hours === 0 ? `${rest}M` : ""}`;
}

/** Element names of daysOfWeekType, indexed by cron weekday (0 = Sunday). */
export const WEEKDAY_ELEMENTS = [
  "Sunday",
  "Monday",
  "Tuesday",
  "Wednesday",
  "Thursday",
  "Friday",
  "Saturday",
];
/** Element names of monthsType, indexed by month - 1. */
export const MONTH_ELEMENTS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

function triggerLines(trigger: TaskTrigger): string[] {
  const hours = String(Math.floor(trigger.startMinute / 60)).padStart(2, "0");
  const minutes = String(trigger.startMinute % 60).padStart(2, "0");
  const repetition = trigger.repetition === undefined ? [] : [
    "      <Repetition>",
    `        <Interval>${isoMinutes(trigger.repetition.intervalMinutes)}</Interval>`,
    `        <Duration>${isoMinutes(trigger.repetition.durationMinutes)}</Duration>`,
    "        <StopAtDurationEnd>false</StopAtDurationEnd>",
    "      </Repetition>",
  ];
  return [
    "    <CalendarTrigger>",
    "      <Enabled>true</Enabled>",
    `      <StartBoundary>${START_DATE}T${hours}:${minutes}:00</StartBoundary>`,
    ...repetition,
    ...scheduleLines(trigger.days),
    "    </CalendarTrigger>",
  ];
}

function scheduleLines(days: TaskDays): string[] {
  switch (days.kind) {
    case "daily":
      return [
        "      <ScheduleByDay>",
        "        <DaysInterval>1</DaysInterval>",
        "      </ScheduleByDay>",
      ];
    case "weekly":
      return [
        "      <ScheduleByWeek>",
        "        <WeeksInterval>1</WeeksInterval>",
        "        <DaysOfWeek>",
        ...days.daysOfWeek.map((day) => `          <${WEEKDAY_ELEMENTS[day]} />`),
        "        </DaysOfWeek>",
        "      </ScheduleByWeek>",
      ];
    case "monthly":
      return [
        "      <ScheduleByMonth>",
        "        <DaysOfMonth>",
        ...days.daysOfMonth.map((day) => `          <Day>${day}</Day>`),
        "        </DaysOfMonth>",
        "        <Months>",
        ...days.months.map((month) => `          <${MONTH_ELEMENTS[month - 1]} />`),
        "        </Months>",
        "      </ScheduleByMonth>",
      ];
  }
}

function principalLines(user: string | undefined): string[] {
  if (isSystemAccount(user)) {
    return [`      <UserId>${SYSTEM_SID}</UserId>`, "      <RunLevel>HighestAvailable</RunLevel>"];
  }
  return [
    `      <UserId>${escapeXml(user!.trim())}</UserId>`,
    // Password: runs whether the user is logged on or not, with network access (S4U has none).
    "      <LogonType>Password</LogonType>",
    "      <RunLevel>HighestAvailable</RunLevel>",
  ];
}

/** Task Scheduler expands %NAME% in Command, Arguments and WorkingDirectory. */
function checkNoEnvironmentReference(values: string[]): void {
  for (const value of values) {
    const match = /%[^%\s]+%/.exec(value);
    if (match !== null) {
      throw new IntellistorError(
        "USAGE",
        `The path "${value}" contains "${match[0]}", which Task Scheduler would replace ` +
          "with an environment variable's value",
        "Move or rename the file so that its path has no %…% part.",
      );
    }
  }
}
