/**
 * One unattended run of a policy, as the scheduler starts it:
 * lock → backup → log → upload the log (and any left by earlier runs) → result.
 * A failed run writes and uploads its log too; a log that cannot be uploaded
 * stays local and goes up with the next run.
 */
import { hostname } from "node:os";
import path from "node:path";
import { type BackupResult, formatTimestamp, runBackup } from "../backup.ts";
import type { Environment } from "../config/env.ts";
import type { Keyring } from "../crypto/keys.ts";
import { ExitCode, toIntellistorError } from "../errors.ts";
import type { Policy } from "../policy/policy.ts";
import { pruneBackups, type PruneOptions, retentionEnabled } from "../retention.ts";
import type { Storage } from "../storage/storage.ts";
import { VERSION } from "../version.ts";
import { type LockHolder, PolicyLock } from "./lock.ts";
import { type NotifyOutcome, notifyRun } from "./notify.ts";
import { logKey, logPaths, RunLog, uploadPendingLogs, type UploadReport } from "./run_log.ts";

export interface AgentRunOptions {
  policy: Policy;
  /** Absolute paths, recorded in the log. */
  policyPath: string;
  envFile: string;
  /** Where locks and local logs live (one folder per policy inside). */
  stateDir: string;
  /**
   * Set-up steps, called in this order after the lock is held, so that their
   * failures (no .env, bad key, unreachable store) are logged like any other
   * failed run; the store comes before the keys so a key problem's log can
   * still be uploaded.
   */
  loadEnvironment: () => Promise<Environment>;
  openStorage: (env: Environment) => Promise<Storage>;
  keyring: (env: Environment) => Keyring;
  /** Never archived even inside a source: the store, the .env file (the state directory is added). */
  skipPaths?: string[];
  /** Aborting it stops the backup; the run is logged as interrupted. */
  signal?: AbortSignal;
}

export interface AgentRunResult {
  policy: string;
  status: "ok" | "partial" | "failed" | "already_running";
  exit_code: number;
  backup_id?: string;
  timestamp?: string;
  backup?: Omit<BackupResult, "warnings" | "partial"> & { warnings: number };
  error?: { code: string; message: string; hint: string };
  /** The holder of the lock when another run is going. */
  running?: LockHolder;
  /** A run that had died holding the lock, whose lock was taken over. */
  stale_lock?: LockHolder;
  log?: { file: string; key: string; uploaded: boolean };
  /**
   * The policy's retention applied after a successful backup: how many
   * backups were kept and which were deleted, or why that failed (the run's
   * status and exit code are the backup's either way).
   */
  prune?: { kept: number; removed: string[]; untouched: number } | {
    error: { code: string; message: string; hint: string };
  };
  /** Logs of earlier runs that went up with this one. */
  earlier_logs_uploaded?: string[];
  notify?: NotifyOutcome;
}

