import { describe, expect, it } from 'vitest';
import { api, newUser, checkedFetch } from './helpers';

// A page on another origin (a dashboard on localhost:5173, say) calling the API from a browser.
const ORIGIN = 'http://localhost:5173';

describe('CORS', () => {
  it('answers a preflight without a credential, for API and message routes', async () => {
    for (const [path, method, headers] of [
      ['/orgs', 'POST', 'authorization, content-type'],
      ['/channels/c-1/messages/lab', 'POST', 'authorization, content-type'],
      ['/orgs/o-1/devices/d-1', 'DELETE', 'authorization'],
    ] as const) {
      const res = await checkedFetch(`http://edgeflux.test${path}`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': method, 'access-control-request-headers': headers } });
      expect(res.status, path).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-methods')).toContain(method);
      expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  it('lets a page download a payload in ranges: Range and If-Range allowed, Content-Range readable', async () => {
    const pre = await checkedFetch('http://edgeflux.test/channels/c-1/payloads/1', { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, range, if-range' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toMatch(/(^|, *)range(,|$)/);
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('if-range');
    const res = await checkedFetch('http://edgeflux.test/channels/c-1/payloads/1', { headers: { origin: ORIGIN } });
    expect(res.headers.get('access-control-expose-headers')?.toLowerCase()).toContain('content-range');
  });

  it('lets the page read answers, errors included, and the paging Link header', async () => {
    const u = await newUser('cors');
    const ok = await api('POST', '/orgs', { token: u.token, body: { name: 'cors' }, headers: { origin: ORIGIN } });
    expect(ok.status).toBe(201);
    expect(ok.headers.get('access-control-allow-origin')).toBe('*');
    // A refusal must be readable too, or the page sees only "network error".
    const refused = await checkedFetch('http://edgeflux.test/orgs', { headers: { origin: ORIGIN } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    expect(refused.headers.get('access-control-expose-headers')?.toLowerCase()).toContain('link');
  });

  it('adds nothing to a request without an Origin (curl, the SDK in Node)', async () => {
    const res = await checkedFetch('http://edgeflux.test/health');
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    // … except Vary: the answer to a browser differs, so a shared cache must keep them apart.
    expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    const fromBrowser = await checkedFetch('http://edgeflux.test/health', { headers: { origin: ORIGIN } });
    expect(fromBrowser.headers.get('vary')).toMatch(/\bOrigin\b/);
    expect(fromBrowser.headers.get('vary')?.match(/origin/gi)).toHaveLength(1);
    // Answers relayed from elsewhere (the OpenAPI document, an actor's answer) carry it too.
    expect((await checkedFetch('http://edgeflux.test/openapi.json')).headers.get('vary')).toMatch(/\bOrigin\b/);
  });

  it('is not offered on the bridge\'s internal routes', async () => {
    const res = await checkedFetch('http://edgeflux.test/internal/authorize', { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
