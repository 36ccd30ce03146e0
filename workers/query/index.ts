import type { Context } from 'hono';
import type { AppEnv } from '../app-env';
import { authenticate, authorizeChannel } from '../auth';
import { payloadToWire, utf8Bytes } from '../../shared/envelope';
import { ApiError, notFound } from '../lib/errors';
import { evaluate, validatorHeaders, type Representation } from '../lib/ranges';
import { router } from '../lib/router';
import { CSV_COLUMNS, toCsv } from './csv';
import { negotiate, toNdjson } from './negotiate';
import { parseQuery, type Query } from './params';
import { encodeCursor } from './cursor';
import { CHANNEL_KEY, messageWhere, senmlWhere } from './sql';

/**
 * The message-query API (Mainflux's "reader"): `GET /channels/{id}/messages[/{subtopic…}]` without
 * an Upgrade header (the messages router hands plain GETs on to here). docs/query.md.
 */
export const queryRouter = router();

/** A message_rows row with its publisher's id (MESSAGE_COLUMNS); the channel is the query's own. */
interface MessageRow {
  seq: number;
  subtopic: string;
  publisher: string;
  protocol: string;
  content_type: string;
  created: number;
  size: number;
  payload: string | null;
  blob_key: string | null;
  retained: number;
}

function messageItem(channel: string, r: MessageRow, format: Query['format']) {
  const base = { channel, subtopic: r.subtopic, publisher: r.publisher, protocol: r.protocol, contentType: r.content_type, created: r.created, seq: r.seq, ...(r.retained ? { retain: true } : {}) };
  if (r.payload === null) return { ...base, size: r.size, payloadUrl: `/channels/${channel}/payloads/${r.seq}` };
  if (format === 'json') return { ...base, payload: JSON.parse(r.payload) as unknown };
  return { ...base, ...payloadToWire(r.content_type, utf8Bytes(r.payload)) };
}

/** A page's rows with their publishers' ids. */
const MESSAGE_COLUMNS = 'm.seq, m.subtopic, p.publisher, m.protocol, m.content_type, m.created, m.size, m.payload, m.blob_key, m.retained';
const SENML_COLUMNS = 'r.seq, r.idx, r.subtopic, p.publisher, r.name, r.time, r.unit, r.value, r.string_value, r.bool_value, r.data_value, r.sum, r.update_time';
interface SenmlRow {
  seq: number;
  idx: number;
  subtopic: string;
  publisher: string;
  name: string;
  time: number;
  unit: string | null;
  value: number | null;
  string_value: string | null;
  bool_value: number | null;
  data_value: string | null;
  sum: number | null;
  update_time: number | null;
}
const senmlItem = (channel: string, r: SenmlRow) => ({
  channel,
  seq: r.seq,
  subtopic: r.subtopic,
  publisher: r.publisher,
  name: r.name,
  time: r.time,
  ...(r.unit !== null ? { unit: r.unit } : {}),
  ...(r.value !== null ? { value: r.value } : {}),
  ...(r.string_value !== null ? { stringValue: r.string_value } : {}),
  ...(r.bool_value !== null ? { boolValue: r.bool_value === 1 } : {}),
  ...(r.data_value !== null ? { dataValue: r.data_value } : {}),
  ...(r.sum !== null ? { sum: r.sum } : {}),
  ...(r.update_time !== null ? { updateTime: r.update_time } : {}),
});

/**
 * One page of a listing, with `total` (all matches, when asked for) and `next`: the cursor of the
 * page's last row when more rows follow (one more row than the page is read to know).
 */
async function listPage(db: D1Database, channel: string, q: Query, subtopic: string | undefined) {
  const dir = q.order === 'asc' ? 'ASC' : 'DESC';
  const senml = q.format === 'senml';
  const mw = senml ? undefined : messageWhere(channel, q, subtopic);
  const w = mw ?? senmlWhere(channel, q, subtopic);
  const [columns, orderBy] = mw ? [`${MESSAGE_COLUMNS} FROM ${w.from} JOIN publisher_keys p ON p.key = m.pub`, mw.orderBy(dir)] : [`${SENML_COLUMNS} FROM ${w.from} JOIN publisher_keys p ON p.key = r.pub`, `r.time ${dir}, r.seq ${dir}, r.idx ${dir}`];
  const after = q.cursor ? w.after(q.cursor) : { sql: '', params: [] };
  const page = db.prepare(`SELECT ${columns} WHERE ${w.sql}${after.sql} ORDER BY ${orderBy} LIMIT ? OFFSET ?`);
  const statements = [page.bind(...w.params, ...after.params, q.limit + 1, q.offset)];
  if (q.total) statements.push(db.prepare(`SELECT COUNT(*) AS n FROM ${w.from} WHERE ${w.sql}`).bind(...w.params));
  const [rows, count] = await db.batch<Record<string, unknown>>(statements);
  const found = rows!.results;
  const more = found.length > q.limit;
  if (more) found.length = q.limit;
  const last = found[found.length - 1];
  const order = q.order;
  const next = !more || !last ? null : senml ? encodeCursor({ kind: 's', order, time: last.time as number, seq: last.seq as number, idx: last.idx as number }) : encodeCursor({ kind: 'm', order, created: last.created as number, seq: last.seq as number });
  const items = senml ? (found as unknown as SenmlRow[]).map((r) => senmlItem(channel, r)) : (found as unknown as MessageRow[]).map((r) => messageItem(channel, r, q.format));
  return { total: count ? Number(count.results[0]?.n ?? 0) : undefined, next, items };
}

