/**
 * A `Storage` on a local directory (demo, USB/NAS targets, tests): key
 * "a/b/c" is the file `<root>/a/b/c`.
 */
import { basename, dirname, join, resolve } from "node:path";
import { IntellistorError, toIntellistorError } from "../errors.ts";
import type { ByteRange, ObjectInfo, Storage } from "./storage.ts";
import {
  assertByteRange,
  assertStorageKey,
  assertStoragePrefix,
  compareStorageKeys,
} from "./storage_rules.ts";

/** Name prefix of the files `put` writes before renaming them into place; `list` skips them. */
const tempFilePrefix = ".tmp-";

/** What a listing yields: stored objects, or the temporary files of writes that never finished. */
type FileKind = "objects" | "temporaries";

/** Read size for `get`: large enough for throughput, small enough to keep memory flat. */
const readChunkSize = 256 * 1024;

/**
 * Objects as files under a root directory. Writes are atomic (temp file in the
 * same directory, fsync, rename), so a reader never sees a partial object.
 *
 * @example
 * ```ts
 * const storage = new LocalStorage("/mnt/backup");
 * await storage.put("backups/p/manifest.json", ReadableStream.from([new TextEncoder().encode("{}")]));
 * ```
 */
export class LocalStorage implements Storage {
  readonly location: string;

  /** @param root the directory holding the objects; created by the first `put` if missing. */
  constructor(root: string) {
    this.location = resolve(root);
  }

  /**
   * For reading a store's history (list, prune): a root directory that does
   * not exist is BUCKET_NOT_FOUND, as a missing bucket is, not an empty
   * history, since a typo or a disk not mounted would read as "no backups".
   */
  async assertExists(): Promise<void> {
    let info: Deno.FileInfo | undefined;
    try {
      info = await Deno.stat(this.location);
    } catch (error) {
      // Permission denied is ACCESS_DENIED there, as for every other operation.
      if (!isNotFound(error)) {
        throw ioError(`The local store "${this.location}" cannot be reached`, error);
      }
    }
    if (info === undefined || !info.isDirectory) {
      throw new IntellistorError(
        "BUCKET_NOT_FOUND",
        `The local store "${this.location}" ${
          info === undefined ? "does not exist" : "is not a directory"
        }`,
        "Check the policy's destination.path (a typo? a disk not mounted?); the first backup " +
          "creates it.",
      );
    }
  }

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo> {
    const path = this.#pathOf(key);
    if (key.split("/").at(-1)!.startsWith(tempFilePrefix)) {
      const reason = `names starting with "${tempFilePrefix}" are reserved for temp files`;
      throw new TypeError(`Invalid storage key ${JSON.stringify(key)}: ${reason}`);
    }
    const directory = dirname(path);
    const tempPath = join(directory, `${tempFilePrefix}${crypto.randomUUID()}`);
    const reader = body.getReader();
    let file: Deno.FsFile;
    try {
      file = await this.#createTempFile(tempPath);
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      throw ioError(`Cannot write "${key}" in ${this.location}`, error);
    }

    let size = 0;
    // Small chunks (64 KiB from the encryption) are gathered into larger writes.
    const gathered = new Uint8Array(writeSize);
    let gatheredLength = 0;
    const write = (bytes: Uint8Array) =>
      writeAll(file, bytes).catch((error) => {
        throw ioError(`Cannot write "${key}" in ${this.location}`, error);
      });
    try {
      try {
        for (;;) {
          // A failing body is the caller's error: it propagates unchanged.
          const { done, value } = await reader.read();
          if (done) break;
          size += value.byteLength;
          if (gatheredLength + value.length > gathered.length) {
            await write(gathered.subarray(0, gatheredLength));
            gatheredLength = 0;
          }
          if (value.length >= gathered.length) await write(value);
          else {
            gathered.set(value, gatheredLength);
            gatheredLength += value.length;
          }
        }
        await write(gathered.subarray(0, gatheredLength));
        // Without this, a crash after the rename could leave an empty or short file under the key.
        await file.syncData().catch((error) => {
          throw ioError(`Cannot write "${key}" in ${this.location}`, error);
        });
      } finally {
        file.close();
      }
      await Deno.rename(tempPath, path).catch(async (error) => {
        if (isNotFound(error)) {
          // The whole store may have gone (unmounted, moved): BUCKET_NOT_FOUND then.
          await this.assertExists();
          // `list` shows a running backup's temporary file under "incomplete" too.
          throw new IntellistorError(
            "IO_ERROR",
            `Cannot store "${key}" in ${this.location}: its temporary file ` +
              `${basename(tempPath)} was deleted while it was written`,
            "Delete the temporary files that list shows only while no backup is running; " +
              "run the backup again.",
            { cause: error },
          );
        }
        throw ioError(`Cannot store "${key}" in ${this.location}`, error);
      });
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      await Deno.remove(tempPath).catch(() => {});
      throw error;
    }
    return { key, size };
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const path = this.#pathOf(key);
    if (range) assertByteRange(range);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      throw this.#readError(key, error);
    }
    let remaining: number;
    try {
      const info = await file.stat();
      if (!info.isFile) throw new Deno.errors.NotFound(`not a file: ${path}`);
      const start = Math.min(range?.start ?? 0, info.size);
      const end = Math.min(range?.end ?? info.size, info.size);
      remaining = end - start;
      if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    } catch (error) {
      file.close();
      throw this.#readError(key, error);
    }
    return fileRangeStream(file, remaining, (error) => this.#readError(key, error));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.#pathOf(key);
    try {
      const info = await Deno.stat(path);
      return info.isFile ? { key, size: info.size } : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw ioError(`Cannot read "${key}" in ${this.location}`, error);
    }
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.#listFiles(prefix, "objects");
  }

