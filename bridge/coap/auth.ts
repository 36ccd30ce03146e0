/**
 * Credentials and presence. CoAP has no connection: every request carries `?auth=<device key>`
 * (BRIEF "Credentials"), so the principal is cached per (endpoint, key) for `authCacheMs`.
 * Presence: a device is online from its first authenticated request and offline once it has been
 * quiet for `presenceIdleMs` with no observation open (docs/coap.md "Presence").
 */
import type { Principal } from '../../shared/principal';
import type { MessageAction, Platform } from '../platform/types';
import { PlatformError } from '../platform/types';
import type { CoapLimits } from './limits';
import type { Clock, Log, Timer } from './types';

interface Cached {
  /** In flight or settled: concurrent requests with one key share one platform call. */
  principal: Promise<Principal>;
  until: number;
}

interface Presence {
  last: number;
  observations: number;
}

const CACHE_MAX = 50_000;

export class Auth {
  private readonly cache = new Map<string, Cached>();
  private readonly online = new Map<string, Presence>();
  private sweeper: Timer | undefined;

  constructor(
    private readonly platform: Platform,
    private readonly clock: Clock,
    private readonly limits: CoapLimits,
    private readonly log: Log,
  ) {}

  /** The principal for a key; throws PlatformError (401 unknown key, 503 platform unreachable). */
  async principal(epKey: string, key: string | undefined): Promise<Principal> {
    if (key === undefined || key === '') throw new PlatformError(401, 'missing credentials: add the query option auth=<device key>');
    const cacheKey = `${epKey}\u0000${key}`;
    const now = this.clock.now();
    const hit = this.cache.get(cacheKey);
    if (hit && hit.until > now) return hit.principal;
    const principal = this.platform.authenticate(undefined, key);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    const entry = { principal, until: now + this.limits.authCacheMs };
    this.cache.set(cacheKey, entry);
    // A refusal or an outage is not remembered: the next request asks again.
    principal.catch(() => this.cache.get(cacheKey) === entry && this.cache.delete(cacheKey));
    return principal;
  }

  /** Throws PlatformError 403/404 unless the principal may do `action` on `channel`; 401 when its credential is no longer good (a rotated key still cached here). */
  async authorize(principal: Principal, channel: string, action: MessageAction): Promise<void> {
    const [d] = await this.platform.authorize(principal, [{ channel, action }]);
    if (!d) throw new PlatformError(503, 'no authorization decision');
    if (d.allowed) return;
    const status = d.status === 404 || d.status === 401 ? d.status : 403;
    throw new PlatformError(status, d.reason ?? (status === 404 ? `no channel ${channel}` : `not allowed to ${action === 'messages:publish' ? 'publish to' : 'subscribe to'} channel ${channel}`));
  }

  /** Records activity of a device; the first one makes it online. */
  active(p: Principal): void {
    if (p.kind !== 'device') return;
    const now = this.clock.now();
    const entry = this.online.get(p.id);
    if (entry) {
      entry.last = now;
      return;
    }
    this.online.set(p.id, { last: now, observations: 0 });
    this.report(p.id, true);
    this.sweeper ??= this.clock.setTimer(this.limits.presenceIdleMs, () => this.sweep());
  }

  /**
   * An observation keeps its device online until it ends. An end the device did not cause is no
   * sign of it (no ACK, a ping unanswered, the server closing): the device then goes offline at the
   * next sweep if its last request is `presenceIdleMs` old, not `presenceIdleMs` after the end. One
   * it caused (`byDevice`: a RST to a notification, a deregistering GET, a re-registration) shows
   * it alive, as any request does.
   */
  observing(p: Principal, delta: 1 | -1, byDevice = false): void {
    if (p.kind !== 'device') return;
    if (delta === 1 || byDevice) this.active(p);
    const entry = this.online.get(p.id);
    if (entry) entry.observations = Math.max(0, entry.observations + delta);
  }

  private sweep(): void {
    this.sweeper = undefined;
    const now = this.clock.now();
    for (const [id, e] of this.online) {
      if (e.observations > 0 || now - e.last < this.limits.presenceIdleMs) continue;
      this.online.delete(id);
      this.report(id, false);
    }
    if (this.online.size > 0) this.sweeper = this.clock.setTimer(Math.max(1000, this.limits.presenceIdleMs / 4), () => this.sweep());
  }

  private report(deviceId: string, online: boolean): void {
    try {
      // The contract types presence() as void; the real client returns a promise — never let it go unhandled.
      const r: unknown = this.platform.presence(deviceId, online);
      if (r instanceof Promise) r.catch((e: unknown) => this.log.warn('coap: presence update failed', { deviceId, online, error: String(e) }));
    } catch (e) {
      this.log.warn('coap: presence update failed', { deviceId, online, error: String(e) });
    }
  }

  /** Devices reported online, for tests and stats. */
  get onlineDevices(): string[] {
    return [...this.online.keys()];
  }

  /** Reports every online device offline (the bridge is going away) and stops the sweeper. */
  close(): void {
    this.sweeper?.cancel();
    this.sweeper = undefined;
    for (const id of this.online.keys()) this.report(id, false);
    this.online.clear();
    this.cache.clear();
  }
}