/** The request's own URL for the page after `next`: the same filters, the cursor instead of an offset, no credential. */
function nextLink(url: string, next: string): string {
  const u = new URL(url);
  u.searchParams.delete('offset');
  u.searchParams.delete('authorization');
  u.searchParams.set('cursor', next);
  return `<${u.href}>; rel="next"`;
}

const AGG = { min: 'MIN(r.value)', max: 'MAX(r.value)', avg: 'AVG(r.value)', sum: 'SUM(r.value)', count: 'COUNT(*)' } as const;

/**
 * Time buckets of `interval` ms (one bucket for the whole range without it), per SenML name and
 * unit: a name whose records come in two units (a device reporting Cel, then K after an update)
 * gets a bucket per unit, as averaging 20 Cel with 300 K means nothing.
 */
async function aggregate(db: D1Database, channel: string, q: Query, subtopic: string | undefined) {
  const agg = q.aggregation!;
  const dir = q.order === 'asc' ? 'ASC' : 'DESC';
  if (q.format !== 'senml') {
    const w = messageWhere(channel, q, subtopic);
    const bucket = q.interval ? `(m.created / ${q.interval}) * ${q.interval}` : 'MIN(m.created)';
    const group = q.interval ? 'GROUP BY bucket' : '';
    const { results } = await db.prepare(`SELECT ${bucket} AS bucket, COUNT(*) AS value FROM ${w.from} WHERE ${w.sql} ${group} ORDER BY bucket ${dir} LIMIT ? OFFSET ?`).bind(...w.params, q.limit, q.offset).all<{ bucket: number | null; value: number }>();
    return results.filter((r) => r.bucket !== null).map((r) => ({ time: r.bucket, value: r.value, count: r.value }));
  }
  const w = senmlWhere(channel, q, subtopic);
  const valued = agg === 'count' ? '' : ' AND r.value IS NOT NULL';
  const bucket = q.interval ? `CAST(floor(r.time * 1000 / ${q.interval}) AS INTEGER) * ${q.interval}` : 'CAST(MIN(r.time) * 1000 AS INTEGER)';
  const group = q.interval ? 'GROUP BY bucket, r.name, r.unit' : 'GROUP BY r.name, r.unit';
  const { results } = await db
    .prepare(`SELECT ${bucket} AS bucket, r.name AS name, r.unit AS unit, ${AGG[agg]} AS value, COUNT(*) AS n FROM ${w.from} WHERE ${w.sql}${valued} ${group} ORDER BY bucket ${dir}, r.name, r.unit LIMIT ? OFFSET ?`)
    .bind(...w.params, q.limit, q.offset)
    .all<{ bucket: number; name: string; unit: string | null; value: number; n: number }>();
  return results.map((r) => ({ time: r.bucket, name: r.name, ...(r.unit !== null ? { unit: r.unit } : {}), value: r.value, count: r.n }));
}

/** An answer's items in the representation the client asked for: JSON (the default, built by `json`), CSV or JSON lines. */
function answer(c: Context<AppEnv>, items: Record<string, unknown>[], columns: readonly string[], json: () => Response): Response {
  const rep = negotiate(c.req.header('accept'));
  if (rep.kind === 'csv') return c.body(toCsv(items, columns), 200, { 'content-type': 'text/csv; charset=utf-8' });
  if (rep.kind === 'ndjson') return c.body(toNdjson(items), 200, { 'content-type': rep.mediaType });
  return json();
}

async function query(c: Context<AppEnv>) {
  const channel = c.req.param('id')!;
  const fromPath = c.req.param('subtopic');
  const q = parseQuery(new URL(c.req.url));
  // An empty ?subtopic= is no filter (a form's empty field): beside the path form it says nothing.
  if (fromPath !== undefined && q.subtopic !== undefined && q.subtopic !== '') throw new ApiError(400, 'validation_failed', 'give the subtopic in the path or in ?subtopic=, not both');
  await authorizeChannel(c, channel, 'messages:read');
  const subtopic = fromPath ?? q.subtopic;
  // JSON, CSV or JSON lines by Accept: a cache keeps them apart (RFC 9110 §12.5.5).
  c.header('vary', 'Accept', { append: true });
  if (q.aggregation) {
    const items = await aggregate(c.env.DB, channel, q, subtopic);
    return answer(c, items, CSV_COLUMNS.aggregation, () => c.json({ aggregation: q.aggregation, interval: q.interval ?? null, offset: q.offset, limit: q.limit, items }));
  }
  const { total, next, items } = await listPage(c.env.DB, channel, q, subtopic);
  if (next) c.header('link', nextLink(c.req.url, next));
  return answer(c, items as Record<string, unknown>[], q.format === 'senml' ? CSV_COLUMNS.senml : CSV_COLUMNS.messages, () => c.json({ ...(total !== undefined ? { total } : {}), offset: q.offset, limit: q.limit, next, items }));
}

