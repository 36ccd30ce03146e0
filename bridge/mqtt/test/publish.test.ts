import { describe, expect, it } from 'vitest';
import { settle } from '../../testing/fake-clock';
import { setup, VERSIONS } from './harness';

const T = 'channels/ch-1/messages';
const utf8 = (b: Uint8Array) => new TextDecoder().decode(b);

describe.each(VERSIONS)('inbound PUBLISH, protocol level %i', (v) => {
  it('QoS 0 is published with no answer; RETAIN is passed on', async () => {
    const t = setup();
    const c = await t.connected(v);
    c.publish(`${T}/a`, 'zero', 0, { retain: true });
    await settle();
    expect(t.platform.published.map((p) => [p.channel, p.subtopic, utf8(p.payload), p.retain, p.protocol, p.publisher])).toEqual([['ch-1', 'a', 'zero', true, 'mqtt', 'dev-1']]);
    expect(await c.drain()).toEqual([]);
  });

  it('QoS 1: PUBACK only once the platform has stored the message', async () => {
    const t = setup();
    t.platform.defer = true;
    const c = await t.connected(v);
    const id = c.publish(`${T}/a`, 'one', 1);
    await settle();
    expect(c.received).toEqual([]);
    t.platform.releasePublishes();
    const ack = await c.next('puback');
    expect(ack.messageId).toBe(id);
    if (v === 5) expect(ack.reasonCode).toBe(0);
  });

  it('reads no further packet while maxUnstoredPublishes QoS 0 publishes wait for storage (back-pressure, nothing dropped)', async () => {
    const t = setup({ maxUnstoredPublishes: 3 });
    t.platform.defer = true;
    const c = await t.connected(v);
    for (let i = 0; i < 5; i++) c.publish(`${T}/a`, String(i), 0);
    await settle();
    expect(t.platform.pendingPublishes).toBe(3);
    t.platform.releasePublishes(1);
    await settle();
    expect(t.platform.pendingPublishes).toBe(3);
    t.platform.releasePublishes();
    await settle();
    t.platform.releasePublishes();
    await settle();
    expect(t.platform.published.map((p) => utf8(p.payload))).toEqual(['0', '1', '2', '3', '4']);
  });

  it('acknowledges in the order the PUBLISHes came, whatever order they are stored in [MQTT-4.6.0-2]', async () => {
    const t = setup();
    t.platform.defer = true;
    const c = await t.connected(v);
    const ids = [c.publish(`${T}/a`, '1', 1), c.publish(`${T}/a`, '2', 2), c.publish(`${T}/a`, '3', 1)];
    await settle();
    expect(t.platform.pendingPublishes).toBe(3);
    t.platform.releaseAt(1);
    await settle();
    expect(c.received).toEqual([]);
    t.platform.releaseAt(0);
    await settle();
    expect((await c.drain()).map((p) => [p.cmd, p.messageId])).toEqual([['puback', ids[0]], ['pubrec', ids[1]]]);
    t.platform.releasePublishes();
    expect((await c.next('puback')).messageId).toBe(ids[2]);
  });

  it('QoS 2: stored once even when resent before PUBREL, then PUBREL → PUBCOMP, then the id is new again', async () => {
    const t = setup();
    const c = await t.connected(v);
    c.send({ cmd: 'publish', topic: `${T}/q2`, payload: 'exactly', qos: 2, messageId: 42, dup: false, retain: false });
    expect((await c.next('pubrec')).messageId).toBe(42);
    c.send({ cmd: 'publish', topic: `${T}/q2`, payload: 'exactly', qos: 2, messageId: 42, dup: true, retain: false });
    expect((await c.next('pubrec')).messageId).toBe(42);
    expect(t.platform.published).toHaveLength(1);
    c.send({ cmd: 'pubrel', messageId: 42 });
    const comp = await c.next('pubcomp');
    expect(comp.messageId).toBe(42);
    if (v === 5) expect(comp.reasonCode).toBe(0);
    c.send({ cmd: 'publish', topic: `${T}/q2`, payload: 'again', qos: 2, messageId: 42, dup: false, retain: false });
    await c.next('pubrec');
    expect(t.platform.published).toHaveLength(2);
    c.send({ cmd: 'pubrel', messageId: 999 });
    const unknown = await c.next('pubcomp');
    if (v === 5) expect(unknown.reasonCode).toBe(0x92);
  });

  it('a publish the device may not make: v5 PUBACK/PUBREC 0x87, 3.1.1 closes [MQTT-3.3.5-2]', async () => {
    const t = setup();
    const c = await t.connected(v);
    c.publish('channels/ch-ro/messages/x', 'no', 1);
    if (v === 4) return void expect(await c.closedYet()).toBe(true);
    expect((await c.next('puback')).reasonCode).toBe(0x87);
    c.publish('channels/ch-ro/messages/x', 'no', 2);
    expect((await c.next('pubrec')).reasonCode).toBe(0x87);
    c.publish('channels/ch-ro/messages/x', 'no', 0);
    c.publish('channels/no-such/messages/x', 'no', 1);
    expect((await c.next('puback')).reasonCode).toBe(0x87);
    expect(t.platform.published).toEqual([]);
    expect(c.closed).toBe(false);
  });

  it('a topic outside channels/{id}/messages: v5 0x90, 3.1.1 closes; wildcards are a protocol violation', async () => {
    const t = setup();
    const c = await t.connected(v);
    c.publish('sensors/temp', 'x', 1);
    if (v === 4) return void expect(await c.closedYet()).toBe(true);
    expect((await c.next('puback')).reasonCode).toBe(0x90);
    c.publish(`${T}/+`, 'x', 1);
    expect((await c.next('disconnect')).reasonCode).toBe(0x90);
  });

  it.each([
    [413, 0x97],
    [429, 0x97],
    [400, 0x99],
    [404, 0x87],
    [503, 0x80],
  ])('a platform refusal %i: v5 PUBACK reason %i, 3.1.1 closes', async (status, rc) => {
    const t = setup();
    t.platform.refuse = { ok: false, status, code: 'x', message: `status ${status}` };
    const c = await t.connected(v);
    c.publish(`${T}/a`, 'x', 1);
    if (v === 4) return void expect(await c.closedYet()).toBe(true);
    const ack = await c.next('puback');
    expect([ack.reasonCode, ack.properties?.reasonString]).toEqual([rc, `status ${status}`]);
  });

  it('limits the publish rate per device (v5 PUBACK 0x97, QoS 0 DISCONNECT 0x96; 3.1.1 closes)', async () => {
    const t = setup({ publishRate: 1, publishBurst: 2 });
    const c = await t.connected(v);
    for (let i = 0; i < 2; i++) c.publish(`${T}/a`, 'x', 1);
    await c.next('puback');
    await c.next('puback');
    c.publish(`${T}/a`, 'x', 1);
    if (v === 4) return void expect(await c.closedYet()).toBe(true);
    expect((await c.next('puback')).reasonCode).toBe(0x97);
    await t.clock.advance(1000);
    c.publish(`${T}/a`, 'x', 1);
    expect((await c.next('puback')).reasonCode).toBe(0);
    c.publish(`${T}/a`, 'x', 0);
    expect((await c.next('disconnect')).reasonCode).toBe(0x96);
  });

  it('each publish reaches the address of its own topic, however topics alternate', async () => {
    const t = setup();
    const c = await t.connected(v);
    const topics = [`${T}/a`, 'channels/ch-2/messages/b', `${T}/a`, T, 'channels/ch-2/messages/b/c', `${T}/a`];
    topics.forEach((topic, i) => c.publish(topic, String(i), 0));
    await settle();
    expect(t.platform.published.map((p) => [p.channel, p.subtopic, utf8(p.payload)])).toEqual([
      ['ch-1', 'a', '0'],
      ['ch-2', 'b', '1'],
      ['ch-1', 'a', '2'],
      ['ch-1', '', '3'],
      ['ch-2', 'b/c', '4'],
      ['ch-1', 'a', '5'],
    ]);
  });

  it('a refused QoS 0 publish ends the connection only after the acknowledgements due before it', async () => {
    const t = setup({ publishRate: 1, publishBurst: 1 });
    t.platform.defer = true;
    const c = await t.connected(v);
    const id = c.publish(`${T}/a`, 'stored', 1);
    c.publish(`${T}/a`, 'over the rate', 0);
    await settle();
    expect(c.received).toEqual([]);
    t.platform.releasePublishes();
    await settle();
    const got = await c.drain();
    expect(got[0]).toMatchObject({ cmd: 'puback', messageId: id });
    if (v === 5) expect(got[1]).toMatchObject({ cmd: 'disconnect', reasonCode: 0x96 });
    expect(await c.closedYet()).toBe(true);
    expect(t.platform.published.map((p) => utf8(p.payload))).toEqual(['stored']);
  });

  it('asks the platform once per channel and reuses the decision for a while', async () => {
    const t = setup({ authorizationTtlMs: 10_000 });
    const c = await t.connected(v);
    const before = t.platform.authorizeCalls;
    for (let i = 0; i < 3; i++) c.publish(`${T}/a`, 'x', 1);
    for (let i = 0; i < 3; i++) await c.next('puback');
    expect(t.platform.authorizeCalls - before).toBe(1);
    await t.clock.advance(10_000);
    c.publish(`${T}/a`, 'x', 1);
    await c.next('puback');
    expect(t.platform.authorizeCalls - before).toBe(2);
    // Alternating channels: one question per channel, then the cached answers; again after the TTL.
    for (const topic of ['channels/ch-2/messages/b', `${T}/a`, 'channels/ch-2/messages/b', `${T}/a`]) c.publish(topic, 'x', 1);
    for (let i = 0; i < 4; i++) await c.next('puback');
    expect(t.platform.authorizeCalls - before).toBe(3);
    await t.clock.advance(10_000);
    for (const topic of [`${T}/a`, 'channels/ch-2/messages/b', `${T}/a`]) c.publish(topic, 'x', 1);
    for (let i = 0; i < 3; i++) await c.next('puback');
    expect(t.platform.authorizeCalls - before).toBe(5);
  });

  it('refuses a packet above the maximum packet size (v5 DISCONNECT 0x95)', async () => {
    const t = setup({ maxPacketSize: 500 });
    const c = await t.connected(v);
    c.publish(`${T}/a`, 'x'.repeat(600), 1);
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x95);
    expect(await c.closedYet()).toBe(true);
    expect(t.platform.published).toEqual([]);
  });

  it("messages without a v5 Content Type leave it to the channel's default ('')", async () => {
    const t = setup();
    const c = await t.connected(v);
    c.publish(`${T}/a`, 'bytes', 1);
    await c.next('puback');
    expect(t.platform.published[0]?.contentType).toBe('');
  });
});

