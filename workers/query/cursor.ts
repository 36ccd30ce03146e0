/**
 * Where a listing page ended, so the next page starts right after it (keyset paging): the sort key
 * of the page's last row and the order it was read in. Opaque to clients: base64url of a JSON array.
 *
 * - messages and json listings (`m`): the message's `created` and `seq`;
 * - SenML listings (`s`): the record's `time`, `seq` and `idx`.
 *
 * A cursor holds a position, not the filters: given with other filters it continues after the same
 * row in their matches.
 */
export type Cursor = { kind: 'm'; order: 'asc' | 'desc'; created: number; seq: number } | { kind: 's'; order: 'asc' | 'desc'; time: number; seq: number; idx: number };

// The JSON is ASCII (two short words and numbers), so btoa/atob take it as it is.
export function encodeCursor(c: Cursor): string {
  const key = c.kind === 'm' ? [c.created, c.seq] : [c.time, c.seq, c.idx];
  return btoa(JSON.stringify([c.kind, c.order, ...key])).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const seqLike = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/** The cursor in `text`, or null when it is not one this API gave out. */
export function decodeCursor(text: string): Cursor | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return null;
  let v: unknown;
  try {
    v = JSON.parse(atob(text.replace(/-/g, '+').replace(/_/g, '/')));
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  const [kind, order, ...key] = v as unknown[];
  if (order !== 'asc' && order !== 'desc') return null;
  if (kind === 'm' && key.length === 2 && seqLike(key[0]) && seqLike(key[1])) return { kind, order, created: key[0], seq: key[1] };
  if (kind === 's' && key.length === 3 && typeof key[0] === 'number' && Number.isFinite(key[0]) && seqLike(key[1]) && seqLike(key[2])) return { kind, order, time: key[0], seq: key[1], idx: key[2] };
  return null;
}
