/**
 * `schedule install | remove | status`: the Windows task XML and the systemd
 * units against golden files (parsed back and checked field by field), the
 * cron → trigger translation against cron's own semantics, the refusals, and
 * the exact argument vectors given to schtasks / systemctl.
 *
 * schtasks and systemctl run through a recording fake CommandRunner: there is
 * no Task Scheduler here, and Wine's schtasks is a stub (it accepts /Create
 * /XML and drops the triggers and actions; /Query prints nothing), so the
 * golden XML and its parse-back are the real check of what Windows receives.
 *
 * Set INTELLISTOR_UPDATE_GOLDEN=1 to rewrite the golden files (then review
 * the diff by eye: that review is what the golden files stand for).
 */
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CommandResult, CommandRunner, RunOptions } from "../lib/agent/schedule/runner.ts";
import { crontabLine } from "../lib/agent/schedule/crontab.ts";
import { onCalendarExpressions, systemdUnits } from "../lib/agent/schedule/systemd.ts";
import {
  describeTrigger,
  MAX_TRIGGERS,
  type TaskTrigger,
  taskTriggers,
} from "../lib/agent/schedule/task_triggers.ts";
import { isoDurationMinutes, readTaskXml } from "../lib/agent/schedule/task_xml_reader.ts";
import { encodeUtf16LeWithBom, windowsTaskXml } from "../lib/agent/schedule/windows_task.ts";
import { type CliIo } from "../lib/cli/io.ts";
import { run } from "../lib/cli/run.ts";
import { scheduleCommand, type SchedulePlatform } from "../lib/cli/schedule.ts";
import { IntellistorError } from "../lib/errors.ts";
import { type CronSchedule, nextRun, parseCron } from "../lib/policy/cron.ts";

const GOLDEN = fileURLToPath(new URL("./golden/", import.meta.url));
const UPDATE = Deno.env.get("INTELLISTOR_UPDATE_GOLDEN") === "1";

const WINDOWS_EXE = "C:\\Program Files\\Intellistor\\intellistor.exe";
const WINDOWS_POLICY = "C:\\dados\\Cópia de políticas\\p.yaml";
const WINDOWS_ENV = "C:\\intellistor\\.env";
const WINDOWS_COMMAND = [
  WINDOWS_EXE,
  "agent",
  "run",
  "--policy",
  WINDOWS_POLICY,
  "--env-file",
  WINDOWS_ENV,
];
const WINDOWS_ARGUMENTS =
  'agent run --policy "C:\\dados\\Cópia de políticas\\p.yaml" --env-file C:\\intellistor\\.env';

