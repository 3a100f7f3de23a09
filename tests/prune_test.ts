/**
 * Retention end to end: `prune` on a local store (dry run, then for real), and
 * the agent pruning after its backup on the S3 test server.
 */
import assert from "node:assert/strict";
import path from "node:path";
import {
  createS3Storage,
  formatTimestamp,
  generateRootKey,
  IntellistorError,
  keyringFromEnv,
  listBackups,
  LocalStorage,
  manifestKeyFor,
  pruneBackups,
  readPolicy,
  runBackup,
  runRestore,
  type Storage,
  validatePolicy,
} from "../mod.ts";
import { runCli } from "./support/cli.ts";
import { withCalls } from "./support/faulty_storage.ts";
import { s3rverCredentials, startS3Server } from "./support/s3_server.ts";
import { withTempDir } from "./support/temp.ts";

const DAY = 86_400_000;

/** Backups of `source` taken `days` days apart, oldest first, ending yesterday at noon. */
async function backupsOnDays(
  storage: Storage,
  source: string,
  count: number,
  env: Record<string, string>,
): Promise<string[]> {
  const policy = validatePolicy({ id: "kept", paths: [source] }, "test");
  const keyring = keyringFromEnv(env);
  const noon = new Date();
  noon.setHours(12, 0, 0, 0);
  const keys: string[] = [];
  for (let i = count; i >= 1; i--) {
    const when = new Date(noon.getTime() - i * DAY);
    keys.push((await runBackup({ policy, storage, keyring, now: () => when })).key_backup);
  }
  return keys;
}

/** `agent run` of `policyFile`, its state in `dir`/state. */
function runAgent(dir: string, policyFile: string, envFile: string) {
  const args = ["agent", "run", "--policy", policyFile, "--env-file", envFile];
  return runCli([...args, "--state-dir", path.join(dir, "state")], { cwd: dir });
}

async function filesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string) => {
    for await (const item of Deno.readDir(dir)) {
      const full = path.join(dir, item.name);
      if (item.isDirectory) await visit(full);
      else found.push(path.relative(root, full).split(path.sep).join("/"));
    }
  };
  await visit(root);
  return found.sort();
}

Deno.test("prune: --dry-run deletes nothing; prune keeps what the rules say and deletes the rest", async () => {
  await withTempDir("prune", async (dir) => {
    const source = path.join(dir, "src");
    await Deno.mkdir(source);
    await Deno.writeTextFile(path.join(source, "a.txt"), "dados\n");
    const env = { INTELLISTOR_KEY: generateRootKey() };
    await Deno.writeTextFile(path.join(dir, ".env"), `INTELLISTOR_KEY=${env.INTELLISTOR_KEY}\n`);
    const storeDir = path.join(dir, "store");
    const storage = new LocalStorage(storeDir);
    const keys = await backupsOnDays(storage, source, 5, env);
    // What prune must leave alone: a damaged manifest and an object without one.
    const damaged = keys[0].replace("backup.tar.gz.enc", "manifest.json");
    await Deno.writeTextFile(path.join(storeDir, ...damaged.split("/")), "{");
    const orphan =
      "backups/kept/20200101T000000Z/00000000-0000-4000-8000-000000000000/backup.tar.gz.enc";
    await Deno.mkdir(path.dirname(path.join(storeDir, ...orphan.split("/"))), { recursive: true });
    await Deno.writeTextFile(path.join(storeDir, ...orphan.split("/")), "partial");
    const policyFile = path.join(dir, "p.yaml");
    await Deno.writeTextFile(
      policyFile,
      `id: kept\npaths: [${JSON.stringify(source)}]\n` +
        `destination: {type: local, path: ${JSON.stringify(storeDir)}}\n` +
        "retention: {keep_last: 1, keep_daily: 2}\n",
    );
    const before = await filesUnder(storeDir);

    const dry = await runCli(["prune", "--policy", policyFile, "--dry-run"], { cwd: dir });
    assert.equal(dry.code, 0, dry.stderr);
    const plan = dry.json() as {
      dry_run: boolean;
      kept: { key_backup: string; reasons: string[] }[];
      removed: { key_backup: string }[];
      untouched: unknown[];
      damaged: number;
      incomplete: number;
    };
    assert.equal(plan.dry_run, true);
    assert.deepEqual(plan.kept.map((b) => [b.key_backup, b.reasons]), [
      [keys[4], ["last", "daily"]],
      [keys[3], ["daily"]],
    ]);
    assert.deepEqual(plan.removed.map((b) => b.key_backup), [keys[2], keys[1]]);
    assert.deepEqual([plan.untouched, plan.damaged, plan.incomplete], [[], 1, 1]);
    assert.deepEqual(await filesUnder(storeDir), before, "a dry run deletes nothing");

    const pruned = await runCli(["prune", "--policy", policyFile], { cwd: dir });
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.equal(pruned.json().dry_run, false);
    const listing = await listBackups(storage, "kept");
    assert.deepEqual(listing.backups.map((b) => b.key_backup), [keys[3], keys[4]]);
    assert.deepEqual(listing.incomplete, [orphan]);
    assert.equal(listing.damaged.length, 1);
    const left = await filesUnder(storeDir);
    for (const key of [keys[1], keys[2]]) {
      assert.ok(!left.some((file) => file.startsWith(path.posix.dirname(key))), `${key} left`);
    }
    const restored = await runRestore({
      storage,
      keyring: keyringFromEnv(env),
      key: keys[3],
      outDir: path.join(dir, "out"),
    });
    assert.equal(restored.integrity, "ok");

    // A policy without rules keeps everything: prune refuses rather than guess.
    await Deno.writeTextFile(
      policyFile,
      (await Deno.readTextFile(policyFile)).replace(/^retention:.*$/m, ""),
    );
    const refused = await runCli(["prune", "--policy", policyFile], { cwd: dir });
    assert.equal(refused.code, 2);
    assert.match(refused.error().message, /no retention rule/);
  });
});

