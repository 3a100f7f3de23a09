import assert from "node:assert/strict";
import path from "node:path";
import YAML from "npm:yaml@2.9.1";
import { IntellistorError } from "../errors.ts";
import {
  checkPathsExist,
  DEFAULT_COMPRESSION_LEVEL,
  DEFAULT_POLICY_ID,
  DEFAULT_SCHEDULE,
  type Policy,
  readPolicy,
  renderPolicyYaml,
  validatePolicy,
  writePolicyFile,
} from "./policy.ts";

const isWindows = Deno.build.os === "windows";
/** An absolute path on the platform running the tests. */
function abs(...parts: string[]): string {
  return path.join(isWindows ? "C:\\" : "/", ...parts);
}

const MINIMAL = { id: "mvp-default", paths: [abs("srv", "data")], schedule: "0 2 * * *" };

function fullPolicy(overrides: Partial<Policy> = {}): Policy {
  return {
    version: 1,
    id: "mvp-default",
    paths: [abs("srv", "data")],
    exclude: [],
    schedule: "0 2 * * *",
    destination: { type: "s3", bucket: "", prefix: "", endpoint: "", region: "" },
    compression: { level: 6 },
    encryption: { key_env: "INTELLISTOR_KEY", passphrase_env: "INTELLISTOR_PASSPHRASE" },
    notify: {
      url_env: "INTELLISTOR_NOTIFY_URL",
      failure_url_env: "INTELLISTOR_NOTIFY_FAILURE_URL",
      timeout_seconds: 10,
    },
    retention: { keep_last: 0, keep_daily: 0, keep_weekly: 0, keep_monthly: 0 },
    ...overrides,
  };
}

function errorOf(action: () => unknown): IntellistorError {
  try {
    action();
  } catch (error) {
    assert(error instanceof IntellistorError, `expected an IntellistorError, got ${error}`);
    return error;
  }
  throw new assert.AssertionError({ message: "expected an error, none was thrown" });
}

async function asyncErrorOf(action: () => Promise<unknown>): Promise<IntellistorError> {
  try {
    await action();
  } catch (error) {
    assert(error instanceof IntellistorError, `expected an IntellistorError, got ${error}`);
    return error;
  }
  throw new assert.AssertionError({ message: "expected an error, none was thrown" });
}

/** The problems listed in a POLICY_INVALID message, in order. */
function problemsOf(raw: unknown): string[] {
  const error = errorOf(() => validatePolicy(raw, "p.yaml"));
  assert.equal(error.code, "POLICY_INVALID");
  const prefix = 'Policy "p.yaml" is invalid: ';
  assert(error.message.startsWith(prefix), error.message);
  return error.message.slice(prefix.length).split("; ").filter((part) => /^[\w.[\]]+: /.test(part));
}

function assertProblem(raw: unknown, field: string, problem: RegExp): void {
  const error = errorOf(() => validatePolicy(raw, "p.yaml"));
  assert.equal(error.code, "POLICY_INVALID");
  const escaped = field.replace(/[.[\]]/g, "\\$&");
  const pattern = new RegExp(`(: |; )${escaped}: .*?${problem.source}`);
  assert.match(error.message, pattern);
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "policy_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the exported defaults are the seed's", () => {
  assert.equal(DEFAULT_POLICY_ID, "mvp-default");
  assert.equal(DEFAULT_SCHEDULE, "0 2 * * *");
  assert.equal(DEFAULT_COMPRESSION_LEVEL, 6);
});

Deno.test("omitted optional sections get their defaults", () => {
  assert.deepEqual(validatePolicy(MINIMAL, "p.yaml"), fullPolicy());
});

Deno.test("keys written with no value count as omitted", () => {
  const raw = YAML.parse(
    `id: mvp-default\npaths: [${JSON.stringify(abs("srv", "data"))}]\nschedule: "0 2 * * *"\n` +
      "exclude:\ndestination:\n  type: s3\n  bucket:\n  region:\ncompression:\nencryption:\n",
  );
  assert.deepEqual(validatePolicy(raw, "p.yaml"), fullPolicy());
});

