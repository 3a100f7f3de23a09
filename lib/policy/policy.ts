/**
 * The backup policy: what to protect, when, where to and how. Stored as a
 * commented YAML file (keys in snake_case) that holds no secrets.
 *
 * `validatePolicy` is the single gate: it applies defaults, rejects unknown
 * keys and bad values, and reports every problem at once with the field's
 * dotted path (`destination.bucket`, `paths[1]`).
 *
 * @module
 */

import path from "node:path";
import YAML from "npm:yaml@2.9.1";
import { IntellistorError } from "../errors.ts";
import { readConfigFile } from "../config/config_file.ts";
import { describePatternProblem } from "../glob.ts";
import { currentPlatform, withoutTrailingSeparator } from "../safe_path.ts";
import { CronError, parseCron } from "./cron.ts";

/** Backups go to an S3 bucket (AWS or S3-compatible). Empty strings mean "from the environment". */
export interface S3Destination {
  type: "s3";
  /** Empty = `AWS_S3_BUCKET` at run time. */
  bucket: string;
  /** Key prefix inside the bucket, without a leading "/". */
  prefix: string;
  /** http(s) URL of an S3-compatible store; empty = AWS or `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`. */
  endpoint: string;
  /** Empty = `AWS_REGION`/`AWS_DEFAULT_REGION`, else us-east-1. */
  region: string;
}

/** Backups go to a local directory (USB disk, NAS share) with the same key layout. */
export interface LocalDestination {
  type: "local";
  /** Absolute path of the directory. */
  path: string;
}

/** A validated policy, with every default applied. */
export interface Policy {
  version: 1;
  /** Becomes part of object keys: `backups/<id>/…`, `logs/<id>/…`. */
  id: string;
  /** Absolute paths of the files or directories to protect; at least one. */
  paths: string[];
  /** Glob patterns (lib/glob.ts rule) on relative_path. */
  exclude: string[];
  /** 5-field cron expression (lib/policy/cron.ts). */
  schedule: string;
  destination: S3Destination | LocalDestination;
  compression: { level: number };
  /** Names of environment variables, never the secrets themselves. */
  encryption: { key_env: string; passphrase_env: string };
  /**
   * Where the agent reports each run (healthchecks-style): the NAMES of the
   * variables holding the URLs (a ping URL is a credential), and a timeout.
   */
  notify: NotifySettings;
  /** Which backups `prune` (and the agent, after each backup) keeps; all 0 keeps every one. */
  retention: Retention;
}

/**
 * restic's rules: the newest `keep_last` backups, and the newest backup of
 * each of the last `keep_daily` days (weeks, months) that have backups, in
 * local time. A backup any rule keeps is kept; all 0 = keep everything.
 */
export interface Retention {
  keep_last: number;
  keep_daily: number;
  keep_weekly: number;
  keep_monthly: number;
}

/** The agent's notification hook; a variable left unset means no call. */
export interface NotifySettings {
  /** Variable holding the URL called after every run (or only successes when failure_url_env is set). */
  url_env: string;
  /** Variable holding the URL called instead when a run fails. */
  failure_url_env: string;
  /** Give up on the call after this many seconds (1-120). */
  timeout_seconds: number;
}

/** The policy id the seed uses when none is given. */
export const DEFAULT_POLICY_ID = "mvp-default";
/** Every day at 02:00, the seed's default. */
export const DEFAULT_SCHEDULE = "0 2 * * *";
/** gzip's own default: a good balance of speed and size. */
export const DEFAULT_COMPRESSION_LEVEL = 6;
/** Environment variable holding the base64 root key, unless the policy names another. */
export const DEFAULT_KEY_ENV = "INTELLISTOR_KEY";
/** Environment variable holding a passphrase, unless the policy names another. */
export const DEFAULT_PASSPHRASE_ENV = "INTELLISTOR_PASSPHRASE";
/** Keep every backup until the policy says otherwise: nothing is ever deleted by default. */
export const DEFAULT_RETENTION: Retention = {
  keep_last: 0,
  keep_daily: 0,
  keep_weekly: 0,
  keep_monthly: 0,
};
const RETENTION_KEYS = ["keep_last", "keep_daily", "keep_weekly", "keep_monthly"] as const;
/** More than any schedule needs (a backup a minute for ~2 years), small enough to catch typos. */
const MAX_KEEP = 1_000_000;

/** The notification hook's defaults: off until the variables are set. */
export const DEFAULT_NOTIFY: NotifySettings = {
  url_env: "INTELLISTOR_NOTIFY_URL",
  failure_url_env: "INTELLISTOR_NOTIFY_FAILURE_URL",
  timeout_seconds: 10,
};

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TOP_LEVEL_KEYS = [
  "version",
  "id",
  "paths",
  "exclude",
  "schedule",
  "destination",
  "compression",
  "encryption",
  "notify",
  "retention",
];
const S3_KEYS = ["type", "bucket", "prefix", "endpoint", "region"];
const LOCAL_KEYS = ["type", "path"];

const GENERAL_HINT =
  "Fix the fields named in the message; `intellistor policy-create --out <file>` writes a commented example.";
