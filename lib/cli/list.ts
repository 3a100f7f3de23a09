/** `intellistor list --policy P [--env-file F]`: the policy's backups, oldest first. */
import { listBackups } from "../list.ts";
import { parseFlags, required } from "./args.ts";
import { assertStoreExists, loadStoreContext } from "./context.ts";
import { type CliIo, printJson } from "./io.ts";

export const listHelp = `Usage: intellistor list --policy FILE [--env-file FILE]

Lists the policy's backups in its destination, oldest first, with the key to
give to restore ("key_backup"). Objects without a manifest (interrupted
backups) and a local store's leftover temporary files are listed under
"incomplete"; manifests that cannot be read, belong to another backup, or whose
object is missing or not the size they record, under "damaged".`;

export async function listCommand(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("list", argv, {
    policy: { type: "string" },
    "env-file": { type: "string" },
  });
  const context = await loadStoreContext(io, {
    policyPath: required("list", "policy", flags.policy),
    envFile: flags["env-file"],
    requirePaths: false,
  });
  try {
    await assertStoreExists(context.policy);
    printJson(io, await listBackups(context.storage, context.policy.id));
    return 0;
  } finally {
    await context.storage.close();
  }
}
