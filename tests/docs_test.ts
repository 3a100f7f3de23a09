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
