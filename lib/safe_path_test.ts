import assert from "node:assert/strict";
import path from "node:path";
import { IntellistorError } from "./errors.ts";
import { ensureParentDirectory, resolveInside, unsafeNameReason } from "./safe_path.ts";

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
      (e) => e instanceof IntellistorError && e.code === "UNSAFE_PATH",
    );
    assert.deepEqual([...Deno.readDirSync(outside)].length, 0);
    await ensureParentDirectory(out, "real/deeper/file.txt", "posix");
    assert.ok(Deno.statSync(path.join(out, "real", "deeper")).isDirectory);
  } finally {
    await Deno.remove(out, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
