import { LINK_LIMITS } from '../../shared/link';
/**
 * Per-channel limits. Defaults below; a channel may override any of them with the actor's
 * `configure()` RPC (stored in the actor's SQLite, so an override survives eviction).
 * docs/channel-actor.md explains each number.
 */
export interface Rate {
  /** Tokens added per second. */
  perSecond: number;
  /** Bucket size: the largest burst accepted at once. */
  burst: number;
}

export interface Window {
  bytes: number;
  messages: number;
}

export interface ChannelConfig {
  /** Largest payload accepted (→ 413). */
  maxPayloadBytes: number;
  /** Messages kept for `since` replay. */
  recentWindow: number;
  /** Most bytes one replay sends; older messages become a gap notice. */
  replayMaxBytes: number;
  channelRate: Rate;
  publisherRate: Rate;
  /** Unacknowledged live deliveries a flow-controlled WebSocket subscriber may have. */
  subscriberWindow: Window;
  /** The same for a bridge link (always flow-controlled). */
  linkWindow: Window;
  maxLinkSubscriptions: number;
  /** Outbox rows per drain: each drain is one D1 batch request, a fixed cost worth spreading over many rows. */
  drainBatch: number;
  /** Delay between the first undrained publish and the drain, so bursts are drained together (sooner once DRAIN_EARLY_ROWS or a full batch wait). */
  drainDelayMs: number;
  /**
   * The content type of a message published without one (MQTT 3.1.1, MQTT 5 without Content
   * Type, CoAP without Content-Format, HTTP without Content-Type). `application/senml+json` makes
   * a plain `mosquitto_pub -m '[{"n":"temp","v":21}]'` a validated, queryable SenML message.
   */
  defaultContentType: string;
  /**
   * How long stored messages are kept, in days (fractions allowed, at least an hour); 0 keeps them
   * forever. Older messages leave D1, R2 and the actor's own log (retention.ts); retained messages stay.
   */
  retentionDays: number;
}

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Hard ceilings: DO SQLite and D1 cap a value at 2 MB, and a WebSocket message at 1 MiB inbound. */
export const MAX_PAYLOAD_CEILING = 1 * MiB;
/** Messages stored in one transaction (one publish call, one link frame's run of publishes). */
export const MAX_BATCH = LINK_LIMITS.publishesPerFrame;
/**
 * A drain holds the actor for time that grows with its rows (reading them and building the
 * batch; locally D1 also runs on workerd's one JS thread: ~25–40 ms per 1000 rows in all), and
 * every message arriving meanwhile waits. So once this many rows wait, a drain starts at most
 * DRAIN_EARLY_GAP_MS after the previous one began, instead of `drainDelayMs` after the first
 * row: at 1000 msgs/s twenty short drains a second rather than one long one (50-row drains kept
 * the paced bench's p99 under 10 ms where 100-row ones did not always). A quiet channel still
 * drains once per `drainDelayMs`; a busy one drains a full `drainBatch` as soon as it waits.
 */
export const DRAIN_EARLY_ROWS = 50;
/**
 * Drains run on an in-memory timer, not an alarm each: an alarm is a durable write (an `fsync`
 * locally) when set and an event when it fires, and with a drain per message on a quiet channel
 * that was a large share of its cost (300 quiet channels: 1,120–1,150 → 1,380 msgs/s without it).
 * The alarm stays as the backstop, set only when none is: this long after the drain it covers, so a
 * drain still happens if this instance is gone before its timer fires (ms).
 */
export const DRAIN_BACKSTOP_MS = 10_000;
/**
 * How long a drain's new drained mark may stay unwritten waiting for the next append to carry it
 * (ChannelStore.drainedUnsaved): a quiet channel otherwise paid a commit (an `fsync` locally) per
 * drain for it alone (300 quiet channels, interleaved: 1,418–1,437 → 1,485–1,502 msgs/s).
 */
export const DRAINED_SAVE_MS = 2000;
/** The shortest time between the starts of two drains of less than a full batch (ms). */
export const DRAIN_EARLY_GAP_MS = 50;

