import { principalIdentity, type Principal } from '../../shared/principal';
import { cacheTtlMs } from '../../workers/auth/credentials';
import { decideMessageAccess } from '../../workers/iam/access';
import type { ChannelCore } from './core';
import { closeSocket } from './fanout';
import { TAG_SUBSCRIBER, type SubscriberAttachment } from './sockets';

/** Close code when the permission to subscribe was withdrawn: 4000 + 403, as a refused upgrade. */
export const CLOSE_FORBIDDEN = 4403;
/** Close code when the credential itself is no longer good (a key revoked, a device key rotated): 4000 + 401. */
export const CLOSE_UNAUTHORIZED = 4401;
/** Close code asking a socket to connect (and be authorized) again: 1013 Try Again Later, which clients retry. */
const CLOSE_REAUTHORIZE = 1013;
/** Of the 2,048 bytes workerd keeps per socket, leaving room for the structured clone's own framing. */
const ATTACHMENT_BUDGET = 1_900;

type Action = 'messages:subscribe' | 'messages:publish';

/** One principal's latest answer for one action. */
interface Decision {
  at: number;
  allowed: boolean;
  /** A refusal of the credential itself (401), not of one permission. */
  unauthorized?: boolean;
  pending: Promise<boolean> | null;
}

/** Who decides alike (principalIdentity), per action: built once per principal object. */
const keysOf = new WeakMap<Principal, { subscribe: string; publish: string }>();
function keyOf(p: Principal, action: Action): string {
  let k = keysOf.get(p);
  if (!k) {
    const who = principalIdentity(p);
    keysOf.set(p, (k = { subscribe: `messages:subscribe ${who}`, publish: `messages:publish ${who}` }));
  }
  return action === 'messages:subscribe' ? k.subscribe : k.publish;
}

/**
 * Live WebSocket subscribers keep their permissions only as long as the platform does: the worker
 * decided at the upgrade, and from then on a subscriber's deliveries (and publish frames) ask the
 * PDP again once the last answer for its principal is REVOCATION_CACHE_TTL old (5 s; the bound the
 * worker's own caches keep, docs/auth.md) — one D1 decision per principal, not per socket, and none
 * for a quiet channel; while an answer is fresh a delivery costs two map lookups. When the
 * permission to subscribe is withdrawn (the device's connection removed, a key revoked or narrowed,
 * a member removed) the principal's sockets accepted before that answer was asked for close with
 * 4403; a withdrawn permission to publish refuses its publish frames with 403 and keeps the
 * subscription. A credential that is no longer good (an API key revoked, a device key rotated or its
 * device deleted: a 401 from either check) closes them with 4401. A D1 failure keeps what was
 * decided and asks again after that bound.
 */
export class SubscriberAccess {
  private readonly decided = new Map<string, Decision>();
  /** Principals too big for the attachment, by socket (lost when the actor hibernates). */
  private readonly unattached = new WeakMap<WebSocket, Principal>();
  /** When each socket was accepted (in memory: a socket from before a wake counts as older than any answer). */
  private readonly acceptedAt = new WeakMap<WebSocket, number>();
  private ttlMs: number | undefined;

  constructor(private readonly core: ChannelCore) {}

  /** REVOCATION_CACHE_TTL, read once (the core's env is not set yet when this is constructed). */
  private get ttl(): number {
    return (this.ttlMs ??= cacheTtlMs(this.core.env));
  }

