/**
 * The project's own tar (POSIX ustar + PAX) writer and streaming parser.
 *
 * Written here rather than taken from a library because the backup pipeline
 * records the exact byte offset of every entry (ranged restore seeks to it),
 * and the restore side applies its own limits to hostile input.
 *
 * Writer: ustar headers, with a PAX 'x' extended header only when a field does
 * not fit ustar (long or non-ASCII names, sizes ≥ 8 GiB, sub-second mtimes).
 * Parser: ustar, PAX ('x'; 'g' ignored), GNU long names ('L'/'K') and GNU
 * base-256 numbers, with bounded memory for any chunking of the input.
 */

import { concatBytes } from "../crypto/bytes.ts";
import { integrityError } from "../errors.ts";

/** Size of a tar block; headers and data are padded to a multiple of it. */
export const TAR_BLOCK = 512;

/** The entry kinds the parser reports; everything unsupported is "other". */
export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "other";

/** What the writer needs to know to encode one entry's header. */
export interface TarHeaderFields {
  /** "/"-separated relative path, UTF-8; for dirs WITHOUT trailing slash (the writer adds "/"). */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Bytes of data following the header (0 for dir/symlink); may exceed 8 GiB. */
  size: number;
  /** Permission bits, e.g. 0o644 (masked to 0o7777). */
  mode: number;
  /** Modification time in milliseconds since the epoch; negative is written as 0. */
  mtimeMs: number;
  /** Symlink target, any length, UTF-8. */
  linkname?: string;
}

/** One entry read by {@linkcode parseTar}. */
export interface TarEntry {
  /** Trailing "/" stripped; PAX path / GNU longname / ustar prefix+name resolved. */
  path: string;
  type: TarEntryType;
  /** Raw typeflag character, for messages. */
  typeflag: string;
  size: number;
  /** Permission bits (0o7777 mask). */
  mode: number;
  /** From PAX mtime (fraction kept to whole milliseconds) or ustar octal seconds. */
  mtimeMs: number;
  linkname: string;
  /** Offset in the input stream of this entry's FIRST header block (including its PAX/GNU-longname blocks). */
  offset: number;
  /**
   * The entry's data, exactly `size` bytes, streamed. If the consumer does not
   * read it, the parser skips it before yielding the next entry. Errors
   * (IntellistorError code "INTEGRITY") if the input ends early.
   */
  body: TarBody;
}

/** An entry's data: streamed, or taken at once when the parser holds all of it. */
export interface TarBody extends AsyncIterable<Uint8Array> {
  /**
   * The whole body at once, when the parser already holds all of it and it
   * was not read: a view of the input, valid until the parser moves on.
   * Undefined otherwise (then iterate).
   */
  takeBuffered(): Uint8Array | undefined;
}

/** Options of {@linkcode parseTar}. */
export interface ParseTarOptions {
  /**
   * Accept end of input at an entry boundary without the two zero blocks (used
   * when several independently fetched segments of one archive are
   * concatenated). Default false.
   */
  allowMissingEnd?: boolean;
  /** Added to every reported offset (the tar offset where this input starts). Default 0. */
  startOffset?: number;
}

/** The end-of-archive marker: two zero blocks (1024 bytes). */
export const TAR_END: Uint8Array = new Uint8Array(2 * TAR_BLOCK);

/** Largest PAX / GNU long-name header body the parser accepts (and the writer emits). */
export const MAX_EXTENDED_HEADER_SIZE = 1024 * 1024;

/** Values from here on do not fit an 11-digit octal field (8 GiB for sizes). */
const OCTAL_11_LIMIT = 8 ** 11;
const NAME_FIELD = 100;
const PAX_HEADER_DIR = "PaxHeader/";

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

// ───────────────────────────── writer ─────────────────────────────

/** Number of zero bytes that must follow `size` data bytes to reach a 512 boundary. */
export function tarPadding(size: number): number {
  const rest = size % TAR_BLOCK;
  return rest === 0 ? 0 : TAR_BLOCK - rest;
}

