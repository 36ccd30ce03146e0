import mqtt, { type IConnackPacket, type IConnectPacket, type IPublishPacket, type ISubackPacket, type ISubscription, type Packet } from 'mqtt-packet';
import type { Duplex } from 'node:stream';
import type { MqttLimits } from '../limits';
import { createMqttServer, type MqttServer } from '../server';
import { MemorySessionStore, type SessionStore } from '../session';
import { duplexPair } from './duplex';
import { FakeClock, settle } from '../../testing/fake-clock';
import { MemoryPlatform } from './memory-platform';

export type Version = 4 | 5;
type PacketOf<C extends Packet['cmd']> = Extract<Packet, { cmd: C }>;

/** A fake device speaking raw MQTT through mqtt-packet over an in-memory duplex (aedes' test style). */
export class TestClient {
  readonly received: Packet[] = [];
  /** What this client's parser could not read: the server sent something invalid. */
  readonly errors: string[] = [];
  closed = false;
  /** Chunks the server's side wrote: one per write, or one per uncork of a corked burst. */
  chunks = 0;
  private readonly parser;
  private readonly end: Duplex;
  private nextId = 1;

  constructor(
    server: MqttServer,
    readonly version: Version,
  ) {
    const [serverSide, clientSide] = duplexPair();
    this.end = clientSide;
    this.parser = mqtt.parser({ protocolVersion: version });
    this.parser.on('packet', (p: Packet) => this.received.push(p));
    this.parser.on('error', (e: Error) => this.errors.push(e.message));
    clientSide.on('data', (b: Buffer) => (this.chunks++, this.parser.parse(b)));
    clientSide.on('end', () => (this.closed = true));
    clientSide.on('close', () => (this.closed = true));
    server.handle(serverSide);
  }

  send(packet: Packet): void {
    this.end.write(mqtt.generate(packet, { protocolVersion: this.version }));
  }

  raw(bytes: Uint8Array): void {
    this.end.write(bytes);
  }

  /** Drops the connection without DISCONNECT (a network failure). */
  drop(): void {
    this.end.destroy();
  }

  /** The next received packet of `cmd` (consumed); fails with what was received instead. */
  async next<C extends Packet['cmd']>(cmd: C, rounds = 40): Promise<PacketOf<C>> {
    for (let i = 0; i < rounds; i++) {
      if (this.errors.length > 0) throw new Error(`the server sent an invalid packet: ${this.errors.join('; ')}`);
      const at = this.received.findIndex((p) => p.cmd === cmd);
      if (at >= 0) return this.received.splice(at, 1)[0] as PacketOf<C>;
      await settle(1);
    }
    throw new Error(`no ${cmd}; received ${JSON.stringify(this.received.map((p) => p.cmd))}${this.closed ? ' (closed)' : ''}`);
  }

  /** Everything received so far (consumed). */
  async drain(): Promise<Packet[]> {
    await settle();
    return this.received.splice(0);
  }

  async connect(opts: Partial<IConnectPacket> = {}): Promise<IConnackPacket> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: this.version, clean: true, clientId: `c${Math.random().toString(36).slice(2, 8)}`, keepalive: 0, username: 'dev-1', password: Buffer.from('key-1'), ...opts });
    return this.next('connack');
  }

  publish(topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 0, extra: Partial<IPublishPacket> = {}): number {
    const messageId = this.nextId++;
    this.send({ cmd: 'publish', topic, payload, qos, dup: false, retain: false, ...(qos > 0 ? { messageId } : {}), ...extra });
    return messageId;
  }

  async subscribe(...subscriptions: (string | ISubscription)[]): Promise<ISubackPacket> {
    const messageId = this.nextId++;
    this.send({ cmd: 'subscribe', messageId, subscriptions: subscriptions.map((s) => (typeof s === 'string' ? { topic: s, qos: 1 as const } : s)) });
    return this.next('suback');
  }

  async closedYet(rounds = 40): Promise<boolean> {
    for (let i = 0; i < rounds && !this.closed; i++) await settle(1);
    return this.closed;
  }
}

export const text = (p: IPublishPacket): string => p.payload.toString();

/**
 * A server on a fake clock and a memory platform with:
 *  - devices dev-1 (key-1), dev-2 (key-2), dev-3 (key-3);
 *  - ch-1: dev-1 and dev-2 publish and subscribe; ch-2: dev-1 and dev-2 subscribe, dev-1 publishes;
 *    ch-ro: dev-1 subscribes only; ch-3: dev-2 only.
 */
/** `store` replaces the in-memory session store (e.g. a DurableSessionStore against a real endpoint). */
export function setup(limits: Partial<MqttLimits> = {}, store?: SessionStore) {
  const clock = new FakeClock();
  const platform = new MemoryPlatform(clock).addDevice('dev-1', 'key-1').addDevice('dev-2', 'key-2').addDevice('dev-3', 'key-3');
  platform.addChannel('ch-1', { publish: ['dev-1', 'dev-2'], subscribe: ['dev-1', 'dev-2'] });
  platform.addChannel('ch-2', { publish: ['dev-1'], subscribe: ['dev-1', 'dev-2'] });
  platform.addChannel('ch-ro', { subscribe: ['dev-1'] });
  platform.addChannel('ch-3', { publish: ['dev-2'], subscribe: ['dev-2'] });
  const sessions = new MemorySessionStore(clock);
  const logs: string[] = [];
  const server = createMqttServer({ platform, sessions: store ?? sessions, clock, limits, log: (m) => logs.push(m) });
  const client = (version: Version) => new TestClient(server, version);
  /** A connected client (CONNACK checked). */
  const connected = async (version: Version, opts: Partial<IConnectPacket> = {}) => {
    const c = client(version);
    const ack = await c.connect(opts);
    if ((version === 5 ? ack.reasonCode : ack.returnCode) !== 0) throw new Error(`connect refused: ${JSON.stringify(ack)}`);
    return c;
  };
  return { clock, platform, sessions, server, client, connected, logs };
}

export const VERSIONS: Version[] = [4, 5];
