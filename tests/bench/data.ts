/**
 * The benchmark's data: deterministic trees, the same bytes on every machine.
 *
 * - `small` ≈ 20 MB, `medium` ≈ 200 MB: a mixed tree (many small text and binary files, four large
 *   ones, a 1 MiB file; about half of the bytes compressible). Every byte comes from the PRNG, as
 *   before, so these trees are identical to the ones behind the numbers already in the README.
 * - `many-small`: 50,000 files of ~1 KiB (512–1536 bytes, half text, half binary) in 50
 *   directories of 1,000.
 * - `large` (2 GiB), and the 256 MiB tree of `--memory-scaling`: {@link generateScaledTree}, the
 *   same mix as `medium` but mostly in large-ish files; exactly 256 MiB × scale.
 *
 * `many-small` and the scaled trees are written from two 8 MiB pools (text and random) filled
 * once: each file, and each 1 MiB of a larger file, is a slice of a pool at a random offset, its
 * letters permuted (text; gzip's ratio is unchanged) or XORed with a random word (binary). This is
 * mostly I/O (2 GiB in seconds, not minutes), and no two files or slices are alike, so a
 * deduplicating tool (restic) gains nothing from the reuse.
 */
import path from "node:path";

export interface TreeStats {
  files: number;
  bytes: number;
}

export const SIZES = ["small", "medium", "many-small", "large"] as const;
export type Size = typeof SIZES[number];

const MIB = 1024 * 1024;
/** The 1 MiB file that the selective restore restores, in the trees that have one. */
const SELECT = "select/one-mib.bin";

/** xorshift32: the same bytes on every machine. */
class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s;
  }
  below(n: number): number {
    return this.next() % n;
  }
  fillRandom(buf: Uint8Array): void {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
    for (let i = 0; i < words.length; i++) words[i] = this.next();
    for (let i = words.length * 4; i < buf.length; i++) buf[i] = this.next() & 0xff;
  }
}

const encoder = new TextEncoder();
const vocabRng = new Rng(0x5eed);
const VOCAB: Uint8Array[] = Array.from({ length: 2000 }, () => {
  const len = 2 + vocabRng.below(9);
  let w = "";
  for (let i = 0; i < len; i++) w += String.fromCharCode(97 + vocabRng.below(26));
  return encoder.encode(w);
});

/** Text-like bytes (words, spaces, lines): compresses roughly 3:1 with gzip. */
function fillText(rng: Rng, buf: Uint8Array): void {
  let i = 0;
  let line = 0;
  while (i < buf.length) {
    const w = VOCAB[rng.below(VOCAB.length)];
    for (let j = 0; j < w.length && i < buf.length; j++) buf[i++] = w[j];
    if (i < buf.length) {
      line += w.length + 1;
      if (line > 60 + rng.below(20)) {
        buf[i++] = 10;
        line = 0;
      } else buf[i++] = 32;
    }
  }
}

