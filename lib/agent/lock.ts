/**
 * One agent run per policy at a time. The lock is an OS file lock on
 * `agent.lock` (flock / LockFileEx): the OS releases it when the holder dies,
 * so a crashed run never blocks the next one. The file's text records who
 * held it; finding that text without a lock means the previous run crashed.
 */
import path from "node:path";
import { hostname } from "node:os";

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
    const staleHolder = await readHolder(lockPath);
    const holder: LockHolder = { pid: Deno.pid, host: hostname(), started_at: now.toISOString() };
    await file.truncate(0);
    await file.write(new TextEncoder().encode(JSON.stringify(holder)));
    return { acquired: true, lock: new PolicyLock(file, lockPath), staleHolder };
  }

  /** Empties the holder text (a clean end), then releases the lock. */
  async release(): Promise<void> {
    try {
      await this.#file.truncate(0);
      await this.#file.unlock();
    } finally {
      this.#file.close();
    }
  }

  get path(): string {
    return this.#path;
  }
}

async function readHolder(lockPath: string): Promise<LockHolder | undefined> {
  try {
    const text = await Deno.readTextFile(lockPath);
    return text.trim() === "" ? undefined : JSON.parse(text) as LockHolder;
  } catch {
    return undefined;
  }
}
