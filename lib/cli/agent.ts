/**
 * `intellistor agent run --policy ABS --env-file ABS [--state-dir DIR]`:
 * exactly what the scheduled task executes. It must work with another working
 * directory, user and environment than the shell's, so both paths must be
 * absolute and nothing is read from the current directory.
 */
import path from "node:path";
import { runAgent } from "../agent/agent_run.ts";
import { defaultStateDir, isFullyQualified } from "../agent/state_dir.ts";
import { loadEnvironment } from "../config/env.ts";
import { policyKeyring } from "../crypto/keys.ts";
import { IntellistorError } from "../errors.ts";
import { readPolicy } from "../policy/policy.ts";
import { openStorage } from "../storage/from_policy.ts";
import { parseFlags, required } from "./args.ts";
import { type CliIo, printJson } from "./io.ts";

export const agentHelp =
  `Usage: intellistor agent run --policy FILE --env-file FILE [--state-dir DIR]

One unattended run of a policy (what the scheduler executes): takes the
policy's lock, backs up, deletes the backups the policy's retention rules do
not keep (when it has rules; see "intellistor prune --help"), writes a
JSON-lines log and uploads it to logs/<policy_id>/<timestamp>_<backup_id>.jsonl,
and exits with the backup's code.
  --policy FILE     the policy, as an ABSOLUTE path
  --env-file FILE   the .env file, as an ABSOLUTE path (the scheduler does not
                    inherit your shell's environment)
  --state-dir DIR   where locks and local logs live (default: INTELLISTOR_STATE_DIR
                    from the .env or the environment, else %ProgramData%\\Intellistor, /var/lib/intellistor for root,
                    or ~/.local/state/intellistor)
Exit codes: as backup (0, 3, …), and 11 when another run of the policy is going.`;

export async function agentCommand(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "run") {
    throw new IntellistorError(
      "USAGE",
      `agent: unknown sub-command ${JSON.stringify(sub ?? "")}`,
      'Use "intellistor agent run --policy FILE --env-file FILE".',
    );
  }
  const flags = parseFlags("agent run", rest, {
    policy: { type: "string" },
    "env-file": { type: "string" },
    "state-dir": { type: "string" },
  });
  const policyPath = absolute("policy", required("agent run", "policy", flags.policy));
  const envFile = absolute("env-file", required("agent run", "env-file", flags["env-file"]));
  const policy = await readPolicy(policyPath, { requirePaths: false });
  // Loaded before the lock (the state directory may be set in it); a failure is
  // kept and raised inside the run, so that it is logged like any other.
  const early = await loadEnvironment(io.env, { envFile, cwd: "/" }).then(
    ({ env }) => ({ env }),
    (error: unknown) => ({ error }),
  );
  const stateDir = flags["state-dir"] !== undefined
    ? absolute("state-dir", flags["state-dir"])
    : defaultStateDir("env" in early ? early.env : io.env);

  const result = await runAgent({
    policy,
    policyPath,
    envFile,
    stateDir,
    loadEnvironment: () =>
      "env" in early ? Promise.resolve(early.env) : Promise.reject(early.error),
    openStorage: async (env) => (await openStorage(policy, env, { signal: io.signal })).storage,
    keyring: (env) => policyKeyring(policy, env),
    skipPaths: [envFile],
    signal: io.signal,
  });
  printJson(io, result);
  if (result.error) {
    io.stderr(JSON.stringify({ error: { ...result.error, exit_code: result.exit_code } }) + "\n");
  }
  return result.exit_code;
}

function absolute(flag: string, value: string): string {
  if (!isFullyQualified(value)) {
    throw new IntellistorError(
      "USAGE",
      `agent run: --${flag} must be an absolute path, got "${value}"`,
      "The scheduler starts the agent in another working directory: give full paths, " +
        (Deno.build.os === "windows"
          ? 'e.g. --policy "C:\\intellistor\\policies\\p.yaml".'
          : 'e.g. --policy "/opt/intellistor/policies/p.yaml".'),
    );
  }
  return path.normalize(value);
}
