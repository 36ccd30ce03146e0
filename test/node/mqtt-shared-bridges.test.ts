import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { provision, startBridge, startPlatform, type Bridge, type Platform } from './processes';

/**
 * MQTT 5 shared subscriptions across bridges (docs/mqtt.md "Shared subscriptions"): two real bridge
 * processes — the platform's own and a second one — against one real platform, real MQTT.js
 * clients. Members of one group on the two bridges get each message once between them.
 */
let platform: Platform;
let second: Bridge;
let w: Awaited<ReturnType<typeof provision>>;
const state = mkdtempSync(join(tmpdir(), 'edgeflux-xshare-'));
const clients: MqttClient[] = [];
let n = 0;
const topic = (sub: string) => `channels/${w.channel}/messages/${sub}`;

async function connect(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 5, clientId: `xshare-${Date.now()}-${n++}`, ...opts });
  clients.push(client);
  await new Promise<void>((ok, fail) => {
    client.once('connect', () => ok());
    client.once('error', fail);
  });
  return client;
}

const received = (c: MqttClient) => {
  const got: string[] = [];
  c.on('message', (_t, p) => got.push(p.toString()));
  return got;
};

async function until(f: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function httpPublish(sub: string, body: string): Promise<void> {
  const res = await fetch(`${platform.url}/channels/${w.channel}/messages/${sub}`, { method: 'POST', headers: { authorization: `Bearer ${w.token}`, 'content-type': 'text/plain' }, body });
  expect(res.status).toBe(202);
}

const sorted = (xs: string[]) => [...xs].sort();
const bodies = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix} ${String(i).padStart(2, '0')}`);

beforeAll(async () => {
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
  second = await startBridge(platform);
  w = await provision(platform.url);
}, 120_000);

afterEach(() => {
  for (const c of clients.splice(0)) c.end(true);
});

afterAll(async () => {
  await second?.stop();
  await platform?.stop();
  rmSync(state, { recursive: true, force: true });
});

describe('shared subscriptions across two bridges', () => {
  it.each([0, 1, 2] as const)('members of one group on two bridges get each message once between them (QoS %i); a plain subscriber gets every one', async (qos) => {
    const filter = `$share/xg${qos}/${topic(`x${qos}/#`)}`;
    const a = await connect(platform.mqttPort);
    const b = await connect(second.mqttPort);
    const plain = await connect(second.mqttPort);
    await a.subscribeAsync(filter, { qos });
    await b.subscribeAsync(filter, { qos });
    await plain.subscribeAsync(topic(`x${qos}/#`), { qos });
    const [gotA, gotB, gotPlain] = [received(a), received(b), received(plain)];
    const sent = bodies(`q${qos}`, 20);
    for (const body of sent) await httpPublish(`x${qos}/m`, body);
    await until(() => gotA.length + gotB.length >= sent.length && gotPlain.length >= sent.length);
    await new Promise((r) => setTimeout(r, 500)); // a copy too many would have arrived by now
    expect(sorted([...gotA, ...gotB])).toEqual(sent);
    // Both bridges had their share (the actor takes them in turn).
    expect(gotA.length).toBeGreaterThan(0);
    expect(gotB.length).toBeGreaterThan(0);
    expect(gotPlain).toEqual(sent);
  }, 60_000);

  it('a member that leaves moves its share to the others — with the QoS 1 deliveries it had not acknowledged, to the other bridge', async () => {
    const filter = `$share/leave/${topic('leave/#')}`;
    const unacked: string[] = [];
    // Never PUBACKs: its ack handler records the PUBLISH and never answers (MQTT.js then reads no further packet).
    const a = await connect(platform.mqttPort, { customHandleAcks: (_t, p) => void unacked.push(p.toString()) });
    const b = await connect(second.mqttPort);
    await a.subscribeAsync(filter, { qos: 1 });
    await b.subscribeAsync(filter, { qos: 1 });
    const gotB = received(b);
    const first = bodies('before', 10);
    for (const body of first) await httpPublish('leave/m', body);
    // The actor takes the two bridges in turn: each had half of them (a reads only its first).
    await until(() => unacked.length > 0 && gotB.length >= first.length / 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(gotB.length).toBe(first.length / 2);
    // a's socket drops (no DISCONNECT; a session that ends with it): what it had not acknowledged goes to b.
    a.stream.destroy();
    await until(() => gotB.length >= first.length);
    const later = bodies('after', 6);
    for (const body of later) await httpPublish('leave/m', body);
    await until(() => gotB.length >= first.length + later.length);
    await new Promise((r) => setTimeout(r, 500));
    expect(sorted(gotB)).toEqual(sorted([...first, ...later]));
  }, 60_000);

  it('a persistent member keeps its group to its bridge (each bridge’s group gets its own copy, as before)', async () => {
    const filter = `$share/keep/${topic('keep/#')}`;
    const a = await connect(platform.mqttPort, { clean: false, properties: { sessionExpiryInterval: 60 } });
    const b = await connect(second.mqttPort);
    await a.subscribeAsync(filter, { qos: 1 });
    await b.subscribeAsync(filter, { qos: 1 });
    const [gotA, gotB] = [received(a), received(b)];
    const sent = bodies('kept', 4);
    for (const body of sent) await httpPublish('keep/m', body);
    await until(() => gotA.length >= sent.length && gotB.length >= sent.length);
    expect(gotA).toEqual(sent);
    expect(gotB).toEqual(sent);
  }, 60_000);
});
