/**
 * One gzip member (RFC 1952) built from independently deflated pieces.
 *
 * Each piece of input (up to `PIECE_SIZE` bytes) is deflated on its own and
 * ended with a sync flush, the last one with a final block; the concatenation
 * is one valid deflate stream (the technique pigz uses). Pieces never depend
 * on each other, so memory stays bounded by the pieces in flight whatever the
 * member's size, and a `PieceDeflater` compresses them on every core. Each
 * piece's CRC-32 is computed where it is deflated, and combined here in order.
 */
import type { PieceDeflater } from "./deflate_pool.ts";
import { finalOffset, outcomeOf, type PieceFileOutcome } from "./piece_files.ts";
import { tarPadding } from "./tar.ts";

/** Input bytes deflated at a time. */
export const PIECE_SIZE = 1 << 20;

/** A value marked at a place in the member (see `mark`), with where it ended up. */
export interface PieceMark<T> {
  value: T;
  /** Offset in the piece's final (uncompressed) bytes. */
  offset: number;
  /** For a mark made by `writeFile`: what reading the file gave. */
  file?: PieceFileOutcome;
}

/** A piece once deflated: its output and what it held. */
export interface DeflatedPiece<T> {
  output: Uint8Array;
  /** Uncompressed bytes it holds (files read into it may have changed its length). */
  length: number;
  marks: PieceMark<T>[];
}

/** A piece being deflated. */
export class PendingPiece<T> {
  constructor(readonly done: Promise<DeflatedPiece<T>>) {}
}

/**
 * Output, in the order given: bytes, bytes still to come (the trailer), or a
 * piece being deflated.
 */
export type PendingChunk<T = unknown> = Uint8Array | Promise<Uint8Array> | PendingPiece<T>;

// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): output is reproducible.
const GZIP_HEADER = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);

/** What the CRC-32 and ISIZE of the member cover so far. */
interface Checked {
  crc: number;
  length: number;
}

export class GzipMemberWriter<T = unknown> {
  readonly #level: number;
  readonly #deflater: PieceDeflater;
  #piece: Uint8Array | undefined;
  #pieceLength = 0;
  #marks: { value: T; offset: number; file?: number }[] = [];
  #paths: string[] = [];
  #layout: number[] = [];
  /** The CRC-32 and length of the pieces deflated so far, combined in order. */
  #checked: Promise<Checked> = Promise.resolve({ crc: 0, length: 0 });
  #inputLength = 0;
  #started = false;

  constructor(level: number, deflater: PieceDeflater) {
    this.#level = level;
    this.#deflater = deflater;
  }

  /** Uncompressed bytes laid out in this member so far (before any file is read). */
  get inputLength(): number {
    return this.#inputLength + this.#pieceLength;
  }

