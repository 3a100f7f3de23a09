/**
 * Decrypts a run of consecutive chunks fetched with a ranged read (docs/FORMAT.md §4).
 * The header was authenticated separately (`openHeader`); each chunk is
 * authenticated with its own index and final flag, so a range from another
 * position, object or key fails here.
 */
import { integrityError } from "../errors.ts";
import { CHUNK_SIZE, decryptChunk, type StreamKeys, TAG_SIZE } from "./stream.ts";

const SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE;

export function decryptChunkRun(
  keys: StreamKeys,
  firstIndex: number,
  totalChunks: number,
): TransformStream<Uint8Array, Uint8Array> {
  let index = firstIndex;
  let pending = new Uint8Array(SEALED_CHUNK);
  let pendingLength = 0;

  async function emit(controller: TransformStreamDefaultController<Uint8Array>, final: boolean) {
    const sealed = pending.subarray(0, pendingLength);
    controller.enqueue(await decryptChunk(keys, index, final, sealed));
    index++;
    pending = new Uint8Array(SEALED_CHUNK);
    pendingLength = 0;
  }

  return new TransformStream({
    async transform(data, controller) {
      let offset = 0;
      while (offset < data.length) {
        // A full sealed chunk is only decrypted once more data shows it is not
        // the object's last one (the last chunk may also be exactly full).
        if (pendingLength === SEALED_CHUNK) await emit(controller, index === totalChunks - 1);
        const n = Math.min(data.length - offset, SEALED_CHUNK - pendingLength);
        pending.set(data.subarray(offset, offset + n), pendingLength);
        pendingLength += n;
        offset += n;
      }
    },
    async flush(controller) {
      if (pendingLength === 0) return;
      const final = index === totalChunks - 1;
      if (!final && pendingLength !== SEALED_CHUNK) {
        throw integrityError("A ranged read was cut short");
      }
      await emit(controller, final);
    },
  });
}