const SAME_NAME_HINT =
  "Each path's name becomes the first folder inside the backup, so two paths with the same " +
  "name would collide: back up their common parent, or use two policies.";
const PATTERN_HINT =
  'exclude patterns follow the restore --only rule: without "/" they match a name at any depth ' +
  '("*.tmp", "cache"), with "/" they match from the start of relative_path ("docs/old/*").';
const CRON_HINT =
  'schedule is "minute hour day-of-month month day-of-week", e.g. "0 2 * * *" (every day at 02:00).';
const MISSING_PATH_HINT =
  "Check the path, or connect the drive or share before the backup runs. A scheduled task " +
  "runs as another user, who may not see mapped drive letters: prefer UNC paths (\\\\server\\share).";

type Mapping = Record<string, unknown>;

/** Problems found so far, reported together in one error. */
class ProblemList {
  readonly problems: string[] = [];
  readonly hints = new Set<string>();

  add(field: string, problem: string, hint?: string): void {
    this.problems.push(field === "" ? problem : `${field}: ${problem}`);
    if (hint) this.hints.add(hint);
  }

  throwIfAny(source: string): void {
    if (this.problems.length === 0) return;
    throw new IntellistorError(
      "POLICY_INVALID",
      `Policy "${source}" is invalid: ${this.problems.join("; ")}`,
      [...this.hints, GENERAL_HINT].join(" "),
    );
  }
}

/**
 * Checks a parsed policy document and returns it with defaults applied
 * (exclude [], an S3 destination taking everything from the environment,
 * compression level 6, the default encryption variables, version 1).
 *
 * @param raw the parsed YAML (or an existing Policy, to re-check it)
 * @param source the file name, for messages
 * @throws IntellistorError POLICY_INVALID listing every problem found.
 */
export function validatePolicy(raw: unknown, source: string): Policy {
  const problems = new ProblemList();
  if (!isMapping(raw)) {
    problems.add(
      "",
      raw === null || raw === undefined
        ? "the document is empty (expected at least the keys id and paths)"
        : `expected a mapping of keys (id, paths, schedule, …), got ${describe(raw)}`,
    );
    problems.throwIfAny(source);
  }
  const document = raw as Mapping;
  rejectUnknownKeys(document, TOP_LEVEL_KEYS, "", problems);

  const version = present(document.version) ? document.version : 1;
  if (version !== 1) {
    problems.add("version", `expected 1 (the only format version), got ${describe(version)}`);
  }
  const policy: Policy = {
    version: 1,
    id: readId(document.id, problems),
    paths: readPaths(document.paths, problems),
    exclude: readExclude(document.exclude, problems),
    schedule: readSchedule(document.schedule, problems),
    destination: readDestination(document.destination, problems),
    compression: readCompression(document.compression, problems),
    encryption: readEncryption(document.encryption, problems),
    notify: readNotify(document.notify, problems),
    retention: readRetention(document.retention, problems),
  };
  problems.throwIfAny(source);
  return policy;
}

/** Largest policy file read (a policy with 50,000 exclude patterns is about 1 MiB). */
const POLICY_SIZE_LIMIT = 16 << 20;

/**
 * Reads, parses and validates a policy file.
 *
 * @param options.requirePaths check that every path exists (backup does;
 *   restore does not, since on the day a disk dies its paths are gone).
 * @throws IntellistorError POLICY_NOT_FOUND, POLICY_INVALID or IO_ERROR.
 */
export async function readPolicy(
  file: string,
  options: { requirePaths?: boolean } = {},
): Promise<Policy> {
  let bytes: Uint8Array;
  try {
    bytes = await readConfigFile(file, POLICY_SIZE_LIMIT);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new IntellistorError(
        "POLICY_NOT_FOUND",
        `Policy file "${file}" does not exist`,
        `Create one with: intellistor policy-create --out ${quoteForHint(file)}`,
        { cause: error },
      );
    }
    throw new IntellistorError(
      "IO_ERROR",
      `Policy file "${file}" cannot be read: ${errorMessage(error)}`,
      "Check that the path names a readable file.",
      { cause: error },
    );
  }
  const text = decodeText(bytes, file);
  if (looksLikeEnvFile(text)) {
    // Said without quoting a line: they hold keys and credentials.
    throw new IntellistorError(
      "POLICY_INVALID",
      `Policy "${file}" is invalid: it holds NAME=value lines, as a .env file does, not a policy`,
      "Pass the policy (YAML) with --policy and the .env file with --env-file.",
    );
  }
  const policy = validatePolicy(parseYaml(text, file), file);
  if (options.requirePaths) await checkPathsExist(policy, file);
  return policy;
}

/**
 * Renders a policy as a commented YAML document that round-trips:
 * `validatePolicy(YAML.parse(renderPolicyYaml(p)), …)` deep-equals `p`.
 */
