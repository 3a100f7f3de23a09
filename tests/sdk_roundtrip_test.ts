/**
 * The SDK round trip (mod.ts): a tree with Unicode names, an empty file, an
 * empty directory, a symlink, a 300+ character path and a file larger than
 * the multipart threshold → local store and S3 store → restored identical.
 */
import assert from "node:assert/strict";
import path from "node:path";
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
