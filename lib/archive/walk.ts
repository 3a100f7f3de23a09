/**
 * Walks a policy's source paths and names every entry by its `relative_path`.
 *
 * Naming rule (documented in the README and docs/windows.md):
 * - one source path that is a directory: its contents are named relative to it
 *   (`/srv/data/docs/a.txt` → `docs/a.txt`, `C:\dados\docs\a.png` →
 *   `docs/a.png`, `\\server\share\dir\a.txt` → `a.txt`);
 * - one source path that is a file: its file name;
 * - several source paths: each one's own name (`sourceRootName`) comes first
 *   (`/srv/data` and `/etc/app` → `data/…` and `app/…`; `C:\dados` and
 *   `\\server\share` → `dados/…` and `share/…`); the policy refuses two source
 *   paths with the same final name, so names never collide.
 * Names inside a tree are the names the OS lists, joined with "/" whatever
 * the platform's separator.
 *
 * Every path given to the OS goes through `osPath` (lib/safe_path.ts): on
 * Windows, paths of MAX_PATH or more become `\\?\` paths, and so does
 * everything under a name Win32 would rewrite (`name.`, `name `, `CON`), so
 * that such a file is read as itself and not as another one. The entry's
 * `absolutePath` (shown in warnings, recorded as `source`) stays plain.
 *
 * Symbolic links inside the tree are archived as links, never followed. A
 * source path itself is followed (the user named it). Entries that cannot be
 * read (permission denied, vanished, locked by another process) become
 * warnings, never a failure of the whole walk.
 */
import {
  currentPlatform,
  osPath,
  pathApi,
  type Platform,
  windowsRewritesName,
  withoutTrailingSeparator,
  withoutVerbatimPrefix,
} from "../safe_path.ts";
import type { BackupWarning, EntryType } from "./catalog.ts";
import { CAN_CHECK_WHERE, swappable } from "./source_file.ts";

export interface SourceEntry {
  relativePath: string;
  absolutePath: string;
  /** The path to open it by, when it differs from absolutePath (a `\\?\` path on Windows). */
  osPath?: string;
  /**
   * Another user could swap a folder on its path for a link (source_file.ts
   * `swappable`): check where the opened file really is.
   */
  checkWhere?: true;
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
  /** Whose path rules apply; the running system's by default (tests pass "windows"). */
  platform?: Platform;
  /** The file system to read; Deno's by default (tests pass an in-memory one). */
  fileSystem?: WalkFileSystem;
}

/** What the walk reads of an entry's metadata. */
export type WalkFileInfo =
  & Pick<Deno.FileInfo, "isFile" | "isDirectory" | "isSymlink" | "size" | "mode" | "mtime">
  & Partial<Pick<Deno.FileInfo, "dev" | "ino" | "nlink" | "uid">>;

/**
 * The file-system calls the walk makes, each given a path from `osPath`.
 * Those made per entry or per directory are synchronous: measured on 20,000
 * files, `lstat` takes 5 µs that way, 20 µs as asynchronous calls even 64 at
 * once; and a synchronous walk of 50,000 files hands its entries on in
 * about 0.4 s instead of 0.5–0.8 s.
 */
export interface WalkFileSystem {
  stat(path: string): Promise<WalkFileInfo>;
  lstat(path: string): WalkFileInfo;
  readDir(path: string): Iterable<{ name: string }>;
  /** For a large directory (see LARGE_DIRECTORY_BYTES); `readDir` when absent. */
  readDirAsync?(path: string): AsyncIterable<{ name: string }>;
  readLink(path: string): string;
  realPath(path: string): Promise<string>;
}

const denoFileSystem: WalkFileSystem = {
  stat: (p) => Deno.stat(p),
  lstat: (p) => Deno.lstatSync(p),
  readDir: (p) => Deno.readDirSync(p),
  readDirAsync: (p) => Deno.readDir(p),
  readLink: (p) => Deno.readLinkSync(p),
  realPath: (p) => Deno.realPath(p),
};

interface WalkContext {
  options: WalkOptions;
  platform: Platform;
  fs: WalkFileSystem;
  skip: PathTest;
}

/**
 * Whether a path is one of a set. `joined` is the fast form for a path made
 * by joining a listed `name` to a normalized directory: on POSIX it is its
 * own key.
 */
interface PathTest {
  (absolutePath: string): boolean;
  joined(absolutePath: string, name: string): boolean;
  /** A hard link to a skipped file (the .env linked into a source) under another name. */
  sameFile(info: WalkFileInfo): boolean;
}

