/** The source side (loops, long paths) and the destination side (a full disk). */
import assert from "node:assert/strict";
import path from "node:path";
import {
  generateRootKey,
  keyringFromEnv,
  LocalStorage,
  runBackup,
  runRestore,
  validatePolicy,
} from "../mod.ts";
import { IntellistorError, toIntellistorError } from "../lib/errors.ts";
import { type SourceEntry, type WalkFileSystem, walkSources } from "../lib/archive/walk.ts";
import type { BackupWarning } from "../lib/archive/catalog.ts";
import { restoreExitCode } from "../lib/cli/restore.ts";
import { pseudoRandomBytes } from "./support/tree.ts";
import { withTempDir } from "./support/temp.ts";

const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });

Deno.test("symlink loops are archived as links, never followed; a looping source fails the backup", async () => {
  await withTempDir("src", async (work) => {
    const source = path.join(work, "src");
    await Deno.mkdir(path.join(source, "d"), { recursive: true });
    await Deno.symlink("..", path.join(source, "d", "up")); // a loop if followed
    await Deno.symlink("self", path.join(source, "self")); // points at itself
    await Deno.symlink(path.join(work, "loop-b"), path.join(work, "loop-a"));
    await Deno.symlink(path.join(work, "loop-a"), path.join(work, "loop-b"));
    const storage = new LocalStorage(path.join(work, "store"));
    const looping = validatePolicy(
      { id: "loops", paths: [source, path.join(work, "loop-a")] },
      "t",
    );
    await assert.rejects(
      runBackup({ policy: looping, storage, keyring }),
      (error: IntellistorError) =>
        error.code === "POLICY_INVALID" && error.message.includes("paths[1]") &&
        error.message.includes("loop-a"),
    );
    const policy = validatePolicy({ id: "loops", paths: [source] }, "t");
    const backup = await runBackup({ policy, storage, keyring });
    assert.equal(backup.symlinks, 2);
    assert.deepEqual(backup.warnings, []);
    const out = path.join(work, "out");
    const restored = await runRestore({ storage, keyring, key: backup.key_backup, outDir: out });
    assert.equal(restored.integrity, "ok");
    assert.equal(await Deno.readLink(path.join(out, "d", "up")), "..");
    assert.equal(await Deno.readLink(path.join(out, "self")), "self");
  });
});

Deno.test("paths far beyond 260 characters back up and restore", async () => {
  await withTempDir("src", async (work) => {
    const source = path.join(work, "src");
    const deep = path.join(source, ...Array.from({ length: 8 }, (_, i) => `${i}`.repeat(60)));
    await Deno.mkdir(deep, { recursive: true });
    await Deno.writeTextFile(path.join(deep, "fim.txt"), "fundo\n");
    assert.ok(path.join(deep, "fim.txt").length > 500);
    const storage = new LocalStorage(path.join(work, "store"));
    const policy = validatePolicy({ id: "long", paths: [source] }, "t");
    const backup = await runBackup({ policy, storage, keyring });
    const out = path.join(work, "out");
    await runRestore({ storage, keyring, key: backup.key_backup, outDir: out });
    const relative = path.relative(source, path.join(deep, "fim.txt"));
    assert.equal(await Deno.readTextFile(path.join(out, relative)), "fundo\n");
  });
});

/** Mounts a small tmpfs (root only); undefined where that is not possible. */
async function smallDisk(dir: string, size: string): Promise<(() => Promise<void>) | undefined> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return undefined;
  await Deno.mkdir(dir, { recursive: true });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
    stderr: "null",
  }).output().catch(() => undefined);
  if (!mount?.success) return undefined;
  return async () => {
    await new Deno.Command("umount", { args: [dir] }).output();
  };
}

/**
 * Backs up `source`, restores it into a tmpfs of `size` (root only on Linux;
 * skipped elsewhere), expects IO_ERROR, then checks what was left with `check`.
 */
