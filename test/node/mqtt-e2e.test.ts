import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freePort, provision, startPlatform, type Platform } from './processes';

/**
 * MQTT against the whole platform (launcher: wrangler dev + bridge, real processes) with stock
 * clients: MQTT.js (3.1.1 and 5.0), mosquitto_pub/mosquitto_sub, libcoap for CoAP ↔ MQTT.
 */
const run = promisify(execFile);
let platform: Platform;
let w: Awaited<ReturnType<typeof provision>>;
let metricsPort = 0;
const state = mkdtempSync(join(tmpdir(), 'edgeflux-mqtt-'));
const topic = (sub = '') => `channels/${w.channel}/messages${sub ? `/${sub}` : ''}`;
const clients: MqttClient[] = [];

async function client(version: 4 | 5, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${platform.mqttPort}`, { protocolVersion: version, username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  clients.push(c);
  await new Promise<void>((ok, fail) => {
    c.once('connect', () => ok());
    c.once('error', fail);
  });
  return c;
}

/** Connect attempt that is expected to fail: the CONNACK code MQTT.js reports. */
function refusedCode(version: 4 | 5, opts: IClientOptions): Promise<number | undefined> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${platform.mqttPort}`, { protocolVersion: version, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  clients.push(c);
  return new Promise((ok) => {
    c.once('error', (e: Error & { code?: number }) => ok(e.code));
    c.once('connect', () => ok(0));
  });
}

type Got = { topic: string; payload: string; retain: boolean; qos: number; props?: Record<string, unknown> };
function collect(c: MqttClient): Got[] {
  const got: Got[] = [];
  c.on('message', (t, p, packet) => got.push({ topic: t, payload: p.toString(), retain: packet.retain, qos: packet.qos, ...(packet.properties ? { props: packet.properties as Record<string, unknown> } : {}) }));
  return got;
}

async function until<T>(f: () => T | undefined | false | Promise<T | undefined | false>, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const httpPublish = (sub: string, body: string, type = 'text/plain') =>
  fetch(`${platform.url}/channels/${w.channel}/messages/${sub}`, { method: 'POST', headers: { authorization: `Bearer ${w.token}`, 'content-type': type }, body });

beforeAll(async () => {
  // Per-device publish rate raised for the burst test; every other limit is the default.
  metricsPort = await freePort();
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: state, EDGEFLUX_METRICS_PORT: String(metricsPort), EDGEFLUX_MQTT_LIMITS: JSON.stringify({ publishRate: 100_000, publishBurst: 100_000 }) });
  w = await provision(platform.url);
}, 120_000);

// Each test closes what it opened (a device may hold only 10 connections at once).
afterEach(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  clients.length = 0;
});

afterAll(async () => {
  await platform?.stop();
  rmSync(state, { recursive: true, force: true });
});

