/**
 * Crashes: the process is killed (SIGKILL, no clean-up at all) at seeded
 * moments during backups, agent runs and restores. Nothing may then look
 * complete that is not, and the next run must succeed.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { createHash } from "node:crypto";
import { generateRootKey } from "../mod.ts";
import { MAIN, runCli } from "./support/cli.ts";
import { seededRandom } from "./support/fault_proxy.ts";
import { pseudoRandomBytes } from "./support/tree.ts";

const KILLS = Number(Deno.env.get("INTELLISTOR_CRASH_KILLS") ?? 6);

interface World {
  work: string;
  source: string;
  hashes: Map<string, string>;
}

async function setUp(): Promise<World> {
  const work = await Deno.makeTempDir({ prefix: "intellistor-crash-" });
  const source = path.join(work, "src");
  await Deno.mkdir(source);
  const hashes = new Map<string, string>();
  for (let i = 0; i < 8; i++) {
    const data = pseudoRandomBytes(6_000_000, 100 + i);
    await Deno.writeFile(path.join(source, `f${i}.bin`), data);
    hashes.set(`f${i}.bin`, createHash("sha256").update(data).digest("hex"));
  }
  await Deno.writeTextFile(path.join(work, ".env"), `INTELLISTOR_KEY=${generateRootKey()}\n`);
  const created = await runCli(
    ["policy-create", "--out", "p.yaml", "--paths", "src", "--local-dir", "store", "--id", "crash"],
    { cwd: work },
  );
  assert.equal(created.code, 0, created.stderr);
  return { work, source, hashes };
}

/**
 * Starts the CLI and kills it with SIGKILL once `ready()` holds (polled) or
 * after `timeoutMs`; true if it was killed while still running.
 */
async function killWhen(
  args: string[],
  cwd: string,
  ready: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<boolean> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const deadline = Date.now() + timeoutMs;
  while (!exited && Date.now() < deadline && !(await ready())) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
  return (await status).signal === "SIGKILL";
}

/** Starts the CLI, kills it with SIGKILL after `ms` (if still running); true if it was killed. */
function killAfter(args: string[], cwd: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  return killWhen(args, cwd, () => Promise.resolve(Date.now() >= deadline));
}

async function* walkFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory) yield* walkFiles(full);
    else yield full;
  }
}

async function listing(work: string) {
  const listed = await runCli(["list", "--policy", "p.yaml"], { cwd: work });
  // Before any backup got far enough to create the store, list says it does not exist.
  const storeMade = await Deno.stat(path.join(work, "store")).then(() => true, () => false);
  if (!storeMade) {
    assert.equal(listed.code, 10, listed.stderr);
    assert.equal(listed.error().code, "BUCKET_NOT_FOUND");
    return { backups: [], incomplete: [] };
  }
  assert.equal(listed.code, 0, listed.stderr);
  return listed.json() as {
    backups: Array<{ key_backup: string; files: number }>;
    incomplete: string[];
  };
}

