import assert from "node:assert/strict";
import { parseCsv } from "./csv.ts";

Deno.test("parseCsv reads quoted fields, doubled quotes, commas and CRLF", () => {
  assert.deepEqual(
    parseCsv('"a","b, c","say ""hi"""\r\n"1","","3"\r\n\r\n'),
    [["a", "b, c", 'say "hi"'], ["1", "", "3"]],
  );
  assert.deepEqual(parseCsv("x,y\ny,z"), [["x", "y"], ["y", "z"]]);
  assert.deepEqual(parseCsv(""), []);
});
