import { describe, expect, it } from 'vitest';
import committed from '../../docs/openapi.json';
import { api, expectProblem } from './helpers';

describe('OpenAPI document', () => {
  it('docs/openapi.json is what the code serves (run `npm run docs:openapi` after changing a route)', async () => {
    const live = await api('GET', '/openapi.json');
    expect(live.status).toBe(200);
    expect(live.body).toEqual(committed);
  });

  it('describes every operation with a summary, a tag and its answers', async () => {
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, { summary?: string; tags?: string[]; responses?: object }>> };
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (!op.summary || !op.tags?.length || !op.responses || Object.keys(op.responses).length === 0) missing.push(`${method} ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('serves a browsable reference page at /docs', async () => {
    const page = await api('GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(String(page.body)).toContain('/openapi.json');
  });

  it('answers a known path under a method it lacks with 405 and Allow (RFC 9110 §15.5.6), an unknown path with 404', async () => {
    const ch = crypto.randomUUID();
    for (const [method, path, allow] of [
      ['PUT', `/channels/${ch}/messages/j`, 'GET, HEAD, POST'],
      ['DELETE', `/channels/${ch}/messages`, 'GET, HEAD, POST'],
      ['POST', `/channels/${ch}/payloads/3`, 'GET, HEAD'],
      ['PATCH', '/health', 'GET, HEAD'],
    ] as const) {
      const r = await api(method, path);
      expect(expectProblem(r, 405).code, `${method} ${path}`).toBe('method_not_allowed');
      expect(r.headers.get('allow'), `${method} ${path}`).toBe(allow);
    }
    expect(expectProblem(await api('GET', '/nowhere/at/all'), 404).detail).toBe('no such route');
    expect(expectProblem(await api('PUT', '/channels'), 404).code).toBe('not_found');
  });
});
