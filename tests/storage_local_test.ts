import assert from "node:assert/strict";
import { join } from "node:path";
import { IntellistorError } from "../lib/errors.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import {
  assertIntellistorError,
  generatedBytes,
  generatedStream,
  leakChecks,
  rejection,
  storageContractTests,
} from "./storage_suite.ts";

/** Temp files anywhere under `directory`: how many, and their total size. */
async function tempFiles(directory: string): Promise<{ count: number; bytes: number }> {
  const found = { count: 0, bytes: 0 };
  for await (const entry of Deno.readDir(directory)) {
    const path = join(directory, entry.name);
    if (entry.isDirectory) {
      const inner = await tempFiles(path);
      found.count += inner.count;
      found.bytes += inner.bytes;
    } else if (entry.name.startsWith(".tmp-")) {
      found.count++;
      found.bytes += await Deno.stat(path).then((info) => info.size, () => 0);
    }
  }
  return found;
}

/** A LocalStorage whose root does not exist yet (inside a fresh temp directory). */
async function makeLocal() {
  const directory = await Deno.makeTempDir({ prefix: "intellistor-local-storage-" });
  const root = join(directory, "store");
  const storage = new LocalStorage(root);
  return {
    storage,
    root,
    incompleteUploads: async () => (await tempFiles(directory)).count,
    pendingWriteBytes: async () => (await tempFiles(directory)).bytes,
    // Each chunk is written before the next is read.
    readAheadLimit: 2 * 1024 * 1024,
    cleanup: async () => {
      await storage.close();
      await Deno.remove(directory, { recursive: true });
    },
  };
}

storageContractTests("LocalStorage", makeLocal);

Deno.test(
  "LocalStorage: a missing root directory reads as empty and is created by put",
  leakChecks,
  async () => {
    const { storage, root, cleanup } = await makeLocal();
    try {
      assertIntellistorError(await rejection(storage.get("a/b")), "BACKUP_NOT_FOUND");
      assert.equal(await storage.head("a/b"), undefined);
      for await (const object of storage.list("")) assert.fail(`unexpected ${object.key}`);
      await storage.delete("a/b");
      await storage.put("a/b", generatedStream(10, 1));
      assert.ok((await Deno.stat(root)).isDirectory);
    } finally {
      await cleanup();
    }
  },
);

Deno.test(
  "LocalStorage: key a/b/c is the file <root>/a/b/c and location is the absolute root",
  leakChecks,
  async () => {
    const { storage, root, cleanup } = await makeLocal();
    try {
      await storage.put("backups/p/object.bin", generatedStream(1234, 5));
      const onDisk = await Deno.readFile(join(root, "backups", "p", "object.bin"));
      assert.deepEqual(onDisk, generatedBytes(0, 1234, 5));
      assert.equal(storage.location, root);
      assert.equal(new LocalStorage("relative/dir").location, join(Deno.cwd(), "relative", "dir"));
    } finally {
      await cleanup();
    }
  },
);

Deno.test(
  "LocalStorage: put writes a .tmp- file beside the target and renames it only at the end",
  leakChecks,
  async () => {
    const { storage, root, cleanup } = await makeLocal();
    try {
      let release!: () => void;
      const released = new Promise<void>((resolve) => release = resolve);
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent) {
            await released;
            controller.close();
            return;
          }
          sent = true;
          controller.enqueue(new Uint8Array([1, 2, 3]));
        },
      });
      const putting = storage.put("dir/target", body);
      // Wait until the first chunk is on disk under a temporary name.
      let names: string[] = [];
      for (let attempt = 0; attempt < 100 && names.length === 0; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        names = await Array.fromAsync(Deno.readDir(join(root, "dir")), (entry) => entry.name)
          .catch(() => []);
      }
      assert.equal(names.length, 1);
      assert.match(names[0], /^\.tmp-/);
      assert.equal(await storage.head("dir/target"), undefined, "nothing under the key yet");
      assert.deepEqual(await Array.fromAsync(storage.list("")), [], "list skips temp files");
      release();
      assert.deepEqual(await putting, { key: "dir/target", size: 3 });
      assert.deepEqual(
        await Array.fromAsync(Deno.readDir(join(root, "dir")), (entry) => entry.name),
        ["target"],
      );
    } finally {
      await cleanup();
    }
  },
);

