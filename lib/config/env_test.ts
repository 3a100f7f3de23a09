import assert from "node:assert/strict";
import path from "node:path";
import { IntellistorError } from "../errors.ts";
import { loadEnvironment, repeatedNames } from "./env.ts";

Deno.test("repeatedNames(): a name set twice, with its lines; quoted values spanning lines are skipped", () => {
  assert.equal(repeatedNames("A=1\nB=2\n# A=3\n"), undefined);
  assert.deepEqual(repeatedNames("INTELLISTOR_KEY=a\nX=1\nINTELLISTOR_KEY=b\n"), [
    "INTELLISTOR_KEY",
    [1, 3],
  ]);
  assert.deepEqual(repeatedNames("export A=1\r\nA = 2"), ["A", [1, 2]]);
  // A multi-line value whose lines look like assignments.
  assert.equal(repeatedNames('PEM="line\nA=1\nA=2"\nA=3\n'), undefined);
});

Deno.test("a .env that sets the key twice (key generate >> .env, twice) is refused, not half-used", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = path.join(dir, ".env");
    await Deno.writeTextFile(file, "INTELLISTOR_KEY=first\nAWS_REGION=x\nINTELLISTOR_KEY=second\n");
    await assert.rejects(
      loadEnvironment({}, { envFile: file, cwd: dir }),
      (error: IntellistorError) =>
        error.code === "ENV_FILE_INVALID" &&
        error.message.includes("INTELLISTOR_KEY more than once (lines 1, 3)") &&
        error.hint.includes("INTELLISTOR_OLD_KEYS") && !error.message.includes("first"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
