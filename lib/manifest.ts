/**
 * `manifest.json`: the commit marker of a backup (docs/FORMAT.md §3).
 *
 * A public part (enough to list backups and pick a key) and a sealed part
 * (the file list and segment table) encrypted under a key derived from the
 * backup's data key. The sealed part's AAD is the canonical JSON of the whole
 * public part, so changing any public field, or pairing the manifest with
 * another backup's object, makes opening fail.
 */
import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import type { BackupWarning, CatalogEntry, SegmentRecord } from "./archive/catalog.ts";
import { manifestKey, type StreamKeys } from "./crypto/stream.ts";
import { integrityError, IntellistorError } from "./errors.ts";
import { assertStorageKey } from "./storage/storage_rules.ts";
import { NativeZlib } from "./archive/zlib_handle.ts";
import { concatBytes } from "./crypto/bytes.ts";
import { jsonPieces, parseJsonChunks } from "./large_json.ts";

export const MANIFEST_FORMAT = "intellistor-manifest/1";
export const OBJECT_NAME = "backup.tar.gz.enc";
export const MANIFEST_NAME = "manifest.json";

export interface PublicManifest {
  format: typeof MANIFEST_FORMAT;
  backup_id: string;
  policy_id: string;
  /** UTC, like `20260131T174311Z`. */
  timestamp: string;
  host: string;
  client_version: string;
  object: {
    key: string;
    size: number;
    /** SHA-256 (hex) of the encrypted object. */
    sha256: string;
    stream_id: string;
    chunk_count: number;
    plaintext_size: number;
  };
  key: { key_id: string; kdf: StreamKeys["kdf"] };
  summary: { files: number; dirs: number; symlinks: number; bytes: number; skipped: number };
}

export interface Manifest extends PublicManifest {
  /** base64(nonce ‖ AES-256-GCM(gzip(JSON of SealedContent))). */
  sealed: string;
}

export interface SealedContent {
  backup_id: string;
  policy_id: string;
  stream_id: string;
  object_key: string;
  /** The policy's source paths, as they were at backup time. */
  sources: string[];
  entries: CatalogEntry[];
  segments: SegmentRecord[];
  warnings: BackupWarning[];
}

const encoder = new TextEncoder();

/** JSON with object keys sorted at every level: the bytes the seal authenticates. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).filter((k) =>
      (value as Record<string, unknown>)[k] !== undefined
    ).sort();
    return `{${
      keys.map((k) =>
        `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`
      )
        .join(",")
    }}`;
  }
  return JSON.stringify(value);
}

function publicPart(manifest: PublicManifest & { sealed?: unknown }): Record<string, unknown> {
  const { sealed: _sealed, ...rest } = manifest;
  return rest;
}

/** Seals a whole sealed content (see SealedContentWriter for one built entry by entry). */
export function sealManifest(
  publicManifest: PublicManifest,
  content: SealedContent,
  keys: StreamKeys,
): Promise<Manifest> {
  const gzip = new GzipText();
  for (const piece of jsonPieces(content)) gzip.write(piece);
  return sealGzippedContent(publicManifest, gzip.finish(), keys);
}

/** Seals the gzip of a sealed content's JSON (docs/FORMAT.md §6.2). */
export async function sealGzippedContent(
  publicManifest: PublicManifest,
  plaintext: Uint8Array<ArrayBuffer>,
  keys: StreamKeys,
): Promise<Manifest> {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: nonce,
        additionalData: encoder.encode(canonicalJson(publicPart(publicManifest))),
      },
      await manifestKey(keys),
      plaintext,
    ),
  );
  const sealed = Buffer.concat([nonce, ciphertext]).toString("base64");
  return { ...publicManifest, sealed };
}

/**
 * The sealed content of a backup, compressed as its entries arrive: a backup
 * of millions of files holds ~50 bytes of gzip per entry instead of the
 * entry itself (~750 bytes as a JavaScript object). The bytes are those of
 * `gzip(JSON.stringify(SealedContent))`, members in the same order.
 */
export class SealedContentWriter {
  /** Entries written, by type (the manifest's summary). */
  readonly counts: Record<CatalogEntry["type"], number> = { file: 0, dir: 0, symlink: 0 };
  readonly #gzip = new GzipText();
  #entries = 0;

