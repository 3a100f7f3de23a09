/**
 * The seed's flow end to end, as a user runs it, against a real S3-compatible
 * server: policy-create → backup → paste cli_restore → full restore →
 * --only with each of the seed's examples; then the error cases.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { createS3Storage, generateRootKey } from "../mod.ts";
import { MAIN, runCli, spawnCli, spawnShell } from "./support/cli.ts";
import { s3rverCredentials, type S3TestServer, startS3Server } from "./support/s3_server.ts";
import { assertSameTree, makeSampleTree, snapshotTree } from "./support/tree.ts";

interface World {
  server: S3TestServer;
  work: string;
  source: string;
  envFile: string;
  key: string;
  env: Record<string, string>;
}

async function setUp(): Promise<World> {
  const server = await startS3Server();
  const work = await Deno.makeTempDir({ prefix: "intellistor-e2e-" });
  const source = path.join(work, "imagens");
  await makeSampleTree(source, { largeFileSize: 5_000_000 });
  const key = generateRootKey();
  const env = {
    AWS_ACCESS_KEY_ID: s3rverCredentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3rverCredentials.secretAccessKey,
    AWS_DEFAULT_REGION: "us-east-1",
    AWS_S3_BUCKET: server.bucket,
    AWS_ENDPOINT_URL_S3: server.endpoint,
    INTELLISTOR_KEY: key,
  };
  const envFile = path.join(work, "config", ".env");
  await writeEnv(envFile, env);
  return { server, work, source, envFile, key, env };
}

async function writeEnv(file: string, env: Record<string, string>): Promise<void> {
  await Deno.mkdir(path.dirname(file), { recursive: true });
  await Deno.writeTextFile(
    file,
    Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n") + "\n",
  );
}

async function tearDown(world: World): Promise<void> {
  await world.server.stop();
  await Deno.remove(world.work, { recursive: true });
}

/** Runs the seed's first two steps; returns the backup's JSON. */
/** The parts of backup's JSON output these tests read. */
interface BackupJson {
  backup_id: string;
  timestamp: string;
  policy: string;
  s3: { bucket: string | null; key_backup: string; key_manifest: string };
  files: number;
  compressed_bytes: number;
  warnings: unknown[];
  cli_restore: string;
  [field: string]: unknown;
}

async function createAndBackUp(world: World): Promise<BackupJson> {
  const created = await runCli([
    "policy-create",
    "--out",
    "policies/policy_02.yaml",
    "--paths",
    world.source,
    "--schedule",
    "0 2 * * *",
  ], { cwd: world.work });
  assert.equal(created.code, 0, created.stderr);
  assert.deepEqual(created.json(), { created: "policies/policy_02.yaml" });

  const backup = await runCli([
    "backup",
    "--policy",
    "policies/policy_02.yaml",
    "--out",
    "out",
    "--env-file",
    world.envFile,
  ], { cwd: world.work });
  assert.equal(backup.code, 0, backup.stderr);
  return backup.json() as unknown as BackupJson;
}

function restoreArgs(world: World, key: string, out: string, ...extra: string[]): string[] {
  return [
    "restore",
    "--policy",
    "policies/policy_02.yaml",
    "--key",
    key,
    "--out",
    out,
    "--env-file",
    world.envFile,
    ...extra,
  ];
}

async function listRestored(root: string): Promise<string[]> {
  const snapshot = await snapshotTree(root);
  return [...snapshot].filter(([, e]) => e.type !== "dir").map(([name]) => name).sort();
}

