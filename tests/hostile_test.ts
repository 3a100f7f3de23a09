/**
 * Hostile archives (issue 6, "Hostile and broken input"): valid encrypted
 * backups written by a compromised writer that holds the key, with a
 * malicious tar inside and a sealed manifest that either lists the hostile
 * entries too or disagrees with the tar. For each one: nothing is written
 * outside --out (a sentinel directory and a secret file next to it stay
 * untouched), the entry is refused with a clear error or skipped and
 * reported in `failures`, the exit code is the documented one (13), and no
 * `.intellistor-*.partial` file is left behind.
 *
 * The backups are built by tests/support/hostile.ts.
 */
import assert from "node:assert/strict";
import path from "node:path";
import zlib from "node:zlib";
import type { CatalogEntry } from "../lib/archive/catalog.ts";
import { ExitCode, IntellistorError } from "../lib/errors.ts";
import type { SealedContent } from "../lib/manifest.ts";
import { type RestoreResult, runRestore } from "../lib/restore.ts";
import type { Platform } from "../lib/safe_path.ts";
import { runCli } from "./support/cli.ts";
import {
  type Arena,
  assertContained,
  HOSTILE_KEY,
  type HostileBackup,
  type HostileBackupSpec,
  type HostileEntry,
  listTree,
  makeArena,
  resealManifest,
  sealRawManifest,
  sha256Hex,
  writeHostileBackup,
} from "./support/hostile.ts";

const OK_FILE: HostileEntry = { name: "ok.txt", data: "a benign file\n" };

function gzip(text: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(zlib.gzipSync(new TextEncoder().encode(text)));
}

/**
 * Collects failed checks instead of stopping at the first, so that one run
 * lists every variant a product bug affects; `assertNone` fails with all of them.
 */
class Findings {
  readonly problems: string[] = [];

  async check(fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (error) {
      if (!(error instanceof assert.AssertionError)) throw error;
      const message = error.message.split("\n\n")[0];
      this.problems.push(message.length > 600 ? `${message.slice(0, 600)}…` : message);
    }
  }

  assertNone(label: string): void {
    if (this.problems.length > 0) {
      assert.fail(`${label}: ${this.problems.length} problem(s):\n- ${this.problems.join("\n- ")}`);
    }
  }
}

interface Outcome {
  result?: RestoreResult;
  error?: unknown;
}

interface RestoreCall {
  platform?: Platform;
  only?: string[];
  overwrite?: boolean;
}

/**
 * An uncaught error or unhandled rejection during a restore (e.g. an 'error'
 * event nobody listens to) is recorded here instead of ending the test run,
 * and ends the restore's wait at once.
 */
const uncaught: string[] = [];
let onUncaught: (() => void) | undefined;
function recordUncaught(what: string): void {
  uncaught.push(what);
  onUncaught?.();
}
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  recordUncaught(`uncaught ${event.error?.name}: ${event.error?.message}`);
});
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  recordUncaught(`unhandled rejection ${event.reason?.name}: ${event.reason?.message}`);
});

/** A healthy hostile restore takes milliseconds. */
const RESTORE_TIMEOUT_MS = 10_000;

async function restore(arena: Arena, backup: HostileBackup, call: RestoreCall = {}) {
  const outcome: Outcome = {};
  const before = uncaught.length;
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let settled = false;
  const running = runRestore({
    storage: backup.storage,
    keyring: backup.keyring,
    key: backup.key,
    outDir: arena.out,
    signal: controller.signal,
    ...call,
  }).finally(() => (settled = true));
  try {
    outcome.result = await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        const stop = (why: string) => {
          controller.abort();
          reject(new Error(why));
        };
        timer = setTimeout(
          () => stop(`no result after ${RESTORE_TIMEOUT_MS} ms`),
          RESTORE_TIMEOUT_MS,
        );
        onUncaught = () => setTimeout(() => stop("an error escaped the restore"), 200);
      }),
    ]);
  } catch (error) {
    outcome.error = error;
  } finally {
    clearTimeout(timer);
    onUncaught = undefined;
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  const escaped = uncaught.splice(before);
  if (escaped.length > 0 || !settled) {
    assert.fail(
      `${escaped.join("; ") || "no uncaught error"}; the restore ${
        settled ? "settled" : "never settled (a hang)"
      }: ${describe(outcome)}`,
    );
  }
  return outcome;
}