  constructor(head: Omit<SealedContent, "entries" | "segments" | "warnings">) {
    const { backup_id, policy_id, stream_id, object_key, sources } = head;
    const text = JSON.stringify({ backup_id, policy_id, stream_id, object_key, sources });
    this.#gzip.write(`${text.slice(0, -1)},"entries":[`);
  }

  addEntry(entry: CatalogEntry): void {
    this.#gzip.write((this.#entries++ === 0 ? "" : ",") + JSON.stringify(entry));
    this.counts[entry.type]++;
  }

  /** The gzip of the whole sealed content; the writer is done. */
  finish(segments: SegmentRecord[], warnings: BackupWarning[]): Uint8Array<ArrayBuffer> {
    let first = true;
    for (const piece of jsonPieces({ segments, warnings })) {
      // The first piece, `{"segments":[`, goes on from the entries of the same object.
      this.#gzip.write(first ? `],${piece.slice(1)}` : piece);
      first = false;
    }
    return this.#gzip.finish();
  }
}

/** Parses manifest text, checking only what is needed to open it. */
export function parseManifest(text: string, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw integrityError(`Manifest "${where}" is not valid JSON`);
  }
  const m = value as Partial<Manifest> | null;
  if (m === null || typeof m !== "object") {
    throw integrityError(`Manifest "${where}" is not an object`);
  }
  if (m.format !== MANIFEST_FORMAT) {
    throw new IntellistorError(
      "FORMAT_UNSUPPORTED",
      `Manifest "${where}" has format ${JSON.stringify(m.format)}, expected "${MANIFEST_FORMAT}"`,
      "It was written by another program or a newer version of Intellistor.",
    );
  }
  const texts = (o: object | null | undefined, names: string[]) =>
    o != null && typeof o === "object" &&
    names.every((n) => typeof (o as Record<string, unknown>)[n] === "string");
  const numbers = (o: object | null | undefined, names: string[]) =>
    o != null && typeof o === "object" &&
    names.every((n) => typeof (o as Record<string, unknown>)[n] === "number");
  if (
    !texts(m, ["sealed", "backup_id", "policy_id", "timestamp", "host"]) ||
    !texts(m.object, ["key", "sha256", "stream_id"]) ||
    !numbers(m.object, ["size", "chunk_count", "plaintext_size"]) ||
    !numbers(m.summary, ["files", "dirs", "symlinks", "bytes", "skipped"])
  ) {
    throw integrityError(`Manifest "${where}" is missing required fields`);
  }
  return m as Manifest;
}

/**
 * Opens the sealed part with the keys of the object it claims to describe.
 * Fails (INTEGRITY) if any public field was changed, the sealed blob was
 * touched, or the manifest belongs to another object.
 *
 * With `onEntry`, each entry is checked and handed over as it is parsed, and
 * `entries` comes back empty: a restore keeps millions of entries in a form
 * far smaller than parsed objects (lib/archive/entry_table.ts). They count
 * only once this has returned; if it throws, discard them.
 */
