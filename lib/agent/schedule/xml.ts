/**
 * Just enough XML for task definitions: escaping for the writer, and a small
 * strict parser for reading a task back (`schtasks /Query /XML`, tests).
 * Elements, attributes, text, the five named entities and numeric character
 * references, comments, CDATA and the XML declaration; no DTDs.
 *
 * @module
 */

/** A parsed element; `text` is its own character data (not its children's). */
export interface XmlElement {
  /** Local name (any namespace prefix removed). */
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** Malformed XML; the message says where. */
export class XmlError extends Error {
  override readonly name = "XmlError";
}

// XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates' halves alone, FFFE, FFFF.
// deno-lint-ignore no-control-regex
const INVALID_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

/**
 * Escapes text for element content: `&`, `<` and `>` (quotes need no escape
 * there, and leaving them keeps paths readable). Only fixed attribute values
 * are written, so there is no attribute escaping.
 */
export function escapeXml(text: string): string {
  if (INVALID_XML_CHAR.test(text)) {
    throw new XmlError(
      `text cannot be written to XML (it holds a control character): ${JSON.stringify(text)}`,
    );
  }
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;");
}

/** The first child element with that name. */
export function childElement(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((child) => child.name === name);
}

/** Every child element with that name. */
export function childElements(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((child) => child.name === name);
}

/** The trimmed text of the first child with that name, or undefined. */
export function childText(element: XmlElement, name: string): string | undefined {
  return childElement(element, name)?.text.trim();
}

/** Parses a document and returns its root element. */
export function parseXml(text: string): XmlElement {
  const parser = new Parser(text.startsWith("\uFEFF") ? text.slice(1) : text);
  parser.skipMisc();
  const root = parser.element();
  parser.skipMisc();
  if (!parser.done()) parser.fail("content after the root element");
  return root;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

class Parser {
  #text: string;
  #at = 0;

  constructor(text: string) {
    this.#text = text;
  }

  done(): boolean {
    return this.#at >= this.#text.length;
  }

  fail(what: string): never {
    const before = this.#text.slice(0, this.#at);
    const line = before.split("\n").length;
    const column = this.#at - before.lastIndexOf("\n");
    throw new XmlError(`XML: ${what} at line ${line}, column ${column}`);
  }

  /** Whitespace, comments, processing instructions (the declaration). */
  skipMisc(): void {
    for (;;) {
      this.#skipSpace();
      if (this.#startsWith("<?")) this.#skipPast("?>");
      else if (this.#startsWith("<!--")) this.#skipPast("-->");
      else if (this.#startsWith("<!")) this.fail("DTDs are not supported");
      else return;
    }
  }

  element(): XmlElement {
    this.#expect("<");
    const qualified = this.#name();
    const attributes: Record<string, string> = {};
    for (;;) {
      const spaced = this.#skipSpace();
      if (this.#startsWith("/>")) {
        this.#at += 2;
        return { name: localName(qualified), attributes, children: [], text: "" };
      }
      if (this.#startsWith(">")) {
        this.#at++;
        break;
      }
      if (!spaced) this.fail("expected whitespace before an attribute");
      const attribute = this.#name();
      this.#skipSpace();
      this.#expect("=");
      this.#skipSpace();
      if (attribute in attributes) this.fail(`attribute "${attribute}" repeated`);
      attributes[attribute] = this.#quoted();
    }
    const children: XmlElement[] = [];
    let text = "";
    for (;;) {
      if (this.done()) this.fail(`<${qualified}> is not closed`);
      if (this.#startsWith("</")) {
        this.#at += 2;
        const closing = this.#name();
        if (closing !== qualified) this.fail(`</${closing}> closes <${qualified}>`);
        this.#skipSpace();
        this.#expect(">");
        return { name: localName(qualified), attributes, children, text };
      }
      if (this.#startsWith("<!--")) this.#skipPast("-->");
      else if (this.#startsWith("<![CDATA[")) {
        this.#at += 9;
        const end = this.#text.indexOf("]]>", this.#at);
        if (end < 0) this.fail("CDATA section is not closed");
        text += this.#text.slice(this.#at, end);
        this.#at = end + 3;
      } else if (this.#startsWith("<?")) this.#skipPast("?>");
      else if (this.#startsWith("<")) children.push(this.element());
      else text += this.#characters("<");
    }
  }

  #characters(stop: string): string {
    let result = "";
    while (!this.done() && this.#text[this.#at] !== stop) {
      const char = this.#text[this.#at];
      if (char === "&") result += this.#reference();
      else {
        result += char;
        this.#at++;
      }
    }
    return result;
  }

  #reference(): string {
    const end = this.#text.indexOf(";", this.#at);
    if (end < 0 || end - this.#at > 12) this.fail('"&" that does not start a reference');
    const body = this.#text.slice(this.#at + 1, end);
    this.#at = end + 1;
    if (body.startsWith("#")) {
      const hex = body.startsWith("#x");
      const digits = body.slice(hex ? 2 : 1);
      const code = Number.parseInt(digits, hex ? 16 : 10);
      const valid = digits !== "" &&
        [...digits].every((d) => (hex ? "0123456789abcdefABCDEF" : "0123456789").includes(d));
      if (!valid || !(code >= 0 && code <= 0x10ffff)) {
        this.fail(`bad character reference "&${body};"`);
      }
      return String.fromCodePoint(code);
    }
    const value = ENTITIES[body];
    if (value === undefined) this.fail(`unknown entity "&${body};"`);
    return value;
  }

  #quoted(): string {
    const quote = this.#text[this.#at];
    if (quote !== '"' && quote !== "'") this.fail("expected a quoted attribute value");
    this.#at++;
    const value = this.#characters(quote);
    if (value.includes("<")) this.fail('"<" in an attribute value');
    this.#expect(quote);
    return value;
  }

  #name(): string {
    const start = this.#at;
    while (!this.done() && !" \t\r\n/>=\"'<".includes(this.#text[this.#at])) this.#at++;
    if (this.#at === start) this.fail("expected a name");
    return this.#text.slice(start, this.#at);
  }

  #skipSpace(): boolean {
    const start = this.#at;
    while (!this.done() && " \t\r\n".includes(this.#text[this.#at])) this.#at++;
    return this.#at > start;
  }

  #skipPast(end: string): void {
    const index = this.#text.indexOf(end, this.#at);
    if (index < 0) this.fail(`"${end}" is missing`);
    this.#at = index + end.length;
  }

  #startsWith(prefix: string): boolean {
    return this.#text.startsWith(prefix, this.#at);
  }

  #expect(char: string): void {
    if (this.#text[this.#at] !== char) this.fail(`expected "${char}"`);
    this.#at++;
  }
}

function localName(qualified: string): string {
  const colon = qualified.indexOf(":");
  return colon < 0 ? qualified : qualified.slice(colon + 1);
}