export async function runAgent(options: AgentRunOptions): Promise<AgentRunResult> {
  const { policy } = options;
  const policyDir = path.join(options.stateDir, policy.id);
  const locked = await PolicyLock.acquire(policyDir);
  if (!locked.acquired) {
    return {
      policy: policy.id,
      status: "already_running",
      exit_code: ExitCode.alreadyRunning,
      running: locked.holder,
      error: {
        code: "ALREADY_RUNNING",
        message: `Another run of policy "${policy.id}" is in progress` +
          (locked.holder ? ` (pid ${locked.holder.pid} since ${locked.holder.started_at})` : ""),
        hint: "This run was skipped; the next scheduled run will take place as usual.",
      },
    };
  }

  const started = new Date();
  const startedMs = performance.now();
  const timestamp = formatTimestamp(started);
  const backupId = crypto.randomUUID();
  const paths = logPaths(policyDir);
  const log = new RunLog(paths, timestamp, backupId);
  const result: AgentRunResult = {
    policy: policy.id,
    status: "failed",
    exit_code: ExitCode.failure,
    backup_id: backupId,
    timestamp,
  };
  let storage: Storage | undefined;
  let env: Environment | undefined;
  // A stop (Ctrl+C, SIGTERM, a shutdown) may end the process before the
  // backup's clean-up returns, if the store stopped answering: write the log
  // now, so that it goes up with the next run whatever happens.
  const onStop = () => {
    log.event("stop_requested");
    log.save().catch(() => {});
  };
  options.signal?.addEventListener("abort", onStop, { once: true });
  try {
    log.event("start", {
      policy_id: policy.id,
      backup_id: backupId,
      host: hostname(),
      pid: Deno.pid,
      client_version: VERSION,
      policy_file: options.policyPath,
      env_file: options.envFile,
    });
    if (locked.staleHolder) {
      result.stale_lock = locked.staleHolder;
      log.event("stale_lock_taken_over", { previous: locked.staleHolder });
    }
    // On disk from the start: a run killed outright (SIGKILL, a power cut)
    // still leaves its log in pending/, for the next run to upload.
    await log.save();
    try {
      env = await options.loadEnvironment();
      storage = await options.openStorage(env);
      const keyring = options.keyring(env);
      // A summary of the configuration: names and places, never secrets.
      log.event("configuration", {
        destination: storage.location,
        paths: policy.paths,
        exclude: policy.exclude,
        compression_level: policy.compression.level,
        key_variable: keyring.current.source,
        schedule: policy.schedule,
      });
      const backup = await runBackup({
        policy,
        storage,
        keyring,
        backupId,
        now: () => started,
        skipPaths: [...(options.skipPaths ?? []), options.stateDir],
        signal: options.signal,
      });
      for (const warning of backup.warnings) log.event("warning", { ...warning });
      const { warnings, partial, ...counts } = backup;
      result.backup = { ...counts, warnings: warnings.length };
      result.status = partial ? "partial" : "ok";
      result.exit_code = partial ? ExitCode.partial : ExitCode.ok;
      log.event("result", { status: result.status, ...result.backup });
      if (retentionEnabled(policy.retention)) {
        const prune = { keep: [backup.key_backup], signal: options.signal };
        result.prune = await applyRetention(storage, policy, keyring, log, prune);
      }
    } catch (error) {
      const failure = toIntellistorError(error);
      const { code, message, hint } = failure.toJSON().error;
      result.error = { code, message, hint };
      result.exit_code = failure.exitCode;
      log.event("error", { code, message, hint, exit_code: failure.exitCode });
    }
    const durationMs = Math.round(performance.now() - startedMs);
    if (env !== undefined) {
      result.notify = await notifyRun(policy.notify, env, {
        policy_id: policy.id,
        status: result.status === "ok" || result.status === "partial" ? result.status : "failed",
        exit_code: result.exit_code,
        backup_id: backupId,
        timestamp,
        host: hostname(),
        files: result.backup?.files,
        bytes: result.backup?.bytes,
        compressed_bytes: result.backup?.compressed_bytes,
        duration_ms: durationMs,
        warnings: result.backup?.warnings,
        error: result.error && { code: result.error.code, message: result.error.message },
      });
      if (result.notify.sent || "error" in result.notify) {
        log.event("notify", { ...result.notify });
      }
    }
    log.event("end", {
      status: result.status,
      exit_code: result.exit_code,
      duration_ms: durationMs,
    });
    // From here a stop must not write the log again: it may already be uploaded.
    options.signal?.removeEventListener("abort", onStop);
    await log.save();
    // A store that just failed as unreachable (each request given up after
    // minutes of silence) is not tried again: the log goes up with the next run.
    const pruneError = result.prune && "error" in result.prune ? result.prune.error : undefined;
    const unreachable = [result.error, pruneError]
      .some((error) => error?.code === "STORAGE_UNREACHABLE");
    const upload: UploadReport = storage && !unreachable
      ? await uploadPendingLogs(storage, policy.id, paths)
      : { uploaded: [], failed: [] };
    const key = logKey(policy.id, log.fileName);
    const uploaded = upload.uploaded.includes(key);
    result.log = {
      file: uploaded ? path.join(paths.uploaded, log.fileName) : log.file,
      key,
      uploaded,
    };
    result.earlier_logs_uploaded = upload.uploaded.filter((k) => k !== key);
    return result;
  } finally {
    options.signal?.removeEventListener("abort", onStop);
    await storage?.close();
    await locked.lock.release();
  }
}

/** Deletes what the policy's retention does not keep; a failure is logged, never thrown. */
async function applyRetention(
  storage: Storage,
  policy: Policy,
  keyring: Keyring,
  log: RunLog,
  options: Pick<PruneOptions, "keep" | "signal">,
): Promise<NonNullable<AgentRunResult["prune"]>> {
  try {
    const pruned = await pruneBackups({ storage, policy, keyring, ...options });
    const outcome = {
      kept: pruned.kept.length,
      removed: pruned.removed.map((backup) => backup.key_backup),
      untouched: pruned.untouched.length,
    };
    // Why backups were left alone, counted by reason: a renamed host or an
    // edited path list shows here before such backups pile up unnoticed.
    const reasons: Record<string, number> = {};
    for (const { reason } of pruned.untouched) reasons[reason] = (reasons[reason] ?? 0) + 1;
    log.event("prune", { ...outcome, untouched_reasons: reasons });
    return outcome;
  } catch (error) {
    const { code, message, hint } = toIntellistorError(error).toJSON().error;
    log.event("prune_error", { code, message, hint });
    return { error: { code, message, hint } };
  }
}
