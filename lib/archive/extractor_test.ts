import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import path from "node:path";
import { IntellistorError } from "../errors.ts";
import type { CatalogEntry } from "./catalog.ts";
import { Extractor } from "./extractor.ts";
import { encodeTarHeader, parseTar, TAR_END, tarPadding } from "./tar.ts";

interface HostileEntry {
  path: string;
  type: "file" | "dir" | "symlink";
  data?: string;
  link?: string;
  /** What the (attacker-written) manifest claims; defaults to the truth. */
  claimedSha256?: string;
  unlisted?: boolean;
}

/** A tar stream plus a manifest-like catalog, both under the test's control. */
function build(entries: HostileEntry[]): { tar: Uint8Array; known: Map<string, CatalogEntry> } {
  const parts: Uint8Array[] = [];
  const known = new Map<string, CatalogEntry>();
  let offset = 0;
  for (const entry of entries) {
    const data = new TextEncoder().encode(entry.data ?? "");
    const header = encodeTarHeader({
      path: entry.path,
      type: entry.type,
      size: entry.type === "file" ? data.length : 0,
      mode: 0o644,
      mtimeMs: 1_700_000_000_000,
      linkname: entry.link,
    });
    if (!entry.unlisted && !known.has(entry.path)) {
      known.set(entry.path, {
        relative_path: entry.path,
        type: entry.type,
        size: entry.type === "file" ? data.length : 0,
        mode: 0o644,
        mtime: 1_700_000_000_000,
        sha256: entry.type === "file"
          ? entry.claimedSha256 ?? createHash("sha256").update(data).digest("hex")
          : undefined,
        link: entry.link,
        source: "/src/" + entry.path,
        segment: 0,
        tar_offset: offset,
      });
    }
    parts.push(header);
    offset += header.length;
    if (entry.type === "file") {
      parts.push(data, new Uint8Array(tarPadding(data.length)));
      offset += data.length + tarPadding(data.length);
    }
  }
  parts.push(TAR_END);
  const tar = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    tar.set(part, at);
    at += part.length;
  }
  return { tar, known };
}

/** An Extractor for every entry of `known`, restoring into `out`. */
function extractorFor(
  out: string,
  known: Map<string, CatalogEntry>,
  options: { platform?: "posix" | "windows"; overwrite?: boolean } = {},
): Extractor {
  return new Extractor({
    outDir: out,
    known,
    selected: new Set(known.keys()),
    overwrite: options.overwrite ?? false,
    platform: options.platform ?? "posix",
  });
}

async function extract(
  entries: HostileEntry[],
  setup?: (out: string, outside: string) => Promise<void>,
  options: { platform?: "posix" | "windows"; overwrite?: boolean } = {},
) {
  const base = await Deno.makeTempDir({ prefix: "intellistor-extract-" });
  const out = path.join(base, "out");
  const outside = path.join(base, "outside");
  await Deno.mkdir(out);
  await Deno.mkdir(outside);
  await setup?.(out, outside);
  const { tar, known } = build(entries);
  const extractor = extractorFor(out, known, options);
  await extractor.consume(parseTar(ReadableStream.from([tar])));
  await extractor.finish();
  const outsideEntries = [...Deno.readDirSync(outside)].map((e) => e.name);
  const baseEntries = [...Deno.readDirSync(base)].map((e) => e.name).sort();
  return {
    extractor,
    out,
    base,
    outsideEntries,
    baseEntries,
    cleanup: () => Deno.remove(base, { recursive: true }),
  };
}

Deno.test("Extractor refuses names that escape --out and writes nothing outside", async () => {
  const r = await extract([
    { path: "../x", type: "file", data: "evil" },
    { path: "a/../../x", type: "file", data: "evil" },
    { path: "ok.txt", type: "file", data: "fine" },
  ]);
  try {
    assert.deepEqual(r.baseEntries, ["out", "outside"]);
    assert.deepEqual(r.extractor.failures.map((f) => f.path).sort(), ["../x", "a/../../x"]);
    assert.equal(Deno.readTextFileSync(path.join(r.out, "ok.txt")), "fine");
  } finally {
    await r.cleanup();
  }
});

Deno.test("Extractor never writes through a symlink from the archive", async () => {
  const r = await extract([
    { path: "link", type: "symlink", link: "../outside" },
    { path: "link/x.txt", type: "file", data: "evil" },
    { path: "up", type: "symlink", link: "/" },
  ]);
  try {
    assert.deepEqual(r.outsideEntries, []);
    // The file went into a real directory named "link"; the symlink then could not replace it.
    assert.ok(Deno.lstatSync(path.join(r.out, "link")).isDirectory);
    assert.deepEqual(r.extractor.failures.map((f) => f.path), ["link"]);
    // Symlinks are recreated as links, never followed.
    assert.equal(Deno.readLinkSync(path.join(r.out, "up")), "/");
  } finally {
    await r.cleanup();
  }
});

