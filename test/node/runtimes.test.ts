import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { provision, startPlatform } from './processes';

/**
 * The same end-to-end scenario with the bridge on Node, Bun and Deno (EDGEFLUX_BRIDGE_RUNTIME):
 * a device publishes over MQTT and an app receives it over WebSocket; an HTTP publish reaches an
 * MQTT subscriber; a CoAP POST is stored and served back by the query API.
 */
const run = promisify(execFile);

describe.each(['node', 'bun', 'deno'])('bridge on %s', (runtime) => {
  it('carries MQTT, CoAP and HTTP messages end to end', async () => {
    const state = mkdtempSync(join(tmpdir(), `edgeflux-${runtime}-`));
    const platform = await startPlatform({ EDGEFLUX_STATE_DIR: state, EDGEFLUX_BRIDGE_RUNTIME: runtime });
    const sub = { client: null as mqtt.MqttClient | null };
    try {
      const w = await provision(platform.url);
      const topic = `channels/${w.channel}/messages`;
      const ws = new WebSocket(`${platform.url.replace('http', 'ws')}/channels/${w.channel}/messages/dev`, { headers: { authorization: `Bearer ${w.token}` } });
      const seen: Record<string, unknown>[] = [];
      ws.on('message', (d: Buffer) => seen.push(JSON.parse(d.toString()) as Record<string, unknown>));
      await new Promise((r) => ws.once('open', r));
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(platform.mqttPort), '-u', w.deviceId, '-P', w.deviceKey, '-t', `${topic}/dev`, '-m', `via ${runtime}`, '-q', '1', '-V', 'mqttv5', '-D', 'publish', 'content-type', 'text/plain']);
      for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(seen[0]).toEqual({ type: 'subscribed', seq: 0 });
      expect(seen[1]).toMatchObject({ type: 'message', protocol: 'mqtt', payload: `via ${runtime}`, contentType: 'text/plain' });
      ws.close();

      sub.client = mqtt.connect(`mqtt://127.0.0.1:${platform.mqttPort}`, { username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0 });
      await new Promise<void>((ok, fail) => (sub.client!.once('connect', () => ok()), sub.client!.once('error', fail)));
      const got: string[] = [];
      sub.client.on('message', (_t, p) => got.push(p.toString()));
      await sub.client.subscribeAsync(`${topic}/app`, { qos: 1 });
      await fetch(`${platform.url}/channels/${w.channel}/messages/app`, { method: 'POST', headers: { authorization: `Bearer ${w.token}`, 'content-type': 'text/plain' }, body: 'from http' });
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(got).toEqual(['from http']);

      await run('coap-client-notls', ['-m', 'post', '-t', '0', '-e', `coap via ${runtime}`, `coap://127.0.0.1:${platform.coapPort}/channels/${w.channel}/messages/coap?auth=${w.deviceKey}`]);
      let total = 0;
      for (let i = 0; i < 60 && total === 0; i++) {
        total = ((await (await fetch(`${platform.url}/channels/${w.channel}/messages?subtopic=coap`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { total: number }).total;
        if (!total) await new Promise((r) => setTimeout(r, 100));
      }
      expect(total).toBe(1);
    } finally {
      sub.client?.end(true);
      await platform.stop();
      rmSync(state, { recursive: true, force: true });
    }
  }, 120_000);
});

/**
 * A stopping CoAP server ends each observation with a last 5.03 (docs/coap.md). Deno's node:dgram
 * drops the sends still queued when a socket closes: with one turn's wait 128 of 3000 observers got
 * theirs. close() waits for every send to call back (bridge/coap/udp.ts).
 */
describe.each([
  ['node', [join('node_modules', '.bin', 'tsx')]],
  ['bun', [join('node_modules', '.bin', 'bun')]],
  ['deno', [join('node_modules', '.bin', 'deno'), 'run', '-A', '--unstable-sloppy-imports']],
])('CoAP close on %s', (_runtime, [cmd, ...args]) => {
  it('every one of 1000 observers gets its last 5.03', async () => {
    const { stdout } = await run(cmd!, [...args, join('test', 'node', 'scripts', 'coap-close-drain.ts'), '1000'], { timeout: 60_000 });
    expect(stdout.trim()).toBe('ended 1000 of 1000');
  }, 90_000);
});
