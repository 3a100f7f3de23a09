/** What a backup archives and how it names it (relative_path rules, exclude, warnings). */
import assert from "node:assert/strict";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { parseTar } from "../lib/archive/tar.ts";
import { createArchiveStream } from "../lib/archive/archive_writer.ts";
import type { BackupWarning, CatalogEntry } from "../lib/archive/catalog.ts";
import { listBackups } from "../lib/list.ts";
import { openHeader } from "../lib/crypto/stream.ts";
import {
  generateRootKey,
  keyringFromEnv,
  listEntries,
  LocalStorage,
  openManifest,
  parseManifest,
  pruneBackups,
  runBackup,
  runRestore,
  validatePolicy,
} from "../mod.ts";
import { readAll } from "../lib/streams.ts";
import { IntellistorError } from "../lib/errors.ts";
import { runCli } from "./support/cli.ts";
import { withCalls } from "./support/faulty_storage.ts";
import { withTempDir } from "./support/temp.ts";

async function write(file: string, text = "x"): Promise<void> {
  await Deno.mkdir(path.dirname(file), { recursive: true });
  await Deno.writeTextFile(file, text);
}

/** Backs up `paths` and returns the relative paths recorded in the sealed manifest. */
async function backedUpNames(
  dir: string,
  paths: string[],
  exclude: string[] = [],
  backupOptions: Partial<Parameters<typeof runBackup>[0]> = {},
) {
  const storage = new LocalStorage(path.join(dir, "store"));
  const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
  const policy = validatePolicy({ id: "t", paths, exclude }, "test");
  const result = await runBackup({ policy, storage, keyring, ...backupOptions });
  const manifest = parseManifest(
    new TextDecoder().decode(await readAll(await storage.get(result.key_manifest))),
    result.key_manifest,
  );
  const header = await readAll(await storage.get(result.key_backup, { start: 0, end: 172 }));
  const content = await openManifest(manifest, await openHeader(header, keyring));
  return { names: content.entries.map((e) => e.relative_path), result, storage, keyring };
}

Deno.test("one source directory: names are relative to it", async () => {
  await withTempDir("backup", async (dir) => {
    await write(path.join(dir, "src", "a.txt"));
    await write(path.join(dir, "src", "docs", "b.txt"));
    const { names } = await backedUpNames(dir, [path.join(dir, "src")]);
    assert.deepEqual(names, ["a.txt", "docs", "docs/b.txt"]);
  });
});

Deno.test("several sources: each source's name comes first, so names never collide", async () => {
  await withTempDir("backup", async (dir) => {
    await write(path.join(dir, "data", "same.txt"), "data");
    await write(path.join(dir, "etc", "app", "same.txt"), "app");
    await write(path.join(dir, "single.conf"));
    const { names } = await backedUpNames(dir, [
      path.join(dir, "data"),
      path.join(dir, "etc", "app"),
      path.join(dir, "single.conf"),
    ]);
    assert.deepEqual(names, ["data", "data/same.txt", "app", "app/same.txt", "single.conf"]);
  });
});

Deno.test("excluded entries (and what is under an excluded directory) are not archived", async () => {
  await withTempDir("backup", async (dir) => {
    const src = path.join(dir, "src");
    await write(path.join(src, "keep.txt"));
    await write(path.join(src, "skip.tmp"));
    await write(path.join(src, "deep", "also.tmp"));
    await write(path.join(src, "cache", "big.bin"));
    await write(path.join(src, "docs", "cache", "kept.txt"));
    const { names } = await backedUpNames(dir, [src], ["*.tmp", "cache/*"]);
    assert.deepEqual(names, [
      "cache",
      "deep",
      "docs",
      "docs/cache",
      "docs/cache/kept.txt",
      "keep.txt",
    ]);
  });
});

