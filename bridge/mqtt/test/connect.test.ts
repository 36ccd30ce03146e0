import mqtt from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { DurableSessionStore } from '../session-durable';
import { PresenceCount } from '../../platform/presence';
import { setup, VERSIONS, type Version } from './harness';
import { settle } from '../../testing/fake-clock';

/** A local port with nothing listening (connections are refused at once). */
const closedPort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const code = (v: Version, ack: { reasonCode?: number; returnCode?: number }) => (v === 5 ? ack.reasonCode : ack.returnCode);

describe.each(VERSIONS)('CONNECT, protocol level %i', (v) => {
  it.each([
    ['a wrong key', { password: Buffer.from('nope') }, 4, 0x86],
    ['a key of another device', { username: 'dev-2', password: Buffer.from('key-1') }, 4, 0x86],
    ['no password', { password: undefined }, 4, 0x86],
    ['a disabled account (403)', { password: Buffer.from('forbidden') }, 5, 0x87],
  ])('refuses %s with the right CONNACK code, then closes', async (_what, opts, v4, v5) => {
    const t = setup();
    const c = t.client(v);
    expect(code(v, await c.connect(opts))).toBe(v === 5 ? v5 : v4);
    expect(await c.closedYet()).toBe(true);
  });

  it('answers "server unavailable" when the platform cannot be reached', async () => {
    const t = setup();
    t.platform.down = true;
    const c = t.client(v);
    expect(code(v, await c.connect())).toBe(v === 5 ? 0x88 : 3);
    expect(await c.closedYet()).toBe(true);
  });

  it('answers "server unavailable" when the session actors cannot be reached', async () => {
    const port = await closedPort();
    const t = setup({}, new DurableSessionStore({ workerUrl: `http://127.0.0.1:${port}`, bridgeSecret: 'x' }));
    const c = t.client(v);
    expect(code(v, await c.connect())).toBe(v === 5 ? 0x88 : 3);
    expect(await c.closedYet()).toBe(true);
  });

  it('assigns a client id to an empty one with a clean session, refuses it without [MQTT-3.1.3-8]', async () => {
    const t = setup();
    const ok = await t.client(v).connect({ clientId: '' });
    expect(code(v, ok)).toBe(0);
    if (v === 5) expect(ok.properties?.assignedClientIdentifier).toMatch(/^auto-/);
    const c = t.client(v);
    // mqtt-packet will not generate this: clear Clean Session (bit 1 of the flags, byte 9) by hand.
    const bytes = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, clientId: '', keepalive: 0, username: 'dev-1', password: Buffer.from('key-1') });
    bytes[9] = bytes[9]! & ~0x02;
    c.raw(bytes);
    expect(code(v, await c.next('connack'))).toBe(v === 5 ? 0x85 : 2);
    expect(await c.closedYet()).toBe(true);
  });

  it('closes a connection whose first packet is not CONNECT, unanswered [MQTT-3.1.0-1]', async () => {
    const t = setup();
    const c = t.client(v);
    c.send({ cmd: 'pingreq' });
    expect(await c.closedYet()).toBe(true);
    expect(c.received).toEqual([]);
  });

  it('treats a second CONNECT as a protocol violation [MQTT-3.1.0-2]', async () => {
    const t = setup();
    const c = await t.connected(v);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, clientId: 'again', keepalive: 0, username: 'dev-1', password: Buffer.from('key-1') });
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x82);
    expect(await c.closedYet()).toBe(true);
  });

  it('closes a connection that sends no CONNECT in time', async () => {
    const t = setup({ connectTimeoutMs: 5000 });
    const c = t.client(v);
    await t.clock.advance(4999);
    expect(c.closed).toBe(false);
    await t.clock.advance(1);
    expect(await c.closedYet()).toBe(true);
  });

  it('answers a CONNECT the platform takes too long to authenticate with 0x88 / 0x03', async () => {
    const t = setup({ connectTimeoutMs: 5000 });
    t.platform.authenticate = () => new Promise(() => undefined);
    const c = t.client(v);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, clientId: 'slow', keepalive: 0, username: 'dev-1', password: Buffer.from('key-1') });
    await t.clock.advance(5000);
    expect(code(v, await c.next('connack'))).toBe(v === 5 ? 0x88 : 3);
    expect(await c.closedYet()).toBe(true);
  });

  it('enforces keep alive at 1.5× and then publishes the will [MQTT-3.1.2-24]', async () => {
    const t = setup();
    const c = await t.connected(v, { keepalive: 10, will: { topic: 'channels/ch-1/messages/status', payload: Buffer.from('offline'), qos: 1, retain: true } });
    await t.clock.advance(9000);
    c.send({ cmd: 'pingreq' });
    await c.next('pingresp');
    await t.clock.advance(14_999);
    expect(c.closed).toBe(false);
    await t.clock.advance(1);
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x8d);
    expect(await c.closedYet()).toBe(true);
    expect(t.platform.published.map((p) => [p.subtopic, new TextDecoder().decode(p.payload), p.retain])).toEqual([['status', 'offline', true]]);
  });

  it('watches every connection\'s keep alive from one timer: each silent one is closed at its own 1.5×, one that talks stays', async () => {
    const t = setup();
    const quiet10 = await t.connected(v, { keepalive: 10 });
    const quiet20 = await t.connected(v, { keepalive: 20 });
    const chatty = await t.connected(v, { keepalive: 10 });
    // One sweep timer for the server, none per connection.
    expect(t.clock.pendingTimers).toBe(1);
    const closedAt = new Map<string, number>();
    for (let s = 1; s <= 45; s++) {
      await t.clock.advance(1000);
      if (s % 5 === 0 && !chatty.closed) {
        chatty.send({ cmd: 'pingreq' });
        await chatty.next('pingresp');
      }
      for (const [name, c] of [['quiet10', quiet10], ['quiet20', quiet20], ['chatty', chatty]] as const) if (c.closed && !closedAt.has(name)) closedAt.set(name, s);
    }
    // quiet20's deadline (30 s) is acted on within the sweep's granularity (1 s).
    expect(closedAt.get('quiet10')).toBe(15);
    expect(closedAt.get('quiet20')).toBeGreaterThanOrEqual(30);
    expect(closedAt.get('quiet20')).toBeLessThanOrEqual(31);
    expect(closedAt.has('chatty')).toBe(false);
    expect(t.server.context.keepalive.size).toBe(1);
  });

  it('does not publish the will after DISCONNECT [MQTT-3.14.4-3]', async () => {
    const t = setup();
    const c = await t.connected(v, { will: { topic: 'channels/ch-1/messages/status', payload: Buffer.from('offline'), qos: 0, retain: false } });
    c.send({ cmd: 'disconnect' });
    expect(await c.closedYet()).toBe(true);
    await t.clock.advance(1000);
    expect(t.platform.published).toEqual([]);
  });

  it('refuses a will the device may not publish, or with a bad topic', async () => {
    const t = setup();
    const denied = await t.client(v).connect({ will: { topic: 'channels/ch-ro/messages/x', payload: Buffer.from('x'), qos: 0, retain: false } });
    expect(code(v, denied)).toBe(v === 5 ? 0x87 : 5);
    const bad = await t.client(v).connect({ will: { topic: 'status/x', payload: Buffer.from('x'), qos: 0, retain: false } });
    expect(code(v, bad)).toBe(v === 5 ? 0x90 : 5);
  });

  it('refuses a will with QoS 3 as malformed [MQTT-3.1.2-12]: v5 CONNACK 0x81, 3.1.1 closed unanswered', async () => {
    const t = setup();
    const c = t.client(v);
    // mqtt-packet generates (and parses) Will QoS 3 as given.
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, clientId: 'w3', keepalive: 0, username: 'dev-1', password: Buffer.from('key-1'), will: { topic: 'channels/ch-1/messages/w', payload: Buffer.from('x'), qos: 3 as 2, retain: false } });
    if (v === 5) expect((await c.next('connack')).reasonCode).toBe(0x81);
    expect(await c.closedYet()).toBe(true);
    if (v === 4) expect(c.received).toEqual([]);
    expect(t.platform.presenceLog).toEqual([]);
  });

  it('a Password without a User Name: 3.1.1 closes unanswered [MQTT-3.1.2-22 (3.1.1)], v5 authenticates the key alone', async () => {
    const t = setup();
    const c = t.client(v);
    // mqtt-packet will not generate it: flags 0x42 (Password, Clean Session), keep alive 0, client id "p", password "key-1".
    const str = (x: string) => [0, x.length, ...Buffer.from(x)];
    const body = [...str('MQTT'), v, 0x42, 0, 0, ...(v === 5 ? [0] : []), ...str('p'), ...str('key-1')];
    c.raw(Buffer.from([0x10, body.length, ...body]));
    if (v === 4) {
      expect(await c.closedYet()).toBe(true);
      expect(c.received).toEqual([]);
      expect(t.platform.presenceLog).toEqual([]);
    } else expect((await c.next('connack')).reasonCode).toBe(0);
  });

  it('retries a will the platform could not take (503) with back-off, a bounded number of times', async () => {
    const t = setup();
    const will = { topic: 'channels/ch-1/messages/status', payload: Buffer.from('offline'), qos: 1 as const, retain: false };
    const c = await t.connected(v, { will });
    t.platform.down = true;
    c.drop();
    await c.closedYet();
    await t.clock.advance(1000 + 2000);
    expect(t.platform.published).toEqual([]);
    t.platform.down = false;
    await t.clock.advance(4000);
    expect(t.platform.published.map((p) => new TextDecoder().decode(p.payload))).toEqual(['offline']);
    // One that never gets through is given up after five more tries (1 + 2 + 4 + 8 + 16 s).
    const d = await t.connected(v, { will });
    t.platform.down = true;
    d.drop();
    await d.closedYet();
    await t.clock.advance(31_000);
    t.platform.down = false;
    await t.clock.advance(60_000);
    expect(t.platform.published).toHaveLength(1);
    expect(t.logs.filter((l) => l.includes('trying again'))).toHaveLength(3 + 5);
    expect(t.logs.some((l) => /will of dev-1 not published: platform unreachable/.test(l))).toBe(true);
  });

  it('a will waiting to be tried again (503) belongs to its session: a reconnect within the wait is not followed by the old will [MQTT-3.1.3-9]', async () => {
    const t = setup();
    const status = 'channels/ch-1/messages/status';
    const will = { topic: status, payload: Buffer.from('offline'), qos: 1 as const, retain: true };
    const a = await t.connected(v, { clientId: 'dev', will });
    t.platform.refuse = { ok: false, status: 503, code: 'unavailable', message: 'link lost' };
    a.drop();
    await a.closedYet();
    expect(t.logs.some((l) => l.includes('trying again in 1 s'))).toBe(true);
    t.platform.refuse = undefined;
    // Back within the second (Clean Session / Clean Start: the old session ends, so its will goes now, once), and online.
    const back = await t.connected(v, { clientId: 'dev', will });
    back.publish(status, 'online', 1, { retain: true });
    await back.next('puback');
    await t.clock.advance(60_000);
    expect(t.platform.published.map((p) => new TextDecoder().decode(p.payload))).toEqual(['offline', 'online']);
    const retained = [...t.platform.channels.get('ch-1')!.retained.values()].map((d) => new TextDecoder().decode(d.payload));
    expect(retained).toEqual(['online']);
  });

  it('a will waiting to be tried again is dropped when its session is resumed', async () => {
    const t = setup();
    const will = { topic: 'channels/ch-1/messages/status', payload: Buffer.from('offline'), qos: 1 as const, retain: true };
    const persistent = { clientId: 'dev', clean: false, will, ...(v === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}) };
    const a = await t.connected(v, persistent);
    t.platform.refuse = { ok: false, status: 503, code: 'unavailable', message: 'link lost' };
    a.drop();
    await a.closedYet();
    t.platform.refuse = undefined;
    await t.connected(v, persistent);
    await t.clock.advance(60_000);
    expect(t.platform.published).toEqual([]);
    expect(t.logs.some((l) => l.includes('will of dev-1 not tried again: its session was resumed'))).toBe(true);
  });

  if (v === 5)
    it('refuses a will whose payload its Content Type says cannot be (0x99), as the channel would refuse it when it fires', async () => {
      const t = setup();
      const will = (contentType: string, payload: string) => ({ will: { topic: 'channels/ch-1/messages/w', payload: Buffer.from(payload), qos: 0 as const, retain: false, properties: { contentType } } });
      expect(code(5, await t.client(5).connect(will('application/json', 'offline')))).toBe(0x99);
      expect(code(5, await t.client(5).connect(will('application/senml+json', 'offline')))).toBe(0x99);
      expect(code(5, await t.client(5).connect(will('application/senml+json', '[{"n":"temp"}]')))).toBe(0x99);
      expect(code(5, await t.client(5).connect(will('json', '{}')))).toBe(0x99);
      expect(code(5, await t.client(5).connect(will('application/json', '{"state":"offline"}')))).toBe(0);
      expect(code(5, await t.client(5).connect(will('application/senml+json', '[{"n":"online","vb":false}]')))).toBe(0);
      expect(code(5, await t.client(5).connect(will('text/plain', 'offline')))).toBe(0);
    });

  if (v === 5)
    it('a will keeps its Response Topic, Correlation Data and what it gave of Payload Format Indicator and Content Type; a wildcard Response Topic is 0x82, one outside Edgeflux 0x83', async () => {
      const t = setup();
      const will = (properties: object) => ({ will: { topic: 'channels/ch-1/messages/w', payload: Buffer.from('gone'), qos: 1 as const, retain: false, properties } });
      expect(code(5, await t.client(5).connect(will({ responseTopic: 'channels/ch-1/messages/+' })))).toBe(0x82);
      expect(code(5, await t.client(5).connect(will({ responseTopic: 'replies/x' })))).toBe(0x83);
      const c = await t.connected(5, will({ payloadFormatIndicator: true, responseTopic: 'channels/ch-1/messages/re', correlationData: Buffer.from([7, 0]) }));
      c.drop();
      await c.closedYet();
      await t.clock.advance(10);
      expect(t.platform.published.map((p) => [p.contentType, p.format, p.responseTopic, p.correlation && [...p.correlation]])).toEqual([['text/plain; charset=utf-8', 2, 'channels/ch-1/messages/re', [7, 0]]]);
    });

  if (v === 5)
    it('refuses a will whose User Properties the channel link cannot carry (0x83)', async () => {
      const t = setup();
      const userProperties = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v']));
      const r = await t.client(5).connect({ will: { topic: 'channels/ch-1/messages/w', payload: Buffer.from('x'), qos: 0, retain: false, properties: { userProperties } } });
      expect(code(5, r)).toBe(0x83);
    });

  it('limits connections per device (v5 0x97, 3.1.1 0x03)', async () => {
    const t = setup({ maxConnectionsPerDevice: 2 });
    await t.connected(v, { clientId: 'a' });
    await t.connected(v, { clientId: 'b' });
    expect(code(v, await t.client(v).connect({ clientId: 'c' }))).toBe(v === 5 ? 0x97 : 3);
    // Reconnecting with a client id already connected takes that connection over: not one more.
    expect(code(v, await t.client(v).connect({ clientId: 'a' }))).toBe(0);
  });

  it('takes over a session: the first connection is closed (v5 DISCONNECT 0x8E) [MQTT-3.1.4-3]', async () => {
    const t = setup();
    const first = await t.connected(v, { clientId: 'same' });
    const second = await t.connected(v, { clientId: 'same' });
    if (v === 5) expect((await first.next('disconnect')).reasonCode).toBe(0x8e);
    expect(await first.closedYet()).toBe(true);
    second.send({ cmd: 'pingreq' });
    await second.next('pingresp');
  });

  it('keeps sessions of different devices apart even with the same client id', async () => {
    const t = setup();
    const a = await t.connected(v, { clientId: 'same' });
    await t.connected(v, { clientId: 'same', username: 'dev-2', password: Buffer.from('key-2') });
    a.send({ cmd: 'pingreq' });
    await a.next('pingresp');
  });

  it('reports presence on the first connection of a device and when its last one goes: one online, one offline', async () => {
    const t = setup();
    const a = await t.connected(v, { clientId: 'a' });
    const b = await t.connected(v, { clientId: 'b' });
    a.drop();
    await a.closedYet();
    expect(t.platform.presenceLog.filter(([, on]) => !on)).toEqual([]);
    b.send({ cmd: 'disconnect' });
    await b.closedYet();
    await t.clock.advance(0);
    // Balanced, as the platform client's count across front-ends needs (bridge/platform/presence.ts):
    // an online per connection and one offline left the device online for good.
    expect(t.platform.presenceLog).toEqual([['dev-1', true], ['dev-1', false]]);
    const said: [string, boolean][] = [];
    const count = new PresenceCount((id, online) => said.push([id, online]));
    for (const [id, online] of t.platform.presenceLog) count.set(id, online);
    expect(said.at(-1)).toEqual(['dev-1', false]);
    expect(count.devices).toEqual([]);
  });
});

