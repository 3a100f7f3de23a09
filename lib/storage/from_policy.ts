/**
 * Builds the concrete store a policy names. Only the CLI (and the SDK's
 * convenience entry) do this; use cases see the `Storage` interface alone.
 */
import type { Environment } from "../config/env.ts";
import { IntellistorError } from "../errors.ts";
import { bucketProblem, endpointProblem, type Policy, regionProblem } from "../policy/policy.ts";
import { LocalStorage } from "./local.ts";
import type { S3StorageOptions } from "./s3.ts";
import type { Storage } from "./storage.ts";

export interface StorageTarget {
  storage: Storage;
  /** The S3 bucket, or null for a local directory. */
  bucket: string | null;
}

/**
 * The store the policy's destination names, as the CLI opens it: a local
 * directory, or an S3 bucket (the bucket, endpoint and region from the policy,
 * else from `env`: AWS_S3_BUCKET, AWS_ENDPOINT_URL_S3, AWS_REGION…). Close it
 * when done. Once `options.signal` is aborted, S3 requests are no longer
 * retried, so that a stopped command cleans up at once.
 */
export async function openStorage(
  policy: Policy,
  env: Environment,
  options: { signal?: AbortSignal } = {},
): Promise<StorageTarget> {
  const destination = policy.destination;
  if (destination.type === "local") {
    return { storage: new LocalStorage(destination.path), bucket: null };
  }
  const bucket = destination.bucket || env.AWS_S3_BUCKET || "";
  if (bucket === "") {
    throw new IntellistorError(
      "BUCKET_MISSING",
      `Policy "${policy.id}" has no bucket, and AWS_S3_BUCKET is not set`,
      "Set AWS_S3_BUCKET in the .env file (see .env.example), or destination.bucket in the policy.",
    );
  }
  // The policy's own values were checked when it was read; the environment's
  // get the same rules here, before any request can fail on them.
  const regionVariable = ["AWS_REGION", "AWS_DEFAULT_REGION"].find((name) => env[name]);
  const region = destination.region || (regionVariable && env[regionVariable]) || undefined;
  if (!destination.bucket) checkSetting("AWS_S3_BUCKET", bucket, bucketProblem);
  if (!destination.region && regionVariable) checkSetting(regionVariable, region!, regionProblem);
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    // No keys in the .env: the AWS SDK's default chain (profile, SSO, instance
    // role…) reads the process environment, so hand it the .env's AWS_* settings.
    for (const [name, value] of Object.entries(env)) {
      if (name.startsWith("AWS_") && value !== undefined) Deno.env.set(name, value);
    }
  }
  const endpointVariable = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].find((name) => env[name]);
  const endpoint = destination.endpoint || (endpointVariable && env[endpointVariable]) || undefined;
  if (!destination.endpoint && endpointVariable !== undefined) {
    checkSetting(endpointVariable, endpoint!, endpointProblem, "or remove it for AWS itself");
  }
  const storage = await createS3Storage({
    retryWindowMs: retryWindow(env.INTELLISTOR_S3_RETRY_SECONDS),
    signal: options.signal,
    bucket,
    prefix: destination.prefix || undefined,
    endpoint,
    region,
    credentials: accessKeyId && secretAccessKey
      ? { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined }
      : undefined,
  });
  return { storage, bucket };
}

/** INTELLISTOR_S3_RETRY_SECONDS as milliseconds: 0 to 3600 whole seconds; unset = the default. */
function retryWindow(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  if (!/^\d{1,4}$/.test(value.trim()) || Number(value) > 3600) {
    throw new IntellistorError(
      "ENV_FILE_INVALID",
      `INTELLISTOR_S3_RETRY_SECONDS: ${JSON.stringify(value)} is not a number of seconds from 0 ` +
        "to 3600",
      "Fix it in the .env file (see .env.example), or remove it for the default, 60.",
    );
  }
  return Number(value) * 1000;
}

/** ENV_FILE_INVALID for an S3 setting from the environment that the policy's rules refuse. */
function checkSetting(
  variable: string,
  value: string,
  problemOf: (value: string) => string | undefined,
  alternative = "or set it in the policy",
): void {
  const problem = problemOf(value);
  if (problem === undefined) return;
  throw new IntellistorError(
    "ENV_FILE_INVALID",
    `${variable}: ${problem}`,
    `Fix ${variable} in the .env file (see .env.example), ${alternative}.`,
  );
}

/**
 * Creates a `Storage` for an S3 bucket. Nothing is sent until the first
 * operation, so a wrong bucket or credentials surface there, as
 * IntellistorError (BUCKET_NOT_FOUND, ACCESS_DENIED, STORAGE_UNREACHABLE, …).
 *
 * The AWS SDK (s3.ts) is loaded on the first call, by computed URL (see lib/cli/run.ts,
 * commandModule): a program that never touches S3, the CLI or one using the
 * SDK, never loads it, nor resolves it when it starts.
 *
 * @example
 * ```ts
 * const storage = await createS3Storage({ bucket: "backups", endpoint: "http://127.0.0.1:9000" });
 * try {
 *   for await (const object of storage.list("backups/")) console.log(object.key, object.size);
 * } finally {
 *   await storage.close();
 * }
 * ```
 */
export async function createS3Storage(options: S3StorageOptions): Promise<Storage> {
  const s3: typeof import("./s3.ts") = await import(new URL("./s3.ts", import.meta.url).href);
  return await s3.createS3Storage(options);
}
