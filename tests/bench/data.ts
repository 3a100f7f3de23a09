/**
 * The benchmark's data: a deterministic mixed tree (many small text and binary files, a few large
 * ones, about half of the bytes compressible). `small` ≈ 20 MB, `medium` ≈ 200 MB.
 */
import path from "node:path";

export interface TreeStats {
  files: number;
  bytes: number;
}

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

/** Generates the tree into `root` (which must not exist); returns the ~1 MiB file to restore. */
export async function generateTree(root: string, size: "small" | "medium"): Promise<string> {
  const scale = size === "small" ? 1 : 10;
  const rng = new Rng(0xbac0 + scale);
  const smallCount = 600 * scale;
  for (let i = 0; i < smallCount; i++) {
    const text = i % 2 === 0;
    const dir = `small/d${String(i % (4 * scale)).padStart(3, "0")}`;
    const name = `f${String(i).padStart(5, "0")}.${text ? "txt" : "bin"}`;
    await writeFile(path.join(root, dir, name), 256 + rng.below(16 * 1024), text, rng);
  }
  const large = Math.round(3.6 * scale * 1024 * 1024);
  await writeFile(path.join(root, "large/text-0.log"), large, true, rng);
  await writeFile(path.join(root, "large/text-1.csv"), large, true, rng);
  await writeFile(path.join(root, "large/blob-0.bin"), large, false, rng);
  await writeFile(path.join(root, "large/blob-1.bin"), large, false, rng);
  const select = "select/one-mib.bin";
  await writeFile(path.join(root, select), 1024 * 1024, false, rng);
  return select;
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
