import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingProxy } from './counting-proxy';
import { provision, startBridge, startPlatform, type Bridge, type Platform } from './processes';

/**
 * An access change in an org with many live sessions on one bridge (docs/bridge.md, Platform
 * client): every session asks again at once, and the bridge sends those questions to the worker
 * in batches — not one request per session. The real platform (wrangler dev + workerd + D1), a
 * second real bridge process dialling it through a proxy that counts what it asks, MQTT.js clients.
 */
const state = mkdtempSync(join(tmpdir(), 'edgeflux-rechecks-'));
let platform: Platform;
let proxy: Awaited<ReturnType<typeof countingProxy>>;
let bridge: Bridge;
const clients: MqttClient[] = [];

beforeAll(async () => {
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
  proxy = await countingProxy(platform.url);
  bridge = await startBridge({ url: proxy.url });
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await bridge?.stop();
  await proxy?.close();
  await platform?.stop();
  rmSync(state, { recursive: true, force: true });
});

describe('re-checks after an access change, through a real bridge', () => {
  it('50 subscribed sessions and 5 idle ones of one org cost a batch request or two, not 55; the deleted device among them is disconnected', async () => {
    const w = await provision(platform.url);
    const subscribed = 50;
    const idle = 5;
    const { items: devices } = (await (
      await fetch(`${platform.url}/orgs/${w.org}/devices/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${w.token}` },
        body: JSON.stringify({ devices: Array.from({ length: subscribed + idle }, (_, i) => ({ name: `d${i}` })) }),
      })
    ).json()) as { items: { id: string; key: string }[] };
    expect(devices).toHaveLength(subscribed + idle);
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [w.channel], device_ids: devices.map((d) => d.id) }, w.token);

    const topic = `channels/${w.channel}/messages/herd`;
    const closed = new Set<number>();
    let deletedGone!: () => void;
    const gone = new Promise<void>((r) => (deletedGone = r));
    await Promise.all(
      devices.map(async (d, i) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${bridge.mqttPort}`, { protocolVersion: 5, clientId: `herd-${i}`, username: d.id, password: d.key, reconnectPeriod: 0, keepalive: 600, connectTimeout: 20_000 });
        clients.push(c);
        c.on('close', () => {
          closed.add(i);
          if (i === 0) deletedGone();
        });
        await new Promise<void>((ok, fail) => {
          c.once('connect', () => ok());
          c.once('error', fail);
        });
        if (i < subscribed) await c.subscribeAsync(topic, { qos: 1 });
      }),
    );
    // Quiet: what connecting and subscribing asked is answered.
    await new Promise((r) => setTimeout(r, 1500));
    expect(closed.size).toBe(0);

    const from = proxy.seen.length;
    const changedAt = Date.now();
    // An access change in the org that also revokes one of them: device 0 (subscribed) is deleted.
    const deleted = await fetch(`${platform.url}/orgs/${w.org}/devices/${devices[0]!.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${w.token}` } });
    expect(deleted.status).toBe(204);
    await gone;
    const endedAfter = Date.now() - changedAt;
    // Then long enough for any straggling question (the bridge polls for changes every second).
    await new Promise((r) => setTimeout(r, 2500));
    const asked = proxy.seen.slice(from).filter((s) => s.path === '/internal/authorize');
    const questions = asked.reduce((n, s) => n + (s.items ?? 0), 0);
    expect(questions).toBeGreaterThanOrEqual(subscribed + idle); // every session asked again…
    expect(asked.length).toBeLessThanOrEqual(Math.ceil((subscribed + idle) / 100) + 2); // …in one batch request (a couple more at most)
    expect(asked.every((s) => s.status === 200)).toBe(true);
    expect(endedAfter).toBeLessThan(4_000);
    // Only the deleted device's session ended.
    expect([...closed]).toEqual([0]);
    expect(clients.filter((c) => c.connected)).toHaveLength(subscribed + idle - 1);
  }, 90_000);
});