  /** Appends `data` (copied); returns the output that follows, in order. */
  write(data: Uint8Array): PendingChunk<T>[] {
    const out: PendingChunk<T>[] = [];
    this.#begin(out);
    let offset = 0;
    while (offset < data.length) {
      const n = Math.min(data.length - offset, PIECE_SIZE - this.#pieceLength);
      this.#buffer().set(data.subarray(offset, offset + n), this.#pieceLength);
      this.#pieceLength += n;
      offset += n;
      if (this.#pieceLength === PIECE_SIZE) out.push(this.#deflatePiece(false));
    }
    return out;
  }

  /**
   * A buffer to read input into directly (saves a copy for file data): fill
   * up to `length` bytes of it, then call `commit(n)`.
   */
  spare(): Uint8Array {
    return this.#buffer().subarray(this.#pieceLength);
  }

  /** Accounts for `n` bytes written into `spare()`. */
  commit(n: number): PendingChunk<T>[] {
    const out: PendingChunk<T>[] = [];
    this.#begin(out);
    this.#pieceLength += n;
    if (this.#pieceLength === PIECE_SIZE) out.push(this.#deflatePiece(false));
    return out;
  }

  /**
   * Marks the current place with `value`: it comes back with the piece that
   * holds the place, with the offset the place has once the piece's files
   * are read (PieceMark).
   */
  mark(value: T): void {
    this.#marks.push({ value, offset: this.#pieceLength });
  }

  /** Whether a file entry of `tarLength` bytes fits in one piece (see writeFile). */
  static fitsInPiece(tarLength: number): boolean {
    // One byte to spare: reading one byte more than expected tells a file that grew.
    return tarLength < PIECE_SIZE;
  }

  /**
   * Appends a small file's entry, `header` then a hole for its content and
   * the padding, all in one piece; whoever deflates the piece reads the file
   * into the hole (piece_files.ts). `value` is marked at the header.
   */
  writeFile(
    header: Uint8Array,
    path: string,
    size: number,
    value: T,
    checkWhere = false,
  ): PendingChunk<T>[] {
    const tarLength = header.length + size + tarPadding(size);
    if (!GzipMemberWriter.fitsInPiece(tarLength)) {
      throw new RangeError("file entry larger than a piece");
    }
    const out: PendingChunk<T>[] = [];
    this.#begin(out);
    if (this.#pieceLength + tarLength >= PIECE_SIZE) out.push(this.#deflatePiece(false));
    const piece = this.#buffer();
    const headerOffset = this.#pieceLength;
    piece.set(header, headerOffset);
    // The hole is filled by the reader; the padding must be zeros (buffers are reused).
    piece.fill(0, headerOffset + header.length + size, headerOffset + tarLength);
    this.#marks.push({ value, offset: headerOffset, file: this.#paths.length });
    this.#paths.push(path);
    this.#layout.push(headerOffset, header.length, size, checkWhere ? 1 : 0);
    this.#pieceLength += tarLength;
    return out;
  }

  /** Ends the member: the last deflate block and the CRC-32/ISIZE trailer. */
  finish(): PendingChunk<T>[] {
    const out: PendingChunk<T>[] = [];
    this.#begin(out);
    out.push(this.#deflatePiece(true));
    out.push(awaitedLater(this.#checked.then(({ crc, length }) => {
      const trailer = new Uint8Array(8);
      const view = new DataView(trailer.buffer);
      view.setUint32(0, crc >>> 0, true);
      view.setUint32(4, length % 2 ** 32, true);
      return trailer;
    })));
    return out;
  }

  #buffer(): Uint8Array {
    this.#piece ??= this.#deflater.takeBuffer();
    return this.#piece;
  }

  #begin(out: PendingChunk<T>[]): void {
    if (!this.#started) {
      this.#started = true;
      out.push(GZIP_HEADER.slice());
    }
  }

  #deflatePiece(final: boolean): PendingPiece<T> {
    const piece = this.#buffer();
    const marks = this.#marks;
    const files = { paths: this.#paths, layout: Int32Array.from(this.#layout) };
    const deflated = this.#deflater.deflate(piece, this.#pieceLength, this.#level, final, files);
    this.#inputLength += this.#pieceLength;
    this.#piece = undefined;
    this.#pieceLength = 0;
    this.#marks = [];
    this.#paths = [];
    this.#layout = [];
    const previous = this.#checked;
    this.#checked = awaitedLater(
      Promise.all([previous, deflated]).then(([checked, piece]) => ({
        crc: crc32Combine(checked.crc, piece.crc, piece.length),
        length: checked.length + piece.length,
      })),
    );
    return new PendingPiece(awaitedLater(deflated.then((result) => ({
      output: result.output,
      length: result.length,
      marks: marks.map(({ value, offset, file }) => ({
        value,
        offset: finalOffset(result.removals, offset),
        file: file === undefined ? undefined : outcomeOf(result, file),
      })),
    }))));
  }
}

/**
 * Output is awaited in order, later, or never once an earlier piece failed:
 * a failure must not count as an unhandled rejection meanwhile.
 */
function awaitedLater<P extends Promise<unknown>>(promise: P): P {
  promise.catch(() => {});
  return promise;
}

const CRC32_POLYNOMIAL = 0xedb88320;

/** a·b modulo the CRC-32 polynomial (bit-reflected), as zlib's multmodp. */
function multiplyModP(a: number, b: number): number {
  let product = 0;
  for (let m = 0x80000000; m !== 0; m >>>= 1) {
    if ((a & m) !== 0) product ^= b;
    b = (b & 1) !== 0 ? (b >>> 1) ^ CRC32_POLYNOMIAL : b >>> 1;
  }
  return product >>> 0;
}

/** x^(2^k) modulo the polynomial, k = 0..31. */
const X_POWERS: number[] = (() => {
  const table = [1 << 30 >>> 0];
  for (let k = 1; k < 32; k++) table.push(multiplyModP(table[k - 1], table[k - 1]));
  return table;
})();

/**
 * The CRC-32 of A‖B from crc(A), crc(B) and B's length (zlib's
 * crc32_combine): pieces are checked on the threads that deflate them.
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  // crc(A) times x^(8·lengthB), then plus crc(B).
  let power = 0x80000000; // x^0
  let k = 3; // x^(2^3) = x^8: one byte
  for (let n = lengthB; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2 === 1) power = multiplyModP(X_POWERS[k % 32], power);
  }
  return (multiplyModP(power, crcA >>> 0) ^ crcB) >>> 0;
}
