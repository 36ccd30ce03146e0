import type { Principal } from '../../shared/principal';
import { PlatformError, type Platform, type PublishRequest } from '../platform/types';
import type { Clock, Timer } from '../clock';

/** A will as accepted at CONNECT: already parsed and authorized. */
export interface Will {
  request: Omit<PublishRequest, 'publisher'>;
  /** v5 Will Delay Interval, seconds [MQTT-3.1.3-9]. */
  delay: number;
}

/**
 * A will the platform could not take for now (503: unreachable, the channel's link lost, busy) is
 * tried again, at most this many times, after 1, 2, 4, 8, 16 s: there is no client to resend it.
 */
const WILL_RETRIES = 5;
const WILL_RETRY_MS = 1000;

/**
 * Publishing wills [MQTT-3.1.2-8]: at once, or after the v5 Will Delay Interval (or when the
 * session ends, if sooner). A new connection to the same session within the delay cancels it
 * [MQTT-3.1.3-9]; a new connection with Clean Start ends the session, so the will goes at once.
 * Delayed wills live in this process: a bridge that stops drops them (docs/mqtt.md).
 */
export class Wills {
  private readonly pending = new Map<string, { timer: Timer; fire: () => void }>();
  private readonly publishing = new Set<Promise<void>>();
  private readonly retrying = new Set<Timer>();
  private closed = false;

  constructor(
    private readonly platform: Platform,
    private readonly clock: Clock,
    private readonly log: (msg: string) => void,
  ) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /** `key` is the session key; `delaySeconds` is already min(will delay, session expiry). */
  schedule(key: string, principal: Principal, will: Will, delaySeconds: number): void {
    this.cancel(key);
    const fire = () => {
      this.pending.delete(key);
      this.publish(principal, will);
    };
    if (delaySeconds <= 0) return fire();
    this.pending.set(key, { timer: this.clock.setTimer(delaySeconds * 1000, fire), fire });
  }

  /** The session was claimed by a new connection. */
  claimed(key: string, clean: boolean): void {
    const p = this.pending.get(key);
    if (!p) return;
    p.timer.cancel();
    if (clean) p.fire();
    else this.pending.delete(key);
  }

  /** A delayed will is waiting for this session key. */
  has(key: string): boolean {
    return this.pending.has(key);
  }

  cancel(key: string): void {
    this.pending.get(key)?.timer.cancel();
    this.pending.delete(key);
  }

  /** Authorized again at publish time: the device may have lost the right since it connected. */
  private publish(principal: Principal, will: Will, attempt = 0): void {
    const req: PublishRequest = { ...will.request, publisher: principal.id };
    const work = (async () => {
      try {
        const [d] = await this.platform.authorize(principal, [{ channel: req.channel, action: 'messages:publish' }]);
        if (!d?.allowed) return this.log(`will of ${principal.id} not published: not allowed on channel ${req.channel}`);
        const o = await this.platform.publish(req);
        if (!o.ok && !(o.status === 503 && this.retry(principal, will, attempt, `${o.status} ${o.message}`))) this.log(`will of ${principal.id} not stored: ${o.status} ${o.message}`);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        const unavailable = !(e instanceof PlatformError) || e.status === 503;
        if (!(unavailable && this.retry(principal, will, attempt, why))) this.log(`will of ${principal.id} not published: ${why}`);
      }
    })();
    this.publishing.add(work);
    void work.finally(() => this.publishing.delete(work));
  }

  /** Schedules the next attempt; false when the attempts are used up. */
  private retry(principal: Principal, will: Will, attempt: number, why: string): boolean {
    if (attempt >= WILL_RETRIES || this.closed) return false;
    const ms = WILL_RETRY_MS * 2 ** attempt;
    this.log(`will of ${principal.id} not published yet (${why}): trying again in ${ms / 1000} s`);
    const timer = this.clock.setTimer(ms, () => {
      this.retrying.delete(timer);
      this.publish(principal, will, attempt + 1);
    });
    this.retrying.add(timer);
    return true;
  }

  /** Server shutdown: delayed wills and retries are dropped (their clients are expected back), sent ones awaited. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) p.timer.cancel();
    this.pending.clear();
    await Promise.allSettled([...this.publishing]);
    for (const t of this.retrying) t.cancel();
    if (this.retrying.size > 0) this.log(`${this.retrying.size} will(s) waiting to be tried again dropped at shutdown`);
    this.retrying.clear();
  }
}