describe('3.1.1: a resent (DUP) QoS 1/2 publish refused again', () => {
  // The first refusal closes [MQTT-3.3.5-2]; the client reconnects and resends it with DUP. Refused
  // for good again, it is acknowledged and dropped, else the client is closed and resends it forever.
  it.each([
    ['not allowed (ch-ro)', 'channels/ch-ro/messages/x', null],
    ['no such channel', 'channels/no-such/messages/x', null],
    ['not an Edgeflux topic', 'sensors/temp', null],
    ['payload refused (400)', `${T}/a`, 400],
    ['payload refused (415)', `${T}/a`, 415],
    ['too large for the channel (413)', `${T}/a`, 413],
  ] as const)('%s: PUBACK / PUBREC, nothing stored, the connection stays', async (_name, topic, status) => {
    const t = setup();
    if (status) t.platform.refuse = { ok: false, status, code: 'x', message: `status ${status}` };
    const c = await t.connected(4);
    const one = c.publish(topic, 'x', 1, { dup: true });
    expect((await c.next('puback')).messageId).toBe(one);
    const two = c.publish(topic, 'x', 2, { dup: true });
    expect((await c.next('pubrec')).messageId).toBe(two);
    c.send({ cmd: 'pubrel', messageId: two });
    expect((await c.next('pubcomp')).messageId).toBe(two);
    expect(t.platform.published).toEqual([]);
    expect(c.closed).toBe(false);
  });

  it.each([
    ['platform unreachable (503)', 503],
    ['channel rate (429)', 429],
  ] as const)('%s: still closes, so the client resends it later', async (_name, status) => {
    const t = setup();
    t.platform.refuse = { ok: false, status, code: 'x', message: `status ${status}` };
    const c = await t.connected(4);
    c.publish(`${T}/a`, 'x', 1, { dup: true });
    expect(await c.closedYet()).toBe(true);
  });

  it('the same publish without DUP (its first time) closes, as before', async () => {
    const t = setup();
    const c = await t.connected(4);
    c.publish('channels/ch-ro/messages/x', 'x', 1);
    expect(await c.closedYet()).toBe(true);
  });
});

