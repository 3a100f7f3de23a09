/**
 * A fault-injecting HTTP proxy in front of the test S3 server (127.0.0.1 only).
 * Per request a rule may answer 500 InternalError or 503 SlowDown, stall, cut
 * the response body short, or drop the connection before any body byte —
 * "fail the 3rd UploadPart", "10% of requests at random with a seed".
 */

/** What the proxy knows of a request when a rule decides. */
export interface ProxiedRequest {
  /** 1-based, over all requests. */
  index: number;
  method: string;
  /** Path without the bucket, e.g. "/backups/p/…/backup.tar.gz.enc". */
  key: string;
  /** The S3 operation, from method and query: "UploadPart", "GetObject", … */
  operation: string;
  /** UploadPart's part number. */
  part?: number;
}

export type Fault =
  | { kind: "status"; status: 403 | 500 | 501 | 503 }
  | { kind: "stall"; ms: number }
  | { kind: "cut"; afterBytes: number }
  | { kind: "drop" };

export type FaultRule = (request: ProxiedRequest) => Fault | undefined;

export interface FaultProxy {
  endpoint: string;
  /** Every request seen, in order, with the fault injected into it (if any). */
  log: Array<ProxiedRequest & { fault?: Fault["kind"] }>;
  stop(): Promise<void>;
}

/** What a proxy records of a request to the S3 server: its operation, key and part. */
export function describeRequest(request: Request, index: number): ProxiedRequest {
  const url = new URL(request.url);
  return {
    index,
    method: request.method,
    key: url.pathname.split("/").slice(2).join("/"),
    operation: operationOf(request.method, url),
    part: url.searchParams.has("partNumber")
      ? Number(url.searchParams.get("partNumber"))
      : undefined,
  };
}

/** Sends `request` on to the S3 server at `upstream`, as it came. */
export function forward(request: Request, upstream: string): Promise<Response> {
  const url = new URL(request.url);
  const headers = new Headers(request.headers);
  headers.delete("host");
  return fetch(new URL(url.pathname + url.search, upstream), {
    method: request.method,
    headers,
    body: request.body,
    redirect: "manual",
  });
}

export function startFaultProxy(upstream: string, rule: FaultRule): FaultProxy {
  const log: FaultProxy["log"] = [];
  let index = 0;
  // Stalls end early when the proxy stops, so that a long one never holds a test up.
  const stalls = new Set<() => void>();
  let stopping = false;
  const stall = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stalls.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stalls.add(done);
    });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const seen = describeRequest(request, ++index);
      const fault = rule(seen);
      log.push({ ...seen, fault: fault?.kind });
      if (fault?.kind === "status") {
        await request.body?.cancel();
        const code = {
          403: "AccessDenied",
          500: "InternalError",
          501: "NotImplemented",
          503: "SlowDown",
        }[fault.status];
        return new Response(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>` +
            `<Message>injected fault</Message></Error>`,
          { status: fault.status, headers: { "content-type": "application/xml" } },
        );
      }
      if (fault?.kind === "stall") {
        await stall(fault.ms);
        if (stopping) return new Response(null, { status: 503 });
      }
      const response = await forward(request, upstream);
      if (fault?.kind === "cut" || fault?.kind === "drop") {
        const limit = fault.kind === "drop" ? 0 : fault.afterBytes;
        return new Response(cutShort(response.body, limit), {
          status: response.status,
          headers: response.headers,
        });
      }
      return new Response(response.body, { status: response.status, headers: response.headers });
    },
  );
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    log,
    stop: () => {
      stopping = true;
      for (const done of [...stalls]) done();
      return server.shutdown();
    },
  };
}

/** The body's first `limit` bytes, then an error: the client sees the connection die. */
function cutShort(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): ReadableStream<Uint8Array> {
  const reader = body?.getReader();
  let sent = 0;
  return new ReadableStream({
    async pull(controller) {
      const next = reader ? await reader.read() : { done: true as const, value: undefined };
      if (next.done || sent + next.value.length > limit) {
        if (!next.done && limit > sent) controller.enqueue(next.value.subarray(0, limit - sent));
        await reader?.cancel().catch(() => {});
        controller.error(new Error("injected: connection cut"));
        return;
      }
      sent += next.value.length;
      controller.enqueue(next.value);
    },
    cancel: () => reader?.cancel(),
  });
}

/** The S3 operation a request is, from its method and query, e.g. "UploadPart". */
function operationOf(method: string, url: URL): string {
  const q = url.searchParams;
  const hasKey = url.pathname.split("/").filter(Boolean).length > 1;
  if (method === "PUT") return q.has("partNumber") ? "UploadPart" : "PutObject";
  if (method === "POST") {
    return q.has("uploadId") ? "CompleteMultipartUpload" : "CreateMultipartUpload";
  }
  if (method === "DELETE") return q.has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
  if (method === "HEAD") return hasKey ? "HeadObject" : "HeadBucket";
  if (method === "GET") return hasKey ? "GetObject" : "ListObjectsV2";
  return method;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same faults. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fault on `rate` of all requests, chosen with a seed, of every kind in turn. */
export function randomFaults(rate: number, seed: number): FaultRule {
  const random = seededRandom(seed);
  const kinds: Fault[] = [
    { kind: "status", status: 503 },
    { kind: "status", status: 500 },
    { kind: "drop" },
    { kind: "cut", afterBytes: 100 },
    { kind: "stall", ms: 300 },
  ];
  return () => (random() < rate ? kinds[Math.floor(random() * kinds.length)] : undefined);
}

/** A fault on the `nth` request of one operation (1-based). */
export function failNth(operation: string, nth: number, fault: Fault): FaultRule {
  let count = 0;
  return (request) => {
    if (request.operation !== operation) return undefined;
    count++;
    return count === nth ? fault : undefined;
  };
}
