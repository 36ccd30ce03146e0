/**
 * The message layer (RFC 7252 §4): decodes datagrams, answers pings, routes ACK/RST to the
 * transmitter, deduplicates requests by (endpoint, Message ID) and sends responses — piggybacked
 * on the ACK when the answer is ready within `separateResponseAfterMs`, else an empty ACK now and
 * the response later as a CON of its own (§5.2.2). A duplicate CON gets the very bytes the first
 * copy got (the piggybacked response, or the empty ACK) and is never handed up twice (§4.5).
 */
import {
  CoapFormatError, Type, TRANSMISSION, decode, decodeHeader, emptyMessage, encode, isRequestCode, type CoapMessage,
} from '../../shared/coap';
import type { CoapLimits } from './limits';
import type { ConCallbacks, Transmitter } from './transmitter';
import { endpointKey, type Clock, type Endpoint, type Log, type Reply, type Send, type Timer } from './types';

interface DedupEntry {
  expires: number;
  /** What a duplicate CON is answered with: the piggybacked response or the empty ACK. */
  reply?: Uint8Array;
  exchange?: Exchange;
}

export class Exchange {
  readonly epKey: string;
  readonly con: boolean;
  private state: 'waiting' | 'acked' | 'done' = 'waiting';
  private timer: Timer | undefined;

  constructor(
    private readonly layer: MessageLayer,
    readonly endpoint: Endpoint,
    readonly send: Send,
    readonly request: CoapMessage,
    private readonly entry: DedupEntry,
  ) {
    this.epKey = endpointKey(endpoint);
    this.con = request.type === Type.CON;
    if (this.con) this.timer = layer.clock.setTimer(layer.limits.separateResponseAfterMs, () => this.acknowledge());
  }

  get token(): Uint8Array {
    return this.request.token;
  }

  get answered(): boolean {
    return this.state === 'done';
  }

  /** §5.2.2: the answer is late, so acknowledge now and send the response separately. */
  acknowledge(): void {
    if (this.state !== 'waiting' || !this.con) return;
    this.timer?.cancel();
    this.state = 'acked';
    const ack = encode(emptyMessage(Type.ACK, this.request.messageId));
    this.entry.reply = ack;
    this.send(ack);
  }

  /** A duplicate of the request arrived while we are still working on it. */
  duplicate(): void {
    if (this.entry.reply) this.send(this.entry.reply);
    else this.acknowledge(); // the client is retransmitting: stop it with an empty ACK now
  }

  /**
   * Sends the response (once). `cb` learns whether a separate CON response, or a NON one, was
   * acknowledged or reset — an observe registration uses it (RFC 7641 §3.6).
   */
  respond(reply: Reply, cb: ConCallbacks = {}): void {
    if (this.state === 'done') return;
    this.timer?.cancel();
    const msg = (type: CoapMessage['type'], messageId: number): CoapMessage => ({
      type, code: reply.code, messageId, token: this.request.token, options: reply.options ?? [], payload: reply.payload ?? new Uint8Array(),
    });
    if (this.con && this.state === 'waiting') {
      const bytes = encode(msg(Type.ACK, this.request.messageId)); // §5.2.1 piggybacked
      this.entry.reply = bytes;
      this.send(bytes);
    } else if (this.con) {
      this.layer.transmitter.sendCon(this.epKey, this.send, msg(Type.CON, this.layer.transmitter.nextMessageId()), cb); // §5.2.2
    } else {
      const messageId = this.layer.transmitter.nextMessageId(); // §5.2.3: a NON request gets a NON response
      this.send(encode(msg(Type.NON, messageId)));
      if (cb.onReset) this.layer.transmitter.trackNon(this.epKey, messageId, cb.onReset);
    }
    this.state = 'done';
    this.entry.exchange = undefined;
  }

  /** Rejects the request with a RST (§4.2, §4.3), e.g. a NON with an unrecognized critical option (§5.4.1). */
  reject(): void {
    if (this.state === 'done') return;
    this.timer?.cancel();
    const rst = encode(emptyMessage(Type.RST, this.request.messageId));
    if (this.con) this.entry.reply = rst;
    this.send(rst);
    this.state = 'done';
    this.entry.exchange = undefined;
  }
}

