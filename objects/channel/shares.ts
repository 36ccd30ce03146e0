import type { ChannelCore } from './core';
import { TAG_LINK, type CompiledLinkSub } from './sockets';

/**
 * MQTT 5 shared subscriptions across bridges (link v5 `share`, shared/link.ts): the link
 * subscriptions of every bridge that name one group share its messages — each goes to ONE of them,
 * round-robin, and that bridge picks one of its members. So a consumer group whose members are
 * connected to several bridges gets each message once, not once per bridge [MQTT 5 §4.8.2].
 *
 * What a link was given and has not acknowledged (`consumed`) is remembered here, in memory: when
 * that link closes (a bridge gone, a network cut, a slow consumer dropped) it goes to another
 * subscription of the group — at least once: a bridge that had taken a delivery whose `consumed`
 * was still on its way when its link broke may have passed it to a member too. The memory is lost
 * with the instance (eviction, hibernation); a link only stays unacknowledged for a round trip, and
 * the actor hibernates only after seconds of quiet, so that costs a delivery only if both meet.
 */

/** One link subscription that may be given a group's message. */
export interface ShareTarget {
  ws: WebSocket;
  link: string;
  sub: number;
}

interface GroupTargets {
  match: (subtopic: string) => boolean;
  targets: ShareTarget[];
}

/** An open link socket with its subscriptions (the fan-out's view, built once per batch). */
export interface OpenLink {
  ws: WebSocket;
  id: string;
  subs: CompiledLinkSub[];
}

/** The open link sockets that have subscriptions. */
export function openLinks(core: ChannelCore): OpenLink[] {
  const out: OpenLink[] = [];
  for (const ws of core.ctx.getWebSockets(TAG_LINK)) {
    if (ws.readyState !== WebSocket.READY_STATE_OPEN) continue;
    const att = core.sockets.attachment(ws);
    if (!att || att.kind !== 'link') continue;
    const subs = core.sockets.linkSubs(core.store, att.id);
    if (subs.length > 0) out.push({ ws, id: att.id, subs });
  }
  return out;
}

/** Every group's targets among `links`, but `except` (a subscription going away or being asked about). */
export function shareTargets(links: readonly OpenLink[], except?: { link: string; sub?: number }): Map<string, GroupTargets> {
  const groups = new Map<string, GroupTargets>();
  for (const l of links) {
    for (const s of l.subs) {
      if (s.group === null) continue;
      if (except && except.link === l.id && (except.sub === undefined || except.sub === s.sub)) continue;
      let g = groups.get(s.group);
      if (!g) groups.set(s.group, (g = { match: s.match, targets: [] }));
      g.targets.push({ ws: l.ws, link: l.id, sub: s.sub });
    }
  }
  return groups;
}

export class ShareDispatch {
  /** Per group, whose turn it is (round-robin over its targets). */
  private readonly turn = new Map<string, number>();
  /** Per link socket id and subscription: its group and the seqs it was given and has not acknowledged. */
  private readonly outstanding = new Map<string, Map<number, { group: string; seqs: number[] }>>();

  /** The target that gets the group's next message. */
  pick(group: string, targets: readonly ShareTarget[]): ShareTarget {
    const n = this.turn.get(group) ?? 0;
    this.turn.set(group, (n + 1) % 0x4000_0000);
    return targets[n % targets.length] as ShareTarget;
  }

  /** `seq` of `group` was given to the link's subscription `sub`. */
  sent(link: string, sub: number, group: string, seq: number): void {
    let subs = this.outstanding.get(link);
    if (!subs) this.outstanding.set(link, (subs = new Map()));
    let e = subs.get(sub);
    if (!e) subs.set(sub, (e = { group, seqs: [] }));
    e.seqs.push(seq);
  }

  /** The link's cumulative acknowledgement: everything up to `seq` was taken by the bridge. */
  consumed(link: string, seq: number): void {
    const subs = this.outstanding.get(link);
    if (!subs) return;
    for (const [sub, e] of subs) {
      e.seqs = e.seqs.filter((s) => s > seq);
      if (e.seqs.length === 0) subs.delete(sub);
    }
    if (subs.size === 0) this.outstanding.delete(link);
  }

  /** The bridge closed the subscription: what came for it after it closed there, it gives back itself (`return`). */
  unsubscribed(link: string, sub: number): void {
    const subs = this.outstanding.get(link);
    subs?.delete(sub);
    if (subs?.size === 0) this.outstanding.delete(link);
  }

  /** The link is gone: what it had not acknowledged, by group (once: it is forgotten here). */
  take(link: string): { group: string; seqs: number[] }[] {
    const subs = this.outstanding.get(link);
    this.outstanding.delete(link);
    return subs ? [...subs.values()] : [];
  }
}