Deno.test("a file that vanished before it was read is a warning, and is not archived", async () => {
  await withTempDir("backup", async (dir) => {
    const warnings: BackupWarning[] = [];
    const present = path.join(dir, "present.txt");
    await write(present, "here");
    async function* sources() {
      yield {
        relativePath: "gone.txt",
        absolutePath: path.join(dir, "gone.txt"),
        type: "file" as const,
        size: 10,
        mode: 0o644,
        mtimeMs: 0,
      };
      yield {
        relativePath: "present.txt",
        absolutePath: present,
        type: "file" as const,
        size: 4,
        mode: 0o644,
        mtimeMs: 0,
      };
    }
    const entries: CatalogEntry[] = [];
    const { stream } = createArchiveStream(sources(), {
      compressionLevel: 6,
      warn: (w) => warnings.push(w),
      onEntry: (entry) => entries.push(entry),
    });
    await readAll(stream);
    assert.deepEqual(entries.map((e) => e.relative_path), ["present.txt"]);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].path, path.join(dir, "gone.txt"));
    assert.equal(warnings[0].skipped, true);
    assert.match(warnings[0].message, /vanished/);
  });
});

Deno.test("small files that vanish before their piece is read leave no trace, even whole segments of them", async () => {
  await withTempDir("backup", async (dir) => {
    const file = (name: string, size: number) => ({
      relativePath: name,
      absolutePath: path.join(dir, name),
      type: "file" as const,
      size,
      mode: 0o644,
      mtimeMs: 0,
    });
    await write(path.join(dir, "a.txt"), "a".repeat(1000));
    await write(path.join(dir, "b.txt"), "b".repeat(1000));
    const gone = Array.from({ length: 10 }, (_, i) => file(`gone-${i}.txt`, 1000));
    const warnings: BackupWarning[] = [];
    const entries: CatalogEntry[] = [];
    const { stream, catalog } = createArchiveStream(
      ReadableStream.from([file("a.txt", 1000), ...gone, file("b.txt", 1000)]),
      {
        compressionLevel: 6,
        // Two 1,536-byte entries per segment: five segments hold only vanished files.
        segmentTarget: 3072,
        warn: (w) => warnings.push(w),
        onEntry: (entry) => entries.push(entry),
      },
    );
    const gz = await readAll(stream);
    assert.deepEqual(
      warnings.map((w) => [path.basename(w.path), w.skipped]),
      gone.map((g) => [g.relativePath, true]),
    );
    const tar = new Uint8Array(gunzipSync(gz));
    assert.equal(catalog.tarBytes, tar.length);
    const parsed = [];
    for await (const entry of parseTar(ReadableStream.from([tar]))) {
      parsed.push([entry.path, entry.offset]);
    }
    assert.deepEqual(entries.map((e) => [e.relative_path, e.tar_offset]), parsed);
    // Segments follow each other; each decodes on its own to its tar bytes, empty ones too.
    let tarOffset = 0;
    for (const segment of catalog.segments) {
      assert.equal(segment.tar_offset, tarOffset);
      const member = gz.subarray(segment.gz_offset, segment.gz_offset + segment.gz_length);
      assert.deepEqual(
        new Uint8Array(gunzipSync(member)),
        tar.subarray(tarOffset, tarOffset + segment.tar_length),
      );
      tarOffset += segment.tar_length;
    }
    assert.equal(tarOffset, tar.length);
    assert.ok(catalog.segments.filter((s) => s.tar_length === 0).length >= 4);
    for (const entry of entries) {
      const segment = catalog.segments[entry.segment];
      assert.ok(
        entry.tar_offset >= segment.tar_offset &&
          entry.tar_offset < segment.tar_offset + segment.tar_length,
      );
    }
  });
});

Deno.test("a file under the small-file limit but larger than a piece is streamed, and restores", async () => {
  await withTempDir("backup", async (dir) => {
    const src = path.join(dir, "src");
    const big = new Uint8Array(3 << 20).map((_, i) => (i * 7919) % 251);
    await Deno.mkdir(src);
    await Deno.writeFile(path.join(src, "big.bin"), big);
    await write(path.join(src, "small.txt"), "small");
    const { names, result, storage, keyring } = await backedUpNames(dir, [src], [], {
      smallFileLimit: 8 << 20,
    });
    assert.deepEqual(names, ["big.bin", "small.txt"]);
    const out = path.join(dir, "out");
    const restored = await runRestore({ storage, keyring, key: result.key_backup, outDir: out });
    assert.equal(restored.integrity, "ok");
    assert.deepEqual(await Deno.readFile(path.join(out, "big.bin")), big);
  });
});

