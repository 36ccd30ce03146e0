import type { ActorOp, LinkMessage } from '../../shared/link';
import { compileFilter } from '../../shared/topics';
import type { ChannelMessage } from './types';

/**
 * Shared subscription groups that span bridges (link v5 `share`; docs/channel-actor.md "Shared
 * groups"). The subscriptions of every link that name the same share and filter are one group: each
 * message goes to ONE of them, round-robin among the links with room; the bridge behind it picks one
 * member of its own.
 *
 * Acknowledgement is by frame NUMBER, never by seq or by count: each frame sent to a link that holds
 * deliveries for groups starts with `frame no` (fanout.ts), and is remembered here with what it held
 * until the bridge names it in `settled` — in any order, so one delivery a client never acknowledges
 * holds back its own frame, not the link's later ones. Numbers count up from a base taken from the
 * clock when the instance starts (`frameBase`), so a number an earlier instance sent never names a
 * frame of this one: after an eviction the bridge's settles of old frames are ignored (and logged).
 *
 * Each link may hold at most `linkMessages` deliveries / `linkBytes` unsettled; a link without room
 * is not picked. A message no link of its group has room for (or that no link is left for) is kept
 * by the group, at most `groupMessages` / `groupBytes` of them for at most `heldTtlMs`, and given
 * out as links settle or join. Everything held (unsettled with links, kept by groups) is capped by
 * `actorBytes`. What is dropped is logged (aggregated, every SWEEP_MS at most).
 *
 * What a link has not settled when it closes, or when it unsubscribes the subscription, goes to
 * another link of the group (or is kept by it). Everything here is in memory: membership is rebuilt
 * from `link_subs` when an instance starts (store.ts `putLinkSub`); what was unsettled is not — an
 * eviction forgets it (bounded by the link limits, logged when the bridge settles what this
 * instance does not know; docs/channel-actor.md).
 */

const MiB = 1024 * 1024;

export interface ShareLimits {
  /** Deliveries a link may hold unsettled; past it (or `linkBytes`, or `linkFrames`) the group picks another link. */
  linkMessages: number;
  linkBytes: number;
  /** Numbered frames a link may hold unsettled (frames an unsubscribe emptied count until settled). */
  linkFrames: number;
  /** What a group keeps while no link of it has room (or it has none), oldest dropped first. */
  groupMessages: number;
  groupBytes: number;
  /** Everything held for groups by this actor: unsettled with links and kept by groups. */
  actorBytes: number;
  /** How long a group keeps a message no link took, and a group whose last link closed waits for one. */
  heldTtlMs: number;
  /** A link at its limit that settles nothing for this long is closed: the last resort (logged). */
  stuckMs: number;
}

export const SHARE_LIMITS: Readonly<ShareLimits> = Object.freeze({
  linkMessages: 1000,
  linkBytes: 4 * MiB,
  linkFrames: 4000,
  groupMessages: 1000,
  groupBytes: 4 * MiB,
  actorBytes: 16 * MiB,
  heldTtlMs: 5 * 60_000,
  stuckMs: 5 * 60_000,
});

/** While anything is held, a timer this often sweeps (expiry, stuck links, drop logs) and keeps the instance from hibernating — not from eviction. */
const SWEEP_MS = 10_000;

/** Frame numbers of an instance start here: above any an earlier instance could have reached (< 1,000 frames a millisecond), within 2^53. */
export const frameBase = (now = Date.now()): number => now * 1000;

/** What one delivery is counted as (its payload and a bound on the rest of the message). */
const sizeOf = (m: ChannelMessage): number => m.envelope.payload.byteLength + 256;

interface Member {
  link: string;
  sub: number;
}

interface Held {
  m: ChannelMessage;
  bytes: number;
  at: number;
}

interface Group {
  key: string;
  match: (subtopic: string) => boolean;
  members: Member[];
  next: number;
  /** Messages no link of the group had room for (or no link was left for), oldest first. */
  held: Held[];
  heldBytes: number;
  /** When the group lost its last link (ms), or null while it has one. */
  emptySince: number | null;
  /** It lost its last link by a close, not an unsubscribe: it waits (taking new messages) for a link to come back. */
  waiting: boolean;
}