export function renderPolicyYaml(policy: Policy): string {
  const lines = [
    "# Intellistor backup policy: what to protect, when, where to and how.",
    "# Written by `intellistor policy-create`; edit it freely, every run checks it again.",
    "# This file holds no secrets: credentials and keys come from the environment or the",
    "# .env file (see .env.example), so it can be shared and kept in version control.",
    "",
    "# Format version of this file.",
    `version: ${policy.version}`,
    "",
    '# Policy id: 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.',
    "# Backups and logs are stored under backups/<id>/ and logs/<id>/, so changing it",
    "# starts a new history.",
    `id: ${yamlString(policy.id)}`,
    "",
    "# Files or directories to protect (absolute paths). With several paths, each one's",
    "# name becomes the first folder inside the backup, so their names must differ.",
    ...yamlList("paths", policy.paths),
    "",
    "# Files or directories to leave out: glob patterns matched against the path inside",
    '# the backup, like restore --only. Without "/" a pattern matches a name at any depth',
    '# ("*.tmp", "node_modules"); with "/" it matches from the start ("docs/old/*").',
    ...yamlList("exclude", policy.exclude),
    "",
    '# When the agent runs, in local time: cron "minute hour day-of-month month day-of-week".',
    '# "0 2 * * *" = every day at 02:00; "30 1 * * MON-FRI" = weekdays at 01:30.',
    `schedule: ${yamlString(policy.schedule)}`,
    "",
    ...renderDestination(policy.destination),
    "",
    "# Compression of the archive before encryption.",
    "compression:",
    "  # gzip level: 1 (fastest) to 9 (smallest).",
    `  level: ${policy.compression.level}`,
    "",
    "# Client-side encryption (AES-256-GCM). These are the NAMES of environment variables",
    "# (set them in the .env file), never the key or passphrase themselves.",
    "encryption:",
    "  # Variable holding the base64 root key.",
    `  key_env: ${yamlString(policy.encryption.key_env)}`,
    "  # Variable holding a passphrase, used when the key variable is not set.",
    `  passphrase_env: ${yamlString(policy.encryption.passphrase_env)}`,
    "",
    "# After each scheduled run the agent can call a URL with a JSON summary (e.g. a",
    "# healthchecks.io ping). A ping URL is a credential, so it lives in the .env file;",
    "# these are the NAMES of its variables. Unset variables = no call.",
    "notify:",
    "  # Variable holding the URL called after each run (with the status in the body).",
    `  url_env: ${yamlString(policy.notify.url_env)}`,
    "  # Variable holding a URL called instead when a run fails (e.g. <ping URL>/fail).",
    `  failure_url_env: ${yamlString(policy.notify.failure_url_env)}`,
    "  # Seconds before the call is given up (1-120); a failed call never fails the backup.",
    `  timeout_seconds: ${policy.notify.timeout_seconds}`,
    "",
    "# Which backups to keep; the others are deleted by `intellistor prune` and by the",
    "# agent after each backup that succeeds. A backup any rule keeps is kept. Days, weeks",
    "# (Monday to Sunday) and months are in local time and count only those that have a",
    "# backup. All 0 = keep every backup (nothing is ever deleted).",
    "retention:",
    "  # The newest N backups.",
    `  keep_last: ${policy.retention.keep_last}`,
    "  # The newest backup of each of the last N days with backups.",
    `  keep_daily: ${policy.retention.keep_daily}`,
    "  # The newest backup of each of the last N weeks with backups.",
    `  keep_weekly: ${policy.retention.keep_weekly}`,
    "  # The newest backup of each of the last N months with backups.",
    `  keep_monthly: ${policy.retention.keep_monthly}`,
  ];
  return lines.join("\n") + "\n";
}

/**
 * Validates `policy`, then writes it as commented YAML, atomically (temp file
 * in the same directory, fsync, rename). Creates missing parent directories.
 *
 * @throws IntellistorError POLICY_EXISTS when the file exists and `force` is
 *   not set; POLICY_INVALID; IO_ERROR.
 */
export async function writePolicyFile(
  file: string,
  policy: Policy,
  options: { force?: boolean } = {},
): Promise<void> {
  const text = renderPolicyYaml(validatePolicy(policy, file));
  const existing = await statOrUndefined(file);
  if (existing?.isDirectory) {
    throw new IntellistorError(
      "POLICY_EXISTS",
      `Policy file "${file}" cannot be written: it is a directory`,
      `Give a file name, e.g. --out ${quoteForHint(path.join(file, "policy.yaml"))}`,
    );
  }
  if (existing && !existing.isFile && !existing.isSymlink) {
    throw new IntellistorError(
      "POLICY_EXISTS",
      `Policy file "${file}" cannot be written: it is not a regular file`,
      "Give the name of a new or existing policy file.",
    );
  }
  if (existing && !options.force) {
    throw new IntellistorError(
      "POLICY_EXISTS",
      `Policy file "${file}" already exists`,
      "Use --force to replace it, or choose another --out path.",
    );
  }
  const directory = path.dirname(file);
  const temporary = path.join(directory, `.${path.basename(file)}.tmp-${crypto.randomUUID()}`);
  try {
    await Deno.mkdir(directory, { recursive: true });
    const handle = await Deno.open(temporary, { write: true, createNew: true });
    try {
      const bytes = new TextEncoder().encode(text);
      let written = 0;
      while (written < bytes.length) written += await handle.write(bytes.subarray(written));
      await handle.syncData();
    } finally {
      handle.close();
    }
    await Deno.rename(temporary, file);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw new IntellistorError(
      "IO_ERROR",
      `Policy file "${file}" cannot be written: ${errorMessage(error)}`,
      "Check that the directory exists or can be created, and that you may write to it.",
      { cause: error },
    );
  }
}

