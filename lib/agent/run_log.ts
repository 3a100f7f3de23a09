/**
 * The agent's log of one run: JSON lines (start, warnings, result or error,
 * end), no secrets. Written locally first; uploaded to
 * `logs/<policy_id>/<timestamp>_<backup_id>.jsonl`. A log whose upload failed
 * stays in the pending folder and goes up with the next run; uploaded logs are
 * kept locally too, the newest `KEEP_UPLOADED_LOGS` of them.
 */
import path from "node:path";
import type { Storage } from "../storage/storage.ts";

export const KEEP_UPLOADED_LOGS = 30;

export interface LogPaths {
  /** Logs not yet uploaded. */
  pending: string;
  /** Logs uploaded, kept for local reading. */
  uploaded: string;
}

export function logPaths(policyStateDir: string): LogPaths {
  const base = path.join(policyStateDir, "logs");
  return { pending: path.join(base, "pending"), uploaded: path.join(base, "uploaded") };
}

/** The object key of a run's log. */
export function logKey(policyId: string, fileName: string): string {
  return `logs/${policyId}/${fileName}`;
}

export class RunLog {
  readonly file: string;
  readonly fileName: string;
  #lines: string[] = [];
  #saving: Promise<void> = Promise.resolve();

  constructor(paths: LogPaths, timestamp: string, backupId: string) {
    this.fileName = `${timestamp}_${backupId}.jsonl`;
    this.file = path.join(paths.pending, this.fileName);
  }

  /** Appends one event, stamped with the time. */
  event(event: string, fields: Record<string, unknown> = {}): void {
    this.#lines.push(JSON.stringify({ time: new Date().toISOString(), event, ...fields }));
  }

  /**
   * Writes the log file (atomically: temp + rename), so a crash never leaves
   * half a line. Saves run one after another: a save made when a stop is
   * requested never races the run's last one.
   */
  save(): Promise<void> {
    const write = async () => {
      await Deno.mkdir(path.dirname(this.file), { recursive: true });
      const temporary = `${this.file}.tmp`;
      await Deno.writeTextFile(temporary, this.#lines.join("\n") + "\n");
      await Deno.rename(temporary, this.file);
    };
    const saved = this.#saving.then(write);
    this.#saving = saved.catch(() => {});
    return saved;
  }
}

export interface UploadReport {
  uploaded: string[];
  failed: { file: string; error: string }[];
}

/** Uploads every pending log (this run's and any left by earlier runs), oldest first. */
export async function uploadPendingLogs(
  storage: Storage,
  policyId: string,
  paths: LogPaths,
): Promise<UploadReport> {
  const report: UploadReport = { uploaded: [], failed: [] };
  let names: string[] = [];
  try {
    for await (const item of Deno.readDir(paths.pending)) {
      if (item.isFile && item.name.endsWith(".jsonl")) names.push(item.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  names = names.sort();
  await Deno.mkdir(paths.uploaded, { recursive: true });
  for (const name of names) {
    const file = path.join(paths.pending, name);
    try {
      const handle = await Deno.open(file, { read: true });
      await storage.put(logKey(policyId, name), handle.readable);
      await Deno.rename(file, path.join(paths.uploaded, name));
      report.uploaded.push(logKey(policyId, name));
    } catch (error) {
      report.failed.push({ file, error: error instanceof Error ? error.message : String(error) });
    }
  }
  await pruneUploaded(paths.uploaded);
  return report;
}

async function pruneUploaded(directory: string): Promise<void> {
  const names: string[] = [];
  for await (const item of Deno.readDir(directory)) {
    if (item.isFile && item.name.endsWith(".jsonl")) names.push(item.name);
  }
  // Names start with the UTC timestamp: sorting by name is sorting by time.
  for (const name of names.sort().slice(0, Math.max(0, names.length - KEEP_UPLOADED_LOGS))) {
    await Deno.remove(path.join(directory, name)).catch(() => {});
  }
}
