import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { provision, startPlatform, type Platform } from './processes';

/**
 * Eclipse Paho's JavaScript client — the other MQTT-over-WebSocket client browser pages use, beside
 * MQTT.js — against the bridge's /mqtt (`npm start`'s launcher, the real bridge). Paho is written
 * for browsers: it finds `WebSocket` (here the `ws` package's) and `localStorage` as globals, and
 * sends every packet as one WebSocket message, where MQTT.js streams.
 */
interface PahoMessage {
  destinationName: string;
  payloadString: string;
  payloadBytes: Uint8Array;
  qos: number;
  retained: boolean;
}
interface PahoClient {
  onMessageArrived: (m: PahoMessage) => void;
  onConnectionLost: (e: { errorCode: number; errorMessage: string }) => void;
  connect(o: Record<string, unknown>): void;
  subscribe(filter: string, o: Record<string, unknown>): void;
  send(m: PahoMessage): void;
  disconnect(): void;
}
type Paho = { Client: new (host: string, port: number, path: string, clientId: string) => PahoClient; Message: new (payload: string | Uint8Array) => PahoMessage };

const state = mkdtempSync(join(tmpdir(), 'edgeflux-paho-'));
let platform: Platform;
let w: Awaited<ReturnType<typeof provision>>;
const globals = globalThis as Record<string, unknown>;
const saved = { WebSocket: globals.WebSocket, localStorage: globals.localStorage };

beforeAll(async () => {
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
  w = await provision(platform.url);
  const store = new Map<string, string>();
  globals.WebSocket = WebSocket;
  globals.localStorage = { setItem: (k: string, v: string) => store.set(k, v), getItem: (k: string) => store.get(k) ?? null, removeItem: (k: string) => store.delete(k) };
}, 120_000);

afterAll(async () => {
  Object.assign(globals, saved);
  await platform?.stop();
  rmSync(state, { recursive: true, force: true });
});

const paho = createRequire(import.meta.url)('paho-mqtt') as Paho;

/** A connected Paho client (MQTT 3.1.1), with what it receives. */
async function connected(clientId: string, mqttVersion = 4): Promise<{ c: PahoClient; got: PahoMessage[]; lost: string[] }> {
  const c = new paho.Client('127.0.0.1', platform.mqttWsPort, '/mqtt', clientId);
  const got: PahoMessage[] = [];
  const lost: string[] = [];
  c.onMessageArrived = (m) => got.push(m);
  c.onConnectionLost = (e) => lost.push(`${e.errorCode} ${e.errorMessage}`);
  await new Promise<void>((ok, fail) => c.connect({ userName: w.deviceId, password: w.deviceKey, mqttVersion, timeout: 10, onSuccess: () => ok(), onFailure: (e: { errorMessage: string }) => fail(new Error(e.errorMessage)) }));
  return { c, got, lost };
}

async function until(f: () => boolean, ms = 8000): Promise<void> {
  for (const end = Date.now() + ms; !f(); ) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('Eclipse Paho JavaScript over WebSocket', () => {
  it('connects, subscribes at QoS 1, publishes a retained QoS 1 message and a 200 KB one, and receives both; a later subscriber gets the retained one', async () => {
    const { c, got, lost } = await connected('paho-sub');
    const topic = `channels/${w.channel}/messages/paho`;
    const granted = await new Promise<number[]>((ok, fail) => c.subscribe(`${topic}/#`, { qos: 1, onSuccess: (r: { grantedQos: number[] }) => ok(r.grantedQos), onFailure: fail }));
    expect([...granted]).toEqual([1]);
    const hello = new paho.Message('hello from paho');
    hello.destinationName = `${topic}/lab`;
    hello.qos = 1;
    hello.retained = true;
    c.send(hello);
    const big = new paho.Message(new Uint8Array(200_000).map((_, i) => i % 251));
    big.destinationName = `${topic}/big`;
    big.qos = 0;
    c.send(big);
    await until(() => got.length >= 2);
    expect(got.map((m) => [m.destinationName.split('/').pop(), m.payloadBytes.length, m.qos])).toEqual([
      ['lab', 15, 1],
      ['big', 200_000, 0],
    ]);
    expect(got[1]!.payloadBytes.every((b, i) => b === i % 251)).toBe(true);
    const late = await connected('paho-late');
    await new Promise((ok, fail) => late.c.subscribe(`${topic}/lab`, { qos: 0, onSuccess: ok, onFailure: fail }));
    await until(() => late.got.length >= 1);
    expect([late.got[0]!.payloadString, late.got[0]!.retained]).toEqual(['hello from paho', true]);
    expect([...lost, ...late.lost]).toEqual([]); // (a disconnect below is reported as lost with code 0, OK)
    c.disconnect();
    late.c.disconnect();
  });

  it('MQTT 3.1 (MQIsdp, Paho\'s mqttVersion 3, as older devices speak it) connects, subscribes and gets what is published', async () => {
    const { c, got } = await connected('paho-31', 3);
    const topic = `channels/${w.channel}/messages/v31`;
    await new Promise((ok, fail) => c.subscribe(topic, { qos: 1, onSuccess: ok, onFailure: fail }));
    const m = new paho.Message('over 3.1');
    m.destinationName = topic;
    m.qos = 1;
    c.send(m);
    await until(() => got.length >= 1);
    expect([got[0]!.payloadString, got[0]!.qos]).toEqual(['over 3.1', 1]);
    c.disconnect();
  });
});
