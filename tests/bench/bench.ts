/**
 * `deno task bench [--size small|medium|many-small|large | --data DIR] [--runs N] [--json FILE]
 *   [--keep]` (`--help` prints this usage)
 * `deno task bench --memory-scaling [--json FILE] [--keep]`
 *
 * Benchmarks our backup / restore (the CLI, as a subprocess, to a local store) against
 * `tar -czf` / `tar -xzf` and, when it is on PATH, `restic`, all on the same data in one run.
 * Prints one markdown table and the targets of issue 7 that the run can check, and writes the
 * results as JSON (default: `bench-results.json` in the temporary work directory, which is
 * otherwise removed unless `--keep`). It never asserts on timings and is not part of
 * `deno task test` (the file is not a `*_test.ts`). Peak RSS comes from `/usr/bin/time -v`.
 *
 * The data (generated deterministically by `data.ts`, or a real directory with `--data DIR`):
 * - `--size medium` (the default, ~200 MB) and `small` (~20 MB): a mixed tree.
 * - `--size many-small`: 50,000 files of ~1 KiB; the target printed is backup ≤ 1.5 × `tar -czf`
 *   (in place of the ≤ 0.5 × of the other trees). Its selective restore restores one of its files.
 * - `--size large`: the mix scaled to 2 GiB, a ≥ 1 GiB backup, so the selective restore of its
 *   1 MiB file is measured against its target (≤ 8 MiB downloaded, ≤ 2 s). For smaller backups
 *   the line says that the target does not apply.
 *
 * A run measures `intellistor --help` start-up (median of 7), then `--runs` rounds (3 by default).
 * A round runs each tool once: our backup, full restore (whose tree is compared with the source:
 * file count and bytes) and selective restore; tar -czf and -xzf; restic backup and restore into a
 * new repository. The tools take turns going first, and every command starts after `sync`, so it
 * does not pay for the previous one's writes. Restored trees under 1 GiB are removed only after
 * the last round: on ext4, creating files within a minute or more of deleting many is several
 * times slower, and the next tool would pay for the last one's clean-up. The table shows each
 * operation's median wall time and highest peak RSS, the targets each round's ratio too: on a
 * shared machine one round can be disturbed. A large run of 3 rounds takes about 7 minutes on 2
 * cores, a medium one 1.5 minutes. Run it a few minutes after deleting a large tree (an earlier
 * run's included), or its first rounds meet the same slow file creation.
 *
 * `--memory-scaling` instead checks that our peak RSS does not grow with the data: it generates
 * the scaled mix at 256 MiB and at 2 GiB (same shape: files and bytes both × 8), runs only our
 * backup and full restore on each (no tar, no restic, no selective restore, no start-up), and
 * prints both peak RSS values and their ratio (targets: both ≤ 200 MiB, 2 GiB within 20% of
 * 256 MiB). It runs once (no rounds) and takes a few minutes, nearly all of it in the 2 GiB
 * backup and restore.
 */
import { V8_FLAGS } from "../../lib/runtime_flags.ts";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  generateScaledTree,
  generateTree,
  type Size,
  SIZES,
  type TreeStats,
  walkTree,
} from "./data.ts";

const MAIN_TS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../main.ts");
const DENO = Deno.execPath();
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const SELECT_TARGET = MIB;
const RSS_TARGET_MIB = 200;
const RSS_GROWTH_TARGET = 1.2;

interface Measured {
  tool: string;
  operation: string;
  /** The median of the runs' wall times (the only run's in --memory-scaling). */
  wall_s: number;
  /** Every run's wall time, in the order run. */
  wall_s_runs: number[];
  mb_per_s: number;
  files_per_s: number;
  /** The highest of the runs' peak RSS. */
  peak_rss_mib: number | null;
  size_bytes: number | null;
}

/** One run of one tool's operation. */
interface Sample {
  wall_s: number;
  rss_mib: number | null;
  size_bytes: number | null;
}

