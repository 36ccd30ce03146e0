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
  aggregation: ['time', 'name', 'value', 'count'],
} as const;

export function toCsv(items: Record<string, unknown>[], columns: readonly string[]): string {
  const lines = [columns.map(field).join(','), ...items.map((it) => columns.map((k) => field(it[k])).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * Whether an Accept header prefers CSV to the JSON answer (RFC 9110 §12.5.1): each type's q comes
 * from its most specific range (`text/csv;q=0` beside the any-type wildcard refuses CSV); CSV wins on a higher q, or on an
 * equal one when it is named and JSON is not, or named first.
 */
export function prefersCsv(accept: string | undefined): boolean {
  if (!accept) return false;
  type Pick = { q: number; rank: number; at: number };
  const csv: Pick = { q: 0, rank: -1, at: Infinity };
  const json: Pick = { q: 0, rank: -1, at: Infinity };
  const take = (p: Pick, q: number, rank: number, at: number) => {
    if (rank > p.rank) Object.assign(p, { q, rank, at });
  };
  accept.split(',').forEach((part, at) => {
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    let q = 1;
    for (const param of params) {
      const m = /^q\s*=\s*(.*)$/.exec(param);
      // A q that is not a number makes the range unusable rather than preferred.
      if (m) q = /^[0-9.]+$/.test(m[1] ?? '') ? Math.min(1, Number(m[1]) || 0) : 0;
    }
    if (range === 'text/csv') take(csv, q, 2, at);
    else if (range === 'text/*') take(csv, q, 1, at);
    if (range === 'application/json') take(json, q, 2, at);
    else if (range === 'application/*') take(json, q, 1, at);
    if (range === '*/*') {
      take(csv, q, 0, at);
      take(json, q, 0, at);
    }
  });
  if (csv.q <= 0 || csv.q < json.q) return false;
  if (csv.q > json.q) return true;
  return csv.rank > json.rank || (csv.rank === json.rank && csv.at < json.at);
}
