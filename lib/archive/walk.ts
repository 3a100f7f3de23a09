/**
 * Walks a policy's source paths and names every entry by its `relative_path`.
 *
 * Naming rule (documented in the README):
 * - one source path that is a directory: its contents are named relative to it
 *   (`/srv/data/docs/a.txt` → `docs/a.txt`);
 * - one source path that is a file: its file name;
 * - several source paths: each one's own name comes first
 *   (`/srv/data` and `/etc/app` → `data/…` and `app/…`); the policy refuses
 *   two source paths with the same final name, so names never collide.
 *
 * Symbolic links inside the tree are archived as links, never followed. A
 * source path itself is followed (the user named it). Entries that cannot be
 * read become warnings, never a failure of the whole walk.
 */
import path from "node:path";
import type { BackupWarning, EntryType } from "./catalog.ts";

export interface SourceEntry {
  relativePath: string;
  absolutePath: string;
  type: EntryType;
  size: number;
  mode: number;
  mtimeMs: number;
  link?: string;
}

export interface WalkOptions {
  /** True for a relative path that the policy excludes; its subtree is skipped too. */
  excluded?: (relativePath: string) => boolean;
  /**
   * Absolute paths never archived, nor what is under them: the backup's own
   * store, its local copy, the .env file. Without this a source that holds
   * the store would archive every earlier backup, and its own partial object.
   */
  skipPaths?: readonly string[];
  warn: (warning: BackupWarning) => void;
}

type PathTest = (absolutePath: string) => boolean;

const isWindows = Deno.build.os === "windows";

export async function* walkSources(
  roots: readonly string[],
  options: WalkOptions,
): AsyncGenerator<SourceEntry> {
  const several = roots.length > 1;
  const skip = await pathSetTest(options.skipPaths ?? []);
  for (const root of roots) {
    if (skip(root)) continue;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(root);
    } catch (error) {
      options.warn({ path: root, message: describeIoError(error), skipped: true });
      continue;
    }
    const rootName = path.basename(root);
    if (!info.isDirectory || several) {
      const entry = toEntry(rootName, root, info);
      if (entry === undefined) {
        options.warn({
          path: root,
          message: "not a regular file, directory or symlink",
          skipped: true,
        });
        continue;
      }
      if (options.excluded?.(entry.relativePath)) continue;
      yield entry;
      if (entry.type !== "dir") continue;
    }
    yield* walkDirectory(root, several ? rootName : "", options, skip);
  }
}

/** Matches the given paths, both as written and as their real (symlink-free) paths. */
async function pathSetTest(paths: readonly string[]): Promise<PathTest> {
  const key = (p: string) => (isWindows ? path.resolve(p).toLowerCase() : path.resolve(p));
  const keys = new Set<string>();
  for (const p of paths) {
    keys.add(key(p));
    try {
      keys.add(key(await Deno.realPath(p)));
    } catch {
      // Not there (yet): the path as written is enough.
    }
  }
  return (absolutePath) => keys.size > 0 && keys.has(key(absolutePath));
}

async function* walkDirectory(
  directory: string,
  relativeDir: string,
  options: WalkOptions,
  skip: PathTest,
): AsyncGenerator<SourceEntry> {
  let names: string[];
  try {
    names = [];
    for await (const item of Deno.readDir(directory)) names.push(item.name);
  } catch (error) {
    options.warn({ path: directory, message: describeIoError(error), skipped: true });
    return;
  }
  // Sorted (by UTF-16 code unit): the archive's order is reproducible.
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const absolutePath = path.join(directory, name);
    if (name.includes("\uFFFD")) {
      // The OS gave a name that is not valid UTF-8; it cannot be opened by this name.
      options.warn({
        path: absolutePath,
        message: "name is not valid UTF-8 (a legacy encoding?); it cannot be backed up",
        skipped: true,
      });
      continue;
    }
    const relativePath = relativeDir === "" ? name : `${relativeDir}/${name}`;
    if (options.excluded?.(relativePath) || skip(absolutePath)) continue;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(absolutePath);
    } catch (error) {
      options.warn({ path: absolutePath, message: describeIoError(error), skipped: true });
      continue;
    }
    const entry = toEntry(relativePath, absolutePath, info);
    if (entry === undefined) {
      options.warn({
        path: absolutePath,
        message: "not a regular file, directory or symlink",
        skipped: true,
      });
      continue;
    }
    if (entry.type === "symlink") {
      try {
        entry.link = await Deno.readLink(absolutePath);
      } catch (error) {
        options.warn({ path: absolutePath, message: describeIoError(error), skipped: true });
        continue;
      }
    }
    yield entry;
    if (entry.type === "dir") yield* walkDirectory(absolutePath, relativePath, options, skip);
  }
}

function toEntry(
  relativePath: string,
  absolutePath: string,
  info: Deno.FileInfo,
): SourceEntry | undefined {
  const type: EntryType | undefined = info.isFile
    ? "file"
    : info.isDirectory
    ? "dir"
    : info.isSymlink
    ? "symlink"
    : undefined;
  if (type === undefined) return undefined;
  const defaultMode = type === "file" ? 0o644 : 0o755;
  return {
    relativePath,
    absolutePath,
    type,
    size: type === "file" ? info.size : 0,
    // Windows has no permission bits: record the usual defaults.
    mode: isWindows || info.mode === null ? defaultMode : info.mode & 0o7777,
    mtimeMs: info.mtime?.getTime() ?? 0,
  };
}

/** A one-line reason for an I/O failure, without a stack. */
export function describeIoError(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotFound) return "vanished before it could be read";
  if (error instanceof Deno.errors.Busy) return "locked by another process";
  if (error instanceof Error) return error.message;
  return String(error);
}
