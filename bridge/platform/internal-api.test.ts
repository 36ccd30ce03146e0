import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Principal } from '../../shared/principal';
import { InternalApi } from './internal-api';
import { PlatformError } from './types';

const principal: Principal = { kind: 'device', id: 'd1', orgId: 'o1' };
let server: Server | null = null;

type Item = { principal: Principal; checks: { channel: string; action: string }[] };

/** /internal/authorize as the worker answers it: the single form (`principal`, `checks`), or a batch (`items`), each item by `one`. */
function authorizeAnswer(body: string, one: (item: Item) => unknown): unknown {
  const parsed = JSON.parse(body) as Item | { items: Item[] };
  return 'items' in parsed ? { items: parsed.items.map(one) } : one(parsed);
}

/**
 * A stand-in /internal API on a real socket that answers every check "allowed" (and /internal/channels
 * with the principal's id) after `delayMs`, or once `hold` is released; counts concurrent requests.
 */
async function serve(delayMs: number, hold?: Promise<void>) {
  const seen = { now: 0, peak: 0, total: 0 };
  server = createServer((req, res) => {
    seen.now++;
    seen.total++;
    seen.peak = Math.max(seen.peak, seen.now);
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', async () => {
      if (hold) await hold;
      setTimeout(() => {
        seen.now--;
        res.setHeader('content-type', 'application/json');
        if (req.url === '/internal/channels') return void res.end(JSON.stringify({ channels: [(JSON.parse(body) as Item).principal.id] }));
        res.end(JSON.stringify(authorizeAnswer(body, ({ checks }) => ({ results: checks.map((c) => ({ ...c, allowed: true })) }))));
      }, delayMs);
    });
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** Lets the turn end: what was asked in it has left (authorize questions leave together at its end). */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

afterEach(async () => {
  await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
  server = null;
});

describe('InternalApi', () => {
  it('keeps at most maxInFlight calls open at once; the rest queue and all are answered, each with its own answer', async () => {
    let release!: () => void;
    const { url, seen } = await serve(0, new Promise<void>((r) => (release = r)));
    const api = new InternalApi({ workerUrl: url, bridgeSecret: 's', maxInFlight: 4 });
    const calls = Array.from({ length: 60 }, (_, i) => api.channelsFor({ ...principal, id: `d${i}` }, 'messages:subscribe'));
    await new Promise((r) => setTimeout(r, 20));
    expect(api.queued).toBe(56);
    release();
    const answers = await Promise.all(calls);
    expect(seen.total).toBe(60);
    expect(seen.peak).toBeLessThanOrEqual(4);
    expect(answers).toEqual(Array.from({ length: 60 }, (_, i) => [`d${i}`]));
    expect(api.queued).toBe(0);
  });

  it('caches decisions per principal identity: a rotated key\'s refusal never reaches the new key, nor the reverse', async () => {
    let requests = 0;
    server = createServer((req, res) => {
      requests++;
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify(
            authorizeAnswer(body, ({ principal: p, checks }) => {
              const old = p.kind === 'device' && p.keyStamp === 'aaaa';
              return { results: checks.map((c) => ({ ...c, allowed: !old, status: old ? 401 : 200 })) };
            }),
          ),
        );
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

  it('counts a 401/403 that is not the worker\'s problem JSON (a proxy\'s page) as the platform unreachable (503), and only the worker\'s own as a refusal', async () => {
    const page = `<html><body><h1>401 Authorization Required</h1>${'<p>proxy</p>'.repeat(200)}</body></html>`;
    // What answers, in turn: a proxy's HTML page, an access layer's plain text, JSON without a problem code, the worker itself.
    let answer: { status: number; type: string; body: string } = { status: 401, type: 'text/html', body: page };
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => void res.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body));
    });
    await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
    const api = new InternalApi({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 's', bridgeId: 'b1' });
    const failure = (p: Promise<unknown>) => p.then(() => expect.unreachable('answered'), (e: unknown) => e as PlatformError);

    for (const call of [() => api.resetPresence(), () => api.authenticate('d1', 'key'), () => api.channelsFor(principal, 'messages:publish')]) {
      const e = await failure(call());
      expect(e).toBeInstanceOf(PlatformError);
      expect({ status: e.status, code: e.code }).toEqual({ status: 503, code: undefined });
      expect(e.message).toMatch(/^platform unreachable: HTTP 401: <html><body><h1>401 Authorization Required<\/h1>/);
      expect(e.message.length).toBeLessThan(300); // the page cut short
    }
    answer = { status: 403, type: 'text/plain', body: 'Forbidden' };
    expect(await failure(api.authenticate('d1', 'key'))).toMatchObject({ status: 503, message: 'platform unreachable: HTTP 403: Forbidden' });
    answer = { status: 401, type: 'application/json', body: JSON.stringify({ message: 'Unauthorized', code: 401 }) };
    expect(await failure(api.resetPresence())).toMatchObject({ status: 503, message: expect.stringMatching(/^platform unreachable: HTTP 401: /) });

    // The worker's own refusals keep their status and code: of the bridge's credential, of a device's.
    answer = { status: 401, type: 'application/problem+json', body: JSON.stringify({ status: 401, code: 'unauthorized', detail: 'bridge credential required' }) };
    expect(await failure(api.resetPresence())).toMatchObject({ status: 401, code: 'unauthorized', message: 'bridge credential required' });
    answer = { status: 403, type: 'application/problem+json', body: JSON.stringify({ status: 403, code: 'forbidden', detail: 'not allowed' }) };
    expect(await failure(api.channelsFor(principal, 'messages:publish'))).toMatchObject({ status: 403, code: 'forbidden', message: 'not allowed' });
  });
});

