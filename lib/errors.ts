/**
 * Errors the user is expected to see, with stable codes and exit codes.
 *
 * This file is the one place where exit codes are defined; `main.ts` maps any
 * `IntellistorError` to its exit code and prints `toJSON()` on stderr.
 */

/** Exit codes, documented in the README (like restic's). */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** The backup finished, but some source files could not be read. */
  partial: 3,
  /** The repository, bucket, backup or manifest does not exist. */
  notFound: 10,
  /** Another run of the same policy holds the lock. */
  alreadyRunning: 11,
  /** No key in the keyring opens this backup. */
  wrongKey: 12,
  /** Data was corrupted, truncated or tampered with. */
  integrity: 13,
  interrupted: 130,
} as const;
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** What a scheduled run's exit code means, for `schedule status` on either system. */
export const EXIT_CODE_MEANINGS: Record<number, string> = {
  [ExitCode.ok]: "success",
  [ExitCode.failure]: "failed (see the run's log)",
  [ExitCode.usage]: "usage error: check the policy and the .env file",
  [ExitCode.partial]: "partial backup: some files could not be read",
  [ExitCode.notFound]: "not found (bucket or backup)",
  [ExitCode.alreadyRunning]: "skipped: another run of this policy was still going",
  [ExitCode.wrongKey]: "wrong key",
  [ExitCode.integrity]: "integrity failure",
  [ExitCode.interrupted]: "interrupted",
};

/** Stable machine-readable error codes. */
export type ErrorCode =
  | "USAGE"
  | "POLICY_INVALID"
  | "POLICY_EXISTS"
  | "POLICY_NOT_FOUND"
  | "ENV_FILE_NOT_FOUND"
  | "ENV_FILE_INVALID"
  | "KEY_MISSING"
  | "KEY_INVALID"
  | "WRONG_KEY"
  | "BUCKET_MISSING"
  | "BUCKET_NOT_FOUND"
  | "BACKUP_NOT_FOUND"
  | "ACCESS_DENIED"
  | "STORAGE_UNREACHABLE"
  | "STORAGE_ERROR"
  | "INTEGRITY"
  | "FORMAT_UNSUPPORTED"
  | "PATTERN_INVALID"
  | "NO_MATCH"
  | "OUTPUT_EXISTS"
  | "UNSAFE_PATH"
  | "NAME_UNSUPPORTED"
  | "IO_ERROR"
  | "INTERRUPTED"
  | "ALREADY_RUNNING"
  | "SCHEDULE_UNSUPPORTED"
  | "SCHEDULER_FAILED"
  | "SCHEDULE_NOT_FOUND"
  | "INTERNAL";

/** Every error code with its exit code (the README's table is checked against it). */
export const exitCodeOf: Record<ErrorCode, ExitCode> = {
  USAGE: ExitCode.usage,
  POLICY_INVALID: ExitCode.usage,
  POLICY_EXISTS: ExitCode.usage,
  POLICY_NOT_FOUND: ExitCode.usage,
  ENV_FILE_NOT_FOUND: ExitCode.usage,
  ENV_FILE_INVALID: ExitCode.usage,
  KEY_MISSING: ExitCode.usage,
  KEY_INVALID: ExitCode.usage,
  WRONG_KEY: ExitCode.wrongKey,
  BUCKET_MISSING: ExitCode.usage,
  BUCKET_NOT_FOUND: ExitCode.notFound,
  BACKUP_NOT_FOUND: ExitCode.notFound,
  ACCESS_DENIED: ExitCode.failure,
  STORAGE_UNREACHABLE: ExitCode.failure,
  STORAGE_ERROR: ExitCode.failure,
  INTEGRITY: ExitCode.integrity,
  FORMAT_UNSUPPORTED: ExitCode.integrity,
  PATTERN_INVALID: ExitCode.usage,
  NO_MATCH: ExitCode.notFound,
  OUTPUT_EXISTS: ExitCode.failure,
  UNSAFE_PATH: ExitCode.integrity,
  /** A legitimate name this system cannot hold (Windows: CON, a:b, a trailing dot). */
  NAME_UNSUPPORTED: ExitCode.failure,
  IO_ERROR: ExitCode.failure,
  INTERRUPTED: ExitCode.interrupted,
  ALREADY_RUNNING: ExitCode.alreadyRunning,
  /** The policy's cron has no faithful translation for the OS scheduler. */
  SCHEDULE_UNSUPPORTED: ExitCode.usage,
  /** schtasks or systemctl failed; its own message is quoted in ours. */
  SCHEDULER_FAILED: ExitCode.failure,
  /** `schedule remove` / `status`: no such task or timer is installed. */
  SCHEDULE_NOT_FOUND: ExitCode.notFound,
  INTERNAL: ExitCode.failure,
};

/**
 * Failures of the store itself, or of this run, as opposed to one backup's
 * content: they end a listing or a prune instead of setting one backup aside.
 */
export const STORE_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "IO_ERROR",
  "BUCKET_NOT_FOUND",
  "ACCESS_DENIED",
  "STORAGE_UNREACHABLE",
  "STORAGE_ERROR",
  "INTERRUPTED",
]);

