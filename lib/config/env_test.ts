import assert from "node:assert/strict";
import path from "node:path";
import { IntellistorError } from "../errors.ts";
import { loadEnvironment, repeatedNames, settingLines } from "./env.ts";

Deno.test("repeatedNames(): a name set twice, with its lines; quoted values spanning lines are skipped", () => {
  assert.equal(repeatedNames("A=1\nB=2\n# A=3\n"), undefined);
  assert.deepEqual(repeatedNames("INTELLISTOR_KEY=a\nX=1\nINTELLISTOR_KEY=b\n"), [
    "INTELLISTOR_KEY",
    [1, 3],
  ]);
  assert.deepEqual(repeatedNames("export A=1\r\nA = 2"), ["A", [1, 2]]);
  // A multi-line value whose lines look like assignments.
  assert.equal(repeatedNames('PEM="line\nA=1\nA=2"\nA=3\n'), undefined);
  assert.equal(repeatedNames('J="{\n \\"a\\": 1,\nB=inside\n}"\nB=real\n'), undefined);
  // Lines dotenv does not read as settings.
  assert.equal(repeatedNames("https://a\nhttps://b\nA:1\nA:2\n"), undefined);
  // An unclosed quote is a one-line value to dotenv; old Mac line ends are lines.
  assert.deepEqual(repeatedNames('A="abc\nK=1\nK=2\n'), ["K", [2, 3]]);
  assert.deepEqual(repeatedNames("K=1\rK=2"), ["K", [1, 2]]);
});

Deno.test("what counts as a setting is exactly what dotenv sets", async () => {
  const { parse } = await import("npm:dotenv@18.0.10");
  const samples = [
    "A=1\nB=2",
    'PEM="x\nA=1"\nB=2',
    "export A=1\nB: 2\nC:3",
    "# A=1\nB=2 # C=3",
    "A='x\ny'\nB=`z\nw`\nC",
    'A="abc\nK=1',
    "K=1\rL=2\r\nM=3",
    "https://example.com\n  SPACED  =  v  \nDOT.NAME=1\ndash-name=2",
  ];
  for (const sample of samples) {
    assert.deepEqual(
      [...settingLines(sample).keys()].sort(),
      Object.keys(parse(sample)).sort(),
      JSON.stringify(sample),
    );
  }
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
