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
 * Deletes the channel (connections cascade) and its stored messages. The stored rows have no
 * foreign key (the actor's drain must never fail on a deleted channel), so they go here; R2 blobs
 * are removed in the background. A drain still in flight may re-add a few rows: they are
 * unreachable (every read checks the channel exists) and removed by the next delete of the id.
 */
export async function deleteChannel(env: Env, orgId: string, id: string): Promise<{ purge: Promise<void> }> {
  const db = env.DB;
  const del = await db.prepare('DELETE FROM channels WHERE id = ? AND org_id = ?').bind(id, orgId).run();
  if (!del.meta.changes) throw notFound('channel');
  // Its key stays in channel_keys (keys are never handed out twice).
  const key = '(SELECT key FROM channel_keys WHERE channel_id = ?)';
  await db.batch([db.prepare(`DELETE FROM message_rows WHERE ch = ${key}`).bind(id), db.prepare(`DELETE FROM senml_rows WHERE ch = ${key}`).bind(id)]);
  return { purge: purgeBlobs(env.BLOBS, id) };
}

async function purgeBlobs(bucket: R2Bucket, channelId: string): Promise<void> {
  let cursor: string | undefined;
  do {
    const list = await bucket.list({ prefix: `channels/${channelId}/`, cursor, limit: 1000 });
    if (list.objects.length) await bucket.delete(list.objects.map((o) => o.key));
    cursor = list.truncated ? list.cursor : undefined;
  } while (cursor);
}