Deno.test("listBackups() lists complete backups and reports objects without a manifest and leftovers", async () => {
  await withTempDir("backup", async (dir) => {
    await write(path.join(dir, "src", "a.txt"));
    const { result, storage } = await backedUpNames(dir, [path.join(dir, "src")]);
    // An interrupted backup: the object exists, its manifest never came.
    const orphan =
      "backups/t/20200101T000000Z/00000000-0000-0000-0000-000000000000/backup.tar.gz.enc";
    await storage.put(orphan, ReadableStream.from([new Uint8Array([1, 2, 3])]));
    // A backup killed mid-write: only the local store's temporary file is left.
    const killed = "backups/t/20200102T000000Z/11111111-1111-1111-1111-111111111111/.tmp-" +
      crypto.randomUUID();
    await write(path.join(dir, "store", ...killed.split("/")), "half an object");
    const listing = await listBackups(storage, "t");
    assert.deepEqual(listing.backups.map((b) => b.key_backup), [result.key_backup]);
    assert.equal(listing.backups[0].files, 1);
    assert.deepEqual(listing.incomplete, [orphan, killed]);
    // Deleting what list reports reclaims the space.
    for (const key of listing.incomplete) await storage.delete(key);
    assert.deepEqual((await listBackups(storage, "t")).incomplete, []);
    const left = await Array.fromAsync(Deno.readDir(path.join(dir, "store", "backups", "t")));
    assert.deepEqual(left.map((e) => e.name), [result.timestamp]);
  });
});

for (const given of ["", " given through a symlink", " given with a trailing slash"]) {
  Deno.test(`the store, the --out copy and the .env inside a source${given} are never archived`, async () => {
    await withTempDir("backup", async (top) => {
      // The seed's defaults: --paths is the current directory, and --out ./out is beside it.
      const dir = path.join(top, "home");
      await write(path.join(dir, "docs", "a.txt"), "data");
      const key = generateRootKey();
      await Deno.writeTextFile(path.join(dir, ".env"), `INTELLISTOR_KEY=${key}\n`);
      const cwd = { cwd: dir };
      const link = path.join(top, "link");
      await Deno.symlink(dir, link);
      const created = await runCli([
        "policy-create",
        "--out",
        "p.yaml",
        "--local-dir",
        "store",
        ...(given.includes("symlink") ? ["--paths", link] : []),
      ], cwd);
      assert.equal(created.code, 0, created.stderr);
      if (given.includes("slash")) {
        // As an operator may write it by hand.
        const file = path.join(dir, "p.yaml");
        const text = await Deno.readTextFile(file);
        assert.ok(text.includes(`  - ${dir}\n`), text);
        await Deno.writeTextFile(file, text.replace(`  - ${dir}\n`, `  - ${dir}/\n`));
      }
      const results = [];
      for (let i = 0; i < 2; i++) {
        const backup = await runCli(["backup", "--policy", "p.yaml", "--out", "out"], cwd);
        assert.equal(backup.code, 0, backup.stderr);
        results.push(backup.json() as { files: number; bytes: number });
      }
      // The second backup holds the same files as the first: no earlier backup, no secrets.
      assert.deepEqual(results[1].files, results[0].files);
      assert.equal(results[1].bytes, results[0].bytes);
      const storage = new LocalStorage(path.join(dir, "store"));
      const keys: string[] = [];
      for await (const info of storage.list("backups/")) keys.push(info.key);
      const keyring = keyringFromEnv({ INTELLISTOR_KEY: key });
      const manifestKey = keys.filter((k) => k.endsWith("manifest.json")).sort().at(-1)!;
      const manifest = parseManifest(
        new TextDecoder().decode(await readAll(await storage.get(manifestKey))),
        manifestKey,
      );
      const objectKey = manifest.object.key;
      const header = await readAll(await storage.get(objectKey, { start: 0, end: 172 }));
      const names = (await openManifest(manifest, await openHeader(header, keyring))).entries.map((
        e,
      ) => e.relative_path);
      assert.deepEqual(names.sort(), ["docs", "docs/a.txt", "p.yaml"]);
    });
  });
}

