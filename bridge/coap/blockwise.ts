/**
 * Block-wise transfers (RFC 7959). Block1: a request body arrives in blocks; each non-final one is
 * answered 2.31 Continue and the body is handed on once, when the last block (M=0) arrives.
 * Block2: a representation larger than a block is sent in blocks of the client's SZX (or ours,
 * whichever is smaller); the client fetches blocks 1… with GET + Block2, which are served from the
 * same representation kept per (endpoint, path, query) — `downloadKey` — for `blockTimeoutMs`.
 */
import { Code, Opt, blockOption, blockSize, szxFor, uintOption, type Block, type CoapMessage, type CoapOption } from '../../shared/coap';
import type { CoapLimits } from './limits';
import { diagnostic, tooLarge, unavailable } from './replies';
import type { Clock, Reply, Timer } from './types';

interface Upload {
  /** The token of the upload's latest block (hex): a client that keeps one token per body is told apart by it. */
  token: string;
  chunks: Uint8Array[];
  received: number;
  timer: Timer;
}

export type UploadStep = { kind: 'continue'; reply: Reply } | { kind: 'complete'; payload: Uint8Array; options: CoapOption[] } | { kind: 'error'; reply: Reply };

export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/**
 * The key of the Block1 upload a request belongs to: its endpoint, and every option but the
 * block-wise ones (Block1, Block2, Size1, Size2) — path, query (the credential: another device
 * behind the same address is another upload), Content-Format — and the Request-Tag options. RFC
 * 9175 §3: only "matchable" requests (same endpoint, same options but those) with the same
 * Request-Tags are blocks of one body; libcoap gives each body its own Request-Tag, so two bodies
 * it sends to one resource at once are two uploads.
 */
export function uploadKey(epKey: string, req: Pick<CoapMessage, 'options'>): string {
  const parts = req.options
    .filter((o) => o.number !== Opt.Block1 && o.number !== Opt.Block2 && o.number !== Opt.Size1 && o.number !== Opt.Size2)
    .map((o) => `${o.number}=${hex(o.value)}`);
  return `${epKey} ${parts.join(';')}`;
}

/**
 * The key a Block2 download's representation is kept under for its later blocks: its endpoint,
 * Uri-Path and whole Uri-Query (each option percent-encoded, so no two requests share a key). The
 * query holds the credential (`auth=`): a later block asked for with another key, or another
 * discovery filter, is another request — counted against the rates, and answered with a
 * representation read or built for it — not a continuation of the transfer kept for the first
 * (which skipped the rates, and was served from the first principal's copy). An observation's
 * notifications in blocks are kept under the key of its registration (observe.ts `repKey`), so
 * GET + Block2 with the same URI (libcoap) finds them.
 */
export function downloadKey(epKey: string, path: readonly string[], query: readonly string[]): string {
  return `${epKey} /${path.map(encodeURIComponent).join('/')}?${query.map(encodeURIComponent).join('&')}`;
}

/** The endpoint an upload's or a kept representation's key starts with (`<endpoint> <…>`; endpoint keys hold no space). */
const endpointOf = (key: string): string => key.slice(0, key.indexOf(' ') >>> 0);

/** Concurrent uploads one endpoint may have under one key (told apart by their tokens), before the oldest is dropped. */
const UPLOADS_PER_KEY = 8;
/**
 * Uploads one endpoint may have in progress at once (under any keys: paths, credentials,
 * Request-Tags), before its own least recently moved on is dropped: so one endpoint cannot fill
 * the server-wide `maxPendingUploads` and have every other endpoint's uploads refused.
 */
export const UPLOADS_PER_ENDPOINT = 16;

export class Uploads {
  /** Per key, its uploads in progress, least recently moved on first. */
  private readonly uploads = new Map<string, Upload[]>();
  /** Per endpoint, its uploads in progress with their keys, least recently moved on first. */
  private readonly byEndpoint = new Map<string, Map<Upload, string>>();
  private count = 0;

  constructor(private readonly clock: Clock, private readonly limits: CoapLimits) {}

  /**
   * The upload in progress under `key` that a block at `offset` with `token` belongs to: the one
   * whose last block had this token (a client that keeps its token through a body, as the npm
   * `coap` package does: two concurrent bodies have two tokens), else — a client may change the
   * token from block to block (RFC 7959 §2.3; libcoap does) — the most recent one that this block
   * continues, else the only one (a repeat or a gap in it). With several and none of them matched,
   * none: the block is answered 4.08 and no upload is touched.
   */
  private find(key: string, token: string, offset: number): Upload | undefined {
    const list = this.uploads.get(key);
    if (!list || list.length === 0) return undefined;
    return list.find((u) => u.token === token) ?? list.findLast((u) => u.received === offset) ?? (list.length === 1 ? list[0] : undefined);
  }

