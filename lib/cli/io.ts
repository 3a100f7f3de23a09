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
