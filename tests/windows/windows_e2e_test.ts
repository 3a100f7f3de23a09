/**
 * Windows end-to-end: the real CLI, run by the real Windows build of Deno
 * (`deno.exe`), with Windows paths. `tests/windows/run.sh` runs this file under
 * Wine 10 (see tests/windows/README.md); everywhere else it is ignored: it only
 * runs on Windows with INTELLISTOR_WINDOWS_E2E=1, because it creates and deletes
 * `C:\dados` and `C:\Intellistor E2E`.
 *
 * What it does, each CLI command as a subprocess (`deno.exe run -A main.ts …`):
 * `key generate` into a `.env`; `policy-create` with `C:\…` paths (spaces and
 * Unicode) for a local store and for an S3-compatible server (s3rver, started
 * in this process on 127.0.0.1); `backup` of each; `restore` in full and with
 * each of the seed's `--only` examples, comparing every restored file byte for
 * byte (and its modification time) with the source; the backup's
 * `cli_restore` run through `cmd` exactly as printed; and the scheduled task's
 * action, taken from `schedule install --print`'s XML (<Command> <Arguments>)
 * and started as Task Scheduler starts it: an `agent run` with absolute
 * Windows paths, whose log and backup are then checked.
 *
 * Scheduling itself is NOT tested here: Wine's `schtasks` is a stub (`/Create
 * /XML` exits 0 but drops the triggers and actions; `/Query` prints nothing),
 * so `schedule install` (without --print), `status` and `remove` would prove
 * nothing. The task XML is tested by golden files and by parsing it back, on
 * Linux (tests/schedule_test.ts, tests/golden/windows/).
 */
import { V8_FLAGS } from "../../lib/runtime_flags.ts";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { s3rverCredentials, type S3TestServer, startS3Server } from "../support/s3_server.ts";
import { pseudoRandomBytes } from "../support/tree.ts";

const enabled = Deno.build.os === "windows" && Deno.env.get("INTELLISTOR_WINDOWS_E2E") === "1";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
/** The source tree (the seed's example path style: a drive letter, Unicode names). */
const DATA = "C:\\dados";
/** Policies, .env files, the local store and the restores: a path with a space. */
const WORK = "C:\\Intellistor E2E";
/** Written into WORK by this test: proves that DATA is ours to delete on the next run. */
const MARKER = path.win32.join(WORK, "criado-pelo-teste-windows-e2e.txt");
/** The agent's locks and logs (set in the .env files, so nothing goes to C:\ProgramData). */
const STATE = path.win32.join(WORK, "estado");
/** Above the 8 MiB multipart threshold, and more than one ~4 MiB gzip segment. */
const LARGE_SIZE = 9 * 1024 * 1024 + 123;

/** The sample tree: relative path (`/`-separated) → contents; `null` = empty directory. */
function sampleTree(): Map<string, Uint8Array | null> {
  const text = (s: string) => new TextEncoder().encode(s);
  return new Map<string, Uint8Array | null>([
    ["Cópia de Diagrama_Solução.png", pseudoRandomBytes(2000, 2)],
    ["Diagrama_Solução.png", pseudoRandomBytes(3000, 1)],
    ["docs/imagens/Diagrama_Solução.png", pseudoRandomBytes(5000, 3)],
    ["docs/leia-me.md", text("# Documentação\r\n\r\nAção, coração, informação.\r\n".repeat(50))],
    ["vazio.txt", new Uint8Array(0)],
    ["grande.bin", pseudoRandomBytes(LARGE_SIZE, 4)],
    ["pasta vazia", null],
    // Past Win32's 260-character limit: read and written through `\\?\` paths.
    [`${DEEP_DIR}/fundo.txt`, text("no fundo\r\n")],
  ]);
}

/** Five 60-character folder names: with WORK and the file name, well past 260 characters. */
const DEEP_DIR = Array.from({ length: 5 }, (_, i) => `nivel-${i}-${"x".repeat(52)}`).join("/");