/** What a worker from before batches (f80e257) answers a batch body: it reads it as the single form. */
const OLDER_WORKERS_422 = {
  type: 'https://edgeflux.dev/problems/validation_failed',
  title: 'Unprocessable Content',
  status: 422,
  detail: 'invalid body: principal: Invalid input: expected object, received undefined',
  code: 'validation_failed',
  errors: [
    { path: 'principal', message: 'Invalid input: expected object, received undefined' },
    { path: 'checks', message: 'Invalid input: expected array, received undefined' },
  ],
};

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
    /** Per /internal/authorize request: how many items it carried (1: the single form). */
    items: [] as number[],
    /** Answer the batch form 422, as a worker from before batches does. */
    refuseBatches: false,
    /** Answer the batch form 500. */
    failBatches: false,
    /** Answer the batch form this (a status and a problem body), e.g. a 4xx no older worker gives. */
    batchAnswer: null as null | { status: number; body: unknown },
    /** Principals refused: 403 on each check, and `refused` when asked only about the credential. */
    refuse: (_p: Principal) => false,
    /** Principals whose single question the worker does not take (422), as a too-large one. */
    invalid: (_p: Principal) => false,
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
      const batch = (JSON.parse(body) as { items?: Item[] }).items;
      state.items.push(batch ? batch.length : 1);
      if (batch && state.refuseBatches) return void res.writeHead(422, { 'content-type': 'application/problem+json' }).end(JSON.stringify(OLDER_WORKERS_422));
      if (batch && state.failBatches) return void res.writeHead(500).end('{"detail":"internal error"}');
      if (batch && state.batchAnswer) return void res.writeHead(state.batchAnswer.status, { 'content-type': 'application/problem+json' }).end(JSON.stringify(state.batchAnswer.body));
      const single = batch ? null : (JSON.parse(body) as Item);
      if (single && state.invalid(single.principal)) return void res.writeHead(422, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ status: 422, code: 'validation_failed', detail: 'invalid body: principal.scopes: Too big', errors: [{ path: 'principal.scopes', message: 'Too big' }] }));
      res.end(
        JSON.stringify(
          authorizeAnswer(body, ({ principal: p, checks }) => {
            const ok = allowed && !state.refuse(p);
            // No checks: only whether the credential is good (a refusal stands for a rotated key here).
            return checks.length === 0 ? { results: [], ...(ok ? {} : { refused: { status: 401, reason: 'the device key was rotated' } }) } : { results: checks.map((c) => ({ ...c, allowed: ok, status: ok ? 200 : 403 })) };
          }),
        ),
      );
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

  it('sends the questions of one turn as one batch request, split at its bound, each answered with its own; a lone question goes alone', async () => {
    const { api, state } = await setup();
    await api.pollChanges();
    // An access change: 250 sessions ask about a channel each, 30 idle ones about their credential.
    const device = (i: number): Principal => ({ kind: 'device', id: `d${i}`, orgId: 'o1' });
    const decisions = Array.from({ length: 250 }, (_, i) => api.authorize(device(i), [{ channel: `c${i}`, action: 'messages:subscribe' }]));
    const credentials = Array.from({ length: 30 }, (_, i) => api.credentialRefusal(device(1000 + i)));
    expect((await Promise.all(decisions)).map(([d]) => d!.channel)).toEqual(Array.from({ length: 250 }, (_, i) => `c${i}`));
    expect(await Promise.all(credentials)).toEqual(Array(30).fill(null));
    expect(state.items).toEqual([100, 100, 80]);
    // Cached as before: asked again, nothing leaves.
    await api.authorize(device(7), [{ channel: 'c7', action: 'messages:subscribe' }]);
    expect(state.authorizes).toBe(3);
    // Split at 1000 checks too: twelve principals asking about 100 channels each.
    const many = Array.from({ length: 100 }, (_, i) => ({ channel: `m${i}`, action: 'messages:publish' as const }));
    await Promise.all(Array.from({ length: 12 }, (_, i) => api.authorize(device(2000 + i), many)));
    expect(state.items.slice(3)).toEqual([10, 2]);
    // A question alone in its turn takes the single form.
    await api.authorize(device(3000), [{ channel: 'alone', action: 'messages:publish' }]);
    expect(state.items.slice(5)).toEqual([1]);
  });

  it('gives each question of a batch its own answer: principals refused by id, credential-only questions among checks', async () => {
    const { api, state } = await setup();
    await api.pollChanges();
    state.refuse = (p) => Number(p.id.slice(1)) % 2 === 1; // every odd device
    const device = (i: number): Principal => ({ kind: 'device', id: `d${i}`, orgId: 'o1' });
    const credentialOnly = (i: number) => i % 3 === 0;
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => (credentialOnly(i) ? api.credentialRefusal(device(i)) : api.authorize(device(i), [{ channel: `c${i}`, action: 'messages:publish' }]))));
    expect(state.items).toEqual([12]); // one batch
    const odd = (i: number) => i % 2 === 1;
    expect(answers).toEqual(
      Array.from({ length: 12 }, (_, i) =>
        credentialOnly(i) ? (odd(i) ? 'the device key was rotated' : null) : [{ channel: `c${i}`, action: 'messages:publish', allowed: !odd(i), status: odd(i) ? 403 : 200 }],
      ),
    );
  });

  it('fails each question of a failed batch as a failed request did, and asks again next time', async () => {
    const { api, state } = await setup();
    await api.pollChanges();
    state.failBatches = true;
    const asked = await Promise.allSettled([api.authorize(principal, check), api.authorize({ ...principal, id: 'd2' }, check), api.credentialRefusal({ ...principal, id: 'd3' })]);
    expect(asked.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of asked) expect((r as PromiseRejectedResult).reason).toMatchObject({ name: 'PlatformError', status: 503 });
    state.failBatches = false;
    const again = await Promise.all([api.authorize(principal, check), api.authorize({ ...principal, id: 'd2' }, check), api.credentialRefusal({ ...principal, id: 'd3' })]);
    expect(again).toEqual([[{ ...check[0], allowed: true, status: 200 }], [{ ...check[0], allowed: true, status: 200 }], null]);
    expect(state.items).toEqual([3, 3]);
  });

  it('asks the questions of a batch the worker refuses (a 4xx) one by one, so one it will not take fails alone; the next turn is a batch again', async () => {
    const { api, state } = await setup();
    await api.pollChanges();
    // A worker that knows batches and refuses this one (its issues under `items`), then other 4xx.
    const refusals = [
      { status: 422, body: { status: 422, code: 'validation_failed', detail: 'invalid body: items.0.principal.scopes: Too big', errors: [{ path: 'items.0.principal.scopes', message: 'Too big' }] } },
      { status: 413, body: { status: 413, code: 'payload_too_large', detail: 'request body too large' } },
      { status: 400, body: { status: 400, code: 'malformed_request', detail: 'request body is not valid JSON' } },
      { status: 404, body: { status: 404, code: 'not_found', detail: 'not found' } },
      { status: 422, body: { status: 422, code: 'validation_failed', detail: 'invalid body: principal: Required' } }, // no `errors`: not known to be an older worker
    ];
    // The first principal of every turn is one the worker will not take even alone.
    state.invalid = (p) => p.id.startsWith('bad');
    let n = 0;
    for (const refusal of refusals) {
      state.batchAnswer = refusal;
      const asked = await Promise.allSettled([api.authorize({ ...principal, id: `bad${n}` }, check), api.authorize({ ...principal, id: `x${n}` }, check), api.credentialRefusal({ ...principal, id: `y${n}` })]);
      n++;
      expect(asked.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
      expect((asked[0] as PromiseRejectedResult).reason).toMatchObject({ name: 'PlatformError', status: 422 });
      expect(asked.slice(1).map((r) => (r as PromiseFulfilledResult<unknown>).value)).toEqual([[{ ...check[0], allowed: true, status: 200 }], null]);
    }
    expect(state.items).toEqual(refusals.flatMap(() => [3, 1, 1, 1])); // each turn tried a batch, then its questions alone
    state.batchAnswer = null;
    expect(await Promise.all([api.authorize({ ...principal, id: 'z1' }, check), api.credentialRefusal({ ...principal, id: 'z2' })])).toEqual([[{ ...check[0], allowed: true, status: 200 }], null]);
    expect(state.items.slice(refusals.length * 4)).toEqual([2]);
  });

  it('asks an older worker, which refuses the batch form, one question at a time, and tries batches again only after a minute', async () => {
    const { api, state, clock } = await setup();
    await api.pollChanges();
    state.refuseBatches = true;
    const ask = (n: number, tag: string) => Promise.all(Array.from({ length: n }, (_, i) => api.authorize({ ...principal, id: `${tag}${i}` }, check)));
    expect((await ask(5, 'a')).flat().map((d) => d.allowed)).toEqual(Array(5).fill(true));
    expect(state.items).toEqual([5, 1, 1, 1, 1, 1]); // the batch refused, then each alone
    await ask(3, 'b');
    expect(state.items.slice(6)).toEqual([1, 1, 1]); // no batch tried meanwhile
    clock.t += 60_000;
    await api.pollChanges();
    state.refuseBatches = false; // upgraded meanwhile
    await ask(3, 'c');
    expect(state.items.slice(9)).toEqual([3]);
  });

  it('does not trust the answers of a batch that was on its way while their org changed', async () => {
    const { api, state, clock, write } = await setup();
    await api.pollChanges();
    let release!: () => void;
    state.hold = new Promise<void>((r) => (release = r));
    const other: Principal = { ...principal, id: 'd2' };
    const asked = Promise.all([api.authorize(principal, check), api.authorize(other, check), api.credentialRefusal({ ...principal, id: 'd3' })]);
    await new Promise((r) => setTimeout(r, 20));
    write('o1');
    await api.pollChanges();
    release();
    expect((await asked).slice(0, 2).map((d) => (d as { allowed: boolean }[])[0]!.allowed)).toEqual([true, true]); // used for the packets that asked
    state.hold = null;
    state.allowed = false;
    clock.t += 10;
    const next = await Promise.all([api.authorize(principal, check), api.authorize(other, check), api.credentialRefusal({ ...principal, id: 'd3' })]);
    expect(next).toEqual([[{ ...check[0], allowed: false, status: 403 }], [{ ...check[0], allowed: false, status: 403 }], 'the device key was rotated']);
    expect(state.items).toEqual([3, 3]);
  });

  it('queues at most maxQueued calls; beyond, a call fails at once with 503', async () => {
    const s = await serveAccess();
    let release!: () => void;
    s.state.hold = new Promise<void>((r) => (release = r));
    const api = new InternalApi({ workerUrl: s.url, bridgeSecret: 's', maxInFlight: 1, maxQueued: 2 });
    // One a turn, so that each is a request of its own (questions of one turn leave as one).
    const calls: Promise<PromiseSettledResult<unknown>>[] = [];
    for (const i of [1, 2, 3, 4]) {
      calls.push(Promise.allSettled([api.authorize(principal, [{ channel: `q${i}`, action: 'messages:publish' }])]).then(([r]) => r!));
      await nextTurn();
    }
    await new Promise((r) => setTimeout(r, 20));
    release();
    const results = await Promise.all(calls);
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
