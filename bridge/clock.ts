/** All bridge timing (MQTT connect timeout, keep alive, will delay, session checkpoints; CoAP retransmission, observe, block-wise expiry) goes through this, so tests drive it with a fake clock. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): Timer;
}

/** The longest delay `setTimeout` takes (2^31 − 1 ms, ~24.8 days): a longer one fires after 1 ms, with a warning. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A wall-clock timer: a class, not a `{ cancel: () => … }` closure per timer (every connection
 * holds one). A delay past MAX_TIMER_MS waits in steps (a Keep Alive sweep may wait for an API key
 * that expires in 30 days: Node would have fired it at once, and again, ~800 times a second).
 */
class SystemTimer implements Timer {
  private t: ReturnType<typeof setTimeout>;
  constructor(ms: number, fn: () => void) {
    this.t = this.arm(Date.now() + ms, fn);
  }
  private arm(at: number, fn: () => void): ReturnType<typeof setTimeout> {
    const left = at - Date.now();
    const t = left > MAX_TIMER_MS ? setTimeout(() => (this.t = this.arm(at, fn)), MAX_TIMER_MS) : setTimeout(fn, left);
    t.unref?.();
    return t;
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
