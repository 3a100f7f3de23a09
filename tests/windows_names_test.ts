/**
 * Windows paths and names, exercised on any system (docs/windows.md):
 * - the walk names entries correctly from drive-letter, UNC and `\\?\` sources,
 *   run with path.win32 over an in-memory file system that behaves like Win32
 *   (it drops a trailing dot, reads CON as a device, refuses legacy paths
 *   beyond MAX_PATH unless they are `\\?\` paths);
 * - a file locked by another process is a warning, not a failure;
 * - the archive writer opens an entry by its `\\?\` path;
 * - a backup made here, with names Windows cannot hold and names differing
 *   only in case, restored with platform "windows": each such entry is a
 *   failure with a way to get it, the rest is restored, nothing overwritten.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { createArchiveStream } from "../lib/archive/archive_writer.ts";
import type { BackupWarning, CatalogEntry } from "../lib/archive/catalog.ts";
import {
  describeIoError,
  type SourceEntry,
  sourceRootName,
  type WalkFileInfo,
  type WalkFileSystem,
  walkSources,
} from "../lib/archive/walk.ts";
import { withoutVerbatimPrefix } from "../lib/safe_path.ts";
import { readAll } from "../lib/streams.ts";
import {
  generateRootKey,
  keyringFromEnv,
  LocalStorage,
  runBackup,
  runRestore,
  validatePolicy,
} from "../mod.ts";

const win = path.win32;

// ---------------------------------------------------------------------------
// An in-memory Windows file system

type Node = { dir: true } | { dir: false; data: string };

const LOCKED = Symbol("locked");

/** Win32's rewriting of a non-`\\?\` path: what the walk must avoid for odd names. */
function win32Rewrite(p: string): string {
  return key(
    p.split("\\").map((segment, i) => (i === 0 ? segment : segment.replace(/[. ]+$/, "")))
      .join("\\"),
  );
}

/** The fake's key for a path: no trailing separator (`\\nas\fotos\` is `\\nas\fotos`). */
function key(p: string): string {
  return p.replace(/\\+$/, "");
}

class FakeWindowsFs implements WalkFileSystem {
  readonly nodes = new Map<string, Node | typeof LOCKED>();
  /** Every path the walk gave to the "OS". */
  readonly calls: string[] = [];

  constructor(files: Record<string, string | null | typeof LOCKED>) {
    for (const [name, content] of Object.entries(files)) {
      let parent = win.dirname(name);
      while (true) {
        this.nodes.set(key(parent), { dir: true });
        if (parent === win.dirname(parent)) break;
        parent = win.dirname(parent);
      }
      this.nodes.set(
        name,
        content === null
          ? { dir: true }
          : content === LOCKED
          ? LOCKED
          : { dir: false, data: content },
      );
    }
  }

  #lookup(osPath: string): Node {
    this.calls.push(osPath);
    let found: string;
    if (/^\\\\\?\\/.test(osPath)) {
      found = key(withoutVerbatimPrefix(osPath));
    } else {
      if (osPath.length + 1 > 260) {
        throw new Error("The filename or extension is too long. (os error 206)");
      }
      if (/\\(con|nul|aux|prn)(\.[^\\]*)?$/i.test(osPath)) {
        throw new Error("Incorrect function. (os error 1)"); // the console, not a file
      }
      found = win32Rewrite(osPath);
    }
    const node = this.nodes.get(found);
    if (node === undefined) throw new Deno.errors.NotFound(`not found: ${found}`);
    if (node === LOCKED) {
      throw Object.assign(
        new Error(
          "The process cannot access the file because it is being used by another process. " +
            "(os error 32)",
        ),
        { code: "EBUSY" },
      );
    }
    return node;
  }

  #info(node: Node): WalkFileInfo {
    return {
      isFile: !node.dir,
      isDirectory: node.dir,
      isSymlink: false,
      size: node.dir ? 0 : node.data.length,
      mode: 0, // Deno on Windows reports no permission bits
      mtime: new Date(1_700_000_000_000),
    };
  }

  stat(p: string) {
    return Promise.resolve().then(() => this.#info(this.#lookup(p)));
  }
  lstat(p: string) {
    return this.#info(this.#lookup(p));
  }
  *readDir(p: string) {
    const node = this.#lookup(p);
    if (!node.dir) throw new Error("The directory name is invalid. (os error 267)");
    const listed = /^\\\\\?\\/.test(p) ? key(withoutVerbatimPrefix(p)) : win32Rewrite(p);
    for (const name of this.nodes.keys()) {
      if (key(win.dirname(name)) === listed && name !== listed) yield { name: win.basename(name) };
    }
  }
  readLink(_p: string): string {
    throw new Error("not a link");
  }
  realPath(p: string): Promise<string> {
    return Promise.reject(new Deno.errors.NotFound(p));
  }
}