/** Each `--only` example of the seed (and one in upper case) → the files it must restore. */
const ONLY_CASES: Array<[string, string[]]> = [
  ["Diagrama_Solução.png", ["Diagrama_Solução.png", "docs/imagens/Diagrama_Solução.png"]],
  ["*.png", [
    "Cópia de Diagrama_Solução.png",
    "Diagrama_Solução.png",
    "docs/imagens/Diagrama_Solução.png",
  ]],
  ["docs/*", ["docs/imagens/Diagrama_Solução.png", "docs/leia-me.md"]],
  ["Cópia*", ["Cópia de Diagrama_Solução.png"]],
  // README: "on Windows matching ignores case".
  ["*.PNG", [
    "Cópia de Diagrama_Solução.png",
    "Diagrama_Solução.png",
    "docs/imagens/Diagrama_Solução.png",
  ]],
];

Deno.test({
  name: "Windows: policy-create, backup, restore, --only and cli_restore through cmd",
  ignore: !enabled,
  // The subprocesses are awaited; s3rver is stopped in `finally`.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await prepareDirectories();
    const tree = sampleTree();
    const mtimes = await writeTree(DATA, tree);
    const server = await startS3Server();
    try {
      let key = "";
      await t.step("key generate prints a .env line", async () => {
        const generated = await cli(["key", "generate"], WORK);
        assertExit(generated, 0);
        const line = generated.stdout.trim();
        assert.match(line, /^INTELLISTOR_KEY=[A-Za-z0-9+/]{43}=$/, describe(generated));
        key = line.slice("INTELLISTOR_KEY=".length);
        // `intellistor key generate >> .env`: the local policy finds .env in the working directory.
        await Deno.writeTextFile(
          path.win32.join(WORK, ".env"),
          `${line}\r\nINTELLISTOR_STATE_DIR=${STATE}\r\n`,
        );
        // The S3 policy names its own file (a path with a space) with --env-file.
        await Deno.writeTextFile(
          path.win32.join(WORK, "config s3", ".env"),
          [
            `INTELLISTOR_KEY=${key}`,
            `AWS_ACCESS_KEY_ID=${s3rverCredentials.accessKeyId}`,
            `AWS_SECRET_ACCESS_KEY=${s3rverCredentials.secretAccessKey}`,
            "AWS_DEFAULT_REGION=us-east-1",
            `AWS_S3_BUCKET=${server.bucket}`,
            `AWS_ENDPOINT_URL_S3=${server.endpoint}`,
            `INTELLISTOR_STATE_DIR=${STATE}`,
          ].join("\r\n") + "\r\n",
        );
      });

      const setups: Destination[] = [
        {
          name: "local store",
          id: "mvp-default",
          policy: path.win32.join(WORK, "policies", "policy_02.yaml"),
          policyArg: path.win32.join(WORK, "policies", "policy_02.yaml"),
          createFlags: ["--local-dir", path.win32.join(WORK, "store")],
          envFlags: [],
          envFile: path.win32.join(WORK, ".env"),
        },
        {
          name: "S3",
          id: "mvp-s3",
          policy: path.win32.join(WORK, "policies", "policy_s3.yaml"),
          policyArg: "policies\\policy_s3.yaml",
          createFlags: ["--id", "mvp-s3"],
          envFlags: ["--env-file", path.win32.join(WORK, "config s3", ".env")],
          envFile: path.win32.join(WORK, "config s3", ".env"),
        },
      ];
      for (const setup of setups) {
        await checkDestination(t, setup, tree, mtimes, server);
      }
    } finally {
      await server.stop();
    }
    // Leave nothing behind on success (a failed run leaves its files to look at).
    await Deno.remove(DATA, { recursive: true });
    await Deno.remove(WORK, { recursive: true });
  },
});

