import { createSocket } from 'node:dgram';
import { connect as tcpConnect } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoapServer, type CoapServer } from '../coap';
import { MemoryPlatform as CoapPlatform } from '../coap/test/memory-platform';
import { setup } from '../mqtt/test/harness';
import type { PlatformStats } from '../platform';
import { startOpsServer, type OpsServer } from './server';

/**
 * The ops server over real sockets: MQTT.js over TCP and WebSocket and a CoAP datagram against the
 * front-ends, scraped as Prometheus would. The front-ends run on the tests' in-memory platforms; the
 * worker's state (links, last answer), which only the real platform client has, is a plain object
 * the tests set (the e2e tests read it from a real worker: test/node/mqtt-e2e.test.ts).
 */
let t: ReturnType<typeof setup>;
let coap: CoapServer;
let ops: OpsServer;
let base = '';
let mqttUrl = '';
let wsUrl = '';
let coapPort = 0;
let now = 1_000_000;
let shuttingDown = false;
const worker: PlatformStats = { linksOpen: 2, linksDown: 1, unansweredPublishes: 3, workerAnsweredAt: undefined, workerFollowed: false };
const opened: MqttClient[] = [];

beforeAll(async () => {
  t = setup({ maxConnectionsPerDevice: 2 });
  mqttUrl = `mqtt://127.0.0.1:${(await t.server.listenTcp(0)).port}`;
  wsUrl = `ws://127.0.0.1:${(await t.server.listenWebSocket({ port: 0 })).port}/mqtt`;
  coap = createCoapServer({ platform: new CoapPlatform() });
  coapPort = (await coap.listen(0, '127.0.0.1'))[0]!.port;
  ops = await startOpsServer({ bridgeId: 'test-bridge', mqtt: t.server, coap, platform: { stats: () => ({ ...worker }) }, notReady: () => (shuttingDown ? 'shutting down' : null), now: () => now }, 0, '127.0.0.1');
  base = `http://127.0.0.1:${ops.port}`;
});
afterAll(async () => {
  await Promise.all(opened.map((c) => c.endAsync(true)));
  await ops.close();
  await coap.close();
  await t.server.close();
});

async function client(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000, username: 'dev-1', password: 'key-1', protocolVersion: 5, ...opts });
  opened.push(c);
  return c;
}

