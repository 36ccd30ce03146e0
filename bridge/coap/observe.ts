/**
 * Observations (RFC 7641): a GET with Observe=0 on a channel address registers an observer keyed
 * by (endpoint, token) (§4.1); the response carries the first message waiting (a retained one) or
 * is an empty 2.05, and every later message of the subscription is a notification with an
 * increasing 24-bit Observe number (§4.4). Most notifications are NON; every `observeConEvery`th,
 * and the first after `observeConIntervalMs`, is CON (§4.5), and while it awaits its ACK further
 * messages queue (NSTART = 1, RFC 7252 §4.7) — in order, never replaced, because each one is a
 * message rather than a newer state. A RST to any notification, or a CON one left unacknowledged
 * after MAX_RETRANSMIT, removes the observer (§3.6, §4.5).
 *
 * An observation keeps its permission only as long as the platform does: the first notification
 * after the last answer is `authorizationTtlMs` old asks again (without holding it up). When the
 * permission is withdrawn — the device's connection removed, its key rotated, the device deleted —
 * the observation ends with a last response that is not 2.xx and carries no Observe option: 4.03,
 * or 4.01 for a credential no longer good (§3.2, §4.2: the client then knows it is not observing).
 */
import { Opt, blockSize, decodeBlock, szxFor, uintOption, type Block } from '../../shared/coap';
import type { Principal } from '../../shared/principal';
import type { Delivery, Subscription } from '../platform/types';
import { blockReply, type Representation } from './blockwise';
import type { Context } from './context';
import type { Exchange } from './message-layer';
import { Liveness } from './liveness';
import { errorReply, platformStatus, unavailable } from './replies';
import { deliveryRepresentation, emptyRepresentation, formatOfDelivery } from './representation';
import type { Reply, Send, Timer } from './types';

/** Observation ends the device itself caused (a RST, a deregistering GET, a re-registration): signs it is alive. */
const DEVICE_ENDED: ReadonlySet<string> = new Set(['reset', 'deregistered', 're-registered']);

export interface ObserveTarget {
  channel: string;
  /** Subscription filter: `#` for the channel root, else the subtopic, possibly with `+`/`#`. */
  filter: string;
  /** The registration's downloadKey (endpoint, path and query, blockwise.ts): where Block2 follow-up requests find the representation. */
  repKey: string;
}

/**
 * A notification sent cut into blocks, whose later blocks the client is fetching. While `hold` runs
 * (until its last block is served, or `observeBlockWaitMs`, or the cut is forgotten after
 * `blockTimeoutMs` without a block — whichever comes first) newer notifications wait in the queue:
 * a client still fetching this one's blocks must not be sent another one's — the npm `coap`
 * package appends every Block2 payload that arrives on the token to the one it is assembling.
 */
interface Cut {
  rep: Representation;
  /** Its Observe number: the answers to the observation's own follow-up requests carry it. */
  seq: number;
  /** The byte offset of the block the client's next follow-up asks for. */
  next: number;
  hold: Timer | undefined;
  /** Forgets the cut after `blockTimeoutMs` without a block, as a kept representation (blockwise.ts), and lets what it held go. */
  expiry: Timer;
}

interface Observer {
  key: string;
  epKey: string;
  send: Send;
  token: Uint8Array;
  principal: Principal;
  target: ObserveTarget;
  accept: number | undefined;
  szx: number;
  sub?: Subscription;
  seq: number;
  sinceCon: number;
  lastConAt: number;
  inFlight: number | undefined;
  queue: Delivery[];
  /** The notification in blocks being fetched, if any. */
  cut: Cut | undefined;
  active: boolean;
  closed: boolean;
  dropped: number;
  /** When the permission to subscribe was last decided (register, or the last re-check asked). */
  checkedAt: number;
  /** The platform's accessVersion at that check: when it moves, the observer is checked again. */
  checkedVersion: number;
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
/** §4.4: Observe sequence numbers are 24-bit and wrap. */
export const nextObserveNumber = (n: number): number => (n + 1) % 0x1000000;

export class Observers {
  private readonly byKey = new Map<string, Observer>();
  private readonly perPrincipal = new Map<string, number>();
  private readonly liveness: Liveness;
  private readonly stopFollowing: (() => void) | undefined;

  constructor(private readonly ctx: Context) {
    this.liveness = new Liveness(ctx, (epKey) => {
      for (const o of [...this.byKey.values()]) if (o.epKey === epKey) this.remove(o, 'ping unanswered');
    });
    this.stopFollowing = ctx.platform.onAccessChange?.((org) => this.accessChanged(org));
  }