Deno.test("partially given sections keep the defaults for the rest", () => {
  const policy = validatePolicy(
    {
      ...MINIMAL,
      destination: { type: "s3", bucket: "intellistor-prd" },
      compression: {},
      encryption: { key_env: "MY_KEY" },
    },
    "p.yaml",
  );
  assert.deepEqual(policy.destination, {
    type: "s3",
    bucket: "intellistor-prd",
    prefix: "",
    endpoint: "",
    region: "",
  });
  assert.deepEqual(policy.compression, { level: 6 });
  assert.deepEqual(policy.encryption, {
    key_env: "MY_KEY",
    passphrase_env: "INTELLISTOR_PASSPHRASE",
  });
});

Deno.test("a fully specified policy is kept as given", () => {
  const policy = fullPolicy({
    paths: [abs("srv", "data"), abs("home", "ana", "Documentos")],
    exclude: ["*.tmp", "cache", "docs/old/*"],
    schedule: "30 1 * * MON-FRI",
    destination: {
      type: "s3",
      bucket: "intellistor-prd",
      prefix: "clients/acme/",
      endpoint: "http://127.0.0.1:9000",
      region: "auto",
    },
    compression: { level: 9 },
    encryption: { key_env: "KEY_1", passphrase_env: "_PASS" },
  });
  assert.deepEqual(validatePolicy(structuredClone(policy), "p.yaml"), policy);
});

Deno.test("a local destination needs an absolute path", () => {
  const destination = { type: "local", path: abs("mnt", "backups") };
  assert.deepEqual(validatePolicy({ ...MINIMAL, destination }, "p.yaml").destination, destination);
  assertProblem({ ...MINIMAL, destination: { type: "local" } }, "destination.path", /missing/);
  assertProblem(
    { ...MINIMAL, destination: { type: "local", path: "backups" } },
    "destination.path",
    /"backups" is not an absolute path/,
  );
});

Deno.test("version may be omitted but must be 1", () => {
  assert.equal(validatePolicy({ ...MINIMAL, version: 1 }, "p.yaml").version, 1);
  assertProblem(
    { ...MINIMAL, version: 2 },
    "version",
    /expected 1 \(the only format version\), got number 2/,
  );
  assertProblem({ ...MINIMAL, version: "1" }, "version", /expected 1 .*got the text "1"/);
});

Deno.test("id and paths are required; schedule defaults to the seed's 0 2 * * *", () => {
  assert.deepEqual(problemsOf({}), [
    'id: missing (expected a name such as "mvp-default")',
    "paths: missing (expected a list of absolute paths of files or directories)",
  ]);
  const { schedule: _omitted, ...withoutSchedule } = MINIMAL;
  assert.equal(validatePolicy(withoutSchedule, "p.yaml").schedule, "0 2 * * *");
});

Deno.test("an empty or non-mapping document is rejected", () => {
  assert.match(
    errorOf(() => validatePolicy(null, "p.yaml")).message,
    /^Policy "p\.yaml" is invalid: the document is empty/,
  );
  assert.match(
    errorOf(() => validatePolicy(["/srv"], "p.yaml")).message,
    /^Policy "p\.yaml" is invalid: expected a mapping of keys .*got a list$/,
  );
});

