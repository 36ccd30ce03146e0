import mqtt, { type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../shared/testing/prng';
import { settle } from '../testing/fake-clock';
import { flatParser, PROPERTY_OVERRUN } from './reader';
import { setup } from './test/harness';

/** Valid packets of both protocol levels, to be cut up, mutated and concatenated. */
function corpus(): Buffer[] {
  const out: Buffer[] = [];
  for (const v of [4, 5] as const) {
    const g = (p: Packet) => mqtt.generate(p, { protocolVersion: v });
    out.push(
      g({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clientId: `r${v}`, clean: v === 4, keepalive: 30, username: 'dev-1', password: Buffer.from('key-1'), will: { topic: 'channels/ch-1/messages/w', payload: Buffer.from('w'), qos: 1, retain: false, ...(v === 5 ? { properties: { willDelayInterval: 1 } } : {}) }, ...(v === 5 ? { properties: { sessionExpiryInterval: 10, receiveMaximum: 5, topicAliasMaximum: 3 } } : {}) }),
      g({ cmd: 'publish', topic: 'channels/ch-1/messages/a', payload: Buffer.from('hi'), qos: 1, messageId: 7, retain: true, dup: false, ...(v === 5 ? { properties: { topicAlias: 1, contentType: 'text/plain', userProperties: { a: 'b' } } } : {}) }),
      g({ cmd: 'publish', topic: 'channels/ch-1/messages/b', payload: Buffer.from('x'), qos: 2, messageId: 8, retain: false, dup: false }),
      g({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'channels/+/messages/#', qos: 2, ...(v === 5 ? { nl: true, rh: 1 } : {}) }, { topic: '$share/g/channels/ch-1/messages', qos: 1 }] }),
      g({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['channels/+/messages/#'] }),
      g({ cmd: 'pubrel', messageId: 8 }),
      g({ cmd: 'puback', messageId: 1 }),
      g({ cmd: 'pubrec', messageId: 2 }),
      g({ cmd: 'pubcomp', messageId: 2 }),
      g({ cmd: 'pingreq' }),
      g({ cmd: 'disconnect', ...(v === 5 ? { reasonCode: 4 } : {}) }),
    );
  }
  return out;
}

describe('MQTT server under random input', () => {
  it('never throws on thousands of random and mutated streams, and keeps serving a well-behaved client', async () => {
    // Many of the mutated CONNECTs succeed as dev-1: lift the per-device limit, this is not about limits.
    const t = setup({ maxConnectionsPerDevice: 100_000, maxPacketSize: 4096 });
    await t.platform.inject('ch-1', 'r', 'retained', { retain: true });
    const rand = mulberry32(20261125);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const valid = corpus();
    const connects = valid.filter((b) => b[0] === 0x10);
    for (let i = 0; i < 3000; i++) {
      const c = t.client(rand() < 0.5 ? 4 : 5);
      let bytes: Buffer;
      if (i % 3 === 0) {
        bytes = Buffer.alloc(1 + Math.floor(rand() * 64));
        for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      } else {
        // A CONNECT (usually intact) and a few packets, then a handful of flipped bytes.
        const parts = [pick(connects), ...Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pick(valid))];
        bytes = Buffer.concat(parts);
        const flips = i % 3 === 1 ? 1 + Math.floor(rand() * 4) : 0;
        for (let k = 0; k < flips; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      // Delivered in random slices: packets need not arrive whole.
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + Math.floor(rand() * 24);
        c.raw(bytes.subarray(at, at + n));
        at += n;
      }
      if (rand() < 0.3) c.drop();
      if (i % 50 === 0) await t.clock.advance(700);
    }
    await t.clock.advance(20_000);
    await settle();

    const good = await t.connected(5, { clientId: 'good' });
    expect((await good.subscribe({ topic: 'channels/ch-1/messages/#', qos: 0 })).granted).toEqual([0]);
    good.publish('channels/ch-1/messages/after', 'still here', 1);
    expect((await good.next('puback')).reasonCode).toBe(0);
    const got = (await good.drain()).flatMap((p) => (p.cmd === 'publish' ? [`${p.topic} ${p.retain}`] : []));
    expect(got).toContain('channels/ch-1/messages/r true');
    expect(got.at(-1)).toBe('channels/ch-1/messages/after false');
    expect(good.errors).toEqual([]);
    await t.server.close();
    expect(t.server.connections.size).toBe(0);
  });
});

