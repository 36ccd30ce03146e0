import { channelActor } from '../../workers/lib/actors';

/**
 * The steps that remove what a deleted channel stored (migrations/0008, `channel_purges`): its
 * actor retires (objects/channel/core.ts `retire`: subscribers closed, a drain under way finished,
 * nothing stored under the channel again), then its D1 rows go, then its R2 blobs, then its
 * `channel_purges` row. In that order: rows deleted before the actor retired could be followed by
 * a drain's. Every step is idempotent and keeps what it did (deleted rows and blobs stay deleted),
 * so a pass cut short anywhere resumes without starting again; `stage` saves even re-checking.
 */

export const STAGE_RETIRE = 0;
export const STAGE_ROWS = 1;
export const STAGE_BLOBS = 2;
const STAGE_NAMES = ['retiring its actor', 'deleting its stored messages', 'deleting its blobs'] as const;

/** Channels purged together (bound parameters per statement, actors told at once, D1 requests shared). */
export const PURGE_CHUNK = 50;
/** Rows deleted per statement: a channel with millions of rows goes in steps, each well within D1's time limit. */
const ROW_STEP = 5000;
/** Back-off of a failing purge: PURGE_RETRY_MS after the first failure, doubling, at most this. */
export const MAX_RETRY_MS = 60 * 60 * 1000;

interface Pending {
  channel_id: string;
  stage: number;
  attempts: number;
}

/** How long after its `attempts`-th failure in a row a purge (or a whole pass) is tried again, ms. */
export function retryDelay(env: Env, attempts: number): number {
  const base = Math.max(1, Math.floor(Number(env.PURGE_RETRY_MS)) || 5000);
  return Math.min(MAX_RETRY_MS, base * 2 ** Math.min(Math.max(attempts, 1) - 1, 30));
}

/**
 * Purges due channels, a chunk at a time, until none is due, `maxChunks` chunks are done or
 * `until` (ms) has passed — the first chunk whatever the time, and in it each step's first round
 * (a row step, a page of blobs): a pass that starts late, on a busy machine, still gets somewhere.
 * Returns when the next pass is due (ms; now when due purges are left),
 * or null when no purge waits. A step that fails for a channel is recorded on its row (back-off);
 * only a failure to read or record the rows themselves rejects.
 */
export async function purgePass(env: Env, maxChunks: number, until: number): Promise<number | null> {
  const db = env.DB;
  for (let n = 0; n < maxChunks && (n === 0 || Date.now() < until); n++) {
    const { results } = await db
      .prepare('SELECT channel_id, stage, attempts FROM channel_purges WHERE due_at <= ? ORDER BY due_at, channel_id LIMIT ?')
      .bind(Date.now(), PURGE_CHUNK)
      .all<Pending>();
    if (results.length === 0) break;
    await purgeChunk(env, results, until);
  }
  const next = await db.prepare('SELECT MIN(due_at) AS at FROM channel_purges').first<number | null>('at');
  return next === null ? null : Math.max(next, Date.now());
}

/**
 * A channel's rows or blobs are not all gone when its pass's time is up (a channel of millions of
 * rows): not a failure — it goes on in the next pass, where it is due at once, behind no back-off,
 * and the channels due after it get their turn in between.
 */
class NotDone extends Error {}

