/** Flag parsing for every command: node:util parseArgs, errors turned into USAGE. */
import { parseArgs } from "node:util";
import { IntellistorError } from "../errors.ts";

export type FlagSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean }>;

type Values<S extends FlagSpec> = {
  [K in keyof S]?: S[K]["type"] extends "boolean" ? boolean
    : S[K]["multiple"] extends true ? string[]
    : string;
};

export function parseFlags<S extends FlagSpec>(
  command: string,
  argv: string[],
  spec: S,
): Values<S> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: spec,
      strict: true,
      allowPositionals: false,
      tokens: true,
    });
  } catch (error) {
    throw new IntellistorError(
      "USAGE",
      `${command}: ${error instanceof Error ? error.message : String(error)}`,
      `Run "intellistor ${command} --help" for the list of flags.`,
    );
  }
  // A flag given twice would silently take its last value: `--policy a --policy b`.
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== "option" || spec[token.name]?.multiple) continue;
    if (seen.has(token.name)) {
      throw new IntellistorError(
        "USAGE",
        `${command}: --${token.name} is given more than once`,
        `Give --${token.name} once.`,
      );
    }
    seen.add(token.name);
  }
  return parsed.values as Values<S>;
}

/** The value of a required flag, or a USAGE error naming it. */
export function required<T>(command: string, name: string, value: T | undefined): T {
  if (value === undefined || value === "") {
    throw new IntellistorError(
      "USAGE",
      `${command}: --${name} is required`,
      `Run "intellistor ${command} --help" for an example.`,
    );
  }
  return value;
}