export interface MessageLayerOptions {
  clock: Clock;
  limits: CoapLimits;
  log: Log;
  transmitter: Transmitter;
  onRequest(ex: Exchange): void;
  /** Called for every well-formed message from an endpoint (liveness). */
  onHeard?(epKey: string): void;
}

export class MessageLayer {
  readonly clock: Clock;
  readonly limits: CoapLimits;
  readonly transmitter: Transmitter;
  private readonly dedup = new Map<string, DedupEntry>();

  constructor(private readonly opts: MessageLayerOptions) {
    this.clock = opts.clock;
    this.limits = opts.limits;
    this.transmitter = opts.transmitter;
  }

  receive(datagram: Uint8Array, endpoint: Endpoint, send: Send): void {
    const header = decodeHeader(datagram);
    if (!header || header.version !== 1) return; // §3: unknown versions are silently ignored
    let msg: CoapMessage;
    try {
      msg = decode(datagram);
    } catch (e) {
      if (!(e instanceof CoapFormatError)) throw e;
      // §4.2: a CON with a format error is rejected with a RST; §4.3: a NON one may be ignored.
      if (header.type === Type.CON) send(encode(emptyMessage(Type.RST, header.messageId)));
      return;
    }
    const epKey = endpointKey(endpoint);
    this.opts.onHeard?.(epKey);
    switch (msg.type) {
      case Type.ACK:
        this.transmitter.acknowledged(epKey, msg.messageId);
        return;
      case Type.RST:
        this.transmitter.reset(epKey, msg.messageId);
        return;
    }
    if (!isRequestCode(msg.code)) {
      // §4.3: an empty CON is a ping, answered with a RST; a CON response we cannot match, or one
      // with a reserved code class, lacks context and is rejected the same way (§4.2). NONs are ignored.
      if (msg.type === Type.CON) send(encode(emptyMessage(Type.RST, msg.messageId)));
      return;
    }
    this.request(msg, endpoint, epKey, send);
  }

  private request(msg: CoapMessage, endpoint: Endpoint, epKey: string, send: Send): void {
    const key = `${epKey}#${msg.messageId}`;
    const now = this.clock.now();
    const seen = this.dedup.get(key);
    if (seen && seen.expires > now) {
      // §4.5: a duplicate CON is acknowledged again, the same way; a duplicate NON is ignored.
      if (msg.type === Type.CON) {
        if (seen.exchange) seen.exchange.duplicate();
        else if (seen.reply) send(seen.reply);
      }
      return;
    }
    this.purge(now);
    const lifetime = msg.type === Type.CON ? this.limits.exchangeLifetimeMs : TRANSMISSION.NON_LIFETIME;
    const entry: DedupEntry = { expires: now + lifetime };
    this.dedup.delete(key);
    this.dedup.set(key, entry);
    const ex = new Exchange(this, endpoint, send, msg, entry);
    entry.exchange = ex;
    this.opts.onRequest(ex);
  }

  /** Drops expired entries from the front (oldest first) and keeps the table under its cap. */
  private purge(now: number): void {
    for (const [k, e] of this.dedup) {
      if (e.expires > now && this.dedup.size < this.limits.maxDedupEntries) break;
      this.dedup.delete(k);
    }
  }

  /** Sends a notification (or any response outside an exchange) as CON or NON with a fresh Message ID. */
  sendResponse(epKey: string, send: Send, token: Uint8Array, reply: Reply, confirmable: boolean, cb: ConCallbacks = {}): number {
    const messageId = this.transmitter.nextMessageId();
    const msg: CoapMessage = { type: confirmable ? Type.CON : Type.NON, code: reply.code, messageId, token, options: reply.options ?? [], payload: reply.payload ?? new Uint8Array() };
    if (confirmable) this.transmitter.sendCon(epKey, send, msg, cb);
    else {
      send(encode(msg));
      if (cb.onReset) this.transmitter.trackNon(epKey, messageId, cb.onReset);
    }
    return messageId;
  }

  get dedupSize(): number {
    return this.dedup.size;
  }

  close(): void {
    for (const e of this.dedup.values()) e.exchange = undefined;
    this.dedup.clear();
    this.transmitter.close();
  }
}
