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

Deno.test("build.ts includes every module loaded by URL at run time in the executable", async () => {
  const build = await Deno.readTextFile(new URL("../build.ts", import.meta.url));
  const listed = build.match(/const RUNTIME_MODULES = \[([^\]]*)\]/)?.[1] ?? "";
  const root = new URL("../", import.meta.url);
  const found: string[] = [];
  for await (const file of walkTs(new URL("lib/", root))) {
    const text = await Deno.readTextFile(file);
    // Workers and computed imports: new URL("./x.ts", import.meta.url); commands: commandModule.
    const patterns = [
      /new URL\("\.\/([\w.]+)", import\.meta\.url\)/g,
      /commandModule<[^>]*>\("\.\/([\w.]+)"\)/g,
    ];
    for (const pattern of patterns) {
      for (const match of text.matchAll(pattern)) {
        const module = new URL(match[1], file).href.slice(root.href.length);
        found.push(module);
        assert.ok(listed.includes(`"${module}"`), `${module} is missing from RUNTIME_MODULES`);
      }
    }
    // A literal dynamic import of our own modules is resolved at every start-up: not allowed.
    const literal = text.match(/(?<!typeof )import\("\.{1,2}\//);
    assert.equal(literal, null, `a literal dynamic import in ${file.pathname}`);
  }
  for (
    const module of ["lib/archive/deflate_worker.ts", "lib/storage/s3.ts", "lib/cli/backup.ts"]
  ) {
    assert.ok(found.includes(module), `found ${module}`);
  }
});

Deno.test("each npm package is imported at the one version deno.json lists", async () => {
  // The code names its packages with full npm: specifiers (so that mod.ts works from a
  // script outside the project); deno.json lists the same ones, which keeps them in the lock.
  const root = new URL("../", import.meta.url);
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const packageOf = (specifier: string) => specifier.match(/^npm:(@?[^@]+)@([^/]+)/)?.slice(1, 3);
  const listed = new Set(
    Object.values(config.imports as Record<string, string>).map((value) =>
      `npm:${packageOf(value)!.join("@")}`
    ),
  );
  const used = new Set<string>();
  for (const dir of ["lib/", "tests/"]) {
    for await (const file of walkTs(new URL(dir, root))) {
      const text = await Deno.readTextFile(file);
      assert.equal(
        text.match(/^import [^;]* from "(?!npm:|node:|\.)[^"\n]*";$/m),
        null,
        `a bare import in ${file}`,
      );
      for (const match of text.matchAll(/"(npm:[^"]+)"/g)) {
        const specifier = `npm:${packageOf(match[1])!.join("@")}`;
        used.add(specifier);
        assert.ok(listed.has(specifier), `${specifier} (${file.pathname}) is not in deno.json`);
      }
    }
  }
  assert.deepEqual([...listed].sort(), [...used].sort());
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
