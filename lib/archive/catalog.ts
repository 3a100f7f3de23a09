/**
 * What an archive holds: the entry and segment records that the backup
 * writes into the sealed manifest and the restore reads back.
 * Field names are the manifest's (docs/FORMAT.md), hence snake_case.
 */

export type EntryType = "file" | "dir" | "symlink";

export interface CatalogEntry {
  /** `/`-separated, relative, never `..` — also the entry's name inside the tar. */
  relative_path: string;
  type: EntryType;
  /** Bytes of content (0 for dirs and symlinks). */
  size: number;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  /** Modification time, milliseconds since the Unix epoch. */
  mtime: number;
  /** SHA-256 (hex) of the content, files only. */
  sha256?: string;
  /** Symlink target, symlinks only. */
  link?: string;
  /** The absolute path the entry was read from. */
  source: string;
  /** Index into the segment table. */
  segment: number;
  /** Offset of the entry's first header block in the uncompressed tar stream. */
  tar_offset: number;
  /**
   * Present (true) when the file could not be read to its end during the
   * backup: the rest was archived as zeros. A restore reports it.
   */
  incomplete?: true;
}

/** One independently compressed gzip member of the archive. */
export interface SegmentRecord {
  /** Offset of the member in the `.tar.gz` (the decrypted payload). */
  gz_offset: number;
  gz_length: number;
  /** Offset and length of the tar bytes the member holds. */
  tar_offset: number;
  tar_length: number;
}

/** Something the backup could not archive, reported and counted as skipped. */
export interface BackupWarning {
  path: string;
  message: string;
  /** True when the entry is not in the archive at all. */
  skipped: boolean;
  /**
   * A socket, FIFO or device: never archived, by design (as GNU tar leaves
   * sockets out). Reported, but it does not make the backup partial: a home
   * directory holding an agent's socket must not fail every night.
   */
  special?: true;
}