const MONTHS = [
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

/** Every supported form, with the triggers it must become (checked field by field). */
const WINDOWS_FORMS: {
  name: string;
  cron: string;
  triggers: { kind: string; start: string; interval?: string; duration?: string }[];
  days?: { daysOfWeek?: string[]; daysOfMonth?: string[]; months?: string[] };
}[] = [
  {
    name: "daily_one_time",
    cron: "0 2 * * *",
    triggers: [{ kind: "ScheduleByDay", start: "02:00" }],
  },
  {
    name: "daily_two_times",
    cron: "30 1,13 * * *",
    triggers: [{ kind: "ScheduleByDay", start: "01:30" }, {
      kind: "ScheduleByDay",
      start: "13:30",
    }],
  },
  {
    name: "daily_two_times_on_the_hour",
    cron: "0 2,14 * * *",
    triggers: [{ kind: "ScheduleByDay", start: "02:00" }, {
      kind: "ScheduleByDay",
      start: "14:00",
    }],
  },
  {
    name: "every_15_minutes",
    cron: "*/15 * * * *",
    triggers: [{ kind: "ScheduleByDay", start: "00:00", interval: "PT15M", duration: "PT23H45M" }],
  },
  {
    name: "every_6_hours",
    cron: "0 */6 * * *",
    triggers: [{ kind: "ScheduleByDay", start: "00:00", interval: "PT6H", duration: "PT18H" }],
  },
  {
    name: "every_15_minutes_9_to_17",
    cron: "*/15 9-17 * * *",
    triggers: [{ kind: "ScheduleByDay", start: "09:00", interval: "PT15M", duration: "PT8H45M" }],
  },
  {
    name: "every_10_minutes_two_ranges",
    cron: "*/10 8-11,14-17 * * *",
    triggers: [
      { kind: "ScheduleByDay", start: "08:00", interval: "PT10M", duration: "PT3H50M" },
      { kind: "ScheduleByDay", start: "14:00", interval: "PT10M", duration: "PT3H50M" },
    ],
  },
  {
    name: "weekdays",
    cron: "0 2 * * MON-FRI",
    triggers: [{ kind: "ScheduleByWeek", start: "02:00" }],
    days: { daysOfWeek: ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"] },
  },
  {
    name: "days_of_month",
    cron: "0 3 1,15 * *",
    triggers: [{ kind: "ScheduleByMonth", start: "03:00" }],
    days: {
      daysOfMonth: ["1", "15"],
      months: MONTHS,
    },
  },
  {
    name: "days_of_month_in_months",
    cron: "0 3 1 1,7 *",
    triggers: [{ kind: "ScheduleByMonth", start: "03:00" }],
    days: { daysOfMonth: ["1"], months: ["January", "July"] },
  },
  {
    name: "both_day_fields",
    cron: "0 2 1 * MON",
    triggers: [{ kind: "ScheduleByWeek", start: "02:00" }, {
      kind: "ScheduleByMonth",
      start: "02:00",
    }],
  },
];

// ---------------------------------------------------------------- golden XML

for (const form of WINDOWS_FORMS) {
  Deno.test(`Windows task XML for "${form.cron}" matches tests/golden/windows/${form.name}.xml`, async () => {
    const xml = windowsTaskXml(parseCron(form.cron), {
      policyId: "mvp-default",
      command: WINDOWS_COMMAND,
      workingDirectory: "C:\\Program Files\\Intellistor",
    });
    await compareGolden(`windows/${form.name}.xml`, xml);

    // Parsed back, field by field.
    const task = readTaskXml(xml);
    assert.equal(task.version, "1.2");
    assert.equal(task.namespace, "http://schemas.microsoft.com/windows/2004/02/mit/task");
    assert.equal(task.uri, "\\Intellistor\\mvp-default");
    assert.match(task.description ?? "", new RegExp(escapeRegExp(`"${form.cron}"`)));
    assert.equal(task.triggers.length, form.triggers.length);
    const triggerElements = parseTriggerElements(xml);
    form.triggers.forEach((expected, i) => {
      const read = task.triggers[i];
      assert.equal(read.type, "CalendarTrigger");
      assert.equal(read.enabled, true);
      assert.equal(read.startBoundary, `2026-01-01T${expected.start}:00`);
      assert.equal(read.repetition?.interval, expected.interval);
      assert.equal(read.repetition?.duration, expected.duration);
      if (expected.interval !== undefined) {
        assert.equal(read.repetition?.stopAtDurationEnd, "false");
      }
      assert.equal(triggerElements[i].schedule, expected.kind);
    });
    if (form.days?.daysOfWeek) {
      assert.deepEqual(triggerElements[0].daysOfWeek, form.days.daysOfWeek);
    }
    if (form.days?.daysOfMonth) {
      assert.deepEqual(triggerElements[0].daysOfMonth, form.days.daysOfMonth);
    }
    if (form.days?.months) assert.deepEqual(triggerElements[0].months, form.days.months);
    // The reader's model is the writer's model: nothing lost on the way.
    assert.deepEqual(
      task.triggers.map((read) => read.trigger),
      taskTriggers(parseCron(form.cron)),
    );
    assertStandardParts(task);
  });
}

Deno.test("Windows task XML for a named user: Password logon, a set time limit", async () => {
  const xml = windowsTaskXml(parseCron("0 2 * * *"), {
    policyId: "mvp-default",
    command: WINDOWS_COMMAND,
    workingDirectory: "C:\\Program Files\\Intellistor",
    user: "CORP\\svc-backup",
    executionTimeLimit: "PT4H",
    description: "Backup <of> \"docs\" & 'images'",
  });
  await compareGolden("windows/named_user.xml", xml);
  const task = readTaskXml(xml);
  assert.deepEqual(task.principal, {
    userId: "CORP\\svc-backup",
    logonType: "Password",
    runLevel: "HighestAvailable",
  });
  assert.equal(task.settings.ExecutionTimeLimit, "PT4H");
  assert.equal(task.description, "Backup <of> \"docs\" & 'images'");
});

/** What every generated task has: principal, settings, the action. */
function assertStandardParts(task: ReturnType<typeof readTaskXml>): void {
  assert.deepEqual(task.principal, {
    userId: "S-1-5-18",
    logonType: undefined,
    runLevel: "HighestAvailable",
  });
  assert.deepEqual(task.settings, {
    MultipleInstancesPolicy: "IgnoreNew",
    DisallowStartIfOnBatteries: "false",
    StopIfGoingOnBatteries: "false",
    AllowHardTerminate: "true",
    StartWhenAvailable: "true",
    AllowStartOnDemand: "true",
    Enabled: "true",
    ExecutionTimeLimit: "PT12H",
    Priority: "7",
  });
  assert.deepEqual(task.exec, {
    command: '"C:\\Program Files\\Intellistor\\intellistor.exe"',
    arguments: WINDOWS_ARGUMENTS,
    workingDirectory: "C:\\Program Files\\Intellistor",
  });
}

/**
 * A second, independent reading of the triggers by plain string splitting
 * (not the project's XML reader), for the schedule kind and the day and
 * month lists: a bug shared by the writer and the reader cannot hide.
 */
function parseTriggerElements(xml: string) {
  const between = (text: string, open: string, close: string) =>
    text.includes(open) ? text.split(open)[1].split(close)[0] : "";
  const emptyElements = (text: string) =>
    text.split("<").slice(1).map((tag) => tag.split(">")[0].trim())
      .filter((tag) => tag.endsWith("/")).map((tag) => tag.slice(0, -1).trim());
  return xml.split("<CalendarTrigger>").slice(1).map((chunk) => {
    const trigger = chunk.split("</CalendarTrigger>")[0];
    return {
      schedule: trigger.split("<ScheduleBy")[1]?.split(">")[0].replace(/^/, "ScheduleBy"),
      daysOfWeek: emptyElements(between(trigger, "<DaysOfWeek>", "</DaysOfWeek>")),
      daysOfMonth: trigger.split("<Day>").slice(1).map((part) => part.split("</Day>")[0]),
      months: emptyElements(between(trigger, "<Months>", "</Months>")),
    };
  });
}

Deno.test("the independent reader sees kinds, weekdays, days and months", () => {
  const options = { policyId: "p", command: ["C:\\i.exe"], workingDirectory: "C:\\" };
  assert.deepEqual(
    parseTriggerElements(windowsTaskXml(parseCron("0 3 1,15,31 * SAT,SUN"), options)),
    [
      {
        schedule: "ScheduleByWeek",
        daysOfWeek: ["Sunday", "Saturday"],
        daysOfMonth: [],
        months: [],
      },
      {
        schedule: "ScheduleByMonth",
        daysOfWeek: [],
        daysOfMonth: ["1", "15", "31"],
        months: MONTHS,
      },
    ],
  );
  assert.deepEqual(parseTriggerElements(windowsTaskXml(parseCron("0 3 1 2,12 *"), options)), [
    {
      schedule: "ScheduleByMonth",
      daysOfWeek: [],
      daysOfMonth: ["1"],
      months: ["February", "December"],
    },
  ]);
});

// ----------------------------------------------------------------- encoding

Deno.test("the file for schtasks is UTF-16 LE with a BOM, and says so", () => {
  const xml = windowsTaskXml(parseCron("0 2 * * *"), {
    policyId: "mvp-default",
    command: WINDOWS_COMMAND,
    workingDirectory: "C:\\Program Files\\Intellistor",
  });
  const bytes = encodeUtf16LeWithBom(xml);
  assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xfe]);
  assert.equal(bytes.length, 2 + xml.length * 2);
  assert.equal(new TextDecoder("utf-16le").decode(bytes.subarray(2)), xml);
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-16"?>\n'));
  // "ó" (U+00F3) as F3 00, "<" as 3C 00: little-endian code units.
  const at = xml.indexOf("ó");
  assert.deepEqual([...bytes.subarray(2 + 2 * at, 4 + 2 * at)], [0xf3, 0x00]);
  assert.deepEqual([...bytes.subarray(2, 4)], [0x3c, 0x00]);
  // Outside the BMP: a surrogate pair, each half little-endian.
  assert.deepEqual([...encodeUtf16LeWithBom("😀")], [0xff, 0xfe, 0x3d, 0xd8, 0x00, 0xde]);
});

// -------------------------------------------------- faithfulness vs cron

const SIMULATED_CRONS = [
  ...WINDOWS_FORMS.map((form) => form.cron),
  "@daily",
  "@hourly",
  "@weekly",
  "@monthly",
  "@yearly",
  "* * * * *",
  "5-10 9 * * *",
  "*/20 * * * *",
  "0 */5 * * *",
  "30 */2 * * *",
  "45 0-23/3 * * *",
  "0,30 8 * * *",
  "0,30 8-9 * * *",
  "0,20,45 0-7 1 * MON",
  "0 0 31 * *",
  "0 0 29 2 *",
  "0 12 * 6-8 *",
  "0 12 */2 * *",
  "15 4 1-7 * SAT,SUN",
  "0 23 * * FRI",
  "*/30 22-23 * * SUN",
  "0 2 1-31 * MON",
];

