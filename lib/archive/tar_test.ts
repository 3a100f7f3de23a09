import assert from "node:assert/strict";
import { concatBytes } from "../crypto/bytes.ts";
import { IntellistorError } from "../errors.ts";
import {
  encodePaxRecord,
  encodeTarHeader,
  MAX_EXTENDED_HEADER_SIZE,
  parseTar,
  type ParseTarOptions,
  TAR_BLOCK,
  TAR_END,
  type TarEntry,
  type TarHeaderFields,
  tarPadding,
} from "./tar.ts";

// ───────────────────────────── helpers ─────────────────────────────

const encoder = new TextEncoder();
const MiB = 1024 * 1024;

interface SourceEntry {
  fields: TarHeaderFields;
  data?: Uint8Array;
}

interface ParsedEntry extends Omit<TarEntry, "body"> {
  data: Uint8Array;
}

/** Deterministic pseudo-random bytes (xorshift32), so failures are reproducible. */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Writes entries the way the backup pipeline does; returns the bytes and each entry's offset. */
function buildArchive(
  entries: SourceEntry[],
  { end = true } = {},
): { bytes: Uint8Array; offsets: number[] } {
  const parts: Uint8Array[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const { fields, data = new Uint8Array(0) } of entries) {
    offsets.push(at);
    const header = encodeTarHeader(fields);
    parts.push(header, data, new Uint8Array(tarPadding(data.length)));
    at += header.length + data.length + tarPadding(data.length);
  }
  if (end) parts.push(TAR_END);
  return { bytes: concatBytes(...parts), offsets };
}

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function readBody(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of body) parts.push(part);
  return concatBytes(...parts);
}

async function parseAll(
  input: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
  options?: ParseTarOptions,
): Promise<ParsedEntry[]> {
  const out: ParsedEntry[] = [];
  for await (const { body, ...entry } of parseTar(input, options)) {
    out.push({ ...entry, data: await readBody(body) });
  }
  return out;
}

async function assertIntegrityError(
  run: () => Promise<unknown>,
  messagePattern: RegExp,
): Promise<void> {
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof IntellistorError, `expected IntellistorError, got ${error}`);
    assert.equal(error.code, "INTEGRITY");
    assert.match(error.message, messagePattern);
    return true;
  });
}

/** A ustar header block built by hand, for inputs our writer never produces. */
function rawHeader(
  options: { name: string; typeflag: string; size?: number; magic?: string },
): Uint8Array {
  const block = encodeTarHeader({
    path: "placeholder",
    type: "file",
    size: 0,
    mode: 0o644,
    mtimeMs: 0,
  });
  block.fill(0, 0, 100);
  block.set(encoder.encode(options.name).subarray(0, 100), 0);
  block[156] = options.typeflag.charCodeAt(0);
  if (options.size !== undefined) {
    block.set(encoder.encode(options.size.toString(8).padStart(11, "0") + "\0"), 124);
  }
  if (options.magic !== undefined) block.set(encoder.encode(options.magic), 257);
  return fixChecksum(block);
}

