import { afterEach, describe, expect, it } from 'vitest';
import { MAX_TIMER_MS, systemClock, type Clock } from './clock';
import { KeepAliveSweep } from './mqtt/keepalive';

const DAY = 86_400_000;

describe('timers longer than setTimeout can wait (2^31 − 1 ms)', () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  afterEach(() => {
    process.off('warning', onWarning);
    warnings.length = 0;
  });

  it('a 30-day system timer does not fire at once, and Node gives no TimeoutOverflowWarning', async () => {
    process.on('warning', onWarning);
    let fired = 0;
    const t = systemClock.setTimer(30 * DAY, () => fired++);
    await new Promise((r) => setTimeout(r, 100));
    t.cancel();
    expect(fired).toBe(0);
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });

  it('the Keep Alive sweep of one connection whose credential expires in 30 days sets timers within the limit, and sweeps rarely', () => {
    let now = 1_000_000;
    const delays: number[] = [];
    let pending: { at: number; fn: () => void } | null = null;
    const clock: Clock = {
      now: () => now,
      setTimer: (ms, fn) => {
        delays.push(ms);
        const timer = { at: now + ms, fn };
        pending = timer;
        return { cancel: () => pending === timer && (pending = null) };
      },
    };
    const sweep = new KeepAliveSweep(clock);
    let expired = 0;
    sweep.watch({ keepaliveDeadline: now + 30 * DAY, keepaliveExpired: () => expired++ });
    // Run the clock forward 31 days, firing timers as they come due.
    const end = now + 31 * DAY;
    let fires = 0;
    while (pending && (pending as { at: number }).at <= end) {
      const p = pending as { at: number; fn: () => void };
      pending = null;
      now = p.at;
      fires++;
      p.fn();
    }
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_TIMER_MS);
    expect(fires).toBeLessThanOrEqual(3); // ~24.8 days, then the rest: not one sweep a millisecond
    expect(expired).toBe(1);
  });
});
