/**
 * The worker of file_writer.ts: writes one batch of verified files per
 * message and hands the buffer back with how each one went.
 */
/// <reference lib="deno.worker" />
import { type FileBatch, writeBatch } from "./file_writer.ts";

self.onmessage = (event: MessageEvent<FileBatch>) => {
  const reply = writeBatch(event.data);
  self.postMessage(reply, [reply.buffer, reply.numbers.buffer]);
};
