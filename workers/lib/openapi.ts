import { z, type RouteConfig } from '@hono/zod-openapi';
import { wholeNumber } from './params';

/** Shared OpenAPI/zod building blocks so every feature describes requests and errors the same way. */

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string(),
    errors: z.unknown().optional(),
  })
  .openapi('Problem');

const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: ProblemSchema } } });

/** Headers an error answer carries by its status (./errors `problem()`, the rate limits). */
const errorHeaders: Record<number, Record<string, { description: string; required?: boolean; schema: { type: 'string' } }>> = {
  // RFC 9110 §11.6.1: every 401 names the schemes a caller may answer with.
  401: { 'WWW-Authenticate': { description: 'The schemes to authenticate with: `Bearer realm="edgeflux", Device realm="edgeflux"`', required: true, schema: { type: 'string' } } },
  // RFC 6585 §4, RFC 9110 §10.2.3: seconds to wait before trying again.
  429: { 'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'string' } } },
  // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
  426: { Upgrade: { description: '`websocket`', required: true, schema: { type: 'string' } } },
};

/** The error answers a route can give, by status. */
export function errors(...statuses: number[]): NonNullable<RouteConfig['responses']> {
  const text: Record<number, string> = {
    400: 'Malformed request',
    401: 'Missing or invalid credentials',
    403: 'Not permitted',
    404: 'Not found (or not visible to the caller)',
    409: 'Conflict',
    413: 'Payload too large',
    415: 'Unsupported media type',
    422: 'Body failed validation',
    426: 'Not a WebSocket upgrade (the route is only a WebSocket)',
    429: 'Rate limited',
  };
  return Object.fromEntries(statuses.map((s) => [String(s), { ...problem(text[s] ?? 'Error'), ...(errorHeaders[s] ? { headers: errorHeaders[s] } : {}) }]));
}

export const jsonBody = <T extends z.ZodType>(schema: T, description?: string) => ({
  body: { required: true, description, content: { 'application/json': { schema } } },
});

export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** A 201 that names what it created in Location (`created`). */
export const createdResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  ...jsonResponse(schema, description),
  headers: z.object({ Location: z.string().openapi({ description: 'Path of what was created (RFC 9110 §10.2.2)', example: '/orgs/o-1/devices/d-1' }) }),
});

export const MAX_LIMIT = 100;
export const PageQuery = z.strictObject({
  offset: wholeNumber('offset', 0, 1_000_000_000).default(0).openapi({ description: 'Items to skip' }),
  limit: wholeNumber('limit', 1, MAX_LIMIT).default(20).openapi({ description: `Page size (max ${MAX_LIMIT})` }),
  // Read by authenticate() (workers/auth/credentials.ts), as on every route; declared so the strict list refuses only what no route takes.
  authorization: z.string().optional().openapi({ description: "The Authorization header's value, for clients that cannot set headers; the header wins over it" }),
});

const order = z.enum(['asc', 'desc']).default('asc').openapi({ description: 'Direction of `sort`' });

/** Listing apps and API keys: paging, a name filter (./entities `substring`) and a sort (./entities `orderBy`). */
export const NameQuery = PageQuery.extend({
  name: z.string().max(200).optional().openapi({ description: 'Case-insensitive substring of the name (`%` and `_` match themselves)' }),
  sort: z.enum(['created', 'name']).default('created').openapi({ description: 'created (creation order, the default) or name (case-insensitive); ties in creation order' }),
  order,
});

/** Listing channels (./entities filters them): the name filter, and metadata containment. */
export const ListQuery = NameQuery.extend({
  metadata: z.string().max(4096).optional().openapi({ description: 'JSON object contained in the metadata, e.g. {"room":"lab"}' }),
});

/** Listing devices: as channels, and by when a device last connected or disconnected (never: first in `asc`, last in `desc`). */
export const DeviceListQuery = ListQuery.extend({
  sort: z.enum(['created', 'name', 'last_seen']).default('created').openapi({ description: 'created (the default), name (case-insensitive) or last_seen (never-seen devices first in asc, last in desc); ties in creation order' }),
});

export const pageOf = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ total: z.number().int(), offset: z.number().int(), limit: z.number().int(), items: z.array(item) }).openapi(name);

export const Metadata = z.record(z.string(), z.unknown()).openapi({ description: 'Free-form JSON object', example: { room: 'lab' } });

// Bounds on stored metadata (devices and channels). D1 refuses values over 2 MB in production (a 500),
// and SQLite's JSON functions refuse documents nested deeper than 1000 levels, which would make every
// metadata-filtered listing of the org fail; so both are refused at the edge, with room to spare.
export const MAX_METADATA_BYTES = 32 * 1024;
export const MAX_METADATA_DEPTH = 32;

/** Iterative (a hostile body may nest far deeper than the stack allows) and stops at the first level too deep. */
function withinDepth(root: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[root, 1]];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [v, depth] = top;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return false;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}

/** Metadata as accepted on create/update of devices and channels. */
export const MetadataInput = Metadata.refine((m) => withinDepth(m, MAX_METADATA_DEPTH), `metadata may nest at most ${MAX_METADATA_DEPTH} levels`)
  .refine((m) => new TextEncoder().encode(JSON.stringify(m)).length <= MAX_METADATA_BYTES, `metadata may be at most ${MAX_METADATA_BYTES} bytes of JSON`)
  .openapi({ description: `Free-form JSON object (at most ${MAX_METADATA_BYTES} bytes, ${MAX_METADATA_DEPTH} levels deep)` });

/** Most items one bulk create takes. */
export const MAX_BULK = 100;

export const Name = z.string().trim().min(1).max(200);

type Security = Array<Record<string, string[]>>;
export const SECURED: Security = [{ bearer: [] }, { device: [] }];
export const USER_ONLY: Security = [{ bearer: [] }];

/** RFC 9110 §10.2.2: a 201 names what it created (path segments are percent-encoded). */
export function created<T>(c: { header: (name: string, value: string) => void }, body: T, ...segments: string[]): T {
  c.header('Location', `/${segments.map(encodeURIComponent).join('/')}`);
  return body;
}