Deno.test("seed flow: policy-create, backup, pasted cli_restore, --only examples (S3)", async (t) => {
  const world = await setUp();
  try {
    const backup = await createAndBackUp(world);
    await t.step("backup JSON has the seed's fields and the objects exist", async () => {
      for (
        const field of [
          "backup_id",
          "timestamp",
          "policy",
          "files",
          "bytes",
          "compressed_bytes",
          "duration_ms",
          "warnings",
          "cli_restore",
        ]
      ) assert.ok(field in backup, `missing ${field}`);
      assert.equal(backup.policy, "mvp-default");
      assert.match(backup.timestamp, /^\d{8}T\d{6}Z$/);
      assert.match(backup.backup_id, /^[0-9a-f-]{36}$/);
      assert.equal(backup.s3.bucket, world.server.bucket);
      const prefix = `backups/mvp-default/${backup.timestamp}/${backup.backup_id}/`;
      assert.equal(backup.s3.key_backup, prefix + "backup.tar.gz.enc");
      assert.equal(backup.s3.key_manifest, prefix + "manifest.json");
      assert.deepEqual(backup.warnings, []);
      assert.equal(backup.files, 11);
      const s3 = await createS3Storage({
        bucket: world.server.bucket,
        endpoint: world.server.endpoint,
        credentials: s3rverCredentials,
      });
      try {
        for (const key of [backup.s3.key_backup, backup.s3.key_manifest]) {
          const local = await Deno.stat(path.join(world.work, "out", ...key.split("/")));
          assert.equal((await s3.head(key))?.size, local.size, `${key} in S3 and in --out`);
        }
      } finally {
        await s3.close();
      }
    });

    await t.step("cli_restore pasted into sh restores everything identically", async () => {
      const pasted = await spawnShell(backup.cli_restore, { cwd: world.work });
      assert.equal(pasted.code, 0, pasted.stderr);
      const result = JSON.parse(pasted.stdout);
      assert.equal(result.integrity, "ok");
      assert.equal(result.found, result.restored);
      await assertSameTree(world.source, path.join(world.work, "restore"));
    });

    const cases: Array<[string, string[]]> = [
      ["Diagrama_Solução.png", ["Diagrama_Solução.png", "docs/imagens/Diagrama_Solução.png"]],
      ["*.png", [
        "Cópia de Diagrama_Solução.png",
        "Diagrama_Solução.png",
        "docs/imagens/Diagrama_Solução.png",
      ]],
      ["docs/*", [
        "docs/imagens/Diagrama_Solução.png",
        "docs/leia-me.md",
        "docs/sub/deep/notas.txt",
      ]],
      ["Cópia*", ["Cópia de Diagrama_Solução.png"]],
    ];
    for (const [pattern, expected] of cases) {
      await t.step(`--only "${pattern}" restores exactly the matching entries`, async () => {
        const out = `restore_seletivo_${expected.length}_${pattern.length}`;
        const result = await runCli(
          restoreArgs(world, backup.s3.key_backup, out, "--only", pattern),
          { cwd: world.work },
        );
        assert.equal(result.code, 0, result.stderr);
        const json = result.json();
        assert.equal(json.integrity, "ok");
        assert.equal(json.restored, json.found);
        assert.ok((json.downloaded_bytes as number) < backup.compressed_bytes);
        assert.deepEqual(await listRestored(path.join(world.work, out)), expected);
        await assertSameTree(
          world.source,
          path.join(world.work, out),
          (name) => expected.includes(name),
        );
      });
    }

    await t.step("several --only patterns combine", async () => {
      const result = await runCli(
        restoreArgs(
          world,
          backup.s3.key_backup,
          "multi",
          "--only",
          "Cópia*",
          "--only",
          "vazio.txt",
        ),
        { cwd: world.work },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await listRestored(path.join(world.work, "multi")), [
        "Cópia de Diagrama_Solução.png",
        "vazio.txt",
      ]);
    });

    await t.step("a pattern that matches nothing exits 10 with NO_MATCH", async () => {
      const result = await runCli(
        restoreArgs(world, backup.s3.key_backup, "none", "--only", "*.docx"),
        { cwd: world.work },
      );
      assert.equal(result.code, 10);
      assert.equal(result.error().code, "NO_MATCH");
      await assert.rejects(Deno.stat(path.join(world.work, "none")));
    });

    await t.step(
      "one pattern that matches nothing, beside one that matches: NO_MATCH naming it, nothing written",
      async () => {
        const result = await runCli(
          restoreArgs(world, backup.s3.key_backup, "typo", "--only", "*.png", "--only", "vazo.txt"),
          { cwd: world.work },
        );
        assert.equal(result.code, 10, result.stderr);
        assert.equal(result.error().code, "NO_MATCH");
        assert.match(result.error().message, /"vazo\.txt"/);
        assert.doesNotMatch(result.error().message, /png/);
        await assert.rejects(Deno.stat(path.join(world.work, "typo")));
      },
    );

    await t.step("a malformed pattern is refused before any download (exit 2)", async () => {
      const result = await runCli(
        restoreArgs(world, "backups/none/x/y/backup.tar.gz.enc", "bad", "--only", "[abc"),
        { cwd: world.work },
      );
      assert.equal(result.code, 2);
      assert.equal(result.error().code, "PATTERN_INVALID");
    });

    await t.step("restoring over existing files is refused unless --overwrite", async () => {
      const again = await runCli(restoreArgs(world, backup.s3.key_backup, "restore"), {
        cwd: world.work,
      });
      assert.equal(again.code, 1);
      assert.equal(again.error().code, "OUTPUT_EXISTS");
      const forced = await runCli(
        restoreArgs(world, backup.s3.key_backup, "restore", "--overwrite"),
        { cwd: world.work },
      );
      assert.equal(forced.code, 0, forced.stderr);
      await assertSameTree(world.source, path.join(world.work, "restore"));
    });

    await t.step("list shows the backup with the key restore needs", async () => {
      const listed = await runCli([
        "list",
        "--policy",
        "policies/policy_02.yaml",
        "--env-file",
        world.envFile,
      ], {
        cwd: world.work,
      });
      assert.equal(listed.code, 0, listed.stderr);
      const json = listed.json() as { backups: Array<{ key_backup: string; files: number }> };
      assert.deepEqual(json.backups.map((b) => [b.key_backup, b.files]), [[
        backup.s3.key_backup,
        11,
      ]]);
    });

    await t.step(
      "list --key shows a backup's entries, --only selects as restore does",
      async () => {
        const args = [
          "list",
          "--policy",
          "policies/policy_02.yaml",
          "--env-file",
          world.envFile,
          "--key",
          backup.s3.key_backup,
        ];
        const all = await runCli(args, { cwd: world.work });
        assert.equal(all.code, 0, all.stderr);
        type Listed = {
          entries: Array<{ relative_path: string; type: string; size: number; mtime: string }>;
          count: number;
          backup_id: string;
        };
        const listed = all.json() as Listed;
        assert.equal(listed.backup_id, backup.backup_id);
        assert.equal(listed.count, listed.entries.length);
        const png = listed.entries.find((e) => e.relative_path === "Cópia de Diagrama_Solução.png");
        assert.ok(png, JSON.stringify(listed.entries));
        const source = await Deno.stat(path.join(world.source, "Cópia de Diagrama_Solução.png"));
        assert.equal(png.type, "file");
        assert.equal(png.size, source.size);
        assert.equal(png.mtime, source.mtime!.toISOString());
        assert.ok(
          listed.entries.some((e) => e.relative_path === "pasta vazia" && e.type === "dir"),
        );

        const selected = await runCli([...args, "--only", "Cópia*"], { cwd: world.work });
        assert.equal(selected.code, 0, selected.stderr);
        assert.deepEqual(
          (selected.json() as Listed).entries.map((e) => e.relative_path),
          listed.entries.map((e) => e.relative_path).filter((name) => name.startsWith("Cópia")),
        );
        const withoutKey = await runCli([...args.slice(0, -2), "--only", "*.png"], {
          cwd: world.work,
        });
        assert.equal(withoutKey.code, 2, withoutKey.stderr);
        assert.equal(withoutKey.error().code, "USAGE");
        const none = await runCli([...args, "--only", "*.docx"], { cwd: world.work });
        assert.equal(none.code, 0, none.stderr);
        assert.deepEqual((none.json() as Listed).entries, []);
      },
    );

    await t.step("decrypt writes a plain .tar.gz that GNU tar lists", async () => {
      const decrypted = await runCli([
        "decrypt",
        "--key",
        path.join("out", ...backup.s3.key_backup.split("/")),
        "--out",
        "plain.tar.gz",
        "--env-file",
        world.envFile,
      ], { cwd: world.work });
      assert.equal(decrypted.code, 0, decrypted.stderr);
      const tar = await new Deno.Command("tar", {
        args: ["-tzf", path.join(world.work, "plain.tar.gz")],
        stdout: "piped",
      }).output();
      assert.ok(tar.success);
      const names = new TextDecoder().decode(tar.stdout).split("\n").filter(Boolean);
      assert.ok(names.includes("Cópia de Diagrama_Solução.png"));
      assert.ok(names.includes("pasta vazia/"));
    });

    await t.step(
      "decrypt given the manifest instead of the object: USAGE, not a format error",
      async () => {
        const manifest = path.join("out", ...backup.s3.key_manifest.split("/"));
        const result = await runCli(
          ["decrypt", "--key", manifest, "--out", "m.tar.gz", "--env-file", world.envFile],
          { cwd: world.work },
        );
        assert.equal(result.code, 2, result.stderr);
        assert.equal(JSON.parse(result.stderr).error.code, "USAGE");
      },
    );
  } finally {
    await tearDown(world);
  }
});

