import { PlatformError, type Delivery, type Subscription } from '../platform/types';
import { RC, type Qos } from './codes';
import type { ActiveSub, Connection } from './connection';
import { Cursor } from './cursor';
import type { ShareTag } from './outbound';
import type { SessionState, StoredCursor } from './session';
import type { ShareMember } from './shares';
import { SubscriptionMap } from './subscription-map';
import { parseTopicFilter, type TopicFilter } from './topics';

/**
 * Turning one MQTT subscription into platform subscriptions: authorize → subscribe per channel →
 * deliver through the outbox. Used by SUBSCRIBE and by a resumed session.
 */

/** A platform may say where the channel was when the subscription began (resume cursor start). */
type SubscriptionWithSeq = Subscription & { readonly seq?: number };

export interface SubOptions {
  qos: Qos;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  /** v5 Subscription Identifier; undefined: none (a SUBSCRIBE without one removes it) [MQTT 5 §3.8.2.1.2]. */
  subscriptionId?: number | undefined;
}

export type Activation =
  /** SUBSCRIBE: retained messages per Retain Handling; `replacing` hands over its cursors [MQTT-3.8.4-3]. */
  | { kind: 'subscribe'; sendRetained: boolean; replacing?: ActiveSub }
  /** Session resume: replay after the stored cursors; no retained replay (the subscription is not new). */
  | { kind: 'resume'; cursors: Record<string, StoredCursor> };

/**
 * RETAIN on a delivery: 1 on retained replays [MQTT-3.3.1-9]; on live messages 0 [MQTT-3.3.1-12],
 * or the publisher's flag under v5 Retain As Published [MQTT-3.3.1-13].
 */
const retainFlag = (sub: Pick<ActiveSub, 'retainAsPublished'>, d: Delivery): boolean => d.retained || (sub.retainAsPublished && d.retainPublished === true);

const shareGroupKey = (topicFilter: string, f: TopicFilter): string => `${f.share}\u0000${topicFilter.slice(`$share/${f.share}/`.length)}`;
/** A shared subscription's member is its session's: the same member when the session resumes. */
const shareMemberKey = (conn: Connection, topicFilter: string): string => `${conn.sessionKey}\u0000${topicFilter}`;

/** `replacing`: the subscription of the same filter it is to replace; it takes that one's slot (SubscriptionSlot), and sets the identifier there once it takes effect. */
export function createSub(conn: Connection, topicFilter: string, parsed: TopicFilter, o: SubOptions, replacing?: ActiveSub): ActiveSub {
  const handles = new Map<string, Subscription>();
  const cursors = new Map<string, Cursor>();
  const sub: ActiveSub = {
    topicFilter,
    parsed,
    qos: o.qos,
    noLocal: o.noLocal,
    retainAsPublished: o.retainAsPublished,
    retainHandling: o.retainHandling,
    subscriptionId: o.subscriptionId,
    slot: replacing?.slot ?? { subscriptionId: o.subscriptionId },
    handles,
    cursors,
    channels: new Set(),
    close(keep) {
      for (const h of handles.values()) h.close();
      handles.clear();
      // The connection ended: a shared subscription stays a member (away) while the session lives.
      const awayMs = conn.phase === 'closed' ? conn.sessionExpiry * 1000 : 0;
      if (parsed.share !== undefined) conn.ctx.shares.leave(shareGroupKey(topicFilter, parsed), shareMemberKey(conn, topicFilter), keep, awayMs);
    },
    drop(channel) {
      handles.get(channel)?.close();
      handles.delete(channel);
      cursors.delete(channel);
      sub.channels.delete(channel);
      if (parsed.share !== undefined) conn.ctx.shares.leave(shareGroupKey(topicFilter, parsed), shareMemberKey(conn, topicFilter), sub.channels);
    },
    toStored() {
      const stored: Record<string, StoredCursor> = {};
      for (const [channel, c] of cursors) {
        const s = c.toStored();
        if (s) stored[channel] = s;
      }
      return {
        topicFilter,
        qos: sub.qos,
        noLocal: o.noLocal,
        retainAsPublished: o.retainAsPublished,
        retainHandling: o.retainHandling,
        ...(o.subscriptionId !== undefined ? { subscriptionId: o.subscriptionId } : {}),
        cursors: stored,
      };
    },
  };
  return sub;
}

/** Channels the filter covers for this client, or a refusal code. `+`: a snapshot of `channelsFor`. */
async function channelsOf(conn: Connection, f: TopicFilter): Promise<string[] | number> {
  if (f.channel === '+') {
    let all: string[];
    try {
      all = await conn.ctx.platform.channelsFor(conn.principal!, 'messages:subscribe');
    } catch (e) {
      // The credential is no longer good: the connection ends, as when one channel is asked about.
      if (e instanceof PlatformError && e.status === 401) {
        conn.credentialRefused(e.message);
        return RC.NotAuthorized;
      }
      throw e;
    }
    return all.length > conn.limits.maxChannelsPerFilter ? RC.QuotaExceeded : all;
  }
  const [d] = await conn.ctx.platform.authorize(conn.principal!, [{ channel: f.channel, action: 'messages:subscribe' }]);
  // A credential no longer good ends the connection (DISCONNECT 0x87), as on PUBLISH.
  if (d?.status === 401) conn.credentialRefused(d.reason);
  return d?.allowed ? [f.channel] : RC.NotAuthorized;
}