Deno.test("Extractor refuses a symlink planted in --out before the restore", async () => {
  const r = await extract(
    [{ path: "planted/x.txt", type: "file", data: "evil" }],
    (out, outside) => Deno.symlink(outside, path.join(out, "planted")),
  );
  try {
    assert.deepEqual(r.outsideEntries, []);
    assert.equal(r.extractor.failures.length, 1);
    assert.match(r.extractor.failures[0].message, /symbolic link/);
  } finally {
    await r.cleanup();
  }
});

Deno.test("Extractor refuses a symlink planted deep in --out, under folders it made once", async () => {
  const r = await extract(
    [
      { path: "a/ok.txt", type: "file", data: "fine" },
      { path: "a/b/c/d/x.txt", type: "file", data: "evil" },
      { path: "a/b/c/e/y.txt", type: "file", data: "evil" },
      { path: "a/b/z.txt", type: "file", data: "fine" },
    ],
    async (out, outside) => {
      await Deno.mkdir(path.join(out, "a", "b"), { recursive: true });
      await Deno.symlink(outside, path.join(out, "a", "b", "c"));
    },
  );
  try {
    assert.deepEqual(r.outsideEntries, []);
    assert.deepEqual(r.extractor.failures.map((f) => f.path), ["a/b/c/d/x.txt", "a/b/c/e/y.txt"]);
    for (const failure of r.extractor.failures) assert.match(failure.message, /symbolic link/);
    assert.equal(Deno.readTextFileSync(path.join(r.out, "a", "b", "z.txt")), "fine");
  } finally {
    await r.cleanup();
  }
});

Deno.test("Extractor leaves no file under its real name when the SHA-256 differs", async () => {
  const r = await extract([
    { path: "bad.txt", type: "file", data: "content", claimedSha256: "0".repeat(64) },
  ]);
  try {
    assert.deepEqual([...Deno.readDirSync(r.out)], []);
    assert.match(r.extractor.failures[0].message, /SHA-256 mismatch/);
  } finally {
    await r.cleanup();
  }
});

Deno.test("Extractor skips entries the manifest does not list, and duplicates", async () => {
  const r = await extract([
    { path: "listed.txt", type: "file", data: "one" },
    { path: "smuggled.txt", type: "file", data: "evil", unlisted: true },
    { path: "listed.txt", type: "file", data: "two" },
  ]);
  try {
    assert.deepEqual([...Deno.readDirSync(r.out)].map((e) => e.name), ["listed.txt"]);
    assert.equal(Deno.readTextFileSync(path.join(r.out, "listed.txt")), "one");
    assert.equal(r.extractor.failures.length, 2);
  } finally {
    await r.cleanup();
  }
});