// ---------------------------------------------------------------------------
// Field readers: each returns a usable value (a default on error) and records
// problems, so that one pass reports everything.

function readId(value: unknown, problems: ProblemList): string {
  if (!present(value)) {
    problems.add("id", `missing (expected a name such as "${DEFAULT_POLICY_ID}")`);
    return "";
  }
  if (typeof value !== "string") {
    problems.add("id", expectedText(value));
    return "";
  }
  if (!ID_PATTERN.test(value)) {
    problems.add(
      "id",
      `${JSON.stringify(value)} is not a valid id (use 1-64 letters, digits, ".", "_" or "-", ` +
        "starting with a letter or digit)",
    );
  }
  return value;
}

function readPaths(value: unknown, problems: ProblemList): string[] {
  if (!present(value)) {
    problems.add("paths", "missing (expected a list of absolute paths of files or directories)");
    return [];
  }
  if (!Array.isArray(value)) {
    problems.add("paths", `expected a list of absolute paths, got ${describe(value)}`);
    return [];
  }
  if (value.length === 0) {
    problems.add("paths", "is empty (list at least one file or directory to protect)");
    return [];
  }
  const paths: string[] = [];
  value.forEach((item, index) => {
    const field = `paths[${index}]`;
    if (typeof item !== "string") {
      problems.add(field, expectedText(item));
    } else if (item === "") {
      problems.add(field, "is empty (expected an absolute path)");
    } else if (item.includes("\0")) {
      problems.add(field, `${JSON.stringify(item)} contains a NUL character`);
    } else {
      const problem = absolutePathProblem(item);
      if (problem) problems.add(field, problem);
    }
    paths.push(typeof item === "string" ? item : "");
  });
  checkPathsDistinct(paths, problems);
  return paths;
}

interface ComparedPath {
  original: string;
  index: number;
  /** The path as compared: normalized (and lower-cased on Windows). */
  key: string;
}

/**
 * Reports each path that repeats or lies inside an earlier one (or the
 * reverse), once; `how` ends each message (" (through a symbolic link)").
 * Returns the indexes involved.
 */
function reportOverlaps(paths: ComparedPath[], problems: ProblemList, how: string): Set<number> {
  const reported = new Set<number>();
  for (const [i, later] of paths.entries()) {
    for (const earlier of paths.slice(0, i)) {
      if (later.key === earlier.key) {
        problems.add(
          `paths[${later.index}]`,
          `${JSON.stringify(later.original)} repeats paths[${earlier.index}]${how}`,
        );
        reported.add(later.index).add(earlier.index);
        break;
      }
      const nested = isInside(later.key, earlier.key)
        ? [later, earlier]
        : isInside(earlier.key, later.key)
        ? [earlier, later]
        : undefined;
      if (nested) {
        const [inner, outer] = nested;
        problems.add(
          `paths[${inner.index}]`,
          `${JSON.stringify(inner.original)} is inside paths[${outer.index}] ` +
            `${JSON.stringify(outer.original)}, which already includes it${how}`,
        );
        reported.add(inner.index).add(outer.index);
        break;
      }
    }
  }
  return reported;
}

/** Rejects duplicates, nested paths and paths whose names would collide in the archive. */
function checkPathsDistinct(paths: string[], problems: ProblemList): void {
  const usable = paths
    .map((original, index) => ({ original, index, key: comparisonKey(original) }))
    .filter((entry) => entry.original !== "" && absolutePathProblem(entry.original) === undefined);
  const reported = reportOverlaps(usable, problems, "");
  if (usable.length < 2) return;
  // Each root's name becomes the first component of relative_path.
  const byName = new Map<string, typeof usable[number]>();
  for (const entry of usable) {
    if (reported.has(entry.index)) continue;
    const name = path.basename(entry.original);
    if (name === "") {
      problems.add(
        `paths[${entry.index}]`,
        `${JSON.stringify(entry.original)} is a filesystem root, which has no name to tell it ` +
          "apart from the other paths",
        SAME_NAME_HINT,
      );
      continue;
    }
    // Compared as Windows would restore them: ignoring case and Unicode form.
    const nameKey = name.normalize("NFC").toLowerCase();
    const earlier = byName.get(nameKey);
    if (earlier) {
      const earlierName = path.basename(earlier.original);
      const caseNote = earlierName === name ? "" : " (names are compared ignoring case)";
      problems.add(
        `paths[${entry.index}]`,
        `${JSON.stringify(entry.original)} has the same name as paths[${earlier.index}] ` +
          `${JSON.stringify(earlier.original)}${caseNote}, and both would become the folder ` +
          `"${earlierName}" inside the backup`,
        SAME_NAME_HINT,
      );
    } else {
      byName.set(nameKey, entry);
    }
  }
}

function readExclude(value: unknown, problems: ProblemList): string[] {
  if (!present(value)) return [];
  if (!Array.isArray(value)) {
    problems.add("exclude", `expected a list of glob patterns, got ${describe(value)}`);
    return [];
  }
  return value.map((item, index) => {
    const field = `exclude[${index}]`;
    if (typeof item !== "string") {
      problems.add(field, expectedText(item));
      return "";
    }
    const problem = describePatternProblem(item);
    if (problem) {
      problems.add(field, `pattern ${JSON.stringify(item)} is invalid: ${problem}`, PATTERN_HINT);
    }
    return item;
  });
}

