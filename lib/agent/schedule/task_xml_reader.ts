/**
 * Reads a task definition back from its XML (`schtasks /Query /XML`): the
 * triggers in the writer's model where possible, the principal, the settings
 * and the Exec action. Tolerant of what the writer never produces (other
 * trigger kinds, edits made in the Task Scheduler UI): those are reported,
 * not rejected.
 *
 * @module
 */
import type { TaskDays, TaskTrigger } from "./task_triggers.ts";
import { MONTH_ELEMENTS, WEEKDAY_ELEMENTS } from "./windows_task.ts";
import { childElement, childElements, childText, parseXml, type XmlElement } from "./xml.ts";

/** One trigger as found in the XML. */
export interface ReadTrigger {
  /** Element name: CalendarTrigger, TimeTrigger, BootTrigger, … */
  type: string;
  enabled: boolean;
  startBoundary?: string;
  repetition?: { interval: string; duration?: string; stopAtDurationEnd?: string };
  /** In the writer's model, when it is a calendar trigger the writer could have made. */
  trigger?: TaskTrigger;
}

/** What a task definition says, field by field. */
export interface TaskDefinition {
  version?: string;
  namespace?: string;
  description?: string;
  uri?: string;
  triggers: ReadTrigger[];
  principal: { userId?: string; logonType?: string; runLevel?: string };
  /** Every simple child of Settings, by element name. */
  settings: Record<string, string>;
  exec?: { command: string; arguments?: string; workingDirectory?: string };
}

/**
 * Parses a task's XML.
 *
 * @throws XmlError when it is not well-formed, Error when the root is not a Task.
 */
export function readTaskXml(xml: string): TaskDefinition {
  const root = parseXml(xml);
  if (root.name !== "Task") throw new Error(`expected a <Task> document, found <${root.name}>`);
  const registration = childElement(root, "RegistrationInfo");
  const principal = childElement(root, "Principals")?.children[0];
  const settings = childElement(root, "Settings");
  const exec = childElement(root, "Actions")?.children.find((action) => action.name === "Exec");
  const command = exec === undefined ? undefined : childText(exec, "Command");
  return {
    version: root.attributes.version,
    namespace: root.attributes.xmlns,
    description: registration === undefined ? undefined : childText(registration, "Description"),
    uri: registration === undefined ? undefined : childText(registration, "URI"),
    triggers: (childElement(root, "Triggers")?.children ?? []).map(readTrigger),
    principal: principal === undefined ? {} : {
      userId: childText(principal, "UserId"),
      logonType: childText(principal, "LogonType"),
      runLevel: childText(principal, "RunLevel"),
    },
    settings: Object.fromEntries(
      (settings?.children ?? [])
        .filter((setting) => setting.children.length === 0)
        .map((setting) => [setting.name, setting.text.trim()]),
    ),
    exec: exec === undefined || command === undefined ? undefined : {
      command,
      arguments: childText(exec, "Arguments"),
      workingDirectory: childText(exec, "WorkingDirectory"),
    },
  };
}

/** An ISO 8601 duration of whole minutes (PT15M, PT23H45M, P1D) in minutes; undefined otherwise. */
export function isoDurationMinutes(value: string): number | undefined {
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(value);
  if (match === null || value === "P" || value === "PT") return undefined;
  const [, days, hours, minutes, seconds] = match.map((part) => Number(part ?? 0));
  if (seconds % 60 !== 0) return undefined;
  return days * 1440 + hours * 60 + minutes + seconds / 60;
}

function readTrigger(element: XmlElement): ReadTrigger {
  const repetition = childElement(element, "Repetition");
  const read: ReadTrigger = {
    type: element.name,
    enabled: (childText(element, "Enabled") ?? "true") === "true",
    startBoundary: childText(element, "StartBoundary"),
    repetition: repetition === undefined ? undefined : {
      interval: childText(repetition, "Interval") ?? "",
      duration: childText(repetition, "Duration"),
      stopAtDurationEnd: childText(repetition, "StopAtDurationEnd"),
    },
  };
  const model = element.name === "CalendarTrigger" ? modelTrigger(element, read) : undefined;
  return model === undefined ? read : { ...read, trigger: model };
}

function modelTrigger(element: XmlElement, read: ReadTrigger): TaskTrigger | undefined {
  const time = /T(\d\d):(\d\d):00$/.exec(read.startBoundary ?? "");
  const days = modelDays(element);
  if (time === null || days === undefined) return undefined;
  const startMinute = Number(time[1]) * 60 + Number(time[2]);
  if (read.repetition === undefined) return { startMinute, days };
  const intervalMinutes = isoDurationMinutes(read.repetition.interval);
  const durationMinutes = isoDurationMinutes(read.repetition.duration ?? "");
  if (intervalMinutes === undefined || durationMinutes === undefined) return undefined;
  return { startMinute, repetition: { intervalMinutes, durationMinutes }, days };
}

function modelDays(element: XmlElement): TaskDays | undefined {
  const byDay = childElement(element, "ScheduleByDay");
  if (byDay !== undefined) {
    return (childText(byDay, "DaysInterval") ?? "1") === "1" ? { kind: "daily" } : undefined;
  }
  const byWeek = childElement(element, "ScheduleByWeek");
  if (byWeek !== undefined) {
    if ((childText(byWeek, "WeeksInterval") ?? "1") !== "1") return undefined;
    const names = (childElement(byWeek, "DaysOfWeek")?.children ?? []).map((day) => day.name);
    return { kind: "weekly", daysOfWeek: indexes(names, WEEKDAY_ELEMENTS, 0) };
  }
  const byMonth = childElement(element, "ScheduleByMonth");
  if (byMonth !== undefined) {
    const days = childElements(childElement(byMonth, "DaysOfMonth") ?? emptyElement(), "Day")
      .map((day) => Number(day.text.trim()));
    const months = (childElement(byMonth, "Months")?.children ?? []).map((month) => month.name);
    return {
      kind: "monthly",
      daysOfMonth: [...days].sort((a, b) => a - b),
      months: indexes(months, MONTH_ELEMENTS, 1),
    };
  }
  return undefined;
}

function indexes(names: string[], table: readonly string[], base: number): number[] {
  return names.map((name) => table.indexOf(name) + base).sort((a, b) => a - b);
}

function emptyElement(): XmlElement {
  return { name: "", attributes: {}, children: [], text: "" };
}
