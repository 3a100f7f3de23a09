/**
 * Intellistor Backup Client — the SDK. The same operations as the command
 * line, as a typed API.
 *
 * @example Back up a directory to a local store and restore one file type
 * ```ts
 * import { LocalStorage, policyKeyring, runBackup, runRestore, validatePolicy } from "./mod.ts";
 *
 * const policy = validatePolicy({
 *   id: "docs",
 *   paths: ["/srv/docs"],
 *   destination: { type: "local", path: "/mnt/backups" },
 * }, "inline policy");
 * const storage = new LocalStorage("/mnt/backups");
 * const keyring = policyKeyring(policy, Deno.env.toObject()); // the variables the policy names
 * const backup = await runBackup({ policy, storage, keyring });
 * const restored = await runRestore({
 *   storage, keyring, key: backup.key_backup, outDir: "/tmp/restore", only: ["*.png"],
 * });
 * console.log(restored.integrity); // "ok"
 * ```
 * @module
 */
export { type BackupOptions, type BackupResult, formatTimestamp, runBackup } from "./lib/backup.ts";
export {
  type BackupEntry,
  listEntries,
  type ListEntriesOptions,
  type ListEntriesResult,
  type RestoreOptions,
  type RestoreResult,
  type RestoreWarning,
  runRestore,
} from "./lib/restore.ts";
export type { RestoreFailure } from "./lib/archive/extractor.ts";
export {
  type BackupListing,
  type DamagedBackup,
  listBackups,
  type ListOptions,
  type ListResult,
} from "./lib/list.ts";
export {
  type KeepReason,
  planRetention,
  pruneBackups,
  type PruneOptions,
  type PruneResult,
  type RemovedBackup,
  type RetainedBackup,
  retentionEnabled,
  type UntouchedBackup,
} from "./lib/retention.ts";
export type {
  BackupWarning,
  CatalogEntry,
  EntryType,
  SegmentRecord,
} from "./lib/archive/catalog.ts";
export type { Platform } from "./lib/safe_path.ts";
export {
  generateRootKey,
  type Keyring,
  keyringFromEnv,
  policyKeyring,
  type RootSecret,
} from "./lib/crypto/keys.ts";
export {
  createStreamKeys,
  decryptStream,
  encryptStream,
  openHeader,
  type StreamKeys,
} from "./lib/crypto/stream.ts";
export {
  type Manifest,
  MANIFEST_FORMAT,
  MANIFEST_NAME,
  manifestKeyFor,
  OBJECT_NAME,
  openManifest,
  parseManifest,
  type PublicManifest,
  type SealedContent,
} from "./lib/manifest.ts";
export {
  type LocalDestination,
  type NotifySettings,
  type Policy,
  readPolicy,
  renderPolicyYaml,
  type Retention,
  type S3Destination,
  validatePolicy,
  writePolicyFile,
} from "./lib/policy/policy.ts";
export { type CronSchedule, nextRun, parseCron } from "./lib/policy/cron.ts";
export { compilePatterns, type PathMatcher, type PatternOptions } from "./lib/glob.ts";
export type { ByteRange, ObjectInfo, Storage } from "./lib/storage/storage.ts";
export { LocalStorage } from "./lib/storage/local.ts";
export type { S3StorageOptions } from "./lib/storage/s3.ts";
export { createS3Storage, openStorage, type StorageTarget } from "./lib/storage/from_policy.ts";
export { type Environment, type LoadedEnvironment, loadEnvironment } from "./lib/config/env.ts";
export { type ErrorCode, ExitCode, IntellistorError, toIntellistorError } from "./lib/errors.ts";
export { VERSION } from "./lib/version.ts";
