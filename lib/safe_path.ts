/**
 * The one place that decides whether an archive name may be written under a
 * restore's output directory, where it goes, and which path is given to the
 * operating system for it. The rules (also in docs/windows.md):
 *
 * - Sources (the backup side, lib/archive/walk.ts): a policy path may be a
 *   drive path (`C:\dados`), a UNC path (`\\server\share\dir`) or their `\\?\`
 *   forms. Entries under it are named relative to it, joined with "/"
 *   (`C:\dados\docs\a.png` → `docs/a.png`); with several sources each one's
 *   own name comes first (`\\server\share\dir` → `dir/…`, a share root
 *   `\\server\share` → `share/…`). `sourceRootName()` in
 *   walk.ts says which.
 * - Archive names are always "/"-separated and relative. A name is refused
 *   when it is empty, absolute (`/x`), has an empty, `.` or `..` segment, or
 *   contains NUL.
 * - Restoring on Windows also refuses absolute forms there (`\x`, `C:…`,
 *   `\\server`) and what Windows cannot represent faithfully: `\` (a
 *   separator there), `:` (it would name an alternate data stream) and
 *   `<>"|?*` or control characters in a name, reserved device names (`CON`,
 *   `NUL.txt`, `COM1`, `CONIN$`…) and names ending in a dot or a space (Win32
 *   silently drops them). These refusals are per entry: the restore lists them
 *   under `failures`, with a hint to use `decrypt` and a tool that can rename
 *   (or a Linux machine), and goes on with the other entries.
 * - Case: Windows file systems ignore case, so `a.txt` and `A.TXT` (possible in
 *   a backup made on Linux) are one file there. `caseCollisions()` keeps the
 *   first of them in archive order and refuses every later one, even with
 *   --overwrite: one is never written over the other. Two spellings of a
 *   folder (`Docs/x`, `docs/y`) are merged into the first one, which loses
 *   nothing. Unicode forms are not folded: NTFS keeps NFC and NFD apart.
 * - Long paths: `osPath()` gives Windows the `\\?\` form of a fully qualified
 *   path once it reaches MAX_PATH (the threshold Rust's standard library under
 *   Deno uses, 247 UTF-16 units), or when asked to keep a name literally
 *   (a name ending in a dot or space, or a device name, read during a backup).
 *   Every file-system call of the walk, the archive writer and the restore goes
 *   through it; names shown to the user and written to the manifest never carry
 *   the prefix.
 *
 * Directories on the way must be real directories: a symlink planted in the
 * output (or restored earlier) is never followed.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { IntellistorError } from "./errors.ts";

export type Platform = "windows" | "posix";

export const currentPlatform: Platform = Deno.build.os === "windows" ? "windows" : "posix";

/** The `node:path` flavour of a platform: lets the Windows rules run (and be tested) anywhere. */
export function pathApi(platform: Platform): typeof path.win32 {
  return platform === "windows" ? path.win32 : path.posix;
}

/** `/src/` → `/src`, `C:\data\` → `C:\data`; a root (`/`, `C:\`, `\\server\share\`) stays as it is. */
export function withoutTrailingSeparator(directory: string, platform: Platform): string {
  const api = pathApi(platform);
  let out = directory;
  while (out.length > 1 && out.endsWith(api.sep) && api.dirname(out) !== out) {
    out = out.slice(0, -1);
  }
  return out;
}