  /**
   * Access in `org` may have changed (undefined: anywhere): its observations are asked about now
   * rather than at their next notification, so one on a quiet channel whose credential or
   * permission was withdrawn ends within about a second too.
   */
  accessChanged(org: string | undefined): void {
    for (const o of [...this.byKey.values()]) if (org === undefined || (o.principal.kind !== 'user' && o.principal.orgId === org)) this.recheck(o);
  }

  /** The message layer heard from this endpoint. */
  heard(epKey: string): void {
    this.liveness.heard(epKey);
  }

  get size(): number {
    return this.byKey.size;
  }

  /**
   * Registers (or re-registers, §4.1: replacing) the observation of `ex`. Returns false, having
   * done nothing, when a limit is reached: the caller then answers as a plain GET, without Observe,
   * which tells the client it is not registered (§4.1). `version`: the platform's accessVersion
   * read before the permission was asked for.
   */
  async register(ex: Exchange, principal: Principal, target: ObserveTarget, accept: number | undefined, block2: Block | undefined, version: number): Promise<boolean> {
    const { limits, platform, log } = this.ctx;
    const key = `${ex.epKey}#${hex(ex.token)}`;
    const previous = this.byKey.get(key);
    if (previous) this.remove(previous, 're-registered');
    if ((this.perPrincipal.get(principal.id) ?? 0) >= limits.maxObserversPerDevice || this.byKey.size >= limits.maxObservers) {
      log.warn('coap: observation refused, limit reached', { principal: principal.id, endpoint: ex.epKey });
      return false;
    }
    const o: Observer = {
      key, epKey: ex.epKey, send: ex.send, token: ex.token, principal, target, accept,
      szx: Math.min(block2?.szx ?? 6, szxFor(limits.maxBlockBytes)),
      // Carried over on re-registration so the client's freshness check (§3.4) keeps passing.
      seq: previous?.seq ?? 1,
      sinceCon: 0, lastConAt: this.ctx.clock.now(), inFlight: undefined, queue: [], cut: undefined, active: false, closed: false, dropped: 0, checkedAt: this.ctx.clock.now(), checkedVersion: version,
    };
    this.byKey.set(key, o);
    this.perPrincipal.set(principal.id, (this.perPrincipal.get(principal.id) ?? 0) + 1);
    this.ctx.auth.observing(principal, 1);
    this.liveness.watch(o.epKey, o.send);
    try {
      const sub = await platform.subscribe({ channel: target.channel, filter: target.filter }, (d) => this.deliver(o, d));
      if (o.closed) sub.close();
      else o.sub = sub;
    } catch (e) {
      this.remove(o, 'subscribe failed');
      ex.respond(errorReply(e, limits, log));
      return true;
    }
    if (o.closed) {
      // Cancelled while subscribing (a GET without Observe on the same token): answer plainly.
      ex.respond(emptyRepresentation(limits));
      return true;
    }
    const first = o.queue.shift();
    const rep = first ? deliveryRepresentation(first, limits) : emptyRepresentation(limits);
    ex.respond(this.notification(o, rep), { onReset: () => this.remove(o, 'reset'), onTimeout: () => this.remove(o, 'no ack') });
    o.active = true;
    this.flush(o);
    return true;
  }

  /** Ends the observation of (endpoint, token), if any (§3.6: GET with Observe=1 or without Observe). */
  /**
   * Ends the observation of `token` — only of `repKey`'s resource when given: RFC 7641 §3.6 ends an
   * observation with a GET of the same resource, so a GET elsewhere that reuses the token leaves it.
   */
  cancel(epKey: string, token: Uint8Array, repKey?: string): boolean {
    const o = this.byKey.get(`${epKey}#${hex(token)}`);
    if (!o || (repKey !== undefined && o.target.repKey !== repKey)) return false;
    this.remove(o, 'deregistered');
    return true;
  }

  /**
   * The answer to a notification's later block fetched with its observation's own request
   * (Observe: 0, the token of the observation of `repKey`'s resource, Block2 NUM > 0: the npm `coap`
   * package does so). Such a request re-registers (RFC 7641 §4.1), so the answer carries Observe
   * (without, it would say the observation is over, §3.2), and it is the number of the notification
   * whose first block was sent: the block comes from that notification, never from a newer one or
   * from a plain GET's answer. null: past its end; undefined: no such notification in blocks (served
   * whole, expired or replaced), the caller reads afresh without Observe.
   */
  fetch(epKey: string, token: Uint8Array, repKey: string, block: Block): Reply | null | undefined {
    const o = this.byKey.get(`${epKey}#${hex(token)}`);
    const cut = o && !o.closed && o.target.repKey === repKey ? o.cut : undefined;
    if (!o || !cut) return undefined;
    const reply = blockReply(cut.rep, block, this.ctx.limits);
    if (!reply) return null;
    const opt = reply.options?.find((x) => x.number === Opt.Block2);
    const sent = opt && decodeBlock(opt.value);
    if (sent?.more) {
      cut.next = (sent.num + 1) * blockSize(sent.szx);
      this.moved(o, cut);
    } else this.served(o, cut);
    return { ...reply, options: [...(reply.options ?? []).filter((x) => x.number !== Opt.Observe), uintOption(Opt.Observe, cut.seq)] };
  }

