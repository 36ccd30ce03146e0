import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type IConnackPacket, type IDisconnectPacket, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DurableSessionStore } from '../../bridge/mqtt/session-durable';
import { freePort, provision, root, startBridge, startPlatform, type Bridge, type Platform } from './processes';

/**
 * Durable MQTT sessions against the whole platform (docs/mqtt.md "Durable sessions"): session
 * actors keep the session, so it survives a crashed bridge, and a second bridge can take it over.
 * Real processes, real MQTT.js clients.
 */
let platform: Platform;
let w: Awaited<ReturnType<typeof provision>>;
const state = mkdtempSync(join(tmpdir(), 'edgeflux-sessions-'));
const clients: MqttClient[] = [];
const bridges: Bridge[] = [];
const topic = (sub: string) => `channels/${w.channel}/messages/${sub}`;

async function connect(port: number, opts: IClientOptions): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username: w.deviceId, password: w.deviceKey, reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
  clients.push(client);
  const connack = await new Promise<IConnackPacket>((ok, fail) => {
    client.once('connect', ok);
    client.once('error', fail);
  });
  return { client, connack };
}

async function until<T>(f: () => T | undefined | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const device = async () => (await (await fetch(`${platform.url}/orgs/${w.org}/devices/${w.deviceId}`, { headers: { authorization: `Bearer ${w.token}` } })).json()) as { online: boolean };

async function untilAsync(f: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function httpPublish(sub: string, body: string): Promise<void> {
  const res = await fetch(`${platform.url}/channels/${w.channel}/messages/${sub}`, { method: 'POST', headers: { authorization: `Bearer ${w.token}`, 'content-type': 'text/plain' }, body });
  expect(res.status).toBe(202);
}

const received = (c: MqttClient) => {
  const got: { payload: string; qos: number; dup: boolean }[] = [];
  c.on('message', (_t, p, packet) => got.push({ payload: p.toString(), qos: packet.qos, dup: packet.dup }));
  return got;
};

beforeAll(async () => {
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
  w = await provision(platform.url);
}, 120_000);

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await Promise.all(bridges.splice(0).map((b) => b.stop()));
});

afterAll(async () => {
  await platform?.stop();
  rmSync(state, { recursive: true, force: true });
});