interface SelectiveRun {
  file_bytes: number;
  restored: number;
  downloaded_bytes: number;
  backup_bytes: number;
  wall_s: number;
  peak_rss_mib: number | null;
}

interface RunResult {
  wall_s: number;
  rss_mib: number | null;
  stdout: string;
}

const USAGE = `Usage:
  deno task bench [--size small|medium|many-small|large | --data DIR] [--runs N] [--json FILE] [--keep]
  deno task bench --memory-scaling [--json FILE] [--keep]
(README.md, "Performance", says what each measures.)`;
const usage = (message: string): never => {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
};
const flags = (() => {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        data: { type: "string" },
        size: { type: "string" },
        json: { type: "string" },
        runs: { type: "string", default: "3" },
        keep: { type: "boolean", default: false },
        "memory-scaling": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  } catch (error) {
    // An unknown option or a missing value: say so, without a stack.
    return usage(error instanceof Error ? error.message : String(error));
  }
})();
if (flags.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (flags.size !== undefined && !(SIZES as readonly string[]).includes(flags.size)) {
  usage(`--size must be one of ${SIZES.join(", ")}, not ${flags.size}`);
}
if (flags.data !== undefined && flags.size !== undefined) {
  usage("--size and --data exclude each other");
}
if (flags["memory-scaling"] && (flags.data !== undefined || flags.size !== undefined)) {
  usage("--memory-scaling generates its own trees: it takes neither --size nor --data");
}
const size = (flags.size ?? "medium") as Size;
const runs = Number(flags.runs);
if (!Number.isInteger(runs) || runs < 1) {
  usage(`--runs must be a whole number ≥ 1, not ${flags.runs}`);
}

const hasTimeV = await canRun("/usr/bin/time", ["-v", "true"]);
const hasSync = await canRun("sync", []);

async function canRun(cmd: string, args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * Runs one command under `/usr/bin/time -v`; wall time from here, peak RSS from time. Dirty
 * pages are written out first (`sync`, untimed), so that no command pays for the writes and
 * deletions of the one before it.
 */
async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  if (hasSync) await new Deno.Command("sync").output();
  const timeFile = await Deno.makeTempFile({ prefix: "bench-time-" });
  const [c, a] = hasTimeV ? ["/usr/bin/time", ["-v", "-o", timeFile, cmd, ...args]] : [cmd, args];
  const started = performance.now();
  const out = await new Deno.Command(c, {
    args: a,
    env: opts.env,
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall_s = (performance.now() - started) / 1000;
  const decoder = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${out.code}\n${decoder.decode(out.stderr).slice(-2000)}`,
    );
  }
  let rss_mib: number | null = null;
  if (hasTimeV) {
    const report = await Deno.readTextFile(timeFile);
    const m = report.match(/Maximum resident set size \(kbytes\): (\d+)/);
    if (m) rss_mib = Number(m[1]) / 1024;
  }
  await Deno.remove(timeFile);
  return { wall_s, rss_mib, stdout: decoder.decode(out.stdout) };
}

async function duBytes(p: string): Promise<number> {
  const info = await Deno.lstat(p);
  if (!info.isDirectory) return info.size;
  let total = 0;
  for await (const e of Deno.readDir(p)) total += await duBytes(path.join(p, e.name));
  return total;
}

function measured(
  tool: string,
  operation: string,
  r: RunResult,
  stats: TreeStats,
  size: number | null,
): Measured {
  return summarize(
    tool,
    operation,
    [{ wall_s: r.wall_s, rss_mib: r.rss_mib, size_bytes: size }],
    stats,
  );
}

/** Median wall time (so one disturbed run does not decide), highest peak RSS, last size. */
function summarize(tool: string, operation: string, runs: Sample[], stats: TreeStats): Measured {
  const wall_s = median(runs.map((r) => r.wall_s));
  const rss = runs.map((r) => r.rss_mib).filter((m): m is number => m !== null);
  return {
    tool,
    operation,
    wall_s,
    wall_s_runs: runs.map((r) => r.wall_s),
    mb_per_s: stats.bytes / 1e6 / wall_s,
    files_per_s: stats.files / wall_s,
    peak_rss_mib: rss.length > 0 ? Math.max(...rss) : null,
    size_bytes: runs[runs.length - 1].size_bytes,
  };
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const log = (msg: string) => console.error(`[bench] ${msg}`);
const fmt = (n: number | null, digits = 1) => n === null ? "-" : n.toFixed(digits);
const mb = (n: number | null) => n === null ? "-" : (n / 1e6).toFixed(1);
const mib = (n: number) => (n / MIB).toFixed(2);
const human = (n: number) => n >= MIB ? `${mib(n)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
/** What a run prints: a header line, the table, and the targets as a list. */
const report = (header: string, table: string, targets: string[]) =>
  [header, "", table, "", ...targets.map((t) => `- ${t}`)].join("\n");
const markdownTable = (header: string[], rows: string[][]) =>
  [header, header.map(() => "---"), ...rows].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
const machine = () => ({
  cpus: navigator.hardwareConcurrency,
  os: Deno.build.os,
  arch: Deno.build.arch,
  deno: Deno.version.deno,
});

// ---------------------------------------------------------------- set-up
const benchStarted = performance.now();
const work = await Deno.makeTempDir({ prefix: "intellistor-bench-" });
const jsonPath = path.resolve(flags.json ?? path.join(work, "bench-results.json"));
const env = { ...Deno.env.toObject(), NO_COLOR: "1" };
const cli = (args: string[]) =>
  run(DENO, ["run", `--v8-flags=${V8_FLAGS}`, "-A", MAIN_TS, ...args], { env, cwd: work });

const envFile = path.join(work, ".env");
await Deno.writeTextFile(envFile, (await cli(["key", "generate"])).stdout);

/** Our backup of `data` into its own local store; the policy is named after `tag`. */
async function ourBackup(data: string, tag: string) {
  const store = path.join(work, `store-${tag}`);
  const policy = path.join(work, `policy-${tag}.yaml`);
  await cli(["policy-create", "--out", policy, "--paths", data, "--local-dir", store]);
  const r = await cli(["backup", "--policy", policy, "--env-file", envFile]);
  const json = JSON.parse(r.stdout);
  return {
    run: r,
    json,
    policy,
    store,
    key: json.s3.key_backup as string,
    storeBytes: await duBytes(store),
  };
}

/**
 * Our full restore into `out`, a new directory; a restored tree whose file count or bytes differ
 * from the source's is reported as a problem (the CLI verifies every SHA-256 itself).
 */
async function ourRestore(
  policy: string,
  key: string,
  stats: TreeStats,
  problems: string[],
  out: string,
) {
  const r = await cli([
    "restore",
    "--policy",
    policy,
    "--key",
    key,
    "--out",
    out,
    "--env-file",
    envFile,
  ]);
  const json = JSON.parse(r.stdout);
  const restored = await walkTree(out);
  if (restored.files !== stats.files || restored.bytes !== stats.bytes) {
    const problem = `our restore wrote ${restored.files} files, ${restored.bytes} bytes; ` +
      `the source has ${stats.files} files, ${stats.bytes} bytes`;
    log(`PROBLEM: ${problem}`);
    problems.push(problem);
  }
  return { run: r, json };
}

async function finish(report: object, summary: string): Promise<void> {
  console.log(summary);
  await Deno.writeTextFile(jsonPath, JSON.stringify(report, null, 2) + "\n");
  if (!flags.keep) {
    for await (const e of Deno.readDir(work)) {
      const full = path.join(work, e.name);
      if (full !== jsonPath) await Deno.remove(full, { recursive: true });
    }
    if (path.dirname(jsonPath) !== work) await Deno.remove(work);
  }
  log(
    `results: ${jsonPath}${flags.keep ? ` (work dir kept: ${work})` : ""}; ` +
      `took ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`,
  );
}

if (flags["memory-scaling"]) await memoryScaling();
else await compare();

// ---------------------------------------------------------------- --memory-scaling

async function memoryScaling(): Promise<void> {
  const problems: string[] = [];
  const trees: (TreeStats & {
    label: string;
    scale: number;
    backup: Measured;
    restore: Measured;
    restore_integrity: string;
  })[] = [];
  for (const [label, scale] of [["256 MiB", 1], ["2 GiB", 8]] as const) {
    const data = path.join(work, `data-${scale}`);
    log(`generating the ${label} tree in ${data}`);
    generateScaledTree(data, scale);
    const stats = await walkTree(data);
    log(`data: ${stats.files} files, ${(stats.bytes / 1e6).toFixed(1)} MB`);
    log(`intellistor backup (${label})`);
    const backup = await ourBackup(data, `x${scale}`);
    log(`intellistor restore (${label})`);
    const out = path.join(work, "restore-ours");
    const restore = await ourRestore(backup.policy, backup.key, stats, problems, out);
    await Deno.remove(out, { recursive: true });
    trees.push({
      label,
      scale,
      ...stats,
      backup: measured("intellistor", "backup", backup.run, stats, backup.storeBytes),
      restore: measured("intellistor", "restore", restore.run, stats, null),
      restore_integrity: restore.json.integrity as string,
    });
    // Nothing of this tree is needed any more: free the disk for the next one.
    if (!flags.keep) {
      await Deno.remove(data, { recursive: true });
      await Deno.remove(backup.store, { recursive: true });
    }
  }

  const [base, big] = trees;
  const rssRatio = (op: "backup" | "restore") => {
    const a = base[op].peak_rss_mib;
    const b = big[op].peak_rss_mib;
    return a === null || b === null ? null : b / a;
  };
  const rows = trees.flatMap((t) =>
    (["backup", "restore"] as const).map((op) => {
      const r = t[op];
      const ratio = r.peak_rss_mib === null || base[op].peak_rss_mib === null
        ? null
        : r.peak_rss_mib / base[op].peak_rss_mib;
      return [
        `${t.label} (${t.files} files)`,
        op,
        fmt(r.wall_s, 2),
        fmt(r.mb_per_s),
        fmt(r.files_per_s, 0),
        fmt(r.peak_rss_mib, 0),
        mb(r.size_bytes),
        ratio === null ? "-" : `${ratio.toFixed(2)}×`,
      ];
    })
  );
  const table = markdownTable(
    ["tree", "operation", "wall s", "MB/s", "files/s", "peak RSS MiB", "size MB", "RSS ÷ 256 MiB"],
    rows,
  );
  const targets = (["backup", "restore"] as const).map((op) =>
    `peak RSS ${op}: ${fmt(base[op].peak_rss_mib, 0)} MiB (256 MiB tree), ` +
    `${fmt(big[op].peak_rss_mib, 0)} MiB (2 GiB tree), 2 GiB ÷ 256 MiB ${fmt(rssRatio(op), 2)} ` +
    `(target: both ≤ ${RSS_TARGET_MIB} MiB, ratio ≤ ${RSS_GROWTH_TARGET})`
  );
  if (!hasTimeV) targets.push("/usr/bin/time -v is not available: no peak RSS was measured");
  targets.push(...problems.map((p) => `PROBLEM: ${p}`));
  const summary = report(
    `Memory scaling: our backup and restore of the generated mix at 256 MiB and at 2 GiB; ` +
      `${navigator.hardwareConcurrency} CPUs; Deno ${Deno.version.deno}; MB = 10^6 bytes.`,
    table,
    targets,
  );
  await finish({
    date: new Date().toISOString(),
    mode: "memory-scaling",
    machine: machine(),
    trees,
    peak_rss_ratio: { backup: rssRatio("backup"), restore: rssRatio("restore") },
    problems,
    targets,
  }, summary);
}

// ---------------------------------------------------------------- ours vs tar vs restic

async function compare(): Promise<void> {
  let data: string;
  let selectRel: string;
  if (flags.data) {
    data = path.resolve(flags.data);
    selectRel = await pickSelectFile(data);
  } else {
    data = path.join(work, "data");
    log(`generating ${size} tree in ${data}`);
    const started = performance.now();
    selectRel = await generateTree(data, size);
    log(`generated in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  const stats = await walkTree(data);
  log(
    `data: ${stats.files} files, ${
      (stats.bytes / 1e6).toFixed(1)
    } MB; selective file: ${selectRel}`,
  );

  const problems: string[] = [];

  // -------------------------------------------------------------- start-up
  log("intellistor --help start-up");
  await cli(["--help"]); // warm the module cache
  const startups: number[] = [];
  for (let i = 0; i < 7; i++) startups.push((await cli(["--help"])).wall_s);
  const startupMs = median(startups) * 1000;

  // -------------------------------------------------------------- rounds
  // Every round runs each tool once on the same data; the tools take turns going first, so
  // none always meets the disk right after another's writes. Medians are reported.
  const hasRestic = await canRun("restic", ["version"]);
  const resticVersion = hasRestic ? (await run("restic", ["version"])).stdout.trim() : null;
  if (!hasRestic) log("restic not on PATH: skipped");
  const samples = new Map<string, { tool: string; operation: string; runs: Sample[] }>();
  const record = (tool: string, operation: string, r: RunResult, size: number | null) => {
    const key = `${tool}\0${operation}`;
    if (!samples.has(key)) samples.set(key, { tool, operation, runs: [] });
    samples.get(key)!.runs.push({ wall_s: r.wall_s, rss_mib: r.rss_mib, size_bytes: size });
  };
  const selectiveRuns: SelectiveRun[] = [];
  const integrities: string[] = [];
  // Restored trees are removed once every round is over. For a minute or more after many files
  // are deleted, ext4 makes creating files several times slower (its inode allocator checks
  // each recently freed inode, kernel time): removing each tool's tree right after its run made
  // the next tool's restore pay for it (50,000 files, tar -xzf: 1.2 s after no deletion, 13 s
  // right after one). A tree of 1 GiB or more (few files for its size) is removed at once.
  const keepUntilEnd = stats.bytes < GIB;
  const restoredTrees: string[] = [];
  const restored = async (dir: string) => {
    if (keepUntilEnd) restoredTrees.push(dir);
    else await Deno.remove(dir, { recursive: true });
  };

  const runOurs = async (round: number) => {
    log(`intellistor backup (round ${round})`);
    const backup = await ourBackup(data, `bench-${round}`);
    record("intellistor", "backup", backup.run, backup.storeBytes);
    log(`intellistor restore (round ${round})`);
    const out = path.join(work, `restore-ours-${round}`);
    const restore = await ourRestore(backup.policy, backup.key, stats, problems, out);
    await restored(out);
    record("intellistor", "restore", restore.run, null);
    integrities.push(restore.json.integrity as string);
    log(`intellistor selective restore (round ${round})`);
    const selDir = path.join(work, "restore-one");
    const selRun = await cli([
      "restore",
      "--policy",
      backup.policy,
      "--key",
      backup.key,
      "--out",
      selDir,
      "--only",
      selectRel,
      "--env-file",
      envFile,
    ]);
    const selJson = JSON.parse(selRun.stdout);
    selectiveRuns.push({
      file_bytes: selJson.bytes as number,
      restored: selJson.restored as number,
      downloaded_bytes: selJson.downloaded_bytes as number,
      backup_bytes: backup.json.compressed_bytes as number,
      wall_s: selRun.wall_s,
      peak_rss_mib: selRun.rss_mib,
    });
    await Deno.remove(selDir, { recursive: true });
    await Deno.remove(backup.store, { recursive: true });
  };
  const runTar = async (round: number) => {
    log(`tar -czf (round ${round})`);
    const tarFile = path.join(work, "data.tar.gz");
    const tarC = await run("tar", ["-czf", tarFile, "-C", data, "."]);
    record("tar", "backup (-czf)", tarC, (await Deno.stat(tarFile)).size);
    log(`tar -xzf (round ${round})`);
    const tarDir = path.join(work, `restore-tar-${round}`);
    await Deno.mkdir(tarDir);
    const tarX = await run("tar", ["-xzf", tarFile, "-C", tarDir]);
    record("tar", "restore (-xzf)", tarX, null);
    await restored(tarDir);
    await Deno.remove(tarFile);
  };
  const runRestic = async (round: number) => {
    // A new repository every round: a second backup into the same one would only deduplicate.
    const repo = path.join(work, "restic-repo");
    const renv = {
      ...env,
      RESTIC_REPOSITORY: repo,
      RESTIC_PASSWORD: "bench-password",
      RESTIC_CACHE_DIR: path.join(work, "restic-cache"),
    };
    await run("restic", ["init"], { env: renv });
    log(`restic backup (round ${round})`);
    const rb = await run("restic", ["backup", "--quiet", data], { env: renv });
    record("restic", "backup", rb, await duBytes(repo));
    log(`restic restore (round ${round})`);
    const rdir = path.join(work, `restore-restic-${round}`);
    const rr = await run("restic", ["restore", "latest", "--quiet", "--target", rdir], {
      env: renv,
    });
    record("restic", "restore", rr, null);
    await restored(rdir);
    await Deno.remove(repo, { recursive: true });
    await Deno.remove(renv.RESTIC_CACHE_DIR, { recursive: true }).catch(() => {});
  };
  const tools = hasRestic ? [runOurs, runTar, runRestic] : [runOurs, runTar];
  for (let round = 1; round <= runs; round++) {
    const shift = (round - 1) % tools.length;
    for (const tool of [...tools.slice(shift), ...tools.slice(0, shift)]) await tool(round);
  }
  for (const dir of restoredTrees) await Deno.remove(dir, { recursive: true });

  const results: Measured[] = [...samples.values()].map(({ tool, operation, runs }) =>
    summarize(tool, operation, runs, stats)
  );
  const selective = {
    file: selectRel,
    ...selectiveRuns.reduce((a, b) => (b.wall_s > a.wall_s ? b : a)),
    wall_s_runs: selectiveRuns.map((r) => r.wall_s),
    target_applies: false,
  };

  // -------------------------------------------------------------- report
  const ours = (op: string) => results.find((r) => r.tool === "intellistor" && r.operation === op)!;
  const ratio = (r: Measured) => {
    const base = ours(r.operation.startsWith("backup") ? "backup" : "restore");
    return r.wall_s / base.wall_s;
  };

  const rows = results.map((r) => [
    r.tool,
    r.operation,
    fmt(r.wall_s, 2),
    fmt(r.mb_per_s),
    fmt(r.files_per_s, 0),
    fmt(r.peak_rss_mib, 0),
    mb(r.size_bytes),
    `${ratio(r).toFixed(2)}×`,
  ]);
  const table = markdownTable(
    ["tool", "operation", "wall s", "MB/s", "files/s", "peak RSS MiB", "size MB", "wall ÷ ours"],
    rows,
  );

  const tarBackup = results.find((r) => r.operation === "backup (-czf)")!;
  const tarRestore = results.find((r) => r.operation === "restore (-xzf)")!;
  const resticBackup = results.find((r) => r.tool === "restic" && r.operation === "backup");
  const manySmall = !flags.data && size === "many-small";
  /** Ratio of the medians, and with several rounds each round's own ratio. */
  const versus = (mine: Measured, theirs: Measured) => {
    const each = mine.wall_s_runs.map((w, i) => (w / theirs.wall_s_runs[i]).toFixed(2));
    const ofMedians = (mine.wall_s / theirs.wall_s).toFixed(2);
    return each.length > 1 ? `${ofMedians} (rounds: ${each.join(", ")})` : ofMedians;
  };
  const vsTar = versus(ours("backup"), tarBackup);

  // The selective-restore target is for one ~1 MiB file from a backup of at least 1 GiB.
  const fileIsMib = selective.file_bytes >= SELECT_TARGET / 2 &&
    selective.file_bytes <= SELECT_TARGET * 2;
  const bigBackup = selective.backup_bytes >= GIB;
  selective.target_applies = fileIsMib && bigBackup;
  const selectiveTarget = selective.target_applies
    ? "(target for a ≥ 1 GiB backup: ≤ 8 MiB, ≤ 2 s)"
    : !bigBackup
    ? "(the backup is smaller than 1 GiB, so the target for a ≥ 1 GiB backup, " +
      "≤ 8 MiB and ≤ 2 s, does not apply)"
    : "(the file is not ~1 MiB, so the target for one 1 MiB file, ≤ 8 MiB and ≤ 2 s, " +
      "does not apply)";

  const targets = [
    manySmall
      ? `backup ÷ tar -czf, 50,000 files of ~1 KiB: ${vsTar} (target ≤ 1.5)`
      : `backup ÷ tar -czf: ${vsTar} (target ≤ 0.5)`,
    ...(resticBackup
      ? [
        `backup ÷ restic backup: ${versus(ours("backup"), resticBackup)} (target ≤ 1)`,
      ]
      : []),
    `restore ÷ tar -xzf: ${versus(ours("restore"), tarRestore)} (target ≤ 1)`,
    `peak RSS backup / restore: ${fmt(ours("backup").peak_rss_mib, 0)} / ${
      fmt(ours("restore").peak_rss_mib, 0)
    } MiB (target ≤ ${RSS_TARGET_MIB})`,
    `selective restore of ${selectRel} (${human(selective.file_bytes)}): ` +
    `${mib(selective.downloaded_bytes)} MiB downloaded of ${mib(selective.backup_bytes)} MiB, ` +
    `${selective.wall_s.toFixed(2)} s${runs > 1 ? ` (slowest of ${runs})` : ""} ${selectiveTarget}`,
    `intellistor --help start-up: ${startupMs.toFixed(0)} ms median of ${startups.length} ` +
    `(target ≤ 150 ms)`,
    ...problems.map((p) => `PROBLEM: ${p}`),
  ];

  const summary = report(
    `Data: ${stats.files} files, ${(stats.bytes / 1e6).toFixed(1)} MB` +
      (flags.data ? ` (${data})` : ` (generated, --size ${size})`) +
      `; ${navigator.hardwareConcurrency} CPUs; Deno ${Deno.version.deno}` +
      (resticVersion ? `; ${resticVersion}` : "; restic not installed") +
      `; ${runs === 1 ? "one round" : `median of ${runs} rounds`}` +
      `; MB = 10^6 bytes; wall ÷ ours > 1 means slower than ours.`,
    table,
    targets,
  );

  await finish({
    date: new Date().toISOString(),
    mode: "compare",
    machine: machine(),
    data: { path: flags.data ? data : null, size: flags.data ? null : size, ...stats },
    restic: resticVersion,
    rounds: runs,
    results: results.map((r) => ({ ...r, wall_vs_ours: ratio(r) })),
    our_restore_integrity: integrities,
    selective_restore: selective,
    startup_ms: { median: startupMs, runs: startups.map((s) => s * 1000) },
    problems,
    targets,
  }, summary);
}

/** For --data: a regular file nearest 1 MiB, whose path has no glob characters. */
async function pickSelectFile(root: string): Promise<string> {
  let best: { rel: string; diff: number } | null = null;
  const visit = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const full = path.join(dir, e.name);
      if (e.isDirectory) await visit(full);
      else if (e.isFile) {
        const rel = path.relative(root, full).split(path.sep).join("/");
        if (/[*?[\]{}!\\]/.test(rel)) continue;
        const diff = Math.abs((await Deno.stat(full)).size - SELECT_TARGET);
        if (!best || diff < best.diff) best = { rel, diff };
      }
    }
  };
  await visit(root);
  if (!best) throw new Error(`no regular file in ${root}`);
  return (best as { rel: string }).rel;
}
