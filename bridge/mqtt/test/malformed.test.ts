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
