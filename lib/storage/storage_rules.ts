/**
 * The rules every `Storage` implementation applies to its arguments (keys,
 * prefixes, byte ranges) and the order in which it lists keys, kept in one
 * place so that a key that works on one store works on all of them.
 */

/**
 * Throws a TypeError unless `key` is a safe object key: non-empty,
 * `/`-separated, relative, without empty, `.` or `..` segments, backslashes or
 * NUL characters. These are programmer errors: keys are built by the program,
 * never typed by the user.
 *
 * @example
 * ```ts
 * assertStorageKey("backups/mvp-default/20260131T174311Z/backup.tar.gz.enc"); // ok
 * assertStorageKey("../etc/passwd"); // throws TypeError
 * ```
 */
export function assertStorageKey(key: string): void {
  if (typeof key !== "string" || key === "") {
    throw new TypeError("Invalid storage key: it is empty");
  }
  const problem = keyProblem(key);
  if (problem) throw new TypeError(`Invalid storage key ${JSON.stringify(key)}: ${problem}`);
  if (key.endsWith("/")) {
    throw new TypeError(`Invalid storage key ${JSON.stringify(key)}: it ends with "/"`);
  }
}

/**
 * Throws a TypeError unless `prefix` is a safe listing prefix: like a key, but
 * it may be empty (everything), end with `/` (a "directory") or end in the
 * middle of a segment ("backups/mvp-" matches "backups/mvp-default/…").
 */
export function assertStoragePrefix(prefix: string): void {
  if (typeof prefix !== "string") throw new TypeError("Invalid storage prefix: not a string");
  if (prefix === "") return;
  const withoutTrailingSlash = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  const problem = withoutTrailingSlash === "" ? 'it is "/"' : keyProblem(withoutTrailingSlash);
  if (problem) throw new TypeError(`Invalid storage prefix ${JSON.stringify(prefix)}: ${problem}`);
}

function keyProblem(key: string): string | undefined {
  if (key.startsWith("/")) return 'it starts with "/"';
  if (key.includes("\\")) return "it contains a backslash";
  if (key.includes("\0")) return "it contains a NUL character";
  for (const segment of key.split("/")) {
    if (segment === "") return "it has an empty segment";
    if (segment === "." || segment === "..") return `it has a "${segment}" segment`;
  }
  return undefined;
}

/**
 * Orders keys the way S3 lists them: by their UTF-8 bytes. This equals Unicode
 * code point order, which differs from JavaScript's `<` (UTF-16 code units)
 * for characters outside the Basic Multilingual Plane.
 */
export function compareStorageKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    const unitA = a.charCodeAt(index);
    const unitB = b.charCodeAt(index);
    if (unitA === unitB) continue;
    // Only surrogates (0xD800–0xDFFF) are out of code point order relative to 0xE000–0xFFFF.
    const surrogateA = unitA >= 0xd800 && unitA <= 0xdfff;
    const surrogateB = unitB >= 0xd800 && unitB <= 0xdfff;
    if (surrogateA !== surrogateB) return surrogateA ? 1 : -1;
    return unitA - unitB;
  }
  return a.length - b.length;
}

/** Throws a RangeError unless `range` is a half-open range [start, end) of integers, 0 <= start <= end. */
export function assertByteRange(range: { start: number; end: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`Invalid byte range [${start}, ${end})`);
  }
}
