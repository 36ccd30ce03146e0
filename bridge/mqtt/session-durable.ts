import WebSocket from 'ws';
import { CLOSE_TAKEN_OVER, parseActorOp, SESSION_SUBPROTOCOL, type SessionActorOp, type SessionBridgeOp, type SessionWill } from '../../shared/session-link';
import { propertyPairs } from '../platform/link-frames';
import { PlatformError, wsUrl, type WorkerUrl } from '../platform/types';
import type { OpenOptions, ReleaseOptions, SessionHolder, SessionLease, SessionState, SessionStore } from './session';

/**
 * Sessions kept by the platform: one session actor (objects/session/) per session key, reached
 * over a WebSocket per held session (docs/mqtt.md "Durable sessions"). The socket is also the
 * holder channel: the actor sends `takeover` over it when a connection on any bridge claims the
 * session, and this store hands that to the holder (the Connection), then answers `done` once
 * the holder's final release has been written. The bridge itself keeps nothing that a restart
 * would lose beyond the last checkpoint.
 */
export interface DurableSessionStoreOptions {
  workerUrl: WorkerUrl;
  bridgeSecret: string;
  /** A request to the session actor that takes longer fails (ms). Opening waits for a takeover too. */
  requestTimeoutMs?: number;
  /**
   * How often one sweep pings every held session socket (ms): keeps idle sockets open through
   * proxies, and a socket that left the previous ping unanswered is dropped as a failed one (the
   * session attaches again, or its connection ends: it could not be taken over).
   */
  pingMs?: number;
  /** How often a released holder with a pending delayed will is asked whether it still needs the socket (ms). */
  lingerPollMs?: number;
  log?: (msg: string) => void;
}

type Reply = Exclude<SessionActorOp, { op: 'takeover' }>;

/** The will as the session actor keeps it (to publish if this bridge vanishes). */
function wireWill(w: NonNullable<OpenOptions['will']>): SessionWill {
  const r = w.request;
  const properties = r.userProperties ? propertyPairs(r.userProperties) : undefined;
  return {
    channel: r.channel,
    subtopic: r.subtopic,
    publisher: w.publisher,
    contentType: r.contentType,
    payload: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength).toString('base64'),
    retain: r.retain,
    delay: w.delay,
    ...(properties ? { properties } : {}),
    ...(r.messageExpiry !== undefined ? { expiry: r.messageExpiry } : {}),
    ...(r.qos === 0 || r.qos === 1 ? { qos: r.qos } : {}),
    ...(r.format !== undefined ? { format: r.format } : {}),
    ...(r.responseTopic !== undefined ? { responseTopic: r.responseTopic } : {}),
    ...(r.correlation !== undefined ? { correlation: Buffer.from(r.correlation.buffer, r.correlation.byteOffset, r.correlation.byteLength).toString('base64') } : {}),
  };
}

/** Waits between attempts to attach again after the socket dropped (ms): ~8 s, inside the actor's 10 s grace. */
const REATTACH_BACKOFF = [250, 500, 1000, 2000, 4000];

/** What a held session needs from its store: one object per store, not closures per session. */
interface SessionLine {
  readonly timeoutMs: number;
  log(msg: string): void;
  /** A new socket to the session actor of `key`. */
  dial(key: string): WebSocket;
  /** The session no longer holds a socket. */
  gone(key: string, h: HeldSession): void;
}

type Pending = { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> };

/** The held session a socket belongs to. */
const HELD = Symbol('held session');
type SessionSocket = WebSocket & { [HELD]?: HeldSession };

// Listeners shared by every session socket (`this` is the socket): thousands of idle sessions
// hold no closures of their own for them.
function onMessage(this: SessionSocket, data: Buffer, binary: boolean): void {
  this[HELD]?.receive(binary ? '' : data.toString('utf8'));
}
function onClose(this: SessionSocket, code: number): void {
  this[HELD]?.socketClosed(this, code);
}
function onPong(this: SessionSocket): void {
  this[HELD]?.ponged(this);
}
function ignore(): void {}