export async function openManifest(
  manifest: Manifest,
  keys: StreamKeys,
  onEntry?: (entry: CatalogEntry) => void,
): Promise<SealedContent> {
  const streamIdHex = Buffer.from(keys.streamId).toString("hex");
  const plaintext = await decryptSealed(manifest, keys);
  // Entries handed to onEntry: checked as they come, their segments once the table is read.
  let handedOver = 0;
  let entriesProblem: string | undefined;
  let highestSegment = { segment: -1, where: "" };
  const take = onEntry && ((key: string, element: unknown) => {
    if (key !== "entries") return false;
    const where = `entries[${handedOver++}]`;
    entriesProblem ??= entryProblem(element, where, Infinity);
    if (entriesProblem !== undefined) return true;
    const entry = element as CatalogEntry;
    if (entry.segment > highestSegment.segment) highestSegment = { segment: entry.segment, where };
    try {
      onEntry(entry);
    } catch (error) {
      // The caller's own failure (a closed stdout, say), not the manifest's.
      callerFailure = { error };
      throw error;
    }
    return true;
  });
  let callerFailure: { error: unknown } | undefined;
  let content: SealedContent;
  try {
    content = parseJsonChunks(gunzipChunks(plaintext), take) as SealedContent;
  } catch {
    if (callerFailure !== undefined) throw callerFailure.error;
    throw integrityError("The manifest's sealed part is not gzip-compressed JSON");
  }
  const problem = sealedContentProblem(content, manifest.object.plaintext_size) ??
    entriesProblem ??
    (highestSegment.segment >= content.segments.length
      ? `${highestSegment.where}.segment names no segment`
      : undefined);
  if (problem) throw integrityError(`The manifest's sealed part is malformed: ${problem}`);
  if (
    content.backup_id !== manifest.backup_id || content.stream_id !== streamIdHex ||
    content.object_key !== manifest.object.key || content.policy_id !== manifest.policy_id
  ) {
    throw integrityError("The manifest's sealed part disagrees with its public part");
  }
  return content;
}

/** The sealed part's plaintext (gzip), once its authentication and stream id hold. */
async function decryptSealed(manifest: Manifest, keys: StreamKeys): Promise<Uint8Array> {
  const streamIdHex = Buffer.from(keys.streamId).toString("hex");
  if (manifest.object.stream_id !== streamIdHex) {
    throw integrityError("The manifest does not belong to this backup object (stream id differs)");
  }
  // Padded base64. (A regular expression with a repeated group overflows the
  // stack on the tens of megabytes sealing millions of entries takes.)
  if (manifest.sealed.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(manifest.sealed)) {
    throw integrityError("The manifest's sealed part is not base64");
  }
  const blob = Buffer.from(manifest.sealed, "base64");
  if (blob.length < 12 + 16) throw integrityError("The manifest's sealed part is truncated");
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: new Uint8Array(blob.subarray(0, 12)),
          additionalData: encoder.encode(canonicalJson(publicPart(manifest))),
        },
        await manifestKey(keys),
        new Uint8Array(blob.subarray(12)),
      ),
    );
  } catch {
    throw integrityError(
      "The manifest failed authentication: it was modified or is not this backup's",
    );
  }
}

/** The sealed content's head: whose backup it is, written before the entries. */
export type SealedHead = Pick<
  SealedContent,
  "backup_id" | "policy_id" | "stream_id" | "object_key" | "sources"
>;

/** Past this much text without the head's end, the whole content is read instead. */
const HEAD_TEXT_LIMIT = 1 << 20;

/**
 * Authenticates the manifest as openManifest does (the whole sealed part),
 * but reads only the head of the sealed content: whose backup it is and its
 * sources, without parsing the entries (seconds for millions of them).
 */
export async function openManifestHead(manifest: Manifest, keys: StreamKeys): Promise<SealedHead> {
  const plaintext = await decryptSealed(manifest, keys);
  const decoder = new TextDecoder();
  let text = "";
  let head: unknown;
  try {
    for (const chunk of gunzipChunks(plaintext)) {
      text += decoder.decode(chunk, { stream: true });
      // SealedContentWriter writes the head, then `"entries":[`.
      const end = text.indexOf(',"entries":[');
      if (end !== -1) head = JSON.parse(text.slice(0, end) + "}");
      if (end !== -1 || text.length > HEAD_TEXT_LIMIT) break;
    }
  } catch {
    throw integrityError("The manifest's sealed part is not gzip-compressed JSON");
  }
  const value = (head ?? await openManifest(manifest, keys, () => {})) as SealedHead;
  const streamIdHex = Buffer.from(keys.streamId).toString("hex");
  if (
    !Array.isArray(value.sources) || !value.sources.every((s) => typeof s === "string") ||
    value.backup_id !== manifest.backup_id || value.stream_id !== streamIdHex ||
    value.object_key !== manifest.object.key || value.policy_id !== manifest.policy_id
  ) {
    throw integrityError("The manifest's sealed part disagrees with its public part");
  }
  return value;
}

/** Text given to zlib at once: fewer, larger calls. */
const GZIP_BATCH = 64 << 10;