/**
 * The name a source path takes as the first component of relative_path when
 * a policy has several: its final name (`C:\dados` → `dados`,
 * `\\server\share\dir` → `dir`, a share root `\\server\share` → `share`),
 * read through a `\\?\` prefix; a drive root's is its letter (`\\?\D:\` → `D`;
 * the policy refuses a bare `D:\` among several paths).
 */
export function sourceRootName(root: string, platform: Platform = currentPlatform): string {
  const api = pathApi(platform);
  if (platform !== "windows") return api.basename(root);
  const plain = withoutVerbatimPrefix(root);
  const name = api.basename(plain);
  const drive = /^([A-Za-z]):[\\/]*$/.exec(plain);
  return name === "" && drive ? drive[1] : name;
}

export async function* walkSources(
  roots: readonly string[],
  options: WalkOptions,
): AsyncGenerator<SourceEntry> {
  const platform = options.platform ?? currentPlatform;
  const fs = options.fileSystem ?? denoFileSystem;
  const several = roots.length > 1;
  const skip = await pathSetTest(options.skipPaths ?? [], roots, platform, fs);
  const context: WalkContext = { options, platform, fs, skip };
  for (const root of roots) {
    if (skip(root)) continue;
    let info: WalkFileInfo;
    try {
      info = await fs.stat(osPath(root, platform));
    } catch (error) {
      leaveOut(options, root, describeIoError(error, platform));
      continue;
    }
    const rootName = sourceRootName(root, platform);
    // Files are opened by their real path, which source_file.ts checks the
    // opened file against (Linux): the root's own links resolved once here.
    const realRoot = platform === "posix"
      ? await fs.realPath(root).catch(() => undefined)
      : undefined;
    const swapAbove = realRoot !== undefined && pathSwappable(realRoot, fs);
    if (!info.isDirectory || several) {
      const entry = toEntry(rootName, root, info, platform);
      if (entry !== undefined && realRoot !== undefined && realRoot !== root) {
        entry.osPath = realRoot;
      }
      if (entry !== undefined && swapAbove) entry.checkWhere = true;
      if (entry === undefined) {
        // A policy path that is a socket, FIFO or device archives nothing: partial, never "ok".
        leaveOut(options, root, "not a regular file, directory or symlink: nothing archived");
        continue;
      }
      if (options.excluded?.(entry.relativePath)) continue;
      yield entry;
      if (entry.type !== "dir") continue;
    }
    // Normalized once, without a trailing separator ("/src/" would give
    // "/src//name", which no skipped path matches): names under it are then
    // joined by concatenation.
    const directory = withoutTrailingSeparator(pathApi(platform).normalize(root), platform);
    const realDirectory = realRoot !== undefined && realRoot !== directory ? realRoot : undefined;
    yield* servingListings(
      walkDirectory(directory, several ? rootName : "", false, context, {
        realDirectory,
        info,
        swapAbove,
      }),
      fs,
    );
  }
}

/**
 * A directory whose size (as the file system reports it, roughly 16–40 bytes
 * a name) passes this is listed asynchronously. Deno's synchronous listing
 * of 200,000 names took 1.0–1.3 s and 169 MiB, the asynchronous one 0.7 s and
 * 66 MiB; for small directories the synchronous one is faster.
 */
const LARGE_DIRECTORY_BYTES = 256 << 10;

/** The walk's request to list a large directory; answered with its names or the error. */
class ListingRequest {
  constructor(readonly path: string) {}
}

type ListingReply = string[] | { failed: unknown } | undefined;

type DirectoryWalk = Generator<SourceEntry | ListingRequest, void, ListingReply>;

/** Runs a directory's synchronous walk, answering its listing requests with an await each. */
async function* servingListings(
  walk: DirectoryWalk,
  fs: WalkFileSystem,
): AsyncGenerator<SourceEntry> {
  try {
    let reply: ListingReply;
    for (;;) {
      const step = walk.next(reply);
      reply = undefined;
      if (step.done) return;
      if (!(step.value instanceof ListingRequest)) {
        yield step.value;
        continue;
      }
      try {
        const names: string[] = [];
        for await (const item of fs.readDirAsync!(step.value.path)) names.push(item.name);
        reply = names;
      } catch (error) {
        reply = { failed: error };
      }
    }
  } finally {
    walk.return();
  }
}

/**
 * Matches the given paths as written, as their real (symlink-free) paths, and
 * as the walk meets them under each root: a root reached through a symlink is
 * walked under its name as written, so a store inside it is seen there.
 */
