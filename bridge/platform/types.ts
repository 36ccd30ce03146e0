import type { Principal } from '../../shared/principal';
import type { Mqtt5Fields } from '../../shared/link';

/**
 * What a protocol front-end (MQTT, CoAP) needs from the platform. The front-ends know nothing of
 * HTTP, D1 or Durable Objects; `bridge/platform/` implements this against the workers (internal API
 * + channel-actor links), and unit tests may use an in-memory implementation.
 */

export type MessageAction = 'messages:publish' | 'messages:subscribe';

/**
 * Where the worker is: a fixed URL, or a function read at each new connection — `npm start`'s
 * worker moves to a new local port when it reloads (scripts/start.ts tells the bridge).
 */
export type WorkerUrl = string | (() => string);
export const workerUrlNow = (u: WorkerUrl): string => (typeof u === 'string' ? u : u()).replace(/\/$/, '');
export const wsUrl = (u: WorkerUrl): string => workerUrlNow(u).replace(/^http/, 'ws');

export interface Decision {
  channel: string;
  action: MessageAction;
  allowed: boolean;
  /** 200 allowed, 403 not permitted, 404 no such channel (or another org's). */
  status: number;
  reason?: string;
}

/**
 * One message as delivered to a subscriber: the envelope plus whether it is a retained replay, and
 * what its MQTT 5 publisher said beyond it (format bits, Response Topic, Correlation Data: shared/link.ts).
 */
export interface Delivery extends Mqtt5Fields {
  channel: string;
  subtopic: string;
  publisher: string;
  protocol: string;
  contentType: string;
  payload: Uint8Array;
  created: number;
  seq: number;
  retained: boolean;
  /** The publisher set RETAIN (MQTT 5 Retain As Published). */
  retainPublished?: boolean;
  /** MQTT 5 pass-through, when the publisher set them. */
  userProperties?: Record<string, string | string[]>;
  /**
   * When it expires (MQTT 5 Message Expiry), ms on this process's clock. The channel actor sends the
   * lifetime left when it sends the message (not the publisher's interval), so the platform client
   * counts from its arrival here; a front-end sends on what is left then [MQTT-3.3.2-6].
   */
  expiresAt?: number;
  /** The QoS an MQTT client published it with, when below 2 (absent: 2): it goes out at min(this, granted) [MQTT-3.8.4-8]. */
  qos?: 0 | 1;
  /**
   * Given to a shared group spanning bridges (SubscribeRequest.share): call once it is finished
   * (acknowledged by a member, or let go). Until then the channel actor gives it to another bridge
   * if this one's subscription closes or its link drops. Idempotent.
   */
  settle?: () => void;
}

/** `format`, `responseTopic`, `correlation`: what an MQTT 5 publisher said beyond the envelope (shared/link.ts), passed on unaltered. */
export interface PublishRequest extends Mqtt5Fields {
  channel: string;
  subtopic: string;
  publisher: string;
  protocol: 'mqtt' | 'coap';
  contentType: string;
  payload: Uint8Array;
  retain: boolean;
  userProperties?: Record<string, string | string[]>;
  /** Seconds (MQTT 5 message expiry interval). */
  messageExpiry?: number;
  /** The MQTT QoS it was published with (absent: 2, as for CoAP). */
  qos?: 0 | 1 | 2;
  /** The publishing MQTT connection's session key, when it has a No Local subscription (Connection.origin). */
  origin?: string;
}

/** Acknowledged only once the channel actor has the message in its own storage. */
export type PublishOutcome =
  | { ok: true; seq: number; created: number }
  | { ok: false; status: number; code: string; message: string };

export interface SubscribeRequest {
  channel: string;
  /** Subtopic filter with MQTT semantics: '' is the channel root only, '#' every message, `+` one level. */
  filter: string;
  /** Resume after this seq (persistent sessions). */
  since?: number;
  /** MQTT 5 No Local: skip messages published with this origin, the subscribing connection's session key [MQTT-3.8.3-3]. */
  noLocal?: string;
  /**
   * An MQTT shared group spanning bridges, `{ShareName}/{Topic Filter}`: the channel actor gives each
   * message to one bridge's subscription of the group (link v5). Deliveries then carry `settle`; with
   * an older platform they do not, and the subscription gets every message.
   */
  share?: string;
}

export interface Subscription {
  close(): void;
  /** The channel's last seq when the subscription was registered: resuming `since` it misses nothing. */
  seq?: number;
}

export class PlatformError extends Error {
  /**
   * 401 bad credentials, 403 not allowed (both only from the worker's problem JSON: a 401/403 page
   * from something in front of it is a 503), 503 platform unreachable. `paths`: where the worker's
   * validation refused the body (problem JSON `errors[].path`), when it said. `code`: the problem
   * JSON's `code`, when the answer was the worker's problem JSON (not, say, a proxy's HTML page).
   */
  constructor(
    readonly status: number,
    message: string,
    readonly paths?: readonly string[],
    readonly code?: string,
  ) {
    super(message);
    this.name = 'PlatformError';
  }
}

export interface Platform {
  /** Device key, API key or app token; username is the device id when given. Throws PlatformError. */
  authenticate(username: string | undefined, password: string): Promise<Principal>;
  authorize(principal: Principal, checks: { channel: string; action: MessageAction }[]): Promise<Decision[]>;
  /** Channels the principal may use for the action (for `channels/+/messages/…`). */
  channelsFor(principal: Principal, action: MessageAction): Promise<string[]>;
  publish(req: PublishRequest): Promise<PublishOutcome>;
  /** Retained messages matching the filter are delivered first, then live messages in seq order. */
  subscribe(req: SubscribeRequest, onMessage: (d: Delivery) => void): Promise<Subscription>;
  presence(deviceId: string, online: boolean): void;
  /**
   * A number that moves when what the platform knows about this principal's access may have
   * changed (its org's access data was written). A front-end keeping its own copy of a decision
   * asks again when it moves, without waiting out its own bound. Absent: only the bound applies.
   */
  accessVersion?(principal: Principal): number;
  /**
   * Calls `listener` when access in an org changed (undefined: in any org), so sessions that are
   * idle — a subscriber on a quiet channel, an observer — are asked about now rather than at their
   * next packet. Returns the way to stop.
   */
  onAccessChange?(listener: (org: string | undefined) => void): () => void;
  /**
   * Whether the credential behind a principal is still good: null, or why not (a key revoked,
   * rotated or run out; the device deleted). For a session with nothing else to ask about.
   */
  credentialRefusal?(principal: Principal): Promise<string | null>;
  /**
   * What the channel applies to a message published without a content type (its
   * `defaultContentType` limit), so a will without one is checked at CONNECT as it will be stored.
   */
  channelDefaults?(channel: string): Promise<{ defaultContentType: string }>;
}