Deno.test("unknown top-level keys are rejected, with a suggestion when close", () => {
  assertProblem(
    { ...MINIMAL, path: ["/x"] },
    "path",
    /unknown key \(did you mean "paths"\?\) \(expected one of version, id, paths, exclude, schedule, destination, compression, encryption, notify, retention\)$/,
  );
  assertProblem({ ...MINIMAL, keep: {} }, "keep", /unknown key \(expected one of/);
});

Deno.test("unknown nested keys are rejected with their dotted path", () => {
  assertProblem(
    { ...MINIMAL, destination: { type: "s3", bucket_name: "b" } },
    "destination.bucket_name",
    /unknown key for type s3 \(expected one of type, bucket, prefix, endpoint, region\)/,
  );
  assertProblem(
    { ...MINIMAL, destination: { type: "local", path: abs("b"), bucket: "b" } },
    "destination.bucket",
    /unknown key for type local \(expected one of type, path\)/,
  );
  assertProblem(
    { ...MINIMAL, compression: { levl: 5 } },
    "compression.levl",
    /did you mean "level"/,
  );
  assertProblem({ ...MINIMAL, encryption: { key: "K" } }, "encryption.key", /unknown key/);
});

Deno.test("values of the wrong type are rejected", () => {
  assertProblem({ ...MINIMAL, id: 7 }, "id", /expected text, got number 7 \(write it in quotes\)$/);
  assertProblem(
    { ...MINIMAL, paths: "/srv/data" },
    "paths",
    /expected a list of absolute paths, got the text/,
  );
  assertProblem({ ...MINIMAL, paths: [abs("a"), 3] }, "paths[1]", /expected text, got number 3/);
  assertProblem({ ...MINIMAL, exclude: "*.tmp" }, "exclude", /expected a list of glob patterns/);
  assertProblem({ ...MINIMAL, exclude: [true] }, "exclude[0]", /expected text, got boolean true/);
  assertProblem({ ...MINIMAL, schedule: 2 }, "schedule", /expected text, got number 2/);
  assertProblem(
    { ...MINIMAL, destination: ["s3"] },
    "destination",
    /expected a mapping .*got a list/,
  );
  assertProblem(
    { ...MINIMAL, destination: { type: "s3", bucket: 5 } },
    "destination.bucket",
    /expected text/,
  );
  assertProblem({ ...MINIMAL, compression: 6 }, "compression", /expected a mapping with "level"/);
  assertProblem(
    { ...MINIMAL, compression: { level: "6" } },
    "compression.level",
    /got the text "6"/,
  );
  assertProblem({ ...MINIMAL, encryption: "KEY" }, "encryption", /expected a mapping/);
  assertProblem({ ...MINIMAL, encryption: { key_env: 1 } }, "encryption.key_env", /expected text/);
});

Deno.test("a malformed id is rejected", () => {
  for (const id of ["", "my policy", "-lead", ".hidden", "a/b", "x".repeat(65), "ação"]) {
    assertProblem({ ...MINIMAL, id }, "id", /is not a valid id \(use 1-64 letters/);
  }
  validatePolicy({ ...MINIMAL, id: "A1._-" + "x".repeat(59) }, "p.yaml");
});

Deno.test("paths must be a non-empty list of absolute paths", () => {
  assertProblem({ ...MINIMAL, paths: [] }, "paths", /is empty \(list at least one/);
  assertProblem({ ...MINIMAL, paths: [""] }, "paths[0]", /is empty/);
  assertProblem(
    { ...MINIMAL, paths: ["docs/imagens"] },
    "paths[0]",
    /"docs\/imagens" is not an absolute path/,
  );
  assertProblem({ ...MINIMAL, paths: ["./data"] }, "paths[0]", /is not an absolute path/);
});

Deno.test(
  "a Windows path is explained when the policy runs elsewhere",
  { ignore: isWindows },
  () => {
    assertProblem(
      { ...MINIMAL, paths: ["C:\\workload\\git_lab\\docs\\imagens"] },
      "paths[0]",
      /is a Windows path, which is not absolute on this system/,
    );
  },
);

Deno.test("drive-relative paths are refused on Windows", { ignore: !isWindows }, () => {
  assertProblem({ ...MINIMAL, paths: ["\\dados"] }, "paths[0]", /has no drive letter/);
  validatePolicy({ ...MINIMAL, paths: ["C:\\dados", "\\\\server\\share\\docs"] }, "p.yaml");
});

Deno.test("a repeated path is rejected", () => {
  assertProblem(
    { ...MINIMAL, paths: [abs("srv", "data"), abs("srv", "data") + path.sep] },
    "paths[1]",
    /repeats paths\[0\]/,
  );
});

Deno.test("a path inside another listed path is rejected", () => {
  assertProblem(
    { ...MINIMAL, paths: [abs("srv", "data", "x"), abs("srv", "data")] },
    "paths[0]",
    /is inside paths\[1\] .*which already includes it/,
  );
  validatePolicy({ ...MINIMAL, paths: [abs("srv", "data"), abs("srv", "data2")] }, "p.yaml");
});

Deno.test("two paths with the same name are rejected with advice", () => {
  const error = errorOf(() =>
    validatePolicy({ ...MINIMAL, paths: [abs("a", "docs"), abs("b", "docs")] }, "p.yaml")
  );
  assert.equal(
    error.message,
    `Policy "p.yaml" is invalid: paths[1]: ${JSON.stringify(abs("b", "docs"))} has the same name ` +
      `as paths[0] ${JSON.stringify(abs("a", "docs"))}, and both would become the folder "docs" ` +
      "inside the backup",
  );
  assert.match(error.hint, /back up their common parent, or use two policies/);
});

Deno.test("names differing only in case or Unicode form count as the same", () => {
  assertProblem(
    { ...MINIMAL, paths: [abs("a", "Docs"), abs("b", "docs")] },
    "paths[1]",
    /has the same name as paths\[0\] .*\(names are compared ignoring case\), and both would become the folder "Docs"/,
  );
  assertProblem(
    { ...MINIMAL, paths: [abs("a", "Cópia".normalize("NFD")), abs("b", "Cópia".normalize("NFC"))] },
    "paths[1]",
    /has the same name as paths\[0\]/,
  );
  validatePolicy({ ...MINIMAL, paths: [abs("a", "docs"), abs("b", "docs2")] }, "p.yaml");
});

Deno.test("a filesystem root alone is accepted, and includes any other path", () => {
  validatePolicy({ ...MINIMAL, paths: [abs()] }, "p.yaml");
  assert.deepEqual(
    problemsOf({ ...MINIMAL, paths: [abs(), abs("other")] }),
    [`paths[1]: ${JSON.stringify(abs("other"))} is inside paths[0] ${
      JSON.stringify(abs())
    }, which already includes it`],
  );
});

Deno.test("two drive roots cannot be combined", { ignore: !isWindows }, () => {
  assertProblem(
    { ...MINIMAL, paths: ["C:\\", "D:\\dados"] },
    "paths[0]",
    /is a filesystem root, which has no name/,
  );
});

Deno.test("a bad schedule is reported with the cron problem", () => {
  const error = errorOf(() => validatePolicy({ ...MINIMAL, schedule: "0 24 * * *" }, "p.yaml"));
  assert.equal(
    error.message,
    'Policy "p.yaml" is invalid: schedule: hour: 24 is out of range 0-23',
  );
  assert.match(error.hint, /minute hour day-of-month month day-of-week/);
  assertProblem(
    { ...MINIMAL, schedule: "0 2 * *" },
    "schedule",
    /expected 5 cron fields \(minute hour day-of-month month day-of-week\), got 4/,
  );
});

Deno.test("a bad exclude pattern is reported with the glob problem", () => {
  const error = errorOf(() => validatePolicy({ ...MINIMAL, exclude: ["*.tmp", "../x"] }, "p.yaml"));
  assert.match(
    error.message,
    /exclude\[1\]: pattern "\.\.\/x" is invalid: it contains a "\.\." segment/,
  );
  assert.match(error.hint, /restore --only rule/);
  assertProblem({ ...MINIMAL, exclude: ["a[b"] }, "exclude[0]", /without a closing "\]"/);
  assertProblem({ ...MINIMAL, exclude: ["/abs"] }, "exclude[0]", /absolute path/);
});

Deno.test("the compression level must be a whole number 1-9", () => {
  for (const level of [0, 10, 5.5, -1]) {
    assertProblem(
      { ...MINIMAL, compression: { level } },
      "compression.level",
      /expected a whole number from 1 \(fastest\) to 9 \(smallest\)/,
    );
  }
  assert.equal(
    validatePolicy({ ...MINIMAL, compression: { level: 1 } }, "p.yaml").compression.level,
    1,
  );
});

Deno.test("encryption variables must be valid, distinct environment variable names", () => {
  for (const name of ["1KEY", "MY-KEY", "", "base64:abc="]) {
    assertProblem(
      { ...MINIMAL, encryption: { key_env: name } },
      "encryption.key_env",
      /is not an environment variable name/,
    );
  }
  assertProblem(
    { ...MINIMAL, encryption: { passphrase_env: "my pass" } },
    "encryption.passphrase_env",
    /is not an environment variable name/,
  );
  assertProblem(
    { ...MINIMAL, encryption: { key_env: "K", passphrase_env: "K" } },
    "encryption.passphrase_env",
    /must differ from key_env/,
  );
});

Deno.test("the endpoint must be an http(s) URL without credentials", () => {
  const withEndpoint = (endpoint: string) => ({
    ...MINIMAL,
    destination: { type: "s3", endpoint },
  });
  assertProblem(withEndpoint("minio:9000"), "destination.endpoint", /is not an http or https URL/);
  assertProblem(withEndpoint("s3.example.com"), "destination.endpoint", /is not a URL/);
  assertProblem(
    withEndpoint("ftp://s3.example.com"),
    "destination.endpoint",
    /not an http or https URL/,
  );
  assertProblem(
    withEndpoint("https://ak:sk@s3.example.com"),
    "destination.endpoint",
    /contains credentials/,
  );
  assertProblem(
    withEndpoint("https://s3.example.com/?x=1"),
    "destination.endpoint",
    /query or fragment/,
  );
  for (const endpoint of ["http://127.0.0.1:9000", "https://s3.example.com/base"]) {
    const destination = validatePolicy(withEndpoint(endpoint), "p.yaml").destination;
    assert.equal(destination.type === "s3" && destination.endpoint, endpoint);
  }
});

Deno.test("bucket, prefix and region are checked", () => {
  const withS3 = (fields: Record<string, string>) => ({
    ...MINIMAL,
    destination: { type: "s3", ...fields },
  });
  assertProblem(withS3({ bucket: "s3://b/x" }), "destination.bucket", /is not a bucket name/);
  assertProblem(withS3({ bucket: "my bucket" }), "destination.bucket", /not a valid bucket name/);
  assertProblem(withS3({ prefix: "/team" }), "destination.prefix", /starts with "\/"/);
  assertProblem(withS3({ prefix: "a/../b" }), "destination.prefix", /"\.\." segment/);
  assertProblem(withS3({ prefix: "a\\b" }), "destination.prefix", /contains a backslash/);
  assertProblem(withS3({ prefix: "a//b" }), "destination.prefix", /empty segment/);
  assertProblem(withS3({ region: "us east" }), "destination.region", /is not a region name/);
  validatePolicy(
    withS3({ bucket: "intellistor-prd", prefix: "team/a/", region: "sa-east-1" }),
    "p.yaml",
  );
});

Deno.test("the destination type must be s3 or local", () => {
  assertProblem(
    { ...MINIMAL, destination: { bucket: "b" } },
    "destination.type",
    /missing \(expected "s3" or "local"\)/,
  );
  assertProblem(
    { ...MINIMAL, destination: { type: "S3" } },
    "destination.type",
    /got the text "S3"/,
  );
});

Deno.test("every problem is reported in one error, in field order", () => {
  const raw = {
    colour: "blue",
    id: "bad id",
    paths: ["relative"],
    schedule: "0 24 * * *",
    destination: { type: "s3", endpoint: "minio:9000" },
    compression: { level: 10 },
    encryption: { key_env: "1KEY" },
  };
  const problems = problemsOf(raw);
  assert.deepEqual(
    problems.map((problem) => problem.split(": ")[0]),
    [
      "colour",
      "id",
      "paths[0]",
      "schedule",
      "destination.endpoint",
      "compression.level",
      "encryption.key_env",
    ],
  );
  const error = errorOf(() => validatePolicy(raw, "p.yaml"));
  assert.match(error.message, /; schedule: hour: 24 is out of range 0-23; /);
});

Deno.test("readPolicy reads, parses and validates a file", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "p.yaml");
    await Deno.writeTextFile(file, renderPolicyYaml(fullPolicy()));
    assert.deepEqual(await readPolicy(file), fullPolicy());
  });
});

