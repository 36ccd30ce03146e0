import type { MessageAction } from '../platform/types';
import type { Connection } from './connection';

/**
 * What one MQTT connection may do, as the platform last said, and when to ask again (docs/mqtt.md,
 * "Permissions are re-checked while a subscription lives"):
 *  - publish decisions are reused for `authorizationTtlMs` while the platform's accessVersion stays
 *    put (the platform client caches too, up to a minute while it follows access changes);
 *  - a subscribed channel's permission is asked about again on a delivery once that old, on a
 *    PINGREQ, and at once — with the publish decisions, in one question — when the platform says
 *    the org's access changed;
 *  - a refusal drops the channel from the subscriptions; a refused credential (401) ends the
 *    connection. A platform failure keeps what was granted (asked again later).
 */

interface Decided {
  channel: string;
  action: MessageAction;
  allowed: boolean;
  at: number;
  /** The platform's accessVersion when it was asked for: when that moves, it is asked again. */
  version: number;
}

/** When a subscribed channel's permission was last asked about or granted. */
interface Checked {
  at: number;
  /** The accessVersion then. */
  version: number;
  /** Grants of this channel so far: a refusal asked for before the latest grant does not count. */
  grant: number;
}

type Ask = { channel: string; action: MessageAction; grant?: number };

/** Decisions and checks kept per connection: a long-lived connection's channels come and go. */
const KEPT = 1000;

export class Permissions {
  private decided: Map<string, Decided> | null = null;
  /** The decision asked for last (a device mostly publishes to one channel): no key to build. */
  private last: Decided | null = null;
  private checked: Map<string, Checked> | null = null;
  private grants = 0;

  constructor(private readonly conn: Connection) {}

  /** Moves when the platform may know of a change to this connection's access (Platform.accessVersion). */
  version(): number {
    return this.conn.ctx.platform.accessVersion?.(this.conn.principal!) ?? 0;
  }

  /** The cached decision, if still fresh (no promise: the PUBLISH hot path asks this first). */
  allowedNow(channel: string, action: MessageAction): boolean | undefined {
    const last = this.last;
    const hit = last && last.channel === channel && last.action === action ? last : this.decided?.get(`${action}\u0000${channel}`);
    if (!hit || this.conn.now() - hit.at >= this.conn.limits.authorizationTtlMs || hit.version !== this.version()) return undefined;
    this.last = hit;
    return hit.allowed;
  }

  /** A publish decision, from the cache when fresh. Throws PlatformError. */
  async allowed(channel: string, action: MessageAction): Promise<boolean> {
    const cached = this.allowedNow(channel, action);
    if (cached !== undefined) return cached;
    const version = this.version(); // before asking: a change while the answer is on its way makes it stale
    const [d] = await this.conn.ctx.platform.authorize(this.conn.principal!, [{ channel, action }]);
    if (d?.status === 401) this.conn.credentialRefused(d.reason);
    return this.remember(channel, action, d?.allowed === true, version).allowed;
  }

  private remember(channel: string, action: MessageAction, allowed: boolean, version: number): Decided {
    this.decided ??= new Map();
    if (this.decided.size > KEPT) this.decided.clear();
    const decided: Decided = { channel, action, allowed, at: this.conn.now(), version };
    this.decided.set(`${action}\u0000${channel}`, decided);
    this.last = decided;
    return decided;
  }

  /**
   * A subscription was granted on `channel`, by a decision asked for at accessVersion `version`
   * (read before asking: a change told while it was on its way makes it due again at once).
   */
  granted(channel: string, version: number): void {
    (this.checked ??= new Map()).set(channel, { at: this.conn.now(), version, grant: ++this.grants });
  }

  /**
   * Asked on every delivery from `channel`: once its permission is `authorizationTtlMs` old, or the
   * accessVersion moved, asks again without holding the delivery up. So a revoked subscriber stops
   * receiving within about that bound, and a quiet subscription costs nothing.
   */
  recheck(channel: string): void {
    const ask = this.due(channel, this.version());
    if (ask) this.ask([ask]);
  }