// Device names, also with an extension or spaces before it ("NUL.txt", "CON .log").
const WINDOWS_RESERVED = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³]) *(\..*)?$/i;
// deno-lint-ignore no-control-regex
const WINDOWS_FORBIDDEN_CHARS = /[<>:"|?*\\\x00-\x1f]/;

/** What to do about a name Windows cannot hold (the per-entry failure says it). */
const WINDOWS_WORKAROUND = "It cannot be restored under this name on Windows: get it with " +
  '"intellistor decrypt" (a plain .tar.gz) and extract it with a tool that can rename it ' +
  "(e.g. tar -s, 7-Zip), or restore on Linux.";

/** True for a name Win32 would silently change (trailing dot or space) or read as a device. */
export function windowsRewritesName(name: string): boolean {
  return /[. ]$/.test(name) || WINDOWS_RESERVED.test(name);
}

/** Why `relativePath` must not be written under an output directory, or undefined if it may. */
export function unsafeNameReason(
  relativePath: string,
  platform: Platform = currentPlatform,
): string | undefined {
  if (relativePath === "") return "empty name";
  if (relativePath.includes("\0")) return "name contains a NUL character";
  if (relativePath.startsWith("/")) return "absolute path";
  if (platform === "windows") {
    if (relativePath.startsWith("\\")) return "absolute path";
    if (/^[A-Za-z]:/.test(relativePath)) return "drive letter";
  }
  // Archive names are always "/"-separated; a backslash is part of a (Linux) name.
  // Segments are looked at in place: a restore checks every name it writes.
  for (let start = 0; start <= relativePath.length;) {
    let end = relativePath.indexOf("/", start);
    if (end === -1) end = relativePath.length;
    const length = end - start;
    if (length === 0) return "empty path segment";
    if (
      relativePath.charCodeAt(start) === 0x2e &&
      (length === 1 || (length === 2 && relativePath.charCodeAt(start + 1) === 0x2e))
    ) {
      return `"${relativePath.slice(start, end)}" segment`;
    }
    if (platform === "windows") {
      const segment = relativePath.slice(start, end);
      if (WINDOWS_FORBIDDEN_CHARS.test(segment)) {
        return `"${segment}" has a character Windows does not allow in names`;
      }
      if (WINDOWS_RESERVED.test(segment)) return `"${segment}" is a reserved name on Windows`;
      if (/[. ]$/.test(segment)) return `"${segment}" ends with a dot or space`;
    }
    start = end + 1;
  }
  return undefined;
}

let lastOutDir: { given: string; resolved: string } | undefined;

/**
 * path.resolve(outDir), kept for the next entry of the same restore when
 * `outDir` is absolute (a relative one depends on the working directory).
 */
function resolvedOutDir(outDir: string): string {
  if (lastOutDir?.given === outDir) return lastOutDir.resolved;
  const resolved = path.resolve(outDir);
  if (path.isAbsolute(outDir)) lastOutDir = { given: outDir, resolved };
  return resolved;
}

/**
 * The absolute destination of `relativePath` under `outDir`: UNSAFE_PATH if it
 * may not be written, NAME_UNSUPPORTED if only this system cannot hold it.
 */
export function resolveInside(
  outDir: string,
  relativePath: string,
  platform: Platform = currentPlatform,
): string {
  const reason = unsafeNameReason(relativePath, platform);
  if (reason !== undefined) {
    // A name only Windows refuses is a legitimate file from elsewhere: say how to get it.
    const windowsOnly = platform === "windows" &&
      unsafeNameReason(relativePath, "posix") === undefined;
    throw new IntellistorError(
      windowsOnly ? "NAME_UNSUPPORTED" : "UNSAFE_PATH",
      `Refusing to restore "${relativePath}": ${reason}` +
        (windowsOnly ? `. ${WINDOWS_WORKAROUND}` : ""),
      windowsOnly
        ? WINDOWS_WORKAROUND
        : "The archive holds a name that would land outside --out or cannot exist on this system.",
    );
  }
  const root = resolvedOutDir(outDir);
  // On POSIX a name that passed the checks above joins as it is (path.resolve
  // would normalize it again, for every entry of a restore).
  const target = platform === "windows"
    ? path.resolve(root, ...relativePath.split("/"))
    : `${root === "/" ? "" : root}/${relativePath}`;
  // Belt and braces: the checks above already make escaping impossible.
  if (target !== root && !target.startsWith(root + path.sep)) {
    throw new IntellistorError(
      "UNSAFE_PATH",
      `Refusing to restore "${relativePath}": escapes --out`,
    );
  }
  return target;
}

/**
 * MAX_PATH (260) less 12 for CreateDirectory's 8.3 allowance, counting the
 * terminating NUL: the limit Rust's standard library (Deno's file system
 * layer) applies before it switches to `\\?\` paths itself.
 */
export const WINDOWS_LEGACY_MAX_PATH = 248;

/**
 * The path to give the operating system for `absolutePath`.
 *
 * On Windows, a fully qualified path (`C:\…`, `\\server\share\…`) becomes its
 * `\\?\` form (`\\?\C:\…`, `\\?\UNC\server\share\…`) when, with its NUL, it
 * reaches WINDOWS_LEGACY_MAX_PATH UTF-16 units, or when `literal` is set: the
 * `\\?\` form turns off Win32's rewriting, which would drop a trailing dot or
 * space and read `CON` as the console. The path is normalized first (`/` → `\`,
 * no `.` or `..`), as `\\?\` paths must be. Paths already in a device form
 * (`\\?\`, `\\.\`, `\??\`), relative or drive-relative ones, and every path on
 * other platforms, are returned unchanged. Only for file-system calls: never
 * shown, never recorded.
 */
export function osPath(
  absolutePath: string,
  platform: Platform = currentPlatform,
  options: { literal?: boolean } = {},
): string {
  if (platform !== "windows") return absolutePath;
  if (/^(?:[\\/][\\/][?.][\\/]|\\\?\?\\)/.test(absolutePath)) return absolutePath;
  const drive = /^[A-Za-z]:[\\/]/.test(absolutePath);
  const unc = /^[\\/]{2}[^\\/]+[\\/]+[^\\/]/.test(absolutePath);
  if (!drive && !unc) return absolutePath;
  const full = path.win32.normalize(absolutePath);
  if (!options.literal && full.length + 1 < WINDOWS_LEGACY_MAX_PATH) return absolutePath;
  return drive ? `\\\\?\\${full}` : `\\\\?\\UNC\\${full.slice(2)}`;
}

/** `\\?\C:\x` → `C:\x`, `\\?\UNC\server\share` → `\\server\share` (also `\\.\`); others unchanged. */
export function withoutVerbatimPrefix(windowsPath: string): string {
  const prefix = /^[\\/][\\/][?.][\\/](UNC[\\/])?/i.exec(windowsPath);
  if (prefix === null) return windowsPath;
  const rest = windowsPath.slice(prefix[0].length);
  return prefix[1] === undefined ? rest : `\\\\${rest}`;
}

/**
 * The form in which two names are the same name on a Windows file system:
 * each character upper-cased on its own, as NTFS's upcase table does (so
 * `ß` stays `ß`, and NFC and NFD spellings stay different).
 */
export function windowsCaseKey(name: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(name)) return name.toUpperCase();
  let key = "";
  for (const character of name) {
    // Only one UTF-16 unit to one: what the upcase table can express.
    const upper = character.length === 1 ? character.toUpperCase() : character;
    key += upper.length === 1 ? upper : character;
  }
  return key;
}