/**
 * One PAX extended-header record, `"<len> <key>=<value>\n"`, where `<len>` is
 * the byte length of the whole record including its own digits.
 */
export function encodePaxRecord(key: string, value: string): Uint8Array {
  return encoder.encode(paxRecord(key, value));
}

function paxRecord(key: string, value: string): string {
  const payload = `${key}=${value}\n`;
  const base = utf8Length(payload) + 1; // + the space after the length
  // Adding the length's own digits can add a digit (e.g. 98 + 2 = 100): iterate to the fixed point.
  let length = base + 1;
  while (length !== base + String(length).length) length = base + String(length).length;
  return `${length} ${payload}`;
}

function utf8Length(text: string): number {
  return /[\u0080-\uffff]/.test(text) ? encoder.encode(text).length : text.length;
}

/**
 * Header blocks for one entry: optional PAX extended header ('x') blocks + the
 * ustar header block. Length is a multiple of 512. Written into one new
 * buffer, or, when they fit, into the start of `reuse`: an archive of many
 * small files then allocates nothing per entry.
 *
 * Throws RangeError for fields no valid entry can have (a programming error,
 * not bad user data).
 */
export function encodeTarHeader(fields: TarHeaderFields, reuse?: Uint8Array): Uint8Array {
  const { path, type, size } = fields;
  if (typeof path !== "string" || path === "" || path.includes("\0") || path.endsWith("/")) {
    throw new RangeError(`tar: invalid entry path ${JSON.stringify(path)}`);
  }
  if (type !== "file" && type !== "dir" && type !== "symlink") {
    throw new RangeError(`tar: invalid entry type ${JSON.stringify(type)}`);
  }
  if (!Number.isSafeInteger(size) || size < 0 || (type !== "file" && size !== 0)) {
    throw new RangeError(`tar: invalid size ${size} for ${type} ${JSON.stringify(path)}`);
  }
  const linkname = fields.linkname ?? "";
  if (type === "symlink" ? linkname === "" || linkname.includes("\0") : linkname !== "") {
    throw new RangeError(`tar: invalid linkname for ${type} ${JSON.stringify(path)}`);
  }
  if (!Number.isFinite(fields.mtimeMs) || !Number.isFinite(fields.mode)) {
    throw new RangeError(`tar: invalid mtime or mode for ${JSON.stringify(path)}`);
  }
  const mode = fields.mode & 0o7777;
  const mtime = splitMtime(fields.mtimeMs);

  const name = type === "dir" ? `${path}/` : path;
  let pax = "";
  if (!fitsUstarField(name)) pax += paxRecord("path", name);
  if (!fitsUstarField(linkname)) pax += paxRecord("linkpath", linkname);
  if (size >= OCTAL_11_LIMIT) pax += paxRecord("size", String(size));
  if (mtime.fraction !== "" || mtime.negative || mtime.seconds >= OCTAL_11_LIMIT) {
    const sign = mtime.negative ? "-" : "";
    const value = mtime.fraction === ""
      ? `${sign}${mtime.seconds}`
      : `${sign}${mtime.seconds}.${mtime.fraction}`;
    pax += paxRecord("mtime", value);
  }
  // ustar's octal field holds no time before 1970: 0 there, the real one in PAX.
  const ustarSeconds = mtime.negative ? 0 : Math.min(mtime.seconds, OCTAL_11_LIMIT - 1);
  const main: UstarFields = {
    name: asciiFallback(name, type === "dir"),
    mode,
    size: size < OCTAL_11_LIMIT ? size : 0,
    mtimeSeconds: ustarSeconds,
    typeflag: type === "file" ? "0" : type === "dir" ? "5" : "2",
    linkname: asciiFallback(linkname, false),
  };
  if (pax === "") {
    const block = reuse !== undefined && reuse.length >= TAR_BLOCK
      ? reuse.subarray(0, TAR_BLOCK)
      : new Uint8Array(TAR_BLOCK);
    writeUstarBlock(block, 0, main);
    return block;
  }

  const paxLength = utf8Length(pax);
  if (paxLength > MAX_EXTENDED_HEADER_SIZE) {
    throw new RangeError(`tar: PAX header for ${JSON.stringify(path)} exceeds 1 MiB`);
  }
  const length = TAR_BLOCK + paxLength + tarPadding(paxLength) + TAR_BLOCK;
  const out = reuse !== undefined && reuse.length >= length
    ? reuse.subarray(0, length).fill(0, TAR_BLOCK)
    : new Uint8Array(length);
  writeUstarBlock(out, 0, {
    name: PAX_HEADER_DIR +
      asciiFallback(baseName(path), false).slice(0, NAME_FIELD - PAX_HEADER_DIR.length),
    mode: 0o644,
    size: paxLength,
    mtimeSeconds: ustarSeconds,
    typeflag: "x",
    linkname: "",
  });
  encoder.encodeInto(pax, out.subarray(TAR_BLOCK, TAR_BLOCK + paxLength));
  writeUstarBlock(out, out.length - TAR_BLOCK, main);
  return out;
}

