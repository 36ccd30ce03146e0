import type { IConnectPacket } from 'mqtt-packet';
import { describe, expect, it, vi } from 'vitest';
import { setup, text, VERSIONS, type Version } from './harness';

const T = 'channels/ch-1/messages';
/** A session that outlives the connection: 3.1.1 Clean Session 0; v5 Clean Start 0 + Session Expiry. */
const persistent = (v: Version, expiry = 300): Partial<IConnectPacket> => ({ clientId: 'keeper', clean: false, ...(v === 5 ? { properties: { sessionExpiryInterval: expiry } } : {}) });
const willOn = (topic = 'status') => ({ topic: `${T}/${topic}`, payload: Buffer.from('gone'), qos: 1 as const, retain: false });
const wills = (t: ReturnType<typeof setup>) => t.platform.published.filter((p) => p.subtopic === 'status').length;

describe.each(VERSIONS)('sessions, protocol level %i', (v) => {
  it('a clean session ends with the connection', async () => {
    const t = setup();
    const c = await t.connected(v, { clientId: 'k' });
    await c.subscribe(`${T}/#`);
    c.send({ cmd: 'disconnect' });
    await c.closedYet();
    const again = t.client(v);
    expect((await again.connect({ clientId: 'k' })).sessionPresent).toBe(false);
    await t.platform.inject('ch-1', 'a', 'x');
    expect(await again.drain()).toEqual([]);
  });

  it('a persistent session resumes: subscriptions kept, messages published meanwhile delivered in order', async () => {
    const t = setup();
    const c = await t.connected(v, persistent(v));
    await c.subscribe(`${T}/#`);
    c.send({ cmd: 'disconnect' });
    await c.closedYet();
    for (const m of ['while 1', 'while 2']) await t.platform.inject('ch-1', 'a', m);
    const back = t.client(v);
    expect((await back.connect(persistent(v))).sessionPresent).toBe(true);
    const got = (await back.drain()).filter((p) => p.cmd === 'publish');
    expect(got.map((p) => p.cmd === 'publish' && [text(p), p.dup, p.retain])).toEqual([['while 1', false, false], ['while 2', false, false]]);
    for (const p of got) back.send({ cmd: 'puback', messageId: p.messageId! });
    await t.platform.inject('ch-1', 'a', 'live');
    expect(text(await back.next('publish'))).toBe('live');
  });

  it('redelivers an unacknowledged QoS 1 message with DUP and the same packet id; acknowledged ones are not resent [MQTT-4.4.0-1]', async () => {
    const t = setup();
    const c = await t.connected(v, persistent(v));
    await c.subscribe(`${T}/#`);
    await t.platform.inject('ch-1', 'a', 'acked');
    await t.platform.inject('ch-1', 'a', 'not acked');
    const [acked, pending] = (await c.drain()).filter((p) => p.cmd === 'publish');
    c.send({ cmd: 'puback', messageId: acked!.messageId! });
    await t.clock.advance(0);
    c.drop();
    await c.closedYet();
    const back = t.client(v);
    expect((await back.connect(persistent(v))).sessionPresent).toBe(true);
    const again = (await back.drain()).filter((p) => p.cmd === 'publish');
    expect(again.map((p) => p.cmd === 'publish' && [text(p), p.dup, p.messageId])).toEqual([['not acked', true, pending!.messageId]]);
  });

  it('resends PUBREL, not the PUBLISH, for a QoS 2 delivery the client had received', async () => {
    const t = setup();
    const c = await t.connected(v, persistent(v));
    await c.subscribe({ topic: `${T}/#`, qos: 2 });
    await t.platform.inject('ch-1', 'a', 'exactly once');
    const p = await c.next('publish');
    c.send({ cmd: 'pubrec', messageId: p.messageId! });
    await c.next('pubrel');
    c.drop();
    await c.closedYet();
    const back = t.client(v);
    await back.connect(persistent(v));
    const got = await back.drain();
    expect(got.map((x) => [x.cmd, x.messageId])).toEqual([['pubrel', p.messageId]]);
    back.send({ cmd: 'pubcomp', messageId: p.messageId! });
  });

  /**
   * A QoS 2 delivery in flight (PUBREC lost with the connection, or never sent) that its channel no
   * longer keeps cannot be resent: its exchange is completed on its packet id with PUBREL, and the id
   * is free again once the client answers PUBCOMP — not held until the session ends, once per resume.
   */
  it('a QoS 2 delivery its channel no longer keeps is completed with PUBREL on resume; after PUBCOMP its packet id is free, resume after resume', async () => {
    const t = setup();
    t.platform.recentWindow = 2;
    let c = await t.connected(v, persistent(v));
    await c.subscribe({ topic: `${T}/#`, qos: 2 });
    for (let round = 0; round < 3; round++) {
      await t.platform.inject('ch-1', 'a', `lost ${round}`, { qos: 2 });
      const lost = await c.next('publish');
      expect(text(lost)).toBe(`lost ${round}`);
      c.drop();
      await c.closedYet();
      for (let i = 0; i < 3; i++) await t.platform.inject('ch-1', 'a', `after ${round}.${i}`, { qos: 2 });
      c = t.client(v);
      expect((await c.connect(persistent(v))).sessionPresent).toBe(true);
      const got = await c.drain();
      expect(got.filter((p) => p.cmd === 'pubrel').map((p) => p.messageId)).toEqual([lost.messageId]);
      // What the channel still keeps comes as usual, on other ids; the client completes it all.
      const resent = got.filter((p) => p.cmd === 'publish');
      expect(resent.map((p) => p.cmd === 'publish' && text(p))).toEqual([`after ${round}.1`, `after ${round}.2`]);
      expect(resent.map((p) => p.messageId)).not.toContain(lost.messageId);
      c.send({ cmd: 'pubcomp', messageId: lost.messageId!, ...(v === 5 ? { reasonCode: 0x92 } : {}) });
      for (const p of resent) c.send({ cmd: 'pubrec', messageId: p.messageId! });
      for (const p of resent) expect((await c.next('pubrel')).messageId).toBe(p.messageId);
      for (const p of resent) c.send({ cmd: 'pubcomp', messageId: p.messageId! });
      await c.drain();
    }
    c.send({ cmd: 'disconnect' });
    await c.closedYet();
    // Nothing left in flight: no packet id held for the session's life.
    expect(t.sessions.peek('dev-1\u0000keeper')?.inflight).toEqual([]);
    expect(t.logs.filter((l) => l.includes('their packet ids released (PUBREL)'))).toHaveLength(3);
  });

  it('a session whose stored packet ids are all in use (65,535 QoS 2 deliveries its channel no longer keeps) keeps working: PUBREL for each, then new deliveries', async () => {
    const t = setup();
    const key = 'dev-1\u0000keeper';
    const lease = await t.sessions.open(key, { takenOver: async () => undefined }, false);
    const inflight = Array.from({ length: 65_535 }, (_, i) => ({ packetId: i + 1, channel: 'ch-1', seq: 1_000_000 + i, qos: 2 as const, released: false }));
    await t.sessions.release(key, lease.epoch, { subscriptions: [{ topicFilter: `${T}/#`, qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0, cursors: { 'ch-1': { since: 0, acked: [] } } }], inflight, awaitingRelease: [] }, 300);
    const c = t.client(v);
    expect((await c.connect(persistent(v))).sessionPresent).toBe(true);
    const released = (await c.drain()).filter((p) => p.cmd === 'pubrel');
    expect(released).toHaveLength(65_535);
    // Each id is in use, in the in-flight window (64), until its PUBCOMP: a new delivery waits for room…
    await t.platform.inject('ch-1', 'a', 'new', { qos: 2 });
    expect((await c.drain()).filter((p) => p.cmd === 'publish')).toEqual([]);
    for (const p of released.slice(0, 65_535 - 63)) c.send({ cmd: 'pubcomp', messageId: p.messageId! });
    // …and goes out on a free id once the client has completed enough of them.
    const next = await c.next('publish');
    expect([text(next), next.messageId]).toEqual(['new', 1]);
    for (const p of released.slice(65_535 - 63)) c.send({ cmd: 'pubcomp', messageId: p.messageId! });
    c.send({ cmd: 'pubrec', messageId: 1 });
    expect((await c.next('pubrel')).messageId).toBe(1);
    c.send({ cmd: 'pubcomp', messageId: 1 });
    c.send({ cmd: 'disconnect' });
    await c.closedYet();
    expect(t.sessions.peek(key)?.inflight).toEqual([]);
  });

  it('remembers inbound QoS 2 ids awaiting PUBREL across a reconnect: no second copy', async () => {
    const t = setup();
    const c = await t.connected(v, persistent(v));
    c.send({ cmd: 'publish', topic: `${T}/q2`, payload: 'once', qos: 2, messageId: 7, dup: false, retain: false });
    await c.next('pubrec');
    c.drop();
    await c.closedYet();
    const back = t.client(v);
    await back.connect(persistent(v));
    back.send({ cmd: 'publish', topic: `${T}/q2`, payload: 'once', qos: 2, messageId: 7, dup: true, retain: false });
    await back.next('pubrec');
    back.send({ cmd: 'pubrel', messageId: 7 });
    const comp = await back.next('pubcomp');
    if (v === 5) expect(comp.reasonCode).toBe(0);
    expect(t.platform.published).toHaveLength(1);
  });

  // The connection goes while a QoS 2 publish is being stored (no PUBREC yet); then the store fails
  // (the platform was away: the session must not hold the id, so the resend is stored) or succeeds
  // (the session must hold it, so the resend is answered PUBREC and not stored twice).
  it.each(['failed', 'stored'] as const)('a QoS 2 publish still being stored when the connection went, then %s: the resend makes exactly one stored copy', async (outcome) => {
    const t = setup();
    const c = await t.connected(v, persistent(v));
    t.platform.defer = true;
    c.send({ cmd: 'publish', topic: `${T}/q2`, payload: 'once', qos: 2, messageId: 7, dup: false, retain: false });
    await vi.waitFor(() => expect(t.platform.pendingPublishes).toBe(1));
    c.drop();
    await c.closedYet();
    t.platform.down = outcome === 'failed';
    t.platform.defer = false;
    t.platform.releasePublishes();
    await vi.waitFor(() => expect(t.platform.pendingPublishes).toBe(0));
    t.platform.down = false;
    const back = t.client(v);
    await back.connect(persistent(v));
    // The client never had a PUBREC: it sends the message again.
    back.send({ cmd: 'publish', topic: `${T}/q2`, payload: 'once', qos: 2, messageId: 7, dup: true, retain: false });
    await back.next('pubrec');
    back.send({ cmd: 'pubrel', messageId: 7 });
    await back.next('pubcomp');
    expect(t.platform.published.map((p) => new TextDecoder().decode(p.payload))).toEqual(['once']);
  });

  it('a subscription the device may no longer use is dropped on resume', async () => {
    const t = setup();
    const c = await t.connected(v, persistent(v));
    await c.subscribe(`${T}/#`, 'channels/ch-2/messages/#');
    c.send({ cmd: 'disconnect' });
    await c.closedYet();
    t.platform.channels.get('ch-2')!.subscribers.delete('dev-1');
    const back = t.client(v);
    await back.connect(persistent(v));
    await t.platform.inject('ch-2', 'a', 'not any more');
    await t.platform.inject('ch-1', 'a', 'still');
    expect((await back.drain()).map((p) => p.cmd === 'publish' && text(p))).toEqual(['still']);
  });

  it('takeover keeps the session for the new connection and publishes the old will', async () => {
    const t = setup();
    const first = await t.connected(v, { ...persistent(v), will: willOn() });
    await first.subscribe(`${T}/a`);
    const second = t.client(v);
    expect((await second.connect(persistent(v))).sessionPresent).toBe(true);
    expect(await first.closedYet()).toBe(true);
    expect(wills(t)).toBe(1);
    await t.platform.inject('ch-1', 'a', 'to the new one');
    expect(text(await second.next('publish'))).toBe('to the new one');
  });

  it('a takeover mid-resume keeps every subscription of the session, with its options, cursor and in-flight delivery', async () => {
    const t = setup();
    const c = await t.connected(v, persistent(v));
    await c.subscribe({ topic: `${T}/#`, qos: 1 }, { topic: 'channels/ch-2/messages/#', qos: 2 }, { topic: 'channels/ch-ro/messages/#', qos: 1 });
    await t.platform.inject('ch-ro', 'a', 'acked');
    await t.platform.inject('ch-ro', 'a', 'in flight');
    const [acked, pending] = (await c.drain()).filter((p) => p.cmd === 'publish');
    c.send({ cmd: 'puback', messageId: acked!.messageId! });
    await t.clock.advance(0);
    c.drop();
    await c.closedYet();
    for (const channel of ['ch-1', 'ch-2', 'ch-ro']) await t.platform.inject(channel, 'a', `meanwhile on ${channel}`);
    // The resume's second subscription waits on the platform (its third has not started)…
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const subscribe = t.platform.subscribe.bind(t.platform);
    t.platform.subscribe = async (req, onMessage) => {
      if (req.channel === 'ch-2') await gate;
      return subscribe(req, onMessage);
    };
    const resuming = t.client(v);
    expect((await resuming.connect(persistent(v))).sessionPresent).toBe(true);
    // …when another connection takes the session over.
    const back = t.client(v);
    const connack = back.connect(persistent(v));
    expect(await resuming.closedYet()).toBe(true);
    release();
    expect((await connack).sessionPresent).toBe(true);
    const got = (await back.drain()).flatMap((p) => (p.cmd === 'publish' ? [[text(p), p.qos, p.dup, p.dup ? p.messageId : 0]] : []));
    expect(got.sort()).toEqual([
      ['in flight', 1, true, pending!.messageId],
      ['meanwhile on ch-1', 1, false, 0],
      ['meanwhile on ch-2', 2, false, 0],
      ['meanwhile on ch-ro', 1, false, 0],
    ]);
    back.drop();
    await back.closedYet();
    expect(t.sessions.peek('dev-1\u0000keeper')?.subscriptions.map((s) => [s.topicFilter, s.qos])).toEqual([
      [`${T}/#`, 1],
      ['channels/ch-2/messages/#', 2],
      ['channels/ch-ro/messages/#', 1],
    ]);
  });
});

