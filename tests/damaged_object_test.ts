/**
 * A backup object damaged after it was written (bit rot on a disk, a copy cut
 * short): the restore goes on past the damage with ranged reads of the later
 * segments, keeps every entry it can verify, and lists the ones it lost —
 * only those of the damaged segments.
 */
import assert from "node:assert/strict";
import path from "node:path";
import {
  generateRootKey,
  keyringFromEnv,
  LocalStorage,
  runBackup,
  runRestore,
  type Storage,
  validatePolicy,
} from "../mod.ts";
import { runCli } from "./support/cli.ts";
import { withCalls } from "./support/faulty_storage.ts";
import { pseudoRandomBytes } from "./support/tree.ts";
import { withTempDir } from "./support/temp.ts";

const FILES = 40;
const FILE_SIZE = 40_000;
/** Small segments, so that a damaged 64 KiB chunk costs a few files out of many. */
const SEGMENT_TARGET = 128 << 10;

async function setUp(work: string, segmentTarget = SEGMENT_TARGET) {
  const source = path.join(work, "src");
  await Deno.mkdir(path.join(source, "sub"), { recursive: true });
  const contents = new Map<string, Uint8Array>();
  for (let i = 0; i < FILES; i++) {
    const name = `sub/f${String(i).padStart(2, "0")}.bin`;
    const data = pseudoRandomBytes(FILE_SIZE, i + 1);
    contents.set(name, data);
    await Deno.writeFile(path.join(source, name), data);
  }
  const key = generateRootKey();
  const keyring = keyringFromEnv({ INTELLISTOR_KEY: key });
  const store = path.join(work, "store");
  const storage = new LocalStorage(store);
  const policy = validatePolicy({ id: "rot", paths: [source] }, "test");
  const backup = await runBackup({ policy, storage, keyring, segmentTarget });
  const objectFile = path.join(store, ...backup.key_backup.split("/"));
  return { key, keyring, storage, backup, objectFile, contents, source };
}

/** The store, with every `get` recorded (its range, or "whole"). */
function countingReads(storage: Storage) {
  const reads: Array<{ start: number; end: number } | "whole"> = [];
  const counting = withCalls(storage, {
    get: (key, range) => {
      reads.push(range ?? "whole");
      return storage.get(key, range);
    },
  });
  return { counting, reads };
}

/** Every file restored is whole and right; returns the names restored. */
async function checkRestored(out: string, contents: Map<string, Uint8Array>): Promise<string[]> {
  const restored: string[] = [];
  for (const entry of Deno.readDirSync(path.join(out, "sub"))) {
    assert.ok(!entry.name.includes(".partial"), `temporary file left: ${entry.name}`);
    const name = `sub/${entry.name}`;
    assert.deepEqual(await Deno.readFile(path.join(out, name)), contents.get(name), name);
    restored.push(name);
  }
  return restored.sort();
}

Deno.test("a flipped byte in the middle of the object costs only the files of its segment", async () => {
  await withTempDir("rot", async (work) => {
    const { keyring, storage, backup, objectFile, contents } = await setUp(work);
    const object = await Deno.readFile(objectFile);
    object[Math.floor(object.length / 2)] ^= 0x40;
    await Deno.writeFile(objectFile, object);

    const out = path.join(work, "out");
    const result = await runRestore({ storage, keyring, key: backup.key_backup, outDir: out });
    assert.equal(result.integrity, "failed");
    const lost = result.failures.map((f) => f.path).sort();
    for (const failure of result.failures) {
      assert.match(failure.message, /lies in a damaged part of the backup object/);
      assert.match(failure.message, /failed authentication at chunk \d+/);
    }
    // 64 KiB of damage touches at most two segments of ~128 KiB: a handful of files.
    assert.ok(lost.length > 0 && lost.length <= 8, `lost ${lost.join(", ")}`);
    const restored = await checkRestored(out, contents);
    assert.deepEqual([...restored, ...lost].sort(), [...contents.keys()].sort());
    assert.equal(result.restored, restored.length + 1); // and the directory "sub"
    // Files after the damage came from ranged reads.
    assert.ok(restored.includes(`sub/f${FILES - 1}.bin`));
  });
});

