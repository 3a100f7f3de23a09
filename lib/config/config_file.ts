/**
 * Reads a small configuration file (a policy, a .env file) whole, refusing a
 * directory, a device or a socket, and anything too large: `/dev/zero` would
 * fill the memory. A pipe is read, so that `--env-file <(pass show backup)`
 * passes secrets without writing them to disk.
 */

/** Why a configuration file cannot be read, in words that fit after its name. */
export class ConfigFileProblem extends Error {}

/**
 * The file's bytes; Deno's errors as they come (NotFound, PermissionDenied),
 * ConfigFileProblem for something that is neither a file nor a pipe, or is larger than `limit`.
 */
export async function readConfigFile(file: string, limit: number): Promise<Uint8Array> {
  const info = await Deno.stat(file);
  if (!info.isFile && !info.isFifo) {
    throw new ConfigFileProblem(
      info.isDirectory ? "it is a directory" : "it is not a regular file or a pipe",
    );
  }
  const handle = await Deno.open(file);
  try {
    // A pipe's size is unknown (0): room for the limit, read in one buffer.
    const buffer = new Uint8Array((info.isFile ? Math.min(info.size, limit) : limit) + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const read = await handle.read(buffer.subarray(filled));
      if (read === null) break;
      filled += read;
    }
    if (filled > limit) throw new ConfigFileProblem(`it is larger than ${limit >> 20} MiB`);
    return buffer.subarray(0, filled);
  } finally {
    handle.close();
  }
}
