/**
 * The command line: dispatches argv to a command and turns every failure into
 * one JSON error on stderr plus a documented exit code. Never a stack trace
 * for a user error; set INTELLISTOR_DEBUG=1 to see one for an internal error.
 */
import type { CommandRunner } from "../agent/schedule/runner.ts";
import { ExitCode, IntellistorError, toIntellistorError } from "../errors.ts";
import { VERSION } from "../version.ts";
import type { CliIo } from "./io.ts";

export const mainHelp = `Intellistor Backup Client ${VERSION}

Usage: intellistor <command> [flags]

Commands:
  policy-create   write a policy (YAML): what to protect, when, where to
  backup          back up a policy's paths (encrypted, with a manifest)
  restore         restore a backup, fully or selectively (--only)
  list            the policy's backups, with the key restore needs (--key: one backup's files)
  prune           delete the backups the policy's retention rules do not keep
  agent run       one unattended run (what the scheduler executes): lock, backup, log
  schedule        install | status | remove the policy's task (Windows) or timer (Linux)
  decrypt         turn a backup object into a plain .tar.gz
  key generate    print a new random key for the .env file
  demo            the whole flow on a sample tree, in a local directory

Every command prints one JSON document on stdout; errors are one JSON object
on stderr. "intellistor <command> --help" shows a command's flags.
Exit codes: 0 ok, 1 failure, 2 usage, 3 partial backup, 10 not found,
11 already running, 12 wrong key, 13 integrity failure, 130 interrupted.`;

export interface RunOptions {
  /** Where `decrypt --out -` writes; the process's stdout by default. */
  binaryStdout?: WritableStream<Uint8Array>;
  /** Runs schtasks/systemctl for `schedule`; the real one (Deno.Command) by default. */
  commandRunner?: CommandRunner;
}

interface Command {
  help: string;
  run(argv: string[], io: CliIo, options: RunOptions): Promise<number> | number;
}

/**
 * Imports a command's module by a computed URL. Deno resolves every dynamic
 * import of a literal path when it starts, with all that module's dependencies
 * (the AWS SDK among them): 50 ms on every start, `--help` included. It does
 * not follow a computed one, so build.ts passes these modules to
 * `deno compile` with --include (tests/docs_test.ts checks the list).
 */
function commandModule<T>(specifier: string): Promise<T> {
  return import(new URL(specifier, import.meta.url).href);
}

/**
 * Each command's module is loaded only when it runs (or shows its help):
 * start-up stays small, and the AWS SDK loads only for commands that use S3.
 */
const commands: Record<string, () => Promise<Command>> = {
  "policy-create": async () => {
    const m = await commandModule<typeof import("./policy_create.ts")>("./policy_create.ts");
    return { help: m.policyCreateHelp, run: (argv, io) => m.policyCreateCommand(argv, io) };
  },
  backup: async () => {
    const m = await commandModule<typeof import("./backup.ts")>("./backup.ts");
    return { help: m.backupHelp, run: (argv, io) => m.backupCommand(argv, io) };
  },
  restore: async () => {
    const m = await commandModule<typeof import("./restore.ts")>("./restore.ts");
    return { help: m.restoreHelp, run: (argv, io) => m.restoreCommand(argv, io) };
  },
  list: async () => {
    const m = await commandModule<typeof import("./list.ts")>("./list.ts");
    return { help: m.listHelp, run: (argv, io) => m.listCommand(argv, io) };
  },
  prune: async () => {
    const m = await commandModule<typeof import("./prune.ts")>("./prune.ts");
    return { help: m.pruneHelp, run: (argv, io) => m.pruneCommand(argv, io) };
  },
  agent: async () => {
    const m = await commandModule<typeof import("./agent.ts")>("./agent.ts");
    return { help: m.agentHelp, run: (argv, io) => m.agentCommand(argv, io) };
  },
  schedule: async () => {
    const m = await commandModule<typeof import("./schedule.ts")>("./schedule.ts");
    return {
      help: m.scheduleHelp,
      run: (argv, io, options) => m.scheduleCommand(argv, io, options.commandRunner),
    };
  },
  decrypt: async () => {
    const m = await commandModule<typeof import("./decrypt.ts")>("./decrypt.ts");
    return {
      help: m.decryptHelp,
      run: (argv, io, options) =>
        m.decryptCommand(argv, io, options.binaryStdout ?? Deno.stdout.writable),
    };
  },
  key: async () => {
    const m = await commandModule<typeof import("./key.ts")>("./key.ts");
    return { help: m.keyHelp, run: (argv, io) => m.keyCommand(argv, io) };
  },
  demo: async () => {
    const m = await commandModule<typeof import("./demo.ts")>("./demo.ts");
    return { help: m.demoHelp, run: (argv, io) => m.demoCommand(argv, io, run) };
  },
};

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
    const load = Object.hasOwn(commands, command) ? commands[command] : undefined;
    if (load === undefined) {
      throw new IntellistorError(
        "USAGE",
        `Unknown command "${command}"`,
        'Run "intellistor --help" for the list of commands.',
      );
    }
    const selected = await load();
    if (rest.includes("--help") || rest.includes("-h")) {
      io.stdout(selected.help + "\n");
      return ExitCode.ok;
    }
    return await selected.run(rest, io, options);
  } catch (error) {
    const failure = toIntellistorError(error);
    io.stderr(JSON.stringify(failure.toJSON()) + "\n");
    if (failure.code === "INTERNAL" && io.env.INTELLISTOR_DEBUG) {
      io.stderr(String(error instanceof Error ? error.stack : error) + "\n");
    }
    return failure.exitCode;
  }
}
