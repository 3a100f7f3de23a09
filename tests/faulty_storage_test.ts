/** Backup and restore against a store that fails on script (no network involved). */
import assert from "node:assert/strict";
import path from "node:path";
import { listBackups } from "../lib/list.ts";
import {
  generateRootKey,
  IntellistorError,
  keyringFromEnv,
  LocalStorage,
  runBackup,
  runRestore,
  validatePolicy,
} from "../mod.ts";
import { FaultyStorage } from "./support/faulty_storage.ts";
import { pseudoRandomBytes } from "./support/tree.ts";

const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });

async function withSource(fn: (work: string, source: string) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "intellistor-faulty-" });
  try {
    const source = path.join(work, "src");
    await Deno.mkdir(source);
    for (let i = 0; i < 3; i++) {
      await Deno.writeFile(path.join(source, `f${i}.bin`), pseudoRandomBytes(300_000, i + 1));
    }
    await fn(work, source);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test("a failed manifest upload removes the object: no half backup remains", async () => {
  await withSource(async (work, source) => {
    const inner = new LocalStorage(path.join(work, "store"));
    const storage = new FaultyStorage(inner, { failPut: [2] }); // 1 = object, 2 = manifest
    const policy = validatePolicy({ id: "f", paths: [source] }, "test");
    await assert.rejects(
      runBackup({ policy, storage, keyring }),
      (e) => e instanceof IntellistorError && e.message.includes("injected"),
    );
    assert.equal(storage.calls.delete.length, 1, "the orphan object was deleted");
    const listing = await listBackups(inner, "f");
    assert.deepEqual([listing.backups, listing.incomplete], [[], []]);
  });
});

Deno.test("when the clean-up itself fails, the orphan is listed as incomplete, never as a backup", async () => {
  await withSource(async (work, source) => {
    const inner = new LocalStorage(path.join(work, "store"));
    const storage = new FaultyStorage(inner, { failPut: [2], failDelete: true });
    const policy = validatePolicy({ id: "f", paths: [source] }, "test");
    await assert.rejects(runBackup({ policy, storage, keyring }));
    const listing = await listBackups(inner, "f");
    assert.equal(listing.backups.length, 0);
    assert.equal(listing.incomplete.length, 1);
  });
});

Deno.test("a manifest whose reply was lost, with the store failing after it: the object is kept", async () => {
  await withSource(async (work, source) => {
    const inner = new LocalStorage(path.join(work, "store"));
    // The manifest landed, but its reply was lost, and the store cannot say so.
    const storage = new FaultyStorage(inner, { losePutReply: [2], failHead: true });
    const policy = validatePolicy({ id: "f", paths: [source] }, "test");
    await assert.rejects(runBackup({ policy, storage, keyring }));
    assert.deepEqual(storage.calls.delete, [], "nothing is deleted without knowing");
    const listing = await listBackups(inner, "f");
    assert.equal(listing.backups.length, 1);
    const restored = await runRestore({
      storage: inner,
      keyring,
      key: listing.backups[0].key_backup,
      outDir: path.join(work, "out"),
    });
    assert.equal(restored.integrity, "ok");
  });
});

Deno.test("--out's copy of an upload that failed against an unreachable store is removed", async () => {
  await withSource(async (work, source) => {
    const inner = new LocalStorage(path.join(work, "store"));
    const storage = new FaultyStorage(inner, { losePutReply: [1], failHead: true });
    const localCopy = new LocalStorage(path.join(work, "out"));
    const policy = validatePolicy({ id: "f", paths: [source] }, "test");
    await assert.rejects(runBackup({ policy, storage, keyring, localCopy }));
    // The remote object stays (its fate is unknown); the local one has no manifest: gone.
    const local = await listBackups(localCopy, "f");
    assert.deepEqual([local.backups, local.incomplete], [[], []]);
  });
});

Deno.test("a download cut mid-way fails the restore and leaves no partial file", async () => {
  await withSource(async (work, source) => {
    const inner = new LocalStorage(path.join(work, "store"));
    const policy = validatePolicy({ id: "f", paths: [source] }, "test");
    const backup = await runBackup({ policy, storage: inner, keyring });
    // get #1 = manifest, #2 = header, #3 = the object stream: cut it after 400 kB.
    const storage = new FaultyStorage(inner, { cutGet: [3], cutGetAfter: 400_000 });
    const out = path.join(work, "out");
    await assert.rejects(
      runRestore({ storage, keyring, key: backup.key_backup, outDir: out }),
      (e) => e instanceof IntellistorError && e.message.includes("injected"),
    );
    const left = (await Array.fromAsync(Deno.readDir(out))).map((e) => e.name).sort();
    // Only files that were complete and verified before the cut.
    assert.ok(left.every((name) => /^f\d\.bin$/.test(name)), left.join(", "));
    assert.ok(left.length < 3);
  });
});