/** The samples of one scrape: `name{labels}` → value. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?) (\S+)$/i.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

const until = async (check: () => Promise<boolean>) => {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition not met in 2 s');
};

describe('bridge ops server', () => {
  it('answers liveness at once, and nothing but GET/HEAD on its three paths', async () => {
    const live = await fetch(`${base}/healthz`);
    expect([live.status, await live.text()]).toEqual([200, 'ok\n']);
    expect(live.headers.get('cache-control')).toBe('no-store');
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    expect((await fetch(`${base}/`)).status).toBe(404);
    // Before any connection: accepted CONNECTs are a series from the start, at 0.
    expect((await scrape()).get('edgeflux_bridge_mqtt_connects_total{reason_code="0x00"}')).toBe(0);
  });

  it('survives a request target that is no URL, and answers an absolute-form one', async () => {
    const raw = (target: string) =>
      new Promise<string>((resolve, reject) => {
        const s = tcpConnect(ops.port, '127.0.0.1', () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('end', () => resolve(got.split('\r\n')[0]!));
        s.on('error', reject);
      });
    expect(await raw('http://[/')).toBe('HTTP/1.1 404 Not Found');
    expect(await raw('http://bridge:9464/healthz?x=1')).toBe('HTTP/1.1 200 OK');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('is ready once the worker has answered, stays ready when it goes quiet (saying so), and not while shutting down', async () => {
    const ready = async () => {
      const r = await fetch(`${base}/readyz`);
      return `${r.status} ${(await r.text()).trim()}`;
    };
    worker.workerAnsweredAt = undefined;
    expect(await ready()).toBe('503 not ready: the worker has not answered yet');
    worker.workerAnsweredAt = now - 2_000;
    worker.workerFollowed = true;
    expect(await ready()).toBe('200 ready');
    // Every bridge shares the worker: going unready would take them all out of a load balancer at once.
    worker.workerAnsweredAt = now - 20_000;
    worker.workerFollowed = false;
    expect(await ready()).toBe('200 ready; the worker has not answered for 20 s');
    worker.workerAnsweredAt = now;
    worker.workerFollowed = true;
    shuttingDown = true;
    expect(await ready()).toBe('503 not ready: shutting down');
    shuttingDown = false;
    expect(await ready()).toBe('200 ready');
  });

  it('counts MQTT connections by transport, CONNACKs, publishes in and out, refusals and takeovers', async () => {
    const before = await scrape();
    const delta = (s: Map<string, number>, key: string) => (s.get(key) ?? 0) - (before.get(key) ?? 0);
    const sub = await client(mqttUrl, { clientId: 'metrics-sub' });
    await sub.subscribeAsync('channels/ch-1/messages/#', { qos: 1 });
    const got: string[] = [];
    sub.on('message', (_t, p) => got.push(p.toString()));
    const pub = await client(wsUrl, { username: 'dev-2', password: 'key-2' });
    await pub.publishAsync('channels/ch-1/messages/a', 'zero', { qos: 0 });
    await pub.publishAsync('channels/ch-1/messages/a', 'one', { qos: 1 });
    await pub.publishAsync('channels/ch-1/messages/a', 'two', { qos: 2 });
    // Not allowed: dev-2 may not publish on ch-2 (PUBACK 0x87).
    await expect(pub.publishAsync('channels/ch-2/messages', 'no', { qos: 1 })).rejects.toThrow();
    // A refused log-in: CONNACK 0x86.
    await expect(client(mqttUrl, { password: 'wrong', clientId: 'metrics-bad' })).rejects.toThrow();
    await until(async () => got.length === 3);

    let s = await scrape();
    expect(s.get('edgeflux_bridge_mqtt_connections{transport="tcp",state="connected"}')).toBe(1);
    expect(s.get('edgeflux_bridge_mqtt_connections{transport="ws",state="connected"}')).toBe(1);
    expect(s.get('edgeflux_bridge_mqtt_devices')).toBe(2);
    expect(delta(s, 'edgeflux_bridge_mqtt_connects_total{reason_code="0x00"}')).toBe(2);
    expect(delta(s, 'edgeflux_bridge_mqtt_connects_total{reason_code="0x86"}')).toBe(1);
    expect(s.get('edgeflux_bridge_mqtt_connections{transport="tls",state="connected"}')).toBe(0);
    expect([0, 1, 2].map((q) => delta(s, `edgeflux_bridge_mqtt_publishes_received_total{qos="${q}"}`))).toEqual([1, 2, 1]);
    // Delivered at min(published, granted 1): 0, 1, 1.
    expect([0, 1, 2].map((q) => delta(s, `edgeflux_bridge_mqtt_publishes_sent_total{qos="${q}"}`))).toEqual([1, 2, 0]);
    expect(delta(s, 'edgeflux_bridge_mqtt_publishes_refused_total{reason_code="0x87"}')).toBe(1);
    expect(delta(s, 'edgeflux_bridge_mqtt_packets_received_total{type="subscribe"}')).toBe(1);
    expect(delta(s, 'edgeflux_bridge_mqtt_packets_sent_total{type="suback"}')).toBe(1);
    expect(delta(s, 'edgeflux_bridge_mqtt_packets_sent_total{type="pubrec"}')).toBe(1);
    // Counters with nothing counted yet are still there, at 0 (a rate() has a start).
    expect(s.get('edgeflux_bridge_mqtt_packets_received_total{type="auth"}')).toBe(0);

    // The same client id again: the first connection is taken over (v5 DISCONNECT 0x8E).
    const again = await client(wsUrl, { clientId: 'metrics-sub' });
    await until(async () => (await scrape()).get('edgeflux_bridge_mqtt_disconnects_total{reason_code="0x8e"}') === (before.get('edgeflux_bridge_mqtt_disconnects_total{reason_code="0x8e"}') ?? 0) + 1);
    s = await scrape();
    expect(s.get('edgeflux_bridge_mqtt_connections{transport="tcp",state="connected"}') ?? 0).toBe(0);
    expect(s.get('edgeflux_bridge_mqtt_connections{transport="ws",state="connected"}')).toBe(2);
    await again.endAsync();
  });

  it('counts a refusal by the code decided, whatever a 3.1.1 client can be told, and protocol refusals with the others', async () => {
    const before = await scrape();
    const delta = (s: Map<string, number>, key: string) => (s.get(key) ?? 0) - (before.get(key) ?? 0);
    await client(mqttUrl, { protocolVersion: 4, username: 'dev-3', password: 'key-3' });
    await client(mqttUrl, { protocolVersion: 4, username: 'dev-3', password: 'key-3' });
    // A third connection of the device: 0x97 quota exceeded — told as 3.1.1's "server unavailable" (3).
    await expect(client(mqttUrl, { protocolVersion: 4, username: 'dev-3', password: 'key-3' })).rejects.toThrow();
    // A wildcard in a topic name ends a v5 connection with 0x90: a refused publish too.
    const bad = await client(mqttUrl, { username: 'dev-2', password: 'key-2' });
    const ended = new Promise<number | undefined>((r) => bad.once('disconnect', (p) => r(p.reasonCode)));
    bad.publish('channels/ch-1/messages/+', 'x', { qos: 0 });
    expect(await ended).toBe(0x90);
    // A PUBLISH that breaks the packet's own rules (a client may not send a Subscription Identifier): 0x82.
    const raw = t.client(5);
    await raw.connect({ username: 'dev-2', password: Buffer.from('key-2') });
    raw.send({ cmd: 'publish', topic: 'channels/ch-1/messages', payload: 'x', qos: 0, dup: false, retain: false, properties: { subscriptionIdentifier: 5 } });
    expect((await raw.next('disconnect')).reasonCode).toBe(0x82);
    // A first packet that cannot be read: a CONNECT refused, closed unanswered (3.1.1, reserved flag bit set).
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'r', keepalive: 0 });
    connect[9]! |= 0x01;
    const broken = t.client(4);
    broken.raw(connect);
    await until(async () => broken.closed);
    const s = await scrape();
    expect(delta(s, 'edgeflux_bridge_mqtt_publishes_refused_total{reason_code="0x82"}')).toBe(1);
    expect(delta(s, 'edgeflux_bridge_mqtt_connects_total{reason_code="0x81"}')).toBe(1);
    expect(delta(s, 'edgeflux_bridge_mqtt_connects_total{reason_code="0x97"}')).toBe(1);
    expect(delta(s, 'edgeflux_bridge_mqtt_connects_total{reason_code="0x88"}')).toBe(0);
    expect(delta(s, 'edgeflux_bridge_mqtt_publishes_refused_total{reason_code="0x90"}')).toBe(1);
    expect(delta(s, 'edgeflux_bridge_mqtt_disconnects_total{reason_code="0x90"}')).toBe(1);
  });

  it('counts CoAP datagrams and reads the front-ends\' and the worker\'s gauges', async () => {
    const before = await scrape();
    const udp = createSocket('udp4');
    const answer = new Promise<Buffer>((r) => udp.once('message', (m) => r(m)));
    // A CoAP ping (an empty CON, RFC 7252 §4.3) is answered with a RST.
    udp.send(Buffer.from([0x40, 0x00, 0x12, 0x34]), coapPort, '127.0.0.1');
    const rst = await answer;
    udp.close();
    expect(rst[0]! >> 4).toBe(0x7); // version 1, type RST
    const s = await scrape();
    expect(s.get('edgeflux_bridge_coap_datagrams_received_total')! - (before.get('edgeflux_bridge_coap_datagrams_received_total') ?? 0)).toBe(1);
    expect(s.get('edgeflux_bridge_coap_datagrams_sent_total')! - (before.get('edgeflux_bridge_coap_datagrams_sent_total') ?? 0)).toBe(1);
    expect(s.get('edgeflux_bridge_coap_observers')).toBe(0);

    worker.workerFollowed = true;
    worker.workerAnsweredAt = now - 1_500;
    const w = await scrape();
    expect(w.get('edgeflux_bridge_info{bridge="test-bridge"}')).toBe(1);
    expect(w.get('edgeflux_bridge_channel_links{state="open"}')).toBe(2);
    expect(w.get('edgeflux_bridge_channel_links{state="down"}')).toBe(1);
    expect(w.get('edgeflux_bridge_channel_publishes_unanswered')).toBe(3);
    expect(w.get('edgeflux_bridge_worker_up')).toBe(1);
    expect(w.get('edgeflux_bridge_worker_last_answer_timestamp_seconds')).toBe((now - 1_500) / 1000);
    // The process's own, under the names every Node dashboard knows.
    expect(w.get('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect([...w.keys()].some((k) => k.startsWith('nodejs_eventloop_lag_seconds'))).toBe(true);
  });
});
