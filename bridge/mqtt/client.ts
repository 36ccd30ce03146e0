import type { Duplex } from 'node:stream';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt-packet';
import type { Principal } from '../../shared/principal';
import type { Delivery, Platform, Subscription } from '../platform/types';
import { RC } from './codes';
import type { MqttLimits } from './limits';
import { topicOf } from './topics';

export type Version = 3 | 4 | 5;

export interface Will {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties?: IPublishPacket['properties'];
  delay: number;
}

/** One local subscription (an MQTT filter) and the platform subscriptions serving it. */
export interface LocalSub {
  topicFilter: string;
  qos: 0 | 1 | 2;
  noLocal: boolean;
  handles: Subscription[];
  share?: string;
}

interface Outbound {
  packet: IPublishPacket;
  /** QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP. */
  released: boolean;
}

export interface ServerContext {
  platform: Platform;
  limits: MqttLimits;
  log: (msg: string) => void;
  /** Local clients by client id, for session takeover [MQTT-3.1.4-3]. */
  clients: Map<string, Client>;
  /** Open connections per device id (limit). */
  perDevice: Map<string, number>;
  /** Shared subscription groups: `${group}\u0000${filter}` → round-robin state. */
  shares: Map<string, { members: Client[]; next: number; handles: Subscription[]; qos: Map<Client, 0 | 1 | 2> }>;
}

/**
 * One MQTT connection: the parsed byte stream, what CONNECT established, and the per-client
 * state the packet handlers (handlers/*.ts) read and change.
 */
export class Client {
  readonly parser = mqtt.parser();
  version: Version = 4;
  id = '';
  principal: Principal | null = null;
  connected = false;
  closed = false;
  keepalive = 0;
  will: Will | null = null;
  readonly subs = new Map<string, LocalSub>();
  /** Inbound QoS 2 packet ids: PUBREC sent, PUBREL not yet received (dedup) [MQTT-4.3.3-2]. */
  readonly qos2In = new Set<number>();
  /** Client → server topic aliases (v5) [MQTT-3.3.2-12]. */
  readonly aliases = new Map<number, string>();
  readonly outbound = new Map<number, Outbound>();
  /** v5 Receive Maximum of the client and Maximum Packet Size it accepts. */
  receiveMaximum = 65_535;
  maxPacketSize = Infinity;
  private nextPacketId = 1;
  private keepaliveTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null;
  /** Deliveries waiting for room in the client's receive window. */
  private readonly waiting: IPublishPacket[] = [];
  /** Publish rate limiting (token bucket per connection; the platform limits per device too). */
  private tokens: number;
  private refilled = Date.now();

  constructor(
    readonly stream: Duplex,
    readonly ctx: ServerContext,
  ) {
    this.tokens = ctx.limits.publishBurst;
    // [MQTT-3.1.4] a connection that sends no CONNECT in time is closed.
    this.connectTimer = setTimeout(() => this.destroy('no CONNECT in time'), ctx.limits.connectTimeoutMs);
  }

  get deviceId(): string | null {
    return this.principal?.kind === 'device' ? this.principal.id : null;
  }

  get publisherId(): string {
    return this.principal?.id ?? this.id;
  }

  send(packet: Packet): void {
    if (this.closed) return;
    const bytes = mqtt.generate(packet, { protocolVersion: this.version });
    // [MQTT-3.1.2-24] (v5) never send a packet larger than the client's Maximum Packet Size.
    if (bytes.length > this.maxPacketSize) {
      this.ctx.log(`client ${this.id}: dropped a ${packet.cmd} of ${bytes.length} bytes (client maximum ${this.maxPacketSize})`);
      return;
    }
    this.stream.write(bytes);
  }

  connectedNow(keepalive: number): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.connected = true;
    this.keepalive = keepalive;
    this.touch();
  }

  /** Any packet from the client restarts the keepalive clock: 1.5 × Keep Alive [MQTT-3.1.2-24]. */
  touch(): void {
    if (!this.keepalive || this.closed) return;
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = setTimeout(() => this.disconnect(RC.KeepAliveTimeout, 'keep alive timeout', false), this.keepalive * 1500);
  }

  takeToken(): boolean {
    const now = Date.now();
    const { publishRate, publishBurst } = this.ctx.limits;
    this.tokens = Math.min(publishBurst, this.tokens + ((now - this.refilled) / 1000) * publishRate);
    this.refilled = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Sends a message of a subscription to this client at `qos`, honouring its receive window. */
  deliver(d: Delivery, qos: 0 | 1 | 2): void {
    if (this.closed) return;
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: topicOf(d.channel, d.subtopic),
      payload: Buffer.from(d.payload.buffer, d.payload.byteOffset, d.payload.byteLength),
      qos,
      dup: false,
      // Retained messages replayed on subscribe carry RETAIN=1; live ones 0 [MQTT-3.3.1-8/9].
      retain: d.retained,
    };
    if (this.version === 5) {
      const properties: NonNullable<IPublishPacket['properties']> = { contentType: d.contentType };
      if (d.userProperties) properties.userProperties = d.userProperties;
      if (d.messageExpiry !== undefined) properties.messageExpiryInterval = d.messageExpiry;
      packet.properties = properties;
    }
    if (qos === 0) return this.send(packet);
    if (this.outbound.size >= Math.min(this.receiveMaximum, this.ctx.limits.maxInflight)) {
      if (this.waiting.length >= this.ctx.limits.maxQueued) return this.disconnect(RC.QuotaExceeded, 'too many undelivered messages', false);
      this.waiting.push(packet);
      return;
    }
    this.sendInflight(packet);
  }

  private sendInflight(packet: IPublishPacket): void {
    let id = this.nextPacketId;
    while (this.outbound.has(id)) id = (id % 65_535) + 1;
    this.nextPacketId = (id % 65_535) + 1;
    packet.messageId = id;
    this.outbound.set(id, { packet, released: false });
    this.send(packet);
  }

  /** PUBACK / PUBCOMP: the packet id is free again; send what waited for room. */
  acknowledged(id: number): void {
    if (!this.outbound.delete(id)) return;
    const next = this.waiting.shift();
    if (next) this.sendInflight(next);
  }

  outboundReleased(id: number): boolean {
    const o = this.outbound.get(id);
    if (!o) return false;
    o.released = true;
    return true;
  }

  /** Server-initiated end: v5 gets a DISCONNECT with a reason; the will goes out unless `graceful`. */
  disconnect(reasonCode: number, reason: string, graceful: boolean): void {
    if (this.closed) return;
    if (this.version === 5 && this.connected) this.send({ cmd: 'disconnect', reasonCode, properties: { reasonString: reason } });
    this.ctx.log(`client ${this.id || '(connecting)'}: closing: ${reason}`);
    this.end(graceful);
  }

  destroy(reason: string): void {
    this.ctx.log(`client ${this.id || '(connecting)'}: ${reason}`);
    this.end(false);
  }

  private readonly endHooks: ((graceful: boolean) => void)[] = [];
  onEnd(hook: (graceful: boolean) => void): void {
    this.endHooks.push(hook);
  }

  /** Closes the stream once; hooks (will, subscriptions, presence) run exactly once. */
  end(graceful: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    for (const hook of this.endHooks) hook(graceful);
    this.stream.end();
    this.stream.destroy();
  }
}
