/**
 * A Storage wrapper that fails on script (Kopia's faulty blob storage, restic's
 * error backends): "fail the 2nd put", "cut every get after N bytes". For unit
 * tests of what backup and restore do when the store misbehaves.
 */
import { IntellistorError } from "../../lib/errors.ts";
import type { ByteRange, ObjectInfo, Storage } from "../../lib/storage/storage.ts";

export interface FaultScript {
  /** Fail these calls of put (1-based), after consuming the body. */
  failPut?: number[];
  /** Cut the body of these calls of get (1-based) after `cutGetAfter` bytes. */
  cutGet?: number[];
  cutGetAfter?: number;
  /** Store these calls of put (1-based), then fail them: the reply was lost. */
  losePutReply?: number[];
  /** Fail every head. */
  failHead?: boolean;
  /** Fail every delete. */
  failDelete?: boolean;
}

export class FaultyStorage implements Storage {
  readonly calls: { put: string[]; get: string[]; delete: string[] } = {
    put: [],
    get: [],
    delete: [],
  };

  constructor(readonly inner: Storage, readonly script: FaultScript) {}

  get location(): string {
    return this.inner.location;
  }

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo> {
    this.calls.put.push(key);
    if (this.script.failPut?.includes(this.calls.put.length)) {
      await body.cancel();
      throw new IntellistorError("STORAGE_ERROR", `injected: put "${key}" failed`, "test");
    }
    const stored = await this.inner.put(key, body);
    if (this.script.losePutReply?.includes(this.calls.put.length)) {
      throw new IntellistorError(
        "STORAGE_UNREACHABLE",
        `injected: put "${key}" reply lost`,
        "test",
      );
    }
    return stored;
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    this.calls.get.push(key);
    const stream = await this.inner.get(key, range);
    if (!this.script.cutGet?.includes(this.calls.get.length)) return stream;
    const limit = this.script.cutGetAfter ?? 0;
    let passed = 0;
    return stream.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          if (passed + chunk.length > limit) {
            controller.enqueue(chunk.subarray(0, Math.max(0, limit - passed)));
            throw new IntellistorError("STORAGE_ERROR", "injected: connection cut", "test");
          }
          passed += chunk.length;
          controller.enqueue(chunk);
        },
      }),
    );
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    if (this.script.failHead) {
      return Promise.reject(
        new IntellistorError("STORAGE_UNREACHABLE", `injected: head "${key}" failed`, "test"),
      );
    }
    return this.inner.head(key);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  async delete(key: string): Promise<void> {
    this.calls.delete.push(key);
    if (this.script.failDelete) {
      throw new IntellistorError("STORAGE_ERROR", `injected: delete "${key}" failed`, "test");
    }
    await this.inner.delete(key);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** `storage` with some of its calls replaced, for a test's one-off behaviour. */
export function withCalls(
  storage: Storage,
  replaced: Partial<Omit<Storage, "location" | "unfinished">>,
): Storage {
  return {
    location: storage.location,
    put: (key, body) => storage.put(key, body),
    get: (key, range) => storage.get(key, range),
    head: (key) => storage.head(key),
    list: (prefix) => storage.list(prefix),
    delete: (key) => storage.delete(key),
    close: () => storage.close(),
    ...replaced,
  };
}
