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

/** A small file whose content goes into a hole of its piece. */
export interface PieceFileRead {
  /** The path to open (the OS form). */
  path: string;
  /** Where the entry's header blocks start in the piece; its content follows them. */
  headerOffset: number;
  headerLength: number;
  /** The size the walk saw, and the header says: the hole's length. */
  size: number;
}

/** What reading one file into its piece gave. */
export type PieceFileOutcome =
  | { sha256: string; size: number; grew?: true }
  | { problem: string };

export interface FilledPiece {
  /** The piece's length now (shorter when files were taken out or shrank). */
  length: number;
  /** One per read, in order. */
  outcomes: PieceFileOutcome[];
  /**
   * Pairs (end, bytes): `bytes` were removed just before offset `end` of the
   * piece as laid out (see finalOffset).
   */
  removals: number[];
}

/** Where a byte at `offset` of the piece as laid out is after the removals. */
export function finalOffset(removals: readonly number[], offset: number): number {
  let shift = 0;
  for (let i = 0; i < removals.length && removals[i] <= offset; i += 2) shift += removals[i + 1];
  return offset - shift;
}

/**
 * Reads every file of `reads` into `piece` (its first `length` bytes laid
 * out as above), then closes up the gaps that files not read whole leave.
 */
export function fillPiece(
  piece: Uint8Array,
  length: number,
  reads: readonly PieceFileRead[],
): FilledPiece {
  const outcomes = reads.map((read) => readInto(piece, read));
  const removals: number[] = [];
  // Close up the gaps, moving bytes only towards the start (in place).
  let from = 0;
  let to = 0;
  reads.forEach((read, i) => {
    const outcome = outcomes[i];
    const planned = read.size;
    if ("sha256" in outcome && outcome.size === planned) return;
    const contentStart = read.headerOffset + read.headerLength;
    const end = contentStart + planned + tarPadding(planned);
    piece.copyWithin(to, from, read.headerOffset);
    to += read.headerOffset - from;
    const start = to;
    if ("sha256" in outcome) {
      // Shrank: the header with the size read, then the content.
      piece.copyWithin(to, read.headerOffset, contentStart);
      to += read.headerLength;
      setUstarSize(piece.subarray(to - TAR_BLOCK, to), outcome.size);
      piece.copyWithin(to, contentStart, contentStart + outcome.size);
      to += outcome.size;
      const padding = tarPadding(outcome.size);
      piece.fill(0, to, to + padding);
      to += padding;
    }
    removals.push(end, end - read.headerOffset - (to - start));
    from = end;
  });
  if (removals.length === 0) return { length, outcomes, removals };
  piece.copyWithin(to, from, length);
  return { length: to + length - from, outcomes, removals };
}

/**
 * Reads a file into its hole. A read that fills the hole ends it, as GNU tar
 * does: asking again only to hear "end of file" would double the reads of a
 * tree of small files. One byte of room more than the hole tells a file that
 * grew; that byte lands in the padding or the next header and is put back.
 */
function readInto(piece: Uint8Array, read: PieceFileRead): PieceFileOutcome {
  const size = read.size;
  const start = read.headerOffset + read.headerLength;
  const spare = start + size < piece.length ? piece[start + size] : undefined;
  let file: Deno.FsFile | undefined;
  let filled = 0;
  try {
    file = Deno.openSync(read.path, { read: true });
    const room = piece.subarray(start, start + size + (spare === undefined ? 0 : 1));
    // At least one read, so that an empty file that grew is seen too.
    for (;;) {
      const n = file.readSync(room.subarray(filled));
      if (n === null) break;
      filled += n;
      if (filled >= size) break;
    }
  } catch (error) {
    return { problem: describeIoError(error) };
  } finally {
    file?.close();
    if (spare !== undefined) piece[start + size] = spare;
  }
  const content = piece.subarray(start, start + Math.min(filled, size));
  const sha256 = createHash("sha256").update(content).digest("hex");
  return filled > size ? { sha256, size, grew: true } : { sha256, size: filled };
}
