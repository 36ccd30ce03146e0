import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import doc from '../../docs/openapi.json';

/**
 * Checks an answer of the API against docs/openapi.json, the document users generate clients from
 * and validate against: the status is one the operation declares, the content type one declared
 * for that status, a JSON body matches its schema, and the declared Location / Link / Retry-After
 * headers are sent; the headers a client acts on (CONTRACT_HEADERS) are declared where sent. Non-JSON
 * bodies (CSV, JSON lines, payload bytes) are checked for status, content type and headers only.
 * `api()` and `checkedFetch()` (./helpers) run it on every answer, so every workers test checks the
 * contract of whatever it calls (WebSocket frames and the asset service's files are not the document's).
 */

type Media = { schema?: object };
type Header = { required?: boolean; schema?: object };
type Response = { content?: Record<string, Media>; headers?: Record<string, Header> };
type Operation = { operationId: string; responses: Record<string, Response> };
type PathItem = Record<string, Operation>;

const paths = (doc as unknown as { paths: Record<string, PathItem> }).paths;

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema(doc as object, 'openapi.json');

/** Templates, most literal segments first, so /orgs/{org}/devices/bulk wins over /orgs/{org}/devices/{id}. */
const templates = Object.keys(paths)
  .map((template) => {
    const segs = template.split('/');
    const last = segs.length - 1;
    const pattern = segs
      .map((seg, i) => {
        if (!/^\{\w+\}$/.test(seg)) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        // A subtopic is the rest of the path (docs/mqtt.md: `/`-separated segments).
        return seg === '{subtopic}' && i === last ? '.+' : '[^/]+';
      })
      .join('/');
    return { template, re: new RegExp(`^${pattern}$`), literal: segs.filter((s) => !s.startsWith('{')).length };
  })
  .sort((a, b) => b.literal - a.literal);

export function operationFor(method: string, path: string): { template: string; op: Operation } | null {
  const m = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase();
  for (const t of templates) {
    if (!t.re.test(path)) continue;
    const op = paths[t.template]?.[m];
    if (op) return { template: t.template, op };
  }
  return null;
}

const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
const validators = new Map<string, ValidateFunction>();
function validator(ref: string): ValidateFunction {
  let v = validators.get(ref);
  if (!v) {
    v = ajv.compile({ $ref: `openapi.json#/${ref}` });
    validators.set(ref, v);
  }
  return v;
}

const mediaMatches = (declared: string, actual: string) => {
  if (declared === actual || declared === '*/*') return true;
  const [t, s] = declared.split('/');
  return s === '*' && actual.startsWith(`${t}/`);
};

/** Response headers whose meaning a client relies on (lower case). */
const CONTRACT_HEADERS = ['location', 'retry-after', 'etag', 'last-modified', 'link', 'content-range', 'accept-ranges', 'accept-encoding', 'content-disposition', 'www-authenticate'];

/** The first path segments of the document's operations (/orgs, /channels, /internal, …): the API's prefixes. */
const API_PREFIXES = new Set(Object.keys(paths).map((p) => p.split('/')[1]!));

/**
 * What the worker answers besides the document's operations, each with the only answers it may
 * give there. Anything else, and anything else under the API's prefixes, fails the check: a route
 * the document lacks, or a test calling a path no route serves, is said rather than skipped.
 * - /openapi.json and /docs: the document itself and its reference page (any answer).
 * - OPTIONS on any path: a CORS preflight, answered by hono/cors (docs/auth.md), not an operation.
 * - A path no route serves, or a method the path lacks: the router's own 404 ("no such route",
 *   also for a trailing slash) or 405 with Allow, as problem JSON (RFC 9110 §15.5.6).
 * - Under /orgs and /users/me a credential is asked for before the route is looked up: 401 with
 *   WWW-Authenticate, whatever the path.
 * - Outside the API's prefixes: the console's single page (a navigation to /, /login, /o/…; its
 *   assets are served in front of the worker, not by it): 200 text/html, or 304 to a reload.
 */
const OUTSIDE = /^\/(?:openapi\.json|docs)$/;
const AUTHENTICATED_FIRST = /^\/(?:orgs|users\/me)(?:\/|$)/;

/** The router's own answer for a path or method no route serves (problem JSON: 404 "no such route…", 405 with Allow). */
function isRouterMiss(res: { status: number; headers: Headers }, body: unknown): boolean {
  const ct = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const problem = ct === 'application/problem+json' && !!body && typeof body === 'object' ? (body as { code?: unknown; detail?: unknown }) : null;
  if (res.status === 404 && problem?.code === 'not_found' && typeof problem.detail === 'string' && problem.detail.startsWith('no such route')) return true;
  return res.status === 405 && problem?.code === 'method_not_allowed' && res.headers.has('allow');
}

/** Why an answer for which the document has no operation is not one the worker may give there (null: it may). */
function offDocument(method: string, path: string, res: { status: number; headers: Headers }, body: unknown): string | null {
  const ct = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const problem = ct === 'application/problem+json' && !!body && typeof body === 'object' ? (body as { code?: unknown; detail?: unknown }) : null;
  if (isRouterMiss(res, body)) return null;
  if (res.status === 401 && problem && AUTHENTICATED_FIRST.test(path) && res.headers.has('www-authenticate')) return null;
  const first = path.split('/')[1] ?? '';
  if (!API_PREFIXES.has(first) && (method === 'GET' || method === 'HEAD') && ((res.status === 200 && ct === 'text/html') || res.status === 304)) return null;
  const known = templates.filter((t) => t.re.test(path)).map((t) => `${Object.keys(paths[t.template]!).join(', ').toUpperCase()} ${t.template}`);
  return `no operation in docs/openapi.json for ${method} ${path}${known.length ? ` (the document has ${known.join('; ')})` : ''}, and the answer is not the router's 404/405${API_PREFIXES.has(first) ? '' : ' nor the console\'s page'}`;
}