Deno.test("Extractor stops on a truncated archive without a partial file under its name", async () => {
  const { tar, known } = build([{ path: "big.txt", type: "file", data: "x".repeat(5000) }]);
  const out = await Deno.makeTempDir();
  try {
    const extractor = extractorFor(out, known);
    await assert.rejects(
      extractor.consume(parseTar(ReadableStream.from([tar.subarray(0, 2048)]))),
      (e) => e instanceof IntellistorError && e.code === "INTEGRITY",
    );
    assert.deepEqual([...Deno.readDirSync(out)], []);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("Extractor on Windows reports names Windows cannot hold as failures and goes on", async () => {
  // Legitimate names on Linux; none of them can exist on Windows.
  const refused = [
    "CON",
    "NUL.txt",
    "COM1",
    "trailing.",
    "space ",
    "a:b",
    "nota:2024.txt",
    "back\\slash",
    "docs/CON/inside.txt",
  ];
  const r = await extract(
    [
      ...refused.map((name) => ({ path: name, type: "file" as const, data: "linux" })),
      { path: "docs", type: "dir" },
      { path: "docs/ok.txt", type: "file", data: "fine" },
      { path: "AUX", type: "dir" },
    ],
    undefined,
    { platform: "windows" },
  );
  try {
    const byPath = new Map(r.extractor.failures.map((f) => [f.path, f.message]));
    assert.deepEqual([...byPath.keys()].sort(), [...refused, "AUX"].sort());
    for (const [name, message] of byPath) {
      assert.match(message, /^Refusing to restore "/, name);
      assert.match(message, /intellistor decrypt/, name);
    }
    assert.match(byPath.get("CON")!, /reserved name on Windows/);
    assert.match(byPath.get("trailing.")!, /ends with a dot or space/);
    assert.match(byPath.get("a:b")!, /drive letter/); // "a:" would be drive A
    assert.match(byPath.get("nota:2024.txt")!, /character Windows does not allow/);
    assert.equal(Deno.readTextFileSync(path.join(r.out, "docs", "ok.txt")), "fine");
    assert.equal(r.extractor.restored, 2);
    assert.deepEqual([...Deno.readDirSync(r.out)].map((e) => e.name), ["docs"]);
  } finally {
    await r.cleanup();
  }
});

Deno.test("Extractor on Windows restores the first of two names differing in case, never both", async () => {
  for (const overwrite of [false, true]) {
    const r = await extract(
      [
        { path: "A.TXT", type: "file", data: "upper" },
        { path: "Docs", type: "dir" },
        { path: "Docs/x.txt", type: "file", data: "first x" },
        { path: "a.txt", type: "file", data: "lower" },
        { path: "docs", type: "dir" },
        { path: "docs/X.TXT", type: "file", data: "second x" },
        { path: "docs/y.txt", type: "file", data: "y" },
        { path: "link", type: "symlink", link: "A.TXT" },
        { path: "LINK", type: "file", data: "not a link" },
      ],
      undefined,
      { platform: "windows", overwrite },
    );
    try {
      const failures = new Map(r.extractor.failures.map((f) => [f.path, f.message]));
      assert.deepEqual(
        [...failures.keys()].sort(),
        ["LINK", "a.txt", "docs/X.TXT"],
        `${overwrite}`,
      );
      assert.match(failures.get("a.txt")!, /collides with "A\.TXT" on a case-insensitive/);
      assert.match(failures.get("a.txt")!, /intellistor decrypt/);
      // The first spelling's content, untouched by the second (this file system keeps case,
      // so "a.txt" would have been a file of its own had it been written).
      assert.equal(Deno.readTextFileSync(path.join(r.out, "A.TXT")), "upper");
      assert.equal(Deno.readTextFileSync(path.join(r.out, "Docs", "x.txt")), "first x");
      assert.equal(Deno.readTextFileSync(path.join(r.out, "docs", "y.txt")), "y");
      assert.deepEqual(
        [...Deno.readDirSync(r.out)].map((e) => e.name).sort(),
        ["A.TXT", "Docs", "docs", "link"],
      );
      assert.ok(Deno.lstatSync(path.join(r.out, "link")).isSymlink);
    } finally {
      await r.cleanup();
    }
  }
});

Deno.test("after the up-front check, names that may clash by case are still looked for", async () => {
  const base = await Deno.makeTempDir({ prefix: "intellistor-extract-" });
  try {
    const out = path.join(base, "out");
    const { tar, known } = build([
      { path: "a.txt", type: "file", data: "lower" },
      { path: "A.TXT", type: "file", data: "upper" },
      { path: "b.txt", type: "file", data: "b" },
    ]);
    const extractor = extractorFor(out, known);
    extractor.refuseExistingOutput(); // --out does not exist yet: nothing to refuse
    await Deno.mkdir(out);
    // Appears after the check, as the second spelling would on a case-insensitive volume.
    await Deno.writeTextFile(path.join(out, "A.TXT"), "was here");
    await extractor.consume(parseTar(ReadableStream.from([tar])));
    await extractor.finish();
    assert.deepEqual(extractor.failures.map((f) => [f.path, f.message]), [
      ["A.TXT", "already exists; not overwritten (use --overwrite)"],
    ]);
    assert.equal(await Deno.readTextFile(path.join(out, "A.TXT")), "was here");
    assert.equal(await Deno.readTextFile(path.join(out, "a.txt")), "lower");
    assert.equal(await Deno.readTextFile(path.join(out, "b.txt")), "b");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("refuseExistingOutput counts every file in the way and names five", async () => {
  const out = await Deno.makeTempDir({ prefix: "intellistor-extract-" });
  try {
    const names = Array.from({ length: 57 }, (_, i) => `f${String(i).padStart(3, "0")}.bin`);
    for (const name of names) await Deno.writeTextFile(path.join(out, name), "old");
    const { known } = build(
      names.map((name) => ({ path: name, type: "file" as const, data: "n" })),
    );
    assert.throws(
      () => extractorFor(out, known).refuseExistingOutput(),
      (error: unknown) =>
        error instanceof IntellistorError && error.code === "OUTPUT_EXISTS" &&
        error.message.includes("replace 57 existing entries") &&
        error.message.endsWith(": f000.bin, f001.bin, f002.bin, f003.bin, f004.bin and 52 more"),
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("refuseExistingOutput names the selected files already in --out", async () => {
  const out = await Deno.makeTempDir({ prefix: "intellistor-extract-" });
  try {
    await Deno.writeTextFile(path.join(out, "keep.txt"), "old");
    await Deno.mkdir(path.join(out, "d"));
    const { known } = build([
      { path: "keep.txt", type: "file", data: "new" },
      { path: "d", type: "dir" },
      { path: "d/new.txt", type: "file", data: "n" },
    ]);
    const extractor = extractorFor(out, known);
    assert.throws(
      () => extractor.refuseExistingOutput(),
      (error: unknown) =>
        error instanceof IntellistorError && error.code === "OUTPUT_EXISTS" &&
        /: keep\.txt$/.test(error.message),
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