interface Destination {
  name: string;
  /** The policy id. */
  id: string;
  /** The policy file's absolute path. */
  policy: string;
  /** As given on the command line (relative to WORK or absolute). */
  policyArg: string;
  createFlags: string[];
  /** `--env-file …` for the commands, or none (then .env in WORK is used). */
  envFlags: string[];
  /** The .env file, absolute either way. */
  envFile: string;
}

interface BackupJson {
  policy: string;
  destination: string;
  s3: { bucket: string | null; key_backup: string; key_manifest: string };
  files: number;
  compressed_bytes: number;
  warnings: unknown[];
  status: string;
  cli_restore: string;
}

async function checkDestination(
  t: Deno.TestContext,
  setup: Destination,
  tree: Map<string, Uint8Array | null>,
  mtimes: Map<string, number>,
  server: S3TestServer,
): Promise<void> {
  const restores = path.win32.join(WORK, `restaurado ${setup.name}`);
  let backup: BackupJson | undefined;

  await t.step(`${setup.name}: policy-create with C:\\ paths`, async () => {
    const created = await cli([
      "policy-create",
      "--out",
      setup.policyArg,
      "--paths",
      DATA,
      "--schedule",
      "0 2 * * *",
      ...setup.createFlags,
    ], WORK);
    assertExit(created, 0);
    assert.deepEqual(created.json(), { created: setup.policyArg }, describe(created));
    const yaml = await Deno.readTextFile(setup.policy);
    assert.ok(yaml.includes(DATA), `the policy should hold ${DATA}:\n${yaml}`);
  });

  await t.step(`${setup.name}: backup`, async () => {
    const result = await cli(["backup", "--policy", setup.policyArg, ...setup.envFlags], WORK);
    assertExit(result, 0);
    backup = result.json() as unknown as BackupJson;
    assert.equal(backup.status, "ok", describe(result));
    assert.deepEqual(backup.warnings, [], describe(result));
    assert.equal(backup.files, [...tree.values()].filter((c) => c !== null).length);
    if (setup.name === "S3") {
      assert.equal(backup.s3.bucket, server.bucket, describe(result));
      // s3rver keeps each object as `<directory>/<bucket>/<key>._S3rver_object`.
      const object = await Deno.stat(path.win32.join(
        server.directory,
        server.bucket,
        ...(backup.s3.key_backup + "._S3rver_object").split("/"),
      ));
      assert.equal(object.size, backup.compressed_bytes, "object size in the S3 server");
    } else {
      assert.equal(backup.s3.bucket, null, describe(result));
      const object = await Deno.stat(
        path.win32.join(WORK, "store", ...backup.s3.key_backup.split("/")),
      );
      assert.equal(object.size, backup.compressed_bytes, "object size in the local store");
    }
  });
  if (backup === undefined) return;
  const key = backup.s3.key_backup;

  await t.step(`${setup.name}: list shows the backup`, async () => {
    const listed = await cli(["list", "--policy", setup.policyArg, ...setup.envFlags], WORK);
    assertExit(listed, 0);
    const json = listed.json() as { backups: Array<{ key_backup: string }> };
    assert.deepEqual(json.backups.map((b) => b.key_backup), [key], describe(listed));
  });

  await t.step(`${setup.name}: full restore is byte-identical`, async () => {
    const out = path.win32.join(restores, "completo");
    const result = await cli(
      ["restore", "--policy", setup.policyArg, "--key", key, "--out", out, ...setup.envFlags],
      WORK,
    );
    assertExit(result, 0);
    const json = result.json();
    assert.equal(json.integrity, "ok", describe(result));
    assert.equal(json.found, json.restored, describe(result));
    await assertRestored(out, tree, mtimes, [...tree.keys()]);
  });

  for (const [pattern, expected] of ONLY_CASES) {
    await t.step(`${setup.name}: restore --only "${pattern}"`, async () => {
      const out = path.win32.join(
        restores,
        `seletivo ${ONLY_CASES.findIndex(([p]) => p === pattern)}`,
      );
      const result = await cli([
        "restore",
        "--policy",
        setup.policyArg,
        "--key",
        key,
        "--out",
        out,
        "--only",
        pattern,
        ...setup.envFlags,
      ], WORK);
      assertExit(result, 0);
      const json = result.json();
      assert.equal(json.integrity, "ok", describe(result));
      assert.equal(json.selective, true, describe(result));
      assert.equal(json.restored, json.found, describe(result));
      assert.ok(
        (json.downloaded_bytes as number) < backup!.compressed_bytes,
        `a selective restore should read less than the whole object\n${describe(result)}`,
      );
      await assertRestored(out, tree, mtimes, expected);
    });
  }

  await t.step(`${setup.name}: cli_restore run through cmd exactly as printed`, async () => {
    const line = backup!.cli_restore;
    console.log(`cli_restore: ${line}`);
    await Deno.remove(path.win32.join(WORK, "restore"), { recursive: true }).catch(ignoreNotFound);
    const pasted = await cmd(line, WORK);
    assertExit(pasted, 0);
    const json = pasted.json();
    assert.equal(json.integrity, "ok", describe(pasted));
    assert.equal(json.found, json.restored, describe(pasted));
    await assertRestored(path.win32.join(WORK, "restore"), tree, mtimes, [...tree.keys()]);
    await Deno.remove(path.win32.join(WORK, "restore"), { recursive: true });
    // Built for cmd (PSModulePath does not point into a user's Documents here).
    assert.ok(
      line.startsWith(
        `${quoteForCmd(Deno.execPath())} run --v8-flags=${V8_FLAGS} -A ${
          quoteForCmd(MAIN)
        } restore `,
      ),
      `cli_restore should start with this deno.exe and main.ts, quoted for cmd: ${line}`,
    );
    assert.ok(
      line.includes(" --out .\\restore"),
      `cli_restore should restore to .\\restore: ${line}`,
    );
  });

  await t.step(
    `${setup.name}: the task's action (schedule install --print), started as Task Scheduler does`,
    async () => {
      // Not through schtasks (Wine's is a stub): the action is taken from the XML
      // and started like Task Scheduler starts it, CreateProcess(Command, "Command Arguments").
      const printed = await cli(
        ["schedule", "install", "--print", "--policy", setup.policy, "--env-file", setup.envFile],
        WORK,
      );
      assertExit(printed, 0);
      const xml = (printed.json() as { xml: string }).xml;
      const command = xmlElement(xml, "Command");
      const args = xmlElement(xml, "Arguments");
      const workingDirectory = xmlElement(xml, "WorkingDirectory");
      assert.equal(command, quoteForCmd(Deno.execPath()), `<Command> in\n${xml}`);
      // Task Scheduler does CreateProcess(NULL, "<Command> <Arguments>"). Deno.Command cannot
      // start that line as is (with raw arguments it leaves its program unquoted, and this one
      // has a space), so cmd starts it: it hands the line, unchanged, to CreateProcess.
      const ran = await cmd(`${command} ${args}`, workingDirectory);
      assertExit(ran, 0);
      const json = ran.json() as {
        status: string;
        backup_id: string;
        log: { file: string; uploaded: boolean };
      };
      assert.equal(json.status, "ok", describe(ran));
      assert.match(json.backup_id, /^[0-9a-f-]{36}$/, describe(ran));
      assert.equal(json.log.uploaded, true, describe(ran));
      assert.ok(
        json.log.file.startsWith(STATE + "\\"),
        `log file outside ${STATE}\n${describe(ran)}`,
      );
      await Deno.stat(json.log.file);
      await assertAgentRunDidItsWork(setup);
    },
  );
}