Deno.test(
  "LocalStorage: a temporary file deleted while it is written (list showed it) is named as such",
  leakChecks,
  async () => {
    const { storage, root, cleanup } = await makeLocal();
    try {
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent) {
            // What a user following list's "incomplete" would delete, mid-backup.
            for (const { key } of await Array.fromAsync(storage.unfinished("dir/"))) {
              await Deno.remove(join(root, ...key.split("/")));
            }
            controller.close();
            return;
          }
          sent = true;
          controller.enqueue(new Uint8Array([1, 2, 3]));
        },
      });
      await assert.rejects(
        storage.put("dir/target", body),
        (error: Error) =>
          error instanceof IntellistorError && error.code === "IO_ERROR" &&
          /temporary file \.tmp-\S+ was deleted while it was written/.test(error.message) &&
          error.hint.includes("only while no backup is running"),
      );
      // The store moved away (a disk remounted elsewhere) while a put wrote: not "deleted".
      let moved = false;
      const body2 = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (moved) return controller.close();
          controller.enqueue(new Uint8Array([1, 2, 3]));
          await new Promise((resolve) => setTimeout(resolve, 10));
          await Deno.rename(root, `${root}-moved`);
          moved = true;
        },
      });
      try {
        await assert.rejects(
          storage.put("dir/target", body2),
          (error: Error) =>
            error instanceof IntellistorError && error.code === "BUCKET_NOT_FOUND" &&
            error.message.includes("does not exist"),
        );
      } finally {
        await Deno.rename(`${root}-moved`, root);
      }
    } finally {
      await cleanup();
    }
  },
);

Deno.test("LocalStorage: keys whose name starts with .tmp- are reserved", leakChecks, async () => {
  const { storage, cleanup } = await makeLocal();
  try {
    await assert.rejects(() => storage.put("a/.tmp-x", generatedStream(1, 1)), TypeError);
  } finally {
    await cleanup();
  }
});

Deno.test(
  "LocalStorage: delete removes directories it leaves empty, not the root",
  leakChecks,
  async () => {
    const { storage, root, cleanup } = await makeLocal();
    try {
      await storage.put("backups/p/t1/object", generatedStream(1, 1));
      await storage.put("backups/p/t2/object", generatedStream(1, 1));
      await storage.delete("backups/p/t1/object");
      assert.deepEqual(
        await Array.fromAsync(Deno.readDir(join(root, "backups", "p")), (e) => e.name),
        [
          "t2",
        ],
      );
      await storage.delete("backups/p/t2/object");
      assert.deepEqual(await Array.fromAsync(Deno.readDir(root)), []);
    } finally {
      await cleanup();
    }
  },
);

Deno.test(
  "LocalStorage: get of a directory is BACKUP_NOT_FOUND and head is undefined",
  leakChecks,
  async () => {
    const { storage, cleanup } = await makeLocal();
    try {
      await storage.put("a/b/c", generatedStream(1, 1));
      assertIntellistorError(await rejection(storage.get("a/b")), "BACKUP_NOT_FOUND");
      assert.equal(await storage.head("a/b"), undefined);
    } finally {
      await cleanup();
    }
  },
);

/** Whether this system can make a directory nobody may write to, even root (chattr +i). */
function immutable(directory: string, on: boolean): boolean {
  try {
    return new Deno.Command("chattr", { args: [on ? "+i" : "-i", directory], stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test("LocalStorage: a store this user may not write is ACCESS_DENIED, as on S3", async () => {
  const directory = await Deno.makeTempDir({ prefix: "intellistor-local-denied-" });
  const root = join(directory, "store");
  await Deno.mkdir(root);
  // As root, only an immutable directory refuses a write; elsewhere chmod does.
  const locked = immutable(root, true) || (Deno.uid() !== 0 && (Deno.chmodSync(root, 0o500), true));
  const storage = new LocalStorage(root);
  try {
    if (!locked) return; // neither way available here
    const error = await rejection(storage.put("backups/p/x", generatedStream(1024, 1)));
    assertIntellistorError(error, "ACCESS_DENIED");
  } finally {
    await storage.close();
    immutable(root, false);
    Deno.chmodSync(root, 0o700);
    await Deno.remove(directory, { recursive: true });
  }
});
