import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, newUser, worker } from './helpers';

// The web console is console/dist served as Workers static assets (wrangler.toml [assets], built by
// vitest.config.ts). Here the asset service is reached through its binding: the test harness calls the
// worker itself, not the asset router in front of it. Which paths reach which (run_worker_first) is tested
// against wrangler dev in test/node/console.test.ts.
const navigate = (path: string) => env.ASSETS.fetch(`http://edgeflux.test${path}`, { headers: { 'sec-fetch-mode': 'navigate', accept: 'text/html' } });

describe('web console assets', () => {
  it('serves the single-page app at / and at console routes', async () => {
    for (const path of ['/', '/login', '/o/some-org/devices', '/o/some-org/channels/ch-1/history']) {
      const res = await navigate(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toMatch(/^text\/html/);
      const html = await res.text();
      expect(html, path).toContain('<div id="app">');
      expect(html, path).toContain('/assets/main.js');
    }
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
    const health = await worker.fetch('http://edgeflux.test/health');
    expect(health.headers.get('content-type')).toMatch(/json/);
    expect(health.status).toBe(200);
    const orgs = await worker.fetch('http://edgeflux.test/orgs');
    expect(orgs.status).toBe(401);
    expect(orgs.headers.get('content-type')).toMatch(/problem\+json/);
    const doc = await worker.fetch('http://edgeflux.test/openapi.json');
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
    const res = await worker.fetch('http://edgeflux.test/no-such-thing', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/problem\+json/);
  });
});
