import { forgetCredential } from '../auth/credentials';
import { signToken } from '../auth/tokens';
import { orderBy, page, substring, type Sort } from '../lib/entities';
import { notFound } from '../lib/errors';
import { newId, now } from '../lib/ids';

export type Owner = { type: 'user' | 'app'; id: string };

interface KeyRow {
  id: string;
  name: string;
  scopes: string;
  owner_type: 'user' | 'app';
  owner_id: string;
  expires_at: number | null;
  revoked_at: number | null;
  created_at: number;
}
const COLS = 'id, name, scopes, owner_type, owner_id, expires_at, revoked_at, created_at';
const toKey = (r: KeyRow) => ({ ...r, scopes: JSON.parse(r.scopes) as string[] });

/**
 * An API key is a JWT (typ 'key', jti = row id) so that checking it needs no lookup of a secret;
 * the row is what makes it listable and revocable (see docs/auth.md for how revocation reaches
 * every isolate). The JWT's `exp` and the row's expires_at say the same thing. `appEpoch`: the
 * token epoch of the app token issuing it (Principal.epoch); null when the app's tokens were revoked
 * meanwhile (or the app deleted): no key.
 */
export async function issueKey(env: Env, orgId: string, owner: Owner, name: string, scopes: string[], expiresIn: number | undefined, appEpoch = 0) {
  const id = newId();
  const t = now();
  const expires_at = expiresIn === undefined ? null : t + expiresIn * 1000;
  const key = await signToken(env, { typ: 'key', sub: owner.id, jti: id, org: orgId, scp: scopes, own: owner.type }, expiresIn ?? null);
  const values = [id, orgId, name, owner.type, owner.id, JSON.stringify(scopes), expires_at, t];
  const insert = 'INSERT INTO api_keys (id, org_id, name, owner_type, owner_id, scopes, expires_at, revoked_at, created_at) SELECT ?, ?, ?, ?, ?, ?, ?, NULL, ?';
  // An app's key is written only while the app exists and has not revoked what the issuing token
  // was issued in (apps.token_epoch): a rotation with revokeIssued, or a delete, committed after the
  // route's access check would otherwise miss this key and leave it live.
  const stmt =
    owner.type === 'app'
      ? env.DB.prepare(`${insert} WHERE EXISTS (SELECT 1 FROM apps WHERE id = ? AND org_id = ? AND token_epoch <= ?)`).bind(...values, owner.id, orgId, appEpoch)
      : env.DB.prepare(insert).bind(...values);
  const r = await stmt.run();
  if (r.meta.changes === 0) return null;
  return { id, key, name, scopes, owner_type: owner.type, owner_id: owner.id, expires_at, revoked_at: null, created_at: t };
}

/**
 * Every key of the org, or only those of one owner; optionally only those whose name contains `name`
 * (case-insensitive, as devices). Revoked and expired keys are listed too (they say so).
 */
export async function listKeys(db: D1Database, orgId: string, owner: Owner | null, q: { offset: number; limit: number; name?: string | undefined } & Sort) {
  const f = substring('name', q.name);
  const where = `${owner ? 'org_id = ? AND owner_type = ? AND owner_id = ?' : 'org_id = ?'}${f.where}`;
  const args = [...(owner ? [orgId, owner.type, owner.id] : [orgId]), ...f.params];
  const p = await page<KeyRow>(db, `api_keys WHERE ${where}`, args, COLS, orderBy('', q, 'rowid'), q.offset, q.limit);
  return { ...p, items: p.items.map(toKey) };
}

export async function getKey(db: D1Database, orgId: string, id: string) {
  const row = await db.prepare(`SELECT ${COLS} FROM api_keys WHERE org_id = ? AND id = ?`).bind(orgId, id).first<KeyRow>();
  if (!row) throw notFound('API key');
  return toKey(row);
}

/** Idempotent: revoking a revoked key keeps the first revocation time. Forgets this isolate's cached answer at once. */
export async function revokeKey(db: D1Database, orgId: string, id: string): Promise<void> {
  await db.batch([
    db.prepare('UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL').bind(now(), orgId, id),
    db.prepare("DELETE FROM policy_attachments WHERE org_id = ? AND principal_type = 'key' AND principal_id = ?").bind(orgId, id),
  ]);
  forgetCredential(id);
}
