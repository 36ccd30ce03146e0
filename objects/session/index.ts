import { DurableObject } from 'cloudflare:workers';
import { CLOSE_EXPIRED, CLOSE_TAKEN_OVER, parseBridgeOp, SESSION_SUBPROTOCOL, SessionFrameError, type SessionActorOp, type SessionBridgeOp, type SessionWill } from '../../shared/session-link';
import { HEADER_SESSION_KEY } from './headers';
import { SessionStorage, type SessionRow } from './store';

export { HEADER_SESSION_KEY };

/** How long a claim waits for the previous holder to finish (its final release lands first). */
export const TAKEOVER_TIMEOUT_MS = 3000;
/** A stored session is the bridge's filters, cursors and packet ids: small. Refuse anything huge. */
export const MAX_STATE_BYTES = 512 * 1024;

/** Per socket, in its attachment (survives hibernation): 0 until the socket has claimed the session. */
interface HolderAttachment {
  key: string;
  epoch: number;
}

type Open = Extract<SessionBridgeOp, { op: 'open' }>;
type Save = Extract<SessionBridgeOp, { op: 'save' }>;
type Release = Extract<SessionBridgeOp, { op: 'release' }>;
type Attach = Extract<SessionBridgeOp, { op: 'attach' }>;

const attachment = (ws: WebSocket): HolderAttachment => (ws.deserializeAttachment() as HolderAttachment | null) ?? { key: '', epoch: 0 };

const decodeKey = (v: string | null): string | null => {
  try {
    return v ? decodeURIComponent(v) : null;
  } catch {
    return null;
  }
};

const send = (ws: WebSocket, op: SessionActorOp): void => {
  try {
    ws.send(JSON.stringify(op));
  } catch {
    /* the socket is gone: its close event does the bookkeeping */
  }
};

const closeSocket = (ws: WebSocket, code: number, reason: string): void => {
  try {
    ws.close(code, reason);
  } catch {
    /* already closed */
  }
};

/**
 * One actor per MQTT session key (docs/mqtt.md "Durable sessions"). It holds the session's state
 * for whichever bridge holds it, fences writes by epoch, tells the previous holder when a new
 * connection claims the session (over that holder's hibernatable WebSocket), and forgets released
 * state when it expires (an alarm). Entry points are thin; each hands off to a named handler.
 */
