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

/** A will not yet published, by session key: waiting for its delay, being published, or waiting to be tried again. */
interface PendingWill {
  principal: Principal;
  will: Will;
  /** Attempts made so far (a retry after a 503 is attempt 1…WILL_RETRIES). */
  attempt: number;
  /** The delay or the next retry; null while an attempt is on its way. */
  timer: Timer | null;
}

/**
 * Publishing wills [MQTT-3.1.2-8]: at once, or after the v5 Will Delay Interval (or when the
 * session ends, if sooner). A new connection to the same session within the delay cancels it
 * [MQTT-3.1.3-9]; a new connection with Clean Start ends the session, so the will goes at once.
 * A will waiting to be tried again (503) is the session's too: a reconnect cancels it the same way
 * (else a client back within the second would see its old will published after its new messages).
 * Delayed wills live in this process: a bridge that stops drops them — except those of connections
 * still open then, which the server leaves to the session actors (`willToStore`, docs/mqtt.md).
 */
export class Wills {
  private readonly pending = new Map<string, PendingWill>();
  private readonly publishing = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly platform: Platform,
    private readonly clock: Clock,
    private readonly log: (msg: string) => void,
  ) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * `key` is the session key; `delaySeconds` is already min(will delay, session expiry). `retry`
   * false: sent once, now — a takeover's will, whose retry would follow the new connection's messages.
   */
  schedule(key: string, principal: Principal, will: Will, delaySeconds: number, retry = true): void {
    this.cancel(key, 'a later connection of the session left its own');
    const p: PendingWill = { principal, will, attempt: 0, timer: null };
    if (!retry) return this.publish(null, p);
    this.pending.set(key, p);
    if (delaySeconds <= 0) return this.publish(key, p);
    p.timer = this.clock.setTimer(delaySeconds * 1000, () => this.publish(key, p));
  }

  /**
   * The session was claimed by a new connection: a will not yet sent (delayed, or waiting to be
   * tried again) is cancelled, or with Clean Start (the session ends) sent now, once: it must not
   * follow what the new connection publishes.
   */
  claimed(key: string, clean: boolean): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    p.timer?.cancel();
    // An attempt on its way finishes; it is not tried again.
    if (p.timer === null) return;
    p.timer = null;
    if (clean) return this.publish(null, p);
    if (p.attempt > 0) this.log(`will of ${p.principal.id} not tried again: its session was resumed`);
  }

  /** A will of this session key is not published yet (delayed, on its way, or to be tried again). */
  has(key: string): boolean {
    return this.pending.has(key);
  }

  cancel(key: string, why = 'cancelled'): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    p.timer?.cancel();
    if (p.attempt > 0 || p.timer === null) this.log(`earlier will of ${p.principal.id} not tried again: ${why}`);
  }

  /**
   * Authorized again at publish time: the device may have lost the right since it connected. `key`
   * null: a last attempt that is not tried again.
   */
  private publish(key: string | null, p: PendingWill): void {
    p.timer = null;
    const { principal, will } = p;
    const req: PublishRequest = { ...will.request, publisher: principal.id };
    const work = (async () => {
      try {
        const [d] = await this.platform.authorize(principal, [{ channel: req.channel, action: 'messages:publish' }]);
        if (!d?.allowed) return this.log(`will of ${principal.id} not published: not allowed on channel ${req.channel}`);
        const o = await this.platform.publish(req);
        if (!o.ok && !(o.status === 503 && this.retry(key, p, `${o.status} ${o.message}`))) this.log(`will of ${principal.id} not stored: ${o.status} ${o.message}`);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        const unavailable = !(e instanceof PlatformError) || e.status === 503;
        if (!(unavailable && this.retry(key, p, why))) this.log(`will of ${principal.id} not published: ${why}`);
      } finally {
        // Done (published, refused or given up) unless a retry now waits.
        if (key !== null && p.timer === null && this.pending.get(key) === p) this.pending.delete(key);
      }
    })();
    this.publishing.add(work);
    void work.finally(() => this.publishing.delete(work));
  }

  /** Schedules the next attempt; false when the attempts are used up, or the will is no longer the session's to send. */
  private retry(key: string | null, p: PendingWill, why: string): boolean {
    if (key === null || this.pending.get(key) !== p || p.attempt >= WILL_RETRIES || this.closed) return false;
    const ms = WILL_RETRY_MS * 2 ** p.attempt;
    p.attempt++;
    this.log(`will of ${p.principal.id} not published yet (${why}): trying again in ${ms / 1000} s`);
    p.timer = this.clock.setTimer(ms, () => this.publish(key, p));
    return true;
  }

  /** Server shutdown: delayed wills and retries are dropped first (their clients are expected back), then the ones on their way awaited. */
  async close(): Promise<void> {
    this.closed = true;
    let retries = 0;
    for (const p of this.pending.values()) {
      if (p.attempt > 0 && p.timer) retries++;
      p.timer?.cancel();
    }
    this.pending.clear();
    if (retries > 0) this.log(`${retries} will(s) waiting to be tried again dropped at shutdown`);
    await Promise.allSettled([...this.publishing]);
  }
}
