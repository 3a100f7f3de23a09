import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fillPiece, outcomeOf } from "./piece_files.ts";
import { walkSources } from "./walk.ts";
import { MOVED, NOT_REGULAR, openSource, openSourceSync, swappable } from "./source_file.ts";

const posix = Deno.build.os !== "windows";

/** A tree: real/f, real/sub/g, a link to real/f, a folder link to real/sub, a FIFO. */
function makeTree(): string {
  const work = Deno.makeTempDirSync({ prefix: "source-file-" });
  fs.mkdirSync(path.join(work, "real", "sub"), { recursive: true });
  fs.writeFileSync(path.join(work, "real", "f"), "file");
  fs.writeFileSync(path.join(work, "real", "sub", "g"), "secret");
  if (posix) {
    fs.symlinkSync(path.join(work, "real", "f"), path.join(work, "real", "link"));
    fs.symlinkSync(path.join(work, "real", "sub"), path.join(work, "real", "folder-link"));
    new Deno.Command("mkfifo", { args: [path.join(work, "real", "fifo")] }).outputSync();
  }
  return Deno.realPathSync(work);
}

function readAll(fd: number): string {
  const buffer = new Uint8Array(64);
  const n = fs.readSync(fd, buffer, 0, buffer.length, null);
  fs.closeSync(fd);
  return new TextDecoder().decode(buffer.subarray(0, n));
}

Deno.test("source files: a regular file opens and reads, synchronously and not", async () => {
  const work = makeTree();
  try {
    assert.equal(readAll(openSourceSync(path.join(work, "real", "f"), true)), "file");
    const handle = await openSource(path.join(work, "real", "sub", "g"), true);
    assert.equal((await handle.stat()).size, 6);
    await handle.close();
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

Deno.test({
  name: "source files: a link put where the walk saw a file is not followed (ELOOP)",
  ignore: !posix,
  fn: async () => {
    const work = makeTree();
    try {
      const link = path.join(work, "real", "link");
      for (const checkWhere of [true, false]) {
        assert.throws(
          () => openSourceSync(link, checkWhere),
          (error: { code?: string }) => error.code === "ELOOP",
        );
        await assert.rejects(
          openSource(link, checkWhere),
          (error: { code?: string }) => error.code === "ELOOP",
        );
      }
    } finally {
      Deno.removeSync(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "source files: a FIFO put where the walk saw a file opens at once and reads as empty",
  ignore: !posix,
  fn: () => {
    const work = makeTree();
    try {
      // Without O_NONBLOCK this open waits for a writer for ever (the test would hang).
      assert.equal(readAll(openSourceSync(path.join(work, "real", "fifo"), false)), "");
    } finally {
      Deno.removeSync(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "source files: a file reached through a folder swapped for a link is refused (Linux)",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const work = makeTree();
    try {
      // The walk gave real/folder-link/g as the file's real path; the kernel says real/sub/g.
      const throughLink = path.join(work, "real", "folder-link", "g");
      assert.throws(() => openSourceSync(throughLink, true), new Error(MOVED));
      await assert.rejects(openSource(throughLink, true), new Error(MOVED));
      // Where no one else can swap a name on the way, the walk asks for no check.
      assert.equal(readAll(openSourceSync(throughLink, false)), "secret");
      // No descriptor is left open by a refusal.
      const before = [...Deno.readDirSync("/proc/self/fd")].length;
      for (let i = 0; i < 20; i++) assert.throws(() => openSourceSync(throughLink, true));
      assert.equal([...Deno.readDirSync("/proc/self/fd")].length, before);
    } finally {
      Deno.removeSync(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "a small file found to be a FIFO when read is left out with a warning, not archived empty",
  ignore: !posix,
  fn: () => {
    const work = makeTree();
    try {
      // The walk saw a 5-byte file; by the read, a FIFO stands there.
      const header = new Uint8Array(512);
      const piece = new Uint8Array(512 + 512 + 1024);
      const files = {
        paths: [path.join(work, "real", "fifo")],
        layout: Int32Array.from([0, header.length, 5, 0]),
      };
      const filled = fillPiece(piece, 1024, files);
      assert.deepEqual(outcomeOf(filled, 0), { problem: NOT_REGULAR });
    } finally {
      Deno.removeSync(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "swappable(): only a folder another user can write to lets a name in it be swapped",
  ignore: Deno.build.os !== "linux",
  fn: () => {
    const me = Deno.uid()!;
    const other = me === 1234 ? 4321 : 1234;
    const info = (uid: number, mode: number) => ({ uid, mode });
    // Ours or root's, not writable by others: safe.
    assert.equal(swappable(info(me, 0o40755), info(me, 0o40755)), false);
    assert.equal(swappable(info(0, 0o40755), info(other, 0o40700)), false);
    // Another user's folder, or one writable by group or others: swappable.
    assert.equal(swappable(info(other, 0o40755), info(me, 0o40755)), true);
    assert.equal(swappable(info(me, 0o40775), info(me, 0o40755)), true);
    assert.equal(swappable(info(0, 0o40777), info(me, 0o40755)), true);
    // Sticky (/tmp): others cannot rename what is ours or root's; what is theirs, they can.
    assert.equal(swappable(info(0, 0o41777), info(me, 0o40755)), false);
    assert.equal(swappable(info(0, 0o41777), info(other, 0o40755)), true);
  },
});

Deno.test({
  name: "the walk asks for the check only below a name another user could swap",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const work = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "source-walk-" }));
    try {
      for (const dir of ["open/sub", "closed/sub"]) {
        Deno.mkdirSync(path.join(work, dir), { recursive: true });
        Deno.writeTextFileSync(path.join(work, dir, "f"), "x");
      }
      Deno.chmodSync(path.join(work, "open"), 0o777); // anyone may rename "sub" in it
      const flagged: string[] = [];
      for await (const entry of walkSources([work], { warn: () => {} })) {
        if (entry.checkWhere) flagged.push(entry.relativePath);
      }
      // The temporary folder's parents are root's or ours (/tmp is sticky). "open/sub"
      // could be swapped, so what is under it is checked (the file itself, if
      // swapped for a link, is refused by O_NOFOLLOW).
      assert.deepEqual(flagged, ["open/sub/f"]);
    } finally {
      Deno.removeSync(work, { recursive: true });
    }
  },
});
