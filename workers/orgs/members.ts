import { forgetCredential } from '../auth/credentials';
import type { Role } from '../iam/pdp';
import { ApiError, conflict, forbidden, notFound } from '../lib/errors';
import { now } from '../lib/ids';

/** Membership rules that are about roles themselves, not about a single action (so they are not policies). */

/**
 * The condition that keeps an org's last owner, for a write that takes the owner role away from the
 * member `?2` of org `?1`: it is part of the write itself (D1 runs one statement at a time), not a
 * count read before it — two owners demoting or removing each other at once both read two owners,
 * and left an org nobody could delete or hand ownership of again.
 */
const KEEPS_AN_OWNER = "(role <> 'owner' OR (SELECT COUNT(*) FROM members WHERE org_id = ?1 AND role = 'owner') > 1)";

/**
 * Why a guarded write changed nothing: the member is gone (404); their role is no longer the one
 * `read` before the write, which guardOwnerRole judged (409, try again); or they are the last owner (409).
 */
async function refusal(db: D1Database, orgId: string, userId: string, read: Role): Promise<ApiError> {
  const role = await roleOf(db, orgId, userId);
  if (!role) return notFound('member');
  // Only a write that takes the owner role away can be stopped by the last-owner check.
  if (role !== read || role !== 'owner') return conflict("the member's role changed; try again");
  return conflict('an org must keep at least one owner');
}

async function roleOf(db: D1Database, orgId: string, userId: string): Promise<Role | null> {
  const r = await db.prepare('SELECT role FROM members WHERE org_id = ? AND user_id = ?').bind(orgId, userId).first<{ role: Role }>();
  return r?.role ?? null;
}

/** Only an owner may hand out or take away the owner role. */
function guardOwnerRole(actorRole: Role | null, from: Role | null, to: Role | null): void {
  if ((from === 'owner' || to === 'owner') && actorRole !== 'owner') throw forbidden('only an owner can grant or remove the owner role');
}

export async function addMember(db: D1Database, orgId: string, actorRole: Role | null, email: string, role: Role) {
  guardOwnerRole(actorRole, null, role);
  const user = await db.prepare('SELECT id, email FROM users WHERE email = ?').bind(email).first<{ id: string; email: string }>();
  if (!user) throw new ApiError(404, 'not_found', 'no registered user has this email; ask them to register first');
  const t = now();
  try {
    await db.prepare('INSERT INTO members (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)').bind(orgId, user.id, role, t).run();
  } catch (e) {
    if (String(e).includes('UNIQUE') || String(e).includes('PRIMARY')) throw conflict('already a member');
    throw e;
  }
  return { user_id: user.id, email: user.email, role, created_at: t };
}

export async function changeRole(db: D1Database, orgId: string, actorRole: Role | null, userId: string, role: Role) {
  const current = await roleOf(db, orgId, userId);
  if (!current) throw notFound('member');
  guardOwnerRole(actorRole, current, role);
  // Written only if the role is still the one guardOwnerRole judged (compare-and-set): else an admin
  // demoting a member while an owner makes them an owner would overwrite the new owner.
  const r = await db
    .prepare(`UPDATE members SET role = ?3 WHERE org_id = ?1 AND user_id = ?2 AND role = ?4 AND (?3 = 'owner' OR ${KEEPS_AN_OWNER})`)
    .bind(orgId, userId, role, current)
    .run();
  if (!r.meta.changes) throw await refusal(db, orgId, userId, current);
}

export async function removeMember(db: D1Database, orgId: string, actorRole: Role | null, userId: string) {
  const current = await roleOf(db, orgId, userId);
  if (!current) throw notFound('member');
  guardOwnerRole(actorRole, current, null);
  // One batch (one transaction): what hangs off the membership goes only if the membership did.
  // Their API keys in this org are revoked, as an app's are when it is deleted: they already fail
  // (access.ts finds no member), and revoked they stay dead — listings say so, and adding the user
  // back later does not revive keys issued under a membership that ended.
  // The DELETE is a compare-and-set on the role guardOwnerRole judged, as in changeRole.
  const gone = 'NOT EXISTS (SELECT 1 FROM members WHERE org_id = ?1 AND user_id = ?2)';
  const [del, , revoked] = await db.batch<{ id: string }>([
    db.prepare(`DELETE FROM members WHERE org_id = ?1 AND user_id = ?2 AND role = ?3 AND ${KEEPS_AN_OWNER}`).bind(orgId, userId, current),
    db.prepare(`DELETE FROM policy_attachments WHERE org_id = ?1 AND principal_type = 'member' AND principal_id = ?2 AND ${gone}`).bind(orgId, userId),
    db
      .prepare(`UPDATE api_keys SET revoked_at = ?3 WHERE org_id = ?1 AND owner_type = 'user' AND owner_id = ?2 AND revoked_at IS NULL AND ${gone} RETURNING id`)
      .bind(orgId, userId, now()),
    db
      .prepare(`DELETE FROM policy_attachments WHERE org_id = ?1 AND principal_type = 'key' AND principal_id IN (SELECT id FROM api_keys WHERE org_id = ?1 AND owner_type = 'user' AND owner_id = ?2) AND ${gone}`)
      .bind(orgId, userId),
  ]);
  if (!del?.meta.changes) throw await refusal(db, orgId, userId, current);
  for (const k of revoked?.results ?? []) forgetCredential(k.id);
}
