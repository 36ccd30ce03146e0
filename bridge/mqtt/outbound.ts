import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { Delivery } from '../platform/types';
import type { Qos } from './codes';
import type { Cursor } from './cursor';
import type { StoredInflight } from './session';
import { topicOf } from './topics';
import { utf8Text } from '../../shared/envelope';
import { deliveredFormat } from './format';

/** What the outbox needs from its connection. */
export interface OutboundLink {
  readonly version: 4 | 5;
  /** 'too-large': discarded because of the client's Maximum Packet Size [MQTT-3.1.2-25 (5.0)]. */
  send(packet: Packet): 'sent' | 'too-large' | 'closed';
  /** Runs `fn`, whose sends may be written to the socket together (one write for a burst). */
  batch(fn: () => void): void;
  /** In-flight window: min(our maxInflight, the client's Receive Maximum) [MQTT-3.3.4-9]. */
  readonly window: number;
  readonly maxQueued: number;
  /** Bytes waiting in the socket; QoS 0 deliveries are dropped above `maxWriteBuffer`. */
  readonly backlog: number;
  readonly maxWriteBuffer: number;
  now(): number;
  /**
   * The queue behind the window overflowed and has since drained: the client cannot keep up. It is
   * disconnected (v5 0x97); a persistent session resumes from what it acknowledged.
   */
  slowConsumer(): void;
  /** A cursor moved (persistent sessions checkpoint it). */
  progress(): void;
  log(msg: string): void;
}

/** The shared subscription group a delivery was picked for (shares.ts). */
export interface ShareTag {
  /** `${group}\0${filter}`: the group's copy is not merged with a non-shared subscription's [MQTT 5 §4.8.2]. */
  readonly group: string;
  /**
   * This client cannot finish `d` (its connection ended, or it fell behind). `qos`: what it was (or
   * would have been) sent at; `sent`: this session was sent its PUBLISH (in flight now, or by an
   * earlier connection: its packet id is reserved), so a QoS 2 one is this session's alone [MQTT-4.8.2-4].
   */
  returned(d: Delivery, qos: Qos, sent: boolean): void;
}

/**
 * One topic filter's place in a session: whose Subscription Identifier the deliveries of that filter
 * carry — the subscription in effect there [MQTT 5 §3.8.2.1.2]. A re-SUBSCRIBE of the filter takes
 * the same slot and sets the identifier when it takes effect, so a message offered by both the old
 * and the new subscription (both are open while one replaces the other) is one subscription's, and
 * carries one identifier, not both.
 */
export interface SubscriptionSlot {
  subscriptionId: number | undefined;
}

interface Offer {
  d: Delivery;
  qos: Qos;
  retain: boolean;
  cursors: Cursor[];
  share?: ShareTag;
  /** The slots of the subscriptions merged into this copy, each once (`more` made on the first merge). */
  from?: SubscriptionSlot | undefined;
  more?: SubscriptionSlot[];
  /** A DUP resend: the identifiers its first PUBLISH carried ([] for none), whatever the slots say now. */
  ids?: number[] | undefined;
}

/** The identifiers a copy carries when sent: those its slots have then [MQTT-3.3.4-3, MQTT-3.3.4-4]; undefined for none. */
function idsOf(o: Offer): number[] | undefined {
  if (o.ids !== undefined) return o.ids;
  const first = o.from?.subscriptionId;
  let ids = first === undefined ? undefined : [first];
  if (o.more) for (const s of o.more) if (s.subscriptionId !== undefined) (ids ??= []).push(s.subscriptionId);
  return ids;
}

interface Inflight {
  qos: 1 | 2;
  channel: string;
  seq: number;
  retained: boolean;
  released: boolean;
  cursors: Cursor[];
  /** A shared delivery keeps its message: it goes back to the group if the connection ends. */
  share?: { tag: ShareTag; d: Delivery };
  /** What it was sent with, saved with the session for the DUP resend. */
  ids?: number[] | undefined;
}

