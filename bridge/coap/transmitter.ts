/**
 * Our own messages' reliability (RFC 7252 §4.2, §4.8): each CON we send (separate responses,
 * confirmable notifications, pings) is retransmitted after ACK_TIMEOUT × a random factor in
 * [1, ACK_RANDOM_FACTOR], the timeout doubling each time, at most MAX_RETRANSMIT times; then we give
 * up. An ACK or RST with the same Message ID from the same endpoint ends it (§4.4). NON
 * notifications are remembered too, so a RST to one (RFC 7641 §3.6) finds its observer.
 */
import { Type, TRANSMISSION, encode, type CoapMessage } from '../../shared/coap';
import type { Clock, Log, Send, Timer } from './types';

export interface ConCallbacks {
  onAck?(): void;
  onReset?(): void;
  /** No ACK after MAX_RETRANSMIT retransmissions (§4.2): the peer is gone or not listening. */
  onTimeout?(): void;
}

interface Pending {
  bytes: Uint8Array;
  send: Send;
  retransmits: number;
  timeout: number;
  timer: Timer;
  cb: ConCallbacks;
}

interface NonSent {
  expires: number;
  onReset: () => void;
}

const MAX_TRACKED_NON = 100_000;

export class Transmitter {
  private readonly pending = new Map<string, Pending>();
  private readonly nons = new Map<string, NonSent>();
  private mid: number;

  constructor(
    private readonly clock: Clock,
    private readonly random: () => number,
    private readonly log: Log,
  ) {
    // §4.4: the initial Message ID should be randomized.
    this.mid = Math.floor(random() * 0x10000) & 0xffff;
  }

  /** §4.4: a fresh Message ID for a message we originate (one counter for all endpoints). */
  nextMessageId(): number {
    this.mid = (this.mid + 1) & 0xffff;
    return this.mid;
  }

  /** Sends a CON and keeps retransmitting it until ACK, RST or give-up. */
  sendCon(epKey: string, send: Send, msg: CoapMessage, cb: ConCallbacks = {}): void {
    const key = `${epKey}#${msg.messageId}`;
    const bytes = encode({ ...msg, type: Type.CON });
    const { ACK_TIMEOUT, ACK_RANDOM_FACTOR } = TRANSMISSION;
    // §4.2: the initial timeout is random between ACK_TIMEOUT and ACK_TIMEOUT × ACK_RANDOM_FACTOR.
    const timeout = ACK_TIMEOUT * (1 + this.random() * (ACK_RANDOM_FACTOR - 1));
    const p: Pending = { bytes, send, retransmits: 0, timeout, cb, timer: this.clock.setTimer(timeout, () => this.fire(key)) };
    this.pending.get(key)?.timer.cancel();
    this.pending.set(key, p);
    send(bytes);
  }

  private fire(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    if (p.retransmits >= TRANSMISSION.MAX_RETRANSMIT) {
      this.pending.delete(key);
      this.log.debug('coap: gave up on a confirmable message', { key });
      p.cb.onTimeout?.();
      return;
    }
    p.retransmits++;
    p.timeout *= 2; // §4.2: exponential back-off
    p.timer = this.clock.setTimer(p.timeout, () => this.fire(key));
    p.send(p.bytes);
  }

  /** Remembers a NON we sent so that a RST naming it can be routed (RFC 7641 §3.6, §4.2). */
  trackNon(epKey: string, messageId: number, onReset: () => void): void {
    const now = this.clock.now();
    for (const [k, n] of this.nons) {
      if (n.expires > now && this.nons.size < MAX_TRACKED_NON) break;
      this.nons.delete(k);
    }
    this.nons.set(`${epKey}#${messageId}`, { expires: now + TRANSMISSION.NON_LIFETIME, onReset });
  }

  /** An ACK arrived; true when it matched one of ours. */
  acknowledged(epKey: string, messageId: number): boolean {
    const key = `${epKey}#${messageId}`;
    const p = this.pending.get(key);
    if (!p) return false;
    p.timer.cancel();
    this.pending.delete(key);
    p.cb.onAck?.();
    return true;
  }

  /** A RST arrived; true when it matched a CON or a tracked NON of ours. */
  reset(epKey: string, messageId: number): boolean {
    const key = `${epKey}#${messageId}`;
    const p = this.pending.get(key);
    if (p) {
      p.timer.cancel();
      this.pending.delete(key);
      p.cb.onReset?.();
      return true;
    }
    const n = this.nons.get(key);
    if (n && n.expires > this.clock.now()) {
      this.nons.delete(key);
      n.onReset();
      return true;
    }
    return false;
  }

  /** Stops retransmitting a CON without calling its callbacks (e.g. a newer notification supersedes it). */
  cancel(epKey: string, messageId: number): void {
    const key = `${epKey}#${messageId}`;
    this.pending.get(key)?.timer.cancel();
    this.pending.delete(key);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  close(): void {
    for (const p of this.pending.values()) p.timer.cancel();
    this.pending.clear();
    this.nons.clear();
  }
}