function fixChecksum(block: Uint8Array): Uint8Array {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.set(encoder.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return block;
}

function expectedOf(fields: TarHeaderFields, offset: number, data: Uint8Array) {
  return {
    path: fields.path,
    type: fields.type,
    typeflag: fields.type === "file" ? "0" : fields.type === "dir" ? "5" : "2",
    size: fields.size,
    mode: fields.mode & 0o7777,
    mtimeMs: Math.floor(fields.mtimeMs),
    linkname: fields.linkname ?? "",
    offset,
    data,
  };
}

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tar_test_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function gnuTar(args: string[], cwd: string): Promise<string> {
  const output = await new Deno.Command("tar", {
    args,
    cwd,
    env: { LC_ALL: "C.UTF-8", TZ: "UTC" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  // GNU tar remarks on any time before 1970, which it still sets (checked by the callers).
  const stderr = new TextDecoder().decode(output.stderr)
    .split("\n").filter((line) => !line.includes("implausibly old time stamp")).join("\n");
  assert.ok(output.success, `tar ${args.join(" ")} failed: ${stderr}`);
  assert.equal(stderr, "", `tar ${args.join(" ")} warned: ${stderr}`);
  return new TextDecoder().decode(output.stdout);
}

/** `ls -l` style permission string, as `tar -tv` prints it. */
function modeString(type: "file" | "dir" | "symlink", mode: number): string {
  const kind = type === "dir" ? "d" : type === "symlink" ? "l" : "-";
  let bits = "";
  for (let shift = 6; shift >= 0; shift -= 3) {
    const triple = (mode >> shift) & 7;
    bits += (triple & 4 ? "r" : "-") + (triple & 2 ? "w" : "-") + (triple & 1 ? "x" : "-");
  }
  return kind + bits;
}

const UNICODE_NAME = "Cópia de Diagrama_Solução.png";
const LONG_DIR = Array.from({ length: 6 }, (_, i) => `nível-${i}-${"x".repeat(45)}`).join("/");
const LONG_TARGET = `../${"alvo-ção/".repeat(30)}destino final.txt`;

/** Every kind of entry the writer supports, with names and values around the format's limits. */
function sampleEntries(): SourceEntry[] {
  const file = (path: string, data: Uint8Array, mode = 0o644, mtimeMs = 1_700_000_000_000) => ({
    fields: { path, type: "file" as const, size: data.length, mode, mtimeMs },
    data,
  });
  const dir = (path: string, mode = 0o755, mtimeMs = 1_600_000_000_000) => ({
    fields: { path, type: "dir" as const, size: 0, mode, mtimeMs },
  });
  const symlink = (path: string, linkname: string) => ({
    fields: {
      path,
      type: "symlink" as const,
      size: 0,
      mode: 0o777,
      mtimeMs: 1_650_000_000_000,
      linkname,
    },
  });
  return [
    dir("docs"),
    dir("docs/empty dir", 0o700),
    file(`docs/${UNICODE_NAME}`, pseudoRandomBytes(70_000, 1), 0o640, 1_700_000_000_123),
    file("docs/empty.txt", new Uint8Array(0), 0o600),
    file("docs/one block.bin", pseudoRandomBytes(512, 2)),
    file("docs/one block plus one.bin", pseudoRandomBytes(513, 3), 0o755),
    file("docs/one byte", Uint8Array.of(0x2a), 0o644, 999),
    symlink("docs/short link", UNICODE_NAME),
    symlink("docs/long link", LONG_TARGET),
    symlink("docs/link of 100", "t".repeat(100)),
    file("docs/before epoch", encoder.encode("a time before 1970 goes in PAX"), 0o644, -5_000),
    file("docs/sub-ms mtime", encoder.encode("x"), 0o644, 1_700_000_000_123.75),
    // GNU tar sets a directory's mtime once it leaves it: keep each dir's entries together.
    dir(LONG_DIR),
    file(`${LONG_DIR}/ficheiro com nome longo.txt`, encoder.encode("long path\n")),
    file("a".repeat(100), encoder.encode("exactly 100 bytes of name")),
    file("b".repeat(101), encoder.encode("101 bytes of name")),
    dir("d".repeat(99)),
    dir("e".repeat(100)),
  ];
}

// ───────────────────────────── writer ─────────────────────────────

Deno.test("encodeTarHeader() writes one ustar block with a valid checksum for a short ASCII entry", () => {
  const header = encodeTarHeader({
    path: "dir/file.txt",
    type: "file",
    size: 1234,
    mode: 0o640,
    mtimeMs: 1_700_000_000_000,
  });
  assert.equal(header.length, TAR_BLOCK);
  const text = (from: number, to: number) => new TextDecoder().decode(header.subarray(from, to));
  assert.equal(text(0, 13), "dir/file.txt\0");
  assert.equal(text(100, 108), "0000640\0");
  assert.equal(text(108, 124), "0000000\x000000000\0");
  assert.equal(text(124, 136), `${(1234).toString(8).padStart(11, "0")}\0`);
  assert.equal(text(136, 148), `${(1_700_000_000).toString(8).padStart(11, "0")}\0`);
  assert.equal(text(156, 157), "0");
  assert.equal(text(257, 265), "ustar\x0000");
  assert.ok(header.subarray(265, 329).every((b) => b === 0), "uname/gname are empty");
  let sum = 0;
  header.forEach((b, i) => sum += i >= 148 && i < 156 ? 0x20 : b);
  assert.equal(Number.parseInt(text(148, 154), 8), sum);
});

Deno.test("encodeTarHeader() uses PAX, never the ustar prefix, for paths over 100 bytes", () => {
  const fits = encodeTarHeader({
    path: "p".repeat(100),
    type: "file",
    size: 0,
    mode: 0o644,
    mtimeMs: 0,
  });
  assert.equal(fits.length, TAR_BLOCK);
  const long = encodeTarHeader({
    path: "q".repeat(101),
    type: "file",
    size: 0,
    mode: 0o644,
    mtimeMs: 0,
  });
  assert.ok(long.length > TAR_BLOCK && long.length % TAR_BLOCK === 0);
  assert.equal(String.fromCharCode(long[156]), "x");
  const main = long.subarray(long.length - TAR_BLOCK);
  assert.ok(main.subarray(345, 500).every((b) => b === 0), "prefix field is unused");
  assert.equal(String.fromCharCode(main[156]), "0");
});

Deno.test("encodeTarHeader() into a used buffer writes the same bytes as into a new one", () => {
  const cases: TarHeaderFields[] = [
    { path: "a.txt", type: "file", size: 5, mode: 0o644, mtimeMs: 1_700_000_000_000 },
    { path: "sub-second.txt", type: "file", size: 1, mode: 0o600, mtimeMs: 1_700_000_000_123.456 },
    { path: `${"long/".repeat(30)}name`, type: "dir", size: 0, mode: 0o755, mtimeMs: 0 },
    {
      path: "link",
      type: "symlink",
      size: 0,
      mode: 0o777,
      mtimeMs: 1,
      linkname: "ção/".repeat(40),
    },
  ];
  const used = new Uint8Array(4096).fill(0xa5);
  for (const fields of cases) {
    const fresh = encodeTarHeader(fields);
    const reused = encodeTarHeader(fields, used);
    assert.equal(reused.buffer, used.buffer, fields.path);
    assert.deepEqual(reused, fresh, fields.path);
    used.fill(0xa5);
  }
  // Too small to hold the PAX blocks: a new buffer, the small one untouched.
  const small = new Uint8Array(512).fill(7);
  const header = encodeTarHeader(cases[1], small);
  assert.notEqual(header.buffer, small.buffer);
  assert.deepEqual(header, encodeTarHeader(cases[1]));
  assert.ok(small.every((b) => b === 7));
});

Deno.test("encodeTarHeader() rejects fields no entry can have", () => {
  const base = { type: "file" as const, size: 0, mode: 0o644, mtimeMs: 0 };
  assert.throws(() => encodeTarHeader({ ...base, path: "" }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "dir/" }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "a\0b" }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "f", size: -1 }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "f", size: 1.5 }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "d", type: "dir", size: 1 }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "l", type: "symlink" }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "f", linkname: "x" }), RangeError);
  assert.throws(() => encodeTarHeader({ ...base, path: "f", mtimeMs: NaN }), RangeError);
});

