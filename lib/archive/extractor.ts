/**
 * Writes tar entries under an output directory, trusting only the sealed
 * manifest: every entry must be listed there with the same type, size and
 * offset, and every file must hash to the manifest's SHA-256 before it gets
 * its real name (written as a temporary file, renamed once verified).
 * Symlinks are created last, so no entry can be written through one.
 *
 * Restoring on Windows (lib/safe_path.ts, docs/windows.md): a name Windows
 * cannot hold (`CON`, `a:b`, `name.`) and the later of two names that differ
 * only in case (`a.txt`, `A.TXT`) are failures of their own entry, reported
 * with a way to get them; the restore goes on. Every path is given to the OS
 * through `osPath`, so paths beyond MAX_PATH work.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import { ExitCode, IntellistorError, isDiskFull, toIntellistorError } from "../errors.ts";
import {
  caseCollisions,
  currentPlatform,
  ensureDirectory,
  ensureParentDirectory,
  ensureSubdirectory,
  foldedNameClashes,
  osPath,
  parentOf,
  pathExists,
  pathExistsSync,
  type Platform,
  resolveInside,
} from "../safe_path.ts";
import type { CatalogEntry } from "./catalog.ts";
import type { ReadonlySetLike } from "./entry_table.ts";
import { failureEndsRestore, type FileJob, FileWriter, messageOf } from "./file_writer.ts";
import type { TarEntry } from "./tar.ts";

export interface RestoreFailure {
  path: string;
  message: string;
  /**
   * "integrity": the backup does not hold this entry intact (damaged,
   * missing, tampered with, an unsafe name); "write": the entry is intact but
   * could not be written here (permissions, a name this system cannot hold, a
   * path too long, something in the way).
   */
  kind: "integrity" | "write";
}

export interface ExtractorOptions {
  outDir: string;
  /** Every entry of the manifest, by relative_path (a Map, or an EntryTable). */
  known: { get(relativePath: string): CatalogEntry | undefined };
  /** The relative paths to restore. */
  selected: ReadonlySetLike<string>;
  overwrite: boolean;
  platform?: Platform;
  /** Stops the extraction (with an AbortError) at the next entry or chunk. */
  signal?: AbortSignal;
}

/** Names an OUTPUT_EXISTS error shows; it counts them all. */
const SHOWN_CLASHES = 5;

/**
 * Files up to this size are read whole, verified, then written with
 * synchronous calls: for a small file each asynchronous file-system call
 * costs more in hand-offs between threads (~40–400 µs measured) than the
 * system call itself (~5–40 µs), and writes land in the page cache.
 */
const WHOLE_WRITE_LIMIT = 1 << 20;

export class Extractor {
  readonly failures: RestoreFailure[] = [];
  restored = 0;
  bytes = 0;
  readonly #options: ExtractorOptions;
  readonly #platform: Platform;
  readonly #seen = new Set<string>();
  readonly #symlinks: CatalogEntry[] = [];
  readonly #directories: CatalogEntry[] = [];
  /** Directories made (and checked) by this restore, by relative path. */
  readonly #directoriesMade = new Map<string, Promise<string>>();
  /** The same, once made: their paths, known without waiting. */
  readonly #directoriesReady = new Map<string, string>();
  /** Holds one small file at a time: a buffer per file would be garbage for V8 to catch up with. */
  readonly #wholeFile = new Uint8Array(WHOLE_WRITE_LIMIT);
  /** Temporary names: one random part per restore, then a count (no UUID per file). */
  readonly #temporaryPrefix = `.intellistor-${crypto.randomUUID()}-`;
  #temporaries = 0;
  /** The process's umask (POSIX): the bits a newly created file does not get. */
  readonly #umask = currentUmask();
  /** Writes verified small files, on a thread of its own once there are many. */
  readonly #writer = new FileWriter();
  /** The OS's message for a write failure that ends the restore (a full disk). */
  #writesEnded: string | undefined;
  /** Set once refuseExistingOutput has found none of the selected names taken. */
  #outputChecked = false;
  /** Selected names that may land on the same file as another (case, normalisation). */
  readonly #mayClash: ReadonlySet<string>;
  /** Selected entries refused up front (case collisions on Windows), with the reason. */
  readonly #refused: ReadonlyMap<string, string>;
  /** Set by resumeAfterDamage: entries already handled come round again, and are skipped. */
  #resuming = false;

  constructor(options: ExtractorOptions) {
    this.#options = options;
    this.#platform = options.platform ?? currentPlatform;
    this.#refused = this.#platform === "windows"
      ? caseCollisions(selectedEntries(options.known, options.selected))
      : new Map();
    this.#mayClash = foldedNameClashes(options.selected);
  }