/**
 * Subscribes `sub` on every channel it covers. Returns the granted QoS, or a reason code ≥ 0x80.
 * Throws (PlatformError) when the platform fails; whatever was opened is closed again.
 */
export async function activate(conn: Connection, sub: ActiveSub, how: Activation): Promise<number> {
  const { platform, shares } = conn.ctx;
  const f = sub.parsed;
  // Read before asking: a change told while the answers are on their way makes the grants due again.
  const version = conn.permissions.version();
  const channels = await channelsOf(conn, f);
  if (typeof channels === 'number') return channels;
  try {
    if (f.share !== undefined) {
      const group = shareGroupKey(sub.topicFilter, f);
      const key = shareMemberKey(conn, sub.topicFilter);
      const tag: ShareTag = { group, returned: (d, qos, sent) => shares.returned(group, key, d, qos, sent) };
      const member: ShareMember = {
        key,
        qos: sub.qos,
        // A member that is not (or QoS 2) keeps its group on this bridge alone (shares.ts `spans`).
        persistent: conn.sessionExpiry > 0,
        offer: (d, qos, cursor) => {
          conn.permissions.recheck(d.channel);
          // The group's copy carries this subscription's identifier alone [MQTT-3.3.4-5].
          conn.outbox.offer(d, qos, retainFlag(sub, d), cursor, tag, sub.slot);
        },
        holds: (d) => conn.outbox.reserves(d, group),
        get closed() {
          // Past its credential's expiry a member takes nothing more (the keep alive sweep ends it within a second).
          return conn.phase === 'closed' || conn.outbox.overflowing || conn.now() >= conn.credentialExpiry;
        },
      };
      for (const channel of channels) {
        if (conn.phase === 'closed') break;
        // The group's cursor is the subscription's: saved with the session, where a group starts again after a bridge restart.
        sub.cursors.set(channel, await shares.join(group, channel, f.filter, member, how.kind === 'resume' ? how.cursors[channel] : undefined));
        sub.channels.add(channel);
        conn.permissions.granted(channel, version);
      }
      return sub.qos;
    }
    for (const channel of channels) {
      if (conn.phase === 'closed') break;
      // A re-SUBSCRIBE keeps the channel's cursor object: what the old one has in flight stays counted.
      const cursor = how.kind === 'resume' ? new Cursor(how.cursors[channel]) : (how.replacing?.cursors.get(channel) ?? new Cursor());
      sub.cursors.set(channel, cursor);
      // Retained messages on resume come only with a gap notice: the current values the client missed.
      const retainedOk = how.kind === 'resume' ? cursor.since !== null : how.sendRetained;
      const since = how.kind === 'resume' && cursor.since !== null ? cursor.since : undefined;
      const handle: SubscriptionWithSeq = await platform.subscribe(
        { channel, filter: f.filter, ...(since !== undefined ? { since } : {}), ...(sub.noLocal ? { noLocal: conn.sessionKey } : {}) },
        (d) => {
          if (d.retained && !retainedOk) return;
          if (conn.credentialExpired()) return;
          conn.permissions.recheck(channel);
          conn.outbox.offer(d, sub.qos, retainFlag(sub, d), cursor, undefined, sub.slot);
        },
      );
      sub.handles.set(channel, handle);
      sub.channels.add(channel);
      conn.permissions.granted(channel, version);
      if (handle.seq !== undefined) cursor.begin(handle.seq);
    }
    return sub.qos;
  } catch (e) {
    sub.close(how.kind === 'subscribe' && how.replacing ? new Set(channels) : undefined);
    throw e;
  }
}

/** After CONNACK with Session Present: PUBRELs again, subscriptions replayed from their cursors, DUPs [MQTT-4.4.0-1]. */
export async function resumeSession(conn: Connection, state: SessionState): Promise<void> {
  for (const id of state.awaitingRelease) conn.qos2In.add(id);
  conn.outbox.hold();
  const pending = (conn.resuming = new SubscriptionMap(state.subscriptions.map((s) => [s.topicFilter, s])));
  try {
    conn.outbox.restore(state.inflight);
    for (const s of state.subscriptions) {
      let sub: ActiveSub | null = null;
      let rc: number;
      try {
        sub = createSub(conn, s.topicFilter, parseTopicFilter(s.topicFilter), s);
        rc = await activate(conn, sub, { kind: 'resume', cursors: s.cursors });
      } catch (e) {
        rc = RC.UnspecifiedError;
        conn.log(`subscription ${s.topicFilter} not resumed: ${e instanceof Error ? e.message : String(e)}`);
      }
      // Ended meanwhile (taken over): the session it saved keeps this one and the rest as stored.
      if (conn.phase === 'closed') return sub?.close();
      pending.delete(s.topicFilter);
      if (sub && rc < 0x80) conn.subs.set(s.topicFilter, sub);
      else conn.log(`subscription ${s.topicFilter} dropped on resume (reason 0x${rc.toString(16)})`);
    }
  } finally {
    conn.resuming = null;
    conn.outbox.release();
  }
  conn.outbox.dropUnreplayed();
  conn.markDirty();
  // Shared subscriptions of the session that did not come back: what they kept goes to the other members.
  if (conn.phase !== 'closed') conn.ctx.shares.claimed(conn.sessionKey);
}