Deno.test("the SDK leaves out a local store and local copy inside a source, without being told", async () => {
  await withTempDir("backup", async (dir) => {
    await write(path.join(dir, "docs", "a.txt"), "data");
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
    const policy = validatePolicy({ id: "t", paths: [dir] }, "t");
    const storage = new LocalStorage(path.join(dir, "store"));
    const localCopy = new LocalStorage(path.join(dir, "copy"));
    for (let i = 0; i < 2; i++) {
      const backup = await runBackup({ policy, storage, keyring, localCopy });
      const names: string[] = [];
      await listEntries({
        storage,
        keyring,
        key: backup.key_backup,
        onEntry: (entry) => void names.push(entry.relative_path),
      });
      // Never an earlier backup, nor this one's own half-written object.
      assert.deepEqual(names.sort(), ["docs", "docs/a.txt"]);
      // onEntry is synchronous: an async one is refused, not left unawaited.
      await assert.rejects(
        listEntries({ storage, keyring, key: backup.key_backup, onEntry: async () => {} }),
        /onEntry must be synchronous/,
      );
    }
  });
});

Deno.test("listBackups and pruneBackups on a local store that does not exist: BUCKET_NOT_FOUND", async () => {
  await withTempDir("missing", async (dir) => {
    const storage = new LocalStorage(path.join(dir, "not-mounted"));
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
    const policy = validatePolicy({ id: "t", paths: [dir], retention: { keep_last: 1 } }, "t");
    const notFound = (error: Error) =>
      error instanceof IntellistorError && error.code === "BUCKET_NOT_FOUND" &&
      error.message.includes("does not exist");
    // A typo or a disk not mounted must not read as "no backups".
    await assert.rejects(listBackups(storage, "t"), notFound);
    await assert.rejects(pruneBackups({ storage, policy, keyring }), notFound);
  });
});

Deno.test("list of a policy with nothing in the store names the policies that have backups there", async () => {
  await withTempDir("other-ids", async (dir) => {
    const storage = new LocalStorage(path.join(dir, "store"));
    await Deno.mkdir(path.join(dir, "store"));
    const empty = await listBackups(storage, "srv");
    assert.match(
      empty.note ?? "",
      /No backups of policy "srv" in .*store, nor of any other policy/,
    );
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
    await Deno.writeTextFile(path.join(dir, "a.txt"), "dados\n");
    for (const id of ["fileserver", "web-01"]) {
      const policy = validatePolicy({ id, paths: [path.join(dir, "a.txt")] }, "t");
      await runBackup({ policy, storage, keyring });
    }
    // Stray files are no policy's backups, and the policy asked for is not among "the others".
    await Deno.writeTextFile(path.join(dir, "store", "backups", "Thumbs.db"), "");
    await Deno.mkdir(path.join(dir, "store", "backups", "srv"));
    await Deno.writeTextFile(path.join(dir, "store", "backups", "srv", ".DS_Store"), "");
    // A mistyped id must not read as "no backups" without a word.
    const mistyped = await listBackups(storage, "srv");
    assert.deepEqual(mistyped.backups, []);
    assert.match(
      mistyped.note ?? "",
      /; it holds backups of policy "fileserver", "web-01"\. Check the policy's id\.$/,
    );
    const found = await listBackups(storage, "fileserver");
    assert.equal(found.backups.length, 1);
    assert.equal(found.note, undefined);
    // A user allowed to list only this policy's folder gets the empty list, without the note.
    const narrow = withCalls(storage, {
      list: (prefix) => {
        if (prefix === "backups/") {
          throw new IntellistorError("ACCESS_DENIED", `cannot list "${prefix}"`, "-");
        }
        return storage.list(prefix);
      },
    });
    const allowed = await listBackups(narrow, "srv");
    assert.deepEqual([allowed.backups, allowed.note], [[], undefined]);
  });
});

