/**
 * A `Storage` on S3 or an S3-compatible store (MinIO, R2, B2, Wasabi, Ceph),
 * through the AWS SDK v3.
 *
 * The SDK is loaded with a dynamic import inside `createS3Storage`, so a
 * process that never touches S3 (local storage, `policy-create`, `--help`)
 * does not pay its ~60 MB and start-up time.
 */
import type { S3Client } from "npm:@aws-sdk/client-s3@3.1169.0";

/** The SDK module, loaded on first use (type-only here, so importing this file loads nothing). */
type S3Sdk = typeof import("npm:@aws-sdk/client-s3@3.1169.0");
import { IntellistorError, toIntellistorError } from "../errors.ts";
import type { ByteRange, ObjectInfo, Storage } from "./storage.ts";
import { assertByteRange, assertStorageKey, assertStoragePrefix } from "./storage_rules.ts";

/** How to reach the bucket. Only `bucket` is required. */
export interface S3StorageOptions {
  bucket: string;
  /** Prepended to every key as "<prefix>/<key>"; leading and trailing slashes are ignored. */
  prefix?: string;
  /** A custom endpoint for S3-compatible stores, e.g. "http://127.0.0.1:9000". */
  endpoint?: string;
  /** Default "us-east-1". */
  region?: string;
  /** Explicit credentials; when absent the SDK's default chain is used (env, shared config, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Path-style URLs (http://host/bucket/key). Default: true with a custom endpoint, false otherwise. */
  forcePathStyle?: boolean;
  /** Multipart part size in bytes; S3's minimum is 5 MiB. Default 8 MiB. */
  partSize?: number;
  /** Parts uploaded in parallel; memory use is about (queueSize + 1) × partSize. Default 4. */
  queueSize?: number;
  /** Objects per ListObjectsV2 page (S3's maximum is 1000). Default 1000; smaller values exist for tests. */
  listPageSize?: number;
  /**
   * How long a request that failed in a retryable way (500, 502, 503, 504,
   * throttling, a connection refused, reset or timed out) is tried again,
   * with exponential backoff, counted from its first failure. Default 60 s;
   * 0 = never retried. Until the store has answered once, at most 1 s.
   */
  retryWindowMs?: number;
  /**
   * Once aborted, failed requests are no longer retried: a stopped command
   * cleans up (aborts its multipart upload) without waiting out the window.
   */
  signal?: AbortSignal;
}

const defaultRegion = "us-east-1";
const defaultRetryWindowMs = 60_000;
const defaultPartSize = 8 * 1024 * 1024;
const defaultQueueSize = 4;
const minimumPartSize = 5 * 1024 * 1024;

/**
 * Creates a `Storage` for an S3 bucket. Nothing is sent until the first
 * operation, so a wrong bucket or credentials surface there, as
 * IntellistorError (BUCKET_NOT_FOUND, ACCESS_DENIED, STORAGE_UNREACHABLE, …).
 * Programs reach it through from_policy.ts's `createS3Storage`, which loads
 * this module on first use.
 */
export async function createS3Storage(options: S3StorageOptions): Promise<Storage> {
  const partSize = options.partSize ?? defaultPartSize;
  const queueSize = options.queueSize ?? defaultQueueSize;
  if (!options.bucket) throw new TypeError("S3 storage needs a bucket name");
  if (!Number.isSafeInteger(partSize) || partSize < minimumPartSize) {
    throw new RangeError(`S3 part size must be an integer of at least ${minimumPartSize} bytes`);
  }
  if (!Number.isSafeInteger(queueSize) || queueSize < 1) {
    throw new RangeError("S3 queue size must be a positive integer");
  }
  const sdk = await import("npm:@aws-sdk/client-s3@3.1169.0");
  const endpoint = options.endpoint;
  const region = options.region ?? defaultRegion;
  const client = new sdk.S3Client({
    region,
    endpoint,
    forcePathStyle: options.forcePathStyle ?? endpoint !== undefined,
    credentials: options.credentials,
    // S3-compatible servers may store aws-chunked framing inside the object (MEASURED.md):
    // send plain bodies and checksums only where the API requires them.
    ...(endpoint === undefined ? {} : {
      requestChecksumCalculation: "WHEN_REQUIRED" as const,
      responseChecksumValidation: "WHEN_REQUIRED" as const,
    }),
    // Retries what the SDK classes as retryable (500, 502, 503, 504,
    // throttling, transient network errors), never 4xx such as 403 or 404,
    // for a window of time (WindowedRetryStrategy). Multipart parts are
    // buffered, so each part is retried on its own; the whole upload is never
    // restarted.
    retryStrategy: new WindowedRetryStrategy(
      options.retryWindowMs ?? defaultRetryWindowMs,
      options.signal,
    ),
    requestHandler: {
      connectionTimeout: 10_000,
      // An idle socket, not a whole transfer: large objects may take long, silence may not.
      // 60 s as the AWS CLI's read timeout: a store that accepts connections and
      // never answers fails a request after two such attempts, about 2 minutes.
      socketTimeout: 60_000,
    },
  });
  return new S3Storage(client, sdk, {
    bucket: options.bucket,
    keyPrefix: normalizePrefix(options.prefix),
    endpointLabel: endpoint === undefined
      ? `https://s3.${region}.amazonaws.com`
      : withoutUserInfo(endpoint),
    secrets: [options.credentials?.secretAccessKey, options.credentials?.sessionToken]
      .filter((secret): secret is string => !!secret),
    partSize,
    queueSize,
    listPageSize: options.listPageSize ?? 1000,
  });
}

