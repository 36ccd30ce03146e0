import type { Principal } from '../../shared/principal';
import type { Platform, PublishRequest } from '../platform/types';
import type { Clock, Timer } from '../clock';

/** A will as accepted at CONNECT: already parsed and authorized. */
export interface Will {
  request: Omit<PublishRequest, 'publisher'>;
  /** v5 Will Delay Interval, seconds [MQTT-3.1.3-9]. */
  delay: number;
}

/**
 * Publishing wills [MQTT-3.1.2-8]: at once, or after the v5 Will Delay Interval (or when the
 * session ends, if sooner). A new connection to the same session within the delay cancels it
 * [MQTT-3.1.3-9]; a new connection with Clean Start ends the session, so the will goes at once.
 * Delayed wills live in this process: a bridge that stops drops them (docs/mqtt.md).
 */
export class Wills {
  private readonly pending = new Map<string, { timer: Timer; fire: () => void }>();
  private readonly publishing = new Set<Promise<void>>();

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
  private publish(principal: Principal, will: Will): void {
    const req: PublishRequest = { ...will.request, publisher: principal.id };
    const work = (async () => {
      try {
        const [d] = await this.platform.authorize(principal, [{ channel: req.channel, action: 'messages:publish' }]);
        if (!d?.allowed) return this.log(`will of ${principal.id} not published: not allowed on channel ${req.channel}`);
        const o = await this.platform.publish(req);
        if (!o.ok) this.log(`will of ${principal.id} not stored: ${o.status} ${o.message}`);
      } catch (e) {
        this.log(`will of ${principal.id} not published: ${e instanceof Error ? e.message : String(e)}`);
      }
    })();
    this.publishing.add(work);
    void work.finally(() => this.publishing.delete(work));
  }

  /** Server shutdown: delayed wills are dropped (their clients are expected back), sent ones awaited. */
  async close(): Promise<void> {
    for (const p of this.pending.values()) p.timer.cancel();
    this.pending.clear();
    await Promise.allSettled([...this.publishing]);
  }
}