/**
 * Entries that cannot be restored on a case-insensitive file system next to
 * an earlier one, with the failure to report for each. `entries` are in
 * archive order; the first spelling wins. A later entry is refused when its
 * name, or a folder on its way, is an earlier entry's name in another case —
 * except two folders, which are merged (that loses nothing).
 */
export function caseCollisions(
  entries: Iterable<{ relative_path: string; type: string }>,
): Map<string, string> {
  /** Case key → the first name that took it, and whether it is a folder. */
  const taken = new Map<string, { name: string; folder: boolean }>();
  const refused = new Map<string, string>();
  for (const entry of entries) {
    const segments = entry.relative_path.split("/");
    const claims: [string, { name: string; folder: boolean }][] = [];
    let problem: string | undefined;
    let name = "";
    for (const [index, segment] of segments.entries()) {
      name = index === 0 ? segment : `${name}/${segment}`;
      const own = index === segments.length - 1;
      const folder = !own || entry.type === "dir";
      const key = windowsCaseKey(name);
      const earlier = taken.get(key);
      if (earlier === undefined) {
        claims.push([key, { name, folder }]);
      } else if (earlier.name !== name && !(earlier.folder && folder)) {
        problem = own
          ? `collides with "${earlier.name}" on a case-insensitive file system`
          : `its folder "${name}" collides with "${earlier.name}" on a case-insensitive file system`;
        break;
      }
    }
    if (problem !== undefined) {
      refused.set(
        entry.relative_path,
        `${problem}; not restored, so that neither replaces the other (even with --overwrite). ` +
          WINDOWS_WORKAROUND,
      );
      continue;
    }
    for (const [key, claim] of claims) taken.set(key, claim);
  }
  return refused;
}

