import mqtt, { type IPublishPacket } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { encodeSimplePublish } from './publish-encode';

const generate = (p: IPublishPacket, version: 4 | 5) => mqtt.generate(p, { protocolVersion: version });
/** Byte-for-byte the same (Buffer.equals: vitest's deep equality walks megabytes slowly). */
const same = (p: IPublishPacket, version: 4 | 5) => expect(encodeSimplePublish(p, version)?.equals(generate(p, version))).toBe(true);
const packet = (over: Partial<IPublishPacket>): IPublishPacket => ({ cmd: 'publish', topic: 'channels/c1/messages/a', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, ...over });

describe('encodeSimplePublish: the bytes mqtt-packet generates', () => {
  // Payload sizes around each Remaining Length boundary (1, 2, 3 bytes) and none at all.
  const sizes = [0, 1, 100, 127 - 25, 128, 16_383 - 25, 16_384, 70_000, 2_097_152];
  for (const version of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      it.each(sizes)(`MQTT ${version === 5 ? '5' : '3.1.1'}, QoS ${qos}, %i payload bytes, flags and ids`, (size) => {
        const payload = Buffer.alloc(size, 0x61);
        for (const [dup, retain] of [[false, false], [true, true], [false, true]] as const) {
          const p = packet({ payload, qos, dup, retain, ...(qos > 0 ? { messageId: 0xbeef } : {}), ...(version === 5 ? { properties: {} } : {}) });
          same(p, version);
        }
      });
    }
  }

  it('multi-byte UTF-8 topics, string payloads and a view into a larger buffer', () => {
    const backing = Buffer.from('..payload..');
    for (const p of [packet({ topic: 'channels/c1/messages/température/😀' }), packet({ payload: 'ünïcode text' as unknown as Buffer }), packet({ payload: backing.subarray(2, 9), qos: 1, messageId: 1 })]) {
      same(p, 4);
    }
  });

  it('MQTT 5 Subscription Identifiers as the only properties: one, several, equal ones, each length of identifier, many (a two-byte property length)', () => {
    const lists = [[1], [127], [128], [16_383, 16_384], [2_097_151, 2_097_152, 268_435_455], [5, 5], Array.from({ length: 40 }, (_, i) => 1 + i * 6_000_000)];
    for (const ids of lists) {
      for (const qos of [0, 1] as const) {
        const p = packet({ qos, ...(qos > 0 ? { messageId: 9 } : {}), payload: Buffer.alloc(120, 0x62), properties: { subscriptionIdentifier: ids.length === 1 ? ids[0]! : ids } });
        same(p, 5);
        const parser = mqtt.parser({ protocolVersion: 5 });
        let parsed: IPublishPacket | undefined;
        parser.on('packet', (x) => (parsed = x as IPublishPacket));
        parser.parse(encodeSimplePublish(p, 5)!);
        expect(parsed?.properties?.subscriptionIdentifier).toEqual(ids.length === 1 ? ids[0] : ids);
      }
    }
  });

  it('leaves other MQTT 5 properties and out-of-range packets to mqtt-packet (null)', () => {
    expect(encodeSimplePublish(packet({ properties: { contentType: 'text/plain' } }), 5)).toBeNull();
    expect(encodeSimplePublish(packet({ properties: { subscriptionIdentifier: 3, contentType: 'text/plain' } }), 5)).toBeNull();
    expect(encodeSimplePublish(packet({ properties: { subscriptionIdentifier: 0 } }), 5)).toBeNull();
    expect(encodeSimplePublish(packet({ topic: 'x'.repeat(70_000) }), 4)).toBeNull();
    expect(encodeSimplePublish(packet({ qos: 1 }), 4)).toBeNull();
  });

  it('matches mqtt-packet on random packets, and mqtt-packet parses them back', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n);
    for (let k = 0; k < 500; k++) {
      const version = rnd(2) ? 5 : 4;
      const qos = rnd(3) as 0 | 1 | 2;
      const topic = Array.from({ length: 1 + rnd(40) }, () => String.fromCodePoint(rnd(4) ? 0x61 + rnd(26) : 0xa0 + rnd(3000))).join('');
      const payload = Buffer.from(Array.from({ length: rnd(3) ? rnd(300) : rnd(40_000) }, () => rnd(256)));
      const p = packet({ topic, payload, qos, dup: rnd(2) === 1, retain: rnd(2) === 1, ...(qos > 0 ? { messageId: 1 + rnd(65_535) } : {}) });
      const bytes = encodeSimplePublish(p, version)!;
      expect(bytes.equals(generate(p, version))).toBe(true);
      const parser = mqtt.parser({ protocolVersion: version });
      let parsed: IPublishPacket | undefined;
      parser.on('packet', (x) => (parsed = x as IPublishPacket));
      parser.parse(bytes);
      expect(parsed).toMatchObject({ cmd: 'publish', topic, qos, retain: p.retain, dup: p.dup });
      expect(Buffer.compare(parsed!.payload as Buffer, payload)).toBe(0);
    }
  });
});