/** Every packet and error a parser emits for a stream fed in the given slices. */
function parseAll(parser: ReturnType<typeof mqtt.parser>, slices: Buffer[]): unknown[] {
  const out: unknown[] = [];
  parser.on('packet', (p: Packet) => out.push(JSON.parse(JSON.stringify(p))));
  parser.on('error', (e: Error) => out.push(`error: ${e.message}`));
  for (const s of slices) {
    try {
      parser.parse(s);
    } catch (e) {
      // Our parser's one deliberate difference: ill-formed UTF-8 in a string field [MQTT-1.5.4-1].
      out.push(
        e instanceof Error && e.message.includes('MQTT-1.5.4-1') ? 'threw: ill-formed UTF-8' : e instanceof Error && e.message.includes('MQTT-1.5.4-2') ? 'threw: U+0000' : `threw: ${e instanceof Error ? e.constructor.name : String(e)}`,
      );
    }
  }
  return out;
}

describe("the reader's byte queue (FlatBytes in place of mqtt-packet's BufferList)", () => {
  it('parses exactly what stock mqtt-packet parses — same packets, same errors — for 3000 random, mutated and sliced streams, but refuses ill-formed UTF-8 strings and properties past their length', () => {
    const rand = mulberry32(20261130);
    const valid = corpus();
    let refused = 0;
    let overrun = 0;
    for (let i = 0; i < 3000; i++) {
      const parts = Array.from({ length: 1 + Math.floor(rand() * 8) }, () => valid[Math.floor(rand() * valid.length)]!);
      const bytes = Buffer.concat(parts);
      const flips = i % 3 === 0 ? 0 : 1 + Math.floor(rand() * 3);
      for (let k = 0; k < flips; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      const slices: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 8 : 200));
        slices.push(Buffer.from(bytes.subarray(at, at + n)));
        at += n;
      }
      const flat = parseAll(flatParser(), slices);
      const stock = parseAll(mqtt.parser(), slices);
      const at = flat.findIndex((x, k) => JSON.stringify(x) !== JSON.stringify(stock[k]));
      if (at === -1 && flat.length === stock.length) continue;
      // Where they part, stock mqtt-packet gave a packet with U+FFFD for bytes that are not UTF-8
      // [MQTT-1.5.4-1] (or refused the string for what it decoded to, e.g. a protocol name), and
      // ours threw (the reader closes the connection as malformed).
      // Or stock gave a string with U+0000 in it [MQTT-1.5.4-2], which ours refused.
      const theirs = JSON.stringify(stock[at]);
      // Or a property ran past the Property Length: stock read on into what follows, ours refused it.
      if (flat[at] === `error: ${PROPERTY_OVERRUN}`) {
        overrun++;
        continue;
      }
      if (flat[at] === 'threw: U+0000') expect(theirs.includes('\\u0000') || theirs.startsWith('"error: '), `stream ${i}: ${theirs}`).toBe(true);
      else {
        expect(flat[at], `stream ${i}`).toBe('threw: ill-formed UTF-8');
        expect(theirs.includes('\uFFFD') || theirs.startsWith('"error: '), `stream ${i}: ${theirs}`).toBe(true);
      }
      refused++;
    }
    expect(refused).toBeGreaterThan(0); // the mutations do hit string fields
    expect(overrun).toBeGreaterThan(0); // and property lengths
  });
});