async function walkWindows(
  roots: string[],
  fs: FakeWindowsFs,
  skipPaths: string[] = [],
): Promise<{ entries: SourceEntry[]; warnings: BackupWarning[] }> {
  const warnings: BackupWarning[] = [];
  const entries: SourceEntry[] = [];
  for await (
    const entry of walkSources(roots, {
      warn: (w) => warnings.push(w),
      skipPaths,
      platform: "windows",
      fileSystem: fs,
    })
  ) {
    entries.push(entry);
  }
  return { entries, warnings };
}

// ---------------------------------------------------------------------------
// Reading: drive letters, UNC, \\?\

Deno.test("sourceRootName() names drive, UNC and \\\\?\\ sources as the policy does", () => {
  const cases: [string, string][] = [
    ["C:\\dados", "dados"],
    ["C:\\dados\\", "dados"],
    ["C:/dados/imagens", "imagens"],
    ["\\\\server\\share\\dir", "dir"],
    ["\\\\server\\share", "share"],
    ["\\\\server\\share\\", "share"],
    ["\\\\?\\C:\\dados", "dados"],
    ["\\\\?\\UNC\\server\\share\\dir", "dir"],
    ["\\\\?\\UNC\\server\\share", "share"],
    ["\\\\?\\D:\\", "D"],
  ];
  for (const [root, name] of cases) assert.equal(sourceRootName(root, "windows"), name, root);
  assert.equal(sourceRootName("/srv/dados", "posix"), "dados");
  // On Linux a backslash is part of a name, not a separator.
  assert.equal(sourceRootName("/srv/a\\b", "posix"), "a\\b");
});

Deno.test("walk names entries of a drive-letter source relative to it, with /", async () => {
  const fs = new FakeWindowsFs({
    "C:\\dados\\Cópia de Diagrama_Solução.png": "png",
    "C:\\dados\\docs\\a.png": "a",
    "C:\\dados\\docs\\imagens\\b.png": "bb",
    "C:\\dados\\vazia": null,
  });
  const { entries, warnings } = await walkWindows(["C:\\dados"], fs);
  assert.deepEqual(warnings, []);
  assert.deepEqual(entries.map((e) => [e.relativePath, e.absolutePath, e.type, e.mode]), [
    ["Cópia de Diagrama_Solução.png", "C:\\dados\\Cópia de Diagrama_Solução.png", "file", 0o644],
    ["docs", "C:\\dados\\docs", "dir", 0o755],
    ["docs/a.png", "C:\\dados\\docs\\a.png", "file", 0o644],
    ["docs/imagens", "C:\\dados\\docs\\imagens", "dir", 0o755],
    ["docs/imagens/b.png", "C:\\dados\\docs\\imagens\\b.png", "file", 0o644],
    ["vazia", "C:\\dados\\vazia", "dir", 0o755],
  ]);
  // Short paths are given to Windows as they are.
  assert.ok(fs.calls.every((c) => !c.startsWith("\\\\?\\")), fs.calls.join("\n"));
  assert.ok(entries.every((e) => e.osPath === undefined));
});

Deno.test("walk names entries of UNC sources, one or several with drive letters", async () => {
  const fs = new FakeWindowsFs({
    "\\\\server\\share\\dir\\x.txt": "x",
    "\\\\server\\share\\dir\\sub\\y.txt": "y",
    "\\\\nas\\fotos\\2026\\z.jpg": "z",
    "C:\\dados\\a.txt": "a",
    "C:\\etc\\app.conf": "conf",
  });
  const one = await walkWindows(["\\\\server\\share\\dir"], fs);
  assert.deepEqual(one.entries.map((e) => e.relativePath), ["sub", "sub/y.txt", "x.txt"]);
  assert.equal(one.entries[1].absolutePath, "\\\\server\\share\\dir\\sub\\y.txt");

  const several = await walkWindows(["C:\\dados", "\\\\nas\\fotos", "C:\\etc\\app.conf"], fs);
  assert.deepEqual(several.warnings, []);
  assert.deepEqual(several.entries.map((e) => e.relativePath), [
    "dados",
    "dados/a.txt",
    "fotos",
    "fotos/2026",
    "fotos/2026/z.jpg",
    "app.conf",
  ]);
  assert.equal(several.entries[4].absolutePath, "\\\\nas\\fotos\\2026\\z.jpg");
});

