/**
 * Fuzzing with a fixed seed and a bounded count (issue 6, "Hostile and broken
 * input"): encrypted objects, manifests (text and parsed values), the sealed
 * content a key holder can write, policy YAML (text and parsed values) and
 * `.env` text are mutated (bit flips, byte changes, truncation, insertions,
 * deletions, splices, tokens of the format, structural edits) and fed to the
 * real parsers and pipelines. Every failure must be an IntellistorError with
 * a documented code; no other exception, no unhandled rejection, no case
 * longer than its timeout, no partial file in --out, nothing outside --out,
 * and nothing accepted that was changed where it is authenticated.
 *
 * The tar inside a valid object is fuzzed too (a key holder writes it).
 *
 * Which errors must be IntellistorErrors: everything these inputs can reach,
 * since a file, a manifest, an object or a segment table is user input. Not
 * fed here, because no user input reaches them: API misuse such as
 * `openHeader` with more than 172 bytes or `chunkByteRange` called with
 * inconsistent numbers directly (RangeError, a programmer error) — except
 * when a manifest's values lead there, which IS user input.
 *
 * Count: INTELLISTOR_FUZZ_CASES cases per target (default below; the
 * `test:stress` task raises it), seed INTELLISTOR_FUZZ_SEED. Each target prints
 * how many cases it ran. A finding names its seed, case number and mutations;
 * the same seed replays the same mutation decisions (the inputs carry fresh
 * random keys and ids, so a manifest's length, and with it a position, may
 * differ slightly from run to run).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import path from "node:path";
import YAML from "npm:yaml@2.9.1";
import { loadEnvironment } from "../lib/config/env.ts";
import { keyringFromEnv } from "../lib/crypto/keys.ts";
import { decryptStream, HEADER_SIZE, openHeader, type StreamKeys } from "../lib/crypto/stream.ts";
import { type ErrorCode, IntellistorError } from "../lib/errors.ts";
import { canonicalJson, openManifest, parseManifest, type SealedContent } from "../lib/manifest.ts";
import { readPolicy, renderPolicyYaml, validatePolicy } from "../lib/policy/policy.ts";
import { type RestoreResult, runRestore } from "../lib/restore.ts";
import {
  type Arena,
  assertContained,
  HOSTILE_KEY,
  type HostileBackup,
  type HostileEntry,
  listTree,
  makeArena,
  replaceStored,
  resealManifest,
  sha256Hex,
  writeHostileBackup,
} from "./support/hostile.ts";
import { concatBytes } from "../lib/crypto/bytes.ts";
import { readAll } from "../lib/streams.ts";
import { pseudoRandomBytes } from "./support/tree.ts";

const DEFAULT_CASES = 120;
const CASES = positiveInteger(Deno.env.get("INTELLISTOR_FUZZ_CASES")) ?? DEFAULT_CASES;
const SEED = positiveInteger(Deno.env.get("INTELLISTOR_FUZZ_SEED")) ?? 0x1e7e5709;
/** Per case: generous, a healthy case takes milliseconds. */
const CASE_TIMEOUT_MS = 10_000;

function positiveInteger(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`not a positive integer: ${value}`);
  return n;
}

// ---------------------------------------------------------------- seeded randomness

/** mulberry32: tiny, fast, and the same sequence everywhere for a seed. */
class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

// ---------------------------------------------------------------- byte and text mutators

const INTERESTING_BYTES = [0x00, 0x01, 0x0a, 0x20, 0x22, 0x2f, 0x30, 0x7f, 0x80, 0xff];

interface MutationContext {
  rng: Rng;
  /** Other inputs of the same kind, for splices across them. */
  donors: Uint8Array[];
  /** Tokens of the input's syntax, inserted or written over. */
  tokens: string[];
  /** Where mutations concentrate half of the time (e.g. the 172-byte header). */
  hotLength: number;
}

type ByteMutator = (input: Uint8Array, c: MutationContext) => [Uint8Array, string];

function position(c: MutationContext, length: number): number {
  if (length === 0) return 0;
  if (c.hotLength > 0 && c.rng.chance(0.5)) return c.rng.int(Math.min(length, c.hotLength));
  return c.rng.int(length);
}

const encoder = new TextEncoder();

