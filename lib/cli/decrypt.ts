/** `intellistor decrypt --key K [--policy P] --out FILE|-`: the plain .tar.gz, readable by any tar. */
import path from "node:path";
import { loadEnvironment } from "../config/env.ts";
import { type Keyring, keyringFromEnv } from "../crypto/keys.ts";
import { decryptStream } from "../crypto/stream.ts";
import { integrityError, IntellistorError } from "../errors.ts";
import {
  assertManifestFor,
  MANIFEST_NAME,
  manifestKeyFor,
  OBJECT_NAME,
  parseBackupKey,
  parseManifest,
} from "../manifest.ts";
import { pathExists } from "../safe_path.ts";
import { LocalStorage } from "../storage/local.ts";
import type { Storage } from "../storage/storage.ts";
import { MeterStream, readAll } from "../streams.ts";
import { parseFlags, required } from "./args.ts";
import { loadContext } from "./context.ts";
import { type CliIo, printJson } from "./io.ts";

export const decryptHelp =
  `Usage: intellistor decrypt --key KEY [--policy FILE] --out FILE|- [--env-file FILE]

Writes the verified, decrypted payload: an ordinary .tar.gz that GNU tar extracts.
  --key KEY        with --policy: the object key in the policy's destination;
                   without: a local backup.tar.gz.enc file (e.g. from backup --out)
  --manifest FILE  the backup's manifest.json (default: the one beside the object);
                   with it, the object's SHA-256 is checked too
  --out FILE|-     where to write the .tar.gz ("-" = standard output)
The key comes from INTELLISTOR_KEY / INTELLISTOR_PASSPHRASE (or the policy's names).`;

export async function decryptCommand(
  argv: string[],
  io: CliIo,
  stdout: WritableStream<Uint8Array>,
) {
  const flags = parseFlags("decrypt", argv, {
    key: { type: "string" },
    policy: { type: "string" },
    manifest: { type: "string" },
    out: { type: "string" },
    "env-file": { type: "string" },
  });
  const key = required("decrypt", "key", flags.key);
  const out = required("decrypt", "out", flags.out);
  let storage: Storage;
  let objectKey: string;
  let keyring: Keyring;
  if (flags.policy !== undefined) {
    const context = await loadContext(io, {
      policyPath: flags.policy,
      envFile: flags["env-file"],
      requirePaths: false,
    });
    ({ storage, keyring } = context);
    objectKey = parseBackupKey(key).objectKey;
  } else {
    const file = path.resolve(io.cwd, key);
    if (path.basename(file) === MANIFEST_NAME) {
      throw new IntellistorError(
        "USAGE",
        `--key names a manifest ("${key}"); decrypt takes the backup object`,
        `Give the "${OBJECT_NAME}" beside it; the manifest is read from there.`,
      );
    }
    const { env } = await loadEnvironment(io.env, { envFile: flags["env-file"], cwd: io.cwd });
    keyring = keyringFromEnv(env);
    storage = new LocalStorage(path.dirname(file));
    objectKey = path.basename(file);
  }
  try {
    // Checked first: nothing is downloaded for an output that cannot be written.
    const target = out === "-" ? undefined : path.resolve(io.cwd, out);
    if (target !== undefined && await pathExists(target)) {
      throw new IntellistorError(
        "OUTPUT_EXISTS",
        `"${target}" already exists`,
        "Choose another --out; decrypt never replaces a file.",
      );
    }
    // The manifest, when present, also pins the object's SHA-256.
    let expected: { sha256: string; size: number } | undefined;
    if (flags.manifest !== undefined) {
      const file = path.resolve(io.cwd, flags.manifest);
      expected = parseManifest(await Deno.readTextFile(file), file).object;
    } else if (objectKey.endsWith(OBJECT_NAME)) {
      const manifestKey = manifestKeyFor(objectKey);
      if (await storage.head(manifestKey) !== undefined) {
        const text = new TextDecoder().decode(await readAll(await storage.get(manifestKey)));
        const manifest = parseManifest(text, manifestKey);
        assertManifestFor(manifest, objectKey);
        expected = manifest.object;
      }
    }
    const meter = new MeterStream();
    const plain = (await storage.get(objectKey))
      .pipeThrough(meter)
      .pipeThrough(decryptStream(keyring))
      .pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          flush() {
            if (expected && (meter.digest() !== expected.sha256 || meter.bytes !== expected.size)) {
              throw integrityError("The backup object's SHA-256 differs from its manifest");
            }
          },
        }),
      );
    // Ctrl+C / SIGTERM: the pipe stops with an AbortError, which run() reports as INTERRUPTED.
    const signal = io.signal;
    if (target === undefined) {
      try {
        await plain.pipeTo(stdout, { preventClose: true, preventAbort: true, signal });
      } catch (error) {
        // The reader went away (`| head`, a dropped ssh): what it got is cut
        // short and was never checked to its end, so this is no success.
        if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
        throw new IntellistorError(
          "IO_ERROR",
          "Standard output was closed before the end of the backup: what was written is " +
            "incomplete",
          "The program reading the output stopped early; run it again, or give --out a file name.",
          { cause: error },
        );
      }
      return 0;
    }
    // Written under a temporary name, renamed once complete and verified.
    const temporary = path.join(
      path.dirname(target),
      `.intellistor-${crypto.randomUUID()}.partial`,
    );
    try {
      const file = await Deno.open(temporary, { write: true, createNew: true });
      await plain.pipeTo(file.writable, { signal });
      await Deno.rename(temporary, target);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw error;
    }
    printJson(io, {
      decrypted: target,
      bytes: (await Deno.stat(target)).size,
      verified: expected !== undefined ? "manifest" : "chunks",
    });
    return 0;
  } finally {
    await storage.close();
  }
}
