/** The CoAP server's limits and tunables, with defaults (docs/coap.md "Limits"). */
import { TRANSMISSION } from '../../shared/coap';

export interface Rate {
  perSecond: number;
  burst: number;
}

export interface CoapLimits {
  /** Largest message payload accepted, whole or reassembled from Block1 (→ 4.13 with Size1). */
  maxPayloadBytes: number;
  /** Largest block we send or ask for: 1024 = SZX 6 (RFC 7252 §4.6: fits an unfragmented 1280-byte IPv6 packet). */
  maxBlockBytes: number;
  /** Observations one device (principal) may hold at once. */
  maxObserversPerDevice: number;
  /** Observations the whole server holds at once. */
  maxObservers: number;
  /** Requests per endpoint and, once authenticated, per principal (→ 4.29 with Max-Age). */
  requestRate: Rate;
  /** Block1 uploads being reassembled at once, server-wide (→ 5.03); one endpoint holds at most UPLOADS_PER_ENDPOINT of them (blockwise.ts). */
  maxPendingUploads: number;
  /** A partial Block1 upload or a Block2 representation is dropped after this long without a block. */
  blockTimeoutMs: number;
  /** A CON request not answered within this gets an empty ACK and a separate response (RFC 7252 §5.2.2). */
  separateResponseAfterMs: number;
  /** How long an `auth` key's principal is reused for the same endpoint. */
  authCacheMs: number;
  /** An observation's permission to subscribe is asked again on the first notification after it is this old. */
  authorizationTtlMs: number;
  /** Every Nth notification is confirmable … */
  observeConEvery: number;
  /** … and so is the first one after this long without one (RFC 7641 §4.5 asks for at least one per 24 h). */
  observeConIntervalMs: number;
  /** An observing endpoint not heard from for this long gets a CoAP ping; unanswered, its observations end. */
  observerPingMs: number;
  /**
   * While a client fetches the later blocks of a notification sent in blocks, newer notifications
   * wait (in the queue) until its last block is served or this long has passed — or, if sooner,
   * until the notification is forgotten after `blockTimeoutMs` without a block.
   */
  observeBlockWaitMs: number;
  /** Notifications held per observer while a confirmable one awaits its ACK or a notification's blocks are fetched (overflow drops the oldest, logged). */
  observeQueue: number;
  /** Max-Age of notifications and of an observation's first response, seconds (RFC 7641 §4.3.1: a silent observation is stale after it). */
  notificationMaxAgeS: number;
  /**
   * Max-Age of a plain GET's answer (the latest retained message, or none yet), seconds. 0: the
   * latest message changes whenever anyone publishes, so a cache (a CoAP proxy, a client that
   * caches) must ask again — with the ETag it holds, answered 2.03 Valid while it is current —
   * rather than serve it for the notifications' hour (RFC 7252 §5.6.1, §5.10.5).
   */
  readMaxAgeS: number;
  /** Max-Age of 5.03 and of a 4.29 from the platform that gave no retry time, seconds. */
  retryAfterS: number;
  /** A device is reported offline after this long without a request and without an observation. */
  presenceIdleMs: number;
  /** Message-ID deduplication entries kept at once (each lives EXCHANGE_LIFETIME; the oldest go first). */
  maxDedupEntries: number;
  /** Lifetime of a deduplication entry (RFC 7252 §4.5 / §4.8.2). */
  exchangeLifetimeMs: number;
}

export const DEFAULT_LIMITS: CoapLimits = {
  maxPayloadBytes: 64 * 1024,
  maxBlockBytes: 1024,
  maxObserversPerDevice: 16,
  maxObservers: 100_000,
  requestRate: { perSecond: 50, burst: 100 },
  maxPendingUploads: 1000,
  blockTimeoutMs: 60_000,
  separateResponseAfterMs: 1000,
  authCacheMs: 10_000,
  authorizationTtlMs: 5000,
  observeConEvery: 20,
  observeConIntervalMs: 120_000,
  observerPingMs: 300_000,
  observeBlockWaitMs: 5000,
  observeQueue: 64,
  notificationMaxAgeS: 3600,
  readMaxAgeS: 0,
  retryAfterS: 5,
  presenceIdleMs: 300_000,
  maxDedupEntries: 200_000,
  exchangeLifetimeMs: TRANSMISSION.EXCHANGE_LIFETIME,
};

export const resolveLimits = (l: Partial<CoapLimits> = {}): CoapLimits => ({ ...DEFAULT_LIMITS, ...l });

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets by key; idle buckets are forgotten once full again. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly rate: Rate, private readonly now: () => number) {}

  /** 0 when allowed (a token is taken), else the seconds until one is available (≥ 1). */
  take(key: string): number {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.rate.burst, at: t };
    b.tokens = Math.min(this.rate.burst, b.tokens + ((t - b.at) / 1000) * this.rate.perSecond);
    b.at = t;
    this.buckets.delete(key); // re-insert: the Map stays in last-use order for the sweep below
    this.buckets.set(key, b);
    if (this.buckets.size > 10_000) this.sweep(t);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate.perSecond));
  }

  private sweep(t: number): void {
    const full = (this.rate.burst / this.rate.perSecond) * 1000;
    for (const [k, b] of this.buckets) {
      if (t - b.at < full) break;
      this.buckets.delete(k);
    }
  }
}
