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
  // Two names of one format: refusing either by name (q=0) refuses the format.
  const [, , ndjson, jsonl] = picks as [Pick, Pick, Pick, Pick];
  if ((ndjson.rank === 2 && ndjson.q === 0) || (jsonl.rank === 2 && jsonl.q === 0)) ndjson.q = jsonl.q = 0;
  let best = 0;
  picks.forEach((p, i) => {
    const b = picks[best]!;
    if (p.q > b.q || (p.q === b.q && (p.rank > b.rank || (p.rank === b.rank && p.at < b.at)))) best = i;
  });
  return picks[best]!.q > 0 ? CANDIDATES[best]! : json;
}

/** JSON lines: one item per line, each line ending in LF; no items, no lines. */
export const toNdjson = (items: unknown[]): string => items.map((it) => `${JSON.stringify(it)}\n`).join('');
