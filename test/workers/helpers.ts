import { exports } from 'cloudflare:workers';
import { contractViolations } from './contract';

/** Calls the real worker (same workerd, real D1) the way an HTTP client would. */
export const worker = (exports as unknown as { default: Fetcher }).default;

export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/**
 * Checks every answer of `api()` goes through; each returns what is wrong. The first holds every
 * answer to docs/openapi.json, the document clients are generated from (./contract).
 */
export const answerChecks: ((method: string, url: string, res: Response, body: unknown, text: string) => string[])[] = [contractViolations];

/** Runs every check of answerChecks on one answer, throwing what they find; returns the body, parsed when it is JSON. */
function holdToContract(method: string, url: string, res: Response, text: string): unknown {
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  const broken = answerChecks.flatMap((check) => check(method, url, res, parsed, text));
  if (broken.length > 0) throw new Error(`answer disagrees with docs/openapi.json:\n  ${broken.join('\n  ')}`);
  return parsed;
}

/**
 * `worker.fetch`, with the answer held to docs/openapi.json as `api()`'s are: for a test that needs
 * the Response itself (its bytes, a CSV or JSON-lines stream, an SDK's fetch). The body is read from
 * a clone, so the caller reads it as usual. A WebSocket upgrade's answer (101) has no body: its
 * status and headers are checked; what then travels on the socket is no HTTP answer the document
 * describes (docs/channel-actor.md says what does). Non-JSON bodies (CSV, JSON lines, payload bytes)
 * are checked for status, content type and the headers declared for them, not their contents.
 */
export async function checkedFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const req = new Request(input, init);
  const res = await worker.fetch(req);
  // As bytes: workerd warns about .text() on a type it does not know as text (JSON lines).
  const text = res.status === 101 || res.webSocket ? '' : new TextDecoder().decode(await res.clone().arrayBuffer());
  holdToContract(req.method, req.url, res, text);
  return res;
}

export async function api<T = any>(
  method: string,
  path: string,
  opts: { token?: string; device?: string; body?: unknown; raw?: BodyInit; headers?: Record<string, string> } = {},
): Promise<Res<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.device) headers.authorization = `Device ${opts.device}`;
  let body: BodyInit | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await worker.fetch(`http://edgeflux.test${path}`, { method, headers, body });
  const text = await res.text();
  const parsed = holdToContract(method, `http://edgeflux.test${path}`, res, text);
  return { status: res.status, body: parsed as T, headers: res.headers };
}

let n = 0;
export const uniqueEmail = (tag = 'u') => `${tag}-${Date.now().toString(36)}-${++n}@example.com`;

export async function newUser(tag = 'u'): Promise<{ id: string; email: string; password: string; token: string; refresh: string }> {
  const email = uniqueEmail(tag);
  const password = 'correct horse battery';
  const reg = await api('POST', '/users', { body: { email, password } });
  if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
  const tok = await api('POST', '/tokens', { body: { email, password } });
  return { id: reg.body.id, email, password, token: tok.body.access_token, refresh: tok.body.refresh_token };
}

export async function newOrg(token: string, name = 'acme'): Promise<{ id: string; name: string }> {
  const r = await api('POST', '/orgs', { token, body: { name } });
  if (r.status !== 201) throw new Error(`org failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Asserts the RFC 9457 problem shape and returns the body. */
export function expectProblem(r: Res, status: number): { code: string; detail: string; errors?: unknown } {
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
  const ct = r.headers.get('content-type') ?? '';
  if (!ct.includes('application/problem+json')) throw new Error(`expected problem+json, got ${ct}`);
  const b = r.body as { type?: unknown; title?: unknown; status?: unknown; detail?: unknown; code?: unknown };
  if (typeof b.type !== 'string' || typeof b.title !== 'string' || b.status !== status || typeof b.detail !== 'string' || typeof b.code !== 'string') {
    throw new Error(`not a problem document: ${JSON.stringify(b)}`);
  }
  return r.body;
}
