import assert from "node:assert/strict";
import { compilePatterns, describePatternProblem, validatePattern } from "./glob.ts";
import { IntellistorError } from "./errors.ts";

/** A realistic backup tree, as manifest relative_paths. */
const TREE = [
  "Diagrama_Solução.png",
  "docs/imagens/Diagrama_Solução.png",
  "Cópia de Diagrama_Solução.png",
  "docs/readme.md",
  "docs/sub/deep/x.png",
  "notes/docs/x.txt",
  ".hidden.png",
  "Cópia de docs/plan.txt",
  "reports/Relatório (2).pdf",
];

function select(patterns: string[], options?: { caseInsensitive?: boolean }): string[] {
  const matches = compilePatterns(patterns, options);
  return TREE.filter((path) => matches(path));
}

function thrownBy(action: () => unknown): IntellistorError {
  try {
    action();
  } catch (error) {
    assert(error instanceof IntellistorError, `expected an IntellistorError, got ${error}`);
    return error;
  }
  throw new assert.AssertionError({ message: "expected an error, none was thrown" });
}

function assertPatternInvalid(pattern: string, reason: RegExp): void {
  const error = thrownBy(() => validatePattern(pattern));
  assert.deepEqual(error.code, "PATTERN_INVALID");
  assert(
    error.message.startsWith(`Pattern ${JSON.stringify(pattern)} is invalid: `),
    error.message,
  );
  assert(reason.test(error.message), `${error.message} should match ${reason}`);
  for (const example of ['"Diagrama_Solução.png"', '"*.png"', '"docs/*"', '"Cópia*"']) {
    assert(error.hint.includes(example), `hint should quote ${example}`);
  }
}

Deno.test("a file name selects that name at any depth", () => {
  assert.deepEqual(select(["Diagrama_Solução.png"]), [
    "Diagrama_Solução.png",
    "docs/imagens/Diagrama_Solução.png",
  ]);
});

Deno.test("*.png selects PNG files at any depth, dotfiles included", () => {
  assert.deepEqual(select(["*.png"]), [
    "Diagrama_Solução.png",
    "docs/imagens/Diagrama_Solução.png",
    "Cópia de Diagrama_Solução.png",
    "docs/sub/deep/x.png",
    ".hidden.png",
  ]);
});

Deno.test("docs/* is anchored and selects everything under docs/", () => {
  assert.deepEqual(select(["docs/*"]), [
    "docs/imagens/Diagrama_Solução.png",
    "docs/readme.md",
    "docs/sub/deep/x.png",
  ]);
});

Deno.test("Cópia* selects files and whole directories whose name starts with Cópia", () => {
  assert.deepEqual(select(["Cópia*"]), ["Cópia de Diagrama_Solução.png", "Cópia de docs/plan.txt"]);
});

Deno.test("a directory name without slash selects its subtree wherever it is", () => {
  assert.deepEqual(select(["imagens"]), ["docs/imagens/Diagrama_Solução.png"]);
  assert.deepEqual(select(["docs"]), [
    "docs/imagens/Diagrama_Solução.png",
    "docs/readme.md",
    "docs/sub/deep/x.png",
    "notes/docs/x.txt",
  ]);
});

Deno.test("a pattern with slash matches a leading directory prefix, not a later one", () => {
  assert.deepEqual(select(["docs/sub"]), ["docs/sub/deep/x.png"]);
  assert.deepEqual(select(["sub/deep"]), []);
  assert.deepEqual(select(["notes/docs"]), ["notes/docs/x.txt"]);
});

Deno.test("* never crosses a slash but ** does", () => {
  assert.deepEqual(select(["docs/*.png"]), []);
  assert.deepEqual(select(["docs/**/*.png"]), [
    "docs/imagens/Diagrama_Solução.png",
    "docs/sub/deep/x.png",
  ]);
  assert.deepEqual(select(["**/x.png"]), ["docs/sub/deep/x.png"]);
  assert.deepEqual(select(["**/docs/*.txt"]), ["notes/docs/x.txt"]);
});

Deno.test("*, ? and ** match names holding line breaks like any other character", () => {
  for (const name of ["new\nline.txt", "a/new\nline.txt", "a/b\r\nc/d.txt"]) {
    for (const pattern of ["**", "**/*", "*", "**/*.txt"]) {
      assert.ok(
        compilePatterns([pattern])(name),
        `${JSON.stringify(pattern)} ${JSON.stringify(name)}`,
      );
    }
  }
  assert.ok(compilePatterns(["new?line.txt"])("new\nline.txt"));
  assert.ok(compilePatterns(["a/b??c/*"])("a/b\r\nc/d.txt"));
});

Deno.test("any of several patterns selects a path", () => {
  assert.deepEqual(select(["readme.md", "x.txt"]), ["docs/readme.md", "notes/docs/x.txt"]);
  assert.deepEqual(select([]), []);
});

Deno.test("?, brackets, negated brackets and braces work", () => {
  assert.deepEqual(select(["?.png"]), ["docs/sub/deep/x.png"]);
  assert.deepEqual(select(["[x]*"]), ["docs/sub/deep/x.png", "notes/docs/x.txt"]);
  assert.deepEqual(select(["[!x.]*.png"]), [
    "Diagrama_Solução.png",
    "docs/imagens/Diagrama_Solução.png",
    "Cópia de Diagrama_Solução.png",
  ]);
  assert.deepEqual(select(["*.{md,pdf}"]), ["docs/readme.md", "reports/Relatório (2).pdf"]);
});

