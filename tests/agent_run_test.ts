/** `runAgent` in-process: what is on disk while a run is still going. */
import assert from "node:assert/strict";
import path from "node:path";
import { runAgent } from "../lib/agent/agent_run.ts";
import {
  generateRootKey,
  IntellistorError,
  keyringFromEnv,
  LocalStorage,
  type Storage,
  validatePolicy,
} from "../mod.ts";

Deno.test("agent run: the log is in pending/ from the start, so a run killed outright leaves one", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "intellistor-agent-run-" });
  try {
    const pending = path.join(stateDir, "p", "logs", "pending");
    let seenWhileRunning: string[] = [];
    const result = await runAgent({
      policy: validatePolicy({ id: "p", paths: [stateDir] }, "test"),
      policyPath: "/etc/p.yaml",
      envFile: "/etc/.env",
      stateDir,
      // The run is still going here: this is what a SIGKILL now would leave.
      loadEnvironment: async () => {
        for (const item of Deno.readDirSync(pending)) {
          const text = await Deno.readTextFile(path.join(pending, item.name));
          seenWhileRunning = text.trim().split("\n").map((line) => JSON.parse(line).event);
        }
        throw new IntellistorError("ENV_FILE_NOT_FOUND", "stop here", "test");
      },
      openStorage: () => Promise.reject(new Error("not reached")),
      keyring: () => {
        throw new Error("not reached");
      },
    });
    assert.deepEqual(seenWhileRunning, ["start"]);
    assert.equal(result.error?.code, "ENV_FILE_NOT_FOUND");
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("agent run: a stop during the log's upload does not write the log back to pending/", async () => {
  const work = await Deno.makeTempDir({ prefix: "intellistor-agent-run-" });
  try {
    const source = path.join(work, "src");
    await Deno.mkdir(source);
    await Deno.writeTextFile(path.join(source, "a.txt"), "dados\n");
    const stop = new AbortController();
    const store = new LocalStorage(path.join(work, "store"));
    // The stop arrives while the log goes up (systemd's time limit, say).
    const storage: Storage = Object.assign(Object.create(store), {
      put: (key: string, body: ReadableStream<Uint8Array>) => {
        if (key.startsWith("logs/")) stop.abort();
        return store.put(key, body);
      },
    });
    const stateDir = path.join(work, "state");
    const result = await runAgent({
      policy: validatePolicy({ id: "p", paths: [source] }, "test"),
      policyPath: "/etc/p.yaml",
      envFile: "/etc/.env",
      stateDir,
      loadEnvironment: () => Promise.resolve({}),
      openStorage: () => Promise.resolve(storage),
      keyring: () => keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() }),
      signal: stop.signal,
    });
    assert.equal(result.status, "ok");
    assert.equal(result.log?.uploaded, true);
    await new Promise((r) => setTimeout(r, 100)); // a save started by the stop would land now
    const logs = path.join(stateDir, "p", "logs");
    assert.deepEqual([...Deno.readDirSync(path.join(logs, "pending"))], []);
    const uploaded = [...Deno.readDirSync(path.join(logs, "uploaded"))];
    assert.equal(uploaded.length, 1);
    // The run had ended: the stop is not the run's, and nothing wrote the log again.
    const text = await Deno.readTextFile(path.join(logs, "uploaded", uploaded[0].name));
    assert.ok(!text.includes("stop_requested"), text);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
