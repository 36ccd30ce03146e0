import { forgetCredential } from '../auth/credentials';
import { newSecret, randomBytes, sha256Hex, timingSafeEqual, toBase64Url } from '../lib/crypto';
import { orderBy, page, substring, type Sort } from '../lib/entities';
import { notFound } from '../lib/errors';
import { newId, now } from '../lib/ids';

interface AppRow {
  id: string;
  org_id: string;
  name: string;
  client_id: string;
  client_secret_hash: string;
  scopes: string;
  token_epoch: number;
  created_by: string;
  created_at: number;
  updated_at: number;
}
const COLS = 'id, org_id, name, client_id, client_secret_hash, scopes, token_epoch, created_by, created_at, updated_at';

export const publicApp = (r: AppRow) => ({
  id: r.id,
  name: r.name,
  client_id: r.client_id,
  scopes: JSON.parse(r.scopes) as string[],
  created_by: r.created_by,
  created_at: r.created_at,
  updated_at: r.updated_at,
});

/** Client ids are public identifiers (128 random bits); client secrets are 256-bit and stored as SHA-256. */
const newClientId = () => `efc_${toBase64Url(randomBytes(16))}`;
const newClientSecret = () => newSecret('efs');

export async function createApp(db: D1Database, orgId: string, name: string, scopes: string[], createdBy: string) {
  const secret = newClientSecret();
  const t = now();
  const row: AppRow = {
    id: newId(),
    org_id: orgId,
    name,
    client_id: newClientId(),
    client_secret_hash: await sha256Hex(secret),
    scopes: JSON.stringify(scopes),
    token_epoch: 0,
    created_by: createdBy,
    created_at: t,
    updated_at: t,
  };
  await db.prepare(`INSERT INTO apps (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    .bind(row.id, row.org_id, row.name, row.client_id, row.client_secret_hash, row.scopes, row.token_epoch, row.created_by, t, t)
    .run();
  return { ...publicApp(row), client_secret: secret };
}

/** The org's apps, oldest first, optionally only those whose name contains `name` (case-insensitive, as devices). */
export async function listApps(db: D1Database, orgId: string, q: { offset: number; limit: number; name?: string | undefined } & Sort) {
  const f = substring('name', q.name);
  const p = await page<AppRow>(db, `apps WHERE org_id = ?${f.where}`, [orgId, ...f.params], COLS, orderBy('', q, 'rowid'), q.offset, q.limit);
  return { ...p, items: p.items.map(publicApp) };
}

export async function getApp(db: D1Database, orgId: string, id: string) {
  const row = await db.prepare(`SELECT ${COLS} FROM apps WHERE org_id = ? AND id = ?`).bind(orgId, id).first<AppRow>();
  if (!row) throw notFound('app');
  return publicApp(row);
}

export async function updateApp(db: D1Database, orgId: string, id: string, patch: { name?: string | undefined; scopes?: string[] | undefined }) {
  const row = await db
    .prepare(`UPDATE apps SET name = COALESCE(?, name), scopes = COALESCE(?, scopes), updated_at = ? WHERE org_id = ? AND id = ? RETURNING ${COLS}`)
    .bind(patch.name ?? null, patch.scopes ? JSON.stringify(patch.scopes) : null, now(), orgId, id)
    .first<AppRow>();
  if (!row) throw notFound('app');
  return publicApp(row);
}

/**
 * What the app issued, revoked (deleting it, or rotating its secret with `revokeIssued`): its keys
 * are marked revoked (so listings say so) and lose their policy attachments; the caller runs these
 * in its batch, then `forgetIssued` on what the first returned.
 */
function revokeIssuedKeys(db: D1Database, orgId: string, id: string, t: number): D1PreparedStatement[] {
  return [
    db.prepare("UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND owner_type = 'app' AND owner_id = ? AND revoked_at IS NULL RETURNING id").bind(t, orgId, id),
    db.prepare("DELETE FROM policy_attachments WHERE org_id = ? AND principal_type = 'key' AND principal_id IN (SELECT id FROM api_keys WHERE owner_type = 'app' AND owner_id = ?)").bind(orgId, id),
  ];
}

/** This isolate forgets its cached answers for the revoked keys at once (the others within REVOCATION_CACHE_TTL). */
function forgetIssued(revoked: D1Result<{ id: string }> | undefined): number {
  const ids = revoked?.results ?? [];
  for (const k of ids) forgetCredential(k.id);
  return ids.length;
}

/**
 * A new secret; the old one stops working at once. Access tokens already issued live out their hour
 * and the app's API keys go on — unless `revokeIssued` (after a leak): then its keys are revoked and
 * its token epoch moves on, so every token issued before fails on its next request (access.ts), as a
 * deleted app's do; `revoked_keys` says how many keys were revoked.
 */
export async function rotateSecret(db: D1Database, orgId: string, id: string, opts: { revokeIssued?: boolean | undefined } = {}) {
  const secret = newClientSecret();
  const hash = await sha256Hex(secret);
  const t = now();
  if (!opts.revokeIssued) {
    const row = await db.prepare(`UPDATE apps SET client_secret_hash = ?, updated_at = ? WHERE org_id = ? AND id = ? RETURNING ${COLS}`).bind(hash, t, orgId, id).first<AppRow>();
    if (!row) throw notFound('app');
    return { ...publicApp(row), client_secret: secret };
  }
  const [rotated, revoked] = await db.batch<AppRow & { id: string }>([
    db.prepare(`UPDATE apps SET client_secret_hash = ?, token_epoch = token_epoch + 1, updated_at = ? WHERE org_id = ? AND id = ? RETURNING ${COLS}`).bind(hash, t, orgId, id),
    ...revokeIssuedKeys(db, orgId, id, t),
  ]);
  const row = rotated?.results[0];
  if (!row) throw notFound('app'); // no such app: the key statements matched nothing either
  return { ...publicApp(row), client_secret: secret, revoked_keys: forgetIssued(revoked) };
}

/**
 * Deleting an app ends it everywhere: its access tokens and keys fail on their next request
 * (access.ts finds no app), its keys are marked revoked so listings say so, its attachments go.
 */
export async function deleteApp(db: D1Database, orgId: string, id: string): Promise<void> {
  const t = now();
  const [del, revoked] = await db.batch<{ id: string }>([
    db.prepare('DELETE FROM apps WHERE org_id = ? AND id = ?').bind(orgId, id),
    ...revokeIssuedKeys(db, orgId, id, t),
    db.prepare("DELETE FROM policy_attachments WHERE org_id = ? AND principal_type = 'app' AND principal_id = ?").bind(orgId, id),
  ]);
  if (!del?.meta.changes) throw notFound('app');
  forgetIssued(revoked);
}

/** The app whose client credentials these are, or null. Hashes even for an unknown client id, so timing does not reveal which ids exist. */
export async function authenticateClient(db: D1Database, clientId: string, secret: string) {
  const row = await db.prepare(`SELECT ${COLS} FROM apps WHERE client_id = ?`).bind(clientId).first<AppRow>();
  const hash = await sha256Hex(secret);
  if (!row || !timingSafeEqual(hash, row.client_secret_hash)) return null;
  return { id: row.id, orgId: row.org_id, scopes: JSON.parse(row.scopes) as string[], tokenEpoch: row.token_epoch };
}
