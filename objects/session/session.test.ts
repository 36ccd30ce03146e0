import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { CLOSE_EXPIRED, CLOSE_TAKEN_OVER, SESSION_SUBPROTOCOL, type SessionActorOp, type SessionBridgeOp, type SessionWill } from '../../shared/session-link';
import { checkedFetch } from '../../test/workers/helpers';
import { Inbox, openLink } from '../channel/test-helpers';
import { LINK_SUBPROTOCOL, type LinkMessage } from '../../shared/link';
import { HEADER_SESSION_KEY, TAKEOVER_TIMEOUT_MS, type SessionActor } from './index';
import { SessionStorage } from './store';

const newKey = (): string => `device-${crypto.randomUUID()}\u0000client-1`;
const stub = (key: string) => env.SESSIONS.get(env.SESSIONS.idFromName(key));

type Holder = Inbox<SessionActorOp> & { send(op: SessionBridgeOp): void; ws: WebSocket };

async function connect(key: string): Promise<Holder> {
  const res = await stub(key).fetch('http://session/', { headers: { upgrade: 'websocket', [HEADER_SESSION_KEY]: encodeURIComponent(key) } });
  const ws = res.webSocket;
  if (res.status !== 101 || !ws) throw new Error(`upgrade failed: ${res.status} ${await res.text()}`);
  ws.accept();
  const h = new Inbox<SessionActorOp>(ws, (d) => [JSON.parse(d as string) as SessionActorOp]) as Holder;
  h.send = (op) => ws.send(JSON.stringify(op));
  return h;
}

let ids = 0;
async function open(h: Holder, clean = false, expiry = 60, will?: SessionWill): Promise<{ epoch: number; state: unknown }> {
  const id = ++ids;
  h.send({ op: 'open', id, clean, expiry, ...(will ? { will } : {}) });
  const r = await h.next(TAKEOVER_TIMEOUT_MS + 2000);
  if (r.op !== 'opened' || r.id !== id) throw new Error(`expected opened, got ${JSON.stringify(r)}`);
  return r;
}

async function request(h: Holder, op: SessionBridgeOp): Promise<SessionActorOp> {
  h.send(op);
  return h.next();
}

const stored = (key: string) => runInDurableObject(stub(key), (_o: SessionActor, state) => new SessionStorage(state.storage).read());