// ---------------------------------------------------------------------------
// Running the CLI

interface CliResult {
  /** What ran, for failure messages. */
  command: string;
  code: number;
  stdout: string;
  stderr: string;
  json(): Record<string, unknown>;
}

/** The environment of every command: this one's, without anything that would change the CLI's behaviour. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (/^(AWS_|INTELLISTOR_)|^PSModulePath$/i.test(name)) continue;
    env[name] = value;
  }
  // What cmd inherits on Windows: only the system-wide module path.
  env.PSModulePath = "C:\\Program Files\\WindowsPowerShell\\Modules;" +
    "C:\\Windows\\system32\\WindowsPowerShell\\v1.0\\Modules";
  return env;
}

/** `deno.exe run -A --cached-only main.ts <args>` in `cwd`. */
async function cli(args: string[], cwd: string): Promise<CliResult> {
  const argv = ["run", "-A", "--cached-only", MAIN, ...args];
  return await spawn(Deno.execPath(), argv, cwd, false, `deno ${argv.join(" ")}`);
}

/**
 * Runs a command line through cmd, as if pasted at a cmd prompt:
 * `cmd /d /s /c "<line>"` (with /s, cmd removes exactly the outer quotes and runs
 * the rest verbatim). The line reaches cmd as is: no argument quoting by Deno.
 */
