import { forgetCredential } from '../auth';
import { DEVICE_KEY_PREFIX } from '../auth/credentials';
import { newSecret, sha256Hex } from '../lib/crypto';
import { listFilter, orderBy, page, parseMetadata, type Sort } from '../lib/entities';
import { notFound } from '../lib/errors';
import { newId, now } from '../lib/ids';

interface Row {
  id: string;
  name: string;
  metadata: string;
  online: number;
  last_seen: number | null;
  created_at: number;
  updated_at: number;
}
const COLUMNS = 'id, name, metadata, online, last_seen, created_at, updated_at';

/** The public shape: never the key or its hash. */
const out = (r: Row) => ({ id: r.id, name: r.name, metadata: parseMetadata(r.metadata), online: !!r.online, last_seen: r.last_seen, created_at: r.created_at, updated_at: r.updated_at });

async function insertStatement(db: D1Database, orgId: string, d: { name: string; metadata?: Record<string, unknown> }, t: number) {
  const id = newId();
  const key = newSecret(DEVICE_KEY_PREFIX);
  const metadata = d.metadata ?? {};
  const stmt = db.prepare('INSERT INTO devices (id, org_id, name, metadata, key_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)').bind(id, orgId, d.name, JSON.stringify(metadata), await sha256Hex(key), t, t);
  return { stmt, device: { id, name: d.name, metadata, online: false, last_seen: null, created_at: t, updated_at: t, key } };
}

/** Creates devices in one batch: all or nothing. Keys are returned here and never again. */
export async function createDevices(db: D1Database, orgId: string, items: { name: string; metadata?: Record<string, unknown> }[]) {
  const t = now();
  const made = await Promise.all(items.map((d) => insertStatement(db, orgId, d, t)));
  await db.batch(made.map((m) => m.stmt));
  return made.map((m) => m.device);
}

export async function listDevices(db: D1Database, orgId: string, q: { offset: number; limit: number; name?: string; metadata?: string } & Sort) {
  const f = listFilter('d', q);
  const p = await page<Row>(db, `devices d WHERE d.org_id = ?${f.where}`, [orgId, ...f.params], COLUMNS, orderBy('d', q, 'd.rowid'), q.offset, q.limit);
  return { ...p, items: p.items.map(out) };
}

export async function getDevice(db: D1Database, orgId: string, id: string) {
  const r = await db.prepare(`SELECT ${COLUMNS} FROM devices WHERE id = ? AND org_id = ?`).bind(id, orgId).first<Row>();
  if (!r) throw notFound('device');
  return out(r);
}

export async function updateDevice(db: D1Database, orgId: string, id: string, u: { name?: string; metadata?: Record<string, unknown> }) {
  const r = await db
    .prepare(`UPDATE devices SET name = COALESCE(?, name), metadata = COALESCE(?, metadata), updated_at = ? WHERE id = ? AND org_id = ? RETURNING ${COLUMNS}`)
    .bind(u.name ?? null, u.metadata ? JSON.stringify(u.metadata) : null, now(), id, orgId)
    .first<Row>();
  if (!r) throw notFound('device');
  return out(r);
}

/** Deletes the device; its connections go by cascade, its policy attachments here. The key dies at once. */
export async function deleteDevice(db: D1Database, orgId: string, id: string): Promise<void> {
  const [del] = await db.batch([
    db.prepare('DELETE FROM devices WHERE id = ? AND org_id = ?').bind(id, orgId),
    db.prepare("DELETE FROM policy_attachments WHERE org_id = ? AND principal_type = 'device' AND principal_id = ?").bind(orgId, id),
  ]);
  if (!del?.meta.changes) throw notFound('device');
  forgetCredential(id);
}

export async function rotateKey(db: D1Database, orgId: string, id: string) {
  const key = newSecret(DEVICE_KEY_PREFIX);
  const r = await db.prepare('UPDATE devices SET key_hash = ?, updated_at = ? WHERE id = ? AND org_id = ?').bind(await sha256Hex(key), now(), id, orgId).run();
  if (!r.meta.changes) throw notFound('device');
  forgetCredential(id);
  return { id, key };
}
