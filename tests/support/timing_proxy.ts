/**
 * A recording, delaying HTTP proxy in front of the test S3 server (127.0.0.1
 * only), to observe concurrency: how many requests of each S3 operation are in
 * flight at once, and what happened while one of them was held back.
 *
 * A request counts as in flight from the moment its headers reach the proxy
 * until the proxy hands its response back. A `hold` hook may keep a response
 * back after the server answered (the part is stored, the client does not know
 * yet), for a time or until something else has happened.
 */
import { describeRequest, forward, type ProxiedRequest } from "./fault_proxy.ts";

/** One request as seen by the proxy. */
export interface TimedRequest extends ProxiedRequest {
  /** Content-Length of the request body (an UploadPart's part size), 0 when absent. */
  bytes: number;
  /** The server's status, once it answered. */
  status?: number;
  /** True once the response was handed back to the client. */
  answered: boolean;
}

/** A change the proxy saw: a request arrived, or its response went back. */
export interface ProxyEvent {
  type: "arrived" | "answered";
  request: TimedRequest;
}

export interface TimingProxyOptions {
  /**
   * Runs after the server answered and before the response goes back; the
   * response waits for the returned promise. Undefined: answer at once.
   */
  hold?: (request: TimedRequest, proxy: TimingProxy) => Promise<void> | undefined;
  /** Runs synchronously on every event, after the counters were updated. */
  observe?: (event: ProxyEvent, proxy: TimingProxy) => void;
}

export interface TimingProxy {
  endpoint: string;
  /** Every request seen, in arrival order. */
  log: TimedRequest[];
  /** Requests of `operation` in flight now. */
  inFlight(operation: string): number;
  /** The most requests of `operation` ever in flight at once. */
  maxInFlight(operation: string): number;
  /** Requests of `operation` whose response went back. */
  answered(operation: string): number;
  /**
   * Resolves true as soon as `condition` holds (checked now and on every
   * event), or false after `capMs`: a guard against waiting forever, not a
   * measurement.
   */
  until(condition: () => boolean, capMs: number): Promise<boolean>;
  /** Resolves after `ms`, or at once when the proxy stops. */
  sleep(ms: number): Promise<void>;
  stop(): Promise<void>;
}

export function startTimingProxy(upstream: string, options: TimingProxyOptions = {}): TimingProxy {
  const log: TimedRequest[] = [];
  const current = new Map<string, number>();
  const highest = new Map<string, number>();
  const done = new Map<string, number>();
  const waiters = new Set<() => void>();
  /** Pending timers and what they do when they fire; stop() fires them all at once. */
  const timers = new Map<ReturnType<typeof setTimeout>, () => void>();
  let index = 0;

  const notify = (event: ProxyEvent) => {
    options.observe?.(event, proxy);
    for (const waiter of [...waiters]) waiter();
  };

  const timer = (ms: number, fire: () => void): () => void => {
    const id = setTimeout(() => {
      timers.delete(id);
      fire();
    }, ms);
    timers.set(id, fire);
    return () => {
      clearTimeout(id);
      timers.delete(id);
    };
  };

  const proxy: TimingProxy = {
    endpoint: "",
    log,
    inFlight: (operation) => current.get(operation) ?? 0,
    maxInFlight: (operation) => highest.get(operation) ?? 0,
    answered: (operation) => done.get(operation) ?? 0,
    until(condition, capMs) {
      if (condition()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const finish = (met: boolean) => {
          waiters.delete(check);
          cancel();
          resolve(met);
        };
        const check = () => {
          if (condition()) finish(true);
        };
        const cancel = timer(capMs, () => finish(false));
        waiters.add(check);
      });
    },
    sleep: (ms) => new Promise((resolve) => timer(ms, resolve)),
    async stop() {
      // Nothing waits past the end: held responses go back now, and the server can shut down.
      for (const [id, fire] of [...timers]) {
        clearTimeout(id);
        timers.delete(id);
        fire();
      }
      await server.shutdown();
    },
  };

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const seen: TimedRequest = {
        ...describeRequest(request, ++index),
        bytes: Number(request.headers.get("content-length") ?? 0),
        answered: false,
      };
      log.push(seen);
      const operation = seen.operation;
      current.set(operation, proxy.inFlight(operation) + 1);
      highest.set(operation, Math.max(proxy.maxInFlight(operation), proxy.inFlight(operation)));
      notify({ type: "arrived", request: seen });
      try {
        const response = await forward(request, upstream);
        seen.status = response.status;
        await options.hold?.(seen, proxy);
        return new Response(response.body, { status: response.status, headers: response.headers });
      } finally {
        current.set(operation, proxy.inFlight(operation) - 1);
        done.set(operation, proxy.answered(operation) + 1);
        seen.answered = true;
        notify({ type: "answered", request: seen });
      }
    },
  );
  proxy.endpoint = `http://127.0.0.1:${server.addr.port}`;
  return proxy;
}
