/**
 * Pattern matching on `relative_path`: the one rule shared by `restore --only`
 * and the policy's `exclude` list.
 *
 * A pattern is matched against a manifest `relative_path` ("/"-separated, no
 * leading slash, e.g. `docs/imagens/Cópia de Diagrama_Solução.png`):
 *
 * - **Without "/"** it matches a file or directory *name* at any depth: the
 *   path's last component or any of its directory components. `"*.png"`
 *   selects every PNG; `"imagens"` or `"Cópia*"` matching a directory selects
 *   everything under it.
 * - **With "/"** it is anchored at the start of `relative_path` and matches
 *   the whole path or any leading directory of it: `"docs/*"` selects
 *   `docs/a.png` and everything under `docs/sub/`; it does not select
 *   `notes/docs/x.txt`.
 * - Glob syntax: `*` (any characters except "/"), `?` (one character except
 *   "/"), `[abc]`, `[a-z]`, `[!abc]`, `{a,b}`, and `**` (any number of
 *   directories). `*` also matches names starting with "." (dotfiles).
 *   Parentheses, `!`, `+` and `@` are ordinary characters, so
 *   `"Cópia (2).png"` matches itself.
 * - Backslash is a path separator, not an escape character: `docs\*` is
 *   `docs/*`, as Windows users type it. To match a character that is special
 *   in globs, put it in brackets: `[[]`, `[*]`, `[?]`, `[{]`.
 * - A leading `./` is ignored; a trailing `/` means "this directory" and
 *   behaves as if it were absent (a directory always selects its subtree), so
 *   `docs/` is the same as `docs`.
 * - Names are compared after Unicode NFC normalisation, so a name stored in
 *   NFD (macOS) matches a pattern typed in NFC. Matching is case-sensitive
 *   unless `caseInsensitive` is set (the CLI sets it on Windows).
 * - Rejected: the empty pattern, NUL, absolute paths (`/x`, `\x`, `C:`,
 *   `\\server\share`), `..` segments, an unclosed `[` or `{`.
 *
 * Examples: `"Diagrama_Solução.png"`, `"*.png"`, `"docs/*"`, `"Cópia*"`.
 *
 * @module
 */

import picomatch from "npm:picomatch@4.0.7";
import { IntellistorError } from "./errors.ts";

/** A compiled set of patterns: true when ANY pattern matches the path. */
export interface PathMatcher {
  (relativePath: string): boolean;
  /** The patterns as given by the user, for messages and JSON output. */
  readonly patterns: readonly string[];
  /** The patterns that matched none of the paths asked about so far. */
  unmatched(): string[];
}

/** Options for {@link compilePatterns}. */
export interface PatternOptions {
  /** Compare ignoring letter case (the CLI sets it on Windows). */
  caseInsensitive?: boolean;
}

const PATTERN_HINT =
  'A pattern without "/" matches a file or directory name at any depth; a pattern with "/" ' +
  "is matched from the start of relative_path (use / or \\ between folders). " +
  'Examples: "Diagrama_Solução.png", "*.png", "docs/*", "Cópia*".';

interface CompiledPattern {
  anchored: boolean;
  regex: RegExp;
}

/**
 * Compiles patterns once (validating every one up front) into a matcher that
 * accepts a `relative_path` when any pattern matches it.
 *
 * @throws IntellistorError PATTERN_INVALID naming the first invalid pattern.
 */
export function compilePatterns(patterns: string[], options: PatternOptions = {}): PathMatcher {
  const compiled = patterns.map((pattern) =>
    compilePattern(pattern, options.caseInsensitive === true)
  );
  const matchedOnce = compiled.map(() => false);
  const matcher = (relativePath: string): boolean => {
    const components = relativePath.normalize("NFC").split("/").filter((c) => c !== "");
    let matched = false;
    for (let i = 0; i < compiled.length; i++) {
      // Once the answer is known, only patterns never matched yet are still tried.
      if (matched && matchedOnce[i]) continue;
      if (matchesComponents(compiled[i], components)) matched = matchedOnce[i] = true;
    }
    return matched;
  };
  return Object.assign(matcher, {
    patterns: Object.freeze([...patterns]),
    unmatched: () => patterns.filter((_, i) => !matchedOnce[i]),
  });
}

/**
 * Checks one pattern against the rules in this module's documentation.
 *
 * @throws IntellistorError PATTERN_INVALID with the pattern and the reason.
 */
export function validatePattern(pattern: string): void {
  compilePattern(pattern, false);
}

/**
 * Why a pattern is invalid (e.g. `it contains a ".." segment`), or undefined
 * when it is valid. For callers that report many problems at once, such as the
 * policy validator.
 */
export function describePatternProblem(pattern: string): string | undefined {
  try {
    toRegex(pattern, false);
    return undefined;
  } catch (error) {
    if (error instanceof PatternProblem) return error.message;
    throw error;
  }
}

