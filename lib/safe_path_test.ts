import assert from "node:assert/strict";
import path from "node:path";
import { IntellistorError } from "./errors.ts";
import {
  caseCollisions,
  ensureDirectory,
  ensureParentDirectory,
  foldedNameClashes,
  osPath,
  resolveInside,
  unsafeNameReason,
  windowsCaseKey,
  withoutVerbatimPrefix,
} from "./safe_path.ts";

Deno.test("unsafeNameReason() refuses names that escape or are absolute, on every platform", () => {
  for (const platform of ["posix", "windows"] as const) {
    for (
      const name of ["", "../x", "a/../../x", "/etc/x", "a//b", "./a", "a/.", "a\0b"]
    ) {
      assert.ok(
        unsafeNameReason(name, platform) !== undefined,
        `${platform}: ${JSON.stringify(name)}`,
      );
    }
    assert.deepEqual(unsafeNameReason("docs/Cópia de Diagrama_Solução.png", platform), undefined);
  }
  // Segment by segment, at the start, the middle and the end.
  const refused = [".", "..", "a/", "/", "a/b/", "a/./b", "a/../b", "../", "x/..", "a//"];
  for (const name of refused) {
    assert.ok(unsafeNameReason(name, "posix") !== undefined, JSON.stringify(name));
  }
  for (const name of ["...", "..a", ".a", "a..", "a.", "a/.b/..c/...", "x/.hidden"]) {
    assert.equal(unsafeNameReason(name, "posix"), undefined, JSON.stringify(name));
  }
  assert.equal(unsafeNameReason("a/../b", "posix"), '".." segment');
  assert.equal(unsafeNameReason("a/./b", "posix"), '"." segment');
});

Deno.test("resolveInside() joins a safe name to --out, relative or absolute, as path.resolve does", () => {
  const names = ["a.txt", "docs/a b/ção.png", "x/.hidden/..y"];
  for (const outDir of ["/srv/out", "/srv/out/", "/srv//out/./x/..", "relative/out", "."]) {
    for (const name of names) {
      assert.equal(
        resolveInside(outDir, name, "posix"),
        path.posix.resolve(outDir, ...name.split("/")),
        `${outDir} + ${name}`,
      );
    }
  }
});

Deno.test("unsafeNameReason() refuses Windows-only hazards only when restoring on Windows", () => {
  const names = ["CON", "nul.txt", "dir/COM1", "a:b", "trailing.", "space ", "a\\b", 'q"uote'];
  for (const name of [...names, "\\x", "C:\\x", "C:x", "\\\\server\\share\\x", "a\\..\\..\\x"]) {
    assert.ok(unsafeNameReason(name, "windows") !== undefined, name);
    assert.deepEqual(unsafeNameReason(name, "posix"), undefined, name);
  }
  assert.deepEqual(unsafeNameReason("console.txt", "windows"), undefined);
});

Deno.test("resolveInside() keeps every accepted name under the output directory", () => {
  const out = path.resolve("/tmp/out");
  assert.deepEqual(resolveInside(out, "a/b.txt", "posix"), path.join(out, "a", "b.txt"));
  assert.throws(
    () => resolveInside(out, "../b.txt", "posix"),
    (e) => e instanceof IntellistorError && e.code === "UNSAFE_PATH",
  );
});

