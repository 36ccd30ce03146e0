import { isTextualType, utf8Text } from '../../shared/envelope';
import { MiB } from './config';
import type { ChannelCore } from './core';
import type { ChannelMessage } from './types';
import { PART_CHARS, writerFor, type StoreWriter, type WritePart } from '../writer';

/**
 * The outbox drain (on the drain timer, or the backstop alarm; core.ts): accepted messages go
 * from the actor's SQLite to D1 (rows) and R2 (blobs). At-least-once with idempotent writes =
 * exactly-once rows:
 *   1. R2 puts first (same key, same bytes on a retry),
 *   2. the rows to D1 through a store writer (objects/writer/), which commits them — with other
 *      channels' rows — in one D1 batch (atomic), rows keyed by (channel, seq) and skipped if there,
 *   3. only then does the `drained` mark move past those rows (store.drained).
 * A crash or a failure anywhere leaves the rows in the outbox and the alarm set again with
 * exponential back-off; nothing acknowledged is lost. No alarm is left when the outbox is empty.
 */

/** UTF-8 text payloads up to this size go inline in D1; bigger or binary ones go to R2. */
export const INLINE_TEXT_MAX = 64 * 1024;
/** Payload bytes read into memory per drain. */
const DRAIN_BYTES = 8 * MiB;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 5 * 60 * 1000;
const R2_CONCURRENCY = 8;

export const blobKey = (channel: string, seq: number): string => `channels/${channel}/${String(seq).padStart(16, '0')}`;

/**
 * What the drain hands the store writer for one message: its `messages` row without the two ids
 * (objects/writer/, INSERT_MESSAGES), which the writer puts in front as their integer keys.
 * Order: seq, subtopic, protocol, contentType, created, size, payload, blobKey, retained.
 */
export type MessageTail = [number, string, string, string, number, number, string | null, string | null, 0 | 1];

/**
 * Puts the blobs, R2_CONCURRENCY at a time. A failed put fails the drain only once every put of its
 * group has ended: a drain that settled with puts still under way would let a channel's `retire`
 * (which waits for the drain) and then its purge go ahead, and those puts would land after the
 * purge had listed the channel's blobs — kept for good.
 */