const byteMutators: Record<string, ByteMutator> = {
  flipBits(input, c) {
    const out = input.slice();
    const flips: string[] = [];
    for (let n = 1 + c.rng.int(4); n > 0 && out.length > 0; n--) {
      const at = position(c, out.length);
      const bit = c.rng.int(8);
      out[at] ^= 1 << bit;
      flips.push(`${at}.${bit}`);
    }
    return [out, `flip bits ${flips.join(",")}`];
  },
  setBytes(input, c) {
    const out = input.slice();
    const sets: string[] = [];
    for (let n = 1 + c.rng.int(4); n > 0 && out.length > 0; n--) {
      const at = position(c, out.length);
      out[at] = c.rng.chance(0.5) ? c.rng.pick(INTERESTING_BYTES) : c.rng.int(256);
      sets.push(`${at}=${out[at]}`);
    }
    return [out, `set bytes ${sets.join(",")}`];
  },
  truncate(input, c) {
    const at = position(c, input.length + 1);
    return [input.slice(0, at), `truncate to ${at}`];
  },
  insertBytes(input, c) {
    const at = position(c, input.length + 1);
    const bytes = c.rng.chance(0.5)
      ? c.rng.bytes(1 + c.rng.int(32))
      : new Uint8Array(1 + c.rng.int(32)).fill(c.rng.pick(INTERESTING_BYTES));
    return [
      concatBytes(input.subarray(0, at), bytes, input.subarray(at)),
      `insert ${bytes.length} at ${at}`,
    ];
  },
  deleteBytes(input, c) {
    const at = position(c, input.length);
    const n = 1 + c.rng.int(c.rng.chance(0.2) ? 4096 : 64);
    return [concatBytes(input.subarray(0, at), input.subarray(at + n)), `delete ${n} at ${at}`];
  },
  spliceSelf(input, c) {
    if (input.length < 2) return [input.slice(), "splice (too short)"];
    const from = c.rng.int(input.length);
    const to = position(c, input.length);
    const n = Math.min(1 + c.rng.int(c.rng.chance(0.3) ? 70_000 : 600), input.length - from);
    const out = input.slice();
    out.set(input.subarray(from, from + n).subarray(0, out.length - to), to);
    return [out, `copy ${n} bytes from ${from} over ${to}`];
  },
  spliceDonor(input, c) {
    if (c.donors.length === 0) return byteMutators.spliceSelf(input, c);
    const donorIndex = c.rng.int(c.donors.length);
    const donor = c.donors[donorIndex];
    const from = c.rng.chance(0.5) ? position(c, donor.length) : c.rng.int(donor.length);
    const n = 1 + c.rng.int(c.rng.chance(0.3) ? 70_000 : 600);
    const piece = donor.subarray(from, from + n);
    const to = c.rng.chance(0.5) ? from : position(c, input.length + 1);
    if (c.rng.chance(0.5)) {
      // Overwrite in place.
      const out = input.slice();
      out.set(piece.subarray(0, Math.max(0, out.length - to)), Math.min(to, out.length));
      return [out, `donor ${donorIndex} bytes [${from}, +${piece.length}) over ${to}`];
    }
    return [
      concatBytes(input.subarray(0, to), piece, input.subarray(to)),
      `donor ${donorIndex} bytes [${from}, +${piece.length}) inserted at ${to}`,
    ];
  },
  duplicateRange(input, c) {
    const from = position(c, input.length);
    const n = 1 + c.rng.int(c.rng.chance(0.3) ? 70_000 : 200);
    const piece = input.slice(from, from + n);
    const to = c.rng.int(input.length + 1);
    return [
      concatBytes(input.subarray(0, to), piece, input.subarray(to)),
      `duplicate [${from}, +${piece.length}) at ${to}`,
    ];
  },
  append(input, c) {
    const tail = c.rng.chance(0.5)
      ? input.slice(Math.max(0, input.length - 1 - c.rng.int(64)))
      : c.rng.bytes(1 + c.rng.int(64));
    return [concatBytes(input, tail), `append ${tail.length}`];
  },
  token(input, c) {
    if (c.tokens.length === 0) return byteMutators.insertBytes(input, c);
    const token = encoder.encode(c.rng.pick(c.tokens));
    const at = c.rng.int(input.length + 1);
    if (c.rng.chance(0.5)) {
      return [
        concatBytes(input.subarray(0, at), token, input.subarray(at)),
        `insert token ${JSON.stringify(new TextDecoder().decode(token))} at ${at}`,
      ];
    }
    const out = input.slice();
    out.set(token.subarray(0, Math.max(0, out.length - at)), Math.min(at, out.length));
    return [out, `write token ${JSON.stringify(new TextDecoder().decode(token))} at ${at}`];
  },
  deleteLine(input, c) {
    const text = new TextDecoder().decode(input);
    const lines = text.split("\n");
    const at = c.rng.int(lines.length);
    lines.splice(at, 1 + c.rng.int(3));
    return [encoder.encode(lines.join("\n")), `delete lines from ${at}`];
  },
};

/** 1–3 mutations; returns the result and what was done. */
function mutateBytes(
  input: Uint8Array,
  c: MutationContext,
  names: string[] = Object.keys(byteMutators),
): [Uint8Array, string] {
  let out = input;
  const done: string[] = [];
  const count = 1 + (c.rng.chance(0.3) ? 1 + c.rng.int(2) : 0);
  for (let i = 0; i < count; i++) {
    const name = c.rng.pick(names);
    const [next, description] = byteMutators[name](out, c);
    out = next;
    done.push(description);
  }
  return [out, done.join("; ")];
}

// ---------------------------------------------------------------- structural mutators (parsed values)

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonPath = (string | number)[];

function jsonPaths(value: Json, prefix: JsonPath = [], out: JsonPath[] = []): JsonPath[] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((item, i) => jsonPaths(item, [...prefix, i], out));
  else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) jsonPaths(item, [...prefix, key], out);
  }
  return out;
}

function getAt(root: Json, at: JsonPath): Json {
  let value = root;
  for (const key of at) value = (value as Record<string | number, Json>)[key];
  return value;
}

