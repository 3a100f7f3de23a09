/**
 * Storage faults through a fault-injecting proxy in front of the real test S3
 * server: what is retryable is retried (by the SDK's standard strategy, with
 * backoff and jitter), what is permanent is not, and a failure leaves no
 * manifest, no incomplete multipart upload and no wrong file.
 */
import assert from "node:assert/strict";
import path from "node:path";
import {
  createS3Storage,
  generateRootKey,
  IntellistorError,
  keyringFromEnv,
  runBackup,
  runRestore,
  type Storage,
  validatePolicy,
} from "../mod.ts";
import { listBackups } from "../lib/list.ts";
import { failNth, type FaultRule, randomFaults, startFaultProxy } from "./support/fault_proxy.ts";
import {
  listIncompleteMultipartUploads,
  s3rverCredentials,
  type S3TestServer,
  startS3Server,
} from "./support/s3_server.ts";
import { assertSameTree, pseudoRandomBytes } from "./support/tree.ts";

const PART = 5 * 1024 * 1024;

interface World {
  server: S3TestServer;
  work: string;
  source: string;
  direct: Storage;
}

async function setUp(largeFile: number): Promise<World> {
  const server = await startS3Server();
  const work = await Deno.makeTempDir({ prefix: "intellistor-faults-" });
  const source = path.join(work, "src");
  await Deno.mkdir(path.join(source, "docs"), { recursive: true });
  await Deno.writeTextFile(path.join(source, "docs", "leia-me.md"), "# Documentação\n".repeat(50));
  await Deno.writeFile(
    path.join(source, "Cópia de Diagrama_Solução.png"),
    pseudoRandomBytes(4000, 7),
  );
  if (largeFile > 0) {
    await Deno.writeFile(path.join(source, "grande.bin"), pseudoRandomBytes(largeFile, 9));
  }
  const direct = await s3(server.endpoint, server.bucket);
  return { server, work, source, direct };
}

function s3(endpoint: string, bucket: string, retryWindowMs?: number): Promise<Storage> {
  return createS3Storage({
    bucket,
    endpoint,
    credentials: s3rverCredentials,
    partSize: PART,
    retryWindowMs,
  });
}

async function tearDown(world: World): Promise<void> {
  await world.direct.close();
  await world.server.stop();
  await Deno.remove(world.work, { recursive: true });
}

/** Runs `fn` with a store that goes through a proxy applying `rule`. */
async function throughProxy<T>(
  world: World,
  rule: FaultRule,
  fn: (storage: Storage, proxy: ReturnType<typeof startFaultProxy>) => Promise<T>,
  retryWindowMs?: number,
): Promise<T> {
  const proxy = startFaultProxy(world.server.endpoint, rule);
  const storage = await s3(proxy.endpoint, world.server.bucket, retryWindowMs);
  try {
    return await fn(storage, proxy);
  } finally {
    await storage.close();
    await proxy.stop();
  }
}

const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });

/** Restores `backup` straight from the server into `out` and checks it is the source, byte for byte. */
async function assertRestoresIdentically(
  world: World,
  backup: { key_backup: string },
  out: string,
) {
  const restored = await runRestore({
    storage: world.direct,
    keyring,
    key: backup.key_backup,
    outDir: out,
  });
  assert.equal(restored.integrity, "ok");
  await assertSameTree(world.source, out);
}

function policyFor(world: World) {
  return validatePolicy({ id: "faults", paths: [world.source] }, "test policy");
}

Deno.test("a 503 SlowDown on the 3rd UploadPart is retried: the backup completes and restores", async () => {
  const world = await setUp(3 * PART + 1000);
  try {
    const backup = await throughProxy(
      world,
      failNth("UploadPart", 3, { kind: "status", status: 503 }),
      async (storage, proxy) => {
        const result = await runBackup({ policy: policyFor(world), storage, keyring });
        const parts = proxy.log.filter((r) => r.operation === "UploadPart");
        assert.equal(parts.filter((r) => r.fault).length, 1);
        assert.equal(parts.length, 5, "4 parts, one of them sent twice");
        return result;
      },
    );
    await assertRestoresIdentically(world, backup, path.join(world.work, "out"));
  } finally {
    await tearDown(world);
  }
});

Deno.test("a connection dropped mid-upload is retried per part", async () => {
  const world = await setUp(2 * PART + 10);
  try {
    await throughProxy(world, failNth("UploadPart", 1, { kind: "drop" }), async (storage) => {
      const backup = await runBackup({ policy: policyFor(world), storage, keyring });
      assert.ok(await world.direct.head(backup.key_manifest));
    });
  } finally {
    await tearDown(world);
  }
});

Deno.test("a permanent 500 on every part fails clearly after bounded attempts, leaving nothing", async () => {
  const world = await setUp(2 * PART + 10);
  try {
    await throughProxy(
      world,
      (r) => (r.operation === "UploadPart" ? { kind: "status", status: 500 } : undefined),
      async (storage, proxy) => {
        const started = performance.now();
        await assert.rejects(
          runBackup({ policy: policyFor(world), storage, keyring }),
          (e) => e instanceof IntellistorError && e.code === "STORAGE_ERROR",
        );
        // Tried again within the retry window (2 s here, 60 s by default), then given up.
        const elapsed = performance.now() - started;
        assert.ok(elapsed > 1_000 && elapsed < 15_000, `gave up after ${elapsed} ms`);
        const attempts = proxy.log.filter((r) => r.operation === "UploadPart" && r.part === 1);
        assert.ok(attempts.length >= 3 && attempts.length <= 6, `${attempts.length} attempts`);
      },
      2_000,
    );
    assert.deepEqual(await listIncompleteMultipartUploads(world.server), []);
    const listing = await listBackups(world.direct, "faults");
    assert.deepEqual(listing.backups, []);
    assert.deepEqual(listing.incomplete, []);
  } finally {
    await tearDown(world);
  }
});

