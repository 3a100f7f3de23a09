/** `intellistor key generate`: a new random root key, as the .env file wants it. */
import { generateRootKey, KEY_ENV_DEFAULT } from "../crypto/keys.ts";
import { IntellistorError } from "../errors.ts";
import type { CliIo } from "./io.ts";

export const keyHelp = `Usage: intellistor key generate

Prints a new random 256-bit key as a .env line, e.g.
  intellistor key generate >> .env
Keep a copy somewhere safe: without the key, backups cannot be restored.`;

export function keyCommand(argv: string[], io: CliIo): number {
  if (argv.length !== 1 || argv[0] !== "generate") {
    throw new IntellistorError("USAGE", `key: unknown sub-command "${argv.join(" ")}"`, keyHelp);
  }
  io.stdout(`${KEY_ENV_DEFAULT}=${generateRootKey()}\n`);
  return 0;
}
