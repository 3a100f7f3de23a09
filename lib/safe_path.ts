/**
 * The one place that decides whether an archive name may be written under a
 * restore's output directory, and where it goes.
 *
 * A name is refused when it is empty, absolute (`/x`), has an empty, `.` or
 * `..` segment, or contains NUL. Restoring on Windows also refuses absolute
 * forms there (`\x`, `C:…`, `\\server`) and what Windows cannot represent
 * faithfully: `\` (a separator there), `:` and
 * `<>"|?*` or control characters in a name, reserved device names (`CON`,
 * `NUL.txt`, `COM1`…) and names ending in a dot or a space.
 * Directories on the way must be real directories: a symlink planted in the
 * output (or restored earlier) is never followed.
 */
import path from "node:path";
import { IntellistorError } from "./errors.ts";

export type Platform = "windows" | "posix";

export const currentPlatform: Platform = Deno.build.os === "windows" ? "windows" : "posix";

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
// deno-lint-ignore no-control-regex
const WINDOWS_FORBIDDEN_CHARS = /[<>:"|?*\\\x00-\x1f]/;

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
  for (const segment of relativePath.split("/")) {
    if (segment === "") return "empty path segment";
    if (segment === "." || segment === "..") return `"${segment}" segment`;
    if (platform === "windows") {
      if (WINDOWS_FORBIDDEN_CHARS.test(segment)) {
        return `"${segment}" has a character Windows does not allow in names`;
      }
      if (WINDOWS_RESERVED.test(segment)) return `"${segment}" is a reserved name on Windows`;
      if (/[. ]$/.test(segment)) return `"${segment}" ends with a dot or space`;
    }
  }
  return undefined;
}

/** The absolute destination of `relativePath` under `outDir`; UNSAFE_PATH if it may not be written. */
export function resolveInside(
  outDir: string,
  relativePath: string,
  platform: Platform = currentPlatform,
): string {
  const reason = unsafeNameReason(relativePath, platform);
  if (reason !== undefined) {
    throw new IntellistorError(
      "UNSAFE_PATH",
      `Refusing to restore "${relativePath}": ${reason}`,
      "The archive holds a name that would land outside --out or cannot exist on this system.",
    );
  }
  const root = path.resolve(outDir);
  const target = path.resolve(root, ...relativePath.split("/"));
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
  await Deno.mkdir(current, { recursive: true });
  if (relativeDir === "") return current;
  resolveInside(outDir, relativeDir, platform);
  for (const segment of relativeDir.split("/")) {
    current = path.join(current, segment);
    let info: Deno.FileInfo | undefined;
    try {
      info = await Deno.lstat(current);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (info === undefined) {
      try {
        await Deno.mkdir(current);
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      info = await Deno.lstat(current);
    }
    if (!info.isDirectory || info.isSymlink) {
      throw new IntellistorError(
        "UNSAFE_PATH",
        `Refusing to restore into "${current}": it is ${
          info.isSymlink ? "a symbolic link" : "not a directory"
        }`,
        "Restore into an empty directory, or remove what is in the way.",
      );
    }
  }
  return current;
}

/** `ensureDirectory` for the directory that will hold `relativePath`. */
export function ensureParentDirectory(
  outDir: string,
  relativePath: string,
  platform: Platform = currentPlatform,
): Promise<string> {
  const cut = relativePath.lastIndexOf("/");
  return ensureDirectory(outDir, cut < 0 ? "" : relativePath.slice(0, cut), platform);
}

/** True if something (a file, directory or symlink, followed or not) is at `target`. */
export async function pathExists(target: string): Promise<boolean> {
  try {
    await Deno.lstat(target);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
