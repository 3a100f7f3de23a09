import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { IntellistorError } from "../lib/errors.ts";
import { createS3Storage, type S3StorageOptions } from "../lib/storage/s3.ts";
import {
  listIncompleteMultipartUploads,
  s3rverCredentials,
  type S3TestServer,
  startS3Server,
} from "./support/s3_server.ts";
import {
  assertIntellistorError,
  failingStream,
  generatedStream,
  leakChecks,
  rejection,
  sha256OfStream,
  storageContractTests,
} from "./storage_suite.ts";

const MiB = 1024 * 1024;
/** S3's minimum, so that multipart uploads really happen in the suite. */
const partSize = 5 * MiB;
const queueSize = 4;

const server = await startS3Server();

function s3Options(overrides: Partial<S3StorageOptions> = {}): S3StorageOptions {
  return {
    bucket: server.bucket,
    endpoint: server.endpoint,
    credentials: s3rverCredentials,
    partSize,
    queueSize,
    ...overrides,
  };
}

storageContractTests("S3Storage", async () => {
  // Each test gets its own prefix on the shared server.
  const storage = await createS3Storage(s3Options({ prefix: `suite-${crypto.randomUUID()}` }));
  return {
    storage,
    partSize,
    incompleteUploads: async () => (await listIncompleteMultipartUploads(server)).length,
    pendingWriteBytes: async () =>
      (await listIncompleteMultipartUploads(server)).reduce((sum, upload) => sum + upload.bytes, 0),
    // Parts in flight, the part being filled, and one chunk.
    readAheadLimit: (queueSize + 2) * partSize,
    cleanup: () => storage.close(),
  };
});

/** A port on 127.0.0.1 where nothing listens. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The bytes s3rver stored for `objectKey` (its on-disk layout: "<key>._S3rver_object"). */
function storedObjectPath(testServer: S3TestServer, objectKey: string): string {
  return join(testServer.directory, testServer.bucket, `${objectKey}._S3rver_object`);
}