/**
 * One held session: its socket, its pending requests, its holder. If the socket drops while the
 * connection lives (network, a worker restart), it attaches again with the same epoch; requests
 * made meanwhile wait for that.
 */
class HeldSession {
  epoch = 0;
  released = false;
  /** A release was sent: a drop after this is not undone by attaching again. */
  releasing = false;
  private ws!: SessionSocket;
  private nextId = 1;
  /** Requests awaiting their answer; made by the first request (an idle session has none). */
  private pending: Map<number, Pending> | null = null;
  private closedByUs = false;
  /** The last ping was answered (the store's one timer pings every held socket in turn: `ping()`). */
  private answered = true;
  /** When this socket is next pinged (ms). */
  pingAt = 0;
  /** Set while attaching again: requests wait for it. */
  private reattached: Promise<boolean> | null = null;
  private attaching = false;
  /** The holder was told of a takeover: the close that follows needs nothing more. */
  private handedOver = false;

  constructor(
    private readonly line: SessionLine,
    readonly key: string,
    readonly holder: SessionHolder,
  ) {}

  /** Opens the first socket; resolves when it is open. */
  connect(): Promise<void> {
    this.ws = this.line.dial(this.key);
    return this.wire(this.ws);
  }

  async request(op: Record<string, unknown> & { op: SessionBridgeOp['op'] }): Promise<Reply> {
    if (this.reattached && !(await this.reattached)) throw new PlatformError(503, 'session actor socket is closed');
    return this.send(this.ws, op);
  }

  /** Drops the socket as a network failure would (tests). */
  drop(): void {
    this.ws.terminate();
  }

