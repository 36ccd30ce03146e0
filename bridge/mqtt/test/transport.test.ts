import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import mqttPacket, { type IConnectPacket } from 'mqtt-packet';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { setup } from './harness';

/** The listeners with a stock client (MQTT.js) over real sockets: TCP, WebSocket, TLS with client certificates. */
const T = 'channels/ch-1/messages';
const opened: MqttClient[] = [];
let t: ReturnType<typeof setup>;

async function client(url: string, opts: IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000, username: 'dev-1', password: 'key-1', ...opts });
  opened.push(c);
  return c;
}

/** The CONNACK code of a refused connection (0 if accepted), or the socket error's code. */
function refusal(url: string, opts: IClientOptions): Promise<number | string | undefined> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, ...opts });
  opened.push(c);
  return new Promise((resolve) => {
    c.once('error', (e: Error & { code?: number | string }) => resolve(e.code));
    c.once('connect', () => resolve(0));
  });
}

async function roundTrip(url: string, version: 4 | 5): Promise<void> {
  const sub = await client(url, { protocolVersion: version });
  const got: string[] = [];
  sub.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  await sub.subscribeAsync(`${T}/#`, { qos: 2 });
  const pub = await client(url, { protocolVersion: version, username: 'dev-2', password: 'key-2' });
  for (const qos of [0, 1, 2] as const) await pub.publishAsync(`${T}/q${qos}`, `qos ${qos}`, { qos });
  for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
  expect(got).toEqual([`${T}/q0 qos 0`, `${T}/q1 qos 1`, `${T}/q2 qos 2`]);
}

beforeAll(() => {
  t = setup();
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.endAsync(true)));
});
afterAll(async () => {
  await t.server.close();
});

describe('transports', () => {
  it.each([4, 5] as const)('TCP with MQTT.js, protocol level %i', async (v) => {
    const { port } = await t.server.listenTcp(0);
    await roundTrip(`mqtt://127.0.0.1:${port}`, v);
  });

  it('WebSocket on /mqtt with subprotocol mqtt; text frames close the connection', async () => {
    const { port } = await t.server.listenWebSocket({ port: 0 });
    await roundTrip(`ws://127.0.0.1:${port}/mqtt`, 5);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt']);
    await new Promise((r) => ws.once('open', r));
    expect(ws.protocol).toBe('mqtt');
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send('not binary');
    expect(await closed).toBe(1003);
  });

  it('a WebSocket message over maxWebSocketMessage closes the socket with 1009 before it is read, CONNECT or not', async () => {
    const own = setup({ maxWebSocketMessage: 64 * 1024, maxPacketSize: 16 * 1024 });
    const sockets: WebSocket[] = [];
    try {
      const { port } = await own.server.listenWebSocket({ port: 0 });
      const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt']);
      sockets.push(ws);
      await new Promise((r) => ws.once('open', r));
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      // The start of a CONNECT, then bytes: one message a little over the bound.
      ws.send(Buffer.concat([Buffer.from([0x10, 0xff, 0xff, 0x7f]), Buffer.alloc(64 * 1024 - 3)]));
      expect(await closed).toBe(1009);
      // One at the bound is read (and this one is a CONNECT larger than maxPacketSize: refused as such).
      const ok = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt']);
      sockets.push(ok);
      await new Promise((r) => ok.once('open', r));
      const okClosed = new Promise<number>((r) => ok.once('close', (code) => r(code)));
      ok.send(Buffer.concat([Buffer.from([0x10, 0xff, 0xff, 0x7f]), Buffer.alloc(64 * 1024 - 4)]));
      expect(await okClosed).not.toBe(1009);
    } finally {
      for (const ws of sockets) ws.terminate();
      await own.server.close();
    }
  });

  it('maxWebSocketMessage that ws would read as no bound, or below maxPacketSize, is refused at start-up', async () => {
    // ws takes maxPayload | 0 and reads ≤ 0 as no limit.
    for (const bad of [0, -1, 2 ** 31, 2 ** 32, 1.5 * 1024 * 1024 + 0.5, Number.NaN]) expect(() => setup({ maxWebSocketMessage: bad }), String(bad)).toThrow(/maxWebSocketMessage must be a whole number of bytes from 1 to 2147483647/);
    expect(() => setup({ maxWebSocketMessage: 1024 * 1024, maxPacketSize: 1024 * 1024 + 1 })).toThrow(/maxWebSocketMessage \(1048576\) must be at least maxPacketSize \(1048577\)/);
    await setup({ maxWebSocketMessage: 2 ** 31 - 1 }).server.close();
  });

  it('server.close() ends v5 clients with DISCONNECT 0x8B and stops listening', async () => {
    const own = setup();
    const { port } = await own.server.listenTcp(0);
    const c = await client(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5 });
    const reason = new Promise<number | undefined>((r) => c.once('disconnect', (p) => r(p.reasonCode)));
    await own.server.close();
    expect(await reason).toBe(0x8b);
    expect(await refusal(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4 })).toBe('ECONNREFUSED');
  });
});