const INTERESTING_VALUES: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  0.5,
  255,
  65536,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  -(2 ** 53),
  1e300,
  "",
  "x",
  "0",
  "-1",
  "../x",
  "/etc/passwd",
  "a/../../x",
  "C:\\x",
  "CON",
  "a:b",
  "a\u0000b",
  ".",
  "..",
  "/",
  "file",
  "dir",
  "symlink",
  "hardlink",
  "other",
  "intellistor-manifest/2",
  "*",
  "[",
  "0 2 * * *",
  "60 25 32 13 8",
  "x".repeat(5000),
  [],
  {},
  [null],
  { length: 1 },
  ["/"],
];

/** One structural edit of a JSON-like value: delete, replace, swap types, duplicate… */
function mutateValue(rng: Rng, input: Json, extra: Json[] = []): [Json, string] {
  const root = structuredClone(input);
  const paths = jsonPaths(root);
  const at = rng.pick(paths);
  const label = at.length === 0 ? "(root)" : at.join(".");
  const value = getAt(root, at);
  const parent = at.length === 0 ? undefined : getAt(root, at.slice(0, -1)) as Record<
    string | number,
    Json
  >;
  const key = at[at.length - 1];
  const pool = [...INTERESTING_VALUES, ...extra];
  const set = (next: Json): Json => {
    if (parent === undefined) return next;
    parent[key] = next;
    return root;
  };
  switch (rng.int(8)) {
    case 0: {
      if (parent === undefined) return [rng.pick(pool), "replace the root"];
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      return [root, `delete ${label}`];
    }
    case 1:
    case 2: {
      const next = rng.pick(pool);
      return [set(structuredClone(next)), `${label} = ${JSON.stringify(next)?.slice(0, 40)}`];
    }
    case 3: {
      // The value of another field: a plausible type confusion.
      const other = structuredClone(getAt(root, rng.pick(paths)));
      return [set(other), `${label} = the value of another field`];
    }
    case 4: {
      if (typeof value === "number") {
        const next = rng.pick([
          value + 1,
          value - 1,
          value * 2,
          -value,
          value + 0.5,
          String(value),
        ]);
        return [set(next), `${label} = ${JSON.stringify(next)}`];
      }
      if (typeof value === "string") {
        const next = rng.chance(0.5)
          ? value + rng.pick(["/", "/..", "\\", "\u0000", "x", " "])
          : value.slice(0, rng.int(value.length + 1));
        return [set(next), `${label} = ${JSON.stringify(next).slice(0, 60)}`];
      }
      return [set([value]), `${label} wrapped in an array`];
    }
    case 5: {
      if (Array.isArray(value) && value.length > 0) {
        const i = rng.int(value.length);
        value.splice(rng.int(value.length + 1), 0, structuredClone(value[i]));
        return [root, `${label}: element ${i} duplicated`];
      }
      return [set(String(value)), `${label} as a string`];
    }
    case 6: {
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        const name = rng.pick(["extra", "__proto__", "constructor", "type", "link", "size"]);
        // An own property, as JSON.parse makes it (even for "__proto__").
        Object.defineProperty(value, name, {
          value: structuredClone(rng.pick(pool)),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        return [root, `${label}.${name} added`];
      }
      return [set(rng.pick(pool)), `${label} replaced`];
    }
    default: {
      if (Array.isArray(value) && value.length > 1) {
        const i = rng.int(value.length);
        const j = rng.int(value.length);
        [value[i], value[j]] = [value[j], value[i]];
        return [root, `${label}: elements ${i} and ${j} swapped`];
      }
      return [set(rng.pick(pool)), `${label} replaced`];
    }
  }
}

function mutateValueTimes(rng: Rng, input: Json, extra: Json[] = []): [Json, string] {
  let value = input;
  const done: string[] = [];
  for (let n = 1 + (rng.chance(0.3) ? 1 + rng.int(2) : 0); n > 0; n--) {
    const [next, description] = mutateValue(rng, value, extra);
    value = next;
    done.push(description);
  }
  return [value, done.join("; ")];
}

// ---------------------------------------------------------------- the harness

/** Where an unhandled rejection or error is recorded (and kept from killing the run). */
const unhandled: string[] = [];
/** Set while a case runs: an escaped error ends the case's wait (its promise may never settle). */
let onUnhandled: (() => void) | undefined;
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  unhandled.push(`unhandled rejection: ${describeError(event.reason)}`);
  onUnhandled?.();
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  unhandled.push(`uncaught error: ${describeError(event.error)}`);
  onUnhandled?.();
});

