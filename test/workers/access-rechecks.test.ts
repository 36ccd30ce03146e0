import { evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { RECHECK_WINDOW_MS, recheckLiveChannelsSoon } from '../../workers/lib/rechecks';
import { signToken } from '../../workers/auth/tokens';
import type { ChannelCore } from '../../objects/channel/core';
import type { ChannelActor } from '../../objects/channel/index';
import { msg } from '../../objects/channel/test-helpers';
import { api, newOrg, newUser, checkedFetch } from './helpers';

/** An org with `nCh` channels, each with a live WebSocket subscriber (device 0), and a spare device to connect and disconnect. */
async function setup(nCh: number) {
  const u = await newUser();
  const org = (await newOrg(u.token)).id;
  const chs = (await api('POST', `/orgs/${org}/channels/bulk`, { token: u.token, body: { channels: Array.from({ length: nCh }, (_, i) => ({ name: `c${i}` })) } })).body.items as { id: string }[];
  const [sub, spare] = (await api('POST', `/orgs/${org}/devices/bulk`, { token: u.token, body: { devices: [{ name: 'sub' }, { name: 'spare' }] } })).body.items as { id: string; key: string }[];
  await api('POST', `/orgs/${org}/connections`, { token: u.token, body: { channel_ids: chs.map((c) => c.id), device_ids: [sub!.id] } });
  const sockets = await Promise.all(
    chs.map(async (ch) => {
      const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${sub!.key}` } });
      expect(res.status).toBe(101);
      const ws = res.webSocket!;
      const s = { ws, messages: 0, done: undefined as { code: number; reason: string } | undefined };
      ws.addEventListener('message', (e) => (JSON.parse(e.data as string).type === 'message' ? s.messages++ : 0));
      ws.addEventListener('close', (e) => (s.done = { code: e.code, reason: e.reason }));
      ws.accept();
      return s;
    }),
  );
  // Every channel is in live_channels, so an access change pokes it.
  expect(await until(async () => Number(await env.DB.prepare('SELECT COUNT(*) AS n FROM live_channels WHERE org_id = ?').bind(org).first('n')) === nCh, 3000)).toBe(true);
  return { t: u.token, org, chs, sub: sub!, spare: spare!, sockets };
}

async function until(ok: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; !(await ok()) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
  return ok();
}

const actor = (ch: string) => env.CHANNELS.get(env.CHANNELS.idFromName(ch));
const rechecks = async (chs: { id: string }[]) => Promise.all(chs.map(async (c) => (await actor(c.id).info()).rechecks));

/** One access-changing write (not in NO_ACCESS_CHANGE): the spare device connected to or disconnected from channel 0. */
const toggle = (s: Awaited<ReturnType<typeof setup>>, i: number) =>
  api(i % 2 === 0 ? 'PUT' : 'DELETE', `/orgs/${s.org}/channels/${s.chs[0]!.id}/devices/${s.spare.id}`, { token: s.t, ...(i % 2 === 0 ? { body: {} } : {}) });

describe('access rechecks of live channels', () => {
  it('rapid access changes are coalesced: each live channel is asked to recheck about once per window, not once per write', async () => {
    const s = await setup(3);
    const before = await rechecks(s.chs);
    const N = 40;
    const start = Date.now();
    for (let i = 0; i < N; i++) expect((await toggle(s, i)).status).toBeLessThan(300);
    const elapsed = Date.now() - start;
    // The last write's recheck starts at most a window after the one before it.
    await new Promise((r) => setTimeout(r, RECHECK_WINDOW_MS + 500));
    const after = await rechecks(s.chs);
    const calls = after.map((n, i) => n - before[i]!);
    console.log(`${N} access changes in ${elapsed} ms: ${calls.join(', ')} recheck calls per live channel (one per write before coalescing: ${N})`);
    for (const n of calls) {
      expect(n).toBeGreaterThanOrEqual(1);
      // One at once, then at most one per window started within the writes, and the last.
      expect(n).toBeLessThanOrEqual(Math.ceil(elapsed / RECHECK_WINDOW_MS) + 2);
      expect(n).toBeLessThan(N / 2);
    }
    // The subscribers kept their access throughout.
    for (const so of s.sockets) expect(so.done).toBeUndefined();
    s.sockets.forEach((so) => so.ws.close(1000, 'bye'));
  }, 30_000);

  it('a write just after a recheck started is not left to it: a revocation then gets a recheck of its own and closes the socket at once', async () => {
    const s = await setup(1);
    const [base] = await rechecks(s.chs);
    await toggle(s, 0);
    // That write's recheck reached the actor, and its question went to D1, before the revocation below commits:
    // it cannot stand for it, though it started well within the window.
    expect(await until(async () => (await rechecks(s.chs))[0]! > base!, 2000)).toBe(true);
    await new Promise((r) => setTimeout(r, 30));
    const revokedAt = Date.now();
    expect((await api('DELETE', `/orgs/${s.org}/channels/${s.chs[0]!.id}/devices/${s.sub.id}`, { token: s.t })).status).toBe(204);
    // Nothing is published (a quiet channel): only a recheck closes it, well before REVOCATION_CACHE_TTL.
    expect(await until(() => s.sockets[0]!.done !== undefined, 2000)).toBe(true);
    expect(s.sockets[0]!.done).toMatchObject({ code: 4403, reason: expect.stringContaining('permission to subscribe withdrawn') });
    expect(Date.now() - revokedAt).toBeLessThan(Number(env.REVOCATION_CACHE_TTL) * 1000);
    expect((await rechecks(s.chs))[0]).toBe(base! + 2);
  });
});

describe('a credential that runs out', () => {
  it('a socket on a session token is closed 4401 at its expiry on a busy channel: nothing published after it is delivered', async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: u.token, body: { name: 'busy' } })).body.id as string;
    const device = (await api('POST', `/orgs/${org}/devices`, { token: u.token, body: { name: 'ticker' } })).body as { id: string; key: string };
    await api('POST', `/orgs/${org}/connections`, { token: u.token, body: { channel_ids: [ch], device_ids: [device.id] } });
    const short = await signToken(env, { typ: 'user', sub: u.id }, 2);
    const exp = (JSON.parse(atob(short.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp: number }).exp * 1000;
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/messages`, { headers: { upgrade: 'websocket', authorization: `Bearer ${short}` } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const created: number[] = [];
    let closed: { code: number; reason: string; at: number } | undefined;
    ws.addEventListener('message', (e) => {
      const f = JSON.parse(e.data as string) as { type: string; created?: number };
      if (f.type === 'message') created.push(f.created!);
    });
    ws.addEventListener('close', (e) => (closed = { code: e.code, reason: e.reason, at: Date.now() }));
    ws.accept();
    // A message every 100 ms, through the expiry and a second past it (the decision's cache would have carried them on).
    while (!closed && Date.now() < exp + 1500) {
      expect((await api('POST', `/channels/${ch}/messages`, { device: device.key, raw: 'tick', headers: { 'content-type': 'text/plain' } })).status).toBe(202);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await until(() => closed !== undefined, 2000)).toBe(true);
    expect(closed).toMatchObject({ code: 4401, reason: expect.stringContaining('the access token expired') });
    expect(created.length).toBeGreaterThan(5);
    expect(created.filter((t) => t >= exp)).toEqual([]);
    expect(closed!.at - exp).toBeLessThan(1000);
  }, 20_000);
});

/** The `exp` of a JWT, in ms. */
const expOf = (jwt: string): number => (JSON.parse(atob(jwt.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp: number }).exp * 1000;

/** A WebSocket subscriber through the worker, recording what it gets and when it closes. */
async function listen(ch: string, authorization: string) {
  const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/messages`, { headers: { upgrade: 'websocket', authorization } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const s = { ws, frames: [] as { type: string; status?: number }[], closed: undefined as { code: number; reason: string; at: number } | undefined };
  ws.addEventListener('message', (e) => {
    s.frames.push(JSON.parse(e.data as string));
  });
  ws.addEventListener('close', (e) => {
    s.closed = { code: e.code, reason: e.reason, at: Date.now() };
  });
  ws.accept();
  return s;
}

describe('an idle socket whose credential runs out', () => {
  it('is closed 4401 at the expiry of its session token on a channel where nothing is published', async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: u.token, body: { name: 'quiet' } })).body.id as string;
    const short = await signToken(env, { typ: 'user', sub: u.id }, 2);
    const exp = expOf(short);
    const s = await listen(ch, `Bearer ${short}`);
    // Open and answered for until its expiry: nothing is delivered, nothing asks again.
    await new Promise((r) => setTimeout(r, Math.max(0, exp - Date.now() - 300)));
    expect(s.closed).toBeUndefined();
    expect(await until(() => s.closed !== undefined, exp - Date.now() + 1500)).toBe(true);
    expect(s.closed).toMatchObject({ code: 4401, reason: 'the access token expired' });
    expect(s.closed!.at - exp).toBeLessThan(1000);
    // The last frame said why, as a revocation's does.
    expect(s.frames.at(-1)).toMatchObject({ type: 'error', status: 401, code: 'unauthorized', message: 'the access token expired', closing: true });
    expect((await actor(ch).info()).subscribers).toBe(0);
  }, 20_000);

  it('is closed at the expiry of its API key after the actor hibernated, its principal too big for the attachment', async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: u.token, body: { name: 'quiet' } })).body.id as string;
    // 50 scopes of some 60 characters: more than the attachment takes, so the principal is kept in memory (access.ts) and lost with it.
    const scopes = ['messages:*', ...Array.from({ length: 49 }, (_, i) => `devices:read@devices/${'d'.repeat(40)}${i}`)];
    const key = await api('POST', `/orgs/${org}/keys`, { token: u.token, body: { name: 'wide', scopes } });
    expect(key.status).toBe(201);
    // The same key's JWT, as one issued to expire in 2 s would be (the API takes 60 s at least).
    const short = await signToken(env, { typ: 'key', jti: key.body.id, sub: u.id, own: 'user', org, scp: scopes }, 2);
    const exp = expOf(short);
    const s = await listen(ch, `Bearer ${short}`);
    await until(() => s.frames.length > 0, 2000);
    // What is in memory goes: the expiry must come from the socket's attachment.
    await evictDurableObject(actor(ch));
    expect(s.closed).toBeUndefined();
    expect(await until(() => s.closed !== undefined, exp - Date.now() + 1500)).toBe(true);
    expect(s.closed).toMatchObject({ code: 4401, reason: 'the API key expired' });
    expect(s.closed!.at - exp).toBeLessThan(1000);
    expect(s.closed!.at).toBeGreaterThanOrEqual(exp);
  }, 20_000);
});

describe('a delivery held for its question', () => {
  it('is not sent when the credential expires while the question is pending and the question then fails', async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: u.token, body: { name: 'held' } })).body.id as string;
    const short = await signToken(env, { typ: 'user', sub: u.id }, 3);
    const exp = expOf(short);
    const s = await listen(ch, `Bearer ${short}`);
    expect(await until(() => s.frames.some((f) => f.type === 'subscribed'), 2000)).toBe(true);
    // Woken from hibernation, the actor has no answer for the socket's principal: its next delivery waits for one.
    await evictDurableObject(actor(ch));
    await runInDurableObject(actor(ch), async (instance: ChannelActor, state) => {
      const core = (instance as unknown as { core: ChannelCore }).core;
      // The one fake: the PDP's D1 read for this actor's question answers only after the expiry, and fails
      // (a D1 failure that settles after a given instant cannot be caused for real). A failed question keeps
      // the last answer — here none, so the worker's "allowed" at the upgrade.
      const db = core.env.DB;
      const slowFailing = new Proxy(db, {
        get: (target, prop) =>
          prop === 'batch'
            ? async () => {
                await new Promise((r) => setTimeout(r, exp - Date.now() + 500));
                throw new Error('D1 unavailable (injected)');
              }
            : Reflect.get(target, prop, target),
      });
      Object.defineProperty(core, 'env', { value: { ...core.env, DB: slowFailing } });
      // The alarm closes the socket at the expiry (its own test is above); here it is late, as an alarm may be.
      await state.storage.deleteAlarm();
    });
    // Published before the expiry: held while the question is pending.
    expect(Date.now()).toBeLessThan(exp - 500);
    const [r] = await actor(ch).publish([msg({ payload: new TextEncoder().encode('held') })], ch);
    expect(r).toMatchObject({ ok: true });
    expect(await until(() => s.closed !== undefined, exp - Date.now() + 3000)).toBe(true);
    expect(s.frames.filter((f) => f.type === 'message')).toEqual([]);
    expect(s.closed).toMatchObject({ code: 4401, reason: 'the access token expired' });
    expect(s.closed!.at).toBeGreaterThanOrEqual(exp + 500);
  }, 20_000);
});

describe('a recheck that fails', () => {
  /** An env whose D1 answers live_channels after 30 ms with no rows, or fails (a D1 outage a recheck cannot be made to meet locally), counting the reads. */
  const fakeEnv = (fail: boolean) => {
    const e = {
      reads: 0,
      DB: {
        prepare: () => ({
          bind: () => ({
            all: async () => {
              e.reads++;
              await new Promise((r) => setTimeout(r, 30));
              if (fail) throw new Error('D1 unavailable (injected)');
              return { results: [] };
            },
          }),
        }),
      },
    };
    return e;
  };

  it('hands back the writes it stood for: a write it covered runs a recheck of its own', async () => {
    const org = crypto.randomUUID();
    await recheckLiveChannelsSoon(fakeEnv(false) as unknown as Env, org); // after a quiet spell: at once; the window starts
    // Two writes in the window, both waiting for it to end: whichever request's timer fires first runs
    // the recheck for both (which one is up to the runtime's timers), and it fails. The other
    // request's write was covered by it, so that request must then run a recheck of its own.
    const a = fakeEnv(true);
    const b = fakeEnv(true);
    const outcome = (p: Promise<void>) =>
      p.then(
        () => 'ok',
        (e: Error) => e.message,
      );
    const start = Date.now();
    const [ra, rb] = await Promise.all([outcome(recheckLiveChannelsSoon(a as unknown as Env, org)), outcome(recheckLiveChannelsSoon(b as unknown as Env, org))]);
    expect([a.reads, b.reads]).toEqual([1, 1]);
    expect([ra, rb]).toEqual([expect.stringContaining('injected'), expect.stringContaining('injected')]);
    // At once: not after the 10 s a recheck is given before it is taken for lost.
    expect(Date.now() - start).toBeLessThan(3000);
  });
});
