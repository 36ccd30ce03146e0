import { describe, expect, it } from 'vitest';
import committed from '../../docs/openapi.json';
import { api } from './helpers';

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
});