function readSchedule(value: unknown, problems: ProblemList): string {
  // The seed's default when none is given: every day at 02:00.
  if (!present(value)) return DEFAULT_SCHEDULE;
  if (typeof value !== "string") {
    problems.add("schedule", expectedText(value));
    return "";
  }
  try {
    parseCron(value);
  } catch (error) {
    if (!(error instanceof CronError)) throw error;
    problems.add("schedule", error.message, CRON_HINT);
  }
  return value;
}

function readDestination(value: unknown, problems: ProblemList): S3Destination | LocalDestination {
  const fallback: S3Destination = { type: "s3", bucket: "", prefix: "", endpoint: "", region: "" };
  if (!present(value)) return fallback;
  if (!isMapping(value)) {
    problems.add(
      "destination",
      `expected a mapping with "type: s3" or "type: local", got ${describe(value)}`,
    );
    return fallback;
  }
  const type = value.type;
  if (type === "local") {
    rejectUnknownKeys(value, LOCAL_KEYS, "destination", problems, "for type local");
    return { type: "local", path: readLocalPath(value.path, problems) };
  }
  if (type !== "s3") {
    problems.add(
      "destination.type",
      present(type)
        ? `expected "s3" or "local", got ${describe(type)}`
        : 'missing (expected "s3" or "local")',
    );
    return fallback;
  }
  rejectUnknownKeys(value, S3_KEYS, "destination", problems, "for type s3");
  return {
    type: "s3",
    bucket: readOptionalText(value.bucket, "destination.bucket", problems, bucketProblem),
    prefix: readOptionalText(value.prefix, "destination.prefix", problems, prefixProblem),
    endpoint: readOptionalText(value.endpoint, "destination.endpoint", problems, endpointProblem),
    region: readOptionalText(value.region, "destination.region", problems, regionProblem),
  };
}

function readLocalPath(value: unknown, problems: ProblemList): string {
  const field = "destination.path";
  if (!present(value)) {
    problems.add(field, "missing (expected the absolute path of the backup directory)");
    return "";
  }
  if (typeof value !== "string") {
    problems.add(field, expectedText(value));
    return "";
  }
  const problem = value === ""
    ? "is empty (expected an absolute path)"
    : value.includes("\0")
    ? `${JSON.stringify(value)} contains a NUL character`
    : absolutePathProblem(value);
  if (problem) problems.add(field, problem);
  return value;
}

/** An optional string where absent, null and "" all mean "not set". */
function readOptionalText(
  value: unknown,
  field: string,
  problems: ProblemList,
  problemOf: (text: string) => string | undefined,
): string {
  if (!present(value) || value === "") return "";
  if (typeof value !== "string") {
    problems.add(field, expectedText(value));
    return "";
  }
  const problem = problemOf(value);
  if (problem) problems.add(field, problem);
  return value;
}

/** Why `bucket` cannot be a bucket name, or undefined: for destination.bucket and AWS_S3_BUCKET alike. */
export function bucketProblem(bucket: string): string | undefined {
  if (/^s3:\/\//i.test(bucket) || bucket.includes("/")) {
    return `${JSON.stringify(bucket)} is not a bucket name (write only the name here, ` +
      "and any folder in destination.prefix)";
  }
  if (!/^[A-Za-z0-9._-]{1,255}$/.test(bucket)) {
    return `${
      JSON.stringify(bucket)
    } is not a valid bucket name (use letters, digits, ".", "-" and "_")`;
  }
  return undefined;
}

/** Mirrors the storage layer's key rules so that a bad prefix is caught before any upload. */
function prefixProblem(prefix: string): string | undefined {
  const quoted = JSON.stringify(prefix);
  if (prefix.startsWith("/")) return `${quoted} starts with "/" (write it without the leading "/")`;
  if (prefix.includes("\\")) return `${quoted} contains a backslash (separate folders with "/")`;
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\x00-\x1f\x7f]/.test(prefix)) return `${quoted} contains a control character`;
  const segments = (prefix.endsWith("/") ? prefix.slice(0, -1) : prefix).split("/");
  if (segments.includes("..") || segments.includes(".")) {
    return `${quoted} contains a "." or ".." segment`;
  }
  if (segments.includes("")) return `${quoted} contains an empty segment ("//")`;
  return undefined;
}

/**
 * Why `endpoint` cannot be an S3 endpoint, or undefined: the rule for the
 * policy's `destination.endpoint` and for AWS_ENDPOINT_URL_S3 alike.
 */
export function endpointProblem(endpoint: string): string | undefined {
  const example = 'e.g. "https://s3.example.com" or "http://127.0.0.1:9000"';
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    // Not quoted: "user:password@host" is not a URL, and would show the password.
    return `it is not a URL (${example})`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `it is not an http or https URL (${example})`;
  }
  if (url.username !== "" || url.password !== "") {
    return "the URL contains credentials (put them in the .env file as " +
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead)";
  }
  if (url.search !== "" || url.hash !== "") {
    return "it has a query or fragment (give only the scheme, host, port and path)";
  }
  return undefined;
}

