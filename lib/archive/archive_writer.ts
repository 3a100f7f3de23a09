/**
 * Source entries → tar → gzip, one member per segment (docs/FORMAT.md §1).
 *
 * Segments are cut at entry boundaries once they hold about `segmentTarget`
 * tar bytes; a file at least that large gets a segment of its own. Every
 * entry's offset and segment are recorded so a restore can fetch only the
 * segments it needs. Each file is hashed while it is read, and read once.
 */
import { createHash } from "node:crypto";
import type { BackupWarning, CatalogEntry, SegmentRecord } from "./catalog.ts";
import { GzipMemberWriter } from "./gzip_member.ts";
import { encodeTarHeader, TAR_END, tarPadding } from "./tar.ts";
import { describeIoError, type SourceEntry } from "./walk.ts";

export const DEFAULT_SEGMENT_TARGET = 4 << 20;

export interface ArchiveOptions {
  compressionLevel: number;
  segmentTarget?: number;
  warn: (warning: BackupWarning) => void;
  /** Stops the archive (with an AbortError) at the next entry or piece. */
  signal?: AbortSignal;
}

/** Filled in while the stream is read; complete once it has ended. */
export interface ArchiveCatalog {
  entries: CatalogEntry[];
  segments: SegmentRecord[];
  /** Bytes of file content archived. */
  contentBytes: number;
  /** Length of the uncompressed tar stream. */
  tarBytes: number;
  /** Length of the `.tar.gz` payload. */
  gzBytes: number;
}

export function createArchiveStream(
  sources: AsyncIterable<SourceEntry>,
  options: ArchiveOptions,
): { stream: ReadableStream<Uint8Array>; catalog: ArchiveCatalog } {
  const catalog: ArchiveCatalog = {
    entries: [],
    segments: [],
    contentBytes: 0,
    tarBytes: 0,
    gzBytes: 0,
  };
  const stream = ReadableStream.from(generateArchive(sources, options, catalog));
  return { stream, catalog };
}

async function* generateArchive(
  sources: AsyncIterable<SourceEntry>,
  options: ArchiveOptions,
  catalog: ArchiveCatalog,
): AsyncGenerator<Uint8Array> {
  const target = options.segmentTarget ?? DEFAULT_SEGMENT_TARGET;
  let member = new GzipMemberWriter(options.compressionLevel);
  let segmentTarStart = 0;
  let segmentGzStart = 0;

  function* emit(chunks: Uint8Array[]): Generator<Uint8Array> {
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      catalog.gzBytes += chunk.length;
      yield chunk;
    }
  }
  async function* writeTar(data: Uint8Array): AsyncGenerator<Uint8Array> {
    catalog.tarBytes += data.length;
    yield* emit(await member.write(data));
  }
  async function* closeSegment(): AsyncGenerator<Uint8Array> {
    yield* emit(await member.finish());
    catalog.segments.push({
      gz_offset: segmentGzStart,
      gz_length: catalog.gzBytes - segmentGzStart,
      tar_offset: segmentTarStart,
      tar_length: catalog.tarBytes - segmentTarStart,
    });
    member = new GzipMemberWriter(options.compressionLevel);
    segmentTarStart = catalog.tarBytes;
    segmentGzStart = catalog.gzBytes;
  }

  for await (const source of sources) {
    options.signal?.throwIfAborted();
    let file: Deno.FsFile | undefined;
    let size = source.size;
    let mtimeAtOpen: number | undefined;
    if (source.type === "file") {
      try {
        file = await Deno.open(source.osPath ?? source.absolutePath, { read: true });
        const info = await file.stat();
        size = info.size;
        mtimeAtOpen = info.mtime?.getTime();
      } catch (error) {
        file?.close();
        options.warn({ path: source.absolutePath, message: describeIoError(error), skipped: true });
        continue;
      }
    }
    try {
      const header = encodeTarHeader({
        path: source.relativePath,
        type: source.type,
        size,
        mode: source.mode,
        mtimeMs: source.mtimeMs,
        linkname: source.link,
      });
      const entryTarLength = header.length + size + tarPadding(size);
      const segmentLength = catalog.tarBytes - segmentTarStart;
      if (segmentLength > 0 && segmentLength + entryTarLength > target) yield* closeSegment();

      const entry: CatalogEntry = {
        relative_path: source.relativePath,
        type: source.type,
        size,
        mode: source.mode,
        mtime: Math.trunc(source.mtimeMs),
        source: source.absolutePath,
        segment: catalog.segments.length,
        tar_offset: catalog.tarBytes,
      };
      if (source.link !== undefined) entry.link = source.link;
      yield* writeTar(header);
      if (file !== undefined) {
        const hash = createHash("sha256");
        let copied = 0;
        let problem: string | undefined;
        while (copied < size) {
          // Read straight into the compressor's buffer: no extra copy.
          const spare = member.spare();
          let n: number | null = null;
          try {
            n = await file.read(spare.subarray(0, Math.min(size - copied, spare.length)));
          } catch (error) {
            problem = describeIoError(error);
          }
          if (n === null) break;
          options.signal?.throwIfAborted();
          hash.update(spare.subarray(0, n));
          copied += n;
          catalog.tarBytes += n;
          yield* emit(await member.commit(n));
        }
        if (copied < size) {
          entry.incomplete = true;
          // The header already promised `size` bytes: zero-fill so the archive
          // stays valid, and hash exactly what was archived.
          options.warn({
            path: source.absolutePath,
            message: `${problem ?? "file shrank while being read"} after ${copied} of ${size} ` +
              "bytes; the rest is archived as zeros",
            skipped: false,
          });
          const zeros = new Uint8Array(Math.min(size - copied, 1 << 16));
          while (copied < size) {
            const piece = zeros.subarray(0, Math.min(size - copied, zeros.length));
            hash.update(piece);
            yield* writeTar(piece);
            copied += piece.length;
          }
        } else {
          // Written to while read: the archive holds a consistent prefix of
          // `size` bytes, but maybe not one the file ever had. Say so.
          const after = await file.stat().catch(() => undefined);
          if (after && (after.size !== size || after.mtime?.getTime() !== mtimeAtOpen)) {
            options.warn({
              path: source.absolutePath,
              message: "file changed while being read; the copy may mix old and new content",
              skipped: false,
            });
          }
        }
        entry.sha256 = hash.digest("hex");
        catalog.contentBytes += size;
      }
      const padding = tarPadding(size);
      if (padding > 0) yield* writeTar(new Uint8Array(padding));
      catalog.entries.push(entry);
      if (catalog.tarBytes - segmentTarStart >= target) yield* closeSegment();
    } finally {
      file?.close();
    }
  }
  yield* writeTar(TAR_END);
  yield* closeSegment();
}