for (const cron of SIMULATED_CRONS) {
  Deno.test(`Windows triggers fire exactly when cron does: "${cron}"`, () => {
    const schedule = parseCron(cron);
    const triggers = taskTriggers(schedule);
    assert.ok(triggers.length <= MAX_TRIGGERS);
    // Through the XML and back, so the simulated triggers are what Windows reads.
    const read = readTaskXml(
      windowsTaskXml(schedule, { policyId: "p", command: ["C:\\i.exe"], workingDirectory: "C:\\" }),
    ).triggers.map((trigger) => trigger.trigger!);
    const days = schedule.minutes.length * schedule.hours.length > 24 ? 70 : 800;
    const from = new Date(2027, 0, 1);
    assert.deepEqual(simulateTaskScheduler(read, from, days), cronFirings(schedule, from, days));
  });
}

/**
 * Task Scheduler's behaviour as documented: a calendar trigger fires on its
 * days at StartBoundary's time, then every Interval up to and INCLUDING
 * start + Duration (IRepetitionPattern: 1 min interval, 4 min duration → 5 runs).
 */
function simulateTaskScheduler(triggers: TaskTrigger[], from: Date, days: number): string[] {
  const firings = new Set<string>();
  for (let day = 0; day < days; day++) {
    const date = new Date(from.getFullYear(), from.getMonth(), from.getDate() + day);
    for (const trigger of triggers) {
      const on = trigger.days.kind === "daily" ||
        (trigger.days.kind === "weekly" && trigger.days.daysOfWeek.includes(date.getDay())) ||
        (trigger.days.kind === "monthly" && trigger.days.daysOfMonth.includes(date.getDate()) &&
          trigger.days.months.includes(date.getMonth() + 1));
      if (!on) continue;
      const { intervalMinutes = 1, durationMinutes = 0 } = trigger.repetition ?? {};
      for (let offset = 0; offset <= durationMinutes; offset += intervalMinutes) {
        const at = new Date(
          date.getFullYear(),
          date.getMonth(),
          date.getDate(),
          0,
          trigger.startMinute + offset,
        );
        // A repetition that spills past the window is still a (wrong) firing inside it.
        if (at < new Date(from.getFullYear(), from.getMonth(), from.getDate() + days)) {
          firings.add(stamp(at));
        }
      }
    }
  }
  return [...firings].sort();
}

/** When cron fires, by lib/policy/cron.ts's own nextRun. */
function cronFirings(schedule: CronSchedule, from: Date, days: number): string[] {
  const end = new Date(from.getFullYear(), from.getMonth(), from.getDate() + days);
  const firings: string[] = [];
  for (
    let at = nextRun(schedule, new Date(from.getTime() - 60_000));
    at < end;
    at = nextRun(schedule, at)
  ) {
    firings.push(stamp(at));
  }
  return firings;
}

