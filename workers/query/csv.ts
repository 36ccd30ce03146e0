/**
 * RFC 4180 CSV: a header row of the given columns, CRLF line ends, fields quoted when they need it.
 * The columns are fixed per kind of answer (CSV_COLUMNS), not taken from the items: every page and
 * every query of a kind has the same header, so pages followed by cursor concatenate into one
 * table, and an empty answer still says what its columns are.
 *
 * Text a device chose (a payload, a subtopic, a SenML unit or string value) that starts with
 * `=`, `+`, `-`, `@`, a tab or a carriage return is written with a `'` in front: a spreadsheet
 * (Excel, LibreOffice, Google Sheets) opening the export would otherwise evaluate it as a formula
 * — `=HYPERLINK(…)` sending the sheet's cells away, `=cmd|…` (DDE) running a program on the
 * machine of whoever opened it (OWASP "CSV injection", CWE-1236). The `'` makes the cell text,
 * and Excel shows it without the `'`. Numbers (`value` -3) are numbers, not text, and base64 (a
 * binary payload, `dataValue`) is kept as it is: its alphabet cannot spell a call, and a reader
 * decodes it. JSON and JSON lines carry every value exactly.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
/** Columns whose text is base64 or base64url: never a formula, and altered it would not decode. */
const ENCODED = new Set(['dataValue']);

function field(v: unknown, neutralize: boolean): string {
  if (v === undefined || v === null) return '';
  let s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (neutralize && typeof v === 'string' && FORMULA_START.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const CSV_COLUMNS = {
  /** format=messages and format=json (a JSON document's payload as JSON text); `retain` last, where it was added. */
  messages: ['seq', 'created', 'subtopic', 'publisher', 'protocol', 'contentType', 'payload', 'encoding', 'size', 'payloadUrl', 'channel', 'retain'],
  senml: ['seq', 'time', 'subtopic', 'publisher', 'name', 'unit', 'value', 'stringValue', 'boolValue', 'dataValue', 'sum', 'updateTime', 'channel'],
  /** `unit` last, where it was added (SenML buckets are per name and unit). */
  aggregation: ['time', 'name', 'value', 'count', 'unit'],
} as const;

export function toCsv(items: Record<string, unknown>[], columns: readonly string[]): string {
  const text = (it: Record<string, unknown>, k: string) => !ENCODED.has(k) && !(k === 'payload' && it.encoding === 'base64');
  const lines = [columns.map((k) => field(k, false)).join(','), ...items.map((it) => columns.map((k) => field(it[k], text(it, k))).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}
