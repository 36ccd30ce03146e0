import { z } from '@hono/zod-openapi';
import { QuerySchema } from './params';

/** The query parameters of `GET /channels/{id}/messages[/{subtopic}]` (without Upgrade), as OpenAPI parameters. */
const DESCRIPTIONS: Record<string, string> = {
  offset: 'Items to skip (not with `cursor`)',
  limit: 'Page size (max 1000)',
  format: '`messages` (envelopes), `senml` (resolved SenML records) or `json` (application/json documents, parsed)',
  order: '`desc` (newest first, the default) or `asc`',
  subtopic: 'Subtopic filter: exact, `a/#`, or `+` segments (instead of the path form)',
  publisher: 'Publisher id',
  protocol: 'http, ws, mqtt or coap',
  from: 'Earliest time, ms since epoch or ISO-8601 (messages: `created`; senml: the record time)',
  to: 'Latest time, ms since epoch or ISO-8601',
  name: 'SenML record name (bn + n)',
  v: 'SenML numeric value, compared with `comparator`',
  comparator: 'eq (default), lt, le, gt, ge',
  vs: 'SenML string value',
  vb: 'SenML boolean value',
  vd: 'SenML data value (base64url)',
  aggregation: 'min, max, avg, sum (format=senml) or count, per time bucket, name and unit',
  interval: 'Bucket width: 500ms, 10s, 5m, 1h, 1d or plain ms; without it one bucket for the whole range',
  cursor: "The page after an earlier one: that page's `next`, as given (listings, same format and order; not with `offset`)",
  total: '`true` (default): count every match into `total`; `false`: leave it out, which keeps pages of big channels cheap',
};

export const queryParameters = Object.keys(QuerySchema.def.type === 'object' ? QuerySchema.shape : {}).map((name) => ({
  name,
  in: 'query' as const,
  required: false,
  schema: { type: 'string' as const },
  description: DESCRIPTIONS[name] ?? name,
}));

/** One stored message (format=messages or json): the envelope in its WebSocket JSON form (shared/envelope.ts). */
const StoredMessage = z
  .object({
    channel: z.string(),
    subtopic: z.string(),
    publisher: z.string(),
    protocol: z.string().openapi({ description: 'http, ws, mqtt or coap' }),
    contentType: z.string(),
    created: z.number().int().openapi({ description: 'ms since epoch, set by the channel' }),
    seq: z.number().int(),
    payload: z.unknown().optional().openapi({ description: 'Text payloads as is, others base64 (`encoding`); format=json: the parsed JSON document. Absent when stored in R2 (`payloadUrl`)' }),
    encoding: z.enum(['base64']).optional(),
    size: z.number().int().optional().openapi({ description: 'With payloadUrl: the payload size in bytes' }),
    payloadUrl: z.string().optional().openapi({ description: 'Where to download a payload stored in R2 (GET /channels/{id}/payloads/{seq})' }),
    retain: z.boolean().optional().openapi({ description: 'true when it was published with retain' }),
  })
  .openapi('StoredMessage');

/** One resolved SenML record (format=senml). */
const StoredRecord = z
  .object({
    channel: z.string(),
    seq: z.number().int().openapi({ description: 'The seq of the message the record came in' }),
    subtopic: z.string(),
    publisher: z.string(),
    name: z.string().openapi({ description: 'Resolved name (bn + n)' }),
    time: z.number().openapi({ description: 'Resolved time, seconds since epoch (SenML)' }),
    unit: z.string().optional(),
    value: z.number().optional(),
    stringValue: z.string().optional(),
    boolValue: z.boolean().optional(),
    dataValue: z.string().optional(),
    sum: z.number().optional(),
    updateTime: z.number().optional(),
  })
  .openapi('StoredRecord');

/** One aggregation bucket. */
const AggregateBucket = z
  .object({
    time: z.number().int().openapi({ description: 'Bucket start, ms since epoch' }),
    name: z.string().optional().openapi({ description: 'The SenML name (format=senml); absent when counting messages' }),
    unit: z.string().optional().openapi({ description: 'The SenML unit (format=senml): a name is aggregated per unit; absent for records without one and when counting messages' }),
    value: z.number().openapi({ description: 'The aggregate' }),
    count: z.number().int().openapi({ description: 'How many values (or messages) the bucket holds' }),
  })
  .openapi('AggregateBucket');

export const QueryResult = z
  .object({
    total: z.number().int().optional().openapi({ description: 'Every match of the filters (listings; left out with total=false)' }),
    aggregation: z.enum(['min', 'max', 'avg', 'sum', 'count']).optional().openapi({ description: 'Aggregations: the one asked for' }),
    interval: z.number().int().nullable().optional().openapi({ description: 'Aggregations: the bucket width in ms, null for one bucket over the whole range' }),
    offset: z.number().int(),
    limit: z.number().int(),
    next: z.string().nullable().optional().openapi({ description: 'Listings: the cursor of the next page, null on the last (also in the Link header, rel="next")' }),
    items: z.array(z.union([StoredMessage, StoredRecord, AggregateBucket])).openapi({ description: 'Messages (format=messages, json), SenML records (format=senml) or, with `aggregation`, buckets' }),
  })
  .openapi('MessageQueryResult');
