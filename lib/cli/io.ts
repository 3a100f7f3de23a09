/** What a command may touch of the outside world, injectable for in-process tests. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The inherited environment (before any .env file). */
  env: Record<string, string | undefined>;
  cwd: string;
  /** How to run this program again, for `cli_restore` (e.g. ["/usr/local/bin/intellistor"]). */
  self: string[];
  /** Aborted on Ctrl+C or SIGTERM: long commands stop at their next step and clean up. */
  signal?: AbortSignal;
}

/** Prints one JSON document, the output of every command. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout(JSON.stringify(value, null, 2) + "\n");
}

/**
 * `work`, or an AbortError as soon as `signal` is aborted: for commands that
 * write nothing (list), which need not wait on a request to a store that
 * stopped answering; the request is abandoned when the process exits.
 */
export function untilStopped<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const stop = () => reject(new DOMException("Interrupted", "AbortError"));
    if (signal.aborted) stop();
    signal.addEventListener("abort", stop, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", stop));
  });
}
