/** `intellistor prune --policy P [--env-file F] [--dry-run]`: applies the policy's retention. */
import { IntellistorError } from "../errors.ts";
import { pruneBackups, retentionEnabled } from "../retention.ts";
import { parseFlags, required } from "./args.ts";
import { loadStoreContext } from "./context.ts";
import { type CliIo, printJson } from "./io.ts";

export const pruneHelp = `Usage: intellistor prune --policy FILE [--env-file FILE] [--dry-run]

Deletes the policy's backups that its "retention" rules do not keep (restic's
forget: keep_last, keep_daily, keep_weekly, keep_monthly; a backup any rule
keeps is kept), and prints what was kept, with the rules that keep each, and
what was removed. The agent does the same after each successful backup.
Incomplete and damaged backups (see "intellistor list") are left alone.

  --policy FILE    the policy: its id and retention rules, and its destination
  --env-file FILE  .env file with credentials (default: ./.env if present)
  --dry-run        print the plan and delete nothing
Exit codes: 0 ok, 2 the policy keeps every backup (no retention rule set).`;

export async function pruneCommand(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("prune", argv, {
    policy: { type: "string" },
    "env-file": { type: "string" },
    "dry-run": { type: "boolean" },
  });
  const context = await loadStoreContext(io, {
    policyPath: required("prune", "policy", flags.policy),
    envFile: flags["env-file"],
    requirePaths: false,
  });
  try {
    const { retention } = context.policy;
    if (!retentionEnabled(retention)) {
      // Keeping everything needs no prune; running one by mistake deletes nothing.
      throw new IntellistorError(
        "USAGE",
        `prune: policy "${context.policy.id}" has no retention rule (every keep_* is 0), ` +
          "so it keeps every backup",
        "Set retention.keep_last, keep_daily, keep_weekly or keep_monthly in the policy, " +
          "then try it with --dry-run.",
      );
    }
    printJson(
      io,
      await pruneBackups(context.storage, context.policy.id, retention, {
        dryRun: flags["dry-run"] ?? false,
      }),
    );
    return 0;
  } finally {
    await context.storage.close();
  }
}