async function restoreIntoSmallDisk(
  work: string,
  source: string,
  size: string,
  check: (out: string, error: IntellistorError) => Promise<void>,
): Promise<void> {
  const storage = new LocalStorage(path.join(work, "store"));
  const policy = validatePolicy({ id: "disk", paths: [source] }, "t");
  const backup = await runBackup({ policy, storage, keyring });
  const out = path.join(work, "small-disk");
  const unmount = await smallDisk(out, size);
  if (unmount === undefined) {
    console.log("skipped: mounting a tmpfs needs root on Linux");
    return;
  }
  try {
    const error = await runRestore({ storage, keyring, key: backup.key_backup, outDir: out })
      .then(() => undefined, (e) => e);
    assert.ok(error instanceof IntellistorError && error.code === "IO_ERROR", String(error));
    await check(out, error);
  } finally {
    await unmount();
  }
}

Deno.test("a restore into a nearly full disk fails clearly and leaves no file with wrong content", async () => {
  await withTempDir("src", async (work) => {
    const source = path.join(work, "src");
    await Deno.mkdir(source);
    await Deno.writeFile(path.join(source, "small.bin"), pseudoRandomBytes(200_000, 1));
    await Deno.writeFile(path.join(source, "zbig.bin"), pseudoRandomBytes(3_000_000, 2));
    await restoreIntoSmallDisk(work, source, "1m", async (out, error) => {
      const left = (await Array.fromAsync(Deno.readDir(out))).map((e) => e.name);
      assert.deepEqual(left, ["small.bin"], "only the file that fitted, verified");
      // What was restored, and how to go on: a second run meets it (OUTPUT_EXISTS).
      assert.match(error.message, /^No space left on the device.*\(1 entry had been restored/);
      assert.match(error.hint, /add --overwrite/);
      assert.deepEqual(
        await Deno.readFile(path.join(out, "small.bin")),
        pseudoRandomBytes(200_000, 1),
      );
    });
  });
});

Deno.test("a read-only destination is an IO_ERROR that says so, not an internal error", async () => {
  await withTempDir("ro", async (work) => {
    const source = path.join(work, "src");
    await Deno.mkdir(source);
    await Deno.writeTextFile(path.join(source, "a.txt"), "a");
    await Deno.mkdir(path.join(source, "sub"));
    await Deno.writeTextFile(path.join(source, "sub", "b.txt"), "b");
    const storage = new LocalStorage(path.join(work, "store"));
    const policy = validatePolicy({ id: "ro", paths: [source] }, "t");
    const backup = await runBackup({ policy, storage, keyring });
    const mounted = path.join(work, "ro");
    const unmount = await smallDisk(mounted, "1m");
    if (unmount === undefined) {
      console.log("skipped: mounting a tmpfs needs root on Linux");
      return;
    }
    try {
      const remount = await new Deno.Command("mount", {
        args: ["-o", "remount,ro", mounted],
      }).output();
      assert.ok(remount.success);
      const error = await runRestore({
        storage,
        keyring,
        key: backup.key_backup,
        outDir: path.join(mounted, "sub"),
      }).then(() => undefined, (e) => e);
      // The SDK passes the system error on; the command line's mapping names it.
      const failure = toIntellistorError(error);
      assert.equal(failure.code, "IO_ERROR", failure.message);
      assert.match(failure.message, /Read-only file system/);
      assert.match(failure.hint, /mounted read-only/);

      // Over a tree restored before the mount became read-only: every entry
      // fails, and none is also counted as restored (a folder's times fail last).
      const writable = await new Deno.Command("mount", { args: ["-o", "remount,rw", mounted] })
        .output();
      assert.ok(writable.success);
      const out = path.join(mounted, "tree");
      await runRestore({ storage, keyring, key: backup.key_backup, outDir: out });
      assert.ok(
        (await new Deno.Command("mount", { args: ["-o", "remount,ro", mounted] }).output())
          .success,
      );
      const again = await runRestore({
        storage,
        keyring,
        key: backup.key_backup,
        outDir: out,
        overwrite: true,
      });
      assert.equal(again.restored, 0);
      assert.deepEqual(again.failures.map((f) => f.path).sort(), ["a.txt", "sub", "sub/b.txt"]);
    } finally {
      await unmount();
    }
  });
});

Deno.test("a file written to while it is read is archived with a warning (exit 3)", async () => {
  await withTempDir("src", async (work) => {
    const source = path.join(work, "src");
    await Deno.mkdir(source);
    const growing = path.join(source, "log.txt");
    await Deno.writeFile(growing, pseudoRandomBytes(20_000_000, 3));
    // Another process appends while the backup reads, as a busy log file would.
    const writer = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const f = await Deno.open(${JSON.stringify(growing)}, { append: true });` +
        `for (;;) { await f.write(new Uint8Array(1024)); await new Promise((r) => setTimeout(r, 2)); }`,
      ],
    }).spawn();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const storage = new LocalStorage(path.join(work, "store"));
      const policy = validatePolicy({ id: "grow", paths: [source] }, "t");
      const backup = await runBackup({ policy, storage, keyring });
      assert.equal(backup.partial, true);
      assert.deepEqual(backup.warnings.map((w) => [w.path, w.skipped]), [[growing, false]]);
      assert.match(backup.warnings[0].message, /changed while being read/);
      // What was archived is consistent with its own hash.
      const restored = await runRestore({
        storage,
        keyring,
        key: backup.key_backup,
        outDir: path.join(work, "out"),
      });
      assert.equal(restored.integrity, "ok");
    } finally {
      writer.kill();
      await writer.status;
    }
  });
});

/** `count` small files (`size` bytes each) under `dir`, in folders of 100; their names. */
async function manySmallFiles(dir: string, count: number, size: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `d${Math.floor(i / 100)}/f${String(i).padStart(4, "0")}.bin`;
    await Deno.mkdir(path.join(dir, path.dirname(name)), { recursive: true });
    await Deno.writeFile(path.join(dir, name), pseudoRandomBytes(size, i), { mode: 0o640 });
    await Deno.utime(path.join(dir, name), 1_600_000_000 + i, 1_600_000_000 + i);
    names.push(name);
  }
  return names;
}

/** Names under `dir` that are restore's temporary files. */
async function partialFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of walkNames(dir)) if (entry.endsWith(".partial")) found.push(entry);
  return found;
}

async function* walkNames(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const full = path.join(dir, entry.name);
    yield full;
    if (entry.isDirectory) yield* walkNames(full);
  }
}

Deno.test("many small files restore, written off the main thread, each verified, with mode and time", async () => {
  await withTempDir("many", async (work) => {
    const source = path.join(work, "src");
    // Past the files written before the writer's thread starts, and many of its batches.
    const names = await manySmallFiles(source, 900, 700);
    const storage = new LocalStorage(path.join(work, "store"));
    const policy = validatePolicy({ id: "many", paths: [source] }, "t");
    const backup = await runBackup({ policy, storage, keyring });
    const out = path.join(work, "out");
    // A folder where a late file goes: its write fails alone, and the restore goes on.
    const blocked = names[700];
    await Deno.mkdir(path.join(out, blocked), { recursive: true });
    const result = await runRestore({
      storage,
      keyring,
      key: backup.key_backup,
      outDir: out,
      overwrite: true,
    });
    assert.equal(result.integrity, "ok", "the backup is intact; the file could not be written");
    assert.deepEqual(result.failures.map((f) => [f.path, f.kind]), [[blocked, "write"]]);
    assert.equal(restoreExitCode(result), 1);
    assert.equal(result.restored, names.length - 1 + 9, "every other file, and the 9 folders");
    assert.equal(result.bytes, (names.length - 1) * 700);
    for (const [i, name] of names.entries()) {
      if (name === blocked) continue;
      const restored = path.join(out, name);
      assert.deepEqual(await Deno.readFile(restored), pseudoRandomBytes(700, i), name);
      const info = await Deno.stat(restored);
      assert.equal(info.mtime?.getTime(), (1_600_000_000 + i) * 1000, name);
      if (Deno.build.os !== "windows") assert.equal(info.mode! & 0o777, 0o640, name);
    }
    assert.deepEqual(await partialFiles(out), []);
  });
});

Deno.test("many small files into a disk that fills: IO_ERROR, and every file left is whole", async () => {
  await withTempDir("many-full", async (work) => {
    const source = path.join(work, "src");
    await manySmallFiles(source, 900, 6000);
    // Room for about 500 files of two pages: it fills once the writer's thread has started.
    await restoreIntoSmallDisk(work, source, "4m", async (out) => {
      let whole = 0;
      for await (const file of walkNames(out)) {
        const info = await Deno.stat(file);
        if (!info.isFile) continue;
        const index = Number(/f(\d+)\.bin$/.exec(file)?.[1]);
        assert.deepEqual(await Deno.readFile(file), pseudoRandomBytes(6000, index), file);
        whole++;
      }
      assert.ok(whole > 300 && whole < 900, `${whole} files fitted`);
      assert.deepEqual(await partialFiles(out), []);
    });
  });
});

Deno.test({
  name: "sources named through links (the folder, a file, a parent) are read by their real paths",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir("src", async (work) => {
      // Writable by others: every file below is checked where it really is once open.
      await Deno.chmod(work, 0o777);
      const real = path.join(work, "disk", "data");
      await Deno.mkdir(path.join(real, "sub"), { recursive: true });
      await Deno.writeTextFile(path.join(real, "a.txt"), "a");
      await Deno.writeTextFile(path.join(real, "sub", "b.txt"), "b".repeat(3 << 20)); // a large file
      await Deno.writeTextFile(path.join(work, "disk", "one.conf"), "conf");
      await Deno.symlink(real, path.join(work, "data-link")); // the folder itself
      await Deno.symlink(path.join(work, "disk"), path.join(work, "mnt")); // a parent
      await Deno.symlink(path.join(work, "disk", "one.conf"), path.join(work, "conf-link")); // a file
      const storage = new LocalStorage(path.join(work, "store"));
      const cases = [
        { paths: [path.join(work, "data-link"), path.join(work, "conf-link")], files: 3 },
        { paths: [path.join(work, "mnt", "data")], files: 2 },
      ];
      for (const { paths, files } of cases) {
        const policy = validatePolicy({ id: "links", paths }, "t");
        const backup = await runBackup({ policy, storage, keyring });
        // On Linux each file's open is checked against its real path: a root
        // through a link must not look like a folder swapped during the backup.
        assert.deepEqual(backup.warnings, []);
        assert.equal(backup.partial, false);
        assert.equal(backup.files, files);
        const out = path.join(work, `out-${backup.backup_id}`);
        const restored = await runRestore({
          storage,
          keyring,
          key: backup.key_backup,
          outDir: out,
        });
        assert.equal(restored.integrity, "ok");
        assert.equal(restored.restored, restored.found);
      }
    });
  },
});

Deno.test({
  name: "a world-writable folder keeps its sticky bit; setuid and setgid are never restored",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir("modes", async (work) => {
      const source = path.join(work, "src");
      await Deno.mkdir(path.join(source, "shared"), { recursive: true });
      await Deno.mkdir(path.join(source, "group"));
      await Deno.writeTextFile(path.join(source, "shared", "tool"), "#!/bin/sh\n");
      await Deno.chmod(path.join(source, "shared"), 0o1777);
      await Deno.chmod(path.join(source, "group"), 0o2775);
      await Deno.chmod(path.join(source, "shared", "tool"), 0o4755);
      const storage = new LocalStorage(path.join(work, "store"));
      const policy = validatePolicy({ id: "modes", paths: [source] }, "t");
      const backup = await runBackup({ policy, storage, keyring });
      const out = path.join(work, "out");
      const result = await runRestore({ storage, keyring, key: backup.key_backup, outDir: out });
      assert.equal(result.integrity, "ok");
      const mode = async (name: string) => (await Deno.stat(path.join(out, name))).mode! & 0o7777;
      assert.equal(await mode("shared"), 0o1777);
      assert.equal(await mode("group"), 0o775);
      assert.equal(await mode("shared/tool"), 0o755);
    });
  },
});

Deno.test({
  name: "a path longer than the system opens is a warning that says so, not a 4 KiB echo",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir("deep", async (work) => {
      const source = path.join(work, "src");
      await Deno.mkdir(source);
      // 20 folders of 250-byte names: made one `cd` at a time, as no call takes the whole path.
      const script = `cd "$1" && for i in $(seq 10 29); do d=$(printf "%0250d" $i); ` +
        `mkdir "$d" && cd "$d" || exit 1; done; echo deep > f.txt`;
      const made = await new Deno.Command("bash", { args: ["-c", script, "bash", source] })
        .output();
      assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
      const storage = new LocalStorage(path.join(work, "store"));
      const policy = validatePolicy({ id: "deep", paths: [source] }, "t");
      const backup = await runBackup({ policy, storage, keyring });
      assert.equal(backup.partial, true);
      assert.equal(backup.warnings.length, 1);
      const [warning] = backup.warnings;
      assert.match(warning.message, /^its path is longer than this system lets a program open/);
      assert.ok(warning.message.length < 200);
    });
  },
});

Deno.test("a large directory is listed asynchronously, in the same order; a failed listing is a warning", async () => {
  await withTempDir("large-dir", async (work) => {
    const source = path.join(work, "src");
    await Deno.mkdir(path.join(source, "big"), { recursive: true });
    await Deno.mkdir(path.join(source, "small"));
    for (let i = 0; i < 300; i++) await Deno.writeTextFile(path.join(source, "big", `f${i}`), "");
    await Deno.writeTextFile(path.join(source, "small", "a"), "");
    const bigPath = path.join(source, "big");
    // The directory's size is the file system's own measure: "big" is made to report 1 MiB.
    const sized = (p: string, info: Deno.FileInfo) =>
      p === bigPath ? { ...info, size: 1 << 20 } : info;
    const listedAsync: string[] = [];
    const walk = async (failAsync: boolean) => {
      const fileSystem: WalkFileSystem = {
        stat: async (p) => sized(p, await Deno.stat(p)),
        lstat: (p) => sized(p, Deno.lstatSync(p)),
        readDir: (p) => Deno.readDirSync(p),
        readDirAsync: (p) => {
          listedAsync.push(p);
          if (failAsync) throw new Deno.errors.PermissionDenied("Permission denied (os error 13)");
          return Deno.readDir(p);
        },
        readLink: (p) => Deno.readLinkSync(p),
        realPath: (p) => Deno.realPath(p),
      };
      const entries: SourceEntry[] = [];
      const warnings: BackupWarning[] = [];
      const options = { warn: (w: BackupWarning) => warnings.push(w), fileSystem };
      for await (const entry of walkSources([source], options)) entries.push(entry);
      return { names: entries.map((e) => e.relativePath), warnings };
    };
    const listed = await walk(false);
    assert.deepEqual(listedAsync, [bigPath]);
    const expected = [
      "big",
      ...Array.from({ length: 300 }, (_, i) => `big/f${i}`).sort(),
      "small",
      "small/a",
    ];
    assert.deepEqual(listed.names, expected);
    assert.deepEqual(listed.warnings, []);
    const failed = await walk(true);
    assert.deepEqual(failed.names, ["big", "small", "small/a"]);
    assert.deepEqual(failed.warnings.map((w) => [w.path, w.message]), [[
      bigPath,
      "permission denied",
    ]]);
  });
});
