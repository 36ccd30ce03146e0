/** Limits of the MQTT front-end; exceeding one gets the protocol's reason code, never a crash. */
export interface MqttLimits {
  /** Largest packet accepted (and advertised in a v5 CONNACK as Maximum Packet Size). */
  maxPacketSize: number;
  /** Outbound QoS 1/2 messages in flight per client (also capped by the client's Receive Maximum). */
  maxInflight: number;
  /** Inbound QoS 1/2 publishes not yet acknowledged (advertised as Receive Maximum). */
  receiveMaximum: number;
  /** Deliveries queued behind a full in-flight window before the client is dropped. */
  maxQueued: number;
  /** Subscriptions (filters) per client. */
  maxSubscriptions: number;
  /** Simultaneous connections per device. */
  maxConnectionsPerDevice: number;
  /** Publishes per second per connection, with a burst. */
  publishRate: number;
  publishBurst: number;
  connectTimeoutMs: number;
  /** Highest keep alive granted; a v5 client asking for more is told Server Keep Alive. */
  maxKeepalive: number;
  /** v5 Topic Alias Maximum advertised. */
  topicAliasMaximum: number;
}

export const DEFAULT_LIMITS: MqttLimits = {
  maxPacketSize: 256 * 1024 + 1024,
  maxInflight: 100,
  receiveMaximum: 100,
  maxQueued: 10_000,
  maxSubscriptions: 100,
  maxConnectionsPerDevice: 10,
  publishRate: 100,
  publishBurst: 200,
  connectTimeoutMs: 10_000,
  maxKeepalive: 3600,
  topicAliasMaximum: 64,
};