Deno.test("readPolicy names a missing file and how to create one", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "missing.yaml");
    const error = await asyncErrorOf(() => readPolicy(file));
    assert.equal(error.code, "POLICY_NOT_FOUND");
    assert.equal(error.message, `Policy file "${file}" does not exist`);
    assert(error.hint.includes(`intellistor policy-create --out ${file}`), error.hint);
  });
});

Deno.test("readPolicy reports a YAML syntax error with line and column", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "p.yaml");
    await Deno.writeTextFile(file, 'id: mvp-default\npaths: ["/srv/data"\nschedule: "0 2 * * *"\n');
    const error = await asyncErrorOf(() => readPolicy(file));
    assert.equal(error.code, "POLICY_INVALID");
    assert.match(
      error.message,
      new RegExp(
        `^Policy "${
          RegExp.escape(file)
        }" is invalid: YAML syntax error at line \\d+, column \\d+: .+`,
      ),
    );
    assert(!error.message.includes("\n"), "the message is one line");
    await Deno.writeTextFile(file, "id: a\nid: b\n");
    assert.match(
      (await asyncErrorOf(() => readPolicy(file))).message,
      /at line 2, column 1: Map keys must be unique/,
    );
    await Deno.writeTextFile(file, 'paths:\n  - "C:\\dados"\n');
    const badEscape = await asyncErrorOf(() => readPolicy(file));
    assert.match(badEscape.message, /YAML syntax error at line 2/);
    assert.match(badEscape.hint, /single quotes/);
  });
});

