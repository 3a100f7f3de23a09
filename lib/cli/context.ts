/** What backup, restore and decrypt need before they start: policy, environment, keys, store. */
import path from "node:path";
import { type Environment, loadEnvironment } from "../config/env.ts";
import { type Keyring, keyringFromEnv } from "../crypto/keys.ts";
import { type Policy, readPolicy } from "../policy/policy.ts";
import type { CliIo } from "./io.ts";
import { openStorage, type StorageTarget } from "../storage/from_policy.ts";

export interface CommandContext extends StorageTarget {
  policy: Policy;
  env: Environment;
  keyring: Keyring;
  envFile?: string;
}

export async function loadContext(
  io: CliIo,
  options: { policyPath: string; envFile?: string; requirePaths: boolean },
): Promise<CommandContext> {
  const policy = await readPolicy(path.resolve(io.cwd, options.policyPath), {
    requirePaths: options.requirePaths,
  });
  const { env, envFile } = await loadEnvironment(io.env, { envFile: options.envFile, cwd: io.cwd });
  const keyring = keyringFromEnv(env, {
    keyEnv: policy.encryption.key_env,
    passphraseEnv: policy.encryption.passphrase_env,
  });
  const target = await openStorage(policy, env);
  return { policy, env, keyring, envFile, ...target };
}
