/**
 * Issue 7's upload target, against the real test S3 server through a
 * recording, delaying proxy (no mocked client): multipart parts are in flight
 * in parallel — never more than the queue size — and one slow part does not
 * stall the producer. Every assertion counts requests and bytes; none times
 * anything. Delays only make the overlap observable, and every wait on a
 * condition has a cap so a serial uploader fails instead of hanging.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import path from "node:path";
import {
  createS3Storage,
  generateRootKey,
  keyringFromEnv,
  runBackup,
  runRestore,
  type Storage,
  validatePolicy,
} from "../mod.ts";
import { s3rverCredentials, type S3TestServer, startS3Server } from "./support/s3_server.ts";
import {
  type ProxyEvent,
  startTimingProxy,
  type TimedRequest,
  type TimingProxy,
  type TimingProxyOptions,
} from "./support/timing_proxy.ts";
import { generatedStream, leakChecks, sha256OfStream } from "./storage_suite.ts";
import { assertSameTree, pseudoRandomBytes } from "./support/tree.ts";

const MiB = 1024 * 1024;
/** S3's minimum part size, so that an object of a few parts stays small. */
const partSize = 5 * MiB;
/** How long every UploadPart response is held back, so parts overlap if the client lets them. */
const partDelayMs = 250;
/** The longest a held part waits for a condition: a guard against hanging, not a measurement. */
const holdCapMs = 3_000;

/** A source stream that counts how often it was pulled and how many bytes it gave. */
interface CountedSource {
  stream: ReadableStream<Uint8Array>;
  pulls: number;
  bytes: number;
  done: boolean;
}

