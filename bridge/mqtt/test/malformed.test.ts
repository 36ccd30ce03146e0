import { describe, expect, it } from 'vitest';
import { setup, VERSIONS } from './harness';

describe.each(VERSIONS)('malformed input, protocol level %i', (v) => {
  it.each([
    ['reserved flags of SUBSCRIBE not 0010 [MQTT-3.8.1-1]', [0x80, 0x02, 0x00, 0x01]],
    ['a PUBLISH with QoS 3', [0x36, 0x03, 0x00, 0x01, 0x61]],
    ['a remaining length of five bytes', [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]],
    ['an unknown packet type 0', [0x00, 0x00]],
  ])('closes the connection on %s (v5: DISCONNECT 0x81 first)', async (_what, bytes) => {
    const t = setup();
    const c = await t.connected(v);
    c.raw(Buffer.from(bytes));
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x81);
    expect(await c.closedYet()).toBe(true);
  });

  it('closes on bytes that are not MQTT at all before CONNECT, unanswered', async () => {
    const t = setup();
    const c = t.client(v);
    c.raw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await c.closedYet()).toBe(true);
    expect(c.received).toEqual([]);
  });

  /** A QoS 1 PUBLISH to channels/ch-1/messages/a (id 7), v5 properties as raw bytes. */
  const publishWith = (props: number[]) => {
    const topic = Buffer.from('channels/ch-1/messages/a');
    const body = [0x00, topic.length, ...topic, 0x00, 0x07, ...(v === 5 ? [props.length, ...props] : []), 0x78];
    return Buffer.from([0x32, body.length, ...body]);
  };
  const contentType = (s: string) => [0x03, 0x00, s.length, ...Buffer.from(s)];

  it.each([
    ['SUBSCRIBE without a topic filter [MQTT-3.8.3-2]', (ver: number) => (ver === 5 ? [0x82, 0x03, 0x00, 0x09, 0x00] : [0x82, 0x02, 0x00, 0x09])],
    ['UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]', (ver: number) => (ver === 5 ? [0xa2, 0x03, 0x00, 0x09, 0x00] : [0xa2, 0x02, 0x00, 0x09])],
    ['a QoS 1 PUBLISH with packet identifier 0 [MQTT-2.3.1-1]', (ver: number) => [0x32, ver === 5 ? 6 : 5, 0x00, 0x01, 0x61, 0x00, 0x00, ...(ver === 5 ? [0x00] : [])]],
    ['a QoS 1 PUBLISH with an empty topic and no Topic Alias [MQTT 5 §3.3.2.3.4]', (ver: number) => [0x32, ver === 5 ? 6 : 5, 0x00, 0x00, 0x00, 0x07, ...(ver === 5 ? [0x00] : []), 0x78]],
    ['a QoS 0 PUBLISH with an empty topic and no Topic Alias [MQTT 5 §3.3.2.3.4]', (ver: number) => [0x30, ver === 5 ? 4 : 3, 0x00, 0x00, ...(ver === 5 ? [0x00] : []), 0x78]],
  ])('closes the connection on %s (v5: DISCONNECT 0x82 first), nothing stored', async (_what, bytes) => {
    const t = setup();
    const c = await t.connected(v);
    c.raw(Buffer.from(bytes(v)));
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x82);
    expect(await c.closedYet()).toBe(true);
    expect(t.platform.published).toEqual([]);
  });

  if (v === 5) {
    it.each([
      ['Content Type', [...contentType('text/plain'), ...contentType('a/b')]],
      ['Message Expiry Interval', [0x02, 0, 0, 0, 9, 0x02, 0, 0, 0, 10]],
      ['Payload Format Indicator', [0x01, 0x01, 0x01, 0x01]],
      // A first value that is 0 / empty still counts (mqtt-packet alone kept the second).
      ['Payload Format Indicator, 0 first', [0x01, 0x00, 0x01, 0x01]],
      ['Message Expiry Interval, 0 first', [0x02, 0, 0, 0, 0, 0x02, 0, 0, 0, 10]],
      ['Content Type, empty first', [0x03, 0, 0, ...contentType('text/plain')]],
    ])('a PUBLISH with a repeated %s is a protocol error for that client only (MQTT 5 §2.2.2.2), never passed on', async (_what, props) => {
      const t = setup();
      const bad = await t.connected(v);
      const good = await t.connected(v, { username: 'dev-2', password: Buffer.from('key-2') });
      bad.raw(publishWith(props));
      expect((await bad.next('disconnect')).reasonCode).toBe(0x82);
      expect(await bad.closedYet()).toBe(true);
      good.publish('channels/ch-1/messages/a', 'fine', 1);
      expect((await good.next('puback')).reasonCode ?? 0).toBe(0);
      expect(t.platform.published.map((p) => p.payload.length)).toEqual([4]);
      // User Properties may repeat: accepted.
      const ok = await t.connected(v);
      ok.raw(publishWith([0x26, 0, 1, 0x6b, 0, 1, 0x31, 0x26, 0, 1, 0x6b, 0, 1, 0x32, ...contentType('text/plain')]));
      expect((await ok.next('puback')).reasonCode ?? 0).toBe(0);
    });

    it('a property that runs past the Property Length is malformed (DISCONNECT 0x81): its bytes are not taken from the payload', async () => {
      const t = setup();
      const c = await t.connected(v);
      // Property Length 1, then a Content Type of 2 bytes that can only come from the payload "xy".
      const topic = Buffer.from('channels/ch-1/messages/a');
      const body = [0x00, topic.length, ...topic, 0x00, 0x07, 0x01, 0x03, 0x00, 0x02, 0x78, 0x79];
      c.raw(Buffer.from([0x32, body.length, ...body]));
      expect((await c.next('disconnect')).reasonCode).toBe(0x81);
      expect(await c.closedYet()).toBe(true);
      expect(t.platform.published).toEqual([]);
    });

    it('a User Property repeated under one name keeps every value, an empty first one included', async () => {
      const t = setup();
      const c = await t.connected(v);
      c.raw(publishWith([0x26, 0, 1, 0x6b, 0, 0, 0x26, 0, 1, 0x6b, 0, 1, 0x32, ...contentType('text/plain')]));
      expect((await c.next('puback')).reasonCode ?? 0).toBe(0);
      expect(t.platform.published.map((p) => p.userProperties)).toEqual([{ k: ['', '2'] }]);
    });

    it('a CONNECT that repeats a property is refused with CONNACK 0x82, a 0 first value included', async () => {
      const t = setup();
      // Session Expiry Interval 0, then 300: [0x11, 0,0,0,0, 0x11, 0,0,1,0x2c].
      const props = [0x11, 0, 0, 0, 0, 0x11, 0, 0, 1, 0x2c];
      const body = [0, 4, ...Buffer.from('MQTT'), 5, 0x02, 0, 0, props.length, ...props, 0, 1, 0x78];
      const c = t.client(v);
      c.raw(Buffer.from([0x10, body.length, ...body]));
      const ack = await c.next('connack');
      expect([ack.reasonCode, ack.properties?.reasonString]).toEqual([0x82, expect.stringMatching(/sessionExpiryInterval given 2 times/)]);
      expect(await c.closedYet()).toBe(true);
    });

    it('a CONNECT whose will repeats a property is refused with CONNACK 0x82', async () => {
      const t = setup();
      const c = t.client(v);
      const ack = await c.connect({ will: { topic: 'channels/ch-1/messages/w', payload: Buffer.from('x'), qos: 0, retain: false, properties: { contentType: ['a/b', 'c/d'] as unknown as string } } });
      expect(ack.reasonCode).toBe(0x82);
      expect(await c.closedYet()).toBe(true);
    });
  }

  /** A QoS 1 PUBLISH with raw topic bytes (no properties). */
  const publishTopic = (topic: Buffer) => {
    const body = [0x00, topic.length, ...topic, 0x00, 0x05, ...(v === 5 ? [0x00] : []), 0x78];
    return Buffer.from([0x32, body.length, ...body]);
  };

  it.each([
    ['a PUBLISH topic', () => publishTopic(Buffer.concat([Buffer.from('channels/ch-1/messages/bad'), Buffer.from([0xc3, 0x28])]))],
    ['a SUBSCRIBE filter', () => {
      const f = Buffer.concat([Buffer.from('channels/ch-1/messages/'), Buffer.from([0xff])]);
      const body = [0x00, 0x09, ...(v === 5 ? [0x00] : []), 0x00, f.length, ...f, 0x01];
      return Buffer.from([0x82, body.length, ...body]);
    }],
    ['a surrogate encoded in UTF-8 (ED A0 80)', () => publishTopic(Buffer.concat([Buffer.from('channels/ch-1/messages/x'), Buffer.from([0xed, 0xa0, 0x80])]))],
    // U+0000 is well-formed UTF-8 but may not appear in a string [MQTT-1.5.4-2; 3.1.1: MQTT-1.5.3-2].
    ['a PUBLISH topic with U+0000', () => publishTopic(Buffer.from('channels/ch-1/messages/nul\u0000x'))],
    ['a SUBSCRIBE filter with U+0000', () => {
      const f = Buffer.from('channels/ch-1/messages/\u0000');
      const body = [0x00, 0x09, ...(v === 5 ? [0x00] : []), 0x00, f.length, ...f, 0x01];
      return Buffer.from([0x82, body.length, ...body]);
    }],
  ])('closes the connection on ill-formed UTF-8 or U+0000 in %s [MQTT-1.5.4-1, -2] (v5: DISCONNECT 0x81), nothing stored', async (_what, bytes) => {
    const t = setup();
    const c = await t.connected(v);
    c.raw(bytes());
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x81);
    expect(await c.closedYet()).toBe(true);
    expect(t.platform.published).toEqual([]);
  });

  it('takes a well-formed U+FFFD in a topic as it is', async () => {
    const t = setup();
    const c = await t.connected(v);
    c.raw(publishTopic(Buffer.from('channels/ch-1/messages/r\uFFFDd')));
    expect(await c.next('puback')).toMatchObject({ messageId: 5 });
    expect(t.platform.published.map((p) => p.subtopic)).toEqual(['r\uFFFDd']);
  });

  it('a server-to-client packet from a client is a protocol error', async () => {
    const t = setup();
    const c = await t.connected(v);
    c.send({ cmd: 'pingresp' });
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x82);
    expect(await c.closedYet()).toBe(true);
  });

  it('a platform that throws mid-publish gets an error code, never a crash', async () => {
    const t = setup();
    const c = await t.connected(v);
    t.platform.publish = async () => {
      throw new Error('boom');
    };
    c.publish('channels/ch-1/messages/a', 'x', 1);
    if (v === 4) return void expect(await c.closedYet()).toBe(true);
    expect((await c.next('puback')).reasonCode).toBe(0x80);
  });

  it('a platform that fails a SUBSCRIBE gets a failure code for that filter only', async () => {
    const t = setup();
    const c = await t.connected(v);
    const real = t.platform.subscribe.bind(t.platform);
    t.platform.subscribe = async (req, on) => {
      if (req.channel === 'ch-2') throw new Error('actor unreachable');
      return real(req, on);
    };
    expect((await c.subscribe('channels/ch-2/messages', 'channels/ch-1/messages')).granted).toEqual([0x80, 1]);
  });
});
