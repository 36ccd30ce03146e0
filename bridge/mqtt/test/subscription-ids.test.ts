import type { IConnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { setup, text, type TestClient } from './harness';

/**
 * MQTT 5 Subscription Identifiers (docs/mqtt.md "Subscription Identifiers"): stored with the
 * subscription [MQTT 5 §3.8.2.1.2], sent with every PUBLISH it causes [MQTT-3.3.4-3] — one copy
 * for overlapping subscriptions, with all their identifiers [MQTT-3.3.4-4]; a shared group's copy
 * apart, with its own [MQTT-3.3.4-5] — and kept by a persistent session.
 */
const T = 'channels/ch-1/messages';
const MAX_ID = 268_435_455;
const dev2 = { username: 'dev-2', password: Buffer.from('key-2') };
const persistent = (clientId: string): Partial<IConnectPacket> => ({ clientId, clean: false, properties: { sessionExpiryInterval: 300 } });
const publishes = (ps: Packet[]): IPublishPacket[] => ps.filter((p): p is IPublishPacket => p.cmd === 'publish');
/** A PUBLISH's identifiers as a sorted list (their order is not significant [MQTT-3.3.4-4]); [] for none. */
const ids = (p: IPublishPacket | undefined): number[] => {
  const v = p?.properties?.subscriptionIdentifier;
  return v === undefined ? [] : (Array.isArray(v) ? [...v] : [v]).sort((a, b) => a - b);
};
let nextMessageId = 100;
/** One SUBSCRIBE packet: `id` (if any) goes with every filter in it. */
async function subscribe(c: TestClient, id: number | undefined, ...filters: (string | { topic: string; qos?: 0 | 1 | 2; rh?: number })[]) {
  c.send({
    cmd: 'subscribe',
    messageId: nextMessageId++,
    ...(id !== undefined ? { properties: { subscriptionIdentifier: id } } : {}),
    subscriptions: filters.map((f) => (typeof f === 'string' ? { topic: f, qos: 1 as const } : { qos: 1 as const, ...f })),
  });
  return c.next('suback');
}

describe('Subscription Identifiers, MQTT 5', () => {
  it('are stored with the subscription and sent with every PUBLISH it causes [MQTT-3.3.4-3]; one SUBSCRIBE gives its identifier to each of its filters', async () => {
    const t = setup();
    const c = await t.connected(5);
    expect((await subscribe(c, 7, `${T}/a/#`, `${T}/b/#`)).granted).toEqual([1, 1]);
    expect((await subscribe(c, MAX_ID, `${T}/max`)).granted).toEqual([1]);
    expect((await subscribe(c, undefined, `${T}/none`)).granted).toEqual([1]);
    for (const s of ['a/1', 'b/1', 'max', 'none']) await t.platform.inject('ch-1', s, s);
    const got = publishes(await c.drain());
    expect(got.map((p) => [text(p), ids(p)])).toEqual([['a/1', [7]], ['b/1', [7]], ['max', [MAX_ID]], ['none', []]]);
    // The other properties are unchanged beside it.
    expect(got[0]?.properties).toMatchObject({ contentType: 'text/plain', subscriptionIdentifier: 7 });
  });

  it('overlapping subscriptions get one copy carrying all their identifiers [MQTT-3.3.4-4]; equal ones twice; one without adds none', async () => {
    const t = setup();
    const c = await t.connected(5);
    await subscribe(c, 1, { topic: `${T}/#`, qos: 0 });
    await subscribe(c, 2, { topic: `${T}/a/+`, qos: 2 });
    await subscribe(c, undefined, `${T}/a/b`);
    await subscribe(c, 5, `channels/+/messages/a/b`, `${T}/+/b`);
    await t.platform.inject('ch-1', 'a/b', 'all');
    await t.platform.inject('ch-1', 'a/c', 'two');
    await t.platform.inject('ch-1', 'z', 'one');
    const got = publishes(await c.drain());
    expect(got.map((p) => [text(p), p.qos, ids(p)])).toEqual([
      ['all', 2, [1, 2, 5, 5]],
      ['two', 2, [1, 2]],
      ['one', 0, [1]],
    ]);
  });

  it('a re-SUBSCRIBE of the same filter replaces the identifier; one without removes it [MQTT 5 §3.8.2.1.2]; retained messages on subscribe carry it', async () => {
    const t = setup();
    await t.platform.inject('ch-1', 'state', 'on', { retain: true });
    const c = await t.connected(5);
    await subscribe(c, 4, `${T}/#`);
    const [retained] = publishes(await c.drain());
    expect([text(retained!), retained!.retain, ids(retained)]).toEqual(['on', true, [4]]);
    await subscribe(c, 6, `${T}/#`);
    const [again] = publishes(await c.drain());
    expect([again!.retain, ids(again)]).toEqual([true, [6]]);
    await t.platform.inject('ch-1', 'live', 'x');
    expect(ids(await c.next('publish'))).toEqual([6]);
    await subscribe(c, undefined, `${T}/#`);
    const [plain] = publishes(await c.drain());
    expect([plain!.retain, ids(plain)]).toEqual([true, []]);
    await t.platform.inject('ch-1', 'live', 'y');
    const live = await c.next('publish');
    expect(live.properties).not.toHaveProperty('subscriptionIdentifier');
  });

  /**
   * `channels/+/messages/#` re-SUBSCRIBEd with identifier 2: while its second channel's platform
   * subscription is on its way (gated), the first has both the old handle and the new one open, and
   * a message there reaches the outbox from both. It is one subscription's, and carries the identifier
   * in effect when it is sent: 2 once the re-SUBSCRIBE took effect, 1 if it failed.
   */
  it.each([
    ['took effect: the new identifier alone', false, [2]],
    ['failed: the old identifier alone', true, [1]],
  ] as const)('a message arriving while a re-SUBSCRIBE of the same filter is set up carries one identifier — %s', async (_name, fails, expected) => {
    const t = setup();
    const c = await t.connected(5);
    await subscribe(c, 1, 'channels/+/messages/#');
    await t.platform.inject('ch-1', 'before', 'x');
    expect(ids(await c.next('publish'))).toEqual([1]);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const platformSubscribe = t.platform.subscribe.bind(t.platform);
    t.platform.subscribe = async (req, onMessage) => {
      if (req.channel === 'ch-2') {
        await gate;
        if (fails) throw new Error('platform failed');
      }
      return platformSubscribe(req, onMessage);
    };
    c.send({ cmd: 'subscribe', messageId: 50, properties: { subscriptionIdentifier: 2 }, subscriptions: [{ topic: 'channels/+/messages/#', qos: 1 }] });
    for (let i = 0; i < 5; i++) await Promise.resolve();
    await t.platform.inject('ch-1', 'during', 'y');
    release();
    expect((await c.next('suback')).granted).toEqual([fails ? 0x80 : 1]);
    const got = publishes(await c.drain());
    expect(got.map((p) => [text(p), ids(p)])).toEqual([['y', expected]]);
    await t.platform.inject('ch-1', 'after', 'z');
    expect(ids(await c.next('publish'))).toEqual(expected);
  });

  it('a shared subscription’s copy carries only its own identifier, the non-shared copy only the others’ [MQTT-3.3.4-5]', async () => {
    const t = setup();
    const c = await t.connected(5);
    await subscribe(c, 9, `$share/g/${T}/#`);
    await subscribe(c, 1, `${T}/#`);
    await subscribe(c, 2, `${T}/s/+`);
    await subscribe(c, undefined, `$share/h/${T}/s/x`);
    await t.platform.inject('ch-1', 's/x', 'copies');
    const got = publishes(await c.drain());
    expect(got.map((p) => ids(p)).sort()).toEqual([[], [1, 2], [9]]);
    expect(new Set(got.map((p) => p.messageId)).size).toBe(3);
  });

  it('Subscription Identifier 0 or given twice is a protocol error (DISCONNECT 0x82); so is one in a PUBLISH from the client [MQTT-3.3.4-6]', async () => {
    const t = setup();
    const zero = await t.connected(5);
    zero.send({ cmd: 'subscribe', messageId: 1, properties: { subscriptionIdentifier: 0 }, subscriptions: [{ topic: `${T}/#`, qos: 1 }] });
    expect((await zero.next('disconnect')).reasonCode).toBe(0x82);
    expect(await zero.closedYet()).toBe(true);
    // Two of them, whatever the order and whether one is 0 (mqtt-packet writes one property of each
    // name, so the bytes by hand; alone, its parser kept 0-then-4 as 4).
    for (const [first, second] of [[3, 4], [4, 0], [0, 4]]) {
      const twice = await t.connected(5);
      twice.raw(Buffer.from([0x82, 13, 0, 1, 4, 0x0b, first!, 0x0b, second!, 0, 3, 0x61, 0x2f, 0x62, 1]));
      const refused = await twice.next('disconnect');
      expect([first, second, refused.reasonCode, refused.properties?.reasonString]).toEqual([first, second, 0x82, expect.stringMatching(/subscriptionIdentifier given 2 times/)]);
      expect(twice.received.filter((p) => p.cmd === 'suback')).toEqual([]);
      expect(await twice.closedYet()).toBe(true);
    }
    const pub = await t.connected(5, dev2);
    pub.publish(`${T}/a`, 'x', 1, { properties: { subscriptionIdentifier: 3 } });
    expect((await pub.next('disconnect')).reasonCode).toBe(0x82);
    expect(t.platform.published).toEqual([]);
    // The largest one is taken.
    const max = await t.connected(5);
    expect((await subscribe(max, MAX_ID, `${T}/#`)).granted).toEqual([1]);
  });

  it("a PUBLISH that the identifiers make larger than the client's Maximum Packet Size is discarded as if delivered [MQTT-3.1.2-25]", async () => {
    const t = setup();
    // The size of the PUBLISH without identifiers, as a subscriber without a maximum gets it.
    const probe = await t.connected(5, { clientId: 'probe' });
    await subscribe(probe, undefined, `${T}/m/#`);
    await t.platform.inject('ch-1', 'm/1', 'x'.repeat(100));
    const sized = await probe.next('publish');
    const remaining = sized.length ?? 0;
    expect(remaining).toBeGreaterThanOrEqual(128);
    const bytes = 1 + 2 + remaining; // fixed header byte, two bytes of remaining length, the rest
    const plain = await t.connected(5, { clientId: 'plain', properties: { maximumPacketSize: bytes } });
    const withId = await t.connected(5, { clientId: 'with-id', properties: { maximumPacketSize: bytes, receiveMaximum: 1 } });
    await subscribe(plain, undefined, `${T}/m/#`);
    await subscribe(withId, 3, `${T}/m/#`);
    await t.platform.inject('ch-1', 'm/2', 'x'.repeat(100));
    await t.platform.inject('ch-1', 'm/3', 'small');
    expect(publishes(await plain.drain()).map((p) => [p.topic, ids(p)])).toEqual([[`${T}/m/2`, []], [`${T}/m/3`, []]]);
    // The big one is discarded (it does not hold the in-flight window of 1); the next goes out.
    expect(publishes(await withId.drain()).map((p) => [p.topic, ids(p)])).toEqual([[`${T}/m/3`, [3]]]);
    expect(t.logs.some((l) => l.includes('with-id') && l.includes('discarded'))).toBe(true);
  });

  it('3.1.1 deliveries carry no properties, whatever a v5 subscriber of the same message has', async () => {
    const t = setup();
    const v4 = await t.connected(4);
    const v5 = await t.connected(5, dev2);
    await v4.subscribe(`${T}/#`);
    await subscribe(v5, 8, `${T}/#`);
    await t.platform.inject('ch-1', 'a', 'x');
    expect((await v4.next('publish')).properties).toBeUndefined();
    expect(ids(await v5.next('publish'))).toEqual([8]);
  });
});

describe('Subscription Identifiers and persistent sessions, MQTT 5', () => {
  it('survive the session: saved with it, sent with what is replayed on resume and live after it; the DUP resend carries what was sent', async () => {
    const t = setup();
    const c = await t.connected(5, persistent('keeper'));
    await subscribe(c, 1, `${T}/#`);
    await subscribe(c, 2, `${T}/a/+`);
    await subscribe(c, undefined, `${T}/a/b`);
    await t.platform.inject('ch-1', 'a/b', 'in flight');
    const [first] = publishes(await c.drain());
    expect(ids(first)).toEqual([1, 2]);
    await t.clock.advance(1000); // checkpoint
    const saved = t.sessions.peek(`dev-1\u0000keeper`);
    expect(saved?.subscriptions.map((s) => [s.topicFilter, s.subscriptionId])).toEqual([[`${T}/#`, 1], [`${T}/a/+`, 2], [`${T}/a/b`, undefined]]);
    expect(saved?.inflight).toEqual([expect.objectContaining({ packetId: first!.messageId, subscriptionIds: [1, 2] })]);
    c.drop();
    await c.closedYet();
    await t.platform.inject('ch-1', 'a/c', 'while away');
    const back = t.client(5);
    expect((await back.connect(persistent('keeper'))).sessionPresent).toBe(true);
    const got = publishes(await back.drain());
    expect(got.map((p) => [text(p), p.dup, p.messageId === first!.messageId, ids(p)])).toEqual([
      ['in flight', true, true, [1, 2]],
      ['while away', false, false, [1, 2]],
    ]);
    for (const p of got) back.send({ cmd: 'puback', messageId: p.messageId! });
    await t.platform.inject('ch-1', 'z', 'live');
    expect(ids(await back.next('publish'))).toEqual([1]);
  });

  it('the DUP resend carries the identifiers it was first sent with, though the resumed subscriptions would now give others', async () => {
    const t = setup();
    const c = await t.connected(5, persistent('changed'));
    await subscribe(c, 1, `${T}/#`);
    await subscribe(c, 2, `${T}/a/+`);
    await t.platform.inject('ch-1', 'a/b', 'in flight');
    const [first] = publishes(await c.drain());
    expect(ids(first)).toEqual([1, 2]);
    // Re-subscribed with another identifier while the message is in flight: not resent on this connection.
    await subscribe(c, 3, `${T}/a/+`);
    expect(publishes(await c.drain())).toEqual([]);
    c.drop();
    await c.closedYet();
    const back = t.client(5);
    await back.connect(persistent('changed'));
    const [dup] = publishes(await back.drain());
    expect([text(dup!), dup!.dup, dup!.messageId, ids(dup)]).toEqual(['in flight', true, first!.messageId, [1, 2]]);
    back.send({ cmd: 'puback', messageId: dup!.messageId! });
    await t.platform.inject('ch-1', 'a/b', 'new');
    expect(ids(await back.next('publish'))).toEqual([1, 3]);
  });

  it('a shared subscription’s in-flight delivery is resent on resume with its own identifier', async () => {
    const t = setup();
    const a = await t.connected(5, persistent('member'));
    await subscribe(a, 9, `$share/g/${T}/#`);
    await t.platform.inject('ch-1', 'x', 'shared');
    const [first] = publishes(await a.drain());
    expect(ids(first)).toEqual([9]);
    a.drop();
    await a.closedYet();
    const back = t.client(5);
    await back.connect(persistent('member'));
    const [again] = publishes(await back.drain());
    expect([text(again!), again!.dup, again!.messageId, ids(again)]).toEqual(['shared', true, first!.messageId, [9]]);
  });
});