describe('CONNECT details', () => {
  it('serves protocol level 3 (MQTT 3.1, MQIsdp) as 3.1.1: CONNACK 0 without Session Present, then publish and subscribe; an empty client id is refused (0x02)', async () => {
    const t = setup();
    const c = t.client(4);
    const connect = { cmd: 'connect', protocolId: 'MQIsdp', protocolVersion: 3, clean: false, clientId: 'old', keepalive: 0, username: 'dev-1', password: Buffer.from('key-1') } as const;
    c.raw(mqtt.generate(connect));
    const ack = await c.next('connack');
    expect([ack.returnCode, ack.sessionPresent]).toEqual([0, false]);
    await c.subscribe('channels/ch-1/messages/x');
    await t.platform.inject('ch-1', 'x', 'to 3.1');
    expect((await c.next('publish')).payload.toString()).toBe('to 3.1');
    c.send({ cmd: 'publish', topic: 'channels/ch-1/messages/y', payload: Buffer.from('from 3.1'), qos: 1, messageId: 7, dup: false, retain: false });
    expect((await c.next('puback')).messageId).toBe(7);
    expect(t.platform.published.map((p) => p.subtopic)).toContain('y');
    // 3.1 sets DUP on a re-sent PUBREL, SUBSCRIBE or UNSUBSCRIBE (§2.1); 3.1.1 forbids it. Taken, not closed.
    const withDup = (packet: Parameters<typeof mqtt.generate>[0]) => {
      const bytes = mqtt.generate(packet, { protocolVersion: 4 });
      bytes[0] = bytes[0]! | 0x08;
      return bytes;
    };
    c.raw(withDup({ cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'channels/ch-1/messages/z', qos: 1 }] }));
    expect((await c.next('suback')).messageId).toBe(8);
    c.send({ cmd: 'publish', topic: 'channels/ch-1/messages/q2', payload: Buffer.from('qos 2'), qos: 2, messageId: 9, dup: false, retain: false });
    expect((await c.next('pubrec')).messageId).toBe(9);
    c.raw(withDup({ cmd: 'pubrel', messageId: 9 }));
    expect((await c.next('pubcomp')).messageId).toBe(9);
    c.raw(withDup({ cmd: 'unsubscribe', messageId: 10, unsubscriptions: ['channels/ch-1/messages/z'] }));
    expect((await c.next('unsuback')).messageId).toBe(10);
    expect(await c.closedYet(1)).toBe(false);
    c.drop();
    await settle();
    // Its session was kept (Clean Session 0); 3.1 still says nothing of it in the CONNACK.
    const again = t.client(4);
    again.raw(mqtt.generate(connect));
    expect((await again.next('connack')).sessionPresent).toBe(false);
    const empty = t.client(4);
    // (mqtt-packet will not write an empty 3.1 client id: the bytes by hand.)
    const str = (x: string) => [0, x.length, ...Buffer.from(x)];
    const body = [...str('MQIsdp'), 3, 0xc2, 0, 0, ...str(''), ...str('dev-1'), ...str('key-1')];
    empty.raw(Buffer.from([0x10, body.length, ...body]));
    expect((await empty.next('connack')).returnCode).toBe(2);
    expect(await empty.closedYet()).toBe(true);
  });

  it('refuses a protocol name that does not go with its level (MQIsdp is 3, MQTT is 4 and 5) with 0x01, as Mosquitto does', async () => {
    const t = setup();
    for (const [protocolId, protocolVersion] of [['MQTT', 3], ['MQIsdp', 4]] as const) {
      const c = t.client(4);
      c.raw(mqtt.generate({ cmd: 'connect', protocolId, protocolVersion, clean: true, clientId: 'mix', keepalive: 0, username: 'dev-1', password: Buffer.from('key-1') }));
      expect((await c.next('connack')).returnCode, `${protocolId} ${protocolVersion}`).toBe(1);
      expect(await c.closedYet()).toBe(true);
    }
  });

  it('refuses an unknown protocol level with 0x01', async () => {
    const t = setup();
    const c = t.client(4);
    c.raw(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x00, 0x00, 0x00]));
    expect((await c.next('connack')).returnCode).toBe(1);
    expect(await c.closedYet()).toBe(true);
  });

  it('v5 CONNACK advertises our limits, and Server Keep Alive when the client asks for none or too much', async () => {
    const t = setup({ maxKeepalive: 600 });
    const ack = await t.client(5).connect({ keepalive: 0 });
    expect(ack.properties).toMatchObject({ serverKeepAlive: 600, receiveMaximum: 1000, maximumPacketSize: 256 * 1024 + 16 * 1024, topicAliasMaximum: 64, retainAvailable: true, sharedSubscriptionAvailable: true, wildcardSubscriptionAvailable: true });
    // Subscription Identifiers are supported: the property is left out (absent means 1) [MQTT 5 §3.2.2.3.12].
    expect(ack.properties).not.toHaveProperty('subscriptionIdentifiersAvailable');
    expect((await t.client(5).connect({ keepalive: 60 })).properties?.serverKeepAlive).toBeUndefined();
    expect((await t.client(5).connect({ keepalive: 6000 })).properties?.serverKeepAlive).toBe(600);
  });

  it('v5: refuses enhanced authentication (0x8C) and caps Session Expiry (told in CONNACK)', async () => {
    const t = setup({ maxSessionExpiry: 100 });
    expect((await t.client(5).connect({ properties: { authenticationMethod: 'SCRAM-SHA-1' } })).reasonCode).toBe(0x8c);
    expect((await t.client(5).connect({ properties: { sessionExpiryInterval: 5000 } })).properties?.sessionExpiryInterval).toBe(100);
  });

  it('v5: a CONNECT larger than the maximum packet size gets CONNACK 0x95; 3.1.1 is closed', async () => {
    const t = setup({ maxPacketSize: 200 });
    const c5 = t.client(5);
    expect((await c5.connect({ clientId: 'x'.repeat(300) })).reasonCode).toBe(0x95);
    expect(await c5.closedYet()).toBe(true);
    const c4 = t.client(4);
    c4.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'x'.repeat(300), keepalive: 0 });
    expect(await c4.closedYet()).toBe(true);
    expect(c4.received).toEqual([]);
  });

  describe("v5: the CONNACK fits the client's Maximum Packet Size [MQTT-3.1.2-24 (5.0)]", () => {
    /** The CONNACK's size in bytes: fixed header byte, remaining length, the rest. */
    const size = ({ length = Infinity }: { length?: number }) => 1 + (length < 128 ? 1 : 2) + length;

    it('leaves out what only repeats a default, then Topic Alias Maximum (absent: 0); keeps what the client must know and what absent would claim', async () => {
      const t = setup();
      const c = t.client(5);
      const ack = await c.connect({ clientId: '', properties: { maximumPacketSize: 61 } });
      expect(ack.reasonCode).toBe(0);
      expect(size(ack)).toBeLessThanOrEqual(61);
      // Subscription Identifiers Available is never sent: absent means "supported", which is true.
      expect(Object.keys(ack.properties ?? {}).sort()).toEqual(['assignedClientIdentifier', 'maximumPacketSize', 'receiveMaximum', 'serverKeepAlive']);
      expect(ack.properties?.assignedClientIdentifier).toMatch(/^auto-/);
      c.send({ cmd: 'pingreq' });
      await c.next('pingresp');
      // Told no Topic Alias Maximum, the client may use no alias (MQTT 5 §3.2.2.3.8).
      c.publish('channels/ch-1/messages/a', 'aliased', 1, { properties: { topicAlias: 1 } });
      expect((await c.next('disconnect')).reasonCode).toBe(0x94);
      expect(t.platform.published).toEqual([]);
      // With room, the full set as before.
      const roomy = await t.client(5).connect({ properties: { maximumPacketSize: 1024 } });
      expect(roomy.properties).toMatchObject({ retainAvailable: true, wildcardSubscriptionAvailable: true, sharedSubscriptionAvailable: true });
      expect(roomy.properties).not.toHaveProperty('subscriptionIdentifiersAvailable');
    });

    it('a repeated Maximum Packet Size is refused (0x82) and not taken for a limit', async () => {
      const t = setup();
      const c = t.client(5);
      const ack = await c.connect({ properties: { maximumPacketSize: [1024, 2048] as unknown as number } });
      expect(ack.reasonCode).toBe(0x82);
      expect(ack.properties?.reasonString).toMatch(/maximumPacketSize given 2 times/);
      expect(await c.closedYet()).toBe(true);
    });

    it('a refusal drops its reason string to fit', async () => {
      const t = setup();
      const c = t.client(5);
      const ack = await c.connect({ password: Buffer.from('nope'), properties: { maximumPacketSize: 16 } });
      expect(ack.reasonCode).toBe(0x86);
      expect(ack.properties?.reasonString).toBeUndefined();
      expect(size(ack)).toBeLessThanOrEqual(16);
      expect(await c.closedYet()).toBe(true);
    });

    it('below the smallest CONNACK (5 bytes) the connection is closed unanswered, never registered, nothing taken over', async () => {
      const t = setup();
      const first = await t.connected(5, { clientId: 'same' });
      for (const maximumPacketSize of [1, 4]) {
        const c = t.client(5);
        c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'same', keepalive: 0, username: 'dev-1', password: Buffer.from('key-1'), properties: { maximumPacketSize } });
        expect(await c.closedYet()).toBe(true);
        expect(c.received).toEqual([]);
      }
      // Room for a refusal but not for the minimal CONNACK that accepts (19 bytes here): 0x95, and the session stays where it was.
      const c = t.client(5);
      expect((await c.connect({ clientId: 'same', properties: { maximumPacketSize: 12 } })).reasonCode).toBe(0x95);
      expect(await c.closedYet()).toBe(true);
      first.send({ cmd: 'pingreq' });
      await first.next('pingresp');
      expect(t.platform.presenceLog).toEqual([['dev-1', true]]);
      expect(t.server.context.holders.size).toBe(1);
    });
  });

  it('v5: AUTH without an authentication method is a protocol error', async () => {
    const t = setup();
    const c = await t.connected(5);
    c.send({ cmd: 'auth', reasonCode: 0x18 });
    expect((await c.next('disconnect')).reasonCode).toBe(0x82);
  });
});
