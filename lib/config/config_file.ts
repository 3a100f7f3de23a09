/**
 * Reads a small configuration file (a policy, a .env file) whole, refusing
 * what is not a regular file or is too large: a FIFO would block the command
 * for ever and `/dev/zero` would fill the memory.
 */

/** Why a configuration file cannot be read, in words that fit after its name. */
export class ConfigFileProblem extends Error {}

/**
 * The file's bytes; Deno's errors as they come (NotFound, PermissionDenied),
 * ConfigFileProblem for something that is not a regular file or is larger than `limit`.
 */
export async function readConfigFile(file: string, limit: number): Promise<Uint8Array> {
  const info = await Deno.stat(file);
  if (!info.isFile) {
    throw new ConfigFileProblem(
      info.isDirectory ? "it is a directory" : "it is not a regular file",
    );
  }
  const handle = await Deno.open(file);
  try {
    const buffer = new Uint8Array(Math.min(info.size, limit) + 1);
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
