/** All bridge timing (MQTT connect timeout, keep alive, will delay, session checkpoints; CoAP retransmission, observe, block-wise expiry) goes through this, so tests drive it with a fake clock. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): Timer;
}

/** Wall clock; its timers never keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};
