import { MAX_TIMER_MS, type Clock, type Timer } from '../clock';

/** A connection whose Keep Alive is watched. */
export interface KeptAlive {
  /** When it must have sent something by (clock ms): the last packet + 1.5 × Keep Alive, or its credential's expiry if sooner. */
  readonly keepaliveDeadline: number;
  /** Nothing arrived by the deadline [MQTT-3.1.2-24], or its credential expired: close it. */
  keepaliveExpired(): void;
}

/**
 * Keep Alive of every connection of a server from one timer, not one per connection (an idle
 * connection holds no timer of its own). Deadlines only move later (each packet moves its
 * connection's), so the timer is set for the earliest deadline known at the last sweep; a sweep
 * closes what expired and finds the next. Sweeps are at least `granularityMs` apart, so a deadline
 * may be acted on up to that much late, and a sweep's cost (one look at each watched connection)
 * is paid at most that often.
 */
export class KeepAliveSweep {
  private readonly watched = new Set<KeptAlive>();
  private timer: Timer | null = null;
  /** When the timer fires (Infinity: not set). */
  private at = Infinity;
  private lastSweep = -Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly granularityMs = 1000,
  ) {}

  watch(c: KeptAlive): void {
    this.watched.add(c);
    this.schedule(c.keepaliveDeadline);
  }

  unwatch(c: KeptAlive): void {
    if (!this.watched.delete(c) || this.watched.size > 0) return;
    this.timer?.cancel();
    this.timer = null;
    this.at = Infinity;
  }

  /** Connections watched (tests and stats). */
  get size(): number {
    return this.watched.size;
  }

  private schedule(deadline: number): void {
    const at = Math.max(deadline, this.lastSweep + this.granularityMs);
    if (at >= this.at) return;
    this.timer?.cancel();
    // A deadline past what one timer can wait (an API key expiring in 30 days) is slept towards:
    // the timer fires at most MAX_TIMER_MS on, sweeps (nothing due) and sets the next.
    const now = this.clock.now();
    const delay = Math.min(Math.max(1, at - now), MAX_TIMER_MS);
    this.at = now + delay;
    this.timer = this.clock.setTimer(delay, () => this.sweep());
  }

  private sweep(): void {
    this.timer = null;
    this.at = Infinity;
    const now = this.clock.now();
    this.lastSweep = now;
    let next = Infinity;
    for (const c of this.watched) {
      const deadline = c.keepaliveDeadline;
      if (deadline <= now) {
        this.watched.delete(c);
        c.keepaliveExpired();
      } else if (deadline < next) next = deadline;
    }
    if (next < Infinity) this.schedule(next);
  }
}