Deno.test("list: a local store that goes away while it is read is BUCKET_NOT_FOUND, not empty", async () => {
  await withTempDir("unmounted", async (dir) => {
    const store = path.join(dir, "store");
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
    await Deno.writeTextFile(path.join(dir, "a.txt"), "dados\n");
    const policy = validatePolicy({ id: "t", paths: [path.join(dir, "a.txt")] }, "t");
    await runBackup({ policy, storage: new LocalStorage(store), keyring });
    // The disk is unmounted between the listing and the first read.
    class Unmounting extends LocalStorage {
      override async get(key: string, range?: { start: number; end: number }) {
        await Deno.rename(store, path.join(dir, "elsewhere")).catch(() => {});
        return await super.get(key, range);
      }
    }
    const unmounting = new Unmounting(store);
    await assert.rejects(
      listBackups(unmounting, "t"),
      (error: Error) => error instanceof IntellistorError && error.code === "BUCKET_NOT_FOUND",
    );
  });
});

Deno.test("one backup's files copied over another's: restore and decrypt refuse, list reports it", async () => {
  await withTempDir("backup", async (dir) => {
    const src = path.join(dir, "src");
    await write(path.join(src, "a.txt"), "first");
    const storage = new LocalStorage(path.join(dir, "store"));
    const key = generateRootKey();
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: key });
    const policy = validatePolicy({ id: "t", paths: [src] }, "test");
    const first = await runBackup({ policy, storage, keyring });
    await write(path.join(src, "a.txt"), "second");
    const second = await runBackup({ policy, storage, keyring });
    // The second backup's object and manifest put in the first one's place.
    const file = (k: string) => path.join(dir, "store", ...k.split("/"));
    await Deno.copyFile(file(second.key_backup), file(first.key_backup));
    await Deno.copyFile(file(second.key_manifest), file(first.key_manifest));

    await assert.rejects(
      runRestore({ storage, keyring, key: first.key_backup, outDir: path.join(dir, "out") }),
      (error: IntellistorError) =>
        error.code === "INTEGRITY" && error.message.includes(second.backup_id) &&
        error.message.includes("not the backup their key names"),
    );
    await assert.rejects(Deno.stat(path.join(dir, "out", "a.txt")), Deno.errors.NotFound);
    await Deno.writeTextFile(path.join(dir, ".env"), `INTELLISTOR_KEY=${key}\n`);
    const policyFile = path.join(dir, "p.yaml");
    await Deno.writeTextFile(
      policyFile,
      `id: t\npaths: [${JSON.stringify(src)}]\ndestination: {type: local, path: ${
        JSON.stringify(path.join(dir, "store"))
      }}\n`,
    );
    const decrypted = await runCli(
      ["decrypt", "--policy", policyFile, "--key", first.key_backup, "--out", "plain.tar.gz"],
      { cwd: dir },
    );
    assert.equal(decrypted.code, 13, decrypted.stderr);
    assert.equal(JSON.parse(decrypted.stderr).error.code, "INTEGRITY");

    const listing = await listBackups(storage, "t");
    assert.deepEqual(listing.backups.map((b) => b.key_backup), [second.key_backup]);
    assert.deepEqual(listing.damaged.map((d) => d.key_backup), [first.key_backup]);
    assert.match(listing.damaged[0].message, /not the backup their key names/);
    assert.deepEqual(listing.incomplete, []);
    // The untouched backup still restores, also once its policy was renamed
    // (its folder moved to the new id): the policy folder is not compared.
    await Deno.rename(
      path.join(dir, "store", "backups", "t"),
      path.join(dir, "store", "backups", "q"),
    );
    const restored = await runRestore({
      storage,
      keyring,
      key: second.key_backup.replace("backups/t/", "backups/q/"),
      outDir: path.join(dir, "out2"),
    });
    assert.equal(restored.integrity, "ok");
  });
});