  /**
   * On a PINGREQ: a subscriber on a quiet channel gets no delivery to re-check on, so one of its
   * channels is asked about when due — enough to find a credential that is no longer good within a
   * keep alive, and a channel withdrawn since. A connection that only publishes is checked on its
   * next PUBLISH.
   */
  recheckIdle(): void {
    if (this.conn.phase !== 'open' || this.conn.subs.size === 0) return;
    for (const sub of this.conn.subs.values()) {
      for (const channel of sub.channels) return this.recheck(channel);
    }
  }

  /**
   * The platform says this connection's org's access changed (Platform.onAccessChange): every
   * subscribed channel and every publish decision kept as allowed are asked about now, in one
   * question, not at their next packet — so an idle session on a revoked credential ends within
   * about a second, and a quiet subscription withdrawn stops before its next message. Refusals
   * kept are not asked about again here (their next PUBLISH does). A session with none of these
   * has its credential asked about (Platform.credentialRefusal).
   */
  accessChanged(): void {
    if (this.conn.phase !== 'open' || !this.conn.principal) return;
    const version = this.version();
    const asks: Ask[] = [];
    for (const sub of this.conn.subs.values()) {
      for (const channel of sub.channels) {
        const ask = this.due(channel, version);
        if (ask) asks.push(ask);
      }
    }
    if (this.decided) for (const d of this.decided.values()) if (d.allowed && d.version !== version) asks.push({ channel: d.channel, action: d.action });
    if (asks.length) this.ask(asks);
    // Nothing to ask about (no subscription, no publish yet): the credential itself, or a session on
    // a revoked key or a deleted device would live on until its next packet.
    else this.askCredential();
  }

  private askCredential(): void {
    const { platform } = this.conn.ctx;
    if (!platform.credentialRefusal) return;
    platform.credentialRefusal(this.conn.principal!).then(
      (reason) => {
        if (reason !== null && this.conn.phase !== 'closed') this.conn.credentialRefused(reason);
      },
      (e: unknown) => this.conn.log(`could not re-check the credential: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  /** Marks `channel` as being asked about at `version`, unless it was asked about recently enough. */
  private due(channel: string, version: number): Ask | undefined {
    const checked = (this.checked ??= new Map());
    const last = checked.get(channel);
    const now = this.conn.now();
    if (last !== undefined && now - last.at < this.conn.limits.authorizationTtlMs && last.version === version) return undefined;
    if (checked.size >= KEPT) checked.clear();
    const grant = last?.grant ?? 0;
    checked.set(channel, { at: now, version, grant });
    return { channel, action: 'messages:subscribe', grant };
  }

  /** One question for all `asks`; applies the answers (a 401 ends the connection once). */
  private ask(asks: Ask[]): void {
    const version = this.version();
    this.conn.ctx.platform.authorize(this.conn.principal!, asks.map(({ channel, action }) => ({ channel, action }))).then(
      (decisions) => {
        if (this.conn.phase === 'closed') return;
        const refused = decisions.find((d) => d?.status === 401);
        if (refused) return this.conn.credentialRefused(refused.reason);
        asks.forEach((a, i) => {
          const d = decisions[i];
          if (!d) return;
          if (a.action === 'messages:publish') this.remember(a.channel, a.action, d.allowed, version);
          // A refusal counts unless the channel was granted again since it was asked for (a re-SUBSCRIBE stands).
          else if (!d.allowed && (this.checked?.get(a.channel)?.grant ?? 0) === a.grant) this.drop(a.channel);
        });
      },
      (e: unknown) => this.conn.log(`could not re-check permissions on ${asks.length === 1 ? `channel ${asks[0]!.channel}` : `${asks.length} channels`}: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private drop(channel: string): void {
    this.checked?.delete(channel);
    this.conn.dropChannel(channel);
  }
}
