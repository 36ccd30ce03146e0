import WebSocket from 'ws';
import { decodeLinkFrame, encodeLinkFrame, LINK_LIMITS, LINK_SUBPROTOCOLS, linkDialect, type ActorOp, type BridgeOp, type LinkMessage, type LinkSettled } from '../../shared/link';
import { frames, groupProperties, mqtt5Of, propertyPairs } from './link-frames';
import type { Delivery, PublishOutcome, PublishRequest } from './types';

/**
 * One WebSocket to one channel actor (docs/bridge.md), shared by every local publisher and
 * subscriber of that channel:
 *  - publishes issued in the same tick go out as one frame (one actor transaction);
 *  - each publish resolves with the actor's ack (stored: seq) or nack, or a 503 if the link drops
 *    first (the device may retry: at-least-once);
 *  - deliveries are acknowledged cumulatively (`consumed`) once handed to the subscribers, so the
 *    actor's flow control sees a live consumer;
 *  - on reconnect every subscription resumes after the last seq it saw, so nothing is skipped.
 * `ws` is used on Node, Bun and Deno alike (Bun and Deno run it through their Node compatibility).
 */

/**
 * Whether the link's frames may go out with an all-zero masking key, which `ws` then skips: no XOR
 * pass and no copy of each frame (up to LINK_LIMITS.frameBytes); its `_mask` alone was 2.3 % of
 * the bridge's busy samples in a QoS 0 fan-in profile. A client must mask (RFC 6455 §5.3) so that
 * bytes a script chose cannot be taken for something else by an intermediary that does not speak
 * WebSocket (§10.3), and a device's payloads ride on the link: so the key stays random unless
 * nothing between the bridge and the worker can read the bytes — TLS (`wss:`), or a loopback
 * address.
 */
