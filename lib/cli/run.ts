/**
 * The command line: dispatches argv to a command and turns every failure into
 * one JSON error on stderr plus a documented exit code. Never a stack trace
 * for a user error; set INTELLISTOR_DEBUG=1 to see one for an internal error.
 */
import type { CommandRunner } from "../agent/schedule/runner.ts";
import { ExitCode, IntellistorError, toIntellistorError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { agentCommand, agentHelp } from "./agent.ts";
import { backupCommand, backupHelp } from "./backup.ts";
import { decryptCommand, decryptHelp } from "./decrypt.ts";
import { demoCommand, demoHelp } from "./demo.ts";
import type { CliIo } from "./io.ts";
import { keyCommand, keyHelp } from "./key.ts";
import { listCommand, listHelp } from "./list.ts";
import { policyCreateCommand, policyCreateHelp } from "./policy_create.ts";
import { restoreCommand, restoreHelp } from "./restore.ts";
import { scheduleCommand, scheduleHelp } from "./schedule.ts";

export const mainHelp = `Intellistor Backup Client ${VERSION}

Usage: intellistor <command> [flags]

Commands:
  policy-create   write a policy (YAML): what to protect, when, where to
  backup          back up a policy's paths (encrypted, with a manifest)
  restore         restore a backup, fully or selectively (--only)
  list            the policy's backups, with the key restore needs
  agent run       one unattended run (what the scheduler executes): lock, backup, log
  schedule        install | status | remove the policy's task (Windows) or timer (Linux)
  decrypt         turn a backup object into a plain .tar.gz
  key generate    print a new random key for the .env file
  demo            the whole flow on a sample tree, in a local directory

Every command prints one JSON document on stdout; errors are one JSON object
on stderr. "intellistor <command> --help" shows a command's flags.
Exit codes: 0 ok, 1 failure, 2 usage, 3 partial backup, 10 not found,
11 already running, 12 wrong key, 13 integrity failure, 130 interrupted.`;

const helps: Record<string, string> = {
  "policy-create": policyCreateHelp,
  backup: backupHelp,
  restore: restoreHelp,
  decrypt: decryptHelp,
  list: listHelp,
  agent: agentHelp,
  schedule: scheduleHelp,
  key: keyHelp,
  demo: demoHelp,
};

export interface RunOptions {
  /** Where `decrypt --out -` writes; the process's stdout by default. */
  binaryStdout?: WritableStream<Uint8Array>;
  /** Runs schtasks/systemctl for `schedule`; the real one (Deno.Command) by default. */
  commandRunner?: CommandRunner;
}

export async function run(argv: string[], io: CliIo, options: RunOptions = {}): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === "--help" || command === "-h" || command === "help") {
      io.stdout(mainHelp + "\n");
      return ExitCode.ok;
    }
    if (command === undefined) {
      io.stdout(mainHelp + "\n");
      throw new IntellistorError("USAGE", "No command given", 'Run "intellistor --help".');
    }
    if (command === "--version" || command === "version") {
      io.stdout(JSON.stringify({ version: VERSION }) + "\n");
      return ExitCode.ok;
    }
    if (rest.includes("--help") || rest.includes("-h")) {
      const help = helps[command];
      if (help !== undefined) {
        io.stdout(help + "\n");
        return ExitCode.ok;
      }
    }
    switch (command) {
      case "policy-create":
        return await policyCreateCommand(rest, io);
      case "backup":
        return await backupCommand(rest, io);
      case "restore":
        return await restoreCommand(rest, io);
      case "agent":
        return await agentCommand(rest, io);
      case "schedule":
        return await scheduleCommand(rest, io, options.commandRunner);
      case "list":
        return await listCommand(rest, io);
      case "decrypt":
        return await decryptCommand(rest, io, options.binaryStdout ?? Deno.stdout.writable);
      case "key":
        return keyCommand(rest, io);
      case "demo":
        return await demoCommand(rest, io, run);
      default:
        throw new IntellistorError(
          "USAGE",
          `Unknown command "${command}"`,
          'Run "intellistor --help" for the list of commands.',
        );
    }
  } catch (error) {
    const failure = toIntellistorError(error);
    io.stderr(JSON.stringify(failure.toJSON()) + "\n");
    if (failure.code === "INTERNAL" && io.env.INTELLISTOR_DEBUG) {
      io.stderr(String(error instanceof Error ? error.stack : error) + "\n");
    }
    return failure.exitCode;
  }
}