Deno.test("tarPadding() pads data to the next 512-byte boundary", () => {
  for (const size of [0, 1, 511, 512, 513, 1024, 8 ** 11 + 3]) {
    const padding = tarPadding(size);
    assert.ok(padding >= 0 && padding < TAR_BLOCK);
    assert.equal((size + padding) % TAR_BLOCK, 0);
  }
  assert.equal(TAR_END.length, 2 * TAR_BLOCK);
  assert.ok(TAR_END.every((b) => b === 0));
});

Deno.test("encodePaxRecord() length counts its own digits, smallest consistent value, around 9/10/99/100/999/1000", () => {
  const seen = new Set<number>();
  for (const key of ["a", "path"]) {
    for (let valueLength = 0; valueLength <= 1100; valueLength++) {
      const value = "v".repeat(valueLength);
      const record = encodePaxRecord(key, value);
      const text = new TextDecoder().decode(record);
      const [digits] = text.split(" ", 1);
      assert.equal(Number(digits), record.length, `record ${JSON.stringify(text.slice(0, 20))}`);
      assert.equal(text, `${digits} ${key}=${value}\n`);
      // No shorter length would also be self-consistent (the canonical choice).
      const payload = record.length - digits.length;
      for (let shorter = 1; shorter < record.length; shorter++) {
        assert.notEqual(payload + String(shorter).length, shorter);
      }
      seen.add(record.length);
    }
  }
  for (const length of [9, 10, 11, 99, 100, 101, 999, 1000, 1001]) {
    // 10, 100 and 1000 never occur: 8 + "10" is also consistent but 8 + "9" is shorter,
    // and 9 + "10" is not consistent (its length is 11).
    const reachable = length !== 10 && length !== 100 && length !== 1000;
    assert.equal(seen.has(length), reachable, `length ${length}`);
  }
  // Multi-byte characters count as bytes, not UTF-16 units.
  const unicode = encodePaxRecord("path", "ção");
  assert.equal(unicode.length, Number(new TextDecoder().decode(unicode).split(" ")[0]));
});

// ───────────────────────────── round trip ─────────────────────────────