interface LinkState {
  /** Frame number → the group deliveries it held (fewer once an unsubscribe took some back). */
  frames: Map<number, Given[]>;
  /** Deliveries held unsettled (framed, or picked and about to be), and their bytes. */
  count: number;
  bytes: number;
  /** Subscriptions of the link in groups. */
  memberships: number;
  /** When it last settled something, or took its first unsettled delivery (stuck detection). */
  since: number;
}

/** One delivery given to a link for a group: `sub` is that link's subscription of the group. */
export interface Given {
  group: string;
  sub: number;
  m: ChannelMessage;
  bytes: number;
}

interface Dropped {
  n: number;
  from: number;
  to: number;
  why: string;
}

/** The group key: `share` and `filter` (a share name and a filter are both strings without U+0000 here). */
const groupKey = (share: string, filter: string): string => `${share}\u0000${filter}`;

export class ShareGroups {
  private readonly groups = new Map<string, Group>();
  private readonly links = new Map<string, LinkState>();
  /** What each message op sent to a link holds for groups, until its frame is sent. */
  private readonly marks = new WeakMap<ActorOp, Given[]>();
  private nextFrame: number;
  /** Bytes held: unsettled with every link, and kept by every group. */
  private held = 0;
  /** Messages kept by groups (to skip handing them out when there are none). */
  private keptCount = 0;
  private readonly drops = new Map<string, Dropped>();
  /** Per link, frame numbers it settled that this instance did not send (logged once a sweep). */
  private readonly unknownSettled = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  limits: ShareLimits = { ...SHARE_LIMITS };
  /** A link stuck at its limit is to be closed (core.ts closes its socket; the close gives its deliveries back). */
  onStuck: (link: string, why: string) => void = () => undefined;

  constructor(
    private readonly log: (msg: string) => void = (msg) => console.warn(msg),
    base = frameBase(),
  ) {
    this.nextFrame = base;
  }

  /** Any group or link state: the one check the delivery path makes when there is none. */
  get active(): boolean {
    return this.groups.size > 0 || this.links.size > 0;
  }

  /** Bytes held for groups by this actor (tests, stats). */
  get heldBytes(): number {
    return this.held;
  }

