/**
 * The bridge link: one WebSocket between the trusted bridge and one channel actor that carries
 * many subscriptions and publishes at once (subprotocols `edgeflux.link.v5`, `.v4`, `.v3`, `.v2` and `.v1`).
 *
 * Each WebSocket binary message is one frame: a CBOR (RFC 8949) array of ops, so a burst of
 * publishes or deliveries costs one message. Each op is itself a positional array whose first
 * element is the opcode; trailing optional elements may be omitted (or null). Layout:
 *
 *   bridge → actor
 *     [1  publish     id, subtopic, publisher, protocol, contentType, payload(bytes), retain, properties?, expiry?, qos?, format?, responseTopic?, correlation?, origin?]
 *     [4  subscribe   sub, filter, since?, noLocal?, share?]
 *     [6  unsubscribe sub]
 *     [11 consumed    seq]                      cumulative flow-control ack of deliveries
 *     [12 settled     [frame...]]               these numbered frames' shared-group deliveries are all finished, in any order (v5; may be empty: a no-op)
 *   actor → bridge
 *     [2  ack         id, seq, created]         publish `id` is stored as `seq`
 *     [3  nack        id, status, code, reason] publish `id` refused (HTTP-like status: 400, 413, 429…)
 *     [5  suback      sub, seq]                 subscribed; `seq` = the channel's last seq at that moment
 *     [7  unsuback    sub]
 *     [8  message     subs[], channel, seq, created, subtopic, publisher, protocol, contentType, payload, retained, properties?, expiry?, retain?, qos?, format?, responseTopic?, correlation?]
 *     [9  gap         sub, from, to]            seqs from..to (inclusive) are no longer kept; not replayed
 *     [13 frame       no]                       the shared-group deliveries of this frame are frame `no` (v5; first op;
 *                                               `no` and settled's numbers: integers in [0, 2^53), as large as ~1.8e15, so
 *                                               encoded as CBOR float64 — readers take any number encoding of an integer)
 *     [10 error       code, reason, sub?]
 *
 * String references (`edgeflux.link.v2`): in one frame, the elements subtopic, publisher,
 * protocol and contentType of `publish` and `message` ops, and channel of `message` ops, share a
 * string table. Each such element given as a string is appended to the table, in frame order;
 * such an element may instead be a non-negative integer k: the table's k-th string (0-based).
 * A v2 sender writes each distinct string once per frame and refers to it after that (a burst
 * repeats the same publisher ids and content types thousands of times). Receivers accept
 * references whichever subprotocol was chosen; a v1 sender simply never writes one.
 *
 * Publish QoS (`edgeflux.link.v3`): `qos` (0, 1 or 2) is the QoS an MQTT client published with, kept
 * with the message and handed back on `message` ops, so a delivery goes out at
 * min(published, granted) [MQTT-3.8.4-8]. Absent means 2: a message stored and confirmed by its
 * channel actor (HTTP, WebSocket, CoAP) may be delivered at any QoS. Only a v3 or newer sender writes it
 * (v1 and v2 receivers refuse elements they do not know); receivers accept it on any link.
 *
 * MQTT 5 request/response and payload format (`edgeflux.link.v4`): `responseTopic` (a string, an
 * Edgeflux topic name the bridge checked) and `correlation` (bytes, at most 65535) are the MQTT 5
 * Response Topic and Correlation Data, kept with the message and handed back unaltered on every
 * `message` op [MQTT-3.3.2-15], [MQTT-3.3.2-16]. `format` says what the publisher itself gave of
 * the Payload Format Indicator and the Content Type, as a bit set (FORMAT): `contentType` stays the
 * content type the platform stores and checks (a publisher without one gets its channel's default,
 * or text/plain under Payload Format Indicator 1), and `format` lets the bridge give MQTT 5
 * subscribers the publisher's own properties, unaltered [MQTT-3.3.2-4], [MQTT-3.3.2-20].
 * Absent `format` means "nothing to add": `contentType` is the publisher's own unless it is
 * application/octet-stream (which then stands for none), and the bridge derives the indicator from
 * it — what every message without `format` meant before v4, and exactly right for the most common
 * publish (no Content Type, no indicator, a channel with the default content type), which so costs
 * nothing. Only a v4 or newer sender writes these three; receivers accept them on any link.
 *
 * MQTT 5 No Local (`edgeflux.link.v4`): `origin` on `publish` names the publishing MQTT connection's
 * client (its session: principal and client id), written only when that connection has a No Local
 * subscription — the only case it can matter. A subscription's `noLocal` is such a token too: the
 * actor skips a message for it when `noLocal` equals the message's `origin`, so only the same
 * client id is skipped, not other clients of the same device [MQTT-3.8.3-3]. A `noLocal` equal to
 * the publisher id is still skipped as well (what older bridges sent). The actor keeps `origin` in
 * its log for replays, never in D1, and hands it back on no op; retained messages carry none (sent
 * on subscribe whoever published them, as Mosquitto 2 does).
 *
 * Shared subscriptions across bridges (`edgeflux.link.v5`): `share` on `subscribe` names an MQTT 5
 * shared subscription group (the MQTT bridge writes `{ShareName}/{Topic Filter}`, so two different
 * MQTT shared subscriptions are two groups even where they map to one channel filter). The
 * subscriptions of every link naming the same `share` and `filter` form one group: the actor gives
 * each message to the subscription of ONE link of the group (round-robin), and that bridge picks
 * one member of its own. A shared subscription gets no retained messages and no replay (`since` is
 * ignored). Acknowledgement is by frame NUMBER: the actor starts each frame that holds deliveries
 * for a shared subscription with `frame no` — `no` unique to that frame on that socket, and never
 * reused by a later instance of the actor (it counts up from a base taken from the clock when the
 * instance starts) — and the bridge answers `settled` with the numbers of the frames all of whose
 * shared deliveries are finished (given to a member and acknowledged by it, or let go: a closed
 * subscription gives its unfinished deliveries back), in any order, as they finish. A delivery the
 * bridge cannot hand to a subscription (one it closed) counts as finished: the actor gives what an
 * unsubscribed subscription held to another link. The actor ignores (and logs) a number it does not
 * know; `settled []` is a no-op (the bridge sends it to keep the actor from eviction while it holds
 * deliveries). What a link has not settled when it closes, or when it unsubscribes the
 * subscription, the actor gives to another link of the group (docs/channel-actor.md "Shared
 * groups") — so the bridge sends a subscription's `unsubscribe` before the `settled` naming the
 * frames it gives back: read the other way round, those deliveries would be released as finished,
 * to no link. Only a v5
 * sender writes `share`, `settled` and `frame`; on an older link the bridge's subscription is a
 * plain one
 * and gets every message (each bridge's group its own copy, as before v5).
 *
 * `id` and `sub` are the bridge's own non-negative integers. `properties` are MQTT 5 user
 * properties as [name, value] pairs (order and duplicates kept, §3.3.2.3.7); `expiry` is the
 * message expiry interval in seconds (§3.3.2.3.3), remaining time on delivery. In `message`,
 * `retained` says the op is a retained replay; `retain` (true or absent) that the publisher set RETAIN
 * (for MQTT 5 Retain As Published, §3.8.3.1).
 */