export class SessionActor extends DurableObject<Env> {
  private readonly store: SessionStorage;
  /** Claims run one at a time, in arrival order. */
  private claims: Promise<void> = Promise.resolve();
  /** Previous holders being waited for: their `done` (or close) resolves the wait. */
  private readonly waiting = new Map<WebSocket, () => void>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new SessionStorage(ctx.storage);
    void ctx.blockConcurrencyWhile(async () => this.store.ensureSchema());
  }

  /** The holder socket (the worker has checked the bridge credential and set the key). */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return Response.json({ ok: false, status: 426, code: 'upgrade_required', message: 'the session actor only accepts WebSocket upgrades' }, { status: 426 });
    const key = decodeKey(request.headers.get(HEADER_SESSION_KEY));
    if (!key) return Response.json({ ok: false, status: 400, code: 'bad_internal_header', message: `${HEADER_SESSION_KEY} is required` }, { status: 400 });
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ key, epoch: 0 } satisfies HolderAttachment);
    const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((s) => s.trim());
    const headers = new Headers();
    if (offered.includes(SESSION_SUBPROTOCOL)) headers.set('sec-websocket-protocol', SESSION_SUBPROTOCOL);
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    let op: SessionBridgeOp;
    try {
      if (typeof message !== 'string') throw new SessionFrameError('frames are JSON text');
      op = parseBridgeOp(message);
    } catch (e) {
      return send(ws, { op: 'error', code: 'bad_frame', reason: e instanceof Error ? e.message : String(e) });
    }
    switch (op.op) {
      case 'open': {
        const claim = this.claims.then(() => this.open(ws, op));
        this.claims = claim.catch(() => undefined);
        return claim;
      }
      case 'save':
        return this.save(ws, op);
      case 'release':
        return this.release(ws, op);
      case 'attach':
        return this.attach(ws, op);
      case 'done':
        return this.waiting.get(ws)?.();
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.waiting.get(ws)?.();
    const row = this.store.read();
    const epoch = attachment(ws).epoch;
    // The holder's bridge went away without releasing (crash, network): keep the last checkpoint.
    // Not if that holder already attached again on another socket.
    const replaced = this.ctx.getWebSockets().some((s) => s !== ws && attachment(s).epoch === epoch);
    if (row && row.releasedAt === null && row.epoch === epoch && !replaced) await this.lost(row);
    closeSocket(ws, code === 1005 || code === 1006 ? 1000 : code, 'closed');
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.webSocketClose(ws, 1011);
  }

  /**
   * A lost holder's will goes out when due; released state is forgotten once it has expired
   * [MQTT-3.1.2-23 (5.0)], and the holder with it.
   */
  override async alarm(): Promise<void> {
    let row = this.store.read();
    if (row && row.willDue !== null && Date.now() >= row.willDue) {
      // (A lost holder's willDue is never earlier than the reattach grace: a bridge that attached again cleared it.)
      await this.publishWill(row);
      row = { ...row, will: null, willDue: null };
      this.store.write(row);
    }
    if (!row || row.releasedAt === null) return;
    // Kept at least the reattach grace: the bridge of a lost holder may attach again. (A claim in
    // between still sees the session as expired: open() checks the expiry itself.)
    const due = row.releasedAt + Math.max(row.expiry * 1000, this.grace);
    if (Date.now() < due) return this.ctx.storage.setAlarm(Math.min(due, row.willDue ?? due));
    for (const ws of this.ctx.getWebSockets()) if (attachment(ws).epoch > 0) closeSocket(ws, CLOSE_EXPIRED, 'session expired');
    await this.store.clear();
  }

  // --- handlers ----------------------------------------------------------------------------------

  /** A new connection claims the session: previous holder first, then a new epoch and the state. */
  private async open(ws: WebSocket, op: Open): Promise<void> {
    const att = attachment(ws);
    if (att.epoch > 0) return send(ws, { op: 'error', id: op.id, code: 'already_open', reason: 'this socket already holds the session' });
    const previous = this.ctx.getWebSockets().filter((s) => s !== ws && attachment(s).epoch > 0);
    await Promise.all(previous.map((s) => this.notify(s, op.clean)));
    for (const s of previous) closeSocket(s, CLOSE_TAKEN_OVER, 'session taken over');

    let row = this.store.read();
    const now = Date.now();
    if (ws.readyState !== WebSocket.OPEN) {
      // The claimant left while waiting; a holder that never answered counts as lost.
      if (row && row.releasedAt === null) await this.lost(row);
      return;
    }
    // A lost holder's pending will: due already (its delay, not counting the reattach grace, has
    // passed), or the session ends (Clean Start) → now; else the reconnect cancels it [MQTT-3.1.3-9].
    if (row?.will && row.willDue !== null && row.releasedAt !== null) {
      const delay = (JSON.parse(row.will) as SessionWill).delay;
      if (op.clean || row.releasedAt + Math.min(delay, row.expiry) * 1000 <= now) await this.publishWill(row).catch((e: unknown) => console.log(`session ${att.key}: will not published: ${String(e)}`));
    }
    const expired = row !== null && row.releasedAt !== null && row.releasedAt + row.expiry * 1000 <= now;
    const state = op.clean || expired || !row ? null : row.state;
    // Epochs only grow, also across an expiry that wiped the storage (time-based floor).
    const epoch = Math.max((row?.epoch ?? 0) + 1, now);
    row = { key: att.key, epoch, state, expiry: op.expiry, releasedAt: null, will: op.will ? JSON.stringify(op.will) : null, willDue: null };
    this.store.write(row);
    await this.ctx.storage.deleteAlarm();
    ws.serializeAttachment({ ...att, epoch } satisfies HolderAttachment);
    send(ws, { op: 'opened', id: op.id, epoch, state: state === null ? null : JSON.parse(state) });
  }

  private save(ws: WebSocket, op: Save): void {
    const row = this.current(ws, op.epoch);
    if (!row) return send(ws, { op: 'saved', id: op.id, ok: false });
    const state = JSON.stringify(op.state);
    if (state.length > MAX_STATE_BYTES) return send(ws, { op: 'error', id: op.id, code: 'state_too_large', reason: `a session state is at most ${MAX_STATE_BYTES} bytes` });
    this.store.write({ ...row, state });
    send(ws, { op: 'saved', id: op.id, ok: true });
  }

  /**
   * The holder's socket dropped (network, a worker restart) but its connection lives on: the
   * same epoch attaches again, unless another connection claimed the session meanwhile. The loss
   * is undone: no will, no expiry.
   */
  private async attach(ws: WebSocket, op: Attach): Promise<void> {
    const row = this.store.read();
    if (attachment(ws).epoch > 0 || !row || row.epoch !== op.epoch) return send(ws, { op: 'attached', id: op.id, ok: false });
    this.store.write({ ...row, releasedAt: null, willDue: null });
    await this.ctx.storage.deleteAlarm();
    ws.serializeAttachment({ ...attachment(ws), epoch: op.epoch } satisfies HolderAttachment);
    // The holder's old socket, if this side has not seen it close yet, is replaced.
    for (const s of this.ctx.getWebSockets()) if (s !== ws && attachment(s).epoch === op.epoch) closeSocket(s, 1000, 'replaced');
    send(ws, { op: 'attached', id: op.id, ok: true });
  }

  private async release(ws: WebSocket, op: Release): Promise<void> {
    const row = this.current(ws, op.epoch);
    if (!row) return send(ws, { op: 'released', id: op.id, ok: false });
    const state = op.expiry > 0 && op.state !== null ? JSON.stringify(op.state) : null;
    if (state !== null && state.length > MAX_STATE_BYTES) return send(ws, { op: 'error', id: op.id, code: 'state_too_large', reason: `a session state is at most ${MAX_STATE_BYTES} bytes` });
    const now = Date.now();
    // The socket stays open: it is still the holder (a pending delayed will hears of a reconnect).
    // Its bridge has dealt with the will, and the actor forgets it — unless the bridge is shutting
    // down and leaves a delayed will here (`willDelay`): then it goes out when due, as a lost
    // holder's would, unless the session is claimed first [MQTT-3.1.3-9].
    const willDue = op.willDelay !== undefined && row.will ? now + op.willDelay * 1000 : null;
    this.store.write({ ...row, state, expiry: op.expiry, releasedAt: now, will: willDue === null ? null : row.will, willDue });
    await this.ctx.storage.setAlarm(Math.min(now + op.expiry * 1000, willDue ?? Infinity));
    send(ws, { op: 'released', id: op.id, ok: true });
  }

  // --- helpers -----------------------------------------------------------------------------------

  /** SESSION_REATTACH_MS (wrangler.toml), default 10 s. */
  private get grace(): number {
    const ms = Number(this.env.SESSION_REATTACH_MS);
    return Number.isFinite(ms) && ms >= 0 ? ms : 10_000;
  }

  /** The stored row if `ws` is the live holder with this epoch (fencing), else null. */
  private current(ws: WebSocket, epoch: number): SessionRow | null {
    const row = this.store.read();
    if (!row || row.epoch !== epoch || attachment(ws).epoch !== epoch || row.releasedAt !== null) return null;
    return row;
  }

  /**
   * The holder is gone without a release: its last checkpoint is kept for the session's expiry,
   * and its will is published after min(will delay, session expiry) [MQTT-3.1.2-8, MQTT-3.1.3-9].
   */
  private async lost(row: SessionRow): Promise<void> {
    const now = Date.now();
    const will = row.will ? (JSON.parse(row.will) as SessionWill) : null;
    // Not before the reattach grace: the bridge may only have lost the socket, not the connection.
    const willDue = will ? now + Math.max(Math.min(will.delay, row.expiry) * 1000, this.grace) : null;
    this.store.write({ ...row, state: row.expiry > 0 ? row.state : null, releasedAt: now, willDue });
    await this.ctx.storage.setAlarm(Math.min(now + Math.max(row.expiry * 1000, this.grace), willDue ?? Infinity));
  }

  /**
   * Publishes a lost holder's will through its channel actor. It was authorized when the
   * connection was accepted; a refusal now (channel deleted, payload rejected) drops it, logged.
   */
  private async publishWill(row: SessionRow): Promise<void> {
    if (!row.will) return;
    const w = JSON.parse(row.will) as SessionWill;
    const payload = Uint8Array.from(atob(w.payload), (c) => c.charCodeAt(0));
    const input = { subtopic: w.subtopic, publisher: w.publisher, protocol: 'mqtt' as const, contentType: w.contentType, payload, retain: w.retain, ...(w.properties ? { properties: w.properties } : {}), ...(w.expiry !== undefined ? { expiry: w.expiry } : {}), ...(w.qos !== undefined ? { qos: w.qos } : {}),
      ...(w.format !== undefined ? { format: w.format } : {}), ...(w.responseTopic !== undefined ? { responseTopic: w.responseTopic } : {}),
      ...(w.correlation !== undefined ? { correlation: Uint8Array.from(atob(w.correlation), (c) => c.charCodeAt(0)) } : {}),
      // The session key is its client's No Local token (shared/link.ts): the session's own No Local
      // subscriptions skip its will when it resumes [MQTT-3.8.3-3], as they do when the bridge publishes it.
      origin: row.key };
    const [result] = await this.env.CHANNELS.get(this.env.CHANNELS.idFromName(w.channel)).publish([input], w.channel);
    if (!result?.ok) console.log(`session ${row.key}: will on channel ${w.channel} refused: ${result ? `${result.status} ${result.message}` : 'no result'}`);
  }

  /** Tells a previous holder to finish; resolves on its `done`, its close, or the timeout. */
  private notify(ws: WebSocket, clean: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiting.delete(ws);
        resolve();
      };
      const timer = setTimeout(finish, TAKEOVER_TIMEOUT_MS);
      this.waiting.set(ws, finish);
      if (ws.readyState !== WebSocket.OPEN) return finish();
      send(ws, { op: 'takeover', clean });
    });
  }
}