const MiB = 1024 * 1024;

/** A raw client, connected (CONNACK read): `send` writes one chunk (one WebSocket message); `end` closes cleanly, `close` drops; `stopReading` leaves what the bridge sends unread. */
interface RawClient {
  send(b: Buffer): void;
  close(): void;
  end(): void;
  stopReading(): void;
}

async function rawClient(kind: 'tcp' | 'ws', port: number, extra: Partial<IConnectPacket> = {}): Promise<RawClient> {
  const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `flood-${kind}`, keepalive: 0, username: 'dev-1', password: Buffer.from('key-1'), ...extra });
  if (kind === 'tcp') {
    const s = tcpConnect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write(connect);
    await new Promise((r) => s.once('data', r));
    return { send: (b) => void s.write(b), close: () => s.destroy(), end: () => void s.end(), stopReading: () => void s.pause() };
  }
  const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt']);
  await new Promise((r) => ws.once('open', r));
  ws.send(connect);
  await new Promise((r) => ws.once('message', r));
  return { send: (b) => ws.send(b), close: () => ws.terminate(), end: () => ws.close(1000), stopReading: () => ws.pause() };
}

describe('a client flooding faster than its packets are handled', () => {
  // The reader stops taking packets (maxPendingPackets, and its byte bound); the transport must then
  // stop reading the socket, or whatever the client sends piles up in the bridge's memory.
  it.each(['tcp', 'ws'] as const)('over %s the bridge stops reading the socket: what waits in its memory stays bounded', async (kind) => {
    const own = setup({ publishRate: 1e6, publishBurst: 1e6, maxUnstoredPublishes: 1 });
    own.platform.defer = true; // nothing is stored: the reader's backlog only grows
    let c: RawClient | undefined;
    try {
      const { port } = kind === 'tcp' ? await own.server.listenTcp(0) : await own.server.listenWebSocket({ port: 0 });
      c = await rawClient(kind, port);
      const publish = mqttPacket.generate({ cmd: 'publish', topic: `${T}/flood`, payload: Buffer.alloc(32 * 1024, 1), qos: 0, dup: false, retain: false });
      for (let i = 0; i < 256; i++) c.send(publish); // 8 MiB
      await new Promise((r) => setTimeout(r, 500));
      const [conn] = [...own.server.connections];
      expect(conn).toBeDefined();
      // Read from the socket but not yet handed to the reader (which pauses at 1 MiB of its own).
      expect(conn!.stream.readableLength).toBeLessThan(MiB);
    } finally {
      c?.close();
      own.platform.defer = false;
      own.platform.releasePublishes();
      await own.server.close();
    }
  });

  // A WebSocket message is read whole; were it handed to the reader as one chunk, every packet in it
  // would be parsed at once, the reader's pause acting only after (a TCP read is at most 64 KiB).
  it('one WebSocket message of many small packets behind a stalled publish: the reader parses a bounded number of them', async () => {
    const own = setup({ publishRate: 1e6, publishBurst: 1e6, maxUnstoredPublishes: 1 });
    own.platform.defer = true;
    let c: RawClient | undefined;
    try {
      const { port } = await own.server.listenWebSocket({ port: 0 });
      c = await rawClient('ws', port);
      const publish = mqttPacket.generate({ cmd: 'publish', topic: `${T}/stalled`, payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
      const pings = Buffer.alloc(2 * MiB);
      for (let i = 0; i < pings.length; i += 2) pings[i] = 0xc0; // PINGREQ: 0xC0 0x00
      c.send(Buffer.concat([publish, pings])); // one message: a publish that is not stored, then a million PINGREQs
      await new Promise((r) => setTimeout(r, 500));
      const [conn] = [...own.server.connections];
      // Parsed and waiting to be handled (private: the reader's own count).
      const pending = (conn as unknown as { reader: { pending: number } }).reader.pending;
      expect(pending).toBeGreaterThan(0);
      // maxPendingPackets (1000) plus the rest of the chunk that crossed it (16 KiB: 8192 PINGREQs); was 1,048,576.
      expect(pending).toBeLessThan(10_000);
    } finally {
      c?.close();
      own.platform.defer = false;
      own.platform.releasePublishes();
      await own.server.close();
    }
  });

  // A client that closes right after DISCONNECT: what it sent before is handled, as after a TCP FIN.
  it.each(['tcp', 'ws'] as const)('over %s a clean close after DISCONNECT: every publish sent before it is stored, the will is not published', async (kind) => {
    const own = setup({ publishRate: 1e6, publishBurst: 1e6, maxUnstoredPublishes: 1 });
    // The reader stops at maxPendingPackets: the rest waits in the stream when the client closes.
    own.platform.defer = true;
    let c: RawClient | undefined;
    try {
      const { port } = kind === 'tcp' ? await own.server.listenTcp(0) : await own.server.listenWebSocket({ port: 0 });
      c = await rawClient(kind, port, { will: { topic: `${T}/will`, payload: Buffer.from('gone'), qos: 0, retain: false } });
      for (let i = 0; i < 1100; i++) c.send(mqttPacket.generate({ cmd: 'publish', topic: `${T}/flood`, payload: Buffer.from(String(i)), qos: 0, dup: false, retain: false }));
      c.send(mqttPacket.generate({ cmd: 'disconnect' }));
      c.end();
      await new Promise((r) => setTimeout(r, 300));
      own.platform.defer = false;
      own.platform.releasePublishes();
      for (let i = 0; i < 100 && own.server.connections.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 50));
      expect(own.server.connections.size).toBe(0);
      expect(own.platform.published.filter((p) => p.subtopic === 'flood').length).toBe(1100);
      expect(own.platform.published.filter((p) => p.subtopic === 'will')).toEqual([]);
    } finally {
      c?.close();
      own.platform.defer = false;
      own.platform.releasePublishes();
      await own.server.close();
    }
  });
});

describe('a subscriber that does not read', () => {
  // What the bridge cannot send waits in the transport's stream, where the connection sees it
  // (Connection.backlog): past maxWriteBuffer QoS 0 deliveries are dropped instead of piling up.
  it.each(['tcp', 'ws'] as const)('over %s its backlog reaches maxWriteBuffer and QoS 0 deliveries are dropped', async (kind) => {
    const own = setup({ publishRate: 1e6, publishBurst: 1e6, maxWriteBuffer: 256 * 1024 });
    let c: RawClient | undefined;
    try {
      const { port } = kind === 'tcp' ? await own.server.listenTcp(0) : await own.server.listenWebSocket({ port: 0 });
      c = await rawClient(kind, port);
      const [sub] = [...own.server.connections];
      c.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${T}/#`, qos: 0 }] }));
      for (let i = 0; i < 100 && !sub!.subs.has(`${T}/#`); i++) await new Promise((r) => setTimeout(r, 10));
      c.stopReading();
      const pub = await own.connected(4, { username: 'dev-2', password: Buffer.from('key-2') });
      let most = 0;
      // 32 MiB: more than the kernel's socket buffers hold on loopback.
      for (let i = 0; i < 512; i++) {
        pub.publish(`${T}/big`, Buffer.alloc(64 * 1024, i));
        await new Promise((r) => setImmediate(r));
        most = Math.max(most, sub!.backlog);
      }
      expect(most).toBeGreaterThan(256 * 1024);
      expect(sub!.outbox.dropped).toBeGreaterThan(0);
    } finally {
      c?.close();
      await own.server.close();
    }
  });
});

describe('server.close() and a WebSocket client that does not read', () => {
  // ws waits 30 s for the peer's answer to its close; one that does not read never answers.
  it('ends the connection within a few seconds', async () => {
    const own = setup({ publishRate: 1e6, publishBurst: 1e6 });
    let c: RawClient | undefined;
    try {
      const { port } = await own.server.listenWebSocket({ port: 0 });
      c = await rawClient('ws', port);
      const [sub] = [...own.server.connections];
      c.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${T}/#`, qos: 0 }] }));
      for (let i = 0; i < 100 && !sub!.subs.has(`${T}/#`); i++) await new Promise((r) => setTimeout(r, 10));
      c.stopReading();
      const pub = await own.connected(4, { username: 'dev-2', password: Buffer.from('key-2') });
      // Enough that the kernel's buffers fill and the close frame cannot be sent.
      for (let i = 0; i < 512; i++) {
        pub.publish(`${T}/big`, Buffer.alloc(64 * 1024, i));
        await new Promise((r) => setImmediate(r));
      }
      const started = Date.now();
      await own.server.close();
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      c?.close();
      await own.server.close();
    }
  });
});

describe('a QoS 2 delivery its channel no longer keeps, with MQTT.js (docs/mqtt.md "Sessions", Bound)', () => {
  const wait = async (f: () => boolean) => {
    for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  };

  it('a client whose PUBREC was lost gets the message once, on the PUBREL sent when it resumes; the id is then free', async () => {
    const own = setup();
    own.platform.recentWindow = 2;
    const { port } = await own.server.listenTcp(0);
    const url = `mqtt://127.0.0.1:${port}`;
    // The client's own store of QoS 2 messages it has PUBRECed, kept across its connections as a real client keeps it.
    const incomingStore = new mqtt.Store();
    const session = { protocolVersion: 5, clientId: 'pubrec-lost', clean: false, properties: { sessionExpiryInterval: 300 }, incomingStore } as const;
    const a = await client(url, session);
    await a.subscribeAsync(`${T}/q2/#`, { qos: 2 });
    // The fault: its PUBREC is lost with the connection (the message is stored on the client's side).
    const internals = a as unknown as { _sendPacket: (packet: { cmd: string }, ...rest: unknown[]) => void };
    const send = internals._sendPacket.bind(a);
    let lost = false;
    internals._sendPacket = (packet, ...rest) => {
      if (packet.cmd !== 'pubrec') return send(packet, ...rest);
      lost = true;
      a.stream.destroy();
    };
    await own.platform.inject('ch-1', 'q2/x', 'exactly once', { qos: 2 });
    await wait(() => lost);
    expect(lost).toBe(true);
    // Gone from the channel's window before the client is back.
    for (const n of [1, 2, 3]) await own.platform.inject('ch-1', 'q2/x', `later ${n}`, { qos: 2 });
    const got: string[] = [];
    // Listening from the start: the PUBREL may come in the CONNACK's chunk.
    const b = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, username: 'dev-1', password: 'key-1', ...session });
    opened.push(b);
    b.on('message', (_topic, payload) => got.push(payload.toString()));
    await wait(() => got.length >= 3);
    await new Promise((r) => setTimeout(r, 100));
    expect(got.sort()).toEqual(['exactly once', 'later 2', 'later 3']);
    expect(own.logs.filter((l) => l.includes('their packet ids released (PUBREL)'))).toHaveLength(1);
    await b.endAsync();
    expect(own.sessions.peek('dev-1\u0000pubrec-lost')?.inflight).toEqual([]);
    await own.server.close();
  });
});

