/**
 * Block-wise transfers (RFC 7959). Block1: a request body arrives in blocks; each non-final one is
 * answered 2.31 Continue and the body is handed on once, when the last block (M=0) arrives.
 * Block2: a representation larger than a block is sent in blocks of the client's SZX (or ours,
 * whichever is smaller); the client fetches blocks 1… with GET + Block2, which are served from the
 * same representation kept per (endpoint, path) for `blockTimeoutMs`.
 */
import { Code, Opt, blockOption, blockSize, szxFor, uintOption, type Block, type CoapOption } from '../../shared/coap';
import type { CoapLimits } from './limits';
import { diagnostic, tooLarge, unavailable } from './replies';
import type { Clock, Reply, Timer } from './types';

interface Upload {
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

export class Uploads {
  private readonly uploads = new Map<string, Upload>();

  constructor(private readonly clock: Clock, private readonly limits: CoapLimits) {}

  /** One Block1 block of the body of a request to `key` (endpoint + path). */
  receive(key: string, block: Block, payload: Uint8Array, size1: number | undefined): UploadStep {
    const fail = (reply: Reply): UploadStep => {
      this.drop(key);
      return { kind: 'error', reply };
    };
    const size = blockSize(block.szx);
    const offset = block.num * size;
    // RFC 7959 §4: Size1 in a request announces the total; refuse early what will not fit.
    if (size1 !== undefined && size1 > this.limits.maxPayloadBytes) return fail(tooLarge(this.limits, `the body of ${size1} bytes exceeds ${this.limits.maxPayloadBytes}`));
    // §2.2: every block but the last carries exactly 2^(SZX+4) bytes, the last at most that.
    if ((block.more && payload.length !== size) || payload.length > size) return fail(diagnostic(Code.BadRequest, `block ${block.num} must carry ${block.more ? 'exactly' : 'at most'} ${size} bytes`));
    let u = this.uploads.get(key);
    if (block.num === 0) {
      if (!u && this.uploads.size >= this.limits.maxPendingUploads) return fail(unavailable(this.limits, 'too many block-wise uploads in progress'));
      if (u) u.timer.cancel();
      u = { chunks: [], received: 0, timer: this.expire(key) };
      this.uploads.set(key, u);
    } else if (!u || offset > u.received) {
      // §2.9.2: 4.08 when blocks the server needs are missing (a gap, or no first block).
      return fail(diagnostic(Code.RequestEntityIncomplete, u ? `expected the block at byte ${u.received}, got one at ${offset}` : `no upload in progress: start with block 0`));
    } else if (offset < u.received) {
      // The client restarted from an earlier block (e.g. after lowering its SZX): keep what precedes it.
      u.chunks = [concat(u.chunks).slice(0, offset)];
      u.received = offset;
    }
    if (u.received + payload.length > this.limits.maxPayloadBytes) return fail(tooLarge(this.limits, `the body exceeds ${this.limits.maxPayloadBytes} bytes`));
    u.chunks.push(payload);
    u.received += payload.length;
    u.timer.cancel();
    if (block.more) {
      u.timer = this.expire(key);
      // §2.3: 2.31 Continue, M=1 (we act on the body atomically, once complete); our SZX is a preference.
      const szx = Math.min(block.szx, szxFor(this.limits.maxBlockBytes));
      return { kind: 'continue', reply: { code: Code.Continue, options: [blockOption(Opt.Block1, { num: block.num, more: true, szx })] } };
    }
    this.uploads.delete(key);
    return { kind: 'complete', payload: concat(u.chunks), options: [blockOption(Opt.Block1, { num: block.num, more: false, szx: block.szx })] };
  }

  /** Whether `block` is the next one of `key`'s upload in progress: it moves the transfer on. */
  continues(key: string, block: Block): boolean {
    const u = this.uploads.get(key);
    return u !== undefined && block.num > 0 && block.num * blockSize(block.szx) === u.received;
  }

  private expire(key: string): Timer {
    return this.clock.setTimer(this.limits.blockTimeoutMs, () => this.uploads.delete(key));
  }

  private drop(key: string): void {
    this.uploads.get(key)?.timer.cancel();
    this.uploads.delete(key);
  }

  get pending(): number {
    return this.uploads.size;
  }

  close(): void {
    for (const u of this.uploads.values()) u.timer.cancel();
    this.uploads.clear();
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
}

const KEPT_MAX = 10_000;

/** Representations being transferred in Block2 blocks, per endpoint and path. */
export class Representations {
  private readonly kept = new Map<string, Kept>();

  constructor(private readonly clock: Clock, private readonly limits: CoapLimits) {}

  keep(key: string, rep: Representation, next = 0): void {
    this.kept.get(key)?.timer.cancel();
    this.kept.delete(key);
    if (this.kept.size >= KEPT_MAX) {
      const [oldest] = this.kept.keys();
      if (oldest !== undefined) this.forget(oldest);
    }
    this.kept.set(key, { rep, next, timer: this.clock.setTimer(this.limits.blockTimeoutMs, () => this.kept.delete(key)) });
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
  }

  close(): void {
    for (const k of this.kept.values()) k.timer.cancel();
    this.kept.clear();
  }
}