/**
 * Rewrites the size (and checksum) of the ustar block that ends a header from
 * encodeTarHeader, for a file found shorter than its header said. Sizes from
 * 8 GiB are in the PAX blocks and cannot be rewritten here.
 */
export function setUstarSize(block: Uint8Array, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0 || size >= OCTAL_11_LIMIT) {
    throw new RangeError(`tar: cannot rewrite size ${size}`);
  }
  writeOctal(block, 124, 12, size);
  writeChecksum(block);
}

/**
 * The time's sign, whole seconds and sub-second part (up to 9 decimal digits)
 * of its distance from the epoch: -1.5 s is `negative`, 1, "5", as PAX writes it.
 */
function splitMtime(mtimeMs: number): { negative: boolean; seconds: number; fraction: string } {
  const negative = mtimeMs < 0;
  const distance = Math.abs(mtimeMs);
  let seconds = Math.floor(distance / 1000);
  let nanos = Math.round((distance - seconds * 1000) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  const fraction = nanos === 0 ? "" : String(nanos).padStart(9, "0").replace(/0+$/, "");
  return { negative, seconds, fraction };
}

/** True when `value` can go into a 100-byte ustar field as is (printable ASCII that fits). */
function fitsUstarField(value: string): boolean {
  return value.length <= NAME_FIELD && /^[\x20-\x7e]*$/.test(value);
}

/** What old (non-PAX) readers see: printable ASCII, at most 100 bytes, dirs keep their "/". */
function asciiFallback(value: string, keepTrailingSlash: boolean): string {
  if (fitsUstarField(value)) return value;
  let ascii = "";
  for (const char of value) ascii += /^[\x20-\x7e]$/.test(char) ? char : "_";
  if (ascii.length <= NAME_FIELD) return ascii;
  return keepTrailingSlash ? `${ascii.slice(0, NAME_FIELD - 1)}/` : ascii.slice(0, NAME_FIELD);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1) || "_";
}

interface UstarFields {
  name: string; // printable ASCII, ≤ 100 bytes
  mode: number;
  size: number;
  mtimeSeconds: number;
  typeflag: string;
  linkname: string; // printable ASCII, ≤ 100 bytes
}

/** What every ustar block of ours holds whatever the entry: uid, gid, magic, devices. */
const USTAR_TEMPLATE: Uint8Array = (() => {
  const block = new Uint8Array(TAR_BLOCK);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeAscii(block, 257, "ustar\x0000");
  // uname/gname stay empty (all NUL).
  writeOctal(block, 329, 8, 0); // devmajor
  writeOctal(block, 337, 8, 0); // devminor
  return block;
})();

/** Writes one ustar header block at `at` (whatever the bytes there were). */
function writeUstarBlock(out: Uint8Array, at: number, fields: UstarFields): void {
  const block = out.subarray(at, at + TAR_BLOCK);
  block.set(USTAR_TEMPLATE);
  writeAscii(block, 0, fields.name);
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtimeSeconds);
  writeAscii(block, 156, fields.typeflag);
  writeAscii(block, 157, fields.linkname);
  writeChecksum(block);
}

