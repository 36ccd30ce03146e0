import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import doc from '../../docs/openapi.json';
import { contractViolations } from './contract';
import { answerChecks, api, checkedFetch, expectProblem, newOrg, newUser } from './helpers';

/**
 * The answers every route can give, checked against docs/openapi.json: `api()` fails a test on any
 * answer the document does not declare (status, content type, schema, headers), so these only need
 * to provoke them.
 */

type Op = { requestBody?: object };
const paths = (doc as unknown as { paths: Record<string, Record<string, Op>> }).paths;

/** Every operation outside the message routes that takes a body: the shared body gate covers them. */
const bodied = Object.entries(paths).flatMap(([path, ops]) =>
  Object.entries(ops)
    .filter(([method, op]) => op.requestBody && method !== 'get' && !path.startsWith('/channels/'))
    .map(([method]) => ({ method: method.toUpperCase(), path })),
);

async function fixture() {
  const owner = await newUser('contract');
  const org = await newOrg(owner.token);
  const other = await newUser('contract-member');
  await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: other.email, role: 'viewer' } });
  const device = (await api('POST', `/orgs/${org.id}/devices`, { token: owner.token, body: { name: 'd' } })).body;
  const channel = (await api('POST', `/orgs/${org.id}/channels`, { token: owner.token, body: { name: 'c' } })).body;
  const app = (await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'a', scopes: ['devices:read'] } })).body;
  const policy = (await api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: 'p', statements: [{ effect: 'deny', actions: ['devices:delete'], resources: ['*'] }] } })).body;
  const fill = (template: string) =>
    template.replace(/\{(\w+)\}/g, (_, name: string) => {
      if (name === 'org') return org.id;
      if (name === 'user') return other.id;
      if (name === 'channel') return channel.id;
      if (name === 'device') return device.id;
      if (template.includes('/devices/{id}')) return device.id;
      if (template.includes('/channels/{id}')) return channel.id;
      if (template.includes('/apps/{id}')) return app.id;
      if (template.includes('/policies/{id}')) return policy.id;
      return 'x';
    });
  return { owner, fill };
}

describe('the answers every route with a body can give are in docs/openapi.json', () => {
  it('covers every such operation', () => {
    expect(bodied.length).toBeGreaterThan(30);
  });

  it('413 for a body larger than any route takes, on each of them', async () => {
    const { owner, fill } = await fixture();
    const huge = JSON.stringify({ name: 'x'.repeat(7 * 1024 * 1024) });
    for (const { method, path } of bodied) {
      const r = await api(method, fill(path), { token: owner.token, raw: huge, headers: { 'content-type': 'application/json' } });
      expect(expectProblem(r, 413).code, `${method} ${path}`).toBe('payload_too_large');
    }
  });

  it('415 with Accept-Encoding for a content coding, on each of them', async () => {
    const { owner, fill } = await fixture();
    for (const { method, path } of bodied) {
      const r = await api(method, fill(path), { token: owner.token, raw: '{}', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
      expect(expectProblem(r, 415).code, `${method} ${path}`).toBe('unsupported_content_encoding');
      expect(r.headers.get('accept-encoding'), `${method} ${path}`).toBe('identity');
    }
  });
});

describe('the headers error answers carry are in docs/openapi.json', () => {
  it('401 with WWW-Authenticate on every operation that takes a credential, asked without one', async () => {
    const { fill } = await fixture();
    const secured = Object.entries(paths).flatMap(([path, ops]) =>
      Object.entries(ops as Record<string, Op & { security?: object[] }>)
        .filter(([, op]) => op.security?.length && !op.security.some((s) => Object.keys(s).length === 0))
        .map(([method, op]) => ({ method: method.toUpperCase(), path, body: op.requestBody ? {} : undefined })),
    );
    expect(secured.length).toBeGreaterThan(50);
    for (const { method, path, body } of secured) {
      const r = await api(method, fill(path).replace('{key}', 'k').replace('{seq}', '1'), { body });
      expect(expectProblem(r, 401).code, `${method} ${path}`).toBe('unauthorized');
      expect(r.headers.get('www-authenticate'), `${method} ${path}`).toMatch(/^Bearer realm="edgeflux", Device realm="edgeflux"$/);
    }
  });

  it('a throttled log-in is 429 with Retry-After, the app token endpoint\'s 401 WWW-Authenticate: Basic', async () => {
    const u = await newUser('contract-throttle');
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await api('POST', '/tokens', { body: { email: u.email, password: 'not the password' } })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 429]);
    const r = await api('POST', '/tokens', { body: { email: u.email, password: 'not the password' } });
    expect(expectProblem(r, 429).code).toBe('login_throttled');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    const basic = await api('POST', '/oauth/token', { raw: new URLSearchParams({ grant_type: 'client_credentials' }), headers: { authorization: `Basic ${btoa('efc_nobody:efs_nothing')}` } });
    expect(basic.status).toBe(401);
    expect(basic.headers.get('www-authenticate')).toMatch(/^Basic /);
  });
});