/**
 * The stored payload of one message, as published (R2 for binary/large, D1 for text), with the
 * range and conditional requests a download needs (RFC 9110 §13, §14: workers/lib/ranges.ts). A
 * stored message never changes, so its seq and `created` are a strong entity tag, and a 304, 412
 * or 416 is decided from its D1 row without reading an R2 blob; a range of a blob is an R2 range read.
 */
async function payload(c: Context<AppEnv>) {
  const channel = c.req.param('id')!;
  // Digits only: Number() read 1e3 as 1000 and 0x10 as 16 (a seq nobody wrote).
  const text = c.req.param('seq')!;
  const seq = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(seq) || seq < 1) throw new ApiError(400, 'validation_failed', 'seq must be a positive integer written in decimal digits');
  await authorizeChannel(c, channel, 'messages:read');
  const row = await c.env.DB.prepare(`SELECT content_type, created, size, payload, blob_key FROM message_rows WHERE ch = ${CHANNEL_KEY} AND seq = ?`)
    .bind(channel, seq)
    .first<{ content_type: string; created: number; size: number; payload: string | null; blob_key: string | null }>();
  if (!row) throw notFound('message');
  const rep: Representation = { etag: `"${seq}-${row.created}"`, lastModified: row.created, size: row.size };
  // private: a payload is never for a shared cache; no-cache: a copy is revalidated (a cheap 304) so a revoked credential or an expired message stops being served;
  // no-transform: the bytes as stored — an edge gzipping a text payload would make Content-Range count other bytes than the strong ETag names (RFC 9110 §8.8.3, §14.4; RFC 9111 §5.2.2.6).
  const validators = { ...validatorHeaders(rep), 'accept-ranges': 'bytes', 'cache-control': 'private, no-cache, no-transform' };
  const answer = evaluate(c.req.raw.headers, rep, c.req.method);
  if (answer.status === 304) return c.body(null, 304, validators);
  if (answer.status === 412) throw new ApiError(412, 'precondition_failed', `the payload's current entity tag is ${rep.etag}`, undefined, validators);
  if (answer.status === 416) throw new ApiError(416, 'range_not_satisfiable', `the payload is ${rep.size} bytes; a range must start before its end`, undefined, { ...validators, 'content-range': `bytes */${rep.size}` });
  const range = answer.status === 206 ? answer.range : undefined;
  const headers: Record<string, string> = {
    'content-type': row.content_type,
    ...UNTRUSTED,
    'content-disposition': `attachment; filename="${channel.replace(/[^\w.-]/g, '_')}-${seq}"`,
    ...validators,
    'content-length': String(range ? range.end - range.start + 1 : rep.size),
    ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${rep.size}` } : {}),
  };
  const status = range ? 206 : 200;
  if (row.payload !== null) {
    const bytes = utf8Bytes(row.payload) as Uint8Array<ArrayBuffer>;
    return c.body(range ? bytes.subarray(range.start, range.end + 1) : bytes, status, headers);
  }
  // HEAD reads no bytes: R2's head says whether the blob is still there.
  if (c.req.method === 'HEAD') {
    if (!(await c.env.BLOBS.head(row.blob_key!))) throw notFound('payload');
    return c.body(null, status, headers);
  }
  const obj = await c.env.BLOBS.get(row.blob_key!, range ? { range: { offset: range.start, length: range.end - range.start + 1 } } : {});
  if (!obj) throw notFound('payload');
  return c.body(obj.body, status, headers);
}

/**
 * A payload is whatever a device published, with the content type it chose (text/html, SVG…), on
 * the console's origin: a link to it (`?authorization=` works on every route) must never run as a
 * page there — it would read the console's session. Saved, not shown; never sniffed; and if a
 * browser shows it anyway, in a sandbox with nothing allowed.
 */
const UNTRUSTED = { 'x-content-type-options': 'nosniff', 'content-security-policy': "sandbox; default-src 'none'" };

queryRouter.get('/channels/:id/messages', authenticate(), query);
queryRouter.get('/channels/:id/messages/:subtopic{.+}', authenticate(), query);
queryRouter.get('/channels/:id/payloads/:seq', authenticate(), payload);
