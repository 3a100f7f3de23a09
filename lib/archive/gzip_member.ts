/**
 * One gzip member (RFC 1952) built from independently deflated pieces.
 *
 * Each piece of input (up to `PIECE_SIZE` bytes) is deflated on its own and
 * ended with a sync flush, the last one with a final block; the concatenation
 * is one valid deflate stream (the technique pigz uses). Pieces never depend
 * on each other, so memory stays bounded by one piece whatever the member's
 * size, and pieces can later be compressed on several cores.
 */
import zlib from "node:zlib";
import { promisify } from "node:util";

const deflateRaw = promisify(zlib.deflateRaw);

/** Input bytes deflated at a time. */
export const PIECE_SIZE = 1 << 20;

// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): output is reproducible.
const GZIP_HEADER = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);

export class GzipMemberWriter {
  readonly #level: number;
  #piece = new Uint8Array(PIECE_SIZE);
  #pieceLength = 0;
  #crc = 0;
  #inputLength = 0;
  #started = false;

  constructor(level: number) {
    this.#level = level;
  }

  /** Uncompressed bytes written to this member so far. */
  get inputLength(): number {
    return this.#inputLength;
  }

  /**
   * Appends `data`; returns the compressed bytes that became ready (possibly none).
   * The caller must not modify `data` until the promise resolves.
   */
  async write(data: Uint8Array): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    this.#begin(out);
    let offset = 0;
    while (offset < data.length) {
      const n = Math.min(data.length - offset, PIECE_SIZE - this.#pieceLength);
      this.#piece.set(data.subarray(offset, offset + n), this.#pieceLength);
      this.#pieceLength += n;
      offset += n;
      if (this.#pieceLength === PIECE_SIZE) out.push(await this.#deflatePiece(false));
    }
    return out;
  }

  /**
   * A buffer to read input into directly (saves a copy for file data): fill
   * up to `length` bytes of it, then call `commit(n)`.
   */
  spare(): Uint8Array {
    return this.#piece.subarray(this.#pieceLength);
  }

  /** Accounts for `n` bytes written into `spare()`. */
  async commit(n: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    this.#begin(out);
    this.#pieceLength += n;
    if (this.#pieceLength === PIECE_SIZE) out.push(await this.#deflatePiece(false));
    return out;
  }

  /** Ends the member: the last deflate block and the CRC-32/ISIZE trailer. */
  async finish(): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    this.#begin(out);
    out.push(await this.#deflatePiece(true));
    const trailer = new Uint8Array(8);
    const view = new DataView(trailer.buffer);
    view.setUint32(0, this.#crc >>> 0, true);
    view.setUint32(4, this.#inputLength % 2 ** 32, true);
    out.push(trailer);
    return out;
  }

  #begin(out: Uint8Array[]): void {
    if (!this.#started) {
      this.#started = true;
      out.push(GZIP_HEADER.slice());
    }
  }

  async #deflatePiece(final: boolean): Promise<Uint8Array> {
    const input = this.#piece.subarray(0, this.#pieceLength);
    this.#crc = zlib.crc32(input, this.#crc);
    this.#inputLength += input.length;
    const compressed = await deflateRaw(input, {
      level: this.#level,
      finishFlush: final ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    });
    this.#pieceLength = 0;
    return new Uint8Array(compressed.buffer, compressed.byteOffset, compressed.byteLength);
  }
}
