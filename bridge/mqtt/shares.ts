import type { Delivery, Platform, Subscription } from '../platform/types';
import type { Qos } from './codes';

/** A member of a shared subscription: one client's subscription with its granted QoS. */
export interface ShareMember {
  /** Stable across a re-SUBSCRIBE of the same filter: `${connection id}\0${topic filter}`. */
  key: string;
  qos: Qos;
  offer(d: Delivery, qos: Qos): void;
  readonly closed: boolean;
}

interface ChannelGroup {
  members: ShareMember[];
  next: number;
  handle: Promise<Subscription>;
}

/**
 * Shared subscriptions `$share/{group}/{filter}` [MQTT-4.8.2] (MQTT 5; accepted from 3.1.1 clients
 * too, as Mosquitto does): each message goes to one member, round-robin. One platform
 * subscription per (group, filter, channel) serves every member on this bridge. Groups are per bridge: members connected to different bridges form different
 * groups, so each bridge's group gets a copy (docs/mqtt.md — a cross-bridge group needs the channel
 * actor to pick the bridge). Retained messages are not sent to shared subscriptions (§3.3.1.3:
 * they go to a new *non-shared* subscription).
 */
export class SharedSubscriptions {
  /** `${group}\0${filter}` → channel → group state. */
  private readonly groups = new Map<string, Map<string, ChannelGroup>>();

  constructor(private readonly platform: Platform) {}

  /** Adds (or updates the QoS of) a member on one channel; creates the platform subscription once. */
  async join(groupKey: string, channel: string, filter: string, member: ShareMember): Promise<void> {
    let channels = this.groups.get(groupKey);
    if (!channels) this.groups.set(groupKey, (channels = new Map()));
    let g = channels.get(channel);
    if (!g) {
      const created: ChannelGroup = { members: [], next: 0, handle: Promise.resolve({ close() {} }) };
      created.handle = this.platform.subscribe({ channel, filter }, (d) => this.pick(created, d));
      channels.set(channel, (g = created));
    }
    const existing = g.members.find((m) => m.key === member.key);
    if (existing) existing.qos = member.qos;
    else g.members.push(member);
    try {
      await g.handle;
    } catch (e) {
      // The platform refused: nobody can be served on this channel through this group entry.
      if (channels.get(channel) === g) channels.delete(channel);
      throw e;
    }
  }

  /** Removes a member from every channel of a group except `keep`; empty entries unsubscribe. */
  leave(groupKey: string, memberKey: string, keep: ReadonlySet<string> = new Set()): void {
    const channels = this.groups.get(groupKey);
    if (!channels) return;
    for (const [channel, g] of channels) {
      if (keep.has(channel)) continue;
      g.members = g.members.filter((m) => m.key !== memberKey);
      if (g.members.length === 0) {
        channels.delete(channel);
        void g.handle.then((h) => h.close(), () => undefined);
      }
    }
    if (channels.size === 0) this.groups.delete(groupKey);
  }

  get size(): number {
    return this.groups.size;
  }

  private pick(g: ChannelGroup, d: Delivery): void {
    if (d.retained) return;
    const live = g.members.filter((m) => !m.closed);
    if (live.length === 0) return;
    const m = live[g.next++ % live.length]!;
    m.offer(d, m.qos);
  }
}