async function sha256OfFile(path: string): Promise<string> {
  using file = await Deno.open(path);
  const hash = createHash("sha256");
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

Deno.test(
  "S3Storage: the bytes stored on the server are exactly the bytes sent (no aws-chunked framing)",
  leakChecks,
  async () => {
    const prefix = `stored-${crypto.randomUUID()}`;
    const storage = await createS3Storage(s3Options({ prefix }));
    try {
      for (const [index, size] of [1000, 2 * partSize + 123].entries()) {
        const key = `object-${size}`;
        await storage.put(key, generatedStream(size, index));
        const path = storedObjectPath(server, `${prefix}/${key}`);
        assert.equal((await Deno.stat(path)).size, size);
        assert.equal(await sha256OfFile(path), await sha256OfStream(generatedStream(size, index)));
      }
    } finally {
      await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: with a custom endpoint no request uses aws-chunked bodies or optional checksums",
  leakChecks,
  async () => {
    const storage = await createS3Storage(
      s3Options({ prefix: `checksums-${crypto.randomUUID()}` }),
    );
    const firstRequest = server.requests.length;
    try {
      await storage.put("single", generatedStream(1000, 1));
      await storage.put("multipart", generatedStream(partSize + 1000, 2));
      await sha256OfStream(await storage.get("multipart", { start: 10, end: 20 }));
      const requests = server.requests.slice(firstRequest);
      assert.ok(
        requests.some((request) => request.query.includes("partNumber")),
        "multipart happened",
      );
      for (const { method, path, headers } of requests) {
        const checksumHeaders = Object.keys(headers).filter((name) =>
          name.startsWith("x-amz-checksum") || name === "x-amz-sdk-checksum-algorithm" ||
          name === "x-amz-trailer"
        );
        assert.deepEqual(checksumHeaders, [], `${method} ${path}`);
        assert.doesNotMatch(headers["content-encoding"] ?? "", /aws-chunked/, `${method} ${path}`);
        assert.doesNotMatch(
          headers["x-amz-content-sha256"] ?? "",
          /^STREAMING/,
          `${method} ${path}`,
        );
      }
    } finally {
      await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: a failed multipart upload is aborted and leaves no parts on the server",
  leakChecks,
  async () => {
    const prefix = `abort-${crypto.randomUUID()}`;
    const storage = await createS3Storage(s3Options({ prefix }));
    const firstRequest = server.requests.length;
    try {
      const failure = new Error("source read failed");
      const error = await rejection(
        storage.put("object", failingStream(2 * partSize + 10, failure)),
      );
      assert.equal(error, failure);
      const requests = server.requests.slice(firstRequest);
      const objectPath = `/${server.bucket}/${prefix}/object`;
      const sent = (method: string, query: string) =>
        requests.some((request) =>
          request.method === method && request.path === objectPath && request.query.includes(query)
        );
      assert.ok(sent("POST", "uploads"), "a multipart upload was started");
      assert.ok(sent("PUT", "partNumber"), "parts were uploaded");
      assert.ok(sent("DELETE", "uploadId"), "the upload was aborted");
      assert.deepEqual(await listIncompleteMultipartUploads(server), []);
      assert.equal(await storage.head("object"), undefined);
    } finally {
      await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: https to a plain-http server says to check the scheme, not to try again later",
  leakChecks,
  async () => {
    const endpoint = server.endpoint.replace(/^http:/, "https:");
    const storage = await createS3Storage(s3Options({ endpoint }));
    try {
      const error = await rejection(Array.fromAsync(storage.list("")));
      assertIntellistorError(error, "STORAGE_ERROR");
      assert.match(error.hint, /scheme \(http:\/\/ or https:\/\/\)/);
    } finally {
      await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: a missing bucket is BUCKET_NOT_FOUND with a hint naming the setting",
  leakChecks,
  async () => {
    const storage = await createS3Storage(s3Options({ bucket: "no-such-bucket" }));
    try {
      const errors = [
        await rejection(storage.put("key", generatedStream(100, 1))),
        await rejection(storage.put("key", generatedStream(partSize + 1, 1))),
        await rejection(storage.get("key")),
        await rejection(Array.fromAsync(storage.list(""))),
      ];
      for (const error of errors) {
        assertIntellistorError(error, "BUCKET_NOT_FOUND");
        assert.match(error.message, /no-such-bucket/);
        assert.match(error.hint, /AWS_S3_BUCKET/);
      }
      assert.deepEqual(await listIncompleteMultipartUploads(server), []);
    } finally {
      await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: an unreachable endpoint is STORAGE_UNREACHABLE, quickly, naming the endpoint",
  leakChecks,
  async () => {
    const endpoint = `http://127.0.0.1:${closedPort()}`;
    const storage = await createS3Storage(s3Options({ endpoint }));
    try {
      const started = Date.now();
      const errors = [
        await rejection(storage.head("key")),
        await rejection(storage.get("key")),
        await rejection(storage.put("key", generatedStream(100, 1))),
        await rejection(Array.fromAsync(storage.list(""))),
        await rejection(storage.delete("key")),
      ];
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
      for (const error of errors) {
        assertIntellistorError(error, "STORAGE_UNREACHABLE");
        assert.ok(error.message.includes(endpoint), error.message);
        assert.match(error.hint, /AWS_ENDPOINT_URL_S3/);
      }
    } finally {
      await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: an unknown access key id is ACCESS_DENIED with a credentials hint",
  leakChecks,
  async () => {
    const storage = await createS3Storage(
      s3Options({
        credentials: { accessKeyId: "AKIAWRONGKEYID", secretAccessKey: "wrong-secret" },
      }),
    );
    try {
      const errors = [
        await rejection(storage.put("key", generatedStream(100, 1))),
        await rejection(storage.get("key")),
        await rejection(storage.head("key")),
        await rejection(Array.fromAsync(storage.list(""))),
      ];
      for (const error of errors) {
        assertIntellistorError(error, "ACCESS_DENIED");
        assert.match(error.hint, /AWS_ACCESS_KEY_ID/);
      }
    } finally {
      await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: error messages and hints never contain the secret key or session token",
  leakChecks,
  async () => {
    const secretAccessKey = "sEcReT/do-not-print+1234567890abcdefghijKLMN";
    const sessionToken = "SeSsIoN-token-do-not-print-0987654321";
    const credentials = { accessKeyId: "AKIAWRONGKEYID", secretAccessKey, sessionToken };
    const storages = [
      await createS3Storage(s3Options({ credentials })),
      await createS3Storage(s3Options({ credentials: { ...credentials, accessKeyId: "S3RVER" } })),
      await createS3Storage(s3Options({ credentials, bucket: "no-such-bucket" })),
      await createS3Storage(
        s3Options({ credentials, endpoint: `http://127.0.0.1:${closedPort()}` }),
      ),
    ];
    try {
      for (const storage of storages) {
        const errors = [
          await rejection(storage.get("missing-key")),
          await storage.put("key", generatedStream(10, 1)).catch((error) => error),
          await Array.fromAsync(storage.list("")).catch((error) => error),
        ].filter((error) => error instanceof Error);
        assert.ok(errors.length > 0);
        for (const error of errors) {
          assert.ok(error instanceof IntellistorError, String(error));
          const shown = JSON.stringify(error.toJSON());
          assert.ok(!shown.includes(secretAccessKey), shown);
          assert.ok(!shown.includes(sessionToken), shown);
        }
      }
    } finally {
      for (const storage of storages) await storage.close();
    }
  },
);

Deno.test(
  "S3Storage: the prefix is joined with one slash and stripped from listed keys",
  leakChecks,
  async () => {
    const base = `prefixed-${crypto.randomUUID()}`;
    const prefixed = await createS3Storage(s3Options({ prefix: `/${base}/team/` }));
    const whole = await createS3Storage(s3Options());
    try {
      assert.equal(prefixed.location, `s3://${server.bucket}/${base}/team`);
      assert.equal(whole.location, `s3://${server.bucket}`);
      await prefixed.put("a/b", generatedStream(10, 1));
      await whole.put(`${base}/team-other/c`, generatedStream(20, 2));
      await whole.put(`${base}/teamc`, generatedStream(30, 3));
      assert.deepEqual(await whole.head(`${base}/team/a/b`), { key: `${base}/team/a/b`, size: 10 });
      assert.deepEqual(await Array.fromAsync(prefixed.list("")), [{ key: "a/b", size: 10 }]);
      assert.deepEqual(await Array.fromAsync(prefixed.list("a/")), [{ key: "a/b", size: 10 }]);
      await prefixed.delete("a/b");
      assert.equal(await whole.head(`${base}/team/a/b`), undefined);
    } finally {
      await prefixed.close();
      await whole.close();
    }
  },
);

Deno.test("S3Storage: list follows continuation tokens across pages", leakChecks, async () => {
  const prefix = `pages-${crypto.randomUUID()}`;
  const storage = await createS3Storage(s3Options({ prefix, listPageSize: 2 }));
  const firstRequest = server.requests.length;
  try {
    const keys = ["e", "a", "d/x", "b", "c"];
    for (const [index, key] of keys.entries()) {
      await storage.put(key, generatedStream(index, index));
    }
    const listed = await Array.fromAsync(storage.list(""));
    assert.deepEqual(listed.map((object) => object.key), ["a", "b", "c", "d/x", "e"]);
    const listRequests = server.requests.slice(firstRequest)
      .filter((request) => request.method === "GET" && request.query.includes("list-type"));
    assert.equal(listRequests.length, 3);
    assert.equal(
      listRequests.filter((request) => request.query.includes("continuation-token")).length,
      2,
    );
  } finally {
    await storage.close();
  }
});

Deno.test("S3Storage: importing the module does not load the AWS SDK", leakChecks, async () => {
  // Importing the SDK reads environment variables, so without --allow-env it fails:
  // the module imports cleanly without permissions only if the SDK is left unloaded.
  const run = async (source: string) => {
    const moduleUrl = `data:application/typescript;base64,${btoa(source)}`;
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        moduleUrl,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    return { code, stderr: new TextDecoder().decode(stderr) };
  };
  const storageModule = new URL("../lib/storage/s3.ts", import.meta.url).href;
  const withStorage = await run(
    `import { createS3Storage } from "${storageModule}"; createS3Storage;`,
  );
  assert.equal(withStorage.code, 0, withStorage.stderr);
  const withSdk = await run(`import "@aws-sdk/client-s3";`);
  assert.notEqual(withSdk.code, 0, "control: the SDK itself needs permissions at import");
  assert.match(withSdk.stderr, /env/);
});

Deno.test("S3Storage: stop the test server", leakChecks, async () => {
  await server.stop();
});
