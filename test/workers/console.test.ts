import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, newUser, checkedFetch } from './helpers';

// The web console is console/dist served as Workers static assets (wrangler.toml [assets], built by
// vitest.config.ts). Here the asset service is reached through its binding: the test harness calls the
// worker itself, not the asset router in front of it. Which paths reach which (run_worker_first) is tested
// against wrangler dev in test/node/console.test.ts.
// A path with no file reaches the worker (not_found_handling = "none"), which answers a navigation with the app.
// The worker's answers are held to docs/openapi.json (checkedFetch: the console's page is one it may give);
// the asset service's are files, which the document does not describe.
const navigate = (path: string) => (path === '/' ? env.ASSETS.fetch.bind(env.ASSETS) : checkedFetch)(`http://edgeflux.test${path}`, { headers: { 'sec-fetch-mode': 'navigate', accept: 'text/html' } });

describe('web console assets', () => {
  it('serves the single-page app at / and at console routes', async () => {
    for (const path of ['/', '/login', '/o/some-org/devices', '/o/some-org/channels/ch-1/history']) {
      const res = await navigate(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toMatch(/^text\/html/);
      const html = await res.text();
      expect(html, path).toContain('<div id="app">');
      expect(html, path).toContain('/assets/main.js');
      // The app relayed by the worker keeps the assets' own Vary and adds Origin (its CORS headers depend on it).
      if (path !== '/') {
        const vary = (res.headers.get('vary') ?? '').split(',').map((v) => v.trim().toLowerCase());
        const fromAssets = ((await env.ASSETS.fetch('http://edgeflux.test/')).headers.get('vary') ?? '').split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);
        expect(vary, path).toEqual(expect.arrayContaining(['origin', ...fromAssets]));
      }
    }
  });

  it('refuses to be framed by another site (clickjacking) and is never sniffed: the app at / and at console routes, and its files', async () => {
    const answers = [...(await Promise.all(['/', '/login', '/o/some-org/devices'].map(navigate))), await env.ASSETS.fetch('http://edgeflux.test/assets/main.js')];
    for (const res of answers) {
      expect(res.status, res.url).toBe(200);
      expect(res.headers.get('content-security-policy'), res.url).toBe("frame-ancestors 'none'");
      expect(res.headers.get('x-frame-options'), res.url).toBe('DENY');
      expect(res.headers.get('x-content-type-options'), res.url).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), res.url).toBe('no-referrer');
      await res.body?.cancel();
    }
    // The API reference page (HTML, the worker's) refuses frames too.
    const docs = await checkedFetch('http://edgeflux.test/docs');
    expect(docs.status).toBe(200);
    expect([docs.headers.get('content-security-policy'), docs.headers.get('x-frame-options')]).toEqual(["frame-ancestors 'none'", 'DENY']);
    await docs.body?.cancel();
  });

  it('serves the bundle and the stylesheet', async () => {
    const js = await env.ASSETS.fetch('http://edgeflux.test/assets/main.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect((await js.text()).length).toBeGreaterThan(1000);
    const css = await env.ASSETS.fetch('http://edgeflux.test/assets/main.css');
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('keeps the API answering JSON', async () => {
    const health = await checkedFetch('http://edgeflux.test/health');
    expect(health.headers.get('content-type')).toMatch(/json/);
    expect(health.status).toBe(200);
    const orgs = await checkedFetch('http://edgeflux.test/orgs');
    expect(orgs.status).toBe(401);
    expect(orgs.headers.get('content-type')).toMatch(/problem\+json/);
    const doc = await checkedFetch('http://edgeflux.test/openapi.json');
    expect(((await doc.json()) as { openapi: string }).openapi).toBe('3.1.0');

    const u = await newUser('console');
    const org = await api('POST', '/orgs', { token: u.token, body: { name: 'c' } });
    expect(org.status).toBe(201);
    expect(org.headers.get('content-type')).toMatch(/json/);
    const ch = await api('POST', `/orgs/${org.body.id}/channels`, { token: u.token, body: { name: 'c' } });
    const msgs = await api('GET', `/channels/${ch.body.id}/messages`, { token: u.token });
    expect(msgs.status).toBe(200);
    expect(msgs.body).toMatchObject({ total: 0, items: [] });
  });

  it('answers unknown non-navigation requests from the worker as problem JSON', async () => {
    // curl's */*, fetch() from a page (cors mode), a JSON client, a missing script: none of them gets the app.
    const variants: Record<string, string>[] = [{ accept: '*/*' }, { accept: 'application/json' }, { 'sec-fetch-mode': 'cors', accept: 'text/html' }, { 'sec-fetch-mode': 'no-cors', accept: '*/*' }];
    for (const headers of variants) {
      for (const path of ['/no-such-thing', '/assets/no-such-chunk.js', '/o/org-1']) {
        const res = await checkedFetch(`http://edgeflux.test${path}`, { headers });
        expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(404);
        expect(res.headers.get('content-type')).toMatch(/problem\+json/);
      }
    }
    // A browser without Fetch Metadata that asks for HTML still gets the app.
    const old = await checkedFetch('http://edgeflux.test/login', { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(old.status).toBe(200);
    expect(await old.text()).toContain('<div id="app">');
  });

  it('a reload of a console route revalidates (304), and API paths never get the app, navigated to or not', async () => {
    const first = await navigate('/login');
    const etag = first.headers.get('etag');
    expect(etag).toBeTruthy();
    await first.body?.cancel();
    const again = await checkedFetch('http://edgeflux.test/o/org-1/devices', { headers: { 'sec-fetch-mode': 'navigate', accept: 'text/html', 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    for (const path of ['/orgs/', '/channels/x/nope/', '/tokens/nope', '/docs/nope']) {
      const res = await checkedFetch(`http://edgeflux.test${path}`, { headers: { 'sec-fetch-mode': 'navigate', accept: 'text/html' } });
      expect(res.headers.get('content-type'), path).toMatch(/problem\+json/);
      expect([401, 404], path).toContain(res.status); // /orgs/* asks for a credential first
    }
  });

  it('a trailing slash is a 404 naming the route, not a 405 that contradicts itself', async () => {
    const u = await newUser('slash');
    for (const [method, path, route] of [
      ['GET', '/orgs/', '/orgs'],
      ['POST', '/channels/c-1/messages/', '/channels/c-1/messages'],
    ] as const) {
      const res = await api(method, path, { token: u.token });
      expect(res.status, path).toBe(404);
      expect(res.headers.get('allow')).toBeNull();
      expect(res.body.detail).toContain(`the route is ${route}`);
    }
  });
});