  close(): void {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, 'released');
  }

  /**
   * Protocol-level ping, from the store's one sweep timer: the runtime answers it without waking a
   * hibernated actor. A socket that left the previous ping unanswered is dropped (as a network
   * failure: the session attaches again, or its connection ends).
   */
  ping(): void {
    const ws = this.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (!this.answered) return void ws.terminate();
    this.answered = false;
    ws.ping();
  }

  ponged(ws: SessionSocket): void {
    if (ws === this.ws) this.answered = true;
  }

  /** Listeners of one socket; resolves when it is open (the handshake's listeners are then removed). */
  private wire(ws: SessionSocket): Promise<void> {
    ws[HELD] = this;
    ws.on('message', onMessage);
    ws.on('error', ignore);
    ws.on('close', onClose);
    ws.on('pong', onPong);
    return new Promise<void>((resolve, reject) => {
      const settle = (e?: Error) => {
        ws.off('open', open).off('unexpected-response', refused).off('error', failed);
        if (e) return reject(e);
        if (ws === this.ws) this.answered = true;
        resolve();
      };
      const open = () => settle();
      const refused = (_req: unknown, res: { statusCode?: number }) => {
        settle(new PlatformError(503, `session actor refused the socket: HTTP ${res.statusCode ?? '?'}`));
        ws.terminate();
      };
      const failed = (e: Error) => settle(new PlatformError(503, `session actor unreachable: ${e.message}`));
      ws.on('open', open).on('unexpected-response', refused).on('error', failed);
    });
  }

  private send(ws: WebSocket, op: Record<string, unknown> & { op: SessionBridgeOp['op'] }): Promise<Reply> {
    if (ws.readyState !== WebSocket.OPEN) return Promise.reject(new PlatformError(503, 'session actor socket is closed'));
    const id = this.nextId++;
    const pending = (this.pending ??= new Map());
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        if (pending.size === 0 && this.pending === pending) this.pending = null;
        reject(new PlatformError(503, `session actor did not answer ${op.op} in ${this.line.timeoutMs} ms`));
      }, this.line.timeoutMs);
      pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...op, id }));
    });
  }

  receive(text: string): void {
    let op: SessionActorOp;
    try {
      op = parseActorOp(text);
    } catch (e) {
      return this.line.log(`session actor sent a bad frame: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (op.op === 'takeover') return void this.takeover(op.clean);
    const id = op.id;
    if (id === undefined) return this.line.log(`session actor error: ${op.op === 'error' ? `${op.code}: ${op.reason}` : op.op}`);
    const p = this.pending?.get(id);
    if (!p) return;
    this.pending!.delete(id);
    // Idle sessions keep no empty map (~270 bytes each).
    if (this.pending!.size === 0) this.pending = null;
    clearTimeout(p.timer);
    if (op.op === 'error') p.reject(new PlatformError(503, `session actor: ${op.code}: ${op.reason}`));
    else p.resolve(op);
  }

  /** Another connection claimed the session: end ours (which releases it), then say done. */
  private async takeover(clean: boolean): Promise<void> {
    this.handedOver = true;
    try {
      await this.holder.takenOver({ clean });
    } catch (e) {
      this.line.log(`takeover: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ op: 'done' } satisfies SessionBridgeOp));
  }

  private rejectPending(code: number): void {
    if (!this.pending) return;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new PlatformError(503, `session actor socket closed (${code})`));
    }
    this.pending = null;
  }

  socketClosed(ws: WebSocket, code: number): void {
    if (ws !== this.ws) return;
    if (this.attaching) return this.rejectPending(code);
    this.rejectPending(code);
    if (this.closedByUs || this.released || this.releasing || this.handedOver || this.epoch === 0) return this.line.gone(this.key, this);
    // Claimed elsewhere without our answer: end the connection as taken over.
    if (code === CLOSE_TAKEN_OVER) {
      this.line.gone(this.key, this);
      return void this.holder.takenOver({ clean: false });
    }
    // The socket dropped under a live connection: hold the session again with the same epoch.
    this.reattached = this.reattach(code);
  }

  private async reattach(code: number): Promise<boolean> {
    this.attaching = true;
    try {
      return await this.attachAgain(code);
    } finally {
      this.attaching = false;
    }
  }

  private async attachAgain(code: number): Promise<boolean> {
    for (const wait of REATTACH_BACKOFF) {
      await new Promise((r) => setTimeout(r, wait).unref?.());
      if (this.closedByUs) return false;
      const ws = this.line.dial(this.key);
      this.ws = ws;
      try {
        await this.wire(ws);
        const r = await this.send(ws, { op: 'attach', epoch: this.epoch });
        if (r.op === 'attached' && r.ok) {
          this.line.log(`session socket attached again after close ${code}`);
          this.reattached = null;
          return true;
        }
        break; // claimed by another connection meanwhile
      } catch {
        ws.terminate();
      }
    }
    this.closedByUs = true;
    this.ws.terminate();
    this.line.gone(this.key, this);
    // The session actor publishes the will if due: the connection ends without it.
    this.holder.storeLost?.(`session store connection lost (${code})`);
    return false;
  }
}

export class DurableSessionStore implements SessionStore {
  private readonly held = new Map<string, HeldSession>();
  private readonly line: SessionLine;
  /** One timer pings every held socket in turn, while any is held (not a timer per session). */
  private pinger: ReturnType<typeof setInterval> | null = null;
  private readonly pingMs: number;

  constructor(private readonly opts: DurableSessionStoreOptions) {
    const headers = { authorization: `Bearer ${opts.bridgeSecret}` };
    this.pingMs = opts.pingMs ?? 30_000;
    this.line = {
      // Opening may wait for the previous holder (the actor gives it 3 s).
      timeoutMs: opts.requestTimeoutMs ?? 10_000,
      log: opts.log ?? (() => undefined),
      dial: (key) => new WebSocket(`${wsUrl(opts.workerUrl)}/internal/sessions/${encodeURIComponent(key)}`, SESSION_SUBPROTOCOL, { perMessageDeflate: false, headers }),
      gone: (key, h) => {
        if (this.held.get(this.id(key, h.epoch)) === h) this.unhold(this.id(key, h.epoch));
      },
    };
  }

