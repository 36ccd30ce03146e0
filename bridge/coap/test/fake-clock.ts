import type { Clock, Timer } from '../types';

/** Lets pending promise chains (platform calls, handlers) run to completion. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

interface Entry {
  at: number;
  id: number;
  fn: () => void;
}

/** A clock whose time only moves when a test says so; timers fire in time order. */
export class FakeClock implements Clock {
  private t = 0;
  private id = 0;
  private timers: Entry[] = [];

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const e: Entry = { at: this.t + Math.max(0, ms), id: ++this.id, fn };
    this.timers.push(e);
    return {
      cancel: () => {
        this.timers = this.timers.filter((x) => x !== e);
      },
    };
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing due timers one by one and settling promises between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((e) => e.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
    await settle();
  }
}
