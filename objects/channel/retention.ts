import type { ChannelCore } from './core';
import { blobKey } from './drain';

/**
 * Message retention (config `retentionDays`; docs/channel-actor.md, Retention). A channel with a
 * retention sweeps itself on its alarm at most every RETENTION_SWEEP_MS: the stored messages whose
 * `created` is older than the retention leave D1 (message and SenML rows), R2 (their blobs) and the
 * actor's own log (the `since` replay window). Retained messages stay: they are the channel's
 * current state, not its history, as in MQTT.
 *
 * Within a channel `created` never decreases as seq grows (the actor assigns both), so "older than
 * the cutoff" is "seq up to the last such seq": rows go by seq range in chunks, blobs by key order
 * (their keys end in the zero-padded seq). The bound is stored before anything is deleted
 * (`retention_upto`), so a sweep cut short — D1 or R2 failing, the instance gone — is finished by
 * the next one even once the rows that named it are gone.
 */

/** Time between the sweeps of a channel with a retention (ms). */
export const RETENTION_SWEEP_MS = 3_600_000;
/** After a failed sweep, the next try (ms). */
export const RETENTION_RETRY_MS = 300_000;
/** Seqs deleted per D1 batch (both tables): bounded statements, whatever the records per message. */
export const RETENTION_CHUNK = 2000;
/** Chunks per sweep; a sweep that stops there goes on after RETENTION_CONTINUE_MS. */
export const RETENTION_CHUNKS_PER_SWEEP = 50;
export const RETENTION_CONTINUE_MS = 1000;

const DAY_MS = 86_400_000;

/** What one sweep did (for tests and logs). */
export interface SweepResult {
  /** Messages older than this (ms) were due to go. */
  cutoff: number;
  /** Every stored seq up to this one is gone from D1 (0: none were due). */
  upTo: number;
  /** The sweep stopped at its chunk budget: the next one is due in RETENTION_CONTINUE_MS. */
  more: boolean;
  blobsDeleted: number;
}

export class Retention {
  constructor(private readonly core: ChannelCore) {}

  /** When the next sweep is due (ms), or null when the channel keeps its messages forever. */
  get nextAt(): number | null {
    const v = this.core.store.meta('retention_next');
    return typeof v === 'number' ? v : null;
  }

  private set nextAt(at: number | null) {
    if (at === null) this.core.ctx.storage.sql.exec("DELETE FROM meta WHERE key = 'retention_next'");
    else this.core.store.setMeta('retention_next', at);
  }

  /** The channel's retention changed (configure): a first sweep soon, or none at all. */
  async configured(now = Date.now()): Promise<void> {
    if (this.core.config.retentionDays === 0) {
      this.nextAt = null;
      return;
    }
    this.nextAt = now;
    await this.core.alarmNoLaterThan(now);
  }

  /** On the alarm: sweeps if one is due, then makes sure the alarm covers the next. */
  async onAlarm(now = Date.now()): Promise<void> {
    const at = this.nextAt;
    if (at === null || this.core.retired) return;
    if (at <= now) {
      try {
        const r = await this.sweep(now);
        this.nextAt = now + (r.more ? RETENTION_CONTINUE_MS : RETENTION_SWEEP_MS);
      } catch (e) {
        console.error(`channel ${this.core.store.channel}: retention sweep failed; retrying in ${RETENTION_RETRY_MS / 1000} s`, e);
        this.nextAt = now + RETENTION_RETRY_MS;
      }
    }
    await this.core.alarmNoLaterThan(this.nextAt ?? now + RETENTION_SWEEP_MS);
  }

  /**
   * Deletes what is older than the retention at `now` (see the module comment), at most
   * `chunksPerSweep` chunks of `chunk` seqs. Throws when D1 or R2 fails.
   */
  async sweep(now = Date.now(), { chunk = RETENTION_CHUNK, chunksPerSweep = RETENTION_CHUNKS_PER_SWEEP } = {}): Promise<SweepResult> {
    const { store, env } = this.core;
    const channel = store.channel;
    const days = this.core.config.retentionDays;
    const cutoff = now - days * DAY_MS;
    if (channel === null || days === 0) return { cutoff, upTo: 0, more: false, blobsDeleted: 0 };
    // The actor's log: runs entirely before the cutoff, and already in D1 (never the outbox).
    this.core.ctx.storage.sql.exec('DELETE FROM runs WHERE created < ? AND last <= ?', cutoff, store.drainedUpTo);

    const db = env.DB;
    const key = await db.prepare('SELECT key FROM channel_keys WHERE channel_id = ?').bind(channel).first<number>('key');
    const pendingUpTo = Number(store.meta('retention_upto') ?? 0);
    let upTo = pendingUpTo;
    if (key !== null) {
      const last = await db.prepare('SELECT seq FROM message_rows WHERE ch = ? AND created < ? ORDER BY created DESC, seq DESC LIMIT 1').bind(key, cutoff).first<number>('seq');
      upTo = Math.max(upTo, last ?? 0);
    }
    if (upTo === 0) return { cutoff, upTo: 0, more: false, blobsDeleted: 0 };
    if (upTo !== pendingUpTo) store.setMeta('retention_upto', upTo);

    let more = false;
    if (key !== null) {
      const first = await db.prepare('SELECT MIN(seq) AS s FROM (SELECT MIN(seq) AS seq FROM message_rows WHERE ch = ?1 UNION ALL SELECT MIN(seq) FROM senml_rows WHERE ch = ?1)').bind(key).first<number | null>('s');
      let from = first ?? upTo + 1;
      for (let chunks = 0; from <= upTo; chunks++) {
        if (chunks === chunksPerSweep) {
          more = true;
          break;
        }
        const to = Math.min(upTo, from + chunk - 1);
        await db.batch([
          db.prepare('DELETE FROM senml_rows WHERE ch = ? AND seq BETWEEN ? AND ?').bind(key, from, to),
          db.prepare('DELETE FROM message_rows WHERE ch = ? AND seq BETWEEN ? AND ?').bind(key, from, to),
        ]);
        from = to + 1;
      }
    }
    // Blobs after their rows, so no stored message ever names a blob already gone.
    const blobsDeleted = more ? 0 : await deleteBlobsUpTo(env.BLOBS, channel, upTo);
    if (!more) this.core.ctx.storage.sql.exec("DELETE FROM meta WHERE key = 'retention_upto'");
    return { cutoff, upTo, more, blobsDeleted };
  }
}

/** Deletes the channel's blobs whose seq is at most `upTo` (keys list in seq order). */
async function deleteBlobsUpTo(bucket: R2Bucket, channel: string, upTo: number): Promise<number> {
  const prefix = `channels/${channel}/`;
  const last = blobKey(channel, upTo);
  let deleted = 0;
  let cursor: string | undefined;
  do {
    const list = await bucket.list({ prefix, cursor, limit: 1000 });
    const due = list.objects.map((o) => o.key).filter((k) => k <= last);
    if (due.length > 0) await bucket.delete(due);
    deleted += due.length;
    if (due.length < list.objects.length) break; // the rest are newer
    cursor = list.truncated ? list.cursor : undefined;
  } while (cursor);
  return deleted;
}