  /** A link's subscription joins a group; returns what the group kept, up to the link's room, to give it now (in seq order). */
  join(link: string, sub: number, share: string, filter: string, now = Date.now()): Given[] {
    const key = groupKey(share, filter);
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { key, match: compileFilter(filter), members: [], next: 0, held: [], heldBytes: 0, emptySince: null, waiting: false }));
    const s = this.linkState(link, now);
    if (!g.members.some((x) => x.link === link && x.sub === sub)) (g.members.push({ link, sub }), s.memberships++);
    g.emptySince = null;
    g.waiting = false;
    const out: Given[] = [];
    while (g.held.length > 0 && this.hasRoom(s, (g.held[0] as Held).bytes)) out.push(this.give(g, { link, sub }, this.unkeep(g), now));
    this.idleCheck();
    return out;
  }

  /** A link's subscription leaves its group (unsubscribe, or replaced): what it had not settled, to give again. */
  leave(link: string, sub: number, now = Date.now()): Given[] {
    const s = this.links.get(link);
    let left = false;
    for (const g of this.groups.values()) {
      const before = g.members.length;
      g.members = g.members.filter((x) => !(x.link === link && x.sub === sub));
      if (g.members.length === before) continue;
      left = true;
      if (s) s.memberships--;
      if (g.members.length === 0) g.emptySince = now;
    }
    if (!left || !s) return [];
    // The frames stay until settled (the bridge settles every numbered frame); only what they held for this subscription goes.
    const back: Given[] = [];
    for (const frame of s.frames.values()) {
      let k = 0;
      for (const x of frame) {
        if (x.sub === sub) back.push(x);
        else frame[k++] = x;
      }
      frame.length = k;
    }
    for (const x of back) this.release(s, x);
    this.forgetIfDone(link, s);
    back.sort((a, b) => a.m.envelope.seq - b.m.envelope.seq);
    return back;
  }

  /** The link closed: it leaves every group, and everything it had not settled is to be given again. */
  linkGone(link: string, now = Date.now()): Given[] {
    for (const g of this.groups.values()) {
      const before = g.members.length;
      if (before === 0) continue;
      g.members = g.members.filter((x) => x.link !== link);
      if (g.members.length === 0) (g.emptySince = now), (g.waiting = true);
    }
    const s = this.links.get(link);
    if (!s) return [];
    this.links.delete(link);
    // Its reservations (picked, not framed yet) go with it: `unsent` finds no state for them.
    this.held -= s.bytes;
    return [...s.frames.values()].flat();
  }

  /** The bridge finished these frames (every group delivery in them), in any order. Numbers this instance did not send are logged, not applied. */
  settled(link: string, nos: readonly number[], now = Date.now()): void {
    const s = this.links.get(link);
    let unknown = 0;
    let known = 0;
    for (const no of nos) {
      const frame = s?.frames.get(no);
      if (!s || !frame) {
        unknown++;
        continue;
      }
      s.frames.delete(no);
      for (const x of frame) this.release(s, x);
      known++;
    }
    if (s && known > 0) {
      s.since = now;
      this.forgetIfDone(link, s);
    }
    if (unknown > 0) {
      this.unknownSettled.set(link, (this.unknownSettled.get(link) ?? 0) + unknown);
      this.idleCheck();
    }
  }

  /** How many deliveries the link holds unsettled. */
  unsettled(link: string): number {
    return this.links.get(link)?.count ?? 0;
  }

  /**
   * Picks, for each message, one link with room of each group it matches (round-robin): per link,
   * per message index, what it is given. A group no link has room for keeps the message, as does a
   * group waiting for its closed last link to come back; a group left by unsubscribes takes none.
   */
  pick(messages: readonly ChannelMessage[], now = Date.now()): Map<string, Map<number, Given[]>> {
    const out = new Map<string, Map<number, Given[]>>();
    messages.forEach((m, i) => {
      let bytes = -1;
      for (const g of this.groups.values()) {
        if (g.members.length === 0 && !g.waiting) continue;
        if (!g.match(m.envelope.subtopic)) continue;
        if (bytes < 0) bytes = sizeOf(m);
        const member = this.choose(g, bytes);
        if (!member) {
          this.keep(g, m, bytes, now);
          continue;
        }
        let mine = out.get(member.link);
        if (!mine) out.set(member.link, (mine = new Map()));
        const x = this.give(g, member, { m, bytes, at: now }, now);
        const given = mine.get(i);
        if (given) given.push(x);
        else mine.set(i, [x]);
      }
    });
    this.idleCheck();
    return out;
  }

  /**
   * Deliveries given back (a link closed or unsubscribed), and what groups kept, to the links with
   * room now: per link, in seq order. Called after every `leave`, `linkGone` and `settled`: a group
   * its last link unsubscribed from, with nothing kept, is forgotten here.
   */
  regive(back: readonly Given[], now = Date.now()): Map<string, Given[]> {
    const out = new Map<string, Given[]>();
    const to = (member: Member, x: Given): void => {
      let mine = out.get(member.link);
      if (!mine) out.set(member.link, (mine = []));
      mine.push(x);
    };
    for (const x of back) {
      const g = this.groups.get(x.group);
      if (!g) {
        this.drop(x.group, [x.m], 'its group is gone');
        continue;
      }
      const member = this.choose(g, x.bytes);
      if (member) to(member, this.give(g, member, { m: x.m, bytes: x.bytes, at: now }, now));
      else this.keep(g, x.m, x.bytes, now);
    }
    if (this.keptCount > 0) {
      for (const g of this.groups.values()) {
        while (g.held.length > 0) {
          const member = this.choose(g, (g.held[0] as Held).bytes);
          if (!member) break;
          to(member, this.give(g, member, this.unkeep(g), now));
        }
      }
    }
    for (const list of out.values()) list.sort((a, b) => a.m.envelope.seq - b.m.envelope.seq);
    this.dropEmpty();
    this.idleCheck();
    return out;
  }

  /** The op carries these group deliveries (they count once its frame is sent: `framed`). */
  mark(op: LinkMessage, given: Given[]): void {
    this.marks.set(op, given);
  }

  /**
   * A frame is about to be sent to the link: if it holds group deliveries, its number (to write
   * first in it) — remembered until settled. `back`: what it holds when the link is gone already.
   */
  framed(link: string, ops: readonly ActorOp[]): { no: number | null; back: Given[]; zero: Given[] } {
    let held: Given[] | null = null;
    for (const op of ops) {
      const g = this.marks.get(op);
      if (g) (held ??= []).push(...g);
    }
    if (!held) return { no: null, back: [], zero: [] };
    const s = this.links.get(link);
    if (!s) return { no: null, back: held, zero: [] };
    const no = this.nextFrame++;
    // A message published at QoS 0 is delivered at QoS 0 whatever the member was granted (the lower
    // of the two): once sent it is never given again — at most once, even if this link closes before
    // its frame is settled. The frame is still numbered (the bridge settles it; a known number).
    // They are `zero`: if the frame cannot be sent after all, the caller gives them again.
    const zero: Given[] = [];
    let k = 0;
    for (const x of held) {
      if (x.m.qos === 0) {
        this.release(s, x);
        zero.push(x);
      } else held[k++] = x;
    }
    held.length = k;
    s.frames.set(no, held);
    this.idleCheck();
    return { no, back: [], zero };
  }

  /** What ops a link was not sent after all hold for groups (no longer counted against it): to give again. */
  unsent(link: string, ops: readonly ActorOp[]): Given[] {
    const given = ops.flatMap((op) => this.marks.get(op) ?? []);
    const s = this.links.get(link);
    if (s) for (const x of given) this.release(s, x);
    return given;
  }

  private linkState(link: string, now: number): LinkState {
    let s = this.links.get(link);
    if (!s) this.links.set(link, (s = { frames: new Map(), count: 0, bytes: 0, memberships: 0, since: now }));
    return s;
  }

  private hasRoom(s: LinkState, bytes: number): boolean {
    if (s.frames.size >= this.limits.linkFrames) return false;
    // An idle link always takes one message, however large: a group is never starved by its own cap.
    if (s.count === 0) return true;
    return s.count < this.limits.linkMessages && s.bytes + bytes <= this.limits.linkBytes && this.held + bytes <= this.limits.actorBytes;
  }

  private full(s: LinkState): boolean {
    return s.count >= this.limits.linkMessages || s.bytes >= this.limits.linkBytes || s.frames.size >= this.limits.linkFrames;
  }

  /** The next member, round-robin, whose link has room; null if none has. */
  private choose(g: Group, bytes: number): Member | null {
    const n = g.members.length;
    for (let k = 0; k < n; k++) {
      const at = (g.next + k) % n;
      const member = g.members[at] as Member;
      const s = this.links.get(member.link);
      if (s && this.hasRoom(s, bytes)) {
        g.next = (at + 1) % n;
        return member;
      }
    }
    return null;
  }

  /** Counts a delivery against its link from the moment it is picked (framed or `unsent` later). */
  private give(g: Group, member: Member, h: Held, now: number): Given {
    const s = this.links.get(member.link) as LinkState;
    if (s.count === 0) s.since = now;
    s.count++;
    s.bytes += h.bytes;
    this.held += h.bytes;
    return { group: g.key, sub: member.sub, m: h.m, bytes: h.bytes };
  }

  private release(s: LinkState, x: Given): void {
    s.count--;
    s.bytes -= x.bytes;
    this.held -= x.bytes;
  }

  private forgetIfDone(link: string, s: LinkState): void {
    if (s.memberships <= 0 && s.frames.size === 0 && s.count === 0) this.links.delete(link);
  }

  /** The group keeps a message no link took; past its caps (or the actor's) the oldest go, logged. */
  private keep(g: Group, m: ChannelMessage, bytes: number, now: number): void {
    g.held.push({ m, bytes, at: now });
    g.heldBytes += bytes;
    this.held += bytes;
    this.keptCount++;
    const dropped: ChannelMessage[] = [];
    while (g.held.length > 0 && (g.held.length > this.limits.groupMessages || g.heldBytes > this.limits.groupBytes || this.held > this.limits.actorBytes)) dropped.push(this.unkeep(g).m);
    if (dropped.length > 0) this.drop(g.key, dropped, `past the group's cap (${this.limits.groupMessages} messages, ${this.limits.groupBytes} bytes) or the actor's (${this.limits.actorBytes} bytes)`);
  }

  private unkeep(g: Group): Held {
    const h = g.held.shift() as Held;
    g.heldBytes -= h.bytes;
    this.held -= h.bytes;
    this.keptCount--;
    return h;
  }

  /** Dropped messages are logged per group and reason, at most once a sweep. */
  private drop(key: string, ms: readonly ChannelMessage[], why: string): void {
    if (ms.length === 0) return;
    const id = `${key}\u0000${why}`;
    const d = this.drops.get(id) ?? { n: 0, from: Infinity, to: -Infinity, why };
    d.n += ms.length;
    for (const m of ms) (d.from = Math.min(d.from, m.envelope.seq)), (d.to = Math.max(d.to, m.envelope.seq));
    this.drops.set(id, d);
  }

  private flushDrops(): void {
    for (const [id, d] of this.drops) this.log(`shared group ${readable(id.slice(0, id.lastIndexOf('\u0000')))}: ${d.n} message(s) (seq ${d.from}..${d.to}) dropped: ${d.why}`);
    this.drops.clear();
    // Most of these were simply finished; only deliveries among them the bridge gave back (a member left) reached no one.
    for (const [link, n] of this.unknownSettled) this.log(`shared groups: link ${link} settled ${n} frame(s) this instance did not send (an earlier instance's, before an eviction or restart): ignored — any deliveries the bridge gave back in them went to no other link`);
    this.unknownSettled.clear();
  }

  /** Kept messages past their time, groups with no link past theirs (logged); links stuck at their limit (closed, logged). */
  sweep(now = Date.now()): void {
    for (const [key, g] of this.groups) {
      const old: ChannelMessage[] = [];
      while (g.held.length > 0 && now - (g.held[0] as Held).at >= this.limits.heldTtlMs) old.push(this.unkeep(g).m);
      this.drop(key, old, `no link took it in ${this.limits.heldTtlMs} ms`);
      if (g.members.length === 0 && g.emptySince !== null && now - g.emptySince >= this.limits.heldTtlMs) {
        // unkeep, not splice: what it kept still counts against the actor's bytes and keeps the sweep armed.
        const gone: ChannelMessage[] = [];
        while (g.held.length > 0) gone.push(this.unkeep(g).m);
        this.drop(key, gone, `no link came back in ${this.limits.heldTtlMs} ms`);
        this.groups.delete(key);
      }
    }
    this.dropEmpty();
    for (const [link, s] of this.links) {
      // Frames of QoS 0 deliveries only hold no count, but they fill the link's frame cap all the same.
      if ((s.count > 0 || s.frames.size > 0) && this.full(s) && now - s.since >= this.limits.stuckMs) {
        this.log(`shared groups: link ${link} holds ${s.count} deliveries (${s.bytes} bytes, ${s.frames.size} frames) unsettled and settled none in ${this.limits.stuckMs} ms; closing it (its deliveries go to the group's other links)`);
        this.onStuck(link, `stuck: ${s.count} shared deliveries unsettled for ${this.limits.stuckMs} ms`);
      }
    }
    this.flushDrops();
  }

  /** A group left by unsubscribes with nothing kept is forgotten at once (nobody asked for its messages). */
  private dropEmpty(): void {
    for (const [key, g] of this.groups) if (g.members.length === 0 && g.held.length === 0 && !g.waiting) this.groups.delete(key);
  }

  /** While anything is held or waiting, sweeps every SWEEP_MS (which also keeps the instance out of hibernation; not from eviction). */
  private idleCheck(): void {
    if (this.timer !== null || !this.holding()) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sweep(Date.now());
      this.idleCheck();
    }, SWEEP_MS);
  }

  private holding(): boolean {
    if (this.keptCount > 0 || this.drops.size > 0 || this.unknownSettled.size > 0) return true;
    for (const g of this.groups.values()) if (g.emptySince !== null) return true;
    for (const s of this.links.values()) if (s.count > 0 || s.frames.size > 0) return true;
    return false;
  }
}

const readable = (key: string): string => key.replace('\u0000', ' ');
