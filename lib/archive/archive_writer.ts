/**
 * Source entries → tar → gzip, one member per segment (docs/FORMAT.md §1).
 *
 * Segments are cut at entry boundaries once they hold about `segmentTarget`
 * tar bytes; a file at least that large gets a segment of its own. Every
 * entry's offset and segment are recorded so a restore can fetch only the
 * segments it needs. Each file is hashed while it is read, and read once.
 */
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import type { BackupWarning, CatalogEntry, SegmentRecord } from "./catalog.ts";
import { createPieceDeflater, defaultWorkerCount } from "./deflate_pool.ts";
import {
  GzipMemberWriter,
  type PendingChunk,
  PendingPiece,
  type PieceMark,
} from "./gzip_member.ts";
import { encodeTarHeader, TAR_BLOCK, TAR_END, tarPadding } from "./tar.ts";
import { NOT_REGULAR, openSource } from "./source_file.ts";
import { describeIoError, type SourceEntry } from "./walk.ts";

export const DEFAULT_SEGMENT_TARGET = 4 << 20;

/** Padding after an entry's data is part of one block of zeros (written, never changed). */
const ZERO_BLOCK = new Uint8Array(512);

/** Compressed bytes the archive may produce before its reader takes them. */
const READ_AHEAD = 4 << 20;

export interface ArchiveOptions {
  compressionLevel: number;
  segmentTarget?: number;
  warn: (warning: BackupWarning) => void;
  /**
   * Receives each entry once it is archived, in archive order. The archive
   * does not keep them: a backup of millions of files would hold them all.
   */
  onEntry: (entry: CatalogEntry) => void;
  /** Threads that deflate; one per core by default. */
  workers?: number;
  /**
   * Files smaller than this (64 KiB by default) are read whole, exactly as
   * they are at that moment, by the thread that deflates their piece; larger
   * ones are streamed after their header. 0 streams every file.
   */
  smallFileLimit?: number;
  /** Stops the archive (with an AbortError) at the next entry or piece. */
  signal?: AbortSignal;
}

/** Filled in while the stream is read; complete once it has ended. */
export interface ArchiveCatalog {
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
    segments: [],
    contentBytes: 0,
    tarBytes: 0,
    gzBytes: 0,
  };
  const chunks = generateArchive(sources, options, catalog);
  const stream = new ReadableStream<Uint8Array>({
    // Runs ahead of the reader by up to READ_AHEAD bytes, so that reading
    // files and feeding the compressors does not pause at every chunk taken.
    async pull(controller) {
      while ((controller.desiredSize ?? 0) > 0) {
        const next = await chunks.next();
        if (next.done) {
          controller.close();
          return;
        }
        controller.enqueue(next.value);
      }
    },
    async cancel() {
      await chunks.return(undefined);
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: READ_AHEAD }));
  return { stream, catalog };
}

/** Pieces being deflated at once, per worker: keeps every core busy, memory bounded. */
const PIECES_IN_FLIGHT_PER_WORKER = 2;

