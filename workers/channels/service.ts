import { channelActor } from '../lib/actors';
import { listFilter, page, parseMetadata } from '../lib/entities';
import { notFound } from '../lib/errors';
import { newId, now } from '../lib/ids';

interface Row {
  id: string;
  name: string;
  metadata: string;
  created_at: number;
  updated_at: number;
}
const COLUMNS = 'id, name, metadata, created_at, updated_at';
const out = (r: Row) => ({ ...r, metadata: parseMetadata(r.metadata) });

export async function createChannels(db: D1Database, orgId: string, items: { name: string; metadata?: Record<string, unknown> }[]) {
  const t = now();
  const made = items.map((c) => ({ id: newId(), name: c.name, metadata: c.metadata ?? {}, created_at: t, updated_at: t }));
  await db.batch(made.map((c) => db.prepare('INSERT INTO channels (id, org_id, name, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)').bind(c.id, orgId, c.name, JSON.stringify(c.metadata), t, t)));
  return made;
}

export async function listChannels(db: D1Database, orgId: string, q: { offset: number; limit: number; name?: string; metadata?: string }) {
  const f = listFilter('c', q);
  const p = await page<Row>(db, `channels c WHERE c.org_id = ?${f.where}`, [orgId, ...f.params], COLUMNS, 'c.created_at, c.rowid', q.offset, q.limit);
  return { ...p, items: p.items.map(out) };
}

export async function getChannel(db: D1Database, orgId: string, id: string) {
  const r = await db.prepare(`SELECT ${COLUMNS} FROM channels WHERE id = ? AND org_id = ?`).bind(id, orgId).first<Row>();
  if (!r) throw notFound('channel');
  return out(r);
}

export async function updateChannel(db: D1Database, orgId: string, id: string, u: { name?: string; metadata?: Record<string, unknown> }) {
  const r = await db
    .prepare(`UPDATE channels SET name = COALESCE(?, name), metadata = COALESCE(?, metadata), updated_at = ? WHERE id = ? AND org_id = ? RETURNING ${COLUMNS}`)
    .bind(u.name ?? null, u.metadata ? JSON.stringify(u.metadata) : null, now(), id, orgId)
    .first<Row>();
  if (!r) throw notFound('channel');
  return out(r);
}

/**
 * Deletes the channel (connections cascade) and its stored messages. First its actor retires
 * (objects/channel/core.ts `retire`): its subscribers are closed with 4404, a drain in flight
 * finishes, it forgets what it kept and refuses anything published later, so no row lands after
 * the rows are deleted here (the stored rows have no foreign key: a drain must never fail on a
 * deleted channel). R2 blobs are removed in the background.
 */
export async function deleteChannel(env: Env, orgId: string, id: string): Promise<{ purge: Promise<void> }> {
  const del = await env.DB.prepare('DELETE FROM channels WHERE id = ? AND org_id = ?').bind(id, orgId).run();
  if (!del.meta.changes) throw notFound('channel');
  await purgeChannels(env, [id]);
  return { purge: purgeBlobs(env.BLOBS, id) };
}

/**
 * Everything stored for channels whose rows are gone (a channel or an org deleted): each actor
 * retires, then their message rows go (their keys stay in channel_keys: never handed out twice).
 * An actor that cannot be reached is logged; its rows are deleted all the same.
 */
export async function purgeChannels(env: Env, ids: readonly string[]): Promise<void> {
  const db = env.DB;
  const failed: unknown[] = [];
  // Chunk by chunk; a chunk that fails does not stop the others (the error is raised at the end).
  for (let i = 0; i < ids.length; i += PURGE_CHUNK) {
    const chunk = ids.slice(i, i + PURGE_CHUNK);
    const retired = await Promise.allSettled(chunk.map((id) => channelActor(env, id).retire(id)));
    retired.forEach((r, k) => r.status === 'rejected' && console.error(`channel ${chunk[k]}: actor not retired`, r.reason));
    const keys = `(SELECT key FROM channel_keys WHERE channel_id IN (${chunk.map(() => '?').join(', ')}))`;
    try {
      await db.batch([db.prepare(`DELETE FROM message_rows WHERE ch IN ${keys}`).bind(...chunk), db.prepare(`DELETE FROM senml_rows WHERE ch IN ${keys}`).bind(...chunk)]);
    } catch (e) {
      failed.push(e);
      console.error(`channels ${chunk.join(', ')}: stored messages not deleted`, e);
    }
  }
  if (failed.length > 0) throw new AggregateError(failed, `stored messages of ${failed.length} chunk(s) of deleted channels not deleted`);
}

/** Channels purged per step (bound parameters per statement, actors told at once). */
const PURGE_CHUNK = 50;

/** The R2 blobs of deleted channels, one after another (in the background). */
export async function purgeAllBlobs(bucket: R2Bucket, ids: readonly string[]): Promise<void> {
  for (const id of ids) await purgeBlobs(bucket, id);
}

async function purgeBlobs(bucket: R2Bucket, channelId: string): Promise<void> {
  let cursor: string | undefined;
  do {
    const list = await bucket.list({ prefix: `channels/${channelId}/`, cursor, limit: 1000 });
    if (list.objects.length) await bucket.delete(list.objects.map((o) => o.key));
    cursor = list.truncated ? list.cursor : undefined;
  } while (cursor);
}