describe('TLS', () => {
  // Made when the tests run, not when the file is read: a run filtered to other tests (-t) left it behind.
  let dir = '';
  const file = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const cert = (name: string, cn: string, ext?: string) => {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    if (ext) writeFileSync(file(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...(ext ? ['-extfile', `${name}.ext`] : []));
  };
  const read = (n: string) => readFileSync(file(n));
  let url = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeflux-mqtt-tls-'));
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=edgeflux-test-ca');
    cert('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    cert('dev1', 'dev-1');
    const { port } = await t.server.listenTls({ port: 0, cert: read('server.crt'), key: read('server.key'), ca: read('ca.crt'), requestCert: true });
    url = `mqtts://127.0.0.1:${port}`;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a device whose certificate CN is its username', async () => {
    const c = await client(url, { protocolVersion: 5, ca: read('ca.crt'), cert: read('dev1.crt'), key: read('dev1.key') });
    await c.publishAsync(`${T}/tls`, 'over tls', { qos: 1 });
    expect(t.platform.published.at(-1)?.subtopic).toBe('tls');
  });

  it('refuses another device presenting that certificate (v5 0x87, 3.1.1 5)', async () => {
    const opts = { ca: read('ca.crt'), cert: read('dev1.crt'), key: read('dev1.key'), username: 'dev-2', password: 'key-2' };
    expect(await refusal(url, { ...opts, protocolVersion: 5 })).toBe(0x87);
    expect(await refusal(url, { ...opts, protocolVersion: 4 })).toBe(5);
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const code = await refusal(url, { protocolVersion: 4, ca: read('ca.crt'), username: 'dev-1', password: 'key-1' });
    expect(code).not.toBe(0);
  });
});
