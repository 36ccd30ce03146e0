import type { Principal } from '../auth/principal';
import { accessFrom } from '../iam/access';
import { decide } from '../iam/pdp';
import { loadAccessRows } from '../iam/rows';
import { ApiError } from '../lib/errors';
import type { Role } from '../iam/pdp';

export interface OrgRow {
  id: string;
  name: string;
  created_at: number;
  role?: Role;
}

/**
 * The orgs `p` may read, oldest first: a user's memberships, or the one org a key, app token or
 * device is bound to — each kept only if the PDP allows `orgs:read` on `org` there, the rule of
 * `GET /orgs/{org}` (a key without that scope, a device, a member denied it by a policy: left out,
 * not refused — listing is a query). A credential that is no longer good is still 401. Two D1
 * round trips: the orgs, then everything the decisions need for all of them (iam/rows.ts).
 */
export async function readableOrgs(db: D1Database, p: Principal): Promise<OrgRow[]> {
  const { results: orgs } =
    p.kind === 'user'
      ? await db.prepare('SELECT o.id, o.name, o.created_at, m.role FROM members m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.created_at, o.id').bind(p.id).all<OrgRow>()
      : await db.prepare('SELECT id, name, created_at FROM orgs WHERE id = ?').bind(p.orgId).all<OrgRow>();
  if (orgs.length === 0) return orgs;
  const rows = await loadAccessRows(db, [{ principal: p, orgs: orgs.map((o) => o.id) }]);
  return orgs.filter((o) => {
    try {
      const access = accessFrom(rows, p, o.id);
      return decide({ action: 'orgs:read', resource: 'org', grants: access.grants, policies: access.policies, scopes: access.scopes }).allowed;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false; // no longer a member (left between the two reads)
      throw e;
    }
  });
}

/**
 * One page of readableOrgs. Every role allows `orgs:read` (iam/pdp.ts roleGrants), so only a deny
 * in a policy attached to the user can leave a membership out: without one (the usual case) the page
 * is paged in SQL, one D1 round trip (count, page and that check in one batch) however many orgs the
 * user belongs to. With one, every membership is decided as readableOrgs does, then paged. The check
 * is conservative: any attached policy whose statements say "deny" at all takes the slow path.
 * Keys, app tokens and devices have one org: readableOrgs, at most one row.
 */
export async function readableOrgsPage(db: D1Database, p: Principal, offset: number, limit: number): Promise<{ total: number; items: OrgRow[] }> {
  if (p.kind === 'user') {
    const [count, page, denies] = await db.batch([
      db.prepare('SELECT COUNT(*) AS n FROM members WHERE user_id = ?').bind(p.id),
      db.prepare('SELECT o.id, o.name, o.created_at, m.role FROM members m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.created_at, o.id LIMIT ? OFFSET ?').bind(p.id, limit, offset),
      db
        .prepare(
          `SELECT EXISTS (SELECT 1 FROM policy_attachments a JOIN members m ON m.org_id = a.org_id AND m.user_id = a.principal_id JOIN policies pol ON pol.id = a.policy_id
             WHERE a.principal_type = 'member' AND a.principal_id = ? AND pol.statements LIKE '%"deny"%') AS d`,
        )
        .bind(p.id),
    ]);
    if (!(denies!.results[0] as { d: number }).d) return { total: (count!.results[0] as { n: number }).n, items: page!.results as OrgRow[] };
  }
  const orgs = await readableOrgs(db, p);
  return { total: orgs.length, items: orgs.slice(offset, offset + limit) };
}
