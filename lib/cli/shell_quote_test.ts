import assert from "node:assert/strict";
import { commandLine, detectShell, quoteArgument } from "./shell_quote.ts";

Deno.test("quoteArgument() leaves plain words alone and quotes the rest for sh", async () => {
  const args = [
    "backups/p/20260131T174311Z/x/backup.tar.gz.enc",
    "it's here",
    "a b",
    "$HOME",
    "*.png",
    "",
  ];
  const line = commandLine(["printf", "%s\\n", ...args], "sh");
  // The real shell must hand back exactly the same arguments.
  const output = await new Deno.Command("sh", { args: ["-c", line], stdout: "piped" }).output();
  assert.deepEqual(new TextDecoder().decode(output.stdout).split("\n").slice(0, -1), args);
  assert.equal(quoteArgument("backups/a/b.enc", "sh"), "backups/a/b.enc");
});

Deno.test("quoteArgument() uses double quotes for cmd and single quotes for PowerShell", () => {
  assert.equal(quoteArgument("C:\\Program Files\\x.yaml", "cmd"), '"C:\\Program Files\\x.yaml"');
  assert.equal(quoteArgument("a%PATH%b", "cmd"), '"a%PATH%b"');
  assert.equal(quoteArgument("it's", "powershell"), "'it''s'");
  assert.equal(quoteArgument("a,b", "powershell"), "'a,b'");
  assert.equal(quoteArgument(".\\restore", "cmd"), ".\\restore");
});

Deno.test("commandLine() puts the call operator before a quoted program in PowerShell", () => {
  assert.equal(
    commandLine(["C:\\Program Files\\Intellistor\\intellistor.exe", "restore"], "powershell"),
    "& 'C:\\Program Files\\Intellistor\\intellistor.exe' restore",
  );
  assert.equal(
    commandLine(["C:\\Program Files\\Intellistor\\intellistor.exe", "restore"], "cmd"),
    '"C:\\Program Files\\Intellistor\\intellistor.exe" restore',
  );
  assert.equal(
    commandLine(["C:\\intellistor\\intellistor.exe", "restore"], "powershell"),
    "C:\\intellistor\\intellistor.exe restore",
  );
});

Deno.test("detectShell() tells PowerShell from cmd by PSModulePath", () => {
  assert.equal(detectShell("linux", {}), "sh");
  assert.equal(
    detectShell("windows", { PSModulePath: "C:\\Program Files\\WindowsPowerShell\\Modules" }),
    "cmd",
  );
  assert.equal(
    detectShell("windows", {
      PSModulePath:
        "C:\\Users\\ana\\Documents\\WindowsPowerShell\\Modules;C:\\Program Files\\WindowsPowerShell\\Modules",
    }),
    "powershell",
  );
});