/** Where a delivery is in the session: a shared group's copy is a slot of its own. */
const slot = (channel: string, seq: number, group?: string): string => (group === undefined ? `${channel}\u0000${seq}` : `${channel}\u0000${seq}\u0000${group}`);

/** Seconds left of a message's expiry (whole seconds, rounded up), or undefined when it has none [MQTT-3.3.2-6]. The clock is read only for a message that has one. */
function expiryLeft(d: Delivery, link: Pick<OutboundLink, 'now'>): number | undefined {
  return d.expiresAt === undefined ? undefined : Math.ceil((d.expiresAt - link.now()) / 1000);
}

/** The topic name of the last delivery (consecutive deliveries mostly share one): built once for the run. */
let lastTopic = { channel: '', subtopic: '', topic: '' };
function topicFor(d: Delivery): string {
  if (d.channel !== lastTopic.channel || d.subtopic !== lastTopic.subtopic) lastTopic = { channel: d.channel, subtopic: d.subtopic, topic: topicOf(d.channel, d.subtopic) };
  return lastTopic.topic;
}

/** Whether a delivery's payload is UTF-8, decided once per delivery (it goes to every recipient in turn). */
let lastChecked: { d: Delivery | null; utf8: boolean } = { d: null, utf8: false };
function utf8Payload(d: Delivery): boolean {
  if (lastChecked.d !== d) lastChecked = { d, utf8: utf8Text(d.payload) !== null };
  return lastChecked.utf8;
}

function publishPacket(d: Delivery, qos: Qos, retain: boolean, link: Pick<OutboundLink, 'version' | 'now'>, ids?: number[]): IPublishPacket {
  const packet: IPublishPacket = { cmd: 'publish', topic: topicFor(d), payload: Buffer.from(d.payload.buffer, d.payload.byteOffset, d.payload.byteLength), qos, dup: false, retain };
  if (link.version === 5) {
    const left = expiryLeft(d, link);
    packet.properties = {
      // The publisher's own Content Type and Payload Format Indicator [MQTT-3.3.2-4], [MQTT-3.3.2-20] (format.ts).
      ...deliveredFormat(d, () => utf8Payload(d)),
      ...(d.userProperties ? { userProperties: d.userProperties } : {}),
      ...(left !== undefined ? { messageExpiryInterval: Math.max(1, left) } : {}),
      // Unaltered, to every subscriber [MQTT-3.3.2-15], [MQTT-3.3.2-16].
      ...(d.responseTopic !== undefined ? { responseTopic: d.responseTopic } : {}),
      ...(d.correlation !== undefined ? { correlationData: Buffer.from(d.correlation.buffer, d.correlation.byteOffset, d.correlation.byteLength) } : {}),
    };
    // Those of every matching subscription that has one, in one copy [MQTT-3.3.4-3, MQTT-3.3.4-4]
    // (duplicates kept: two subscriptions may share an identifier). Counted in the packet's size.
    if (ids !== undefined && ids.length > 0) packet.properties.subscriptionIdentifier = ids.length === 1 ? ids[0]! : ids;
  }
  return packet;
}

/**
 * Deliveries to one client: de-duplication of overlapping subscriptions, packet ids, the in-flight
 * window and the queue behind it, the QoS 1/2 sender state machines, and DUP redelivery of what a
 * resumed session had in flight.
 */
export class Outbox {
  private readonly batch = new Map<string, Offer>();
  private scheduled = false;
  private held = 0;
  private readonly inflight = new Map<number, Inflight>();
  private readonly queue: Offer[] = [];
  /**
   * Retained replays in `queue`: they do not count toward maxQueued. A SUBSCRIBE's retained
   * messages arrive at once, as many as the channels hold (one per subtopic), and are already in
   * memory; counted, a subscription to a channel with more than maxQueued + the window of them made
   * its subscriber a "slow consumer" at once, and again on every reconnect.
   */
  private queuedRetained = 0;
  /** From a resumed session: `slot()` → the packet id it had [MQTT-4.4.0-1]. */
  private readonly reserved = new Map<string, StoredInflight>();
  /** The packet ids in `reserved`: not given to another delivery (made by the first resume that has any). */
  private reservedIds: Set<number> | null = null;
  private nextId = 1;
  /** QoS 0 deliveries dropped for a full socket buffer. */
  dropped = 0;
  /**
   * Set when the queue overflowed: later QoS 1/2 deliveries are dropped without touching their
   * cursors, so the cursors stop just before the first one and a resumed session gets it again.
   */
  private overflowed = false;

