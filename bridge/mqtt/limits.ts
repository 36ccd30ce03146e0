import type { Clock } from '../clock';

/** Limits of the MQTT front-end (docs/mqtt.md "Limits"); exceeding one gets a reason code, never a crash. */
export interface MqttLimits {
  /** Largest packet accepted, in bytes (advertised in a v5 CONNACK as Maximum Packet Size). */
  maxPacketSize: number;
  /** Outbound QoS 1/2 PUBLISHes in flight per client (further capped by the client's v5 Receive Maximum). */
  maxInflight: number;
  /** Deliveries queued behind a full in-flight window; beyond, the client is disconnected (v5 0x97). */
  maxQueued: number;
  /**
   * Inbound QoS 1/2 PUBLISHes not yet acknowledged (advertised in a v5 CONNACK as Receive Maximum).
   * As many as maxUnstoredPublishes by default: the bridge acknowledges only once the channel has
   * stored a message (not on receipt, as Mosquitto does), so a burst stays unacknowledged for a few
   * ms — and MQTT.js 5 does not keep to the server's Receive Maximum: at 64, a `Promise.all` of 100
   * QoS 1 publishes was disconnected (0x93). What the connection holds is bounded by the reader's
   * back-pressure either way.
   */
  receiveMaximum: number;
  /** Subscriptions (topic filters) per client. */
  maxSubscriptions: number;
  /** Channels one wildcard filter (`channels/+/…`, `#`) may span: each is a platform subscription. */
  maxChannelsPerFilter: number;
  /** Simultaneous connections per device on this bridge. */
  maxConnectionsPerDevice: number;
  /**
   * Publishes per second per device on this bridge (token bucket shared by the device's
   * connections, whatever the channels), and the burst: a guard of the bridge, not the channel's
   * limit. The channel's own `publisherRate` (100/s by default, raised per channel) is what governs a
   * device, so this is set above what a channel admits by default (its whole `channelRate`): at 100/s
   * it cut off devices on channels whose owner had raised their rates.
   */
  publishRate: number;
  publishBurst: number;
  /** Time allowed between the first byte and a successful CONNACK. */
  connectTimeoutMs: number;
  /** Highest Keep Alive (s); a v5 client asking for more, or for none, is told Server Keep Alive. */
  maxKeepalive: number;
  /** v5 Topic Alias Maximum advertised (client → server aliases). */
  topicAliasMaximum: number;
  /** Highest QoS granted (SUBACK) and accepted (v5 CONNACK Maximum QoS). */
  maxQos: 0 | 1 | 2;
  /** Longest session kept after a disconnect (s): caps v5 Session Expiry; the expiry of 3.1.1 persistent sessions. */
  maxSessionExpiry: number;
  /** A persistent session's cursors are written to the session store at most this often. */
  sessionCheckpointMs: number;
  /**
   * Publish decisions are reused by a connection for this long, and a live subscription's
   * permission is asked again once it is this old (on its next delivery): the bound on how long a
   * removed connection, revoked key or changed policy keeps working (the platform client caches
   * for 5 s as well, docs/bridge.md).
   */
  authorizationTtlMs: number;
  /** Longest client identifier accepted. */
  maxClientIdLength: number;
  /** Packets parsed but not yet handled before the socket is paused (back-pressure on a flooding client). */
  maxPendingPackets: number;
  /** Bytes buffered for a slow reader beyond which QoS 0 deliveries to it are dropped. */
  maxWriteBuffer: number;
  /**
   * Inbound PUBLISHes of any QoS issued to the platform and not yet stored, per connection; at
   * this many the connection reads no further packet until the oldest is stored (TCP back-pressure,
   * so a fast QoS 0 publisher is slowed to what the channel can store instead of being dropped).
   */
  maxUnstoredPublishes: number;
  /**
   * Largest WebSocket message taken (MQTT over WebSocket). `ws` reads a message whole before the
   * packet reader sees a byte of it, so this, not `maxPacketSize`, bounds what one message costs the
   * bridge — before CONNECT too. Room for several packets: browsers' MQTT.js joins queued writes.
   */
  maxWebSocketMessage: number;
}

export const DEFAULT_LIMITS: MqttLimits = {
  maxPacketSize: 256 * 1024 + 16 * 1024,
  maxInflight: 64,
  maxQueued: 1000,
  receiveMaximum: 1000,
  maxSubscriptions: 100,
  maxChannelsPerFilter: 1000,
  maxConnectionsPerDevice: 10,
  publishRate: 1000,
  publishBurst: 2000,
  connectTimeoutMs: 10_000,
  maxKeepalive: 3600,
  topicAliasMaximum: 64,
  maxQos: 2,
  maxSessionExpiry: 7 * 24 * 3600,
  sessionCheckpointMs: 1000,
  authorizationTtlMs: 5_000,
  maxClientIdLength: 256,
  maxPendingPackets: 1000,
  maxWriteBuffer: 4 * 1024 * 1024,
  maxUnstoredPublishes: 1000,
  maxWebSocketMessage: 8 * 1024 * 1024,
};

/**
 * Refuses, at start-up, limits that would not bound what they say. `ws` takes its maxPayload as
 * `value | 0` and reads 0 or less as no limit: 0, a negative number or 2^31 and more would turn the
 * WebSocket bound off (back to any size, before CONNECT too), and a fraction would be cut.
 */
export function checkLimits(limits: MqttLimits): void {
  const { maxWebSocketMessage: ws, maxPacketSize } = limits;
  if (!Number.isInteger(ws) || ws < 1 || ws > 2 ** 31 - 1) throw new Error(`MQTT limit maxWebSocketMessage must be a whole number of bytes from 1 to 2147483647, got ${ws}`);
  // A client sends a packet in one message at least (MQTT.js does): a smaller bound would close
  // the socket (1009) on a packet maxPacketSize allows.
  if (ws < maxPacketSize) throw new Error(`MQTT limit maxWebSocketMessage (${ws}) must be at least maxPacketSize (${maxPacketSize})`);
}

/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.at = clock.now();
  }

  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
