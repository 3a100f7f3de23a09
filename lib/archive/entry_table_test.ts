import assert from "node:assert/strict";
import type { CatalogEntry } from "./catalog.ts";
import { EntryTable } from "./entry_table.ts";

function file(i: number, extra: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    relative_path: `d${i % 7}/f-${i}.txt`,
    type: "file",
    size: i * 1000,
    mode: 0o644 + (i % 3),
    mtime: 1_795_700_000_000 + i * 1_001,
    sha256: (i % 251).toString(16).padStart(2, "0").repeat(31) + "0f",
    source: `/srv/d${i % 7}/f-${i}.txt`,
    segment: Math.floor(i / 100),
    tar_offset: i * 1536 + 2 ** 40,
    ...extra,
  };
}

Deno.test("EntryTable: every entry comes back as listed, beyond the first growth", () => {
  const table = new EntryTable();
  const listed: CatalogEntry[] = [];
  for (let i = 0; i < 3000; i++) {
    const { sha256, ...other } = file(i);
    const entry: CatalogEntry = i % 10 === 1
      ? { ...other, type: "dir", size: 0 }
      : i % 10 === 2
      ? { ...other, type: "symlink", size: 0, link: `../é-${i}` }
      : i % 10 === 3
      ? { ...other, sha256, incomplete: true }
      : { ...other, sha256 };
    listed.push(entry);
    table.add(entry, i % 2 === 0);
  }
  assert.equal(table.length, 3000);
  assert.equal(table.selectedCount, 1500);
  for (const [i, entry] of listed.entries()) {
    const expected = { ...entry, source: "" };
    assert.deepStrictEqual(table.entry(i), expected, `entry ${i}`);
    assert.deepStrictEqual(table.get(entry.relative_path), expected);
    assert.equal(table.isSelected(i), i % 2 === 0);
    assert.equal(table.isIncomplete(i), entry.incomplete === true);
    assert.equal(table.segment(i), entry.segment);
    assert.equal(table.path(i), entry.relative_path);
  }
  assert.equal(table.get("nowhere"), undefined);
  assert.deepStrictEqual(
    [...table.selectedIndexes()],
    listed.map((_, i) => i).filter((i) => i % 2 === 0),
  );
});

Deno.test("EntryTable: a name listed twice finds its last entry, and is one selected name", () => {
  const table = new EntryTable();
  table.add(file(1), true);
  table.add(file(2), false);
  table.add(file(1, { size: 5 }), true);
  assert.equal(table.get(file(1).relative_path)?.size, 5);
  assert.equal(table.selectedCount, 2);
  const names = table.selectedNames();
  assert.deepStrictEqual([...names], [file(1).relative_path]);
  assert.ok(names.has(file(1).relative_path));
  assert.ok(!names.has(file(2).relative_path));
  assert.ok(!names.has("nowhere"));
});
