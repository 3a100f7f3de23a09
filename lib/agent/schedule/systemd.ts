/**
 * A policy as a systemd service + timer. systemd calendar expressions can
 * say everything a 5-field cron says, so nothing is refused here:
 * - each field becomes a list (`01,13`), a range (`09..17`) or `*`, never a
 *   repetition (`00/15`): systemd 252 (Debian 12) skips a repetition's
 *   first value once a larger unit rolls over (`*:00/7` goes from 23:56 to
 *   00:07, missing 00:00; systemd issues 22665, 40260), a list it does not;
 * - systemd ANDs the weekday and the date inside one expression, while
 *   Vixie cron ORs them when both day fields are restricted: then there are
 *   two `OnCalendar=` lines (a timer fires on the union of its lines);
 * - times are local, as in cron; `Persistent=true` catches up a run missed
 *   while the machine was off.
 *
 * @module
 */
import { consecutiveRuns, type CronSchedule } from "../../policy/cron.ts";
import { cronDaySets, type DaySet } from "./day_sets.ts";
import { DEFAULT_TIME_LIMIT, timeLimitSeconds } from "./time_limit.ts";

/** The two unit files of a policy. */
export interface SystemdUnits {
  /** `intellistor-<policy_id>`, without a suffix. */
  name: string;
  /** The `.service` file's text. */
  service: string;
  /** The `.timer` file's text. */
  timer: string;
  /** The timer's calendar expressions, one per `OnCalendar=` line. */
  onCalendar: string[];
}

/** What the service runs, and for which manager. */
export interface SystemdUnitOptions {
  policyId: string;
  /** argv: the program (an absolute path), then its arguments. */
  command: string[];
  workingDirectory: string;
  /** System units wait for the network; the user manager has no network-online.target. */
  scope?: "user" | "system";
  /** How long a run may last (0: no limit); 12 hours by default. */
  timeLimitSeconds?: number;
}

/** `intellistor-<policy_id>`: the units' name without suffix. */
export function unitName(policyId: string): string {
  return `intellistor-${policyId}`;
}

/** The service and timer for a policy. */
export function systemdUnits(schedule: CronSchedule, options: SystemdUnitOptions): SystemdUnits {
  const name = unitName(options.policyId);
  const onCalendar = onCalendarExpressions(schedule);
  const timeLimit = options.timeLimitSeconds ?? timeLimitSeconds(DEFAULT_TIME_LIMIT);
  const network = options.scope === "system"
    // A catch-up run at boot (Persistent=true) must not start before the network is up.
    ? ["Wants=network-online.target", "After=network-online.target"]
    : [];
  const service = [
    `# Written by "intellistor schedule install" for the policy "${options.policyId}".`,
    "[Unit]",
    `Description=Intellistor backup of policy ${options.policyId}`,
    ...network,
    "",
    "[Service]",
    "Type=oneshot",
    // A oneshot service has no start timeout by default: one stuck run (a hung
    // mount) would keep the unit active and silently swallow every later
    // trigger. At the limit systemd sends SIGTERM, which the agent handles like
    // Ctrl+C: it stops the backup, logs the run and exits 130.
    `TimeoutStartSec=${timeLimit === 0 ? "infinity" : timeLimit}`,
    `WorkingDirectory=${escapeSpecifiers(checkOneLine(options.workingDirectory))}`,
    `ExecStart=${execStart(options.command)}`,
    "",
  ].join("\n");
  const timer = [
    `# Written by "intellistor schedule install" for the policy "${options.policyId}".`,
    "[Unit]",
    `Description=Intellistor backup schedule of policy ${options.policyId} (cron ${
      escapeSpecifiers(schedule.expression)
    })`,
    "",
    "[Timer]",
    ...onCalendar.map((expression) => `OnCalendar=${expression}`),
    "Persistent=true",
    `Unit=${name}.service`,
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
  return { name, service, timer, onCalendar };
}

/** The cron schedule as systemd calendar expressions (their union is the schedule). */
export function onCalendarExpressions(schedule: CronSchedule): string[] {
  const time = `${field(schedule.hours, 0, 23)}:${field(schedule.minutes, 0, 59)}:00`;
  return cronDaySets(schedule).map((set) => `${dayPart(set)} ${time}`);
}

/** An ExecStart= value: the program, then its arguments, each quoted for systemd. */
export function execStart(argv: string[]): string {
  const [program, ...args] = argv;
  return [
    quoteSystemdArgument(program, { program: true }),
    ...args.map((arg) => quoteSystemdArgument(arg)),
  ]
    .join(" ");
}

/**
 * One ExecStart= word: bare when plain, else double-quoted with C escapes.
 * `%` (specifiers) is doubled; `$` (variable expansion) too, except in the
 * program's path, where systemd does not expand variables.
 */
export function quoteSystemdArgument(arg: string, options: { program?: boolean } = {}): string {
  const noSpecifiers = arg.replaceAll("%", "%%");
  const escaped = options.program ? noSpecifiers : noSpecifiers.replaceAll("$", "$$$$");
  if (/^[A-Za-z0-9_@+=:,.\/%$-]+$/.test(escaped) && escaped !== ";") return escaped;
  let quoted = '"';
  for (const char of escaped) {
    const code = char.codePointAt(0)!;
    if (char === "\\" || char === '"') quoted += `\\${char}`;
    else if (char === "\n") quoted += "\\n";
    else if (char === "\t") quoted += "\\t";
    else if (code < 0x20 || code === 0x7f) quoted += `\\x${code.toString(16).padStart(2, "0")}`;
    else quoted += char;
  }
  return quoted + '"';
}

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

function dayPart(set: DaySet): string {
  const months = field(set.months, 1, 12);
  switch (set.kind) {
    case "every_day":
      return `*-${months}-*`;
    case "weekdays":
      return `${weekdays(set.daysOfWeek)} *-${months}-*`;
    case "month_days":
      return `*-${months}-${field(set.daysOfMonth, 1, 31)}`;
    case "weekdays_and_month_days":
      return `${weekdays(set.daysOfWeek)} *-${months}-${field(set.daysOfMonth, 1, 31)}`;
  }
}

/** A calendar component: `*`, or a list of values and `a..b` ranges (see the module note). */
function field(values: number[], min: number, max: number): string {
  const pad = (value: number) => String(value).padStart(2, "0");
  if (values.length === max - min + 1) return "*";
  return consecutiveRuns(values).map(([first, last]) => {
    if (first === last) return pad(first);
    if (last === first + 1) return `${pad(first)},${pad(last)}`;
    return `${pad(first)}..${pad(last)}`;
  }).join(",");
}

function weekdays(days: number[]): string {
  return consecutiveRuns(days).map(([first, last]) => {
    if (first === last) return WEEKDAYS[first];
    if (last === first + 1) return `${WEEKDAYS[first]},${WEEKDAYS[last]}`;
    return `${WEEKDAYS[first]}..${WEEKDAYS[last]}`;
  }).join(",");
}

function escapeSpecifiers(text: string): string {
  return text.replaceAll("%", "%%");
}

function checkOneLine(text: string): string {
  if (/[\r\n]/.test(text)) throw new Error(`a unit file setting cannot hold a line break: ${text}`);
  return text;
}