describe('session actor', () => {
  it('fences writes by epoch: only the holder socket with the current epoch may save or release', async () => {
    const key = newKey();
    const a = await connect(key);
    const { epoch, state } = await open(a);
    expect(epoch).toBeGreaterThan(0);
    expect(state).toBeNull();
    expect(await request(a, { op: 'save', id: 1, epoch, state: { subscriptions: ['x'] } })).toEqual({ op: 'saved', id: 1, ok: true });
    expect(await request(a, { op: 'save', id: 2, epoch: epoch - 1, state: { stale: true } })).toEqual({ op: 'saved', id: 2, ok: false });
    // A socket that never claimed the session cannot write with the holder's epoch.
    const intruder = await connect(key);
    expect(await request(intruder, { op: 'save', id: 3, epoch, state: { stale: true } })).toEqual({ op: 'saved', id: 3, ok: false });
    expect(await request(intruder, { op: 'release', id: 4, epoch, state: null, expiry: 0 })).toEqual({ op: 'released', id: 4, ok: false });
    expect(JSON.parse((await stored(key))!.state!)).toEqual({ subscriptions: ['x'] });
    // Released: no more checkpoints from that connection.
    expect(await request(a, { op: 'release', id: 5, epoch, state: { subscriptions: ['y'] }, expiry: 60 })).toEqual({ op: 'released', id: 5, ok: true });
    expect(await request(a, { op: 'save', id: 6, epoch, state: { late: true } })).toEqual({ op: 'saved', id: 6, ok: false });
    expect(JSON.parse((await stored(key))!.state!)).toEqual({ subscriptions: ['y'] });
  });

  it('tells the previous holder, waits for its final release, then hands the newer state to the next holder', async () => {
    const key = newKey();
    const a = await connect(key);
    const first = await open(a);
    await request(a, { op: 'save', id: 1, epoch: first.epoch, state: { n: 1 } });
    const b = await connect(key);
    const claimed = open(b);
    expect(await a.next()).toEqual({ op: 'takeover', clean: false });
    // The old holder writes its final state before it says done: that is what the claimant gets.
    expect(await request(a, { op: 'release', id: 2, epoch: first.epoch, state: { n: 2 }, expiry: 60 })).toEqual({ op: 'released', id: 2, ok: true });
    a.send({ op: 'done' });
    const second = await claimed;
    expect(second.state).toEqual({ n: 2 });
    expect(second.epoch).toBeGreaterThan(first.epoch);
    expect((await a.closed).code).toBe(CLOSE_TAKEN_OVER);
    expect(await stored(key)).toMatchObject({ epoch: second.epoch, releasedAt: null });
  });

  it('finds the holder again after the actor was evicted (hibernation: the epoch lives in the socket attachment)', async () => {
    const key = newKey();
    const a = await connect(key);
    const first = await open(a);
    await request(a, { op: 'save', id: 1, epoch: first.epoch, state: { n: 1 } });
    await evictDurableObject(stub(key));
    const b = await connect(key);
    const claimed = open(b);
    expect(await a.next()).toEqual({ op: 'takeover', clean: false });
    a.send({ op: 'done' });
    expect((await claimed).state).toEqual({ n: 1 });
  });

  it('a clean claim discards the state and says so to the previous holder', async () => {
    const key = newKey();
    const a = await connect(key);
    const first = await open(a);
    await request(a, { op: 'release', id: 1, epoch: first.epoch, state: { n: 1 }, expiry: 60 });
    const b = await connect(key);
    const claimed = open(b, true);
    expect(await a.next()).toEqual({ op: 'takeover', clean: true });
    a.send({ op: 'done' });
    expect((await claimed).state).toBeNull();
  });

  it('stops waiting for a holder that does not answer, and keeps its last checkpoint', async () => {
    const key = newKey();
    const a = await connect(key);
    const first = await open(a);
    await request(a, { op: 'save', id: 1, epoch: first.epoch, state: { n: 1 } });
    const b = await connect(key);
    const started = Date.now();
    const second = await open(b);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TAKEOVER_TIMEOUT_MS - 100);
    expect(second.state).toEqual({ n: 1 });
    expect(await a.next()).toEqual({ op: 'takeover', clean: false });
    expect((await a.closed).code).toBe(CLOSE_TAKEN_OVER);
    // Its late release is fenced off.
    expect(await request(b, { op: 'release', id: 2, epoch: first.epoch, state: { n: 0 }, expiry: 60 })).toEqual({ op: 'released', id: 2, ok: false });
  });

  it('keeps the last checkpoint when the holder socket is lost (bridge crash), for the session expiry', async () => {
    const key = newKey();
    const a = await connect(key);
    const first = await open(a, false, 120);
    await request(a, { op: 'save', id: 1, epoch: first.epoch, state: { n: 7 } });
    a.ws.close(1001, 'gone');
    for (let i = 0; i < 50 && (await stored(key))?.releasedAt === null; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await stored(key)).toMatchObject({ expiry: 120, releasedAt: expect.any(Number) });
    const b = await connect(key);
    expect((await open(b)).state).toEqual({ n: 7 });
  });

  it('a lost holder with session expiry 0 leaves nothing', async () => {
    const key = newKey();
    const a = await connect(key);
    const first = await open(a, false, 0);
    await request(a, { op: 'save', id: 1, epoch: first.epoch, state: { n: 1 } });
    a.ws.close(1001, 'gone');
    for (let i = 0; i < 50 && (await stored(key))?.releasedAt === null; i++) await new Promise((r) => setTimeout(r, 20));
    const b = await connect(key);
    expect((await open(b)).state).toBeNull();
  });

  it('expires released state with an alarm and forgets the holder then', async () => {
    const key = newKey();
    const a = await connect(key);
    const first = await open(a);
    await request(a, { op: 'release', id: 1, epoch: first.epoch, state: { n: 1 }, expiry: 1 });
    // Not yet due: the alarm re-arms and the state stays.
    await runDurableObjectAlarm(stub(key));
    expect(JSON.parse((await stored(key))!.state!)).toEqual({ n: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    // workerd may already have run the alarm on time; if not, run it now.
    await runDurableObjectAlarm(stub(key));
    expect(await stored(key)).toBeNull();
    expect((await a.closed).code).toBe(CLOSE_EXPIRED);
    const b = await connect(key);
    const second = await open(b);
    expect(second.state).toBeNull();
    expect(second.epoch).toBeGreaterThan(first.epoch); // epochs never repeat, even after a wipe
  });

  it('leaves no storage behind once a session is forgotten, also after waking again (one actor per client id ever seen)', async () => {
    // The tables of this actor, not the runtime's own (_cf_…, miniflare's __…).
    const tables = (key: string) =>
      runInDurableObject(stub(key), (_o: SessionActor, state) =>
        state.storage.sql
          .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'")
          .toArray()
          .map((r) => r.name),
      );
    const forget = async (key: string) => {
      for (let i = 0; i < 50 && (await stored(key)) !== null; i++) {
        await runDurableObjectAlarm(stub(key));
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    // A clean session (expiry 0), released: what most clients with random ids are.
    const key = newKey();
    const a = await connect(key);
    const first = await open(a, true, 0);
    expect(await tables(key)).toEqual(['meta', 'session']);
    await request(a, { op: 'release', id: 1, epoch: first.epoch, state: null, expiry: 0 });
    await forget(key);
    expect(await stored(key)).toBeNull();
    expect(await tables(key)).toEqual([]);
    // Woken again (evicted, then a socket that only closes): still nothing is created.
    await evictDurableObject(stub(key));
    const idle = await connect(key);
    idle.ws.close(1000, 'bye');
    expect(await tables(key)).toEqual([]);
    // A persistent one that expires, and one whose holder was lost: the same.
    const other = newKey();
    const b = await connect(other);
    const held = await open(b, false, 1);
    await request(b, { op: 'release', id: 2, epoch: held.epoch, state: { n: 1 }, expiry: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    await forget(other);
    expect(await tables(other)).toEqual([]);
    const lostKey = newKey();
    const c = await connect(lostKey);
    await open(c, false, 0);
    c.ws.close(1001, 'gone');
    await new Promise((r) => setTimeout(r, 200));
    await forget(lostKey);
    expect(await tables(lostKey)).toEqual([]);
    // The next claim works as ever, with a newer epoch.
    const d = await connect(key);
    const again = await open(d);
    expect(again.state).toBeNull();
    expect(again.epoch).toBeGreaterThan(first.epoch);
    expect(await stored(key)).toMatchObject({ epoch: again.epoch, releasedAt: null });
  });

  it('refuses bad frames with an error op, and stays usable', async () => {
    const key = newKey();
    const a = await connect(key);
    a.ws.send('not json');
    expect(await a.next()).toMatchObject({ op: 'error', code: 'bad_frame' });
    a.ws.send(JSON.stringify({ op: 'open', id: -1, clean: true, expiry: 0 }));
    expect(await a.next()).toMatchObject({ op: 'error', code: 'bad_frame' });
    expect((await open(a)).epoch).toBeGreaterThan(0);
  });

  it('is reached through the worker only with the bridge credential', async () => {
    const key = encodeURIComponent(newKey());
    const bridge = { authorization: `Bearer ${env.BRIDGE_SECRET}` };
    expect((await checkedFetch(`http://edgeflux.test/internal/sessions/${key}`, { headers: { upgrade: 'websocket', authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await checkedFetch(`http://edgeflux.test/internal/sessions/${key}`, { headers: bridge })).status).toBe(426);
    const res = await checkedFetch(`http://edgeflux.test/internal/sessions/${key}`, { headers: { ...bridge, upgrade: 'websocket', 'sec-websocket-protocol': SESSION_SUBPROTOCOL } });
    expect(res.status).toBe(101);
    expect(res.headers.get('sec-websocket-protocol')).toBe(SESSION_SUBPROTOCOL);
    res.webSocket!.accept();
    res.webSocket!.close();
  });

  it('routes any client id to its own actor: slashes, percent signs and spaces survive the path', async () => {
    const raw = `device-${crypto.randomUUID()}\u0000a/b%20c d`;
    const res = await checkedFetch(`http://edgeflux.test/internal/sessions/${encodeURIComponent(raw)}`, { headers: { authorization: `Bearer ${env.BRIDGE_SECRET}`, upgrade: 'websocket' } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const h = new Inbox<SessionActorOp>(ws, (d) => [JSON.parse(d as string) as SessionActorOp]) as Holder;
    h.send = (op) => ws.send(JSON.stringify(op));
    await open(h);
    expect((await stored(raw))?.key).toBe(raw);
    ws.close();
  });

  describe('wills of lost holders', () => {
    const willOn = (channel: string, delay: number): SessionWill => ({ channel, subtopic: 'status', publisher: 'dev-9', contentType: 'text/plain', payload: btoa('gone'), retain: false, delay, properties: [['k', 'v']] });
    const lose = async (key: string, h: Holder) => {
      h.ws.close(1001, 'bridge crashed');
      for (let i = 0; i < 50 && (await stored(key))?.releasedAt === null; i++) await new Promise((r) => setTimeout(r, 20));
    };
    const wills = async (channel: string) => {
      const link = await openLink(channel, LINK_SUBPROTOCOL);
      link.send([{ op: 'subscribe', sub: 1, filter: '#', since: 0 }]);
      const ops = await link.drain(300);
      return ops.filter((o): o is LinkMessage => o.op === 'message').map((m) => [
        new TextDecoder().decode(m.envelope.payload), m.envelope.publisher, m.envelope.subtopic, m.properties, ...(m.qos !== undefined ? [m.qos] : []),
        ...(m.format !== undefined || m.responseTopic !== undefined || m.correlation !== undefined ? [[m.format, m.responseTopic, m.correlation && [...m.correlation]]] : []),
      ]);
    };

    it('publishes the will of a holder whose bridge vanished', async () => {
      const key = newKey();
      const channel = crypto.randomUUID();
      const a = await connect(key);
      await open(a, false, 60, { ...willOn(channel, 0), qos: 1, format: 2, responseTopic: `channels/${channel}/messages/re`, correlation: 'BwA=' });
      await lose(key, a);
      await runDurableObjectAlarm(stub(key));
      // With the will's QoS, so subscribers get it at min(1, granted); its MQTT 5 fields unaltered.
      expect(await wills(channel)).toEqual([['gone', 'dev-9', 'status', [['k', 'v']], 1, [2, `channels/${channel}/messages/re`, [7, 0]]]]);
      expect(await stored(key)).toMatchObject({ will: null, willDue: null });
    });

    it('a reconnect within the will delay cancels it; a Clean Start reconnect sends it at once', async () => {
      for (const clean of [false, true]) {
        const key = newKey();
        const channel = crypto.randomUUID();
        const a = await connect(key);
        await open(a, false, 600, willOn(channel, 300));
        await lose(key, a);
        expect((await stored(key))?.willDue).toBeGreaterThan(Date.now() + 200_000);
        await open(await connect(key), clean);
        expect(await wills(channel)).toEqual(clean ? [['gone', 'dev-9', 'status', [['k', 'v']]]] : []);
      }
    });

    it('a bridge whose socket dropped attaches again within the grace: the connection goes on, no will, writes accepted', async () => {
      const key = newKey();
      const channel = crypto.randomUUID();
      const a = await connect(key);
      const { epoch } = await open(a, false, 0, willOn(channel, 0));
      await lose(key, a);
      const again = await connect(key);
      expect(await request(again, { op: 'attach', id: 1, epoch })).toEqual({ op: 'attached', id: 1, ok: true });
      expect(await stored(key)).toMatchObject({ epoch, releasedAt: null, willDue: null });
      await new Promise((r) => setTimeout(r, 200)); // past the grace (100 ms in tests)
      await runDurableObjectAlarm(stub(key));
      expect(await wills(channel)).toEqual([]);
      expect(await request(again, { op: 'save', id: 2, epoch, state: { n: 1 } })).toEqual({ op: 'saved', id: 2, ok: true });
      // It is the holder again: a new claim is told.
      const b = await connect(key);
      const claimed = open(b);
      expect(await again.next()).toEqual({ op: 'takeover', clean: false });
      again.send({ op: 'done' });
      expect((await claimed).epoch).toBeGreaterThan(epoch);
    });

    it('refuses to attach once another connection claimed the session', async () => {
      const key = newKey();
      const a = await connect(key);
      const { epoch } = await open(a);
      await lose(key, a);
      await open(await connect(key));
      expect(await request(await connect(key), { op: 'attach', id: 1, epoch })).toEqual({ op: 'attached', id: 1, ok: false });
    });

    it('forgets the will once the bridge released the session (the bridge dealt with it)', async () => {
      const key = newKey();
      const channel = crypto.randomUUID();
      const a = await connect(key);
      const { epoch } = await open(a, false, 60, willOn(channel, 0));
      await request(a, { op: 'release', id: 1, epoch, state: null, expiry: 60 });
      await lose(key, a);
      await runDurableObjectAlarm(stub(key));
      expect(await wills(channel)).toEqual([]);
    });

    it('keeps the will a release leaves with it (willDelay: a bridge shutting down) and publishes it when due, unless the session is claimed first', async () => {
      for (const claimed of [false, true]) {
        const key = newKey();
        const channel = crypto.randomUUID();
        const a = await connect(key);
        // (A bridge leaves min(will delay, session expiry); 0 here so that the alarm finds it due.)
        const { epoch } = await open(a, false, 600, willOn(channel, claimed ? 300 : 0));
        const before = Date.now();
        expect(await request(a, { op: 'release', id: 1, epoch, state: { s: 1 }, expiry: 600, willDelay: claimed ? 300 : 0 })).toEqual({ op: 'released', id: 1, ok: true });
        a.ws.close(1000, 'released');
        const row = await stored(key);
        expect(row?.will).not.toBeNull();
        expect(row?.willDue).toBeGreaterThanOrEqual(before + (claimed ? 300_000 : 0));
        if (claimed) await open(await connect(key));
        else await runDurableObjectAlarm(stub(key));
        expect(await wills(channel)).toEqual(claimed ? [] : [['gone', 'dev-9', 'status', [['k', 'v']]]]);
      }
    });
  });
});
