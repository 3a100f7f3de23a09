/** Builds sample source trees and compares restored trees with them, file by file. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import path from "node:path";

export const LONG_PATH = ["a".repeat(100), "b".repeat(100), "c".repeat(100), "fim.txt"].join("/");

/** Deterministic pseudo-random bytes (incompressible), without holding more than `size`. */
export function pseudoRandomBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export interface SampleTreeOptions {
  /** Size of the one large file (above the multipart threshold when S3 is tested). */
  largeFileSize?: number;
}

/**
 * The tree the issue asks every round trip to survive: Unicode names, an empty
 * file, an empty directory, a symlink, a 300+ character path, a large file.
 */
export async function makeSampleTree(root: string, options: SampleTreeOptions = {}): Promise<void> {
  const write = async (relative: string, data: Uint8Array | string, mode = 0o644) => {
    const target = path.join(root, ...relative.split("/"));
    await Deno.mkdir(path.dirname(target), { recursive: true });
    await Deno.writeFile(
      target,
      typeof data === "string" ? new TextEncoder().encode(data) : data,
      { mode },
    );
    await Deno.chmod(target, mode);
  };
  await write("Diagrama_Solução.png", pseudoRandomBytes(3000, 1));
  await write("Cópia de Diagrama_Solução.png", pseudoRandomBytes(2000, 2));
  await write("docs/leia-me.md", "# Documentação\n".repeat(200));
  await write("docs/imagens/Diagrama_Solução.png", pseudoRandomBytes(5000, 3));
  await write("docs/sub/deep/notas.txt", "notas\n");
  await write("scripts/run.sh", "#!/bin/sh\necho ok\n", 0o755);
  await write("vazio.txt", "");
  await write(LONG_PATH, "long path\n");
  // Names at the 255-byte limit of most file systems (ASCII, and 3-byte UTF-8).
  await write(`limite/${"n".repeat(251)}.txt`, "255 bytes\n");
  await write(`limite/${"文".repeat(80)}.txt`, "243 bytes\n");
  await write("grande.bin", pseudoRandomBytes(options.largeFileSize ?? 1_500_000, 4));
  await Deno.mkdir(path.join(root, "pasta vazia"), { recursive: true });
  await Deno.symlink("docs/leia-me.md", path.join(root, "atalho.md"));
  // Fixed, distinct mtimes so that restoring them is really checked.
  let t = 1_700_000_000;
  for await (const entry of walk(root)) {
    if (!entry.isSymlink) await Deno.utime(entry.path, t, t);
    t += 3600;
  }
}

async function* walk(
  root: string,
): AsyncGenerator<{ path: string; relative: string; isSymlink: boolean }> {
  const stack = [""];
  while (stack.length > 0) {
    const relative = stack.pop()!;
    const absolute = path.join(root, ...relative.split("/").filter(Boolean));
    for await (const item of Deno.readDir(absolute)) {
      const childRelative = relative === "" ? item.name : `${relative}/${item.name}`;
      const childPath = path.join(absolute, item.name);
      if (item.isDirectory) stack.push(childRelative);
      yield { path: childPath, relative: childRelative, isSymlink: item.isSymlink };
    }
  }
}

export interface TreeSnapshotEntry {
  type: "file" | "dir" | "symlink";
  sha256?: string;
  size?: number;
  mode?: number;
  mtime?: number;
  link?: string;
}

/** Every entry under `root`: type, content hash, mode and mtime (whole seconds). */
export async function snapshotTree(root: string): Promise<Map<string, TreeSnapshotEntry>> {
  const out = new Map<string, TreeSnapshotEntry>();
  for await (const entry of walk(root)) {
    const info = await Deno.lstat(entry.path);
    if (info.isSymlink) {
      out.set(entry.relative, { type: "symlink", link: await Deno.readLink(entry.path) });
    } else if (info.isDirectory) {
      out.set(entry.relative, {
        type: "dir",
        mode: info.mode! & 0o777,
        mtime: Math.floor(info.mtime!.getTime() / 1000),
      });
    } else {
      const hash = createHash("sha256");
      using file = await Deno.open(entry.path);
      for await (const chunk of file.readable) hash.update(chunk);
      out.set(entry.relative, {
        type: "file",
        sha256: hash.digest("hex"),
        size: info.size,
        mode: info.mode! & 0o777,
        mtime: Math.floor(info.mtime!.getTime() / 1000),
      });
    }
  }
  return out;
}

/** Asserts that `restored` holds exactly `source` (or the `only` subset of it). */
export async function assertSameTree(
  source: string,
  restored: string,
  only?: (relative: string) => boolean,
): Promise<void> {
  const expected = await snapshotTree(source);
  const actual = await snapshotTree(restored);
  for (const [name, entry] of expected) {
    if (only !== undefined && !only(name)) continue;
    const got = actual.get(name);
    assert.ok(got !== undefined, `missing after restore: ${name}`);
    if (only !== undefined && entry.type === "dir") continue; // parents of a selection
    assert.deepEqual(got, entry, `differs after restore: ${name}`);
  }
  for (const [name, entry] of actual) {
    const wanted = only === undefined ? expected.has(name) : entry.type === "dir" || only(name);
    assert.ok(wanted, `unexpected after restore: ${name}`);
  }
}