Deno.test("a manifest that is not JSON or lacks a field is listed as damaged; the others are listed", async () => {
  await withTempDir("backup", async (dir) => {
    await write(path.join(dir, "src", "a.txt"));
    const { result, storage, keyring } = await backedUpNames(dir, [path.join(dir, "src")]);
    const policy = validatePolicy({ id: "t", paths: [path.join(dir, "src")] }, "test");
    const good = await runBackup({ policy, storage, keyring });
    const manifestFile = path.join(dir, "store", ...result.key_manifest.split("/"));
    const text = await Deno.readTextFile(manifestFile);
    const { summary: _, ...withoutSummary } = JSON.parse(text);
    for (
      const [broken, message] of [
        ["{", "is not valid JSON"],
        [JSON.stringify(withoutSummary), "is missing required fields"],
        [JSON.stringify({ ...JSON.parse(text), timestamp: 5 }), "is missing required fields"],
      ]
    ) {
      await Deno.writeTextFile(manifestFile, broken);
      const listing = await listBackups(storage, "t");
      assert.deepEqual(listing.backups.map((b) => b.key_backup), [good.key_backup]);
      assert.deepEqual(listing.damaged, [{
        key_backup: result.key_backup,
        key_manifest: result.key_manifest,
        message: `Manifest "${result.key_manifest}" ${message}`,
      }]);
    }
  });
});

Deno.test({
  name: "a hard link to the .env inside a source is not archived under its other name",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir("backup", async (dir) => {
      const home = path.join(dir, "home");
      await write(path.join(home, "docs", "a.txt"), "data");
      const key = generateRootKey();
      await Deno.writeTextFile(path.join(dir, ".env"), `INTELLISTOR_KEY=${key}\n`);
      await Deno.link(path.join(dir, ".env"), path.join(home, "docs", "settings.txt"));
      const created = await runCli(
        ["policy-create", "--out", "p.yaml", "--paths", home, "--local-dir", "store"],
        { cwd: dir },
      );
      assert.equal(created.code, 0, created.stderr);
      const backup = await runCli(["backup", "--policy", "p.yaml"], { cwd: dir });
      assert.equal(backup.code, 0, backup.stderr);
      assert.equal((backup.json() as { files: number }).files, 1);
    });
  },
});

// A /sys file claims 4096 bytes and holds fewer: a file that "shrank while read".
const SHRINKING_FILE = "/sys/kernel/mm/transparent_hugepage/enabled";
const hasShrinkingFile = await Deno.stat(SHRINKING_FILE).then((i) => i.size > 0, () => false);

Deno.test({
  name: "a file that could not be read to its end is flagged, and its restore warns",
  ignore: !hasShrinkingFile,
  fn: async () => {
    await withTempDir("backup", async (dir) => {
      // Streamed (as every file of 64 KiB or more is): the header already
      // promised the size, so the missing bytes become zeros and a warning.
      const { result, storage, keyring } = await backedUpNames(dir, [SHRINKING_FILE], [], {
        smallFileLimit: 0,
      });
      assert.equal(result.partial, true);
      assert.match(result.warnings[0].message, /zeros/);
      const restored = await runRestore({
        storage,
        keyring,
        key: result.key_backup,
        outDir: path.join(dir, "out"),
      });
      assert.equal(restored.integrity, "ok");
      assert.deepEqual(restored.warnings.map((w) => w.path), ["enabled"]);
    });
  },
});