describe('inbound PUBLISH, MQTT 5 properties', () => {
  it('passes Content Type, User Properties and Message Expiry through; Payload Format 1 means UTF-8 text', async () => {
    const t = setup();
    const c = await t.connected(5);
    c.publish(`${T}/a`, '[{"n":"t","v":1}]', 1, { properties: { contentType: 'application/senml+json', userProperties: { site: 'lab', tag: ['a', 'b'] }, messageExpiryInterval: 30 } });
    c.publish(`${T}/b`, 'héllo', 1, { properties: { payloadFormatIndicator: true } });
    await c.next('puback');
    await c.next('puback');
    expect(t.platform.published.map((p) => [p.contentType, p.userProperties, p.messageExpiry])).toEqual([
      ['application/senml+json', { site: 'lab', tag: ['a', 'b'] }, 30],
      ['text/plain; charset=utf-8', undefined, undefined],
    ]);
    c.publish(`${T}/c`, Buffer.from([0xff, 0xfe]), 1, { properties: { payloadFormatIndicator: true } });
    expect((await c.next('puback')).reasonCode).toBe(0x99);
  });

  it('passes Response Topic and Correlation Data on unaltered, and what the publisher gave of Payload Format Indicator and Content Type', async () => {
    const t = setup();
    const c = await t.connected(5);
    const correlation = Buffer.from([0, 1, 0xff]);
    c.publish(`${T}/req`, '{"q":1}', 1, { properties: { responseTopic: 'channels/ch-2/messages/replies/dev-1', correlationData: correlation, payloadFormatIndicator: true, contentType: 'application/json' } });
    c.publish(`${T}/b`, 'x', 1, { properties: { contentType: 'text/plain' } });
    c.publish(`${T}/c`, 'x', 1, { properties: { payloadFormatIndicator: false } });
    c.publish(`${T}/d`, 'x', 1);
    for (let i = 0; i < 4; i++) expect((await c.next('puback')).reasonCode).toBe(0);
    expect(t.platform.published.map((p) => [p.contentType, p.format, p.responseTopic, p.correlation && [...p.correlation]])).toEqual([
      ['application/json', 6, 'channels/ch-2/messages/replies/dev-1', [0, 1, 0xff]],
      ['text/plain', 4, undefined, undefined],
      ['', 1, undefined, undefined],
      // Nothing given: nothing carried (the usual publish costs nothing more).
      ['', undefined, undefined, undefined],
    ]);
  });

  it('a Response Topic with wildcards (or empty) is a protocol error [MQTT-3.3.2-14]: DISCONNECT 0x82, nothing published', async () => {
    for (const responseTopic of [`${T}/+/x`, `${T}/#`, '']) {
      const t = setup();
      const c = await t.connected(5);
      c.publish(`${T}/a`, 'x', 0, { properties: { responseTopic } });
      expect((await c.next('disconnect')).reasonCode).toBe(0x82);
      expect(await c.closedYet()).toBe(true);
      expect(t.platform.published).toEqual([]);
    }
  });

  it('a Response Topic outside channels/{id}/messages (nobody could answer on it) gets PUBACK 0x83, and nothing is published', async () => {
    const t = setup();
    const c = await t.connected(5);
    c.publish(`${T}/a`, 'x', 1, { properties: { responseTopic: 'replies/dev-1' } });
    const ack = await c.next('puback');
    expect([ack.reasonCode, ack.properties?.reasonString]).toEqual([0x83, expect.stringMatching(/Response Topic/)]);
    expect(t.platform.published).toEqual([]);
  });

  it('a Content Type or User Properties the channel link cannot carry get PUBACK 0x83, and nothing is published', async () => {
    const t = setup();
    const c = await t.connected(5);
    c.publish(`${T}/a`, 'x', 1, { properties: { contentType: `a/${'b'.repeat(300)}` } });
    const tooMany = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v']));
    c.publish(`${T}/a`, 'x', 1, { properties: { userProperties: tooMany } });
    c.publish(`${T}/a`, 'x', 1, { properties: { userProperties: { long: 'v'.repeat(5000) } } });
    for (let i = 0; i < 3; i++) expect((await c.next('puback')).reasonCode).toBe(0x83);
    expect(t.platform.published).toEqual([]);
  });

  it('topic aliases: set with a topic, used with an empty one; out of range → 0x94, unknown → 0x82', async () => {
    const t = setup({ topicAliasMaximum: 4 });
    const c = await t.connected(5);
    c.publish(`${T}/aliased`, 'first', 1, { properties: { topicAlias: 3 } });
    c.publish('', 'second', 1, { properties: { topicAlias: 3 } });
    await c.next('puback');
    await c.next('puback');
    expect(t.platform.published.map((p) => p.subtopic)).toEqual(['aliased', 'aliased']);
    c.publish('', 'x', 1, { properties: { topicAlias: 2 } });
    expect((await c.next('disconnect')).reasonCode).toBe(0x82);
    const d = await t.connected(5);
    d.publish(`${T}/x`, 'x', 1, { properties: { topicAlias: 5 } });
    expect((await d.next('disconnect')).reasonCode).toBe(0x94);
  });

  it('more unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum → DISCONNECT 0x93', async () => {
    const t = setup({ receiveMaximum: 2 });
    t.platform.defer = true;
    const c = await t.connected(5);
    c.publish(`${T}/a`, '1', 1);
    c.publish(`${T}/a`, '2', 2);
    await settle();
    expect(c.received).toEqual([]);
    c.publish(`${T}/a`, '3', 1);
    expect((await c.next('disconnect')).reasonCode).toBe(0x93);
  });

  it('QoS above the Maximum QoS of the CONNACK → DISCONNECT 0x9B', async () => {
    const t = setup({ maxQos: 1 });
    const c = t.client(5);
    expect((await c.connect()).properties?.maximumQoS).toBe(1);
    c.publish(`${T}/a`, 'x', 2);
    expect((await c.next('disconnect')).reasonCode).toBe(0x9b);
  });
});

describe.each(VERSIONS)('acknowledgements written together, protocol level %i', (v) => {
  it('PUBACKs and PUBRECs settled in one turn leave in one write, in order', async () => {
    const t = setup();
    t.platform.defer = true;
    const c = await t.connected(v);
    const ids = Array.from({ length: 8 }, (_, i) => c.publish(`${T}/a`, String(i), i % 4 === 3 ? 2 : 1));
    await settle();
    expect(t.platform.pendingPublishes).toBe(8);
    const before = c.chunks;
    t.platform.releasePublishes();
    await settle();
    expect((await c.drain()).map((p) => [p.cmd, p.messageId])).toEqual(ids.map((id, i) => [i % 4 === 3 ? 'pubrec' : 'puback', id]));
    expect(c.chunks - before).toBe(1);
  });
});