Deno.test("parseTar() returns what encodeTarHeader() wrote, with exact offsets, at chunk sizes 1, 7, 512, 513 and 1 MiB", async () => {
  const entries = sampleEntries();
  const { bytes, offsets } = buildArchive(entries);
  const expected = entries.map((e, i) =>
    expectedOf(e.fields, offsets[i], e.data ?? new Uint8Array(0))
  );
  for (const size of [1, 7, 512, 513, MiB]) {
    const parsed = await parseAll(chunked(bytes, size));
    assert.deepEqual(parsed, expected, `chunk size ${size}`);
  }
});

Deno.test("parseTar() reads a ReadableStream and yields body chunks that are views of the input", async () => {
  const entries = sampleEntries();
  const { bytes } = buildArchive(entries);
  const buffers = new Set<ArrayBufferLike>();
  const stream = ReadableStream.from(chunked(bytes, 4096));
  let count = 0;
  for await (const entry of parseTar(stream)) {
    for await (const part of entry.body) buffers.add(part.buffer);
    count++;
  }
  assert.equal(count, entries.length);
  assert.deepEqual([...buffers], [bytes.buffer], "no copies of body data");
});

Deno.test("parseTar(): takeBuffered() gives a body the chunk holds whole, and nothing once split or read", async () => {
  const entries = sampleEntries();
  const { bytes, offsets } = buildArchive(entries);
  for (const size of [1, 513, 4096, MiB]) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
    let index = 0;
    for await (const entry of parseTar(ReadableStream.from(chunks))) {
      const data = entries[index].data ?? new Uint8Array(0);
      const start = offsets[index] + encodeTarHeader(entries[index].fields).length;
      // The parser holds the chunk that ends the headers; the next one is not read yet.
      const inOneChunk = data.length === 0 ||
        Math.floor((start - 1) / size) === Math.floor((start + data.length - 1) / size);
      const taken = entry.body.takeBuffered();
      assert.equal(taken !== undefined, inOneChunk, `${entry.path} at chunk size ${size}`);
      if (taken !== undefined) {
        assert.deepEqual(taken, data, `${entry.path} at chunk size ${size}`);
        assert.ok(chunks.some((c) => c.buffer === taken.buffer), "a view, not a copy");
        assert.equal(entry.body.takeBuffered(), undefined, "taken once");
        await assert.rejects(readBody(entry.body), /can be read only once/);
      } else assert.deepEqual(await readBody(entry.body), data);
      index++;
    }
    assert.equal(index, entries.length);
  }
  // A body partly streamed is not taken whole afterwards.
  const big = pseudoRandomBytes(3000, 7);
  const archive = buildArchive([{
    fields: { path: "big", type: "file", size: big.length, mode: 0o644, mtimeMs: 0 },
    data: big,
  }]);
  for await (const entry of parseTar(chunked(archive.bytes, 1024))) {
    const iterator = entry.body[Symbol.asyncIterator]();
    await iterator.next();
    assert.equal(entry.body.takeBuffered(), undefined);
  }
});

Deno.test("parseTar() keeps PAX mtime fractions to whole milliseconds", async () => {
  const { bytes } = buildArchive([
    { fields: { path: "f", type: "file", size: 0, mode: 0o644, mtimeMs: 1_000_000_000_456.789 } },
  ]);
  const [entry] = await parseAll(chunked(bytes, 512));
  assert.equal(entry.mtimeMs, 1_000_000_000_456);
});

Deno.test("times before 1970 go in PAX (ustar's field holds none) and read back exactly", async () => {
  const times = [-152_668_800_000, -1_500, -1, -0.5];
  const { bytes } = buildArchive(
    times.map((mtimeMs, i) => ({
      fields: { path: `f${i}`, type: "file" as const, size: 0, mode: 0o644, mtimeMs },
    })),
  );
  const entries = await parseAll(chunked(bytes, 512));
  // Whole milliseconds, towards the past (as for PAX fractions after 1970).
  assert.deepEqual(entries.map((e) => e.mtimeMs), [-152_668_800_000, -1_500, -1, -1]);
});

Deno.test("parseTar() skips bodies the caller does not read, fully or partly", async () => {
  const entries = sampleEntries();
  const { bytes, offsets } = buildArchive(entries);
  for (const size of [1, 513, MiB]) {
    let index = 0;
    for await (const entry of parseTar(chunked(bytes, size))) {
      assert.equal(entry.path, entries[index].fields.path);
      assert.equal(entry.offset, offsets[index]);
      if (index % 3 === 1) {
        assert.deepEqual(await readBody(entry.body), entries[index].data ?? new Uint8Array(0));
      } else if (index % 3 === 2) {
        for await (const _part of entry.body) break; // read a little, then abandon
      }
      index++;
    }
    assert.equal(index, entries.length);
  }
});