function writeChecksum(block: Uint8Array): void {
  // Computed with its own field as 8 spaces; written "%06o\0 " like GNU tar.
  block.fill(0x20, 148, 156);
  writeOctal(block, 148, 7, unsignedSum(block));
  block[155] = 0x20;
}

function writeAscii(block: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) block[at + i] = text.charCodeAt(i);
}

/** Zero-padded octal filling `width - 1` digits, then NUL (digits written without a string). */
function writeOctal(block: Uint8Array, at: number, width: number, value: number): void {
  const end = at + width - 1;
  block[end] = 0;
  for (let i = end - 1; i >= at; i--) {
    block[i] = 0x30 + (value % 8);
    value = Math.floor(value / 8);
  }
}

function unsignedSum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += block[i];
  return sum;
}

// ───────────────────────────── parser ─────────────────────────────

/** Streams entries out of a tar byte stream with bounded memory. */
export async function* parseTar(
  input: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
  options: ParseTarOptions = {},
): AsyncGenerator<TarEntry> {
  const startOffset = options.startOffset ?? 0;
  if (!Number.isSafeInteger(startOffset) || startOffset < 0) {
    throw new RangeError(`parseTar: invalid startOffset ${startOffset}`);
  }
  const reader = new ByteReader(input);
  try {
    while (true) {
      const entryOffset = startOffset + reader.position;
      const found = readEntryHeaders(reader, startOffset);
      const header = found instanceof Promise ? await found : found;
      if (header === "end") {
        await expectOnlyZeros(reader, startOffset);
        return;
      }
      if (header === "eof") {
        if (options.allowMissingEnd) return;
        throw integrityError(
          `tar archive is truncated: input ends at offset ${entryOffset} without the end-of-archive marker`,
        );
      }
      const body = new EntryBody(reader, header.size, header.path, startOffset);
      yield { ...header, offset: entryOffset, body };
      body.detach();
      const rest = body.remaining + tarPadding(header.size);
      if (reader.skipNow(rest)) continue;
      await reader.skipExactly(rest, () =>
        integrityError(
          `tar archive is truncated: data of ${JSON.stringify(header.path)} ` +
            `(header at offset ${entryOffset}) ends early at offset ${
              startOffset + reader.position
            }`,
        ));
    }
  } finally {
    await reader.close();
  }
}

type ParsedHeader = Omit<TarEntry, "offset" | "body">;

/** Metadata collected from PAX 'x' and GNU 'L'/'K' headers for the entry that follows them. */
interface Overrides {
  path?: string;
  linkname?: string;
  size?: number;
  mtimeMs?: number;
  sparse?: boolean;
}

type HeaderResult = ParsedHeader | "eof" | "end";

/**
 * Reads the header blocks of one entry (extended headers included).
 * Returns "eof" for end of input at this boundary, "end" at a zero block.
 * Synchronous while the blocks lie in the chunk at hand (nearly always):
 * an `await` per block was most of the parser's time on small files.
 */
function readEntryHeaders(
  reader: ByteReader,
  startOffset: number,
): HeaderResult | Promise<HeaderResult> {
  const steps = headerSteps(startOffset + reader.position);
  let step = steps.next();
  while (!step.done) {
    const bytes = reader.readNow(step.value);
    if (bytes === undefined) return readEntryHeadersAsync(reader, steps, step.value);
    step = steps.next(bytes);
  }
  return step.value;
}

/** Goes on with `steps` across chunk boundaries, from a read of `wanted` bytes. */
async function readEntryHeadersAsync(
  reader: ByteReader,
  steps: HeaderSteps,
  wanted: number,
): Promise<HeaderResult> {
  let step = steps.next(await reader.read(wanted));
  while (!step.done) step = steps.next(reader.readNow(step.value) ?? await reader.read(step.value));
  return step.value;
}

/**
 * The header rules, as steps: each yield asks for the next `n` bytes and
 * receives them (fewer only where the input ends).
 */
type HeaderSteps = Generator<number, HeaderResult, Uint8Array>;

