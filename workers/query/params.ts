import { z } from 'zod';
import { ApiError } from '../lib/errors';
import { decimalNumber, wholeNumber } from '../lib/params';
import { base64urlFault } from '../../shared/senml/chars';
import { decodeCursor } from './cursor';

const INSTANT_HELP = 'expected ms since the epoch, an ISO-8601 date-time with its zone (2026-12-01T10:00:00Z, 2026-12-01T11:00:00+01:00 or +0100) or a date (2026-12-01: midnight UTC)';
/**
 * The zone's sign may be a space: a `+` typed into a URL's query (curl "…?from=…T11:00:00+01:00")
 * arrives as one (application/x-www-form-urlencoded), and a space there can mean nothing else.
 */
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)([Zz]|[+ -]\d{2}(?::?\d{2})?)$/;

/** ms since the epoch, an ISO-8601 date-time with a zone, or a date (UTC midnight), into ms; NaN if none. */
export function parseInstant(s: string): number {
  if (/^\d{1,16}$/.test(s)) return Number(s);
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) return realDate(s) ? Date.parse(`${s}T00:00:00Z`) : NaN;
  const m = DATE_TIME.exec(s);
  if (!m || !realDate(m[1]!)) return NaN;
  // ±hh and ±hhmm are ISO-8601 too; Date.parse takes only ±hh:mm. Fractions past ms are cut.
  const offset = m[3]!.replace(/^ /, '+');
  const zone = offset.length === 1 ? 'Z' : offset.length === 3 ? `${offset}:00` : `${offset.slice(0, 3)}:${offset.slice(-2)}`;
  const time = m[2]!.replace(/(\.\d{3})\d+$/, '$1');
  return Date.parse(`${m[1]}T${time.length === 5 ? `${time}:00` : time}${zone}`);
}

/** Whether YYYY-MM-DD names a day of the calendar (Date.parse rolls 2026-02-31 over to March). */
function realDate(ymd: string): boolean {
  const [y, mo, d] = ymd.split('-').map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, mo - 1, d));
  return day.getUTCFullYear() === y && day.getUTCMonth() === mo - 1 && day.getUTCDate() === d;
}

/**
 * Seconds since the epoch (Mainflux's readers take them, `date +%s` prints them) from 2001-09-09 on
 * are 10 or 11 digits: read as ms they name a day of 1970–1973, where nothing stored can be (a
 * message's `created` is when it arrived; a SenML time is at least 2**28 s, 1978), so `from` would
 * silently match everything and `to` nothing. Refused, with the value in ms.
 */
const SECONDS_LIKE = { min: 1e9, max: 1e11 };

const Instant = z.string().transform((s, ctx) => {
  const ms = parseInstant(s);
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: 'custom', message: INSTANT_HELP });
    return z.NEVER;
  }
  if (/^\d+$/.test(s) && ms >= SECONDS_LIKE.min && ms < SECONDS_LIKE.max) {
    ctx.addIssue({ code: 'custom', message: `${s} looks like seconds since the epoch; this API takes ms (${s}000) or an ISO-8601 date-time` });
    return z.NEVER;
  }
  return ms;
});

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** `500ms`, `10s`, `5m`, `1h`, `1d`, or plain milliseconds. */
const Interval = z
  .string()
  .regex(/^(\d+)(ms|s|m|h|d)?$/, 'interval is a number with an optional unit: ms, s, m, h or d (e.g. 10s, 1h)')
  .transform((s) => {
    const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s)!;
    return Number(m[1]) * UNITS[m[2] ?? 'ms']!;
  })
  .refine((ms) => ms >= 1 && ms <= 366 * 86_400_000, 'interval must be between 1 ms and a year');

export const MAX_QUERY_LIMIT = 1000;

/** A `next` cursor from an earlier page (cursor.ts), decoded. */
const CursorParam = z.string().transform((s, ctx) => {
  const c = decodeCursor(s);
  if (c === null) {
    ctx.addIssue({ code: 'custom', message: 'not a cursor this API gave out: pass the `next` of an earlier page as it was' });
    return z.NEVER;
  }
  return c;
});

export const QuerySchema = z
  // strict: a misspelt filter is an error, not silently ignored
  .strictObject({
    offset: wholeNumber('offset', 0, 1_000_000).default(0),
    limit: wholeNumber('limit', 1, MAX_QUERY_LIMIT).default(100),
    format: z.enum(['messages', 'senml', 'json']).default('messages'),
    order: z.enum(['asc', 'desc']).default('desc'),
    subtopic: z.string().max(1024).optional(),
    publisher: z.string().max(256).optional(),
    protocol: z.enum(['http', 'ws', 'mqtt', 'coap']).optional(),
    from: Instant.optional(),
    to: Instant.optional(),
    name: z.string().max(1024).optional(),
    v: decimalNumber('v').optional(),
    comparator: z.enum(['eq', 'lt', 'le', 'gt', 'ge']).optional(),
    vs: z.string().max(4096).optional(),
    vb: z.enum(['true', 'false']).transform((b) => b === 'true').optional(),
    // stored data values are canonical base64url (the SenML codec checks them), so nothing else can match
    vd: z
      .string()
      .max(4096)
      .superRefine((s, ctx) => {
        const fault = base64urlFault(s);
        if (fault) ctx.addIssue({ code: 'custom', message: fault });
      })
      .optional(),
    aggregation: z.enum(['min', 'max', 'avg', 'sum', 'count']).optional(),
    interval: Interval.optional(),
    cursor: CursorParam.optional(),
    total: z.enum(['true', 'false']).transform((b) => b === 'true').default(true),
  })
  .refine((q) => q.from === undefined || q.to === undefined || q.from <= q.to, { message: 'from must not be after to', path: ['from'] })
  .refine((q) => q.format === 'senml' || [q.name, q.v, q.vs, q.vb, q.vd].every((f) => f === undefined), { message: 'name, v, vs, vb and vd filter SenML records: add format=senml', path: ['format'] })
  .refine((q) => q.comparator === undefined || q.v !== undefined, { message: 'comparator compares v: give v too', path: ['comparator'] })
  .refine((q) => q.interval === undefined || q.aggregation !== undefined, { message: 'interval needs an aggregation', path: ['interval'] })
  .refine((q) => !(q.aggregation && q.aggregation !== 'count' && q.format !== 'senml'), { message: 'min, max, avg and sum aggregate SenML values: use format=senml', path: ['aggregation'] })
  .refine((q) => !(q.cursor && q.offset > 0), { message: 'give offset or cursor, not both: a cursor already says where the page starts', path: ['cursor'] })
  .refine((q) => !(q.cursor && q.aggregation), { message: 'aggregations page with offset, not cursor', path: ['cursor'] })
  .refine((q) => !q.cursor || q.cursor.kind === (q.format === 'senml' ? 's' : 'm'), { message: 'this cursor is from a listing of another format (senml records and messages page differently)', path: ['cursor'] })
  .refine((q) => !q.cursor || q.cursor.order === q.order, { message: 'this cursor is from a listing in the other order: keep the order of the page that gave it', path: ['cursor'] });

export type Query = z.infer<typeof QuerySchema>;

export function parseQuery(url: URL): Query {
  const raw: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (k === 'authorization') continue; // a credential, not a filter
    if (k in raw) throw new ApiError(400, 'validation_failed', `query parameter ${k} given more than once`);
    raw[k] = v;
  }
  const r = QuerySchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw new ApiError(400, 'validation_failed', `invalid query: ${issues[0]?.path || '(query)'}: ${issues[0]?.message}`, issues);
  }
  return r.data;
}