function stamp(date: Date): string {
  const two = (value: number) => String(value).padStart(2, "0");
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${
    two(date.getHours())
  }:${two(date.getMinutes())}`;
}

Deno.test("the simulation catches a repetition that spills into the next day", () => {
  // What a P1D duration would do on a weekly trigger: Friday's series reaches Saturday 00:00.
  const wrong: TaskTrigger[] = [{
    startMinute: 0,
    repetition: { intervalMinutes: 15, durationMinutes: 1440 },
    days: { kind: "weekly", daysOfWeek: [5] },
  }];
  const schedule = parseCron("*/15 * * * FRI");
  const from = new Date(2027, 0, 1);
  assert.notDeepEqual(simulateTaskScheduler(wrong, from, 14), cronFirings(schedule, from, 14));
  assert.deepEqual(
    simulateTaskScheduler(taskTriggers(schedule), from, 14),
    cronFirings(schedule, from, 14),
  );
});

Deno.test("the cap is exact: 48 triggers are accepted, more are refused", () => {
  assert.equal(taskTriggers(parseCron("0,20,45 0-7 1 * MON")).length, 48);
  assertUnsupported("0,20,45 0-8 1 * MON", /54 triggers/);
});

Deno.test("trigger summaries say when the task runs", () => {
  assert.deepEqual(taskTriggers(parseCron("*/15 9-17 * * MON-FRI")).map(describeTrigger), [
    "every Mon,Tue,Wed,Thu,Fri at 09:00, then every 15 min until 17:45",
  ]);
  assert.deepEqual(taskTriggers(parseCron("0 3 1 1,7 *")).map(describeTrigger), [
    "day 1 of Jan,Jul at 03:00",
  ]);
  assert.deepEqual(taskTriggers(parseCron("0 */6 * * *")).map(describeTrigger), [
    "every day at 00:00, then every 6 hours until 18:00",
  ]);
});

Deno.test("isoDurationMinutes reads whole-minute durations only", () => {
  assert.equal(isoDurationMinutes("PT23H45M"), 1425);
  assert.equal(isoDurationMinutes("P1D"), 1440);
  assert.equal(isoDurationMinutes("PT6H"), 360);
  assert.equal(isoDurationMinutes("PT90S"), undefined);
  assert.equal(isoDurationMinutes("PT"), undefined);
});

// ------------------------------------------------------------------- refusals

function assertUnsupported(cron: string, why: RegExp): void {
  assert.throws(
    () => taskTriggers(parseCron(cron)),
    (error: unknown) => {
      assert.ok(error instanceof IntellistorError);
      assert.equal(error.code, "SCHEDULE_UNSUPPORTED");
      assert.equal(error.exitCode, 2);
      assert.ok(error.message.includes(`"${cron}"`), error.message);
      assert.match(error.message, why);
      // The hint lists the supported forms with examples.
      for (
        const example of ['"0 2 * * *"', '"*/15 * * * *"', '"0 2 * * MON-FRI"', '"0 3 1,15 * *"']
      ) {
        assert.ok(error.hint.includes(example), `hint lacks ${example}`);
      }
      return true;
    },
  );
}

Deno.test("refused: minutes that do not divide the hour (*/7)", () => {
  assertUnsupported("*/7 * * * *", /not evenly spaced.*48/);
});

Deno.test("refused: an irregular set of minutes every hour (5-10)", () => {
  assertUnsupported("5-10 * * * *", /144 times of day/);
});

Deno.test("refused: more triggers than Task Scheduler allows", () => {
  assertUnsupported("0,20,45 * * * *", /72 times of day.*48/);
});

Deno.test("refused: weekdays limited to some months, and ANDed day lists", () => {
  assertUnsupported("0 2 * 6-8 MON", /days of the week to some months/);
  assertUnsupported("0 0 */2 * MON", /BOTH the day-of-month list and the weekday list/);
});

// ------------------------------------------------------------ systemd, cron

const LINUX_COMMAND = [
  "/opt/intellistor/intellistor",
  "agent",
  "run",
  "--policy",
  "/srv/políticas/Cópia de p.yaml",
  "--env-file",
  "/etc/intellistor/.env",
];

const SYSTEMD_FORMS = [
  { name: "daily", cron: "0 2 * * *", scope: "user" as const, onCalendar: ["*-*-* 02:00:00"] },
  {
    name: "every_15_minutes_weekdays",
    cron: "*/15 9-17 * * MON-FRI",
    scope: "user" as const,
    onCalendar: ["Mon..Fri *-*-* 09..17:00,15,30,45:00"],
  },
  {
    name: "both_day_fields",
    cron: "0 2 1,15 * MON",
    scope: "system" as const,
    onCalendar: ["Mon *-*-* 02:00:00", "*-*-01,15 02:00:00"],
  },
  {
    name: "days_of_month_in_months",
    cron: "30 1,13 1 1,7 *",
    scope: "user" as const,
    onCalendar: ["*-01,07-01 01,13:30:00"],
  },
];

for (const form of SYSTEMD_FORMS) {
  Deno.test(`systemd units for "${form.cron}" match tests/golden/systemd/${form.name}.*`, async () => {
    const units = systemdUnits(parseCron(form.cron), {
      policyId: "mvp-default",
      command: LINUX_COMMAND,
      workingDirectory: "/opt/intellistor",
      scope: form.scope,
    });
    assert.equal(units.name, "intellistor-mvp-default");
    await compareGolden(`systemd/${form.name}.service`, units.service);
    await compareGolden(`systemd/${form.name}.timer`, units.timer);
    // Parsed back, key by key.
    const timer = parseUnit(units.timer);
    assert.deepEqual(timer.Timer.OnCalendar, form.onCalendar);
    assert.deepEqual(timer.Timer.Persistent, ["true"]);
    assert.deepEqual(timer.Timer.Unit, ["intellistor-mvp-default.service"]);
    assert.deepEqual(timer.Install.WantedBy, ["timers.target"]);
    const service = parseUnit(units.service);
    assert.deepEqual(service.Service.Type, ["oneshot"]);
    assert.deepEqual(service.Service.WorkingDirectory, ["/opt/intellistor"]);
    assert.deepEqual(service.Service.ExecStart, [
      '/opt/intellistor/intellistor agent run --policy "/srv/políticas/Cópia de p.yaml" ' +
      "--env-file /etc/intellistor/.env",
    ]);
    assert.deepEqual(
      service.Unit.After,
      form.scope === "system" ? ["network-online.target"] : undefined,
    );
  });
}

function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let section = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    if (line.startsWith("[")) {
      section = line.slice(1, -1);
      sections[section] = {};
      continue;
    }
    const equals = line.indexOf("=");
    const key = line.slice(0, equals);
    (sections[section][key] ??= []).push(line.slice(equals + 1));
  }
  return sections;
}

Deno.test("systemd calendar fields: lists and ranges, never a repetition (systemd 252 skips after a rollover)", () => {
  assert.deepEqual(onCalendarExpressions(parseCron("0-30/10 9-13/2 * * *")), [
    "*-*-* 09,11,13:00,10,20,30:00",
  ]);
  assert.deepEqual(onCalendarExpressions(parseCron("*/15 */6 */2 * *")), [
    "*-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 00,06,12,18:00,15,30,45:00",
  ]);
  assert.deepEqual(onCalendarExpressions(parseCron("5 4 * 3-5,9 SAT,SUN")), [
    "Sun,Sat *-03..05,09-* 04:05:00",
  ]);
  assert.deepEqual(onCalendarExpressions(parseCron("0 0 */2 * MON-WED")), [
    "Mon..Wed *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 00:00:00",
  ]);
});

Deno.test("systemd ExecStart quoting: specifiers, variables, quotes and backslashes", () => {
  const units = systemdUnits(parseCron("0 2 * * *"), {
    policyId: "p",
    command: ["/opt/a$b/intellistor", "100%", "$HOME", 'say "hi"', "back\\slash", "tab\there"],
    workingDirectory: "/opt/50%",
  });
  const service = parseUnit(units.service);
  assert.deepEqual(service.Service.ExecStart, [
    '/opt/a$b/intellistor 100%% $$HOME "say \\"hi\\"" "back\\\\slash" "tab\\there"',
  ]);
  assert.deepEqual(service.Service.WorkingDirectory, ["/opt/50%%"]);
});

Deno.test("crontab line: the cron, the time limit, then the command quoted for sh, % escaped", () => {
  assert.equal(
    crontabLine(parseCron("0  2 * * *"), LINUX_COMMAND, 43200),
    "0 2 * * * timeout -k 90 43200 /opt/intellistor/intellistor agent run " +
      "--policy '/srv/políticas/Cópia de p.yaml' --env-file /etc/intellistor/.env",
  );
  // PT0S: no limit, no timeout.
  assert.equal(
    crontabLine(parseCron("@daily"), ["/opt/i", "--policy", "/srv/100% p.yaml"], 0),
    "@daily /opt/i --policy '/srv/100\\% p.yaml'",
  );
});

const systemdAnalyze = await hasCommand("systemd-analyze");

async function hasCommand(program: string): Promise<boolean> {
  try {
    const output = await new Deno.Command(program, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return output.success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "systemd itself computes the same next runs as cron (systemd-analyze calendar)",
  ignore: !systemdAnalyze,
  fn: async () => {
    // Now, and just before a year ends, when every larger unit rolls over
    // (systemd 252 skipped 00:00 of `*:00/7` there; repetitions are no longer written).
    for (const base of [undefined, new Date(2026, 11, 31, 23, 50)]) {
      await compareWithSystemd(base);
    }
  },
});

async function compareWithSystemd(base: Date | undefined): Promise<void> {
  {
    for (
      const cron of [
        "0 2 * * *",
        "*/15 9-17 * * MON-FRI",
        "0 2 1,15 * MON",
        "30 1,13 1 1,7 *",
        "*/7 * * * *",
        "5-10 * * * *",
        "0 0 */2 * MON",
        "0 12 * 6-8 MON",
        "0 0 29 2 *",
        "45 0-23/3 * * *",
        "0-30/10 9-13/2 * * *",
        "5 4 * 3-5,9 SAT,SUN",
      ]
    ) {
      const schedule = parseCron(cron);
      const iterations = 30;
      const output = await new Deno.Command("systemd-analyze", {
        args: [
          "calendar",
          `--iterations=${iterations}`,
          ...(base ? [`--base-time=${stamp(base)}:00`] : []),
          ...onCalendarExpressions(schedule),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(output.success, new TextDecoder().decode(output.stderr));
      const now = base ?? new Date();
      const fromSystemd = [
        ...new TextDecoder().decode(output.stdout).matchAll(
          /(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d):00/g,
        ),
      ].map((match) => match[1]);
      const merged = [...new Set(fromSystemd)].sort().slice(0, iterations);
      // Skip the next two minutes: "now" differs slightly between the two computations.
      const after = new Date(now.getTime() + 120_000);
      const expected: string[] = [];
      for (
        let at = nextRun(schedule, after);
        expected.length < iterations;
        at = nextRun(schedule, at)
      ) {
        expected.push(stamp(at));
      }
      const comparable = merged.filter((time) => time > stamp(after));
      assert.ok(comparable.length >= iterations - 5, cron);
      assert.deepEqual(comparable, expected.slice(0, comparable.length), `${cron} from ${base}`);
    }
  }
}

// -------------------------------------------------- the command, through the seam

interface Call {
  program: string;
  args: string[];
  stdin?: string;
}

/** Records every call; answers with the scripted results (code 0, empty output by default). */
class RecordingRunner implements CommandRunner {
  calls: Call[] = [];
  #answers: ((call: Call) => Partial<CommandResult> | Promise<Partial<CommandResult>>)[];
  constructor(
    ...answers: ((call: Call) => Partial<CommandResult> | Promise<Partial<CommandResult>>)[]
  ) {
    this.#answers = answers;
  }
  async run(program: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
    const call = {
      program,
      args,
      ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
    };
    this.calls.push(call);
    const answer = await (this.#answers.shift()?.(call) ?? {});
    return { code: 0, stdout: "", stderr: "", ...answer };
  }
}

interface World {
  dir: string;
  policy: string;
  envFile: string;
  tempDir: string;
  out: () => Record<string, unknown>;
  error: () => { code: string; message: string; hint: string; exit_code: number };
  io: CliIo;
  stdout: string[];
  stderr: string[];
}

async function world(cron = "0 2 * * MON-FRI", env: Record<string, string> = {}): Promise<World> {
  const dir = await Deno.makeTempDir({ prefix: "intellistor-schedule-" });
  const source = path.join(dir, "Cópia de dados");
  await Deno.mkdir(source);
  const policy = path.join(dir, "Cópia de políticas", "p.yaml");
  await Deno.mkdir(path.dirname(policy));
  await Deno.writeTextFile(
    policy,
    `id: sched-test\npaths:\n  - ${JSON.stringify(source)}\nschedule: "${cron}"\n` +
      "destination:\n  type: local\n  path: /tmp/nowhere\n",
  );
  const envFile = path.join(dir, "config", ".env");
  await Deno.mkdir(path.dirname(envFile));
  await Deno.writeTextFile(envFile, "INTELLISTOR_KEY=x\n");
  const tempDir = path.join(dir, "tmp");
  await Deno.mkdir(tempDir);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: CliIo = {
    stdout: (text) => stdout.push(text),
    stderr: (text) => stderr.push(text),
    env: { SystemRoot: "C:\\Windows", XDG_CONFIG_HOME: path.join(dir, "xdg"), USER: "ana", ...env },
    cwd: dir,
    self: [WINDOWS_EXE],
  };
  return {
    dir,
    policy,
    envFile,
    tempDir,
    io,
    stdout,
    stderr,
    out: () => JSON.parse(stdout.join("")),
    error: () => JSON.parse(stderr.join("")).error,
  };
}

/** Runs `schedule …` through the CLI's run(), turning errors into exit codes as users see them. */
async function schedule(
  w: World,
  argv: string[],
  runner: CommandRunner,
  platform: SchedulePlatform,
): Promise<number> {
  try {
    return await scheduleCommand(argv, w.io, runner, { tempDir: w.tempDir, ...platform });
  } catch (error) {
    if (!(error instanceof IntellistorError)) throw error;
    w.stderr.push(JSON.stringify(error.toJSON()));
    return error.exitCode;
  }
}

const SCHTASKS = "C:\\Windows\\System32\\schtasks.exe";
const WINDOWS = { os: "windows" };

Deno.test("install on Windows: the XML as a UTF-16 temp file, then schtasks /Create as SYSTEM", async () => {
  const w = await world("*/15 9-17 * * MON-FRI");
  let fileSeen: Uint8Array | undefined;
  const runner = new RecordingRunner(async (call) => {
    fileSeen = await Deno.readFile(call.args[2]);
    return {
      stdout:
        'SUCCESS: The scheduled task "\\Intellistor\\sched-test" has successfully been created.',
    };
  });
  const code = await schedule(
    w,
    ["install", "--policy", "Cópia de políticas/p.yaml", "--env-file", w.envFile],
    runner,
    WINDOWS,
  );
  assert.equal(code, 0, w.stderr.join(""));
  assert.equal(runner.calls.length, 1);
  const [call] = runner.calls;
  assert.equal(call.program, SCHTASKS);
  assert.deepEqual(call.args, [
    "/Create",
    "/XML",
    call.args[2],
    "/TN",
    "\\Intellistor\\sched-test",
    "/RU",
    "SYSTEM",
    "/F",
  ]);
  assert.equal(path.dirname(call.args[2]), w.tempDir);
  assert.ok(call.args[2].endsWith(".xml"));
  assert.equal(call.stdin, undefined);
  // The file schtasks read: UTF-16 with a BOM, the task with absolute paths.
  assert.deepEqual([...fileSeen!.subarray(0, 2)], [0xff, 0xfe]);
  const task = readTaskXml(new TextDecoder("utf-16le").decode(fileSeen!.subarray(2)));
  assert.equal(task.exec?.command, `"${WINDOWS_EXE}"`);
  assert.equal(
    task.exec?.arguments,
    `agent run --policy "${w.policy}" --env-file ${w.envFile}`,
  );
  assert.equal(task.exec?.workingDirectory, "C:\\Program Files\\Intellistor");
  assert.equal(task.principal.userId, "S-1-5-18");
  // Nothing is left behind.
  assert.deepEqual([...Deno.readDirSync(w.tempDir)], []);
  const out = w.out();
  assert.equal(out.installed, "\\Intellistor\\sched-test");
  assert.equal(out.scheduler, "windows-task-scheduler");
  assert.equal(out.run_as, "SYSTEM");
  assert.deepEqual(out.triggers, [
    "every Mon,Tue,Wed,Thu,Fri at 09:00, then every 15 min until 17:45",
  ]);
  assert.equal(
    out.command,
    `"${WINDOWS_EXE}" agent run --policy "${w.policy}" --env-file ${w.envFile}`,
  );
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install on Windows as a named user: /RU user /RP *, the password on stdin only", async () => {
  const w = await world("0 2 * * *", { TASK_PASSWORD: "s3cret-Pässword" });
  const runner = new RecordingRunner();
  const code = await schedule(
    w,
    [
      "install",
      "--policy",
      w.policy,
      "--env-file",
      w.envFile,
      "--user",
      "CORP\\svc-backup",
      "--password-env",
      "TASK_PASSWORD",
      "--time-limit",
      "PT4H",
    ],
    runner,
    WINDOWS,
  );
  assert.equal(code, 0, w.stderr.join(""));
  const [call] = runner.calls;
  assert.deepEqual(call.args.slice(3), [
    "/TN",
    "\\Intellistor\\sched-test",
    "/RU",
    "CORP\\svc-backup",
    "/RP",
    "*",
    "/F",
  ]);
  assert.equal(call.stdin, "s3cret-Pässword\r\n");
  assert.ok(!call.args.join(" ").includes("s3cret"));
  assert.ok(!w.stdout.join("").includes("s3cret"));
  assert.equal(w.out().run_as, "CORP\\svc-backup");
  assert.equal(w.out().time_limit, "PT4H");
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install on Windows: a named user without --password-env is a usage error", async () => {
  const w = await world("0 2 * * *");
  const runner = new RecordingRunner();
  const code = await schedule(
    w,
    ["install", "--policy", w.policy, "--env-file", w.envFile, "--user", "ana"],
    runner,
    WINDOWS,
  );
  assert.equal(code, 2);
  assert.equal(w.error().code, "USAGE");
  assert.match(w.error().message, /--password-env/);
  assert.equal(runner.calls.length, 0);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install on Windows: a failing schtasks is SCHEDULER_FAILED with its message", async () => {
  const w = await world("0 2 * * *");
  const runner = new RecordingRunner(() => ({ code: 1, stderr: "ERROR: Access is denied.\r\n" }));
  const code = await schedule(
    w,
    ["install", "--policy", w.policy, "--env-file", w.envFile],
    runner,
    WINDOWS,
  );
  assert.equal(code, 1);
  const error = w.error();
  assert.equal(error.code, "SCHEDULER_FAILED");
  assert.match(
    error.message,
    /schtasks \/Create failed \(exit code 1\): ERROR: Access is denied\./,
  );
  assert.match(error.hint, /Run as administrator/);
  assert.deepEqual([...Deno.readDirSync(w.tempDir)], []);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install on Windows: an untranslatable cron is refused before schtasks runs", async () => {
  const w = await world("*/7 * * * *");
  const runner = new RecordingRunner();
  const code = await schedule(
    w,
    ["install", "--policy", w.policy, "--env-file", w.envFile],
    runner,
    WINDOWS,
  );
  assert.equal(code, 2);
  assert.equal(w.error().code, "SCHEDULE_UNSUPPORTED");
  assert.match(w.error().hint, /"\*\/15 \* \* \* \*"/);
  assert.equal(runner.calls.length, 0);
  assert.deepEqual([...Deno.readDirSync(w.tempDir)], []);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install --print on Windows shows the XML and runs nothing", async () => {
  const w = await world("0 3 1,15 * *");
  const runner = new RecordingRunner();
  assert.equal(
    await schedule(
      w,
      ["install", "--policy", w.policy, "--env-file", w.envFile, "--print"],
      runner,
      WINDOWS,
    ),
    0,
  );
  assert.equal(runner.calls.length, 0);
  const out = w.out();
  assert.equal(out.installed, false);
  assert.equal(readTaskXml(out.xml as string).uri, "\\Intellistor\\sched-test");
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install: --env-file is required, and both files must exist", async () => {
  const w = await world();
  const runner = new RecordingRunner();
  assert.equal(await schedule(w, ["install", "--policy", w.policy], runner, WINDOWS), 2);
  assert.equal(w.error().code, "USAGE");
  assert.match(w.error().message, /--env-file is required/);
  w.stderr.length = 0;
  assert.equal(
    await schedule(
      w,
      ["install", "--policy", w.policy, "--env-file", "missing.env"],
      runner,
      WINDOWS,
    ),
    2,
  );
  assert.equal(w.error().code, "ENV_FILE_NOT_FOUND");
  assert.ok(w.error().message.includes(path.join(w.dir, "missing.env")));
  w.stderr.length = 0;
  assert.equal(
    await schedule(w, ["install", "--policy", "nope.yaml", "--env-file", w.envFile], runner, {}),
    2,
  );
  assert.equal(w.error().code, "POLICY_NOT_FOUND");
  assert.equal(runner.calls.length, 0);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("remove on Windows: schtasks /Delete /TN … /F", async () => {
  const w = await world();
  const runner = new RecordingRunner(() => ({ stdout: "SUCCESS" }));
  assert.equal(await schedule(w, ["remove", "--id", "mvp-default"], runner, WINDOWS), 0);
  assert.deepEqual(runner.calls, [{
    program: SCHTASKS,
    args: ["/Delete", "/TN", "\\Intellistor\\mvp-default", "/F"],
  }]);
  assert.deepEqual(w.out(), {
    removed: "\\Intellistor\\mvp-default",
    scheduler: "windows-task-scheduler",
  });
  await Deno.remove(w.dir, { recursive: true });
});

const CSV_HEADER =
  '"HostName","TaskName","Next Run Time","Status","Logon Mode","Last Run Time","Last Result",' +
  '"Author","Task To Run","Start In","Comment","Scheduled Task State"';

Deno.test("status on Windows: the definition from /XML, the run state from /V /FO CSV", async () => {
  const w = await world();
  const xml = windowsTaskXml(parseCron("0 2 * * MON-FRI"), {
    policyId: "sched-test",
    command: WINDOWS_COMMAND,
    workingDirectory: "C:\\Program Files\\Intellistor",
  });
  const csv = `${CSV_HEADER}\r\n` +
    '"SRV01","\\Intellistor\\sched-test","27/11/2026 02:00:00","Ready","Interactive/Background",' +
    '"26/11/2026 02:00:01","3","Intellistor","C:\\x.exe","C:\\","N/A","Enabled"\r\n';
  const runner = new RecordingRunner(() => ({ stdout: xml }), () => ({ stdout: csv }));
  assert.equal(
    await schedule(w, ["status", "--policy", w.policy], runner, WINDOWS),
    0,
    w.stderr.join(""),
  );
  assert.deepEqual(runner.calls.map((call) => [call.program, ...call.args]), [
    [SCHTASKS, "/Query", "/TN", "\\Intellistor\\sched-test", "/XML"],
    [SCHTASKS, "/Query", "/TN", "\\Intellistor\\sched-test", "/V", "/FO", "CSV"],
  ]);
  const out = w.out();
  assert.equal(out.status, "Ready");
  assert.equal(out.next_run_time, "27/11/2026 02:00:00");
  assert.equal(out.last_run_time, "26/11/2026 02:00:01");
  assert.equal(out.last_result, "3");
  assert.equal(out.last_result_meaning, "partial backup: some files could not be read");
  assert.deepEqual(out.triggers, ["every Mon,Tue,Wed,Thu,Fri at 02:00"]);
  assert.equal(out.schedule_matches_policy, true, "the task was made from this policy's cron");
  assert.equal(out.run_as, "S-1-5-18");
  assert.equal(out.command, `"${WINDOWS_EXE}" ${WINDOWS_ARGUMENTS}`);
  assert.equal(out.columns, "by-name");
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("status on Windows: translated CSV headers are read by position", async () => {
  const w = await world();
  const xml = windowsTaskXml(parseCron("0 2 * * *"), {
    policyId: "sched-test",
    command: ["C:\\i.exe"],
    workingDirectory: "C:\\",
  });
  const csv = '"Nome do host","Nome da tarefa","Próxima execução","Status","Modo de logon",' +
    '"Última execução","Último resultado"\r\n' +
    '"SRV01","\\Intellistor\\sched-test","N/A","Pronto","Interativo","30/11/1999 00:00:00","267011"\r\n';
  const runner = new RecordingRunner(() => ({ stdout: xml }), () => ({ stdout: csv }));
  assert.equal(await schedule(w, ["status", "--id", "sched-test"], runner, WINDOWS), 0);
  const out = w.out();
  assert.equal(out.columns, "by-position");
  assert.equal(out.status, "Pronto");
  assert.equal(out.last_result_meaning, "has not run yet");
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("status on Windows: a task that does not exist is SCHEDULER_FAILED quoting schtasks", async () => {
  const w = await world();
  const runner = new RecordingRunner(() => ({
    code: 1,
    stderr: "ERROR: The system cannot find the file specified.",
  }));
  assert.equal(await schedule(w, ["status", "--id", "sched-test"], runner, WINDOWS), 1);
  assert.equal(w.error().code, "SCHEDULER_FAILED");
  assert.match(w.error().message, /cannot find the file specified/);
  assert.equal(runner.calls.length, 1);
  await Deno.remove(w.dir, { recursive: true });
});

const LINUX = { os: "linux" };

Deno.test("install on Linux: user units written, daemon-reload, enable --now", async () => {
  const w = await world("30 1,13 1 1,7 *");
  w.io.self = ["/opt/intellistor/intellistor"];
  const runner = new RecordingRunner();
  assert.equal(
    await schedule(w, ["install", "--policy", w.policy, "--env-file", w.envFile], runner, LINUX),
    0,
    w.stderr.join(""),
  );
  assert.deepEqual(runner.calls, [
    { program: "systemctl", args: ["--user", "daemon-reload"] },
    { program: "systemctl", args: ["--user", "enable", "--now", "intellistor-sched-test.timer"] },
  ]);
  const unitDir = path.join(w.dir, "xdg", "systemd", "user");
  const timer = await Deno.readTextFile(path.join(unitDir, "intellistor-sched-test.timer"));
  const service = await Deno.readTextFile(path.join(unitDir, "intellistor-sched-test.service"));
  assert.deepEqual(parseUnit(timer).Timer.OnCalendar, ["*-01,07-01 01,13:30:00"]);
  assert.deepEqual(parseUnit(service).Service.ExecStart, [
    `/opt/intellistor/intellistor agent run --policy "${w.policy}" --env-file ${w.envFile}`,
  ]);
  const out = w.out();
  assert.equal(out.installed, "intellistor-sched-test.timer");
  assert.equal(out.scope, "user");
  assert.match((out.notes as string[])[0], /loginctl enable-linger ana/);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install --system on Linux: system units, systemctl without --user", async () => {
  const w = await world();
  w.io.self = ["/opt/intellistor/intellistor"];
  const systemUnitDir = path.join(w.dir, "etc-systemd");
  const runner = new RecordingRunner();
  assert.equal(
    await schedule(
      w,
      ["install", "--policy", w.policy, "--env-file", w.envFile, "--system"],
      runner,
      {
        ...LINUX,
        systemUnitDir,
      },
    ),
    0,
  );
  assert.deepEqual(runner.calls.map((call) => call.args), [
    ["daemon-reload"],
    ["enable", "--now", "intellistor-sched-test.timer"],
  ]);
  const service = await Deno.readTextFile(
    path.join(systemUnitDir, "intellistor-sched-test.service"),
  );
  assert.deepEqual(parseUnit(service).Unit.Wants, ["network-online.target"]);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install on Linux: a failing systemctl is SCHEDULER_FAILED with its message", async () => {
  const w = await world();
  w.io.self = ["/opt/intellistor/intellistor"];
  const runner = new RecordingRunner(() => ({
    code: 1,
    stderr: "Failed to connect to bus: No medium found",
  }));
  assert.equal(
    await schedule(w, ["install", "--policy", w.policy, "--env-file", w.envFile], runner, LINUX),
    1,
  );
  assert.equal(w.error().code, "SCHEDULER_FAILED");
  assert.match(
    w.error().message,
    /systemctl --user daemon-reload failed .*Failed to connect to bus/,
  );
  assert.match(w.error().hint, /--print/);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install --print on Linux: the crontab line and the units, nothing installed", async () => {
  const w = await world("*/15 9-17 * * MON-FRI");
  w.io.self = ["/opt/intellistor/intellistor"];
  const runner = new RecordingRunner();
  assert.equal(
    await schedule(
      w,
      ["install", "--policy", w.policy, "--env-file", w.envFile, "--print"],
      runner,
      LINUX,
    ),
    0,
  );
  assert.equal(runner.calls.length, 0);
  const out = w.out();
  assert.equal(
    out.crontab,
    `*/15 9-17 * * MON-FRI timeout -k 90 43200 /opt/intellistor/intellistor agent run ` +
      `--policy '${w.policy}' --env-file ${w.envFile}`,
  );
  assert.deepEqual(out.on_calendar, ["Mon..Fri *-*-* 09..17:00,15,30,45:00"]);
  assert.equal((out.units as { name: string }).name, "intellistor-sched-test");
  assert.equal(Deno.statSync(w.dir).isDirectory, true);
  assert.throws(() => Deno.statSync(path.join(w.dir, "xdg")), Deno.errors.NotFound);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("install on Linux: --time-limit becomes the service's TimeoutStartSec (a stuck run would block every later one)", async () => {
  for (
    const [flags, limit, line] of [
      [[], "PT12H", "TimeoutStartSec=43200"],
      [["--time-limit", "PT4H30M"], "PT4H30M", "TimeoutStartSec=16200"],
      [["--time-limit", "PT0S"], "PT0S", "TimeoutStartSec=infinity"],
    ] as const
  ) {
    const w = await world();
    const runner = new RecordingRunner();
    const args = ["install", "--policy", w.policy, "--env-file", w.envFile, "--print", ...flags];
    assert.equal(await schedule(w, args, runner, LINUX), 0, w.stderr.join(""));
    const out = w.out();
    assert.equal(out.time_limit, limit);
    const service = (out.units as { service: string }).service;
    assert.deepEqual(service.split("\n").filter((l) => l.startsWith("TimeoutStartSec=")), [line]);
    await Deno.remove(w.dir, { recursive: true });
  }
  const w = await world();
  const args = ["install", "--policy", w.policy, "--env-file", w.envFile, "--time-limit", "12h"];
  assert.equal(await schedule(w, args, new RecordingRunner(), LINUX), 2);
  assert.match(w.error().message, /not an ISO 8601 duration/);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("status and remove on Linux: systemctl show, then disable --now and delete", async () => {
  const w = await world();
  w.io.self = ["/opt/intellistor/intellistor"];
  await schedule(
    w,
    ["install", "--policy", w.policy, "--env-file", w.envFile],
    new RecordingRunner(),
    LINUX,
  );
  w.stdout.length = 0;
  const status = new RecordingRunner(
    () => ({
      stdout:
        "NextElapseUSecRealtime=Mon 2026-11-30 02:00:00 UTC\nLastTriggerUSec=\nActiveState=active\n",
    }),
    () => ({
      stdout:
        "ExecMainStatus=3\nResult=exit-code\nExecMainExitTimestamp=Fri 2026-11-27 02:00:09 UTC\n",
    }),
  );
  assert.equal(await schedule(w, ["status", "--policy", w.policy], status, LINUX), 0);
  assert.deepEqual(status.calls.map((call) => call.args), [
    [
      "--user",
      "show",
      "intellistor-sched-test.timer",
      "-p",
      "NextElapseUSecRealtime,LastTriggerUSec,ActiveState",
    ],
    [
      "--user",
      "show",
      "intellistor-sched-test.service",
      "-p",
      "ExecMainStatus,Result,ExecMainExitTimestamp",
    ],
  ]);
  const out = w.out();
  assert.equal(out.next_run_time, "Mon 2026-11-30 02:00:00 UTC");
  assert.equal(out.last_trigger_time, null);
  assert.equal(out.timer_state, "active");
  assert.equal(out.last_exit_status, 3);
  assert.equal(out.last_result, "exit-code");
  assert.equal(out.last_result_meaning, "partial backup: some files could not be read");
  assert.deepEqual(out.on_calendar, ["Mon..Fri *-*-* 02:00:00"]);
  assert.equal(out.schedule_matches_policy, true);
  assert.equal(out.note, undefined);

  // The policy's schedule edited after install: status says the timer still runs the old one.
  await Deno.writeTextFile(
    w.policy,
    (await Deno.readTextFile(w.policy)).replace(/^schedule:.*$/m, 'schedule: "30 4 * * *"'),
  );
  w.stdout.length = 0;
  const never = new RecordingRunner(
    () => ({ stdout: "NextElapseUSecRealtime=\nLastTriggerUSec=\nActiveState=active\n" }),
    // systemd's values before any run: success and 0, but no exit time.
    () => ({ stdout: "ExecMainStatus=0\nResult=success\nExecMainExitTimestamp=\n" }),
  );
  assert.equal(await schedule(w, ["status", "--policy", w.policy], never, LINUX), 0);
  const changed = w.out();
  assert.equal(changed.last_result_meaning, "has not run since systemd started");
  assert.equal(changed.policy_schedule, "30 4 * * *");
  assert.equal(changed.schedule_matches_policy, false);
  assert.match(String(changed.note), /schedule install" again/);

  w.stdout.length = 0;
  const remove = new RecordingRunner();
  assert.equal(await schedule(w, ["remove", "--id", "sched-test"], remove, LINUX), 0);
  assert.deepEqual(remove.calls.map((call) => call.args), [
    ["--user", "disable", "--now", "intellistor-sched-test.timer"],
    ["--user", "daemon-reload"],
  ]);
  assert.deepEqual([...Deno.readDirSync(path.join(w.dir, "xdg", "systemd", "user"))], []);
  assert.equal((w.out().deleted_files as string[]).length, 2);

  // Nothing left: remove and status say it is not installed (exit 10).
  w.stderr.length = 0;
  assert.equal(
    await schedule(w, ["remove", "--id", "sched-test"], new RecordingRunner(), LINUX),
    10,
  );
  assert.equal(w.error().code, "SCHEDULE_NOT_FOUND");
  w.stderr.length = 0;
  assert.equal(
    await schedule(w, ["status", "--id", "sched-test"], new RecordingRunner(), LINUX),
    10,
  );
  assert.equal(w.error().code, "SCHEDULE_NOT_FOUND");
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("flags of the other system are refused", async () => {
  const w = await world();
  const runner = new RecordingRunner();
  assert.equal(
    await schedule(
      w,
      ["install", "--policy", w.policy, "--env-file", w.envFile, "--system"],
      runner,
      WINDOWS,
    ),
    2,
  );
  assert.match(w.error().message, /--system applies only on Linux/);
  w.stderr.length = 0;
  assert.equal(await schedule(w, ["status", "--id", "x", "--user", "ana"], runner, LINUX), 2);
  assert.match(w.error().message, /--user applies only on Windows/);
  w.stderr.length = 0;
  assert.equal(await schedule(w, ["launch"], runner, LINUX), 2);
  assert.equal(runner.calls.length, 0);
  await Deno.remove(w.dir, { recursive: true });
});

Deno.test("the CLI knows the schedule command (help, and the runner seam through run())", async () => {
  const w = await world();
  let stdout = "";
  const io = { ...w.io, stdout: (text: string) => (stdout += text) };
  assert.equal(await run(["schedule", "--help"], io), 0);
  assert.match(stdout, /intellistor schedule install --policy FILE --env-file FILE/);
  stdout = "";
  assert.equal(await run(["--help"], io), 0);
  assert.match(stdout, /schedule {8}install \| status \| remove/);
  if (Deno.build.os !== "windows") {
    // Linux here: status of a timer that was never installed, without calling systemctl.
    const runner = new RecordingRunner();
    assert.equal(
      await run(["schedule", "status", "--id", "sched-test"], w.io, { commandRunner: runner }),
      10,
    );
    assert.equal(runner.calls.length, 0);
  }
  await Deno.remove(w.dir, { recursive: true });
});

// ------------------------------------------------------------------- helpers

async function compareGolden(name: string, actual: string): Promise<void> {
  const file = path.join(GOLDEN, name);
  if (UPDATE) {
    await Deno.mkdir(path.dirname(file), { recursive: true });
    await Deno.writeTextFile(file, actual);
    return;
  }
  const expected = await Deno.readTextFile(file);
  assert.equal(actual, expected, `${name} differs from the golden file`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test("install refuses a .env whose INTELLISTOR_STATE_DIR every scheduled run would refuse", async () => {
  const w = await world();
  await Deno.writeTextFile(w.envFile, "INTELLISTOR_KEY=x\nINTELLISTOR_STATE_DIR=relstate\n");
  const runner = new RecordingRunner();
  const args = ["install", "--policy", w.policy, "--env-file", w.envFile];
  assert.equal(await schedule(w, args, runner, LINUX), 2);
  assert.match(w.error().message, /INTELLISTOR_STATE_DIR must be an absolute path/);
  assert.equal(runner.calls.length, 0);
  await Deno.remove(w.dir, { recursive: true });
});
