import type { ActorOp, LinkMessage } from '../../shared/link';
import { compileFilter } from '../../shared/topics';
import type { ChannelMessage } from './types';

/**
 * Shared subscription groups that span bridges (link v5 `share`; docs/channel-actor.md "Shared
 * groups"). The subscriptions of every link that name the same share and filter are one group: each
 * message goes to ONE of them, round-robin; the bridge behind it picks one member of its own.
 *
 * Everything here is in memory. Membership is rebuilt from `link_subs` when an instance starts (the
 * share is kept there: store.ts `putLinkSub`); what was given and not settled, and the orphans, keep
 * the instance awake (a timer) while they exist, so hibernation cannot forget them — an eviction or a
 * restart does (bounded loss, documented).
 *
 * Acknowledgement is by frame count, never by seq: each frame sent to a link that holds a delivery
 * for a group is remembered with what it held; `settled n` from the bridge takes its n oldest such
 * frames. What a link has not settled when it closes, or when it unsubscribes the subscription, goes
 * to another link of the group; with none left it waits as the group's orphans, for the first link to
 * join the group again, at most ORPHANS_PER_GROUP of them and for at most `orphanTtlMs`.
 */

/** Orphans a group keeps while it has no link; older ones are dropped, with a log line. */
export const ORPHANS_PER_GROUP = 1000;
/** How long a group with no link keeps its orphans (and takes new messages as orphans) for a link to come back. */
export const ORPHAN_TTL_MS = 5 * 60_000;
/** While something is unsettled or orphaned, a timer this often keeps the instance out of hibernation and sweeps expired groups. */
const KEEP_AWAKE_MS = 10_000;

interface Member {
  link: string;
  sub: number;
}

interface Group {
  key: string;
  match: (subtopic: string) => boolean;
  members: Member[];
  next: number;
  orphans: ChannelMessage[];
  /** When the group lost its last link (ms), or null while it has one. */
  emptySince: number | null;
  /** It lost its last link by a close, not an unsubscribe: it waits (taking orphans) for a link to come back. */
  waiting: boolean;
}

/** One delivery given to a link for a group: `sub` is that link's subscription of the group. */
export interface Given {
  group: string;
  sub: number;
  m: ChannelMessage;
}

/** The group key: `share` and `filter` (a share name and a filter are both strings without U+0000 here). */
const groupKey = (share: string, filter: string): string => `${share}\u0000${filter}`;

export class ShareGroups {
  private readonly groups = new Map<string, Group>();
  /** Link id → its frames holding group deliveries, not settled yet, oldest first. */
  private readonly frames = new Map<string, Given[][]>();
  /** What each message op sent to a link holds for groups, until its frame is sent. */
  private readonly marks = new WeakMap<ActorOp, Given[]>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  orphanTtlMs = ORPHAN_TTL_MS;
  orphanCap = ORPHANS_PER_GROUP;

  constructor(private readonly log: (msg: string) => void = (msg) => console.warn(msg)) {}

  /** Any group or unsettled frame: the one check the delivery path makes when there is none. */
  get active(): boolean {
    return this.groups.size > 0 || this.frames.size > 0;
  }

