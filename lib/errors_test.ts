import assert from "node:assert/strict";
import { toIntellistorError } from "./errors.ts";

Deno.test("toIntellistorError: system refusals are the machine's trouble, named; never a bug", () => {
  const cases: [unknown, string, RegExp][] = [
    [
      new Error("No space left on device (os error 28): mkdir '/srv/out/a'"),
      "IO_ERROR",
      /^No space left on the device \(mkdir '\/srv\/out\/a'\)$/,
    ],
    [new Error("Input/output error (os error 5): read '/mnt/x'"), "IO_ERROR", /os error 5/],
    // A caller's AbortSignal.timeout(), and a missing Deno permission (an SDK program).
    [new DOMException("The operation timed out", "TimeoutError"), "INTERRUPTED", /Interrupted/],
    [
      new Deno.errors.NotCapable('Requires sys access to "osRelease"'),
      "USAGE",
      /permission is missing: .*osRelease/,
    ],
    [new Error("something else entirely"), "INTERNAL", /Unexpected error/],
  ];
  for (const [error, code, message] of cases) {
    const mapped = toIntellistorError(error);
    assert.equal(mapped.code, code, String(error));
    assert.match(mapped.message, message);
  }
  if (Deno.build.os !== "windows") {
    const readOnly = toIntellistorError(
      new Error("Read-only file system (os error 30): mkdir '/mnt/ro/sub'"),
    );
    assert.equal(readOnly.code, "IO_ERROR");
    assert.match(readOnly.hint, /mounted read-only/);
  }
});
