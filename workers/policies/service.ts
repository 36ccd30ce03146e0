import type { Role, Statement } from '../iam/pdp';
import { conflict, notFound } from '../lib/errors';
import { newId, now } from '../lib/ids';

export type PrincipalType = 'member' | 'device' | 'app' | 'key';

interface PolicyRow {
  id: string;
  name: string;
  statements: string;
  created_at: number;
  updated_at: number;
}
const COLS = 'id, name, statements, created_at, updated_at';
const toPolicy = (r: PolicyRow) => ({ ...r, statements: JSON.parse(r.statements) as Statement[] });

export async function createPolicy(db: D1Database, orgId: string, name: string, statements: Statement[]) {
  const id = newId();
  const t = now();
  await db.prepare('INSERT INTO policies (id, org_id, name, statements, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
    .bind(id, orgId, name, JSON.stringify(statements), t, t)
    .run();
  return { id, name, statements, created_at: t, updated_at: t };
}

export async function listPolicies(db: D1Database, orgId: string, offset: number, limit: number) {
  const [count, rows] = await db.batch<{ n: number } & PolicyRow>([
    db.prepare('SELECT COUNT(*) AS n FROM policies WHERE org_id = ?').bind(orgId),
    db.prepare(`SELECT ${COLS} FROM policies WHERE org_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?`).bind(orgId, limit, offset),
  ]);
  return { total: count?.results[0]?.n ?? 0, offset, limit, items: (rows?.results ?? []).map(toPolicy) };
}

export async function getPolicy(db: D1Database, orgId: string, id: string) {
  const row = await db.prepare(`SELECT ${COLS} FROM policies WHERE org_id = ? AND id = ?`).bind(orgId, id).first<PolicyRow>();
  if (!row) throw notFound('policy');
  return toPolicy(row);
}

export async function updatePolicy(db: D1Database, orgId: string, id: string, patch: { name?: string | undefined; statements?: Statement[] | undefined }) {
  const row = await db
    .prepare(`UPDATE policies SET name = COALESCE(?, name), statements = COALESCE(?, statements), updated_at = ? WHERE org_id = ? AND id = ? RETURNING ${COLS}`)
    .bind(patch.name ?? null, patch.statements ? JSON.stringify(patch.statements) : null, now(), orgId, id)
    .first<PolicyRow>();
  if (!row) throw notFound('policy');
  return toPolicy(row);
}

export async function deletePolicy(db: D1Database, orgId: string, id: string): Promise<void> {
  const [, del] = await db.batch([
    db.prepare('DELETE FROM policy_attachments WHERE org_id = ? AND policy_id = ?').bind(orgId, id),
    db.prepare('DELETE FROM policies WHERE org_id = ? AND id = ?').bind(orgId, id),
  ]);
  if (!del?.meta.changes) throw notFound('policy');
}

// Each principal kind lives in its own table; a revoked key counts as gone.
const EXISTS: Record<PrincipalType, string> = {
  member: 'SELECT 1 FROM members WHERE org_id = ? AND user_id = ?',
  device: 'SELECT 1 FROM devices WHERE org_id = ? AND id = ?',
  app: 'SELECT 1 FROM apps WHERE org_id = ? AND id = ?',
  key: 'SELECT 1 FROM api_keys WHERE org_id = ? AND id = ? AND revoked_at IS NULL',
};

/** 404 unless the principal exists in this org (another org's principal looks exactly like a missing one). */
export async function assertPrincipal(db: D1Database, orgId: string, type: PrincipalType, id: string): Promise<void> {
  if (!(await db.prepare(EXISTS[type]).bind(orgId, id).first())) throw notFound(type);
}

export async function roleOf(db: D1Database, orgId: string, userId: string): Promise<Role | null> {
  const r = await db.prepare('SELECT role FROM members WHERE org_id = ? AND user_id = ?').bind(orgId, userId).first<{ role: Role }>();
  return r?.role ?? null;
}

/** True when the policy applies to at least one owner of the org. */
export async function attachedToOwner(db: D1Database, orgId: string, policyId: string): Promise<boolean> {
  const r = await db
    .prepare("SELECT 1 FROM policy_attachments a JOIN members m ON m.org_id = a.org_id AND m.user_id = a.principal_id WHERE a.org_id = ? AND a.policy_id = ? AND a.principal_type = 'member' AND m.role = 'owner'")
    .bind(orgId, policyId)
    .first();
  return !!r;
}

export async function attach(db: D1Database, orgId: string, policyId: string, type: PrincipalType, principalId: string) {
  const t = now();
  try {
    await db.prepare('INSERT INTO policy_attachments (policy_id, org_id, principal_type, principal_id, created_at) VALUES (?, ?, ?, ?, ?)')
      .bind(policyId, orgId, type, principalId, t)
      .run();
  } catch (e) {
    if (String(e).includes('UNIQUE') || String(e).includes('PRIMARY')) throw conflict('this policy is already attached to this principal');
    throw e;
  }
  return { policy_id: policyId, principal_type: type, principal_id: principalId, created_at: t };
}

export async function listAttachments(db: D1Database, orgId: string, policyId: string, offset: number, limit: number) {
  type Row = { policy_id: string; principal_type: PrincipalType; principal_id: string; created_at: number };
  const [count, rows] = await db.batch<{ n: number } & Row>([
    db.prepare('SELECT COUNT(*) AS n FROM policy_attachments WHERE org_id = ? AND policy_id = ?').bind(orgId, policyId),
    db.prepare('SELECT policy_id, principal_type, principal_id, created_at FROM policy_attachments WHERE org_id = ? AND policy_id = ? ORDER BY created_at, principal_type, principal_id LIMIT ? OFFSET ?')
      .bind(orgId, policyId, limit, offset),
  ]);
  const items = (rows?.results ?? []).map(({ policy_id, principal_type, principal_id, created_at }) => ({ policy_id, principal_type, principal_id, created_at }));
  return { total: count?.results[0]?.n ?? 0, offset, limit, items };
}

export async function detach(db: D1Database, orgId: string, policyId: string, type: PrincipalType, principalId: string): Promise<void> {
  const r = await db.prepare('DELETE FROM policy_attachments WHERE org_id = ? AND policy_id = ? AND principal_type = ? AND principal_id = ?')
    .bind(orgId, policyId, type, principalId)
    .run();
  if (!r.meta.changes) throw notFound('attachment');
}