function describeError(error: unknown): string {
  if (error instanceof IntellistorError) return `IntellistorError ${error.code}: ${error.message}`;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

class Timeout extends Error {
  override name = "Timeout";
}

/**
 * Runs `fn`, failing with Timeout after `ms`, or soon after an error escaped
 * it (an uncaught error or unhandled rejection), and aborting its signal so
 * it can clean up.
 */
async function withTimeout<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const stop = (why: string) => {
      controller.abort();
      reject(new Timeout(why));
    };
    timer = setTimeout(() => stop(`no result after ${ms} ms`), ms);
    onUnhandled = () => {
      clearTimeout(timer);
      timer = setTimeout(() => stop("no result 200 ms after an error escaped"), 200);
    };
  });
  try {
    return await Promise.race([fn(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
    onUnhandled = undefined;
  }
}

interface Finding {
  signature: string;
  count: number;
  first: string;
}

/** Counts outcomes and findings for one target; fails the test with every distinct finding. */
class Campaign {
  readonly outcomes = new Map<string, number>();
  readonly findings = new Map<string, Finding>();
  readonly rng: Rng;
  cases = 0;
  #case = 0;
  #mutation = "";

  constructor(readonly target: string, index: number) {
    this.rng = new Rng((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  }

  outcome(label: string): void {
    this.outcomes.set(label, (this.outcomes.get(label) ?? 0) + 1);
  }

  /** Records a problem of the current case. */
  find(problem: string): void {
    // Numbers vary between cases; the signature groups the same problem together.
    const signature = problem.replace(/\d+/g, "N").slice(0, 200);
    const found = this.findings.get(signature);
    if (found) found.count++;
    else {
      this.findings.set(signature, {
        signature,
        count: 1,
        first: `case ${this.#case} (seed ${SEED}; ${this.#mutation.slice(0, 300)}): ${
          problem.slice(0, 500)
        }`,
      });
    }
  }

  /**
   * Runs `count` cases. `one` returns nothing when the case passed its checks,
   * and classifies its own outcome; anything it throws is a finding.
   */
  async run(one: (caseIndex: number, note: (mutation: string) => void) => Promise<void>) {
    const started = performance.now();
    for (let i = 0; i < CASES; i++) {
      this.#case = i;
      this.#mutation = "";
      const before = unhandled.length;
      try {
        await one(i, (mutation) => (this.#mutation = mutation));
      } catch (error) {
        this.find(
          error instanceof assert.AssertionError
            ? error.message.split("\n")[0]
            : `harness: ${describeError(error)}`,
        );
      }
      // Let a late rejection of this case surface before the next one starts.
      await new Promise((resolve) => setTimeout(resolve, 0));
      for (const problem of unhandled.splice(before)) this.find(problem);
      this.cases++;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const outcomes = [...this.outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
    console.log(
      `fuzz ${this.target}: ${this.cases} cases in ${seconds} s (seed ${SEED}); ` +
        `outcomes: ${outcomes.join(", ")}; findings: ${
          [...this.findings.values()].reduce((n, f) => n + f.count, 0)
        }`,
    );
    if (this.findings.size > 0) {
      const lines = [...this.findings.values()].map((f) => `[${f.count}×] ${f.first}`);
      assert.fail(
        `${this.target}: ${this.findings.size} distinct finding(s):\n- ${lines.join("\n- ")}`,
      );
    }
  }

  /**
   * Classifies a thrown error: an IntellistorError with one of `allowed` codes
   * is an expected outcome, anything else a finding.
   */
  expectError(error: unknown, allowed: readonly ErrorCode[], where: string): void {
    if (error instanceof IntellistorError) {
      this.outcome(error.code);
      if (!allowed.includes(error.code)) {
        this.find(
          `${where}: IntellistorError ${error.code} is not one of ${
            allowed.join(", ")
          }: ${error.message}`,
        );
      }
      return;
    }
    this.outcome(error instanceof Timeout ? "TIMEOUT" : "NOT_INTELLISTOR");
    this.find(`${where}: ${describeError(error)}`);
  }
}

// ---------------------------------------------------------------- shared inputs

const RESTORE_CODES: ErrorCode[] = ["INTEGRITY", "FORMAT_UNSUPPORTED", "WRONG_KEY"];

/** A small multi-chunk, multi-segment backup (2 chunks: a 100 KB incompressible file). */
const BENIGN: HostileEntry[] = [
  { name: "docs", typeflag: "5" },
  { name: "docs/a.txt", data: "alpha\n".repeat(40) },
  { name: "big.bin", data: pseudoRandomBytes(100_000, 7), newSegment: true },
  { name: "c.txt", data: "gamma\n", newSegment: true },
  { name: "link", typeflag: "2", linkname: "docs/a.txt" },
  { name: "docs/empty.txt", data: "", newSegment: true },
];

async function withArena<T>(fn: (arena: Arena) => Promise<T>): Promise<T> {
  const arena = await makeArena("intellistor-fuzz-");
  try {
    return await fn(arena);
  } finally {
    await arena.cleanup();
  }
}

/** A stream of `bytes` cut into random pieces. */
function choppedStream(bytes: Uint8Array, rng: Rng): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = 1 + rng.int(rng.chance(0.5) ? 300 : 90_000);
    pieces.push(bytes.slice(at, at + n));
    at += n;
  }
  return ReadableStream.from(pieces);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * After a restore: every regular file under --out has the SHA-256 a manifest
 * record gives it, every symlink is a record of type symlink with that target.
 */
async function checkRestoredTree(out: string, content: unknown): Promise<void> {
  const entries = Array.isArray((content as SealedContent)?.entries)
    ? (content as SealedContent).entries.filter((e) => e !== null && typeof e === "object")
    : [];
  for (const [name, info] of await listTree(out)) {
    if (info.isFile) {
      const digest = sha256Hex(await Deno.readFile(path.join(out, ...name.split("/"))));
      const listed = entries.some((e) =>
        e.relative_path === name && e.type === "file" && e.sha256 === digest
      );
      assert.ok(
        listed,
        `restored file ${JSON.stringify(name)} is not a listed file with its SHA-256`,
      );
    } else if (info.isSymlink) {
      const target = await Deno.readLink(path.join(out, ...name.split("/")));
      const listed = entries.some((e) =>
        e.relative_path === name && e.type === "symlink" && e.link === target
      );
      assert.ok(
        listed,
        `restored symlink ${JSON.stringify(name)} → ${
          JSON.stringify(target)
        } is not a listed symlink`,
      );
    }
  }
}

async function emptyOut(arena: Arena): Promise<void> {
  await Deno.remove(arena.out, { recursive: true }).catch(() => {});
}

const SELECTIONS = [undefined, undefined, ["big.bin"], ["c.txt"], ["docs"], ["*.txt"]];

// ---------------------------------------------------------------- targets

Deno.test("fuzz: encrypted objects → openHeader and decryptStream", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign("encrypted object → openHeader/decryptStream", 0);
    const backup = await writeHostileBackup(arena.store, { entries: BENIGN });
    // Another backup under the same key: splices across objects must fail too.
    const other = await writeHostileBackup(arena.store, { entries: BENIGN });
    const original = backup.object;
    const context: MutationContext = {
      rng: campaign.rng,
      donors: [other.object, original],
      tokens: [],
      hotLength: HEADER_SIZE + 32,
    };
    await campaign.run(async (_i, note) => {
      const [mutated, description] = mutateBytes(original, context);
      note(description);
      // A splice can rebuild the other backup's header or whole object: those are authentic.
      const authentic = [backup, other];
      // The header alone, as the restore reads it.
      try {
        await withTimeout(
          CASE_TIMEOUT_MS,
          () => openHeader(mutated.subarray(0, HEADER_SIZE), backup.keyring),
        );
        campaign.outcome("header ok");
        assert.ok(
          authentic.some((b) =>
            bytesEqual(mutated.subarray(0, HEADER_SIZE), b.object.subarray(0, HEADER_SIZE))
          ),
          "openHeader accepted a modified header",
        );
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        campaign.expectError(error, RESTORE_CODES, "openHeader");
      }
      // The whole object, cut into random pieces.
      try {
        const plain = await withTimeout(
          CASE_TIMEOUT_MS,
          () =>
            readAll(
              choppedStream(mutated, campaign.rng).pipeThrough(decryptStream(backup.keyring)),
            ),
        );
        campaign.outcome("decrypted");
        const source = authentic.find((b) => bytesEqual(mutated, b.object));
        assert.ok(source !== undefined, "decryptStream accepted a modified object");
        assert.ok(bytesEqual(plain, source.payload), "decryptStream returned other bytes");
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        campaign.expectError(error, RESTORE_CODES, "decryptStream");
      }
    });
  });
});

Deno.test("fuzz: encrypted objects in a LocalStorage → runRestore (full and selective)", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign("encrypted object → runRestore", 1);
    const backup = await writeHostileBackup(arena.store, { entries: BENIGN });
    const other = await writeHostileBackup(arena.store, { entries: BENIGN });
    const context: MutationContext = {
      rng: campaign.rng,
      donors: [other.object],
      tokens: [],
      hotLength: HEADER_SIZE + 32,
    };
    await campaign.run(async (_i, note) => {
      const [mutated, description] = mutateBytes(backup.object, context);
      const only = campaign.rng.pick(SELECTIONS);
      note(`${description}; only ${JSON.stringify(only)}`);
      await replaceStored(backup, backup.key, mutated);
      await emptyOut(arena);
      try {
        const result = await restoreCase(backup, arena, only);
        campaign.outcome(`restored (${result.integrity})`);
        // Past damage the restore goes on, and reports only what the damage cost.
        for (const failure of result.failures) {
          assert.match(
            failure.message,
            /damaged part of the backup object|undamaged parts/,
            `restore of a damaged object reported ${JSON.stringify(failure)}`,
          );
        }
        // A full restore reads every byte: a changed object must fail.
        assert.ok(
          only !== undefined || bytesEqual(mutated, backup.object) || result.integrity === "failed",
          "full restore accepted a modified object",
        );
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        campaign.expectError(error, RESTORE_CODES, "runRestore");
      }
      await assertContained(arena, "after the restore");
      await checkRestoredTree(arena.out, backup.content);
    });
    await replaceStored(backup, backup.key, backup.object);
  });
});

const JSON_TOKENS = [
  '"',
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  "null",
  "true",
  "-0",
  "1e999",
  "\\u0000",
  '\\"',
  '"__proto__":{},',
  '"format":"intellistor-manifest/1",',
  '"sealed":"",',
  '"object":{},',
  "  \n",
  "\uFEFF",
];

Deno.test("fuzz: manifest text → parseManifest and openManifest", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign("manifest text → parseManifest/openManifest", 2);
    const backup = await writeHostileBackup(arena.store, { entries: BENIGN });
    const other = await writeHostileBackup(arena.store, { entries: BENIGN });
    const keys = await openHeader(backup.object.subarray(0, HEADER_SIZE), backup.keyring);
    const original = encoder.encode(backup.manifestText);
    const context: MutationContext = {
      rng: campaign.rng,
      donors: [encoder.encode(other.manifestText)],
      tokens: JSON_TOKENS,
      hotLength: 0,
    };
    await campaign.run(async (i, note) => {
      const [mutated, description] = mutateBytes(original, context);
      note(description);
      // As the restore decodes it (not fatal: invalid UTF-8 becomes U+FFFD).
      const text = new TextDecoder().decode(mutated);
      await openManifestText(campaign, text, keys, backup.manifestText);
      // Every tenth case also goes through a whole restore.
      if (i % 10 === 0) {
        await restoreWithManifest(campaign, arena, backup, mutated, backup.manifestText);
      }
    });
  });
});