  /**
   * Keeps a new subscriber's attachment (SocketCache.remember), with its principal when workerd
   * takes it: at most 2,048 bytes serialized (a key's 50 scopes or a long subtopic exceed that).
   * Local workerd does not enforce the limit, so its JSON size decides first; a refusal by the
   * runtime all the same is caught. Otherwise the principal stays in memory.
   */
  remember(ws: WebSocket, att: SubscriberAttachment, principal: Principal | undefined): SubscriberAttachment {
    this.acceptedAt.set(ws, Date.now());
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

  /** The socket's principal; undefined for sockets accepted before principals were kept; null when it was lost across hibernation. */
  private principalOf(ws: WebSocket, att: SubscriberAttachment): Principal | null | undefined {
    if (att.principal) return att.principal;
    if (!att.principalInMemory) return undefined;
    return this.unattached.get(ws) ?? null;
  }

  /** On a delivery to `ws`: asks again when due; false when the socket was closed. */
  recheck(ws: WebSocket, att: SubscriberAttachment): boolean {
    const p = this.principalOf(ws, att);
    if (p === undefined) return true;
    if (p === null) return this.reauthorize(ws);
    const key = keyOf(p, 'messages:subscribe');
    const d = this.decided.get(key);
    if (d && (d.pending || Date.now() - d.at < this.ttl)) {
      if (d.pending || d.allowed) return true;
      // A fresh refusal: a socket admitted before it (on an older, cached "allowed") closes at once;
      // one admitted after it was allowed since, so the refusal is stale: ask again.
      if ((this.acceptedAt.get(ws) ?? 0) <= d.at) {
        if (d.unauthorized) closeSocket(this.core, ws, CLOSE_UNAUTHORIZED, 'credential no longer valid');
        else closeSocket(this.core, ws, CLOSE_FORBIDDEN, 'permission to subscribe withdrawn');
        return false;
      }
      this.decided.delete(key);
    }
    void this.decide(p, 'messages:subscribe');
    return true;
  }

  /** Whether the socket's principal may still publish (awaits a decision only when one is due). */
  async mayPublish(ws: WebSocket, att: SubscriberAttachment): Promise<boolean> {
    const p = this.principalOf(ws, att);
    if (p === undefined) return true;
    if (p === null) return this.reauthorize(ws);
    return this.decide(p, 'messages:publish');
  }

  /** Its principal did not survive hibernation: it connects (and is authorized) again. */
  private reauthorize(ws: WebSocket): false {
    closeSocket(this.core, ws, CLOSE_REAUTHORIZE, 'please reconnect: this connection must be authorized again');
    return false;
  }

  private decide(p: Principal, action: Action): Promise<boolean> {
    const channel = this.core.store.channel;
    if (channel === null) return Promise.resolve(true); // no subscriber without a bound channel; nothing to ask about
    const key = keyOf(p, action);
    const d = this.decided.get(key);
    if (d?.pending) return d.pending;
    const now = Date.now();
    if (d && now - d.at < this.ttl) return Promise.resolve(d.allowed);
    if (this.decided.size > 10_000) this.decided.clear();
    const entry: Decision = { at: now, allowed: d?.allowed ?? true, pending: null };
    entry.pending = decideMessageAccess(this.core.env.DB, p, channel, action).then(
      (r) => {
        entry.allowed = r.allowed;
        entry.at = Date.now();
        entry.pending = null;
        if (r.allowed) return true;
        if (r.status === 401) {
          // The credential, not a permission: every socket that presented it goes, whatever it does.
          entry.unauthorized = true;
          this.closeAll(keyOf(p, 'messages:subscribe'), now, CLOSE_UNAUTHORIZED, r.reason ?? 'credential no longer valid');
        } else if (action === 'messages:subscribe') this.closeAll(key, now, CLOSE_FORBIDDEN, `permission to subscribe withdrawn: ${r.reason ?? 'not allowed'}`);
        return false;
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

  /** Closes the sockets of the refused principal that were accepted before the answer was asked for. */
  private closeAll(key: string, askedAt: number, code: number, reason: string): void {
    for (const ws of this.core.ctx.getWebSockets(TAG_SUBSCRIBER)) {
      if ((this.acceptedAt.get(ws) ?? 0) > askedAt) continue; // came in on a newer decision
      const s = this.core.sockets.subscriber(ws);
      const p = s && this.principalOf(ws, s.att);
      if (p && keyOf(p, 'messages:subscribe') === key) closeSocket(this.core, ws, code, reason);
    }
  }
}
