/** `runAgent` in-process: what is on disk while a run is still going. */
import assert from "node:assert/strict";
import path from "node:path";
import { runAgent } from "../lib/agent/agent_run.ts";
import { IntellistorError, validatePolicy } from "../mod.ts";

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
