import { principalIdentity, type Principal } from '../../shared/principal';
import { cacheTtlMs } from '../../workers/auth/credentials';
import { decideMessageAccess } from '../../workers/iam/access';
import type { ChannelCore } from './core';
import { closeSocket, sendFrame } from './fanout';
import { CLOSE_TRY_AGAIN_LATER } from './flow';
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
  /** When the answer came (while `pending`: when the question was asked). */
  at: number;
  /** When the question behind `allowed` was asked: sockets accepted after it are asked about again. */
  askedAt: number;
  allowed: boolean;
  /** A refusal of the credential itself (401), not of one permission. */
  unauthorized?: boolean;
  pending: Promise<boolean> | null;
  /** While `pending`: until when the previous answer, `allowed`, may still be used (0: none to use). */
  trustedUntil: number;
}

/** Deliveries held for one socket while its principal's question is answered. */
interface Held {
  frames: { data: string | Uint8Array; seq: number }[];
  bytes: number;
}

/** The socket's credential expiry (`exp`, seconds), from its attachment alone (so after hibernation too); null: it does not expire. */
function expiryOf(att: SubscriberAttachment): { exp: number; key: boolean } | null {
  const p = att.principal;
  if (!p) return att.expiry ?? null;
  return p.kind === 'device' || p.exp === undefined ? null : { exp: p.exp, key: p.kind === 'key' };
}