async function pathSetTest(
  paths: readonly string[],
  roots: readonly string[],
  platform: Platform,
  fs: WalkFileSystem,
): Promise<PathTest> {
  const api = pathApi(platform);
  // Windows: case-insensitive, and `\\?\C:\x` is `C:\x` (realPath may answer either).
  const key = (p: string) =>
    platform === "windows" ? api.resolve(withoutVerbatimPrefix(p)).toLowerCase() : api.resolve(p);
  const keys = new Set<string>();
  for (const p of paths) {
    keys.add(key(p));
    try {
      keys.add(key(await fs.realPath(osPath(p, platform))));
    } catch {
      // Not there (yet): the path as written is enough.
    }
  }
  if (keys.size > 0) {
    for (const root of roots) {
      let realRoot: string;
      try {
        realRoot = key(await fs.realPath(osPath(root, platform)));
      } catch {
        continue; // reported by the walk
      }
      const rootAsWritten = key(root);
      if (realRoot === rootAsWritten) continue;
      for (const skipped of [...keys]) {
        const inside = api.relative(realRoot, skipped);
        if (inside === ".." || inside.startsWith(`..${api.sep}`) || api.isAbsolute(inside)) {
          continue;
        }
        keys.add(key(api.join(rootAsWritten, inside)));
      }
    }
  }
  // Files by device and inode: a hard link has another name, and is the same file.
  const files = new Set<string>();
  for (const p of paths) {
    const info = await fs.stat(osPath(p, platform)).catch(() => undefined);
    if (info?.isFile && info.ino != null && info.dev != null) files.add(`${info.dev}:${info.ino}`);
  }
  const sameFile = (info: WalkFileInfo) =>
    files.size > 0 && info.isFile && (info.nlink ?? 1) > 1 && files.has(`${info.dev}:${info.ino}`);
  const test = (absolutePath: string) => keys.size > 0 && keys.has(key(absolutePath));
  // The final names first: hashing a short listed name is cheaper than a new full path.
  const names = new Set([...keys].map((k) => api.basename(k)));
  const joined = (absolutePath: string, name: string) => names.has(name) && keys.has(absolutePath);
  return Object.assign(test, { joined: platform === "windows" ? test : joined, sameFile });
}

/** What a directory's walk knows of the directory itself. */
interface DirectoryPlace {
  /** Its real path, when a root reached it through a link (POSIX): entries are read by theirs. */
  realDirectory?: string;
  /** Its own metadata (owner and mode decide whether its entries can be swapped). */
  info: WalkFileInfo;
  /** Another user could swap a name on the way to it (source_file.ts `swappable`). */
  swapAbove: boolean;
}

/**
 * `literal`: a name on the way is one Win32 would rewrite, so every path
 * under it is given to Windows in its `\\?\` form.
 */
function* walkDirectory(
  directory: string,
  relativeDir: string,
  literal: boolean,
  context: WalkContext,
  place: DirectoryPlace,
): DirectoryWalk {
  const { options, platform, fs, skip } = context;
  const { realDirectory, swapAbove } = place;
  const realJoin = realDirectory === undefined
    ? undefined
    : (name: string) => realDirectory === "/" ? `/${name}` : `${realDirectory}/${name}`;
  let names: string[];
  try {
    const listPath = realDirectory ?? osPath(directory, platform, { literal });
    if (fs.readDirAsync !== undefined && place.info.size > LARGE_DIRECTORY_BYTES) {
      const reply = yield new ListingRequest(listPath);
      if (!Array.isArray(reply)) throw reply?.failed;
      names = reply;
    } else {
      names = [];
      for (const item of fs.readDir(listPath)) names.push(item.name);
    }
  } catch (error) {
    leaveOut(options, directory, describeIoError(error, platform));
    return;
  }
  // Sorted (by UTF-16 code unit): the archive's order is reproducible.
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // `directory` is normalized, and a listed name has no separator: on POSIX,
  // joining is concatenating (path.join would normalize the whole path again).
  const join = platform === "windows"
    ? (name: string) => pathApi(platform).join(directory, name)
    : (name: string) => directory === "/" ? `/${name}` : `${directory}/${name}`;
  for (const name of names) {
    const absolutePath = join(name);
    const literalHere = literal || (platform === "windows" && windowsRewritesName(name));
    const openPath = realJoin?.(name) ?? osPath(absolutePath, platform, { literal: literalHere });
    if (name.includes("\uFFFD")) {
      // The OS gave a name that is not valid UTF-8; it cannot be opened by this name.
      leaveOut(
        options,
        absolutePath,
        "name is not valid UTF-8 (a legacy encoding?); it cannot be backed up",
      );
      continue;
    }
    const relativePath = relativeDir === "" ? name : `${relativeDir}/${name}`;
    if (options.excluded?.(relativePath) || skip.joined(absolutePath, name)) continue;
    let info: WalkFileInfo;
    try {
      info = fs.lstat(openPath);
    } catch (error) {
      leaveOut(options, absolutePath, describeIoError(error, platform));
      continue;
    }
    if (skip.sameFile(info)) continue;
    const entry = toEntry(relativePath, absolutePath, info, platform);
    if (entry === undefined) {
      leaveOutSpecial(options, absolutePath);
      continue;
    }
    if (entry.type === "symlink") {
      try {
        entry.link = fs.readLink(openPath);
      } catch (error) {
        leaveOut(options, absolutePath, describeIoError(error, platform));
        continue;
      }
    }
    if (openPath !== absolutePath) entry.osPath = openPath;
    if (swapAbove) entry.checkWhere = true;
    yield entry;
    if (entry.type === "dir") {
      yield* walkDirectory(absolutePath, relativePath, literalHere, context, {
        realDirectory: realJoin?.(name),
        info,
        swapAbove: swapAbove || swappable(place.info, info),
      });
    }
  }
}