function* headerSteps(entryOffset: number): HeaderSteps {
  const overrides: Overrides = {};
  let sawExtended = false;
  let blockOffset = entryOffset;
  while (true) {
    const block = yield TAR_BLOCK;
    if (block.length === 0 && !sawExtended) return "eof";
    if (block.length < TAR_BLOCK) {
      throw integrityError(
        `tar archive is truncated: header at offset ${blockOffset} is incomplete`,
      );
    }
    if (isZero(block)) {
      if (!sawExtended) return "end";
      throw integrityError(
        `tar archive is malformed: extended header before offset ${blockOffset} is not followed by an entry`,
      );
    }
    const header = decodeHeaderBlock(block, blockOffset);
    const typeflag = header.typeflag;
    if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
      sawExtended = true;
      if (header.size > MAX_EXTENDED_HEADER_SIZE) {
        throw integrityError(
          `tar archive is malformed: extended header '${typeflag}' at offset ${blockOffset} ` +
            `claims ${header.size} bytes (limit ${MAX_EXTENDED_HEADER_SIZE})`,
        );
      }
      // The data and its padding in one read.
      const padded = header.size + tarPadding(header.size);
      const bytes = yield padded;
      if (bytes.length < padded) {
        throw integrityError(
          `tar archive is truncated: extended header at offset ${blockOffset} ends early`,
        );
      }
      const data = bytes.subarray(0, header.size);
      if (typeflag === "x") applyPaxRecords(data, overrides, blockOffset);
      else if (typeflag === "L") overrides.path = decodeGnuLongName(data, blockOffset);
      else if (typeflag === "K") overrides.linkname = decodeGnuLongName(data, blockOffset);
      // 'g' (global) headers set defaults we do not use: ignored.
      blockOffset += TAR_BLOCK + padded;
      continue;
    }

    // Name fields are decoded only when used: writers truncate the ustar copy of
    // a long name (possibly inside a UTF-8 sequence) when an extended header holds it.
    const where = `tar header at offset ${blockOffset}`;
    const rawPath = overrides.path ?? decodeUtf8(header.pathBytes, where);
    const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, "") || "/" : rawPath;
    const linkname = overrides.linkname ?? decodeUtf8(header.linknameBytes, where);
    if (path === "" || path.includes("\0") || linkname.includes("\0")) {
      throw integrityError(`tar archive is malformed: ${where} has an empty or invalid name`);
    }
    let type = tarEntryType(typeflag);
    // PAX-format sparse files store a sparse map, not the plain content: not a plain file.
    if (overrides.sparse && type === "file") type = "other";
    return {
      path,
      type,
      typeflag,
      size: overrides.size ?? header.size,
      mode: header.mode,
      mtimeMs: overrides.mtimeMs ?? header.mtimeMs,
      linkname,
    };
  }
}

/** The entry type a typeflag stands for ("0"/NUL file, "5" dir, "2" symlink, "1" hard link). */
export function tarEntryType(typeflag: string): TarEntryType {
  switch (typeflag) {
    case "0":
    case "\0":
      return "file";
    case "5":
      return "dir";
    case "2":
      return "symlink";
    case "1":
      return "hardlink";
    default:
      return "other";
  }
}

interface HeaderBlock {
  /** Raw UTF-8 name (ustar prefix + "/" + name when present). */
  pathBytes: Uint8Array;
  typeflag: string;
  size: number;
  mode: number;
  mtimeMs: number;
  linknameBytes: Uint8Array;
}

