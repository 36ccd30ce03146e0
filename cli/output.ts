/**
 * How results are shown: a table when stdout is a terminal, JSON otherwise or with `--json`
 * (one JSON document per command; `sub` prints one envelope per line).
 */
export interface OutputOptions {
  json: boolean;
}

const isScalar = (v: unknown) => v === null || ['string', 'number', 'boolean'].includes(typeof v);
const cell = (v: unknown): string =>
  v === null || v === undefined ? '' : Array.isArray(v) && v.every(isScalar) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : String(v);

/**
 * The API's times (`created_at`, `expires_at`, `last_seen`, a message's `created`…) are ms since 1970:
 * a person reads them as ISO 8601 UTC. SenML's `time` is seconds, and is left as it is.
 */
const isTime = (field: string) => field.endsWith('_at') || field === 'last_seen' || field === 'created';
/** A Date holds ±8.64e15 ms (ECMA-262, "Time Values and Time Range"); past that toISOString throws, so the number is shown as is. */
const MAX_DATE_MS = 8.64e15;
const shown = (field: string, v: unknown): unknown => (isTime(field) && typeof v === 'number' && Math.abs(v) <= MAX_DATE_MS ? new Date(v).toISOString() : v);

/** Columns padded to their widest cell (columns empty in every row left out); the last one is not padded. */
export function table(rows: Record<string, unknown>[], columns?: string[]): string {
  if (rows.length === 0) return '(none)';
  const cols = (columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))]).filter((c) => rows.some((r) => cell(r[c]) !== ''));
  const cells = [cols.map((c) => c.toUpperCase()), ...rows.map((r) => cols.map((c) => cell(shown(c, r[c]))))];
  const widths = cols.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((v, i) => (i === cols.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** A list or one object, as JSON or a table (`columns` picks and orders the table's columns). */
export function show(out: OutputOptions, data: unknown, columns?: string[]): void {
  if (out.json || !process.stdout.isTTY) return void process.stdout.write(JSON.stringify(data, null, out.json ? 2 : 0) + '\n');
  if (Array.isArray(data)) return void process.stdout.write(table(data as Record<string, unknown>[], columns) + '\n');
  if (data && typeof data === 'object') {
    const rows = Object.entries(data).map(([field, value]) => ({ field, value: shown(field, value) }));
    return void process.stdout.write(table(rows, ['field', 'value']) + '\n');
  }
  process.stdout.write(cell(data) + '\n');
}

/** Shown after a list on a terminal when there is more than one page. */
export function showPage(out: OutputOptions, page: { total?: number; offset: number; limit: number; next?: string | null; items: unknown[] }, columns?: string[]): void {
  if (out.json || !process.stdout.isTTY) return show(out, page);
  show(out, page.items, columns);
  if (page.next) {
    const of = page.total !== undefined ? ` of ${page.total}` : '';
    process.stderr.write(`${page.items.length}${of} shown; the next page: --cursor ${page.next}\n`);
  } else if (page.total !== undefined && page.total > page.offset + page.items.length) {
    process.stderr.write(`${page.items.length} of ${page.total} shown; use --offset/--limit for more\n`);
  }
}