interface S3StorageSettings {
  bucket: string;
  /** "" or "<prefix>/" */
  keyPrefix: string;
  /** The endpoint as shown in messages (no user info). */
  endpointLabel: string;
  /** Strings that must never appear in an error message. */
  secrets: string[];
  partSize: number;
  queueSize: number;
  listPageSize: number;
}

class S3Storage implements Storage {
  readonly location: string;
  readonly #client: S3Client;
  readonly #sdk: S3Sdk;
  readonly #settings: S3StorageSettings;

  constructor(client: S3Client, sdk: S3Sdk, settings: S3StorageSettings) {
    this.#client = client;
    this.#sdk = sdk;
    this.#settings = settings;
    this.location = `s3://${settings.bucket}${
      settings.keyPrefix ? `/${settings.keyPrefix.slice(0, -1)}` : ""
    }`;
  }

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo> {
    const objectKey = this.#objectKey(key);
    const tap = new BodyTap(body);
    try {
      const { Upload } = await import("npm:@aws-sdk/lib-storage@3.1169.0");
      const upload = new Upload({
        client: this.#client,
        params: { Bucket: this.#settings.bucket, Key: objectKey, Body: tap.stream },
        partSize: this.#settings.partSize,
        queueSize: this.#settings.queueSize,
        // On failure Upload sends AbortMultipartUpload, so no billed parts stay behind.
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (error) {
      await tap.cancel(error);
      // The body's own failure (e.g. a source file read error) is the caller's error, unchanged.
      if (tap.failure) throw tap.failure.error;
      throw this.#mapError(error, "put", key);
    }
    return { key, size: tap.bytes };
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const objectKey = this.#objectKey(key);
    if (range) assertByteRange(range);
    // S3 cannot express an empty range ("bytes=5-4" returns the whole object): only check existence.
    if (range && range.start === range.end) {
      if (!(await this.head(key))) throw this.#notFound(key);
      return emptyStream();
    }
    let output;
    try {
      output = await this.#client.send(
        new this.#sdk.GetObjectCommand({
          Bucket: this.#settings.bucket,
          Key: objectKey,
          Range: range ? `bytes=${range.start}-${range.end - 1}` : undefined,
        }),
      );
    } catch (error) {
      // A range starting at or past the end: the object exists and has no bytes there.
      if (range && errorName(error) === "InvalidRange") return emptyStream();
      throw this.#mapError(error, "get", key);
    }
    if (!output.Body) throw this.#mapError(new Error("response has no body"), "get", key);
    const body = output.Body.transformToWebStream() as ReadableStream<Uint8Array>;
    const mapError = (error: unknown) => this.#mapError(error, "get", key);
    if (!range) return checkedBody(body, output.ContentLength, Infinity, mapError);
    // Some S3-compatible servers ignore Range or widen it: never pass other bytes off as the range.
    const served = parseContentRange(output.ContentRange);
    const wanted = served ? Math.min(range.end, served.total) - range.start : 0;
    if (!served || served.first !== range.start || served.last - served.first + 1 < wanted) {
      await body.cancel();
      throw mapError(
        new Error(
          `server answered the byte range with Content-Range: ${output.ContentRange ?? "none"}`,
        ),
      );
    }
    return checkedBody(body, output.ContentLength, wanted, mapError);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const objectKey = this.#objectKey(key);
    try {
      const output = await this.#client.send(
        new this.#sdk.HeadObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey }),
      );
      return { key, size: output.ContentLength ?? 0 };
    } catch (error) {
      // A HEAD response has no body, so a missing bucket also looks like a plain 404 here.
      if (httpStatus(error) === 404) return undefined;
      throw this.#mapError(error, "head", key);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertStoragePrefix(prefix);
    const { keyPrefix } = this.#settings;
    let continuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.#client.send(
          new this.#sdk.ListObjectsV2Command({
            Bucket: this.#settings.bucket,
            Prefix: keyPrefix + prefix,
            ContinuationToken: continuationToken,
            MaxKeys: this.#settings.listPageSize,
          }),
        );
      } catch (error) {
        throw this.#mapError(error, "list", prefix);
      }
      for (const object of page.Contents ?? []) {
        if (!object.Key?.startsWith(keyPrefix)) continue;
        const key = object.Key.slice(keyPrefix.length);
        // Folder markers ("a/b/") and other keys this API cannot address are not objects to us.
        if (!isStorageKey(key)) continue;
        yield { key, size: object.Size ?? 0 };
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.#objectKey(key);
    try {
      await this.#client.send(
        new this.#sdk.DeleteObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey }),
      );
    } catch (error) {
      if (errorName(error) === "NoSuchKey") return;
      throw this.#mapError(error, "delete", key);
    }
  }

  close(): Promise<void> {
    this.#client.destroy();
    return Promise.resolve();
  }

  #objectKey(key: string): string {
    assertStorageKey(key);
    return this.#settings.keyPrefix + key;
  }

  #notFound(key: string): IntellistorError {
    return new IntellistorError(
      "BACKUP_NOT_FOUND",
      `Object "${key}" not found in ${this.location}`,
      "Check the key (see `intellistor list`), the bucket and the prefix.",
    );
  }

  #mapError(error: unknown, operation: S3Operation, key: string): IntellistorError {
    return mapS3Error(error, {
      operation,
      key,
      location: this.location,
      bucket: this.#settings.bucket,
      endpoint: this.#settings.endpointLabel,
      secrets: this.#settings.secrets,
    });
  }
}

