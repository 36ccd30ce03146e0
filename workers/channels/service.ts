import { channelActor, startPurges } from '../lib/actors';
import { listFilter, orderBy, page, parseMetadata, type Sort } from '../lib/entities';
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

export async function listChannels(db: D1Database, orgId: string, q: { offset: number; limit: number; name?: string; metadata?: string } & Sort) {
  const f = listFilter('c', q);
  const p = await page<Row>(db, `channels c WHERE c.org_id = ?${f.where}`, [orgId, ...f.params], COLUMNS, orderBy('c', q, 'c.rowid'), q.offset, q.limit);
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
 * The statement that records the purge of an org's channels (`channel` given: that one only) in
 * D1's `channel_purges` (objects/purger/): run in the same batch as the delete of their rows, so a
 * deleted channel's stored messages are due to go as surely as the channel is gone.
 */
export function recordPurges(db: D1Database, orgId: string, channel?: string): D1PreparedStatement {
  const t = now();
  const which = channel === undefined ? '' : ' AND id = ?3';
  return db
    .prepare(`INSERT INTO channel_purges (channel_id, org_id, due_at, created_at) SELECT id, org_id, ?2, ?2 FROM channels WHERE org_id = ?1${which} ON CONFLICT (channel_id) DO NOTHING`)
    .bind(orgId, t, ...(channel === undefined ? [] : [channel]));
}

/**
 * Deletes the channel (connections cascade) and records the purge of what it stored (its stored
 * messages have no foreign key: a drain must never fail on a deleted channel). Its actor retires
 * at once (objects/channel/core.ts `retire`): its subscribers are closed with 4404 before the
 * answer, and it refuses anything published later. The purger (objects/purger/) then deletes the
 * D1 rows and R2 blobs, and retries until they are gone; the answer does not wait for it.
 */
export async function deleteChannel(env: Env, orgId: string, id: string): Promise<void> {
  const [, del] = await env.DB.batch([recordPurges(env.DB, orgId, id), env.DB.prepare('DELETE FROM channels WHERE id = ? AND org_id = ?').bind(id, orgId)]);
  if (!del?.meta.changes) throw notFound('channel');
  // The purger first: a request cancelled while the actor retires (it waits for a drain under way)
  // must not leave the recorded purge waiting for the next cron. Its own retire of this channel
  // waits for this one (retire runs once).
  await startPurges(env);
  try {
    await channelActor(env, id).retire(id);
  } catch (e) {
    console.error(`channel ${id}: actor not retired at delete; the purger retries`, e);
  }
}