Deno.test({
  name: "a small file is read whole: archived as read, whatever size it claimed",
  ignore: !hasShrinkingFile,
  fn: async () => {
    await withTempDir("backup", async (dir) => {
      const { result, storage, keyring } = await backedUpNames(dir, [SHRINKING_FILE]);
      assert.equal(result.partial, false);
      assert.deepEqual(result.warnings, []);
      const out = path.join(dir, "out");
      const restored = await runRestore({ storage, keyring, key: result.key_backup, outDir: out });
      assert.equal(restored.integrity, "ok");
      const content = await Deno.readFile(path.join(out, "enabled"));
      assert.ok(content.length > 0 && content.length < 4096, `${content.length} bytes`);
      assert.deepEqual(content, await Deno.readFile(SHRINKING_FILE));
    });
  },
});

Deno.test("a manifest whose object is missing or cut short is listed as damaged, not as a backup", async () => {
  await withTempDir("backup", async (dir) => {
    await write(path.join(dir, "src", "a.txt"));
    const { result: gone, storage, keyring } = await backedUpNames(dir, [path.join(dir, "src")]);
    const policy = validatePolicy({ id: "t", paths: [path.join(dir, "src")] }, "test");
    const cut = await runBackup({ policy, storage, keyring });
    const good = await runBackup({ policy, storage, keyring });
    const file = (key: string) => path.join(dir, "store", ...key.split("/"));
    await Deno.remove(file(gone.key_backup));
    await Deno.truncate(file(cut.key_backup), 100);
    const listing = await listBackups(storage, "t");
    assert.deepEqual(listing.backups.map((b) => b.key_backup), [good.key_backup]);
    assert.deepEqual(listing.incomplete, []);
    const reasons = new Map(listing.damaged.map((d) => [d.key_backup, d.message]));
    assert.match(reasons.get(gone.key_backup) ?? "", /is missing; only its manifest/);
    assert.match(reasons.get(cut.key_backup) ?? "", /is 100 bytes; its manifest says \d+/);
  });
});

Deno.test("a file where the backup has a directory is named before anything is restored", async () => {
  await withTempDir("backup", async (dir) => {
    await write(path.join(dir, "src", "docs", "a.txt"));
    const { result, storage, keyring } = await backedUpNames(dir, [path.join(dir, "src")]);
    const out = path.join(dir, "out");
    await Deno.mkdir(out);
    await Deno.writeTextFile(path.join(out, "docs"), "a file, not a folder");
    await assert.rejects(
      runRestore({ storage, keyring, key: result.key_backup, outDir: out }),
      (error: IntellistorError) =>
        error.code === "OUTPUT_EXISTS" && error.message.endsWith(": docs") &&
        /move away docs/.test(error.hint),
    );
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name), ["docs"]);
  });
});

Deno.test("NO_MATCH in a backup of several paths suggests the pattern under the path's folder", async () => {
  await withTempDir("no-match", async (dir) => {
    const share = path.join(dir, "share");
    const etc = path.join(dir, "etc");
    await Deno.mkdir(path.join(share, "zoneinfo", "Europe"), { recursive: true });
    await Deno.mkdir(etc);
    await Deno.writeTextFile(path.join(share, "zoneinfo", "Europe", "Lisbon"), "TZif");
    await Deno.writeTextFile(path.join(etc, "a.conf"), "x=1\n");
    const storage = new LocalStorage(path.join(dir, "store"));
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
    const policy = validatePolicy({ id: "two", paths: [share, etc] }, "t");
    const backup = await runBackup({ policy, storage, keyring });
    const restore = (only: string[]) =>
      runRestore({ storage, keyring, key: backup.key_backup, outDir: path.join(dir, "out"), only });
    await assert.rejects(
      restore(["zoneinfo/Europe/*", "*.conf"]),
      (error: Error) =>
        error instanceof IntellistorError && error.code === "NO_MATCH" &&
        error.hint.includes(`each name starts with its path's folder ("share", "etc")`) &&
        error.hint.endsWith('; try "share/zoneinfo/Europe/*".'),
    );
    // The suggestion is right: it restores the file.
    const result = await restore(["share/zoneinfo/Europe/*"]);
    assert.equal(result.restored, 1);
  });
});