Deno.test("errors: one JSON object on stderr, documented exit code, no stack, no secret", async (t) => {
  const world = await setUp();
  try {
    const backup = await createAndBackUp(world);
    const key = backup.s3.key_backup;
    const secretValues = [world.key, s3rverCredentials.secretAccessKey];

    const expectError = async (
      name: string,
      argv: string[],
      code: string,
      exit: number,
      message?: RegExp,
    ) => {
      await t.step(name, async () => {
        const result = await runCli(argv, { cwd: world.work });
        assert.equal(result.code, exit, result.stderr);
        assert.equal(result.stdout, "");
        const error = result.error();
        assert.equal(error.code, code);
        if (message) assert.match(error.message, message);
        assert.ok(error.message.length > 0 && error.hint.length > 0, result.stderr);
        assert.equal(result.stderr.trim().split("\n").length, 1, "one line of JSON");
        assert.doesNotMatch(result.stderr, /\n\s+at /);
        for (const secret of secretValues) {
          assert.ok(!result.stderr.includes(secret), "secret leaked");
        }
      });
    };

    const withEnv = async (name: string, env: Record<string, string>) => {
      const file = path.join(world.work, "config", name);
      await writeEnv(file, env);
      return file;
    };
    const noKey = await withEnv("nokey.env", { ...world.env, INTELLISTOR_KEY: "" });
    const wrongKey = await withEnv("wrongkey.env", {
      ...world.env,
      INTELLISTOR_KEY: generateRootKey(),
    });
    const badKey = await withEnv("badkey.env", { ...world.env, INTELLISTOR_KEY: "not-base64!" });
    const closedPort = await withEnv("closed.env", {
      ...world.env,
      AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9",
    });
    const badEndpoint = await withEnv("badendpoint.env", {
      ...world.env,
      AWS_ENDPOINT_URL_S3: "127.0.0.1:9000",
    });
    const urlBucket = await withEnv("urlbucket.env", {
      ...world.env,
      AWS_S3_BUCKET: "s3://intellistor-prd",
    });
    const badRegion = await withEnv("badregion.env", { ...world.env, AWS_REGION: "eu west/1" });
    const badRetry = await withEnv("badretry.env", {
      ...world.env,
      INTELLISTOR_S3_RETRY_SECONDS: "1 minute",
    });
    const noBucket = await withEnv("nobucket.env", {
      ...world.env,
      AWS_S3_BUCKET: "does-not-exist",
    });
    const denied = await withEnv("denied.env", { ...world.env, AWS_ACCESS_KEY_ID: "WRONGID" });
    const policy = ["--policy", "policies/policy_02.yaml"];

    await expectError(
      "a flag given twice → USAGE (2), not its last value taken silently",
      ["backup", ...policy, "--policy", "policies/other.yaml"],
      "USAGE",
      2,
    );
    await expectError(
      "AWS_ENDPOINT_URL_S3 that is not a URL → ENV_FILE_INVALID (2), not a network error",
      ["backup", ...policy, "--env-file", badEndpoint],
      "ENV_FILE_INVALID",
      2,
    );
    // The rules the policy's own bucket and region get, not "try again later".
    await expectError(
      "AWS_S3_BUCKET given as an s3:// URL → ENV_FILE_INVALID (2), naming the variable",
      ["list", ...policy, "--env-file", urlBucket],
      "ENV_FILE_INVALID",
      2,
      /AWS_S3_BUCKET: "s3:\/\/intellistor-prd" is not a bucket name/,
    );
    await expectError(
      "AWS_REGION that is no region → ENV_FILE_INVALID (2)",
      ["backup", ...policy, "--env-file", badRegion],
      "ENV_FILE_INVALID",
      2,
      /AWS_REGION: "eu west\/1" is not a region name/,
    );
    await t.step("a key pasted with a prefix or as an s3:// URL: told what to give", async () => {
      const prefixed = await runCli(
        ["restore", ...policy, "--key", `team/a/${key}`, "--out", "r", "--env-file", world.envFile],
        { cwd: world.work },
      );
      assert.equal(prefixed.code, 10, prefixed.stderr);
      assert.equal(prefixed.error().code, "BACKUP_NOT_FOUND");
      assert.ok(prefixed.error().hint.includes(`try "${key}"`), prefixed.stderr);
      const url = await runCli(
        [
          "restore",
          ...policy,
          "--key",
          `s3://bucket/${key}`,
          "--out",
          "r",
          "--env-file",
          world.envFile,
        ],
        { cwd: world.work },
      );
      assert.equal(url.code, 2, url.stderr);
      assert.match(url.error().message, /not an s3:\/\/ URL/);
    });
    await expectError(
      "INTELLISTOR_S3_RETRY_SECONDS that is not whole seconds → ENV_FILE_INVALID (2)",
      ["list", ...policy, "--env-file", badRetry],
      "ENV_FILE_INVALID",
      2,
      /INTELLISTOR_S3_RETRY_SECONDS: "1 minute" is not a number of seconds/,
    );
    await t.step(
      "list on a local store whose directory does not exist → BUCKET_NOT_FOUND (10)",
      async () => {
        const created = await runCli([
          "policy-create",
          "--out",
          "policies/nostore.yaml",
          "--paths",
          world.work,
          "--local-dir",
          path.join(world.work, "no-such-store"),
        ], { cwd: world.work });
        assert.equal(created.code, 0, created.stderr);
        const listed = await runCli(["list", "--policy", "policies/nostore.yaml"], {
          cwd: world.work,
        });
        assert.equal(listed.code, 10, listed.stderr);
        assert.equal(listed.error().code, "BUCKET_NOT_FOUND");
        assert.match(listed.error().message, /no-such-store/);
      },
    );
    await expectError(
      "missing --env-file → ENV_FILE_NOT_FOUND (2)",
      ["backup", ...policy, "--env-file", path.join(world.work, "nope.env")],
      "ENV_FILE_NOT_FOUND",
      2,
    );
    await expectError(
      "missing key → KEY_MISSING (2)",
      ["backup", ...policy, "--env-file", noKey],
      "KEY_MISSING",
      2,
    );
    await expectError(
      "malformed key → KEY_INVALID (2)",
      ["backup", ...policy, "--env-file", badKey],
      "KEY_INVALID",
      2,
    );
    await expectError(
      "wrong key → WRONG_KEY (12)",
      ["restore", ...policy, "--key", key, "--out", "w", "--env-file", wrongKey],
      "WRONG_KEY",
      12,
    );
    await expectError(
      "unknown --key → BACKUP_NOT_FOUND (10)",
      [
        "restore",
        ...policy,
        "--key",
        "backups/mvp-default/20200101T000000Z/00000000-0000-0000-0000-000000000000/backup.tar.gz.enc",
        "--out",
        "u",
        "--env-file",
        world.envFile,
      ],
      "BACKUP_NOT_FOUND",
      10,
    );
    await expectError(
      "--key that is not a backup object → USAGE (2)",
      ["restore", ...policy, "--key", "backups/x.txt", "--out", "u", "--env-file", world.envFile],
      "USAGE",
      2,
    );
    await expectError(
      "--key with a leading / → USAGE (2), not an internal error",
      ["restore", ...policy, "--key", `/${key}`, "--out", "u", "--env-file", world.envFile],
      "USAGE",
      2,
    );
    await expectError(
      "backup --out onto a file → IO_ERROR (1)",
      ["backup", ...policy, "--out", "policies/policy_02.yaml", "--env-file", world.envFile],
      "IO_ERROR",
      1,
    );
    await t.step("a failed backup leaves no object behind", async () => {
      const listed = await runCli(["list", ...policy, "--env-file", world.envFile], {
        cwd: world.work,
      });
      const json = listed.json() as { backups: unknown[]; incomplete: unknown[] };
      assert.equal(json.backups.length, 1);
      assert.deepEqual(json.incomplete, []);
    });
    await t.step("--key typed as ./backups/… works", async () => {
      const result = await runCli(
        ["restore", ...policy, "--key", `./${key}`, "--out", "dot", "--env-file", world.envFile],
        { cwd: world.work },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.json().key_backup, key);
    });
    await expectError(
      "unreachable endpoint → STORAGE_UNREACHABLE (1)",
      ["backup", ...policy, "--env-file", closedPort],
      "STORAGE_UNREACHABLE",
      1,
    );
    await expectError(
      "bucket missing → BUCKET_NOT_FOUND (10)",
      ["backup", ...policy, "--env-file", noBucket],
      "BUCKET_NOT_FOUND",
      10,
    );
    await expectError(
      "access denied → ACCESS_DENIED (1)",
      ["backup", ...policy, "--env-file", denied],
      "ACCESS_DENIED",
      1,
    );
    await expectError(
      "missing policy → POLICY_NOT_FOUND (2)",
      ["backup", "--policy", "policies/none.yaml", "--env-file", world.envFile],
      "POLICY_NOT_FOUND",
      2,
    );
    await expectError("unknown flag → USAGE (2)", ["backup", "--polcy", "x"], "USAGE", 2);
    await expectError("unknown command → USAGE (2)", ["bakcup"], "USAGE", 2);
    await expectError(
      "policy-create refuses to overwrite → POLICY_EXISTS (2)",
      ["policy-create", "--out", "policies/policy_02.yaml", "--paths", world.source],
      "POLICY_EXISTS",
      2,
    );

    await t.step("a hand-edited policy is rejected with the field named", async () => {
      const file = path.join(world.work, "policies", "edited.yaml");
      const text = await Deno.readTextFile(path.join(world.work, "policies", "policy_02.yaml"));
      const edited = text.replace(/^schedule:.*$/m, 'schedule: "0 25 * * *"') + "colour: blue\n";
      await Deno.writeTextFile(file, edited);
      const result = await runCli(["backup", "--policy", file, "--env-file", world.envFile], {
        cwd: world.work,
      });
      assert.equal(result.code, 2);
      const error = result.error();
      assert.equal(error.code, "POLICY_INVALID");
      assert.match(error.message, /schedule/);
      assert.match(error.message, /colour/);
    });

    await t.step(
      "a FIFO or a socket is reported and left out, without making the backup partial",
      async () => {
        const fifo = path.join(world.source, "fila.fifo");
        const mkfifo = await new Deno.Command("mkfifo", { args: [fifo] }).output();
        assert.ok(mkfifo.success);
        // An agent's socket, as a home directory holds (gpg-agent, ssh-agent).
        const socketPath = path.join(world.source, "agent.sock");
        const socket = Deno.listen({ transport: "unix", path: socketPath });
        try {
          const result = await runCli(["backup", ...policy, "--env-file", world.envFile], {
            cwd: world.work,
          });
          assert.equal(result.code, 0, result.stderr);
          const json = result.json();
          assert.equal(json.status, "ok");
          const warnings = json.warnings as Array<{ path: string; special?: boolean }>;
          assert.deepEqual(
            warnings.map((w) => [w.path, w.special]).sort(),
            [[socketPath, true], [fifo, true]].sort(),
          );
          // A policy path that is itself a FIFO archives nothing: partial, never "ok".
          const only = path.join(world.work, "fifo-only.yaml");
          await Deno.writeTextFile(
            only,
            `id: fifo-only\npaths: [${JSON.stringify(fifo)}]\n` +
              `destination: {type: local, path: ${
                JSON.stringify(path.join(world.work, "fifo-store"))
              }}\n`,
          );
          const nothing = await runCli(
            ["backup", "--policy", only, "--env-file", world.envFile],
            { cwd: world.work },
          );
          assert.equal(nothing.code, 3, nothing.stderr);
          assert.equal(nothing.json().status, "partial");
        } finally {
          socket.close();
          await Deno.remove(fifo);
          await Deno.remove(socketPath).catch(() => {});
        }
      },
    );

    await t.step("as a real process: exit code and JSON error on stderr", async () => {
      const result = await spawnCli(
        ["backup", ...policy, "--env-file", path.join(world.work, "nope.env")],
        { cwd: world.work },
      );
      assert.equal(result.code, 2);
      assert.equal(result.error().code, "ENV_FILE_NOT_FOUND");
      const help = await spawnCli(["--help"], { cwd: world.work });
      assert.equal(help.code, 0);
      assert.match(help.stdout, /policy-create/);
    });
  } finally {
    await tearDown(world);
  }
});