/**
 * Whether another user could swap a name on the way to `realPath` (itself
 * included), from `/` down; only where the kernel can say where an opened
 * file is (else nothing is checked anyway). One `lstat` per level, per root.
 */
function pathSwappable(realPath: string, fs: WalkFileSystem): boolean {
  if (!CAN_CHECK_WHERE) return false;
  try {
    const { dirname } = pathApi("posix");
    let child = realPath;
    let childInfo = fs.lstat(child);
    for (let parent = dirname(child); parent !== child; parent = dirname(child)) {
      const parentInfo = fs.lstat(parent);
      if (swappable(parentInfo, childInfo)) return true;
      child = parent;
      childInfo = parentInfo;
    }
    return false;
  } catch {
    return true; // cannot tell: check
  }
}

/** Warns that `path` is left out of the backup (the walk goes on). */
function leaveOut(options: WalkOptions, path: string, message: string): void {
  options.warn({ path, message, skipped: true });
}

/** A socket, FIFO or device: reported, never archived, not a failure. */
function leaveOutSpecial(options: WalkOptions, path: string): void {
  options.warn({
    path,
    message: "a socket, FIFO or device: not archived (not a regular file, directory or symlink)",
    skipped: true,
    special: true,
  });
}

function toEntry(
  relativePath: string,
  absolutePath: string,
  info: WalkFileInfo,
  platform: Platform,
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
  const entry: SourceEntry = {
    relativePath,
    absolutePath,
    type,
    size: type === "file" ? info.size : 0,
    // Windows has no permission bits: record the usual defaults.
    mode: platform === "windows" || info.mode === null ? defaultMode : info.mode & 0o7777,
    mtimeMs: info.mtime?.getTime() ?? 0,
  };
  const openPath = osPath(absolutePath, platform);
  if (openPath !== absolutePath) entry.osPath = openPath;
  return entry;
}

/**
 * A one-line reason for an I/O failure, without a stack.
 *
 * On Windows a file another process holds open without FILE_SHARE_READ (a
 * database, a PST, an open Office document) fails with ERROR_SHARING_VIOLATION
 * (32), and a byte range locked with LockFileEx fails a read with
 * ERROR_LOCK_VIOLATION (33). Deno maps neither to an error class of its own:
 * both are a plain `Error` whose `code` is "EBUSY" (deno_error's table,
 * after libuv) and whose message ends in "(os error 32)" / "(os error 33)".
 * Both become "locked by another process": a warning, the backup goes on.
 */
export function describeIoError(error: unknown, platform: Platform = currentPlatform): string {
  // Deno's errors, and node:fs's codes (source files are opened with node:fs).
  const code = (error as { code?: unknown } | undefined)?.code;
  if (error instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    return "permission denied";
  }
  if (error instanceof Deno.errors.NotFound || code === "ENOENT") {
    return "vanished before it could be read";
  }
  if (code === "ELOOP") {
    return "was replaced by a symbolic link during the backup; not followed";
  }
  if (code === "ENAMETOOLONG") {
    // The message would repeat the whole (over 4 KiB) path.
    return "its path is longer than this system lets a program open (4,096 bytes on Linux); " +
      "add a folder deeper down to the policy's paths to back it up";
  }
  if (code === "ENXIO") return "was replaced by a socket during the backup";
  if (code === "EISDIR") return "was replaced by a directory during the backup";
  if (error instanceof Deno.errors.Busy || isLockedError(error, platform)) {
    return "locked by another process";
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

/** EBUSY anywhere; on Windows also os errors 32 and 33 without a code (elsewhere they mean others). */
function isLockedError(error: unknown, platform: Platform): boolean {
  if (!(error instanceof Error)) return false;
  if ((error as { code?: unknown }).code === "EBUSY") return true;
  return platform === "windows" && /\(os error 3[23]\)/.test(error.message);
}
