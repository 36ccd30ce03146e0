import { EdgefluxError } from './errors';
import { subtopicPath, type Http } from './http';
import type { Gap, Message, Published, Subscribed } from './types';

/** The part of the WebSocket API the SDK uses: browsers, Deno, Bun, Node ≥ 22, `ws` and workerd all have it. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (ev: { data?: unknown; code?: number; reason?: string }) => void): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike;

export interface SubscribeOptions {
  /** Subtopic filter, `+` and `#` allowed (`room/+/temp`). Default: the whole channel. */
  subtopic?: string;
  /** Resume after this seq: everything newer that the channel still keeps is replayed first. */
  since?: number;
  onMessage: (message: Message) => void;
  /** The channel no longer keeps seqs from..to (inclusive): they were missed for good. */
  onGap?: (gap: Gap) => void;
  /** Every time the socket (re)opens. */
  onOpen?: () => void;
  /** Every time the channel confirms the (re)subscription, before any message on that socket. */
  onSubscribed?: (subscribed: Subscribed) => void;
  /** A transient failure the subscription recovers from by reconnecting. */
  onRetry?: (error: EdgefluxError, delayMs: number) => void;
  /** Reconnect with back-off after a dropped connection (default true). */
  reconnect?: boolean;
  minDelayMs?: number;
  maxDelayMs?: number;
}

export interface PublishOptions {
  subtopic?: string;
  contentType?: string;
  retain?: boolean;
}

type Frame = { type?: unknown; id?: unknown; seq?: unknown; since?: unknown; created?: unknown; status?: unknown; code?: unknown; message?: unknown; closing?: unknown; from?: unknown; to?: unknown };

/** Close codes 4000 + HTTP status: a refused subscription. Only 401 (refreshable) and 429 are worth retrying. */
const fatalClose = (code: number) => code >= 4000 && code < 5000 && code !== 4401 && code !== 4429;

/**
 * A live subscription to one channel (or subtopic filter). It reconnects on its own and resumes
 * with `?since=` from its cursor, so messages published while it was away arrive in seq order
 * after the reconnect, and none twice. The cursor starts at the channel's seq when the first
 * socket is confirmed (`subscribed` frame), so even a drop before the first message loses nothing.
 */
export class Subscription {
  /**
   * The resume cursor: every message up to this seq has been delivered or was published before
   * the subscription began. Undefined until the channel first confirms the subscription (or `since`).
   */
  lastSeq: number | undefined;
  /** Resolves when the socket first opens. */
  readonly opened: Promise<void>;
  /** Resolves after `close()`; rejects with an EdgefluxError when the API refuses the subscription for good. */
  readonly closed: Promise<void>;

  private ws: WebSocketLike | null = null;
  private stopped = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastProblem: EdgefluxError | null = null;
  private nextId = 0;
  private readonly pending = new Map<string, { ok: (p: Published) => void; fail: (e: EdgefluxError) => void }>();
  private resolveOpened!: () => void;
  private rejectOpened!: (e: EdgefluxError) => void;
  private resolveClosed!: () => void;
  private rejectClosed!: (e: EdgefluxError) => void;

  constructor(
    private readonly http: Http,
    private readonly channel: string,
    private readonly opts: SubscribeOptions,
    private readonly WebSocketImpl: WebSocketConstructor | undefined,
  ) {
    this.lastSeq = opts.since;
    this.opened = new Promise((ok, fail) => ((this.resolveOpened = ok), (this.rejectOpened = fail)));
    this.closed = new Promise((ok, fail) => ((this.resolveClosed = ok), (this.rejectClosed = fail)));
    this.opened.catch(() => {}); // observed through `closed`
    void this.connect();
  }

  /** Publishes on this socket; resolves with the seq the channel assigned (needs `messages:publish`). */
  publish(payload: string | Uint8Array | object, opts: PublishOptions = {}): Promise<Published> {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return Promise.reject(EdgefluxError.local(0, 'not_connected', 'the subscription is not connected'));
    const id = `p${++this.nextId}`;
    const frame: Record<string, unknown> = { id, ...opts };
    if (payload instanceof Uint8Array) Object.assign(frame, { payload: toBase64(payload), encoding: 'base64' });
    else frame.payload = payload;
    return new Promise((ok, fail) => {
      this.pending.set(id, { ok, fail });
      ws.send(JSON.stringify(frame));
    });
  }

