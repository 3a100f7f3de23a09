/**
 * One agent run per policy at a time. The lock is an OS file lock on
 * `agent.lock` (flock / LockFileEx): the OS releases it when the holder dies,
 * so a crashed run never blocks the next one. The file's text records who
 * held it; finding that text without a lock means the previous run crashed.
 */
import path from "node:path";
import { hostname } from "node:os";
import { concatBytes } from "../crypto/bytes.ts";

export interface LockHolder {
  pid: number;
  host: string;
  started_at: string;
}

export type LockResult =
  | { acquired: true; lock: PolicyLock; staleHolder?: LockHolder }
  | { acquired: false; holder?: LockHolder };

export class PolicyLock {
  readonly #file: Deno.FsFile;
  readonly #path: string;

  private constructor(file: Deno.FsFile, lockPath: string) {
    this.#file = file;
    this.#path = lockPath;
  }

  /** Tries to take the lock in `directory` without waiting. */
  static async acquire(directory: string, now = new Date()): Promise<LockResult> {
    await Deno.mkdir(directory, { recursive: true });
    const lockPath = path.join(directory, "agent.lock");
    const file = await Deno.open(lockPath, { read: true, write: true, create: true });
    if (!(await file.tryLock(true))) {
      file.close();
      return { acquired: false, holder: await readHolder(lockPath) };
    }
    // Locked: any holder text left in the file belongs to a run that died.
    // Read through this handle: Windows refuses reads of a locked file
    // through any other one.
    const staleHolder = parseHolder(new TextDecoder().decode(await readAllFrom(file)));
    const holder: LockHolder = { pid: Deno.pid, host: hostname(), started_at: now.toISOString() };
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    await file.write(new TextEncoder().encode(JSON.stringify(holder)));
    return { acquired: true, lock: new PolicyLock(file, lockPath), staleHolder };
  }

  /**
   * Empties the holder text (a clean end) and closes the file, which releases
   * the lock on every OS. No explicit unlock: under Wine it fails with a lock
   * violation, and nothing may turn a finished run into a failed one here.
   */
  async release(): Promise<void> {
    try {
      await this.#file.truncate(0);
    } catch {
      // The next run would only report a stale holder: harmless.
    } finally {
      this.#file.close();
    }
  }

  get path(): string {
    return this.#path;
  }
}

/** The holder of a lock held by another process (unreadable on Windows: undefined). */
async function readHolder(lockPath: string): Promise<LockHolder | undefined> {
  try {
    return parseHolder(await Deno.readTextFile(lockPath));
  } catch {
    return undefined;
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    return text.trim() === "" ? undefined : JSON.parse(text) as LockHolder;
  } catch {
    return undefined;
  }
}

async function readAllFrom(file: Deno.FsFile): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  await file.seek(0, Deno.SeekMode.Start);
  for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
    chunks.push(buffer.slice(0, n));
    if (chunks.length > 16) break; // a holder is a few dozen bytes
  }
  return concatBytes(...chunks);
}
