import type { Clock, Timer } from '../clock';
import type { Delivery, Platform, Subscription } from '../platform/types';
import type { Qos } from './codes';
import { Cursor } from './cursor';
import type { StoredCursor } from './session';

/**
 * A delivery kept for an away member holds the group's cursor back, and every message the others
 * finish meanwhile is remembered above it (in memory and in each member's saved session). Past this
 * many, what away members kept goes to the others instead (MQTT 5 §4.8.2 allows it at once).
 */
const MAX_AHEAD = 1000;

/** A member of a shared subscription: one session's subscription with its granted QoS. */
export interface ShareMember {
  /** `${session key}\0${topic filter}`: the same member again when its session resumes (or re-SUBSCRIBEs). */
  key: string;
  qos: Qos;
  /** Sends `d` through the member's outbox; `cursor` is the group's (acknowledgements move it). */
  offer(d: Delivery, qos: Qos, cursor: Cursor): void;
  /** The member's resumed session had `d` in flight: it goes back to it, DUP, same packet id [MQTT-4.4.0-1]. */
  holds(d: Delivery): boolean;
  /** Takes nothing more: its connection ended, or its queue overflowed (a slow consumer). */
  readonly closed: boolean;
}

/** A delivery taken back from a member that could not finish it, kept until someone can. */
interface Held {
  d: Delivery;
  /** The member whose session had it in flight (it is resent to it alone), or null: the next live member. */
  owner: string | null;
}

interface ChannelGroup {
  /** Members whose connection is open. */
  members: ShareMember[];
  /** Members whose connection ended while their session lives on: member key → the session's expiry. */
  away: Map<string, Timer>;
  next: number;
  /**
   * The group's resume point in the channel, moved by whichever member finishes a message; it is
   * saved in every member's session (its subscription's cursor for the channel).
   */
  cursor: Cursor;
  held: Map<number, Held>;
  filter: string;
  /** The platform subscription while a member is connected; null while the group waits for one. */
  handle: Promise<Subscription> | null;
}

/**
 * Shared subscriptions `$share/{group}/{filter}` [MQTT-4.8.2] (MQTT 5; accepted from 3.1.1 clients
 * too, as Mosquitto does): each message goes to one member, round-robin. One platform
 * subscription per (group, filter, channel) serves every member on this bridge. Groups are per bridge: members connected to different bridges form different
 * groups, so each bridge's group gets a copy (docs/mqtt.md — a cross-bridge group needs the channel
 * actor to pick the bridge). Retained messages are not sent to shared subscriptions (§3.3.1.3:
 * they go to a new *non-shared* subscription).
 *
 * Like a session, a group keeps no messages: it has a cursor. While no member is connected but a
 * member's session lives, the group closes its platform subscription and keeps its cursor; the
 * first member back subscribes again after it, and the channel actor replays the backlog.
 * A member whose connection ends keeps what it had in flight (resent to it alone when its session
 * resumes, MQTT 5 §4.8.2 "MAY wait for the Client to reconnect"); what it had not been sent yet,
 * and everything once its session ends, goes to the other members ("SHOULD send the Application
 * Message to another Client").
 */
export class SharedSubscriptions {
  /** `${group}\0${filter}` → channel → group state. */
  private readonly groups = new Map<string, Map<string, ChannelGroup>>();

  constructor(
    private readonly platform: Platform,
    private readonly clock: Clock,
  ) {}

  /**
   * Adds (or replaces) a member on one channel and returns the group's cursor. The group is created
   * at `stored` (a resumed session's cursor) when this bridge has none; it subscribes when its
   * first member connects. What was kept for the member, then for anyone, is offered first.
   */
  async join(groupKey: string, channel: string, filter: string, member: ShareMember, stored?: StoredCursor): Promise<Cursor> {
    let channels = this.groups.get(groupKey);
    if (!channels) this.groups.set(groupKey, (channels = new Map()));
    let g = channels.get(channel);
    if (!g) channels.set(channel, (g = { members: [], away: new Map(), next: 0, cursor: new Cursor(stored), held: new Map(), filter, handle: null }));
    g.away.get(member.key)?.cancel();
    g.away.delete(member.key);
    const at = g.members.findIndex((m) => m.key === member.key);
    if (at >= 0) g.members[at] = member;
    else g.members.push(member);
    for (const [seq, h] of g.held) {
      if (h.owner !== member.key) continue;
      g.held.delete(seq);
      member.offer(h.d, member.qos, g.cursor);
    }
    this.handOut(g);
    const handle = (g.handle ??= this.subscribe(g, channel));
    try {
      await handle;
    } catch (e) {
      // The platform refused: nobody can be served on this channel through this group entry.
      if (channels.get(channel) === g) this.forget(groupKey, channel, g);
      throw e;
    }
    return g.cursor;
  }

