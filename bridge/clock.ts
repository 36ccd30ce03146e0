/** All bridge timing (MQTT connect timeout, keep alive, will delay, session checkpoints; CoAP retransmission, observe, block-wise expiry) goes through this, so tests drive it with a fake clock. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): Timer;
}

/** A wall-clock timer: a class, not a `{ cancel: () => … }` closure per timer (every connection holds one). */
class SystemTimer implements Timer {
  private readonly t: ReturnType<typeof setTimeout>;
  constructor(ms: number, fn: () => void) {
    this.t = setTimeout(fn, ms);
    this.t.unref?.();
  }
  cancel(): void {
    clearTimeout(this.t);
  }
}

/** Wall clock; its timers never keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => new SystemTimer(ms, fn),
};
