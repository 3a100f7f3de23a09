/**
 * The one storage interface every use case sees. Concrete stores (local
 * directory, S3) live beside it; only `lib/cli` and the SDK entry build one.
 *
 * Contract shared by every implementation (checked by tests/storage_suite.ts):
 * - Keys are `/`-separated, never start with `/`, never contain `..` segments
 *   (nor empty or `.` segments, backslashes or NUL; see storage_rules.ts).
 *   Breaking this is a programmer error: a TypeError, not an IntellistorError.
 *   A key is never also the "directory" of another key ("a" and "a/b"): a
 *   local directory cannot hold both.
 * - `put` consumes the stream to its end; the object becomes visible under its
 *   key only when the whole body is stored (no partial object under the key;
 *   an existing object stays until then). Memory stays bounded: `put` reads
 *   only a bounded amount ahead of what it has stored.
 *   If the body stream errors, `put` rejects with that same error and nothing
 *   is left behind (no temp file, no incomplete multipart upload).
 * - `get` of a missing key rejects with IntellistorError code BACKUP_NOT_FOUND.
 * - `get` with a range returns exactly bytes [start, end) of the object; bytes
 *   past the end of the object are simply absent (like HTTP ranges), so a
 *   range beyond it yields fewer bytes. An invalid range is a RangeError.
 * - `head` of a missing key resolves to `undefined`.
 * - `list` yields every object whose key starts with `prefix`, in key order
 *   (UTF-8 byte order, as S3 lists).
 * - `delete` of a missing key is not an error.
 * - Other failures are IntellistorErrors (IO_ERROR, BUCKET_NOT_FOUND,
 *   ACCESS_DENIED, STORAGE_UNREACHABLE, STORAGE_ERROR) whose messages never
 *   contain credentials.
 */
export interface ObjectInfo {
  key: string;
  size: number;
}

/** Half-open byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface Storage {
  /** Where objects go, for messages and JSON output, e.g. "s3://bucket/prefix" or a directory. */
  readonly location: string;
  put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo>;
  get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>>;
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  /**
   * Writes a killed process left unfinished under `prefix` (a local store's
   * temporary files), never objects; `delete` removes them. Stores that
   * cannot tell leave it out (S3: a lifecycle rule aborts incomplete uploads).
   */
  unfinished?(prefix: string): AsyncIterable<ObjectInfo>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}