Deno.test("parseTar() refuses a body read after it moved to the next entry", async () => {
  const { bytes } = buildArchive(sampleEntries());
  const iterator = parseTar(chunked(bytes, 512));
  let withData: TarEntry | undefined;
  while (!withData) {
    const entry = (await iterator.next()).value as TarEntry;
    if (entry.size > 0) withData = entry;
  }
  await iterator.next();
  await assert.rejects(() => readBody(withData.body), /after the parser moved/);
  await iterator.return(undefined);
});

Deno.test("parseTar() reports offsets of segments concatenated without end marker via startOffset", async () => {
  const entries = sampleEntries();
  const { bytes, offsets } = buildArchive(entries);
  const cut = offsets[5];
  const head = await parseAll(chunked(bytes.subarray(0, cut), 100), { allowMissingEnd: true });
  const tail = await parseAll(chunked(bytes.subarray(cut), 100), { startOffset: cut });
  assert.deepEqual(head.map((e) => e.offset), offsets.slice(0, 5));
  assert.deepEqual(tail.map((e) => e.offset), offsets.slice(5));
  assert.deepEqual(tail.map((e) => e.path), entries.slice(5).map((e) => e.fields.path));
  // Seeking to any recorded offset parses that entry first.
  for (const [i, offset] of offsets.entries()) {
    const iterator = parseTar(chunked(bytes.subarray(offset), 4096), { startOffset: offset });
    const entry = (await iterator.next()).value as TarEntry;
    assert.equal(entry.path, entries[i].fields.path);
    assert.equal(entry.offset, offset);
    await iterator.return(undefined);
  }
});

Deno.test("parseTar() cancels the input stream when the caller stops early", async () => {
  const { bytes } = buildArchive(sampleEntries());
  let cancelled = false;
  const source = chunked(bytes, 512);
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await source.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const _entry of parseTar(stream)) break;
  assert.ok(cancelled);
});

Deno.test("encodeTarHeader() puts sizes of 8 GiB and more in PAX and parseTar() streams them", async () => {
  const bigSize = 8 ** 11 + 1000; // just over the 11-digit octal limit
  const big = encodeTarHeader({
    path: "big.bin",
    type: "file",
    size: bigSize,
    mode: 0o600,
    mtimeMs: 0,
  });
  assert.ok(big.length > TAR_BLOCK, "PAX header present");
  const next = encodeTarHeader({ path: "after", type: "file", size: 3, mode: 0o644, mtimeMs: 0 });
  const zeros = new Uint8Array(MiB);
  async function* source(): AsyncGenerator<Uint8Array> {
    yield big;
    let left = bigSize + tarPadding(bigSize);
    while (left > 0) {
      const part = zeros.subarray(0, Math.min(left, zeros.length));
      left -= part.length;
      yield part;
    }
    yield next;
    yield Uint8Array.of(1, 2, 3);
    yield new Uint8Array(tarPadding(3));
    yield TAR_END;
  }
  const parsed: { path: string; size: number; offset: number }[] = [];
  for await (const entry of parseTar(source())) {
    parsed.push({ path: entry.path, size: entry.size, offset: entry.offset });
  }
  assert.deepEqual(parsed, [
    { path: "big.bin", size: bigSize, offset: 0 },
    { path: "after", size: 3, offset: big.length + bigSize + tarPadding(bigSize) },
  ]);
});

