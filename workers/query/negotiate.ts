/**
 * Which representation of a query answer the client's Accept header prefers (RFC 9110 §12.5.1):
 * JSON (the default), CSV, or JSON lines (`application/x-ndjson`, also asked for as
 * `application/jsonl`). Each type's q comes from its most specific range (`text/csv;q=0` beside
 * the any-type wildcard refuses CSV); the highest q wins, then the more specific range, then the
 * range named first, then JSON. No Accept, or none that names a type we have, is JSON: a query
 * is never refused for its Accept header.
 */
export type Representation = { kind: 'json' | 'csv' | 'ndjson'; mediaType: string };

const CANDIDATES: readonly Representation[] = [
  { kind: 'json', mediaType: 'application/json' },
  { kind: 'csv', mediaType: 'text/csv' },
  { kind: 'ndjson', mediaType: 'application/x-ndjson' },
  { kind: 'ndjson', mediaType: 'application/jsonl' },
];

export function negotiate(accept: string | undefined): Representation {
  const json = CANDIDATES[0]!;
  if (!accept) return json;
  type Pick = { q: number; rank: number; at: number };
  const picks: Pick[] = CANDIDATES.map(() => ({ q: 0, rank: -1, at: Infinity }));
  accept.split(',').forEach((part, at) => {
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    let q = 1;
    for (const param of params) {
      const m = /^q\s*=\s*(.*)$/.exec(param);
      // A q that is not a number makes the range unusable rather than preferred.
      if (m) q = /^[0-9.]+$/.test(m[1] ?? '') ? Math.min(1, Number(m[1]) || 0) : 0;
    }
    CANDIDATES.forEach(({ mediaType }, i) => {
      const rank = range === mediaType ? 2 : range === `${mediaType.split('/')[0]}/*` ? 1 : range === '*/*' ? 0 : -1;
      const p = picks[i]!;
      if (rank > p.rank) Object.assign(p, { q, rank, at });
    });
  });
  // JSON lines has two names: one format, decided by its most specific range over both names (refused
  // there by either, else the higher q), answered under the name the client gave (x-ndjson if neither).
  const [jsonPick, csvPick, ndjson, jsonl] = picks as [Pick, Pick, Pick, Pick];
  const rank = Math.max(ndjson.rank, jsonl.rank);
  const named = [ndjson, jsonl].filter((p) => p.rank === rank);
  const lines: Pick = { rank, q: named.some((p) => p.q === 0) ? 0 : Math.max(...named.map((p) => p.q)), at: Math.min(...named.map((p) => p.at)) };
  const jsonlNamed = jsonl.rank === 2 && (ndjson.rank < 2 || jsonl.q > ndjson.q || (jsonl.q === ndjson.q && jsonl.at < ndjson.at));
  const linesAs = jsonlNamed ? CANDIDATES[3]! : CANDIDATES[2]!;
  const formats: [Pick, Representation][] = [
    [jsonPick, json],
    [csvPick, CANDIDATES[1]!],
    [lines, linesAs],
  ];
  let best = formats[0]!;
  for (const f of formats) {
    const [p] = f;
    const [b] = best;
    if (p.q > b.q || (p.q === b.q && (p.rank > b.rank || (p.rank === b.rank && p.at < b.at)))) best = f;
  }
  return best[0].q > 0 ? best[1] : json;
}

/** JSON lines: one item per line, each line ending in LF; no items, no lines. */
export const toNdjson = (items: unknown[]): string => items.map((it) => `${JSON.stringify(it)}\n`).join('');