Deno.test("readPolicy reports an empty file as invalid", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "p.yaml");
    await Deno.writeTextFile(file, "# nothing here\n");
    const error = await asyncErrorOf(() => readPolicy(file));
    assert.equal(error.code, "POLICY_INVALID");
    assert.match(error.message, /the document is empty/);
  });
});

Deno.test("readPolicy accepts UTF-8 with BOM and UTF-16 as Windows editors write them", async () => {
  await withTempDir(async (dir) => {
    const text = renderPolicyYaml(
      fullPolicy({ paths: [abs("dados", "Cópia de Diagrama_Solução")] }),
    );
    const utf8 = path.join(dir, "utf8.yaml");
    await Deno.writeFile(
      utf8,
      new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(text)]),
    );
    assert.deepEqual(
      await readPolicy(utf8),
      fullPolicy({ paths: [abs("dados", "Cópia de Diagrama_Solução")] }),
    );
    const utf16 = path.join(dir, "utf16.yaml");
    const units = new Uint16Array([0xfeff, ...Array.from(text, (c) => c.charCodeAt(0))]);
    await Deno.writeFile(utf16, new Uint8Array(units.buffer));
    assert.deepEqual(
      await readPolicy(utf16),
      fullPolicy({ paths: [abs("dados", "Cópia de Diagrama_Solução")] }),
    );
    const latin1 = path.join(dir, "latin1.yaml");
    await Deno.writeFile(latin1, new Uint8Array([0x69, 0x64, 0x3a, 0x20, 0xe7]));
    assert.match((await asyncErrorOf(() => readPolicy(latin1))).message, /is not UTF-8 text/);
  });
});

