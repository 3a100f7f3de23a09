/**
 * A deflate worker of the pool in deflate_pool.ts: deflates one piece per
 * message and hands the input buffer back with the result, both transferred.
 */
/// <reference lib="deno.worker" />
import { PieceCompressor } from "./deflate_piece.ts";
import type { DeflateReply, DeflateRequest } from "./deflate_pool.ts";

const compressor = new PieceCompressor();

self.onmessage = (event: MessageEvent<DeflateRequest>) => {
  const { id, buffer, length, level, final } = event.data;
  let reply: DeflateReply;
  try {
    const output = compressor.deflate(new Uint8Array(buffer, 0, length), level, final);
    reply = { id, buffer, output: output.buffer as ArrayBuffer };
  } catch (error) {
    reply = { id, buffer, error: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(reply, [buffer, ...(reply.output ? [reply.output] : [])]);
};