Deno.test("prune counts only backups it can verify, of this policy's paths and host, not dated ahead", async () => {
  await withTempDir("prune-guard", async (dir) => {
    const source = path.join(dir, "src");
    const other = path.join(dir, "other");
    for (const folder of [source, other]) {
      await Deno.mkdir(folder);
      await Deno.writeTextFile(path.join(folder, "a.txt"), "dados\n");
    }
    const env = { INTELLISTOR_KEY: generateRootKey() };
    const keyring = keyringFromEnv(env);
    const storeDir = path.join(dir, "store");
    const storage = new LocalStorage(storeDir);
    const ours = await backupsOnDays(storage, source, 3, env);
    // The same policy id from another policy file (other paths), and under another key.
    const otherPolicy = validatePolicy({ id: "kept", paths: [other] }, "test");
    const otherPaths = (await runBackup({ policy: otherPolicy, storage, keyring })).key_backup;
    const foreignKey = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
    const ourPolicy = validatePolicy(
      { id: "kept", paths: [source], retention: { keep_last: 1 } },
      "test",
    );
    const foreign = (await runBackup({ policy: ourPolicy, storage, keyring: foreignKey }))
      .key_backup;
    // A backup dated next year (a clock set wrong) must not push the others out.
    const ahead = new Date(Date.now() + 365 * 86_400_000);
    const future = (await runBackup({ policy: ourPolicy, storage, keyring, now: () => ahead }))
      .key_backup;
    // A manifest copied to a newer date, its public fields edited: it does not open.
    const forgedAt = formatTimestamp(new Date(Date.now() - 3_600_000)); // newer than ours[2]
    const forgedKey = ours[2].replace(/\/\d{8}T\d{6}Z\//, `/${forgedAt}/`);
    const file = (key: string) => path.join(storeDir, ...key.split("/"));
    await Deno.mkdir(path.dirname(file(forgedKey)), { recursive: true });
    await Deno.copyFile(file(ours[2]), file(forgedKey));
    const manifest = await Deno.readTextFile(file(manifestKeyFor(ours[2])));
    const edited = manifest.replace(/("timestamp":\s*)"\d{8}T\d{6}Z"/, `$1"${forgedAt}"`);
    assert.notEqual(edited, manifest);
    await Deno.writeTextFile(file(manifestKeyFor(forgedKey)), edited);

    // A copy of the newest backup in another folder ("keep-forever/…") is not another backup.
    const copyKey = ours[2].replace("backups/kept/", "backups/kept/keep-forever/");
    for (const key of [ours[2], manifestKeyFor(ours[2])]) {
      const target = file(key.replace("backups/kept/", "backups/kept/keep-forever/"));
      await Deno.mkdir(path.dirname(target), { recursive: true });
      await Deno.copyFile(file(key), target);
    }

    const result = await pruneBackups({ storage, policy: ourPolicy, keyring, dryRun: true });
    assert.deepEqual(result.kept.map((b) => b.key_backup), [ours[2]]);
    assert.deepEqual(result.removed.map((b) => b.key_backup), [ours[1], ours[0]]);
    const why = new Map(result.untouched.map((u) => [u.key_backup, u.reason]));
    assert.equal(why.get(otherPaths), `made from other paths: ${other}`);
    assert.match(why.get(foreign) ?? "", /cannot be verified/);
    assert.match(why.get(future) ?? "", /dated after now/);
    assert.match(why.get(forgedKey) ?? "", /cannot be verified/);
    assert.equal(why.get(copyKey), `a copy of ${ours[2]}`);
    assert.equal(result.untouched.length, 5);
    // Host names are compared as DNS compares them, without case.
    const shouted = await pruneBackups({
      storage,
      policy: ourPolicy,
      keyring,
      host: result.host.toUpperCase(),
      dryRun: true,
    });
    assert.deepEqual(shouted.removed, result.removed);

    // The same paths written another way (a trailing slash) are the same paths.
    const reworded = validatePolicy(
      { id: "kept", paths: [source + "/"], retention: { keep_last: 1 } },
      "test",
    );
    const same = await pruneBackups({ storage, policy: reworded, keyring, dryRun: true });
    assert.deepEqual(same.removed.map((b) => b.key_backup), [ours[1], ours[0]]);

    // Another host's backups are not ours to count.
    const elsewhere = await pruneBackups({ storage, policy: ourPolicy, keyring, host: "srv-2" });
    assert.deepEqual([elsewhere.kept, elsewhere.removed], [[], []]);
    assert.ok(
      elsewhere.untouched.every((u) =>
        /another host|other paths|verified|after now/.test(u.reason)
      ),
    );
    assert.equal((await listBackups(storage, "kept")).backups.length, 8, "nothing deleted");
  });
});

Deno.test("agent run: after its backup the agent prunes by the policy's rules, on S3, and logs it", async () => {
  const server = await startS3Server();
  const s3 = await createS3Storage({
    bucket: server.bucket,
    endpoint: server.endpoint,
    credentials: s3rverCredentials,
  });
  try {
    await withTempDir("prune-agent", async (dir) => {
      const source = path.join(dir, "src");
      await Deno.mkdir(source);
      await Deno.writeTextFile(path.join(source, "a.txt"), "dados\n");
      const env = {
        INTELLISTOR_KEY: generateRootKey(),
        AWS_ACCESS_KEY_ID: s3rverCredentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3rverCredentials.secretAccessKey,
        AWS_S3_BUCKET: server.bucket,
        AWS_ENDPOINT_URL_S3: server.endpoint,
      };
      const envFile = path.join(dir, ".env");
      await Deno.writeTextFile(
        envFile,
        Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n"),
      );
      const old = await backupsOnDays(s3, source, 3, env);
      const policyFile = path.join(dir, "p.yaml");
      await Deno.writeTextFile(
        policyFile,
        `id: kept\npaths: [${JSON.stringify(source)}]\nretention: {keep_last: 2}\n`,
      );
      const agentRun = () => runAgent(dir, policyFile, envFile);
      const run = await agentRun();
      assert.equal(run.code, 0, run.stderr);
      const result = run.json() as {
        backup: { key_backup: string };
        prune: { kept: number; removed: string[] };
        log: { key: string };
      };
      assert.deepEqual(result.prune, { kept: 2, removed: [old[1], old[0]], untouched: 0 });
      const listing = await listBackups(s3, "kept");
      assert.deepEqual(listing.backups.map((b) => b.key_backup), [
        old[2],
        result.backup.key_backup,
      ]);
      for await (const object of s3.list("backups/kept/")) {
        assert.ok(!object.key.startsWith(path.posix.dirname(old[0])), `left: ${object.key}`);
      }
      const log = new TextDecoder().decode(
        await new Response(await s3.get(result.log.key)).arrayBuffer(),
      );
      const prune = log.trim().split("\n").map((line) => JSON.parse(line))
        .find((event) => event.event === "prune");
      assert.deepEqual(prune?.removed, [old[1], old[0]]);

      // An empty source (a share that did not mount) must not push the real backups out.
      await Deno.remove(path.join(source, "a.txt"));
      const empty = await agentRun();
      assert.equal(empty.code, 0, empty.stderr);
      assert.deepEqual(empty.json().prune, { kept: 2, removed: [], untouched: 1 });
      // Nor when the share is back: empty backups never take a place.
      await Deno.writeTextFile(path.join(source, "a.txt"), "dados\n");
      const back = await agentRun();
      assert.equal(back.code, 0, back.stderr);
      const after = back.json() as { backup: { key_backup: string }; prune: unknown };
      // The two newest real backups are kept; the empty one took no place.
      assert.deepEqual(after.prune, { kept: 2, removed: [old[2]], untouched: 1 });
      const left = (await listBackups(s3, "kept")).backups.map((b) => b.key_backup);
      assert.ok(left.includes(result.backup.key_backup), "the real backup before the empty one");
      assert.ok(left.includes(after.backup.key_backup));
      assert.equal(left.length, 3, "and the empty one, untouched");
    });
  } finally {
    await s3.close();
    await server.stop();
  }
});

Deno.test("policy-create --keep-*: the retention rules land in the policy; a bad count is named", async () => {
  await withTempDir("prune-create", async (dir) => {
    const made = await runCli(
      [
        "policy-create",
        ...["--out", "p.yaml", "--paths", dir, "--local-dir", "store"],
        ...["--keep-daily", "7", "--keep-monthly", "12"],
      ],
      { cwd: dir },
    );
    assert.equal(made.code, 0, made.stderr);
    const policy = await readPolicy(path.join(dir, "p.yaml"), { requirePaths: false });
    assert.deepEqual(policy.retention, {
      keep_last: 0,
      keep_daily: 7,
      keep_weekly: 0,
      keep_monthly: 12,
    });
    const bad = await runCli(
      ["policy-create", "--out", "q.yaml", "--paths", dir, "--keep-weekly", "four"],
      { cwd: dir },
    );
    assert.equal(bad.code, 2);
    assert.match(bad.error().message, /retention\.keep_weekly/);
  });
});

Deno.test("a stopped prune deletes nothing more, and never a manifest without its object", async () => {
  await withTempDir("prune-stop", async (dir) => {
    const source = path.join(dir, "src");
    await Deno.mkdir(source);
    await Deno.writeTextFile(path.join(source, "a.txt"), "dados\n");
    const env = { INTELLISTOR_KEY: generateRootKey() };
    const storage = new LocalStorage(path.join(dir, "store"));
    await backupsOnDays(storage, source, 3, env);
    const policy = validatePolicy(
      { id: "kept", paths: [source], retention: { keep_last: 1 } },
      "test",
    );
    const stop = new AbortController();
    // The stop comes while the first backup is deleted: the second is left whole.
    const deleting = withCalls(storage, {
      delete: async (key) => {
        await storage.delete(key);
        stop.abort();
      },
    });
    await assert.rejects(
      pruneBackups({
        storage: deleting,
        policy,
        keyring: keyringFromEnv(env),
        signal: stop.signal,
      }),
      (error: Error) =>
        error instanceof IntellistorError && error.code === "INTERRUPTED" &&
        error.message.includes("(1 of the 2 backups to delete had been deleted)") &&
        error.hint.includes("run prune again"),
    );
    const listing = await listBackups(storage, "kept");
    assert.equal(listing.backups.length, 2);
    assert.deepEqual([listing.incomplete, listing.damaged], [[], []]);
  });
});

Deno.test("a backup deleted elsewhere while list or prune reads it is left out, not damaged", async () => {
  await withTempDir("prune-race", async (dir) => {
    const source = path.join(dir, "src");
    await Deno.mkdir(source);
    await Deno.writeTextFile(path.join(source, "a.txt"), "dados\n");
    const env = { INTELLISTOR_KEY: generateRootKey() };
    const storage = new LocalStorage(path.join(dir, "store"));
    const [first, second, third] = await backupsOnDays(storage, source, 3, env);
    // Another machine's prune deletes a backup (manifest first) just after this listing saw it.
    const deletedOnRead = (victim: string, when: "manifest" | "object"): Storage =>
      withCalls(storage, {
        get: async (key, range) => {
          const trigger = when === "manifest" ? manifestKeyFor(victim) : victim;
          if (key === trigger) {
            await storage.delete(manifestKeyFor(victim));
            await storage.delete(victim);
          }
          return storage.get(key, range);
        },
      });
    const listing = await listBackups(deletedOnRead(first, "manifest"), "kept");
    assert.deepEqual(listing.backups.map((b) => b.key_backup), [second, third]);
    assert.deepEqual([listing.incomplete, listing.damaged], [[], []]);

    const policy = validatePolicy(
      { id: "kept", paths: [source], retention: { keep_last: 1 } },
      "test",
    );
    // prune reads the manifest in the listing, then the object's header: deleted in between.
    const result = await pruneBackups({
      storage: deletedOnRead(second, "object"),
      policy,
      keyring: keyringFromEnv(env),
      dryRun: true,
    });
    assert.deepEqual(result.untouched, []);
    assert.deepEqual(result.kept.map((b) => b.key_backup), [third]);
    assert.deepEqual(result.removed, []);
    assert.equal(result.damaged, 0);
  });
});

Deno.test("agent run: its prune never deletes the backup it just made, even if another started later", async () => {
  await withTempDir("prune-own", async (dir) => {
    const source = path.join(dir, "src");
    await Deno.mkdir(source);
    await Deno.writeTextFile(path.join(source, "a.txt"), "dados\n");
    const envFile = path.join(dir, ".env");
    const env = { INTELLISTOR_KEY: generateRootKey() };
    await Deno.writeTextFile(envFile, `INTELLISTOR_KEY=${env.INTELLISTOR_KEY}\n`);
    const store = path.join(dir, "store");
    const policyFile = path.join(dir, "p.yaml");
    await Deno.writeTextFile(
      policyFile,
      `id: kept\npaths: [${JSON.stringify(source)}]\n` +
        `destination: {type: local, path: ${JSON.stringify(store)}}\nretention: {keep_last: 1}\n`,
    );
    // A manual backup that started while the agent's was running: dated after it.
    const policy = await readPolicy(policyFile);
    const later = new Date(Date.now() + 120_000);
    const manual = await runBackup({
      policy,
      storage: new LocalStorage(store),
      keyring: keyringFromEnv(env),
      now: () => later,
    });
    const run = await runAgent(dir, policyFile, envFile);
    assert.equal(run.code, 0, run.stderr);
    const own = (run.json() as { backup: { key_backup: string } }).backup.key_backup;
    assert.deepEqual(run.json().prune, { kept: 2, removed: [], untouched: 0 });
    const left = (await listBackups(new LocalStorage(store), "kept")).backups;
    assert.deepEqual(left.map((b) => b.key_backup).sort(), [manual.key_backup, own].sort());
    // Without `keep`, the rules alone would delete it: the reason says why it stays.
    const plan = await pruneBackups({
      storage: new LocalStorage(store),
      policy,
      keyring: keyringFromEnv(env),
      dryRun: true,
      keep: [own],
    });
    assert.deepEqual(plan.kept.map((b) => [b.key_backup, b.reasons]), [
      [manual.key_backup, ["last"]],
      [own, ["new"]],
    ]);
  });
});
