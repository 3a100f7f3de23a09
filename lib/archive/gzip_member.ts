/**
 * One gzip member (RFC 1952) built from independently deflated pieces.
 *
 * Each piece of input (up to `PIECE_SIZE` bytes) is deflated on its own and
 * ended with a sync flush, the last one with a final block; the concatenation
 * is one valid deflate stream (the technique pigz uses). Pieces never depend
 * on each other, so memory stays bounded by the pieces in flight whatever the
 * member's size, and a `PieceDeflater` compresses them on every core. The
 * CRC-32 is computed here, in input order.
 */
import zlib from "node:zlib";
import type { PieceDeflater } from "./deflate_pool.ts";

/** Input bytes deflated at a time. */
export const PIECE_SIZE = 1 << 20;

/** Output bytes, or bytes still being deflated: consume them in the order given. */
export type PendingChunk = Uint8Array | Promise<Uint8Array>;

// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): output is reproducible.
const GZIP_HEADER = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);

export class GzipMemberWriter {
  readonly #level: number;
  readonly #deflater: PieceDeflater;
  #piece: Uint8Array | undefined;
  #pieceLength = 0;
  #crc = 0;
  #inputLength = 0;
  #started = false;

  constructor(level: number, deflater: PieceDeflater) {
    this.#level = level;
    this.#deflater = deflater;
  }

  /** Uncompressed bytes written to this member so far. */
  get inputLength(): number {
    return this.#inputLength + this.#pieceLength;
  }

  /** Appends `data` (copied); returns the output that follows, in order. */
  write(data: Uint8Array): PendingChunk[] {
    const out: PendingChunk[] = [];
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
  commit(n: number): PendingChunk[] {
    const out: PendingChunk[] = [];
    this.#begin(out);
    this.#pieceLength += n;
    if (this.#pieceLength === PIECE_SIZE) out.push(this.#deflatePiece(false));
    return out;
  }

  /** Ends the member: the last deflate block and the CRC-32/ISIZE trailer. */
  finish(): PendingChunk[] {
    const out: PendingChunk[] = [];
    this.#begin(out);
    out.push(this.#deflatePiece(true));
    const trailer = new Uint8Array(8);
    const view = new DataView(trailer.buffer);
    view.setUint32(0, this.#crc >>> 0, true);
    view.setUint32(4, this.#inputLength % 2 ** 32, true);
    out.push(trailer);
    return out;
  }

  #buffer(): Uint8Array {
    this.#piece ??= this.#deflater.takeBuffer();
    return this.#piece;
  }

  #begin(out: PendingChunk[]): void {
    if (!this.#started) {
      this.#started = true;
      out.push(GZIP_HEADER.slice());
    }
  }

  #deflatePiece(final: boolean): Promise<Uint8Array> {
    const piece = this.#buffer();
    const length = this.#pieceLength;
    this.#crc = zlib.crc32(piece.subarray(0, length), this.#crc);
    this.#inputLength += length;
    this.#piece = undefined;
    this.#pieceLength = 0;
    return this.#deflater.deflate(piece, length, this.#level, final);
  }
}
