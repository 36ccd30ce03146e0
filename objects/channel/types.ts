import type { Envelope, Protocol } from '../../shared/envelope';
import type { Mqtt5Fields, UserProperties } from '../../shared/link';

/**
 * One message to publish, as the worker, a WebSocket or the bridge hands it to the actor. The MQTT 5
 * fields (format, Response Topic, Correlation Data: shared/link.ts) are kept and handed back, unread.
 */
export interface PublishInput extends Mqtt5Fields {
  subtopic: string;
  publisher: string;
  protocol: Protocol;
  contentType: string;
  payload: Uint8Array;
  retain?: boolean;
  /** MQTT 5 user properties, forwarded to link subscribers. */
  properties?: UserProperties;
  /** MQTT 5 message expiry interval, seconds. */
  expiry?: number;
  /** The QoS an MQTT client published with, when below 2 (absent: 2; shared/link.ts, "Publish QoS"). */
  qos?: 0 | 1;
  /** The publishing MQTT client, for No Local (shared/link.ts, "MQTT 5 No Local"); kept in the log, not in D1 or retained. */
  origin?: string;
}

export type PublishError = { ok: false; status: number; code: string; message: string; retryAfter?: number };
export type PublishResult = { ok: true; seq: number; created: number } | PublishError;

/** A message as the actor keeps it: the envelope plus what only the actor needs. */
export interface ChannelMessage extends Mqtt5Fields {
  envelope: Envelope;
  retain: boolean;
  properties?: UserProperties;
  /** ms since epoch; absent = never expires. */
  expiresAt?: number;
  /** The QoS it was published with, when below 2 (PublishInput.qos). */
  qos?: 0 | 1;
  /** The publishing MQTT client (PublishInput.origin), when its bridge said. */
  origin?: string;
}

/**
 * MQTT 5 No Local [MQTT-3.8.3-3]: whether a subscription whose `noLocal` is this skips the message —
 * the same client (`origin`, shared/link.ts), or, as older bridges ask, the same publisher id.
 */
export const isLocal = (noLocal: string | null | undefined, m: ChannelMessage): boolean =>
  !!noLocal && (noLocal === m.envelope.publisher || (m.origin !== undefined && noLocal === m.origin));

export interface ChannelInfo {
  channel: string | null;
  seq: number;
  outbox: number;
  retained: number;
  oldestKept: number | null;
  subscribers: number;
  links: number;
  drainAttempts: number;
  lastDrainError: string | null;
  /** Times the worker asked this instance to recheck its subscribers after an access change (in memory, since it started). */
  rechecks: number;
}

export const fail = (status: number, code: string, message: string, retryAfter?: number): PublishError =>
  retryAfter === undefined ? { ok: false, status, code, message } : { ok: false, status, code, message, retryAfter };