export const DEFAULT_CONFIG: ChannelConfig = {
  maxPayloadBytes: 256 * KiB,
  recentWindow: 1000,
  replayMaxBytes: 8 * MiB,
  channelRate: { perSecond: 1000, burst: 2000 },
  publisherRate: { perSecond: 100, burst: 200 },
  subscriberWindow: { bytes: 4 * MiB, messages: 5000 },
  linkWindow: { bytes: 32 * MiB, messages: 50_000 },
  maxLinkSubscriptions: 10_000,
  drainBatch: 5000,
  drainDelayMs: 1000,
  defaultContentType: 'application/octet-stream',
  retentionDays: 0,
};

/** The shortest retention other than 0 (keep forever): an hour, in days. */
export const MIN_RETENTION_DAYS = 1 / 24;
/** The longest: a hundred years. */
export const MAX_RETENTION_DAYS = 36_500;

/** type "/" subtype [; parameters] (RFC 9110 §8.3.1), at most 255 characters. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$/;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function num(v: unknown, path: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new ConfigError(`${path} must be a number between ${min} and ${max}`);
  return v;
}

function int(v: unknown, path: string, min: number, max: number, fallback: number): number {
  const n = num(v, path, min, max, fallback);
  if (!Number.isInteger(n)) throw new ConfigError(`${path} must be an integer`);
  return n;
}

function sub(v: unknown, path: string): Obj {
  if (v === undefined) return {};
  if (!isObj(v)) throw new ConfigError(`${path} must be an object`);
  return v;
}

const rate = (v: unknown, path: string, base: Rate): Rate => {
  const o = sub(v, path);
  return { perSecond: num(o.perSecond, `${path}.perSecond`, 0.001, 1e6, base.perSecond), burst: int(o.burst, `${path}.burst`, 1, 1e7, base.burst) };
};

const window = (v: unknown, path: string, base: Window): Window => {
  const o = sub(v, path);
  return { bytes: int(o.bytes, `${path}.bytes`, 1, 1024 * MiB, base.bytes), messages: int(o.messages, `${path}.messages`, 1, 1e7, base.messages) };
};

function mediaType(v: unknown, path: string, fallback: string): string {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || v.length > 255 || !MEDIA_TYPE.test(v)) throw new ConfigError(`${path} must be a media type such as application/senml+json (at most 255 characters)`);
  return v;
}

function retention(v: unknown, fallback: number): number {
  const days = num(v, 'retentionDays', 0, MAX_RETENTION_DAYS, fallback);
  if (days !== 0 && days < MIN_RETENTION_DAYS) throw new ConfigError('retentionDays must be 0 (keep every message) or at least an hour (1/24 ≈ 0.0417)');
  return days;
}

/** `base` with the (untrusted) fields of `patch` applied; unknown fields are refused so typos show. */
export function mergeConfig(base: ChannelConfig, patch: unknown): ChannelConfig {
  const p = sub(patch, 'config');
  const known = new Set(Object.keys(DEFAULT_CONFIG));
  for (const k of Object.keys(p)) if (!known.has(k)) throw new ConfigError(`unknown setting ${k}`);
  return {
    maxPayloadBytes: int(p.maxPayloadBytes, 'maxPayloadBytes', 0, MAX_PAYLOAD_CEILING, base.maxPayloadBytes),
    recentWindow: int(p.recentWindow, 'recentWindow', 0, 1e6, base.recentWindow),
    replayMaxBytes: int(p.replayMaxBytes, 'replayMaxBytes', 0, 256 * MiB, base.replayMaxBytes),
    channelRate: rate(p.channelRate, 'channelRate', base.channelRate),
    publisherRate: rate(p.publisherRate, 'publisherRate', base.publisherRate),
    subscriberWindow: window(p.subscriberWindow, 'subscriberWindow', base.subscriberWindow),
    linkWindow: window(p.linkWindow, 'linkWindow', base.linkWindow),
    maxLinkSubscriptions: int(p.maxLinkSubscriptions, 'maxLinkSubscriptions', 1, 1e6, base.maxLinkSubscriptions),
    drainBatch: int(p.drainBatch, 'drainBatch', 1, 10_000, base.drainBatch),
    drainDelayMs: int(p.drainDelayMs, 'drainDelayMs', 0, 3_600_000, base.drainDelayMs),
    defaultContentType: mediaType(p.defaultContentType, 'defaultContentType', base.defaultContentType),
    retentionDays: retention(p.retentionDays, base.retentionDays),
  };
}
