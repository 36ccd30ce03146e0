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

/**
 * A stand-in /internal API whose access data can be "written": /internal/access/changes answers
 * from a list of (epoch, org) writes, /internal/authorize with the current answer per channel.
 * `hold` keeps authorize answers back until released (an answer on its way across a change).
 */
async function serveAccess() {
  const state = {
    epoch: 5,
    writes: [] as { epoch: number; org: string }[],
    allowed: true,
    authorizes: 0,
    polls: 0,
    failPolls: false,
    hold: null as null | Promise<void>,
    /** Polls left unanswered (the socket stays open), as a hung worker would. */
    hangPolls: 0,
  };
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', async () => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/internal/access/changes') {
        state.polls++;
        if (state.hangPolls > 0) return void state.hangPolls--;
        if (state.failPolls) return void res.writeHead(404).end('{"detail":"no such route"}');
        const { since } = JSON.parse(body) as { since: number | null };
        const orgs = since === null ? [] : state.writes.filter((w) => w.epoch > since).map((w) => w.org);
        return void res.end(JSON.stringify({ epoch: state.epoch, orgs, all: since === null || state.epoch < since }));
      }
      state.authorizes++;
      const allowed = state.allowed;
      if (state.hold) await state.hold;
      const { checks } = JSON.parse(body) as { checks: { channel: string; action: string }[] };
      // No checks: only whether the credential is good (`allowed` false stands for a rotated key here).
      if (checks.length === 0) return void res.end(JSON.stringify({ results: [], ...(allowed ? {} : { refused: { status: 401, reason: 'the device key was rotated' } }) }));
      res.end(JSON.stringify({ results: checks.map((c) => ({ ...c, allowed, status: allowed ? 200 : 403 })) }));
    });
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  const write = (org: string) => state.writes.push({ epoch: ++state.epoch, org });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state, write };
}

