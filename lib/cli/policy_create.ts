/** `intellistor policy-create --out FILE [--paths DIR]… [--schedule CRON] [--id ID] …` */
import path from "node:path";
import { IntellistorError } from "../errors.ts";
import {
  checkPathsExist,
  DEFAULT_COMPRESSION_LEVEL,
  DEFAULT_POLICY_ID,
  DEFAULT_SCHEDULE,
  validatePolicy,
  writePolicyFile,
} from "../policy/policy.ts";
import { parseFlags, required } from "./args.ts";
import { type CliIo, printJson } from "./io.ts";

export const policyCreateHelp = `Usage: intellistor policy-create --out FILE [options]

Writes a commented policy (YAML): what to protect, when, and where to.
  --out FILE              where to write the policy (refused if it exists, unless --force)
  --paths PATH            a file or directory to protect (repeatable; default: the current directory)
  --schedule CRON         5-field cron (default: "${DEFAULT_SCHEDULE}")
  --id ID                 policy id, used in object keys (default: ${DEFAULT_POLICY_ID})
  --exclude GLOB          skip entries whose relative_path matches (repeatable)
  --bucket NAME           S3 bucket (default: AWS_S3_BUCKET at run time)
  --prefix PREFIX         key prefix inside the bucket
  --endpoint URL          S3-compatible endpoint (MinIO, R2, B2, Wasabi, Ceph…)
  --region REGION         S3 region
  --local-dir DIR         store backups in a local directory instead of S3
  --compression-level N   gzip level 1-9 (default: ${DEFAULT_COMPRESSION_LEVEL})
  --key-env NAME          variable holding the base64 key (default: INTELLISTOR_KEY)
  --passphrase-env NAME   variable holding a passphrase (default: INTELLISTOR_PASSPHRASE)
  --keep-last N           retention: keep the newest N backups (default 0; with every
  --keep-daily N            --keep-* at 0, every backup is kept), the newest of each
  --keep-weekly N           of the last N days, weeks and months with backups;
  --keep-monthly N          "intellistor prune" and the agent delete the others
  --force                 replace an existing policy file`;

export async function policyCreateCommand(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("policy-create", argv, {
    out: { type: "string" },
    paths: { type: "string", multiple: true },
    schedule: { type: "string" },
    id: { type: "string" },
    exclude: { type: "string", multiple: true },
    bucket: { type: "string" },
    prefix: { type: "string" },
    endpoint: { type: "string" },
    region: { type: "string" },
    "local-dir": { type: "string" },
    "compression-level": { type: "string" },
    "key-env": { type: "string" },
    "passphrase-env": { type: "string" },
    "keep-last": { type: "string" },
    "keep-daily": { type: "string" },
    "keep-weekly": { type: "string" },
    "keep-monthly": { type: "string" },
    force: { type: "boolean" },
  });
  // Digits become numbers; anything else goes to the policy's check as given, to be named there.
  const count = (value: string | undefined) =>
    value === undefined ? 0 : /^\d+$/.test(value) ? Number(value) : value;
  const out = required("policy-create", "out", flags.out);
  const s3Flags = ["bucket", "prefix", "endpoint", "region"] as const;
  if (flags["local-dir"] !== undefined && s3Flags.some((f) => flags[f] !== undefined)) {
    throw new IntellistorError(
      "USAGE",
      "policy-create: --local-dir cannot be combined with --bucket, --prefix, --endpoint or --region",
      "Choose one destination: a local directory or an S3 bucket.",
    );
  }
  const level = flags["compression-level"];
  const policy = validatePolicy({
    version: 1,
    id: flags.id ?? DEFAULT_POLICY_ID,
    paths: (flags.paths ?? [io.cwd]).map((p) => path.resolve(io.cwd, p)),
    exclude: flags.exclude ?? [],
    schedule: flags.schedule ?? DEFAULT_SCHEDULE,
    destination: flags["local-dir"] !== undefined
      ? { type: "local", path: path.resolve(io.cwd, flags["local-dir"]) }
      : {
        type: "s3",
        bucket: flags.bucket ?? "",
        prefix: flags.prefix ?? "",
        endpoint: flags.endpoint ?? "",
        region: flags.region ?? "",
      },
    compression: { level: level === undefined ? DEFAULT_COMPRESSION_LEVEL : count(level) },
    encryption: {
      key_env: flags["key-env"] ?? "INTELLISTOR_KEY",
      passphrase_env: flags["passphrase-env"] ?? "INTELLISTOR_PASSPHRASE",
    },
    retention: {
      keep_last: count(flags["keep-last"]),
      keep_daily: count(flags["keep-daily"]),
      keep_weekly: count(flags["keep-weekly"]),
      keep_monthly: count(flags["keep-monthly"]),
    },
  }, out);
  await checkPathsExist(policy, out);
  await writePolicyFile(path.resolve(io.cwd, out), policy, { force: flags.force ?? false });
  printJson(io, { created: out });
  return 0;
}
