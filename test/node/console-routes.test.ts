import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from './processes';

// wrangler.toml's run_worker_first decides which browser navigations reach the worker instead of the
// console's index.html. A route missing from it would answer HTML to a browser; this catches that.
const toml = readFileSync(resolve(root, 'wrangler.toml'), 'utf8');
const patterns = JSON.parse(/^run_worker_first = (\[.*\])$/m.exec(toml)?.[1] ?? '[]') as string[];
const covered = (path: string) => patterns.some((p) => (p.endsWith('/*') ? path.startsWith(p.slice(0, -1)) : path === p));
const openapi = JSON.parse(readFileSync(resolve(root, 'docs/openapi.json'), 'utf8')) as { paths: Record<string, unknown> };

describe('console vs API routing (wrangler.toml [assets])', () => {
  it('runs the worker first for every API route', () => {
    const paths = [...Object.keys(openapi.paths).map((p) => p.replace(/\{[^}]+\}/g, 'x')), '/openapi.json', '/docs'];
    expect(paths.length).toBeGreaterThan(30);
    expect(paths.filter((p) => !covered(p))).toEqual([]);
  });

  it('leaves the console routes to the single-page app', () => {
    for (const p of ['/', '/login', '/o/org-1/devices', '/o/org-1/channels/ch-1/history', '/assets/main.js']) expect(covered(p), p).toBe(false);
  });
});