Deno.test("past the damage the restore reads the rest in one go, not a read per segment", async () => {
  await withTempDir("rot", async (work) => {
    // A segment per file: 40 segments, most of them after the damage.
    const { keyring, storage, backup, objectFile } = await setUp(work, 1);
    const object = await Deno.readFile(objectFile);
    object[Math.floor(object.length / 4)] ^= 0x40;
    await Deno.writeFile(objectFile, object);
    const { counting, reads } = countingReads(storage);
    const result = await runRestore({
      storage: counting,
      keyring,
      key: backup.key_backup,
      outDir: path.join(work, "out"),
    });
    assert.equal(result.integrity, "failed");
    // The manifest, the header, the whole object up to the damage; then, since
    // the stages before the parser run ahead of it, the first segment still
    // waiting on its own and the rest in one read, which stops at the damage;
    // then each damaged segment on its own (a 64 KiB chunk spans two or three
    // of these 40 KB segments), and the rest again. One read per segment would
    // make over 40.
    assert.ok(reads.length <= 12, `reads: ${reads.map(String).join(", ")}`);
    assert.ok(result.failures.length <= 3, JSON.stringify(result.failures));
  });
});

Deno.test("an object cut short restores everything before the cut and lists the rest", async () => {
  await withTempDir("rot", async (work) => {
    const { keyring, storage, backup, objectFile, contents } = await setUp(work);
    const object = await Deno.readFile(objectFile);
    const cut = Math.floor(object.length * 0.6);
    await Deno.writeFile(objectFile, object.subarray(0, cut));

    const out = path.join(work, "out");
    const { counting, reads } = countingReads(storage);
    const result = await runRestore({
      storage: counting,
      keyring,
      key: backup.key_backup,
      outDir: out,
    });
    // Nothing is asked for beyond the end of what is stored.
    for (const read of reads) assert.ok(read === "whole" || read.start < cut, `read ${read}`);
    assert.equal(result.integrity, "failed");
    const restored = await checkRestored(out, contents);
    const lost = result.failures.map((f) => f.path).sort();
    assert.deepEqual([...restored, ...lost].sort(), [...contents.keys()].sort());
    // Archive order is name order here: what survived is a prefix.
    const names = [...contents.keys()].sort();
    assert.deepEqual(restored, names.slice(0, restored.length));
    assert.ok(restored.length >= FILES / 2, `only ${restored.length} restored`);
    assert.ok(lost.length >= FILES / 4, `only ${lost.length} lost`);
  });
});

Deno.test("a selective restore past damaged segments keeps the selected files it can verify", async () => {
  await withTempDir("rot", async (work) => {
    const { keyring, storage, backup, objectFile, contents } = await setUp(work);
    const object = await Deno.readFile(objectFile);
    object[Math.floor(object.length / 2)] ^= 0x01;
    await Deno.writeFile(objectFile, object);
    const out = path.join(work, "out");
    const result = await runRestore({
      storage,
      keyring,
      key: backup.key_backup,
      outDir: out,
      only: ["sub/f[0-9][02468].bin"],
    });
    assert.equal(result.integrity, "failed");
    const restored = await checkRestored(out, contents);
    const lost = result.failures.map((f) => f.path);
    const selected = [...contents.keys()].filter((n) => /f\d[02468]\.bin$/.test(n)).sort();
    assert.deepEqual([...restored, ...lost].sort(), selected);
    assert.ok(lost.length > 0 && lost.length <= 4, `lost ${lost.join(", ")}`);
  });
});

Deno.test("through the CLI a damaged object exits 13 with the restore's JSON and the lost files", async () => {
  await withTempDir("rot", async (work) => {
    const { key, backup, objectFile, source } = await setUp(work);
    const object = await Deno.readFile(objectFile);
    object[Math.floor(object.length / 3)] ^= 0x10;
    await Deno.writeFile(objectFile, object);
    await Deno.writeTextFile(path.join(work, ".env"), `INTELLISTOR_KEY=${key}\n`);
    await Deno.writeTextFile(
      path.join(work, "p.yaml"),
      `id: rot\npaths: [${JSON.stringify(source)}]\ndestination: {type: local, path: ${
        JSON.stringify(path.join(work, "store"))
      }}\n`,
    );
    const cli = await runCli(
      ["restore", "--policy", "p.yaml", "--key", backup.key_backup, "--out", "out"],
      { cwd: work },
    );
    assert.equal(cli.code, 13, cli.stderr);
    const json = cli.json() as { integrity: string; failures: { path: string }[] };
    assert.equal(json.integrity, "failed");
    assert.ok(json.failures.length > 0);
    assert.equal(cli.stderr, "");
  });
});