/** Why `region` cannot be a region, or undefined: for destination.region and AWS_REGION alike. */
export function regionProblem(region: string): string | undefined {
  if (/^[A-Za-z0-9_-]{1,64}$/.test(region)) return undefined;
  return `${JSON.stringify(region)} is not a region name such as "us-east-1"`;
}

function readCompression(value: unknown, problems: ProblemList): { level: number } {
  const fallback = { level: DEFAULT_COMPRESSION_LEVEL };
  if (!present(value)) return fallback;
  if (!isMapping(value)) {
    problems.add("compression", `expected a mapping with "level", got ${describe(value)}`);
    return fallback;
  }
  rejectUnknownKeys(value, ["level"], "compression", problems);
  const level = value.level;
  if (!present(level)) return fallback;
  if (typeof level !== "number" || !Number.isInteger(level) || level < 1 || level > 9) {
    problems.add(
      "compression.level",
      `expected a whole number from 1 (fastest) to 9 (smallest), got ${describe(level)}`,
    );
    return fallback;
  }
  return { level };
}

function readEncryption(
  value: unknown,
  problems: ProblemList,
): { key_env: string; passphrase_env: string } {
  const fallback = { key_env: DEFAULT_KEY_ENV, passphrase_env: DEFAULT_PASSPHRASE_ENV };
  if (!present(value)) return fallback;
  if (!isMapping(value)) {
    problems.add(
      "encryption",
      `expected a mapping with "key_env" and "passphrase_env", got ${describe(value)}`,
    );
    return fallback;
  }
  rejectUnknownKeys(value, ["key_env", "passphrase_env"], "encryption", problems);
  const encryption = {
    key_env: readEnvName(value.key_env, "encryption.key_env", DEFAULT_KEY_ENV, problems),
    passphrase_env: readEnvName(
      value.passphrase_env,
      "encryption.passphrase_env",
      DEFAULT_PASSPHRASE_ENV,
      problems,
    ),
  };
  if (encryption.key_env === encryption.passphrase_env) {
    problems.add(
      "encryption.passphrase_env",
      `must differ from key_env (both are "${encryption.key_env}")`,
    );
  }
  return encryption;
}

function readNotify(value: unknown, problems: ProblemList): NotifySettings {
  if (!present(value)) return { ...DEFAULT_NOTIFY };
  if (!isMapping(value)) {
    problems.add(
      "notify",
      `expected a mapping with "url_env", "failure_url_env", "timeout_seconds", got ${
        describe(value)
      }`,
    );
    return { ...DEFAULT_NOTIFY };
  }
  rejectUnknownKeys(value, ["url_env", "failure_url_env", "timeout_seconds"], "notify", problems);
  let timeout = DEFAULT_NOTIFY.timeout_seconds;
  if (present(value.timeout_seconds)) {
    const t = value.timeout_seconds;
    if (typeof t !== "number" || !Number.isInteger(t) || t < 1 || t > 120) {
      problems.add(
        "notify.timeout_seconds",
        `expected a whole number of seconds from 1 to 120, got ${describe(t)}`,
      );
    } else timeout = t;
  }
  return {
    url_env: readEnvName(value.url_env, "notify.url_env", DEFAULT_NOTIFY.url_env, problems),
    failure_url_env: readEnvName(
      value.failure_url_env,
      "notify.failure_url_env",
      DEFAULT_NOTIFY.failure_url_env,
      problems,
    ),
    timeout_seconds: timeout,
  };
}

function readRetention(value: unknown, problems: ProblemList): Retention {
  const retention = { ...DEFAULT_RETENTION };
  if (!present(value)) return retention;
  if (!isMapping(value)) {
    problems.add(
      "retention",
      `expected a mapping with ${RETENTION_KEYS.join(", ")}, got ${describe(value)}`,
    );
    return retention;
  }
  rejectUnknownKeys(value, [...RETENTION_KEYS], "retention", problems);
  for (const key of RETENTION_KEYS) {
    const count = value[key];
    if (!present(count)) continue;
    if (typeof count !== "number" || !Number.isInteger(count) || count < 0 || count > MAX_KEEP) {
      problems.add(
        `retention.${key}`,
        `expected a whole number from 0 (rule not used) to ${MAX_KEEP}, got ${describe(count)}`,
      );
    } else retention[key] = count + 0; // -0 (valid YAML) reads back as 0
  }
  return retention;
}

function readEnvName(
  value: unknown,
  field: string,
  fallback: string,
  problems: ProblemList,
): string {
  if (!present(value)) return fallback;
  if (typeof value !== "string") {
    problems.add(field, expectedText(value));
    return fallback;
  }
  if (!ENV_NAME_PATTERN.test(value)) {
    problems.add(
      field,
      // Not quoted: the usual mistake is the secret itself in place of its name.
      `the text given (${value.length} characters) is not an environment variable name (use ` +
        'letters, digits and "_", not starting with a digit: the name of the variable, not its value)',
    );
  }
  return value;
}

