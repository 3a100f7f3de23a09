/**
 * The seam between `schedule` and the OS scheduler's command-line tools
 * (`schtasks`, `systemctl`): every call goes through a `CommandRunner`, so
 * tests can record the exact argument vectors without a real scheduler.
 *
 * @module
 */
import { IntellistorError } from "../../errors.ts";

/** What a finished command reported. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of one call. */
export interface RunOptions {
  /**
   * Text written to the command's stdin, then closed (schtasks reads the
   * run-as password there). Without it, stdin is empty.
   */
  stdin?: string;
}

/** Runs a program with arguments (no shell) and captures its output. */
export interface CommandRunner {
  run(program: string, args: string[], options?: RunOptions): Promise<CommandResult>;
}

/** The real runner: `Deno.Command`, output captured and decoded. */
export const denoCommandRunner: CommandRunner = {
  async run(program, args, options = {}) {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, {
        args,
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new IntellistorError(
          "SCHEDULER_FAILED",
          `"${program}" was not found on this machine`,
          "The schedule command needs the OS scheduler's tool (schtasks on Windows, " +
            "systemctl on Linux); on Linux without systemd use --print for a crontab line.",
          { cause: error },
        );
      }
      throw error;
    }
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      try {
        await writer.write(new TextEncoder().encode(options.stdin));
        await writer.close();
      } catch {
        // The program may exit without reading its input; its own output says why.
      }
    }
    const output = await child.output();
    return {
      code: output.code,
      stdout: decodeOutput(output.stdout),
      stderr: decodeOutput(output.stderr),
    };
  },
};

/**
 * Decodes a tool's output: UTF-16 LE when it starts with a BOM (as some
 * Windows tools write), UTF-8 when valid, else Windows-1252 (the ANSI code
 * page of Western Windows installs) rather than failing on accented names.
 */
export function decodeOutput(bytes: Uint8Array): string {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) {
    return new TextDecoder("utf-16le").decode(bytes.subarray(2));
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return new TextDecoder("windows-1252").decode(bytes);
  }
}
