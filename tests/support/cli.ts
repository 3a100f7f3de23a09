/** Runs the CLI in-process (main.ts `run`) or as a real subprocess, capturing its output. */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../../main.ts";

export const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
/** How a user runs the program from source: what `cli_restore` will contain. */
export const SELF = [Deno.execPath(), "run", "-A", MAIN];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (throws if it is not one JSON document). */
  json: () => Record<string, unknown>;
  /** stderr parsed as the error object. */
  error: () => { code: string; message: string; hint: string; exit_code: number };
}

function result(code: number, stdout: string, stderr: string): CliResult {
  return {
    code,
    stdout,
    stderr,
    json: () => JSON.parse(stdout),
    error: () => JSON.parse(stderr).error,
  };
}

/** In-process: the same code path as the executable, without a new process. */
export async function runCli(
  argv: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    env: options.env ?? {},
    cwd: options.cwd,
    self: SELF,
  });
  return result(code, stdout, stderr);
}

/** As a subprocess of `deno run main.ts`, with a clean environment. */
export async function spawnCli(
  argv: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  return await spawn(Deno.execPath(), ["run", "-A", MAIN, ...argv], options);
}

/** Runs a command line through `sh -c`, exactly as a user pastes it. */
export async function spawnShell(
  commandLine: string,
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  return await spawn("sh", ["-c", commandLine], options);
}

async function spawn(
  program: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  const output = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...options.env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return result(output.code, decoder.decode(output.stdout), decoder.decode(output.stderr));
}

export function relativeTo(from: string, to: string): string {
  return path.relative(from, to);
}