import { asBytes, cborDecode, cborEncode, CborError } from './cbor';
import { isProtocol, type Envelope, type Protocol } from './envelope';

/** The newest link subprotocol: v4 and shared subscription groups across bridges. A bridge offers it first. */
export const LINK_SUBPROTOCOL = 'edgeflux.link.v5';
/** Still accepted: v3 and MQTT 5 request/response and payload format, without shared groups. */
export const LINK_SUBPROTOCOL_V4 = 'edgeflux.link.v4';
/** Still accepted: v2 and publish QoS, without Response Topic, Correlation Data or format. */
export const LINK_SUBPROTOCOL_V3 = 'edgeflux.link.v3';
/** Still accepted: v1 and string references, without publish QoS. */
export const LINK_SUBPROTOCOL_V2 = 'edgeflux.link.v2';
/** Still accepted: a peer that offers only v1 gets frames without string references or QoS. */
export const LINK_SUBPROTOCOL_V1 = 'edgeflux.link.v1';
/** What a bridge offers, newest first. */
export const LINK_SUBPROTOCOLS = [LINK_SUBPROTOCOL, LINK_SUBPROTOCOL_V4, LINK_SUBPROTOCOL_V3, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V1] as const;

/** The subprotocol to answer an offer with (the newest both sides speak), or undefined if the peer offered none of ours. */
export function chooseLinkSubprotocol(offered: readonly string[]): string | undefined {
  return LINK_SUBPROTOCOLS.find((p) => offered.includes(p));
}

