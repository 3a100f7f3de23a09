/**
 * `agent run` end to end against the test S3 server: the log object under
 * logs/<policy_id>/, a failed run's log, a concurrent run refused, a stale
 * lock taken over, and clear errors for a bad --env-file.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { createS3Storage, generateRootKey, type Storage } from "../mod.ts";
import { readAll } from "../lib/streams.ts";
import { runCli, spawnCli } from "./support/cli.ts";
import { s3rverCredentials, type S3TestServer, startS3Server } from "./support/s3_server.ts";

interface World {
  server: S3TestServer;
  s3: Storage;
  work: string;
  policy: string;
  envFile: string;
  stateDir: string;
  env: Record<string, string>;
}

async function setUp(): Promise<World> {
  const server = await startS3Server();
  const work = await Deno.makeTempDir({ prefix: "intellistor-agent-" });
  const source = path.join(work, "dados");
  await Deno.mkdir(source);
  await Deno.writeTextFile(path.join(source, "relatório.txt"), "conteúdo\n");
  const env = {
    AWS_ACCESS_KEY_ID: s3rverCredentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3rverCredentials.secretAccessKey,
    AWS_S3_BUCKET: server.bucket,
    AWS_ENDPOINT_URL_S3: server.endpoint,
    INTELLISTOR_KEY: generateRootKey(),
  };
  const envFile = path.join(work, "secure", ".env");
  await writeEnv(envFile, env);
  const policy = path.join(work, "policies", "p.yaml");
  const created = await runCli(
    ["policy-create", "--out", policy, "--paths", source, "--id", "srv-files"],
    { cwd: work },
  );
  assert.equal(created.code, 0, created.stderr);
  const s3 = await createS3Storage({
    bucket: server.bucket,
    endpoint: server.endpoint,
    credentials: s3rverCredentials,
  });
  return { server, s3, work, policy, envFile, stateDir: path.join(work, "state"), env };
}

async function writeEnv(file: string, env: Record<string, string>): Promise<void> {
  await Deno.mkdir(path.dirname(file), { recursive: true });
  await Deno.writeTextFile(file, Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n"));
}

async function tearDown(world: World): Promise<void> {
  await world.s3.close();
  await world.server.stop();
  await Deno.remove(world.work, { recursive: true });
}

function agentArgs(world: World, envFile = world.envFile): string[] {
  return [
    "agent",
    "run",
    "--policy",
    world.policy,
    "--env-file",
    envFile,
    "--state-dir",
    world.stateDir,
  ];
}

async function logObjects(world: World): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of world.s3.list("logs/srv-files/")) keys.push(info.key);
  return keys;
}

async function readLog(world: World, key: string): Promise<Array<Record<string, unknown>>> {
  const text = new TextDecoder().decode(await readAll(await world.s3.get(key)));
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

Deno.test("agent run: backs up, uploads its log under logs/<policy_id>/, no secrets in it", async () => {
  const world = await setUp();
  try {
    // Like Task Scheduler: another working directory, no inherited variables.
    const result = await spawnCli(agentArgs(world), { cwd: "/" });
    assert.equal(result.code, 0, result.stderr);
    const json = JSON.parse(result.stdout);
    assert.equal(json.status, "ok");
    assert.equal(json.log.uploaded, true);
    assert.equal(json.log.key, `logs/srv-files/${json.timestamp}_${json.backup_id}.jsonl`);
    assert.deepEqual(await logObjects(world), [json.log.key]);

    const events = await readLog(world, json.log.key);
    assert.deepEqual(events.map((e) => e.event), ["start", "configuration", "result", "end"]);
    assert.equal(events[2].backup_id, json.backup_id);
    assert.equal(events[2].files, 1);
    assert.equal(events[1].key_variable, "INTELLISTOR_KEY");
    const raw = new TextDecoder().decode(await readAll(await world.s3.get(json.log.key)));
    for (const secret of [world.env.INTELLISTOR_KEY, world.env.AWS_SECRET_ACCESS_KEY]) {
      assert.ok(!raw.includes(secret), "a secret reached the log");
    }
    // The backup it names is really there, with its manifest.
    assert.ok(await world.s3.head(json.backup.key_manifest));
    // And a local copy of the log is kept.
    assert.ok((await Deno.stat(json.log.file)).isFile);
  } finally {
    await tearDown(world);
  }
});

Deno.test("agent run: a failed run uploads its log with the error", async () => {
  const world = await setUp();
  try {
    const { INTELLISTOR_KEY: _key, ...withoutKey } = world.env;
    const noKey = path.join(world.work, "secure", "nokey.env");
    await writeEnv(noKey, withoutKey);
    const result = await runCli(agentArgs(world, noKey), { cwd: world.work });
    assert.equal(result.code, 2);
    const json = result.json() as { status: string; log: { key: string; uploaded: boolean } };
    assert.equal(json.status, "failed");
    assert.equal(json.log.uploaded, true);
    const events = await readLog(world, json.log.key);
    const error = events.find((e) => e.event === "error")!;
    assert.equal(error.code, "KEY_MISSING");
    assert.match(String(error.message), /INTELLISTOR_KEY/);
    assert.equal(JSON.parse(result.stderr).error.code, "KEY_MISSING");
  } finally {
    await tearDown(world);
  }
});

Deno.test("agent run: a missing source fails the run (exit 2, failure URL), no empty backup", async () => {
  const world = await setUp();
  const received: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      await request.body?.cancel();
      received.push(new URL(request.url).pathname);
      return new Response("OK");
    },
  );
  try {
    // Like a disk that is not mounted tonight.
    await Deno.remove(path.join(world.work, "dados"), { recursive: true });
    const withHook = path.join(world.work, "secure", "hook.env");
    const base = `http://127.0.0.1:${server.addr.port}/ping`;
    await writeEnv(withHook, {
      ...world.env,
      INTELLISTOR_NOTIFY_URL: base,
      INTELLISTOR_NOTIFY_FAILURE_URL: `${base}/fail`,
    });
    const result = await runCli(agentArgs(world, withHook), { cwd: world.work });
    assert.equal(result.code, 2, result.stderr);
    const json = result.json() as { status: string; backup?: unknown; log: { key: string } };
    assert.equal(json.status, "failed");
    assert.equal(json.backup, undefined);
    const error = JSON.parse(result.stderr).error;
    assert.equal(error.code, "POLICY_INVALID");
    assert.match(error.message, /paths\[0\].*dados.*does not exist/);
    assert.deepEqual(received, ["/ping/fail"]);
    const backups: string[] = [];
    for await (const info of world.s3.list("backups/")) backups.push(info.key);
    assert.deepEqual(backups, []);
    const events = await readLog(world, json.log.key);
    assert.equal(events.find((e) => e.event === "error")?.code, "POLICY_INVALID");
  } finally {
    await server.shutdown();
    await tearDown(world);
  }
});

Deno.test("agent run: a log that could not be uploaded goes up with the next run", async () => {
  const world = await setUp();
  try {
    const missing = path.join(world.work, "secure", "missing.env");
    const failed = await runCli(agentArgs(world, missing), { cwd: world.work });
    assert.equal(failed.code, 2);
    const first = failed.json() as { log: { key: string; uploaded: boolean; file: string } };
    assert.equal(first.log.uploaded, false);
    const pending = await Deno.readTextFile(first.log.file);
    assert.match(pending, /ENV_FILE_NOT_FOUND/);
    assert.deepEqual(await logObjects(world), []);

    const next = await runCli(agentArgs(world), { cwd: world.work });
    assert.equal(next.code, 0, next.stderr);
    const second = next.json() as { log: { key: string }; earlier_logs_uploaded: string[] };
    assert.deepEqual(second.earlier_logs_uploaded, [first.log.key]);
    assert.deepEqual((await logObjects(world)).sort(), [first.log.key, second.log.key].sort());
  } finally {
    await tearDown(world);
  }
});

Deno.test("agent run: a second run while one holds the lock exits 11 at once", async () => {
  const world = await setUp();
  const lockDir = path.join(world.stateDir, "srv-files");
  await Deno.mkdir(lockDir, { recursive: true });
  // Another process holds the policy's lock, as a running agent would.
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const f = await Deno.open(${JSON.stringify(path.join(lockDir, "agent.lock"))},` +
      ` { read: true, write: true, create: true }); await f.lock(true);` +
      ` await f.write(new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, host: "h",` +
      ` started_at: "2026-01-01T00:00:00Z" }))); console.log("locked");` +
      ` await new Promise((r) => setTimeout(r, 60_000));`,
    ],
    stdout: "piped",
  }).spawn();
  try {
    const reader = holder.stdout.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /locked/);
    reader.releaseLock();
    const result = await runCli(agentArgs(world), { cwd: world.work });
    assert.equal(result.code, 11);
    const json = result.json() as { status: string; running: { pid: number } };
    assert.equal(json.status, "already_running");
    assert.equal(json.running.pid, holder.pid);
    assert.equal(JSON.parse(result.stderr).error.code, "ALREADY_RUNNING");
    assert.deepEqual(await logObjects(world), []);
  } finally {
    holder.kill();
    await holder.stdout.cancel().catch(() => {});
    await holder.status;
    await tearDown(world);
  }
});

Deno.test("agent run: the lock of a run that died is taken over", async () => {
  const world = await setUp();
  try {
    const lockDir = path.join(world.stateDir, "srv-files");
    await Deno.mkdir(lockDir, { recursive: true });
    const dead = { pid: 999999, host: "srv", started_at: "2026-01-01T02:00:00.000Z" };
    await Deno.writeTextFile(path.join(lockDir, "agent.lock"), JSON.stringify(dead));
    const result = await runCli(agentArgs(world), { cwd: world.work });
    assert.equal(result.code, 0, result.stderr);
    const json = result.json() as { stale_lock: unknown; log: { key: string } };
    assert.deepEqual(json.stale_lock, dead);
    const events = await readLog(world, json.log.key);
    assert.ok(events.some((e) => e.event === "stale_lock_taken_over"));
    // A clean end leaves no holder behind.
    assert.equal(await Deno.readTextFile(path.join(lockDir, "agent.lock")), "");
  } finally {
    await tearDown(world);
  }
});

Deno.test("agent run: relative paths are refused (the scheduler's working directory differs)", async () => {
  const world = await setUp();
  try {
    const result = await runCli(
      ["agent", "run", "--policy", "policies/p.yaml", "--env-file", world.envFile],
      { cwd: world.work },
    );
    assert.equal(result.code, 2);
    const error = JSON.parse(result.stderr).error;
    assert.equal(error.code, "USAGE");
    assert.match(error.message, /absolute/);
    // The example is a path of this system.
    assert.match(error.hint, Deno.build.os === "windows" ? /"C:\\/ : /"\/opt\/intellistor\//);
    // So is a relative INTELLISTOR_STATE_DIR: the lock would move with the working directory.
    const relativeState = path.join(world.work, "secure", "relative-state.env");
    await writeEnv(relativeState, { ...world.env, INTELLISTOR_STATE_DIR: "relstate" });
    const refused = await runCli(
      ["agent", "run", "--policy", world.policy, "--env-file", relativeState],
      { cwd: world.work },
    );
    assert.equal(refused.code, 2, refused.stderr);
    const stateError = JSON.parse(refused.stderr).error;
    assert.equal(stateError.code, "USAGE");
    assert.match(stateError.message, /INTELLISTOR_STATE_DIR must be an absolute path/);
    await assert.rejects(Deno.stat(path.join(world.work, "relstate")), Deno.errors.NotFound);
  } finally {
    await tearDown(world);
  }
});

Deno.test("agent run: the notification hook gets a JSON summary, the failure URL on failure", async () => {
  const world = await setUp();
  const received: Array<{ path: string; body: Record<string, unknown> }> = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      received.push({ path: new URL(request.url).pathname, body: await request.json() });
      return new Response("OK");
    },
  );
  try {
    const base = `http://127.0.0.1:${server.addr.port}/ping/abc`;
    const withHook = path.join(world.work, "secure", "hook.env");
    await writeEnv(withHook, {
      ...world.env,
      INTELLISTOR_NOTIFY_URL: base,
      INTELLISTOR_NOTIFY_FAILURE_URL: `${base}/fail`,
    });
    const ok = await runCli(agentArgs(world, withHook), { cwd: world.work });
    assert.equal(ok.code, 0, ok.stderr);
    const { INTELLISTOR_KEY: _key, ...noKey } = world.env;
    const failingHook = path.join(world.work, "secure", "hook-nokey.env");
    await writeEnv(failingHook, {
      ...noKey,
      INTELLISTOR_NOTIFY_URL: base,
      INTELLISTOR_NOTIFY_FAILURE_URL: `${base}/fail`,
    });
    const failed = await runCli(agentArgs(world, failingHook), { cwd: world.work });
    assert.equal(failed.code, 2);

    assert.deepEqual(received.map((r) => r.path), ["/ping/abc", "/ping/abc/fail"]);
    assert.equal(received[0].body.status, "ok");
    assert.equal(received[0].body.files, 1);
    assert.equal(received[1].body.status, "failed");
    assert.equal((received[1].body.error as { code: string }).code, "KEY_MISSING");
    for (const { body } of received) {
      assert.ok(!JSON.stringify(body).includes(world.env.INTELLISTOR_KEY), "secret in the body");
    }
    const events = await readLog(world, (ok.json() as { log: { key: string } }).log.key);
    assert.ok(events.some((e) => e.event === "notify" && e.sent === true));
  } finally {
    await server.shutdown();
    await tearDown(world);
  }
});

Deno.test("agent run: a notification endpoint that never answers does not fail the run", async () => {
  const world = await setUp();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new Promise<Response>((resolve) =>
        request.signal.addEventListener("abort", () => resolve(new Response()))
      ),
  );
  try {
    const policyText = await Deno.readTextFile(world.policy);
    await Deno.writeTextFile(
      world.policy,
      policyText.replace(/timeout_seconds: \d+/, "timeout_seconds: 1"),
    );
    const hook = path.join(world.work, "secure", "slow.env");
    await writeEnv(hook, {
      ...world.env,
      INTELLISTOR_NOTIFY_URL: `http://127.0.0.1:${server.addr.port}/`,
    });
    const result = await runCli(agentArgs(world, hook), { cwd: world.work });
    assert.equal(result.code, 0, result.stderr);
    const json = result.json() as { notify: { sent: boolean; error: string } };
    assert.equal(json.notify.sent, false);
    assert.match(json.notify.error, /no answer within 1 s/);
  } finally {
    await server.shutdown();
    await tearDown(world);
  }
});

Deno.test("agent run: a store that failed as unreachable is not asked again for the log", async () => {
  const world = await setUp();
  // Reads each request's first line, then drops the connection: ECONNRESET, every time.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const accepting = (async () => {
    for await (const connection of listener) {
      const head = new Uint8Array(4096);
      const read = await connection.read(head).catch(() => null);
      if (read) requests.push(new TextDecoder().decode(head.subarray(0, read)).split("\r\n")[0]);
      connection.close();
    }
  })();
  try {
    const downEnv = path.join(world.work, "secure", "down.env");
    await writeEnv(downEnv, {
      ...world.env,
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    });
    const failed = await runCli(agentArgs(world, downEnv), { cwd: world.work });
    assert.equal(failed.code, 1, failed.stderr);
    const result = failed.json() as {
      error: { code: string };
      log: { uploaded: boolean; file: string };
    };
    assert.equal(result.error.code, "STORAGE_UNREACHABLE");
    assert.equal(result.log.uploaded, false);
    assert.match(await Deno.readTextFile(result.log.file), /STORAGE_UNREACHABLE/);
    assert.ok(requests.length > 0, "the backup did try the store");
    assert.deepEqual(requests.filter((line) => line.includes("/logs/")), []);

    const next = await runCli(agentArgs(world), { cwd: world.work });
    assert.equal(next.code, 0, next.stderr);
    assert.equal((await logObjects(world)).length, 2);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    await tearDown(world);
  }
});
