/**
 * Quoting of a command line so that it runs when pasted into the shell the
 * user is in: POSIX sh on Linux/macOS, cmd or PowerShell on Windows.
 */

export type Shell = "sh" | "cmd" | "powershell";

const SAFE = /^[A-Za-z0-9_+=:./\\-]+$/;

export function quoteArgument(arg: string, shell: Shell): string {
  if (arg !== "" && SAFE.test(arg)) return arg;
  if (shell === "sh") return `'${arg.replaceAll("'", `'\\''`)}'`;
  if (shell === "powershell") return `'${arg.replaceAll("'", "''")}'`;
  // cmd: double quotes; a literal quote is doubled (read back by the C runtime).
  return `"${arg.replaceAll('"', '""')}"`;
}

/** A whole command line; in PowerShell a quoted program needs the call operator. */
export function commandLine(argv: string[], shell: Shell): string {
  const [program, ...rest] = argv;
  const quotedProgram = quoteArgument(program, shell);
  const head = shell === "powershell" && quotedProgram !== program
    ? `& ${quotedProgram}`
    : quotedProgram;
  return [head, ...rest.map((a) => quoteArgument(a, shell))].join(" ");
}

/**
 * The shell the user most likely runs: PowerShell puts its own module paths
 * (under the user's Documents) into PSModulePath; cmd inherits only the
 * system-wide value.
 */
export function detectShell(os: string, env: Record<string, string | undefined>): Shell {
  if (os !== "windows") return "sh";
  const modulePath = env.PSModulePath ?? "";
  return /\\Documents\\(Windows)?PowerShell\\Modules/i.test(modulePath) ? "powershell" : "cmd";
}