/** Whether frames sent on a link whose chosen subprotocol is `subprotocol` may use string references. */
export const linkUsesRefs = (subprotocol: string | null | undefined): boolean => subprotocol === LINK_SUBPROTOCOL || subprotocol === LINK_SUBPROTOCOL_V4 || subprotocol === LINK_SUBPROTOCOL_V3 || subprotocol === LINK_SUBPROTOCOL_V2;

/** Whether frames sent on a link whose chosen subprotocol is `subprotocol` may carry publish QoS. */
export const linkCarriesQos = (subprotocol: string | null | undefined): boolean => subprotocol === LINK_SUBPROTOCOL || subprotocol === LINK_SUBPROTOCOL_V4 || subprotocol === LINK_SUBPROTOCOL_V3;

/** Whether frames sent on a link whose chosen subprotocol is `subprotocol` may carry format, Response Topic and Correlation Data. */
export const linkCarriesMqtt5 = (subprotocol: string | null | undefined): boolean => subprotocol === LINK_SUBPROTOCOL || subprotocol === LINK_SUBPROTOCOL_V4;

/** Whether frames sent on a link whose chosen subprotocol is `subprotocol` may carry `share` and `settled` (v5). */
export const linkCarriesShare = (subprotocol: string | null | undefined): boolean => subprotocol === LINK_SUBPROTOCOL;

/** What a sender may write on a link: string references (v2 and up), publish QoS (v3 and up), format, Response Topic, Correlation Data and origin (v4), shared groups (v5). */
export interface LinkDialect {
  refs: boolean;
  qos: boolean;
  mqtt5?: boolean;
  share?: boolean;
}

/** The dialect of a link whose chosen subprotocol is `subprotocol`. */
export const linkDialect = (subprotocol: string | null | undefined): LinkDialect => ({ refs: linkUsesRefs(subprotocol), qos: linkCarriesQos(subprotocol), mqtt5: linkCarriesMqtt5(subprotocol), share: linkCarriesShare(subprotocol) });

export const OPCODES = {
  publish: 1,
  ack: 2,
  nack: 3,
  subscribe: 4,
  suback: 5,
  unsubscribe: 6,
  unsuback: 7,
  message: 8,
  gap: 9,
  error: 10,
  consumed: 11,
  settled: 12,
  frame: 13,
} as const;

export type UserProperties = [string, string][];

/** The QoS an MQTT client published with, when below 2 (absent: 2, see "Publish QoS" above). */
export type LinkQos = 0 | 1;

/**
 * The bits of `format` (see "MQTT 5 request/response and payload format" above). A Payload Format
 * Indicator is kept as given, 0 included (`unspecified`); `ownContentType` says `contentType` is
 * the Content Type the publisher gave. `format` present without it: the publisher gave none.
 */
export const FORMAT = {
  /** Payload Format Indicator 0 (unspecified bytes), given explicitly. */
  unspecified: 1,
  /** Payload Format Indicator 1: UTF-8. */
  utf8: 2,
  /** `contentType` is the publisher's own Content Type. */
  ownContentType: 4,
} as const;

/** The content type that, without `format`, stands for "the publisher gave none" (every channel's default unless set otherwise). */
export const OPAQUE_CONTENT_TYPE = 'application/octet-stream';

/**
 * The `format` of a message published without a content type, once it is given `defaultType` (its
 * channel's default): it keeps that the publisher gave none, so MQTT 5 subscribers get none —
 * written only where application/octet-stream does not already say so, so the usual publish costs nothing.
 */
export function formatWithDefault(format: number | undefined, defaultType: string): number | undefined {
  if (format !== undefined) return format & ~FORMAT.ownContentType;
  return defaultType === OPAQUE_CONTENT_TYPE ? undefined : 0;
}

/** A valid `format`: the bits above, at most one indicator. */
export const isLinkFormat = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 7 && (v & 3) !== 3;