/**
 * What in this answer disagrees with docs/openapi.json (empty: nothing). `body` is the parsed JSON
 * (or the text when it is not JSON); `text` the raw body.
 */
export function contractViolations(method: string, url: string, res: { status: number; headers: Headers }, body: unknown, text: string): string[] {
  const path = new URL(url).pathname;
  if (OUTSIDE.test(path) || method === 'OPTIONS') return [];
  const found = operationFor(method, path);
  const where = `${method} ${path} → ${res.status}`;
  if (!found) {
    const why = offDocument(method, path, res, body);
    return why ? [`${where}: ${why}`] : [];
  }
  const { template, op } = found;
  const id = `${where} (${op.operationId})`;
  // The router's own "no such route" / 405 for an operation the document has: the route is gone or
  // registered under another path or method — not the operation's own 404 ("no such device").
  if (isRouterMiss(res, body)) return [`${id}: the document has this operation, but the router answered as if no route served it`];
  const declared = op.responses[String(res.status)] ?? op.responses[`${String(res.status)[0]}XX`] ?? op.responses.default;
  if (!declared) return [`${id}: status ${res.status} is not declared (declared: ${Object.keys(op.responses).join(', ')})`];
  const key = op.responses[String(res.status)] ? String(res.status) : op.responses[`${String(res.status)[0]}XX`] ? `${String(res.status)[0]}XX` : 'default';
  const out: string[] = [];
  const declaredHeaders = Object.entries(declared.headers ?? {});
  for (const [name, h] of declaredHeaders) if (h.required && !res.headers.has(name)) out.push(`${id}: required header ${name} is missing`);
  // Headers a client acts on: sent, they must be declared (a generated client types only those).
  for (const name of CONTRACT_HEADERS) {
    if (res.headers.has(name) && !declaredHeaders.some(([n]) => n.toLowerCase() === name)) out.push(`${id}: sends ${name} (${res.headers.get(name)}) but does not declare it`);
  }
  const hasBody = text.length > 0 && res.status !== 204 && res.status !== 304 && res.status !== 101 && method !== 'HEAD';
  if (!hasBody) {
    // An answer that promises only JSON and has no body (an empty page of JSON lines is a body of none).
    const declaredTypes = Object.keys(declared.content ?? {});
    if (method !== 'HEAD' && declaredTypes.length > 0 && declaredTypes.every((m) => /(?:^application\/json$|\+json$)/.test(m))) out.push(`${id}: declares a body (${declaredTypes.join(', ')}) but the answer has none`);
    return out;
  }
  const ct = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const media = Object.keys(declared.content ?? {}).find((m) => mediaMatches(m, ct));
  if (!media) {
    out.push(`${id}: content type ${JSON.stringify(ct)} is not declared (declared: ${Object.keys(declared.content ?? {}).join(', ') || 'no body'})`);
    return out;
  }
  const schema = declared.content![media]!.schema;
  if (!schema) return out;
  if (!/(?:^application\/json$|\+json$)/.test(media)) return out;
  const v = validator(pointer('paths', template, method.toLowerCase() === 'head' ? 'get' : method.toLowerCase(), 'responses', key, 'content', media, 'schema'));
  if (!v(body)) {
    out.push(`${id}: body does not match its schema: ${ajv.errorsText(v.errors, { separator: '; ' })} — body ${text.slice(0, 300)}`);
  }
  for (const f of undeclared(schema as Schema, body, '')) out.push(`${id}: field ${f} is not in the schema — body ${text.slice(0, 300)}`);
  return out;
}

type Schema = { $ref?: string; allOf?: Schema[]; anyOf?: Schema[]; oneOf?: Schema[]; type?: string | string[]; properties?: Record<string, Schema>; additionalProperties?: unknown; items?: Schema };
const components = (doc as unknown as { components: { schemas: Record<string, Schema> } }).components.schemas;
const resolve = (s: Schema): Schema => (s.$ref ? resolve(components[s.$ref.replace('#/components/schemas/', '')]!) : s);

/**
 * Fields an answer carries that its schema does not name (where it says nothing of
 * additionalProperties): a generated client's types lack them, a strict validator refuses them.
 */
function undeclared(schema: Schema, value: unknown, at: string): string[] {
  const s = resolve(schema);
  if (s.anyOf || s.oneOf) {
    // The first alternative that names every field, else the first one's findings.
    const alts = (s.anyOf ?? s.oneOf)!.map((alt) => undeclared(alt, value, at));
    return alts.find((a) => a.length === 0) ?? alts[0] ?? [];
  }
  if (Array.isArray(value)) return s.items ? value.flatMap((v, i) => undeclared(s.items!, v, `${at}[${i}]`)) : [];
  if (!value || typeof value !== 'object') return [];
  const flat = (x: Schema): Schema[] => (x.allOf ? x.allOf.flatMap((p) => flat(resolve(p))) : [x]);
  const parts = flat(s);
  const props: Record<string, Schema> = Object.assign({}, ...parts.map((p) => p.properties ?? {}));
  if (parts.every((p) => !p.properties)) return [];
  const open = parts.some((p) => p.additionalProperties !== undefined);
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (props[k]) out.push(...undeclared(props[k], v, `${at}.${k}`));
    else if (!open) out.push(`${at}.${k}`);
  }
  return out;
}
