import type { Clock, Timer } from '../clock';

/** Test time for the MQTT and CoAP front-ends (bridge/clock.ts). */

/** Lets pending promise chains (platform calls, handlers) run to completion. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

interface Entry {
  at: number;
  id: number;
  fn: () => void;
}

/** A clock whose time moves only when a test says so; due timers fire in order, promises settle between. */
export class FakeClock implements Clock {
  private t: number;
  private id = 0;
  private timers: Entry[] = [];

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const e: Entry = { at: this.t + Math.max(0, ms), id: ++this.id, fn };
    this.timers.push(e);
    return { cancel: () => void (this.timers = this.timers.filter((x) => x !== e)) };
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

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
