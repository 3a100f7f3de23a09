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
 * - one that grew is read again, whole, and gets its header written again;
 *   only beyond 1 MiB does it keep the size the walk saw, and is reported.
 * The piece then changes length; `removals` tells where, so that the offsets
 * recorded for later entries can follow.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { concatBytes } from "../crypto/bytes.ts";
import { setUstarSize, TAR_BLOCK, tarPadding } from "./tar.ts";
import { NOT_REGULAR, openSourceSync } from "./source_file.ts";
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
   * FIELDS numbers per file: where its header blocks start in the piece,
   * their length, the size the walk saw and the header says (the hole that
   * follows them), and 1 when the file's place must be checked once open
   * (the walk's `checkWhere`), else 0.
   */
  layout: Int32Array<ArrayBuffer>;
}

/** Numbers per file in `PieceFiles.layout`. */
export const FIELDS = 4;

/** What reading one file into its piece gave. */
export type PieceFileOutcome =
  | { sha256: string; size: number; grew?: true }
  | { problem: string };

/** What reading a piece's files gave, in arrays like PieceFiles. */
export interface FilledPiece {
  /** The piece's length now (files taken out, shrunk or grown change it). */
  length: number;
  /** Per file: bytes archived, or -1 when it could not be read. */
  sizes: Int32Array<ArrayBuffer>;
  /** Per file: the SHA-256 (hex) of what was archived, or why it could not be read. */
  notes: string[];
  /** Indexes of the files that grew beyond what is read again: their first `size` bytes were archived. */
  grew: number[];
  /**
   * Pairs (end, bytes): `bytes` were removed (added, if negative) just before
   * offset `end` of the piece as laid out (see finalOffset).
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

/** A file that grew is read again, whole, up to this size; beyond it, its listed size is kept. */
const GROWN_FILE_LIMIT = 1 << 20;

/**
 * Reads every file of `files` into `piece` (its first `length` bytes laid
 * out as above). `data` is what to compress: the piece itself, or, when some
 * file was not as the walk saw it, the piece rebuilt around it.
 */
export function fillPiece(
  piece: Uint8Array,
  length: number,
  files: PieceFiles,
): FilledPiece & { data: Uint8Array } {
  const count = files.paths.length;
  const sizes = new Int32Array(count);
  const notes: string[] = [];
  const changed: number[] = [];
  for (let i = 0; i < count; i++) {
    const at = FIELDS * i;
    const contentStart = files.layout[at] + files.layout[at + 1];
    const planned = files.layout[at + 2];
    const read = readInto(piece, files.paths[i], contentStart, planned, files.layout[at + 3] === 1);
    sizes[i] = read.size;
    notes.push(read.note);
    if (read.size !== planned) changed.push(i);
  }
  if (changed.length === 0) {
    return { data: piece.subarray(0, length), length, sizes, notes, grew: [], removals: [] };
  }
  return rebuild(piece, length, files, changed, sizes, notes);
}

/**
 * The piece again, in a new buffer, around the files not read as laid out:
 * one that could not be read is left out; one that shrank gets the size read;
 * one that grew is read again whole (up to GROWN_FILE_LIMIT), or else keeps
 * its listed size and is reported. Rare, so a copy costs nothing that counts.
 */
function rebuild(
  piece: Uint8Array,
  length: number,
  files: PieceFiles,
  changed: readonly number[],
  sizes: Int32Array<ArrayBuffer>,
  notes: string[],
): FilledPiece & { data: Uint8Array } {
  const parts: Uint8Array[] = [];
  const grew: number[] = [];
  const removals: number[] = [];
  let from = 0;
  for (const i of changed) {
    const headerOffset = files.layout[FIELDS * i];
    const contentStart = headerOffset + files.layout[FIELDS * i + 1];
    const planned = files.layout[FIELDS * i + 2];
    const end = contentStart + planned + tarPadding(planned);
    parts.push(piece.subarray(from, headerOffset));
    from = end;
    let content: Uint8Array | undefined;
    if (sizes[i] > planned) {
      content = readWhole(files.paths[i], GROWN_FILE_LIMIT, files.layout[FIELDS * i + 3] === 1);
      if (content === undefined) {
        // Too large now, or gone: the bytes already read, as many as listed.
        content = piece.slice(contentStart, contentStart + planned);
        grew.push(i);
      } else notes[i] = createHash("sha256").update(content).digest("hex");
    } else if (sizes[i] >= 0) content = piece.subarray(contentStart, contentStart + sizes[i]);
    if (content === undefined) {
      removals.push(end, end - headerOffset);
      continue;
    }
    sizes[i] = content.length;
    const header = piece.slice(headerOffset, contentStart);
    setUstarSize(header.subarray(header.length - TAR_BLOCK), content.length);
    parts.push(header, content, new Uint8Array(tarPadding(content.length)));
    const entryLength = header.length + content.length + tarPadding(content.length);
    // Negative when the file grew: what follows moves on.
    removals.push(end, end - headerOffset - entryLength);
  }
  parts.push(piece.subarray(from, length));
  const data = concatBytes(...parts);
  return { data, length: data.length, sizes, notes, grew, removals };
}

/** A whole file, if it can be read and is at most `limit` bytes. */
function readWhole(path: string, limit: number, checkWhere: boolean): Uint8Array | undefined {
  let fd: number | undefined;
  try {
    fd = openSourceSync(path, checkWhere);
    const buffer = new Uint8Array(limit + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const n = fs.readSync(fd, buffer, filled, buffer.length - filled, null);
      if (n === 0) return buffer.slice(0, filled);
      filled += n;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
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
  checkWhere: boolean,
): { size: number; note: string } {
  const spare = start + size < piece.length ? piece[start + size] : undefined;
  let fd: number | undefined;
  let filled = 0;
  try {
    fd = openSourceSync(path, checkWhere);
    const room = piece.subarray(start, start + size + (spare === undefined ? 0 : 1));
    // At least one read, so that an empty file that grew is seen too.
    for (;;) {
      const n = fs.readSync(fd, room, filled, room.length - filled, null);
      if (n === 0) break;
      filled += n;
      if (filled >= size) break;
    }
    // Shorter than the walk saw: a FIFO put in its place reads as empty.
    if (filled < size && !fs.fstatSync(fd).isFile()) {
      return { size: -1, note: NOT_REGULAR };
    }
  } catch (error) {
    return { size: -1, note: describeIoError(error) };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
    if (spare !== undefined) piece[start + size] = spare;
  }
  const content = piece.subarray(start, start + Math.min(filled, size));
  return { size: filled, note: createHash("sha256").update(content).digest("hex") };
}
