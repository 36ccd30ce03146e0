/**
 * `npx tsx bench/access-rechecks.ts [sessions=200] [rounds=3]`: what an access change costs a bridge
 * with many live sessions of the org (docs/bridge.md, Platform client). Starts the platform (`npm
 * start`'s launcher, fresh state), a second bridge that dials the worker through a counting proxy,
 * `sessions` MQTT clients of one org each subscribed to a channel; then, `rounds` times, makes an
 * access change that revokes nothing (a policy created) and reports, from what the proxy saw:
 * the /internal/authorize requests the bridge sent and the questions in them, how long from the
 * first of them to the last answer (the herd), and from the change's answer to that last answer
 * (which includes up to a second of the bridge's poll for changes). Ports: EDGEFLUX_TEST_PORTS.
 * Not part of `npm run bench`: a diagnostic, run it before and after a change to the re-checks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { countingProxy } from '../test/node/counting-proxy';
import { provision, startBridge, startPlatform } from '../test/node/processes';

const sessions = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const state = mkdtempSync(join(tmpdir(), 'edgeflux-rechecks-bench-'));
const platform = await startPlatform({ EDGEFLUX_STATE_DIR: state, WRANGLER_SEND_METRICS: 'false' });
const proxy = await countingProxy(platform.url);
const bridge = await startBridge({ url: proxy.url });
const clients: MqttClient[] = [];
try {
  const w = await provision(platform.url);
  const api = (method: string, path: string, body: unknown) => w.call(method, `/orgs/${w.org}${path}`, body, w.token) as Promise<unknown>;
  const devices: { id: string; key: string }[] = [];
  for (let i = 0; i < sessions; i += 100) {
    const { items } = (await api('POST', '/devices/bulk', { devices: Array.from({ length: Math.min(100, sessions - i) }, (_, j) => ({ name: `d${i + j}` })) })) as { items: { id: string; key: string }[] };
    await api('POST', '/connections', { channel_ids: [w.channel], device_ids: items.map((d) => d.id) });
    devices.push(...items);
  }
  const topic = `channels/${w.channel}/messages/rechecks`;
  for (let i = 0; i < devices.length; i += 50) {
    await Promise.all(
      devices.slice(i, i + 50).map(async (d, j) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${bridge.mqttPort}`, { protocolVersion: 5, clientId: `rechecks-${i + j}`, username: d.id, password: d.key, reconnectPeriod: 0, keepalive: 600, connectTimeout: 30_000 });
        clients.push(c);
        await new Promise<void>((ok, fail) => {
          c.once('connect', () => ok());
          c.once('error', fail);
        });
        await c.subscribeAsync(topic, { qos: 1 });
      }),
    );
  }
  await sleep(3000);
  for (let round = 0; round < rounds; round++) {
    const from = proxy.seen.length;
    await api('POST', '/policies', { name: `p${round}`, statements: [{ effect: 'deny', actions: ['messages:publish'], resources: ['channels/none'] }] });
    const changedAt = Date.now();
    await sleep(4000); // the bridge polls every second; then every session asks
    const asked = proxy.seen.slice(from).filter((s) => s.path === '/internal/authorize');
    const last = Math.max(...asked.map((s) => s.answeredAt ?? NaN));
    const first = Math.min(...asked.map((s) => s.at));
    const connected = clients.filter((c) => c.connected).length;
    console.log(
      JSON.stringify({
        sessions,
        round,
        connected,
        requests: asked.length,
        questions: asked.reduce((n, s) => n + (s.items ?? 0), 0),
        failed: asked.filter((s) => s.status !== 200).length,
        herdMs: asked.length ? last - first : null,
        changeToLastAnswerMs: asked.length ? last - changedAt : null,
      }),
    );
    await sleep(1000);
  }
} finally {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await bridge.stop();
  await proxy.close();
  await platform.stop();
  rmSync(state, { recursive: true, force: true });
}