/** The MQTT 5 Correlation Data is Binary Data (§1.5.6): at most 65535 bytes. */
export const MAX_CORRELATION_BYTES = 0xffff;

/** What MQTT 5 publishers say beyond the envelope (link v4), as every side keeps it. All absent: nothing said. */
export interface Mqtt5Fields {
  /** FORMAT bits; absent: see "MQTT 5 request/response and payload format" above. */
  format?: number;
  /** MQTT 5 Response Topic (§3.3.2.3.5): an Edgeflux topic name. */
  responseTopic?: string;
  /** MQTT 5 Correlation Data (§3.3.2.3.6). */
  correlation?: Uint8Array;
}

export interface LinkPublish extends Mqtt5Fields { op: 'publish'; id: number; subtopic: string; publisher: string; protocol: Protocol; contentType: string; payload: Uint8Array; retain: boolean; properties?: UserProperties; expiry?: number; qos?: LinkQos; origin?: string }
export interface LinkSubscribe { op: 'subscribe'; sub: number; filter: string; since?: number; noLocal?: string; share?: string }
export interface LinkUnsubscribe { op: 'unsubscribe'; sub: number }
export interface LinkConsumed { op: 'consumed'; seq: number }
export interface LinkSettled { op: 'settled'; frames: number[] }
export interface LinkFrameNo { op: 'frame'; no: number }
export interface LinkAck { op: 'ack'; id: number; seq: number; created: number }
export interface LinkNack { op: 'nack'; id: number; status: number; code: string; reason: string }
export interface LinkSuback { op: 'suback'; sub: number; seq: number }
export interface LinkUnsuback { op: 'unsuback'; sub: number }
export interface LinkMessage extends Mqtt5Fields { op: 'message'; subs: number[]; envelope: Envelope; retained: boolean; properties?: UserProperties; expiry?: number; retain?: true; qos?: LinkQos }
export interface LinkGap { op: 'gap'; sub: number; from: number; to: number }
export interface LinkErrorOp { op: 'error'; code: string; reason: string; sub?: number }

export type BridgeOp = LinkPublish | LinkSubscribe | LinkUnsubscribe | LinkConsumed | LinkSettled;
export type ActorOp = LinkAck | LinkNack | LinkSuback | LinkUnsuback | LinkMessage | LinkGap | LinkErrorOp | LinkFrameNo;
export type LinkOp = BridgeOp | ActorOp;

export const LINK_LIMITS = {
  opsPerFrame: 10_000,
  /** Publishes one frame may carry: the actor stores at most this many in one transaction. */
  publishesPerFrame: 1000,
  /** A sender starts a new frame once this many payload bytes are in one (workerd takes WebSocket messages up to 1 MiB). */
  frameBytes: 512 * 1024,
  subsPerMessage: 10_000,
  /** Frame numbers one `settled` op may list (a bridge starts another op past it). */
  settledPerOp: 10_000,
  stringLength: 4096,
  properties: 256,
  /** MQTT 5 expiry is a Four Byte Integer. */
  expiry: 0xffff_ffff,
} as const;

export class LinkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinkError';
  }
}

// ---- encode -----------------------------------------------------------------------------------

const opt = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

/** One frame's string table as a sender keeps it: a string's first occurrence goes out as is, later ones as its index. */
class StringRefs {
  private readonly index = new Map<string, number>();
  ref(s: string): string | number {
    const k = this.index.get(s);
    if (k !== undefined) return k;
    this.index.set(s, this.index.size);
    return s;
  }
}

/** The v4 elements, only on a v4 link and only for an op that has one of them (else nothing at all, not even nulls). */
function pushMqtt5(a: unknown[], op: Mqtt5Fields): void {
  a.push(opt(op.format), opt(op.responseTopic), opt(op.correlation));
}