Deno.test({
  name: "a device or a non-UTF-8 .env file is refused at once; a pipe (<(…)) is read",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "intellistor-special-" });
    try {
      const fifo = path.join(work, "fifo");
      assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
      const policy = path.join(work, "p.yaml");
      const store = path.join(work, "store");
      await Deno.mkdir(store); // list refuses a store directory that does not exist
      await Deno.writeTextFile(
        policy,
        `id: p\npaths: [${JSON.stringify(work)}]\ndestination: {type: local, path: ${
          JSON.stringify(store)
        }}\n`,
      );
      // A passphrase saved in Latin-1: decoded loosely it would silently be another one.
      const latin1 = path.join(work, "latin1.env");
      await Deno.writeFile(
        latin1,
        Uint8Array.from([...new TextEncoder().encode("INTELLISTOR_PASSPHRASE=caf"), 0xe9, 0x0a]),
      );
      const cases: Array<[string[], string, RegExp]> = [
        [["list", "--policy", "/dev/zero"], "IO_ERROR", /not a regular file or a pipe/],
        [["list", "--policy", work], "IO_ERROR", /is a directory/],
        [["list", "--policy", policy, "--env-file", "/dev/zero"], "ENV_FILE_INVALID", /pipe/],
        [["list", "--policy", policy, "--env-file", latin1], "ENV_FILE_INVALID", /not UTF-8/],
        [
          ["policy-create", "--out", fifo, "--paths", work, "--force"],
          "POLICY_EXISTS",
          /not a regular file/,
        ],
      ];
      const withTimeout = async (args: string[]) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not return`)), 10_000);
        });
        return await Promise.race([runCli(args, { cwd: work }), timeout]).finally(() =>
          clearTimeout(timer)
        );
      };
      for (const [args, code, message] of cases) {
        const error = (await withTimeout(args)).error();
        assert.equal(error.code, code, `${args.join(" ")}: ${JSON.stringify(error)}`);
        assert.match(error.message, message);
      }
      assert.ok((await Deno.lstat(fifo)).isFifo, "the FIFO was replaced");
      // Secrets from a password manager through a pipe, never written to disk.
      const writer = new Deno.Command("sh", {
        args: ["-c", `printf 'INTELLISTOR_KEY=%s\\n' "$KEY" > "$FIFO"`],
        env: { KEY: generateRootKey(), FIFO: fifo },
      }).spawn();
      const listed = await withTimeout(["list", "--policy", policy, "--env-file", fifo]);
      assert.equal((await writer.status).code, 0);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual((listed.json() as { backups: unknown[] }).backups, []);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "a result that cannot be printed (stdout on a full disk) is said to be that",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const quoted = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;
    const result = await spawnShell(
      `${quoted(Deno.execPath())} run -A ${quoted(MAIN)} --version > /dev/full`,
      { cwd: Deno.cwd() },
    );
    assert.equal(result.code, 1);
    const error = result.error();
    assert.equal(error.code, "IO_ERROR");
    assert.match(error.message, /^Cannot write the result to standard output/);
  },
});

Deno.test("run from a folder without the .env, KEY_MISSING says no .env was read, not only 'make a key'", async () => {
  const work = await Deno.makeTempDir({ prefix: "intellistor-noenv-" });
  try {
    await Deno.writeTextFile(
      path.join(work, "p.yaml"),
      `id: p\npaths: [${JSON.stringify(work)}]\ndestination: {type: local, path: ${
        JSON.stringify(path.join(work, "store"))
      }}\n`,
    );
    const result = await runCli(
      ["restore", "--policy", "p.yaml", "--key", "backups/p/x/y/backup.tar.gz.enc", "--out", "o"],
      { cwd: work },
    );
    assert.equal(result.code, 2);
    const error = result.error();
    assert.equal(error.code, "KEY_MISSING");
    assert.match(error.message, /No \.env file was read: there is none in /);
    assert.match(error.hint, /--env-file/);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
