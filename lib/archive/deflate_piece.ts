/**
 * Deflates one piece of a gzip member (see gzip_member.ts): the one rule for
 * how a piece is compressed, shared by the worker pool and the in-thread path.
 */
import zlib from "node:zlib";
import { PIECE_SIZE } from "./gzip_member.ts";
import { NativeZlib } from "./zlib_handle.ts";
import type { PieceResult } from "./deflate_pool.ts";
import { fillPiece, type PieceFiles } from "./piece_files.ts";

/**
 * A piece's whole job, the same on a worker and in the archive's thread:
 * its files read in (piece_files.ts), its CRC-32, its deflate.
 */
export function deflateFilledPiece(
  compressor: PieceCompressor,
  piece: Uint8Array,
  length: number,
  level: number,
  final: boolean,
  files: PieceFiles,
): PieceResult {
  const { data, ...filled } = fillPiece(piece, length, files);
  return { ...filled, output: compressor.deflate(data, level, final), crc: zlib.crc32(data) };
}

/** Bytes sampled to tell whether a piece is worth compressing. */
const SAMPLE_SIZE = 4096;
const SAMPLES = 4;
/** A piece whose samples do not shrink below this fraction is stored as is. */
const INCOMPRESSIBLE_RATIO = 0.95;

/**
 * Raw deflate of pieces, each ended with a sync flush (the last with a final
 * block), each independent of the others.
 *
 * Already-compressed or encrypted content (archives, media, random bytes)
 * costs as much CPU to deflate as text and shrinks by nothing; at level 1
 * zlib's static Huffman codes even grow it by ~5 %. Such a piece, judged by
 * deflating four 4 KiB samples, is written as stored blocks (level 0): valid
 * deflate that every gzip reader reads, at the speed of a copy.
 *
 * One native deflate state per level (zlib_handle.ts) is reset and reused,
 * writing into one scratch buffer: `zlib.deflateRawSync` would allocate a
 * state and several output buffers per call, garbage that V8 lets pile up to
 * ~64 MiB per thread before it collects.
 */
export class PieceCompressor {
  readonly #streams = new Map<number, NativeZlib>();
  #scratch = new Uint8Array(PIECE_SIZE + (64 << 10));

  /** The deflated piece, in a buffer of its own (safe to transfer). */
  deflate(data: Uint8Array, level: number, final: boolean): Uint8Array {
    const effectiveLevel = this.#looksIncompressible(data) ? 0 : level;
    const flush = final ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH;
    const length = this.#deflateIntoScratch(data, effectiveLevel, flush);
    return this.#scratch.slice(0, length);
  }

  #looksIncompressible(data: Uint8Array): boolean {
    if (data.length < SAMPLE_SIZE * SAMPLES * 4) return false;
    const stride = Math.floor((data.length - SAMPLE_SIZE) / (SAMPLES - 1));
    let compressed = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const sample = data.subarray(i * stride, i * stride + SAMPLE_SIZE);
      compressed += this.#deflateIntoScratch(sample, 1, zlib.constants.Z_FINISH);
    }
    return compressed > SAMPLE_SIZE * SAMPLES * INCOMPRESSIBLE_RATIO;
  }

  /** Deflates `data` on its own into the scratch buffer; returns the output length. */
  #deflateIntoScratch(data: Uint8Array, level: number, flush: number): number {
    const stream = this.#stream(level);
    stream.reset();
    let inputOffset = 0;
    let outputLength = 0;
    for (;;) {
      if (this.#scratch.length - outputLength < 1024) {
        // Deflate can grow its input a little: make room and go on.
        const larger = new Uint8Array(this.#scratch.length * 2);
        larger.set(this.#scratch.subarray(0, outputLength));
        this.#scratch = larger;
      }
      const room = this.#scratch.length - outputLength;
      const { outputLeft, inputLeft } = stream.write(
        flush,
        data,
        inputOffset,
        this.#scratch,
        outputLength,
      );
      outputLength += room - outputLeft;
      inputOffset = data.length - inputLeft;
      // Output room left over means zlib has flushed everything it was given.
      if (outputLeft !== 0) return outputLength;
    }
  }

  #stream(level: number): NativeZlib {
    let stream = this.#streams.get(level);
    if (stream === undefined) {
      stream = new NativeZlib(zlib.createDeflateRaw({ level }));
      this.#streams.set(level, stream);
    }
    return stream;
  }
}