type S3Operation = "put" | "get" | "head" | "list" | "delete";

interface S3ErrorContext {
  operation: S3Operation;
  /** The key (or the prefix, for list) as the caller named it. */
  key: string;
  location: string;
  bucket: string;
  endpoint: string;
  secrets: string[];
}

/** A retry's place in a request's attempts, as the SDK's retry middleware reads it. */
class RetryAttempt {
  constructor(
    readonly count: number,
    readonly delay: number,
    /** When the request first failed (ms since the epoch); undefined before. */
    readonly firstFailure?: number,
  ) {}
  getRetryCount(): number {
    return this.count;
  }
  getRetryDelay(): number {
    return this.delay;
  }
}

/** Before the store has answered once (a wrong endpoint, a typo), failures are retried this long. */
const unansweredRetryWindowMs = 1_000;

/**
 * Tries a retryable failure again for `windowMs` from the request's first
 * failure, waiting 0.25 s, 0.5 s, 1 s … up to 8 s between attempts (each
 * 50–100 % of that, so that parts failing together do not return together).
 * The SDK's standard strategy gives up after 5 attempts, about 0.4 s, so a
 * store restarting or a network blip of a second failed the night's backup;
 * restic retries for minutes. A window in time rather than a count keeps a
 * store that accepts connections and never answers (60 s per attempt) to two
 * attempts, while a refused connection is tried about ten times in a minute.
 * Until the store has answered once (any HTTP status), the window is a
 * second: an endpoint that was never reachable is a setting to fix, said at
 * once. Once `signal` is aborted nothing is retried, so that a stop's
 * clean-up is not held up by the window.
 */
class WindowedRetryStrategy {
  readonly mode = "standard";
  #answered = false;
  constructor(readonly windowMs: number, readonly signal?: AbortSignal) {}

  acquireInitialRetryToken(_scope: string): Promise<RetryAttempt> {
    return Promise.resolve(new RetryAttempt(0, 0));
  }