Deno.test("ensureParentDirectory() refuses to go through a symlink planted in the output", async () => {
  const out = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.symlink(outside, path.join(out, "link"));
    await assert.rejects(
      ensureParentDirectory(out, "link/file.txt", "posix"),
      (e) => e instanceof IntellistorError && e.code === "OUTPUT_EXISTS",
    );
    assert.deepEqual([...Deno.readDirSync(outside)].length, 0);
    await ensureParentDirectory(out, "real/deeper/file.txt", "posix");
    assert.ok(Deno.statSync(path.join(out, "real", "deeper")).isDirectory);
  } finally {
    await Deno.remove(out, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("unsafeNameReason() knows every Windows device name, also with spaces or an extension", () => {
  for (const name of ["CONIN$", "conout$.txt", "COM¹", "LPT0", "CON .txt", "aux.tar.gz"]) {
    assert.ok(unsafeNameReason(name, "windows") !== undefined, name);
    assert.equal(unsafeNameReason(name, "posix"), undefined, name);
  }
  for (const name of ["CONSOLE", "com10", "nul-device.txt", "lpt", "con_"]) {
    assert.equal(unsafeNameReason(name, "windows"), undefined, name);
  }
});

Deno.test("resolveInside() says how to get a name only Windows refuses, and not for escapes", () => {
  const out = path.resolve("/tmp/out");
  for (const name of ["CON", "dir/NUL.txt", "a:b", "trailing.", "space "]) {
    assert.throws(
      () => resolveInside(out, name, "windows"),
      (e) =>
        e instanceof IntellistorError && e.code === "NAME_UNSUPPORTED" &&
        e.message.includes(`"${name}"`) && /intellistor decrypt/.test(e.message) &&
        /restore on Linux/.test(e.hint ?? ""),
      name,
    );
  }
  assert.throws(
    () => resolveInside(out, "../x", "windows"),
    (e) => e instanceof IntellistorError && !/decrypt/.test(e.message),
  );
});

Deno.test("osPath() gives Windows the \\\\?\\ form of a path at MAX_PATH, and nothing else", () => {
  const dir = "C:\\dados\\" + "d".repeat(100) + "\\" + "e".repeat(100);
  // 246 UTF-16 units + NUL stay below 248; one more unit and Rust's standard library switches too.
  const at = `${dir}\\${"f".repeat(245 - dir.length)}`;
  assert.equal(at.length, 246);
  assert.equal(osPath(at, "windows"), at);
  const over = at + "g";
  assert.equal(osPath(over, "windows"), `\\\\?\\${over}`);
  // Normalized first: "/" and ".." mean nothing after \\?\.
  assert.equal(
    osPath(`C:/dados/x/../${"h".repeat(300)}`, "windows"),
    `\\\\?\\C:\\dados\\${"h".repeat(300)}`,
  );
  // UNC: \\server\share\… → \\?\UNC\server\share\…
  const unc = `\\\\server\\share\\${"u".repeat(300)}\\a.txt`;
  assert.equal(osPath(unc, "windows"), `\\\\?\\UNC\\server\\share\\${"u".repeat(300)}\\a.txt`);
  // Already a device path, relative, drive-relative or root-relative: unchanged.
  for (
    const p of [
      `\\\\?\\C:\\${"v".repeat(300)}`,
      `\\\\.\\C:\\${"v".repeat(300)}`,
      "x".repeat(300),
      `C:${"x".repeat(300)}`,
      `\\${"x".repeat(300)}`,
    ]
  ) {
    assert.equal(osPath(p, "windows"), p);
  }
  // Elsewhere nothing changes, however long.
  assert.equal(osPath("/" + "p/".repeat(400), "posix"), "/" + "p/".repeat(400));
  // Asked to keep names literally (a trailing dot, a device name): even when short.
  assert.equal(osPath("C:\\dados\\nota.", "windows", { literal: true }), "\\\\?\\C:\\dados\\nota.");
  assert.equal(
    osPath("\\\\srv\\share\\CON", "windows", { literal: true }),
    "\\\\?\\UNC\\srv\\share\\CON",
  );
  assert.equal(osPath("/srv/CON", "posix", { literal: true }), "/srv/CON");
  // The prefix comes off again where paths are compared.
  assert.equal(withoutVerbatimPrefix(osPath(over, "windows")), over);
  assert.equal(withoutVerbatimPrefix(osPath(unc, "windows")), unc);
});

Deno.test("windowsCaseKey() folds case one character at a time, as NTFS does", () => {
  assert.equal(windowsCaseKey("a.txt"), windowsCaseKey("A.TXT"));
  assert.equal(windowsCaseKey("Cópia/ÇÃO.png"), windowsCaseKey("cÓpia/çãO.PNG"));
  // No full case mapping (ß is not SS) and no Unicode normalization (NFC ≠ NFD).
  assert.notEqual(windowsCaseKey("straße"), windowsCaseKey("STRASSE"));
  assert.notEqual(windowsCaseKey("C\u00f3pia"), windowsCaseKey("Co\u0301pia"));
});

Deno.test("caseCollisions() keeps the first spelling and refuses the later ones", () => {
  const entries = [
    { relative_path: "A", type: "file" },
    { relative_path: "Docs", type: "dir" },
    { relative_path: "Docs/x.txt", type: "file" },
    { relative_path: "a", type: "dir" }, // the file "A" has that name
    { relative_path: "a/b.txt", type: "file" }, // its folder is the file "A"
    { relative_path: "a.txt", type: "file" },
    { relative_path: "docs", type: "dir" }, // two folders: merged, fine
    { relative_path: "docs/X.TXT", type: "file" }, // = Docs/x.txt
    { relative_path: "docs/y.txt", type: "file" }, // fine: a new name in the merged folder
    { relative_path: "A.TXT", type: "file" },
    { relative_path: "A.txt", type: "symlink" },
  ];
  const refused = caseCollisions(entries);
  assert.deepEqual([...refused.keys()], ["a", "a/b.txt", "docs/X.TXT", "A.TXT", "A.txt"]);
  assert.match(refused.get("A.TXT")!, /^collides with "a\.txt" on a case-insensitive file system/);
  assert.match(refused.get("a/b.txt")!, /its folder "a" collides with "A"/);
  assert.match(refused.get("docs/X.TXT")!, /collides with "Docs\/x\.txt"/);
  for (const message of refused.values()) {
    assert.match(message, /even with --overwrite/);
    assert.match(message, /intellistor decrypt/);
  }
  assert.deepEqual(caseCollisions([{ relative_path: "a", type: "file" }]).size, 0);
});

Deno.test("foldedNameClashes: every name whose case-folded NFC spelling another name shares, and no other", () => {
  const nfc = "caf\u00e9.txt";
  const nfd = "cafe\u0301.txt";
  const names = ["a.txt", "b.txt", "A.TXT", "docs/a.txt", nfc, "x/Y", nfd, "x/y", "a.TxT", "c.txt"];
  assert.deepEqual(
    [...foldedNameClashes(names)].sort(),
    ["A.TXT", "a.TxT", "a.txt", nfc, nfd, "x/Y", "x/y"].sort(),
  );
  assert.equal(foldedNameClashes(["a", "b", "a/b"]).size, 0);
});

Deno.test({
  name: "ensureDirectory: folders it makes are never writable by others, whatever the umask",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const out = await Deno.makeTempDir();
    const previous = Deno.umask(0);
    try {
      // --out's own missing parents too (a restore makes --out this way first).
      await ensureDirectory(path.join(out, "o1", "deep", "new"), "a/b");
      for (const dir of ["o1", "o1/deep", "o1/deep/new", "o1/deep/new/a", "o1/deep/new/a/b"]) {
        assert.equal((await Deno.stat(path.join(out, dir))).mode! & 0o777, 0o755, dir);
      }
    } finally {
      Deno.umask(previous);
      await Deno.remove(out, { recursive: true });
    }
  },
});