async function cmd(line: string, cwd: string): Promise<CliResult> {
  return await spawn("cmd.exe", ["/d", "/s", "/c", `"${line}"`], cwd, true, `cmd /c ${line}`);
}

async function spawn(
  program: string,
  args: string[],
  cwd: string,
  windowsRawArguments: boolean,
  command: string,
): Promise<CliResult> {
  const output = await new Deno.Command(program, {
    args,
    cwd,
    env: childEnv(),
    clearEnv: true,
    windowsRawArguments,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const stdout = decoder.decode(output.stdout);
  const stderr = decoder.decode(output.stderr);
  const result: CliResult = {
    command,
    code: output.code,
    stdout,
    stderr,
    json() {
      try {
        return JSON.parse(stdout);
      } catch {
        throw new Error(`stdout is not one JSON document\n${describe(result)}`);
      }
    },
  };
  return result;
}

function describe(result: CliResult): string {
  return `command: ${result.command}\nexit code: ${result.code}\n` +
    `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

function assertExit(result: CliResult, expected: number): void {
  assert.equal(result.code, expected, `unexpected exit code\n${describe(result)}`);
}

/** The product's cmd quoting rule (lib/cli/shell_quote.ts), restated to check cli_restore. */
function quoteForCmd(arg: string): string {
  return /^[A-Za-z0-9_+=:./\\-]+$/.test(arg) ? arg : `"${arg.replaceAll('"', '""')}"`;
}

// ---------------------------------------------------------------------------
// Trees

/** Empties DATA and WORK, refusing to delete a C:\dados this test did not create. */
async function prepareDirectories(): Promise<void> {
  const exists = async (p: string) => await Deno.stat(p).then(() => true, () => false);
  if (await exists(DATA)) {
    if (!(await exists(MARKER))) {
      throw new Error(
        `${DATA} exists and was not created by this test (no ${MARKER}): not touching it`,
      );
    }
    await Deno.remove(DATA, { recursive: true });
  }
  await Deno.remove(WORK, { recursive: true }).catch(ignoreNotFound);
  await Deno.mkdir(path.win32.join(WORK, "config s3"), { recursive: true });
  await Deno.writeTextFile(MARKER, `${DATA} was created by tests/windows/windows_e2e_test.ts\r\n`);
}

/** Writes the tree with fixed, distinct modification times; returns them (whole seconds). */
async function writeTree(
  root: string,
  tree: Map<string, Uint8Array | null>,
): Promise<Map<string, number>> {
  const mtimes = new Map<string, number>();
  let t = 1_700_000_000;
  for (const [relative, contents] of tree) {
    const target = path.win32.join(root, ...relative.split("/"));
    if (contents === null) {
      await Deno.mkdir(target, { recursive: true });
    } else {
      await Deno.mkdir(path.win32.dirname(target), { recursive: true });
      await Deno.writeFile(target, contents);
      await Deno.utime(target, t, t);
      mtimes.set(relative, t);
      t += 3600;
    }
  }
  return mtimes;
}

/** Every entry under `root`, `/`-separated, with its type. */
async function listTree(root: string): Promise<Map<string, "file" | "dir">> {
  const out = new Map<string, "file" | "dir">();
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(path.win32.join(root, ...relative.split("/")))) {
      const child = relative === "" ? entry.name : `${relative}/${entry.name}`;
      assert.ok(entry.isFile || entry.isDirectory, `neither file nor directory: ${child}`);
      out.set(child, entry.isDirectory ? "dir" : "file");
      if (entry.isDirectory) await walk(child);
    }
  };
  await walk("");
  return out;
}

