/**
 * The executable's entry point: `intellistor <command> …`.
 * `run()` is exported so tests can run commands in-process.
 */
import { V8_FLAGS } from "./lib/runtime_flags.ts";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CliIo } from "./lib/cli/io.ts";
import { run } from "./lib/cli/run.ts";
import { ExitCode, IntellistorError, interruptedError } from "./lib/errors.ts";

export { run };

/** How to invoke this program again (for the `cli_restore` line a backup prints). */
export function selfInvocation(): string[] {
  const executable = Deno.execPath();
  const name = path.basename(executable).toLowerCase();
  // A `deno compile`d executable runs the program itself; `deno` needs the script.
  if (name !== "deno" && name !== "deno.exe") return [executable];
  return [executable, "run", `--v8-flags=${V8_FLAGS}`, "-A", fileURLToPath(import.meta.url)];
}

export function processIo(): CliIo {
  const encoder = new TextEncoder();
  // `deno task intellistor` runs from the project directory; the task passes the
  // user's directory in INTELLISTOR_CWD (not INIT_CWD, which npm and deno leave
  // in the environment of every process started below them).
  const cwd = Deno.env.get("INTELLISTOR_CWD") || Deno.cwd();
  Deno.env.delete("INTELLISTOR_CWD");
  const writeAll = (target: typeof Deno.stdout, text: string) => {
    const bytes = encoder.encode(text);
    for (let offset = 0; offset < bytes.length;) offset += target.writeSync(bytes.subarray(offset));
  };
  return {
    // The result could not be printed (stdout on a full disk, a closed pipe):
    // say so, rather than let it pass for the command's own disk failing.
    stdout: (text) => {
      try {
        writeAll(Deno.stdout, text);
      } catch (error) {
        throw new IntellistorError(
          "IO_ERROR",
          `Cannot write the result to standard output: ${
            error instanceof Error ? error.message : String(error)
          }`,
          "Check where standard output goes (a full disk, a closed pipe); the command itself " +
            "may have completed: see `intellistor list` or the restored files.",
        );
      }
    },
    stderr: (text) => writeAll(Deno.stderr, text),
    env: Deno.env.toObject(),
    cwd,
    self: selfInvocation(),
  };
}

/** Signals that stop a command cleanly (Windows has no SIGTERM; Ctrl+Break is SIGBREAK). */
const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/** How long a stopped command may take to clean up (temp files, multipart uploads). */
const CLEANUP_GRACE_MS = 20_000;

if (import.meta.main) {
  const interruption = new AbortController();
  const io = { ...processIo(), signal: interruption.signal };
  // Ctrl+C, and SIGTERM (systemctl stop, a shutdown), stop the command at its
  // next step and let it clean up (temporary files, multipart uploads); a
  // second signal, or a clean-up still stuck after the grace period (a store
  // that stopped answering), exits at once, saying so.
  const exitUncleaned = () => {
    try {
      io.stderr(JSON.stringify(interruptedError({ cleanedUp: false }).toJSON()) + "\n");
    } finally {
      Deno.exit(ExitCode.interrupted);
    }
  };
  const stop = () => {
    if (interruption.signal.aborted) exitUncleaned();
    interruption.abort();
    setTimeout(exitUncleaned, CLEANUP_GRACE_MS);
  };
  for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, stop);
  Deno.exit(await run(Deno.args, io));
}