function decodeHeaderBlock(block: Uint8Array, offset: number): HeaderBlock {
  const where = `tar header at offset ${offset}`;
  const stored = readOctalField(block, 148, 8, where, "checksum");
  // The sum counts the checksum field as 8 spaces.
  let unsigned = 8 * 0x20;
  for (let i = 0; i < 148; i++) unsigned += block[i];
  for (let i = 156; i < TAR_BLOCK; i++) unsigned += block[i];
  // GNU tar accepts both sums: some old writers summed signed chars.
  if (stored !== unsigned && stored !== signedSum(block)) {
    throw integrityError(`${where} has a bad checksum (stored ${stored}, computed ${unsigned})`);
  }
  // "ustar\0" (POSIX), or "ustar  \0" (GNU: magic "ustar ", version " \0").
  const ustar = block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 &&
    block[260] === 0x61 && block[261] === 0x72;
  const isPosix = ustar && block[262] === 0;
  const isGnu = ustar && block[262] === 0x20 && block[263] === 0x20 && block[264] === 0;
  if (!isPosix && !isGnu) {
    throw integrityError(`${where} is not a ustar header (bad magic)`);
  }
  let pathBytes = nulTerminated(block, 0, 100);
  // The prefix field exists only in POSIX ustar; GNU format keeps other data there.
  if (isPosix && block[345] !== 0) {
    const prefix = nulTerminated(block, 345, 155);
    pathBytes = concatBytes(prefix, Uint8Array.of(0x2f), pathBytes);
  }
  const size = readNumberField(block, 124, 12, where, "size");
  if (size < 0) throw integrityError(`${where} has a negative size`);
  return {
    pathBytes,
    typeflag: String.fromCharCode(block[156]),
    size,
    mode: readNumberField(block, 100, 8, where, "mode") & 0o7777,
    mtimeMs: readNumberField(block, 136, 12, where, "mtime") * 1000,
    linknameBytes: nulTerminated(block, 157, 100),
  };
}

/** The bytes of a NUL-terminated (or field-filling) string field. */
function nulTerminated(block: Uint8Array, at: number, width: number): Uint8Array {
  const field = block.subarray(at, at + width);
  const end = field.indexOf(0);
  return end === -1 ? field : field.subarray(0, end);
}

function decodeUtf8(bytes: Uint8Array, where: string): string {
  // Most names are short ASCII: decoded here, without a call into the runtime.
  if (bytes.length <= 256 && isAscii(bytes)) {
    // apply() on the bytes themselves: a spread would copy them into an array first.
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  try {
    return utf8.decode(bytes);
  } catch (cause) {
    throw integrityError(`${where}: a name is not valid UTF-8`, { cause });
  }
}

/** Octal (leading spaces, NUL/space terminated) or GNU base-256 (high bit set) number. */
function readNumberField(
  block: Uint8Array,
  at: number,
  width: number,
  where: string,
  name: string,
): number {
  if ((block[at] & 0x80) === 0) return readOctalField(block, at, width, where, name);
  const negative = (block[at] & 0x40) !== 0;
  // Two's complement: for negatives sum the inverted bits, then value = -(sum + 1).
  const flip = negative ? 0xff : 0;
  let value = (block[at] ^ flip) & 0x7f;
  for (let i = 1; i < width; i++) {
    value = value * 256 + ((block[at + i] ^ flip) & 0xff);
    if (value > Number.MAX_SAFE_INTEGER) {
      throw integrityError(`${where}: ${name} field is out of range`);
    }
  }
  return negative ? -(value + 1) : value;
}

function readOctalField(
  block: Uint8Array,
  at: number,
  width: number,
  where: string,
  name: string,
): number {
  const end = at + width;
  let i = at;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  for (; i < end && block[i] >= 0x30 && block[i] <= 0x37; i++) value = value * 8 + block[i] - 0x30;
  for (; i < end; i++) {
    if (block[i] !== 0 && block[i] !== 0x20) {
      throw integrityError(`${where}: ${name} field is not an octal number`);
    }
  }
  return value; // at most 12 octal digits: always a safe integer
}

/** The header checksum as writers that summed signed chars computed it. */
function signedSum(block: Uint8Array): number {
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i];
    signed += byte >= 0x80 ? byte - 0x100 : byte;
  }
  return signed;
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return false;
  return true;
}