describe('InternalApi following access changes', () => {
  const check = [{ channel: 'c1', action: 'messages:publish' as const }];
  const setup = async (opts: { cacheTtlMs?: number; trustedTtlMs?: number } = {}) => {
    const s = await serveAccess();
    const clock = { t: 1_000_000 };
    const api = new InternalApi({ workerUrl: s.url, bridgeSecret: 's', cacheTtlMs: 5000, trustedTtlMs: 60_000, changesPollMs: 1000, now: () => clock.t, ...opts });
    return { ...s, clock, api };
  };

  it('keeps a decision past cacheTtlMs while the changes are followed and none touch its org, up to trustedTtlMs', async () => {
    const { api, state, clock, write } = await setup();
    await api.pollChanges();
    await api.authorize(principal, check);
    for (let i = 0; i < 50; i++) {
      clock.t += 1000;
      if (i === 10) write('another-org');
      await api.pollChanges();
      await api.authorize(principal, check);
    }
    expect(state.authorizes).toBe(1); // 50 s: the bridge asked once
    clock.t += 10_000;
    await api.pollChanges();
    await api.authorize(principal, check);
    expect(state.authorizes).toBe(2); // 60 s: asked again however quiet it was
  });

  it('forgets at once what it cached for an org whose access changed, and says so through accessVersion', async () => {
    const { api, state, clock, write } = await setup();
    const told: (string | undefined)[] = [];
    api.onAccessChange((org) => told.push(org));
    await api.pollChanges();
    expect(told).toEqual([]); // the first answer forgets everything, but tells no one: nothing is known to have changed
    expect((await api.authorize(principal, check))[0]!.allowed).toBe(true);
    const before = api.accessVersion(principal);
    const other: Principal = { kind: 'device', id: 'd9', orgId: 'o9' };
    await api.authorize(other, check);
    const otherBefore = api.accessVersion(other);
    state.allowed = false;
    write('o1');
    clock.t += 100;
    expect((await api.authorize(principal, check))[0]!.allowed).toBe(true); // not polled yet: still the cached answer
    await api.pollChanges();
    expect(told).toEqual(['o1']); // the org that changed, once its answers are forgotten
    expect(api.accessVersion(principal)).not.toBe(before);
    expect(api.accessVersion(other)).toBe(otherBefore);
    expect((await api.authorize(principal, check))[0]!.allowed).toBe(false);
    expect(state.authorizes).toBe(3);
    await api.authorize(other, check); // o9 did not change: still cached
    expect(state.authorizes).toBe(3);
    state.epoch = 1; // the sequence went backwards (the database was recreated): everything goes
    await api.pollChanges();
    await api.authorize(other, check);
    expect(state.authorizes).toBe(4);
  });

  it('asks about a credential once for all the idle sessions of a principal, and again after its org changes', async () => {
    const { api, state, clock, write } = await setup();
    await api.pollChanges();
    let release!: () => void;
    state.hold = new Promise<void>((r) => (release = r));
    const answers = Array.from({ length: 20 }, () => api.credentialRefusal(principal));
    await new Promise((r) => setTimeout(r, 20));
    release();
    expect(await Promise.all(answers)).toEqual(Array(20).fill(null));
    expect(state.authorizes).toBe(1);
    state.hold = null;
    expect(await api.credentialRefusal(principal)).toBeNull(); // cached while the org does not change
    expect(state.authorizes).toBe(1);
    state.allowed = false;
    write('o1');
    clock.t += 100;
    await api.pollChanges();
    expect(await api.credentialRefusal(principal)).toBe('the device key was rotated');
    expect(state.authorizes).toBe(2);
  });

  it('does not trust an answer that was on its way while its org changed', async () => {
    const { api, state, clock, write } = await setup();
    await api.pollChanges();
    let release!: () => void;
    state.hold = new Promise<void>((r) => (release = r));
    const asked = api.authorize(principal, check); // the worker answers "allowed", slowly
    await new Promise((r) => setTimeout(r, 20));
    write('o1');
    await api.pollChanges();
    release();
    expect((await asked)[0]!.allowed).toBe(true);
    state.hold = null;
    state.allowed = false;
    clock.t += 10;
    expect((await api.authorize(principal, check))[0]!.allowed).toBe(false);
    expect(state.authorizes).toBe(2);
  });

  it('falls back to cacheTtlMs when the changes cannot be followed (an older worker, the platform away); the first answer forgets everything, and one after a gap names what changed meanwhile', async () => {
    const { api, state, clock, write } = await setup();
    state.failPolls = true;
    await api.pollChanges();
    await api.authorize(principal, check);
    clock.t += 4000;
    await api.authorize(principal, check);
    expect(state.authorizes).toBe(1);
    clock.t += 1000;
    await api.authorize(principal, check);
    expect(state.authorizes).toBe(2); // 5 s: asked again, as without news of changes
    state.failPolls = false;
    await api.pollChanges();
    const v = api.accessVersion(principal);
    expect(v).toBeGreaterThan(0); // the first answer forgets everything: what changed meanwhile is unknown
    await api.authorize(principal, check);
    expect(state.authorizes).toBe(3);
    // Then answers stop coming: cached decisions last cacheTtlMs from when they were asked for, no more.
    clock.t += 3000;
    state.failPolls = true;
    await api.pollChanges();
    write('o1'); // unseen
    clock.t += 2000;
    await api.authorize(principal, check);
    expect(state.authorizes).toBe(4);
    expect(state.polls).toBe(3);
    // When answers come again, the org that changed meanwhile is named — and its sessions told — not lost.
    const told: (string | undefined)[] = [];
    api.onAccessChange((org) => told.push(org));
    const before = api.accessVersion(principal);
    state.failPolls = false;
    await api.pollChanges();
    expect(told).toEqual(['o1']);
    expect(api.accessVersion(principal)).toBeGreaterThan(before);
  });

  it('queues at most maxQueued calls; beyond, a call fails at once with 503', async () => {
    const s = await serveAccess();
    let release!: () => void;
    s.state.hold = new Promise<void>((r) => (release = r));
    const api = new InternalApi({ workerUrl: s.url, bridgeSecret: 's', maxInFlight: 1, maxQueued: 2 });
    const calls = [1, 2, 3, 4].map((i) => api.authorize(principal, [{ channel: `q${i}`, action: 'messages:publish' }]));
    const settled = Promise.allSettled(calls);
    await new Promise((r) => setTimeout(r, 20));
    release();
    const results = await settled;
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    expect(((results[3] as PromiseRejectedResult).reason as PlatformError).status).toBe(503);
  });

  it('never trusts a decision past the expiry of the credential it was made for', async () => {
    const { api, state, clock } = await setup();
    await api.pollChanges();
    const key: Principal = { kind: 'key', id: 'k1', orgId: 'o1', owner: { kind: 'user', id: 'u1' }, scopes: [], exp: Math.floor(clock.t / 1000) + 20 };
    await api.authorize(key, check);
    clock.t += 19_000;
    await api.pollChanges();
    await api.authorize(key, check);
    expect(state.authorizes).toBe(1);
    clock.t += 1000;
    await api.pollChanges();
    await api.authorize(key, check);
    expect(state.authorizes).toBe(2);
  });

  it('polls on its own once started, and stops when closed', async () => {
    const s = await serveAccess();
    const api = new InternalApi({ workerUrl: s.url, bridgeSecret: 's', changesPollMs: 50 });
    api.start();
    await new Promise((r) => setTimeout(r, 300));
    api.close();
    const polled = s.state.polls;
    expect(polled).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 200));
    expect(s.state.polls).toBe(polled);
  });

  it('gives up on a question about changes that hangs, and goes on asking', async () => {
    const s = await serveAccess();
    s.state.hangPolls = 1;
    const api = new InternalApi({ workerUrl: s.url, bridgeSecret: 's', cacheTtlMs: 100, changesPollMs: 50 });
    api.start();
    await new Promise((r) => setTimeout(r, 600));
    api.close();
    expect(s.state.hangPolls).toBe(0);
    expect(s.state.polls).toBeGreaterThanOrEqual(3);
    expect(api.accessVersion(principal)).toBeGreaterThan(0); // an answer came after the hung one
    server!.closeAllConnections();
  });
});