/**
 * What a manifest means: its canonical public part and the sealed bytes
 * (base64 decoded as the reader decodes it, leniently), or why it has none.
 */
function meaning(text: string): string {
  try {
    const value = JSON.parse(text);
    const { sealed, ...publicPart } = value;
    return `${canonicalJson(publicPart)}|${Buffer.from(String(sealed), "base64").toString("hex")}`;
  } catch {
    return "not a JSON object";
  }
}

async function openManifestText(
  campaign: Campaign,
  text: string,
  keys: StreamKeys,
  original: string,
): Promise<void> {
  try {
    const content = await withTimeout(CASE_TIMEOUT_MS, async () => {
      const manifest = parseManifest(text, "fuzz/manifest.json");
      return await openManifest(manifest, keys);
    });
    campaign.outcome("opened");
    if (meaning(text) !== meaning(original)) {
      assert.fail(
        "openManifest accepted a manifest whose public part or sealed bytes differ: " +
          JSON.stringify(text).slice(0, 2000),
      );
    }
    assert.ok(Array.isArray(content.entries), "opened content has no entries");
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    campaign.expectError(error, ["INTEGRITY", "FORMAT_UNSUPPORTED"], "parse/openManifest");
  }
}

/** One fuzz case's restore of `backup` into the arena, with the case time limit. */
function restoreCase(backup: HostileBackup, arena: Arena, only?: string[]): Promise<RestoreResult> {
  return withTimeout(CASE_TIMEOUT_MS, (signal) =>
    runRestore({
      storage: backup.storage,
      keyring: backup.keyring,
      key: backup.key,
      outDir: arena.out,
      only,
      signal,
    }));
}

