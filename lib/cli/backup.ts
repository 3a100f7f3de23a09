/** `intellistor backup --policy P [--out DIR] [--env-file F]` */
import path from "node:path";
import { runBackup } from "../backup.ts";
import { LocalStorage } from "../storage/local.ts";
import { parseFlags, required } from "./args.ts";
import { loadContext } from "./context.ts";
import { type CliIo, printJson } from "./io.ts";
import { commandLine, detectShell } from "./shell_quote.ts";

export const backupHelp = `Usage: intellistor backup --policy FILE [--out DIR] [--env-file FILE]

Backs up the policy's paths: tar + gzip, encrypted, uploaded with its manifest.
  --policy FILE    the policy (YAML) to run
  --out DIR        also keep a local copy of the backup and its manifest in DIR
                   (same layout as the bucket, so DIR can be restored from)
  --env-file FILE  .env file with credentials and the key (default: ./.env if present)
Exit codes: 0 ok, 3 partial (some files could not be read, see "warnings").`;

export async function backupCommand(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("backup", argv, {
    policy: { type: "string" },
    out: { type: "string" },
    "env-file": { type: "string" },
  });
  const policyPath = required("backup", "policy", flags.policy);
  const context = await loadContext(io, {
    policyPath,
    envFile: flags["env-file"],
    requirePaths: true,
  });
  try {
    const localCopyDir = flags.out === undefined ? undefined : path.resolve(io.cwd, flags.out);
    const result = await runBackup({
      policy: context.policy,
      storage: context.storage,
      keyring: context.keyring,
      localCopy: localCopyDir === undefined ? undefined : new LocalStorage(localCopyDir),
      // The store and --out are left out by runBackup; the secrets too.
      skipPaths: context.envFile === undefined ? [] : [context.envFile],
      signal: io.signal,
    });
    const restoreArgs = [
      ...io.self,
      "restore",
      "--policy",
      policyPath,
      "--key",
      result.key_backup,
      "--out",
      Deno.build.os === "windows" ? ".\\restore" : "./restore",
    ];
    if (flags["env-file"] !== undefined) restoreArgs.push("--env-file", flags["env-file"]);
    printJson(io, {
      backup_id: result.backup_id,
      timestamp: result.timestamp,
      policy: result.policy,
      destination: context.storage.location,
      s3: {
        bucket: context.bucket,
        key_backup: result.key_backup,
        key_manifest: result.key_manifest,
      },
      local_copy: flags.out === undefined ? null : path.resolve(io.cwd, flags.out),
      files: result.files,
      dirs: result.dirs,
      symlinks: result.symlinks,
      bytes: result.bytes,
      compressed_bytes: result.compressed_bytes,
      duration_ms: result.duration_ms,
      warnings: result.warnings,
      status: result.partial ? "partial" : "ok",
      cli_restore: commandLine(restoreArgs, detectShell(Deno.build.os, io.env)),
    });
    return result.partial ? 3 : 0;
  } finally {
    await context.storage.close();
  }
}