async function putBlobs(env: Env, channel: string, blobs: readonly ChannelMessage[]): Promise<void> {
  for (let i = 0; i < blobs.length; i += R2_CONCURRENCY) {
    const puts = await Promise.allSettled(
      blobs.slice(i, i + R2_CONCURRENCY).map(({ envelope: e }) =>
        env.BLOBS.put(blobKey(channel, e.seq), e.payload, {
          httpMetadata: { contentType: e.contentType },
          customMetadata: { channel, seq: String(e.seq), subtopic: e.subtopic, publisher: e.publisher, protocol: e.protocol, created: String(e.created) },
        }),
      ),
    );
    const failed = puts.find((p) => p.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

/**
 * The rows of one outbox batch, as the store writer takes them: parts of at most `maxChars`
 * (PART_CHARS) characters, a message's row and its records always in the same part. (A drain's
 * batch is bounded by payload bytes; its SenML records' JSON comes on top.)
 *
 * A row leaves out the channel and the publisher: the part names its channel once and its
 * publishers once each, every row says which publisher is its own (an index into `publishers`),
 * and the writer puts both ids in front as their D1 keys (objects/writer/, WritePart). Each row is
 * otherwise JSON text without its opening bracket (`MessageTail`; records: seq, subtopic,
 * created, [record…]), written field by field: the strings a batch repeats (subtopic, protocol,
 * content type) are JSON-encoded once per batch, not once per message (same text, drain.test.ts).
 */
export function partsOf(channel: string, batch: readonly { message: ChannelMessage; records: string | null }[], maxChars = PART_CHARS): { parts: WritePart[]; blobs: ChannelMessage[] } {
  const parts: WritePart[] = [];
  const empty = (): WritePart => ({ channel, publishers: [], messages: [], messagePublishers: [], records: [], recordPublishers: [] });
  let cur = empty();
  let publishers = new Map<string, number>();
  let size = 0;
  const blobs: ChannelMessage[] = [];
  const quoted = new Map<string, string>();
  const q = (s: string): string => {
    let v = quoted.get(s);
    if (v === undefined) quoted.set(s, (v = JSON.stringify(s)));
    return v;
  };
  const textual = new Map<string, boolean>();
  for (const { message: m, records: r } of batch) {
    const e = m.envelope;
    let isText = textual.get(e.contentType);
    if (isText === undefined) textual.set(e.contentType, (isText = isTextualType(e.contentType)));
    // UTF-8 text payloads up to INLINE_TEXT_MAX go inline; others (and invalid UTF-8) to R2.
    const text = isText && e.payload.length <= INLINE_TEXT_MAX ? utf8Text(e.payload) : null;
    if (text === null) blobs.push(m);
    const subtopic = q(e.subtopic);
    const stored = text === null ? `null,${JSON.stringify(blobKey(channel, e.seq))}` : `${JSON.stringify(text)},null`;
    const row = `${e.seq},${subtopic},${q(e.protocol)},${q(e.contentType)},${e.created},${e.payload.length},${stored},${m.retain ? 1 : 0}]`;
    // `records` is already JSON text (payload.ts); splice it in rather than parse and re-encode.
    const recs = r === null ? null : `${e.seq},${subtopic},${e.created},${r}]`;
    // Each row also costs its two keys and brackets in the writer's parameter: count them.
    const n = row.length + 24 + (recs === null ? 0 : recs.length + 24);
    if (cur.messages.length > 0 && size + n > maxChars) {
      parts.push(cur);
      cur = empty();
      publishers = new Map();
      size = 0;
    }
    let pub = publishers.get(e.publisher);
    if (pub === undefined) {
      publishers.set(e.publisher, (pub = cur.publishers.length));
      cur.publishers.push(e.publisher);
      size += e.publisher.length + 3;
    }
    cur.messages.push(row);
    cur.messagePublishers.push(pub);
    if (recs !== null) {
      cur.records.push(recs);
      cur.recordPublishers.push(pub);
    }
    size += n;
  }
  if (cur.messages.length > 0) parts.push(cur);
  return { parts, blobs };
}

/** Writes one outbox batch to R2, then to D1 through the channel's store writer; throws if anything failed (the caller retries). */
export async function writeBatch(
  env: Env,
  channel: string,
  batch: readonly { message: ChannelMessage; records: string | null }[],
  writer: DurableObjectStub<StoreWriter> = writerFor(env, channel),
): Promise<void> {
  const { parts, blobs } = partsOf(channel, batch);
  await putBlobs(env, channel, blobs);
  // In order, each after the previous is in: a failure leaves a prefix written, which a retry rewrites harmlessly.
  for (const p of parts) {
    const written = await writer.write(p);
    if (!written.ok) throw new Error(written.error);
  }
}

export function backoffMs(attempt: number, random = Math.random()): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt - 1, 20));
  // "Equal jitter": at least half the ceiling, so retries spread out but never hammer.
  return Math.round(ceiling / 2 + (random * ceiling) / 2);
}

/** One drain: the oldest outbox rows to R2 and D1. Run through ChannelCore.drain (never two at once). */
export async function drainOutbox(core: ChannelCore): Promise<void> {
  core.drainStarted();
  const { store } = core;
  const channel = store.channel;
  const batch = store.outboxBatch(core.config.drainBatch, DRAIN_BYTES);
  if (batch.length === 0 || channel === null) return core.cancelDrainTimer();
  try {
    await writeBatch(core.env, channel, batch, core.writer(channel));
  } catch (e) {
    const attempt = Number(store.meta('drain_attempts') ?? 0) + 1;
    const delay = backoffMs(attempt);
    const reason = e instanceof Error ? e.message : String(e);
    store.setMeta('drain_attempts', attempt);
    store.setMeta('drain_error', reason.slice(0, 500));
    console.warn(`channel ${channel}: drain of ${batch.length} messages failed (attempt ${attempt}), retrying in ${delay} ms: ${reason}`);
    core.backoffUntil = Date.now() + delay;
    store.setMeta('drain_backoff_until', core.backoffUntil);
    await core.scheduleDrain(core.backoffUntil, true);
    return;
  }
  const last = batch[batch.length - 1]?.message.envelope.seq ?? 0;
  store.drained(last, core.config.recentWindow);
  // Written only when a failure left them set: a drain needs no commit of its own (store.drainedUnsaved).
  if (Number(store.meta('drain_attempts') ?? 0) !== 0) {
    store.setMeta('drain_attempts', 0);
    store.setMeta('drain_error', null);
    store.setMeta('drain_backoff_until', null);
  }
  if (store.drainedUnsaved) core.saveDrainedSoon();
  core.backoffUntil = 0;
  // Rows that arrived during this drain are due as any publish's would be (ChannelCore.drainDueAt).
  if (store.pending > 0) await core.scheduleDrain();
  else core.cancelDrainTimer();
}