describe('the query API answers as docs/openapi.json describes it', () => {
  it('messages, SenML records and aggregation buckets, each item and the aggregation\'s own fields', async () => {
    const owner = await newUser('contract-query');
    const org = await newOrg(owner.token);
    const device = (await api('POST', `/orgs/${org.id}/devices`, { token: owner.token, body: { name: 'd' } })).body;
    const channel = (await api('POST', `/orgs/${org.id}/channels`, { token: owner.token, body: { name: 'c' } })).body;
    await api('POST', `/orgs/${org.id}/connections`, { token: owner.token, body: { channel_ids: [channel.id], device_ids: [device.id] } });
    const publish = (raw: BodyInit, type: string, sub = '') =>
      api('POST', `/channels/${channel.id}/messages${sub}`, { device: device.key, raw, headers: { 'content-type': type } });
    expect((await publish('[{"bn":"t/","n":"temp","u":"Cel","v":21.5},{"n":"on","vb":true}]', 'application/senml+json')).status).toBe(202);
    expect((await publish('hello', 'text/plain', '/lab')).status).toBe(202);
    expect((await publish(new Uint8Array([0, 1, 2]), 'application/octet-stream')).status).toBe(202);
    expect((await publish('{"a":1}', 'application/json')).status).toBe(202);
    const q = (query: string) => api('GET', `/channels/${channel.id}/messages?${query}`, { token: owner.token });
    await expect.poll(async () => (await q('')).body.total, { timeout: 10_000 }).toBe(4);
    expect((await q('format=json')).status).toBe(200);
    expect((await q('format=senml')).body.items).toHaveLength(2);
    const counted = await q('aggregation=count&interval=1h');
    expect(counted.body).toMatchObject({ aggregation: 'count', interval: 3_600_000 });
    const avg = await q('format=senml&aggregation=avg');
    expect(avg.body).toMatchObject({ aggregation: 'avg', interval: null, items: [{ name: 't/temp', value: 21.5, count: 1 }] });
  });
});

describe('a payload download answers as docs/openapi.json describes it', () => {
  it('200, 206, 304, 412 and 416 with the headers each carries', async () => {
    const owner = await newUser('contract-payload');
    const org = await newOrg(owner.token);
    const device = (await api('POST', `/orgs/${org.id}/devices`, { token: owner.token, body: { name: 'd' } })).body;
    const channel = (await api('POST', `/orgs/${org.id}/channels`, { token: owner.token, body: { name: 'c' } })).body;
    await api('POST', `/orgs/${org.id}/connections`, { token: owner.token, body: { channel_ids: [channel.id], device_ids: [device.id] } });
    const { seq } = (await api('POST', `/channels/${channel.id}/messages`, { device: device.key, raw: 'hello world', headers: { 'content-type': 'text/plain' } })).body;
    const get = (headers: Record<string, string> = {}) => api('GET', `/channels/${channel.id}/payloads/${seq}`, { token: owner.token, headers });
    await expect.poll(async () => (await get()).status, { timeout: 10_000 }).toBe(200);
    const whole = await get();
    expect(whole.headers.get('content-disposition')).toMatch(/^attachment; filename=/);
    expect((await get({ range: 'bytes=0-4' })).status).toBe(206);
    expect((await get({ 'if-none-match': whole.headers.get('etag')! })).status).toBe(304);
    expect(expectProblem(await get({ 'if-match': '"other"' }), 412).code).toBe('precondition_failed');
    expect(expectProblem(await get({ range: 'bytes=100-200' }), 416).code).toBe('range_not_satisfiable');
  });
});

describe('a WebSocket-only route answers a plain request as docs/openapi.json describes it', () => {
  it('426 problem JSON with Upgrade: websocket, on the bridge\'s link and session sockets', async () => {
    const bridge = { authorization: `Bearer ${env.BRIDGE_SECRET}` };
    for (const path of [`/internal/channels/${crypto.randomUUID()}/link`, `/internal/sessions/${crypto.randomUUID()}`]) {
      const res = await checkedFetch(`http://edgeflux.test${path}`, { headers: bridge });
      expect(res.status, path).toBe(426);
      expect(res.headers.get('upgrade'), path).toBe('websocket');
      expect(((await res.json()) as { code: string }).code, path).toBe('upgrade_required');
    }
  });
});

