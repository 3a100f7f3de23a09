import assert from "node:assert/strict";
import { quoteWindowsArgument, windowsArguments } from "./windows_quote.ts";

/**
 * An independent reading of a command line's arguments by the documented
 * CommandLineToArgvW / C runtime rules (for the part after the program name).
 */
function parseArguments(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " " || line[i] === "\t") i++;
    if (i >= line.length) break;
    let arg = "";
    let quoted = false;
    while (i < line.length && (quoted || (line[i] !== " " && line[i] !== "\t"))) {
      let backslashes = 0;
      while (line[i] === "\\") {
        backslashes++;
        i++;
      }
      if (line[i] === '"') {
        arg += "\\".repeat(Math.floor(backslashes / 2));
        if (backslashes % 2 === 1) arg += '"';
        else quoted = !quoted;
        i++;
      } else {
        arg += "\\".repeat(backslashes);
        if (i < line.length && (quoted || (line[i] !== " " && line[i] !== "\t"))) arg += line[i++];
      }
    }
    args.push(arg);
  }
  return args;
}

Deno.test("Windows quoting: paths with spaces and Unicode are quoted, plain ones are not", () => {
  assert.equal(
    quoteWindowsArgument("C:\\Program Files\\Intellistor\\intellistor.exe"),
    '"C:\\Program Files\\Intellistor\\intellistor.exe"',
  );
  assert.equal(
    quoteWindowsArgument("C:\\dados\\Cópia de políticas\\p.yaml"),
    '"C:\\dados\\Cópia de políticas\\p.yaml"',
  );
  assert.equal(quoteWindowsArgument("C:\\intellistor\\.env"), "C:\\intellistor\\.env");
  assert.equal(quoteWindowsArgument("C:\\dados\\Cópia\\p.yaml"), "C:\\dados\\Cópia\\p.yaml");
  assert.equal(quoteWindowsArgument(""), '""');
});

Deno.test("Windows quoting: backslashes before a quote or the closing quote are doubled", () => {
  assert.equal(quoteWindowsArgument("C:\\my dir\\"), '"C:\\my dir\\\\"');
  assert.equal(quoteWindowsArgument('say "hi"'), '"say \\"hi\\""');
  assert.equal(quoteWindowsArgument('a\\"b'), '"a\\\\\\"b"');
  assert.equal(quoteWindowsArgument("tab\there"), '"tab\there"');
});

Deno.test("Windows quoting: the C runtime's rules read every argument back unchanged", () => {
  const args = [
    "agent",
    "run",
    "--policy",
    "C:\\dados\\Cópia de políticas\\p.yaml",
    "--env-file",
    "C:\\Program Files\\Intellistor\\.env",
    "C:\\trailing dir\\",
    "C:\\trailing\\",
    'quote"inside',
    'back\\"slash',
    "\\\\server\\share\\a b",
    "",
    "two  spaces",
    "ünïcödé 日本",
  ];
  assert.deepEqual(parseArguments(windowsArguments(args)), args);
});

Deno.test("the test's own parser follows the documented examples", () => {
  // The Microsoft docs' table for parsing C command-line arguments.
  assert.deepEqual(parseArguments('"abc" d e'), ["abc", "d", "e"]);
  assert.deepEqual(parseArguments('a\\\\\\b d"e f"g h'), ["a\\\\\\b", "de fg", "h"]);
  assert.deepEqual(parseArguments('a\\\\\\"b c d'), ['a\\"b', "c", "d"]);
  assert.deepEqual(parseArguments('a\\\\\\\\"b c" d e'), ["a\\\\b c", "d", "e"]);
});
