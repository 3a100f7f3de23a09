/**
 * No secret ever leaves the process: every command is run (success and failure
 * paths, agent included) with known credentials, key and passphrase, then
 * every output, log, manifest, object and metadata file is searched for them,
 * raw, base64 and URL-encoded.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import path from "node:path";
import { type CliResult, runCli } from "./support/cli.ts";
import { startS3Server } from "./support/s3_server.ts";
import { makeSampleTree } from "./support/tree.ts";

// s3rver checks the access key id, not the signature: any secret works with "S3RVER".
const SECRETS = {
  AWS_SECRET_ACCESS_KEY: "sEcReT+aws/Key=for-the-leak-test-0123456789",
  AWS_SESSION_TOKEN: "SeSsIoN/token+for-the-leak-test-9876543210",
  INTELLISTOR_KEY: "h8H0Vt7o1bX0r0B0v2h0Kx9mJ6pG0sWbA1cD2eF3gH4=",
  INTELLISTOR_PASSPHRASE: "a pass phrase: for the leak test",
  INTELLISTOR_NOTIFY_URL: "http://127.0.0.1:9/ping/7f3c2a9e-leak-test-token",
};

/** Every form a secret could take on the way out. */
function forms(secret: string): string[] {
  const b64 = Buffer.from(secret).toString("base64");
  const out = [
    secret,
    b64,
    b64.replaceAll("+", "-").replaceAll("/", "_"),
    encodeURIComponent(secret),
  ];
  if (secret === SECRETS.INTELLISTOR_KEY) {
    // The raw 32 key bytes, as hex (binary files are searched for the bytes below).
    out.push(Buffer.from(secret, "base64").toString("hex"));
  }
  return [...new Set(out)];
}

async function* filesUnder(root: string): AsyncGenerator<string> {
  for await (const item of Deno.readDir(root)) {
    const full = path.join(root, item.name);
    if (item.isDirectory) yield* filesUnder(full);
    else if (item.isFile) yield full;
  }
}