  /**
   * Whether (endpoint, token) observes `repKey`'s resource: a GET with Observe: 0 and Block2 NUM > 0
   * is then a notification's block asked for with the observation's own request (`fetch`). Without
   * such an observation (its registration refused, answered as a plain read) it is the next block
   * of that read, served from the representation kept for it (resources.ts).
   */
  observing(epKey: string, token: Uint8Array, repKey: string): boolean {
    const o = this.byKey.get(`${epKey}#${hex(token)}`);
    return o !== undefined && !o.closed && o.target.repKey === repKey;
  }

  /** Whether `block` is the next one of the notification the observation of (endpoint, token) on `repKey` is fetching: it moves a transfer on. */
  continues(epKey: string, token: Uint8Array, repKey: string, block: Block): boolean {
    const o = this.byKey.get(`${epKey}#${hex(token)}`);
    const cut = o && !o.closed && o.target.repKey === repKey ? o.cut : undefined;
    return cut !== undefined && block.num > 0 && block.num * blockSize(block.szx) === cut.next;
  }

  /**
   * A block of `cut`, not its last, was served — with the observation's request (`fetch`) or with
   * another (read.ts, from the kept copy: libcoap): `blockTimeoutMs` starts again, so a client
   * still fetching is never taken for one that stopped (`expired` would send the held notifications
   * into its transfer).
   */
  private moved(o: Observer, cut: Cut): void {
    if (o.cut !== cut) return;
    cut.expiry.cancel();
    cut.expiry = this.ctx.clock.setTimer(this.ctx.limits.blockTimeoutMs, () => this.expired(o, cut));
  }

  /** The last block of `cut` was served: newer notifications may go. */
  private served(o: Observer, cut: Cut): void {
    if (o.cut !== cut) return;
    this.forgetCut(o, cut);
    // After the answer carrying that last block is sent (the caller sends it once this returns).
    queueMicrotask(() => this.flush(o));
  }

  /** `cut`'s wait is over (its last block served, or `observeBlockWaitMs` passed): queued notifications go. */
  private release(o: Observer, cut: Cut): void {
    if (o.cut !== cut || !cut.hold) return;
    cut.hold.cancel();
    cut.hold = undefined;
    this.flush(o);
  }

  /**
   * `cut` went `blockTimeoutMs` without a block: the client stopped fetching it. It is forgotten and,
   * if it still held newer notifications (`observeBlockWaitMs` longer than `blockTimeoutMs`), they go
   * now — before, they stayed queued until the next message arrived.
   */
  private expired(o: Observer, cut: Cut): void {
    if (o.cut !== cut) return;
    this.forgetCut(o, cut);
    this.flush(o);
  }

  private forgetCut(o: Observer, cut: Cut): void {
    cut.hold?.cancel();
    cut.hold = undefined;
    cut.expiry.cancel();
    if (o.cut === cut) o.cut = undefined;
  }

  private deliver(o: Observer, d: Delivery): void {
    if (o.closed) return;
    this.recheck(o);
    if (o.accept !== undefined && formatOfDelivery(d) !== o.accept) return; // the client asked for one format only
    o.queue.push(d);
    if (o.queue.length > this.ctx.limits.observeQueue) {
      o.queue.shift();
      if (o.dropped++ % 100 === 0) this.ctx.log.warn('coap: observer too slow, oldest queued notifications dropped', { endpoint: o.epKey, dropped: o.dropped });
    }
    if (o.active) this.flush(o);
  }

  /** Asks the platform again once the observer's permission is `authorizationTtlMs` old, or its accessVersion moved; a refusal ends the observation. */
  private recheck(o: Observer): void {
    const { clock, limits, platform, log } = this.ctx;
    const now = clock.now();
    const version = platform.accessVersion?.(o.principal) ?? 0;
    if (now - o.checkedAt < limits.authorizationTtlMs && version === o.checkedVersion) return;
    o.checkedAt = now;
    o.checkedVersion = version;
    platform.authorize(o.principal, [{ channel: o.target.channel, action: 'messages:subscribe' }]).then(
      ([d]) => {
        if (!d || d.allowed || o.closed) return;
        const status = d.status === 401 || d.status === 404 ? d.status : 403;
        const reason = d.reason ?? (status === 401 ? 'credential no longer valid' : `no longer allowed to subscribe to channel ${o.target.channel}`);
        this.end(o, platformStatus(status, reason, limits), `refused on re-check: ${reason}`);
      },
      (e: unknown) => log.warn('coap: could not re-check an observation', { endpoint: o.epKey, channel: o.target.channel, error: e instanceof Error ? e.message : String(e) }),
    );
  }

