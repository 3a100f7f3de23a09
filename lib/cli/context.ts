/** What backup, restore, list and decrypt need before they start: policy, environment, keys, store. */
import path from "node:path";
import { type Environment, loadEnvironment } from "../config/env.ts";
import { type Keyring, policyKeyring } from "../crypto/keys.ts";
import { IntellistorError } from "../errors.ts";
import { type Policy, readPolicy } from "../policy/policy.ts";
import { openStorage, type StorageTarget } from "../storage/from_policy.ts";
import type { CliIo } from "./io.ts";

export interface ContextOptions {
  policyPath: string;
  envFile?: string;
  /** Backup needs the source paths; restore and list must work when they are gone. */
  requirePaths: boolean;
}

export interface StoreContext extends StorageTarget {
  policy: Policy;
  env: Environment;
  envFile?: string;
}

export interface CommandContext extends StoreContext {
  keyring: Keyring;
}

/** Policy, environment and keyring; the keyring is checked before any network call. */
export async function loadContext(io: CliIo, options: ContextOptions): Promise<CommandContext> {
  const { policy, env, envFile } = await readPolicyAndEnvironment(io, options);
  let keyring: Keyring;
  try {
    keyring = policyKeyring(policy, env);
  } catch (error) {
    // Run from another folder, the .env was simply not found: say so, before
    // anyone follows the hint to generate a key that opens none of the backups.
    if (error instanceof IntellistorError && error.code === "KEY_MISSING" && !envFile) {
      throw new IntellistorError(
        "KEY_MISSING",
        `${error.message} No .env file was read: there is none in ${io.cwd}.`,
        "Give --env-file with the .env that holds the key (or run the command from its " +
          "folder). Backups open only with the key they were made with; a new key opens none.",
      );
    }
    throw error;
  }
  return {
    policy,
    env,
    envFile,
    keyring,
    ...await openStorage(policy, env, { signal: io.signal }),
  };
}

/** Policy, environment and store, for commands that need no key (list). */
export async function loadStoreContext(io: CliIo, options: ContextOptions): Promise<StoreContext> {
  const { policy, env, envFile } = await readPolicyAndEnvironment(io, options);
  return { policy, env, envFile, ...await openStorage(policy, env, { signal: io.signal }) };
}

async function readPolicyAndEnvironment(io: CliIo, options: ContextOptions) {
  const policy = await readPolicy(path.resolve(io.cwd, options.policyPath), {
    requirePaths: options.requirePaths,
  });
  const { env, envFile } = await loadEnvironment(io.env, { envFile: options.envFile, cwd: io.cwd });
  return { policy, env, envFile };
}