function isZero(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** GNU 'L'/'K' body: the name, NUL-terminated. */
function decodeGnuLongName(data: Uint8Array, offset: number): string {
  const end = data.indexOf(0);
  return decodeUtf8(end === -1 ? data : data.subarray(0, end), `GNU long name at offset ${offset}`);
}

/** Parses `"<len> <key>=<value>\n"` records into `overrides`; an empty value cancels a key. */
function applyPaxRecords(data: Uint8Array, overrides: Overrides, offset: number): void {
  const where = `PAX header at offset ${offset}`;
  const bad = (why: string) => integrityError(`tar archive is malformed: ${where}: ${why}`);
  let at = 0;
  while (at < data.length) {
    // Some writers pad the records with NULs.
    if (data[at] === 0 && isZero(data.subarray(at))) break;
    let length = 0;
    let i = at;
    for (; i < data.length && data[i] >= 0x30 && data[i] <= 0x39 && i - at < 8; i++) {
      length = length * 10 + data[i] - 0x30;
    }
    if (i === at || data[i] !== 0x20) throw bad("record length is not a decimal number");
    const recordEnd = at + length;
    if (recordEnd > data.length || recordEnd <= i + 1) throw bad("record length is out of range");
    if (data[recordEnd - 1] !== 0x0a) throw bad("record does not end with a newline");
    const record = data.subarray(i + 1, recordEnd - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) throw bad("record has no key");
    const key = decodeUtf8(record.subarray(0, equals), where);
    const value = decodeUtf8(record.subarray(equals + 1), where);
    applyPaxKey(key, value, overrides, bad);
    at = recordEnd;
  }
}

function applyPaxKey(
  key: string,
  value: string,
  overrides: Overrides,
  bad: (why: string) => Error,
): void {
  switch (key) {
    case "path":
      overrides.path = value === "" ? undefined : value;
      break;
    case "linkpath":
      overrides.linkname = value === "" ? undefined : value;
      break;
    case "size":
      if (value === "") overrides.size = undefined;
      else if (/^[0-9]{1,16}$/.test(value) && Number.isSafeInteger(Number(value))) {
        overrides.size = Number(value);
      } else throw bad(`invalid size ${JSON.stringify(value)}`);
      break;
    case "mtime":
      overrides.mtimeMs = value === "" ? undefined : parsePaxTime(value, bad);
      break;
    default:
      if (key.startsWith("GNU.sparse.")) overrides.sparse = true;
  }
}

/** "[-]seconds[.fraction]" → milliseconds, the fraction truncated to whole milliseconds (floor). */
function parsePaxTime(value: string, bad: (why: string) => Error): number {
  const match = /^(-?)([0-9]{1,15})(?:\.([0-9]+))?$/.exec(value);
  if (!match) throw bad(`invalid mtime ${JSON.stringify(value)}`);
  const fraction = match[3] ?? "";
  const magnitude = Number(match[2]) * 1000 + Number(fraction.slice(0, 3).padEnd(3, "0"));
  if (!Number.isSafeInteger(magnitude)) throw bad(`mtime ${JSON.stringify(value)} is out of range`);
  if (match[1] !== "-") return magnitude;
  return -magnitude - (/[1-9]/.test(fraction.slice(3)) ? 1 : 0) || 0;
}

/** After a zero block the archive is over; what follows (GNU tar pads records) must be zeros. */
async function expectOnlyZeros(reader: ByteReader, startOffset: number): Promise<void> {
  while (true) {
    const at = startOffset + reader.position;
    const chunk = await reader.readSome(Number.MAX_SAFE_INTEGER);
    if (chunk === null) return;
    if (!isZero(chunk)) {
      throw integrityError(
        `tar archive is malformed: data follows the end-of-archive marker (near offset ${at})`,
      );
    }
  }
}

/** The streamed data of one entry; valid only until the parser moves on. */
class EntryBody implements TarBody {
  remaining: number;
  #reader: ByteReader;
  #path: string;
  #startOffset: number;
  #started = false;
  #detached = false;

  constructor(reader: ByteReader, size: number, path: string, startOffset: number) {
    this.#reader = reader;
    this.remaining = size;
    this.#path = path;
    this.#startOffset = startOffset;
  }

  /** The whole body, if the parser holds all of it and it was not read yet (no copy). */
  takeBuffered(): Uint8Array | undefined {
    if (this.#started || this.#detached) return undefined;
    const whole = this.#reader.readNow(this.remaining);
    if (whole === undefined) return undefined;
    this.#started = true;
    this.remaining = 0;
    return whole;
  }

  /** Called when the parser resumes: the bytes left are skipped, not readable any more. */
  detach(): void {
    this.#detached = true;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.#started) throw new Error(`tar: body of ${this.#path} can be read only once`);
    this.#started = true;
    while (this.remaining > 0) {
      if (this.#detached) {
        throw new Error(`tar: body of ${this.#path} read after the parser moved to the next entry`);
      }
      const chunk = await this.#reader.readSome(this.remaining);
      if (chunk === null) {
        throw integrityError(
          `tar archive is truncated: data of ${JSON.stringify(this.#path)} ends early ` +
            `at offset ${this.#startOffset + this.#reader.position}`,
        );
      }
      this.remaining -= chunk.length;
      yield chunk;
    }
  }
}

/**
 * Pulls bytes out of a chunked stream. Hands out subarrays of the input chunks
 * when it can; copies only for small reads (headers) that straddle chunks.
 */
class ByteReader {
  /** Bytes consumed so far. */
  position = 0;
  #iterator: AsyncIterator<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #at = 0;
  #done = false;
  #busy = false;

  constructor(input: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>) {
    const open = (input as Partial<AsyncIterable<Uint8Array>>)[Symbol.asyncIterator];
    if (typeof open !== "function") {
      throw new TypeError("parseTar: input must be an AsyncIterable or a ReadableStream");
    }
    this.#iterator = open.call(input);
  }

  /** Up to `max` bytes of the current chunk (no copy); null at end of input. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (!await this.#fill()) return null;
    const take = Math.min(max, this.#chunk.length - this.#at);
    const out = this.#chunk.subarray(this.#at, this.#at + take);
    this.#at += take;
    this.position += take;
    return out;
  }

  /** The next `n` bytes if the current chunk holds them all (no copy, no wait); else undefined. */
  readNow(n: number): Uint8Array | undefined {
    const at = this.#at;
    return this.skipNow(n) ? this.#chunk.subarray(at, at + n) : undefined;
  }

  /** Skips `n` bytes if the current chunk holds them all; false (nothing skipped) otherwise. */
  skipNow(n: number): boolean {
    if (this.#chunk.length - this.#at < n) return false;
    this.#at += n;
    this.position += n;
    return true;
  }

  /** Exactly `n` bytes, or fewer only at end of input. */
  async read(n: number): Promise<Uint8Array> {
    const first = await this.readSome(n);
    if (first === null || first.length === n) return first ?? new Uint8Array(0);
    const out = new Uint8Array(n);
    out.set(first);
    let filled = first.length;
    while (filled < n) {
      const part = await this.readSome(n - filled);
      if (part === null) return out.subarray(0, filled);
      out.set(part, filled);
      filled += part.length;
    }
    return out;
  }

  /** Skips up to `n` bytes without keeping them; returns how many were skipped. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      const part = await this.readSome(n - skipped);
      if (part === null) break;
      skipped += part.length;
    }
    return skipped;
  }

  async skipExactly(n: number, onTruncated: () => Error): Promise<void> {
    if (await this.skip(n) < n) throw onTruncated();
  }

  /** Stops the input early (cancels a ReadableStream) if it was not read to the end. */
  async close(): Promise<void> {
    if (!this.#done) {
      this.#done = true;
      await this.#iterator.return?.();
    }
  }

  async #fill(): Promise<boolean> {
    while (this.#at >= this.#chunk.length) {
      if (this.#done) return false;
      if (this.#busy) throw new Error("tar: concurrent reads of one tar stream");
      this.#busy = true;
      let next: IteratorResult<Uint8Array>;
      try {
        next = await this.#iterator.next();
      } finally {
        this.#busy = false;
      }
      if (next.done) {
        this.#done = true;
        return false;
      }
      if (!(next.value instanceof Uint8Array)) {
        throw new TypeError("parseTar: input chunks must be Uint8Array");
      }
      this.#chunk = next.value;
      this.#at = 0;
    }
    return true;
  }
}
