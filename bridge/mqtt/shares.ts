import type { Clock, Timer } from '../clock';
import type { Delivery, Platform, Subscription } from '../platform/types';
import type { Qos } from './codes';
import { Cursor } from './cursor';
import type { StoredCursor } from './session';

/**
 * A delivery kept for an away member holds the group's cursor back, and every message the others
 * finish meanwhile is remembered above it (in memory and in each member's saved session). Past this
 * many, what away members kept at QoS 1 goes to the others instead (MQTT 5 §4.8.2 allows it at once);
 * a QoS 2 delivery stays with its member's session whatever the count [MQTT-4.8.2-4].
 */
const MAX_AHEAD = 1000;

/** A member of a shared subscription: one session's subscription with its granted QoS. */
export interface ShareMember {
  /** `${session key}\0${topic filter}`: the same member again when its session resumes (or re-SUBSCRIBEs). */
  key: string;
  qos: Qos;
  /** Its session outlives its connection (Session Expiry Interval > 0; 3.1.1 Clean Session 0). */
  persistent: boolean;
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
  /**
   * Sent to `owner` at QoS 2 and not PUBREC'd: only that session may complete it. It stays with it,
   * whatever the bound, and is dropped, never handed over, when that session ends [MQTT-4.8.2-4, MQTT-4.8.2-5].
   */
  exactlyOnce: boolean;
}

interface ChannelGroup {
  /** Members whose connection is open. */
  members: ShareMember[];
  /** Members whose connection ended while their session lives on (their expiry: `Away`). */
  away: Set<string>;
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
  /**
   * The group spans bridges: the channel actor gives each message to one bridge's subscription of
   * it (`share`), and each delivery is settled with the actor once finished here (`settles`, by seq).
   * Only while every member it has had is a session that ends with its connection, at QoS 0 or 1
   * (`spans`); a member that is not turns it into a group of this bridge alone, as before.
   */
  span: boolean;
  settles: Map<number, () => void>;
}

/**
 * A group spans bridges only while its members' sessions end with their connections, at QoS ≤ 1: the
 * actor gives a delivery a link left unfinished to another bridge, which cannot hold a QoS 2 delivery
 * to the one session that had it [MQTT-4.8.2-4, MQTT-4.8.2-5], nor a away member's claim on it.
 */
const spans = (m: ShareMember): boolean => !m.persistent && m.qos <= 1;

/** A member away from its group: the channels it is away on, and one timer for its session's expiry. */
interface Away {
  groupKey: string;
  memberKey: string;
  sessionKey: string;
  channels: Set<string>;
  timer: Timer | null;
}

/** A member key is `${session key}\0${topic filter}`; a topic filter has no U+0000 [MQTT-1.5.4-2]. */
const sessionOf = (memberKey: string): string => memberKey.slice(0, memberKey.lastIndexOf('\u0000'));
const readable = (key: string): string => key.replaceAll('\u0000', ' ');

/**
 * Shared subscriptions `$share/{group}/{filter}` [MQTT-4.8.2] (MQTT 5; accepted from 3.1.1 clients
 * too, as Mosquitto does): each message goes to one member, round-robin. One platform
 * subscription per (group, filter, channel) serves every member on this bridge. While every member
 * is a session that ends with its connection, at QoS ≤ 1, the group spans bridges (link v5 `share`:
 * the channel actor picks the bridge, this bridge one member); a persistent or QoS 2 member keeps it
 * per bridge — members on different bridges then form different groups, each getting a copy
 * (docs/mqtt.md "Shared subscriptions"). Retained messages are not sent to shared subscriptions (§3.3.1.3:
 * they go to a new *non-shared* subscription).
 *
 * Like a session, a group keeps no messages: it has a cursor. While no member is connected but a
 * member's session lives, the group closes its platform subscription and keeps its cursor; the
 * first member back subscribes again after it, and the channel actor replays the backlog.
 * A member whose connection ends keeps what it had in flight (resent to it alone when its session
 * resumes, MQTT 5 §4.8.2 "MAY wait for the Client to reconnect"); what it had not been sent yet goes
 * to the other members. Once its session ends, a QoS 1 delivery it had goes to another member (§4.8.2
 * SHOULD); a QoS 2 one it had been sent is dropped [MQTT-4.8.2-5].
 */
export class SharedSubscriptions {
  /** `${group}\0${filter}` → channel → group state. */
  private readonly groups = new Map<string, Map<string, ChannelGroup>>();
  /** Member key → where it is away (a member belongs to one group: its filter names it). */
  private readonly away = new Map<string, Away>();
  /** Session key → its away members: a CONNECT finds them without looking through every group. */
  private readonly sessions = new Map<string, Set<Away>>();

