/**
 * `intellistor list --policy P [--env-file F]`: the policy's backups, oldest first.
 * `intellistor list --policy P --key K [--only PAT…]`: the entries of one backup.
 */
import { IntellistorError } from "../errors.ts";
import { listBackups } from "../list.ts";
import { listEntries } from "../restore.ts";
import { parseFlags, required } from "./args.ts";
import { loadContext, loadStoreContext } from "./context.ts";
import { type CliIo, printJson, untilStopped } from "./io.ts";

export const listHelp = `Usage: intellistor list --policy FILE [--env-file FILE]
       intellistor list --policy FILE --key KEY [--only PATTERN]... [--env-file FILE]

Lists the policy's backups in its destination, oldest first, with the key to
give to restore ("key_backup"). Objects without a manifest (interrupted
backups) and a local store's temporary files (delete them only while no backup
runs) are listed under "incomplete"; manifests that cannot be read, belong to
another backup, or whose object is missing or not the size they record, under
"damaged". With nothing of this policy in the store, "note" names the policies
that have backups there. Needs no key.

With --key, lists the entries of that backup instead ("entries": relative_path,
type, size, mtime, link), as restore would write them; --only selects as in
restore, except that a pattern matching nothing just lists nothing. Only the
manifest and the object's header are read; the names are sealed, so this
needs the key.`;

export async function listCommand(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("list", argv, {
    policy: { type: "string" },
    key: { type: "string" },
    only: { type: "string", multiple: true },
    "env-file": { type: "string" },
  });
  const policyPath = required("list", "policy", flags.policy);
  if (flags.key !== undefined) return await listBackupEntries(io, policyPath, flags);
  if (flags.only !== undefined) {
    throw new IntellistorError(
      "USAGE",
      "list: --only selects the entries of one backup, which --key names",
      "Run list without --only to see the backups, then list --key <key_backup> --only ….",
    );
  }
  const context = await loadStoreContext(io, {
    policyPath,
    envFile: flags["env-file"],
    requirePaths: false,
  });
  try {
    printJson(io, await untilStopped(listBackups(context.storage, context.policy.id), io.signal));
    return 0;
  } finally {
    await context.storage.close();
  }
}

/** Bytes of output gathered before each write: a backup may hold millions of entries. */
const OUTPUT_BATCH = 64 << 10;

/**
 * One JSON document, written as the manifest is read: an entry per line
 * inside "entries", then the backup's fields. Never the whole list in memory.
 */
async function listBackupEntries(
  io: CliIo,
  policyPath: string,
  flags: { key?: string; only?: string[]; "env-file"?: string },
): Promise<number> {
  const context = await loadContext(io, {
    policyPath,
    envFile: flags["env-file"],
    requirePaths: false,
  });
  let pending = "";
  let first = true;
  try {
    const result = await untilStopped(
      listEntries({
        storage: context.storage,
        keyring: context.keyring,
        key: flags.key!,
        only: flags.only,
        onEntry: (entry) => {
          pending += `${first ? '{\n  "entries": [\n' : ",\n"}    ${JSON.stringify(entry)}`;
          first = false;
          if (pending.length >= OUTPUT_BATCH) {
            io.stdout(pending);
            pending = "";
          }
        },
      }),
      io.signal,
    );
    const fields = JSON.stringify(result, null, 2).slice(2); // without the opening "{\n"
    io.stdout(`${pending}${first ? '{\n  "entries": [' : "\n  "}],\n${fields}\n`);
    return 0;
  } finally {
    await context.storage.close();
  }
}
