/** RFC 4180 CSV: header row from the union of keys, CRLF line ends, fields quoted when they need it. */
function field(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(items: Record<string, unknown>[], preferred: string[] = []): string {
  const present = new Set(items.flatMap((it) => Object.keys(it)));
  const keys = preferred.filter((k) => present.has(k));
  for (const k of present) if (!keys.includes(k)) keys.push(k);
  const lines = [keys.map(field).join(','), ...items.map((it) => keys.map((k) => field(it[k])).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}
