/**
 * Small files read by the thread that deflates their piece (gzip_member.ts).
 *
 * The archive lays each small file out in a piece as its header, a hole of
 * the size the walk saw, and zero padding; whoever deflates the piece opens
 * the file, reads it into the hole and hashes it. On a tree of small files
 * this moves the per-file system calls (open, read, close: about half of the
 * archive thread's time) onto the deflate workers, which otherwise wait.
 *
 * A file read here is archived exactly as read, as when the archive thread
 * read it itself:
 * - one that cannot be read (vanished, permission denied, locked) is taken
 *   out of the piece and reported: it is not in the archive;
 * - one that shrank gets its header written again with the size read;
 * - one that grew keeps the size the walk saw, and is reported.
 * The piece gets shorter in the first two cases; `removals` tells where, so
 * that the offsets recorded for later entries can follow.
 */
import { createHash } from "node:crypto";
import { setUstarSize, TAR_BLOCK, tarPadding } from "./tar.ts";
import { describeIoError } from "./walk.ts";

/**
 * The small files of one piece, as it crosses to a worker: arrays, not an
 * object per file, which would cost more to copy between threads than
 * reading the file.
 */
export interface PieceFiles {
  /** The paths to open (the OS form). */
  paths: string[];
  /**
   * Three numbers per file: where its header blocks start in the piece,
   * their length, and the size the walk saw and the header says (the hole
   * that follows them).
   */
  layout: Int32Array<ArrayBuffer>;
}

/** What reading one file into its piece gave. */
export type PieceFileOutcome =
  | { sha256: string; size: number; grew?: true }
  | { problem: string };

/** What reading a piece's files gave, in arrays like PieceFiles. */
export interface FilledPiece {
  /** The piece's length now (shorter when files were taken out or shrank). */
  length: number;
  /** Per file: bytes archived, or -1 when it could not be read. */
  sizes: Int32Array<ArrayBuffer>;
  /** Per file: the SHA-256 (hex) of what was archived, or why it could not be read. */
  notes: string[];
  /** Indexes of the files that grew: their first `size` bytes were archived. */
  grew: number[];
  /**
   * Pairs (end, bytes): `bytes` were removed just before offset `end` of the
   * piece as laid out (see finalOffset).
   */
  removals: number[];
}

/** File `index` of a filled piece, as one outcome. */
export function outcomeOf(filled: FilledPiece, index: number): PieceFileOutcome {
  const size = filled.sizes[index];
  if (size < 0) return { problem: filled.notes[index] };
  return filled.grew.includes(index)
    ? { sha256: filled.notes[index], size, grew: true }
    : { sha256: filled.notes[index], size };
}

/** Where a byte at `offset` of the piece as laid out is after the removals. */
export function finalOffset(removals: readonly number[], offset: number): number {
  let shift = 0;
  for (let i = 0; i < removals.length && removals[i] <= offset; i += 2) shift += removals[i + 1];
  return offset - shift;
}

/**
 * Reads every file of `files` into `piece` (its first `length` bytes laid
 * out as above), then closes up the gaps that files not read whole leave.
 */
export function fillPiece(piece: Uint8Array, length: number, files: PieceFiles): FilledPiece {
  const count = files.paths.length;
  const sizes = new Int32Array(count);
  const notes: string[] = [];
  const grew: number[] = [];
  const removals: number[] = [];
  // Gaps are closed up as we go, moving bytes only towards the start (in place).
  let from = 0;
  let to = 0;
  for (let i = 0; i < count; i++) {
    const headerOffset = files.layout[3 * i];
    const headerLength = files.layout[3 * i + 1];
    const planned = files.layout[3 * i + 2];
    const contentStart = headerOffset + headerLength;
    const read = readInto(piece, files.paths[i], contentStart, planned);
    sizes[i] = read.size;
    notes.push(read.note);
    if (read.size > planned) {
      sizes[i] = planned;
      grew.push(i);
    }
    if (read.size === planned || read.size > planned) continue;
    const end = contentStart + planned + tarPadding(planned);
    piece.copyWithin(to, from, headerOffset);
    to += headerOffset - from;
    const start = to;
    if (read.size >= 0) {
      // Shrank: the header with the size read, then the content.
      piece.copyWithin(to, headerOffset, contentStart);
      to += headerLength;
      setUstarSize(piece.subarray(to - TAR_BLOCK, to), read.size);
      piece.copyWithin(to, contentStart, contentStart + read.size);
      to += read.size;
      const padding = tarPadding(read.size);
      piece.fill(0, to, to + padding);
      to += padding;
    }
    removals.push(end, end - headerOffset - (to - start));
    from = end;
  }
  if (removals.length === 0) return { length, sizes, notes, grew, removals };
  piece.copyWithin(to, from, length);
  return { length: to + length - from, sizes, notes, grew, removals };
}

/**
 * Reads a file into its hole: its size (more than `size` if it grew, -1 if
 * it could not be read) and the SHA-256 of the bytes archived, or the reason.
 *
 * A read that fills the hole ends it, as GNU tar does: asking again only to
 * hear "end of file" would double the reads of a tree of small files. One
 * byte of room more than the hole tells a file that grew; that byte lands in
 * the padding or the next header and is put back.
 */
function readInto(
  piece: Uint8Array,
  path: string,
  start: number,
  size: number,
): { size: number; note: string } {
  const spare = start + size < piece.length ? piece[start + size] : undefined;
  let file: Deno.FsFile | undefined;
  let filled = 0;
  try {
    file = Deno.openSync(path, { read: true });
    const room = piece.subarray(start, start + size + (spare === undefined ? 0 : 1));
    // At least one read, so that an empty file that grew is seen too.
    for (;;) {
      const n = file.readSync(room.subarray(filled));
      if (n === null) break;
      filled += n;
      if (filled >= size) break;
    }
  } catch (error) {
    return { size: -1, note: describeIoError(error) };
  } finally {
    file?.close();
    if (spare !== undefined) piece[start + size] = spare;
  }
  const content = piece.subarray(start, start + Math.min(filled, size));
  return { size: filled, note: createHash("sha256").update(content).digest("hex") };
}