describe('durable MQTT sessions', () => {
  it.each([
    ['3.1.1, Clean Session 0', { protocolVersion: 4, clean: false }],
    ['5.0, Session Expiry Interval', { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } }],
  ] as const)('%s: QoS 1 messages published while the bridge is down arrive after it restarts', async (_name, opts) => {
    const clientId = `persist-${opts.protocolVersion}-${Date.now()}`;
    const sub = `crash-${opts.protocolVersion}`;
    const first = await startBridge(platform);
    bridges.push(first);
    const a = await connect(first.mqttPort, { ...opts, clientId, properties: { ...('properties' in opts ? opts.properties : {}) } });
    expect(a.connack.sessionPresent).toBe(false);
    await a.client.subscribeAsync(topic(sub), { qos: 1 });
    await first.kill(); // a crash: nothing released, the session actor keeps the last checkpoint
    await until(() => a.client.connected === false);

    for (const n of [1, 2, 3]) await httpPublish(sub, `queued ${n}`);

    const second = await startBridge(platform);
    bridges.push(second);
    const b = await connect(second.mqttPort, { ...opts, clientId, properties: { ...('properties' in opts ? opts.properties : {}) } });
    const got = received(b.client);
    expect(b.connack.sessionPresent).toBe(true);
    await until(() => got.length >= 3);
    expect(got.map((m) => [m.payload, m.qos])).toEqual([
      ['queued 1', 1],
      ['queued 2', 1],
      ['queued 3', 1],
    ]);
    // The restored subscription is live too.
    await httpPublish(sub, 'live');
    await until(() => got.length >= 4);
    expect(got[3]?.payload).toBe('live');
  }, 60_000);

  it('an unacknowledged QoS 1 delivery is sent again after a bridge crash, with DUP and the same packet id [MQTT-4.4.0-1]', async () => {
    const clientId = `dup-${Date.now()}`;
    const first = await startBridge(platform);
    bridges.push(first);
    const opts = { protocolVersion: 5, clean: false, clientId, properties: { sessionExpiryInterval: 600 } } as const;
    // This client never PUBACKs: its ack handler records the PUBLISH and never calls done.
    const seen: { payload: string; id?: number; dup: boolean }[] = [];
    const a = await connect(first.mqttPort, {
      ...opts,
      properties: { ...opts.properties },
      customHandleAcks: (_t, p, packet) => void seen.push({ payload: p.toString(), dup: packet.dup, ...(packet.messageId !== undefined ? { id: packet.messageId } : {}) }),
    });
    await a.client.subscribeAsync(topic('dup'), { qos: 1 });
    await httpPublish('dup', 'unacked');
    await until(() => seen.length >= 1);
    expect(seen[0]).toMatchObject({ payload: 'unacked', dup: false });
    await new Promise((r) => setTimeout(r, 1500)); // past the session checkpoint (1 s)
    await first.kill();

    const second = await startBridge(platform);
    bridges.push(second);
    const b = await connect(second.mqttPort, { ...opts, properties: { ...opts.properties } });
    const again: { payload: string; id?: number; dup: boolean }[] = [];
    b.client.on('message', (_t, p, packet) => again.push({ payload: p.toString(), dup: packet.dup, ...(packet.messageId !== undefined ? { id: packet.messageId } : {}) }));
    await until(() => again.length >= 1);
    expect(again[0]).toEqual({ payload: 'unacked', dup: true, id: seen[0]!.id });
  }, 60_000);

  it('a CONNECT on another bridge takes the session over: the first connection gets DISCONNECT 0x8E, the second the session', async () => {
    // A device of its own: a crashed bridge of an earlier test still counts the shared one online.
    w = await provision(platform.url);
    const clientId = `takeover-${Date.now()}`;
    const other = await startBridge(platform);
    bridges.push(other);
    const opts = { protocolVersion: 5, clean: false, clientId, properties: { sessionExpiryInterval: 600 } } as const;
    const a = await connect(platform.mqttPort, { ...opts, properties: { ...opts.properties } });
    await a.client.subscribeAsync(topic('takeover'), { qos: 1 });
    let disconnect: IDisconnectPacket | undefined;
    a.client.on('disconnect', (p) => (disconnect = p));

    const b = await connect(other.mqttPort, { ...opts, properties: { ...opts.properties } });
    expect(b.connack.sessionPresent).toBe(true);
    const kicked = await until(() => disconnect);
    expect(kicked.reasonCode).toBe(0x8e);
    await until(() => a.client.connected === false);

    // The second bridge resumed the subscription it found in the session.
    const got = received(b.client);
    await httpPublish('takeover', 'to the new holder');
    await until(() => got.length >= 1);
    expect(got.map((m) => m.payload)).toEqual(['to the new holder']);

    // And back again: the second bridge is told in turn.
    let second: IDisconnectPacket | undefined;
    b.client.on('disconnect', (p) => (second = p));
    const c = await connect(platform.mqttPort, { ...opts, properties: { ...opts.properties } });
    expect(c.connack.sessionPresent).toBe(true);
    expect((await until(() => second)).reasonCode).toBe(0x8e);

    // Presence is per bridge: the "offline" of the bridge the session left does not hide it.
    await until(() => b.client.connected === false);
    await new Promise((r) => setTimeout(r, 500));
    expect((await device()).online).toBe(true);
    await c.client.endAsync();
    await untilAsync(async () => (await device()).online === false);
  }, 60_000);

  it('two bridges on MQTT port 0 (any free port) of one host: the second one\'s startup presence reset leaves the first one\'s devices online', async () => {
    // A device of its own: a crashed bridge of an earlier test still counts the shared one online.
    w = await provision(platform.url);
    const anyPort = { EDGEFLUX_MQTT_PORT: '0', EDGEFLUX_MQTT_WS_PORT: '0', EDGEFLUX_COAP_PORT: '0' };
    const first = await startBridge(platform, anyPort);
    bridges.push(first);
    // A random id no later bridge takes: a crash would leave its devices online for good.
    expect(first.output()).toMatch(/warning: bridge id \S+:0-[0-9a-f]{8} is random; set EDGEFLUX_BRIDGE_ID: a crash leaves presence no other bridge can reset/);
    const port = Number(new URL(JSON.parse(/EDGEFLUX_BRIDGE_READY (.*)/.exec(first.output())![1]!).mqtt as string).port);
    await connect(port, { protocolVersion: 4, clientId: `port0-${Date.now()}` });
    await untilAsync(async () => (await device()).online);
    bridges.push(await startBridge(platform, anyPort));
    await new Promise((r) => setTimeout(r, 500));
    expect((await device()).online).toBe(true);
  }, 60_000);

  it('a bridge whose EDGEFLUX_BRIDGE_SECRET the worker refuses stops at startup, saying so — it does not tell every device its password is wrong', async () => {
    const refused: Bridge | Error = await startBridge(platform, { EDGEFLUX_BRIDGE_SECRET: 'not-the-secret' }, 15_000).catch((e: Error) => e);
    if (!(refused instanceof Error)) bridges.push(refused); // started after all: stopped after the test
    expect(String(refused)).toMatch(/bridge exited with 1:[\s\S]*refused EDGEFLUX_BRIDGE_SECRET, or has no BRIDGE_SECRET set \(bridge credential required\)/);
  }, 30_000);

  it('a 401 that is not the worker\'s (a proxy\'s HTML page) does not stop the bridge: it starts as with a worker not reached, logs the page cut short, and tries the reset again', async () => {
    const page = `<html><body><h1>401 Authorization Required</h1>${'<p>proxy</p>'.repeat(200)}</body></html>`;
    const port = await freePort();
    const proxy = createServer((_req, res) => res.writeHead(401, { 'content-type': 'text/html' }).end(page));
    await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', () => r()));
    try {
      const started = await startBridge({ url: `http://127.0.0.1:${port}` }, {}, 15_000);
      bridges.push(started);
      const line = started.output().split('\n').find((l) => l.includes('not reset'));
      expect(line).toMatch(/presence of bridge \S+ not reset: platform unreachable: HTTP 401: <html><body><h1>401 Authorization Required/);
      expect(line).toMatch(/\(tried again in the background\)$/);
      expect(line!.length).toBeLessThan(400);
      expect(started.output()).not.toContain('EDGEFLUX_BRIDGE_SECRET');
    } finally {
      proxy.close();
    }
  }, 30_000);

  it('a clean-session client is taken over across bridges too (3.1.1: the first connection is closed)', async () => {
    const clientId = `clean-${Date.now()}`;
    const other = await startBridge(platform);
    bridges.push(other);
    const a = await connect(platform.mqttPort, { protocolVersion: 4, clientId, clean: true });
    const b = await connect(other.mqttPort, { protocolVersion: 4, clientId, clean: true });
    expect(b.connack.sessionPresent).toBe(false);
    await until(() => a.client.connected === false);
    expect(b.client.connected).toBe(true);
  }, 60_000);

  it.each([
    ['resumed in time: cancelled', false],
    ['reconnected with Clean Start: sent at once', true],
  ] as const)('a delayed will on one bridge, its client back on another — %s', async (_name, clean) => {
    const clientId = `will-${clean}-${Date.now()}`;
    const other = await startBridge(platform);
    bridges.push(other);
    const observer = await connect(platform.mqttPort, { protocolVersion: 5, clientId: `observer-${clientId}` });
    await observer.client.subscribeAsync(topic('wills'), { qos: 1 });
    const wills = received(observer.client);
    const will = { topic: topic('wills'), payload: Buffer.from(`gone ${clientId}`), qos: 1 as const, retain: false, properties: { willDelayInterval: 4 } };
    const a = await connect(other.mqttPort, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 600 }, will });
    a.client.stream.destroy(); // no DISCONNECT: the will is due after its delay
    await until(() => a.client.connected === false);
    // Let the first bridge finish: the session is released, only its holder socket still listens.
    await new Promise((r) => setTimeout(r, 1000));
    const b = await connect(platform.mqttPort, { protocolVersion: 5, clientId, clean, properties: { sessionExpiryInterval: 600 } });
    expect(b.connack.sessionPresent).toBe(!clean);
    if (clean) {
      await until(() => wills.length >= 1, 2000); // before the 4 s delay
      expect(wills.map((m) => m.payload)).toEqual([`gone ${clientId}`]);
    } else {
      await new Promise((r) => setTimeout(r, 4500));
      expect(wills).toEqual([]);
    }
  }, 60_000);

  it('the will of a connection whose bridge crashed is published by its session actor', async () => {
    const clientId = `crash-will-${Date.now()}`;
    const doomed = await startBridge(platform);
    bridges.push(doomed);
    const observer = await connect(platform.mqttPort, { protocolVersion: 5, clientId: `observer-${clientId}` });
    await observer.client.subscribeAsync(topic('crash-wills'), { qos: 1 });
    const wills = received(observer.client);
    await connect(doomed.mqttPort, { protocolVersion: 4, clientId, clean: true, will: { topic: topic('crash-wills'), payload: Buffer.from('bridge lost me'), qos: 1, retain: false } });
    await doomed.kill();
    // After the actor's reattach grace (10 s): the bridge might only have lost its socket.
    await until(() => wills.length >= 1, 20_000);
    expect(wills.map((m) => m.payload)).toEqual(['bridge lost me']);
  }, 60_000);

  /**
   * MQTT 5 §3.1.3.2.2: the will is delayed until the Will Delay Interval passes or the session ends.
   * A bridge stopping (SIGTERM: a rolling deploy) ends neither; its delayed wills used to be timers
   * of the exiting process, dropped — while a SIGKILLed bridge's went out (the session actor's).
   */
  it.each([
    ['published when due if the client does not come back', false],
    ['cancelled by a reconnect to another bridge within the delay', true],
  ] as const)('a delayed will of a connection on a bridge that stops cleanly is %s', async (_name, comeBack) => {
    const clientId = `stop-will-${comeBack}-${Date.now()}`;
    const sub = `stop-wills-${comeBack}`;
    const stopping = await startBridge(platform);
    bridges.push(stopping);
    const observer = await connect(platform.mqttPort, { protocolVersion: 5, clientId: `observer-${clientId}` });
    await observer.client.subscribeAsync(topic(sub), { qos: 1 });
    const wills = received(observer.client);
    const session = { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 600 } } as const;
    const a = await connect(stopping.mqttPort, { ...session, properties: { ...session.properties }, will: { topic: topic(sub), payload: Buffer.from('stopped bridge'), qos: 1, retain: false, properties: { willDelayInterval: 2 } } });
    const told = new Promise<IDisconnectPacket>((r) => a.client.once('disconnect', r));
    const started = Date.now();
    await stopping.stop();
    expect((await told).reasonCode).toBe(0x8b); // Server shutting down
    if (comeBack) {
      const b = await connect(platform.mqttPort, { ...session, properties: { ...session.properties } });
      expect(b.connack.sessionPresent).toBe(true);
      await new Promise((r) => setTimeout(r, 4000));
      expect(wills).toEqual([]);
    } else {
      await until(() => wills.length >= 1, 15_000);
      // Not before its delay.
      expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
      // Once: a late duplicate (the actor's alarm firing again, a retry) would arrive after the first.
      await new Promise((r) => setTimeout(r, 2500));
      expect(wills.map((m) => m.payload)).toEqual(['stopped bridge']);
    }
  }, 60_000);

  /**
   * MQTT 5 No Local [MQTT-3.8.3-3]: a will is published on its session's behalf, so that session's
   * own No Local subscription does not get it back when it resumes (Mosquitto 2 neither) — whether
   * the bridge published it (the connection dropped) or the session actor did (the bridge crashed).
   */
  it.each([
    ['the bridge published it: the connection dropped', false],
    ['the session actor published it: the bridge crashed', true],
  ] as const)('a resumed session’s No Local subscription does not get its own will — %s', async (_name, crash) => {
    const clientId = `nl-will-${crash}-${Date.now()}`;
    const sub = `nl-wills-${crash}`;
    const first = await startBridge(platform);
    bridges.push(first);
    const observer = await connect(platform.mqttPort, { protocolVersion: 5, clientId: `observer-${clientId}` });
    await observer.client.subscribeAsync(topic(sub), { qos: 1 });
    const seen = received(observer.client);
    const session = { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 600 } } as const;
    const a = await connect(first.mqttPort, { ...session, properties: { ...session.properties }, will: { topic: topic(sub), payload: Buffer.from(`gone ${clientId}`), qos: 1, retain: false } });
    await a.client.subscribeAsync(topic(sub), { qos: 1, nl: true });
    if (crash) await first.kill();
    else a.client.stream.destroy();
    // The crashed bridge's will comes after the session actor's reattach grace (10 s).
    await until(() => seen.length >= 1, 20_000);
    expect(seen.map((m) => m.payload)).toEqual([`gone ${clientId}`]);
    await httpPublish(sub, 'while away');
    const b = await connect(platform.mqttPort, { ...session, properties: { ...session.properties } });
    expect(b.connack.sessionPresent).toBe(true);
    const got = received(b.client);
    await until(() => got.length >= 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(got.map((m) => m.payload)).toEqual(['while away']);
  }, 60_000);

  it('a session socket that drops under a live connection attaches again: no will, writes accepted, still the holder', async () => {
    const secret = /^BRIDGE_SECRET=(.+)$/m.exec(readFileSync(join(root, '.dev.vars'), 'utf8'))![1]!.trim();
    const store = new DurableSessionStore({ workerUrl: platform.url, bridgeSecret: secret });
    const other = new DurableSessionStore({ workerUrl: platform.url, bridgeSecret: secret });
    const events: string[] = [];
    const holder = { takenOver: async ({ clean }: { clean: boolean }) => void events.push(`takenOver ${clean}`), storeLost: (why: string) => void events.push(`lost ${why}`) };
    const key = `${w.deviceId}\u0000reattach-${Date.now()}`;
    try {
      const { epoch } = await store.open(key, holder, false, { expirySeconds: 600 });
      store.dropSockets();
      await new Promise((r) => setTimeout(r, 100));
      // Waits for the socket to attach again, then writes.
      expect(await store.save(key, epoch, { subscriptions: [], inflight: [], awaitingRelease: [1] })).toBe(true);
      expect(events).toEqual([]);
      const second = await other.open(key, { takenOver: async () => undefined }, false, { expirySeconds: 600 });
      expect(second.state).toEqual({ subscriptions: [], inflight: [], awaitingRelease: [1] });
      expect(events).toEqual(['takenOver false']);
    } finally {
      await store.close();
      await other.close();
    }
  }, 60_000);
});