  refreshRetryTokenForRetry(
    token: RetryAttempt,
    info: { errorType: string; error?: unknown; retryAfterHint?: Date },
  ): Promise<RetryAttempt> {
    const now = Date.now();
    const firstFailure = token.firstFailure ?? now;
    const ceiling = Math.min(8_000, 250 * 2 ** token.count);
    let delay = Math.round(ceiling * (0.5 + Math.random() / 2));
    if (info.retryAfterHint instanceof Date) {
      delay = Math.max(delay, Math.min(info.retryAfterHint.getTime() - now, 8_000));
    }
    // Any reply with an HTTP status (a 503 from a store starting) is an answer.
    if (httpStatus(info.error) !== undefined) this.#answered = true;
    const window = this.#answered
      ? this.windowMs
      : Math.min(this.windowMs, unansweredRetryWindowMs);
    // What the SDK's standard strategy retries, and nothing else (not a 501 or a 507).
    const retryable = info.errorType === "TRANSIENT" || info.errorType === "THROTTLING";
    if (!retryable || this.signal?.aborted || now + delay - firstFailure > window) {
      // The middleware then rejects with the request's own error.
      return Promise.reject(new Error("no retry"));
    }
    return Promise.resolve(new RetryAttempt(token.count + 1, delay, firstFailure));
  }

  recordSuccess(_token: RetryAttempt): void {
    this.#answered = true;
  }
}

/** Network failures: the store could not be reached or stopped answering. */
const unreachableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
]);
const accessDeniedNames = new Set([
  "AccessDenied",
  "Forbidden",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "CredentialsProviderError",
]);

/**
 * The one place that turns an SDK or network error into what the user sees.
 * Messages name the bucket, key and endpoint, never credentials.
 */
function mapS3Error(error: unknown, context: S3ErrorContext): IntellistorError {
  if (error instanceof IntellistorError) return error;
  // An SDK program without --allow-sys or --allow-net: not the store's failure.
  if (error instanceof Deno.errors.NotCapable) return toIntellistorError(error);
  const name = errorName(error);
  const status = httpStatus(error);
  const what = context.operation === "list"
    ? `list "${context.key}" in ${context.location}`
    : `${context.operation} "${context.key}" in ${context.location}`;
  const redact = (text: string) =>
    context.secrets.reduce((result, secret) => result.replaceAll(secret, "[redacted]"), text);

  if (name === "NoSuchBucket") {
    return new IntellistorError(
      "BUCKET_NOT_FOUND",
      `Bucket "${context.bucket}" does not exist at ${context.endpoint}`,
      "Create the bucket, or fix AWS_S3_BUCKET / the policy's destination.bucket.",
      { cause: error },
    );
  }
  if (name === "NoSuchKey" || (status === 404 && context.operation === "get")) {
    return new IntellistorError(
      "BACKUP_NOT_FOUND",
      `Object "${context.key}" not found in ${context.location}`,
      "Check the key (see `intellistor list`), the bucket and the prefix.",
      { cause: error },
    );
  }
  if (accessDeniedNames.has(name) || status === 403) {
    const reason = name === "CredentialsProviderError" ? "no AWS credentials were found" : name;
    return new IntellistorError(
      "ACCESS_DENIED",
      `Access denied: cannot ${what} (${reason || `HTTP ${status}`})`,
      "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile or role in use) " +
        `and that they may read, write, list and delete in ${context.location}.`,
      { cause: error },
    );
  }
  const networkCode = findNetworkCode(error);
  if (networkCode) {
    return new IntellistorError(
      "STORAGE_UNREACHABLE",
      `Cannot reach the S3 endpoint ${context.endpoint} to ${what} (${networkCode})`,
      "Check AWS_ENDPOINT_URL_S3 / the policy's endpoint, the network, DNS, proxy and firewall." +
        (context.operation === "put"
          ? " An upload cut off this way may leave an incomplete multipart upload, which the " +
            "bucket's lifecycle rule removes (README, docs/RELIABILITY.md)."
          : ""),
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  const hint = name === "PermanentRedirect" || name === "AuthorizationHeaderMalformed"
    ? "The bucket is probably in another region: set AWS_REGION / the policy's destination.region."
    : /wrong version number|SSL routines|certificate|TLS/i.test(message)
    // A setting, not an outage: https to a plain-http server, or a certificate not trusted.
    ? "Check the endpoint's scheme (http:// or https://) and, for https, that its certificate is " +
      "trusted by this machine."
    : "Try again later; if it persists, check the S3 service status and the bucket's settings.";
  return new IntellistorError(
    "STORAGE_ERROR",
    redact(`Cannot ${what}: ${name || "Error"}${status ? ` (HTTP ${status})` : ""}: ${message}`),
    hint,
    { cause: error },
  );
}

function errorName(error: unknown): string {
  if (typeof error !== "object" || error === null) return "";
  const { name, Code } = error as { name?: unknown; Code?: unknown };
  if (typeof Code === "string") return Code;
  return typeof name === "string" && name !== "Error" ? name : "";
}

function httpStatus(error: unknown): number | undefined {
  const metadata = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  return metadata?.httpStatusCode;
}

/** Looks through causes and aggregated errors (Happy Eyeballs tries several addresses). */
function findNetworkCode(error: unknown, depth = 0): string | undefined {
  if (typeof error !== "object" || error === null || depth > 5) return undefined;
  const { code, name, cause, errors } = error as {
    code?: unknown;
    name?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (typeof code === "string" && unreachableCodes.has(code)) return code;
  if (name === "TimeoutError") return "timeout";
  if (Array.isArray(errors)) {
    for (const inner of errors) {
      const found = findNetworkCode(inner, depth + 1);
      if (found) return found;
    }
  }
  return findNetworkCode(cause, depth + 1);
}

/**
 * Wraps the caller's body for Upload: counts bytes, and remembers a failure of
 * the body itself so `put` can tell it apart from an S3 failure.
 */
class BodyTap {
  bytes = 0;
  failure: { error: unknown } | undefined;
  readonly stream: ReadableStream<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #finished = false;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
    this.stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let result;
        try {
          result = await this.#reader.read();
        } catch (error) {
          this.#finished = true;
          this.failure = { error };
          throw error;
        }
        if (result.done) {
          this.#finished = true;
          controller.close();
          return;
        }
        this.bytes += result.value.byteLength;
        controller.enqueue(result.value);
      },
      cancel: (reason) => this.cancel(reason),
    }, { highWaterMark: 0 });
  }

  /** Stops the caller's producer after a failed upload; harmless if it already ended. */
  async cancel(reason: unknown): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    await this.#reader.cancel(reason).catch(() => {});
  }
}

