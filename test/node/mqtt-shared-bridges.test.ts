import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { provision, startBridge, startPlatform, type Bridge, type Platform } from './processes';

/**
 * MQTT shared subscriptions spanning bridges (link v5; docs/mqtt.md "Shared subscriptions"): the
 * platform with its own bridge plus a second bridge process, real MQTT.js clients on both. The
 * channel actor gives each message of a group to one bridge; that bridge, to one of its members.
 */
let platform: Platform;
let second: Bridge;
let w: Awaited<ReturnType<typeof provision>>;
const state = mkdtempSync(join(tmpdir(), 'edgeflux-xshare-'));
const clients: MqttClient[] = [];
let n = 0;
const topic = (sub: string): string => `channels/${w.channel}/messages/${sub}`;

async function connect(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 5, clientId: `xshare-${process.pid}-${n++}`, ...opts });
  clients.push(client);
  await new Promise<void>((ok, fail) => {
    client.once('connect', () => ok());
    client.once('error', fail);
  });
  return client;
}

const received = (c: MqttClient): string[] => {
  const got: string[] = [];
  c.on('message', (_t, p) => got.push(p.toString()));
  return got;
};

async function until(f: () => boolean, ms = 20_000): Promise<void> {
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

const sorted = (xs: string[]): string[] => [...xs].sort();
const bodies = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix} ${String(i).padStart(2, '0')}`);
/** Long enough for a copy too many to have arrived. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 600));

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
  it.each([0, 1] as const)('members of one group on two bridges get each message exactly once between them (QoS %i); a plain subscriber every one', async (qos) => {
    const filter = `$share/g${qos}/${topic(`s${qos}/#`)}`;
    const a = await connect(platform.mqttPort);
    const b = await connect(second.mqttPort);
    const plain = await connect(second.mqttPort);
    await a.subscribeAsync(filter, { qos });
    await b.subscribeAsync(filter, { qos });
    await plain.subscribeAsync(topic(`s${qos}/#`), { qos });
    const [gotA, gotB, gotPlain] = [received(a), received(b), received(plain)];
    const sent = bodies(`q${qos}`, 20);
    for (const body of sent) await httpPublish(`s${qos}/m`, body);
    await until(() => gotA.length + gotB.length >= sent.length && gotPlain.length >= sent.length);
    await settle();
    expect(sorted([...gotA, ...gotB])).toEqual(sent);
    // Both bridges had their turn.
    expect(gotA.length).toBeGreaterThan(0);
    expect(gotB.length).toBeGreaterThan(0);
    expect(gotPlain).toEqual(sent);
  }, 60_000);

  it('a member that drops mid-stream loses nothing (QoS 1): what it had not acknowledged goes to the member on the other bridge', async () => {
    const filter = `$share/drop/${topic('drop/#')}`;
    const unacked: string[] = [];
    // Never PUBACKs: MQTT.js hands the first PUBLISH to this handler, which never answers (and reads no further packet).
    const a = await connect(platform.mqttPort, { customHandleAcks: (_t, p) => void unacked.push(p.toString()) });
    const b = await connect(second.mqttPort);
    await a.subscribeAsync(filter, { qos: 1 });
    await b.subscribeAsync(filter, { qos: 1 });
    const gotB = received(b);
    const first = bodies('before', 10);
    for (const body of first) await httpPublish('drop/m', body);
    // The actor takes the bridges in turn: half went to a's bridge, where they wait on a.
    await until(() => unacked.length > 0 && gotB.length >= first.length / 2);
    await settle();
    expect(gotB.length).toBe(first.length / 2);
    // a's connection drops (no DISCONNECT; its session ends with it).
    a.stream.destroy();
    await until(() => gotB.length >= first.length);
    const later = bodies('after', 6);
    for (const body of later) await httpPublish('drop/m', body);
    await until(() => gotB.length >= first.length + later.length);
    await settle();
    expect(sorted(gotB)).toEqual(sorted([...first, ...later]));
  }, 60_000);

  it('a group with a persistent-session member, or a QoS 2 one, stays on its bridge: each bridge\'s group gets its own copy, as before', async () => {
    const filter = `$share/keep/${topic('keep/#')}`;
    const a = await connect(platform.mqttPort, { clean: false, properties: { sessionExpiryInterval: 60 } });
    const b = await connect(second.mqttPort);
    await a.subscribeAsync(filter, { qos: 1 });
    await b.subscribeAsync(filter, { qos: 1 });
    const two = `$share/two/${topic('keep/#')}`;
    const c = await connect(platform.mqttPort);
    const d = await connect(second.mqttPort);
    await c.subscribeAsync(two, { qos: 2 });
    await d.subscribeAsync(two, { qos: 1 });
    const [gotA, gotB, gotC, gotD] = [received(a), received(b), received(c), received(d)];
    const sent = bodies('kept', 4);
    for (const body of sent) await httpPublish('keep/m', body);
    await until(() => gotA.length >= sent.length && gotB.length >= sent.length && gotC.length >= sent.length && gotD.length >= sent.length);
    for (const got of [gotA, gotB, gotC, gotD]) expect(got).toEqual(sent);
  }, 60_000);
});