function rejectUnknownKeys(
  mapping: Mapping,
  allowed: readonly string[],
  parent: string,
  problems: ProblemList,
  context = "",
): void {
  for (const key of Object.keys(mapping)) {
    if (allowed.includes(key)) continue;
    // A key that is not name-like may be a pasted secret ("TOKEN=abc"): not echoed.
    const shown = /^[\w.-]{1,40}$/.test(key) ? key : `(a key of ${key.length} characters)`;
    const field = parent === "" ? shown : `${parent}.${shown}`;
    const suggestion = closestKey(key, allowed);
    problems.add(
      field,
      `unknown key${context ? ` ${context}` : ""}` +
        (suggestion ? ` (did you mean "${suggestion}"?)` : "") +
        ` (expected one of ${allowed.join(", ")})`,
    );
  }
}

// ---------------------------------------------------------------------------
// Paths

const isWindows = Deno.build.os === "windows";

/** Why `value` is not an absolute path on this platform, or undefined. */
function absolutePathProblem(value: string): string | undefined {
  const quoted = JSON.stringify(value);
  if (isWindows) {
    // "\dados" is relative to the current drive, which differs for a scheduled task.
    if (/^[A-Za-z]:[\\/]/.test(value) || /^[\\/]{2}[^\\/]/.test(value)) return undefined;
    if (/^[\\/](?![\\/])/.test(value)) {
      return `${quoted} has no drive letter (write the full path, e.g. "C:${value}")`;
    }
    return `${quoted} is not an absolute path (write the full path, e.g. "C:\\dados")`;
  }
  if (path.isAbsolute(value)) return undefined;
  if (/^[A-Za-z]:[\\/]|^\\\\/.test(value)) {
    return `${quoted} is a Windows path, which is not absolute on this system (write the full ` +
      'path, e.g. "/srv/dados")';
  }
  return `${quoted} is not an absolute path (write the full path, e.g. "/srv/dados")`;
}

/** A form of the path in which equal paths compare equal: normalized, no trailing separator, case-folded on Windows. */
export function comparisonKey(value: string): string {
  const normalized = withoutTrailingSeparator(path.normalize(value), currentPlatform);
  return isWindows ? normalized.toLowerCase() : normalized;
}

function isInside(child: string, parent: string): boolean {
  const withSeparator = /[\\/]$/.test(parent) ? parent : parent + path.sep;
  return child.startsWith(withSeparator);
}

/**
 * Checks that every path of a validated policy exists (`readPolicy` with
 * `requirePaths`, and `policy-create` before writing).
 *
 * @param source the file name, for messages
 * @throws IntellistorError POLICY_INVALID naming each missing or unreadable `paths[i]`.
 */
export async function checkPathsExist(policy: Policy, source: string): Promise<void> {
  const problems = new ProblemList();
  const real: ComparedPath[] = [];
  for (const [index, entry] of policy.paths.entries()) {
    try {
      await Deno.stat(entry);
      // Some Windows volumes (RAM disks, some network drives) cannot say: as written, then.
      const resolved = await Deno.realPath(entry).catch(() => entry);
      real.push({ original: entry, index, key: comparisonKey(resolved) });
    } catch (error) {
      const field = `paths[${index}]`;
      if (error instanceof Deno.errors.NotFound) {
        problems.add(field, `${JSON.stringify(entry)} does not exist`, MISSING_PATH_HINT);
      } else {
        problems.add(
          field,
          `${JSON.stringify(entry)} cannot be accessed: ${errorMessage(error)}`,
          MISSING_PATH_HINT,
        );
      }
    }
  }
  // The same check as validatePolicy's, on real paths: a symbolic link may
  // make two paths one, which would archive the same files twice.
  reportOverlaps(real, problems, " (through a symbolic link)");
  problems.throwIfAny(source);
}

/** True when the first line that is neither blank nor a comment is a `NAME=value` assignment. */
function looksLikeEnvFile(text: string): boolean {
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed === "---") continue;
    return /^(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=/.test(trimmed);
  }
  return false;
}

async function statOrUndefined(file: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new IntellistorError(
      "IO_ERROR",
      `Policy file "${file}" cannot be checked: ${errorMessage(error)}`,
      "Check that you may read the directory.",
      { cause: error },
    );
  }
}

// ---------------------------------------------------------------------------
// YAML reading

/** Decodes UTF-8 (with or without BOM) or UTF-16 with BOM, as PowerShell 5 writes it. */
function decodeText(bytes: Uint8Array, source: string): string {
  let encoding = "utf-8";
  if (bytes[0] === 0xff && bytes[1] === 0xfe) encoding = "utf-16le";
  else if (bytes[0] === 0xfe && bytes[1] === 0xff) encoding = "utf-16be";
  try {
    return new TextDecoder(encoding, { fatal: true }).decode(bytes);
  } catch (error) {
    throw new IntellistorError(
      "POLICY_INVALID",
      `Policy "${source}" is invalid: it is not ${encoding.toUpperCase()} text`,
      "Save the file as UTF-8 (the policy is YAML text).",
      { cause: error },
    );
  }
}