Deno.test("readPolicy with requirePaths rejects paths that do not exist", async () => {
  await withTempDir(async (dir) => {
    const existing = path.join(dir, "data");
    await Deno.mkdir(existing);
    const missing = path.join(dir, "gone", "disk");
    const file = path.join(dir, "p.yaml");
    await Deno.writeTextFile(file, renderPolicyYaml(fullPolicy({ paths: [existing, missing] })));
    assert.deepEqual((await readPolicy(file)).paths, [existing, missing]);
    const error = await asyncErrorOf(() => readPolicy(file, { requirePaths: true }));
    assert.equal(error.code, "POLICY_INVALID");
    assert.equal(
      error.message,
      `Policy "${file}" is invalid: paths[1]: ${JSON.stringify(missing)} does not exist`,
    );
    await Deno.mkdir(missing, { recursive: true });
    assert.deepEqual((await readPolicy(file, { requirePaths: true })).paths, [existing, missing]);
  });
});

Deno.test("checkPathsExist reports every missing path together", async () => {
  await withTempDir(async (dir) => {
    const first = path.join(dir, "a");
    const second = path.join(dir, "b");
    const policy = fullPolicy({ paths: [first, second] });
    const error = await asyncErrorOf(() => checkPathsExist(policy, "p.yaml"));
    assert.equal(
      error.message,
      `Policy "p.yaml" is invalid: paths[0]: ${JSON.stringify(first)} does not exist; ` +
        `paths[1]: ${JSON.stringify(second)} does not exist`,
    );
    assert.match(error.hint, /connect the drive or share/);
    await Deno.writeTextFile(first, "");
    await Deno.mkdir(second);
    await checkPathsExist(policy, "p.yaml");
  });
});

