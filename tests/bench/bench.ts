/**
 * `deno task bench [--data DIR] [--size small|medium] [--json FILE] [--keep]`
 *
 * Benchmarks our backup / restore (the CLI, as a subprocess, to a local store) against
 * `tar -czf` / `tar -xzf` and, when it is on PATH, `restic`, all on the same data in one run.
 * Prints one table and writes the results as JSON. It never asserts on timings and is not part
 * of `deno task test` (the file is not a `*_test.ts`).
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { generateTree, type TreeStats, walkTree } from "./data.ts";

const MAIN_TS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../main.ts");
const DENO = Deno.execPath();
const SELECT_TARGET = 1024 * 1024;

interface Measured {
  tool: string;
  operation: string;
  wall_s: number;
  mb_per_s: number;
  files_per_s: number;
  peak_rss_mib: number | null;
  size_bytes: number | null;
}

interface RunResult {
  wall_s: number;
  rss_mib: number | null;
  stdout: string;
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    data: { type: "string" },
    size: { type: "string", default: "medium" },
    json: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
if (flags.size !== "small" && flags.size !== "medium") {
  console.error(`--size must be small or medium, not ${flags.size}`);
  Deno.exit(2);
}

const hasTimeV = await canRun("/usr/bin/time", ["-v", "true"]);

async function canRun(cmd: string, args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Runs one command under `/usr/bin/time -v`; wall time from here, peak RSS from time. */
async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
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
  return {
    tool,
    operation,
    wall_s: r.wall_s,
    mb_per_s: stats.bytes / 1e6 / r.wall_s,
    files_per_s: stats.files / r.wall_s,
    peak_rss_mib: r.rss_mib,
    size_bytes: size,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const log = (msg: string) => console.error(`[bench] ${msg}`);

// ---------------------------------------------------------------- set-up
const work = await Deno.makeTempDir({ prefix: "intellistor-bench-" });
const jsonPath = path.resolve(flags.json ?? path.join(work, "bench-results.json"));
let data: string;
let selectRel: string;
if (flags.data) {
  data = path.resolve(flags.data);
  selectRel = await pickSelectFile(data);
} else {
  data = path.join(work, "data");
  log(`generating ${flags.size} tree in ${data}`);
  selectRel = await generateTree(data, flags.size);
}
const stats = await walkTree(data);
log(
  `data: ${stats.files} files, ${(stats.bytes / 1e6).toFixed(1)} MB; selective file: ${selectRel}`,
);

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

const results: Measured[] = [];
const env = { ...Deno.env.toObject(), NO_COLOR: "1" };

// ---------------------------------------------------------------- start-up
log("intellistor --help start-up");
await run(DENO, ["run", "-A", MAIN_TS, "--help"]); // warm the module cache
const startups: number[] = [];
for (let i = 0; i < 7; i++) {
  startups.push((await run(DENO, ["run", "-A", MAIN_TS, "--help"])).wall_s);
}
const startupMs = median(startups) * 1000;

// ---------------------------------------------------------------- ours
const envFile = path.join(work, ".env");
const keyLine = (await run(DENO, ["run", "-A", MAIN_TS, "key", "generate"])).stdout;
await Deno.writeTextFile(envFile, keyLine);
const store = path.join(work, "store");
const policy = path.join(work, "policy.yaml");
await run(DENO, [
  "run",
  "-A",
  MAIN_TS,
  "policy-create",
  "--out",
  policy,
  "--paths",
  data,
  "--local-dir",
  store,
], { env, cwd: work });

log("intellistor backup");
const ourBackup = await run(DENO, [
  "run",
  "-A",
  MAIN_TS,
  "backup",
  "--policy",
  policy,
  "--env-file",
  envFile,
], { env, cwd: work });
const backupJson = JSON.parse(ourBackup.stdout);
const keyBackup: string = backupJson.s3.key_backup;
results.push(measured("intellistor", "backup", ourBackup, stats, await duBytes(store)));

log("intellistor restore");
const ourRestoreDir = path.join(work, "restore-ours");
const ourRestore = await run(DENO, [
  "run",
  "-A",
  MAIN_TS,
  "restore",
  "--policy",
  policy,
  "--key",
  keyBackup,
  "--out",
  ourRestoreDir,
  "--env-file",
  envFile,
], { env, cwd: work });
const restoreJson = JSON.parse(ourRestore.stdout);
results.push(measured("intellistor", "restore", ourRestore, stats, null));
await Deno.remove(ourRestoreDir, { recursive: true });

log("intellistor selective restore");
const selDir = path.join(work, "restore-one");
const selRun = await run(DENO, [
  "run",
  "-A",
  MAIN_TS,
  "restore",
  "--policy",
  policy,
  "--key",
  keyBackup,
  "--out",
  selDir,
  "--only",
  selectRel,
  "--env-file",
  envFile,
], { env, cwd: work });
const selJson = JSON.parse(selRun.stdout);
const selective = {
  file: selectRel,
  file_bytes: selJson.bytes as number,
  restored: selJson.restored as number,
  downloaded_bytes: selJson.downloaded_bytes as number,
  backup_bytes: backupJson.compressed_bytes as number,
  wall_s: selRun.wall_s,
  peak_rss_mib: selRun.rss_mib,
};
await Deno.remove(selDir, { recursive: true });

// ---------------------------------------------------------------- tar
log("tar -czf");
const tarFile = path.join(work, "data.tar.gz");
const tarC = await run("tar", ["-czf", tarFile, "-C", data, "."]);
results.push(measured("tar", "backup (-czf)", tarC, stats, (await Deno.stat(tarFile)).size));
log("tar -xzf");
const tarDir = path.join(work, "restore-tar");
await Deno.mkdir(tarDir);
const tarX = await run("tar", ["-xzf", tarFile, "-C", tarDir]);
results.push(measured("tar", "restore (-xzf)", tarX, stats, null));
await Deno.remove(tarDir, { recursive: true });
await Deno.remove(tarFile);

// ---------------------------------------------------------------- restic
const hasRestic = await canRun("restic", ["version"]);
let resticVersion: string | null = null;
if (hasRestic) {
  resticVersion = (await run("restic", ["version"])).stdout.trim();
  const repo = path.join(work, "restic-repo");
  const renv = {
    ...env,
    RESTIC_REPOSITORY: repo,
    RESTIC_PASSWORD: "bench-password",
    RESTIC_CACHE_DIR: path.join(work, "restic-cache"),
  };
  await run("restic", ["init"], { env: renv });
  log("restic backup");
  const rb = await run("restic", ["backup", "--quiet", data], { env: renv });
  results.push(measured("restic", "backup", rb, stats, await duBytes(repo)));
  log("restic restore");
  const rdir = path.join(work, "restore-restic");
  const rr = await run("restic", ["restore", "latest", "--quiet", "--target", rdir], {
    env: renv,
  });
  results.push(measured("restic", "restore", rr, stats, null));
  await Deno.remove(rdir, { recursive: true });
  await Deno.remove(repo, { recursive: true });
} else {
  log("restic not on PATH: skipped");
}

// ---------------------------------------------------------------- report
const ours = (op: string) => results.find((r) => r.tool === "intellistor" && r.operation === op)!;
const ratio = (r: Measured) => {
  const base = ours(r.operation.startsWith("backup") ? "backup" : "restore");
  return r.wall_s / base.wall_s;
};
const fmt = (n: number | null, digits = 1) => n === null ? "-" : n.toFixed(digits);
const mb = (n: number | null) => n === null ? "-" : (n / 1e6).toFixed(1);

const header = [
  "tool",
  "operation",
  "wall s",
  "MB/s",
  "files/s",
  "peak RSS MiB",
  "size MB",
  "wall ÷ ours",
];
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
const table = [header, header.map(() => "---"), ...rows]
  .map((cells) => `| ${cells.join(" | ")} |`).join("\n");

const tarBackup = results.find((r) => r.operation === "backup (-czf)")!;
const tarRestore = results.find((r) => r.operation === "restore (-xzf)")!;
const resticBackup = results.find((r) => r.tool === "restic" && r.operation === "backup");
const targets = [
  `backup ÷ tar -czf: ${(ours("backup").wall_s / tarBackup.wall_s).toFixed(2)} (target ≤ 0.5)`,
  ...(resticBackup
    ? [
      `backup ÷ restic backup: ${
        (ours("backup").wall_s / resticBackup.wall_s).toFixed(2)
      } (target ≤ 1)`,
    ]
    : []),
  `restore ÷ tar -xzf: ${(ours("restore").wall_s / tarRestore.wall_s).toFixed(2)} (target ≤ 1)`,
  `peak RSS backup / restore: ${fmt(ours("backup").peak_rss_mib, 0)} / ${
    fmt(ours("restore").peak_rss_mib, 0)
  } MiB (target ≤ 200)`,
  `selective restore of ${selectRel} (${(selective.file_bytes / 1048576).toFixed(2)} MiB): ` +
  `${(selective.downloaded_bytes / 1048576).toFixed(2)} MiB downloaded of ` +
  `${(selective.backup_bytes / 1048576).toFixed(2)} MiB, ${selective.wall_s.toFixed(2)} s ` +
  `(target for a ≥ 1 GiB backup: ≤ 8 MiB, ≤ 2 s)`,
  `intellistor --help start-up: ${startupMs.toFixed(0)} ms median of ${startups.length} ` +
  `(target ≤ 150 ms)`,
];

const summary = [
  `Data: ${stats.files} files, ${(stats.bytes / 1e6).toFixed(1)} MB` +
  (flags.data ? ` (${data})` : ` (generated, --size ${flags.size})`) +
  `; ${navigator.hardwareConcurrency} CPUs; Deno ${Deno.version.deno}` +
  (resticVersion ? `; ${resticVersion}` : "; restic not installed") +
  `; MB = 10^6 bytes; wall ÷ ours > 1 means slower than ours.`,
  "",
  table,
  "",
  ...targets.map((t) => `- ${t}`),
].join("\n");
console.log(summary);

const report = {
  date: new Date().toISOString(),
  machine: {
    cpus: navigator.hardwareConcurrency,
    os: Deno.build.os,
    arch: Deno.build.arch,
    deno: Deno.version.deno,
  },
  data: { path: flags.data ? data : null, size: flags.data ? null : flags.size, ...stats },
  restic: resticVersion,
  results: results.map((r) => ({ ...r, wall_vs_ours: ratio(r) })),
  our_restore_integrity: restoreJson.integrity,
  selective_restore: selective,
  startup_ms: { median: startupMs, runs: startups.map((s) => s * 1000) },
  targets,
};
await Deno.writeTextFile(jsonPath, JSON.stringify(report, null, 2) + "\n");

if (!flags.keep) {
  for await (const e of Deno.readDir(work)) {
    const full = path.join(work, e.name);
    if (full !== jsonPath) await Deno.remove(full, { recursive: true });
  }
  if (path.dirname(jsonPath) !== work) await Deno.remove(work);
}
log(`results: ${jsonPath}${flags.keep ? ` (work dir kept: ${work})` : ""}`);