/** One gzip member (Node's zlib defaults) of UTF-8 text written in pieces. */
class GzipText {
  readonly #deflater = new NativeZlib(zlib.createGzip());
  readonly #parts: Uint8Array[] = [];
  #output = new Uint8Array(64 << 10);
  #used = 0;
  #pending: string[] = [];
  #pendingLength = 0;

  write(text: string): void {
    this.#pending.push(text);
    this.#pendingLength += text.length;
    if (this.#pendingLength >= GZIP_BATCH) this.#compressPending(zlib.constants.Z_NO_FLUSH);
  }

  finish(): Uint8Array<ArrayBuffer> {
    this.#compressPending(zlib.constants.Z_FINISH);
    return concatBytes(...this.#parts, this.#output.subarray(0, this.#used));
  }

  #compressPending(flush: number): void {
    const input = encoder.encode(this.#pending.join(""));
    this.#pending = [];
    this.#pendingLength = 0;
    let inputOffset = 0;
    for (;;) {
      const room = this.#output.length - this.#used;
      const { outputLeft, inputLeft } = this.#deflater.write(
        flush,
        input,
        inputOffset,
        this.#output,
        this.#used,
      );
      this.#used += room - outputLeft;
      inputOffset = input.length - inputLeft;
      // Room left over: zlib has taken all of the input (and, finishing, written all).
      if (outputLeft !== 0) return;
      this.#parts.push(this.#output);
      this.#output = new Uint8Array(this.#output.length);
      this.#used = 0;
    }
  }
}

/**
 * Gunzips `data` (every member, like zlib.gunzipSync) into one reused buffer,
 * yielded as it fills: the next chunk overwrites the previous one.
 */
function* gunzipChunks(data: Uint8Array): Generator<Uint8Array> {
  const inflater = new NativeZlib(zlib.createGunzip());
  const output = new Uint8Array(256 << 10);
  let inputOffset = 0;
  for (;;) {
    const { outputLeft, inputLeft } = inflater.write(
      zlib.constants.Z_FINISH,
      data,
      inputOffset,
      output,
      0,
    );
    inputOffset = data.length - inputLeft;
    if (outputLeft < output.length) yield output.subarray(0, output.length - outputLeft);
    if (outputLeft !== 0) return;
  }
}

/**
 * What is wrong with a sealed content's shape, or undefined. Sealed content is
 * authenticated, but whoever held the key wrote it: a restore never trusts
 * its shape (docs/FORMAT.md §6).
 */
export function sealedContentProblem(value: unknown, plaintextSize: number): string | undefined {
  const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (typeof value !== "object" || value === null) return "not an object";
  const content = value as Partial<SealedContent>;
  if (!Array.isArray(content.entries)) return "entries is not a list";
  if (!Array.isArray(content.segments)) return "segments is not a list";
  if (!Array.isArray(content.warnings)) return "warnings is not a list";
  if (!Array.isArray(content.sources) || !content.sources.every((s) => typeof s === "string")) {
    return "sources is not a list of paths";
  }
  let gzEnd = 0;
  let tarEnd = 0;
  for (const [i, segment] of content.segments.entries()) {
    const s = segment as Partial<SegmentRecord> | null;
    if (
      typeof s !== "object" || s === null || !isCount(s.gz_offset) || !isCount(s.gz_length) ||
      !isCount(s.tar_offset) || !isCount(s.tar_length) || s.gz_length === 0
    ) return `segments[${i}] is not a segment record`;
    // Segments tile the payload and the tar stream, in order.
    if (s.gz_offset !== gzEnd || s.tar_offset !== tarEnd) return `segments[${i}] leaves a gap`;
    gzEnd += s.gz_length;
    tarEnd += s.tar_length;
  }
  if (content.segments.length > 0 && gzEnd !== plaintextSize) {
    return "segments do not cover the object's payload";
  }
  for (const [i, entry] of content.entries.entries()) {
    const problem = entryProblem(entry, `entries[${i}]`, content.segments.length);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** What is wrong with one entry of sealed content, or undefined. */
function entryProblem(entry: unknown, where: string, segmentCount: number): string | undefined {
  const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  const e = entry as Partial<CatalogEntry> | null;
  if (typeof e !== "object" || e === null) return `${where} is not an object`;
  if (typeof e.relative_path !== "string" || e.relative_path === "") {
    return `${where}.relative_path is not a name`;
  }
  if (e.type !== "file" && e.type !== "dir" && e.type !== "symlink") {
    return `${where}.type ${JSON.stringify(e.type)} is not file, dir or symlink`;
  }
  if (!isCount(e.size) || !isCount(e.mode) || !isCount(e.tar_offset)) {
    return `${where} has a bad size, mode or tar_offset`;
  }
  if (!Number.isSafeInteger(e.mtime)) return `${where}.mtime is not a time`;
  if (!isCount(e.segment) || e.segment >= segmentCount) return `${where}.segment names no segment`;
  if (e.type === "file" && !/^[0-9a-f]{64}$/.test(String(e.sha256))) {
    return `${where}.sha256 is not a SHA-256`;
  }
  if (e.type === "symlink" && typeof e.link !== "string") return `${where}.link is missing`;
  if (e.incomplete !== undefined && e.incomplete !== true) return `${where}.incomplete is bad`;
  return undefined;
}

/**
 * The one rule for a backup key typed by a user (`--key`): the object
 * `…/backup.tar.gz.enc`, `/`-separated (a `\` is taken as `/`, a leading
 * `./` dropped), a valid storage key. Returns it cleaned, with its manifest's key.
 */
export function parseBackupKey(input: string): { objectKey: string; manifestKey: string } {
  const objectKey = input.trim().replaceAll("\\", "/").replace(/^(\.\/)+/, "");
  const hint = 'Use the "s3.key_backup" value printed by the backup (or by "intellistor list"), ' +
    `e.g. "backups/<policy>/<timestamp>/<backup_id>/${OBJECT_NAME}".`;
  if (/^s3:\/\//i.test(objectKey)) {
    throw new IntellistorError(
      "USAGE",
      `--key takes the key inside the policy's destination, not an s3:// URL ("${input}")`,
      `${hint} The bucket and prefix come from the policy.`,
    );
  }
  if (!objectKey.endsWith(`/${OBJECT_NAME}`) && objectKey !== OBJECT_NAME) {
    throw new IntellistorError(
      "USAGE",
      `--key must name a "${OBJECT_NAME}" object, got "${input}"`,
      hint,
    );
  }
  try {
    assertStorageKey(objectKey);
  } catch (error) {
    throw new IntellistorError(
      "USAGE",
      `--key "${input}" is not a valid key: ${error instanceof Error ? error.message : error}`,
      hint,
    );
  }
  return { objectKey, manifestKey: objectKey.slice(0, -OBJECT_NAME.length) + MANIFEST_NAME };
}

/**
 * Refuses a manifest that belongs to another backup than the key names: the
 * manifest and object of one backup copied over another's (the key's last
 * folders, `<timestamp>/<backup_id>/`, name a different backup). Only those
 * parts of the key are compared, so a backup copied elsewhere, or under a
 * renamed policy's folder, still restores.
 */
export function assertManifestFor(manifest: Manifest, objectKey: string): void {
  const [timestamp, backupId] = objectKey.split("/").slice(-3, -1);
  const named = BACKUP_ID_PATTERN.test(backupId ?? "") && TIMESTAMP_PATTERN.test(timestamp ?? "");
  if (named && (backupId !== manifest.backup_id || timestamp !== manifest.timestamp)) {
    throw new IntellistorError(
      "INTEGRITY",
      `The files at "${objectKey}" are backup ${manifest.backup_id} of policy ` +
        `"${manifest.policy_id}" (${manifest.timestamp}), not the backup their key names: ` +
        "they were replaced or moved",
      "Restore the backup under its own key (intellistor list shows it), or another backup.",
    );
  }
}

const BACKUP_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIMESTAMP_PATTERN = /^\d{8}T\d{6}Z$/;

/** The manifest's key for an object key (`…/backup.tar.gz.enc` → `…/manifest.json`). */
export function manifestKeyFor(objectKey: string): string {
  return parseBackupKey(objectKey).manifestKey;
}
