/**
 * A manifest's entries as a restore holds them: in columns, about 180 bytes
 * an entry (its name, its place in a map, numbers in typed arrays, the
 * SHA-256 as 32 bytes), instead of a parsed JSON object of about 1 KiB with
 * its lookups. A restore of millions of files holds every entry, to check
 * each archive entry against the manifest, so this is most of its memory.
 *
 * An entry is rebuilt as a `CatalogEntry` when asked for (without `source`,
 * which a restore never uses).
 */
import { Buffer } from "node:buffer";
import type { CatalogEntry, EntryType } from "./catalog.ts";

const TYPES: readonly EntryType[] = ["file", "dir", "symlink"];
const INCOMPLETE = 0x10;
const SELECTED = 0x20;
const TYPE_MASK = 0x0f;
/** Numbers per entry: size, mode, mtime, segment, tar_offset. */
const NUMBERS = 5;

export class EntryTable {
  readonly #paths: string[] = [];
  /** Name → index; a name listed twice finds its last entry, as a Map of entries would. */
  readonly #byPath = new Map<string, number>();
  readonly #links = new Map<number, string>();
  #flags = new Uint8Array(1024);
  #numbers = new Float64Array(1024 * NUMBERS);
  #sha256 = Buffer.alloc(1024 * 32);
  #selectedCount = 0;

  get length(): number {
    return this.#paths.length;
  }

  /** Entries marked selected (a name listed twice counts twice). */
  get selectedCount(): number {
    return this.#selectedCount;
  }

  /** Appends an entry (already checked: sealedContentProblem); `selected` marks it to restore. */
  add(entry: CatalogEntry, selected: boolean): void {
    const index = this.#paths.length;
    if (index === this.#flags.length) this.#grow();
    this.#paths.push(entry.relative_path);
    this.#byPath.set(entry.relative_path, index);
    this.#flags[index] = TYPES.indexOf(entry.type) | (entry.incomplete ? INCOMPLETE : 0) |
      (selected ? SELECTED : 0);
    if (selected) this.#selectedCount++;
    const at = index * NUMBERS;
    this.#numbers[at] = entry.size;
    this.#numbers[at + 1] = entry.mode;
    this.#numbers[at + 2] = entry.mtime;
    this.#numbers[at + 3] = entry.segment;
    this.#numbers[at + 4] = entry.tar_offset;
    if (entry.type === "file") {
      // By hand: Buffer's hex decoding allocates a buffer per call (~2 µs an entry).
      const hex = entry.sha256!;
      for (let i = 0, at = index * 32; i < 64; i += 2, at++) {
        this.#sha256[at] = (hexValue(hex.charCodeAt(i)) << 4) | hexValue(hex.charCodeAt(i + 1));
      }
    }
    if (entry.link !== undefined) this.#links.set(index, entry.link);
  }

  /** The entry listed under `path` (the last one, if listed twice). */
  get(path: string): CatalogEntry | undefined {
    const index = this.#byPath.get(path);
    return index === undefined ? undefined : this.entry(index);
  }

  entry(index: number): CatalogEntry {
    const flags = this.#flags[index];
    const type = TYPES[flags & TYPE_MASK];
    const at = index * NUMBERS;
    const entry: CatalogEntry = {
      relative_path: this.#paths[index],
      type,
      size: this.#numbers[at],
      mode: this.#numbers[at + 1],
      mtime: this.#numbers[at + 2],
      source: "",
      segment: this.#numbers[at + 3],
      tar_offset: this.#numbers[at + 4],
    };
    if (type === "file") {
      entry.sha256 = this.#sha256.toString("hex", index * 32, index * 32 + 32);
    }
    const link = this.#links.get(index);
    if (link !== undefined) entry.link = link;
    if (flags & INCOMPLETE) entry.incomplete = true;
    return entry;
  }

  path(index: number): string {
    return this.#paths[index];
  }

  segment(index: number): number {
    return this.#numbers[index * NUMBERS + 3];
  }

  isIncomplete(index: number): boolean {
    return (this.#flags[index] & INCOMPLETE) !== 0;
  }

  isSelected(index: number): boolean {
    return (this.#flags[index] & SELECTED) !== 0;
  }

  /** Indexes of the selected entries, in manifest (archive) order. */
  *selectedIndexes(): Generator<number> {
    for (let index = 0; index < this.#paths.length; index++) {
      if (this.isSelected(index)) yield index;
    }
  }

  /**
   * The selected names as a set, each name once. A name is selected or not
   * whatever the listing (selection goes by name), so its last one answers.
   */
  selectedNames(): ReadonlySetLike<string> {
    return {
      has: (path) => {
        const index = this.#byPath.get(path);
        return index !== undefined && this.isSelected(index);
      },
      [Symbol.iterator]: () => this.#uniqueSelectedNames(),
    };
  }

  *#uniqueSelectedNames(): Generator<string> {
    for (const index of this.selectedIndexes()) {
      const path = this.#paths[index];
      if (this.#byPath.get(path) === index) yield path;
    }
  }

  #grow(): void {
    const flags = new Uint8Array(this.#flags.length * 2);
    flags.set(this.#flags);
    this.#flags = flags;
    const numbers = new Float64Array(this.#numbers.length * 2);
    numbers.set(this.#numbers);
    this.#numbers = numbers;
    const sha256 = Buffer.alloc(this.#sha256.length * 2);
    sha256.set(this.#sha256);
    this.#sha256 = sha256;
  }
}

/** A lowercase hex digit's value (the manifest's SHA-256 is checked to be one). */
function hexValue(code: number): number {
  return code <= 0x39 ? code - 0x30 : code - 0x57;
}

/** The part of a Set that the extractor uses of its selected names. */
export interface ReadonlySetLike<T> extends Iterable<T> {
  has(value: T): boolean;
}