async function* generateArchive(
  sources: AsyncIterable<SourceEntry>,
  options: ArchiveOptions,
  catalog: ArchiveCatalog,
): AsyncGenerator<Uint8Array> {
  const target = options.segmentTarget ?? DEFAULT_SEGMENT_TARGET;
  const workers = options.workers ?? defaultWorkerCount();
  const deflater = createPieceDeflater(workers);
  const newMember = () => new GzipMemberWriter<CatalogEntry>(options.compressionLevel, deflater);
  let member = newMember();
  // Two counts of tar bytes: those laid out here, which decide where segments
  // end, and those deflated (catalog.tarBytes), which a small file not read
  // whole makes smaller; offsets are recorded from the second.
  let laidOut = 0;
  let segmentLaidOutStart = 0;
  let segmentTarStart = 0;
  let segmentGzStart = 0;
  /** Closed segments, counted as they close (their records follow the output). */
  let segmentCount = 0;
  // Output in archive order: chunks (some still being deflated) and the
  // records of segments, written once all of their bytes have gone out.
  const output: (PendingChunk<CatalogEntry> | (() => void))[] = [];
  let deflating = 0;
  const maxDeflating = Math.max(1, workers) * PIECES_IN_FLIGHT_PER_WORKER;
  /** Entries placed, in archive order, until they are complete (a large file's hash). */
  const placed: CatalogEntry[] = [];

  /** Whether flush(keep) has anything to do (checked first: most entries leave it nothing). */
  function canFlush(keep: number): boolean {
    return output.length > 0 && (deflating > keep || !isPending(output[0]));
  }
  /** Yields output in order while more than `keep` pieces are being deflated. */
  async function* flush(keep: number): AsyncGenerator<Uint8Array> {
    while (canFlush(keep)) {
      const item = output.shift()!;
      if (typeof item === "function") {
        item();
        continue;
      }
      let chunk: Uint8Array;
      if (item instanceof PendingPiece) {
        const piece = await item.done;
        deflating--;
        for (const mark of piece.marks) place(mark, catalog.tarBytes);
        catalog.tarBytes += piece.length;
        chunk = piece.output;
      } else chunk = await item;
      handOnCompleteEntries();
      if (chunk.length === 0) continue;
      catalog.gzBytes += chunk.length;
      yield chunk;
    }
  }
  /** Records where an entry ended up, and what reading a small file gave. */
  function place(mark: PieceMark<CatalogEntry>, pieceTarStart: number): void {
    const entry = mark.value;
    if (mark.file !== undefined) {
      if ("problem" in mark.file) {
        options.warn({ path: entry.source, message: mark.file.problem, skipped: true });
        return;
      }
      entry.size = mark.file.size;
      entry.sha256 = mark.file.sha256;
      catalog.contentBytes += entry.size;
      if (mark.file.grew) {
        options.warn({
          path: entry.source,
          message: `file grew while being read; its first ${entry.size} bytes, ` +
            "its size when listed, are archived",
          skipped: false,
        });
      }
    }
    entry.tar_offset = pieceTarStart + mark.offset;
    placed.push(entry);
  }
  /** Hands on entries, in order, once placed and hashed. */
  function handOnCompleteEntries(): void {
    while (placed.length > 0 && (placed[0].type !== "file" || placed[0].sha256 !== undefined)) {
      options.onEntry(placed.shift()!);
    }
  }
  /** Queues output without handing anything on (cheap: many small entries add up). */
  function queue(chunks: PendingChunk<CatalogEntry>[]): void {
    for (const chunk of chunks) {
      if (chunk instanceof PendingPiece) deflating++;
      output.push(chunk);
    }
  }
  async function* emit(chunks: PendingChunk<CatalogEntry>[]): AsyncGenerator<Uint8Array> {
    queue(chunks);
    if (canFlush(maxDeflating - 1)) yield* flush(maxDeflating - 1);
  }
  /** Appends tar bytes; the caller hands the output on (flush) once per entry or piece. */
  function appendTar(data: Uint8Array): void {
    laidOut += data.length;
    queue(member.write(data));
  }
  async function* writeTar(data: Uint8Array): AsyncGenerator<Uint8Array> {
    laidOut += data.length;
    yield* emit(member.write(data));
  }
  /** Whether an entry of `tarLength` bytes would take the segment past its target. */
  function segmentFullBefore(tarLength: number): boolean {
    const segmentLength = laidOut - segmentLaidOutStart;
    return segmentLength > 0 && segmentLength + tarLength > target;
  }
  /** Whether the segment has reached its target (checked after each entry). */
  function segmentFull(): boolean {
    return laidOut - segmentLaidOutStart >= target;
  }
  async function* closeSegment(): AsyncGenerator<Uint8Array> {
    yield* emit(member.finish());
    output.push(() => {
      catalog.segments.push({
        gz_offset: segmentGzStart,
        gz_length: catalog.gzBytes - segmentGzStart,
        tar_offset: segmentTarStart,
        tar_length: catalog.tarBytes - segmentTarStart,
      });
      segmentGzStart = catalog.gzBytes;
      segmentTarStart = catalog.tarBytes;
    });
    segmentCount++;
    member = newMember();
    segmentLaidOutStart = laidOut;
  }

  try {
    yield* archiveSources();
    yield* flush(-1);
    handOnCompleteEntries();
  } finally {
    deflater.close();
  }

  async function* archiveSources(): AsyncGenerator<Uint8Array> {
    const smallFileLimit = options.smallFileLimit ?? SMALL_FILE_LIMIT;
    // Headers are copied into the pieces: one buffer serves them all (with
    // PAX blocks for sub-second times and long names, most need 1.5 KiB).
    const headerBlock = new Uint8Array(8 * TAR_BLOCK);
    for await (const source of sources) {
      options.signal?.throwIfAborted();
      const fields = {
        path: source.relativePath,
        type: source.type,
        size: source.size,
        mode: source.mode,
        mtimeMs: source.mtimeMs,
        linkname: source.link,
      };
      if (source.type === "file" && source.size < smallFileLimit) {
        // Read later, whole, by the thread that deflates its piece (piece_files.ts).
        const header = encodeTarHeader(fields, headerBlock);
        const tarLength = header.length + source.size + tarPadding(source.size);
        if (GzipMemberWriter.fitsInPiece(tarLength)) {
          if (segmentFullBefore(tarLength)) yield* closeSegment();
          const entry = catalogEntry(source, source.size, segmentCount);
          laidOut += tarLength;
          // emit() inlined: one generator less per small file.
          const path = source.osPath ?? source.absolutePath;
          queue(member.writeFile(header, path, source.size, entry, source.checkWhere === true));
          if (canFlush(maxDeflating - 1)) yield* flush(maxDeflating - 1);
          if (segmentFull()) yield* closeSegment();
          continue;
        }
      }
      let file: FileHandle | undefined;
      let size = source.size;
      let mtimeAtOpen: number | undefined;
      if (source.type === "file") {
        try {
          file = await openSource(source.osPath ?? source.absolutePath, source.checkWhere === true);
          const info = await file.stat();
          if (!info.isFile()) {
            throw new Error(NOT_REGULAR);
          }
          size = info.size;
          mtimeAtOpen = info.mtimeMs;
        } catch (error) {
          await file?.close().catch(() => {});
          options.warn({
            path: source.absolutePath,
            message: describeIoError(error),
            skipped: true,
          });
          continue;
        }
      }
      try {
        const header = encodeTarHeader({ ...fields, size }, headerBlock);
        if (segmentFullBefore(header.length + size + tarPadding(size))) yield* closeSegment();
        const entry = catalogEntry(source, size, segmentCount);
        member.mark(entry);
        appendTar(header);
        if (file !== undefined) {
          const hash = createHash("sha256");
          let copied = 0;
          let problem: string | undefined;
          while (copied < size) {
            // Read straight into the compressor's buffer: no extra copy.
            const spare = member.spare();
            let n: number | null = null;
            try {
              const length = Math.min(size - copied, spare.length);
              n = (await file.read(spare, 0, length, null)).bytesRead || null;
            } catch (error) {
              problem = describeIoError(error);
            }
            if (n === null) break;
            options.signal?.throwIfAborted();
            hash.update(spare.subarray(0, n));
            copied += n;
            laidOut += n;
            yield* emit(member.commit(n));
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
            if (after && (after.size !== size || after.mtimeMs !== mtimeAtOpen)) {
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
        yield* writeTar(ZERO_BLOCK.subarray(0, tarPadding(size)));
        if (segmentFull()) yield* closeSegment();
      } finally {
        await file?.close().catch(() => {});
      }
    }
    yield* writeTar(TAR_END);
    yield* closeSegment();
  }
}

/** The entry's record; its offset is known once its piece is deflated. */
function catalogEntry(source: SourceEntry, size: number, segment: number): CatalogEntry {
  const entry: CatalogEntry = {
    relative_path: source.relativePath,
    type: source.type,
    size,
    mode: source.mode,
    mtime: Math.trunc(source.mtimeMs),
    source: source.absolutePath,
    segment,
    tar_offset: -1,
  };
  if (source.link !== undefined) entry.link = source.link;
  return entry;
}

function isPending(item: PendingChunk<CatalogEntry> | (() => void)): boolean {
  return item instanceof PendingPiece || item instanceof Promise;
}

/**
 * Files smaller than this are read whole, by the thread that deflates their
 * piece (piece_files.ts), with synchronous calls: measured on 20,000 files of
 * ~1 KiB, open + read + close cost 15 µs a file that way, 50–80 µs as
 * asynchronous calls (even 32 at once), whose hand-offs between threads cost
 * more than the system calls. Larger files are streamed here.
 */
const SMALL_FILE_LIMIT = 64 << 10;