  constructor(private readonly link: OutboundLink) {}

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** The queue overflowed: nothing more is taken until the client has caught up (and is disconnected). */
  get overflowing(): boolean {
    return this.overflowed;
  }

  /**
   * One message for one subscription granted `granted`. Copies of a message matched by several
   * subscriptions in the same turn are merged and sent once at the highest QoS [MQTT-3.3.4-2 (5.0),
   * MQTT-3.3.5-1 (3.1.1)], with the Subscription Identifiers of all of them [MQTT-3.3.4-4]; a
   * shared subscription's copy is separate [MQTT 5 §4.8.2] and carries its own [MQTT-3.3.4-5].
   * `from`: the offering subscription's filter (SubscriptionSlot); two offers from one count once.
   */
  offer(d: Delivery, granted: Qos, retain: boolean, cursor: Cursor | null, share?: ShareTag, from?: SubscriptionSlot): void {
    if (cursor && !d.retained && cursor.skip(d.seq)) return;
    // [MQTT-3.8.4-8] min(the QoS it was published with, the subscription's granted QoS).
    const qos = d.qos !== undefined && d.qos < granted ? d.qos : granted;
    const key = `${slot(d.channel, d.seq, share?.group)}\u0000${d.retained ? 'r' : 'l'}`;
    const o = this.batch.get(key);
    if (o) {
      o.qos = Math.max(o.qos, qos) as Qos;
      o.retain ||= retain;
      if (cursor) o.cursors.push(cursor);
      if (from && from !== o.from && !o.more?.includes(from)) {
        if (o.from) (o.more ??= []).push(from);
        else o.from = from;
      }
    } else this.batch.set(key, { d, qos, retain, cursors: cursor ? [cursor] : [], ...(share ? { share } : {}), from });
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Deliveries wait while held (e.g. until the SUBACK is written). */
  hold(): void {
    this.held++;
  }

  release(): void {
    this.held = Math.max(0, this.held - 1);
    this.flush();
  }

  flush(): void {
    if (this.held > 0) return;
    const offers = [...this.batch.values()];
    this.batch.clear();
    if (offers.length === 1) this.dispatch(offers[0]!);
    else if (offers.length > 1) this.link.batch(() => offers.forEach((o) => this.dispatch(o)));
  }

  private dispatch(o: Offer): void {
    const { d } = o;
    const left = expiryLeft(d, this.link);
    // [MQTT-3.3.2-5] an expired message is not sent on.
    if (left !== undefined && left <= 0) return this.complete(o.d, o.cursors);
    if (o.qos === 0) {
      if (this.link.backlog > this.link.maxWriteBuffer) this.dropped++;
      else this.link.send(publishPacket(d, 0, o.retain, this.link, idsOf(o)));
      return this.complete(d, o.cursors);
    }
    if (this.overflowed) return this.giveBack(o);
    if (!d.retained && this.queue.length - this.queuedRetained >= this.link.maxQueued) {
      this.overflowed = true;
      this.link.log(`more than ${this.link.maxQueued} deliveries waiting; dropping the rest until the client catches up`);
      return this.giveBack(o);
    }
    if (!d.retained) for (const c of o.cursors) c.handed(d.seq);
    const at = slot(d.channel, d.seq, o.share?.group);
    const again = d.retained ? undefined : this.reserved.get(at);
    if (again) {
      this.unreserve(at, again);
      // The resend carries what the first PUBLISH carried, whatever the resumed subscriptions merged.
      o.ids = again.subscriptionIds ?? [];
      return this.transmit(o, again.packetId, true);
    }
    if (this.queue.length === 0 && this.inflight.size < this.link.window) return this.transmit(o, this.allocate(), false);
    if (d.retained) this.queuedRetained++;
    this.queue.push(o);
  }

  private transmit(o: Offer, packetId: number, dup: boolean): void {
    const { d } = o;
    const qos = o.qos as 1 | 2;
    const ids = idsOf(o);
    const packet = publishPacket(d, qos, o.retain, this.link, ids);
    packet.messageId = packetId;
    packet.dup = dup;
    this.inflight.set(packetId, { qos, channel: d.channel, seq: d.seq, retained: d.retained, released: false, cursors: o.cursors, ...(o.share ? { share: { tag: o.share, d } } : {}), ids });
    if (this.link.send(packet) === 'too-large') {
      // "behave as if it had completed sending that Application Message" [MQTT-3.1.2-25 (5.0)].
      this.inflight.delete(packetId);
      this.complete(d, o.cursors);
      this.pump();
      return;
    }
    // The packet id is part of the session: checkpoint it, so that even after a bridge crash the
    // message is resent with DUP and this id [MQTT-4.4.0-1].
    if (!d.retained) this.link.progress();
  }

  private complete(d: Delivery, cursors: Cursor[]): void {
    if (d.retained || cursors.length === 0) return;
    for (const c of cursors) c.finished(d.seq);
    this.link.progress();
  }

  private pump(): void {
    while (this.queue.length > 0 && this.inflight.size < this.link.window) {
      const o = this.queue.shift()!;
      if (o.d.retained) this.queuedRetained--;
      const left = expiryLeft(o.d, this.link);
      if (left !== undefined && left <= 0) this.complete(o.d, o.cursors);
      else this.transmit(o, this.allocate(), false);
    }
    if (this.overflowed && this.queue.length === 0 && this.inflight.size === 0) this.link.slowConsumer();
  }

  private allocate(): number {
    for (let i = 0; i < 65_535; i++) {
      const id = this.nextId;
      this.nextId = (this.nextId % 65_535) + 1;
      if (!this.inflight.has(id) && !this.reservedIds?.has(id)) return id;
    }
    throw new Error('no free packet identifier');
  }

  /** PUBACK: QoS 1 done [MQTT-4.3.2-3]. False when the id is not a QoS 1 in flight. */
  puback(id: number): boolean {
    const e = this.inflight.get(id);
    if (!e || e.qos !== 1) return false;
    this.inflight.delete(id);
    this.finish(e);
    this.pump();
    return true;
  }

  /**
   * PUBREC: the client owns the message now; answer PUBREL ('release'). A failure code ends the
   * exchange ('done') [MQTT-4.3.3-4]; 'unknown' when the id is not a QoS 2 in flight.
   */
  pubrec(id: number, reasonCode: number): 'release' | 'done' | 'unknown' {
    const e = this.inflight.get(id);
    if (!e || e.qos !== 2) return 'unknown';
    if (reasonCode >= 0x80) {
      this.inflight.delete(id);
      if (!e.released) this.finish(e);
      this.pump();
      return 'done';
    }
    if (!e.released) {
      e.released = true;
      this.finish(e);
    }
    return 'release';
  }

  /** PUBCOMP: QoS 2 done; the id is free [MQTT-4.3.3-5]. */
  pubcomp(id: number): boolean {
    const e = this.inflight.get(id);
    if (!e || e.qos !== 2 || !e.released) return false;
    this.inflight.delete(id);
    this.pump();
    return true;
  }

  private finish(e: Inflight): void {
    if (e.retained || e.cursors.length === 0) return;
    for (const c of e.cursors) c.finished(e.seq);
    this.link.progress();
  }

  /** A resumed session's in-flight deliveries: PUBRELs are resent now, PUBLISHes when the replay brings them. */
  restore(list: StoredInflight[]): void {
    for (const r of list) {
      if (r.released) this.releaseId(r);
      else {
        this.reserved.set(slot(r.channel, r.seq, r.share), r);
        (this.reservedIds ??= new Set()).add(r.packetId);
      }
    }
  }

  /** PUBREL on a QoS 2 packet id, which stays in use (in flight, counted in the window) until its PUBCOMP [MQTT-4.3.3]. */
  private releaseId(r: StoredInflight): void {
    this.inflight.set(r.packetId, { qos: 2, channel: r.channel, seq: r.seq, retained: false, released: true, cursors: [] });
    this.link.send(this.link.version === 5 ? { cmd: 'pubrel', messageId: r.packetId, reasonCode: 0 } : { cmd: 'pubrel', messageId: r.packetId });
  }

  private unreserve(at: string, r: StoredInflight): void {
    this.reserved.delete(at);
    this.reservedIds?.delete(r.packetId);
  }

  /** A shared offer this client will not send goes back to its group, sent if an earlier connection of the session had sent it. */
  private giveBack(o: Offer): void {
    if (!o.share) return;
    const r = this.reserved.get(slot(o.d.channel, o.d.seq, o.share.group));
    o.share.returned(o.d, r?.qos ?? o.qos, r !== undefined);
  }

  /** A resumed session had `d` in flight for the shared group `group` (it goes back to this client). */
  reserves(d: Delivery, group: string): boolean {
    return this.reserved.size > 0 && this.reserved.has(slot(d.channel, d.seq, group));
  }

  /**
   * The connection ended: shared deliveries it had not finished go back to their groups — sent ones
   * (in flight, or re-offered on a resume that had not resent them yet: their packet id is
   * reserved) kept for this session's resume while it lives, unsent ones to another member (shares.ts).
   */
  abandon(): void {
    const inflight = [...this.inflight.values()];
    const offers = [...this.batch.values(), ...this.queue];
    this.batch.clear();
    this.queue.length = 0;
    this.queuedRetained = 0;
    for (const e of inflight) if (e.share && !e.released) e.share.tag.returned(e.share.d, e.qos, true);
    for (const o of offers) this.giveBack(o);
  }

  /**
   * After the replay (and what shared groups held for this session, offered as it rejoined them):
   * in-flight deliveries that did not come back are given up (logged). A QoS 1 one's packet id is
   * free at once. A QoS 2 one's is not: the client may have PUBRECed it (a PUBREC lost with the
   * connection) and be waiting for PUBREL, and would take a new QoS 2 PUBLISH with that id for a
   * duplicate — PUBREC it, and never deliver it [MQTT-4.3.3-10]: acknowledged, and lost. So the exchange
   * is completed on that id: PUBREL, as if its PUBREC had come. A client that had the PUBLISH
   * delivers it then, if it had not yet, and forgets the id; one that never got it answers PUBCOMP
   * (v5 0x92, Packet Identifier not found). The id is in use until that PUBCOMP, counted in the
   * in-flight window like any QoS 2 delivery, so the ids a session holds stay within its window —
   * before, each resume that could not resend one kept its id out of use until the session ended,
   * and a long-lived session could run out of the 65,535.
   */
  dropUnreplayed(): void {
    if (this.reserved.size === 0) return;
    let dropped = 0;
    let released = 0;
    for (const [at, r] of [...this.reserved]) {
      this.unreserve(at, r);
      if (r.qos === 2) {
        this.releaseId(r);
        released++;
      } else dropped++;
    }
    if (dropped > 0) this.link.log(`${dropped} unacknowledged QoS 1 deliveries are no longer kept by their channels; not redelivered`);
    if (released > 0) this.link.log(`${released} unacknowledged QoS 2 deliveries are no longer kept by their channels; not redelivered, their packet ids released (PUBREL)`);
  }

  /** What a persistent session keeps of the in-flight state (retained replays cannot be fetched again). */
  snapshot(): StoredInflight[] {
    const out: StoredInflight[] = [...this.reserved.values()];
    for (const [packetId, e] of this.inflight) {
      if (e.retained) continue;
      out.push({ packetId, channel: e.channel, seq: e.seq, qos: e.qos, released: e.released, ...(e.share ? { share: e.share.tag.group } : {}), ...(e.ids?.length && !e.released ? { subscriptionIds: e.ids } : {}) });
    }
    return out;
  }
}