describe('sessions, MQTT 5', () => {
  it('a session expires Session Expiry Interval seconds after the disconnect; 0 (the default) ends it at once', async () => {
    const t = setup();
    const c = await t.connected(5, persistent(5, 60));
    await c.subscribe(`${T}/#`);
    c.drop();
    await c.closedYet();
    await t.clock.advance(59_000);
    const soon = t.client(5);
    expect((await soon.connect(persistent(5, 60))).sessionPresent).toBe(true);
    soon.drop();
    await soon.closedYet();
    await t.clock.advance(61_000);
    expect((await t.client(5).connect(persistent(5, 0))).sessionPresent).toBe(false);
    expect((await t.client(5).connect(persistent(5, 60))).sessionPresent).toBe(false);
  });

  it('Clean Start discards a stored session', async () => {
    const t = setup();
    const c = await t.connected(5, persistent(5));
    await c.subscribe(`${T}/#`);
    c.send({ cmd: 'disconnect' });
    await c.closedYet();
    expect((await t.client(5).connect({ ...persistent(5), clean: true })).sessionPresent).toBe(false);
  });

  it('DISCONNECT may shorten the session, but not start one from 0 [MQTT-3.14.2-2]', async () => {
    const t = setup();
    const c = await t.connected(5, { clientId: 'zero' });
    c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 100 } });
    expect((await c.next('disconnect')).reasonCode).toBe(0x82);
    const d = await t.connected(5, persistent(5));
    await d.subscribe(`${T}/#`);
    d.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await d.closedYet();
    expect((await t.client(5).connect(persistent(5))).sessionPresent).toBe(false);
  });

  it('DISCONNECT 0x04 publishes the will', async () => {
    const t = setup();
    const c = await t.connected(5, { will: willOn() });
    c.send({ cmd: 'disconnect', reasonCode: 0x04 });
    await c.closedYet();
    await t.clock.advance(0);
    expect(wills(t)).toBe(1);
  });

  it('Will Delay Interval: the will waits, and a reconnect in time cancels it [MQTT-3.1.3-9]', async () => {
    const t = setup();
    const will = { ...willOn(), properties: { willDelayInterval: 10 } };
    const c = await t.connected(5, { ...persistent(5, 60), will });
    c.drop();
    await c.closedYet();
    await t.clock.advance(9000);
    expect(wills(t)).toBe(0);
    await t.connected(5, persistent(5, 60));
    await t.clock.advance(20_000);
    expect(wills(t)).toBe(0);

    const d = await t.connected(5, { ...persistent(5, 60), clientId: 'other', will });
    d.drop();
    await d.closedYet();
    await t.clock.advance(10_000);
    expect(wills(t)).toBe(1);
  });

  it('the will goes when the session ends, if that is sooner: expiry 0, or a reconnect with Clean Start', async () => {
    const t = setup();
    const will = { ...willOn(), properties: { willDelayInterval: 30 } };
    const c = await t.connected(5, { clientId: 'short', will });
    c.drop();
    await c.closedYet();
    await t.clock.advance(0);
    expect(wills(t)).toBe(1);
    const d = await t.connected(5, { ...persistent(5, 600), will });
    d.drop();
    await d.closedYet();
    await t.connected(5, { ...persistent(5, 600), clean: true });
    await t.clock.advance(0);
    expect(wills(t)).toBe(2);
  });

  it('checkpoints cursors to the session store while connected', async () => {
    const t = setup({ sessionCheckpointMs: 500 });
    const c = await t.connected(5, persistent(5));
    await c.subscribe(`${T}/#`);
    await t.platform.inject('ch-1', 'a', 'x');
    const p = await c.next('publish');
    c.send({ cmd: 'puback', messageId: p.messageId! });
    await t.clock.advance(500);
    const stored = t.sessions.peek('dev-1\u0000keeper');
    expect(stored?.subscriptions[0]?.cursors['ch-1']).toEqual({ since: 1, acked: [] });
  });

  it('messages older than the channel keeps are not replayed (the bound of a session)', async () => {
    const t = setup();
    t.platform.recentWindow = 2;
    const c = await t.connected(5, persistent(5));
    await c.subscribe(`${T}/#`);
    c.drop();
    await c.closedYet();
    for (let i = 0; i < 5; i++) await t.platform.inject('ch-1', 'a', String(i));
    const back = t.client(5);
    await back.connect(persistent(5));
    expect((await back.drain()).map((p) => p.cmd === 'publish' && text(p))).toEqual(['3', '4']);
  });
});