Deno.test("walk reads paths beyond MAX_PATH through \\\\?\\, and names them plainly", async () => {
  const deep = ["a".repeat(100), "b".repeat(100), "c".repeat(100)];
  const drive = "C:\\dados\\" + deep.join("\\") + "\\fim.txt";
  const unc = "\\\\server\\share\\dir\\" + deep.join("\\") + "\\fim.txt";
  const fs = new FakeWindowsFs({ [drive]: "drive", [unc]: "unc" });
  for (const [root, file] of [["C:\\dados", drive], ["\\\\server\\share\\dir", unc]]) {
    const { entries, warnings } = await walkWindows([root], fs);
    assert.deepEqual(warnings, [], root);
    const last = entries[entries.length - 1];
    assert.equal(last.relativePath, deep.join("/") + "/fim.txt");
    assert.equal(last.absolutePath, file);
    assert.equal(
      last.osPath,
      root.startsWith("C:") ? `\\\\?\\${file}` : `\\\\?\\UNC\\${file.slice(2)}`,
    );
    // Without the prefix this file system (like Win32) refuses the path.
    await assert.rejects(fs.stat(file), /os error 206/);
  }
});

Deno.test("walk reads names Win32 would rewrite (name., CON) as themselves", async () => {
  const fs = new FakeWindowsFs({
    "C:\\dados\\nota": "the other file",
    "C:\\dados\\nota.": "trailing dot",
    "C:\\dados\\CON\\x.txt": "under a device name",
  });
  const { entries, warnings } = await walkWindows(["C:\\dados"], fs);
  assert.deepEqual(warnings, []);
  const byName = new Map(entries.map((e) => [e.relativePath, e]));
  assert.deepEqual([...byName.keys()], ["CON", "CON/x.txt", "nota", "nota."]);
  assert.equal(byName.get("nota.")!.osPath, "\\\\?\\C:\\dados\\nota.");
  assert.equal(byName.get("nota.")!.size, "trailing dot".length);
  assert.equal(byName.get("nota")!.osPath, undefined);
  assert.equal(byName.get("CON/x.txt")!.osPath, "\\\\?\\C:\\dados\\CON\\x.txt");
  assert.ok(fs.calls.includes("\\\\?\\C:\\dados\\CON"), "the directory is listed by \\\\?\\");
});

Deno.test("walk skips its own output case-insensitively, also given as \\\\?\\", async () => {
  const fs = new FakeWindowsFs({
    "C:\\dados\\a.txt": "a",
    "C:\\dados\\Out\\backup.tar.gz.enc": "self",
    "C:\\dados\\Env\\.env": "secret",
  });
  const { entries } = await walkWindows(["C:\\dados"], fs, [
    "c:\\DADOS\\out",
    "\\\\?\\C:\\dados\\env",
  ]);
  assert.deepEqual(entries.map((e) => e.relativePath), ["a.txt"]);
});

// ---------------------------------------------------------------------------
// Locked files

Deno.test("a file locked by another process is a warning, and the walk goes on", async () => {
  const fs = new FakeWindowsFs({
    "C:\\dados\\a.txt": "a",
    "C:\\dados\\outlook.pst": LOCKED,
    "C:\\dados\\z.txt": "z",
  });
  const { entries, warnings } = await walkWindows(["C:\\dados"], fs);
  assert.deepEqual(entries.map((e) => e.relativePath), ["a.txt", "z.txt"]);
  assert.deepEqual(warnings, [
    { path: "C:\\dados\\outlook.pst", message: "locked by another process", skipped: true },
  ]);
});

Deno.test("describeIoError() reads Windows' sharing and lock violations as 'locked'", () => {
  const sharing = Object.assign(
    new Error(
      "The process cannot access the file because it is being used by another process. " +
        "(os error 32)",
    ),
    { code: "EBUSY" },
  );
  const lock = Object.assign(
    new Error(
      "The process cannot access the file because another process has locked a portion of " +
        "the file. (os error 33)",
    ),
    { code: "EBUSY" },
  );
  for (const error of [sharing, lock]) {
    assert.equal(describeIoError(error, "windows"), "locked by another process");
    assert.equal(describeIoError(error, "posix"), "locked by another process");
  }
  // Without a code (another Deno version): the os error number, on Windows only.
  const bare = new Error("… being used by another process. (os error 32)");
  assert.equal(describeIoError(bare, "windows"), "locked by another process");
  // os error 32 is EPIPE on Linux: not a lock.
  assert.equal(
    describeIoError(new Error("Broken pipe (os error 32)"), "posix"),
    "Broken pipe (os error 32)",
  );
  assert.equal(describeIoError(new Deno.errors.Busy("busy")), "locked by another process");
  assert.equal(describeIoError(new Deno.errors.PermissionDenied("x")), "permission denied");
});

