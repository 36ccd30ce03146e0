// Helpers for the channel actor's workerd tests: real actors, real sockets, no mocks.
import { env } from 'cloudflare:workers';
import { bytesOf, cborDecode } from '../../shared/cbor';
import { utf8Bytes } from '../../shared/envelope';
import { decodeServerFrame, type ServerFrame } from '../../shared/frames';
import { decodeLinkFrame, encodeLinkFrame, linkDialect, type ActorOp, type BridgeOp } from '../../shared/link';
import { HEADER_CHANNEL, HEADER_LINK, HEADER_SUBSCRIBER, type SubscriberOptions } from './sockets';
import type { PublishInput } from './types';

export const newChannel = (): string => crypto.randomUUID();
export const actor = (channel: string) => env.CHANNELS.get(env.CHANNELS.idFromName(channel));

/** A stored message as D1's `messages` view shows it (migrations/0004): its columns by name. */
export type StoredRow = Record<string, string | number | null>;

/** A channel's messages in D1, in seq order. */
export const storedRows = async (ch: string): Promise<StoredRow[]> =>
  (await env.DB.prepare('SELECT * FROM messages WHERE channel_id = ? ORDER BY seq').bind(ch).all<StoredRow>()).results;

export const msg = (over: Partial<PublishInput> = {}): PublishInput => ({
  subtopic: '',
  publisher: 'dev-1',
  protocol: 'http',
  contentType: 'text/plain',
  payload: utf8Bytes('hello'),
  ...over,
});

export const text = (s: string): Uint8Array => utf8Bytes(s);

/** A queue of whatever arrives on a client WebSocket, read with timeouts so a missing frame fails the test. */
export class Inbox<T> {
  private items: T[] = [];
  private waiters: ((v: T) => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;
  private onClose!: (v: { code: number; reason: string }) => void;

  constructor(
    readonly ws: WebSocket,
    decode: (data: string | Uint8Array) => T[],
  ) {
    this.closed = new Promise((r) => (this.onClose = r));
    // workerd delivers binary messages as Blobs unless asked otherwise.
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (ev) => {
      const data = typeof ev.data === 'string' ? ev.data : bytesOf(ev.data as ArrayBuffer);
      for (const item of decode(data)) {
        const w = this.waiters.shift();
        if (w) w(item);
        else this.items.push(item);
      }
    });
    ws.addEventListener('close', (ev) => this.onClose({ code: ev.code, reason: ev.reason }));
  }

  next(timeoutMs = 2000): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for a frame')), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
  }

  async take(n: number): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next());
    return out;
  }

  /** Resolves with what arrived within `ms` (used to assert that nothing more arrives). */
  async drain(ms = 100): Promise<T[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.items.splice(0);
  }
}

export type SubscribedFrame = Extract<ServerFrame, { type: 'subscribed' }>;
/** `wire`: how each frame arrived (text = JSON, binary = CBOR), in arrival order. */
export type RawSubscriber = Inbox<ServerFrame> & { send(data: string | Uint8Array): void; wire: ('text' | 'binary')[] };
export type Subscriber = RawSubscriber & { subscribed: SubscribedFrame };

/**
 * A subscriber socket whose first frame, `subscribed`, has been checked and taken off the queue
 * (kept as `.subscribed`), so the inbox holds what follows it: retained, replayed, live frames.
 */
export async function subscribe(channel: string, opts: Partial<SubscriberOptions> = {}): Promise<Subscriber> {
  const s = await subscribeRaw(channel, opts);
  const first = await s.next();
  if (first.type !== 'subscribed') throw new Error(`first frame is ${first.type}, not subscribed`);
  return Object.assign(s, { subscribed: first });
}

/** A subscriber socket with every frame left in the inbox, `subscribed` included. */
export async function subscribeRaw(channel: string, opts: Partial<SubscriberOptions> = {}): Promise<RawSubscriber> {
  const res = await actor(channel).fetch('http://actor/', {
    headers: { upgrade: 'websocket', [HEADER_CHANNEL]: channel, [HEADER_SUBSCRIBER]: JSON.stringify({ publisher: 'viewer', ...opts }) },
  });
  const ws = res.webSocket;
  if (res.status !== 101 || !ws) throw new Error(`upgrade failed: ${res.status} ${await res.text()}`);
  ws.accept();
  // 'pong' is the runtime's auto-response to 'ping', not a frame.
  const wire: ('text' | 'binary')[] = [];
  const inbox = new Inbox<ServerFrame>(ws, (d) => {
    if (d === 'pong') return [];
    wire.push(typeof d === 'string' ? 'text' : 'binary');
    return [decodeServerFrame(d)];
  }) as RawSubscriber;
  inbox.wire = wire;
  inbox.send = (data) => ws.send(data);
  return inbox;
}

export type Link = Inbox<ActorOp> & { send(ops: BridgeOp[]): void };

/** A bridge link straight to the actor; `subprotocol` as the worker would pass it on (none: v1 frames). */
export async function openLink(channel: string, subprotocol?: string): Promise<Link> {
  const res = await actor(channel).fetch('http://actor/', {
    headers: { upgrade: 'websocket', [HEADER_CHANNEL]: channel, [HEADER_LINK]: JSON.stringify(subprotocol ? { subprotocol } : {}) },
  });
  const ws = res.webSocket;
  if (res.status !== 101 || !ws) throw new Error(`link upgrade failed: ${res.status} ${await res.text()}`);
  ws.accept();
  const frames: number[] = [];
  const raw: unknown[][][] = [];
  const inbox = new Inbox<ActorOp>(ws, (d) => {
    if (typeof d === 'string') throw new Error(`text frame on a link: ${d}`);
    const ops = decodeLinkFrame(d) as ActorOp[];
    frames.push(ops.length);
    raw.push(cborDecode(d) as unknown[][]);
    return ops;
  }) as Link & { frames: number[]; raw: unknown[][][] };
  inbox.frames = frames;
  inbox.raw = raw;
  // As a bridge writes on the chosen subprotocol (string references, publish QoS).
  inbox.send = (ops) => ws.send(encodeLinkFrame(ops, linkDialect(subprotocol)));
  return inbox;
}

/** Ops per received frame, in arrival order (to check batching). */
export const framesOf = (link: Link): number[] => (link as Link & { frames: number[] }).frames;

/** Each received frame's ops as they were on the wire (CBOR arrays, string references unresolved). */
export const rawFramesOf = (link: Link): unknown[][][] => (link as Link & { raw: unknown[][][] }).raw;

export const payloadText = (f: ServerFrame | undefined): string | undefined =>
  f?.type === 'message' ? new TextDecoder().decode(f.envelope.payload) : undefined;