Deno.test(`SIGKILL at ${KILLS} seeded moments of a backup: nothing half-done looks complete`, async () => {
  const world = await setUp();
  const random = seededRandom(42);
  let killed = 0;
  try {
    for (let i = 0; i < KILLS; i++) {
      const before = new Set((await listing(world.work)).backups.map((b) => b.key_backup));
      const ms = 300 + Math.floor(random() * 2500);
      const wasKilled = await killAfter(["backup", "--policy", "p.yaml"], world.work, ms);
      const after = await listing(world.work);
      if (wasKilled) {
        killed++;
        // A killed run committed nothing, unless the kill came after its
        // manifest landed (while the process exited): then that backup is
        // whole, and restores.
        const added = after.backups.filter((b) => !before.has(b.key_backup));
        assert.equal(after.backups.length, before.size + added.length);
        assert.ok(added.length <= 1, `kill at ${ms} ms: ${added.length} backups added`);
        for (const { key_backup } of added) {
          const out = `r-${i}`;
          const restored = await runCli(
            ["restore", "--policy", "p.yaml", "--key", key_backup, "--out", out],
            { cwd: world.work },
          );
          assert.equal(restored.code, 0, `kill at ${ms} ms: ${restored.stderr}`);
          await Deno.remove(path.join(world.work, out), { recursive: true });
        }
      }
      for (const backup of after.backups) assert.equal(backup.files, 8);
    }
    console.log(`crash: ${KILLS} backups started, ${killed} killed mid-way by SIGKILL`);
    assert.ok(killed > 0, "at least one run was killed mid-way");
    // Whatever the killed runs left in the store, list names it: a complete
    // backup's two files, or an entry under "incomplete" to delete.
    const listed = await listing(world.work);
    const named = new Set(listed.incomplete);
    for (const { key_backup } of listed.backups) {
      named.add(key_backup).add(key_backup.replace(/backup\.tar\.gz\.enc$/, "manifest.json"));
    }
    const store = path.join(world.work, "store");
    for await (const file of walkFiles(store)) {
      const key = path.relative(store, file).split(path.sep).join("/");
      assert.ok(named.has(key), `${key} is in the store but list does not name it`);
    }
    // The next backup succeeds, and restores identically.
    const next = await runCli(["backup", "--policy", "p.yaml"], { cwd: world.work });
    assert.equal(next.code, 0, next.stderr);
    const key = (next.json() as { s3: { key_backup: string } }).s3.key_backup;
    const restored = await runCli(
      ["restore", "--policy", "p.yaml", "--key", key, "--out", "r"],
      { cwd: world.work },
    );
    assert.equal(restored.code, 0, restored.stderr);
  } finally {
    await Deno.remove(world.work, { recursive: true });
  }
});

Deno.test("SIGKILL during an agent run: the next run takes over the lock and succeeds", async () => {
  const world = await setUp();
  try {
    const args = [
      "agent",
      "run",
      "--policy",
      path.join(world.work, "p.yaml"),
      "--env-file",
      path.join(world.work, ".env"),
      "--state-dir",
      path.join(world.work, "state"),
    ];
    // Killed as soon as the run holds its lock: the backup is under way.
    const lockFile = path.join(world.work, "state", "crash", "agent.lock");
    const holdsLock = () => Deno.stat(lockFile).then((i) => i.size > 0, () => false);
    assert.ok(await killWhen(args, world.work, holdsLock), "the agent run was killed mid-way");
    const next = await runCli(args, { cwd: world.work });
    assert.equal(next.code, 0, next.stderr);
    const json = next.json() as { stale_lock?: { pid: number }; status: string };
    assert.equal(json.status, "ok");
    assert.ok(json.stale_lock, "the dead run's lock was reported as taken over");
  } finally {
    await Deno.remove(world.work, { recursive: true });
  }
});

Deno.test("SIGKILL during a restore: no file with wrong content under its name; a rerun completes", async () => {
  const world = await setUp();
  try {
    const backup = await runCli(["backup", "--policy", "p.yaml"], { cwd: world.work });
    assert.equal(backup.code, 0, backup.stderr);
    const key = (backup.json() as { s3: { key_backup: string } }).s3.key_backup;
    const args = ["restore", "--policy", "p.yaml", "--key", key, "--out", "r"];
    const random = seededRandom(7);
    for (let i = 0; i < 3; i++) {
      await killAfter([...args, "--overwrite"], world.work, 400 + Math.floor(random() * 1200));
      const out = path.join(world.work, "r");
      const names = await Array.fromAsync(Deno.readDir(out)).catch(() => []);
      for (const item of names) {
        if (!item.isFile || !world.hashes.has(item.name)) continue;
        const data = await Deno.readFile(path.join(world.work, "r", item.name));
        assert.equal(
          createHash("sha256").update(data).digest("hex"),
          world.hashes.get(item.name),
          `${item.name} has wrong content after a kill`,
        );
      }
    }
    const rerun = await runCli([...args, "--overwrite"], { cwd: world.work });
    assert.equal(rerun.code, 0, rerun.stderr);
    for (const [name, hash] of world.hashes) {
      const data = await Deno.readFile(path.join(world.work, "r", name));
      assert.equal(createHash("sha256").update(data).digest("hex"), hash);
    }
  } finally {
    await Deno.remove(world.work, { recursive: true });
  }
});
