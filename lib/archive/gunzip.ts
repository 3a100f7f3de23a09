/**
 * Multi-member gzip decompression for the restore (DecompressionStream stops
 * after the first member).
 */
import zlib from "node:zlib";

/** Output chunk size: fewer steps for every stage after this one. */
const OUTPUT_CHUNK = 256 << 10;

/**
 * node:zlib driven by hand rather than through Duplex.toWeb, which ignores
 * backpressure in Deno. Both ways are back-pressured: a compressed chunk is
 * written only once the previous one was taken in, and zlib makes the next
 * output chunk only once the reader has taken the previous one. That second
 * rule bounds memory for any compression ratio: 64 KiB of deflated zeros
 * inflate to 64 MiB, which would otherwise be queued at once.
 */
export function gunzip(): ReadableWritablePair<Uint8Array, Uint8Array> {
  const inflater = zlib.createGunzip({ chunkSize: OUTPUT_CHUNK });
  let output!: ReadableStreamDefaultController<Uint8Array>;
  // Cancelled, errored or ended: zlib may still emit a chunk it held, to be dropped.
  let finished = false;
  // zlib reports bad data as an 'error' event: keep it, and fail the next step with it.
  let failure: unknown;
  let fail!: (error: unknown) => void;
  const failed = new Promise<never>((_, reject) => {
    fail = (error) => {
      finished = true;
      failure ??= error;
      reject(failure);
    };
  });
  failed.catch(() => {});
  inflater.once("error", (error) => {
    fail(error);
    output.error(error);
  });
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      output = controller;
    },
    pull() {
      inflater.resume();
    },
    cancel(reason) {
      // A write still waiting for its output to be read fails instead of hanging.
      fail(reason ?? new Error("gunzip: the reader stopped"));
      inflater.destroy();
    },
  }, new CountQueuingStrategy({ highWaterMark: 1 }));
  inflater.on("data", (chunk: Uint8Array) => {
    if (finished) return;
    output.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    // zlib then stops once its own small buffer is full, until `pull` resumes it.
    if (output.desiredSize !== null && output.desiredSize <= 0) inflater.pause();
  });
  inflater.once("end", () => {
    if (finished) return;
    finished = true;
    output.close();
  });
  const step = (action: (done: (error?: Error | null) => void) => void) =>
    failure !== undefined ? Promise.reject(failure) : Promise.race([
      failed,
      new Promise<void>((resolve, reject) =>
        action((error) => (error ? reject(error) : resolve()))
      ),
    ]);
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return step((done) => inflater.write(chunk, done));
    },
    close() {
      return step((done) => inflater.end(done));
    },
    abort(reason) {
      // What failed before this stage (decryption, the store) reaches the reader.
      fail(reason);
      output.error(reason);
      inflater.destroy();
    },
  });
  return { writable, readable };
}
