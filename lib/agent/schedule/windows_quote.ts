/**
 * Windows command-line quoting for programs that split their command line
 * with CommandLineToArgvW / the Microsoft C runtime rules (Deno and every
 * MSVC program do). No cmd.exe is involved: Task Scheduler starts the program
 * directly, so only these rules apply:
 * - arguments are separated by spaces or tabs; a double-quoted part may hold them;
 * - 2n backslashes before a quote → n backslashes and the quote delimits;
 *   2n+1 backslashes before a quote → n backslashes and a literal quote;
 * - backslashes not followed by a quote are literal (so `C:\dir\` stays intact
 *   unless it is quoted, where the trailing ones must be doubled).
 *
 * @module
 */

/** One argument, quoted only when needed. */
export function quoteWindowsArgument(arg: string): string {
  if (arg !== "" && !/[ \t\n\v"]/.test(arg)) return arg;
  let quoted = '"';
  let backslashes = 0;
  for (const char of arg) {
    if (char === "\\") {
      backslashes++;
    } else if (char === '"') {
      quoted += "\\".repeat(backslashes * 2 + 1) + '"';
      backslashes = 0;
    } else {
      quoted += "\\".repeat(backslashes) + char;
      backslashes = 0;
    }
  }
  // Backslashes before the closing quote must not escape it.
  return quoted + "\\".repeat(backslashes * 2) + '"';
}

/** Arguments joined into one command-line string (Task Scheduler's `Arguments`). */
export function windowsArguments(args: string[]): string {
  return args.map(quoteWindowsArgument).join(" ");
}
