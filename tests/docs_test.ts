/** The README and .env.example say what the code does. */
import assert from "node:assert/strict";
import { exitCodeOf } from "../lib/errors.ts";

const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));

Deno.test("README's exit-code table lists every error code under its real exit code", () => {
  const table = readme.slice(readme.indexOf("## Exit codes"));
  const documented = new Map<string, number>();
  for (const line of table.split("\n")) {
    const row = line.match(/^\|\s*(\d+)\s*\|/);
    if (!row) continue;
    for (const code of line.matchAll(/`([A-Z_]+)`/g)) documented.set(code[1], Number(row[1]));
  }
  for (const [code, exit] of Object.entries(exitCodeOf)) {
    assert.equal(documented.get(code), exit, `${code} should be listed under exit code ${exit}`);
  }
});

Deno.test(".env.example names every variable the README documents", async () => {
  const example = await Deno.readTextFile(new URL("../.env.example", import.meta.url));
  const section = readme.slice(
    readme.indexOf("### The `.env` file"),
    readme.indexOf("### The policy"),
  );
  for (
    const name of new Set(
      [...section.matchAll(/`((?:INTELLISTOR|AWS)_[A-Z_0-9]+)`/g)].map((m) => m[1]),
    )
  ) {
    assert.ok(example.includes(name), `${name} is missing from .env.example`);
  }
});

Deno.test("build.ts includes every worker module in the executable", async () => {
  const build = await Deno.readTextFile(new URL("../build.ts", import.meta.url));
  const listed = build.match(/const WORKER_MODULES = \[([^\]]*)\]/)?.[1] ?? "";
  const root = new URL("../", import.meta.url);
  let workers = 0;
  for await (const file of walkTs(new URL("lib/", root))) {
    const text = await Deno.readTextFile(file);
    for (const match of text.matchAll(/new URL\("\.\/([\w.]+)", import\.meta\.url\)/g)) {
      const module = new URL(match[1], file).href.slice(root.href.length);
      if (!/worker/.test(module)) continue;
      workers++;
      assert.ok(listed.includes(`"${module}"`), `${module} is missing from WORKER_MODULES`);
    }
  }
  assert.ok(workers > 0, "found the worker modules");
});

Deno.test("build.ts includes every command module in the executable", async () => {
  const build = await Deno.readTextFile(new URL("../build.ts", import.meta.url));
  const listed = build.match(/const COMMAND_MODULES = \[([^\]]*)\]/)?.[1] ?? "";
  const runTs = new URL("../lib/cli/run.ts", import.meta.url);
  const text = await Deno.readTextFile(runTs);
  const imported = [...text.matchAll(/commandModule<[^>]*>\("\.\/([\w.]+)"\)/g)].map((m) =>
    `lib/cli/${m[1]}`
  );
  assert.ok(imported.length >= 9, `found the command modules: ${imported.join(", ")}`);
  for (const module of imported) {
    assert.ok(listed.includes(`"${module}"`), `${module} is missing from COMMAND_MODULES`);
  }
  // Nothing else may import a command module literally, or start-up resolves it again.
  assert.doesNotMatch(
    text,
    /(?<!typeof )import\("\.\//,
    "a literal dynamic import in lib/cli/run.ts",
  );
});

async function* walkTs(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* walkTs(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

Deno.test("the intellistor and demo tasks run with the V8 flags the executable is built with", async () => {
  const { V8_FLAGS } = await import("../lib/runtime_flags.ts");
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  for (const task of ["intellistor", "demo"]) {
    assert.ok(config.tasks[task].includes(`--v8-flags=${V8_FLAGS}`), `task ${task}`);
  }
  const build = await Deno.readTextFile(new URL("../build.ts", import.meta.url));
  assert.ok(build.includes("`--v8-flags=${V8_FLAGS}`"), "build.ts passes V8_FLAGS to deno compile");
});