  /**
   * Refuses, before anything is downloaded, to replace existing files
   * (OUTPUT_EXISTS, with how many, naming up to five). On Windows the file system answers
   * for another case too (`A.TXT` finds `a.txt`); names Windows refuses are
   * skipped here, the extraction reports them. Once it has passed, a file is
   * checked again just before it is written only if its name may clash with
   * another selected name (`a.txt` and `A.TXT` on a case-insensitive volume):
   * every other name is new.
   */
  refuseExistingOutput(): void {
    const { outDir } = this.#options;
    const clashes: string[] = [];
    const inTheWay: string[] = [];
    let clashCount = 0;
    if (!isMissingOrEmpty(osPath(outDir, this.#platform))) {
      for (const name of this.#options.selected) {
        let target: string;
        try {
          target = resolveInside(outDir, name, this.#platform);
        } catch {
          continue; // reported as a failure during extraction
        }
        // An existing directory is merged into; a file or link where one goes is in the way.
        const isDirectory = this.#options.known.get(name)?.type === "dir";
        const taken = isDirectory
          ? standsInForDirectory(target, this.#platform)
          : pathExistsSync(target, this.#platform, { symlinks: true });
        if (!taken) continue;
        // Every name is looked at (as when none is taken), so the count is whole.
        clashCount++;
        if (clashes.length < SHOWN_CLASHES) clashes.push(name);
        if (isDirectory && inTheWay.length < SHOWN_CLASHES) inTheWay.push(name);
      }
    }
    if (clashes.length > 0) {
      const more = clashCount > clashes.length ? ` and ${clashCount - clashes.length} more` : "";
      throw new IntellistorError(
        "OUTPUT_EXISTS",
        `Restore would replace ${clashCount} existing ${
          clashCount === 1 ? "entry" : "entries"
        } in "${outDir}": ${clashes.join(", ")}${more}`,
        inTheWay.length === 0
          ? "Restore into an empty directory, or pass --overwrite to replace them."
          : `Restore into an empty directory, or move away ${inTheWay.join(", ")}: the backup ` +
            "has a directory there (--overwrite replaces files, never a file by a directory).",
      );
    }
    this.#outputChecked = true;
  }

  /** Whether a file about to be written must first be looked for. */
  #mustLookFirst(relativePath: string): boolean {
    return !this.#options.overwrite && (!this.#outputChecked || this.#mayClash.has(relativePath));
  }

  /**
   * OUTPUT_EXISTS when the file must be looked for and is there. Files still
   * with the writer are written first: one may be the name this one lands on.
   * Files handed to the writer after the look are written after those.
   */
  async #refuseIfTaken(relativePath: string, target: string): Promise<void> {
    if (!this.#mustLookFirst(relativePath)) return;
    await this.#writer.drain();
    if (await pathExists(target, this.#platform)) throw outputExists();
  }

  /** Restores the selected entries found in `entries`; skips the others. */
  async consume(entries: AsyncIterable<TarEntry>): Promise<void> {
    // Every file handed to the writer is on disk, or has failed, before this returns or throws.
    try {
      await this.#consume(entries);
      await this.#writer.drain();
    } catch (error) {
      await this.#writer.drain().catch(() => {});
      // A full disk ends the restore, whatever else broke: no later pass may hide it.
      this.#throwIfWritesEnded();
      throw error;
    }
    this.#throwIfWritesEnded();
  }

  async #consume(entries: AsyncIterable<TarEntry>): Promise<void> {
    for await (const entry of entries) {
      this.#options.signal?.throwIfAborted();
      this.#throwIfWritesEnded();
      const listed = this.#options.known.get(entry.path);
      if (listed === undefined) {
        this.#fail(entry.path, "archive entry is not listed in the manifest; skipped", "integrity");
        continue;
      }
      if (!this.#options.selected.has(entry.path)) continue;
      if (this.#seen.has(entry.path)) {
        if (!this.#resuming) {
          this.#fail(
            entry.path,
            "archive holds this name twice; the second copy was skipped",
            "integrity",
          );
        }
        continue;
      }
      this.#seen.add(entry.path);
      if (
        entry.type !== listed.type || entry.offset !== listed.tar_offset ||
        (listed.type === "file" && entry.size !== listed.size) ||
        (listed.type === "symlink" && entry.linkname !== listed.link)
      ) {
        this.#fail(entry.path, "archive entry disagrees with the manifest; skipped", "integrity");
        continue;
      }
      const refusal = this.#refused.get(entry.path);
      if (refusal !== undefined) {
        this.#fail(entry.path, refusal, "write");
        continue;
      }
      try {
        if (listed.type === "file") {
          // Most small files are written without waiting (#writeFile).
          const writing = this.#writeFile(entry, listed);
          if (writing !== undefined) await writing;
        } else if (listed.type === "dir") {
          await this.#directory(listed.relative_path);
          this.#directories.push(listed);
          this.restored++;
        } else if (listed.type === "symlink") this.#symlinks.push(listed);
        else this.#fail(entry.path, `entries of type "${listed.type}" are never restored`, "write");
      } catch (error) {
        // A broken stream (decryption, truncation) ends this pass, and a full
        // disk the whole restore: every following file would fail the same way.
        // The entry cut short is not handled: a later pass may restore it.
        if (error instanceof StreamBroken) {
          this.#seen.delete(entry.path);
          throw error.cause;
        }
        if (isDiskFull(error)) throw toIntellistorError(error);
        this.#fail(entry.path, messageOf(error), this.#kindOf(entry.path, error));
      }
    }
  }

  /** A write that failed for a reason every following one shares (a full disk) ends the restore. */
  #throwIfWritesEnded(): void {
    if (this.#writesEnded !== undefined) throw toIntellistorError(new Error(this.#writesEnded));
  }

  /**
   * After a pass ended on damage in the backup object: later passes (ranged
   * reads of the segments beyond it) meet entries already handled, which are
   * skipped instead of being reported as listed twice.
   */
  resumeAfterDamage(): void {
    this.#resuming = true;
  }

  /** Whether `relativePath` was restored, or failed, in a pass so far. */
  handled(relativePath: string): boolean {
    return this.#seen.has(relativePath);
  }

  /** Reports a selected entry that cannot be restored (it lies in a damaged part of the object). */
  giveUp(relativePath: string, message: string): void {
    this.#seen.add(relativePath);
    this.#fail(relativePath, message, "integrity");
  }

  /** Reports damage to the backup object that cost no entry (past the last one, say). */
  reportDamage(objectKey: string, message: string): void {
    this.#fail(objectKey, message, "integrity");
  }

  /** Ends the writer's thread; call it once the restore is over, however it ended. */
  close(): void {
    this.#writer.close();
  }

  /** Creates symlinks, sets directory times, and reports selected entries never seen. */
  async finish(): Promise<void> {
    this.close();
    // A backup never holds entries beneath a symlink (the walk does not follow
    // links): a link with entries under its name is the backup's fault.
    const parents = this.#symlinks.length > 0 ? parentsOf(this.#options.selected) : new Set();
    for (const link of this.#symlinks) {
      if (parents.has(link.relative_path)) {
        this.#fail(
          link.relative_path,
          "the backup also holds entries under this symbolic link's name; link not restored",
          "integrity",
        );
        continue;
      }
      try {
        await this.#writeSymlink(link);
        this.restored++;
      } catch (error) {
        this.#fail(link.relative_path, messageOf(error), this.#kindOf(link.relative_path, error));
      }
    }
    // Deepest first: creating children changes a directory's mtime.
    const byDepth = [...this.#directories].sort((a, b) =>
      b.relative_path.split("/").length - a.relative_path.split("/").length
    );
    for (const dir of byDepth) {
      try {
        const target = resolveInside(this.#options.outDir, dir.relative_path, this.#platform);
        await this.#applyMetadata(target, dir);
      } catch (error) {
        // Counted when it was made; a failure is not also a restored entry, as for files.
        this.restored--;
        this.#fail(dir.relative_path, `mode or time not restored: ${messageOf(error)}`, "write");
      }
    }
    for (const name of this.#options.selected) {
      if (!this.#seen.has(name)) {
        this.#fail(name, "listed in the manifest but missing from the archive", "integrity");
      }
    }
  }

  /** `ensureDirectory` once per directory of this restore. */
  #directory(relativeDir: string): Promise<string> {
    let made = this.#directoriesMade.get(relativeDir);
    if (made === undefined) {
      made = this.#makeDirectory(relativeDir);
      made.then(
        (directory) => this.#directoriesReady.set(relativeDir, directory),
        () => this.#directoriesMade.delete(relativeDir),
      );
      this.#directoriesMade.set(relativeDir, made);
    }
    return made;
  }

  /**
   * Checks and makes only the last name: the directories above were, once
   * (checking every ancestor of each new directory made a restore's time grow
   * with the square of the tree's depth).
   */
  async #makeDirectory(relativeDir: string): Promise<string> {
    const { outDir } = this.#options;
    if (relativeDir === "") return await ensureDirectory(outDir, "", this.#platform);
    resolveInside(outDir, relativeDir, this.#platform);
    const slash = relativeDir.lastIndexOf("/");
    const parent = await this.#directory(slash === -1 ? "" : relativeDir.slice(0, slash));
    return await ensureSubdirectory(parent, relativeDir.slice(slash + 1), this.#platform);
  }

  /**
   * Restores one file. A small one whose bytes the parser already holds, in
   * a directory already made, is verified and handed to the writer without
   * waiting: undefined then. Otherwise, a promise of the same work. A promise
   * per file was, with the parser's, most of a small file's cost.
   */
  #writeFile(entry: TarEntry, listed: CatalogEntry): Promise<void> | undefined {
    const target = resolveInside(this.#options.outDir, listed.relative_path, this.#platform);
    const parent = parentOf(listed.relative_path);
    const directory = this.#directoriesReady.get(parent);
    if (
      listed.size > WHOLE_WRITE_LIMIT || directory === undefined ||
      this.#mustLookFirst(listed.relative_path)
    ) {
      return this.#writeFileWaiting(entry, listed, target, parent);
    }
    const content = entry.body.takeBuffered();
    if (content === undefined) return this.#writeFileWaiting(entry, listed, target, parent);
    this.#verify(listed, sha256Hex(content));
    return this.#writeVerified(content, this.#temporaryIn(directory), target, listed);
  }

  async #writeFileWaiting(
    entry: TarEntry,
    listed: CatalogEntry,
    target: string,
    parent: string,
  ): Promise<void> {
    const temporary = this.#temporaryIn(await this.#directory(parent));
    if (listed.size <= WHOLE_WRITE_LIMIT) {
      const content = entry.body.takeBuffered() ??
        await readWhole(entry.body, this.#wholeFile.subarray(0, listed.size));
      this.#verify(listed, sha256Hex(content));
      await this.#refuseIfTaken(listed.relative_path, target);
      await this.#writeVerified(content, temporary, target, listed);
      return;
    }
    await this.#refuseIfTaken(listed.relative_path, target);
    const hash = createHash("sha256");
    const file = await Deno.open(osPath(temporary, this.#platform), {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    let renamed = false;
    try {
      try {
        const body = entry.body[Symbol.asyncIterator]();
        while (true) {
          let next: IteratorResult<Uint8Array>;
          try {
            next = await body.next();
          } catch (error) {
            throw new StreamBroken(error);
          }
          if (next.done) break;
          if (this.#options.signal?.aborted) throw new StreamBroken(this.#options.signal.reason);
          hash.update(next.value);
          let written = 0;
          while (written < next.value.length) {
            written += file.writeSync(next.value.subarray(written));
          }
        }
      } finally {
        file.close();
      }
      this.#verify(listed, hash.digest("hex"));
      await this.#applyMetadata(temporary, listed);
      await Deno.rename(osPath(temporary, this.#platform), osPath(target, this.#platform));
      renamed = true;
      this.restored++;
      this.bytes += listed.size;
    } finally {
      if (!renamed) await Deno.remove(osPath(temporary, this.#platform)).catch(() => {});
    }
  }

  /** A new temporary name in `directory`: short, since the real name may be at the 255-byte limit. */
  #temporaryIn(directory: string): string {
    const name = `${this.#temporaryPrefix}${this.#temporaries++}.partial`;
    return this.#platform === "windows"
      ? path.join(directory, name)
      : `${directory === "/" ? "" : directory}/${name}`;
  }

  /**
   * Writes verified content under a temporary name, then gives it its real
   * name (file_writer.ts; on its thread once there are many files). Returns
   * a promise only when the writer has no room yet; `content` must stay
   * unchanged until then.
   */
  #writeVerified(
    content: Uint8Array,
    temporary: string,
    target: string,
    listed: CatalogEntry,
  ): Promise<void> | undefined {
    const mode = restoredMode(listed);
    const job: FileJob = {
      temporary: osPath(temporary, this.#platform),
      target: osPath(target, this.#platform),
      // Created with its final permissions (the content is already verified);
      // chmod only when the umask took some away.
      mode,
      chmod: this.#platform === "posix" && (mode & this.#umask) !== 0,
      mtime: listed.mtime,
    };
    return this.#writer.write(job, content, (failure) => {
      if (failure === undefined) {
        this.restored++;
        this.bytes += listed.size;
      } else if (failureEndsRestore(failure)) this.#writesEnded ??= failure.raw;
      else this.#fail(listed.relative_path, failure.message, "write");
    });
  }

  #verify(listed: CatalogEntry, digest: string): void {
    if (digest !== listed.sha256) {
      throw new IntellistorError(
        "INTEGRITY",
        `SHA-256 mismatch (expected ${listed.sha256}, got ${digest}); not restored`,
      );
    }
  }

  async #writeSymlink(link: CatalogEntry): Promise<void> {
    const target = resolveInside(this.#options.outDir, link.relative_path, this.#platform);
    await ensureParentDirectory(this.#options.outDir, link.relative_path, this.#platform);
    if (await pathExists(target, this.#platform)) {
      if (!this.#options.overwrite) throw outputExists();
      await Deno.remove(osPath(target, this.#platform));
    }
    await Deno.symlink(link.link ?? "", osPath(target, this.#platform));
  }

  async #applyMetadata(target: string, entry: CatalogEntry): Promise<void> {
    const onDisk = osPath(target, this.#platform);
    if (this.#platform === "posix") await Deno.chmod(onDisk, restoredMode(entry));
    const mtime = new Date(entry.mtime);
    await Deno.utime(onDisk, mtime, mtime);
  }

  /**
   * An entry's failure: the backup's fault (exit 13) or this system's (exit
   * 1). A backup that holds entries under a file's or a link's name (the walk
   * never makes one) is at fault, whatever stood in the way.
   */
  #kindOf(name: string, error: unknown): RestoreFailure["kind"] {
    if (error instanceof IntellistorError && error.exitCode === ExitCode.integrity) {
      return "integrity";
    }
    for (const parent of parentPaths(name)) {
      const listed = this.#options.known.get(parent);
      if (listed !== undefined && listed.type !== "dir") return "integrity";
    }
    return "write";
  }

  #fail(name: string, message: string, kind: RestoreFailure["kind"]): void {
    this.failures.push({ path: name, message, kind });
  }
}

/** The directories above `name`, nearest first: "a/b/c" gives "a/b", then "a". */
function* parentPaths(name: string): Generator<string> {
  for (let end = name.lastIndexOf("/"); end > 0; end = name.lastIndexOf("/", end - 1)) {
    yield name.slice(0, end);
  }
}

/** Every directory that holds one of `names`. */
function parentsOf(names: Iterable<string>): Set<string> {
  const parents = new Set<string>();
  for (const name of names) {
    for (const parent of parentPaths(name)) {
      if (parents.has(parent)) break; // and so are its own parents
      parents.add(parent);
    }
  }
  return parents;
}

function* selectedEntries(
  known: ExtractorOptions["known"],
  selected: Iterable<string>,
): Generator<CatalogEntry> {
  for (const name of selected) {
    const entry = known.get(name);
    if (entry !== undefined) yield entry;
  }
}

/** True when something other than a directory is at `target` (a file, a symlink). */
function standsInForDirectory(target: string, platform: Platform): boolean {
  try {
    const info = Deno.lstatSync(osPath(target, platform));
    return !info.isDirectory || info.isSymlink;
  } catch {
    return false;
  }
}

function outputExists(): IntellistorError {
  return new IntellistorError("OUTPUT_EXISTS", "already exists; not overwritten (use --overwrite)");
}

/** True when `directory` does not exist or holds nothing: no entry can clash. */
function isMissingOrEmpty(directory: string): boolean {
  try {
    for (const _ of Deno.readDirSync(directory)) return false;
    return true;
  } catch (error) {
    return error instanceof Deno.errors.NotFound;
  }
}

function currentUmask(): number {
  try {
    return Deno.umask();
  } catch {
    return 0o777; // unknown (Windows): always set permissions explicitly
  }
}

function sha256Hex(content: Uint8Array): string {
  return createHash("sha256").update(content).digest("hex");
}

/** A small file's whole body, copied out of the stream's buffers into `content`. */
async function readWhole(
  body: AsyncIterable<Uint8Array>,
  content: Uint8Array,
): Promise<Uint8Array> {
  let filled = 0;
  try {
    for await (const chunk of body) {
      content.set(chunk, filled);
      filled += chunk.length;
    }
  } catch (error) {
    throw new StreamBroken(error);
  }
  return content;
}

/** Wraps an error of the input stream itself, as opposed to one entry's. */
class StreamBroken extends Error {
  constructor(cause: unknown) {
    super("input stream failed", { cause });
  }
}

/**
 * The mode a restored entry gets: its permission bits, and a directory's
 * sticky bit, which only restricts (without it, everyone may delete anyone's
 * files in a world-writable folder such as a shared upload directory). Never
 * setuid or setgid: a restore does not make programs that run as another user.
 */
function restoredMode(entry: CatalogEntry): number {
  return entry.mode & (entry.type === "dir" ? 0o1777 : 0o777);
}
