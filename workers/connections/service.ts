import { listFilter, orderBy, page, parseMetadata, type ListFilter, type Sort } from '../lib/entities';
import { ApiError, notFound } from '../lib/errors';
import { now } from '../lib/ids';

export type ConnType = 'publish' | 'subscribe';
export const typesOf = (pub: number, sub: number): ConnType[] => [...(pub ? ['publish' as const] : []), ...(sub ? ['subscribe' as const] : [])];

/** Ids are passed as one JSON array parameter (json_each), so a call is never limited by D1's bound-parameter cap. */
async function missing(db: D1Database, table: 'channels' | 'devices', orgId: string, ids: string[]): Promise<string[]> {
  // NOT EXISTS by primary key: one lookup per given id, however many the org holds.
  const { results } = await db
    .prepare(`SELECT DISTINCT j.value AS id FROM json_each(?) j WHERE NOT EXISTS (SELECT 1 FROM ${table} t WHERE t.id = j.value AND t.org_id = ?)`)
    .bind(JSON.stringify(ids), orgId)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

/** Every id must exist in this org; otherwise 404 naming them, and nothing is written. */
export async function requireAll(db: D1Database, orgId: string, channelIds: string[], deviceIds: string[]): Promise<void> {
  const [ch, dev] = await Promise.all([missing(db, 'channels', orgId, channelIds), missing(db, 'devices', orgId, deviceIds)]);
  if (ch.length || dev.length) {
    const parts = [ch.length ? `channels ${ch.join(', ')}` : '', dev.length ? `devices ${dev.join(', ')}` : ''].filter(Boolean);
    throw new ApiError(404, 'not_found', `not found in this org: ${parts.join('; ')}`, { channel_ids: ch, device_ids: dev });
  }
}

/**
 * The upsert of the cross product, in one statement. It joins the channels and devices of THIS org, so it can
 * never connect an id of another org even if called without `requireAll`, and an id deleted since the check is
 * skipped rather than failing on the foreign key. Re-connecting replaces the types and keeps `created_at`.
 * CROSS JOIN fixes the join order: each given id is looked up by primary key (the planner would otherwise scan
 * every channel and device of the org).
 */
function upsert(db: D1Database, orgId: string, channelIds: string[], deviceIds: string[], pub: number, sub: number): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO connections (org_id, channel_id, device_id, can_publish, can_subscribe, created_at)
       SELECT c.org_id, c.id, d.id, ?, ?, ?
       FROM json_each(?) jc CROSS JOIN channels c CROSS JOIN json_each(?) jd CROSS JOIN devices d
       WHERE c.id = jc.value AND d.id = jd.value AND c.org_id = ? AND d.org_id = c.org_id
       ON CONFLICT (channel_id, device_id) DO UPDATE SET can_publish = excluded.can_publish, can_subscribe = excluded.can_subscribe`,
    )
    .bind(pub, sub, now(), JSON.stringify(channelIds), JSON.stringify(deviceIds), orgId);
}

const flags = (types: ConnType[]) => [types.includes('publish') ? 1 : 0, types.includes('subscribe') ? 1 : 0] as const;

/** Connects every (channel, device) pair; answers the pairs in request order, duplicates dropped. */
export async function connect(db: D1Database, orgId: string, channelIds: string[], deviceIds: string[], types: ConnType[]) {
  const [pub, sub] = flags(types);
  const [chs, devs] = [[...new Set(channelIds)], [...new Set(deviceIds)]];
  await upsert(db, orgId, chs, devs, pub, sub).run();
  return chs.flatMap((channel_id) => devs.map((device_id) => ({ channel_id, device_id, types: typesOf(pub, sub) })));
}

/** Connects one pair; `created` tells a new connection from a changed one (read in the same transaction as the write). */
export async function connectOne(db: D1Database, orgId: string, channelId: string, deviceId: string, types: ConnType[]) {
  const [pub, sub] = flags(types);
  const [before] = await db.batch([
    db.prepare('SELECT 1 AS ok FROM connections WHERE channel_id = ? AND device_id = ? AND org_id = ?').bind(channelId, deviceId, orgId),
    upsert(db, orgId, [channelId], [deviceId], pub, sub),
  ]);
  return { created: !before?.results.length, connection: { channel_id: channelId, device_id: deviceId, types: typesOf(pub, sub) } };
}

export async function disconnect(db: D1Database, orgId: string, channelIds: string[], deviceIds: string[]): Promise<number> {
  const r = await db
    .prepare('DELETE FROM connections WHERE org_id = ? AND channel_id IN (SELECT value FROM json_each(?)) AND device_id IN (SELECT value FROM json_each(?))')
    .bind(orgId, JSON.stringify(channelIds), JSON.stringify(deviceIds))
    .run();
  return r.meta.changes;
}

export async function requireOne(db: D1Database, table: 'channels' | 'devices', orgId: string, id: string): Promise<void> {
  const r = await db.prepare(`SELECT 1 AS ok FROM ${table} WHERE id = ? AND org_id = ?`).bind(id, orgId).first();
  if (!r) throw notFound(table === 'channels' ? 'channel' : 'device');
}

type Joined = { id: string; name: string; metadata: string; created_at: number; updated_at: number; can_publish: number; can_subscribe: number };
type JoinedDevice = Joined & { online: number; last_seen: number | null };
const withTypes = <T extends Joined>({ can_publish, can_subscribe, metadata, ...rest }: T) => ({ ...rest, metadata: parseMetadata(metadata), types: typesOf(can_publish, can_subscribe) });

type ListQuery = ListFilter & Sort & { offset: number; limit: number };

/** The devices connected to a channel, filtered by the devices' name and metadata as the device list is. */
export async function devicesOfChannel(db: D1Database, orgId: string, channelId: string, q: ListQuery) {
  await requireOne(db, 'channels', orgId, channelId);
  const f = listFilter('d', q);
  const p = await page<JoinedDevice>(db, `connections k JOIN devices d ON d.id = k.device_id WHERE k.org_id = ? AND k.channel_id = ?${f.where}`, [orgId, channelId, ...f.params], 'd.id, d.name, d.metadata, d.online, d.last_seen, d.created_at, d.updated_at, k.can_publish, k.can_subscribe', orderBy('d', q, 'd.rowid'), q.offset, q.limit);
  return { ...p, items: p.items.map((r) => ({ ...withTypes(r), online: !!r.online })) };
}

/** The channels a device is connected to, filtered by the channels' name and metadata. */
export async function channelsOfDevice(db: D1Database, orgId: string, deviceId: string, q: ListQuery) {
  await requireOne(db, 'devices', orgId, deviceId);
  const f = listFilter('c', q);
  const p = await page<Joined>(db, `connections k JOIN channels c ON c.id = k.channel_id WHERE k.org_id = ? AND k.device_id = ?${f.where}`, [orgId, deviceId, ...f.params], 'c.id, c.name, c.metadata, c.created_at, c.updated_at, k.can_publish, k.can_subscribe', orderBy('c', q, 'c.rowid'), q.offset, q.limit);
  return { ...p, items: p.items.map(withTypes) };
}
