/**
 * RFC 4180 CSV: a header row of the given columns, CRLF line ends, fields quoted when they need it.
 * The columns are fixed per kind of answer (CSV_COLUMNS), not taken from the items: every page and
 * every query of a kind has the same header, so pages followed by cursor concatenate into one
 * table, and an empty answer still says what its columns are.
 */
function field(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
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
  const lines = [columns.map(field).join(','), ...items.map((it) => columns.map((k) => field(it[k])).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}