Deno.test("the rendered YAML explains each field and holds no secrets", () => {
  const text = renderPolicyYaml(fullPolicy());
  assert.match(text, /^# Intellistor backup policy/);
  assert.match(text, /holds no secrets/);
  for (
    const key of [
      "version",
      "id",
      "paths",
      "exclude",
      "schedule",
      "destination",
      "compression",
      "encryption",
    ]
  ) {
    const lines = text.split("\n");
    const index = lines.findIndex((line) => line.startsWith(`${key}:`));
    assert(index > 0, `${key} is rendered`);
    assert(lines[index - 1].startsWith("#"), `a comment precedes ${key}`);
  }
  for (
    const key of ["bucket", "prefix", "endpoint", "region", "level", "key_env", "passphrase_env"]
  ) {
    const lines = text.split("\n");
    const index = lines.findIndex((line) => line.startsWith(`  ${key}:`));
    assert(index > 0 && lines[index - 1].trimStart().startsWith("#"), `a comment precedes ${key}`);
  }
  // The local alternative is shown commented out.
  assert(text.includes("\n# destination:\n#   type: local\n#   path: "), text);
  assert.match(text, /^schedule: "0 2 \* \* \*"$/m);
  assert.match(text, /^id: mvp-default$/m);
});

Deno.test("rendering round-trips the default policy and a local destination", () => {
  for (
    const policy of [
      fullPolicy(),
      fullPolicy({ destination: { type: "local", path: abs("mnt", "backups") } }),
    ]
  ) {
    const text = renderPolicyYaml(policy);
    assert.deepEqual(validatePolicy(YAML.parse(text), "p.yaml"), policy);
  }
  assert.match(
    renderPolicyYaml(fullPolicy({ destination: { type: "local", path: abs("mnt") } })),
    /^# destination:\n# {3}type: s3\n/m,
  );
});

Deno.test("rendering quotes awkward values so they read back unchanged", () => {
  const awkward = [
    'it\'s "quoted"',
    "has # hash",
    "key: value",
    "C:\\dados\\Cópia de Diagrama_Solução.png",
    " leading and trailing ",
    "- dash",
    "*star",
    "&anchor",
    "!tag",
    "%percent",
    "@at",
    "`tick",
    "{brace}",
    "[bracket]",
    "true",
    "null",
    "123",
    "0x1F",
    "~",
    "tab\there",
    "line\nbreak",
    "del\u007f and nbsp\u00a0 and bom\ufeff",
    "emoji 📦",
  ];
  const paths = awkward.map((name, index) => abs(`${index}`, name));
  const policy = fullPolicy({
    id: "007",
    paths,
    exclude: ["Cópia*", "*.{tmp,bak}", "docs/#old/*", "it's"],
    schedule: "@daily",
    destination: {
      type: "s3",
      bucket: "true",
      prefix: "a b/#c: d/",
      endpoint: "http://127.0.0.1:9000/#",
      region: "null",
    },
  });
  // The fragment check would reject the endpoint above; round-trip only the YAML first.
  const parsed = YAML.parse(renderPolicyYaml(policy));
  assert.deepEqual(parsed, policy);
  const valid = fullPolicy({
    ...policy,
    destination: { ...policy.destination, endpoint: "" } as Policy["destination"],
  });
  assert.deepEqual(validatePolicy(YAML.parse(renderPolicyYaml(valid)), "p.yaml"), valid);
});

Deno.test("a Windows path is rendered readable, in single quotes", () => {
  const text = renderPolicyYaml(
    fullPolicy({ paths: ["C:\\dados\\Cópia de Diagrama_Solução.png"] }),
  );
  assert(text.includes("\n  - 'C:\\dados\\Cópia de Diagrama_Solução.png'\n"), text);
});

Deno.test("writePolicyFile writes a file that readPolicy reads back, creating directories", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "policies", "nested", "policy_02.yaml");
    const policy = fullPolicy({ exclude: ["*.tmp"] });
    await writePolicyFile(file, policy);
    assert.deepEqual(await readPolicy(file), policy);
    assert.equal(await Deno.readTextFile(file), renderPolicyYaml(policy));
    assert.deepEqual([...Deno.readDirSync(path.dirname(file))].map((entry) => entry.name), [
      "policy_02.yaml",
    ]);
  });
});

Deno.test("writePolicyFile refuses to replace an existing file without force", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "p.yaml");
    await Deno.writeTextFile(file, "keep me\n");
    const error = await asyncErrorOf(() => writePolicyFile(file, fullPolicy()));
    assert.equal(error.code, "POLICY_EXISTS");
    assert.equal(error.message, `Policy file "${file}" already exists`);
    assert.match(error.hint, /use --force to replace it/i);
    assert.equal(await Deno.readTextFile(file), "keep me\n");
  });
});

Deno.test("writePolicyFile with force replaces the file and leaves no temp file", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "p.yaml");
    await Deno.writeTextFile(file, "old\n");
    await writePolicyFile(file, fullPolicy({ id: "replaced" }), { force: true });
    assert.equal((await readPolicy(file)).id, "replaced");
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["p.yaml"]);
  });
});