  /**
   * The temporary files that `put`s killed mid-write (SIGKILL, a power cut)
   * left under `prefix`: never objects, but space to reclaim. Their keys
   * name them (`…/.tmp-<uuid>`); `delete` removes them.
   */
  unfinished(prefix: string): AsyncIterable<ObjectInfo> {
    return this.#listFiles(prefix, "temporaries");
  }

  async *#listFiles(prefix: string, kind: FileKind): AsyncIterable<ObjectInfo> {
    assertStoragePrefix(prefix);
    // Walk only the deepest directory the prefix names in full; filter the rest by name.
    const lastSlash = prefix.lastIndexOf("/");
    const directoryKey = lastSlash === -1 ? "" : prefix.slice(0, lastSlash);
    for await (const object of this.#walk(directoryKey, prefix, kind)) {
      if (object.key.startsWith(prefix)) yield object;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.#pathOf(key);
    try {
      await Deno.remove(path);
    } catch (error) {
      if (!isNotFound(error)) throw ioError(`Cannot delete "${key}" in ${this.location}`, error);
    }
    // Also when the object was never written: a failed put may have left its directories.
    await this.#removeEmptyParents(key);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #pathOf(key: string): string {
    assertStorageKey(key);
    return join(this.location, ...key.split("/"));
  }

