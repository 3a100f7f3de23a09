/**
 * The environment a command runs with: the process environment overlaid with
 * a `.env` file. The file is named explicitly with `--env-file` (always, under
 * Task Scheduler, which does not inherit the shell's environment); without it
 * a `.env` in the current directory is used when present. Values from the file
 * win over inherited ones, because naming a file is the more explicit choice.
 */
import { parse } from "npm:dotenv@18.0.10";
import path from "node:path";
import { IntellistorError } from "../errors.ts";
import { ConfigFileProblem, readConfigFile } from "./config_file.ts";

/** Largest .env file read: it holds a few NAME=value lines. */
const ENV_FILE_SIZE_LIMIT = 1 << 20;

export type Environment = Record<string, string | undefined>;

export interface LoadedEnvironment {
  env: Environment;
  /** The absolute path of the file that was loaded, if any. */
  envFile?: string;
}

/**
 * `base` (the process's environment) with the .env file's settings over it,
 * as the CLI reads them: `options.envFile`, else `.env` in `options.cwd` if
 * present. ENV_FILE_NOT_FOUND for a named file that is missing,
 * ENV_FILE_INVALID for one that cannot be used (a variable set twice…).
 */
export async function loadEnvironment(
  base: Environment,
  options: { envFile?: string; cwd: string },
): Promise<LoadedEnvironment> {
  const explicit = options.envFile !== undefined;
  const file = path.resolve(options.cwd, options.envFile ?? ".env");
  let bytes: Uint8Array;
  try {
    bytes = await readConfigFile(file, ENV_FILE_SIZE_LIMIT);
  } catch (error) {
    if (!explicit && error instanceof Deno.errors.NotFound) return { env: { ...base } };
    if (error instanceof Deno.errors.NotFound) {
      throw new IntellistorError(
        "ENV_FILE_NOT_FOUND",
        `The env file "${file}" does not exist`,
        "Pass the absolute path of your .env file with --env-file (see .env.example).",
      );
    }
    throw new IntellistorError(
      "ENV_FILE_INVALID",
      `Cannot read the env file "${file}": ${error instanceof Error ? error.message : error}`,
      error instanceof ConfigFileProblem
        ? "Give a .env file of NAME=value lines (see .env.example)."
        : "Check the file's permissions.",
    );
  }
  let text: string;
  try {
    // Not decoded loosely: a key or passphrase with a replaced byte would be another secret.
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new IntellistorError(
      "ENV_FILE_INVALID",
      `The env file "${file}" is not UTF-8 text`,
      "Save it as UTF-8 (see .env.example).",
    );
  }
  if (text.includes("\0")) {
    throw new IntellistorError(
      "ENV_FILE_INVALID",
      `The env file "${file}" is not a text file`,
      "It should hold NAME=value lines (see .env.example).",
    );
  }
  const repeated = repeatedNames(text);
  if (repeated !== undefined) {
    const [name, lines] = repeated;
    const isSecret = /KEY|PASSPHRASE|SECRET|TOKEN/.test(name);
    throw new IntellistorError(
      "ENV_FILE_INVALID",
      `The env file "${file}" sets ${name} more than once (lines ${lines.join(", ")})`,
      "Keep one line per variable: only one would be used." +
        (isSecret
          ? " For the key, keep the one your backups use; an older key goes in " +
            "INTELLISTOR_OLD_KEYS (comma-separated), so that its backups still restore."
          : ""),
    );
  }
  return { env: { ...base, ...parse(text) }, envFile: file };
}

/**
 * dotenv's own rule for one assignment (dotenv 18's LINE): a quoted value may
 * span lines, `NAME: value` needs a space after the colon. Used as dotenv
 * reads the file, so that what counts as a setting here is what dotenv sets.
 */
const DOTENV_LINE =
  /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/mg;

/**
 * The first name a .env sets twice, with the lines (1-based) that set it:
 * `key generate >> .env` run twice would otherwise switch keys silently
 * (dotenv keeps the last).
 */
export function repeatedNames(text: string): [string, number[]] | undefined {
  return [...settingLines(text)].find(([, at]) => at.length > 1);
}

/** Each name the .env sets, with the lines (1-based) that set it. */
export function settingLines(text: string): Map<string, number[]> {
  const source = text.replace(/\r\n?/g, "\n");
  const lines = new Map<string, number[]>();
  for (const match of source.matchAll(DOTENV_LINE)) {
    const line = source.slice(0, match.index).split("\n").length;
    lines.set(match[1], [...(lines.get(match[1]) ?? []), line]);
  }
  return lines;
}
