import assert from "node:assert/strict";
import { IntellistorError } from "../../errors.ts";
import { decodeOutput, denoCommandRunner } from "./runner.ts";

Deno.test("the real runner passes stdin, captures stdout and stderr, and returns the exit code", async () => {
  const result = await denoCommandRunner.run(Deno.execPath(), [
    "eval",
    "const t = await new Response(Deno.stdin.readable).text();" +
    "console.log(t.toUpperCase()); console.error('err: ' + Deno.args.join('|')); Deno.exit(3)",
    "a b",
    "Cópia",
  ], { stdin: "senha\r\n" });
  assert.equal(result.code, 3);
  assert.equal(result.stdout, "SENHA\r\n\n");
  assert.equal(result.stderr, "err: a b|Cópia\n");
});

Deno.test("the real runner gives stdin nothing unless asked", async () => {
  const result = await denoCommandRunner.run(Deno.execPath(), [
    "eval",
    "console.log(JSON.stringify(await new Response(Deno.stdin.readable).text()))",
  ]);
  assert.equal(result.code, 0);
  assert.equal(result.stdout, '""\n');
});

Deno.test("a missing program is SCHEDULER_FAILED naming it", async () => {
  await assert.rejects(
    () => denoCommandRunner.run("intellistor-no-such-program", []),
    (error: unknown) =>
      error instanceof IntellistorError && error.code === "SCHEDULER_FAILED" &&
      error.message.includes("intellistor-no-such-program"),
  );
});

Deno.test("decodeOutput: UTF-16 with a BOM, UTF-8, else Windows-1252", () => {
  assert.equal(decodeOutput(new Uint8Array([0xff, 0xfe, 0x43, 0x00, 0xf3, 0x00])), "Có");
  assert.equal(decodeOutput(new TextEncoder().encode("Cópia")), "Cópia");
  assert.equal(decodeOutput(new Uint8Array([0x43, 0xf3, 0x70, 0x69, 0x61])), "Cópia");
});