async function restoreWithManifest(
  campaign: Campaign,
  arena: Arena,
  backup: HostileBackup,
  manifestBytes: Uint8Array,
  original: string,
): Promise<void> {
  await replaceStored(backup, backup.manifestKey, manifestBytes);
  await emptyOut(arena);
  try {
    await restoreCase(backup, arena);
    campaign.outcome("restored");
    assert.equal(
      meaning(new TextDecoder().decode(manifestBytes)),
      meaning(original),
      "runRestore accepted a manifest whose public part or sealed bytes differ",
    );
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    campaign.expectError(error, ["INTEGRITY", "FORMAT_UNSUPPORTED"], "runRestore");
  } finally {
    await replaceStored(backup, backup.manifestKey, encoder.encode(backup.manifestText));
  }
  await assertContained(arena, "after the restore");
  await checkRestoredTree(arena.out, backup.content);
}

Deno.test("fuzz: manifest values → parseManifest and openManifest", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign("manifest values → parseManifest/openManifest", 3);
    const backup = await writeHostileBackup(arena.store, { entries: BENIGN });
    const other = await writeHostileBackup(arena.store, { entries: BENIGN });
    const keys = await openHeader(backup.object.subarray(0, HEADER_SIZE), backup.keyring);
    const original = JSON.parse(backup.manifestText) as Json;
    // Values of another real manifest: a swapped field looks plausible.
    const extra = jsonPaths(JSON.parse(other.manifestText)).map((p) =>
      getAt(JSON.parse(other.manifestText), p)
    ).filter((v) => typeof v !== "object" || v === null);
    await campaign.run(async (i, note) => {
      const [mutated, description] = mutateValueTimes(campaign.rng, original, extra);
      note(description);
      const text = JSON.stringify(mutated, null, 2) ?? "";
      await openManifestText(campaign, text, keys, backup.manifestText);
      if (i % 10 === 0) {
        await restoreWithManifest(
          campaign,
          arena,
          backup,
          encoder.encode(text),
          backup.manifestText,
        );
      }
    });
  });
});