function opArray(op: LinkOp, t: StringRefs | undefined, d: LinkDialect): unknown[] {
  const s = (v: string): string | number => (t ? t.ref(v) : v);
  const qos = d.qos;
  switch (op.op) {
    case 'publish': {
      const a = [1, op.id, s(op.subtopic), s(op.publisher), s(op.protocol), s(op.contentType), op.payload, op.retain, opt(op.properties), opt(op.expiry), qos && op.qos !== undefined ? op.qos : null];
      if (d.mqtt5 && (op.format !== undefined || op.responseTopic !== undefined || op.correlation !== undefined || op.origin !== undefined)) pushMqtt5(a, op);
      if (d.mqtt5 && op.origin !== undefined) a.push(op.origin);
      return a;
    }
    case 'ack':
      return [2, op.id, op.seq, op.created];
    case 'nack':
      return [3, op.id, op.status, op.code, op.reason];
    case 'subscribe':
      return [4, op.sub, op.filter, opt(op.since), opt(op.noLocal), d.share ? opt(op.share) : null];
    case 'suback':
      return [5, op.sub, op.seq];
    case 'unsubscribe':
      return [6, op.sub];
    case 'unsuback':
      return [7, op.sub];
    case 'message': {
      const e = op.envelope;
      const a = [8, op.subs, s(e.channel), e.seq, e.created, s(e.subtopic), s(e.publisher), s(e.protocol), s(e.contentType), e.payload, op.retained, opt(op.properties), opt(op.expiry), op.retain ? true : null, qos && op.qos !== undefined ? op.qos : null];
      if (d.mqtt5 && (op.format !== undefined || op.responseTopic !== undefined || op.correlation !== undefined)) pushMqtt5(a, op);
      return a;
    }
    case 'gap':
      return [9, op.sub, op.from, op.to];
    case 'error':
      return [10, op.code, op.reason, opt(op.sub)];
    case 'consumed':
      return [11, op.seq];
    case 'settled':
      return [12, op.frames];
    case 'frame':
      return [13, op.no];
  }
}

const V1: LinkDialect = { refs: false, qos: false };

/** One op's array. `refs`: the frame's string table, when the link uses string references; `dialect`: what else the link carries (linkDialect). */
export function encodeLinkOp(op: LinkOp, refs?: StringRefs, dialect: boolean | LinkDialect = V1): unknown[] {
  // `true`/`false` alone: publish QoS or not (what this parameter was before v4).
  const a = opArray(op, refs, typeof dialect === 'boolean' ? { refs: refs !== undefined, qos: dialect } : dialect);
  while (a.length > 1 && a[a.length - 1] === null) a.pop();
  return a;
}

/**
 * One frame, in what the link's dialect allows (linkDialect): string references write each
 * repeated string once; publish QoS, and v4's format, Response Topic and Correlation Data, are
 * written only where the peer reads them. `true` is references without the rest (v2); nothing,
 * plain v1.
 */
export function encodeLinkFrame(ops: readonly LinkOp[], dialect: boolean | LinkDialect = false): Uint8Array {
  const d = typeof dialect === 'boolean' ? { refs: dialect, qos: false } : dialect;
  const t = d.refs ? new StringRefs() : undefined;
  return cborEncode(ops.map((op) => encodeLinkOp(op, t, d)));
}

// ---- decode (untrusted bytes → typed ops or a LinkError) -------------------------------------

const NAMES = Object.fromEntries(Object.entries(OPCODES).map(([k, v]) => [v, k])) as Record<number, LinkOp['op']>;

