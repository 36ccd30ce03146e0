import type { ChannelStore } from './store';
import type { ChannelConfig } from './config';
import { isLocal, type ChannelMessage } from './types';

export type CatchUpItem = { kind: 'message'; message: ChannelMessage; retained: boolean } | { kind: 'gap'; from: number; to: number };

export interface CatchUpRequest {
  match: (subtopic: string) => boolean;
  /** Last seq the subscriber has seen; undefined = a fresh subscription. */
  since?: number;
  /** MQTT 5 No Local [MQTT-3.8.3-3]: skip this client's own messages (isLocal). */
  noLocal?: string | null;
}

const live = (m: ChannelMessage, now: number): boolean => m.expiresAt === undefined || m.expiresAt > now;

/**
 * What a new subscription receives before live messages. Runs synchronously, in the same turn
 * as the registration of the subscription, so no live message can slip in between or twice.
 *
 *  - fresh (no `since`): the matching retained messages, in seq order, flagged retained
 *    ([MQTT-3.3.1-8]: the retain flag is set on messages sent because of a new subscription).
 *  - resume (`since` = last seq seen): if some seqs after `since` are no longer kept (outside the
 *    recent window, or beyond the replay byte budget) an explicit gap {from, to} first — never a
 *    silent skip — then the retained messages from inside that gap (the current value of each
 *    subtopic the client missed), then every kept matching message after `since`, in seq order.
 *    A gap is reported for the channel, not per filter: the actor no longer knows what the
 *    missing seqs carried.
 *
 * Expired messages (MQTT 5 message expiry) are never replayed.
 */
export function* catchUp(store: ChannelStore, config: ChannelConfig, req: CatchUpRequest, now: number): Generator<CatchUpItem> {
  const wanted = (m: ChannelMessage) => req.match(m.envelope.subtopic) && live(m, now) && !isLocal(req.noLocal, m);
  const last = store.lastSeq;

  if (req.since === undefined) {
    for (const m of store.retained()) if (wanted(m)) yield { kind: 'message', message: m, retained: true };
    return;
  }

  const since = req.since;
  if (since >= last) return; // up to date (or a cursor from the future: nothing to replay)

  const windowStart = Math.max(1, last - config.recentWindow + 1);
  const oldest = store.oldestKept() ?? last + 1;
  const affordable = store.replayStart(since, config.replayMaxBytes) ?? last + 1;
  const from = Math.max(since + 1, windowStart, oldest, affordable);

  if (from > since + 1) {
    yield { kind: 'gap', from: since + 1, to: from - 1 };
    for (const m of store.retained()) {
      if (m.envelope.seq > since && m.envelope.seq < from && wanted(m)) yield { kind: 'message', message: m, retained: true };
    }
  }
  if (from > last) return;
  for (const m of store.logFrom(from)) if (wanted(m)) yield { kind: 'message', message: m, retained: false };
}