describe('the contract check itself', () => {
  it('finds an undeclared status, content type, schema mismatch, missing field and undeclared header', () => {
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => [
      'POST',
      'http://edgeflux.test/orgs',
      { status, headers: new Headers({ 'content-type': 'application/json', ...headers }) },
      body,
      JSON.stringify(body),
    ] as const;
    const ok = { id: 'o-1', name: 'acme', created_at: 1 };
    expect(contractViolations(...json(201, ok, { location: '/orgs/o-1' }))).toEqual([]);
    expect(contractViolations(...json(418, ok)).join()).toMatch(/status 418 is not declared/);
    expect(contractViolations('POST', 'http://edgeflux.test/orgs', { status: 201, headers: new Headers({ 'content-type': 'text/plain', location: '/orgs/o-1' }) }, 'x', 'x').join()).toMatch(/content type "text\/plain" is not declared/);
    expect(contractViolations(...json(201, { id: 1, name: 'acme', created_at: 1 }, { location: '/orgs/o-1' })).join()).toMatch(/does not match its schema/);
    expect(contractViolations(...json(201, { ...ok, secret: 'x' }, { location: '/orgs/o-1' })).join()).toMatch(/field \.secret is not in the schema/);
    expect(contractViolations(...json(201, ok, { location: '/orgs/o-1', 'retry-after': '1' })).join()).toMatch(/sends retry-after/);
  });

  it('fails an answer on a path the document has no operation for, but for the router\'s 404/405, a credential asked for first and the console', () => {
    const answer = (method: string, path: string, status: number, type: string, body: unknown, headers: Record<string, string> = {}) =>
      contractViolations(method, `http://edgeflux.test${path}`, { status, headers: new Headers({ 'content-type': type, ...headers }) }, body, typeof body === 'string' ? body : JSON.stringify(body));
    const problem = (status: number, code: string, detail: string) => ({ type: 'about:blank', title: 't', status, code, detail });
    const P = 'application/problem+json';
    // What the worker may answer where the document has no operation.
    expect(answer('GET', '/nowhere/at/all', 404, P, problem(404, 'not_found', 'no such route'))).toEqual([]);
    expect(answer('GET', '/orgs/', 404, P, problem(404, 'not_found', 'no such route: /orgs/ ends with a slash; the route is /orgs'))).toEqual([]);
    expect(answer('PATCH', '/health', 405, P, problem(405, 'method_not_allowed', 'no'), { allow: 'GET, HEAD' })).toEqual([]);
    expect(answer('PUT', '/orgs/o-1/nope', 401, P, problem(401, 'unauthorized', 'no'), { 'www-authenticate': 'Bearer realm="edgeflux"' })).toEqual([]);
    expect(answer('GET', '/login', 200, 'text/html', '<div id="app">')).toEqual([]);
    expect(answer('GET', '/o/org-1/devices', 304, 'text/html', '')).toEqual([]);
    expect(answer('GET', '/docs', 200, 'text/html', '<html>')).toEqual([]);
    expect(answer('OPTIONS', '/orgs', 204, 'text/plain', '')).toEqual([]);
    // What it may not: a route the document lacks, whatever it answers.
    expect(answer('GET', '/orgs/o-1/widgets/w-1', 404, P, problem(404, 'not_found', 'no widget w-1')).join()).toMatch(/no operation in docs\/openapi.json for GET \/orgs\/o-1\/widgets\/w-1/);
    expect(answer('PUT', '/orgs/o-1', 405, P, problem(405, 'method_not_allowed', 'no')).join()).toMatch(/no operation .*the document has GET, PATCH, DELETE \/orgs\/\{org\}\)/);
    expect(answer('GET', '/orgs/o-1/widgets', 200, 'text/html', '<p>')).not.toEqual([]);
    expect(answer('GET', '/metrics', 200, 'text/plain', 'up 1')).not.toEqual([]);
    expect(answer('POST', '/login', 200, 'text/html', '<p>')).not.toEqual([]);
    expect(answer('GET', '/channels/c-1/stats', 401, P, problem(401, 'unauthorized', 'no'), { 'www-authenticate': 'Bearer realm="edgeflux"' })).not.toEqual([]);
    // Nor the router's "no such route" for an operation the document has (the route gone or moved),
    // though the operation declares 404 for its own "no such device".
    expect(answer('GET', '/orgs/o-1/devices/d-1', 404, P, problem(404, 'not_found', 'no such route')).join()).toMatch(/the router answered as if no route served it/);
    expect(answer('GET', '/orgs/o-1/devices/d-1', 404, P, problem(404, 'not_found', 'no device d-1'))).toEqual([]);
  });
});

describe('checkedFetch', () => {
  it('holds the answer to the checks as api() does, and leaves its body to the caller', async () => {
    const seen: [string, string, number, string][] = [];
    const record = (method: string, url: string, res: Response, _body: unknown, text: string) => (seen.push([method, new URL(url).pathname, res.status, text]), []);
    const refuse = (_m: string, url: string) => (new URL(url).pathname === '/version' ? ['refused by the test'] : []);
    answerChecks.push(record, refuse);
    try {
      const res = await checkedFetch(new Request('http://edgeflux.test/health', { method: 'HEAD' }));
      expect(res.status).toBe(200);
      const health = await checkedFetch('http://edgeflux.test/health');
      expect(await health.json()).toMatchObject({ status: 'ok' });
      expect(seen).toEqual([
        ['HEAD', '/health', 200, ''],
        ['GET', '/health', 200, expect.stringContaining('"status":"ok"')],
      ]);
      await expect(checkedFetch('http://edgeflux.test/version')).rejects.toThrow(/disagrees with docs\/openapi.json:\n {2}refused by the test/);
    } finally {
      answerChecks.splice(answerChecks.indexOf(record), 2);
    }
    await expect(checkedFetch('http://edgeflux.test/version')).resolves.toMatchObject({ status: 200 });
  });
});
