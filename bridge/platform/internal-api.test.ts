import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Principal } from '../../shared/principal';
import { InternalApi } from './internal-api';
import { PlatformError } from './types';

const principal: Principal = { kind: 'device', id: 'd1', orgId: 'o1' };
let server: Server | null = null;

/** A stand-in /internal API on a real socket that answers every check "allowed" after `delayMs`, counting concurrent requests. */
async function serve(delayMs: number) {
  const seen = { now: 0, peak: 0, total: 0 };
  server = createServer((req, res) => {
    seen.now++;
    seen.total++;
    seen.peak = Math.max(seen.peak, seen.now);
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const { checks } = JSON.parse(body) as { checks: { channel: string; action: string }[] };
      setTimeout(() => {
        seen.now--;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ results: checks.map((c) => ({ ...c, allowed: true })) }));
      }, delayMs);
    });
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

afterEach(async () => {
  await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
  server = null;
});

describe('InternalApi', () => {
  it('keeps at most maxInFlight calls open at once; the rest queue and all are answered, each with its own answer', async () => {
    const { url, seen } = await serve(5);
    const api = new InternalApi({ workerUrl: url, bridgeSecret: 's', maxInFlight: 4 });
    const calls = Array.from({ length: 60 }, (_, i) => api.authorize(principal, [{ channel: `c${i}`, action: 'messages:publish' }]));
    await new Promise((r) => setTimeout(r, 1));
    expect(api.queued).toBeGreaterThan(0);
    const answers = await Promise.all(calls);
    expect(seen.total).toBe(60);
    expect(seen.peak).toBeLessThanOrEqual(4);
    expect(answers.map((a) => a[0]!.channel)).toEqual(Array.from({ length: 60 }, (_, i) => `c${i}`));
    expect(api.queued).toBe(0);
  });

  it('caches decisions per principal identity: a rotated key\'s refusal never reaches the new key, nor the reverse', async () => {
    let requests = 0;
    server = createServer((req, res) => {
      requests++;
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const { principal: p, checks } = JSON.parse(body) as { principal: { keyStamp?: string }; checks: { channel: string; action: string }[] };
        const old = p.keyStamp === 'aaaa';
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ results: checks.map((c) => ({ ...c, allowed: !old, status: old ? 401 : 200 })) }));
      });
    });
    await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
    const api = new InternalApi({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 's' });
    const check = [{ channel: 'c1', action: 'messages:publish' as const }];
    const oldKey: Principal = { kind: 'device', id: 'd1', orgId: 'o1', keyStamp: 'aaaa' };
    const newKey: Principal = { kind: 'device', id: 'd1', orgId: 'o1', keyStamp: 'bbbb' };
    expect((await api.authorize(oldKey, check))[0]).toMatchObject({ allowed: false, status: 401 });
    expect((await api.authorize(newKey, check))[0]).toMatchObject({ allowed: true, status: 200 });
    expect((await api.authorize({ ...oldKey }, check))[0]).toMatchObject({ allowed: false, status: 401 }); // cached, per identity
    expect(requests).toBe(2);
  });

  it('sends a call once more when the worker closed its connection under it, and not more than once', async () => {
    let requests = 0;
    let dropAll = false;
    server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => {
        if (dropAll || requests === 1) return req.socket.destroy(); // the socket closes with no answer
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ results: [{ channel: 'c1', action: 'messages:publish', allowed: true, status: 200 }] }));
      });
    });
    await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
    const api = new InternalApi({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 's', cacheTtlMs: 0 });
    const [d] = await api.authorize(principal, [{ channel: 'c1', action: 'messages:publish' }]);
    expect(d!.allowed).toBe(true);
    expect(requests).toBe(2);
    dropAll = true;
    await expect(api.authorize(principal, [{ channel: 'c2', action: 'messages:publish' }])).rejects.toThrow(/platform unreachable/);
    expect(requests).toBe(4);
  });

  it('frees the slot of a call that failed, and says why the platform was unreachable', async () => {
    const { url } = await serve(0);
    await new Promise((ok) => server!.close(ok)); // nothing listens there now
    server = null;
    const api = new InternalApi({ workerUrl: url, bridgeSecret: 's', maxInFlight: 1 });
    const results = await Promise.allSettled([1, 2, 3].map((i) => api.authorize(principal, [{ channel: `c${i}`, action: 'messages:publish' }])));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason as PlatformError;
      expect(e).toBeInstanceOf(PlatformError);
      expect(e.message).toMatch(/platform unreachable: .*ECONNREFUSED/);
    }
    expect(api.queued).toBe(0);
  });
});
