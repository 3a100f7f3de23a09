/**
 * A real S3-compatible server (s3rver) running in this process on 127.0.0.1,
 * for tests. No mocked client: requests go over HTTP like they would to S3.
 *
 * s3rver 3.7.1 differs from S3 where the storage tests need S3's behaviour, so
 * this module adds or fixes (in this process only, on this server only):
 * - AbortMultipartUpload (it answers 405 MethodNotAllowed): a small middleware
 *   implements it the way S3 does, deleting the upload's parts.
 * - ListMultipartUploads (NotImplemented): `listIncompleteMultipartUploads`
 *   reads the server's directory instead.
 * - ListObjectsV2 as S3 does it: s3rver lists in directory-walk order ("a/b"
 *   before "a-c") where S3 uses UTF-8 byte order, and under Deno its
 *   continuation tokens fail (they use DES, which Deno's node:crypto lacks),
 *   so any truncated listing is a 500. `listObjectsLikeS3` fixes both.
 */
import S3rver from "npm:s3rver@3.7.1";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { compareStorageKeys } from "../../lib/storage/storage_rules.ts";

/** One request as the server received it, for assertions on what the client sent. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** Query parameter names, e.g. ["uploadId", "partNumber"]. */
  query: string[];
  /** Request headers, names in lower case. */
  headers: Record<string, string>;
}

/** A running test server. */
export interface S3TestServer {
  /** e.g. "http://127.0.0.1:40123" */
  endpoint: string;
  port: number;
  /** Where s3rver keeps buckets and objects; removed by stop(). */
  directory: string;
  /** The first configured bucket. */
  bucket: string;
  /** Every request received so far, in arrival order. */
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

/** Credentials s3rver accepts (its built-in dummy account). */
export const s3rverCredentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

/**
 * Starts s3rver on a random port with the given buckets (default "test-bucket")
 * in a fresh temporary directory.
 *
 * @example
 * ```ts
 * const server = await startS3Server();
 * try {
 *   // new S3Client({ endpoint: server.endpoint, forcePathStyle: true, ... })
 * } finally {
 *   await server.stop();
 * }
 * ```
 */
export async function startS3Server(options: { buckets?: string[] } = {}): Promise<S3TestServer> {
  const buckets = options.buckets ?? ["test-bucket"];
  const directory = await Deno.makeTempDir({ prefix: "intellistor-s3rver-" });
  const requests: RecordedRequest[] = [];
  const s3rver = new S3rver({
    port: 0,
    address: "127.0.0.1",
    directory,
    silent: true,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
    vhostBuckets: false,
  });
  // Koa composes `middleware` when the server starts, so the additions must be
  // in place before run(). The recorder goes first to see every request; the
  // others sit just outside the router, so its authentication and bucket checks
  // still apply, and inside the XML encoder, so they can amend response bodies.
  s3rver.middleware.unshift(recordRequests(requests));
  s3rver.middleware.splice(
    s3rver.middleware.length - 1,
    0,
    abortMultipartUpload(directory),
    listObjectsLikeS3(s3rver.store),
  );

  let address: { port: number };
  try {
    address = await s3rver.run();
  } catch (error) {
    await Deno.remove(directory, { recursive: true });
    throw error;
  }
  const port = address.port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    bucket: buckets[0],
    requests,
    async stop() {
      // Idle keep-alive connections would otherwise keep close() waiting.
      s3rver.httpServer.closeIdleConnections?.();
      await s3rver.close();
      await Deno.remove(directory, { recursive: true });
    },
  };
}

/** A multipart upload that was started but neither completed nor aborted. */
export interface IncompleteMultipartUpload {
  bucket: string;
  key: string;
  uploadId: string;
  /** Number of parts already stored (or being received) for it. */
  parts: number;
  /** Bytes in those parts so far. */
  bytes: number;
}

/**
 * Lists the multipart uploads the server still holds, by reading its directory:
 * s3rver keeps each in-progress upload in
 * `<directory>/<bucket>/._S3rver_uploads/<uploadId>/` with a `key` file, a
 * `metadata` file and one file per part (`1`, `1.md5`, `2`, …); completing
 * the upload removes that directory.
 */
export async function listIncompleteMultipartUploads(
  server: Pick<S3TestServer, "directory">,
): Promise<IncompleteMultipartUpload[]> {
  const uploads: IncompleteMultipartUpload[] = [];
  for await (const bucketEntry of Deno.readDir(server.directory)) {
    if (!bucketEntry.isDirectory) continue;
    const uploadsDirectory = join(server.directory, bucketEntry.name, uploadsDirectoryName);
    for await (const uploadEntry of readDirIfExists(uploadsDirectory)) {
      const uploadDirectory = join(uploadsDirectory, uploadEntry.name);
      let key = "";
      let parts = 0;
      let bytes = 0;
      // The upload may complete or be aborted while we look: then it is simply gone.
      for await (const file of readDirIfExists(uploadDirectory)) {
        const path = join(uploadDirectory, file.name);
        if (file.name === "key") {
          key = await Deno.readTextFile(path).catch(() => "");
        } else if (/^\d+$/.test(file.name)) {
          parts++;
          bytes += await Deno.stat(path).then((info) => info.size, () => 0);
        }
      }
      uploads.push({ bucket: bucketEntry.name, key, uploadId: uploadEntry.name, parts, bytes });
    }
  }
  return uploads;
}

