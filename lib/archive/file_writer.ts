/**
 * Writes verified small files for a restore, on a thread of their own once
 * there are many.
 *
 * Creating a file costs more than everything else a restore does for a
 * small one (50,000 files of ~1 KiB, measured: open 9, write 5, times 3,
 * close 2.5 and rename 7 µs each, more when the disk is busy), and each call
 * blocks. Written from the restore's thread, they stalled decryption and
 * decompression; a worker now makes them while the restore's thread goes on,
 * one batch of files per message, their contents in one transferred buffer.
 *
 * Every file is written as before: under a temporary name, with its mode
 * and time, then renamed, so no half-written file ever has its real name.
 * The first files of a restore are written in this thread: a worker starts
 * only when there are enough files to pay for it.
 */
import { IntellistorError, isDiskFull } from "../errors.ts";

/** One verified file: where to write it and what to give it. Paths as given to the OS. */
export interface FileJob {
  temporary: string;
  target: string;
  /** Permission bits the file is created with. */
  mode: number;
  /** chmod after creation (the umask took some of `mode` away). */
  chmod: boolean;
  mtime: number;
}

/** How writing one file ended: undefined when written; else why not (`raw`: the OS's message). */
export type FileWriteFailure = { message: string; raw: string } | undefined;

/** Writes `content` as `job.target`, through its temporary name; throws on failure (nothing left behind). */
function writeFileThroughTemporary(job: FileJob, content: Uint8Array): void {
  let renamed = false;
  try {
    const file = Deno.openSync(job.temporary, { write: true, createNew: true, mode: job.mode });
    try {
      let written = 0;
      while (written < content.length) written += file.writeSync(content.subarray(written));
      const mtime = new Date(job.mtime);
      file.utimeSync(mtime, mtime);
    } finally {
      file.close();
    }
    if (job.chmod) Deno.chmodSync(job.temporary, job.mode);
    Deno.renameSync(job.temporary, job.target);
    renamed = true;
  } finally {
    if (!renamed) {
      try {
        Deno.removeSync(job.temporary);
      } catch {
        // never created, or already gone
      }
    }
  }
}