Deno.test("fuzz: sealed manifest content written with the key → runRestore", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign("sealed content (key holder) → runRestore", 4);
    const backup = await writeHostileBackup(arena.store, {
      entries: [
        ...BENIGN,
        { name: "../escape.txt", data: "escape\n" },
        { name: "up", typeflag: "2", linkname: ".." },
        { name: "hard", typeflag: "1", linkname: "/etc/passwd", manifest: "unlisted" },
        { name: "fifo", typeflag: "6", manifest: "unlisted" },
      ],
    });
    const original = backup.content as unknown as Json;
    await campaign.run(async (_i, note) => {
      const [mutated, description] = mutateValueTimes(campaign.rng, original);
      const only = campaign.rng.pick(SELECTIONS);
      note(`${description}; only ${JSON.stringify(only)}`);
      await resealManifest(backup, mutated as unknown as SealedContent);
      await emptyOut(arena);
      try {
        const result = await restoreCase(backup, arena, only);
        campaign.outcome(`restored (${result.integrity})`);
        assert.ok(Array.isArray(result.failures), "result without failures");
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        campaign.expectError(
          error,
          ["INTEGRITY", "FORMAT_UNSUPPORTED", "UNSAFE_PATH", "NO_MATCH"],
          "runRestore",
        );
      }
      await assertContained(arena, "after the restore");
      await checkRestoredTree(arena.out, mutated);
    });
  });
});

/** Pieces of tar headers: names, typeflags, magic, numbers in octal and base-256. */
const TAR_TOKENS = [
  "../",
  "/etc/x",
  "a/../../x",
  "ustar\u000000",
  "ustar  \u0000",
  "0000644\u0000",
  "77777777777\u0000",
  "00000001000\u0000",
  "\u0080\u0000\u0000\u0000\u0000\u0000\u0000\u0001\u0000\u0000\u0000\u0000",
  "\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff",
  "1",
  "2",
  "3",
  "5",
  "6",
  "7",
  "g",
  "x",
  "L",
  "K",
  "S",
  "30 path=../../../etc/passwdx\n",
  "22 size=99999999999\n",
  "21 linkpath=/etc/x\n",
  "20 mtime=-1e9999\n",
  "27 GNU.sparse.major=1\n",
  "99999999 path=x\n",
];

Deno.test("fuzz: tar content written with the key → runRestore", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign("tar content (key holder) → runRestore", 8);
    const entries: HostileEntry[] = [
      // Smaller than BENIGN: each case builds and encrypts a new object.
      ...BENIGN.map((e) => ({
        ...e,
        newSegment: false,
        data: e.name === "big.bin" ? pseudoRandomBytes(3000, 7) : e.data,
      })),
      { name: "pax/" + "long-name-".repeat(15) + ".txt", data: "a PAX path\n" },
      { name: "up", typeflag: "2", linkname: ".." },
    ];
    const original = (await writeHostileBackup(arena.store, { entries, direct: true })).tar;
    const context: MutationContext = {
      rng: campaign.rng,
      donors: [original],
      tokens: TAR_TOKENS,
      hotLength: 0,
    };
    await campaign.run(async (_i, note) => {
      const [mutated, description] = mutateBytes(original, context);
      const only = campaign.rng.pick(SELECTIONS);
      note(`${description}; only ${JSON.stringify(only)}`);
      // The manifest still lists the original entries: the tar is what the attacker changed.
      const backup = await writeHostileBackup(arena.store, {
        entries,
        editTar: () => mutated,
        direct: true,
      });
      await emptyOut(arena);
      try {
        const result = await restoreCase(backup, arena, only);
        campaign.outcome(`restored (${result.integrity})`);
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        campaign.expectError(
          error,
          ["INTEGRITY", "FORMAT_UNSUPPORTED", "UNSAFE_PATH"],
          "runRestore",
        );
      }
      await assertContained(arena, "after the restore");
      await checkRestoredTree(arena.out, backup.content);
      await Deno.remove(path.join(arena.store, "backups"), { recursive: true });
    });
  });
});

const YAML_TOKENS = [
  ": ",
  "- ",
  "\t",
  "\n",
  "\n  ",
  "#",
  "'",
  '"',
  "&a ",
  "*a",
  "<<: *a\n",
  "!!binary ",
  "!!str ",
  "!!js/function ",
  "{",
  "}",
  "[",
  "]",
  "? ",
  "|\n",
  ">-\n",
  "~",
  "null",
  "1e309",
  "0x10",
  ".inf",
  "---\n",
  "...\n",
  "%YAML 1.2\n---\n",
  "\uFEFF",
  "\r\n",
  "id: other\n",
  "paths: []\n",
  "type: local\n",
  "version: 2\n",
  "schedule: '*/7 * * * *'\n",
  "C:\\dados",
  "\u0000",
];

/** A policy is accepted only if it is consistent: re-validating and rendering it round-trips. */
function checkAcceptedPolicy(policy: ReturnType<typeof validatePolicy>): void {
  assert.deepEqual(validatePolicy(policy, "recheck"), policy, "validatePolicy(policy) changed it");
  const rendered = renderPolicyYaml(policy);
  assert.deepEqual(
    validatePolicy(YAML.parse(rendered), "rendered"),
    policy,
    "renderPolicyYaml did not round-trip",
  );
}

