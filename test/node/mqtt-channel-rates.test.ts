import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient, type Packet } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provision, startPlatform, type Platform } from './processes';

/**
 * A channel's rates are what govern an MQTT device (docs/mqtt.md "Limits"): with the bridge's
 * default limits, a device on a channel whose owner raised `publisherRate` gets that rate, and on a
 * channel left at its default it is refused by the channel (PUBACK 0x97, the channel's reason).
 * `npm start`'s launcher with no EDGEFLUX_MQTT_LIMITS, a real MQTT.js client.
 */
const state = mkdtempSync(join(tmpdir(), 'edgeflux-rates-'));
let platform: Platform;
let w: Awaited<ReturnType<typeof provision>>;
let client: MqttClient;

beforeAll(async () => {
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
  w = await provision(platform.url);
  client = await mqtt.connectAsync(`mqtt://127.0.0.1:${platform.mqttPort}`, { protocolVersion: 5, username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0 });
}, 120_000);

afterAll(async () => {
  await client?.endAsync(true);
  await platform?.stop();
  rmSync(state, { recursive: true, force: true });
});

/** Publishes `n` QoS 1 messages at once; every PUBACK's reason code and reason string. */
async function burst(channel: string, n: number): Promise<{ rc: number; reason?: string }[]> {
  const acks: { rc: number; reason?: string }[] = [];
  const onPacket = (p: Packet) => {
    if (p.cmd === 'puback') acks.push({ rc: p.reasonCode ?? 0, reason: p.properties?.reasonString });
  };
  client.on('packetreceive', onPacket);
  try {
    await Promise.all(Array.from({ length: n }, (_, i) => client.publishAsync(`channels/${channel}/messages/burst`, String(i), { qos: 1 }).catch(() => undefined)));
  } finally {
    client.off('packetreceive', onPacket);
  }
  expect(acks).toHaveLength(n);
  return acks;
}

describe("an MQTT device's publish rate is its channel's", () => {
  it('a channel whose publisherRate was raised to 1000/s takes a burst of 600 from one device', async () => {
    await w.call('PATCH', `/orgs/${w.org}/channels/${w.channel}/limits`, { publisherRate: { perSecond: 1000, burst: 2000 } }, w.token);
    const acks = await burst(w.channel, 600);
    expect(acks.filter((a) => a.rc !== 0)).toEqual([]);
  });

  it("a channel left at its default (100/s, burst 200) refuses the rest of the burst with 0x97 and the channel's reason", async () => {
    const other = (await w.call('POST', `/orgs/${w.org}/channels`, { name: 'default rates' }, w.token)).id!;
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [other], device_ids: [w.deviceId] }, w.token);
    const acks = await burst(other, 400);
    const refused = acks.filter((a) => a.rc !== 0);
    expect(acks.length - refused.length).toBeGreaterThanOrEqual(200);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.rc).toBe(0x97);
      expect(r.reason).toMatch(/rate limit exceeded for publisher/);
    }
  });
});
