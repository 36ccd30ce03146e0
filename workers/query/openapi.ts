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
  aggregation: 'min, max, avg, sum (format=senml) or count, per time bucket and name',
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

export const QueryResult = z
  .object({
    total: z.number().int().optional().openapi({ description: 'Every match of the filters (listings; left out with total=false)' }),
    offset: z.number().int(),
    limit: z.number().int(),
    next: z.string().nullable().optional().openapi({ description: 'Listings: the cursor of the next page, null on the last (also in the Link header, rel="next")' }),
    items: z.array(z.record(z.string(), z.unknown())),
  })
  .openapi('MessageQueryResult');