/**
 * Asserts that `out` holds exactly the `selected` entries of `tree` (and the
 * directories leading to them): same bytes, same modification times, empty
 * directories present and empty.
 */
async function assertRestored(
  out: string,
  tree: Map<string, Uint8Array | null>,
  mtimes: Map<string, number>,
  selected: string[],
): Promise<void> {
  const actual = await listTree(out);
  const expected = new Map<string, "file" | "dir">();
  for (const relative of selected) {
    const parts = relative.split("/");
    for (let i = 1; i < parts.length; i++) expected.set(parts.slice(0, i).join("/"), "dir");
    expected.set(relative, tree.get(relative) === null ? "dir" : "file");
  }
  const sorted = (m: Map<string, string>) => [...m].sort(([a], [b]) => a < b ? -1 : 1);
  assert.deepEqual(sorted(actual), sorted(expected), `entries restored into ${out}`);
  for (const relative of selected) {
    const contents = tree.get(relative);
    if (contents === null || contents === undefined) continue;
    const file = path.win32.join(out, ...relative.split("/"));
    const restored = await Deno.readFile(file);
    assert.equal(restored.length, contents.length, `size of ${file}`);
    assert.ok(
      Buffer.compare(restored, contents) === 0,
      `contents of ${file} differ from the source`,
    );
    const mtime = Math.floor((await Deno.stat(file)).mtime!.getTime() / 1000);
    assert.equal(mtime, mtimes.get(relative), `modification time of ${file}`);
  }
}

/**
 * What one `agent run` of the policy must have left: its log, uploaded (so kept in
 * `<state>\<policy>\logs\uploaded\`), recording a successful backup that `list` shows.
 */
async function assertAgentRunDidItsWork(setup: Destination): Promise<void> {
  const uploaded = path.win32.join(STATE, setup.id, "logs", "uploaded");
  const logs: string[] = [];
  for await (const entry of Deno.readDir(uploaded)) logs.push(entry.name);
  assert.equal(logs.length, 1, `one uploaded log expected in ${uploaded}: ${logs}`);
  const events = (await Deno.readTextFile(path.win32.join(uploaded, logs[0])))
    .trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  const result = events.find((e) => e.event === "result");
  const end = events.find((e) => e.event === "end");
  assert.equal(result?.status, "ok", `the log's result event: ${JSON.stringify(events)}`);
  assert.equal(end?.exit_code, 0, `the log's end event: ${JSON.stringify(events)}`);
  const backupId = events.find((e) => e.event === "start")?.backup_id;
  const listed = await cli(["list", "--policy", setup.policy, "--env-file", setup.envFile], WORK);
  assertExit(listed, 0);
  const backups = (listed.json() as { backups: Array<{ backup_id: string }> }).backups;
  assert.ok(
    backups.some((b) => b.backup_id === backupId),
    `the agent's backup ${backupId} should be listed\n${describe(listed)}`,
  );
}

/** The text of the one element `name` in the task XML, unescaped. */
function xmlElement(xml: string, name: string): string {
  const found = [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, "g"))];
  assert.equal(found.length, 1, `one <${name}> expected in\n${xml}`);
  return found[0][1].replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"')
    .replaceAll("&apos;", "'").replaceAll("&amp;", "&");
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
