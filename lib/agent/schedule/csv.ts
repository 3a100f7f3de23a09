/**
 * CSV as `schtasks /Query /FO CSV` writes it: every field in double quotes,
 * a doubled quote inside one, CRLF line ends.
 *
 * @module
 */

/** Parses CSV text into rows of fields; blank lines are skipped. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let fieldStarted = false;
  const endRow = () => {
    if (fieldStarted || row.length > 0) rows.push([...row, field]);
    row = [];
    field = "";
    fieldStarted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') {
      quoted = true;
      fieldStarted = true;
    } else if (char === ",") {
      row.push(field);
      field = "";
      fieldStarted = true;
    } else if (char === "\n") endRow();
    else if (char !== "\r") {
      field += char;
      fieldStarted = true;
    }
  }
  endRow();
  return rows;
}