class Reader {
  private i = 1;
  constructor(
    private readonly a: readonly unknown[],
    private readonly index: number,
    private readonly name: string,
    /** The frame's string table (see "String references" above), shared by its ops. */
    private readonly strings: string[],
  ) {}
  /** Where, for an error message: built only when something fails (a frame holds thousands of ops). */
  get where(): string {
    return `op ${this.index} (${this.name})`;
  }
  private fail(what: string): never {
    throw new LinkError(`${this.where}: element ${this.i} must be ${what}`);
  }
  private next(): unknown {
    return this.a[this.i];
  }
  private take<T>(v: T): T {
    this.i++;
    return v;
  }
  isAbsent(): boolean {
    const v = this.next();
    return v === undefined || v === null;
  }
  uint(): number {
    const v = this.next();
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail('a non-negative integer');
    return this.take(v);
  }
  str(): string {
    const v = this.next();
    if (typeof v !== 'string' || v.length > LINK_LIMITS.stringLength) this.fail(`a string of at most ${LINK_LIMITS.stringLength} characters`);
    return this.take(v);
  }
  bool(): boolean {
    const v = this.next();
    if (typeof v !== 'boolean') this.fail('a boolean');
    return this.take(v);
  }
  bytes(): Uint8Array {
    const v = asBytes(this.next());
    if (!v) this.fail('a byte string');
    return this.take(v);
  }
  protocol(): Protocol {
    const v = this.next();
    const p = typeof v === 'number' ? this.resolve(v) : v;
    if (!isProtocol(p)) this.fail('one of http, ws, mqtt, coap');
    if (typeof v === 'string') this.strings.push(v);
    return this.take(p);
  }
  /** A string element that may be a reference into the frame's string table. */
  refStr(): string {
    const v = this.next();
    if (typeof v === 'number') return this.take(this.resolve(v));
    const s = this.str();
    this.strings.push(s);
    return s;
  }
  private resolve(k: number): string {
    const s = Number.isSafeInteger(k) && k >= 0 ? this.strings[k] : undefined;
    if (s === undefined) this.fail(`a string, or a reference to one of the frame's ${this.strings.length} strings so far`);
    return s;
  }
  uints(max: number): number[] {
    const v = this.next();
    if (!Array.isArray(v) || v.length > max || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
      this.fail(`an array of at most ${max} non-negative integers`);
    }
    return this.take(v as number[]);
  }
  properties(): UserProperties | undefined {
    if (this.isAbsent()) return this.take(undefined);
    const v = this.next();
    const ok = (p: unknown): p is [string, string] => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string';
    if (!Array.isArray(v) || v.length > LINK_LIMITS.properties || !v.every(ok)) this.fail(`an array of at most ${LINK_LIMITS.properties} [name, value] string pairs`);
    return this.take(v.map((p: [string, string]) => [p[0], p[1]]));
  }
  optUint(max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (this.isAbsent()) return this.take(undefined);
    const n = this.uint();
    if (n > max) {
      this.i--;
      this.fail(`at most ${max}`);
    }
    return n;
  }
  /** A flag sent only when set: true or absent. */
  optTrue(): true | undefined {
    if (this.isAbsent()) return this.take(undefined);
    const v = this.next();
    if (v !== true) this.fail('true or absent');
    return this.take(true);
  }
  /** 0, 1 or 2; 2 is what absence means, so it comes back as undefined. */
  optQos(): LinkQos | undefined {
    const q = this.optUint(2);
    return q === 2 ? undefined : (q as LinkQos | undefined);
  }
  optStr(): string | undefined {
    return this.isAbsent() ? this.take(undefined) : this.str();
  }
  /** The v4 elements: format, responseTopic, correlation; each set on `into` only when present. */
  mqtt5(into: Mqtt5Fields): void {
    if (this.i >= this.a.length) return; // the usual op: none of them (nothing to read, nothing left for end())
    if (!this.isAbsent()) {
      const v = this.next();
      if (typeof v !== 'number' || !isLinkFormat(v)) this.fail('a format: 0..7, at most one Payload Format Indicator bit');
      into.format = v;
    }
    this.i++;
    const responseTopic = this.optStr();
    if (responseTopic !== undefined) into.responseTopic = responseTopic;
    if (!this.isAbsent()) {
      const b = asBytes(this.next());
      if (!b || b.byteLength > MAX_CORRELATION_BYTES) this.fail(`a byte string of at most ${MAX_CORRELATION_BYTES} bytes`);
      into.correlation = b;
    }
    this.i++;
  }
  end(): void {
    for (let j = this.i; j < this.a.length; j++) {
      if (this.a[j] !== null && this.a[j] !== undefined) throw new LinkError(`${this.where}: unexpected element ${j}`);
    }
  }
}


