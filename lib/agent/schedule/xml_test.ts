import assert from "node:assert/strict";
import { childText, escapeXml, parseXml, XmlError } from "./xml.ts";

Deno.test("escapeXml escapes element content and refuses control characters", () => {
  assert.equal(escapeXml(`a&b<c>d"e'f]]>`), `a&amp;b&lt;c&gt;d"e'f]]&gt;`);
  assert.equal(escapeXml("Cópia de políticas"), "Cópia de políticas");
  assert.throws(() => escapeXml("bell\u0007"), XmlError);
});

Deno.test("parseXml reads elements, attributes, entities, comments and CDATA", () => {
  const root = parseXml(
    '\uFEFF<?xml version="1.0" encoding="UTF-16"?>\n<!-- c -->\n' +
      '<Task version="1.2" xmlns="urn:x"><A k=\'v&amp;w\'>x &lt; y &#233;&#x4E2D;</A>' +
      "<B/><C><![CDATA[<raw>]]></C><ns:D>d</ns:D></Task>",
  );
  assert.equal(root.name, "Task");
  assert.deepEqual(root.attributes, { version: "1.2", xmlns: "urn:x" });
  assert.deepEqual(root.children.map((child) => child.name), ["A", "B", "C", "D"]);
  assert.equal(root.children[0].attributes.k, "v&w");
  assert.equal(childText(root, "A"), "x < y é中");
  assert.equal(childText(root, "C"), "<raw>");
  assert.equal(childText(root, "D"), "d");
});

Deno.test("parseXml rejects malformed documents", () => {
  for (
    const bad of [
      "<a><b></a></b>",
      "<a>",
      "<a>&nope;</a>",
      "<a x=1/>",
      "<a></a><b/>",
      "<a>& b</a>",
      "<!DOCTYPE a><a/>",
    ]
  ) {
    assert.throws(() => parseXml(bad), XmlError, bad);
  }
});