  /** Ends the observation with a last, non-2.xx response (no Observe option: §4.2), confirmable so that it arrives. */
  private end(o: Observer, reply: Reply, why: string): void {
    const { epKey, send, token } = o;
    this.remove(o, why);
    this.ctx.layer.sendResponse(epKey, send, token, reply, true, {});
  }

  /** Sends queued messages while no confirmable notification is in flight and no notification's blocks are being fetched. */
  private flush(o: Observer): void {
    const { limits, clock, layer } = this.ctx;
    while (!o.closed && o.inFlight === undefined && !o.cut?.hold && o.queue.length > 0) {
      const d = o.queue.shift()!;
      const now = clock.now();
      const confirmable = o.sinceCon + 1 >= limits.observeConEvery || now - o.lastConAt >= limits.observeConIntervalMs;
      const reply = this.notification(o, deliveryRepresentation(d, limits));
      const gone = (why: string) => () => this.remove(o, why);
      if (confirmable) {
        o.sinceCon = 0;
        o.lastConAt = now;
        const mid = layer.sendResponse(o.epKey, o.send, o.token, reply, true, {
          onAck: () => {
            if (o.inFlight !== mid) return;
            o.inFlight = undefined;
            this.flush(o);
          },
          onReset: gone('reset'),
          onTimeout: gone('no ack'),
        });
        o.inFlight = mid;
      } else {
        o.sinceCon++;
        layer.sendResponse(o.epKey, o.send, o.token, reply, false, { onReset: gone('reset') });
      }
    }
  }

  /**
   * The representation with the next Observe number, cut to the observer's first block if large
   * (RFC 7959 §2.6 / §3.4); then the later blocks are fetched with GET + Block2 — with the
   * observation's own request (`fetch`), or another (read.ts, from the representation kept under
   * the registration's downloadKey: endpoint, path and query) — and newer notifications wait (Cut).
   */
  private notification(o: Observer, rep: Representation): Reply {
    o.seq = nextObserveNumber(o.seq);
    const withObserve: Representation = { ...rep, options: [...rep.options, uintOption(Opt.Observe, o.seq)] };
    const reply = blockReply(withObserve, rep.payload.length > 2 ** (o.szx + 4) ? { num: 0, more: false, szx: o.szx } : undefined, this.ctx.limits) ?? withObserve;
    if (o.cut) this.forgetCut(o, o.cut);
    if (reply !== withObserve) {
      const { clock, limits, reps } = this.ctx;
      const cut: Cut = { rep, seq: o.seq, next: blockSize(o.szx), hold: undefined, expiry: { cancel() {} } };
      cut.hold = clock.setTimer(limits.observeBlockWaitMs, () => this.release(o, cut));
      cut.expiry = clock.setTimer(limits.blockTimeoutMs, () => this.expired(o, cut));
      o.cut = cut;
      reps.keep(o.target.repKey, rep, blockSize(o.szx), () => this.served(o, cut), () => this.moved(o, cut));
    }
    return reply;
  }

  /** Ends an observation; `why` says who ended it (DEVICE_ENDED: the device itself, so it is alive). */
  private remove(o: Observer, why: string): void {
    if (o.closed) return;
    o.closed = true;
    if (this.byKey.get(o.key) === o) this.byKey.delete(o.key);
    const n = (this.perPrincipal.get(o.principal.id) ?? 1) - 1;
    if (n > 0) this.perPrincipal.set(o.principal.id, n);
    else this.perPrincipal.delete(o.principal.id);
    this.ctx.auth.observing(o.principal, -1, DEVICE_ENDED.has(why));
    this.liveness.unwatch(o.epKey);
    o.sub?.close();
    if (o.inFlight !== undefined) this.ctx.layer.transmitter.cancel(o.epKey, o.inFlight);
    o.queue = [];
    if (o.cut) this.forgetCut(o, o.cut);
    this.ctx.log.debug('coap: observation ended', { endpoint: o.epKey, channel: o.target.channel, why });
  }

  /**
   * The bridge stops: each observation ends with a last 5.03 (no Observe option, §3.2, §4.2), so its
   * client knows it is no longer observing and registers again — at another bridge behind the same
   * address, or this one restarted — instead of waiting out the last Max-Age (an hour) in silence.
   * Non-confirmable: nothing would be left to retransmit it.
   */
  close(): void {
    this.stopFollowing?.();
    for (const o of [...this.byKey.values()]) {
      const { epKey, send, token } = o;
      this.remove(o, 'server closing');
      this.ctx.layer.sendResponse(epKey, send, token, unavailable(this.ctx.limits, 'server shutting down'), false, {});
    }
    this.liveness.close();
  }
}
