import assert from "node:assert/strict";
import zlib from "node:zlib";
import { gunzip } from "./gunzip.ts";
import { bytesStream, readAll } from "../streams.ts";

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

Deno.test("gunzip: every member, in order", async () => {
  const a = new TextEncoder().encode("first member ");
  const b = new Uint8Array(300_000).map((_, i) => i % 251);
  const both = new Uint8Array([...zlib.gzipSync(a), ...zlib.gzipSync(b)]);
  const out = await readAll(bytesStream(both).pipeThrough(gunzip()));
  assert.deepEqual(out, new Uint8Array([...a, ...b]));
});

Deno.test("gunzip: makes output only as fast as it is read, whatever the ratio", async () => {
  // 64 MiB of zeros deflate to ~64 KiB: one write must not queue all of it.
  const size = 64 << 20;
  const bomb = new Uint8Array(zlib.gzipSync(new Uint8Array(size), { level: 9 }));
  assert.ok(bomb.length < 128 << 10);
  const { writable, readable } = gunzip();
  const writer = writable.getWriter();
  let written = false;
  const write = writer.write(bomb).then(() => written = true);
  const reader = readable.getReader();
  let taken = 0;
  for (let reads = 0; reads < 4; reads++) {
    await settle();
    assert.equal(written, false, "the write waits for its output to be read");
    const { value } = await reader.read();
    taken += value!.length;
  }
  assert.ok(taken <= 4 * (256 << 10), `read ${taken} bytes in four reads`);
  const close = writer.close();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    assert.ok(value.every((byte) => byte === 0));
    taken += value.length;
  }
  await write;
  await close;
  assert.equal(taken, size);
});

Deno.test("gunzip: corrupt data fails the reader and the writer with zlib's code", async () => {
  const good = new Uint8Array(zlib.gzipSync(new Uint8Array(100_000).fill(7)));
  const bad = good.slice();
  bad[20] ^= 0xff;
  const { writable, readable } = gunzip();
  const piped = bytesStream(bad).pipeTo(writable);
  await assert.rejects(readAll(readable), (error: { code?: string }) => {
    assert.match(String(error.code), /^Z_/);
    return true;
  });
  await assert.rejects(piped);
});

Deno.test("gunzip: a cancelled reader stops the writer", async () => {
  const data = new Uint8Array(zlib.gzipSync(new Uint8Array(8 << 20)));
  const { writable, readable } = gunzip();
  const piped = bytesStream(data).pipeTo(writable);
  const reader = readable.getReader();
  await reader.read();
  await reader.cancel(new Error("enough"));
  // The write is left without a reader: it must fail, not hang.
  await assert.rejects(piped, /enough/);
});

Deno.test("gunzip: a failure before it reaches the reader", async () => {
  const data = new Uint8Array(zlib.gzipSync(new Uint8Array(1 << 20)));
  const upstream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(data.subarray(0, 1000));
      controller.error(new Error("chunk 3 failed authentication"));
    },
  });
  await assert.rejects(readAll(upstream.pipeThrough(gunzip())), /chunk 3 failed/);
});

Deno.test("gunzip: a reader that cancels while zlib holds output ends cleanly", async () => {
  const data = new Uint8Array(zlib.gzipSync(new Uint8Array(16 << 20)));
  for (let reads = 1; reads <= 3; reads++) {
    const { writable, readable } = gunzip();
    const piped = new Blob([data]).stream().pipeTo(writable);
    const reader = readable.getReader();
    for (let i = 0; i < reads; i++) await reader.read();
    // zlib was resumed by the last read; its next chunk comes after the cancel.
    await reader.cancel();
    await assert.rejects(piped);
    await settle();
  }
});
