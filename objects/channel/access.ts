import type { Principal } from '../../shared/principal';
import { cacheTtlMs } from '../../workers/auth/credentials';
import { decideMessageAccess } from '../../workers/iam/access';
import type { ChannelCore } from './core';
import { closeSocket } from './fanout';
import { TAG_SUBSCRIBER, type SubscriberAttachment } from './sockets';

/** Close code when the permission to subscribe was withdrawn: 4000 + 403, as a refused upgrade. */
export const CLOSE_FORBIDDEN = 4403;
/** Of the 2,048 bytes workerd keeps per socket, leaving room for the structured clone's own framing. */
const ATTACHMENT_BUDGET = 1_900;

const keys = new WeakMap<Principal, string>();
/** Who decides alike: the kind and id, and for keys and app tokens their scopes (computed once per principal object). */
function principalKey(p: Principal): string {
  let k = keys.get(p);
  if (k === undefined) keys.set(p, (k = p.kind === 'key' || p.kind === 'app' ? `${p.kind}:${p.id}:${[...p.scopes].sort().join(' ')}` : `${p.kind}:${p.id}`));
  return k;
}

/**
 * Live WebSocket subscribers keep their permissions only as long as the platform does: the worker
 * decided at the upgrade, and from then on a subscriber's deliveries (and publish frames) ask the
 * PDP again once the last answer for its principal is REVOCATION_CACHE_TTL old (5 s; the bound the
 * worker's own caches keep, docs/auth.md) — one D1 decision per
 * principal, not per socket, and none for a quiet channel. When the permission to subscribe is
 * withdrawn (the device's connection removed, a key revoked or narrowed, a member removed) every
 * socket of that principal closes with 4403; a withdrawn permission to publish refuses its publish
 * frames with 403 and keeps the subscription. A D1 failure keeps what was decided and asks again
 * after that bound.
 */
export class SubscriberAccess {
  private readonly decided = new Map<string, { at: number; allowed: boolean; pending: Promise<boolean> | null }>();
  /** Principals too big for the attachment, by socket (lost when the actor hibernates). */
  private readonly unattached = new WeakMap<WebSocket, Principal>();

  constructor(private readonly core: ChannelCore) {}

  /**
   * Keeps a new subscriber's attachment (SocketCache.remember), with its principal when workerd
   * takes it: at most 2,048 bytes serialized (a key's 50 scopes or a long subtopic exceed that).
   * Local workerd does not enforce the limit, so its JSON size decides first; a refusal by the
   * runtime all the same is caught. Otherwise the principal stays in memory.
   */
  remember(ws: WebSocket, att: SubscriberAttachment, principal: Principal | undefined): SubscriberAttachment {
    if (principal && JSON.stringify({ ...att, principal }).length > ATTACHMENT_BUDGET) {
      this.unattached.set(ws, principal);
      att = { ...att, principalInMemory: true };
    } else if (principal) {
      try {
        const withPrincipal = { ...att, principal };
        this.core.sockets.remember(ws, withPrincipal);
        return withPrincipal;
      } catch {
        this.unattached.set(ws, principal);
        att = { ...att, principalInMemory: true };
      }
    }
    this.core.sockets.remember(ws, att);
    return att;
  }

  private principalOf(ws: WebSocket, att: SubscriberAttachment): Principal | null | undefined {
    if (att.principal) return att.principal;
    if (!att.principalInMemory) return undefined; // accepted before principals were kept: decided at its upgrade only
    return this.unattached.get(ws) ?? null; // lost across hibernation
  }

  /** On a delivery to `ws`: asks again when due; false when the socket was closed for it. */
  recheck(ws: WebSocket, att: SubscriberAttachment): boolean {
    const p = this.principalOf(ws, att);
    if (p === undefined) return true;
    if (p === null) {
      // Its principal did not survive hibernation: it reconnects (and is authorized) again.
      closeSocket(this.core, ws, 1013, 'please reconnect: this subscription must be authorized again');
      return false;
    }
    void this.decide(p, 'messages:subscribe');
    return true;
  }

  /** Whether the socket's principal may still publish (awaits a decision only when one is due). */
  async mayPublish(ws: WebSocket, att: SubscriberAttachment): Promise<boolean> {
    const p = this.principalOf(ws, att);
    if (p === undefined) return true;
    if (p === null) return false;
    return this.decide(p, 'messages:publish');
  }

  private decide(p: Principal, action: 'messages:subscribe' | 'messages:publish'): Promise<boolean> {
    const channel = this.core.store.channel;
    if (channel === null) return Promise.resolve(true); // no subscriber without a bound channel; nothing to ask about
    const key = `${action} ${principalKey(p)}`;
    const now = Date.now();
    const d = this.decided.get(key);
    if (d?.pending) return d.pending;
    if (d && now - d.at < cacheTtlMs(this.core.env)) return Promise.resolve(d.allowed);
    if (this.decided.size > 10_000) this.decided.clear();
    const entry = { at: now, allowed: d?.allowed ?? true, pending: null as Promise<boolean> | null };
    entry.pending = decideMessageAccess(this.core.env.DB, p, channel, action).then(
      (r) => {
        entry.allowed = r.allowed;
        entry.at = Date.now();
        entry.pending = null;
        if (!r.allowed && action === 'messages:subscribe') this.closeAll(key, action, r.reason ?? 'not allowed');
        return r.allowed;
      },
      () => {
        entry.pending = null;
        entry.at = Date.now();
        return entry.allowed;
      },
    );
    this.decided.set(key, entry);
    return entry.pending;
  }

  private closeAll(key: string, action: string, reason: string): void {
    for (const ws of this.core.ctx.getWebSockets(TAG_SUBSCRIBER)) {
      const s = this.core.sockets.subscriber(ws);
      const p = s && this.principalOf(ws, s.att);
      if (p && `${action} ${principalKey(p)}` === key) closeSocket(this.core, ws, CLOSE_FORBIDDEN, `permission to subscribe withdrawn: ${reason}`);
    }
  }
}
