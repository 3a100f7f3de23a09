/**
 * `intellistor demo`: the whole flow on a small sample tree, with no cloud
 * account: policy-create → backup → full restore → selective restore, each
 * step's JSON printed as it is, then a check that what came back is identical.
 */
import path from "node:path";
import { generateRootKey, KEY_ENV_DEFAULT } from "../crypto/keys.ts";
import { IntellistorError } from "../errors.ts";
import { parseFlags } from "./args.ts";
import type { CliIo } from "./io.ts";
import { commandLine } from "./shell_quote.ts";

export const demoHelp = `Usage: intellistor demo [--dir DIR]

Runs policy-create, backup, restore and restore --only on a sample tree with
Unicode names, stored in a local directory (no cloud account needed).
  --dir DIR   where to put the sample, store and restores (default: a new temp directory)`;

type Runner = (argv: string[], io: CliIo) => Promise<number>;

// A 1×1 PNG: real image bytes for the sample's .png files.
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);

/** The sample tree: relative path → content (undefined = directory). */
function sampleTree(): Map<string, Uint8Array | undefined> {
  const text = (s: string) => new TextEncoder().encode(s);
  return new Map<string, Uint8Array | undefined>([
    ["Diagrama_Solução.png", PNG],
    ["Cópia de Diagrama_Solução.png", PNG],
    ["docs/leia-me.md", text("# Documentação\n\nArquivos de exemplo do Intellistor.\n")],
    ["docs/imagens/arquitetura.png", PNG],
    ["docs/relatórios/2026/janeiro.csv", text("dia;valor\n01;42\n02;17\n")],
    ["notas/vazio.txt", new Uint8Array()],
    ["notas/pasta vazia", undefined],
  ]);
}

/** Thrown when a step fails: the step already printed its error. */
class StepFailed extends Error {
  constructor(readonly exitCode: number) {
    super(`demo step failed with exit code ${exitCode}`);
  }
}

export async function demoCommand(argv: string[], io: CliIo, run: Runner): Promise<number> {
  try {
    return await runDemo(argv, io, run);
  } catch (error) {
    if (error instanceof StepFailed) return error.exitCode;
    throw error;
  }
}

async function runDemo(argv: string[], io: CliIo, run: Runner): Promise<number> {
  const flags = parseFlags("demo", argv, { dir: { type: "string" } });
  const dir = flags.dir !== undefined
    ? path.resolve(io.cwd, flags.dir)
    : await Deno.makeTempDir({ prefix: "intellistor-demo-" });
  if (!(await isEmptyOrMissing(dir))) {
    throw new IntellistorError(
      "USAGE",
      `demo: "${dir}" is not empty`,
      "Give --dir a new or empty directory, or leave it out for a temporary one.",
    );
  }
  const sample = path.join(dir, "sample");
  const tree = sampleTree();
  for (const [name, content] of tree) {
    const target = path.join(sample, ...name.split("/"));
    if (content === undefined) {
      await Deno.mkdir(target, { recursive: true });
    } else {
      await Deno.mkdir(path.dirname(target), { recursive: true });
      await Deno.writeFile(target, content);
    }
  }
  const envFile = path.join(dir, ".env");
  await Deno.writeTextFile(envFile, `${KEY_ENV_DEFAULT}=${generateRootKey()}\n`, { mode: 0o600 });

  const inDir: CliIo = { ...io, cwd: dir };
  const step = async (title: string, args: string[], capture = false): Promise<string> => {
    io.stdout(`\n# ${title}\n$ ${commandLine(["intellistor", ...args], "sh")}\n`);
    let output = "";
    const code = await run(args, {
      ...inDir,
      stdout: (text) => {
        output += text;
        io.stdout(text);
      },
    });
    if (code !== 0) throw new StepFailed(code);
    return capture ? output : "";
  };

  io.stdout(`Intellistor demo in ${dir}\n`);
  await step("1. Create a policy over the sample tree, stored in a local directory", [
    "policy-create",
    "--out",
    "policies/demo.yaml",
    "--paths",
    sample,
    "--local-dir",
    "store",
  ]);
  const backup = JSON.parse(
    await step("2. Back up (the key comes from the .env file)", [
      "backup",
      "--policy",
      "policies/demo.yaml",
      "--env-file",
      envFile,
    ], true),
  );
  await step("3. Full restore", [
    "restore",
    "--policy",
    "policies/demo.yaml",
    "--key",
    backup.s3.key_backup,
    "--out",
    "restore",
    "--env-file",
    envFile,
  ]);
  await step('4. Selective restore: --only "*.png" --only "docs/*"', [
    "restore",
    "--policy",
    "policies/demo.yaml",
    "--key",
    backup.s3.key_backup,
    "--out",
    "restore_seletivo",
    "--only",
    "*.png",
    "--only",
    "docs/*",
    "--env-file",
    envFile,
  ]);

  // The restored tree must equal the sample, byte for byte.
  const mismatches: string[] = [];
  for (const [name, content] of tree) {
    const restored = path.join(dir, "restore", ...name.split("/"));
    try {
      if (content === undefined) {
        if (!(await Deno.stat(restored)).isDirectory) mismatches.push(name);
      } else if (!equalBytes(await Deno.readFile(restored), content)) mismatches.push(name);
    } catch {
      mismatches.push(name);
    }
  }
  io.stdout(
    "\n" +
      JSON.stringify(
        { demo: mismatches.length === 0 ? "ok" : "failed", dir, mismatches },
        null,
        2,
      ) +
      "\n",
  );
  return mismatches.length === 0 ? 0 : 1;
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return false;
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