  /**
   * Removes a member from every channel of a group except `keep`. With `awayMs` (its connection
   * ended, its session lives that long) the member stays counted until then: the group waits,
   * unsubscribed, for it or another member. A group with nobody left is forgotten.
   */
  leave(groupKey: string, memberKey: string, keep: ReadonlySet<string> = new Set(), awayMs = 0): void {
    const channels = this.groups.get(groupKey);
    if (!channels) return;
    for (const [channel, g] of [...channels]) {
      if (keep.has(channel) || !(g.away.has(memberKey) || g.members.some((m) => m.key === memberKey))) continue;
      g.members = g.members.filter((m) => m.key !== memberKey);
      if (awayMs > 0) {
        g.away.get(memberKey)?.cancel();
        g.away.set(memberKey, this.clock.setTimer(awayMs, () => this.sessionEnded(groupKey, channel, memberKey)));
      } else this.release(g, memberKey);
      this.settle(groupKey, channel, g);
    }
  }

  /** A session was claimed on this bridge: any of its members still away are gone (Clean Start, or not resumed). */
  claimed(sessionKey: string): void {
    const prefix = `${sessionKey}\u0000`;
    for (const [groupKey, channels] of [...this.groups]) {
      for (const [channel, g] of [...channels]) for (const key of [...g.away.keys()]) if (key.startsWith(prefix)) this.sessionEnded(groupKey, channel, key);
    }
  }

  /**
   * A member's connection could not finish `d` (it ended, or the member could take no more): kept
   * for the member if it was `sent` and its session lives (resent on resume), else for the others.
   */
  returned(groupKey: string, memberKey: string, d: Delivery, sent: boolean): void {
    const g = this.groups.get(groupKey)?.get(d.channel);
    if (!g || g.cursor.skip(d.seq)) return;
    g.cursor.handed(d.seq);
    g.held.set(d.seq, { d, owner: sent && g.away.has(memberKey) ? memberKey : null });
    this.handOut(g);
  }

  get size(): number {
    return this.groups.size;
  }

  private subscribe(g: ChannelGroup, channel: string): Promise<Subscription> {
    const since = g.cursor.since;
    return this.platform.subscribe({ channel, filter: g.filter, ...(since !== null ? { since } : {}) }, (d) => this.pick(g, d)).then((h) => {
      if (h.seq !== undefined) g.cursor.begin(h.seq);
      return h;
    });
  }

  private pick(g: ChannelGroup, d: Delivery): void {
    // Done, or already with someone (a replay after the group waited covers what it had handed out).
    if (d.retained || g.cursor.skip(d.seq) || g.cursor.pending(d.seq)) return;
    if (g.held.size > 0 && g.cursor.ahead > MAX_AHEAD) {
      for (const h of g.held.values()) h.owner = null;
      this.handOut(g);
    }
    const live = g.members.filter((m) => !m.closed);
    const owner = live.find((m) => m.holds(d));
    if (owner) return owner.offer(d, owner.qos, g.cursor);
    if (live.length === 0) {
      // Between a member's end and its leave: keep it for the next one.
      g.cursor.handed(d.seq);
      g.held.set(d.seq, { d, owner: null });
      return;
    }
    const m = live[g.next++ % live.length]!;
    m.offer(d, m.qos, g.cursor);
  }

  /** Deliveries kept for anyone go to live members, round-robin, oldest first. */
  private handOut(g: ChannelGroup): void {
    const free = [...g.held].filter(([, h]) => h.owner === null).sort(([a], [b]) => a - b);
    for (const [seq, h] of free) {
      const live = g.members.filter((m) => !m.closed);
      if (live.length === 0) return;
      g.held.delete(seq);
      const m = live[g.next++ % live.length]!;
      m.offer(h.d, m.qos, g.cursor);
    }
  }

  /** What was kept for a member whose session ended goes to the others [MQTT 5 §4.8.2]. */
  private release(g: ChannelGroup, memberKey: string): void {
    g.away.get(memberKey)?.cancel();
    g.away.delete(memberKey);
    for (const h of g.held.values()) if (h.owner === memberKey) h.owner = null;
    this.handOut(g);
  }

  private sessionEnded(groupKey: string, channel: string, memberKey: string): void {
    const g = this.groups.get(groupKey)?.get(channel);
    if (!g?.away.has(memberKey)) return;
    this.release(g, memberKey);
    this.settle(groupKey, channel, g);
  }

  /** No member connected: stop the platform subscription (the cursor stays); nobody at all: forget the group. */
  private settle(groupKey: string, channel: string, g: ChannelGroup): void {
    if (g.members.length > 0) return;
    if (g.away.size === 0) return this.forget(groupKey, channel, g);
    const handle = g.handle;
    g.handle = null;
    void handle?.then((h) => h.close(), () => undefined);
  }

  private forget(groupKey: string, channel: string, g: ChannelGroup): void {
    const channels = this.groups.get(groupKey);
    if (channels?.get(channel) !== g) return;
    for (const t of g.away.values()) t.cancel();
    channels.delete(channel);
    if (channels.size === 0) this.groups.delete(groupKey);
    void g.handle?.then((h) => h.close(), () => undefined);
    g.handle = null;
  }
}