/** An error meant for the user: what failed, and a hint on what to do. */
export class IntellistorError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  override readonly name = "IntellistorError";

  constructor(code: ErrorCode, message: string, hint = "", options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.hint = hint;
  }

  get exitCode(): ExitCode {
    return exitCodeOf[this.code];
  }

  toJSON(): { error: { code: ErrorCode; message: string; hint: string; exit_code: number } } {
    return {
      error: { code: this.code, message: this.message, hint: this.hint, exit_code: this.exitCode },
    };
  }
}

/** Shorthand for corrupted or tampered data: never a partial success. */
export function integrityError(message: string, options?: ErrorOptions): IntellistorError {
  return new IntellistorError(
    "INTEGRITY",
    message,
    "The backup object or manifest is corrupted, truncated or was modified. Try another backup.",
    options,
  );
}

/** Any error as an IntellistorError: known ones as they are, I/O errors named, the rest INTERNAL. */
export function toIntellistorError(error: unknown): IntellistorError {
  if (error instanceof IntellistorError) return error;
  if (error instanceof Deno.errors.PermissionDenied) {
    return new IntellistorError(
      "IO_ERROR",
      `Permission denied: ${error.message}`,
      "Check file permissions.",
    );
  }
  if (error instanceof Deno.errors.NotFound) {
    return new IntellistorError(
      "IO_ERROR",
      `Not found: ${error.message}`,
      "Check the paths given.",
    );
  }
  const ioErrors: [new (...args: never[]) => Error, string][] = [
    [Deno.errors.AlreadyExists, "Check the paths given: something is already there."],
    [
      Deno.errors.NotADirectory,
      "Check the paths given: a file stands where a directory is needed.",
    ],
    [Deno.errors.IsADirectory, "Check the paths given: a directory stands where a file is needed."],
    [Deno.errors.FilesystemLoop, "Check for symbolic links that point to themselves."],
    [Deno.errors.BrokenPipe, "The program reading the output stopped early."],
    [Deno.errors.WriteZero, "The disk may be full or failing."],
  ];
  for (const [type, hint] of ioErrors) {
    if (error instanceof type) return new IntellistorError("IO_ERROR", error.message, hint);
  }
  if (isStop(error)) return interruptedError({ cleanedUp: true });
  // The executable has every permission; an SDK program run without one is told which.
  if (error instanceof Deno.errors.NotCapable) {
    return new IntellistorError(
      "USAGE",
      `A Deno permission is missing: ${error.message}`,
      "Run the program with the permission named (the README's SDK section lists them).",
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  // What the system call was doing, as Deno says it: "mkdir '/srv/out'".
  const operation = /\(os error \d+\): (.+)$/.exec(message)?.[1];
  if (isDiskFull(error)) {
    return new IntellistorError(
      "IO_ERROR",
      "No space left on the device" + (operation ? ` (${operation})` : ""),
      "Free some space and retry.",
    );
  }
  if (/Read-only file system|os error 30\b/.test(message) && Deno.build.os !== "windows") {
    return new IntellistorError(
      "IO_ERROR",
      message,
      "That file system is mounted read-only: choose a location that can be written, " +
        "or mount it read-write.",
    );
  }
  // Any other refusal by the operating system (a failing disk, a lost network
  // share) is the machine's trouble, not a bug; its message says what failed.
  if (/\(os error \d+\)/.test(message)) {
    return new IntellistorError(
      "IO_ERROR",
      message,
      "The operating system refused the operation: check the disk or share and the path named.",
    );
  }
  return new IntellistorError(
    "INTERNAL",
    `Unexpected error: ${message}`,
    "This is a bug; please report it with the command you ran (set INTELLISTOR_DEBUG=1 for details).",
  );
}

/**
 * Whether `error` is a stop rather than a failure: Ctrl+C or SIGTERM (the
 * command's AbortSignal), a caller's abort() (AbortError) or
 * AbortSignal.timeout() (TimeoutError), an interrupted system call.
 */
export function isStop(error: unknown): boolean {
  return error instanceof Deno.errors.Interrupted ||
    (error instanceof DOMException && ["AbortError", "TimeoutError"].includes(error.name));
}

/**
 * A command stopped by Ctrl+C or SIGTERM. `cleanedUp` is false when the
 * process exits before its clean-up finished (a second signal, or a store
 * that no longer answers): then temporary files and uploads may remain.
 */
export function interruptedError({ cleanedUp }: { cleanedUp: boolean }): IntellistorError {
  const rerun = "Run the command again (a restore into the same --out then needs --overwrite " +
    "for the files it already wrote).";
  if (cleanedUp) {
    return new IntellistorError(
      "INTERRUPTED",
      "Interrupted",
      "Nothing half-done was kept: a backup exists only once its manifest is written, and a " +
        `restored file gets its name only once verified. ${rerun}`,
    );
  }
  return new IntellistorError(
    "INTERRUPTED",
    "Interrupted before its clean-up finished",
    "Nothing half-done is usable by mistake: a backup exists only once its manifest is written, " +
      "and a restored file gets its name only once verified. Leftovers may remain: `list` shows " +
      "a local store's under `incomplete` (delete them); an S3 multipart upload is removed by " +
      "the bucket's lifecycle rule; a restore may leave `.intellistor-*.partial` files in --out " +
      `(delete them). ${rerun}`,
  );
}

/** A full disk or an exceeded quota (ENOSPC, EDQUOT; Windows ERROR_DISK_FULL), as Deno reports them. */
export function isDiskFull(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /ENOSPC|No space left|os error 28\b|Disk quota exceeded|os error 122\b|os error 112\b/i
    .test(message);
}