  /** A link's subscription joins a group; returns the orphans it is to be given now (in seq order). */
  join(link: string, sub: number, share: string, filter: string, now = Date.now()): Given[] {
    this.sweep(now);
    const key = groupKey(share, filter);
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { key, match: compileFilter(filter), members: [], next: 0, orphans: [], emptySince: null, waiting: false }));
    if (!g.members.some((x) => x.link === link && x.sub === sub)) g.members.push({ link, sub });
    g.emptySince = null;
    g.waiting = false;
    if (!this.frames.has(link)) this.frames.set(link, []);
    const orphans = g.orphans.map((m) => ({ group: key, sub, m }));
    g.orphans = [];
    return orphans;
  }

  /** A link's subscription leaves its group (unsubscribe, or replaced): what it had not settled, to give again. */
  leave(link: string, sub: number, now = Date.now()): Given[] {
    let left = false;
    for (const g of this.groups.values()) {
      const before = g.members.length;
      g.members = g.members.filter((x) => !(x.link === link && x.sub === sub));
      if (g.members.length === before) continue;
      left = true;
      if (g.members.length === 0) g.emptySince = now;
    }
    if (!left) return [];
    const back: Given[] = [];
    // The frames stay (the bridge counts them); only what they held for this subscription goes.
    for (const frame of this.frames.get(link) ?? []) {
      for (let i = frame.length - 1; i >= 0; i--) if ((frame[i] as Given).sub === sub) back.unshift(...frame.splice(i, 1));
    }
    back.sort((a, b) => a.m.envelope.seq - b.m.envelope.seq);
    return back;
  }

  /** The link closed: it leaves every group, and everything it had not settled is to be given again. */
  linkGone(link: string, now = Date.now()): Given[] {
    for (const g of this.groups.values()) {
      const before = g.members.length;
      g.members = g.members.filter((x) => x.link !== link);
      if (before > 0 && g.members.length === 0) (g.emptySince = now), (g.waiting = true);
    }
    const back = (this.frames.get(link) ?? []).flat();
    this.frames.delete(link);
    return back;
  }

  /** `n` more of the link's frames holding group deliveries are finished by its bridge, oldest first. */
  settled(link: string, n: number): void {
    const frames = this.frames.get(link);
    if (!frames) return;
    if (n > frames.length) this.log(`shared groups: link ${link} settled ${n} frames, ${frames.length} were outstanding`);
    frames.splice(0, n);
    this.idleCheck();
  }

  /** How many deliveries the link holds unsettled (bounded like its window by the caller). */
  unsettled(link: string): number {
    let n = 0;
    for (const f of this.frames.get(link) ?? []) n += f.length;
    return n;
  }

  /**
   * Picks, for each message, one link of each group it matches (round-robin): per link, per
   * message index, what it is given. A group with no link takes the message as an orphan.
   */
  pick(messages: readonly ChannelMessage[], now = Date.now()): Map<string, Map<number, Given[]>> {
    this.sweep(now);
    const out = new Map<string, Map<number, Given[]>>();
    messages.forEach((m, i) => {
      for (const g of this.groups.values()) {
        if (!g.match(m.envelope.subtopic)) continue;
        const member = g.members.length > 0 ? (g.members[g.next++ % g.members.length] as Member) : null;
        if (!member) {
          this.orphan(g, m);
          continue;
        }
        let mine = out.get(member.link);
        if (!mine) out.set(member.link, (mine = new Map()));
        const given = mine.get(i);
        const x = { group: g.key, sub: member.sub, m };
        if (given) given.push(x);
        else mine.set(i, [x]);
      }
    });
    this.idleCheck();
    return out;
  }

  /**
   * Deliveries given back (a link closed or unsubscribed): each to another link of its group, or its
   * orphans. Per link, in seq order. Called after every `leave` and `linkGone`, given back or not: a
   * group its last link unsubscribed from, with nothing kept, is forgotten here.
   */
  regive(back: readonly Given[]): Map<string, Given[]> {
    const out = new Map<string, Given[]>();
    for (const x of back) {
      const g = this.groups.get(x.group);
      if (!g) continue;
      const member = g.members.length > 0 ? (g.members[g.next++ % g.members.length] as Member) : null;
      if (!member) {
        this.orphan(g, x.m);
        continue;
      }
      let mine = out.get(member.link);
      if (!mine) out.set(member.link, (mine = []));
      mine.push({ group: g.key, sub: member.sub, m: x.m });
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

  /** A frame is about to be sent to the link: remembered if it holds group deliveries. Returns what cannot be (the link is gone). */
  framed(link: string, ops: readonly ActorOp[]): Given[] {
    let held: Given[] | null = null;
    for (const op of ops) {
      const g = this.marks.get(op);
      if (g) (held ??= []).push(...g);
    }
    if (!held) return [];
    const frames = this.frames.get(link);
    if (!frames) return held;
    frames.push(held);
    this.idleCheck();
    return [];
  }

  /** What the ops hold for groups (ops a link was not sent after all). */
  heldBy(ops: readonly ActorOp[]): Given[] {
    return ops.flatMap((op) => this.marks.get(op) ?? []);
  }

  private orphan(g: Group, m: ChannelMessage): void {
    g.orphans.push(m);
    if (g.orphans.length > this.orphanCap) {
      const dropped = g.orphans.splice(0, g.orphans.length - this.orphanCap);
      this.log(`shared group ${readable(g.key)}: no link for ${dropped.length} message(s) (seq ${dropped[0]?.envelope.seq}..${dropped.at(-1)?.envelope.seq}) past the cap of ${this.orphanCap}; dropped`);
    }
  }

  /** Groups with no link past the time limit go, with their orphans (logged). */
  private sweep(now: number): void {
    for (const [key, g] of this.groups) {
      if (g.emptySince === null || now - g.emptySince < this.orphanTtlMs) continue;
      if (g.orphans.length > 0) this.log(`shared group ${readable(key)}: no link came back in ${this.orphanTtlMs} ms; ${g.orphans.length} message(s) (seq ${g.orphans[0]?.envelope.seq}..${g.orphans.at(-1)?.envelope.seq}) dropped`);
      this.groups.delete(key);
    }
    for (const [link, frames] of this.frames) if (frames.length === 0 && !this.isMember(link)) this.frames.delete(link);
  }

  /** A group left by unsubscribes with nothing kept is forgotten at once (nobody asked for its messages). */
  private dropEmpty(): void {
    for (const [key, g] of this.groups) if (g.members.length === 0 && g.orphans.length === 0 && !g.waiting) this.groups.delete(key);
  }

  private isMember(link: string): boolean {
    for (const g of this.groups.values()) if (g.members.some((x) => x.link === link)) return true;
    return false;
  }

  /** Keeps the instance awake (out of hibernation, which would forget this) while anything is unsettled or orphaned. */
  private idleCheck(): void {
    if (this.timer !== null || !this.holding()) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sweep(Date.now());
      this.idleCheck();
    }, KEEP_AWAKE_MS);
  }

  private holding(): boolean {
    for (const g of this.groups.values()) if (g.emptySince !== null) return true;
    for (const f of this.frames.values()) if (f.length > 0) return true;
    return false;
  }
}

const readable = (key: string): string => key.replace('\u0000', ' ');