Deno.test("parseTar() reads GNU base-256 size fields", async () => {
  const size = 3 * 8 ** 11 + 7; // needs base-256: more than 11 octal digits
  const header = encodeTarHeader({ path: "huge", type: "file", size: 0, mode: 0o644, mtimeMs: 0 });
  header.fill(0, 124, 136);
  header[124] = 0x80;
  let rest = size;
  for (let i = 135; i > 124; i--) {
    header[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  fixChecksum(header);
  const iterator = parseTar(chunked(header, 512), { allowMissingEnd: true });
  const entry = (await iterator.next()).value as TarEntry;
  assert.equal(entry.size, size);
  await assertIntegrityError(() => iterator.next(), /truncated/);
});

// ───────────────────────────── adversarial input ─────────────────────────────

Deno.test("parseTar() rejects a header with a bad checksum", async () => {
  const { bytes } = buildArchive(sampleEntries());
  bytes[3] ^= 0x01;
  await assertIntegrityError(() => parseAll(chunked(bytes, 512)), /bad checksum/);
});

Deno.test("parseTar() accepts a checksum computed over signed bytes, as GNU tar does", async () => {
  const block = rawHeader({ name: "é.txt", typeflag: "0" });
  block.fill(0x20, 148, 156);
  let signed = 0;
  for (const byte of block) signed += byte >= 0x80 ? byte - 0x100 : byte;
  block.set(encoder.encode(signed.toString(8).padStart(6, "0") + "\0 "), 148);
  const [entry] = await parseAll(chunked(concatBytes(block, TAR_END), 512));
  assert.equal(entry.path, "é.txt");
});

Deno.test("parseTar() rejects a non-zero block without ustar magic", async () => {
  const block = rawHeader({ name: "file", typeflag: "0", magic: "nope!\0" });
  await assertIntegrityError(() => parseAll(chunked(concatBytes(block, TAR_END), 512)), /magic/);
});

Deno.test("parseTar() rejects a truncated header, PAX header or body", async () => {
  const entries = sampleEntries();
  const { bytes, offsets } = buildArchive(entries);
  const unicodeEntry = offsets[2]; // PAX header + 70,000 bytes of data
  const cuts = [
    unicodeEntry + 100, // inside the PAX header block
    unicodeEntry + TAR_BLOCK + 10, // inside the PAX records
    unicodeEntry + 2 * TAR_BLOCK + 300, // inside the ustar block
    unicodeEntry + 3 * TAR_BLOCK + 5_000, // inside the data
    offsets[3] - 1, // inside the padding
  ];
  for (const cut of cuts) {
    const input = bytes.subarray(0, cut);
    await assertIntegrityError(() => parseAll(chunked(input, 7)), /truncated/);
    await assertIntegrityError(
      () => parseAll(chunked(input, 7), { allowMissingEnd: true }),
      /truncated/,
    );
    // Also when the caller never reads the bodies.
    await assertIntegrityError(async () => {
      for await (const _entry of parseTar(chunked(input, 513))) { /* skip */ }
    }, /truncated/);
  }
});

Deno.test("parseTar() rejects a missing end-of-archive marker unless allowMissingEnd", async () => {
  const entries = sampleEntries();
  const { bytes } = buildArchive(entries, { end: false });
  await assertIntegrityError(() => parseAll(chunked(bytes, 512)), /truncated/);
  const parsed = await parseAll(chunked(bytes, 512), { allowMissingEnd: true });
  assert.equal(parsed.length, entries.length);
});

Deno.test("parseTar() ends at one zero block followed by EOF, or by zero padding", async () => {
  const { bytes } = buildArchive(sampleEntries(), { end: false });
  const count = sampleEntries().length;
  const oneBlock = concatBytes(bytes, new Uint8Array(TAR_BLOCK));
  assert.equal((await parseAll(chunked(oneBlock, 1000))).length, count);
  const recordPadding = concatBytes(...[bytes, TAR_END, new Uint8Array(10 * TAR_BLOCK)]);
  assert.equal((await parseAll(chunked(recordPadding, 1000))).length, count);
});

Deno.test("parseTar() rejects data after the end-of-archive marker", async () => {
  const { bytes } = buildArchive(sampleEntries());
  const entry = buildArchive([{
    fields: { path: "x", type: "file", size: 0, mode: 0o644, mtimeMs: 0 },
  }]).bytes;
  const loneZeroBlock = concatBytes(...[bytes.subarray(0, bytes.length - TAR_BLOCK), entry]);
  await assertIntegrityError(() => parseAll(chunked(loneZeroBlock, 512)), /end-of-archive/);
  const junk = concatBytes(...[bytes, Uint8Array.of(7)]);
  await assertIntegrityError(() => parseAll(chunked(junk, 512)), /end-of-archive/);
});

Deno.test("parseTar() rejects PAX and GNU long-name headers over 1 MiB before reading them", async () => {
  for (const typeflag of ["x", "g", "L", "K"]) {
    const header = rawHeader({
      name: "././@LongLink",
      typeflag,
      size: MAX_EXTENDED_HEADER_SIZE + 1,
    });
    // The claimed body is present: the limit, not truncation, must stop it.
    const input = concatBytes(...[header, new Uint8Array(2 * MiB)]);
    await assertIntegrityError(() => parseAll(chunked(input, 65536)), /limit/);
  }
});

Deno.test("parseTar() rejects malformed PAX records", async () => {
  const bodies = [
    "11 path=abc\n", // length one short: the record would end on "c"
    "13 path=abc\n", // length past the end
    "11 path=abc", // no newline
    "x path=abc\n",
    "7 =abc\n", // empty key
    "18 size=12345678x\n",
    "14 mtime=1e10\n",
  ];
  for (const body of bodies) {
    const data = encoder.encode(body);
    const input = concatBytes(...[
      rawHeader({ name: "PaxHeader/f", typeflag: "x", size: data.length }),
      data,
      new Uint8Array(tarPadding(data.length)),
      rawHeader({ name: "f", typeflag: "0" }),
      TAR_END,
    ]);
    await assertIntegrityError(() => parseAll(chunked(input, 512)), /PAX/);
  }
});

Deno.test("parseTar() fails on a size claiming gigabytes with no data, without allocating it", async () => {
  const header = rawHeader({ name: "liar", typeflag: "0", size: 8 ** 11 - 1 });
  const before = Deno.memoryUsage().rss;
  await assertIntegrityError(
    () => parseAll(chunked(concatBytes(...[header, TAR_END]), 512)),
    /truncated/,
  );
  await assertIntegrityError(async () => {
    for await (const _entry of parseTar(chunked(header, 512))) { /* skip */ }
  }, /truncated/);
  assert.ok(Deno.memoryUsage().rss - before < 256 * MiB, "no allocation of the claimed size");
});

Deno.test("parseTar() classifies hard links and other typeflags, and still skips their data", async () => {
  const data = encoder.encode("fifo-ish data that must be skipped");
  const input = concatBytes(...[
    rawHeader({ name: "hard", typeflag: "1" }),
    rawHeader({ name: "fifo", typeflag: "6", size: data.length }),
    data,
    new Uint8Array(tarPadding(data.length)),
    rawHeader({ name: "old-style file", typeflag: "\0" }),
    TAR_END,
  ]);
  const parsed = await parseAll(chunked(input, 100));
  assert.deepEqual(
    parsed.map((e) => [e.path, e.type, e.typeflag, e.offset]),
    [
      ["hard", "hardlink", "1", 0],
      ["fifo", "other", "6", TAR_BLOCK],
      ["old-style file", "file", "\0", 3 * TAR_BLOCK],
    ],
  );
});

// ───────────────────────────── GNU tar interop ─────────────────────────────

Deno.test("GNU tar lists and extracts archives written by encodeTarHeader() exactly", async () => {
  await withTempDir(async (dir) => {
    const entries = sampleEntries();
    await Deno.writeFile(`${dir}/ours.tar`, buildArchive(entries).bytes);

    const listing = await gnuTar(
      ["--numeric-owner", "--quoting-style=literal", "-tvf", "ours.tar"],
      dir,
    );
    const lines = listing.trimEnd().split("\n");
    assert.equal(lines.length, entries.length);
    for (const [i, line] of lines.entries()) {
      const { fields } = entries[i];
      const match = /^(\S{10}) 0\/0\s+(\d+) \S+ \S+ (.*)$/.exec(line);
      assert.ok(match, `unexpected listing line ${line}`);
      assert.equal(match[1], modeString(fields.type, fields.mode), line);
      assert.equal(Number(match[2]), fields.size, line);
      const name = fields.type === "dir" ? `${fields.path}/` : fields.path;
      const shown = fields.type === "symlink" ? `${name} -> ${fields.linkname}` : name;
      assert.equal(match[3], shown);
    }

    await Deno.mkdir(`${dir}/out`);
    await gnuTar(["-xpf", "../ours.tar"], `${dir}/out`);
    for (const { fields, data } of entries) {
      const path = `${dir}/out/${fields.path}`;
      const info = await Deno.lstat(path);
      assert.equal(info.isFile, fields.type === "file", fields.path);
      assert.equal(info.isDirectory, fields.type === "dir", fields.path);
      assert.equal(info.isSymlink, fields.type === "symlink", fields.path);
      if (fields.type === "symlink") {
        assert.equal(await Deno.readLink(path), fields.linkname);
        continue;
      }
      assert.equal(info.mode! & 0o7777, fields.mode, fields.path);
      assert.equal(info.mtime!.getTime(), Math.floor(fields.mtimeMs), fields.path);
      if (fields.type === "file") assert.deepEqual(await Deno.readFile(path), data, fields.path);
    }
  });
});

Deno.test("GNU tar reads PAX records whose lengths straddle 10, 100 and 1000 bytes", async () => {
  await withTempDir(async (dir) => {
    // "é" forces PAX; record = "<len> path=<value>\n".
    const paths: string[] = [];
    for (const target of [9, 10, 11, 12, 98, 99, 100, 101, 102, 998, 999, 1000, 1001, 1002]) {
      for (const valueBytes of [target - 8, target - 9, target - 10]) {
        if (valueBytes < 2) continue;
        let path = "é";
        while (encoder.encode(path).length < valueBytes) {
          path += encoder.encode(path).length % 50 === 49 ? "/" : "a";
        }
        if (!path.endsWith("/") && !paths.includes(path)) paths.push(path);
      }
    }
    const entries = paths.map((path) => ({
      fields: { path, type: "file" as const, size: 0, mode: 0o644, mtimeMs: 0 },
    }));
    const { bytes } = buildArchive(entries);
    await Deno.writeFile(`${dir}/pax.tar`, bytes);
    const listing = await gnuTar(["--quoting-style=literal", "-tf", "pax.tar"], dir);
    assert.deepEqual(listing.trimEnd().split("\n"), paths);
    assert.deepEqual((await parseAll(chunked(bytes, 7))).map((e) => e.path), paths);
  });
});

/** A source tree for GNU tar, with every kind of entry it can archive and known mtimes. */
async function makeSourceTree(root: string): Promise<void> {
  await Deno.mkdir(`${root}/tree/docs/empty dir`, { recursive: true });
  await Deno.mkdir(`${root}/tree/${LONG_DIR}`, { recursive: true });
  await Deno.writeFile(`${root}/tree/docs/${UNICODE_NAME}`, pseudoRandomBytes(70_000, 9));
  await Deno.writeFile(`${root}/tree/docs/empty.txt`, new Uint8Array(0));
  await Deno.writeFile(`${root}/tree/${LONG_DIR}/ficheiro longo.txt`, encoder.encode("deep\n"));
  await Deno.writeFile(`${root}/tree/${"n".repeat(200)}`, encoder.encode("200-byte name\n"));
  await Deno.chmod(`${root}/tree/docs/empty.txt`, 0o600);
  await Deno.chmod(`${root}/tree/docs/empty dir`, 0o700);
  await Deno.symlink(UNICODE_NAME, `${root}/tree/docs/short link`);
  await Deno.symlink(LONG_TARGET, `${root}/tree/docs/long link`);
  await Deno.link(`${root}/tree/docs/empty.txt`, `${root}/tree/docs/hard link`);
  let mtime = 1_600_000_000_123;
  for await (const path of walk(`${root}/tree`)) {
    if ((await Deno.lstat(path)).isSymlink) continue;
    mtime += 1_001;
    await Deno.utime(path, new Date(mtime), new Date(mtime));
  }
}

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const item of Deno.readDir(dir)) {
    const path = `${dir}/${item.name}`;
    if (item.isDirectory) yield* walk(path);
    yield path;
  }
  yield dir;
}