const expiredReason = (key: boolean): string => (key ? 'the API key expired' : 'the access token expired');

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
 * decided at the upgrade, and from then on the channel actor asks the PDP again for each
 * principal — one D1 decision per principal, not per socket, and none for a quiet channel — and
 * delivers only on an answer younger than REVOCATION_CACHE_TTL (5 s; the bound the worker's own
 * caches keep, docs/auth.md). A delivery to a socket whose principal has no such answer (a channel
 * quiet past the bound, an actor woken from hibernation) waits, held for that socket alone, until
 * the question is answered: a revoked subscriber never gets a message published after the bound.
 * On a busy channel the question is asked again in the background once the answer is half that
 * old, so deliveries do not wait; while an answer is fresh a delivery costs two map lookups. A new
 * socket's principal is asked about at once (`prefetch`), so its first delivery seldom waits.
 * When the permission to subscribe is withdrawn (the device's connection removed, a key revoked or
 * narrowed, a member removed) the principal's sockets accepted before that answer was asked for
 * close with 4403; a withdrawn permission to publish refuses its publish frames with 403 and keeps
 * the subscription. A credential that is no longer good (an API key revoked, a device key rotated
 * or its device deleted: a 401 from either check) closes them with 4401. A D1 failure keeps what
 * was decided (for a socket with no answer yet: the worker's, at the upgrade) and asks again after
 * that bound.
 */
export class SubscriberAccess {
  private readonly decided = new Map<string, Decision>();
  /** Principals too big for the attachment, by socket (lost when the actor hibernates). */
  private readonly unattached = new WeakMap<WebSocket, Principal>();
  /** When each socket was accepted (in memory: a socket from before a wake counts as older than any answer). */
  private readonly acceptedAt = new WeakMap<WebSocket, number>();
  /** Sockets whose deliveries wait for their principal's answer (`admit`), and what is held for them. */
  private readonly waiting = new WeakMap<WebSocket, Promise<boolean>>();
  private readonly held = new Map<WebSocket, Held>();
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
    const remembered = this.attach(ws, att, principal);
    const e = expiryOf(remembered);
    if (e) this.armAt(e.exp * 1000);
    return remembered;
  }

  private attach(ws: WebSocket, att: SubscriberAttachment, principal: Principal | undefined): SubscriberAttachment {
    if (principal && JSON.stringify({ ...att, principal }).length > ATTACHMENT_BUDGET) return this.inMemory(ws, att, principal);
    if (principal) {
      try {
        const withPrincipal = { ...att, principal };
        this.core.sockets.remember(ws, withPrincipal);
        return withPrincipal;
      } catch {
        return this.inMemory(ws, att, principal);
      }
    }
    this.core.sockets.remember(ws, att);
    return att;
  }

  /** The principal stays in memory; its expiry, a few bytes, goes in the attachment all the same (`closeExpired`). */
  private inMemory(ws: WebSocket, att: SubscriberAttachment, principal: Principal): SubscriberAttachment {
    this.unattached.set(ws, principal);
    const expiry = expiryOf({ ...att, principal });
    const remembered: SubscriberAttachment = { ...att, principalInMemory: true, ...(expiry ? { expiry } : {}) };
    this.core.sockets.remember(ws, remembered);
    return remembered;
  }

  /**
   * The alarm fired (it is shared with the drain and the retention sweeps, core.ts): every
   * subscriber whose credential has run out is refused and closed (4401), though nothing is
   * delivered to it — an idle socket does not outlive its token. Reads each `exp` from the
   * attachments, so a hibernated actor woken by the alarm finds them.
   */
  closeExpired(now = Date.now()): void {
    for (const ws of this.core.ctx.getWebSockets(TAG_SUBSCRIBER)) {
      if (ws.readyState !== WebSocket.READY_STATE_OPEN) continue;
      const s = this.core.sockets.subscriber(ws);
      const e = s && expiryOf(s.att);
      if (e && e.exp * 1000 <= now) this.refuse(ws, CLOSE_UNAUTHORIZED, expiredReason(e.key));
    }
  }

  /** Makes sure the alarm fires by the earliest expiry of an open subscriber's credential (after `closeExpired`, or after a drain's back-off moved the alarm later). */
  async armExpiry(): Promise<void> {
    let next = Infinity;
    for (const ws of this.core.ctx.getWebSockets(TAG_SUBSCRIBER)) {
      if (ws.readyState !== WebSocket.READY_STATE_OPEN) continue;
      const s = this.core.sockets.subscriber(ws);
      const e = s && expiryOf(s.att);
      if (e && e.exp * 1000 < next) next = e.exp * 1000;
    }
    if (next !== Infinity) await this.core.alarmNoLaterThan(next);
  }

  /** A new subscriber's expiry: the alarm fires by then (in the background: accepting it does not wait for the write). */
  private armAt(at: number): void {
    this.core.alarmNoLaterThan(at).catch((e: unknown) => console.error(`channel ${this.core.store.channel}: no alarm set for a subscriber's credential expiry; it closes on its next delivery`, e));
  }

  /** The socket's principal; undefined for sockets accepted before principals were kept; null when it was lost across hibernation. */
  private principalOf(ws: WebSocket, att: SubscriberAttachment): Principal | null | undefined {
    if (att.principal) return att.principal;
    if (!att.principalInMemory) return undefined;
    return this.unattached.get(ws) ?? null;
  }

  /**
   * Before a delivery to `ws`: true = send now; false = the socket was closed (or is refused);
   * a promise = hold the delivery (`hold`) until it settles — the principal's question is being
   * answered and no answer young enough is at hand. A socket with held deliveries keeps holding,
   * so it gets its messages in order.
   */
  admit(ws: WebSocket, att: SubscriberAttachment): boolean | Promise<boolean> {
    const waiting = this.waiting.get(ws);
    if (waiting) return waiting;
    const p = this.principalOf(ws, att);
    if (p === undefined) return true;
    if (p === null) return this.reauthorize(ws);
    const now = Date.now();
    if (this.expired(ws, p, now)) return false;
    const key = keyOf(p, 'messages:subscribe');
    const d = this.decided.get(key);
    if (d && !d.pending && now - d.at < this.ttl) {
      if (d.allowed) {
        // Asked again ahead of the bound, in the background: a busy channel's deliveries never wait.
        if (now - d.at >= this.ttl / 2) void this.decide(p, 'messages:subscribe', true);
        return true;
      }
      // A fresh refusal: a socket admitted before it (on an older, cached "allowed") closes at once;
      // one admitted after it was allowed since, so the refusal is stale: ask again.
      if ((this.acceptedAt.get(ws) ?? 0) <= d.askedAt) {
        if (d.unauthorized) this.refuse(ws, CLOSE_UNAUTHORIZED, 'credential no longer valid');
        else this.refuse(ws, CLOSE_FORBIDDEN, 'permission to subscribe withdrawn');
        return false;
      }
      this.decided.delete(key);
    } else if (d?.pending && d.allowed && now < d.trustedUntil) return true;
    const asked = this.decide(p, 'messages:subscribe');
    this.waiting.set(ws, asked);
    const done = () => {
      if (this.waiting.get(ws) === asked) this.waiting.delete(ws);
    };
    asked.then(done, done);
    return asked;
  }

  /**
   * Keeps a delivery for `ws` until `admitted` (from `admit`) settles; then sends what was held,
   * in order, through `send` (false: stop, the socket is gone), or drops it if the socket was
   * refused. More than the subscriber window held closes the socket as a slow consumer would be.
   */
  hold(ws: WebSocket, admitted: Promise<boolean>, data: string | Uint8Array, seq: number, send: (data: string | Uint8Array, seq: number) => boolean): boolean {
    let h = this.held.get(ws);
    if (!h) {
      this.held.set(ws, (h = { frames: [], bytes: 0 }));
      const settle = (allowed: boolean) => {
        const held = this.held.get(ws);
        this.held.delete(ws);
        if (!held || ws.readyState !== WebSocket.READY_STATE_OPEN) return;
        // Refused: `decide` closed the sockets the refusal is about; one admitted after the question
        // was asked is asked about again (`admit`), as any delivery would be.
        // Allowed, but the answer may have been the last one carried over a failed question: past the credential's exp nothing held goes out.
        const next = allowed ? !this.expiredNow(ws) : this.admitAgain(ws);
        if (next === false) return;
        for (const f of held.frames) {
          if (next !== true ? !this.hold(ws, next, f.data, f.seq, send) : !send(f.data, f.seq)) return;
        }
      };
      admitted.then(settle, () => settle(false));
    }
    h.frames.push({ data, seq });
    h.bytes += typeof data === 'string' ? data.length : data.byteLength;
    if (h.bytes > this.core.config.subscriberWindow.bytes) {
      this.held.delete(ws);
      closeSocket(this.core, ws, CLOSE_TRY_AGAIN_LATER, 'slow consumer: deliveries held while its permission is checked exceed the window');
      return false;
    }
    return true;
  }

  /** Whether `ws`'s credential has run out now (then it is refused and closed, `expired`). */
  private expiredNow(ws: WebSocket): boolean {
    const s = this.core.sockets.subscriber(ws);
    const p = s ? this.principalOf(ws, s.att) : undefined;
    return p ? this.expired(ws, p, Date.now()) : false;
  }

  /** After a refusal, for a socket still open: admitted afresh (the refusal may predate it). */
  private admitAgain(ws: WebSocket): boolean | Promise<boolean> {
    const s = this.core.sockets.subscriber(ws);
    return s ? this.admit(ws, s.att) : false;
  }

  /** A new socket: its principal is asked about now, unless an answer is fresh, so its first delivery seldom waits. */
  prefetch(ws: WebSocket, att: SubscriberAttachment): void {
    const p = this.principalOf(ws, att);
    if (p) void this.decide(p, 'messages:subscribe');
  }

  /**
   * The org's access changed (live.ts): every subscriber's principal is asked again now, in the
   * background, so a refusal closes its sockets though nothing is being delivered. A question
   * already under way may have read D1 before the change: this one is asked after it. Returns how
   * many principals were asked about.
   */
  recheckAll(): number {
    const asked = new Set<string>();
    for (const ws of this.core.ctx.getWebSockets(TAG_SUBSCRIBER)) {
      const s = this.core.sockets.subscriber(ws);
      const p = s && this.principalOf(ws, s.att);
      if (p === null) this.reauthorize(ws);
      if (!p) continue;
      const key = keyOf(p, 'messages:subscribe');
      if (asked.has(key)) continue;
      asked.add(key);
      const pending = this.decided.get(key)?.pending;
      const ask = () => void this.decide(p, 'messages:subscribe', true);
      if (pending) void pending.then(ask, ask);
      else ask();
    }
    return asked.size;
  }

  /** Whether the socket's principal may still publish (awaits a decision only when one is due). */
  async mayPublish(ws: WebSocket, att: SubscriberAttachment): Promise<boolean> {
    const p = this.principalOf(ws, att);
    if (p === undefined) return true;
    if (p === null) return this.reauthorize(ws);
    if (this.expired(ws, p, Date.now())) return false;
    return this.decide(p, 'messages:publish');
  }

  /**
   * A credential with an `exp` (a session or app token, an API key issued to expire) that has run
   * out: the socket is refused and closed (4401) before anything more is sent to it or taken from
   * it. A cached "allowed" would otherwise carry a busy channel's deliveries on for up to the
   * decision's bound after the expiry (the next question would answer 401 only then). A socket
   * that gets nothing closes at the expiry all the same, on the alarm (`closeExpired`).
   */
  private expired(ws: WebSocket, p: Principal, now: number): boolean {
    if (p.kind === 'device' || p.exp === undefined || p.exp * 1000 > now) return false;
    this.refuse(ws, CLOSE_UNAUTHORIZED, expiredReason(p.kind === 'key'));
    return true;
  }

  /**
   * Closes a subscriber whose permission or credential was withdrawn, after one last error frame
   * saying so (`closing`): the close frame is on its way too, but a client may act on the frame at
   * once — locally workerd ends such a server-closed connection's TCP only ~15 s later.
   */
  private refuse(ws: WebSocket, code: typeof CLOSE_FORBIDDEN | typeof CLOSE_UNAUTHORIZED, reason: string): void {
    const s = this.core.sockets.subscriber(ws);
    const status = code === CLOSE_UNAUTHORIZED ? 401 : 403;
    if (s) sendFrame(this.core, ws, { type: 'error', status, code: status === 401 ? 'unauthorized' : 'forbidden', message: reason, closing: true }, s.att.encoding);
    closeSocket(this.core, ws, code, reason);
  }

  /** Its principal did not survive hibernation: it connects (and is authorized) again. */
  private reauthorize(ws: WebSocket): false {
    closeSocket(this.core, ws, CLOSE_REAUTHORIZE, 'please reconnect: this connection must be authorized again');
    return false;
  }

  /** The principal's answer: a fresh one, the question under way, or a new question (`ahead`: even while the last answer is fresh). */
  private decide(p: Principal, action: Action, ahead = false): Promise<boolean> {
    const channel = this.core.store.channel;
    if (channel === null) return Promise.resolve(true); // no subscriber without a bound channel; nothing to ask about
    const key = keyOf(p, action);
    const d = this.decided.get(key);
    if (d?.pending) return d.pending;
    const now = Date.now();
    if (!ahead && d && now - d.at < this.ttl) return Promise.resolve(d.allowed);
    if (this.decided.size > 10_000) this.decided.clear();
    // While asked, the previous answer still counts until its own bound (`admit`); with none, the worker's at the upgrade.
    const trustedUntil = d ? (d.pending ? d.trustedUntil : d.at + this.ttl) : 0;
    // The previous answer is carried (with when it was asked) until this one comes: a failed question keeps it as it was.
    const entry: Decision = { at: now, askedAt: d?.askedAt ?? now, allowed: d?.allowed ?? true, pending: null, trustedUntil, ...(d?.unauthorized ? { unauthorized: true } : {}) };
    entry.pending = decideMessageAccess(this.core.env.DB, p, channel, action).then(
      (r) => {
        entry.allowed = r.allowed;
        entry.unauthorized = r.status === 401 && !r.allowed ? true : undefined;
        entry.askedAt = now;
        entry.at = Date.now();
        entry.pending = null;
        if (r.allowed) return true;
        if (r.status === 401) {
          // The credential, not a permission: every socket that presented it goes, whatever it does.
          this.closeAll(keyOf(p, 'messages:subscribe'), now, CLOSE_UNAUTHORIZED, r.reason ?? 'credential no longer valid');
        } else if (action === 'messages:subscribe') {
          // A 404 hides another org's channel from a stranger; a subscriber already here knows it
          // exists (deleting the channel ends it with 4404 instead), so it is told its access ended.
          const why = r.status === 404 ? 'no access to this channel any more (not in its org, or the org is gone)' : (r.reason ?? 'not allowed');
          this.closeAll(key, now, CLOSE_FORBIDDEN, `permission to subscribe withdrawn: ${why}`);
        }
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
  private closeAll(key: string, askedAt: number, code: typeof CLOSE_FORBIDDEN | typeof CLOSE_UNAUTHORIZED, reason: string): void {
    for (const ws of this.core.ctx.getWebSockets(TAG_SUBSCRIBER)) {
      if ((this.acceptedAt.get(ws) ?? 0) > askedAt) continue; // came in on a newer decision
      const s = this.core.sockets.subscriber(ws);
      const p = s && this.principalOf(ws, s.att);
      if (p && keyOf(p, 'messages:subscribe') === key) this.refuse(ws, code, reason);
    }
  }
}