describe('MQTT through the real platform', () => {
  it('the bridge says it is ready with the real worker, and its metrics count what devices do (EDGEFLUX_METRICS_PORT)', async () => {
    const ops = `http://127.0.0.1:${metricsPort}`;
    expect(platform.output()).toContain(`Bridge metrics http://127.0.0.1:${metricsPort}/metrics`);
    const ready = await fetch(`${ops}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
    const sample = async (name: string) => Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(await (await fetch(`${ops}/metrics`)).text())?.[1] ?? NaN);
    const before = await sample('edgeflux_bridge_mqtt_publishes_received_total{qos="1"}');
    const pub = await client(5, { clientId: 'metrics-e2e' });
    await pub.publishAsync(topic('metrics'), 'counted', { qos: 1 });
    expect(await sample('edgeflux_bridge_mqtt_publishes_received_total{qos="1"}')).toBe(before + 1);
    expect(await sample('edgeflux_bridge_channel_links{state="open"}')).toBeGreaterThanOrEqual(1);
    expect(await sample('edgeflux_bridge_worker_up')).toBe(1);
    expect(Date.now() / 1000 - (await sample('edgeflux_bridge_worker_last_answer_timestamp_seconds'))).toBeLessThan(5);
  });

  it('mosquitto_pub → a WebSocket app, and HTTP → mosquitto_sub', async () => {
    const ws = new WebSocket(`${platform.url.replace('http', 'ws')}/channels/${w.channel}/messages/mosq`, { headers: { authorization: `Bearer ${w.token}` } });
    const got: Record<string, unknown>[] = [];
    ws.on('message', (d: Buffer) => got.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await new Promise((r) => ws.once('open', r));
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(platform.mqttPort), '-u', w.deviceId, '-P', w.deviceKey, '-t', topic('mosq'), '-m', 'from mosquitto', '-q', '1']);
    // No content type on an MQTT 3.1.1 publish: opaque bytes, so the JSON envelope carries base64.
    expect(await until(() => got[1])).toMatchObject({ type: 'message', subtopic: 'mosq', publisher: w.deviceId, protocol: 'mqtt', contentType: 'application/octet-stream', encoding: 'base64', payload: Buffer.from('from mosquitto').toString('base64') });
    expect(got[0]).toMatchObject({ type: 'subscribed', seq: expect.any(Number) }); // always the first frame
    ws.close();

    const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(platform.mqttPort), '-u', w.deviceId, '-P', w.deviceKey, '-t', topic('to-mosq/#'), '-q', '1', '-C', '1', '-v', '-W', '10']);
    await new Promise((r) => setTimeout(r, 800));
    expect((await httpPublish('to-mosq/x', 'from http')).status).toBe(202);
    expect((await sub).stdout.trim()).toBe(`${topic('to-mosq/x')} from http`);
  });

  it.each([4, 5] as const)('MQTT.js v%i: QoS 0, 1 and 2 both ways, acknowledged after storage', async (v) => {
    const sub = await client(v);
    const got = collect(sub);
    await sub.subscribeAsync(topic(`q${v}/+`), { qos: 2 });
    const pub = await client(v, { clientId: `pub-${v}` });
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(topic(`q${v}/${qos}`), `qos ${qos}`, { qos });
    expect((await httpPublish(`q${v}/http`, 'over http')).status).toBe(202);
    await until(() => got.length >= 4);
    // Each at min(published, granted 2) [MQTT-3.8.4-8]; HTTP has no QoS of its own, so it goes at the granted one.
    expect(got.map((m) => [m.payload, m.qos]).sort()).toEqual([['over http', 2], ['qos 0', 0], ['qos 1', 1], ['qos 2', 2]]);
    // Every one of them is stored (the actor drains to D1 within about a second).
    const stored = async () => ((await (await fetch(`${platform.url}/channels/${w.channel}/messages?subtopic=q${v}/%2B`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { total: number }).total;
    expect(await until(async () => ((await stored()) === 4 ? 4 : undefined))).toBe(4);
  });

  it('retained messages are delivered first to a new subscriber, with RETAIN set', async () => {
    const pub = await client(4);
    await pub.publishAsync(topic('ret'), 'last known', { qos: 1, retain: true });
    const sub = await client(4);
    const got = collect(sub);
    await sub.subscribeAsync(topic('ret'), { qos: 1 });
    expect(await until(() => got[0])).toMatchObject({ payload: 'last known', retain: true, qos: 1 });
  });

  it('a retained message keeps the QoS it was published with: min(published, granted) on replay and live', async () => {
    const pub = await client(5);
    await pub.publishAsync(topic('ret-q0'), 'at most once', { qos: 0, retain: true });
    const sub = await client(5);
    const got = collect(sub);
    // Retained first (the QoS 0 publish is stored before the retained replay reads it: wait for it to be there).
    await until(async () => ((await (await fetch(`${platform.url}/channels/${w.channel}/messages?subtopic=ret-q0`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { total: number }).total === 1);
    await sub.subscribeAsync(topic('ret-q0'), { qos: 2 });
    expect(await until(() => got[0])).toMatchObject({ payload: 'at most once', retain: true, qos: 0 });
    await pub.publishAsync(topic('ret-q0'), 'at least once', { qos: 1 });
    expect(await until(() => got[1])).toMatchObject({ payload: 'at least once', retain: false, qos: 1 });
  });

  it('v5 Message Expiry: a retained message is replayed with what is left of its lifetime, not gone at half of it [MQTT-3.3.2-5, -6]', async () => {
    const pub = await client(5);
    await pub.publishAsync(topic('ret-exp'), 'short-lived', { qos: 1, retain: true, properties: { messageExpiryInterval: 4 } });
    const publishedAt = Date.now();
    await new Promise((r) => setTimeout(r, 2300));
    const sub = await client(5);
    const got = collect(sub);
    await sub.subscribeAsync(topic('ret-exp'), { qos: 1 });
    const first = await until(() => got[0]);
    const waited = (Date.now() - publishedAt) / 1000;
    expect(first).toMatchObject({ payload: 'short-lived', retain: true });
    // 4 s less the ~2.3 s waited, in whole seconds; counting the wait twice had dropped it.
    const left = first.props?.messageExpiryInterval as number;
    expect(left).toBeGreaterThanOrEqual(1);
    expect(left).toBeLessThanOrEqual(Math.ceil(4 - waited) + 1);
    // Past its lifetime it is not replayed at all.
    await new Promise((r) => setTimeout(r, Math.max(0, publishedAt + 4500 - Date.now())));
    const late = await client(5);
    const lateGot = collect(late);
    await late.subscribeAsync(topic('ret-exp'), { qos: 1 });
    await new Promise((r) => setTimeout(r, 500));
    expect(lateGot).toEqual([]);
  });

  it('v5 Retain As Published keeps the publisher\'s RETAIN on live messages; without it RETAIN is 0', async () => {
    const rap = await client(5);
    const plain = await client(5);
    const withRap = collect(rap);
    const without = collect(plain);
    await rap.subscribeAsync(topic('rap'), { qos: 1, rap: true, rh: 2 });
    await plain.subscribeAsync(topic('rap'), { qos: 1, rh: 2 });
    const pub = await client(5);
    await pub.publishAsync(topic('rap'), 'state', { qos: 1, retain: true });
    expect(await until(() => withRap[0])).toMatchObject({ payload: 'state', retain: true });
    expect(await until(() => without[0])).toMatchObject({ payload: 'state', retain: false });
  });

  it('refuses at CONNECT a will the channel could never store: no content type on a SenML channel (3.1.1 and 5)', async () => {
    const senml = (await w.call('POST', `/orgs/${w.org}/channels`, { name: 'senml-wills' }, w.token)).id!;
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [senml], device_ids: [w.deviceId], types: ['publish', 'subscribe'] }, w.token);
    await w.call('PATCH', `/orgs/${w.org}/channels/${senml}/limits`, { defaultContentType: 'application/senml+json' }, w.token);
    const will = (payload: string) => ({ username: w.deviceId, password: w.deviceKey, will: { topic: `channels/${senml}/messages/status`, payload: Buffer.from(payload), qos: 1 as const, retain: false } });
    // mosquitto_sub's usual `--will-payload offline`: the channel's actor would refuse it as SenML when it fires.
    expect(await refusedCode(4, will('offline'))).toBe(5);
    expect(await refusedCode(5, will('offline'))).toBe(0x99);
    // A SenML will is fine, and is stored when the client vanishes.
    const ok = await client(4, { clientId: 'senml-will', ...will('[{"n":"online","vb":false}]') });
    ok.stream.destroy();
    const stored = async () => ((await (await fetch(`${platform.url}/channels/${senml}/messages`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { items: { subtopic: string; contentType: string }[] }).items;
    expect(await until(async () => (await stored()).find((m) => m.subtopic === 'status'))).toMatchObject({ contentType: 'application/senml+json' });
  });

  it('publishes the will when a client vanishes, not when it disconnects', async () => {
    const watcher = await client(5);
    const got = collect(watcher);
    await watcher.subscribeAsync(topic('will/#'), { qos: 1 });
    const polite = await client(5, { clientId: 'polite', will: { topic: topic('will/polite'), payload: Buffer.from('gone polite'), qos: 1, retain: false } });
    await polite.endAsync();
    const rude = await client(5, { clientId: 'rude', will: { topic: topic('will/rude'), payload: Buffer.from('gone rude'), qos: 0, retain: false } });
    rude.stream.destroy();
    // At the will's QoS 0, below the watcher's granted 1 [MQTT-3.8.4-8].
    expect(await until(() => got.find((m) => m.topic.endsWith('will/rude')))).toMatchObject({ payload: 'gone rude', qos: 0 });
    expect(got.some((m) => m.topic.endsWith('will/polite'))).toBe(false);
  });

  it('rotating a device key ends the MQTT connections that presented the old key (v5 DISCONNECT 0x87, mosquitto_sub closed)', async () => {
    // A device of its own: the other tests keep using w's key.
    const device = await w.call('POST', `/orgs/${w.org}/devices`, { name: 'rotated' }, w.token);
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [w.channel], device_ids: [device.id] }, w.token);
    const creds = { username: device.id!, password: device.key! };
    const v5 = await client(5, { ...creds, clientId: 'rotated-v5' });
    await v5.subscribeAsync(topic('rot'), { qos: 1 });
    const disconnect = new Promise<{ reasonCode?: number; properties?: { reasonString?: string } }>((ok) => v5.once('disconnect', ok));
    const sub = execFile('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(platform.mqttPort), '-u', creds.username, '-P', creds.password, '-t', topic('rot'), '-q', '1', '-i', 'rotated-mosq']);
    const subExit = new Promise<number | null>((ok) => sub.once('exit', (code) => ok(code)));
    let out = '';
    sub.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    // Both connected and receiving before the rotation.
    const got = collect(v5);
    await until(async () => (await httpPublish('rot', 'before')).status === 202 && out.includes('before') && got.length > 0);
    const rotated = await fetch(`${platform.url}/orgs/${w.org}/devices/${device.id}/key`, { method: 'POST', headers: { authorization: `Bearer ${w.token}` } });
    expect(rotated.status).toBe(201);
    const rotatedAt = Date.now();
    const newKey = (await rotated.json() as { key: string }).key;
    // The new key's session, on at once: the old key's refusal must not reach it (nor its publishes).
    const fresh = await client(5, { ...creds, password: newKey, clientId: 'rotated-new', clean: false, properties: { sessionExpiryInterval: 600 } });
    let freshGone = false;
    fresh.on('disconnect', () => (freshGone = true));
    await fresh.subscribeAsync(topic('rot'), { qos: 1 });
    const freshGot = collect(fresh);
    // Deliveries keep flowing; the bridge hears of the org's change within a second (its access-changes poll), and the next one finds the key rotated.
    const ticker = setInterval(() => {
      void httpPublish('rot', 'tick');
      void fresh.publishAsync(topic('rot-own'), 'still mine', { qos: 1 }).catch(() => (freshGone = true));
    }, 250);
    try {
      const d = await disconnect;
      expect(d.reasonCode).toBe(0x87);
      expect(d.properties?.reasonString).toContain('the device key was rotated');
      expect(await subExit).not.toBeNull();
      expect(Date.now() - rotatedAt).toBeLessThan(4_000); // ~1.8 s here; not the 5 s cache bound: the change is followed
    } finally {
      clearInterval(ticker);
      sub.kill();
    }
    // The new key's connection lived through it all, publishing and receiving; the old key no longer connects.
    const before = freshGot.length;
    expect((await httpPublish('rot', 'after')).status).toBe(202);
    await until(() => freshGot.length > before);
    expect(freshGone).toBe(false);
    expect(fresh.connected).toBe(true);
    expect(await refusedCode(5, { ...creds, clientId: 'rotated-old' })).toBe(0x86);
  }, 30_000);

  it('deleting a device ends its idle MQTT session within seconds, with no message or keep alive to ride on: mosquitto_sub exits', async () => {
    const device = await w.call('POST', `/orgs/${w.org}/devices`, { name: 'idle' }, w.token);
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [w.channel], device_ids: [device.id] }, w.token);
    // Keep alive 60 s: no PINGREQ within this test, and nothing is published on this subtopic after "hello".
    const sub = execFile('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(platform.mqttPort), '-u', device.id!, '-P', device.key!, '-t', topic('idle'), '-q', '1', '-k', '60', '-i', 'idle-mosq']);
    const subExit = new Promise<number | null>((ok) => sub.once('exit', (code) => ok(code)));
    let out = '';
    sub.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await until(async () => (await httpPublish('idle', 'hello')).status === 202 && out.includes('hello'));
    const deleted = await fetch(`${platform.url}/orgs/${w.org}/devices/${device.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${w.token}` } });
    expect(deleted.status).toBe(204);
    const deletedAt = Date.now();
    expect(await subExit).not.toBeNull();
    // The bridge hears of the org's change within its one-second poll and asks about its sessions then.
    expect(Date.now() - deletedAt).toBeLessThan(4_000);
  }, 30_000);

  it('a session that never subscribed nor published ends within seconds when its device key is rotated (v5 DISCONNECT 0x87)', async () => {
    const device = await w.call('POST', `/orgs/${w.org}/devices`, { name: 'idle-bare' }, w.token);
    const c = await client(5, { clientId: 'idle-bare', username: device.id, password: device.key, keepalive: 600 });
    let reason: number | undefined;
    c.on('disconnect', (p) => (reason = p.reasonCode));
    const closed = new Promise<void>((ok) => c.once('close', () => ok()));
    const rotated = await fetch(`${platform.url}/orgs/${w.org}/devices/${device.id}/key`, { method: 'POST', headers: { authorization: `Bearer ${w.token}` } });
    expect(rotated.status).toBe(201);
    const rotatedAt = Date.now();
    await closed;
    expect(reason).toBe(0x87);
    expect(Date.now() - rotatedAt).toBeLessThan(4_000);
  }, 30_000);

  it('session takeover closes the first connection with 0x8E (v5)', async () => {
    const first = await client(5, { clientId: 'same-id' });
    const reason = new Promise<number | undefined>((ok) => first.once('disconnect', (p) => ok(p.reasonCode)));
    await client(5, { clientId: 'same-id' });
    expect(await reason).toBe(0x8e);
  });

  it('wrong credentials get the right CONNACK code, then a close', async () => {
    expect(await refusedCode(4, { username: w.deviceId, password: 'efd_wrong' })).toBe(4);
    expect(await refusedCode(5, { username: w.deviceId, password: 'efd_wrong' })).toBe(0x86);
    expect(await refusedCode(4, { username: w.deviceId })).toBe(4);
  });

  it('an unauthorized topic gets PUBACK 0x87 (v5), a closed connection (3.1.1), SUBACK 0x87/0x80', async () => {
    const other = '00000000-0000-4000-8000-000000000000';
    const v5 = await client(5);
    await expect(v5.publishAsync(`channels/${other}/messages`, 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    // MQTT.js rejects when any filter failed; the SUBACK's codes are on the error.
    const suback = await v5.subscribeAsync([`channels/${other}/messages/#`, topic('ok')], { qos: 1 }).catch((e: { packet?: { granted?: number[] } }) => e.packet?.granted);
    expect(suback).toEqual([0x87, 1]);
    const v4 = await client(4);
    const closed = new Promise<void>((r) => v4.once('close', () => r()));
    v4.publish(`channels/${other}/messages`, 'x', { qos: 1 });
    await closed;
    const v4b = await client(4);
    const v4codes = await v4b.subscribeAsync(`channels/${other}/messages`, { qos: 1 }).then((g) => g.map((x) => x.qos)).catch((e: { packet?: { granted?: number[] } }) => e.packet?.granted);
    expect(v4codes).toEqual([0x80]);
  });

  it('channels/+/messages/# spans every channel the device may read; No Local skips own messages', async () => {
    const sub = await client(5, { clientId: 'spanner' });
    const got = collect(sub);
    await sub.subscribeAsync('channels/+/messages/span/#', { qos: 1, nl: true });
    await sub.publishAsync(topic('span/self'), 'mine', { qos: 1 });
    expect((await httpPublish('span/x', 'theirs')).status).toBe(202);
    expect(await until(() => got[0])).toMatchObject({ topic: topic('span/x'), payload: 'theirs' });
    await new Promise((r) => setTimeout(r, 300));
    expect(got.map((m) => m.payload)).toEqual(['theirs']);
  });

  it('v5 No Local is per client id: two clients of one device, each subscribed with nl, get each other\'s messages but not their own [MQTT-3.8.3-3]', async () => {
    const a = await client(5, { clientId: 'nl-a' });
    const b = await client(5, { clientId: 'nl-b' });
    const gotA = collect(a);
    const gotB = collect(b);
    await a.subscribeAsync(topic('nl/#'), { qos: 1, nl: true });
    await b.subscribeAsync(topic('nl/#'), { qos: 1, nl: true });
    await a.publishAsync(topic('nl/a'), 'from a', { qos: 1 });
    await b.publishAsync(topic('nl/b'), 'from b', { qos: 1 });
    expect((await httpPublish('nl/x', 'from http')).status).toBe(202);
    await until(() => gotA.length >= 2 && gotB.length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(gotA.map((m) => m.payload)).toEqual(['from b', 'from http']);
    expect(gotB.map((m) => m.payload)).toEqual(['from a', 'from http']);
  });

  it('v5 content type and user properties pass through to subscribers and the envelope', async () => {
    const sub = await client(5);
    const got = collect(sub);
    await sub.subscribeAsync(topic('props'), { qos: 1 });
    const pub = await client(5);
    await pub.publishAsync(topic('props'), '[{"n":"t","v":1}]', { qos: 1, properties: { contentType: 'application/senml+json', userProperties: { site: 'lab' } } });
    const m = await until(() => got[0]);
    expect(m.props).toMatchObject({ contentType: 'application/senml+json', userProperties: { site: 'lab' } });
  });

  it('v5 request/response: Response Topic, Correlation Data, Payload Format Indicator and Content Type arrive as published — live, retained and on a resumed session [MQTT-3.3.2-4, -15, -16, -20]', async () => {
    const correlationData = Buffer.from([0x00, 0x9f, 0xff, 0x01]);
    const request = { qos: 1 as const, properties: { responseTopic: topic('rr/reply/req-1'), correlationData, payloadFormatIndicator: true, contentType: 'application/json' } };
    // The responder answers every request on its Response Topic, with its Correlation Data.
    const responder = await client(5, { clientId: 'rr-responder' });
    const seen = collect(responder);
    responder.on('message', (_t, payload, packet) => {
      const p = packet.properties;
      if (p?.responseTopic) void responder.publishAsync(p.responseTopic, `answer to ${payload.toString()}`, { qos: 1, properties: { correlationData: p.correlationData! } });
    });
    await responder.subscribeAsync(topic('rr/req'), { qos: 1 });
    const requester = await client(5, { clientId: 'rr-requester' });
    const answers = collect(requester);
    await requester.subscribeAsync(topic('rr/reply/#'), { qos: 1 });
    await requester.publishAsync(topic('rr/req'), '{"op":"read"}', request);
    expect((await until(() => seen[0])).props).toEqual(request.properties);
    const answer = await until(() => answers[0]);
    expect(answer).toMatchObject({ topic: topic('rr/reply/req-1'), payload: 'answer to {"op":"read"}' });
    expect(answer.props).toEqual({ correlationData });
    // The publisher's own properties, no more: text/plain alone gets no indicator; an indicator alone no Content Type.
    await requester.publishAsync(topic('rr/req'), 'plain', { qos: 1, properties: { contentType: 'text/plain', responseTopic: topic('rr/reply/2') } });
    await requester.publishAsync(topic('rr/req'), 'utf8', { qos: 1, properties: { payloadFormatIndicator: true, responseTopic: topic('rr/reply/3') } });
    await until(() => seen.length >= 3 && answers.length >= 3);
    expect(seen.slice(1).map((m) => m.props)).toEqual([
      { contentType: 'text/plain', responseTopic: topic('rr/reply/2') },
      { payloadFormatIndicator: true, responseTopic: topic('rr/reply/3') },
    ]);
    // A Response Topic nobody could answer on: PUBACK 0x83, not a silent loss.
    await expect(requester.publishAsync(topic('rr/req'), 'x', { qos: 1, properties: { responseTopic: 'replies/x' } })).rejects.toMatchObject({ code: 0x83 });

    // Retained: from the channel actor's storage, to a new subscriber.
    await requester.publishAsync(topic('rr/retained'), '{"op":"kept"}', { ...request, retain: true });
    const late = await client(5, { clientId: 'rr-late' });
    const lateGot = collect(late);
    await late.subscribeAsync(topic('rr/retained'), { qos: 1 });
    expect(await until(() => lateGot[0])).toMatchObject({ retain: true, payload: '{"op":"kept"}', props: request.properties });

    // A persistent session away while a QoS 1 request was published gets it on resume, with its properties.
    const away = await client(5, { clientId: 'rr-away', clean: false, properties: { sessionExpiryInterval: 600 } });
    await away.subscribeAsync(topic('rr/queued'), { qos: 1 });
    await away.endAsync();
    await requester.publishAsync(topic('rr/queued'), '{"op":"queued"}', request);
    const back = mqtt.connect(`mqtt://127.0.0.1:${platform.mqttPort}`, { protocolVersion: 5, username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0, clientId: 'rr-away', clean: false, properties: { sessionExpiryInterval: 600 } });
    clients.push(back);
    const resumed = collect(back);
    expect(await until(() => resumed[0])).toMatchObject({ payload: '{"op":"queued"}', qos: 1, props: request.properties });
  });

  it('v5 Subscription Identifiers: overlapping subscriptions give one PUBLISH carrying both identifiers, one matching only one its own; kept by a resumed session [MQTT-3.3.4-3, -4]', async () => {
    const ids = (m: Got | undefined) => {
      const v = m?.props?.subscriptionIdentifier as number | number[] | undefined;
      return v === undefined ? [] : (Array.isArray(v) ? [...v] : [v]).sort((a, b) => a - b);
    };
    const session = { clientId: 'sid-keeper', clean: false, properties: { sessionExpiryInterval: 600 } };
    const sub = await client(5, session);
    const got = collect(sub);
    await sub.subscribeAsync(topic('sid/#'), { qos: 1, properties: { subscriptionIdentifier: 11 } });
    await sub.subscribeAsync(topic('sid/+'), { qos: 1, properties: { subscriptionIdentifier: 2_000_000 } });
    await sub.subscribeAsync(topic('sid/plain/x'), { qos: 1 });
    expect((await httpPublish('sid/a', 'both')).status).toBe(202);
    expect((await httpPublish('sid/a/b', 'one')).status).toBe(202);
    expect((await httpPublish('sid/plain/x', 'wildcard only')).status).toBe(202);
    await until(() => got.length >= 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(got.map((m) => [m.payload, ids(m)])).toEqual([['both', [11, 2_000_000]], ['one', [11]], ['wildcard only', [11]]]);
    // Saved with the session (the session actor): a message published while away comes with them.
    await sub.endAsync();
    expect((await httpPublish('sid/b', 'while away')).status).toBe(202);
    const back = mqtt.connect(`mqtt://127.0.0.1:${platform.mqttPort}`, { protocolVersion: 5, username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0, ...session });
    clients.push(back);
    const resumed = collect(back);
    expect(await until(() => resumed[0])).toMatchObject({ payload: 'while away' });
    expect(ids(resumed[0])).toEqual([11, 2_000_000]);
  });

  it('CoAP POST reaches an MQTT subscriber, and a CoAP observer gets an MQTT publish', async () => {
    const sub = await client(4);
    const got = collect(sub);
    await sub.subscribeAsync(topic('coap'), { qos: 1 });
    await run('coap-client-notls', ['-m', 'post', '-t', '110', '-e', '[{"n":"t","v":2}]', `coap://127.0.0.1:${platform.coapPort}/channels/${w.channel}/messages/coap?auth=${w.deviceKey}`]);
    expect(await until(() => got[0])).toMatchObject({ payload: '[{"n":"t","v":2}]' });
    const observer = run('coap-client-notls', ['-s', '3', '-B', '3', `coap://127.0.0.1:${platform.coapPort}/channels/${w.channel}/messages/from-mqtt?auth=${w.deviceKey}`], { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 800));
    await sub.publishAsync(topic('from-mqtt'), 'mqtt to coap', { qos: 1 });
    expect((await observer).stdout).toContain('mqtt to coap');
  });

  /** A device of its own, connected to the channel: earlier tests' CoAP requests keep theirs online for presenceIdleMs. */
  const freshDevice = async () => {
    const d = await w.call('POST', `/orgs/${w.org}/devices`, { name: `presence-${Date.now()}` }, w.token);
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [w.channel], device_ids: [d.id] }, w.token);
    const get = async () => (await (await fetch(`${platform.url}/orgs/${w.org}/devices/${d.id}`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { online: boolean; last_seen: number | null };
    return { id: d.id!, key: d.key!, get };
  };

  it('marks the device online while connected and records last-seen', async () => {
    const d = await freshDevice();
    expect((await d.get()).online).toBe(false);
    const c = await client(4, { clientId: 'presence', username: d.id, password: d.key });
    expect(await until(async () => (await d.get()).online || undefined)).toBe(true);
    await c.endAsync();
    const after = await until(async () => {
      const x = await d.get();
      return x.online ? undefined : x;
    });
    expect(after.last_seen).toBeGreaterThan(0);
  });

  it('a device with two MQTT connections at once goes offline when both have closed (a device on two clients, or a reconnect before the old socket is gone)', async () => {
    const d = await freshDevice();
    const a = await client(5, { clientId: 'presence-a', username: d.id, password: d.key });
    const b = await client(4, { clientId: 'presence-b', username: d.id, password: d.key });
    expect(await until(async () => (await d.get()).online || undefined)).toBe(true);
    await a.endAsync();
    await new Promise((r) => setTimeout(r, 1000));
    expect((await d.get()).online).toBe(true); // b still has it
    await b.endAsync();
    const after = await until(async () => {
      const x = await d.get();
      return x.online ? undefined : x;
    });
    expect(after.online).toBe(false);
  });

  it('a device online over CoAP stays online while an MQTT connection of it comes and goes (one presence per bridge, counted)', async () => {
    const d = await freshDevice();
    // A CoAP request makes the device online (for presenceIdleMs: 5 minutes)…
    const coap = await run('coap-client-notls', ['-m', 'post', '-e', 'hello', `coap://127.0.0.1:${platform.coapPort}/channels/${w.channel}/messages/presence?auth=${d.key}`], { timeout: 15_000 });
    expect(`${coap.stdout}${coap.stderr}`).not.toMatch(/[45]\.\d\d/);
    expect(await until(async () => (await d.get()).online || undefined)).toBe(true);
    // …and an MQTT connection of the same device closing does not take that away.
    const c = await client(4, { clientId: 'presence-both', username: d.id, password: d.key });
    await c.endAsync();
    await new Promise((r) => setTimeout(r, 1500));
    expect((await d.get()).online).toBe(true);
  });

  it('malformed bytes close that connection cleanly and the bridge keeps serving', async () => {
    for (const junk of [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0x30, 0x02, 0x00])]) {
      const sock = tcpConnect(platform.mqttPort, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.write(junk);
      await new Promise((r) => {
        sock.once('close', r);
        setTimeout(() => (sock.destroy(), r(null)), 3000);
      });
    }
    const ok = await client(4);
    await ok.publishAsync(topic('after-junk'), 'fine', { qos: 1 });
  });

  it('MQTT over WebSocket (/mqtt, as browsers connect) publishes and receives', async () => {
    const c = mqtt.connect(`ws://127.0.0.1:${platform.mqttWsPort}/mqtt`, { protocolVersion: 5, username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(c);
    await new Promise<void>((ok, fail) => (c.once('connect', () => ok()), c.once('error', fail)));
    const got = collect(c);
    await c.subscribeAsync(topic('ws/#'), { qos: 1 });
    expect((await httpPublish('ws/in', 'to the browser')).status).toBe(202);
    expect(await until(() => got[0])).toMatchObject({ topic: topic('ws/in'), payload: 'to the browser' });
  });

  it('a QoS 0 burst bigger than one link frame is delivered in order and stored whole', async () => {
    const n = 3000;
    const headers = { authorization: `Bearer ${w.token}`, 'content-type': 'application/json' };
    const limits = await fetch(`${platform.url}/orgs/${w.org}/channels/${w.channel}/limits`, { method: 'PATCH', headers, body: JSON.stringify({ channelRate: { perSecond: 100_000, burst: 100_000 }, publisherRate: { perSecond: 100_000, burst: 100_000 } }) });
    expect(limits.status).toBe(200);
    const sub = await client(5);
    const got = collect(sub);
    await sub.subscribeAsync(topic('burst'), { qos: 0 });
    const pubs = await Promise.all([0, 1, 2, 3, 4].map((p) => client(5, { clientId: `burst-pub-${p}` })));
    // Synchronous loops on five connections: the bridge reads them in one turn and must split
    // what they publish into frames the channel actor accepts.
    for (let i = 0; i < n / 5; i++) pubs.forEach((pub, p) => pub.publish(topic('burst'), JSON.stringify([{ n: `p${p}`, v: i }]), { qos: 0, properties: { contentType: 'application/senml+json' } }));
    await until(() => got.length >= n, 30_000);
    const records = got.map((m) => JSON.parse(m.payload)[0] as { n: string; v: number });
    for (let p = 0; p < 5; p++) expect(records.filter((r) => r.n === `p${p}`).map((r) => r.v)).toEqual(Array.from({ length: n / 5 }, (_, i) => i));
    const stored = async () => ((await (await fetch(`${platform.url}/channels/${w.channel}/messages?subtopic=burst&limit=1`, { headers })).json()) as { total: number }).total;
    expect(await until(async () => ((await stored()) >= n ? stored() : undefined), 30_000)).toBe(n);
  }, 60_000);

  it('MQTT.js 5 firing 300 QoS 1 publishes at once (it does not keep to Receive Maximum) gets every PUBACK, not DISCONNECT 0x93', async () => {
    const headers = { authorization: `Bearer ${w.token}`, 'content-type': 'application/json' };
    const limits = await fetch(`${platform.url}/orgs/${w.org}/channels/${w.channel}/limits`, { method: 'PATCH', headers, body: JSON.stringify({ channelRate: { perSecond: 100_000, burst: 100_000 }, publisherRate: { perSecond: 100_000, burst: 100_000 } }) });
    expect(limits.status).toBe(200);
    const pub = await client(5, { clientId: 'qos1-burst' });
    const dropped = new Promise<{ disconnect: number }>((r) => pub.once('disconnect', (p) => r({ disconnect: (p as { reasonCode?: number }).reasonCode ?? 0 })));
    const acked = Promise.all(Array.from({ length: 300 }, (_, i) => pub.publishAsync(topic('qos1-burst'), `m${i}`, { qos: 1 }))).then((acks) => ({ reasonCodes: acks.map((a) => (a as { reasonCode?: number } | undefined)?.reasonCode ?? 0) }));
    expect(await Promise.race([acked, dropped])).toEqual({ reasonCodes: Array.from({ length: 300 }, () => 0) });
  }, 60_000);

  it("mosquitto_pub (3.1.1, no content type) to a channel whose default is SenML JSON: stored as SenML records", async () => {
    const ch = (await w.call('POST', `/orgs/${w.org}/channels`, { name: 'senml-default' }, w.token)).id!;
    await w.call('POST', `/orgs/${w.org}/connections`, { channel_ids: [ch], device_ids: [w.deviceId] }, w.token);
    await w.call('PATCH', `/orgs/${w.org}/channels/${ch}/limits`, { defaultContentType: 'application/senml+json' }, w.token);
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(platform.mqttPort), '-u', w.deviceId, '-P', w.deviceKey, '-t', `channels/${ch}/messages/lab`, '-m', '[{"bn":"room1/","n":"temp","u":"Cel","v":22.5}]', '-q', '1']);
    const records = async () => ((await (await fetch(`${platform.url}/channels/${ch}/messages?format=senml`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { items: Record<string, unknown>[] }).items;
    expect(await until(async () => ((await records()).length > 0 ? records() : undefined))).toEqual([expect.objectContaining({ name: 'room1/temp', unit: 'Cel', value: 22.5, subtopic: 'lab' })]);
  });
});