/** A one-line reason for a file's failure, without a stack. */
export function messageOf(error: unknown): string {
  if (error instanceof IntellistorError) return error.message;
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * What the worker is asked: these files, contents back to back in `buffer`.
 * Flat, not an object per file: cloning 64 objects per message cost the
 * restore's thread more than building one string and one array.
 */
export interface FileBatch {
  id: number;
  buffer: ArrayBuffer;
  /** Each file's temporary name then its target, NUL after each (no path holds one). */
  names: string;
  /** FIELDS numbers per file: mode, chmod (1 or 0), mtime, length. */
  numbers: Float64Array<ArrayBuffer>;
}

/** Numbers per file in `FileBatch.numbers`. */
const FIELDS = 4;

/** How a batch went: the files that failed, by their place in it. */
export interface FileBatchReply {
  id: number;
  buffer: ArrayBuffer;
  numbers: Float64Array<ArrayBuffer>;
  failures: (NonNullable<FileWriteFailure> & { index: number })[];
}

/** Writes one file, saying how it went instead of throwing. */
function writeOne(job: FileJob, content: Uint8Array): FileWriteFailure {
  try {
    writeFileThroughTemporary(job, content);
    return undefined;
  } catch (error) {
    return {
      message: messageOf(error),
      raw: error instanceof Error ? error.message : String(error),
    };
  }
}

/** Writes one batch; the worker's whole job, and this thread's without one. */
export function writeBatch(batch: FileBatch): FileBatchReply {
  const contents = new Uint8Array(batch.buffer);
  const { names, numbers } = batch;
  const failures: FileBatchReply["failures"] = [];
  let offset = 0;
  let nameStart = 0;
  const nextName = () => {
    const end = names.indexOf("\0", nameStart);
    const name = names.slice(nameStart, end);
    nameStart = end + 1;
    return name;
  };
  for (let index = 0, at = 0; at < numbers.length; index++, at += FIELDS) {
    const temporary = nextName();
    const target = nextName();
    const length = numbers[at + 3];
    const job = {
      temporary,
      target,
      mode: numbers[at],
      chmod: numbers[at + 1] === 1,
      mtime: numbers[at + 2],
    };
    const failure = writeOne(job, contents.subarray(offset, offset + length));
    if (failure !== undefined) failures.push({ index, ...failure });
    offset += length;
  }
  return { id: batch.id, buffer: batch.buffer, numbers, failures };
}

/** Files written in this thread before a worker is started. */
const FILES_BEFORE_WORKER = 256;
/** A batch is sent once it holds this many files or bytes. */
const BATCH_FILES = 64;
const BATCH_BYTES = 1 << 20;
/** Batches sent and not yet answered; more waits (memory stays bounded). */
const BATCHES_IN_FLIGHT = 2;

const WORKER_URL = new URL("./file_writer_worker.ts", import.meta.url);

interface OpenBatch {
  id: number;
  contents: Uint8Array;
  used: number;
  names: string[];
  numbers: Float64Array<ArrayBuffer>;
  done: ((failure: FileWriteFailure) => void)[];
}

/**
 * Hands files to the worker in batches, in order; `done` is called for each
 * file once it is written or has failed. `drain` waits for all of them.
 */
export class FileWriter {
  #written = 0;
  #worker: Worker | undefined;
  #inThread = false;
  #open: OpenBatch | undefined;
  readonly #sent = new Map<number, OpenBatch>();
  #nextId = 0;
  readonly #freeBuffers: ArrayBuffer[] = [];
  readonly #freeNumbers: Float64Array<ArrayBuffer>[] = [];
  /** Resolved when an answer arrives (the sender may be waiting for room). */
  #answered = Promise.withResolvers<void>();
  #failure: Error | undefined;

  /**
   * Writes the file, or queues it (`content` is copied: the caller may then
   * reuse its buffer). Returns undefined when that is done; a promise when
   * it must first wait for room, and `content` must not change until it resolves.
   */
  write(
    job: FileJob,
    content: Uint8Array,
    done: (failure: FileWriteFailure) => void,
  ): Promise<void> | undefined {
    this.#throwIfFailed();
    if (this.#written++ < FILES_BEFORE_WORKER || this.#inThread) {
      done(writeOne(job, content));
      return undefined;
    }
    if (this.#open && this.#open.contents.length - this.#open.used < content.length) {
      return this.#send().then(() => this.#queue(job, content, done));
    }
    return this.#queue(job, content, done);
  }

  #queue(
    job: FileJob,
    content: Uint8Array,
    done: (failure: FileWriteFailure) => void,
  ): Promise<void> | undefined {
    this.#open ??= this.#newBatch(content.length);
    const batch = this.#open;
    batch.contents.set(content, batch.used);
    batch.used += content.length;
    batch.names.push(job.temporary, job.target);
    const at = batch.done.length * FIELDS;
    batch.numbers[at] = job.mode;
    batch.numbers[at + 1] = job.chmod ? 1 : 0;
    batch.numbers[at + 2] = job.mtime;
    batch.numbers[at + 3] = content.length;
    batch.done.push(done);
    if (batch.done.length >= BATCH_FILES || batch.used >= BATCH_BYTES) return this.#send();
    return undefined;
  }

  /** Waits until every file handed over is written or has failed. */
  async drain(): Promise<void> {
    if (this.#open) await this.#send();
    while (this.#sent.size > 0 && this.#failure === undefined) await this.#answered.promise;
    this.#throwIfFailed();
  }

  /** Ends the worker (after `drain`, nothing is lost; files still in flight are not reported). */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#sent.clear();
    this.#wake();
  }

  #newBatch(atLeast: number): OpenBatch {
    const size = Math.max(BATCH_BYTES, atLeast);
    const free = this.#freeBuffers.pop();
    const contents = free !== undefined && free.byteLength >= size
      ? new Uint8Array(free)
      : new Uint8Array(size);
    const numbers = this.#freeNumbers.pop() ?? new Float64Array(BATCH_FILES * FIELDS);
    return { id: this.#nextId++, contents, used: 0, names: [], numbers, done: [] };
  }

  async #send(): Promise<void> {
    const batch = this.#open;
    if (batch === undefined) return;
    this.#open = undefined;
    while (this.#sent.size >= BATCHES_IN_FLIGHT && this.#failure === undefined) {
      await this.#answered.promise;
    }
    this.#throwIfFailed();
    const worker = this.#ensureWorker();
    const request: FileBatch = {
      id: batch.id,
      buffer: batch.contents.buffer as ArrayBuffer,
      names: batch.names.join("\0") + "\0",
      numbers: batch.numbers.subarray(0, batch.done.length * FIELDS),
    };
    if (worker === undefined) {
      this.#settle(writeBatch(request), batch);
      return;
    }
    this.#sent.set(batch.id, batch);
    worker.postMessage(request, [request.buffer, request.numbers.buffer]);
  }

  #ensureWorker(): Worker | undefined {
    if (this.#worker !== undefined || this.#inThread) return this.#worker;
    try {
      const worker = new Worker(WORKER_URL, { type: "module" });
      worker.onmessage = (event: MessageEvent<FileBatchReply>) => {
        const batch = this.#sent.get(event.data.id);
        this.#sent.delete(event.data.id);
        if (batch !== undefined) this.#settle(event.data, batch);
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        this.#failure = new Error(`file writer failed: ${event.message}`);
        this.#wake();
      };
      this.#worker = worker;
    } catch {
      this.#inThread = true;
    }
    return this.#worker;
  }

  #settle(reply: FileBatchReply, batch: OpenBatch): void {
    this.#freeBuffers.push(reply.buffer);
    this.#freeNumbers.push(new Float64Array(reply.numbers.buffer));
    const failures: FileWriteFailure[] = [];
    for (const { index, message, raw } of reply.failures) failures[index] = { message, raw };
    batch.done.forEach((done, i) => done(failures[i]));
    this.#wake();
  }

  #wake(): void {
    this.#answered.resolve();
    this.#answered = Promise.withResolvers<void>();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}

/** True when a file's failure means every following one would fail too. */
export function failureEndsRestore(failure: NonNullable<FileWriteFailure>): boolean {
  return isDiskFull(failure.raw);
}
