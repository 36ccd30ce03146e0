/**
 * Conditional and range requests on an immutable stored representation (RFC 9110 §13, §14): what a
 * GET or HEAD of `/channels/{id}/payloads/{seq}` answers, decided from the validators and the size
 * alone, before any byte is read — so a 304 or 416 never fetches the blob.
 */

/** The representation's validators and length. */
export interface Representation {
  /** A strong entity tag, quoted (`"…"`). */
  etag: string;
  /** ms since the epoch; sent (and compared) at HTTP-date's one-second resolution. */
  lastModified: number;
  size: number;
}

/** A byte range of the representation, both ends inclusive (RFC 9110 §14.1.2). */
export interface ByteRange {
  start: number;
  end: number;
}

export type Answer =
  | { status: 200 }
  | { status: 206; range: ByteRange }
  | { status: 304 }
  /** If-Match or If-Unmodified-Since failed. */
  | { status: 412 }
  | { status: 416 };

type Headers = { get(name: string): string | null };

const seconds = (ms: number) => Math.floor(ms / 1000);

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** The three forms of HTTP-date (RFC 9110 §5.6.7), each capturing day, month, year and time. */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
const RFC850 = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
const ASCTIME = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);
const FIFTY_YEARS_MS = 50 * 365.25 * 86_400_000;

/**
 * An HTTP-date (RFC 9110 §5.6.7) in ms, or null when it is not one — which makes the condition be
 * ignored (§13.1.3, §13.1.4). Read by the grammar, not `Date.parse` (which read "1" as 2001 and
 * "2100" as a year), and a date that does not exist (31 Feb, 24:00:00, 12:00:60) is not one either (23:59:60, a leap second, is).
 * asctime has no zone and is UTC; RFC 850's two-digit year is the one with those digits that is not
 * more than 50 years ahead of `now`.
 */
export function httpDate(value: string, now = Date.now()): number | null {
  const v = value.trim();
  let f: string[] | null;
  let day: string, month: string, year: number, hms: string[];
  let twoDigitYear = false;
  if ((f = IMF_FIXDATE.exec(v))) [day, month, year, hms] = [f[1]!, f[2]!, Number(f[3]), f.slice(4, 7)];
  else if ((f = ASCTIME.exec(v))) [day, month, year, hms] = [f[2]!.trim(), f[1]!, Number(f[6]), f.slice(3, 6)];
  else if ((f = RFC850.exec(v))) {
    const current = new Date(now).getUTCFullYear();
    [day, month, year, hms, twoDigitYear] = [f[1]!, f[2]!, current - (current % 100) + Number(f[3]), f.slice(4, 7), true];
  } else return null;
  const [h, m, sec] = hms.map(Number) as [number, number, number];
  // The grammar allows a leap second (23:59:60, §5.6.7); read as the second before it.
  const s = sec === 60 && h === 23 && m === 59 ? 59 : sec;
  const mon = MONTHS.indexOf(month);
  if (twoDigitYear && Date.UTC(year, mon, Number(day), h, m, s) > now + FIFTY_YEARS_MS) year -= 100;
  const ms = Date.UTC(year, mon, Number(day), h, m, s);
  const d = new Date(ms);
  const real = d.getUTCFullYear() === year && d.getUTCMonth() === mon && d.getUTCDate() === Number(day) && d.getUTCHours() === h && d.getUTCMinutes() === m && d.getUTCSeconds() === s;
  return real ? ms : null;
}

/** The entity tags of an If-Match / If-None-Match list, `*` as itself (RFC 9110 §8.8.3, §13.1.1). */
function tags(value: string): string[] {
  if (value.trim() === '*') return ['*'];
  return value.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

/** Strong comparison (§8.8.3.2): both strong, same opaque tag. */
const strongMatch = (tag: string, etag: string) => !tag.startsWith('W/') && tag === etag;
/** Weak comparison: same opaque tag, weak or not. */
const weakMatch = (tag: string, etag: string) => tag.replace(/^W\//, '') === etag.replace(/^W\//, '');

/**
 * The one byte range a `Range` header asks for, or:
 * - `null` when the header is absent, not `bytes`, malformed, or asks for more than one range — a
 *   server may ignore Range (§14.2), and answering several with one 200 spares multipart/byteranges;
 * - `'unsatisfiable'` when the one range starts at or past the end (§14.1.1), answered 416.
 */
export function parseRange(header: string | null, size: number): ByteRange | 'unsatisfiable' | null {
  if (header === null) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  const [first, last] = [m[1]!, m[2]!];
  if (first === '') {
    // suffix-range: the last N bytes (all of them when shorter); a zero-length one is unsatisfiable.
    const n = Number(last);
    if (n === 0) return 'unsatisfiable';
    // An empty representation has no bytes to range over: answer it whole (§14.2 lets us ignore Range).
    if (size === 0) return null;
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Number(last);
  // last-pos < first-pos makes the range-spec invalid, so the whole header is ignored (§14.1.1).
  if (last !== '' && end < start) return null;
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}

/**
 * What a GET or HEAD answers given its preconditions and Range, evaluated in RFC 9110 §13.2.2's
 * order: If-Match, else If-Unmodified-Since (412); If-None-Match, else If-Modified-Since (304);
 * then, for a GET only (§14.2: range handling is defined for GET alone, so a HEAD's Range is
 * ignored), Range, only if If-Range (when given) still matches.
 */
export function evaluate(headers: Headers, rep: Representation, method = 'GET'): Answer {
  const ifMatch = headers.get('if-match');
  if (ifMatch !== null) {
    if (!tags(ifMatch).some((t) => t === '*' || strongMatch(t, rep.etag))) return { status: 412 };
  } else {
    const since = headers.get('if-unmodified-since');
    const date = since === null ? null : httpDate(since);
    if (date !== null && seconds(rep.lastModified) > seconds(date)) return { status: 412 };
  }
  const ifNoneMatch = headers.get('if-none-match');
  if (ifNoneMatch !== null) {
    if (tags(ifNoneMatch).some((t) => t === '*' || weakMatch(t, rep.etag))) return { status: 304 };
  } else {
    const since = headers.get('if-modified-since');
    const date = since === null ? null : httpDate(since);
    if (date !== null && seconds(rep.lastModified) <= seconds(date)) return { status: 304 };
  }
  if (method !== 'GET') return { status: 200 };
  const range = parseRange(headers.get('range'), rep.size);
  if (range === null) return { status: 200 };
  const ifRange = headers.get('if-range');
  if (ifRange !== null && !ifRangeHolds(ifRange.trim(), rep)) return { status: 200 };
  return range === 'unsatisfiable' ? { status: 416 } : { status: 206, range };
}

/** If-Range (§13.1.5): a strong entity tag that is the current one, or exactly the Last-Modified date. */
function ifRangeHolds(value: string, rep: Representation): boolean {
  if (value.startsWith('"') || value.startsWith('W/')) return strongMatch(value, rep.etag);
  const date = httpDate(value);
  return date !== null && seconds(date) === seconds(rep.lastModified);
}

/** The validators every 200, 206 and 304 carries (§15.4.5: a 304 sends what the 200 would have). */
export function validatorHeaders(rep: Representation): Record<string, string> {
  return { etag: rep.etag, 'last-modified': new Date(seconds(rep.lastModified) * 1000).toUTCString() };
}