/** Internal: the reason a pattern is invalid, without the pattern itself. */
class PatternProblem extends Error {}

function compilePattern(pattern: string, caseInsensitive: boolean): CompiledPattern {
  try {
    return toRegex(pattern, caseInsensitive);
  } catch (error) {
    if (!(error instanceof PatternProblem)) throw error;
    throw new IntellistorError(
      "PATTERN_INVALID",
      `Pattern ${JSON.stringify(pattern)} is invalid: ${error.message}`,
      PATTERN_HINT,
    );
  }
}

function toRegex(pattern: string, caseInsensitive: boolean): CompiledPattern {
  if (typeof pattern !== "string") {
    throw new PatternProblem(`expected text, got ${typeof pattern}`);
  }
  const glob = normalizePattern(pattern);
  checkBrackets(glob);
  let regex: RegExp;
  try {
    regex = picomatch.makeRe(escapeParentheses(glob), {
      dot: true,
      // Our own rules, identical on every platform: "/" is the only separator.
      windows: false,
      // `[!a]` negation and `[[:alpha:]]` classes, as in shells.
      posix: true,
      // File names such as "!readme" or "+(1).txt" are literal.
      nonegate: true,
      noextglob: true,
      nocase: caseInsensitive,
      // Without it picomatch returns a never-matching regex instead of throwing.
      debug: true,
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new PatternProblem(`it is not a valid glob (${reason})`);
  }
  // picomatch builds `**` from ".", which skips line breaks; names may hold them.
  if (!regex.dotAll) regex = new RegExp(regex.source, regex.flags + "s");
  return { anchored: glob.includes("/"), regex };
}

/** Applies the separator, "./", trailing "/" and NFC rules; rejects what cannot match. */
function normalizePattern(pattern: string): string {
  if (pattern === "") throw new PatternProblem("it is empty");
  if (pattern.includes("\0")) throw new PatternProblem("it contains a NUL character");
  if (/^[A-Za-z]:/.test(pattern)) {
    throw new PatternProblem(
      "it starts with a drive letter (patterns are relative to the backup, not absolute paths)",
    );
  }
  if (pattern.startsWith("/") || pattern.startsWith("\\")) {
    throw new PatternProblem(
      "it is an absolute path (patterns are relative to relative_path inside the backup)",
    );
  }
  const segments = pattern.normalize("NFC").replaceAll("\\", "/").split("/");
  if (segments.includes("..")) {
    throw new PatternProblem('it contains a ".." segment, which never occurs in relative_path');
  }
  // "./docs", "docs//x", "docs/./x" and "docs/" all name the same thing.
  const kept = segments.filter((segment) => segment !== "" && segment !== ".");
  if (kept.length === 0) throw new PatternProblem("it names no file or directory");
  return kept.join("/");
}

/** Rejects an unclosed "[" or "{": picomatch would silently treat them as literals. */
function checkBrackets(glob: string): void {
  let braceDepth = 0;
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "[") {
      const close = findBracketEnd(glob, i);
      if (close < 0) {
        throw new PatternProblem(
          'it has a "[" without a closing "]" (to match a literal "[", write "[[]")',
        );
      }
      i = close;
    } else if (char === "{") {
      braceDepth++;
    } else if (char === "}" && braceDepth > 0) {
      braceDepth--;
    }
  }
  if (braceDepth > 0) {
    throw new PatternProblem(
      'it has a "{" without a closing "}" (to match a literal "{", write "[{]")',
    );
  }
}

/** Index of the "]" closing the bracket expression opened at `open`, or -1. */
function findBracketEnd(glob: string, open: number): number {
  let i = open + 1;
  if (glob[i] === "!" || glob[i] === "^") i++;
  // A "]" right after the opening bracket is a member, as in POSIX.
  if (glob[i] === "]") i++;
  for (; i < glob.length; i++) {
    if (glob[i] === "]") return i;
    if (glob[i] === "[" && glob[i + 1] === ":") {
      const classEnd = glob.indexOf(":]", i + 2);
      if (classEnd < 0) return -1;
      i = classEnd + 1;
    }
  }
  return -1;
}

/** Makes "(" and ")" literal outside brackets: picomatch would read them as regex groups. */
function escapeParentheses(glob: string): string {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "[") {
      const close = findBracketEnd(glob, i);
      out += glob.slice(i, close + 1);
      i = close;
    } else if (char === "(" || char === ")") {
      out += "\\" + char;
    } else {
      out += char;
    }
  }
  return out;
}

function matchesComponents(pattern: CompiledPattern, components: string[]): boolean {
  if (!pattern.anchored) return components.some((component) => pattern.regex.test(component));
  let prefix = "";
  for (const component of components) {
    prefix = prefix === "" ? component : `${prefix}/${component}`;
    if (pattern.regex.test(prefix)) return true;
  }
  return false;
}
