/**
 * Builds the single executables with `deno compile`:
 *   dist/intellistor.exe (Windows x64) and dist/intellistor (Linux x64).
 *
 * `deno compile` needs Deno's runtime archive (denort-<target>.zip) for each
 * target. Deno downloads it from its own release host, or takes it from
 * $DENO_DIR/dl/release/v<version>/ or from DENORT_BIN. Where neither the
 * download nor the file is available, this script stops with a clear message
 * instead of producing something that only looks like an executable.
 *
 * Usage: deno task build [--target windows|linux|all]
 */
import { V8_FLAGS } from "./lib/runtime_flags.ts";
import path from "node:path";
import { parseArgs } from "node:util";

const targets = {
  windows: { triple: "x86_64-pc-windows-msvc", output: "dist/intellistor.exe" },
  linux: { triple: "x86_64-unknown-linux-gnu", output: "dist/intellistor" },
} as const;

const { values } = parseArgs({
  args: Deno.args,
  options: { target: { type: "string", default: "all" } },
});
const wanted = values.target === "all"
  ? (Object.keys(targets) as (keyof typeof targets)[])
  : [values.target as keyof typeof targets];
if (wanted.some((t) => !(t in targets))) {
  console.error(`Unknown --target "${values.target}"; use windows, linux or all.`);
  Deno.exit(2);
}

async function denoDir(): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return JSON.parse(new TextDecoder().decode(output.stdout)).denoDir;
}

async function exists(file: string): Promise<boolean> {
  try {
    await Deno.stat(file);
    return true;
  } catch {
    return false;
  }
}

const version = Deno.version.deno;
const cache = path.join(await denoDir(), "dl", "release", `v${version}`);
let failed = false;
/**
 * Modules loaded by URL at run time, which deno compile's module graph does not see: workers
 * (`new Worker(new URL(…))`) and modules imported by computed URL so that start-up does not
 * resolve them (lib/cli/run.ts, commandModule). tests/docs_test.ts checks the list is complete.
 */
const RUNTIME_MODULES = [
  "lib/archive/deflate_worker.ts",
  "lib/archive/file_writer_worker.ts",
  "lib/storage/s3.ts",
  "lib/cli/policy_create.ts",
  "lib/cli/backup.ts",
  "lib/cli/restore.ts",
  "lib/cli/list.ts",
  "lib/cli/prune.ts",
  "lib/cli/agent.ts",
  "lib/cli/schedule.ts",
  "lib/cli/decrypt.ts",
  "lib/cli/key.ts",
  "lib/cli/demo.ts",
];

for (const name of wanted) {
  const { triple, output } = targets[name];
  const runtime = path.join(cache, `denort-${triple}.zip`);
  if (!Deno.env.get("DENORT_BIN") && !(await exists(runtime))) {
    // Try the normal route (a download); report plainly if it cannot happen.
    console.error(`[${name}] ${runtime} is not cached; deno compile will try to download it.`);
  }
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "-A",
      `--v8-flags=${V8_FLAGS}`,
      ...RUNTIME_MODULES.flatMap((module) => ["--include", module]),
      "--target",
      triple,
      "--output",
      output,
      "main.ts",
    ],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  if (result.success) {
    console.log(JSON.stringify({ built: output, target: triple }));
    continue;
  }
  failed = true;
  console.error(stderr.trim());
  if (!stderr.includes("denort")) continue;
  console.error(
    `\n[${name}] Cannot build ${output}: deno compile needs Deno's runtime archive ` +
      `denort-${triple}.zip (Deno ${version}), which could not be downloaded here.\n` +
      `To build, either run this on a machine that can reach Deno's release downloads, or put ` +
      `that zip (from the Deno ${version} release assets) at:\n  ${runtime}\n` +
      `and run "deno task build" again.`,
  );
}
Deno.exit(failed ? 1 : 0);