for (const when of ["mid-upload", "from the first request"] as const) {
  Deno.test(`a store answering 500 to every request for 3 s ${when}: the backup rides it out`, async () => {
    const world = await setUp(3 * PART + 1000);
    try {
      let outageEnds = 0;
      // A store restarting: every request fails for 3 s, from the second
      // part on, or from the start (an HTTP status is an answer: the store is
      // there, so this is not the 1 s window of an endpoint never reached).
      const rule: FaultRule = (r) => {
        if (outageEnds === 0 && (when !== "mid-upload" || r.part === 2)) {
          outageEnds = Date.now() + 3_000;
        }
        return Date.now() < outageEnds ? { kind: "status", status: 500 } : undefined;
      };
      const backup = await throughProxy(world, rule, async (storage, proxy) => {
        const result = await runBackup({ policy: policyFor(world), storage, keyring });
        assert.ok(proxy.log.filter((r) => r.fault).length >= 3, "the outage was met");
        return result;
      });
      await assertRestoresIdentically(world, backup, path.join(world.work, "out"));
      assert.deepEqual(await listIncompleteMultipartUploads(world.server), []);
    } finally {
      await tearDown(world);
    }
  });
}

Deno.test("403, a 501 and a 404 on a named key are not retried", async () => {
  const world = await setUp(0);
  try {
    for (const [status, code] of [[403, "ACCESS_DENIED"], [501, "STORAGE_ERROR"]] as const) {
      await throughProxy(
        world,
        (r) => (r.operation === "PutObject" ? { kind: "status", status } : undefined),
        async (storage, proxy) => {
          await assert.rejects(
            runBackup({ policy: policyFor(world), storage, keyring }),
            (e) => e instanceof IntellistorError && e.code === code,
          );
          assert.equal(proxy.log.filter((r) => r.operation === "PutObject").length, 1);
        },
      );
    }
    await throughProxy(world, () => undefined, async (storage, proxy) => {
      const missing = "backups/faults/20200101T000000Z/x/backup.tar.gz.enc";
      await assert.rejects(
        runRestore({ storage, keyring, key: missing, outDir: path.join(world.work, "r") }),
        (e) => e instanceof IntellistorError && e.code === "BACKUP_NOT_FOUND",
      );
      assert.equal(proxy.log.filter((r) => r.operation === "GetObject").length, 1);
    });
  } finally {
    await tearDown(world);
  }
});

Deno.test("a download cut short is reported, never written as a good file", async () => {
  const world = await setUp(2 * PART);
  try {
    const backup = await runBackup({ policy: policyFor(world), storage: world.direct, keyring });
    const out = path.join(world.work, "out");
    await throughProxy(
      world,
      (r) =>
        r.operation === "GetObject" && r.key.endsWith("backup.tar.gz.enc") &&
          r.index > 2
          ? { kind: "cut", afterBytes: PART }
          : undefined,
      async (storage) => {
        await assert.rejects(
          runRestore({ storage, keyring, key: backup.key_backup, outDir: out }),
          (e) => e instanceof IntellistorError,
        );
      },
    );
    // Whatever was written was verified; the large file is not there at all.
    await assert.rejects(Deno.stat(path.join(out, "grande.bin")));
    for await (const item of Deno.readDir(out)) assert.ok(!item.name.endsWith(".partial"));
    // And the same restore without faults completes.
    const again = await runRestore({
      storage: world.direct,
      keyring,
      key: backup.key_backup,
      outDir: out,
      overwrite: true,
    });
    assert.equal(again.integrity, "ok");
    await assertSameTree(world.source, out);
  } finally {
    await tearDown(world);
  }
});

const RANDOM_RUNS = Number(Deno.env.get("INTELLISTOR_FAULT_RUNS") ?? 30);

Deno.test(`${RANDOM_RUNS} backups under 10% random faults: each completes and restores, or fails cleanly`, async () => {
  const world = await setUp(PART + 1000);
  const outcomes = { completed: 0, failed: 0, faults: 0 };
  try {
    for (let run = 0; run < RANDOM_RUNS; run++) {
      await throughProxy(world, randomFaults(0.1, 1000 + run), async (storage, proxy) => {
        try {
          const backup = await runBackup({ policy: policyFor(world), storage, keyring });
          outcomes.completed++;
          const out = path.join(world.work, `out-${run}`);
          await assertRestoresIdentically(world, backup, out);
          await Deno.remove(out, { recursive: true });
        } catch (error) {
          if (error instanceof assert.AssertionError) throw error;
          assert.ok(error instanceof IntellistorError, `not a clean error: ${error}`);
          outcomes.failed++;
        } finally {
          outcomes.faults += proxy.log.filter((r) => r.fault).length;
        }
      });
    }
    console.log(`fault runs: ${JSON.stringify(outcomes)}`);
    assert.ok(outcomes.faults > 0, "faults were injected");
    // Exactly the completed backups exist; failed ones have no manifest.
    const listing = await listBackups(world.direct, "faults");
    assert.equal(listing.backups.length, outcomes.completed);
    assert.deepEqual(await listIncompleteMultipartUploads(world.server), []);
  } finally {
    await tearDown(world);
  }
});
