import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, provision, root, startPlatform, type Platform } from './processes';

/**
 * Eclipse Paho's Python client (Debian's python3-paho-mqtt: Home Assistant, Raspberry Pi scripts,
 * collectors) against `npm start` over MQTT, MQTT over TLS and MQTT over WebSocket. The device
 * scripts are `scripts/paho-device.py`, run by Debian's own Python (/usr/bin/python3: the one
 * python3-paho-mqtt installs into; a `python3` earlier on PATH may lack paho).
 */
const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'edgeflux-paho-py-'));
let platform: Platform;
let w: Awaited<ReturnType<typeof provision>>;
let tlsPort = 0;
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let senmlChannel = '';
let otherChannel = '';

beforeAll(async () => {
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-days', '1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
  tlsPort = await freePort();
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: join(dir, 'state'), EDGEFLUX_MQTT_TLS_PORT: String(tlsPort), EDGEFLUX_MQTT_TLS_CERT: cert, EDGEFLUX_MQTT_TLS_KEY: key });
  w = await provision(platform.url);
  // A second channel the device is connected to, whose default content type is SenML (the README's
  // step), and a third it is not connected to.
  senmlChannel = (await w.call('POST', `/orgs/${w.org}/channels`, { name: 'senml' }, w.token)).id!;
  await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [senmlChannel], device_ids: [w.deviceId] }, w.token);
  await w.call('PATCH', `/orgs/${w.org}/channels/${senmlChannel}/limits`, { defaultContentType: 'application/senml+json' }, w.token);
  otherChannel = (await w.call('POST', `/orgs/${w.org}/channels`, { name: 'not-connected' }, w.token)).id!;
}, 120_000);

afterAll(async () => {
  await platform?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function device<T>(scenario: string, args: Record<string, unknown>): Promise<T> {
  const all = { scenario, user: w.deviceId, password: w.deviceKey, ca: cert, ports: { tcp: platform.mqttPort, ws: platform.mqttWsPort, tls: tlsPort }, ...args };
  const { stdout } = await run(PYTHON, [join(root, 'test/node/scripts/paho-device.py'), JSON.stringify(all)], { timeout: 20_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

describe('Paho Python devices', () => {
  it('publish and wildcard subscribe at QoS 0/1/2 and a retained message, over TCP (3.1.1), TLS (5.0) and WebSocket (3.1)', async () => {
    const cases = [
      { transport: 'tcp', version: 4 },
      { transport: 'tls', version: 5 },
      { transport: 'ws', version: 3 },
    ];
    const results = await Promise.all(cases.map((c) => device<{ got: [string, string, number, boolean][]; retained: [string, string, number, boolean][] }>('roundtrip', { ...c, topic: `channels/${w.channel}/messages/${c.transport}` })));
    results.forEach((r, i) => {
      const t = `channels/${w.channel}/messages/${cases[i]!.transport}`;
      // MQTT orders messages per QoS only [MQTT-4.6.0-6]: what arrives, in any order.
      expect([...r.got].sort()).toEqual([
        [`${t}/lab/temp`, '[{"n": "temp", "v": 0}]', 0, false],
        [`${t}/lab/temp`, '[{"n": "temp", "v": 1}]', 1, false],
        [`${t}/lab/temp`, '[{"n": "temp", "v": 2}]', 2, false],
        [`${t}/status`, 'online', 1, false],
      ]);
      expect(r.retained).toEqual([[`${t}/status`, 'online', 1, true]]);
    });
  });

  // 3.1.1 has no negative acknowledgement: a refused publish closes the connection [MQTT-3.3.5-2].
  // Paho then reconnects and resends every unacknowledged QoS 1/2 message (DUP), clean session or
  // not — the same refused one first. Before, that closed the connection again, for good: the device
  // reconnected every second and nothing it published after the refused message ever got through.
  type Resend = { connects: number; bad_acked: boolean; good_acked: boolean };
  it('3.1.1, QoS 1 to a channel the device is not connected to: closed once, then the resend is acknowledged and dropped and the next message goes through', async () => {
    const r = await device<Resend>('resend-refused', { clean_session: true, qos: 1, bad_topic: `channels/${otherChannel}/messages/x`, bad_payload: 'x', good_topic: `channels/${w.channel}/messages/after`, seconds: 6 });
    expect(r).toEqual({ connects: 2, bad_acked: true, good_acked: true });
  });

  it('3.1.1 persistent session, QoS 2 payload the SenML channel rejects: the same', async () => {
    const r = await device<Resend>('resend-refused', { clean_session: false, qos: 2, bad_topic: `channels/${senmlChannel}/messages/t`, bad_payload: '21.5', good_topic: `channels/${senmlChannel}/messages/t`, seconds: 6 });
    expect(r).toEqual({ connects: 2, bad_acked: true, good_acked: true });
  });
});
