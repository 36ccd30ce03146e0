import { systemClock, type Clock, type Timer } from '../clock';

/**
 * A device's presence on this bridge, across its front-ends. The workers keep one presence row per
 * (device, bridge), and both front-ends report under the bridge's one id: MQTT has a device from
 * its first connection to its last, CoAP from its first request until it has been idle
 * (docs/coap.md, "Presence"). Each front-end's reports are balanced (an offline only after its own
 * online), so they are counted here: the device is reported online when the first front-end has
 * it and offline when the last lets it go — neither overwrites the other.
 */
export class PresenceCount {
  private readonly held = new Map<string, number>();

  constructor(private readonly report: (deviceId: string, online: boolean) => void) {}

  set(deviceId: string, online: boolean): void {
    const n = this.held.get(deviceId) ?? 0;
    if (online) {
      this.held.set(deviceId, n + 1);
      if (n === 0) this.report(deviceId, true);
    } else if (n === 1) {
      this.held.delete(deviceId);
      this.report(deviceId, false);
    } else if (n > 1) this.held.set(deviceId, n - 1);
    // n === 0: nothing here had it online (its online was never counted); nothing to say.
  }

  /** Devices some front-end has (tests and stats). */
  get devices(): string[] {
    return [...this.held.keys()];
  }
}

/** What `PresenceReports` sends with: the device, its state, and when the bridge saw it change (ms). */
export type SendPresence = (deviceId: string, online: boolean, at: number) => Promise<void>;

/** Retried presence reports on their way at once (PresenceReports.pump). */
export const RETRY_IN_FLIGHT = 8;

/**
 * Presence reports that reach the workers in the end. A report the platform could not take for now
 * (a 503: unreachable — the worker reloading under `npm start`, a deploy, a network blip, a 401/403
 * page from a proxy in front of the worker (internal-api.ts) — busy, or a 5xx) is sent again after
 * 1 s, doubling up to 30 s, for as long as the bridge runs: the latest report of each device only,
 * with the time it was made, so the worker still orders it against the others (it keeps the newest
 * `at` per device and bridge) and a newer report replaces one waiting.
 * Any other refusal (404: the device was deleted) is logged and dropped. Before, a failed report was
 * logged and lost: a device that disconnected while the worker reloaded stayed online until the
 * bridge restarted. Memory: one entry per device with a report on its way or waiting.
 */
export class PresenceReports {
  /** The latest report of each device not yet taken by the platform. */
  private readonly latest = new Map<string, { online: boolean; at: number }>();
  /** Reports waiting for the next retry (a subset of `latest`). */
  private readonly waiting = new Set<string>();
  /** Devices with a report on its way (one at a time each). */
  private readonly inFlight = new Set<string>();
  /** Retried reports on their way (at most RETRY_IN_FLIGHT). */
  private retrying = 0;
  private timer: Timer | null = null;
  private backoffMs: number;
  private closed = false;

  constructor(
    private readonly send: SendPresence,
    private readonly clock: Clock = systemClock,
    private readonly log: (msg: string) => void = () => undefined,
    private readonly firstRetryMs = 1000,
    private readonly maxRetryMs = 30_000,
  ) {
    this.backoffMs = firstRetryMs;
  }

  report(deviceId: string, online: boolean): void {
    const r = { online, at: this.clock.now() };
    this.latest.set(deviceId, r);
    this.waiting.delete(deviceId);
    this.attempt(deviceId);
  }

  /** Devices whose report the platform has not taken yet (tests and stats). */
  get unsent(): number {
    return this.latest.size;
  }

  /** Bridge shutdown: nothing is sent again. */
  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
  }

  /**
   * Sends the device's latest report — unless one of its reports is on its way: one request per
   * device at a time, so an online and an offline made in the same millisecond reach the worker in
   * the order they were made; the newer goes once the older has its answer.
   */
  private attempt(deviceId: string, retried = false): void {
    const r = this.latest.get(deviceId);
    if (!r || this.inFlight.has(deviceId)) return;
    this.inFlight.add(deviceId);
    if (retried) this.retrying++;
    const settled = () => {
      this.inFlight.delete(deviceId);
      if (retried) this.retrying--;
      // A newer report made meanwhile goes now (unless it is waiting for the next retry).
      const next = this.latest.get(deviceId);
      if (next && next !== r && !this.waiting.has(deviceId)) this.attempt(deviceId);
      // Nothing waiting is left without a way out: with no retry on its way and no timer set (the
      // last retried ones were refused for good, or replaced by newer reports), the next retry is timed.
      if (!this.closed && this.waiting.size > 0 && this.timer === null && this.retrying === 0) this.timer = this.clock.setTimer(this.backoffMs, () => this.retry());
    };
    this.send(deviceId, r.online, r.at).then(
      () => {
        this.backoffMs = this.firstRetryMs;
        if (this.latest.get(deviceId) === r) this.latest.delete(deviceId);
        settled();
        // The worker takes reports again: the rest of those waiting follow, a few at a time.
        if (retried && this.timer === null) this.pump();
      },
      (e: unknown) => {
        const replaced = this.latest.get(deviceId) !== r;
        const why = e instanceof Error ? e.message : String(e);
        if (!replaced && ((e as { status?: number }).status !== 503 || this.closed)) {
          this.latest.delete(deviceId);
          this.log(`presence of ${deviceId} not recorded: ${why}`);
        } else if (!replaced) {
          if (!this.waiting.has(deviceId) && this.waiting.size === 0) this.log(`presence of ${deviceId} not recorded yet, sent again: ${why}`);
          this.waiting.add(deviceId);
          this.timer ??= this.clock.setTimer(this.backoffMs, () => this.retry());
        }
        settled();
      },
    );
  }

  private retry(): void {
    this.timer = null;
    if (this.closed) return;
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxRetryMs);
    this.pump();
  }

  /**
   * Sends waiting reports, at most RETRY_IN_FLIGHT at once: they share the platform client's queue
   * with CONNECT and CoAP log-ins, which must not wait behind thousands of them just as devices
   * reconnect; and while the worker is still away each retry costs a few requests, not one per device.
   */
  private pump(): void {
    for (const id of this.waiting) {
      if (this.retrying >= RETRY_IN_FLIGHT || this.closed) return;
      this.waiting.delete(id);
      this.attempt(id, true);
    }
  }
}
