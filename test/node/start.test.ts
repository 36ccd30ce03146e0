import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startPlatform, type Platform } from './processes';

describe('npm start', () => {
  const state = mkdtempSync(join(tmpdir(), 'edgeflux-state-'));
  let running: Platform | undefined;
  afterAll(async () => {
    await running?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('brings the platform up with migrations applied, and a restart keeps the data', async () => {
    const port = await freePort();
    const env = { EDGEFLUX_HTTP_PORT: String(port), EDGEFLUX_STATE_DIR: state };
    running = await startPlatform(env);
    expect(running.url).toBe(`http://127.0.0.1:${port}`);
    expect(running.output()).toMatch(/OpenAPI\s+http:\/\/127\.0\.0\.1:\d+\/openapi\.json/);
    expect(await (await fetch(`${running.url}/health`)).json()).toEqual({ status: 'ok', d1: 'ok' });

    const creds = { email: 'restart@example.com', password: 'correct horse battery' };
    const reg = await fetch(`${running.url}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(creds) });
    expect(reg.status).toBe(201);
    await running.stop();

    running = await startPlatform(env);
    expect(running.output()).toContain('D1 schema is up to date');
    const login = await fetch(`${running.url}/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(creds) });
    expect(login.status).toBe(201);
  }, 180_000);
});
