import type { IConnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { createMqttServer } from '../server';
import { MemorySessionStore, type SessionHolder, type SessionLease } from '../session';
import { setup, TestClient, text, VERSIONS, type Version } from './harness';

const T = 'channels/ch-1/messages';
const SHARE = `$share/g9/${T}/psi/#`;
/** A persistent session: 3.1.1 Clean Session 0; v5 Clean Start 0 + Session Expiry Interval. */
const persistent = (v: Version, clientId: string, expiry = 120): Partial<IConnectPacket> => ({ clientId, clean: false, ...(v === 5 ? { properties: { sessionExpiryInterval: expiry } } : {}) });
const publishes = (ps: Packet[]): IPublishPacket[] => ps.filter((p): p is IPublishPacket => p.cmd === 'publish');
const seen = (ps: Packet[]) => publishes(ps).map((p) => [text(p), p.dup]);

/**
 * Shared subscriptions whose members are persistent sessions (docs/mqtt.md "Shared subscriptions
 * and sessions"): what the group is sent while every member is away, what a member had in flight
 * when it dropped, and a client subscribed to a filter both shared and not.
 */
describe.each(VERSIONS)('shared subscriptions and sessions, protocol level %i', (v) => {
  it('a member that drops with a QoS 1 delivery unacknowledged gets it again when it resumes: DUP, same packet id [MQTT-4.4.0-1]', async () => {
    const t = setup();
    const a = await t.connected(v, persistent(v, 'a'));
    await a.subscribe(SHARE);
    await t.platform.inject('ch-1', 'psi/1', 'in flight');
    const [first] = publishes(await a.drain());
    expect(first).toMatchObject({ qos: 1, dup: false });
    a.drop();
    await a.closedYet();
    const back = t.client(v);
    expect((await back.connect(persistent(v, 'a'))).sessionPresent).toBe(true);
    const again = publishes(await back.drain());
    expect(again.map((p) => [text(p), p.dup, p.messageId])).toEqual([['in flight', true, first!.messageId]]);
  });

  it('while its only member is away the group waits, unsubscribed: what was published meanwhile arrives when it resumes, in order', async () => {
    const t = setup();
    const a = await t.connected(v, persistent(v, 'a'));
    await a.subscribe(SHARE);
    a.send({ cmd: 'disconnect' });
    await a.closedYet();
    expect(t.platform.activeSubscriptions).toBe(0);
    for (const n of [1, 2, 3]) await t.platform.inject('ch-1', 'psi/x', `queued ${n}`, { qos: 1 });
    const back = t.client(v);
    expect((await back.connect(persistent(v, 'a'))).sessionPresent).toBe(true);
    const got = publishes(await back.drain());
    expect(got.map((p) => [text(p), p.qos, p.dup])).toEqual([['queued 1', 1, false], ['queued 2', 1, false], ['queued 3', 1, false]]);
    for (const p of got) back.send({ cmd: 'puback', messageId: p.messageId! });
    await t.platform.inject('ch-1', 'psi/x', 'live');
    expect(seen(await back.drain())).toEqual([['live', false]]);
  });

  it('the backlog goes to the first member back; what the group had completed is not sent again', async () => {
    const t = setup();
    const [a, b] = [await t.connected(v, persistent(v, 'a')), await t.connected(v, persistent(v, 'b'))];
    for (const m of [a, b]) await m.subscribe(SHARE);
    for (const n of [1, 2]) await t.platform.inject('ch-1', 'psi/x', `done ${n}`);
    for (const m of [a, b]) {
      for (const p of publishes(await m.drain())) m.send({ cmd: 'puback', messageId: p.messageId! });
      await t.clock.advance(0);
    }
    a.send({ cmd: 'disconnect' });
    await a.closedYet();
    await t.platform.inject('ch-1', 'psi/x', 'to b');
    expect(seen(await b.drain())).toEqual([['to b', false]]);
    b.drop();
    await b.closedYet();
    for (const n of [1, 2]) await t.platform.inject('ch-1', 'psi/x', `backlog ${n}`);
    const a2 = t.client(v);
    await a2.connect(persistent(v, 'a'));
    // 'to b' was in flight to b, whose session lives: it waits for b, not a [MQTT 5 §4.8.2].
    expect(seen(await a2.drain())).toEqual([['backlog 1', false], ['backlog 2', false]]);
    const b2 = t.client(v);
    await b2.connect(persistent(v, 'b'));
    expect(seen(await b2.drain())).toEqual([['to b', true]]);
  });

  it('a member whose session ends (a reconnect with Clean Start) hands what it had in flight to another member', async () => {
    const t = setup();
    const a = await t.connected(v, persistent(v, 'a'));
    const other = await t.connected(v, { clientId: 'other' });
    for (const m of [a, other]) await m.subscribe(SHARE);
    await t.platform.inject('ch-1', 'psi/x', 'for a');
    expect(seen(await a.drain())).toEqual([['for a', false]]);
    a.drop();
    await a.closedYet();
    expect(await other.drain()).toEqual([]);
    const fresh = t.client(v);
    expect((await fresh.connect({ clientId: 'a', clean: true })).sessionPresent).toBe(false);
    expect(seen(await other.drain())).toEqual([['for a', false]]);
    expect(await fresh.drain()).toEqual([]);
  });

  it('a client with a shared and a non-shared subscription to one filter gets two copies, each resent with its own packet id on resume [MQTT 5 §4.8.2]', async () => {
    const t = setup();
    const a = await t.connected(v, persistent(v, 'a'));
    await a.subscribe(`$share/pg/${T}/psi/#`, `${T}/psi/#`);
    await t.platform.inject('ch-1', 'psi/x', 'twice');
    const copies = publishes(await a.drain());
    expect(copies.map((p) => text(p))).toEqual(['twice', 'twice']);
    expect(new Set(copies.map((p) => p.messageId)).size).toBe(2);
    a.drop();
    await a.closedYet();
    const back = t.client(v);
    await back.connect(persistent(v, 'a'));
    const again = publishes(await back.drain());
    expect(again.map((p) => [text(p), p.dup, p.messageId]).sort()).toEqual(copies.map((p) => ['twice', true, p.messageId]).sort());
  });

  it('a group resumes after a bridge restart from the cursor saved in its member’s session', async () => {
    const t = setup();
    const a = await t.connected(v, persistent(v, 'a'));
    await a.subscribe(SHARE);
    await t.platform.inject('ch-1', 'psi/x', 'acked');
    await t.platform.inject('ch-1', 'psi/x', 'in flight');
    const [acked, pending] = publishes(await a.drain());
    a.send({ cmd: 'puback', messageId: acked!.messageId! });
    await t.clock.advance(0);
    await t.server.close();
    await t.platform.inject('ch-1', 'psi/x', 'while down');
    const restarted = createMqttServer({ platform: t.platform, sessions: t.sessions, clock: t.clock });
    const back = new TestClient(restarted, v);
    expect((await back.connect(persistent(v, 'a'))).sessionPresent).toBe(true);
    const got = publishes(await back.drain());
    expect(got.map((p) => [text(p), p.dup, p.messageId === pending!.messageId])).toEqual([['in flight', true, true], ['while down', false, false]]);
  });
});

describe('shared subscriptions and sessions, MQTT 5', () => {
  it('an away member’s in-flight delivery goes to another member when its Session Expiry Interval runs out', async () => {
    const t = setup();
    const a = await t.connected(5, persistent(5, 'a', 10));
    const other = await t.connected(5, { clientId: 'other' });
    for (const m of [a, other]) await m.subscribe(SHARE);
    await t.platform.inject('ch-1', 'psi/x', 'for a');
    expect(seen(await a.drain())).toEqual([['for a', false]]);
    a.drop();
    await a.closedYet();
    await t.clock.advance(9_000);
    expect(await other.drain()).toEqual([]);
    await t.clock.advance(1_000);
    expect(seen(await other.drain())).toEqual([['for a', false]]);
  });

  it('an away member’s in-flight delivery goes to another member once the others have finished 1000 messages past it (the cursor is not held back without bound)', async () => {
    const t = setup();
    const a = await t.connected(5, persistent(5, 'a'));
    const other = await t.connected(5, { clientId: 'other' });
    for (const m of [a, other]) await m.subscribe(SHARE);
    await t.platform.inject('ch-1', 'psi/x', 'for a');
    expect(seen(await a.drain())).toEqual([['for a', false]]);
    a.drop();
    await a.closedYet();
    const got: string[] = [];
    for (let batch = 0; batch < 25; batch++) {
      if (batch < 24) for (let i = 0; i < 50; i++) await t.platform.inject('ch-1', 'psi/x', `n ${batch * 50 + i}`);
      for (const p of publishes(await other.drain())) {
        got.push(text(p));
        other.send({ cmd: 'puback', messageId: p.messageId! });
      }
    }
    expect(got.slice(0, 1001)).not.toContain('for a');
    expect(got).toContain('for a');
  });

  it('a member that had not been sent a delivery yet (queued behind its window) hands it to another member when it drops', async () => {
    const t = setup();
    const a = await t.connected(5, { ...persistent(5, 'a'), properties: { sessionExpiryInterval: 120, receiveMaximum: 1 } });
    await a.subscribe(SHARE);
    for (const n of [1, 2]) await t.platform.inject('ch-1', 'psi/x', `job ${n}`);
    expect(seen(await a.drain())).toEqual([['job 1', false]]);
    const other = await t.connected(5, { clientId: 'other' });
    await other.subscribe(SHARE);
    a.drop();
    await a.closedYet();
    expect(seen(await other.drain())).toEqual([['job 2', false]]);
    const back = t.client(5);
    await back.connect(persistent(5, 'a'));
    expect(seen(await back.drain())).toEqual([['job 1', true]]);
  });
});

/**
 * QoS 2 in flight to a member is that session's alone: completed with it when it reconnects, and
 * if its session ends first, sent to nobody else [MQTT-4.8.2-4, MQTT-4.8.2-5]. (QoS 1: §4.8.2 SHOULD
 * send it to another member, as above.)
 */
describe('shared subscriptions at QoS 2', () => {
  const exactly = (v: Version, clientId: string, expiry = 120) => persistent(v, clientId, expiry);
  const ended = (t: ReturnType<typeof setup>) => t.logs.some((l) => l.includes('not sent to another member [MQTT-4.8.2-5]'));

  it.each(VERSIONS)('a member without a persistent session drops with a QoS 2 PUBLISH unanswered: no other member gets it (level %i)', async (v) => {
    const t = setup();
    const a = await t.connected(v, { clientId: 'a' });
    const other = await t.connected(v, { clientId: 'other' });
    for (const m of [a, other]) await m.subscribe({ topic: SHARE, qos: 2 });
    await t.platform.inject('ch-1', 'psi/x', 'exactly once', { qos: 2 });
    expect(seen(await a.drain())).toEqual([['exactly once', false]]);
    a.drop();
    await a.closedYet();
    expect(await other.drain()).toEqual([]);
    expect(ended(t)).toBe(true);
    // The group goes on past it.
    await t.platform.inject('ch-1', 'psi/x', 'next', { qos: 2 });
    expect(seen(await other.drain())).toEqual([['next', false]]);
  });

  it.each([
    ['a reconnect with Clean Start', async (t: ReturnType<typeof setup>) => void (await t.connected(5, { clientId: 'a', clean: true }))],
    ['its Session Expiry Interval running out', async (t: ReturnType<typeof setup>) => t.clock.advance(120_000)],
  ])('a persistent member’s session ends (%s) with a QoS 2 delivery in flight: no other member gets it', async (_how, end) => {
    const t = setup();
    const a = await t.connected(5, exactly(5, 'a'));
    const other = await t.connected(5, { clientId: 'other' });
    for (const m of [a, other]) await m.subscribe({ topic: SHARE, qos: 2 });
    await t.platform.inject('ch-1', 'psi/x', 'for a', { qos: 2 });
    expect(seen(await a.drain())).toEqual([['for a', false]]);
    a.drop();
    await a.closedYet();
    await end(t);
    expect(await other.drain()).toEqual([]);
    expect(ended(t)).toBe(true);
  });

  it('a QoS 2 delivery held for an away member stays its own past the 1000-message bound, and is completed with it on resume: DUP, same packet id', async () => {
    const t = setup();
    const a = await t.connected(5, exactly(5, 'a', 3600));
    const b = await t.connected(5, { clientId: 'b' });
    for (const m of [a, b]) await m.subscribe({ topic: SHARE, qos: 2 });
    await t.platform.inject('ch-1', 'psi/x', 'pinned', { qos: 2 });
    const [sent] = publishes(await a.drain());
    a.drop();
    await a.closedYet();
    const got: string[] = [];
    // Past 1000 finished above it by the 22nd batch (a QoS 1 delivery would go to b then: above).
    for (let batch = 0; batch < 22; batch++) {
      for (let i = 0; i < 50; i++) await t.platform.inject('ch-1', 'psi/x', `m${batch * 50 + i}`, { qos: 2 });
      for (const p of publishes(await b.drain())) {
        got.push(text(p));
        b.send({ cmd: 'pubrec', messageId: p.messageId! });
        b.send({ cmd: 'pubcomp', messageId: p.messageId! });
      }
      await b.drain();
    }
    expect(got).toHaveLength(1100);
    expect(got).not.toContain('pinned');
    const back = t.client(5);
    await back.connect(exactly(5, 'a', 3600));
    const again = publishes(await back.drain());
    expect(again.map((p) => [text(p), p.dup, p.messageId])).toEqual([['pinned', true, sent!.messageId]]);
  });

  it('a resumed session whose QoS 2 delivery is not resent completes its packet id with PUBREL: the client may be waiting for it', async () => {
    const t = setup();
    const a = await t.connected(5, exactly(5, 'a'));
    await a.subscribe({ topic: SHARE, qos: 2 });
    await t.platform.inject('ch-1', 'psi/x', 'PUBREC lost', { qos: 2 });
    const [sent] = publishes(await a.drain());
    a.drop();
    await a.closedYet();
    // Its subscription does not come back (no longer allowed on ch-1): the delivery is dropped, its id released.
    t.platform.channels.get('ch-1')!.subscribers.delete('dev-1');
    const back = t.client(5);
    expect((await back.connect(exactly(5, 'a'))).sessionPresent).toBe(true);
    expect((await back.drain()).map((p) => [p.cmd, p.messageId])).toEqual([['pubrel', sent!.messageId]]);
    await back.subscribe({ topic: 'channels/ch-2/messages/#', qos: 2 });
    await t.platform.inject('ch-2', 'x', 'new', { qos: 2 });
    const [next] = publishes(await back.drain());
    expect(text(next!)).toBe('new');
    // In use until its PUBCOMP…
    expect(next!.messageId).not.toBe(sent!.messageId);
    back.send({ cmd: 'pubcomp', messageId: sent!.messageId! });
    await back.drain();
    back.send({ cmd: 'disconnect' });
    await back.closedYet();
    // …then no longer the session's.
    expect(t.sessions.peek('dev-1\u0000a')?.inflight.map((r) => r.packetId)).not.toContain(sent!.messageId);
  });

  /**
   * Member a holds 'for a' (sent, not acknowledged) and drops; its resume is held at the
   * authorization of its ch-2 subscription and taken over meanwhile. `sharedFirst`: the shared
   * subscription was made (and so is resumed) before ch-2 — re-offered, not yet resent — or after
   * it — not reached at all. Either way the session's next connection gets 'for a' back.
   */
  async function takenOverMidResume(qos: 1 | 2, sharedFirst: boolean) {
    const t = setup();
    const a = await t.connected(5, exactly(5, 'a'));
    const other = await t.connected(5, { clientId: 'other' });
    for (const topic of sharedFirst ? [SHARE, 'channels/ch-2/messages/#'] : ['channels/ch-2/messages/#', SHARE]) await a.subscribe({ topic, qos });
    await other.subscribe({ topic: SHARE, qos });
    await t.platform.inject('ch-1', 'psi/x', 'for a', { qos });
    const [sent] = publishes(await a.drain());
    a.drop();
    await a.closedYet();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const authorize = t.platform.authorize.bind(t.platform);
    t.platform.authorize = async (principal, checks) => {
      if (checks.some((c) => c.channel === 'ch-2')) await gate;
      return authorize(principal, checks);
    };
    const resuming = t.client(5);
    await resuming.connect(exactly(5, 'a'));
    const back = t.client(5);
    const acked = back.connect(exactly(5, 'a'));
    expect(await resuming.closedYet()).toBe(true);
    release();
    expect((await acked).sessionPresent).toBe(true);
    expect(await other.drain()).toEqual([]);
    const got = publishes(await back.drain());
    expect(got.map((p) => [text(p), p.dup, p.messageId])).toEqual([['for a', true, sent!.messageId]]);
    return { t, back, other };
  }

  it.each([1, 2] as const)('a delivery re-offered on resume stays the member’s if that connection ends before resending it (QoS %i)', async (qos) => {
    await takenOverMidResume(qos, true);
  });

  it.each([1, 2] as const)('a member taken over before its resume reached the shared subscription stays a member, and gets its delivery back (QoS %i)', async (qos) => {
    const { t, back, other } = await takenOverMidResume(qos, false);
    // Still a member: later messages are shared out as before.
    await t.platform.inject('ch-1', 'psi/x', 'next', { qos });
    await t.platform.inject('ch-1', 'psi/x', 'after', { qos });
    expect([...publishes(await back.drain()), ...publishes(await other.drain())].map(text).sort()).toEqual(['after', 'next']);
  });
});

describe('shared subscriptions: expiry timers and claims', () => {
  it('a member away on every channel of `channels/+/…` has one expiry timer, not one per channel', async () => {
    const timersAfterDrop = async (filter: string) => {
      const t = setup();
      const a = await t.connected(5, persistent(5, 'a'));
      await a.subscribe(filter);
      const before = t.clock.pendingTimers;
      a.drop();
      await a.closedYet();
      return t.clock.pendingTimers - before;
    };
    // dev-1 may subscribe on ch-1, ch-2 and ch-ro.
    expect(await timersAfterDrop('$share/g/channels/+/messages/#')).toBe(await timersAfterDrop('$share/g/channels/ch-1/messages/#'));
  });
});

/** A store shared by two bridges that remembers each session's latest holder. */
class WatchedStore extends MemorySessionStore {
  readonly holders = new Map<string, SessionHolder>();
  override open(key: string, holder: SessionHolder, clean: boolean): Promise<SessionLease> {
    this.holders.set(key, holder);
    return super.open(key, holder, clean);
  }
}

describe('shared subscriptions: a member’s session claimed on another bridge', () => {
  const twoBridges = async () => {
    const store = new WatchedStore();
    const t = setup({}, store);
    const a = await t.connected(5, persistent(5, 'a', 3600));
    await a.subscribe({ topic: SHARE, qos: 2 });
    const holder = store.holders.get('dev-1\u0000a')!;
    const bridge2 = createMqttServer({ platform: t.platform, sessions: store, clock: t.clock });
    return { t, a, holder, elsewhere: () => new TestClient(bridge2, 5) };
  };

  it.each([
    ['ends there (Clean Start)', { clientId: 'a', clean: true }],
    ['resumes there', persistent(5, 'a', 3600)],
  ])('when it %s, a QoS 1 delivery it held here goes to a member here, a QoS 2 one is dropped', async (_how, connect) => {
    const { t, a, holder, elsewhere } = await twoBridges();
    await t.platform.inject('ch-1', 'psi/x', 'pinned 1', { qos: 1 });
    await t.platform.inject('ch-1', 'psi/x', 'pinned 2', { qos: 2 });
    const b = await t.connected(5, { clientId: 'b' });
    await b.subscribe({ topic: SHARE, qos: 2 });
    expect(seen(await a.drain()).map(([m]) => m)).toEqual(['pinned 1', 'pinned 2']);
    a.drop();
    await a.closedYet();
    // The durable store keeps listening for claims while this bridge holds deliveries for the session.
    expect(holder.lingering?.()).toBe(true);
    await elsewhere().connect(connect);
    expect(seen(await b.drain())).toEqual([['pinned 1', false]]);
    expect(t.logs.some((l) => l.includes('QoS 2 message 2 on channel ch-1'))).toBe(true);
    expect(holder.lingering?.()).toBe(false);
  });
});