function countedSource(size: number, seed: number): CountedSource {
  const reader = generatedStream(size, seed).getReader();
  const source: CountedSource = {
    pulls: 0,
    bytes: 0,
    done: false,
    stream: new ReadableStream<Uint8Array>({
      async pull(controller) {
        source.pulls++;
        const { done, value } = await reader.read();
        if (done) {
          source.done = true;
          controller.close();
          return;
        }
        source.bytes += value.byteLength;
        controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 }),
  };
  return source;
}

const isUploadPart = (request: TimedRequest) => request.operation === "UploadPart";

/** UploadPart bytes the client has been told are stored. */
function acknowledgedPartBytes(proxy: TimingProxy): number {
  return proxy.log.filter((r) => isUploadPart(r) && r.answered).reduce(
    (sum, r) => sum + r.bytes,
    0,
  );
}

interface PutRun {
  queueSize: number;
  parts: number;
  maxInFlight: number;
  /** The most the source was read ahead of the parts acknowledged by the server. */
  maxReadAhead: number;
}

/**
 * Puts `size` bytes through a proxy applying `hold`, with `queueSize`, and
 * checks what the server stored. `observe` sees every proxy event.
 */
async function putThroughProxy(
  server: S3TestServer,
  options: {
    queueSize: number;
    size: number;
    seed: number;
    hold: TimingProxyOptions["hold"];
    observe?: (event: ProxyEvent, proxy: TimingProxy, source: CountedSource) => void;
  },
): Promise<PutRun> {
  const source = countedSource(options.size, options.seed);
  let maxReadAhead = 0;
  const proxy = startTimingProxy(server.endpoint, {
    hold: options.hold,
    observe(event, proxy) {
      maxReadAhead = Math.max(maxReadAhead, source.bytes - acknowledgedPartBytes(proxy));
      options.observe?.(event, proxy, source);
    },
  });
  const prefix = `parallel-${crypto.randomUUID()}`;
  const storage = await createS3Storage({
    bucket: server.bucket,
    endpoint: proxy.endpoint,
    credentials: s3rverCredentials,
    prefix,
    partSize,
    queueSize: options.queueSize,
  });
  try {
    const info = await storage.put("object", source.stream);
    assert.deepEqual(info, { key: "object", size: options.size });
  } finally {
    await storage.close();
    await proxy.stop();
  }
  // Parts answered out of order still make the object, byte for byte.
  assert.equal(
    await sha256OfFile(
      path.join(server.directory, server.bucket, `${prefix}/object._S3rver_object`),
    ),
    await sha256OfStream(generatedStream(options.size, options.seed)),
  );
  const parts = proxy.log.filter(isUploadPart);
  assert.ok(parts.every((part) => part.status === 200), "no part failed or was retried");
  return {
    queueSize: options.queueSize,
    parts: parts.length,
    maxInFlight: proxy.maxInFlight("UploadPart"),
    maxReadAhead,
  };
}

async function sha256OfFile(file: string): Promise<string> {
  using handle = await Deno.open(file);
  const hash = createHash("sha256");
  for await (const chunk of handle.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function withServer(fn: (server: S3TestServer) => Promise<void>): Promise<void> {
  const server = await startS3Server();
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

/** Memory stays bounded: parts in flight, the part being filled, and one chunk. */
function assertBoundedReadAhead(run: PutRun): void {
  const limit = (run.queueSize + 2) * partSize;
  assert.ok(
    run.maxReadAhead <= limit,
    `queueSize ${run.queueSize}: read ${run.maxReadAhead} bytes ahead of the stored parts ` +
      `(limit ${limit})`,
  );
}

Deno.test(
  "S3Storage.put: with every part's answer delayed, several parts are in flight at once, never more than queueSize",
  leakChecks,
  async () => {
    await withServer(async (server) => {
      const runs: PutRun[] = [];
      for (const queueSize of [4, 1]) {
        runs.push(
          await putThroughProxy(server, {
            queueSize,
            size: 4 * partSize + MiB,
            seed: queueSize,
            hold: (request, proxy) => isUploadPart(request) ? proxy.sleep(partDelayMs) : undefined,
          }),
        );
      }
      const [parallel, serial] = runs;
      for (const run of runs) {
        assert.equal(run.parts, 5);
        assertBoundedReadAhead(run);
      }
      assert.ok(
        parallel.maxInFlight >= 2 && parallel.maxInFlight <= parallel.queueSize,
        `queueSize 4: at most ${parallel.maxInFlight} UploadPart in flight at once`,
      );
      // The control: the same measure sees a serial uploader as serial.
      assert.equal(serial.maxInFlight, 1, "queueSize 1 uploads one part at a time");
    });
  },
);

/** What happened while part 1 was in flight, its answer held back. */
interface StallReport extends PutRun {
  /** Source pulls and bytes between part 1 reaching the server and its answer going back. */
  pullsWhileHeld: number;
  bytesWhileHeld: number;
  /** Other parts started, and answered, in that time. */
  partsStartedWhileHeld: number;
  partsAnsweredWhileHeld: number;
  /** The whole body had been read before part 1 was answered. */
  sourceDoneWhileHeld: boolean;
}

/**
 * Holds part 1's answer until every other part was answered (or the cap
 * passed), and records what the producer and the other parts did meanwhile.
 */
async function slowFirstPart(
  server: S3TestServer,
  queueSize: number,
  totalParts: number,
): Promise<StallReport> {
  const started = { pulls: 0, bytes: 0, parts: 0, answered: 0 };
  const report = {
    pullsWhileHeld: 0,
    bytesWhileHeld: 0,
    partsStartedWhileHeld: 0,
    partsAnsweredWhileHeld: 0,
    sourceDoneWhileHeld: false,
  };
  const run = await putThroughProxy(server, {
    queueSize,
    size: (totalParts - 1) * partSize + MiB,
    seed: 10 + queueSize,
    hold: (request, proxy) =>
      isUploadPart(request) && request.part === 1
        ? proxy.until(() => proxy.answered("UploadPart") >= totalParts - 1, holdCapMs)
          .then(() => {})
        : undefined,
    observe(event, proxy, source) {
      if (!isUploadPart(event.request) || event.request.part !== 1) return;
      const parts = proxy.log.filter(isUploadPart).length;
      const answered = proxy.answered("UploadPart");
      if (event.type === "arrived") {
        Object.assign(started, { pulls: source.pulls, bytes: source.bytes, parts, answered });
      } else {
        report.pullsWhileHeld = source.pulls - started.pulls;
        report.bytesWhileHeld = source.bytes - started.bytes;
        report.partsStartedWhileHeld = parts - started.parts;
        // `answered` already counts part 1 itself.
        report.partsAnsweredWhileHeld = answered - 1 - started.answered;
        report.sourceDoneWhileHeld = source.done;
      }
    },
  });
  return { ...run, ...report };
}

/** The producer kept going while one part was slow: the rest of the object was read and stored. */
function assertNotStalledByOnePart(report: StallReport, totalParts: number): void {
  assert.equal(
    report.partsAnsweredWhileHeld,
    totalParts - 1,
    "every other part was uploaded while part 1 was held",
  );
  // Parts 2‥queueSize may have been read before part 1 reached the server; the
  // rest of the body is read while it is held, at least two more parts' worth.
  assert.ok(
    report.bytesWhileHeld >= 2 * partSize,
    `only ${report.bytesWhileHeld} bytes were read while part 1 was held`,
  );
  assert.ok(report.sourceDoneWhileHeld, "the whole body was read while part 1 was held");
}

Deno.test(
  "S3Storage.put: one slow part does not stall the producer, the next parts go on (and queueSize 1 would)",
  leakChecks,
  async () => {
    const totalParts = 8;
    await withServer(async (server) => {
      const parallel = await slowFirstPart(server, 4, totalParts);
      assert.equal(parallel.parts, totalParts);
      assertNotStalledByOnePart(parallel, totalParts);
      assert.ok(parallel.pullsWhileHeld > 0);
      assert.ok(parallel.maxInFlight >= 2 && parallel.maxInFlight <= 4);
      assertBoundedReadAhead(parallel);

      // The control: with queueSize 1 the same assertion fails, on counts.
      const serial = await slowFirstPart(server, 1, totalParts);
      assert.throws(() => assertNotStalledByOnePart(serial, totalParts), assert.AssertionError);
      assert.equal(serial.partsStartedWhileHeld, 0);
      assert.equal(serial.partsAnsweredWhileHeld, 0);
      assert.ok(serial.bytesWhileHeld < partSize, `${serial.bytesWhileHeld} bytes`);
      assert.equal(serial.maxInFlight, 1);
      assertBoundedReadAhead(serial);
    });
  },
);

Deno.test(
  "runBackup of incompressible data to S3 keeps several parts in flight, and goes on while one part is slow",
  leakChecks,
  () =>
    withServer(async (server) => {
      const dataSize = 24 * MiB;
      const work = await Deno.makeTempDir({ prefix: "intellistor-parallel-" });
      let part1Held = { othersAnswered: 0 };
      const proxy = startTimingProxy(server.endpoint, {
        hold(request, proxy) {
          if (!isUploadPart(request)) return undefined;
          if (request.part !== 1) return proxy.sleep(partDelayMs);
          const before = proxy.answered("UploadPart");
          return proxy.until(() => proxy.answered("UploadPart") - before >= 3, holdCapMs).then(
            () => {
              part1Held = { othersAnswered: proxy.answered("UploadPart") - before };
            },
          );
        },
      });
      let storage: Storage | undefined;
      try {
        const source = path.join(work, "source");
        await Deno.mkdir(source);
        await Deno.writeFile(path.join(source, "random.bin"), pseudoRandomBytes(dataSize, 7));
        await Deno.writeTextFile(path.join(source, "notes.txt"), "parallel parts\n");
        storage = await createS3Storage({
          bucket: server.bucket,
          endpoint: proxy.endpoint,
          credentials: s3rverCredentials,
          partSize,
          // queueSize: the product's default.
        });
        const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
        const policy = validatePolicy({ id: "parallel", paths: [source] }, "test policy");
        const backup = await runBackup({ policy, storage, keyring });
        assert.deepEqual(backup.warnings, []);
        assert.ok(backup.compressed_bytes >= dataSize, "random data does not compress");

        const parts = proxy.log.filter(isUploadPart);
        const maxInFlight = proxy.maxInFlight("UploadPart");
        assert.equal(parts.length, Math.ceil(backup.compressed_bytes / partSize));
        assert.ok(parts.every((part) => part.status === 200), "no part failed or was retried");
        assert.ok(maxInFlight >= 2, `at most ${maxInFlight} UploadPart in flight at once`);
        assert.ok(maxInFlight <= 4, `${maxInFlight} UploadPart in flight: more than queueSize`);
        assert.ok(
          part1Held.othersAnswered >= 3,
          `only ${part1Held.othersAnswered} other parts were stored while part 1 was held`,
        );

        // Parts stored out of order still make a backup that restores exactly.
        const restored = await runRestore({
          storage,
          keyring,
          key: backup.key_backup,
          outDir: path.join(work, "out"),
        });
        assert.equal(restored.integrity, "ok", JSON.stringify(restored.failures));
        await assertSameTree(source, path.join(work, "out"));
      } finally {
        await storage?.close();
        await proxy.stop();
        await Deno.remove(work, { recursive: true });
      }
    }),
);
