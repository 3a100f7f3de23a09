/** Small stream stages shared by backup and restore. */
import { createHash } from "node:crypto";
import { concatBytes } from "./crypto/bytes.ts";

/** Counts and hashes (SHA-256) the bytes passing through. Read `digest()` after the end. */
export class MeterStream extends TransformStream<Uint8Array, Uint8Array> {
  #hash = createHash("sha256");
  #bytes = 0;

  constructor() {
    super({
      transform: (chunk, controller) => {
        this.#hash.update(chunk);
        this.#bytes += chunk.length;
        controller.enqueue(chunk);
      },
    });
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Hex SHA-256; call once, after the stream ended. */
  digest(): string {
    return this.#hash.digest("hex");
  }
}

/**
 * Forwards every chunk and also hands it to a second consumer, waiting for
 * that consumer before taking more: unlike `ReadableStream.tee()`, memory stays
 * bounded when one side is slower. `done` settles with the consumer's result.
 */
export function forkTo<T>(
  consume: (side: ReadableStream<Uint8Array>) => Promise<T>,
): { stream: TransformStream<Uint8Array, Uint8Array>; done: Promise<T> } {
  const side = new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 1 });
  const writer = side.writable.getWriter();
  const done = consume(side.readable);
  // Avoid an unhandled rejection before anyone awaits `done`.
  done.catch(() => {});
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      await writer.ready;
      await writer.write(chunk);
      controller.enqueue(chunk);
    },
    async flush() {
      await writer.close();
    },
    async cancel(reason) {
      await writer.abort(reason);
    },
  });
  return { stream, done };
}

/** Reads a whole (small) stream into memory: only for manifests and headers. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
  limit = 1 << 30,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of stream) {
    length += chunk.length;
    if (length > limit) throw new RangeError(`stream longer than ${limit} bytes`);
    parts.push(chunk);
  }
  return concatBytes(...parts);
}

/** A stream over one in-memory byte array. */
export function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}
