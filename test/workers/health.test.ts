import { exports } from 'cloudflare:workers';
import { env } from 'cloudflare:workers';
import { expect, it } from 'vitest';
it('answers health', async () => {
  const res = await exports.default.fetch('http://x/health');
  expect(res.status).toBe(200);
  const r = await env.DB.prepare('select count(*) as n from users').first<{ n: number }>();
  expect(r?.n).toBe(0);
});