function decodeOp(raw: unknown, index: number, strings: string[]): LinkOp {
  if (!Array.isArray(raw) || raw.length === 0) throw new LinkError(`op ${index}: must be a non-empty array`);
  const code = raw[0];
  const name = typeof code === 'number' ? NAMES[code] : undefined;
  if (!name) throw new LinkError(`op ${index}: unknown opcode ${JSON.stringify(code)}`);
  const r = new Reader(raw, index, name, strings);
  let op: LinkOp;
  switch (name) {
    case 'publish': {
      const publish: LinkPublish = { op: 'publish', id: r.uint(), subtopic: r.refStr(), publisher: r.refStr(), protocol: r.protocol(), contentType: r.refStr(), payload: r.bytes(), retain: r.bool() };
      const properties = r.properties();
      const expiry = r.optUint(LINK_LIMITS.expiry);
      const qos = r.optQos();
      if (properties !== undefined) publish.properties = properties;
      if (expiry !== undefined) publish.expiry = expiry;
      if (qos !== undefined) publish.qos = qos;
      r.mqtt5(publish);
      const origin = r.optStr();
      if (origin !== undefined) publish.origin = origin;
      op = publish;
      break;
    }
    case 'ack':
      op = { op: 'ack', id: r.uint(), seq: r.uint(), created: r.uint() };
      break;
    case 'nack':
      op = { op: 'nack', id: r.uint(), status: r.uint(), code: r.str(), reason: r.str() };
      break;
    case 'subscribe': {
      const subscribe: LinkSubscribe = { op: 'subscribe', sub: r.uint(), filter: r.str() };
      const since = r.optUint();
      const noLocal = r.optStr();
      const share = r.optStr();
      if (since !== undefined) subscribe.since = since;
      if (noLocal !== undefined) subscribe.noLocal = noLocal;
      if (share !== undefined) subscribe.share = share;
      op = subscribe;
      break;
    }
    case 'suback':
      op = { op: 'suback', sub: r.uint(), seq: r.uint() };
      break;
    case 'unsubscribe':
      op = { op: 'unsubscribe', sub: r.uint() };
      break;
    case 'unsuback':
      op = { op: 'unsuback', sub: r.uint() };
      break;
    case 'message': {
      const subs = r.uints(LINK_LIMITS.subsPerMessage);
      const channel = r.refStr();
      const seq = r.uint();
      const created = r.uint();
      const envelope: Envelope = { channel, seq, created, subtopic: r.refStr(), publisher: r.refStr(), protocol: r.protocol(), contentType: r.refStr(), payload: r.bytes() };
      const message: LinkMessage = { op: 'message', subs, envelope, retained: r.bool() };
      const properties = r.properties();
      const expiry = r.optUint(LINK_LIMITS.expiry);
      const retain = r.optTrue();
      const qos = r.optQos();
      if (properties !== undefined) message.properties = properties;
      if (expiry !== undefined) message.expiry = expiry;
      if (retain !== undefined) message.retain = retain;
      if (qos !== undefined) message.qos = qos;
      r.mqtt5(message);
      op = message;
      break;
    }
    case 'gap':
      op = { op: 'gap', sub: r.uint(), from: r.uint(), to: r.uint() };
      break;
    case 'error': {
      const error: LinkErrorOp = { op: 'error', code: r.str(), reason: r.str() };
      const sub = r.optUint();
      if (sub !== undefined) error.sub = sub;
      op = error;
      break;
    }
    case 'consumed':
      op = { op: 'consumed', seq: r.uint() };
      break;
    case 'settled':
      op = { op: 'settled', frames: r.uints(LINK_LIMITS.settledPerOp) };
      break;
    case 'frame':
      op = { op: 'frame', no: r.uint() };
      break;
  }
  r.end();
  return op;
}

/** Decodes one frame. Never throws anything but LinkError, whatever the bytes. */
export function decodeLinkFrame(bytes: Uint8Array): LinkOp[] {
  let value: unknown;
  try {
    value = cborDecode(bytes);
  } catch (e) {
    throw new LinkError(e instanceof CborError ? e.message : 'not valid CBOR');
  }
  if (!Array.isArray(value)) throw new LinkError('frame must be a CBOR array of ops');
  if (value.length > LINK_LIMITS.opsPerFrame) throw new LinkError(`frame has more than ${LINK_LIMITS.opsPerFrame} ops`);
  const strings: string[] = [];
  return value.map((raw, i) => decodeOp(raw, i, strings));
}

export const isBridgeOp = (op: LinkOp): op is BridgeOp => op.op === 'publish' || op.op === 'subscribe' || op.op === 'unsubscribe' || op.op === 'consumed' || op.op === 'settled';