/** Directories a restore makes: never writable by others while it runs (see ensureDirectory). */
const NEW_DIRECTORY_MODE = 0o755;

/**
 * Creates `relativeDir` (and the directories above it) under `outDir`,
 * refusing any existing component that is not a real directory: a symlink
 * on the way could redirect writes outside `outDir`. `""` means `outDir`.
 */
export async function ensureDirectory(
  outDir: string,
  relativeDir: string,
  platform: Platform = currentPlatform,
): Promise<string> {
  let current = path.resolve(outDir);
  // Never writable by others while the restore runs, whatever the umask: no
  // one else can swap what is inside for a link (the backup's own modes are
  // applied at the end).
  await Deno.mkdir(osPath(current, platform), { recursive: true, mode: NEW_DIRECTORY_MODE });
  if (relativeDir === "") return current;
  resolveInside(outDir, relativeDir, platform);
  for (const segment of relativeDir.split("/")) {
    current = await ensureSubdirectory(current, segment, platform);
  }
  return current;
}

/**
 * One step of `ensureDirectory`: `name` inside `parent`, a directory it has
 * already made or checked; made if missing, refused if not a real directory.
 */
export async function ensureSubdirectory(
  parent: string,
  name: string,
  platform: Platform = currentPlatform,
): Promise<string> {
  const current = path.join(parent, name);
  const target = osPath(current, platform);
  let info: Deno.FileInfo | undefined;
  try {
    info = await Deno.lstat(target);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (info === undefined) {
    try {
      await Deno.mkdir(target, { mode: NEW_DIRECTORY_MODE });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    info = await Deno.lstat(target);
  }
  if (!info.isDirectory || info.isSymlink) {
    // Something already in --out (the restore makes its own links last).
    throw new IntellistorError(
      "OUTPUT_EXISTS",
      `Refusing to restore into "${current}": it is ${
        info.isSymlink ? "a symbolic link" : "not a directory"
      }`,
      "Restore into an empty directory, or remove what is in the way.",
    );
  }
  return current;
}

/** `ensureDirectory` for the directory that will hold `relativePath`. */
export function ensureParentDirectory(
  outDir: string,
  relativePath: string,
  platform: Platform = currentPlatform,
): Promise<string> {
  return ensureDirectory(outDir, parentOf(relativePath), platform);
}

/** The relative_path of the folder holding `relativePath` ("" at the top). */
export function parentOf(relativePath: string): string {
  const cut = relativePath.lastIndexOf("/");
  return cut < 0 ? "" : relativePath.slice(0, cut);
}

/** True if something (a file, directory or symlink, followed or not) is at `target`. */
export async function pathExists(
  target: string,
  platform: Platform = currentPlatform,
): Promise<boolean> {
  try {
    await Deno.lstat(osPath(target, platform));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * `pathExists` without waiting on another thread, for many small files.
 * By default node:fs `existsSync`, which answers without throwing (3 µs a
 * call against 18 µs for an lstat that throws NotFound, measured); it
 * follows symlinks, so a dangling symlink counts as absent, and the rename
 * that follows replaces the link itself, never what it points to. With
 * `symlinks: true` a dangling symlink counts as present (an lstat).
 */
export function pathExistsSync(
  target: string,
  platform: Platform = currentPlatform,
  options: { symlinks?: boolean } = {},
): boolean {
  const onDisk = osPath(target, platform);
  if (!options.symlinks) return existsSync(onDisk);
  try {
    Deno.lstatSync(onDisk);
    return true;
  } catch {
    return false;
  }
}

/**
 * Selected names that share their case-folded, NFC-normalised spelling with
 * another: on a case-insensitive or normalising volume (macOS, FAT, SMB,
 * Windows) they are the same file, or sit in the same folder under another
 * spelling of it.
 */
export function foldedNameClashes(names: Iterable<string>): Set<string> {
  // The first name of each folded form; no list per name (a restore may hold millions).
  const firstByKey = new Map<string, string>();
  const clashes = new Set<string>();
  for (const name of names) {
    const key = name.normalize("NFC").toLowerCase();
    const first = firstByKey.get(key);
    if (first === undefined) firstByKey.set(key, name);
    else clashes.add(first).add(name);
  }
  return clashes;
}