function parseYaml(text: string, source: string): unknown {
  const lineCounter = new YAML.LineCounter();
  const document = YAML.parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const [first] = document.errors;
  const yamlHint = "Check the indentation (spaces, not tabs) and quote values that contain " +
    '": " or " #". Windows paths are safest in single quotes, e.g. \'C:\\dados\'.';
  if (first) {
    const { line, col } = lineCounter.linePos(first.pos[0]);
    throw new IntellistorError(
      "POLICY_INVALID",
      `Policy "${source}" is invalid: YAML syntax error at line ${line}, column ${col}: ` +
        firstLine(first.message),
      yamlHint,
    );
  }
  try {
    return document.toJS();
  } catch (error) {
    throw new IntellistorError(
      "POLICY_INVALID",
      `Policy "${source}" is invalid: ${errorMessage(error)}`,
      yamlHint,
      { cause: error },
    );
  }
}

// ---------------------------------------------------------------------------
// YAML writing

function renderDestination(destination: S3Destination | LocalDestination): string[] {
  if (destination.type === "local") {
    return [
      "# Where backups go: a local directory (USB disk, NAS share), laid out as in a bucket.",
      "destination:",
      "  type: local",
      "  # Absolute path of the directory; created by the first backup if missing.",
      `  path: ${yamlString(destination.path)}`,
      "# Or an S3 bucket (AWS or S3-compatible) instead:",
      "# destination:",
      "#   type: s3",
      '#   bucket: ""     # empty = AWS_S3_BUCKET from the environment or the .env file',
      '#   prefix: ""',
      '#   endpoint: ""',
      '#   region: ""',
    ];
  }
  return [
    "# Where backups go: an S3 bucket, on AWS or an S3-compatible store (MinIO, Cloudflare R2,",
    "# Backblaze B2, Wasabi, Ceph). Credentials come from the environment or the .env file.",
    "destination:",
    "  type: s3",
    "  # Bucket name; empty = AWS_S3_BUCKET from the environment or the .env file.",
    `  bucket: ${yamlString(destination.bucket)}`,
    '  # Folder (key prefix) inside the bucket, without a leading "/"; empty = the top.',
    `  prefix: ${yamlString(destination.prefix)}`,
    "  # URL of an S3-compatible store (http or https); empty = AWS, or AWS_ENDPOINT_URL_S3",
    "  # / AWS_ENDPOINT_URL from the environment.",
    `  endpoint: ${yamlString(destination.endpoint)}`,
    "  # Region; empty = AWS_REGION / AWS_DEFAULT_REGION from the environment, else us-east-1.",
    `  region: ${yamlString(destination.region)}`,
    "# Or a local directory (USB disk, NAS share) instead of S3:",
    "# destination:",
    "#   type: local",
    "#   path: /mnt/backups     # on Windows e.g. 'D:\\intellistor-backups'",
  ];
}

function yamlList(key: string, items: readonly string[]): string[] {
  if (items.length === 0) return [`${key}: []`];
  return [`${key}:`, ...items.map((item) => `  - ${yamlString(item)}`)];
}

/** Characters YAML cannot hold literally, or that editors may mangle. */
// deno-lint-ignore no-control-regex -- control characters are exactly what must be escaped
const UNSAFE_LITERAL = /[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufeff\ufffe\uffff]/;

/**
 * A YAML scalar that reads back as exactly `value`: plain when unambiguous
 * (`/srv/data`, `mvp-default`), single-quoted when it holds backslashes (so
 * Windows paths stay readable), double-quoted with escapes otherwise.
 */
function yamlString(value: string): string {
  if (/^[A-Za-z0-9_/][A-Za-z0-9._/-]*$/.test(value) && YAML.parse(value) === value) return value;
  if (value.includes("\\") && !UNSAFE_LITERAL.test(value)) {
    return `'${value.replaceAll("'", "''")}'`;
  }
  // JSON escapes are valid YAML escapes; also escape what JSON leaves literal.
  return JSON.stringify(value).replace(
    /[\x7f-\x9f\ufeff\ufffe\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

// ---------------------------------------------------------------------------
// Small helpers

function isMapping(value: unknown): value is Mapping {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype;
}

/** YAML `key:` with nothing after it gives null, which means "not set". */
function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function expectedText(value: unknown): string {
  const hint = typeof value === "number" || typeof value === "boolean"
    ? " (write it in quotes)"
    : "";
  return `expected text, got ${describe(value)}${hint}`;
}

/** Texts up to this length are quoted in messages; a base64 key has 44 characters. */
const DESCRIBED_TEXT_LIMIT = 32;

function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  // A long text may be something pasted by mistake (a key, a .env file): not echoed.
  if (typeof value === "string") {
    return value.length <= DESCRIBED_TEXT_LIMIT
      ? `the text ${JSON.stringify(value)}`
      : `a text of ${value.length} characters`;
  }
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${value}`;
  if (Array.isArray(value)) return "a list";
  if (isMapping(value)) return "a mapping";
  return `a ${(value as object).constructor?.name ?? typeof value} value`;
}

function closestKey(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}

function firstLine(message: string): string {
  return message.split("\n")[0].trim();
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Quotes a path for a command shown in a hint, when it needs it. */
function quoteForHint(value: string): string {
  return /^[A-Za-z0-9_./\\:-]+$/.test(value) ? value : `"${value}"`;
}