  /** Stops for good: no reconnect; `closed` resolves. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.ws?.close(1000, 'bye');
    this.failPending(EdgefluxError.local(0, 'closed', 'subscription closed'));
    this.resolveOpened();
    this.resolveClosed();
  }

  private fail(e: EdgefluxError): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.failPending(e);
    this.rejectOpened(e);
    this.rejectClosed(e);
  }

  private failPending(e: EdgefluxError): void {
    for (const p of this.pending.values()) p.fail(e);
    this.pending.clear();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.lastProblem = null;
    const query = this.lastSeq === undefined ? {} : { since: this.lastSeq };
    const url = this.http.url(`/channels/${encodeURIComponent(this.channel)}/messages${subtopicPath(this.opts.subtopic)}`, query);
    const auth = this.http.authorization();
    // Browsers cannot set headers on a WebSocket: the credential travels as a subprotocol entry.
    const protocols = ['edgeflux.json', ...(auth ? [auth.replace(/^(\w+) /, (_, s: string) => `${s.toLowerCase()}.`)] : [])];
    let ws: WebSocketLike;
    try {
      ws = await openSocket(this.http, url, protocols, this.WebSocketImpl);
    } catch (e) {
      return this.retry(e instanceof EdgefluxError ? e : EdgefluxError.local(0, 'network_error', String(e)));
    }
    if (this.stopped) return ws.close(1000, 'bye');
    this.ws = ws;
    const opened = () => {
      this.resolveOpened();
      this.opts.onOpen?.();
    };
    ws.addEventListener('open', opened);
    if (ws.readyState === 1) opened(); // workerd: accepted sockets are open already
    ws.addEventListener('message', (ev) => this.onFrame(ev.data));
    ws.addEventListener('error', () => {});
    ws.addEventListener('close', (ev) => void this.onClose(ws, ev.code ?? 1006, ev.reason ?? ''));
  }

  private onFrame(data: unknown): void {
    if (typeof data !== 'string') return; // JSON frames only (edgeflux.json)
    let f: Frame & Message;
    try {
      f = JSON.parse(data) as Frame & Message;
    } catch {
      return;
    }
    this.attempt = 0;
    switch (f.type) {
      case 'subscribed': {
        const seq = Number(f.seq);
        // A fresh subscription starts its cursor at the channel's seq. A resumed one keeps its own:
        // the replay that follows may still be cut short, and must then be asked for again.
        if (this.lastSeq === undefined && Number.isSafeInteger(seq)) this.lastSeq = seq;
        this.opts.onSubscribed?.(typeof f.since === 'number' ? { seq, since: f.since } : { seq });
        return;
      }
      case 'message': {
        // Retained messages sent because of the subscription may be older than the cursor; never
        // duplicates, since a resume only sends those published after `since`.
        if (!f.retained && this.lastSeq !== undefined && f.seq <= this.lastSeq) return; // already delivered before a reconnect
        this.lastSeq = Math.max(this.lastSeq ?? f.seq, f.seq);
        const { type: _type, ...message } = f;
        this.opts.onMessage(message as Message);
        return;
      }
      case 'gap':
        this.opts.onGap?.({ from: Number(f.from), to: Number(f.to) });
        return;
      case 'ack': {
        const p = this.pending.get(String(f.id));
        if (p) (this.pending.delete(String(f.id)), p.ok({ seq: Number(f.seq), created: Number(f.created) }));
        return;
      }
      case 'error': {
        const status = Number(f.status);
        const p = f.id === undefined ? undefined : this.pending.get(String(f.id));
        if (p) {
          this.pending.delete(String(f.id));
          p.fail(EdgefluxError.local(status, String(f.code), String(f.message)));
          return;
        }
        const ws = this.ws;
        if (f.closing === true && ws && Number.isSafeInteger(status)) {
          // The server closes right after a `closing` error (a withdrawn permission or credential): act
          // now rather than when the connection is finally torn down (locally ~15 s later).
          const code = 4000 + status;
          this.lastProblem = EdgefluxError.local(status, String(f.code), `WebSocket closed with ${code}: ${String(f.message)}`);
          void this.onClose(ws, code, String(f.message));
          try {
            ws.close();
          } catch {
            /* already closing */
          }
        } else this.lastProblem = EdgefluxError.local(status, String(f.code), String(f.message)); // a refusal; the close that follows decides what to do
        return;
      }
    }
  }

  private async onClose(ws: WebSocketLike, code: number, reason: string): Promise<void> {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped) return;
    this.failPending(EdgefluxError.local(0, 'connection_lost', `connection closed (${code}) before the publish was acknowledged`));
    const problem = this.lastProblem ?? EdgefluxError.local(code >= 4000 && code < 5000 ? code - 4000 : 0, 'connection_closed', `WebSocket closed with ${code}${reason ? `: ${reason}` : ''}`);
    if (fatalClose(code)) return this.fail(problem);
    if (code === 4401) {
      try {
        await this.http.refresh();
      } catch {
        return this.fail(problem);
      }
    }
    this.retry(problem);
  }

  private retry(problem: EdgefluxError): void {
    if (this.stopped) return;
    if (this.opts.reconnect === false) return this.fail(problem);
    const min = this.opts.minDelayMs ?? 250;
    const max = this.opts.maxDelayMs ?? 10_000;
    const cap = Math.min(max, min * 2 ** this.attempt++);
    const delay = Math.round(cap / 2 + (Math.random() * cap) / 2); // equal jitter
    this.opts.onRetry?.(problem, delay);
    this.timer = setTimeout(() => void this.connect(), delay);
  }
}

/**
 * Opens a WebSocket the way the runtime allows: a given constructor; in a worker, a fetch with
 * `Upgrade: websocket` (so service bindings work too); the global WebSocket; else the `ws` package (Node 20).
 */
async function openSocket(http: Http, url: string, protocols: string[], Impl: WebSocketConstructor | undefined): Promise<WebSocketLike> {
  const wsUrl = url.replace(/^http/, 'ws');
  if (Impl) return new Impl(wsUrl, protocols);
  const g = globalThis as { WebSocketPair?: unknown; WebSocket?: unknown };
  if (typeof g.WebSocketPair === 'function') {
    const res = await http.raw(new Request(url, { headers: { upgrade: 'websocket', 'sec-websocket-protocol': protocols.join(', ') } }));
    const ws = (res as Response & { webSocket?: (WebSocketLike & { accept(): void }) | null }).webSocket;
    if (!ws) throw EdgefluxError.local(res.status, 'upgrade_failed', `WebSocket upgrade refused with HTTP ${res.status}`);
    ws.accept();
    return ws;
  }
  if (typeof g.WebSocket === 'function') return new (g.WebSocket as WebSocketConstructor)(wsUrl, protocols);
  const name = 'ws'; // not a literal: bundlers for browsers must not try to include it
  const mod = (await import(/* @vite-ignore */ name)) as { default: WebSocketConstructor };
  return new mod.default(wsUrl, protocols);
}

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