/** s3rver's name for a bucket's in-progress uploads directory (`%s._S3rver_%s` with an empty key). */
const uploadsDirectoryName = "._S3rver_uploads";

async function* readDirIfExists(path: string): AsyncIterable<Deno.DirEntry> {
  try {
    yield* Deno.readDir(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

interface ListResult {
  objects: { key: string }[];
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface ListingStore {
  listObjects(bucket: string, options: Record<string, unknown>): Promise<ListResult>;
}
interface ListBucketResult {
  IsTruncated?: boolean;
  MaxKeys?: unknown;
  StartAfter?: string;
  ContinuationToken?: string;
  NextContinuationToken?: string;
  Contents: { Key: string }[];
}

/**
 * ListObjectsV2 with S3's order and working pagination. The store returns every
 * match after `start-after`, sorted and never "truncated" (so s3rver never
 * builds its own token); this middleware cuts the page and issues the token,
 * which is simply the last key listed, base64url-encoded.
 */
function listObjectsLikeS3(store: ListingStore): KoaMiddleware {
  const listAll = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    // s3rver compares with `<` (UTF-16 order) when skipping up to startAfter: do it here instead.
    const startAfter = typeof options.startAfter === "string" ? options.startAfter : "";
    const all = await listAll(bucket, { ...options, startAfter: undefined, maxKeys: Infinity });
    const objects = all.objects
      .filter((object) => compareStorageKeys(object.key, startAfter) > 0)
      .sort((a, b) => compareStorageKeys(a.key, b.key));
    return { ...all, objects, isTruncated: false };
  };
  return async (ctx, next) => {
    const {
      "list-type": listType,
      "continuation-token": token,
      "max-keys": maxKeysQuery,
      ...rest
    } = ctx.query;
    if (ctx.method !== "GET" || listType !== "2") return await next();
    const maxKeys = Math.min(1000, typeof maxKeysQuery === "string" ? Number(maxKeysQuery) : 1000);
    const startAfter = typeof token === "string"
      ? Buffer.from(token, "base64url").toString("utf8")
      : rest["start-after"];
    ctx.query = { ...rest, "list-type": "2", ...(startAfter ? { "start-after": startAfter } : {}) };
    await next();
    const result = (ctx.body as { ListBucketResult?: ListBucketResult } | undefined)
      ?.ListBucketResult;
    if (!result) return;
    result.MaxKeys = maxKeys;
    if (typeof token === "string") {
      result.StartAfter = undefined;
      result.ContinuationToken = token;
    }
    if (result.Contents.length > maxKeys) {
      result.Contents = result.Contents.slice(0, maxKeys);
      result.IsTruncated = maxKeys > 0;
      const lastKey = result.Contents.at(-1)?.Key;
      if (lastKey !== undefined) {
        result.NextContinuationToken = Buffer.from(lastKey, "utf8").toString("base64url");
      }
    }
  };
}

// Minimal shape of the Koa context these middlewares use (s3rver ships no types).
interface KoaContext {
  method: string;
  headers: Record<string, string>;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  type: string;
  body: unknown;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

function recordRequests(requests: RecordedRequest[]): KoaMiddleware {
  return async (ctx, next) => {
    requests.push({
      method: ctx.method,
      path: ctx.path,
      query: Object.keys(ctx.query),
      headers: { ...ctx.headers },
    });
    await next();
  };
}

/**
 * Implements `DELETE /<bucket>/<key>?uploadId=<id>` like S3: 204 and the parts
 * are gone, or 404 NoSuchUpload. It waits for s3rver's own answer
 * (MethodNotAllowed, after authentication and bucket checks) and replaces it.
 */
function abortMultipartUpload(directory: string): KoaMiddleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const uploadId = ctx.query.uploadId;
      const isAbort = ctx.method === "DELETE" && typeof uploadId === "string" &&
        (error as { code?: string }).code === "MethodNotAllowed";
      if (!isAbort) throw error;
      const bucket = decodeURIComponent(ctx.path.split("/")[1] ?? "");
      if (!/^[0-9a-f]+$/.test(uploadId) || bucket.includes("..")) throw error;
      const uploadDirectory = join(directory, bucket, uploadsDirectoryName, uploadId);
      try {
        await Deno.remove(uploadDirectory, { recursive: true });
      } catch (removeError) {
        if (!(removeError instanceof Deno.errors.NotFound)) throw removeError;
        ctx.status = 404;
        ctx.type = "application/xml";
        ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code>` +
          `<Message>The specified upload does not exist.</Message></Error>`;
        return;
      }
      ctx.status = 204;
      ctx.body = null;
    }
  };
}
