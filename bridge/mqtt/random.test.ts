import { Duplex } from 'node:stream';
import mqtt from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../shared/principal';
import { mulberry32 } from '../../shared/testing/prng';
import { PlatformError, type Platform } from '../platform/types';
import { createMqttServer } from './server';

/** An in-memory byte stream: what the server writes is collected; the test pushes bytes in. */
function pipe(): { stream: Duplex; out: Buffer[]; closed: () => boolean } {
  const out: Buffer[] = [];
  let isClosed = false;
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk);
      cb();
    },
  });
  stream.on('close', () => (isClosed = true));
  return { stream, out, closed: () => isClosed };
}

/** Accepts one device key; every decision allowed; publishes acknowledged. Unit level only. */
const platform: Platform = {
  async authenticate(_u, password): Promise<Principal> {
    if (password !== 'efd_good') throw new PlatformError(401, 'bad key');
    return { kind: 'device', id: 'd1', orgId: 'o1' };
  },
  async authorize(_p, checks) {
    return checks.map((c) => ({ ...c, allowed: true, status: 200 }));
  },
  async channelsFor() {
    return ['c1'];
  },
  async publish() {
    return { ok: true, seq: 1, created: Date.now() };
  },
  async subscribe() {
    return { close() {} };
  },
  presence() {},
};

describe('MQTT server under random input', () => {
  it('never throws on random and mutated bytes, and keeps serving a well-behaved client', async () => {
    const server = createMqttServer({ platform, limits: { connectTimeoutMs: 50 } });
    const rand = mulberry32(20261125);
    const valid = [
      mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 0, username: 'd1', password: Buffer.from('efd_good') }),
      mqtt.generate({ cmd: 'publish', topic: 'channels/c1/messages/a', payload: Buffer.from('hi'), qos: 1, messageId: 7, retain: false, dup: false }),
      mqtt.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'channels/c1/messages/#', qos: 1 }] }),
    ];
    for (let i = 0; i < 3000; i++) {
      const { stream } = pipe();
      server.handle(stream);
      let bytes: Buffer;
      if (i % 2 === 0) {
        bytes = Buffer.alloc(1 + Math.floor(rand() * 48));
        for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      } else {
        bytes = Buffer.concat(valid.slice(0, 1 + Math.floor(rand() * 3)));
        for (let k = 0; k < 3; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      stream.push(bytes);
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 100));
    // A good client still gets CONNACK 0 and its PUBACK.
    const good = pipe();
    server.handle(good.stream);
    good.stream.push(Buffer.concat(valid.slice(0, 2)));
    await new Promise((r) => setTimeout(r, 50));
    const parser = mqtt.parser();
    const got: string[] = [];
    parser.on('packet', (p) => got.push(p.cmd === 'connack' ? `connack ${p.returnCode}` : p.cmd));
    for (const b of good.out) parser.parse(b);
    expect(got).toEqual(['connack 0', 'puback']);
    await server.close();
  });
});
