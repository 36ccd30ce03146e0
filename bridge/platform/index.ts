import type { Principal } from '../../shared/principal';
import { systemClock } from '../clock';
import { InternalApi } from './internal-api';
import { ChannelLink } from './link';
import { PresenceCount, PresenceReports } from './presence';
import { PlatformError, wsUrl, type WorkerUrl, type Decision, type Delivery, type MessageAction, type Platform, type PublishOutcome, type PublishRequest, type SubscribeRequest, type Subscription } from './types';

export * from './types';

export interface PlatformOptions {
  workerUrl: WorkerUrl;
  bridgeSecret: string;
  /** This bridge's name in presence records (a device is online while any bridge has it). */
  bridgeId?: string;
  /** Trust authentication/authorization answers this long (ms) when changes are not followed. */
  cacheTtlMs?: number;
  /** Ask which orgs' access changed this often (ms, default 1000). */
  changesPollMs?: number;
  /** Trust decisions this long (ms, default 60000) while changes are followed. */
  trustedTtlMs?: number;
  /** Close a channel link unused for this long (ms). */
  linkIdleMs?: number;
  log?: (msg: string) => void;
}

export interface RealPlatform extends Platform {
  close(): Promise<void>;
  /**
   * Marks offline every device this bridge id had online before now (call at startup: a restart
   * forgets its connections). Rejects with the first attempt's failure; one the worker may get over
   * (503: unreachable, reloading, 5xx, a 401/403 that is not the worker's problem JSON) is tried
   * again in the background — 1 s, doubling to 30 s, with the same time, so devices connected
   * since stay online — until taken or `close()`.
   */
  resetPresence(): Promise<void>;
  /** The link to a channel (tests and stats). */
  linkFor(channel: string): ChannelLink;
  /** For the ops server (bridge/ops): the links to channel actors and whether the worker answers. */
  stats(): PlatformStats;
}

export interface PlatformStats {
  linksOpen: number;
  /** Links with subscriptions or publishes waiting for a socket (connecting, or waiting to connect again). */
  linksDown: number;
  /** Publishes sent to channel actors and not answered yet. */
  unansweredPublishes: number;
  /** When the worker last answered (ms since the epoch), undefined before its first answer. */
  workerAnsweredAt: number | undefined;
  /** Whether the worker answered within the bound the bridge trusts its decisions for. */
  workerFollowed: boolean;
}

/**
 * The Platform the protocol front-ends use, for real: authentication and policy decisions from the
 * workers' /internal API (cached while their org's access does not change), messages through one
 * link per channel actor.
 */
export function createPlatform(opts: PlatformOptions): RealPlatform {
  const api = new InternalApi({
    workerUrl: opts.workerUrl,
    bridgeSecret: opts.bridgeSecret,
    ...(opts.bridgeId ? { bridgeId: opts.bridgeId } : {}),
    ...(opts.cacheTtlMs !== undefined ? { cacheTtlMs: opts.cacheTtlMs } : {}),
    ...(opts.changesPollMs !== undefined ? { changesPollMs: opts.changesPollMs } : {}),
    ...(opts.trustedTtlMs !== undefined ? { trustedTtlMs: opts.trustedTtlMs } : {}),
  });
  api.start();
  const links = new Map<string, ChannelLink>();
  // MQTT and CoAP report under this bridge's one id: counted, so neither overwrites the other, and
  // sent again while the platform cannot take them (presence.ts).
  const reports = new PresenceReports((deviceId, online, at) => api.presence(deviceId, online, at), systemClock, opts.log);
  const presence = new PresenceCount((deviceId, online) => reports.report(deviceId, online));
  let resetTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const resetAgain = (at: number, wait: number): void => {
    if (closed) return;
    resetTimer = setTimeout(() => {
      api.resetPresence(at).then(
        () => opts.log?.('presence of this bridge reset (tried again)'),
        (e: unknown) => {
          if (e instanceof PlatformError && e.status === 503) return resetAgain(at, Math.min(wait * 2, 30_000));
          opts.log?.(`presence of this bridge not reset: ${e instanceof Error ? e.message : String(e)}`);
        },
      );
    }, wait);
    resetTimer.unref?.();
  };

  const linkFor = (channel: string): ChannelLink => {
    let l = links.get(channel);
    if (!l) {
      l = new ChannelLink({ url: () => `${wsUrl(opts.workerUrl)}/internal/channels/${encodeURIComponent(channel)}/link`, bridgeSecret: opts.bridgeSecret, ...(opts.linkIdleMs !== undefined ? { idleMs: opts.linkIdleMs } : {}), ...(opts.log ? { log: opts.log } : {}) });
      links.set(channel, l);
    }
    return l;
  };

  return {
    authenticate: (username: string | undefined, password: string): Promise<Principal> => api.authenticate(username, password),
    authorize: (principal: Principal, checks: { channel: string; action: MessageAction }[]): Promise<Decision[]> => api.authorize(principal, checks),
    channelsFor: (principal: Principal, action: MessageAction) => api.channelsFor(principal, action),
    channelDefaults: (channel: string) => api.channelDefaults(channel),
    credentialRefusal: (principal: Principal) => api.credentialRefusal(principal),
    accessVersion: (principal: Principal) => api.accessVersion(principal),
    onAccessChange: (listener: (org: string | undefined) => void) => api.onAccessChange(listener),
    publish: (req: PublishRequest): Promise<PublishOutcome> => linkFor(req.channel).publish(req),
    async subscribe(req: SubscribeRequest, onMessage: (d: Delivery) => void): Promise<Subscription> {
      try {
        return await linkFor(req.channel).subscribe(req.filter, onMessage, { ...(req.since !== undefined ? { since: req.since } : {}), ...(req.noLocal ? { noLocal: req.noLocal } : {}), ...(req.share !== undefined ? { share: req.share } : {}) });
      } catch (e) {
        const status = (e as { status?: number }).status ?? 503;
        throw new PlatformError(status, e instanceof Error ? e.message : String(e));
      }
    },
    presence(deviceId: string, online: boolean): void {
      presence.set(deviceId, online);
    },
    async resetPresence(): Promise<void> {
      const at = Date.now();
      try {
        await api.resetPresence(at);
      } catch (e) {
        if (e instanceof PlatformError && e.status === 503) resetAgain(at, 1000);
        throw e;
      }
    },
    linkFor,
    stats(): PlatformStats {
      let linksOpen = 0;
      let linksDown = 0;
      let unansweredPublishes = 0;
      for (const l of links.values()) {
        const state = l.state;
        if (state === 'open') linksOpen++;
        else if (state === 'down') linksDown++;
        unansweredPublishes += l.unansweredPublishes;
      }
      return { linksOpen, linksDown, unansweredPublishes, workerAnsweredAt: api.answeredAt, workerFollowed: api.following };
    },
    async close() {
      closed = true;
      clearTimeout(resetTimer);
      api.close();
      reports.close();
      for (const l of links.values()) l.close();
      links.clear();
    },
  };
}