export function maskingNeedless(url: string): boolean {
  const u = new URL(url);
  if (u.protocol === 'wss:') return true;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

export interface LinkOptions {
  /** The link's WebSocket URL, or how to make it at each connect (the worker may have moved). */
  url: string | (() => string);
  bridgeSecret: string;
  /** Close the socket after this long with nothing using it (ms). */
  idleMs?: number;
  /** Start over when a frame of publishes is not answered within this long (ms; default 30 s). */
  answerTimeoutMs?: number;
  /** While spanning deliveries are unsettled, send something at least this often (ms; default 30 s): see beat(). */
  beatMs?: number;
  log?: (msg: string) => void;
}

interface Sub {
  filter: string;
  noLocal?: string;
  /** Its shared group spanning bridges (link v5, shared/link.ts). */
  share?: string;
  /** The `settle` of each of its spanning deliveries not settled yet (on this socket). */
  unsettled?: Set<() => void>;
  lastSeq: number | null;
  onMessage: (d: Delivery) => void;
  ready?: () => void;
  reject?: (e: Error) => void;
  subscribedAt?: number;
}

type Pending = (o: PublishOutcome) => void;

/** A numbered frame (`frame no`, link v5): how many of its spanning deliveries are not settled yet; `read` once all were handed over. */
interface SpanFrame {
  no: number;
  left: number;
  read: boolean;
}

/** Frames of publishes awaiting the actor's answer before further publishes wait (see flush). */
const MAX_UNANSWERED_FRAMES = 2;
/** How long the actor may take to answer a frame of publishes before the link starts over. */
const ANSWER_TIMEOUT_MS = 30_000;
/** Well under the 70–140 s without an incoming event after which the runtime may evict a channel actor. */
const BEAT_MS = 30_000;

const fail = (status: number, code: string, message: string): PublishOutcome => ({ ok: false, status, code, message });

export class ChannelLink {
  private ws: WebSocket | null = null;
  private open = false;
  private queue: BridgeOp[] = [];
  private flushScheduled = false;
  /** Per frame of publishes sent and not yet answered in full (oldest first): its last publish id. */
  private unanswered: { last: number; at: number }[] = [];
  private answerTimer: ReturnType<typeof setTimeout> | null = null;
  private nextId = 1;
  private nextSub = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subs = new Map<number, Sub>();
  private retryMs = 250;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  /** Frames sent (for tests and stats). */
  framesSent = 0;
  /** A permanent refusal (e.g. 404: the channel does not exist): no reconnects, everything fails with it. */
  private refused: PublishOutcome | null = null;
  /**
   * Shared groups spanning bridges (link v5): the socket speaks v5; how many subscriptions name a
   * group; the `settled` op queued and still open to more numbers; the socket's number, so that a
   * settle of a delivery from an earlier socket counts nothing (the actor gave it to another link
   * when that socket closed).
   */
  private spanning = false;
  private spanSubs = 0;
  private settledOp: LinkSettled | null = null;
  private socketNo = 0;
  private beatTimer: ReturnType<typeof setTimeout> | null = null;
  /** When flush() last sent a frame (ms): the actor heard from this link then. */
  private sentAt = 0;

  constructor(private readonly opts: LinkOptions) {}

  private get url(): string {
    return typeof this.opts.url === 'string' ? this.opts.url : this.opts.url();
  }

  get idle(): boolean {
    return this.subs.size === 0 && this.pending.size === 0 && this.queue.length === 0;
  }

  /**
   * For the ops server's metrics: `open`, or `down` — subscriptions or publishes wait for a socket
   * (connecting, or waiting to connect again) — or `idle`: nothing to carry, no socket needed.
   */
  get state(): 'open' | 'down' | 'idle' {
    if (this.open) return 'open';
    return this.closed || this.refused || this.idle ? 'idle' : 'down';
  }
  get unansweredPublishes(): number {
    return this.pending.size;
  }

  publish(req: PublishRequest): Promise<PublishOutcome> {
    if (this.refused) return Promise.resolve(this.refused);
    const id = this.nextId++;
    const properties = req.userProperties ? propertyPairs(req.userProperties) : undefined;
    return new Promise<PublishOutcome>((resolve) => {
      this.pending.set(id, resolve);
      this.send({ op: 'publish', id, subtopic: req.subtopic, publisher: req.publisher, protocol: req.protocol, contentType: req.contentType, payload: req.payload, retain: req.retain, ...(properties ? { properties } : {}), ...(req.messageExpiry !== undefined ? { expiry: req.messageExpiry } : {}), ...(req.qos === 0 || req.qos === 1 ? { qos: req.qos } : {}), ...mqtt5Of(req), ...(req.origin !== undefined ? { origin: req.origin } : {}) });
    });
  }

  /** Resolves once the actor confirmed the subscription and replayed what it keeps (retained first). */
  subscribe(filter: string, onMessage: (d: Delivery) => void, opts: { since?: number; noLocal?: string; share?: string } = {}): Promise<{ close: () => void; seq?: number }> {
    if (this.refused) return Promise.reject(new Error(this.refused.ok ? 'refused' : this.refused.message));
    const sub = this.nextSub++;
    const s: Sub = { filter, lastSeq: opts.since ?? null, onMessage, ...(opts.noLocal ? { noLocal: opts.noLocal } : {}), ...(opts.share !== undefined ? { share: opts.share, unsettled: new Set() } : {}) };
    this.subs.set(sub, s);
    if (s.share !== undefined) this.spanSubs++;
    const done = new Promise<void>((resolve, reject) => {
      s.ready = resolve;
      s.reject = reject;
    });
    this.send(subscribeOp(sub, s, opts.since));
    return done.then(() => ({
      // The channel's seq at subscription (from the suback), or the resume point given.
      ...(s.subscribedAt !== undefined ? { seq: s.subscribedAt } : {}),
      close: () => {
        if (!this.subs.delete(sub)) return;
        if (s.share !== undefined) this.spanSubs--;
        // Open: the actor is told. Not: the subscribe re-queued for the next socket (onClose) must not
        // go out, or the actor would keep a subscription nobody reads (in a group: given messages).
        if (this.open) {
          this.send({ op: 'unsubscribe', sub });
          // Its settles go in a `settled` op after the unsubscribe, never into an earlier one: the
          // actor gives a delivery to another link only on the unsubscribe, and releases it as
          // finished on the settle — a settle first would release it to no one.
          this.settledOp = null;
        } else this.queue = this.queue.filter((op) => !(op.op === 'subscribe' && op.sub === sub));
        // What it had not finished is given back (after the unsubscribe: the actor gives it to another bridge).
        for (const settle of [...(s.unsettled ?? [])]) settle();
        this.armIdle();
      },
    }));
  }

  close(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.beatTimer) (clearTimeout(this.beatTimer), (this.beatTimer = null));
    this.failPending(fail(503, 'bridge_closing', 'the bridge is shutting down'));
    this.ws?.close(1001, 'bridge shutting down');
  }

  private send(op: BridgeOp): void {
    if (this.idleTimer) (clearTimeout(this.idleTimer), (this.idleTimer = null));
    this.queue.push(op);
    this.connect();
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.open && !this.flushScheduled && this.queue.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Sends what is queued. At most MAX_UNANSWERED_FRAMES frames of publishes are in flight: while
   * they are, publishes (and what was queued after them, to keep the order) wait and then leave
   * together. Under load frames grow to what arrived meanwhile — fewer, bigger actor transactions —
   * while a lone publish still leaves at once. Acknowledgements (`consumed`, `settled`) and
   * `unsubscribe` never wait, and keep their order among themselves: a `settled` may name frames an
   * earlier `unsubscribe` gave back, which the actor must read first (it gives them to another link
   * only on the unsubscribe). An unsubscribe is never queued before its subscribe's suback (close()
   * exists only after it), and a subscribe re-queued while the link is down is filtered out, so it
   * cannot overtake its subscribe.
   */
  private flush(): void {
    this.flushScheduled = false;
    if (!this.open || !this.ws || this.queue.length === 0) return;
    let ops = this.queue;
    this.queue = [];
    this.settledOp = null;
    if (this.unanswered.length >= MAX_UNANSWERED_FRAMES) {
      const first = ops.findIndex((op) => op.op === 'publish');
      if (first >= 0) {
        this.queue = ops.slice(first).filter((op) => !neverHeld(op));
        ops = [...ops.slice(0, first), ...ops.slice(first).filter(neverHeld)];
      }
    }
    for (const frame of frames(ops)) {
      // String references and QoS only if the platform chose a subprotocol with them (an older worker answers v2 or v1).
      this.ws.send(encodeLinkFrame(frame, linkDialect(this.ws.protocol)));
      this.framesSent++;
      this.sentAt = Date.now();
      let last = -1;
      for (const op of frame) if (op.op === 'publish') last = op.id;
      if (last >= 0) this.unanswered.push({ last, at: Date.now() });
    }
    this.watchAnswers();
  }

  /**
   * A frame of publishes the actor has not answered within ANSWER_TIMEOUT_MS ends the socket: its
   * publishes fail with 503 (the devices retry), subscriptions resume on a new one, and the
   * publishes held behind it are not held forever.
   */
  private watchAnswers(): void {
    if (this.answerTimer || this.unanswered.length === 0) return;
    const wait = Math.max(0, this.unanswered[0]!.at + (this.opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS) - Date.now());
    this.answerTimer = setTimeout(() => {
      this.answerTimer = null;
      const oldest = this.unanswered[0];
      if (oldest && Date.now() - oldest.at >= (this.opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS)) {
        this.opts.log?.(`link ${this.url}: no answer to a frame of publishes in ${this.opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS} ms; reconnecting`);
        this.ws?.terminate();
      } else this.watchAnswers();
    }, wait);
    this.answerTimer.unref?.();
  }

  private connect(): void {
    if (this.ws || this.closed || this.refused) return;
    // No permessage-deflate: CBOR frames between a bridge and its platform cost more CPU to compress than they save.
    const ws = new WebSocket(this.url, [...LINK_SUBPROTOCOLS], {
      perMessageDeflate: false,
      headers: { authorization: `Bearer ${this.opts.bridgeSecret}` },
      ...(maskingNeedless(this.url) ? { generateMask: zeroMask } : {}),
    });
    ws.binaryType = 'nodebuffer';
    this.ws = ws;
    ws.on('open', () => {
      this.open = true;
      this.spanning = linkDialect(ws.protocol).share === true;
      this.retryMs = 250;
      this.flush();
    });
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 502;
      // 404: no such channel (deleted, or never existed) — permanent; anything else: retry.
      if (status === 404) this.refused = fail(404, 'channel_not_found', 'channel not found');
      else this.opts.log?.(`link ${this.url}: HTTP ${status}`);
      ws.terminate();
    });
    ws.on('message', (data: Buffer) => this.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
    ws.on('error', (e) => this.opts.log?.(`link ${this.url}: ${e.message}`));
    ws.on('close', () => this.onClose());
  }

  private onClose(): void {
    this.ws = null;
    this.open = false;
    // The actor gives what this socket left unsettled to the group again: settles from it count nothing now.
    this.spanning = false;
    this.settledOp = null;
    this.socketNo++;
    for (const s of this.subs.values()) s.unsettled?.clear();
    this.unanswered = [];
    if (this.answerTimer) (clearTimeout(this.answerTimer), (this.answerTimer = null));
    if (this.refused || this.closed) {
      this.failPending(this.refused ?? fail(503, 'link_lost', 'connection to the channel was lost; retry'));
      this.queue = this.queue.filter((op) => op.op !== 'publish' && !isAck(op));
    } else {
      // Publishes sent may or may not have been stored: the device is told to retry. Those still
      // queued (held behind unanswered frames, or not flushed yet) go out on the next socket.
      const unsent = new Set(this.queue.flatMap((op) => (op.op === 'publish' ? [op.id] : [])));
      const lost = fail(503, 'link_lost', 'connection to the channel was lost; retry');
      for (const [id, resolve] of this.pending) if (!unsent.has(id)) (this.pending.delete(id), resolve(lost));
      // Acknowledgements speak of the closed socket's deliveries and frames: never carried over.
      this.queue = this.queue.filter((op) => !isAck(op));
    }
    if (this.refused) {
      const why = this.refused.ok ? 'refused' : this.refused.message;
      for (const s of this.subs.values()) s.reject?.(Object.assign(new Error(why), { status: this.refused.ok ? 500 : this.refused.status }));
      this.subs.clear();
      this.spanSubs = 0;
      return;
    }
    if (this.closed || (this.subs.size === 0 && this.pending.size === 0)) return;
    // Resume every subscription after the last seq it saw.
    this.queue = this.queue.filter((op) => op.op !== 'subscribe');
    for (const [sub, s] of this.subs) this.queue.push(subscribeOp(sub, s, s.lastSeq ?? undefined));
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
    setTimeout(() => this.connect(), wait).unref?.();
  }

  private failPending(outcome: PublishOutcome): void {
    for (const resolve of this.pending.values()) resolve(outcome);
    this.pending.clear();
  }

  private receive(bytes: Uint8Array): void {
    let ops: ActorOp[];
    try {
      ops = decodeLinkFrame(bytes) as ActorOp[];
    } catch (e) {
      this.opts.log?.(`link ${this.url}: bad frame from actor: ${e instanceof Error ? e.message : String(e)}`);
      // It may have held group deliveries under a number this bridge now never settles: start over
      // (the actor gives what this socket held to the group again; subscriptions resume).
      if (this.spanning && this.spanSubs > 0) this.ws?.terminate();
      return;
    }
    let consumed = 0;
    const ready: (() => void)[] = [];
    let span: SpanFrame | null = null;
    for (const op of ops) {
      switch (op.op) {
        case 'ack':
          this.settle(op.id, { ok: true, seq: op.seq, created: op.created });
          break;
        case 'nack':
          this.settle(op.id, fail(op.status, op.code, op.reason));
          break;
        case 'suback': {
          const s = this.subs.get(op.sub);
          if (s && s.subscribedAt === undefined) s.subscribedAt = op.seq;
          if (s && s.lastSeq === null) s.lastSeq = op.seq;
          if (s?.ready) {
            ready.push(s.ready);
            delete s.ready;
            delete s.reject;
          }
          break;
        }
        case 'frame':
          if (this.spanning) span = { no: op.no, left: 0, read: false };
          break;
        case 'message':
          consumed = Math.max(consumed, this.deliver(op, span));
          break;
        case 'gap':
          this.opts.log?.(`link ${this.url}: subscription ${op.sub} missed seq ${op.from}..${op.to} (older than the actor keeps)`);
          break;
        case 'error':
          this.opts.log?.(`link ${this.url}: actor error ${op.code}: ${op.reason}`);
          // The actor could not read a frame, so it will never answer the publishes in it: start over
          // on a new socket (pending publishes fail with 503, subscriptions resume) rather than hang.
          if (op.code === 'bad_frame') this.ws?.terminate();
          break;
      }
    }
    // A numbered frame is settled once every spanning delivery in it is (at once if it handed none over:
    // those for a subscription closed meanwhile the actor gives to another link on the unsubscribe).
    if (span) {
      span.read = true;
      if (span.left === 0) this.settledFrame(span.no);
    }
    // Replays arrive in the same frame as their suback: subscribers are ready once all are delivered.
    for (const r of ready) r();
    if (consumed > 0) this.send({ op: 'consumed', seq: consumed });
    this.armIdle();
  }

  private settle(id: number, outcome: PublishOutcome): void {
    // The actor answers frames in order: this answer completes every frame up to the one with `id`.
    if (this.unanswered.length > 0 && id >= this.unanswered[0]!.last) {
      while (this.unanswered.length > 0 && id >= this.unanswered[0]!.last) this.unanswered.shift();
      this.scheduleFlush();
    }
    const resolve = this.pending.get(id);
    if (!resolve) return;
    this.pending.delete(id);
    resolve(outcome);
  }

  /** Tells the actor frame `no` is finished: numbers of one tick go in one `settled` op (shared/link.ts). */
  private settledFrame(no: number): void {
    if (!this.open) return;
    if (this.settledOp && this.settledOp.frames.length < LINK_LIMITS.settledPerOp) {
      this.settledOp.frames.push(no);
      return;
    }
    this.settledOp = { op: 'settled', frames: [no] };
    this.send(this.settledOp);
  }

  /** `settle` for one spanning delivery in `frame`: once, and only while this socket lives. */
  private settler(s: Sub, frame: SpanFrame): () => void {
    const socket = this.socketNo;
    let done = false;
    frame.left++;
    const settle = (): void => {
      if (done) return;
      done = true;
      s.unsettled?.delete(settle);
      if (socket !== this.socketNo) return;
      frame.left--;
      if (frame.left === 0 && frame.read) this.settledFrame(frame.no);
    };
    s.unsettled?.add(settle);
    this.beat();
    return settle;
  }

  /**
   * What the actor holds unsettled for this link is in its memory only, and a setTimeout there does
   * not stop the runtime from evicting it after 70–140 s without an incoming event — losing what a
   * device still holds (a QoS 1 delivery whose connection died silently is noticed only after 1.5×
   * its keep alive). So while any spanning delivery on this socket is unsettled, the link sends
   * something at least every `beatMs`: an empty `settled` (a no-op for the actor) when nothing else went.
   */
  private beat(wait = this.opts.beatMs ?? BEAT_MS): void {
    if (this.beatTimer || this.closed) return;
    this.beatTimer = setTimeout(() => {
      this.beatTimer = null;
      if (!this.open || !this.spanning || ![...this.subs.values()].some((s) => (s.unsettled?.size ?? 0) > 0)) return;
      const every = this.opts.beatMs ?? BEAT_MS;
      const quiet = Date.now() - this.sentAt;
      if (quiet < every) return this.beat(every - quiet);
      this.send({ op: 'settled', frames: [] });
      this.beat();
    }, wait);
    this.beatTimer.unref?.();
  }

  private deliver(op: LinkMessage, span: SpanFrame | null = null): number {
    const e = op.envelope;
    const userProperties = op.properties ? groupProperties(op.properties) : undefined;
    const d: Delivery = { channel: e.channel, subtopic: e.subtopic, publisher: e.publisher, protocol: e.protocol, contentType: e.contentType, payload: e.payload, created: e.created, seq: e.seq, retained: op.retained };
    if (userProperties) d.userProperties = userProperties;
    // op.expiry is what was left when the actor sent it: counted from now, not from `created` (counting twice lost messages).
    if (op.expiry !== undefined) d.expiresAt = Date.now() + op.expiry * 1000;
    if (op.retain) d.retainPublished = true;
    if (op.qos !== undefined) d.qos = op.qos;
    if (op.format !== undefined) d.format = op.format;
    if (op.responseTopic !== undefined) d.responseTopic = op.responseTopic;
    if (op.correlation !== undefined) d.correlation = op.correlation;
    for (const id of op.subs) {
      const s = this.subs.get(id);
      if (!s) continue;
      if (!op.retained) s.lastSeq = Math.max(s.lastSeq ?? 0, e.seq);
      try {
        s.onMessage(span && s.share !== undefined ? { ...d, settle: this.settler(s, span) } : d);
      } catch (err) {
        this.opts.log?.(`subscriber callback failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return op.retained ? 0 : e.seq;
  }

  private armIdle(): void {
    if (!this.idle || this.idleTimer || this.closed) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.idle) this.ws?.close(1000, 'idle');
    }, this.opts.idleMs ?? 60_000);
    this.idleTimer.unref?.();
  }
}

/** Acknowledgements of what the actor sent on this socket: never held behind publishes, never carried to the next socket. */
const isAck = (op: BridgeOp): boolean => op.op === 'consumed' || op.op === 'settled';

/** What flush() sends even while publishes wait: acknowledgements, and the unsubscribes they may follow. */
const neverHeld = (op: BridgeOp): boolean => isAck(op) || op.op === 'unsubscribe';

/** A subscription's op, on its first socket or again on the next one (`share` is written on a v5 link only: encodeLinkFrame). */
function subscribeOp(sub: number, s: Sub, since: number | undefined): BridgeOp {
  return { op: 'subscribe', sub, filter: s.filter, ...(since !== undefined ? { since } : {}), ...(s.noLocal ? { noLocal: s.noLocal } : {}), ...(s.share !== undefined ? { share: s.share } : {}) };
}