/** One chunk through every step it has left; each channel's outcome is written back in one D1 batch. */
async function purgeChunk(env: Env, chunk: readonly Pending[], until: number): Promise<void> {
  const failed = new Map<string, { stage: number; error: unknown }>();
  const ok = (p: Pending) => !failed.has(p.channel_id);

  const retiring = chunk.filter((p) => p.stage <= STAGE_RETIRE);
  const retired = await Promise.allSettled(retiring.map((p) => channelActor(env, p.channel_id).retire(p.channel_id)));
  retired.forEach((r, i) => r.status === 'rejected' && failed.set(retiring[i]!.channel_id, { stage: STAGE_RETIRE, error: r.reason }));

  const rows = chunk.filter((p) => p.stage <= STAGE_ROWS && ok(p)).map((p) => p.channel_id);
  for (const [id, error] of await deleteRows(env.DB, rows, until)) failed.set(id, { stage: STAGE_ROWS, error });
  const rowsGone = rows.filter((id) => !failed.has(id));
  // Recorded before the blobs, which may take long: a pass cut short there does not delete rows again.
  if (rowsGone.length > 0) await env.DB.prepare(`UPDATE channel_purges SET stage = ${STAGE_BLOBS} WHERE channel_id IN (SELECT value FROM json_each(?)) AND stage < ${STAGE_BLOBS}`).bind(JSON.stringify(rowsGone)).run();

  const blobs = chunk.filter(ok).map((p) => p.channel_id);
  const deleted = await Promise.allSettled(blobs.map((id) => deleteBlobs(env.BLOBS, id, until)));
  deleted.forEach((r, i) => r.status === 'rejected' && failed.set(blobs[i]!, { stage: STAGE_BLOBS, error: r.reason }));

  const done = chunk.filter(ok).map((p) => p.channel_id);
  const now = Date.now();
  const writes = [];
  if (done.length > 0) writes.push(env.DB.prepare('DELETE FROM channel_purges WHERE channel_id IN (SELECT value FROM json_each(?))').bind(JSON.stringify(done)));
  for (const p of chunk) {
    const f = failed.get(p.channel_id);
    if (!f) continue;
    if (f.error instanceof NotDone) {
      writes.push(env.DB.prepare('UPDATE channel_purges SET stage = ?, due_at = ?, error = NULL WHERE channel_id = ?').bind(f.stage, now, p.channel_id));
      continue;
    }
    // Failures in a row of the same step: a purge that got further starts its back-off again.
    const attempts = f.stage > p.stage ? 1 : p.attempts + 1;
    const delay = retryDelay(env, attempts);
    const error = f.error instanceof Error ? f.error.message : String(f.error);
    // Every failure is said: a purge that keeps failing is data a user deleted and still stored.
    console.error(`deleted channel ${p.channel_id}: ${STAGE_NAMES[f.stage]} failed (${attempts} time(s) in a row); tried again in ${delay} ms: ${error}`);
    writes.push(env.DB.prepare('UPDATE channel_purges SET stage = ?, attempts = ?, due_at = ?, error = ? WHERE channel_id = ?').bind(f.stage, attempts, now + delay, error.slice(0, 1000), p.channel_id));
  }
  if (writes.length > 0) await env.DB.batch(writes);
}

/**
 * Deletes every message and SenML row of `ids` (their keys stay in channel_keys: never handed out
 * twice), in steps of ROW_STEP rows, all channels together; if that fails, each channel alone, so
 * one channel's failure holds back no other. Returns the channels whose rows are not all gone.
 */
async function deleteRows(db: D1Database, ids: readonly string[], until: number): Promise<Map<string, unknown>> {
  const failed = new Map<string, unknown>();
  if (ids.length === 0) return failed;
  try {
    await deleteRowsOf(db, ids, until);
  } catch (e) {
    if (ids.length === 1 || e instanceof NotDone) for (const id of ids) failed.set(id, e);
    else for (const id of ids) await deleteRowsOf(db, [id], until).catch((e: unknown) => failed.set(id, e));
  }
  return failed;
}

/** Steps of ROW_STEP rows until none is left; NotDone once `until` has passed with rows left. */
async function deleteRowsOf(db: D1Database, ids: readonly string[], until: number): Promise<void> {
  const keys = `(SELECT key FROM channel_keys WHERE channel_id IN (SELECT value FROM json_each(?1)))`;
  const step = (table: string) => db.prepare(`DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ch IN ${keys} LIMIT ${ROW_STEP})`).bind(JSON.stringify(ids));
  for (;;) {
    const [messages, records] = await db.batch([step('message_rows'), step('senml_rows')]);
    if ((messages?.meta.changes ?? 0) < ROW_STEP && (records?.meta.changes ?? 0) < ROW_STEP) return;
    if (Date.now() >= until) throw new NotDone('rows left when the pass ended');
  }
}

/** The R2 blobs of a deleted channel (`channels/{id}/…`), a listed page at a time; NotDone once `until` has passed with pages left. */
async function deleteBlobs(bucket: R2Bucket, channelId: string, until: number): Promise<void> {
  let cursor: string | undefined;
  do {
    const list = await bucket.list({ prefix: `channels/${channelId}/`, cursor, limit: 1000 });
    if (list.objects.length) await bucket.delete(list.objects.map((o) => o.key));
    cursor = list.truncated ? list.cursor : undefined;
    if (cursor && Date.now() >= until) throw new NotDone('blobs left when the pass ended');
  } while (cursor);
}
