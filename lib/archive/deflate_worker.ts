/**
 * A deflate worker of the pool in deflate_pool.ts: reads a piece's files into
 * it and deflates it, one piece per message, and hands the input buffer back
 * with the result, both transferred.
 */
/// <reference lib="deno.worker" />
import { deflateFilledPiece, PieceCompressor } from "./deflate_piece.ts";
import type { DeflateReply, DeflateRequest } from "./deflate_pool.ts";

const compressor = new PieceCompressor();

self.onmessage = (event: MessageEvent<DeflateRequest>) => {
  const { id, buffer, length, level, final, files } = event.data;
  let reply: DeflateReply;
  try {
    const result = deflateFilledPiece(
      compressor,
      new Uint8Array(buffer),
      length,
      level,
      final,
      files,
    );
    reply = { id, buffer, result: { ...result, output: result.output.buffer as ArrayBuffer } };
  } catch (error) {
    reply = { id, buffer, error: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(
    reply,
    [buffer, ...(reply.result ? [reply.result.output, reply.result.sizes.buffer] : [])],
  );
};