Deno.test("parentheses and exclamation marks are ordinary characters", () => {
  assert.deepEqual(select(["Relatório (2).pdf"]), ["reports/Relatório (2).pdf"]);
  const matches = compilePatterns(["!notes", "a+(1).txt"]);
  assert(matches("!notes"));
  assert(matches("a+(1).txt"));
  assert(!matches("notes/x"));
  assert(!matches("a1.txt"));
});

Deno.test("brackets make glob characters literal", () => {
  const matches = compilePatterns(["a[[]1].txt", "b[*]", "c[{]d"]);
  assert(matches("a[1].txt"));
  assert(matches("b*"));
  assert(!matches("bx"));
  assert(matches("c{d"));
});

Deno.test("names are compared after NFC normalisation on both sides", () => {
  const nfdPath = "docs/imagens/Cópia de Diagrama_Solução.png".normalize("NFD");
  const nfcPattern = "Cópia*".normalize("NFC");
  assert(nfdPath !== nfdPath.normalize("NFC"));
  assert(compilePatterns([nfcPattern])(nfdPath));
  assert(
    compilePatterns(["*Solução.png".normalize("NFD")])("Diagrama_Solução.png".normalize("NFC")),
  );
});

Deno.test("backslashes in a pattern are path separators", () => {
  assert.deepEqual(select(["docs\\*"]), select(["docs/*"]));
  assert.deepEqual(select(["docs\\imagens\\*.png"]), ["docs/imagens/Diagrama_Solução.png"]);
});

Deno.test("a leading ./ and a trailing / are ignored", () => {
  assert.deepEqual(select(["./docs/*"]), select(["docs/*"]));
  assert.deepEqual(select(["docs/"]), select(["docs"]));
  assert.deepEqual(select(["docs\\"]), select(["docs"]));
  assert.deepEqual(select([".\\docs\\readme.md"]), ["docs/readme.md"]);
});

Deno.test("matching is case-sensitive unless caseInsensitive is set", () => {
  assert.deepEqual(select(["DOCS/*"]), []);
  assert.deepEqual(select(["*.PNG"]), []);
  assert.deepEqual(select(["cÓPIA*"], { caseInsensitive: true }), [
    "Cópia de Diagrama_Solução.png",
    "Cópia de docs/plan.txt",
  ]);
  assert.deepEqual(select(["DOCS/README.MD"], { caseInsensitive: true }), ["docs/readme.md"]);
});

Deno.test("the matcher exposes the patterns it was compiled from", () => {
  const patterns = ["*.png", "docs/*"];
  const matches = compilePatterns(patterns);
  assert.deepEqual(matches.patterns, ["*.png", "docs/*"]);
  patterns.push("later");
  assert.deepEqual(matches.patterns.length, 2);
});

Deno.test("an empty pattern is rejected", () => {
  assertPatternInvalid("", /it is empty/);
});

Deno.test("a NUL character is rejected", () => {
  assertPatternInvalid("a\0b", /NUL/);
});

Deno.test("absolute patterns are rejected", () => {
  assertPatternInvalid("/docs/*", /absolute/);
  assertPatternInvalid("\\docs", /absolute/);
  assertPatternInvalid("\\\\server\\share\\x", /absolute/);
  assertPatternInvalid("//server/share", /absolute/);
  assertPatternInvalid("C:", /drive letter/);
  assertPatternInvalid("C:\\dados\\*.png", /drive letter/);
  assertPatternInvalid("c:docs", /drive letter/);
});

Deno.test("a .. segment is rejected", () => {
  assertPatternInvalid("..", /"\.\." segment/);
  assertPatternInvalid("docs/../x", /"\.\." segment/);
  assertPatternInvalid("docs\\..\\x", /"\.\." segment/);
  validatePattern("a..b");
  validatePattern("{1..3}.txt");
});

Deno.test("a pattern naming nothing is rejected", () => {
  assertPatternInvalid("./", /names no file/);
  assertPatternInvalid(".", /names no file/);
});

Deno.test("an unclosed [ or { is rejected", () => {
  assertPatternInvalid("a[bc", /"\[" without a closing "\]"/);
  assertPatternInvalid("[]", /"\[" without/);
  assertPatternInvalid("[[:alpha:]", /"\[" without/);
  assertPatternInvalid("a{b,c", /"\{" without a closing "\}"/);
  assertPatternInvalid("{a,{b,c}", /"\{" without/);
  validatePattern("a]b");
  validatePattern("a}b");
  validatePattern("[]a]");
  validatePattern("[[:digit:]]x");
});

Deno.test("a glob picomatch cannot compile is rejected", () => {
  assertPatternInvalid("[z-a]", /not a valid glob/);
});

Deno.test("compilePatterns validates every pattern before matching anything", () => {
  const error = thrownBy(() => compilePatterns(["*.png", "../etc"]));
  assert.deepEqual(error.code, "PATTERN_INVALID");
  assert(error.message.includes('"../etc"'));
});

Deno.test("describePatternProblem gives the reason alone, or undefined when valid", () => {
  assert.deepEqual(describePatternProblem("*.png"), undefined);
  assert.deepEqual(
    describePatternProblem("a/../b"),
    'it contains a ".." segment, which never occurs in relative_path',
  );
});

Deno.test("unmatched() names the patterns that matched no path asked about", () => {
  const matcher = compilePatterns(["*.png", "docs/*", "typo.txt"]);
  assert.deepEqual(matcher.unmatched(), ["*.png", "docs/*", "typo.txt"]);
  assert.equal(matcher("a.png"), true);
  assert.equal(matcher("docs/b.png"), true); // both match: each is counted
  assert.equal(matcher("c.txt"), false);
  assert.deepEqual(matcher.unmatched(), ["typo.txt"]);
});