/**
 * Passes the response body through, mapping network errors, refusing a body
 * shorter than its Content-Length (a connection cut mid-object) and stopping
 * after `limit` bytes (a server that sent more of the object than asked).
 */
function checkedBody(
  body: ReadableStream<Uint8Array>,
  expectedLength: number | undefined,
  limit: number,
  mapError: (error: unknown) => IntellistorError,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let received = 0;
  let delivered = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (delivered >= limit && (expectedLength === undefined || limit < expectedLength)) {
        await reader.cancel();
        controller.close();
        return;
      }
      let result;
      try {
        result = await reader.read();
      } catch (error) {
        throw mapError(error);
      }
      if (result.done) {
        if (expectedLength !== undefined && received !== expectedLength) {
          throw mapError(
            Object.assign(new Error(`body ended after ${received} of ${expectedLength} bytes`), {
              code: "ECONNRESET",
            }),
          );
        }
        controller.close();
        return;
      }
      received += result.value.byteLength;
      const chunk = delivered + result.value.byteLength > limit
        ? result.value.subarray(0, limit - delivered)
        : result.value;
      delivered += chunk.byteLength;
      controller.enqueue(chunk);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Parses "bytes 100-199/1000" (total "*" = unknown, taken as unbounded). */
function parseContentRange(
  header: string | undefined,
): { first: number; last: number; total: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header?.trim() ?? "");
  if (!match) return undefined;
  return {
    first: Number(match[1]),
    last: Number(match[2]),
    total: match[3] === "*" ? Infinity : Number(match[3]),
  };
}

function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
}

function isStorageKey(key: string): boolean {
  try {
    assertStorageKey(key);
    return true;
  } catch {
    return false;
  }
}

function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? "").replace(/^\/+|\/+$/g, "");
  if (trimmed === "") return "";
  assertStoragePrefix(trimmed);
  return `${trimmed}/`;
}

function withoutUserInfo(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    url.search = "";
    return url.toString().replace(/\/$/, "");
  } catch {
    return endpoint;
  }
}
