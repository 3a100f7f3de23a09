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
  try {
    const { values } = parseArgs({
      args: argv,
      options: spec,
      strict: true,
      allowPositionals: false,
    });
    return values as Values<S>;
  } catch (error) {
    throw new IntellistorError(
      "USAGE",
      `${command}: ${error instanceof Error ? error.message : String(error)}`,
      `Run "intellistor ${command} --help" for the list of flags.`,
    );
  }
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
