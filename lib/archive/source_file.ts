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
 * (`/proc/self/fd/N`). Any difference, and the file is not read. The walk
 * asks for that check only where another user could swap a name on the way
 * (`swappable`). GNU tar avoids the race with `openat`, which Deno does not
 * offer.
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
export const CAN_CHECK_WHERE = Deno.build.os === "linux" && (() => {
  try {
    return fs.existsSync("/proc/self/fd");
  } catch {
    return false;
  }
})();

/** This process's user (the check runs only with every permission, `uid` among them). */
const OUR_UID = CAN_CHECK_WHERE ? Deno.uid() : undefined;

/** What the swap rule reads of a file or directory's metadata. */
export interface Ownership {
  /** Unknown (undefined, null) counts as another user's. */
  uid?: number | null;
  mode: number | null;
}

/** Owned by this user or root: no one else can change it (or what it holds, if not writable by others). */
function ownedSafely(info: Ownership): boolean {
  return info.uid === OUR_UID || info.uid === 0;
}

/**
 * Whether another user could rename `child` out of `parent` and put a link
 * there: `parent` is theirs or writable by group or others, unless it is
 * sticky (like /tmp) and neither it nor `child` is theirs. Only files below a
 * name someone else can swap need the check where the kernel says where they
 * are (about 5 µs a file): a user backing up their own files, or root backing
 * up /etc, pays nothing; root backing up /home does.
 */
export function swappable(parent: Ownership, child: Ownership): boolean {
  if (OUR_UID === undefined) return false;
  const mode = parent.mode ?? 0;
  const writableByOthers = !ownedSafely(parent) || (mode & 0o022) !== 0;
  if (!writableByOthers) return false;
  const sticky = (mode & 0o1000) !== 0;
  return !(sticky && ownedSafely(parent) && ownedSafely(child));
}

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
 * `path` is the walk's (real, on Linux); `checkWhere`: a name on it may be
 * swapped by another user (the walk's `checkWhere`).
 */
export function openSourceSync(path: string, checkWhere: boolean): number {
  const fd = fs.openSync(path, READ_FLAGS);
  if (checkWhere && !isAt(fd, path)) {
    fs.closeSync(fd);
    throw new Error(MOVED);
  }
  return fd;
}

/** A source file, for asynchronous reads (large files). */
export async function openSource(
  path: string,
  checkWhere: boolean,
): Promise<fs.promises.FileHandle> {
  const handle = await fs.promises.open(path, READ_FLAGS);
  if (checkWhere && !isAt(handle.fd, path)) {
    await handle.close();
    throw new Error(MOVED);
  }
  return handle;
}