const POLICY_TEXTS = [
  await Deno.readTextFile(new URL("../policies/example.yaml", import.meta.url)),
  [
    "version: 1",
    "id: fuzz.local-1",
    "paths:",
    "  - /srv/data",
    "  - 'C:\\dados\\imagens'",
    "exclude: ['*.tmp', 'cache/*', '{a,b}/**']",
    'schedule: "*/15 9-17 * * MON-FRI"',
    "destination:",
    "  type: local",
    "  path: /mnt/backups",
    "compression: { level: 9 }",
    "encryption: { key_env: MY_KEY, passphrase_env: MY_PASSPHRASE }",
    "notify: { url_env: PING, failure_url_env: PING_FAIL, timeout_seconds: 30 }",
    "",
  ].join("\n"),
];

Deno.test("fuzz: policy YAML text → readPolicy", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign("policy YAML text → readPolicy", 5);
    const file = path.join(arena.root, "policy.yaml");
    arena.allowed.add("policy.yaml");
    const originals = POLICY_TEXTS.map((text) => encoder.encode(text));
    const context: MutationContext = {
      rng: campaign.rng,
      donors: originals,
      tokens: YAML_TOKENS,
      hotLength: 0,
    };
    await campaign.run(async (_i, note) => {
      const [mutated, description] = mutateBytes(campaign.rng.pick(originals), context);
      note(description);
      await Deno.writeFile(file, mutated);
      try {
        const policy = await withTimeout(CASE_TIMEOUT_MS, () => readPolicy(file));
        campaign.outcome("accepted");
        checkAcceptedPolicy(policy);
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        campaign.expectError(error, ["POLICY_INVALID"], "readPolicy");
      }
    });
  });
});

Deno.test("fuzz: policy values → validatePolicy", async () => {
  const campaign = new Campaign("policy values → validatePolicy", 6);
  const originals = POLICY_TEXTS.map((text) => YAML.parse(text) as Json);
  await campaign.run(async (_i, note) => {
    const [mutated, description] = mutateValueTimes(campaign.rng, campaign.rng.pick(originals));
    note(description);
    try {
      const policy = await withTimeout(
        CASE_TIMEOUT_MS,
        () => Promise.resolve().then(() => validatePolicy(mutated, "fuzz.yaml")),
      );
      campaign.outcome("accepted");
      checkAcceptedPolicy(policy);
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
      campaign.expectError(error, ["POLICY_INVALID"], "validatePolicy");
    }
  });
});

const ENV_TOKENS = [
  "=",
  "\n",
  "\r\n",
  "#",
  "'",
  '"',
  "`",
  "export ",
  " ",
  "\t",
  ",",
  "${INTELLISTOR_KEY}",
  "\\n",
  "\u0000",
  "\uFEFF",
  "INTELLISTOR_KEY=",
  "INTELLISTOR_PASSPHRASE=",
  "INTELLISTOR_OLD_KEYS=",
  "INTELLISTOR_OLD_PASSPHRASE_1=",
  "INTELLISTOR_OLD_PASSPHRASE_3=",
  "MY_KEY=",
  HOSTILE_KEY,
  "AAAA",
  "====",
  "short",
];

const ENV_TEXT = [
  "# a .env file",
  `INTELLISTOR_KEY=${HOSTILE_KEY}`,
  "INTELLISTOR_PASSPHRASE='a passphrase with spaces'",
  `INTELLISTOR_OLD_KEYS=${btoa("k".repeat(32))}, ${btoa("l".repeat(32))}`,
  'INTELLISTOR_OLD_PASSPHRASE_1="old passphrase one"',
  "INTELLISTOR_OLD_PASSPHRASE_2=old passphrase two",
  `export MY_KEY=${btoa("m".repeat(32))}`,
  'MY_PASSPHRASE="multi\nline passphrase"',
  "AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX",
  "AWS_SECRET_ACCESS_KEY=xxxxxxxx # a comment",
  "AWS_S3_BUCKET=intellistor-prd",
  "",
].join("\n");

Deno.test("fuzz: .env text → loadEnvironment and keyringFromEnv", async () => {
  await withArena(async (arena) => {
    const campaign = new Campaign(".env text → loadEnvironment/keyringFromEnv", 7);
    const file = path.join(arena.root, "fuzz.env");
    arena.allowed.add("fuzz.env");
    const original = encoder.encode(ENV_TEXT);
    const context: MutationContext = {
      rng: campaign.rng,
      donors: [original],
      tokens: ENV_TOKENS,
      hotLength: 0,
    };
    await campaign.run(async (_i, note) => {
      const [mutated, description] = mutateBytes(original, context);
      const names = campaign.rng.chance(0.5)
        ? undefined
        : { keyEnv: "MY_KEY", passphraseEnv: "MY_PASSPHRASE" };
      note(`${description}; names ${JSON.stringify(names)}`);
      await Deno.writeFile(file, mutated);
      try {
        const keyring = await withTimeout(CASE_TIMEOUT_MS, async () => {
          const { env } = await loadEnvironment({}, { envFile: file, cwd: arena.root });
          return keyringFromEnv(env, names);
        });
        campaign.outcome("keyring");
        assert.ok(keyring.all.length >= 1 && keyring.current === keyring.all[0], "empty keyring");
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        campaign.expectError(
          error,
          ["ENV_FILE_INVALID", "KEY_MISSING", "KEY_INVALID"],
          "loadEnvironment/keyringFromEnv",
        );
      }
    });
  });
});
