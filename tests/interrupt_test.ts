/** Ctrl+C during a backup or a restore: exit 130, and nothing half-done is left behind. */
import assert from "node:assert/strict";
import path from "node:path";
import { generateRootKey } from "../mod.ts";
import { MAIN, runCli } from "./support/cli.ts";
import { startFaultProxy } from "./support/fault_proxy.ts";
import {
  listIncompleteMultipartUploads,
  s3rverCredentials,
  startS3Server,
} from "./support/s3_server.ts";
import { pseudoRandomBytes } from "./support/tree.ts";

async function allFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  async function visit(dir: string) {
    for await (const item of Deno.readDir(dir)) {
      const full = path.join(dir, item.name);
      if (item.isDirectory) await visit(full);
      else out.push(path.relative(root, full));
    }
  }
  await visit(root).catch(() => {});
  return out;
}

/** Starts the CLI as a process, sends SIGINT once `ready()` holds, returns its exit and stderr. */
async function interrupt(
  args: string[],
  cwd: string,
  ready: () => Promise<boolean>,
  signal: Deno.Signal = "SIGINT",
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const deadline = Date.now() + 60_000;
  while (!(await ready())) {
    assert.ok(Date.now() < deadline, "the command never reached the point to interrupt");
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill(signal);
  const { code, stderr } = await child.output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

async function makeSource(work: string): Promise<void> {
  const source = path.join(work, "src");
  await Deno.mkdir(source, { recursive: true });
  // Incompressible data, large enough that the backup is still running when stopped.
  for (let i = 0; i < 12; i++) {
    await Deno.writeFile(path.join(source, `f${i}.bin`), pseudoRandomBytes(16_000_000, i + 1));
  }
  await Deno.writeTextFile(path.join(work, ".env"), `INTELLISTOR_KEY=${generateRootKey()}\n`);
}

/**
 * Writes a .env for the test S3 server's bucket, reached at `endpoint` (its
 * own, or a fault proxy's), and a policy p.yaml for src/; returns the .env.
 */
async function s3Policy(work: string, bucket: string, endpoint: string): Promise<string> {
  const envFile = path.join(work, ".env");
  await Deno.writeTextFile(
    envFile,
    [
      `INTELLISTOR_KEY=${generateRootKey()}`,
      `AWS_ACCESS_KEY_ID=${s3rverCredentials.accessKeyId}`,
      `AWS_SECRET_ACCESS_KEY=${s3rverCredentials.secretAccessKey}`,
      `AWS_S3_BUCKET=${bucket}`,
      `AWS_ENDPOINT_URL_S3=${endpoint}`,
    ].join("\n"),
  );
  await Deno.mkdir(path.join(work, "src"), { recursive: true });
  const created = await runCli(
    ["policy-create", "--out", "p.yaml", "--paths", "src"],
    { cwd: work },
  );
  assert.equal(created.code, 0, created.stderr);
  return envFile;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  const what = signal === "SIGINT" ? "Ctrl+C" : "SIGTERM (systemctl stop)";
  Deno.test({
    name: `${what} during a backup to a local store: exit 130, no manifest, no temp file`,
    ignore: signal === "SIGTERM" && Deno.build.os === "windows",
    fn: async () => {
      const work = await Deno.makeTempDir({ prefix: "intellistor-int-" });
      try {
        await makeSource(work);
        const created = await runCli(
          ["policy-create", "--out", "p.yaml", "--paths", "src", "--local-dir", "store"],
          { cwd: work },
        );
        assert.equal(created.code, 0, created.stderr);
        const store = path.join(work, "store");
        const result = await interrupt(
          ["backup", "--policy", "p.yaml"],
          work,
          async () => (await allFiles(store)).some((f) => path.basename(f).startsWith(".tmp-")),
          signal,
        );
        assert.equal(result.code, 130, result.stderr);
        assert.equal(JSON.parse(result.stderr).error.code, "INTERRUPTED");
        assert.deepEqual(await allFiles(store), []);
      } finally {
        await Deno.remove(work, { recursive: true });
      }
    },
  });
}

Deno.test("Ctrl+C during a backup to S3: exit 130, no object, no incomplete multipart upload", async () => {
  const server = await startS3Server();
  const work = await Deno.makeTempDir({ prefix: "intellistor-int-s3-" });
  try {
    await makeSource(work);
    await s3Policy(work, server.bucket, server.endpoint);
    const result = await interrupt(
      ["backup", "--policy", "p.yaml"],
      work,
      () => Promise.resolve(server.requests.some((r) => r.query.includes("partNumber"))),
    );
    assert.equal(result.code, 130, result.stderr);
    assert.equal(JSON.parse(result.stderr).error.code, "INTERRUPTED");
    assert.deepEqual(await listIncompleteMultipartUploads(server), []);
    const objects = await allFiles(path.join(server.directory, server.bucket));
    assert.ok(!objects.some((f) => f.includes("backups")), `left behind: ${objects.join(", ")}`);
  } finally {
    await server.stop();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("Ctrl+C while the store fails and parts are being retried: the stop cleans up at once", async () => {
  const server = await startS3Server();
  // From the second part on, every part fails: retried for up to 60 s, unless stopped.
  const proxy = startFaultProxy(
    server.endpoint,
    (
      r,
    ) => (r.operation === "UploadPart" && r.part! >= 2
      ? { kind: "status", status: 500 }
      : undefined),
  );
  const work = await Deno.makeTempDir({ prefix: "intellistor-int-retry-" });
  try {
    await makeSource(work);
    await s3Policy(work, server.bucket, proxy.endpoint);
    let stopped = 0;
    const result = await interrupt(
      ["backup", "--policy", "p.yaml"],
      work,
      () => {
        const failing = proxy.log.filter((r) => r.fault).length >= 2;
        if (failing) stopped = Date.now();
        return Promise.resolve(failing);
      },
    );
    assert.equal(result.code, 130, result.stderr);
    const error = JSON.parse(result.stderr).error;
    assert.equal(error.code, "INTERRUPTED");
    // Not "before its clean-up finished": the retries stopped, the upload was aborted.
    assert.equal(error.message, "Interrupted");
    assert.ok(Date.now() - stopped < 15_000, `the stop took ${Date.now() - stopped} ms`);
    assert.deepEqual(await listIncompleteMultipartUploads(server), []);
  } finally {
    await proxy.stop();
    await server.stop();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("Ctrl+C during a restore, and a decrypt: exit 130, no partial file left", async () => {
  const work = await Deno.makeTempDir({ prefix: "intellistor-int-restore-" });
  try {
    await makeSource(work);
    assert.equal(
      (await runCli(
        ["policy-create", "--out", "p.yaml", "--paths", "src", "--local-dir", "store"],
        { cwd: work },
      )).code,
      0,
    );
    const backup = await runCli(["backup", "--policy", "p.yaml"], { cwd: work });
    assert.equal(backup.code, 0, backup.stderr);
    const key = (backup.json() as { s3: { key_backup: string } }).s3.key_backup;
    const out = path.join(work, "restore");
    const result = await interrupt(
      ["restore", "--policy", "p.yaml", "--key", key, "--out", "restore"],
      work,
      async () => (await allFiles(out)).some((f) => f.endsWith(".partial")),
    );
    assert.equal(result.code, 130, result.stderr);
    assert.equal(JSON.parse(result.stderr).error.code, "INTERRUPTED");
    // Only files that were complete and verified may remain, under their real names.
    for (const file of await allFiles(out)) {
      assert.match(file, /^f\d+\.bin$/, `left behind: ${file}`);
      const index = Number(file.slice(1, -4));
      assert.deepEqual(
        await Deno.readFile(path.join(out, file)),
        pseudoRandomBytes(16_000_000, index + 1),
      );
    }

    // `decrypt` stops too: exit 130, no .tar.gz, no temporary file.
    const decrypted = path.join(work, "plain");
    await Deno.mkdir(decrypted);
    const stopped = await interrupt(
      ["decrypt", "--policy", "p.yaml", "--key", key, "--out", "plain/backup.tar.gz"],
      work,
      async () => (await allFiles(decrypted)).some((f) => f.endsWith(".partial")),
    );
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.equal(JSON.parse(stopped.stderr).error.code, "INTERRUPTED");
    assert.deepEqual(await allFiles(decrypted), []);

    // `decrypt --out - | head`: the reader leaves after 64 KiB of 190 MB; the
    // copy it got is cut short, so the exit says so instead of 0.
    const piped = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "decrypt", "--policy", "p.yaml", "--key", key, "--out", "-"],
      cwd: work,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = piped.stdout.getReader();
    for (let got = 0; got < 65536;) got += (await reader.read()).value?.length ?? Infinity;
    await reader.cancel();
    const [cutStatus, cutStderr] = await Promise.all([
      piped.status,
      new Response(piped.stderr).text(),
    ]);
    const cutError = JSON.parse(cutStderr).error;
    assert.equal(cutStatus.code, 1, cutStderr);
    assert.equal(cutError.code, "IO_ERROR");
    assert.match(cutError.message, /closed before the end/);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a stop whose clean-up hangs (silent store): the second Ctrl+C exits 130, says so, and the agent's log is kept", async () => {
  const server = await startS3Server();
  let silent = false;
  // Once silent, the store accepts every request and never answers (until the client goes away).
  const proxy = startFaultProxy(
    server.endpoint,
    () => silent ? { kind: "stall", ms: 600_000 } : undefined,
  );
  const work = await Deno.makeTempDir({ prefix: "intellistor-int-hang-" });
  try {
    await makeSource(work);
    const envFile = await s3Policy(work, server.bucket, proxy.endpoint);
    const stateDir = path.join(work, "state");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "agent",
        "run",
        ...["--policy", path.join(work, "p.yaml"), "--env-file", envFile, "--state-dir", stateDir],
      ],
      cwd: work,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const deadline = Date.now() + 60_000;
    while (!proxy.log.some((r) => r.operation === "UploadPart")) {
      assert.ok(Date.now() < deadline, "the backup never uploaded a part");
      await new Promise((r) => setTimeout(r, 20));
    }
    silent = true;
    child.kill("SIGINT");
    // The clean-up (the parts in flight, then AbortMultipartUpload) now waits on the silent store.
    await new Promise((r) => setTimeout(r, 1_000));
    child.kill("SIGINT");
    const { code, stderr } = await child.output();
    const text = new TextDecoder().decode(stderr);
    assert.equal(code, 130, text);
    const error = JSON.parse(text).error;
    assert.equal(error.code, "INTERRUPTED");
    assert.match(error.message, /before its clean-up finished/);
    assert.match(error.hint, /lifecycle rule/);
    // The log was written when the stop came, for the next run to upload.
    const pending = path.join(stateDir, "mvp-default", "logs", "pending");
    const logs = [...Deno.readDirSync(pending)].map((item) => item.name);
    assert.equal(logs.length, 1, logs.join(", "));
    const events = (await Deno.readTextFile(path.join(pending, logs[0]))).trim().split("\n")
      .map((line) => JSON.parse(line).event);
    assert.deepEqual(events, ["start", "configuration", "stop_requested"]);
  } finally {
    await proxy.stop();
    await server.stop();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("Ctrl+C on list against a store that does not answer: exit 130 at once, nothing to clean up", async () => {
  const server = await startS3Server();
  const proxy = startFaultProxy(server.endpoint, () => ({ kind: "stall", ms: 600_000 }));
  const work = await Deno.makeTempDir({ prefix: "intellistor-int-list-" });
  try {
    await s3Policy(work, server.bucket, proxy.endpoint);
    const started = Date.now();
    // list writes nothing: it need not wait the 20 s a clean-up may take.
    const result = await interrupt(
      ["list", "--policy", "p.yaml"],
      work,
      () => Promise.resolve(proxy.log.length > 0),
    );
    assert.equal(result.code, 130, result.stderr);
    const error = JSON.parse(result.stderr).error;
    assert.equal(error.code, "INTERRUPTED");
    assert.equal(error.message, "Interrupted");
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
  } finally {
    await proxy.stop();
    await server.stop();
    await Deno.remove(work, { recursive: true });
  }
});