Deno.test("no secret appears in any output, log, manifest, object or metadata", async () => {
  const server = await startS3Server();
  const work = await Deno.makeTempDir({ prefix: "intellistor-secrets-" });
  const outputs: Array<{ what: string; text: string }> = [];
  try {
    const source = path.join(work, "dados");
    await makeSampleTree(source);
    const baseEnv = {
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: SECRETS.AWS_SECRET_ACCESS_KEY,
      AWS_SESSION_TOKEN: SECRETS.AWS_SESSION_TOKEN,
      AWS_S3_BUCKET: server.bucket,
      AWS_ENDPOINT_URL_S3: server.endpoint,
      INTELLISTOR_NOTIFY_URL: SECRETS.INTELLISTOR_NOTIFY_URL,
    };
    const envFiles: Record<string, Record<string, string>> = {
      key: { ...baseEnv, INTELLISTOR_KEY: SECRETS.INTELLISTOR_KEY },
      pass: { ...baseEnv, INTELLISTOR_PASSPHRASE: SECRETS.INTELLISTOR_PASSPHRASE },
      wrongkey: { ...baseEnv, INTELLISTOR_KEY: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
      badkey: { ...baseEnv, INTELLISTOR_KEY: SECRETS.INTELLISTOR_KEY.slice(0, 20) },
      nobucket: {
        ...baseEnv,
        INTELLISTOR_KEY: SECRETS.INTELLISTOR_KEY,
        AWS_S3_BUCKET: "missing-bucket",
      },
    };
    for (const [name, env] of Object.entries(envFiles)) {
      await Deno.writeTextFile(
        path.join(work, `${name}.env`),
        Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n"),
      );
    }
    const cli = async (what: string, args: string[]): Promise<CliResult> => {
      const result = await runCli(args, { cwd: work });
      outputs.push({ what: `${what} stdout`, text: result.stdout });
      outputs.push({ what: `${what} stderr`, text: result.stderr });
      return result;
    };
    const env = (name: string) => ["--env-file", path.join(work, `${name}.env`)];

    await cli("policy-create", ["policy-create", "--out", "p.yaml", "--paths", source]);
    await cli("policy-create pass", [
      "policy-create",
      "--out",
      "pass.yaml",
      "--paths",
      source,
      "--id",
      "pass",
    ]);
    const ok = await cli("backup", ["backup", "--policy", "p.yaml", "--out", "out", ...env("key")]);
    assert.equal(ok.code, 0, ok.stderr);
    const key = (ok.json() as { s3: { key_backup: string } }).s3.key_backup;
    assert.equal(
      (await cli("backup pass", ["backup", "--policy", "pass.yaml", ...env("pass")])).code,
      0,
    );
    await cli("backup badkey", ["backup", "--policy", "p.yaml", ...env("badkey")]);
    await cli("backup nobucket", ["backup", "--policy", "p.yaml", ...env("nobucket")]);
    await cli("restore", [
      "restore",
      "--policy",
      "p.yaml",
      "--key",
      key,
      "--out",
      "r",
      ...env("key"),
    ]);
    await cli("restore only", [
      "restore",
      "--policy",
      "p.yaml",
      "--key",
      key,
      "--out",
      "r2",
      "--only",
      "*.png",
      ...env("key"),
    ]);
    await cli("restore wrong key", [
      "restore",
      "--policy",
      "p.yaml",
      "--key",
      key,
      "--out",
      "r3",
      ...env("wrongkey"),
    ]);
    await cli("list", ["list", "--policy", "p.yaml", ...env("key")]);
    await cli("decrypt", [
      "decrypt",
      "--policy",
      "p.yaml",
      "--key",
      key,
      "--out",
      "plain.tar.gz",
      ...env("key"),
    ]);
    const agentArgs = (name: string) => [
      "agent",
      "run",
      "--policy",
      path.join(work, "p.yaml"),
      "--state-dir",
      path.join(work, "state"),
      ...env(name).map((a) => (a.endsWith(".env") ? path.resolve(work, a) : a)),
    ];
    await cli("agent ok", agentArgs("key"));
    await cli("agent failed", agentArgs("badkey"));
    await cli("schedule print", [
      "schedule",
      "install",
      "--print",
      "--policy",
      "p.yaml",
      ...env("key"),
    ]);

    // Mistakes that put a secret where a name or a policy belongs: the errors must not echo it.
    await cli("list with the .env as policy", ["list", "--policy", "key.env", ...env("key")]);
    await cli("agent with the .env as policy", [
      "agent",
      "run",
      "--policy",
      path.join(work, "pass.env"),
      "--env-file",
      path.join(work, "pass.env"),
      "--state-dir",
      path.join(work, "state"),
    ]);
    await cli("policy-create with a key as --key-env", [
      "policy-create",
      "--out",
      "mistake.yaml",
      "--paths",
      source,
      "--key-env",
      SECRETS.INTELLISTOR_KEY,
    ]);
    await Deno.writeTextFile(
      path.join(work, "values.yaml"),
      [
        "id: values",
        `paths: [${JSON.stringify(source)}]`,
        "encryption:",
        `  passphrase_env: ${JSON.stringify(SECRETS.INTELLISTOR_PASSPHRASE)}`,
        "notify:",
        `  url_env: ${JSON.stringify(SECRETS.INTELLISTOR_NOTIFY_URL)}`,
        `${JSON.stringify(`AWS_SECRET_ACCESS_KEY=${SECRETS.AWS_SECRET_ACCESS_KEY}`)}: 1`,
        `schedule: ${JSON.stringify(SECRETS.AWS_SESSION_TOKEN)}`,
      ].join("\n"),
    );
    const values = await cli("values as names", ["list", "--policy", "values.yaml", ...env("key")]);
    assert.equal(values.code, 2, values.stderr);
    await Deno.remove(path.join(work, "values.yaml"));

    // A canary proves the search finds a secret where one is.
    const canary = path.join(work, "canary.txt");
    await Deno.writeTextFile(canary, `x${forms(SECRETS.AWS_SECRET_ACCESS_KEY)[1]}x`);

    // Everything written: outputs, local logs, policies, local copies, the S3
    // server's objects and metadata files (uploaded logs and manifests included).
    const files: string[] = [];
    for await (const file of filesUnder(work)) {
      if (!file.endsWith(".env") && !file.includes(`${path.sep}dados${path.sep}`)) files.push(file);
    }
    for await (const file of filesUnder(server.directory)) files.push(file);
    assert.ok(files.some((f) => f.includes(`${path.sep}logs${path.sep}`)), "logs were searched");
    assert.ok(files.some((f) => f.endsWith("manifest.json")), "manifests were searched");

    const needles = Object.values(SECRETS).flatMap(forms).map((n) => new TextEncoder().encode(n));
    needles.push(new Uint8Array(Buffer.from(SECRETS.INTELLISTOR_KEY, "base64")));
    const hits: string[] = [];
    for (const { what, text } of outputs) {
      for (const needle of Object.values(SECRETS).flatMap(forms)) {
        if (text.includes(needle)) hits.push(`${what}: ${needle}`);
      }
    }
    for (const file of files) {
      const data = Buffer.from(await Deno.readFile(file));
      for (const needle of needles) if (data.indexOf(needle) >= 0) hits.push(file);
    }
    console.log(
      `secrets search: ${outputs.length} outputs, ${files.length} files, ${needles.length} forms, ` +
        `${hits.length - 1} hits (plus the canary)`,
    );
    assert.deepEqual(hits, [canary]);
  } finally {
    await server.stop();
    await Deno.remove(work, { recursive: true });
  }
});
