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
import { IntellistorError } from "../lib/errors.ts";
import { pseudoRandomBytes } from "./support/tree.ts";
import { withTempDir } from "./support/temp.ts";

const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });

Deno.test("symlink loops are archived as links, never followed; a looping source is a warning", async () => {
  await withTempDir("src", async (work) => {
    const source = path.join(work, "src");
    await Deno.mkdir(path.join(source, "d"), { recursive: true });
    await Deno.symlink("..", path.join(source, "d", "up")); // a loop if followed
    await Deno.symlink("self", path.join(source, "self")); // points at itself
    await Deno.symlink(path.join(work, "loop-b"), path.join(work, "loop-a"));
    await Deno.symlink(path.join(work, "loop-a"), path.join(work, "loop-b"));
    const storage = new LocalStorage(path.join(work, "store"));
    const policy = validatePolicy({ id: "loops", paths: [source, path.join(work, "loop-a")] }, "t");
    const backup = await runBackup({ policy, storage, keyring });
    assert.equal(backup.symlinks, 2);
    assert.deepEqual(backup.warnings.map((w) => w.path), [path.join(work, "loop-a")]);
    const out = path.join(work, "out");
    const restored = await runRestore({ storage, keyring, key: backup.key_backup, outDir: out });
    assert.equal(restored.integrity, "ok");
    assert.equal(await Deno.readLink(path.join(out, "src", "d", "up")), "..");
    assert.equal(await Deno.readLink(path.join(out, "src", "self")), "self");
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

Deno.test("a restore into a nearly full disk fails clearly and leaves no file with wrong content", async () => {
  await withTempDir("src", async (work) => {
    const source = path.join(work, "src");
    await Deno.mkdir(source);
    await Deno.writeFile(path.join(source, "small.bin"), pseudoRandomBytes(200_000, 1));
    await Deno.writeFile(path.join(source, "zbig.bin"), pseudoRandomBytes(3_000_000, 2));
    const storage = new LocalStorage(path.join(work, "store"));
    const policy = validatePolicy({ id: "disk", paths: [source] }, "t");
    const backup = await runBackup({ policy, storage, keyring });
    const out = path.join(work, "small-disk");
    const unmount = await smallDisk(out, "1m");
    if (unmount === undefined) {
      console.log("skipped: mounting a tmpfs needs root on Linux");
      return;
    }
    try {
      await assert.rejects(
        runRestore({ storage, keyring, key: backup.key_backup, outDir: out }),
        (e) => e instanceof IntellistorError && e.code === "IO_ERROR",
      );
      const left = (await Array.fromAsync(Deno.readDir(out))).map((e) => e.name);
      assert.deepEqual(left, ["small.bin"], "only the file that fitted, verified");
      assert.deepEqual(
        await Deno.readFile(path.join(out, "small.bin")),
        pseudoRandomBytes(200_000, 1),
      );
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
