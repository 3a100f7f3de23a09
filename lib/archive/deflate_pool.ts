/**
 * Deflates gzip-member pieces on every core, after reading their small files
 * into them (piece_files.ts).
 *
 * Pieces are independent (gzip_member.ts), so a pool of workers, one per
 * core, fills and deflates them concurrently; callers keep the output order by awaiting
 * the promises in the order they asked. Piece buffers move to a worker and
 * back without copying, and are handed out again, so memory is bounded by the
 * number of pieces in flight, which the caller limits.
 */
import { deflateFilledPiece, PieceCompressor } from "./deflate_piece.ts";
import { PIECE_SIZE } from "./gzip_member.ts";
import type { FilledPiece, PieceFiles } from "./piece_files.ts";

/** A piece deflated, after its files were read into it (piece_files.ts). */
export interface PieceResult extends FilledPiece {
  output: Uint8Array;
  /** The CRC-32 of the piece's uncompressed bytes, once its files are in. */
  crc: number;
}

export interface PieceDeflater {
  /** A buffer of `PIECE_SIZE` bytes to fill with the next piece. */
  takeBuffer(): Uint8Array;
  /**
   * Reads `files` into the first `length` bytes of `piece` (a buffer from
   * takeBuffer; the deflater owns it from now on), then deflates them.
   */
  deflate(
    piece: Uint8Array,
    length: number,
    level: number,
    final: boolean,
    files: PieceFiles,
  ): Promise<PieceResult>;
  /** Ends the workers; pieces still in flight are abandoned. */
  close(): void;
}

/** One core's worth of work per worker; at least one. */
export function defaultWorkerCount(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

/**
 * Deflates on `workers` worker threads; with 0, or when no worker can start,
 * in this thread.
 */
export function createPieceDeflater(workers = defaultWorkerCount()): PieceDeflater {
  return new WorkerPoolDeflater(workers);
}

export interface DeflateRequest {
  id: number;
  buffer: ArrayBuffer;
  length: number;
  level: number;
  final: boolean;
  files: PieceFiles;
}

export interface DeflateReply {
  id: number;
  buffer: ArrayBuffer;
  result?: Omit<PieceResult, "output"> & { output: ArrayBuffer };
  error?: string;
}

interface Job {
  request: DeflateRequest;
  resolve: (result: PieceResult) => void;
  reject: (error: Error) => void;
}

const WORKER_URL = new URL("./deflate_worker.ts", import.meta.url);

class WorkerPoolDeflater implements PieceDeflater {
  readonly #maxWorkers: number;
  readonly #workers: Worker[] = [];
  readonly #idle: Worker[] = [];
  readonly #queue: Job[] = [];
  readonly #running = new Map<number, Job>();
  readonly #freeBuffers: ArrayBuffer[] = [];
  #nextId = 0;
  #compressor: PieceCompressor | undefined;
  /** Set when a worker cannot be started: deflate here instead. */
  #inThread = false;
  #closed = false;

  constructor(maxWorkers: number) {
    this.#maxWorkers = maxWorkers;
    this.#inThread = maxWorkers < 1;
  }

  takeBuffer(): Uint8Array {
    return new Uint8Array(this.#freeBuffers.pop() ?? new ArrayBuffer(PIECE_SIZE));
  }

  deflate(
    piece: Uint8Array,
    length: number,
    level: number,
    final: boolean,
    files: PieceFiles,
  ): Promise<PieceResult> {
    if (this.#closed) return Promise.reject(new Error("deflater is closed"));
    if (this.#inThread || !this.#ensureWorker()) {
      this.#compressor ??= new PieceCompressor();
      const result = deflateFilledPiece(this.#compressor, piece, length, level, final, files);
      this.#freeBuffers.push(piece.buffer as ArrayBuffer);
      return Promise.resolve(result);
    }
    const request: DeflateRequest = {
      id: this.#nextId++,
      buffer: piece.buffer as ArrayBuffer,
      length,
      level,
      final,
      files,
    };
    const promise = new Promise<PieceResult>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
    });
    // The caller awaits it later, in order; until then a failure must not
    // count as an unhandled rejection.
    promise.catch(() => {});
    this.#dispatch();
    return promise;
  }

  close(): void {
    this.#closed = true;
    for (const worker of this.#workers) worker.terminate();
    this.#workers.length = 0;
    this.#idle.length = 0;
    this.#queue.length = 0;
    this.#running.clear();
  }

  /** Starts another worker while every started one is busy; false when none can start. */
  #ensureWorker(): boolean {
    if (this.#idle.length > 0 || this.#workers.length >= this.#maxWorkers) return true;
    let worker: Worker;
    try {
      worker = new Worker(WORKER_URL, { type: "module" });
    } catch {
      if (this.#workers.length > 0) return true;
      this.#inThread = true;
      return false;
    }
    worker.onmessage = (event: MessageEvent<DeflateReply>) => this.#settle(worker, event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#failAll(new Error(`deflate worker failed: ${event.message}`));
    };
    this.#workers.push(worker);
    this.#idle.push(worker);
    return true;
  }

  #dispatch(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const worker = this.#idle.pop()!;
      const job = this.#queue.shift()!;
      this.#running.set(job.request.id, job);
      worker.postMessage(job.request, [job.request.buffer, job.request.files.layout.buffer]);
    }
  }

  #settle(worker: Worker, reply: DeflateReply): void {
    if (this.#closed) return;
    const job = this.#running.get(reply.id);
    this.#running.delete(reply.id);
    this.#freeBuffers.push(reply.buffer);
    this.#idle.push(worker);
    if (reply.result !== undefined) {
      job?.resolve({ ...reply.result, output: new Uint8Array(reply.result.output) });
    } else job?.reject(new Error(`deflate failed: ${reply.error}`));
    this.#dispatch();
  }

  #failAll(error: Error): void {
    for (const job of [...this.#running.values(), ...this.#queue]) job.reject(error);
    this.close();
  }
}
