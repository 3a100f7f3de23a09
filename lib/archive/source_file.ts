/**
 * How a backup opens the files it archives.
 *
 * The walk saw a regular file; by the time it is opened, whoever can write to
 * its folder may have put something else under its name: a symbolic link to a
 * file they cannot read but the backup can (it would be archived under their
 * file's name), or a FIFO, whose open blocks until a writer comes (a backup
 * that never ends, holding the agent's lock). O_NOFOLLOW refuses the link
 * (ELOOP); O_NONBLOCK opens the FIFO at once, and it reads as empty. GNU tar
 * opens with the same flags. Windows has neither flag, and no FIFOs; making
 * a symbolic link there takes a privilege.
 *
 * O_NOFOLLOW guards only the last name. A folder on the way swapped for a
 * link (`/home/u/x` → `/etc`, to read `/home/u/x/shadow`) is caught after
 * the open, on Linux: the walk gives each file's real path (no link on the
 * way), and the kernel says where the opened file really is
 * (`/proc/self/fd/N`). Any difference, and the file is not read. GNU tar
 * avoids the race with `openat`, which Deno does not offer.
 *
 * `node:fs`, because Deno's own `open` takes no such flags.
 */
import fs from "node:fs";

const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) |
  (fs.constants.O_NONBLOCK ?? 0);

/**
 * Whether the kernel can say where an opened file is, and Deno lets us ask:
 * `/proc/self` takes all permissions (`-A`, as the executable has). An SDK
 * caller with fewer goes without the check.
 */
const CAN_CHECK_WHERE = Deno.build.os === "linux" && (() => {
  try {
    return fs.existsSync("/proc/self/fd");
  } catch {
    return false;
  }
})();

/** The reason given when what was opened is no longer a regular file. */
export const NOT_REGULAR = "is no longer a regular file (it was replaced during the backup)";

/** The reason given when the opened file is not where the walk saw it. */
export const MOVED = "was moved, or a folder above it replaced by a link, during the backup; " +
  "not archived";

/**
 * Whether the file open as `fd` is at `path` (true where the kernel cannot
 * say). Also when the kernel names it `<path> (deleted)` (a file bind-mounted
 * from one an editor has since replaced: it was opened there), or with other
 * letter case (a FAT or exFAT drive keeps the first spelling looked up):
 * neither can name a file outside the folder the walk saw.
 */
function isAt(fd: number, path: string): boolean {
  if (!CAN_CHECK_WHERE) return true;
  let opened: string;
  try {
    opened = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return false;
  }
  if (opened.endsWith(DELETED)) opened = opened.slice(0, -DELETED.length);
  return opened === path || opened.toLowerCase() === path.toLowerCase();
}

const DELETED = " (deleted)";

/**
 * A source file's descriptor, for `fs.readSync`; close it with `fs.closeSync`.
 * `path` is the walk's (real, on Linux).
 */
export function openSourceSync(path: string): number {
  const fd = fs.openSync(path, READ_FLAGS);
  if (!isAt(fd, path)) {
    fs.closeSync(fd);
    throw new Error(MOVED);
  }
  return fd;
}

/** A source file, for asynchronous reads (large files). */
export async function openSource(path: string): Promise<fs.promises.FileHandle> {
  const handle = await fs.promises.open(path, READ_FLAGS);
  if (!isAt(handle.fd, path)) {
    await handle.close();
    throw new Error(MOVED);
  }
  return handle;
}
