/**
 * The executable's entry point: `intellistor <command> …`.
 * `run()` is exported so tests can run commands in-process.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CliIo } from "./lib/cli/io.ts";
import { run } from "./lib/cli/run.ts";

export { run };

/** How to invoke this program again (for the `cli_restore` line a backup prints). */
export function selfInvocation(): string[] {
  const executable = Deno.execPath();
  const name = path.basename(executable).toLowerCase();
  // A `deno compile`d executable runs the program itself; `deno` needs the script.
  if (name !== "deno" && name !== "deno.exe") return [executable];
  return [executable, "run", "-A", fileURLToPath(import.meta.url)];
}

export function processIo(): CliIo {
  const encoder = new TextEncoder();
  // `deno task` runs from the project directory; INIT_CWD is where the user was.
  const cwd = Deno.env.get("INIT_CWD") ?? Deno.cwd();
  const writeAll = (target: typeof Deno.stdout, text: string) => {
    const bytes = encoder.encode(text);
    for (let offset = 0; offset < bytes.length;) offset += target.writeSync(bytes.subarray(offset));
  };
  return {
    stdout: (text) => writeAll(Deno.stdout, text),
    stderr: (text) => writeAll(Deno.stderr, text),
    env: Deno.env.toObject(),
    cwd,
    self: selfInvocation(),
  };
}

if (import.meta.main) {
  const io = processIo();
  // Ctrl+C: nothing is committed before the manifest, so stopping is safe; say so and exit 130.
  Deno.addSignalListener("SIGINT", () => {
    io.stderr(
      JSON.stringify({
        error: {
          code: "INTERRUPTED",
          message: "Interrupted",
          hint: "Nothing was committed: a backup exists only once its manifest is written.",
          exit_code: 130,
        },
      }) + "\n",
    );
    Deno.exit(130);
  });
  Deno.exit(await run(Deno.args, io));
}
