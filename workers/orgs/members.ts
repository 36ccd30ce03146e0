import type { Role } from '../iam/pdp';
import { ApiError, conflict, forbidden, notFound } from '../lib/errors';
import { now } from '../lib/ids';

/** Membership rules that are about roles themselves, not about a single action (so they are not policies). */

async function ownerCount(db: D1Database, orgId: string): Promise<number> {
  const r = await db.prepare("SELECT COUNT(*) AS n FROM members WHERE org_id = ? AND role = 'owner'").bind(orgId).first<{ n: number }>();
  return r?.n ?? 0;
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
  if (current === 'owner' && role !== 'owner' && (await ownerCount(db, orgId)) <= 1) throw conflict('an org must keep at least one owner');
  await db.prepare('UPDATE members SET role = ? WHERE org_id = ? AND user_id = ?').bind(role, orgId, userId).run();
}

export async function removeMember(db: D1Database, orgId: string, actorRole: Role | null, userId: string) {
  const current = await roleOf(db, orgId, userId);
  if (!current) throw notFound('member');
  guardOwnerRole(actorRole, current, null);
  if (current === 'owner' && (await ownerCount(db, orgId)) <= 1) throw conflict('an org must keep at least one owner');
  await db.batch([
    db.prepare('DELETE FROM members WHERE org_id = ? AND user_id = ?').bind(orgId, userId),
    db.prepare("DELETE FROM policy_attachments WHERE org_id = ? AND principal_type = 'member' AND principal_id = ?").bind(orgId, userId),
  ]);
}
