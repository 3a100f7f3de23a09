/** `intellistor restore --policy P --key K --out DIR [--only GLOB]… [--overwrite] [--env-file F]` */
import path from "node:path";
import { ExitCode } from "../errors.ts";
import { type RestoreResult, runRestore } from "../restore.ts";
import { parseFlags, required } from "./args.ts";
import { loadContext } from "./context.ts";
import { type CliIo, printJson } from "./io.ts";

export const restoreHelp =
  `Usage: intellistor restore --policy FILE --key KEY --out DIR [--only GLOB]... [--overwrite] [--env-file FILE]

Restores a backup, verifying every file's SHA-256; never writes outside DIR.
  --key KEY        the backup object, "backups/<policy>/<timestamp>/<id>/backup.tar.gz.enc"
                   (its manifest.json is found beside it)
  --out DIR        where to restore
  --only GLOB      restore only entries whose relative_path matches (repeatable):
                   without "/" a pattern matches a file or directory name at any depth
                   ("*.png", "Cópia*"); with "/" it matches from the start ("docs/*");
                   a matching directory brings everything under it
  --overwrite      replace files that already exist in DIR
  --env-file FILE  .env file with credentials and the key (default: ./.env if present)
Exit codes: 0 ok, 1 some entries could not be written here (see "failures"),
10 backup or --only match not found, 12 wrong key, 13 integrity failure.`;

export async function restoreCommand(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("restore", argv, {
    policy: { type: "string" },
    key: { type: "string" },
    out: { type: "string" },
    only: { type: "string", multiple: true },
    overwrite: { type: "boolean" },
    "env-file": { type: "string" },
  });
  const policyPath = required("restore", "policy", flags.policy);
  const key = required("restore", "key", flags.key);
  const out = required("restore", "out", flags.out);
  // Source paths are not required to exist: on the day a disk dies they are gone.
  const context = await loadContext(io, {
    policyPath,
    envFile: flags["env-file"],
    requirePaths: false,
  });
  try {
    const result = await runRestore({
      storage: context.storage,
      keyring: context.keyring,
      key,
      outDir: path.resolve(io.cwd, out),
      only: flags.only,
      overwrite: flags.overwrite ?? false,
      signal: io.signal,
    });
    printJson(io, result);
    return restoreExitCode(result);
  } finally {
    await context.storage.close();
  }
}

/** 13 when the backup does not hold an entry intact, else 1 when one could not be written here. */
export function restoreExitCode(result: RestoreResult): ExitCode {
  if (result.integrity === "failed") return ExitCode.integrity;
  return result.failures.length > 0 ? ExitCode.failure : ExitCode.ok;
}
