/**
 * The SDK round trip (mod.ts): a tree with Unicode names, an empty file, an
 * empty directory, a symlink, a 300+ character path and a file larger than
 * the multipart threshold → local store and S3 store → restored identical.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  compilePatterns,
  createS3Storage,
  generateRootKey,
  keyringFromEnv,
  LocalStorage,
  runBackup,
  runRestore,
  type Storage,
  validatePolicy,
} from "../mod.ts";
import { s3rverCredentials, startS3Server } from "./support/s3_server.ts";
import { assertSameTree, LONG_PATH, makeSampleTree } from "./support/tree.ts";
import { withTempDir } from "./support/temp.ts";

const PART_SIZE = 5 * 1024 * 1024;

async function roundTrip(storage: Storage, work: string): Promise<void> {
  const source = path.join(work, "source");
  await makeSampleTree(source, { largeFileSize: PART_SIZE + 1_000_000 });
  const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
  const policy = validatePolicy({
    id: "sdk-test",
    paths: [source],
    schedule: "0 2 * * *",
    destination: { type: "local", path: path.join(work, "unused") },
  }, "sdk test policy");

  const backup = await runBackup({ policy, storage, keyring });
  assert.deepEqual(backup.warnings, []);
  assert.ok(
    backup.key_backup.startsWith(`backups/sdk-test/${backup.timestamp}/${backup.backup_id}/`),
  );
  assert.ok(backup.compressed_bytes > PART_SIZE, "the object must be larger than one part");

  const full = await runRestore({
    storage,
    keyring,
    key: backup.key_backup,
    outDir: path.join(work, "full"),
  });
  assert.deepEqual(full.integrity, "ok", JSON.stringify(full.failures));
  assert.deepEqual(full.found, full.restored);
  await assertSameTree(source, path.join(work, "full"));
  assert.ok((await Deno.lstat(path.join(work, "full", ...LONG_PATH.split("/")))).isFile);

  const only = ["*.png"];
  const partial = await runRestore({
    storage,
    keyring,
    key: backup.key_backup,
    outDir: path.join(work, "only"),
    only,
  });
  assert.deepEqual(partial.integrity, "ok", JSON.stringify(partial.failures));
  assert.deepEqual(partial.restored, 3);
  const matcher = compilePatterns(only);
  await assertSameTree(source, path.join(work, "only"), matcher);
  // Ranged restore: the large file's segment is never downloaded.
  assert.ok(
    partial.downloaded_bytes < PART_SIZE,
    `selective restore downloaded ${partial.downloaded_bytes} bytes`,
  );
}

Deno.test("SDK round trip through a local store restores the tree identically", async () => {
  const work = await Deno.makeTempDir({ prefix: "intellistor-sdk-" });
  try {
    const storage = new LocalStorage(path.join(work, "store"));
    await roundTrip(storage, work);
    await storage.close();
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("SDK round trip through S3 (multipart) restores the tree identically", async () => {
  const server = await startS3Server();
  const work = await Deno.makeTempDir({ prefix: "intellistor-sdk-s3-" });
  const storage = await createS3Storage({
    bucket: server.bucket,
    endpoint: server.endpoint,
    credentials: s3rverCredentials,
    partSize: PART_SIZE,
  });
  try {
    await roundTrip(storage, work);
  } finally {
    await storage.close();
    await server.stop();
    await Deno.remove(work, { recursive: true });
  }
});

for (const store of ["local", "s3"] as const) {
  Deno.test(`mod.ts from a script outside the project, ${store} store, with the README's permissions`, async () => {
    const server = store === "s3" ? await startS3Server() : undefined;
    try {
      await withTempDir("sdk-outside", async (work) => {
        await Deno.mkdir(path.join(work, "src"));
        await Deno.writeTextFile(path.join(work, "src", "nota.txt"), "conteúdo\n");
        const script = path.join(work, "user.ts");
        const storage = server === undefined
          ? `new LocalStorage(work + "/store")`
          : `await createS3Storage(${
            JSON.stringify({
              bucket: server.bucket,
              endpoint: server.endpoint,
              credentials: s3rverCredentials,
            })
          })`;
        await Deno.writeTextFile(
          script,
          `import { createS3Storage, listBackups, LocalStorage, policyKeyring, runBackup, runRestore, toIntellistorError, validatePolicy } from ${
            JSON.stringify(new URL("../mod.ts", import.meta.url).href)
          };
const work = ${JSON.stringify(work)};
const policy = validatePolicy({ id: "outside", paths: [work + "/src"] }, "inline");
const storage = ${storage};
const keyring = policyKeyring(policy, { INTELLISTOR_PASSPHRASE: "a passphrase of some length" });
const backup = await runBackup({ policy, storage, keyring });
const restore = await runRestore({ storage, keyring, key: backup.key_backup, outDir: work + "/out", only: ["*.txt"] });
const listing = await listBackups(storage, "outside");
// A system error (--out is a file) becomes the error the CLI would print.
const error = await runRestore({ storage, keyring, key: backup.key_backup, outDir: work + "/src/nota.txt" })
  .then(() => undefined, (e) => toIntellistorError(e).code);
await storage.close();
console.log(JSON.stringify({
  files: backup.files,
  integrity: restore.integrity,
  listed: listing.backups.map((b) => b.key_backup === backup.key_backup),
  error,
}));
`,
        );
        // The permissions the README's SDK section lists, and no more: reading
        // only the work folder and the folder holding mod.ts (the workers' modules).
        const project = path.dirname(fileURLToPath(new URL("../mod.ts", import.meta.url)));
        const s3Permissions = ["--allow-net", "--allow-env", "--allow-sys=hostname,osRelease"];
        const output = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            `--allow-read=${work},${project}`,
            `--allow-write=${work}`,
            ...(server === undefined ? ["--allow-sys=hostname"] : s3Permissions),
            "--no-lock",
            script,
          ],
          cwd: work,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(output.stderr);
        assert.equal(output.code, 0, stderr);
        assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
          files: 1,
          integrity: "ok",
          listed: [true],
          error: "IO_ERROR",
        });
        assert.equal(await Deno.readTextFile(path.join(work, "out", "nota.txt")), "conteúdo\n");
        if (server !== undefined) return;
        // Without --allow-write the store's refusal names the permission, not the disk.
        const denied = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            `--allow-read=${work},${project}`,
            "--allow-sys=hostname",
            "--no-lock",
            script,
          ],
          cwd: work,
          stdout: "null",
          stderr: "piped",
        }).output();
        assert.notEqual(denied.code, 0);
        assert.match(new TextDecoder().decode(denied.stderr), /A Deno permission is missing/);
      });
    } finally {
      await server?.stop();
    }
  });
}

Deno.test("a caller's store that fails without reading the body: runBackup rejects and the program ends", async () => {
  await withTempDir("sdk-refusing", async (work) => {
    const script = path.join(work, "refusing.ts");
    await Deno.writeTextFile(
      script,
      `import { generateRootKey, IntellistorError, keyringFromEnv, LocalStorage, runBackup, validatePolicy } from ${
        JSON.stringify(new URL("../mod.ts", import.meta.url).href)
      };
const work = ${JSON.stringify(work)};
await Deno.mkdir(work + "/src");
// Several pieces' worth, so that the archive is still running when put fails.
const data = new Uint8Array(8 << 20);
for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
await Deno.writeFile(work + "/src/random.bin", data);
const inner = new LocalStorage(work + "/store");
const refusing = {
  location: "refusing",
  head: (k) => inner.head(k),
  get: (k, r) => inner.get(k, r),
  list: (p) => inner.list(p),
  delete: (k) => inner.delete(k),
  close: () => inner.close(),
  put: () => Promise.reject(new IntellistorError("STORAGE_UNREACHABLE", "refused", "")),
};
const policy = validatePolicy({ id: "p", paths: [work + "/src"] }, "inline");
const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
await runBackup({ policy, storage: refusing, keyring }).catch((e) => console.log(e.code));
// With a local copy too, which is fed only as the store reads.
const localCopy = new LocalStorage(work + "/copy");
await runBackup({ policy, storage: refusing, keyring, localCopy }).catch((e) => console.log(e.code));
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-lock", script],
      cwd: work,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    // Before, the archive's worker threads kept the process alive for ever.
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(
      new TextDecoder().decode(output.stdout),
      "STORAGE_UNREACHABLE\nSTORAGE_UNREACHABLE\n",
    );
    // The local copy's half-written object was removed.
    const left = new Deno.Command("find", { args: [path.join(work, "copy"), "-type", "f"] });
    assert.equal(new TextDecoder().decode((await left.output()).stdout), "");
  });
});

Deno.test("mod.ts and main.ts reach the AWS SDK only by a computed import, loaded on first S3 use", async () => {
  // Deno resolves (and on a fresh machine downloads) every module a program
  // reaches by code imports, literal dynamic ones included, when it starts.
  for (const entry of ["../mod.ts", "../main.ts"]) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", new URL(entry, import.meta.url).pathname],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.ok(output.success);
    const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      roots: string[];
      modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
    };
    const modules = new Map(graph.modules.map((m) => [m.specifier, m]));
    const reached = new Set<string>();
    const visit = (specifier: string) => {
      if (reached.has(specifier)) return;
      reached.add(specifier);
      for (const dependency of modules.get(specifier)?.dependencies ?? []) {
        if (dependency.code) visit(dependency.code.specifier);
      }
    };
    graph.roots.forEach(visit);
    assert.ok(reached.size > 5, `${entry}: ${reached.size} modules`);
    const aws = [...reached].filter((s) => s.includes("aws-sdk") || s.endsWith("/storage/s3.ts"));
    assert.deepEqual(aws, [], entry);
  }
});