async function writeFile(file: string, size: number, text: boolean, rng: Rng): Promise<void> {
  await Deno.mkdir(path.dirname(file), { recursive: true });
  using handle = await Deno.open(file, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(Math.min(size, 1 << 20));
  for (let left = size; left > 0;) {
    const part = chunk.subarray(0, Math.min(left, chunk.length));
    if (text) fillText(rng, part);
    else rng.fillRandom(part);
    for (let off = 0; off < part.length;) off += await handle.write(part.subarray(off));
    left -= part.length;
  }
}

// ---------------------------------------------------------------- pooled content

const POOL_BYTES = 8 * MIB;

/** Writes files whose bytes are varied slices of two pools filled once (see the file comment). */
class PooledWriter {
  readonly #rng: Rng;
  readonly #text = new Uint8Array(POOL_BYTES);
  readonly #random = new Uint8Array(POOL_BYTES);
  readonly #chunk = new Uint8Array(MIB);
  readonly #lut = new Uint8Array(256);
  readonly #dirs = new Set<string>();

  constructor(seed: number) {
    this.#rng = new Rng(seed);
    fillText(this.#rng, this.#text);
    this.#rng.fillRandom(this.#random);
    for (let i = 0; i < 256; i++) this.#lut[i] = i;
  }

  /** A random number below `n` from the writer's generator (file sizes, names). */
  below(n: number): number {
    return this.#rng.below(n);
  }

  write(file: string, size: number, text: boolean): void {
    const dir = path.dirname(file);
    if (!this.#dirs.has(dir)) {
      Deno.mkdirSync(dir, { recursive: true });
      this.#dirs.add(dir);
    }
    if (size <= this.#chunk.length) {
      this.#fill(this.#chunk.subarray(0, size), text);
      Deno.writeFileSync(file, this.#chunk.subarray(0, size));
      return;
    }
    using handle = Deno.openSync(file, { write: true, create: true, truncate: true });
    for (let left = size; left > 0;) {
      const part = this.#chunk.subarray(0, Math.min(left, this.#chunk.length));
      this.#fill(part, text);
      for (let off = 0; off < part.length;) off += handle.writeSync(part.subarray(off));
      left -= part.length;
    }
  }

  /** One slice of a pool at a random offset, varied as a whole (the file comment says how). */
  #fill(buf: Uint8Array, text: boolean): void {
    // A 4-byte-aligned source offset, so that binary can be XORed a word at a time.
    const from = this.#rng.below(POOL_BYTES - buf.length + 1) & ~3;
    if (text) this.#permutedText(buf, from);
    else this.#xoredRandom(buf, from);
  }

  /** Letters through a random permutation of a–z: a bijection, so gzip's ratio is unchanged. */
  #permutedText(buf: Uint8Array, from: number): void {
    const lut = this.#lut;
    for (let i = 25; i >= 0; i--) lut[97 + i] = 97 + i;
    for (let i = 25; i > 0; i--) {
      const j = this.#rng.below(i + 1);
      const t = lut[97 + i];
      lut[97 + i] = lut[97 + j];
      lut[97 + j] = t;
    }
    const src = this.#text;
    for (let i = 0; i < buf.length; i++) buf[i] = lut[src[from + i]];
  }

  /** Random bytes XORed with a random word: still random, and unlike any other slice. */
  #xoredRandom(buf: Uint8Array, from: number): void {
    const key = this.#rng.next();
    const n = buf.length >>> 2;
    const dst = new Uint32Array(buf.buffer, buf.byteOffset, n); // the chunk's start: aligned
    const src = new Uint32Array(this.#random.buffer, from, n);
    for (let i = 0; i < n; i++) dst[i] = src[i] ^ key;
    for (let i = n * 4; i < buf.length; i++) buf[i] = this.#random[from + i] ^ (key & 0xff);
  }
}

// ---------------------------------------------------------------- trees

/**
 * Generates the tree of `size` into `root` (which must not exist); returns the relative path of
 * the file the selective restore restores (1 MiB, except in `many-small`: one of its files).
 */
export async function generateTree(root: string, size: Size): Promise<string> {
  if (size === "many-small") return generateManySmall(root);
  if (size === "large") return generateScaledTree(root, 8);
  const scale = size === "small" ? 1 : 10;
  const rng = new Rng(0xbac0 + scale);
  const smallCount = 600 * scale;
  for (let i = 0; i < smallCount; i++) {
    const text = i % 2 === 0;
    const dir = `small/d${String(i % (4 * scale)).padStart(3, "0")}`;
    const name = `f${String(i).padStart(5, "0")}.${text ? "txt" : "bin"}`;
    await writeFile(path.join(root, dir, name), 256 + rng.below(16 * 1024), text, rng);
  }
  const large = Math.round(3.6 * scale * MIB);
  await writeFile(path.join(root, "large/text-0.log"), large, true, rng);
  await writeFile(path.join(root, "large/text-1.csv"), large, true, rng);
  await writeFile(path.join(root, "large/blob-0.bin"), large, false, rng);
  await writeFile(path.join(root, "large/blob-1.bin"), large, false, rng);
  await writeFile(path.join(root, SELECT), MIB, false, rng);
  return SELECT;
}

/** 50,000 files of 512–1536 bytes (1 KiB on average), in `many/d00` … `many/d49`. */
function generateManySmall(root: string): string {
  const writer = new PooledWriter(0x5a11);
  for (let i = 0; i < 50_000; i++) {
    const text = i % 2 === 0;
    const dir = `many/d${String(Math.floor(i / 1000)).padStart(2, "0")}`;
    const name = `f${String(i).padStart(5, "0")}.${text ? "txt" : "bin"}`;
    writer.write(path.join(root, dir, name), 512 + writer.below(1025), text);
  }
  return "many/d24/f24501.bin";
}

/**
 * The `medium` mix scaled to exactly `scale` × 256 MiB, mostly in large-ish files: 1,000 × scale
 * small files (256 B–16 KiB, ~8 MiB × scale) in directories of 100, 16 × scale files of
 * 1–8 MiB (~72 MiB × scale), four large files sharing the rest (~43 MiB × scale each), and the
 * 1 MiB file; half of the bytes text, half random. The file count grows with the bytes, so
 * `--memory-scaling` compares trees that differ only in scale.
 */
export function generateScaledTree(root: string, scale: number): string {
  const writer = new PooledWriter(0x1a46e + scale);
  let written = 0;
  const write = (rel: string, size: number, text: boolean) => {
    writer.write(path.join(root, rel), size, text);
    written += size;
  };
  for (let i = 0; i < 1000 * scale; i++) {
    const text = i % 2 === 0;
    const dir = `small/d${String(Math.floor(i / 100)).padStart(3, "0")}`;
    write(
      `${dir}/f${String(i).padStart(5, "0")}.${text ? "txt" : "bin"}`,
      256 + writer.below(16 * 1024),
      text,
    );
  }
  for (let i = 0; i < 16 * scale; i++) {
    const text = i % 2 === 0;
    write(
      `mid/m${String(i).padStart(3, "0")}.${text ? "txt" : "bin"}`,
      MIB + writer.below(7 * MIB),
      text,
    );
  }
  write(SELECT, MIB, false);
  const rest = 256 * MIB * scale - written;
  const large = Math.floor(rest / 4);
  write("large/text-0.log", large, true);
  write("large/text-1.csv", large, true);
  write("large/blob-0.bin", large, false);
  write("large/blob-1.bin", rest - 3 * large, false);
  return SELECT;
}

/** Regular files and their bytes under `root` (symlinks not followed). */
export async function walkTree(root: string): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, bytes: 0 };
  const visit = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const full = path.join(dir, e.name);
      if (e.isDirectory) await visit(full);
      else if (e.isFile) {
        stats.files++;
        stats.bytes += (await Deno.stat(full)).size;
      }
    }
  };
  await visit(root);
  return stats;
}