Deno.test("writePolicyFile validates before writing anything", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, "p.yaml");
    const error = await asyncErrorOf(() =>
      writePolicyFile(file, fullPolicy({ schedule: "every day" }))
    );
    assert.equal(error.code, "POLICY_INVALID");
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("writePolicyFile refuses a directory even with force", async () => {
  await withTempDir(async (dir) => {
    const error = await asyncErrorOf(() => writePolicyFile(dir, fullPolicy(), { force: true }));
    assert.equal(error.code, "POLICY_EXISTS");
    assert.match(error.message, /is a directory/);
  });
});

Deno.test("a .env file given as the policy is refused without quoting any of it", async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, ".env");
    for (
      const text of [
        "INTELLISTOR_KEY=c2VjcmV0LWtleQ==\n",
        "# credentials\n\nexport AWS_SECRET_ACCESS_KEY=abc: def\n",
        'INTELLISTOR_PASSPHRASE="a: b"\nX=1\n',
      ]
    ) {
      await Deno.writeTextFile(file, text);
      const error = await asyncErrorOf(() => readPolicy(file));
      assert.equal(error.code, "POLICY_INVALID");
      assert.match(error.message, /NAME=value lines, as a \.env file does/);
      for (const part of ["c2VjcmV0", "abc", "a: b", "INTELLISTOR", "AWS"]) {
        assert.ok(!error.message.includes(part), `${part} quoted`);
      }
    }
    // A YAML policy whose values merely contain "=" is still a policy.
    await Deno.writeTextFile(file, `id: x\npaths: ["${dir}"]\nexclude: ["a=b"]\n`);
    assert.deepEqual((await readPolicy(file)).exclude, ["a=b"]);
  });
});

Deno.test("checkPathsExist refuses paths that a symbolic link makes the same or nested", async () => {
  await withTempDir(async (dir) => {
    const data = path.join(dir, "data");
    await Deno.mkdir(path.join(data, "sub"), { recursive: true });
    await Deno.symlink(data, path.join(dir, "alias"));
    await Deno.symlink(path.join(data, "sub"), path.join(dir, "inner"));
    const same = fullPolicy({ paths: [data, path.join(dir, "alias")] });
    assert.match(
      (await asyncErrorOf(() => checkPathsExist(same, "p.yaml"))).message,
      /paths\[1\]: ".*alias" repeats paths\[0\] \(through a symbolic link\)/,
    );
    const nested = fullPolicy({ paths: [path.join(dir, "inner"), path.join(dir, "alias")] });
    assert.match(
      (await asyncErrorOf(() => checkPathsExist(nested, "p.yaml"))).message,
      /paths\[0\]: ".*inner" is inside paths\[1\] ".*alias", which already includes it \(through a symbolic link\)/,
    );
    await checkPathsExist(fullPolicy({ paths: [path.join(dir, "alias")] }), "p.yaml");
  });
});

Deno.test("retention: defaults keep everything; counts are whole numbers; unknown rules are named", () => {
  assert.deepEqual(validatePolicy(MINIMAL, "p.yaml").retention, {
    keep_last: 0,
    keep_daily: 0,
    keep_weekly: 0,
    keep_monthly: 0,
  });
  // -0 is valid YAML; it must come back as 0, or the rendered policy would not read back the same.
  const kept = validatePolicy(
    { ...MINIMAL, retention: { keep_daily: 7, keep_monthly: 12, keep_weekly: -0 } },
    "p",
  );
  assert.deepEqual(kept.retention, {
    keep_last: 0,
    keep_daily: 7,
    keep_weekly: 0,
    keep_monthly: 12,
  });
  const error = errorOf(() =>
    validatePolicy(
      {
        ...MINIMAL,
        retention: { keep_last: -1, keep_daily: 1.5, keep_yearly: 2, keep_weekly: "4" },
      },
      "p.yaml",
    )
  );
  assert.equal(error.code, "POLICY_INVALID");
  for (const field of ["retention.keep_last", "retention.keep_daily", "retention.keep_weekly"]) {
    assert.ok(error.message.includes(field), `${field}: ${error.message}`);
  }
  assert.match(error.message, /keep_yearly/);
  // The rendered YAML carries the rules and reads back the same.
  const policy = fullPolicy({
    retention: { keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 12 },
  });
  const text = renderPolicyYaml(policy);
  assert.match(text, /^retention:\n(?: {2}#.*\n)? {2}keep_last: 3$/m);
  assert.deepEqual(validatePolicy(YAML.parse(text), "p.yaml"), policy);
});