  constructor(
    private readonly platform: Platform,
    private readonly clock: Clock,
    private readonly log: (msg: string) => void = () => undefined,
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
    if (!g) channels.set(channel, (g = this.group(filter, stored, spans(member))));
    else if (g.span && !spans(member)) this.unspan(g, groupKey, channel);
    if (g.away.delete(member.key)) this.back(member.key, channel);
    const at = g.members.findIndex((m) => m.key === member.key);
    if (at >= 0) g.members[at] = member;
    else g.members.push(member);
    for (const [seq, h] of g.held) {
      if (h.owner !== member.key) continue;
      g.held.delete(seq);
      member.offer(h.d, member.qos, g.cursor);
    }
    this.handOut(g);
    const handle = (g.handle ??= this.subscribe(g, groupKey, channel));
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
    let away: Away | null = null;
    for (const [channel, g] of [...channels]) {
      if (keep.has(channel) || !(g.away.has(memberKey) || g.members.some((m) => m.key === memberKey))) continue;
      g.members = g.members.filter((m) => m.key !== memberKey);
      if (awayMs > 0) {
        g.away.add(memberKey);
        away = this.markAway(groupKey, memberKey, channel);
      } else this.release(channel, g, memberKey);
      this.settle(groupKey, channel, g);
    }
    // One timer for the member's session, however many channels its filter covers.
    if (away) {
      const a = away;
      a.timer?.cancel();
      a.timer = this.clock.setTimer(awayMs, () => this.sessionEnded(a));
    }
  }

  /**
   * The session was claimed — by a new connection here (Clean Start, or resumed without some of its
   * shared subscriptions), or on another bridge: its members still away here are gone. What they
   * held goes to the others (QoS 1) or is dropped (QoS 2 sent to them; a resume elsewhere resends
   * it from its own replay).
   */
  claimed(sessionKey: string): void {
    for (const a of [...(this.sessions.get(sessionKey) ?? [])]) this.sessionEnded(a);
  }

  /** This bridge holds deliveries for a member of the session whose connection ended: it needs to hear of a claim elsewhere. */
  holding(sessionKey: string): boolean {
    for (const a of this.sessions.get(sessionKey) ?? []) {
      for (const channel of a.channels) {
        const g = this.groups.get(a.groupKey)?.get(channel);
        if (g) for (const h of g.held.values()) if (h.owner === a.memberKey) return true;
      }
    }
    return false;
  }

  /**
   * A member's connection could not finish `d` (it ended, or the member could take no more). Sent at
   * QoS 2, it stays the member's while its session lives, else it is dropped [MQTT-4.8.2-4/5]; sent
   * at QoS 1, it is kept for the member while it is away (resent on resume), else it goes to the
   * others, as an unsent one does.
   */
  returned(groupKey: string, memberKey: string, d: Delivery, qos: Qos, sent: boolean): void {
    const g = this.groups.get(groupKey)?.get(d.channel);
    if (!g || g.cursor.skip(d.seq)) return; // (never for a spanning group: Cursor.spanning)
    g.cursor.handed(d.seq);
    const away = g.away.has(memberKey);
    if (sent && qos === 2) {
      if (!away && !g.members.some((m) => m.key === memberKey)) return this.drop(g, d, memberKey);
      g.held.set(d.seq, { d, owner: memberKey, exactlyOnce: true });
      return;
    }
    g.held.set(d.seq, { d, owner: sent && away ? memberKey : null, exactlyOnce: false });
    this.handOut(g);
  }

  get size(): number {
    return this.groups.size;
  }

  private group(filter: string, stored: StoredCursor | undefined, span: boolean): ChannelGroup {
    const g: ChannelGroup = { members: [], away: new Set(), next: 0, cursor: new Cursor(stored), held: new Map(), filter, handle: null, span, settles: new Map() };
    g.cursor.spanning = span;
    g.cursor.onFinished = (seq) => {
      const settle = g.settles.get(seq);
      if (!settle) return;
      g.settles.delete(seq);
      settle();
    };
    return g;
  }

  /**
   * A member that cannot span (a persistent session, QoS 2) joined a spanning group: from now on a
   * group of this bridge alone, live from now — a plain platform subscription first, then the
   * spanning one closed, which gives what it had not finished back to the actor (for another bridge:
   * duplicates at QoS ≤ 1, never a loss).
   */
  private unspan(g: ChannelGroup, groupKey: string, channel: string): void {
    g.span = false;
    g.cursor.spanning = false;
    const old = g.handle;
    if (!old) return;
    g.handle = this.subscribe(g, groupKey, channel, false);
    void g.handle.then(
      () => old.then((h) => h.close(), () => undefined),
      () => old.then((h) => h.close(), () => undefined),
    );
  }