describe('shared subscriptions of persistent sessions (docs/mqtt.md "Shared subscriptions and sessions")', () => {
  const v5 = (clientId: string) => ({ protocolVersion: 5, clean: false, clientId, properties: { sessionExpiryInterval: 120 } }) as const;

  it('a member that drops gets its unacknowledged delivery again (DUP, same packet id), then what was published while it was away', async () => {
    const bridge = await startBridge(platform);
    bridges.push(bridge);
    const clientId = `share-member-${Date.now()}`;
    const share = `$share/g9/${topic('psi/#')}`;
    const seen: { payload: string; id?: number; dup: boolean }[] = [];
    // This member never PUBACKs: its ack handler records the PUBLISH and never calls done.
    const a = await connect(bridge.mqttPort, { ...v5(clientId), properties: { sessionExpiryInterval: 120 }, customHandleAcks: (_t, p, packet) => void seen.push({ payload: p.toString(), dup: packet.dup, ...(packet.messageId !== undefined ? { id: packet.messageId } : {}) }) });
    await a.client.subscribeAsync(share, { qos: 1 });
    const pub = await connect(bridge.mqttPort, { protocolVersion: 5, clientId: `share-pub-${Date.now()}` });
    await pub.client.publishAsync(topic('psi/1'), 'in flight', { qos: 1 });
    await until(() => seen.length >= 1);
    expect(seen[0]).toMatchObject({ payload: 'in flight', dup: false });
    a.client.stream.destroy(); // the socket drops, no DISCONNECT
    await until(() => a.client.connected === false);
    for (const n of [1, 2, 3]) await pub.client.publishAsync(topic('psi/2'), `while away ${n}`, { qos: 1 });

    const b = await connect(bridge.mqttPort, { ...v5(clientId), properties: { sessionExpiryInterval: 120 } });
    const again: { payload: string; id?: number; dup: boolean }[] = [];
    b.client.on('message', (_t, p, packet) => again.push({ payload: p.toString(), dup: packet.dup, ...(packet.messageId !== undefined ? { id: packet.messageId } : {}) }));
    expect(b.connack.sessionPresent).toBe(true);
    await until(() => again.length >= 4);
    expect(again[0]).toEqual({ payload: 'in flight', dup: true, id: seen[0]!.id });
    expect(again.slice(1).map((m) => [m.payload, m.dup])).toEqual([['while away 1', false], ['while away 2', false], ['while away 3', false]]);
  }, 60_000);

  it('a group whose only member is away keeps its place across a bridge crash: the backlog arrives on resume at another bridge', async () => {
    const first = await startBridge(platform);
    bridges.push(first);
    const clientId = `share-crash-${Date.now()}`;
    const a = await connect(first.mqttPort, v5(clientId));
    await a.client.subscribeAsync(`$share/crash/${topic('crash-share/#')}`, { qos: 1 });
    await first.kill();
    await until(() => a.client.connected === false);
    for (const n of [1, 2, 3]) await httpPublish('crash-share/x', `queued ${n}`);

    const second = await startBridge(platform);
    bridges.push(second);
    const b = await connect(second.mqttPort, v5(clientId));
    const got = received(b.client);
    expect(b.connack.sessionPresent).toBe(true);
    await until(() => got.length >= 3);
    expect(got.map((m) => [m.payload, m.qos])).toEqual([['queued 1', 1], ['queued 2', 1], ['queued 3', 1]]);
  }, 60_000);

  it('a client subscribed to a filter both shared and not gets two copies [MQTT 5 §4.8.2]', async () => {
    const bridge = await startBridge(platform);
    bridges.push(bridge);
    const a = await connect(bridge.mqttPort, { protocolVersion: 5, clientId: `share-both-${Date.now()}` });
    await a.client.subscribeAsync([`$share/pg/${topic('both/#')}`, topic('both/#')], { qos: 1 });
    const got = received(a.client);
    await httpPublish('both/x', 'one message');
    await until(() => got.length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(got.map((m) => m.payload)).toEqual(['one message', 'one message']);
  }, 60_000);
});