  async open(key: string, holder: SessionHolder, clean: boolean, opts: OpenOptions = {}): Promise<SessionLease> {
    const h = new HeldSession(this.line, key, holder);
    try {
      await h.connect();
      const r = await h.request({ op: 'open', clean, expiry: opts.expirySeconds ?? 0, ...(opts.will ? { will: wireWill(opts.will) } : {}) });
      if (r.op !== 'opened') throw new PlatformError(503, `session actor answered ${r.op} to open`);
      h.epoch = r.epoch;
      this.hold(this.id(key, r.epoch), h);
      return { epoch: r.epoch, state: (r.state as SessionState | null) ?? null };
    } catch (e) {
      h.close();
      throw e;
    }
  }

  async save(key: string, epoch: number, state: SessionState): Promise<boolean> {
    const h = this.held.get(this.id(key, epoch));
    if (!h) return false;
    const r = await h.request({ op: 'save', epoch, state });
    return r.op === 'saved' && r.ok;
  }

  /** The session actor publishes a will left with a release when it is due. */
  readonly keepsWills = true;

  async release(key: string, epoch: number, state: SessionState | null, expirySeconds: number, opts: ReleaseOptions = {}): Promise<void> {
    const h = this.held.get(this.id(key, epoch));
    if (!h) return;
    h.releasing = true;
    try {
      await h.request({ op: 'release', epoch, state, expiry: expirySeconds, ...(opts.willDelay !== undefined ? { willDelay: opts.willDelay } : {}) });
    } finally {
      // Also when the release failed: a socket nobody needs does not stay open.
      h.released = true;
      this.linger(key, epoch, h);
    }
  }

  /** Closes every held socket (bridge shutdown, after the MQTT server released its sessions). */
  async close(): Promise<void> {
    for (const h of this.held.values()) h.close();
    this.held.clear();
    this.stopPinging();
  }

  /** Drops every session socket without a release, as a network failure or worker restart would (tests). */
  dropSockets(): void {
    for (const h of this.held.values()) h.drop();
  }

  /** Open sockets (tests and stats). */
  get size(): number {
    return this.held.size;
  }

  private id(key: string, epoch: number): string {
    return `${epoch}\u0000${key}`;
  }

  /**
   * Each socket is pinged `pingMs` after it was held and every `pingMs` after that, as a timer per
   * socket would, so pings stay spread over time as the sockets were opened (not thousands in one
   * burst at the session actors). `held` is kept in ping order: the next due is always first, and
   * a pinged socket moves to the end.
   */
  private hold(id: string, h: HeldSession): void {
    h.pingAt = Date.now() + this.pingMs;
    this.held.set(id, h);
    if (this.pinger) return;
    this.pinger = setInterval(() => this.pingDue(), Math.min(1000, this.pingMs));
    this.pinger.unref?.();
  }

  private pingDue(): void {
    const now = Date.now();
    for (const [id, h] of this.held) {
      if (h.pingAt > now) return;
      h.pingAt = now + this.pingMs;
      this.held.delete(id);
      this.held.set(id, h);
      h.ping();
    }
  }

  private unhold(id: string): void {
    this.held.delete(id);
    if (this.held.size === 0) this.stopPinging();
  }

  private stopPinging(): void {
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
  }

  /**
   * A released holder keeps its socket while it still needs to hear of a reconnect (a pending
   * delayed will, cancelled or sent by the next claim); then the socket closes.
   */
  private linger(key: string, epoch: number, h: HeldSession): void {
    const check = (holder: SessionHolder | undefined) => holder?.lingering?.() === true;
    const poll = () => {
      if (this.held.get(this.id(key, epoch)) !== h) return;
      if (!check(h.holder)) {
        this.unhold(this.id(key, epoch));
        h.close();
        return;
      }
      setTimeout(poll, this.opts.lingerPollMs ?? 1000).unref?.();
    };
    poll();
  }
}