  /** One Block1 block of the body of a request under `key` (uploadKey), with the request's token. */
  receive(key: string, tokenBytes: Uint8Array, block: Block, payload: Uint8Array, size1: number | undefined): UploadStep {
    const token = hex(tokenBytes);
    const size = blockSize(block.szx);
    const offset = block.num * size;
    // A block 0 restarts the upload of its token; with another token it is another body.
    let u = this.find(key, token, offset);
    if (block.num === 0 && u && u.token !== token) u = undefined;
    const fail = (reply: Reply): UploadStep => {
      if (u) this.drop(key, u);
      return { kind: 'error', reply };
    };
    // RFC 7959 §4: Size1 in a request announces the total; refuse early what will not fit.
    if (size1 !== undefined && size1 > this.limits.maxPayloadBytes) return fail(tooLarge(this.limits, `the body of ${size1} bytes exceeds ${this.limits.maxPayloadBytes}`));
    // §2.2: every block but the last carries exactly 2^(SZX+4) bytes, the last at most that.
    if ((block.more && payload.length !== size) || payload.length > size) return fail(diagnostic(Code.BadRequest, `block ${block.num} must carry ${block.more ? 'exactly' : 'at most'} ${size} bytes`));
    if (block.num === 0) {
      if (u) this.drop(key, u);
      // Make room among this endpoint's own uploads before asking whether the server has room.
      const list = this.uploads.get(key);
      if (list && list.length >= UPLOADS_PER_KEY) this.drop(key, list[0]!);
      const own = this.byEndpoint.get(endpointOf(key));
      const [oldest] = own && own.size >= UPLOADS_PER_ENDPOINT ? own : [];
      if (oldest) this.drop(oldest[1], oldest[0]);
      if (this.count >= this.limits.maxPendingUploads) return fail(unavailable(this.limits, 'too many block-wise uploads in progress'));
      u = this.add(key, token);
    } else if (!u || offset > u.received) {
      // §2.9.2: 4.08 when blocks the server needs are missing (a gap, or no first block).
      const none = this.uploads.has(key) ? `no upload in progress here is at byte ${offset} or has this token` : 'no upload in progress: start with block 0';
      return fail(diagnostic(Code.RequestEntityIncomplete, u ? `expected the block at byte ${u.received}, got one at ${offset}` : none));
    } else if (offset < u.received) {
      // The client restarted from an earlier block (e.g. after lowering its SZX): keep what precedes it.
      u.chunks = [concat(u.chunks).slice(0, offset)];
      u.received = offset;
    }
    if (u.received + payload.length > this.limits.maxPayloadBytes) return fail(tooLarge(this.limits, `the body exceeds ${this.limits.maxPayloadBytes} bytes`));
    u.chunks.push(payload);
    u.received += payload.length;
    u.token = token;
    u.timer.cancel();
    if (block.more) {
      u.timer = this.expire(key, u);
      this.touch(key, u);
      // §2.3: 2.31 Continue, M=1 (we act on the body atomically, once complete); our SZX is a preference.
      const szx = Math.min(block.szx, szxFor(this.limits.maxBlockBytes));
      return { kind: 'continue', reply: { code: Code.Continue, options: [blockOption(Opt.Block1, { num: block.num, more: true, szx })] } };
    }
    this.drop(key, u);
    return { kind: 'complete', payload: concat(u.chunks), options: [blockOption(Opt.Block1, { num: block.num, more: false, szx: block.szx })] };
  }

  /** Whether `block` (with `token`) is the next one of an upload in progress under `key`: it moves the transfer on. */
  continues(key: string, tokenBytes: Uint8Array, block: Block): boolean {
    if (block.num === 0) return false;
    const offset = block.num * blockSize(block.szx);
    const u = this.find(key, hex(tokenBytes), offset);
    return u !== undefined && offset === u.received;
  }

  private add(key: string, token: string): Upload {
    const u: Upload = { token, chunks: [], received: 0, timer: { cancel() {} } };
    u.timer = this.expire(key, u);
    const list = this.uploads.get(key) ?? [];
    this.uploads.set(key, list);
    list.push(u);
    this.count++;
    const ep = endpointOf(key);
    const own = this.byEndpoint.get(ep) ?? new Map<Upload, string>();
    this.byEndpoint.set(ep, own);
    own.set(u, key);
    return u;
  }

  private touch(key: string, u: Upload): void {
    const own = this.byEndpoint.get(endpointOf(key));
    if (own?.delete(u)) own.set(u, key);
    const list = this.uploads.get(key);
    if (!list) return;
    const i = list.indexOf(u);
    if (i >= 0 && i !== list.length - 1) {
      list.splice(i, 1);
      list.push(u);
    }
  }

  private expire(key: string, u: Upload): Timer {
    return this.clock.setTimer(this.limits.blockTimeoutMs, () => this.drop(key, u));
  }