Deno.test("the archive writer opens an entry by its \\\\?\\ path and records the plain one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "intellistor-win-" });
  try {
    const real = path.join(dir, "content.txt");
    await Deno.writeTextFile(real, "long path content");
    const absolutePath = "C:\\dados\\" + "x".repeat(300) + "\\fim.txt";
    // osPath stands for the \\?\ path here; on this system it is a real file.
    const entry: SourceEntry = {
      relativePath: "fim.txt",
      absolutePath,
      osPath: real,
      type: "file",
      size: 17,
      mode: 0o644,
      mtimeMs: 0,
    };
    const warnings: BackupWarning[] = [];
    const entries: CatalogEntry[] = [];
    const { stream } = createArchiveStream(ReadableStream.from([entry]), {
      compressionLevel: 1,
      warn: (w) => warnings.push(w),
      onEntry: (archived) => entries.push(archived),
    });
    await readAll(stream);
    assert.deepEqual(warnings, []);
    assert.equal(entries[0].source, absolutePath);
    assert.equal(entries[0].size, 17);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Restoring a Linux backup on Windows (platform "windows")

Deno.test("restore on Windows: a Linux backup's impossible names and case twins are failures", async () => {
  const dir = await Deno.makeTempDir({ prefix: "intellistor-win-" });
  try {
    const source = path.join(dir, "source");
    const files: Record<string, string> = {
      "A.TXT": "upper",
      "a.txt": "lower",
      "CON": "console?",
      "NUL.txt": "null?",
      "COM1": "serial?",
      "nota:1.txt": "colon",
      "fim.": "dot",
      "espaço ": "space",
      "docs/ok.txt": "fine",
      "Docs/Outro.txt": "merged folder",
    };
    for (const [name, text] of Object.entries(files)) {
      await Deno.mkdir(path.dirname(path.join(source, name)), { recursive: true });
      await Deno.writeTextFile(path.join(source, name), text);
    }
    const storage = new LocalStorage(path.join(dir, "store"));
    const keyring = keyringFromEnv({ INTELLISTOR_KEY: generateRootKey() });
    const policy = validatePolicy({ id: "linux", paths: [source] }, "test");
    const backup = await runBackup({ policy, storage, keyring });
    assert.deepEqual(backup.warnings, []);

    const outDir = path.join(dir, "restore");
    const result = await runRestore({
      storage,
      keyring,
      key: backup.key_backup,
      outDir,
      platform: "windows",
      overwrite: true, // still never one over the other
    });
    // The backup is intact: these names cannot be written here (exit 1, not 13).
    assert.equal(result.integrity, "ok", JSON.stringify(result.failures, null, 1));
    assert.ok(result.failures.every((f) => f.kind === "write"), JSON.stringify(result.failures));
    const failures = new Map(result.failures.map((f) => [f.path, f.message]));
    assert.deepEqual([...failures.keys()].sort(), [
      "COM1",
      "CON",
      "NUL.txt",
      "a.txt",
      "espaço ",
      "fim.",
      "nota:1.txt",
    ]);
    for (const [name, message] of failures) assert.match(message, /intellistor decrypt/, name);
    assert.match(failures.get("a.txt")!, /collides with "A\.TXT" on a case-insensitive/);
    assert.match(failures.get("CON")!, /reserved name on Windows/);
    assert.equal(Deno.readTextFileSync(path.join(outDir, "A.TXT")), "upper");
    assert.equal(Deno.readTextFileSync(path.join(outDir, "docs", "ok.txt")), "fine");
    assert.equal(Deno.readTextFileSync(path.join(outDir, "Docs", "Outro.txt")), "merged folder");
    assert.equal(result.restored, result.found - failures.size);

    // --only matches ignoring case on Windows: "a.txt" selects both twins; the first wins.
    const only = await runRestore({
      storage,
      keyring,
      key: backup.key_backup,
      outDir: path.join(dir, "only"),
      only: ["a.txt"],
      platform: "windows",
    });
    assert.equal(only.found, 2);
    assert.equal(only.restored, 1);
    assert.deepEqual(only.failures.map((f) => f.path), ["a.txt"]);
    assert.equal(Deno.readTextFileSync(path.join(dir, "only", "A.TXT")), "upper");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