Deno.test("parseTar() reads archives GNU tar creates with --format=pax and --format=gnu", async () => {
  await withTempDir(async (dir) => {
    await makeSourceTree(dir);
    for (const format of ["pax", "gnu"]) {
      await gnuTar([`--format=${format}`, "-cf", `../${format}.tar`, "."], `${dir}/tree`);
      const bytes = await Deno.readFile(`${dir}/${format}.tar`);
      const seen = new Set<string>();
      let hardLinks = 0;
      for await (const entry of parseTar(chunked(bytes, 513))) {
        seen.add(entry.path);
        const source = `${dir}/tree/${entry.path}`;
        const info = await Deno.lstat(source);
        const expectedMtime = format === "pax"
          ? info.mtime!.getTime()
          : Math.floor(info.mtime!.getTime() / 1000) * 1000;
        assert.equal(entry.mtimeMs, expectedMtime, `${format} ${entry.path}`);
        const data = await readBody(entry.body);
        if (entry.type === "hardlink") {
          hardLinks++;
          assert.ok(["./docs/empty.txt", "./docs/hard link"].includes(entry.linkname));
          continue;
        }
        assert.equal(entry.mode, info.mode! & 0o7777, entry.path);
        if (info.isSymlink) {
          assert.equal(entry.type, "symlink");
          assert.equal(entry.linkname, await Deno.readLink(source));
        } else if (info.isDirectory) {
          assert.equal(entry.type, "dir");
        } else {
          assert.equal(entry.type, "file");
          assert.equal(entry.size, info.size);
          assert.deepEqual(data, await Deno.readFile(source), entry.path);
        }
        // The recorded offset is where a ranged restore can start parsing this entry.
        const resumed = parseTar(chunked(bytes.subarray(entry.offset), 4096), {
          startOffset: entry.offset,
        });
        const again = (await resumed.next()).value as TarEntry;
        assert.equal(again.path, entry.path);
        assert.equal(again.offset, entry.offset);
        await resumed.return(undefined);
      }
      assert.equal(hardLinks, 1, format);
      const expected = new Set<string>();
      for await (const path of walk(`${dir}/tree`)) {
        expected.add(path === `${dir}/tree` ? "." : `.${path.slice(`${dir}/tree`.length)}`);
      }
      assert.deepEqual(seen, expected, format);
    }
  });
});