  private subscribe(g: ChannelGroup, groupKey: string, channel: string, resume = true): Promise<Subscription> {
    // A spanning group is named `{ShareName}/{Topic Filter}` (the group key, readable): two MQTT shared
    // subscriptions are two groups even where they map to one channel filter. It resumes nothing: what
    // other bridges took is theirs, and the actor keeps what no bridge took.
    const since = g.span || !resume ? null : g.cursor.since;
    const req = { channel, filter: g.filter, ...(since !== null ? { since } : {}), ...(g.span ? { share: groupKey.replace('\u0000', '/') } : {}) };
    return this.platform.subscribe(req, (d) => this.pick(g, d)).then((h) => {
      if (h.seq !== undefined) (resume ? g.cursor.begin(h.seq) : g.cursor.liveFrom(h.seq));
      return h;
    });
  }

  private pick(g: ChannelGroup, d: Delivery): void {
    if (d.settle) {
      // A spanning group's delivery: settled when a member finishes it (Cursor.onFinished).
      if (d.retained) return d.settle();
      const had = g.settles.get(d.seq);
      const settle = d.settle;
      g.settles.set(d.seq, had ? () => (had(), settle()) : settle);
      // Already here (a copy the actor gave again after this bridge's link dropped): that one finishes both.
      if (g.cursor.pending(d.seq)) return;
    }
    // Done, or already with someone (a replay after the group waited covers what it had handed out).
    else if (d.retained || g.cursor.skip(d.seq) || g.cursor.pending(d.seq)) return;
    if (g.held.size > 0 && g.cursor.ahead > MAX_AHEAD) {
      // The bound: what away members kept at QoS 1 goes to the others (§4.8.2 allows it at once). A
      // QoS 2 delivery stays with its member's session [MQTT-4.8.2-4].
      let freed = false;
      for (const h of g.held.values()) {
        if (h.owner === null || h.exactlyOnce) continue;
        h.owner = null;
        freed = true;
      }
      if (freed) this.handOut(g);
    }
    const live = g.members.filter((m) => !m.closed);
    const owner = live.find((m) => m.holds(d));
    if (owner) return owner.offer(d, owner.qos, g.cursor);
    if (live.length === 0) {
      // Between a member's end and its leave: keep it for the next one.
      g.cursor.handed(d.seq);
      g.held.set(d.seq, { d, owner: null, exactlyOnce: false });
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

  /** A member's session ended (on this channel): what it kept at QoS 1 goes to the others [MQTT 5 §4.8.2], at QoS 2 nowhere [MQTT-4.8.2-5]. */
  private release(channel: string, g: ChannelGroup, memberKey: string): void {
    if (g.away.delete(memberKey)) this.back(memberKey, channel);
    for (const [seq, h] of [...g.held]) {
      if (h.owner !== memberKey) continue;
      if (h.exactlyOnce) {
        g.held.delete(seq);
        this.drop(g, h.d, memberKey);
      } else h.owner = null;
    }
    this.handOut(g);
  }

  /** A QoS 2 delivery whose session ended before it completed: finished for the group, sent to nobody else [MQTT-4.8.2-5]. */
  private drop(g: ChannelGroup, d: Delivery, memberKey: string): void {
    g.cursor.finished(d.seq);
    this.log(`shared subscription ${readable(memberKey)}: QoS 2 message ${d.seq} on channel ${d.channel} was in flight when its session ended; not sent to another member [MQTT-4.8.2-5]`);
  }

  private sessionEnded(a: Away): void {
    a.timer?.cancel();
    a.timer = null;
    for (const channel of [...a.channels]) {
      const g = this.groups.get(a.groupKey)?.get(channel);
      if (!g?.away.has(a.memberKey)) {
        this.back(a.memberKey, channel);
        continue;
      }
      this.release(channel, g, a.memberKey);
      this.settle(a.groupKey, channel, g);
    }
  }

  private markAway(groupKey: string, memberKey: string, channel: string): Away {
    let a = this.away.get(memberKey);
    if (!a) {
      a = { groupKey, memberKey, sessionKey: sessionOf(memberKey), channels: new Set(), timer: null };
      this.away.set(memberKey, a);
      let mine = this.sessions.get(a.sessionKey);
      if (!mine) this.sessions.set(a.sessionKey, (mine = new Set()));
      mine.add(a);
    }
    a.channels.add(channel);
    return a;
  }

  /** The member is no longer away on `channel` (back, or gone); on no channel at all, its timer and entries go. */
  private back(memberKey: string, channel: string): void {
    const a = this.away.get(memberKey);
    if (!a?.channels.delete(channel) || a.channels.size > 0) return;
    a.timer?.cancel();
    this.away.delete(memberKey);
    const mine = this.sessions.get(a.sessionKey);
    mine?.delete(a);
    if (mine?.size === 0) this.sessions.delete(a.sessionKey);
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
    for (const memberKey of g.away) this.back(memberKey, channel);
    channels.delete(channel);
    if (channels.size === 0) this.groups.delete(groupKey);
    // Closing a spanning subscription gives what it had not finished back to the actor (platform link).
    g.settles.clear();
    void g.handle?.then((h) => h.close(), () => undefined);
    g.handle = null;
  }
}
