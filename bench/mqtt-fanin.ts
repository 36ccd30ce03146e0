/**
 * Scenario 1: MQTT fan-in — N publishers → 1 channel → 1 subscriber, small SenML payloads, QoS 0
 * and 1, through the whole platform (bridge → channel actor → D1) and through Mosquitto on the same
 * machine, measured by the same MQTT.js harness. Every Edgeflux message must also be stored: the
 * stored count is checked against what was acknowledged/sent, and a difference is reported first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, provision, startPlatform } from '../test/node/processes';
import { median, type Row } from './harness';

interface Target {
  name: string;
  port: number;
  topic: string;
  /** Credentials per client: index 0 the subscriber, then one per publisher. */
  auth: (i: number) => { username?: string; password?: string };
}

interface Run {
  received: number;
  sent: number;
  seconds: number;
  p50: number;
  p99: number;
  max: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function connect(t: Target, id: string, i = 0): Promise<MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${t.port}`, { clientId: id, reconnectPeriod: 0, ...t.auth(i) });
  await new Promise<void>((ok, fail) => (c.once('connect', () => ok()), c.once('error', fail)));
  return c;
}

/** Publishers send as fast as their QoS allows for `seconds`; the subscriber timestamps arrivals. */
async function fanIn(t: Target, publishers: number, qos: 0 | 1, seconds: number): Promise<Run> {
  const sub = await connect(t, `bench-sub-${Date.now()}`);
  const latencies: number[] = [];
  sub.on('message', (_topic, payload) => {
    const sent = Number(JSON.parse(payload.toString())[0].t);
    latencies.push(performance.timeOrigin + performance.now() - sent);
  });
  await sub.subscribeAsync(t.topic, { qos });
  const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => connect(t, `bench-pub-${i}-${Date.now()}`, i + 1)));
  let sent = 0;
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    pubs.map(async (p, i) => {
      while (Date.now() < until) {
        const body = JSON.stringify([{ bn: `dev${i}/`, n: 'temp', u: 'Cel', v: 21.5, t: performance.timeOrigin + performance.now() }]);
        if (qos === 1) await p.publishAsync(t.topic, body, { qos });
        else {
          p.publish(t.topic, body, { qos });
          // QoS 0 has no ack: yield to keep the socket from buffering without bound.
          if (sent % 50 === 0) await new Promise((r) => setImmediate(r));
        }
        sent++;
      }
    }),
  );
  await new Promise((r) => setTimeout(r, 1500)); // let in-flight messages arrive
  await Promise.all([...pubs, sub].map((c) => c.endAsync()));
  latencies.sort((a, b) => a - b);
  return { received: latencies.length, sent, seconds, p50: pct(latencies, 50), p99: pct(latencies, 99), max: latencies.at(-1) ?? NaN };
}

async function startMosquitto(): Promise<{ port: number; proc: ChildProcess; dir: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-mosq-'));
  writeFileSync(join(dir, 'm.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  const proc = spawn('mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    try {
      const c = await connect({ name: 'probe', port, topic: 'x', auth: () => ({}) }, 'probe');
      await c.endAsync();
      return { port, proc, dir };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('mosquitto did not start (is the Debian package mosquitto installed?)');
}

export async function mqttFanInScenarios(opts: { seconds: number; runs: number; publishers: number }): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const state = mkdtempSync(join(tmpdir(), 'bench-edgeflux-'));
  const platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
  const mosq = await startMosquitto();
  try {
    const w = await provision(platform.url);
    // One device per publisher, as in a real fan-in, all connected to the one channel.
    const made = (await w.call('POST', `/orgs/${w.org}/devices/bulk`, { devices: Array.from({ length: opts.publishers }, (_, i) => ({ name: `pub${i}` })) }, w.token)) as unknown as { items: { id: string; key: string }[] };
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [w.channel], device_ids: made.items.map((d) => d.id) }, w.token);
    const creds = [{ id: w.deviceId, key: w.deviceKey }, ...made.items.map((d) => ({ id: d.id, key: d.key }))];
    const targets: Target[] = [
      { name: 'Mosquitto', port: mosq.port, topic: 'bench/fanin', auth: () => ({}) },
      { name: 'Edgeflux', port: platform.mqttPort, topic: `channels/${w.channel}/messages/bench`, auth: (i) => ({ username: creds[i]!.id, password: creds[i]!.key }) },
    ];
    let edgefluxDelivered = 0;
    for (const qos of [0, 1] as const) {
      const perTarget = new Map<string, Run[]>();
      for (let r = 0; r < opts.runs; r++) {
        for (const t of targets) {
          const run = await fanIn(t, opts.publishers, qos, opts.seconds);
          perTarget.set(t.name, [...(perTarget.get(t.name) ?? []), run]);
          if (t.name === 'Edgeflux') edgefluxDelivered += run.sent;
        }
      }
      const rate = (rs: Run[]) => rs.map((x) => x.received / x.seconds);
      const peer = median(rate(perTarget.get('Mosquitto')!));
      for (const t of targets) {
        const rs = perTarget.get(t.name)!;
        const v = median(rate(rs));
        const scen = `1 MQTT fan-in ${opts.publishers}→1, QoS ${qos}`;
        rows.push({ scenario: scen, subject: t.name, metric: 'delivered msgs/s', value: v, unit: 'msg/s', runs: rate(rs), vs: t.name === 'Mosquitto' ? 'peer' : `${(v / peer).toFixed(2)}× Mosquitto` });
        rows.push({ scenario: scen, subject: t.name, metric: 'latency p50 / p99 (ms)', value: median(rs.map((x) => x.p50)), unit: `ms / ${median(rs.map((x) => x.p99)).toFixed(1)} ms`, runs: rs.map((x) => x.p50) });
        const lost = rs.reduce((s, x) => s + (x.sent - x.received), 0);
        if (lost > 0 && qos === 1) notes.push(`${t.name} QoS 1: ${lost} acknowledged messages not delivered to the subscriber`);
      }
    }
    // Every message Edgeflux accepted must be in D1.
    await new Promise((r) => setTimeout(r, 3000));
    const stored = ((await (await fetch(`${platform.url}/channels/${w.channel}/messages?subtopic=bench&limit=1`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { total: number }).total;
    notes.unshift(stored === edgefluxDelivered ? `Edgeflux stored every message it was sent: ${stored} rows in D1` : `STORAGE MISMATCH: Edgeflux was sent ${edgefluxDelivered} messages, D1 holds ${stored} (QoS 0 messages may be dropped under overload; QoS 1 ones must not)`);
  } finally {
    mosq.proc.kill();
    rmSync(mosq.dir, { recursive: true, force: true });
    await platform.stop();
    rmSync(state, { recursive: true, force: true });
  }
  return { rows, notes };
}
