import type { Clock, Timer } from '../clock';

/** A connection whose Keep Alive is watched. */
export interface KeptAlive {
  /** When it must have sent something by (clock ms): the last packet + 1.5 × Keep Alive. */
  readonly keepaliveDeadline: number;
  /** Nothing arrived by the deadline [MQTT-3.1.2-24]: close it. */
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
    this.at = at;
    this.timer = this.clock.setTimer(Math.max(1, at - this.clock.now()), () => this.sweep());
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