function describe(outcome: Outcome): string {
  if (outcome.error !== undefined) {
    const error = outcome.error;
    return error instanceof IntellistorError
      ? `threw ${error.code}: ${error.message}`
      : `threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
  }
  const { integrity, found, restored, failures } = outcome.result!;
  return `returned ${JSON.stringify({ integrity, found, restored, failures })}`;
}

/** The restore failed as documented: an IntellistorError with exit code 13, or `integrity: "failed"`. */
function assertExit13(outcome: Outcome, context: string): void {
  if (outcome.error !== undefined) {
    assert.ok(
      outcome.error instanceof IntellistorError,
      `${context}: expected an IntellistorError, ${describe(outcome)}`,
    );
    assert.equal(
      outcome.error.exitCode,
      ExitCode.integrity,
      `${context}: exit code of ${describe(outcome)}`,
    );
    return;
  }
  assert.equal(outcome.result!.integrity, "failed", `${context}: ${describe(outcome)}`);
}

/**
 * The object's data cannot be read (authentication, gzip or tar): an INTEGRITY
 * error, or, when the restore went on past the damage, `integrity: "failed"`
 * with a failure that names the damage.
 */
function assertDamaged(outcome: Outcome, context: string): void {
  assertExit13(outcome, context);
  if (outcome.error !== undefined) {
    assert.equal(
      (outcome.error as IntellistorError).code,
      "INTEGRITY",
      `${context}: ${describe(outcome)}`,
    );
    return;
  }
  assert.ok(
    outcome.result!.failures.some((f) =>
      /damaged part of the backup object|undamaged parts/.test(f.message)
    ),
    `${context}: ${describe(outcome)}`,
  );
}

/** `name` was refused: the whole restore failed with exit 13, or it is listed in `failures`. */
function assertRefused(outcome: Outcome, name: string, context: string): void {
  assertExit13(outcome, `${context} (${JSON.stringify(name)})`);
  if (outcome.result !== undefined) {
    assert.ok(
      outcome.result.failures.some((f) => f.path === name),
      `${context}: ${JSON.stringify(name)} is not reported in failures; ${describe(outcome)}`,
    );
  }
}

/**
 * `name` was refused as one this system cannot hold, or because something in
 * --out stands in the way: listed in `failures` as a "write" failure (exit 1).
 */
function assertNotWrittenHere(outcome: Outcome, name: string, context: string): void {
  const label = `${context} (${JSON.stringify(name)})`;
  assert.equal(outcome.error, undefined, `${label}: ${describe(outcome)}`);
  assert.ok(
    outcome.result!.failures.some((f) => f.path === name && f.kind === "write"),
    `${label}: not reported as a write failure; ${describe(outcome)}`,
  );
}

/** Nothing exists at `out/name` (for names that stay inside out when joined). */
async function assertAbsent(arena: Arena, name: string, context: string): Promise<void> {
  const target = path.join(arena.out, ...name.split("/"));
  assert.ok(
    target.startsWith(arena.out + path.sep),
    `test bug: ${name} leaves out when joined`,
  );
  const found = await Deno.lstat(target).then((info) => info, () => undefined);
  if (found !== undefined) {
    const kind = found.isSymlink
      ? `a symlink to ${JSON.stringify(await Deno.readLink(target))}`
      : found.isDirectory
      ? "a directory"
      : "a file";
    assert.fail(`${context}: ${JSON.stringify(name)} exists under --out (${kind})`);
  }
}

/**
 * The benign file was restored — unless the whole restore was refused
 * (a malformed sealed manifest is refused whole, with INTEGRITY).
 */
async function assertRestoredOk(arena: Arena, context: string, outcome?: Outcome): Promise<void> {
  if (outcome?.error !== undefined) {
    assertExit13(outcome, context);
    return;
  }
  const text = await Deno.readTextFile(path.join(arena.out, "ok.txt"));
  assert.equal(text, OK_FILE.data, `${context}: the benign file was not restored`);
}

async function emptyOut(arena: Arena): Promise<void> {
  await Deno.remove(arena.out, { recursive: true }).catch(() => {});
}

async function withArena(fn: (arena: Arena) => Promise<void>): Promise<void> {
  const arena = await makeArena();
  try {
    await fn(arena);
  } finally {
    await arena.cleanup();
  }
}

/**
 * Builds the backup, restores it fully (and selectively with `--only "*"`),
 * checks containment after each, and returns the full restore's outcome.
 */
async function restoreBoth(
  arena: Arena,
  spec: HostileBackupSpec,
  context: string,
  call: RestoreCall = {},
): Promise<Outcome> {
  const backup = await writeHostileBackup(arena.store, spec);
  await emptyOut(arena);
  const selective = await restore(arena, backup, { ...call, only: ["*"] });
  await assertContained(arena, `${context} (selective)`);
  if (selective.error !== undefined) {
    assert.ok(
      selective.error instanceof IntellistorError,
      `${context} (selective): ${describe(selective)}`,
    );
  }
  await emptyOut(arena);
  const full = await restore(arena, backup, call);
  await assertContained(arena, context);
  return full;
}

/** Writes a local-destination policy for the CLI; returns its path. */
async function writePolicy(arena: Arena): Promise<string> {
  const file = path.join(arena.root, "policy.yaml");
  arena.allowed.add("policy.yaml");
  await Deno.writeTextFile(
    file,
    [
      "version: 1",
      "id: hostile",
      "paths:",
      "  - /hostile-source",
      "destination:",
      "  type: local",
      `  path: '${arena.store}'`,
      "",
    ].join("\n"),
  );
  return file;
}

async function runRestoreCli(arena: Arena, backup: HostileBackup, extra: string[] = []) {
  const policy = await writePolicy(arena);
  return await runCli(
    ["restore", "--policy", policy, "--key", backup.key, "--out", arena.out, ...extra],
    { cwd: arena.root, env: { INTELLISTOR_KEY: HOSTILE_KEY } },
  );
}

// ---------------------------------------------------------------- names that leave --out

Deno.test("hostile: `../x` is refused, listed in the manifest or not, and nothing lands beside --out", async () => {
  await withArena(async (arena) => {
    const far = `intellistor-hostile-${crypto.randomUUID()}`;
    const farPath = path.resolve(arena.out, "..", "..", far);
    for (const listed of [true, false]) {
      const manifest = listed ? undefined : "unlisted" as const;
      const names = ["../x", "../sentinel/x", `../../${far}`, "../secret.txt"];
      const outcome = await restoreBoth(
        arena,
        {
          entries: [
            OK_FILE,
            ...names.map((name) => ({ name, data: "escaped\n", manifest })),
            { name: "../escaped-dir", typeflag: "5", manifest },
          ],
        },
        `../x listed=${listed}`,
      );
      for (const name of [...names, "../escaped-dir"]) {
        assertRefused(outcome, name, `../x listed=${listed}`);
      }
      await assertRestoredOk(arena, `../x listed=${listed}`);
      assert.equal(await Deno.lstat(farPath).catch(() => undefined), undefined, "../../ escaped");
    }
  });
});

Deno.test("hostile: `/etc/x` and an absolute path into the sentinel are refused", async () => {
  await withArena(async (arena) => {
    const etc = "/etc/x";
    const existedBefore = await Deno.lstat(etc).then(() => true, () => false);
    for (const listed of [true, false]) {
      const manifest = listed ? undefined : "unlisted" as const;
      const names = [etc, `${arena.sentinel}/abs.txt`, `${arena.root}/abs-root.txt`, "//x"];
      const outcome = await restoreBoth(
        arena,
        {
          entries: [
            OK_FILE,
            ...names.map((name) => ({ name, data: "absolute\n", manifest })),
            { name: `${arena.sentinel}/dir`, typeflag: "5", manifest },
          ],
        },
        `/etc/x listed=${listed}`,
      );
      // The tar parser keeps "/" in front; the manifest names are the same strings.
      for (const name of [...names, `${arena.sentinel}/dir`]) {
        assertRefused(outcome, name, `/etc/x listed=${listed}`);
      }
      await assertRestoredOk(arena, `/etc/x listed=${listed}`);
      if (!existedBefore) {
        assert.equal(await Deno.lstat(etc).then(() => true, () => false), false, "/etc/x written");
      }
    }
  });
});

Deno.test("hostile: `C:\\x` stays inside --out on Linux and is refused with platform windows", async () => {
  await withArena(async (arena) => {
    const windowsNames = [
      "C:\\x",
      "C:/x",
      "c:x",
      "..\\x",
      "\\x",
      "\\\\server\\share\\x",
      "a\\..\\..\\x",
    ];
    const spec: HostileBackupSpec = {
      entries: [OK_FILE, ...windowsNames.map((name) => ({ name, data: "drive\n" }))],
    };
    // platform "windows": every one of them is refused.
    const windows = await restoreBoth(arena, spec, "C:\\x on windows", { platform: "windows" });
    // A Linux name may hold these; on Windows they cannot be written (exit 1).
    for (const name of windowsNames) assertNotWrittenHere(windows, name, "C:\\x on windows");
    await assertRestoredOk(arena, "C:\\x on windows");
    const restored = [...(await listTree(arena.out)).keys()];
    assert.deepEqual(restored, ["ok.txt"], "C:\\x on windows: only the benign file is restored");

    // posix: "\" is an ordinary character of a Linux name; whatever is restored stays in --out.
    const posix = await restoreBoth(arena, spec, "C:\\x on posix", { platform: "posix" });
    if (posix.error !== undefined) assertExit13(posix, "C:\\x on posix");
    await assertRestoredOk(arena, "C:\\x on posix");
  });
});

Deno.test("hostile: `a/../../x` is refused", async () => {
  await withArena(async (arena) => {
    for (const listed of [true, false]) {
      const manifest = listed ? undefined : "unlisted" as const;
      const names = ["a/../../x", "a/./../../sentinel/x", "a/b/../../../x", "a//../../x", "./../x"];
      const outcome = await restoreBoth(
        arena,
        {
          entries: [
            OK_FILE,
            { name: "a", typeflag: "5" },
            ...names.map((name) => ({ name, data: "dotdot\n", manifest })),
          ],
        },
        `a/../../x listed=${listed}`,
      );
      for (const name of names) assertRefused(outcome, name, `a/../../x listed=${listed}`);
      await assertRestoredOk(arena, `a/../../x listed=${listed}`);
    }
  });
});

// ---------------------------------------------------------------- links

Deno.test("hostile: a symlink to `/` followed by an entry through it writes nothing outside", async () => {
  await withArena(async (arena) => {
    // If the link were followed, "root/<sentinel without its leading />/x" would land in the sentinel.
    const through = `root${arena.sentinel}/through.txt`;
    for (const order of ["link first", "file first"]) {
      const link: HostileEntry = { name: "root", typeflag: "2", linkname: "/" };
      const file: HostileEntry = { name: through, data: "through a symlink\n" };
      const dir: HostileEntry = { name: `root${arena.sentinel}/newdir`, typeflag: "5" };
      const outcome = await restoreBoth(
        arena,
        {
          entries: order === "link first" ? [OK_FILE, link, file, dir] : [OK_FILE, file, dir, link],
        },
        `symlink to / (${order})`,
      );
      assertExit13(outcome, `symlink to / (${order})`);
      await assertRestoredOk(arena, `symlink to / (${order})`);
    }
  });
});

Deno.test("hostile: a symlink to `..` followed by an entry through it writes nothing outside", async () => {
  await withArena(async (arena) => {
    const cases: HostileEntry[][] = [
      [
        { name: "up", typeflag: "2", linkname: ".." },
        { name: "up/sentinel/through.txt", data: "through\n" },
      ],
      [
        { name: "up/sentinel/through.txt", data: "through\n" },
        { name: "up", typeflag: "2", linkname: ".." },
      ],
      // A link inside a link: "up/sentinel/evil" would be created in the sentinel.
      [
        { name: "up", typeflag: "2", linkname: ".." },
        { name: "up/sentinel/evil", typeflag: "2", linkname: "/" },
      ],
      [
        { name: "up/sentinel/evil", typeflag: "2", linkname: "/" },
        { name: "up", typeflag: "2", linkname: ".." },
      ],
      // A chain: a → b → ../sentinel, then a file through a.
      [
        { name: "a", typeflag: "2", linkname: "b" },
        { name: "b", typeflag: "2", linkname: "../sentinel" },
        { name: "a/x.txt", data: "through a chain\n" },
      ],
      // Outside with an absolute target.
      [
        { name: "abs", typeflag: "2", linkname: arena.sentinel },
        { name: "abs/x.txt", data: "through an absolute link\n" },
      ],
    ];
    for (const [index, entries] of cases.entries()) {
      const outcome = await restoreBoth(
        arena,
        { entries: [OK_FILE, ...entries] },
        `symlink to .. case ${index}`,
      );
      assertExit13(outcome, `symlink to .. case ${index}`);
      await assertRestoredOk(arena, `symlink to .. case ${index}`);
    }
  });
});

Deno.test("hostile: entries under a file's name are the backup's fault (exit 13), not this system's", async () => {
  await withArena(async (arena) => {
    const outcome = await restoreBoth(arena, {
      entries: [
        OK_FILE,
        { name: "a", data: "a file\n" },
        { name: "a/x", data: "under a file\n" },
        { name: "a/d", typeflag: "5" },
      ],
    }, "entries under a file");
    for (const name of ["a/x", "a/d"]) assertRefused(outcome, name, "entries under a file");
    if (outcome.result) {
      for (const failure of outcome.result.failures) assert.equal(failure.kind, "integrity");
    }
    await assertRestoredOk(arena, "entries under a file");
  });
});

Deno.test("hostile: a symlink left in --out by an earlier restore is not followed by the next (--overwrite)", async () => {
  await withArena(async (arena) => {
    const first = await writeHostileBackup(arena.store, {
      entries: [OK_FILE, { name: "up", typeflag: "2", linkname: ".." }],
    });
    const second = await writeHostileBackup(arena.store, {
      entries: [
        { name: "up/sentinel/x.txt", data: "through an old link\n" },
        { name: "up/sentinel/d", typeflag: "5" },
        { name: "up/sentinel/l", typeflag: "2", linkname: "/" },
      ],
    });
    const made = await restore(arena, first);
    assert.equal(made.result?.integrity, "ok", `first restore: ${describe(made)}`);
    assert.equal(await Deno.readLink(path.join(arena.out, "up")), "..");
    for (const only of [undefined, ["*"]]) {
      const outcome = await restore(arena, second, { overwrite: true, only });
      await assertContained(arena, `second restore only=${only}`);
      // The link is in --out, in the way, and never gone through.
      for (const name of ["up/sentinel/x.txt", "up/sentinel/d", "up/sentinel/l"]) {
        assertNotWrittenHere(outcome, name, `second restore only=${only}`);
      }
    }
  });
});

Deno.test("hostile: a hard link pointing outside --out is not restored", async () => {
  await withArena(async (arena) => {
    const findings = new Findings();
    const targets = ["../secret.txt", arena.secret, "/etc/passwd", "ok.txt"];
    const variants: [string, (target: string) => HostileEntry["manifest"]][] = [
      ["unlisted", () => "unlisted"],
      // The manifest lists what the tar holds: a hard link with its target.
      ["listed as a hard link", () => undefined],
      ["listed as a file", () => ({ type: "file", sha256: sha256Hex(new Uint8Array(0)) })],
      ["listed as a symlink", (target) => ({ type: "symlink", link: target })],
    ];
    for (const [label, manifest] of variants) {
      const entries: HostileEntry[] = targets.map((target, i) => ({
        name: `hl${i}`,
        typeflag: "1",
        linkname: target,
        manifest: manifest(target),
      }));
      const outcome = await restoreBoth(
        arena,
        { entries: [OK_FILE, ...entries] },
        `hard link ${label}`,
      );
      for (const [i, entry] of entries.entries()) {
        const context = `hard link to ${JSON.stringify(targets[i])} ${label}`;
        await findings.check(() => assertRefused(outcome, entry.name, context));
        await findings.check(() => assertAbsent(arena, entry.name, context));
      }
      await assertRestoredOk(arena, `hard link ${label}`, outcome);
    }
    // A hard link, then a file of the same name: nothing may be written through the link.
    const outcome = await restoreBoth(arena, {
      entries: [
        OK_FILE,
        { name: "hl", typeflag: "1", linkname: arena.secret, manifest: "unlisted" },
        { name: "hl", data: "overwritten through a hard link\n" },
      ],
    }, "hard link then file");
    await findings.check(() => assertExit13(outcome, "hard link then file"));
    findings.assertNone("hard links");
  });
});

Deno.test("hostile: device and FIFO entries (typeflags 3, 4, 6) are not restored", async () => {
  await withArena(async (arena) => {
    const findings = new Findings();
    const kinds = [["3", "char-device"], ["4", "block-device"], ["6", "fifo"]];
    const variants: [string, HostileEntry["manifest"]][] = [
      ["unlisted", "unlisted"],
      // The manifest lists what the tar holds (the parser's type "other").
      ["listed as it is", undefined],
      ["listed as it is, with a link", { link: "/dev/sda" }],
      ["listed as an empty file", { type: "file", sha256: sha256Hex(new Uint8Array(0)) }],
      ["listed as a directory", { type: "dir" }],
    ];
    for (const [label, manifest] of variants) {
      const entries: HostileEntry[] = kinds.map(([typeflag, name]) => ({
        name,
        typeflag,
        linkname: typeflag === "6" ? undefined : "",
        manifest,
      }));
      const outcome = await restoreBoth(
        arena,
        { entries: [OK_FILE, ...entries] },
        `devices ${label}`,
      );
      for (const entry of entries) {
        const context = `typeflag ${entry.typeflag} ${label}`;
        await findings.check(() => assertRefused(outcome, entry.name, context));
        await findings.check(() => assertAbsent(arena, entry.name, context));
      }
      await assertRestoredOk(arena, `devices ${label}`, outcome);
    }
    findings.assertNone("devices and FIFOs");
  });
});

// ---------------------------------------------------------------- names

Deno.test("hostile: duplicate names restore at most one verified copy and report the other", async () => {
  await withArena(async (arena) => {
    const first = "first copy\n";
    const second = "second copy, longer\n";
    const variants: [string, HostileEntry["manifest"], HostileEntry["manifest"]][] = [
      ["manifest lists the first", undefined, "unlisted"],
      ["manifest lists the second", "unlisted", undefined],
      ["manifest lists both", undefined, undefined],
    ];
    for (const [label, m1, m2] of variants) {
      const outcome = await restoreBoth(arena, {
        entries: [
          OK_FILE,
          { name: "dup.txt", data: first, manifest: m1 },
          { name: "dup.txt", data: second, manifest: m2 },
          { name: "d", typeflag: "5", manifest: m1 },
          { name: "d", data: "a file where a directory was\n", manifest: m2 },
          { name: "s", typeflag: "2", linkname: "..", manifest: m1 },
          { name: "s", data: "a file where a link was\n", manifest: m2 },
        ],
      }, `duplicates: ${label}`);
      for (const name of ["dup.txt", "d", "s"]) {
        assertRefused(outcome, name, `duplicates: ${label}`);
      }
      const dup = await Deno.readTextFile(path.join(arena.out, "dup.txt")).catch(() => undefined);
      assert.ok(
        dup === undefined || (m1 !== "unlisted" && dup === first),
        `duplicates: ${label}: dup.txt holds ${JSON.stringify(dup)}`,
      );
      await assertRestoredOk(arena, `duplicates: ${label}`);
    }
    // On Windows names that differ only in case are one file: the later one is refused.
    const outcome = await restoreBoth(
      arena,
      {
        entries: [
          OK_FILE,
          { name: "Case.txt", data: "upper\n" },
          { name: "case.txt", data: "lower\n" },
        ],
      },
      "duplicates differing in case",
      { platform: "windows" },
    );
    // A Linux backup may hold both names: not the backup's fault, so not an
    // integrity failure, but never one written over the other (exit 1).
    assert.equal(outcome.result?.integrity, "ok", describe(outcome));
    assert.deepEqual(
      outcome.result.failures.map((f) => [f.path, f.kind]),
      [["case.txt", "write"]],
      describe(outcome),
    );
    const names = [...(await listTree(arena.out)).keys()].map((name) => name.toLowerCase());
    assert.equal(
      names.filter((name) => name === "case.txt").length,
      1,
      `duplicates differing in case: ${names}`,
    );
  });
});

Deno.test("hostile: names with `:` and Windows reserved names are refused with platform windows", async () => {
  await withArena(async (arena) => {
    const files = [
      "a:b.txt",
      "stream.txt:hidden",
      "CON",
      "con.txt",
      "NUL",
      "nul.tar.gz",
      "AUX",
      "PRN.log",
      "COM1",
      "LPT9.txt",
      "dir/COM1",
      "trailing-dot.",
      "trailing-space ",
      "x<y",
      "q?",
      "star*",
      "pipe|",
    ];
    const dirs = ["CON", "aux.d"].map((name) => `dirs/${name}`);
    const spec: HostileBackupSpec = {
      entries: [
        OK_FILE,
        ...files.map((name) => ({ name, data: "windows\n" })),
        ...dirs.map((name) => ({ name, typeflag: "5" })),
        { name: "LPT1", typeflag: "2", linkname: "ok.txt" },
      ],
    };
    const outcome = await restoreBoth(arena, spec, "windows names", { platform: "windows" });
    for (const name of [...files, ...dirs, "LPT1"]) {
      assertNotWrittenHere(outcome, name, "windows names");
    }
    await assertRestoredOk(arena, "windows names");
    const restored = [...(await listTree(arena.out)).keys()].filter((name) =>
      !["ok.txt", "dir", "dirs"].includes(name)
    );
    assert.deepEqual(restored, [], "windows names: only the benign file is restored");
  });
});

// ---------------------------------------------------------------- sizes

Deno.test("hostile: a header that claims gigabytes with no data fails (exit 13) and leaves nothing", async () => {
  await withArena(async (arena) => {
    const started = performance.now();
    const variants: [string, HostileEntry][] = [
      ["4 GiB, listed", { name: "big.bin", claimedSize: 4 * 2 ** 30 }],
      ["4 GiB, unlisted", { name: "big.bin", claimedSize: 4 * 2 ** 30, manifest: "unlisted" }],
      ["1 TiB in a PAX size record, listed", {
        name: "big.bin",
        claimedSize: 2 ** 40,
        paxSize: true,
      }],
      ["8 GiB, a directory", {
        name: "big",
        typeflag: "5",
        claimedSize: 8 * 2 ** 30,
        paxSize: true,
      }],
    ];
    for (const [label, entry] of variants) {
      for (const omitEnd of [false, true]) {
        const context = `claims gigabytes: ${label}${omitEnd ? ", no end marker" : ""}`;
        const outcome = await restoreBoth(arena, { entries: [OK_FILE, entry], omitEnd }, context);
        assertDamaged(outcome, context);
        await assertAbsent(arena, "big.bin", context);
      }
    }
    assert.ok(performance.now() - started < 30_000, "claims gigabytes: took too long");
  });
});

// ---------------------------------------------------------------- the manifest disagrees

async function disagreement(
  label: string,
  entries: HostileEntry[],
  refused: string[],
  extra: Pick<HostileBackupSpec, "extraManifestEntries" | "editContent"> = {},
): Promise<void> {
  await withArena(async (arena) => {
    const outcome = await restoreBoth(arena, { entries: [OK_FILE, ...entries], ...extra }, label);
    for (const name of refused) {
      assertRefused(outcome, name, label);
      await assertAbsent(arena, name, label);
    }
    await assertRestoredOk(arena, label, outcome);
  });
}

Deno.test("hostile: manifest disagrees with the tar: size", async () => {
  await disagreement("size", [
    { name: "smaller.txt", data: "twelve bytes", manifest: { size: 5 } },
    { name: "larger.txt", data: "twelve bytes", manifest: { size: 4096 } },
    { name: "zero.txt", data: "twelve bytes", manifest: { size: 0 } },
  ], ["smaller.txt", "larger.txt", "zero.txt"]);
});

Deno.test("hostile: manifest disagrees with the tar: type", async () => {
  await disagreement("type", [
    { name: "file-as-dir", data: "data\n", manifest: { type: "dir" } },
    { name: "file-as-link", data: "data\n", manifest: { type: "symlink", link: "/" } },
    {
      name: "dir-as-file",
      typeflag: "5",
      manifest: { type: "file", sha256: sha256Hex(new Uint8Array(0)) },
    },
    { name: "link-as-file", typeflag: "2", linkname: "ok.txt", manifest: { type: "file" } },
    { name: "link-as-dir", typeflag: "2", linkname: "/", manifest: { type: "dir" } },
    { name: "file-as-other", data: "data\n", manifest: { type: "other" as CatalogEntry["type"] } },
  ], [
    "file-as-dir",
    "file-as-link",
    "dir-as-file",
    "link-as-file",
    "link-as-dir",
    "file-as-other",
  ]);
});

Deno.test("hostile: manifest disagrees with the tar: symlink target", async () => {
  await disagreement("link", [
    { name: "l1", typeflag: "2", linkname: "ok.txt", manifest: { link: "/" } },
    { name: "l2", typeflag: "2", linkname: "..", manifest: { link: "ok.txt" } },
  ], ["l1", "l2"]);
});

Deno.test("hostile: manifest disagrees with the tar: sha256", async () => {
  await disagreement("sha256", [
    {
      name: "wrong.txt",
      data: "the real content\n",
      manifest: { sha256: sha256Hex(new TextEncoder().encode("other\n")) },
    },
    { name: "not-hex.txt", data: "the real content\n", manifest: { sha256: "../../etc/passwd" } },
    { name: "no-hash.txt", data: "the real content\n", manifest: { sha256: undefined } },
    {
      name: "big-wrong.bin",
      data: new Uint8Array(300_000).fill(7),
      manifest: { sha256: "0".repeat(64) },
    },
  ], ["wrong.txt", "not-hex.txt", "no-hash.txt", "big-wrong.bin"]);
});

Deno.test("hostile: manifest disagrees with the tar: extra entry in the tar", async () => {
  await disagreement("extra entry", [
    { name: "unlisted.txt", data: "not in the manifest\n", manifest: "unlisted" },
    { name: "unlisted-dir", typeflag: "5", manifest: "unlisted" },
    { name: "unlisted-link", typeflag: "2", linkname: "/", manifest: "unlisted" },
  ], ["unlisted.txt", "unlisted-dir", "unlisted-link"]);
});

Deno.test("hostile: manifest disagrees with the tar: entry missing from the tar", async () => {
  await disagreement("missing entry", [], ["missing.txt", "missing-dir"], {
    extraManifestEntries: [
      { relative_path: "missing.txt", size: 3, sha256: sha256Hex(new TextEncoder().encode("abc")) },
      { relative_path: "missing-dir", type: "dir", tar_offset: 512 },
    ],
  });
});

Deno.test("hostile: manifest disagrees with the tar: tar_offset", async () => {
  const swap = (content: SealedContent) => {
    // a.txt and b.txt have the same size: each is listed at the other's offset.
    const a = content.entries.find((e) => e.relative_path === "a.txt")!;
    const b = content.entries.find((e) => e.relative_path === "b.txt")!;
    [a.tar_offset, b.tar_offset] = [b.tar_offset, a.tar_offset];
  };
  await disagreement(
    "tar_offset",
    [
      { name: "a.txt", data: "AAAA\n" },
      { name: "b.txt", data: "BBBB\n" },
      { name: "shifted.txt", data: "shifted\n", manifest: { tar_offset: 512 } },
      { name: "negative.txt", data: "negative\n", manifest: { tar_offset: -512 } },
    ],
    ["a.txt", "b.txt", "shifted.txt", "negative.txt"],
    { editContent: swap },
  );
});

Deno.test("hostile: manifest disagrees with the tar: a segment table outside the object fails with INTEGRITY", async () => {
  await withArena(async (arena) => {
    const findings = new Findings();
    const edits: [string, (content: SealedContent) => void][] = [
      ["gz_offset past the end", (c) => (c.segments[1].gz_offset = 10_000_000)],
      ["gz_length past the end", (c) => (c.segments[1].gz_length = 10_000_000)],
      ["gz_length 0", (c) => (c.segments[1].gz_length = 0)],
      ["negative gz_offset", (c) => (c.segments[1].gz_offset = -100)],
      ["fractional gz_offset", (c) => (c.segments[1].gz_offset = 0.5)],
      ["segment index past the table", (c) => (c.entries[1].segment = 7)],
      ["the wrong segment", (c) => (c.entries[1].segment = 0)],
      ["overlapping segments", (c) => (c.segments[1].gz_offset = c.segments[0].gz_offset)],
    ];
    for (const [label, edit] of edits) {
      const backup = await writeHostileBackup(arena.store, {
        entries: [OK_FILE, { name: "second.txt", data: "in segment 1\n", newSegment: true }],
        editContent: edit,
      });
      await emptyOut(arena);
      const outcome = await restore(arena, backup, { only: ["second.txt"] });
      await assertContained(arena, `segment table: ${label}`);
      await findings.check(() => assertRefused(outcome, "second.txt", `segment table: ${label}`));
      await findings.check(() => assertAbsent(arena, "second.txt", `segment table: ${label}`));
    }
    findings.assertNone("segment table");
  });
});

Deno.test("hostile: a sealed manifest whose content has the wrong shape is refused, never an internal error", async () => {
  await withArena(async (arena) => {
    const findings = new Findings();
    const edits: [string, (content: Record<string, unknown>) => void][] = [
      ["entries is null", (c) => (c.entries = null)],
      ["entries is an object", (c) => (c.entries = { length: 1 })],
      ["an entry is null", (c) => ((c.entries as unknown[])[0] = null)],
      [
        "relative_path is a number",
        (
          c,
        ) => (((c.entries as CatalogEntry[])[0] as unknown as Record<string, unknown>)
          .relative_path = 42),
      ],
      ["segments is a string", (c) => (c.segments = "0")],
      ["a segment is null", (c) => ((c.segments as unknown[])[0] = null)],
      [
        "tar_offset is a string",
        (
          c,
        ) => (((c.entries as CatalogEntry[])[0] as unknown as Record<string, unknown>).tar_offset =
          "0"),
      ],
    ];
    const backup = await writeHostileBackup(arena.store, { entries: [OK_FILE] });
    for (const [label, edit] of edits) {
      for (const only of [undefined, ["*"]]) {
        const content = structuredClone(backup.content) as unknown as Record<string, unknown>;
        edit(content);
        await resealManifest(backup, content as unknown as SealedContent);
        await emptyOut(arena);
        const outcome = await restore(arena, backup, { only });
        const context = `sealed content: ${label}${only ? " (selective)" : ""}`;
        await assertContained(arena, context);
        // Refused (exit 13), or restored as far as it could be verified: never an internal error.
        if (outcome.error !== undefined) await findings.check(() => assertExit13(outcome, context));
      }
    }
    // Authentic sealed bytes that are not gzip, or not JSON, or not an object.
    const raws: [string, Uint8Array<ArrayBuffer>][] = [
      ["sealed plaintext is not gzip", new TextEncoder().encode("{}")],
      ["sealed gzip of text that is not JSON", gzip("not json")],
      ["sealed gzip of JSON null", gzip("null")],
      ["sealed gzip of a JSON array", gzip("[]")],
    ];
    for (const [label, plaintext] of raws) {
      await sealRawManifest(backup, plaintext);
      await emptyOut(arena);
      const outcome = await restore(arena, backup);
      await assertContained(arena, label);
      await findings.check(() => assertExit13(outcome, label));
    }
    findings.assertNone("sealed content");
  });
});

Deno.test("hostile: an authentic payload that is not gzip fails (exit 13), no crash or hang", async () => {
  await withArena(async (arena) => {
    const findings = new Findings();
    const edits: [string, (payload: Uint8Array) => Uint8Array][] = [
      ["bad gzip magic", (p) => Uint8Array.from(p, (b, i) => (i === 0 ? 0x42 : b))],
      ["deflate data damaged", (p) => Uint8Array.from(p, (b, i) => (i === 12 ? b ^ 0xff : b))],
      ["plain tar, not compressed", () => new TextEncoder().encode("not gzip at all".repeat(100))],
      ["cut in the middle of a member", (p) => p.slice(0, p.length - 20)],
    ];
    for (const [label, editPayload] of edits) {
      const backup = await writeHostileBackup(arena.store, {
        entries: [OK_FILE, { name: "b.txt", data: "b\n".repeat(100) }],
        editPayload,
      });
      for (const only of [undefined, ["b.txt"]]) {
        const context = `not gzip: ${label}${only ? " (selective)" : ""}`;
        await emptyOut(arena);
        await findings.check(async () => {
          const outcome = await restore(arena, backup, { only });
          assertDamaged(outcome, context);
        });
        await assertContained(arena, context);
      }
    }
    // The manifest's segment table points into the middle of a gzip member.
    const backup = await writeHostileBackup(arena.store, {
      entries: [OK_FILE, { name: "b.txt", data: "b\n".repeat(100), newSegment: true }],
      editContent: (c) => {
        c.segments[1].gz_offset += 5;
        c.segments[1].gz_length -= 5;
      },
    });
    await emptyOut(arena);
    await findings.check(async () => {
      const outcome = await restore(arena, backup, { only: ["b.txt"] });
      assertRefused(outcome, "b.txt", "segment starting inside a gzip member");
    });
    await assertContained(arena, "segment starting inside a gzip member");
    findings.assertNone("payload that is not gzip");
  });
});

// ---------------------------------------------------------------- the real exit codes (CLI)

Deno.test("hostile: through the CLI, refused entries exit 13 with integrity failed and the failures", async () => {
  await withArena(async (arena) => {
    const backup = await writeHostileBackup(arena.store, {
      entries: [
        OK_FILE,
        { name: "../x", data: "escaped\n" },
        { name: "hl", typeflag: "1", linkname: arena.secret, manifest: "unlisted" },
        { name: "wrong.txt", data: "content\n", manifest: { sha256: "0".repeat(64) } },
      ],
    });
    const cli = await runRestoreCli(arena, backup);
    await assertContained(arena, "CLI refused entries");
    assert.equal(cli.code, 13, `exit code; stderr: ${cli.stderr}`);
    const json = cli.json() as unknown as RestoreResult;
    assert.equal(json.integrity, "failed");
    for (const name of ["../x", "hl", "wrong.txt"]) {
      assert.ok(
        json.failures.some((f) => f.path === name && f.kind === "integrity"),
        `${name} not in failures as an integrity failure: ${JSON.stringify(json.failures)}`,
      );
    }
    await assertRestoredOk(arena, "CLI refused entries");
  });
});

Deno.test("hostile: through the CLI, a header claiming gigabytes exits 13 and names the damage", async () => {
  await withArena(async (arena) => {
    const backup = await writeHostileBackup(arena.store, {
      entries: [OK_FILE, { name: "big.bin", claimedSize: 4 * 2 ** 30 }],
    });
    for (const extra of [[], ["--only", "big.bin"]]) {
      await emptyOut(arena);
      const cli = await runRestoreCli(arena, backup, extra);
      await assertContained(arena, `CLI gigabytes ${extra.join(" ")}`);
      assert.equal(cli.code, 13, `exit code; stderr: ${cli.stderr}`);
      // The restore goes on past the damage, and lists the entry it lost.
      const json = cli.json() as unknown as RestoreResult;
      assert.equal(json.integrity, "failed");
      assert.deepEqual(json.failures.map((f) => f.path), ["big.bin"]);
      assert.match(json.failures[0].message, /damaged part of the backup object/);
    }
  });
});

Deno.test("hostile: through the CLI, a segment table outside the object exits 13", async () => {
  await withArena(async (arena) => {
    const backup = await writeHostileBackup(arena.store, {
      entries: [OK_FILE, { name: "second.txt", data: "in segment 1\n", newSegment: true }],
      editContent: (c) => (c.segments[1].gz_offset = 10_000_000),
    });
    const cli = await runRestoreCli(arena, backup, ["--only", "second.txt"]);
    await assertContained(arena, "CLI segment table");
    assert.equal(cli.code, 13, `exit code; stderr: ${cli.stderr}`);
  });
});