  private drop(key: string, u: Upload): void {
    u.timer.cancel();
    const list = this.uploads.get(key);
    const i = list?.indexOf(u) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    this.count--;
    if (list.length === 0) this.uploads.delete(key);
    const ep = endpointOf(key);
    const own = this.byEndpoint.get(ep);
    if (own?.delete(u) && own.size === 0) this.byEndpoint.delete(ep);
  }

  get pending(): number {
    return this.count;
  }

  close(): void {
    for (const list of this.uploads.values()) for (const u of list) u.timer.cancel();
    this.uploads.clear();
    this.byEndpoint.clear();
    this.count = 0;
  }
}

/** A response body with the options that describe it (Content-Format, ETag, Observe, Max-Age…). */
export interface Representation {
  code: number;
  options: CoapOption[];
  payload: Uint8Array;
}

/**
 * The reply carrying block `requested` (or the first) of `rep`, or null when that block lies past
 * the end. A representation that fits one block goes whole, with Block2 M=0 only if asked for.
 */
export function blockReply(rep: Representation, requested: Block | undefined, limits: CoapLimits): Reply | null {
  const maxSzx = szxFor(limits.maxBlockBytes);
  if (!requested && rep.payload.length <= blockSize(maxSzx)) return rep;
  const szx = Math.min(requested?.szx ?? maxSzx, maxSzx); // §2.4: honour the client's (smaller) SZX
  const size = blockSize(szx);
  const num = requested?.num ?? 0;
  const offset = num * size;
  if (offset > 0 && offset >= rep.payload.length) return null;
  const more = offset + size < rep.payload.length;
  const options = [...rep.options, blockOption(Opt.Block2, { num, more, szx })];
  if (num === 0) options.push(uintOption(Opt.Size2, rep.payload.length)); // §4: the total size
  return { code: rep.code, options, payload: rep.payload.slice(offset, offset + size) };
}

interface Kept {
  rep: Representation;
  timer: Timer;
  /** The byte offset the next block of this transfer starts at. */
  next: number;
  /** Called once when the last block of `rep` has been served (an observation waits for it: observe.ts). */
  onLast?: () => void;
  /** Called when a later block of `rep`, not its last, has been served: the transfer goes on (an observation's cut waits again: observe.ts). */
  onMove?: () => void;
}

const KEPT_MAX = 10_000;
/** Representations one endpoint may have kept at once, before its own oldest goes (so one endpoint cannot push out others' transfers). */
export const KEPT_PER_ENDPOINT = 32;


/** Representations being transferred in Block2 blocks, per `downloadKey` (endpoint, path and query). */
export class Representations {
  private readonly kept = new Map<string, Kept>();
  /** Per endpoint, its keys, least recently kept first. */
  private readonly byEndpoint = new Map<string, Set<string>>();

  constructor(private readonly clock: Clock, private readonly limits: CoapLimits) {}

  /** `onLast`, `onMove`: see Kept; kept over when the same representation moves on. */
  keep(key: string, rep: Representation, next = 0, onLast?: () => void, onMove?: () => void): void {
    const before = this.kept.get(key);
    const moved = before?.rep === rep;
    if (moved) {
      onLast ??= before.onLast;
      onMove ??= before.onMove;
    }
    this.forget(key);
    const ep = endpointOf(key);
    const own = this.byEndpoint.get(ep) ?? new Set<string>();
    this.byEndpoint.set(ep, own);
    if (own.size >= KEPT_PER_ENDPOINT) {
      const [oldest] = own;
      if (oldest !== undefined) this.forget(oldest);
    }
    if (this.kept.size >= KEPT_MAX) {
      const [oldest] = this.kept.keys();
      if (oldest !== undefined) this.forget(oldest);
    }
    own.add(key);
    this.byEndpoint.set(ep, own);
    this.kept.set(key, { rep, next, onLast, onMove, timer: this.clock.setTimer(this.limits.blockTimeoutMs, () => this.forget(key)) });
    if (moved) onMove?.();
  }

  /** The last block of the representation kept for `key` was served: it is forgotten, and its onLast called. */
  served(key: string): void {
    const k = this.kept.get(key);
    this.forget(key);
    k?.onLast?.();
  }

  /** Whether `block` is the next one of the representation kept for `key`: it moves the transfer on. */
  continues(key: string, block: Block): boolean {
    const k = this.kept.get(key);
    return k !== undefined && block.num > 0 && block.num * blockSize(block.szx) === k.next;
  }

  get(key: string): Representation | undefined {
    return this.kept.get(key)?.rep;
  }

  forget(key: string): void {
    this.kept.get(key)?.timer.cancel();
    this.kept.delete(key);
    const ep = endpointOf(key);
    const own = this.byEndpoint.get(ep);
    if (own?.delete(key) && own.size === 0) this.byEndpoint.delete(ep);
  }

  get size(): number {
    return this.kept.size;
  }

  close(): void {
    for (const k of this.kept.values()) k.timer.cancel();
    this.kept.clear();
    this.byEndpoint.clear();
  }
}
