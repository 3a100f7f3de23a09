/** `intellistor prune --policy P [--env-file F] [--dry-run] [--host NAME]`: applies the policy's retention. */
import { IntellistorError } from "../errors.ts";
import { pruneBackups, retentionEnabled } from "../retention.ts";
import { parseFlags, required } from "./args.ts";
import { loadContext } from "./context.ts";
import { type CliIo, printJson } from "./io.ts";

export const pruneHelp =
  `Usage: intellistor prune --policy FILE [--env-file FILE] [--dry-run] [--host NAME]

Deletes the policy's backups that its "retention" rules do not keep (restic's
forget: keep_last, keep_daily, keep_weekly, keep_monthly; a backup any rule
keeps is kept), and prints what was kept, with the rules that keep each, and
what was removed. The agent does the same after each backup that succeeds
(or is partial).

Only backups this policy made on this host are counted: each manifest must
open with the key, name this host, list the policy's paths and hold at least
one file. Backups of other hosts or paths, copies, empty backups, backups dated
after now, and incomplete or damaged ones are left alone ("untouched", with why).

  --policy FILE    the policy: its id, paths and retention rules, its destination
  --env-file FILE  .env file with credentials and the key (default: ./.env if present)
  --dry-run        print the plan and delete nothing
  --host NAME      count the backups of that host instead of this one
Exit codes: 0 ok, 1 the store failed (nothing more is deleted; run it again),
2 usage, no key, or the policy keeps every backup (no retention rule set),
10 no bucket, 130 stopped (Ctrl+C, SIGTERM) between two backups' deletions.`;

export async function pruneCommand(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("prune", argv, {
    policy: { type: "string" },
    "env-file": { type: "string" },
    "dry-run": { type: "boolean" },
    host: { type: "string" },
  });
  const context = await loadContext(io, {
    policyPath: required("prune", "policy", flags.policy),
    envFile: flags["env-file"],
    requirePaths: false,
  });
  try {
    const { policy } = context;
    if (!retentionEnabled(policy.retention)) {
      // Keeping everything needs no prune; running one by mistake deletes nothing.
      throw new IntellistorError(
        "USAGE",
        `prune: policy "${policy.id}" has no retention rule (every keep_* is 0), ` +
          "so it keeps every backup",
        "Set retention.keep_last, keep_daily, keep_weekly or keep_monthly in the policy, " +
          "then try it with --dry-run.",
      );
    }
    printJson(
      io,
      await pruneBackups({
        storage: context.storage,
        policy,
        keyring: context.keyring,
        host: flags.host,
        dryRun: flags["dry-run"] ?? false,
        signal: io.signal,
      }),
    );
    return 0;
  } finally {
    await context.storage.close();
  }
}