  async #createTempFile(tempPath: string): Promise<Deno.FsFile> {
    // A concurrent delete may remove the (then empty) directory between mkdir and open: retry once.
    for (let attempt = 1;; attempt++) {
      await Deno.mkdir(dirname(tempPath), { recursive: true });
      try {
        return await Deno.open(tempPath, { write: true, createNew: true });
      } catch (error) {
        if (attempt >= 2 || !isNotFound(error)) throw error;
      }
    }
  }

  /**
   * Yields the objects under `directoryKey` ("" = root) in key order, one
   * directory listing at a time, skipping subdirectories that cannot hold `prefix`.
   */
  async *#walk(directoryKey: string, prefix: string, kind: FileKind): AsyncGenerator<ObjectInfo> {
    const directory = directoryKey === ""
      ? this.location
      : join(this.location, ...directoryKey.split("/"));
    const entries: { name: string; isDirectory: boolean; sortName: string }[] = [];
    try {
      for await (const entry of Deno.readDir(directory)) {
        const temporary = entry.isFile && entry.name.startsWith(tempFilePrefix);
        if (entry.isFile && temporary !== (kind === "temporaries")) continue;
        if (!entry.isFile && !entry.isDirectory) continue;
        // Everything inside directory "a" has keys starting "a/": sorting it as "a/" keeps key order.
        entries.push({
          name: entry.name,
          isDirectory: entry.isDirectory,
          sortName: entry.isDirectory ? `${entry.name}/` : entry.name,
        });
      }
    } catch (error) {
      if (isNotFound(error) || error instanceof Deno.errors.NotADirectory) return;
      throw ioError(`Cannot list ${directory}`, error);
    }
    entries.sort((a, b) => compareStorageKeys(a.sortName, b.sortName));
    for (const entry of entries) {
      const key = directoryKey === "" ? entry.name : `${directoryKey}/${entry.name}`;
      if (entry.isDirectory) {
        const keyPrefix = `${key}/`;
        if (keyPrefix.startsWith(prefix) || prefix.startsWith(keyPrefix)) {
          yield* this.#walk(key, prefix, kind);
        }
        continue;
      }
      try {
        const info = await Deno.stat(join(directory, entry.name));
        yield { key, size: info.size };
      } catch (error) {
        // Deleted while we were listing: it is simply no longer there.
        if (!isNotFound(error)) throw ioError(`Cannot list ${directory}`, error);
      }
    }
  }

  /** Keeps the tree tidy after prune; stops at the first directory that is not empty. */
  async #removeEmptyParents(key: string): Promise<void> {
    const segments = key.split("/").slice(0, -1);
    while (segments.length > 0) {
      try {
        await Deno.remove(join(this.location, ...segments));
      } catch {
        return;
      }
      segments.pop();
    }
  }

  #readError(key: string, error: unknown): IntellistorError {
    if (isNotFound(error)) {
      return new IntellistorError(
        "BACKUP_NOT_FOUND",
        `Object "${key}" not found in ${this.location}`,
        "Check the key (see `intellistor list`) and the storage directory.",
        { cause: error },
      );
    }
    if (error instanceof IntellistorError) return error;
    return ioError(`Cannot read "${key}" in ${this.location}`, error);
  }
}

/** Streams `length` bytes from the file's current position, then closes it (also on cancel or error). */
function fileRangeStream(
  file: Deno.FsFile,
  length: number,
  mapError: (error: unknown) => Error,
): ReadableStream<Uint8Array> {
  let remaining = length;
  let closed = false;
  const closeFile = () => {
    if (!closed) {
      closed = true;
      file.close();
    }
  };
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (remaining === 0) {
        closeFile();
        controller.close();
        return;
      }
      const buffer = new Uint8Array(Math.min(readChunkSize, remaining));
      let read: number | null;
      try {
        // Synchronous: the object is read in order, from the page cache or
        // the kernel's read-ahead, and an asynchronous call costs more than the copy.
        read = file.readSync(buffer);
      } catch (error) {
        closeFile();
        throw mapError(error);
      }
      if (read === null) {
        // The file shrank under us: end early; the caller's integrity checks will notice.
        closeFile();
        controller.close();
        return;
      }
      remaining -= read;
      controller.enqueue(read === buffer.length ? buffer : buffer.subarray(0, read));
    },
    cancel() {
      closeFile();
    },
  }, { highWaterMark: 0 });
}

/** Bytes written to a stored file at a time. */
const writeSize = 1 << 20;

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await file.write(data.subarray(written));
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound;
}

function ioError(message: string, cause: unknown): IntellistorError {
  // An SDK program run without --allow-read/--allow-write: named as such, as on S3.
  if (cause instanceof Deno.errors.NotCapable) return toIntellistorError(cause);
  const reason = cause instanceof Error ? cause.message : String(cause);
  if (cause instanceof Deno.errors.PermissionDenied) {
    // The same code as S3's refusal: the store is there, this user may not use it.
    return new IntellistorError(
      "ACCESS_DENIED",
      `${message}: ${reason}`,
      "Run as a user who can read and write the storage directory, or change its permissions.",
      { cause },
    );
  }
  return new IntellistorError(
    "IO_ERROR",
    `${message}: ${reason}`,
    "Check that the storage directory exists, is writable and has free space.",
    { cause },
  );
}
