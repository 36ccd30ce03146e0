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
 * the cutoff" is "seq up to the last such seq" (`upTo`, found anew by every sweep from the
 * retention in force): rows go by seq range in chunks, oldest first, and `retention_done` (stored
 * after each chunk) says up to which seq they are gone. Blobs go after their rows, up to that mark
 * (their keys end in the zero-padded seq, so they list in seq order) — so a sweep cut short by its
 * budget, a D1 or R2 error or an eviction leaves no blob behind for good, even after the retention
 * is lengthened or switched off (one more sweep then deletes just those blobs).
 */

/** Time between the sweeps of a channel with a retention (ms), ± RETENTION_JITTER so channels configured together do not sweep together. */
export const RETENTION_SWEEP_MS = 3_600_000;
export const RETENTION_JITTER = 0.1;
/** After a failed sweep, the next try (ms). */
export const RETENTION_RETRY_MS = 300_000;
/**
 * Seqs deleted per D1 batch (both tables). A message may carry many SenML records, so this bounds
 * rows only loosely: a sweep also stops after RETENTION_SWEEP_BUDGET_MS.
 */
export const RETENTION_CHUNK = 500;
/** Chunks per sweep, and the time after which a sweep stops between chunks; it goes on after RETENTION_CONTINUE_MS. */
export const RETENTION_CHUNKS_PER_SWEEP = 100;
export const RETENTION_SWEEP_BUDGET_MS = 10_000;
export const RETENTION_CONTINUE_MS = 1000;

const DAY_MS = 86_400_000;

/** What one sweep did (for tests and logs). */
export interface SweepResult {
  /** Messages older than this (ms) were due to go. */
  cutoff: number;
  /** Every stored message up to this seq was due to go (0: none). */
  upTo: number;
  /** The sweep stopped at its budget: the next one is due in RETENTION_CONTINUE_MS. */
  more: boolean;
  blobsDeleted: number;
}

export class Retention {
  constructor(private readonly core: ChannelCore) {}

  /** When the next sweep is due (ms), or null when none is. */
  get nextAt(): number | null {
    const v = this.core.store.meta('retention_next');
    return typeof v === 'number' ? v : null;
  }

  private set nextAt(at: number | null) {
    if (at === null) this.core.ctx.storage.sql.exec("DELETE FROM meta WHERE key = 'retention_next'");
    else this.core.store.setMeta('retention_next', at);
  }

  /** Rows are gone up to this seq; their blobs may not be yet (0: nothing pending). */
  private get done(): number {
    return Number(this.core.store.meta('retention_done') ?? 0);
  }

  /** The channel's retention changed (configure): a sweep soon — for blobs left by an earlier one, if the retention is now 0 — or none. */
  async configured(now = Date.now()): Promise<void> {
    if (this.core.config.retentionDays === 0 && this.done === 0) {
      this.nextAt = null;
      return;
    }
    this.nextAt = now;
    await this.core.alarmNoLaterThan(now);
  }

  /**
   * The alarm fired (also when its drain failed): sweeps if one is due, then makes sure the alarm
   * covers the next. A change of the retention or a retire meanwhile wins over what this sweep
   * would schedule.
   */
  async onAlarm(now = Date.now()): Promise<void> {
    const at = this.nextAt;
    if (at === null || this.core.retired) return;
    if (at <= now) {
      let next: number | null;
      try {
        const r = await this.sweep(now);
        const keep = this.core.config.retentionDays === 0 && this.done === 0;
        next = r.more ? now + RETENTION_CONTINUE_MS : keep ? null : now + Math.round(RETENTION_SWEEP_MS * (1 - RETENTION_JITTER + 2 * RETENTION_JITTER * Math.random()));
      } catch (e) {
        console.error(`channel ${this.core.store.channel}: retention sweep failed; retrying in ${RETENTION_RETRY_MS / 1000} s`, e);
        next = now + RETENTION_RETRY_MS;
      }
      if (this.core.retired || this.nextAt !== at) return; // retired, or reconfigured during the sweep
      this.nextAt = next;
    }
    const due = this.nextAt;
    if (due !== null) await this.core.alarmNoLaterThan(due);
  }

  /** An instance starting: a sweep that is due, or that a lost alarm would have run, gets its alarm. */
  async resume(): Promise<void> {
    const at = this.nextAt;
    if (at !== null && !this.core.retired) await this.core.alarmNoLaterThan(at);
  }

  /**
   * Deletes what is older than the retention at `now` (see the module comment), at most
   * `chunksPerSweep` chunks of `chunk` seqs. Throws when D1 or R2 fails.
   */
  async sweep(now = Date.now(), { chunk = RETENTION_CHUNK, chunksPerSweep = RETENTION_CHUNKS_PER_SWEEP } = {}): Promise<SweepResult> {
    const { store, env } = this.core;
    const channel = store.channel;
    const days = this.core.config.retentionDays;
    const cutoff = days === 0 ? -Infinity : now - days * DAY_MS;
    const nothing = { cutoff, upTo: 0, more: false, blobsDeleted: 0 };
    if (channel === null || this.core.retired) return nothing;
    let more = false;
    let upTo = 0;
    if (days !== 0) {
      // The actor's log: runs entirely before the cutoff and already in D1 by the *stored* mark
      // (written first, in the same transaction): the log keeps every row after the stored mark.
      store.flushDrained();
      this.core.ctx.storage.sql.exec('DELETE FROM runs WHERE created < ? AND last <= ?', cutoff, store.drainedUpTo);

      const db = env.DB;
      const key = await db.prepare('SELECT key FROM channel_keys WHERE channel_id = ?').bind(channel).first<number>('key');
      if (key !== null) {
        upTo = (await db.prepare('SELECT seq FROM message_rows WHERE ch = ? AND created < ? ORDER BY created DESC, seq DESC LIMIT 1').bind(key, cutoff).first<number>('seq')) ?? 0;
      }
      if (key !== null && upTo > 0) {
        const first = await db.prepare('SELECT MIN(seq) AS s FROM (SELECT MIN(seq) AS seq FROM message_rows WHERE ch = ?1 UNION ALL SELECT MIN(seq) FROM senml_rows WHERE ch = ?1)').bind(key).first<number | null>('s');
        const started = Date.now();
        for (let from = first ?? upTo + 1, chunks = 0; from <= upTo; chunks++) {
          if (chunks === chunksPerSweep || Date.now() - started > RETENTION_SWEEP_BUDGET_MS) {
            more = true;
            break;
          }
          const to = Math.min(upTo, from + chunk - 1);
          await db.batch([
            db.prepare('DELETE FROM senml_rows WHERE ch = ? AND seq BETWEEN ? AND ?').bind(key, from, to),
            db.prepare('DELETE FROM message_rows WHERE ch = ? AND seq BETWEEN ? AND ?').bind(key, from, to),
          ]);
          if (this.core.retired) return nothing; // the channel's storage is gone: write nothing into it
          if (to > this.done) store.setMeta('retention_done', to);
          from = to + 1;
        }
      }
    }
    // Blobs after their rows, so no stored message ever names a blob already gone.
    const done = this.done;
    if (more || done === 0) return { cutoff, upTo, more, blobsDeleted: 0 };
    const blobsDeleted = await deleteBlobsUpTo(env.BLOBS, channel, done);
    if (!this.core.retired && this.done === done) this.core.ctx.storage.sql.exec("DELETE FROM meta WHERE key = 'retention_done'");
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
