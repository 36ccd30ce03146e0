import { createRoute, z } from '@hono/zod-openapi';
import { authorize, requireOrg, requireUser } from '../auth';
import { recordPurges } from '../channels/service';
import { startPurges } from '../lib/actors';
import { page, substring } from '../lib/entities';
import { newId, now } from '../lib/ids';
import { errors, jsonBody, jsonResponse, pageOf, PageQuery, SECURED, USER_ONLY, created, createdResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { readableOrgsPage } from './list';
import { addMember, changeRole, removeMember } from './members';
import { Member, MemberInvite, MemberParam, MemberQuery, Org, OrgCreate, OrgParam, RoleChange } from './schemas';

export const orgsRouter = router();
const tags = ['orgs'];
const security = SECURED;

orgsRouter.openapi(
  createRoute({ method: 'post', path: '/orgs', operationId: 'createOrg', tags, security: USER_ONLY, summary: 'Create an org; the caller becomes its owner', request: jsonBody(OrgCreate), responses: { 201: createdResponse(Org, 'Created'), ...errors(400, 401, 403, 415, 422) } }),
  async (c) => {
    const userId = requireUser(c);
    const { name } = c.req.valid('json');
    const id = newId();
    const t = now();
    await c.env.DB.batch([
      c.env.DB.prepare('INSERT INTO orgs (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)').bind(id, name, t, t),
      c.env.DB.prepare("INSERT INTO members (org_id, user_id, role, created_at) VALUES (?, ?, 'owner', ?)").bind(id, userId, t),
    ]);
    return c.json(created(c, { id, name, created_at: t, role: 'owner' as const }, 'orgs', id), 201);
  },
);

orgsRouter.openapi(
  createRoute({
    method: 'get',
    path: '/orgs',
    operationId: 'listOrgs',
    tags,
    security,
    summary: 'Orgs I belong to and may read',
    description: "A user's orgs; a key's, app token's or device's own org. Each only if the caller may read it (`orgs:read` on `org`, as `GET /orgs/{org}` decides): one it may not is left out, so a key without that scope, or a device, gets an empty list.",
    request: { query: PageQuery },
    responses: { 200: jsonResponse(pageOf(Org, 'OrgPage'), 'Orgs'), ...errors(400, 401) },
  }),
  async (c) => {
    const { offset, limit } = c.req.valid('query');
    const { total, items } = await readableOrgsPage(c.env.DB, c.var.principal, offset, limit);
    return c.json({ total, offset, limit, items }, 200);
  },
);

orgsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}', operationId: 'getOrg', tags, security, summary: 'Get an org', request: { params: OrgParam }, responses: { 200: jsonResponse(Org, 'Org'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    const access = await authorize(c, org, 'orgs:read', 'org');
    const row = await c.env.DB.prepare('SELECT id, name, created_at FROM orgs WHERE id = ?').bind(org).first<{ id: string; name: string; created_at: number }>();
    return c.json({ ...row!, ...(access.role ? { role: access.role } : {}) }, 200);
  },
);

orgsRouter.openapi(
  createRoute({ method: 'patch', path: '/orgs/{org}', operationId: 'renameOrg', tags, security, summary: 'Rename an org', request: { params: OrgParam, ...jsonBody(OrgCreate) }, responses: { 200: jsonResponse(Org, 'Updated'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'orgs:update', 'org');
    const { name } = c.req.valid('json');
    const row = await c.env.DB.prepare('UPDATE orgs SET name = ?, updated_at = ? WHERE id = ? RETURNING id, name, created_at').bind(name, now(), org).first<{ id: string; name: string; created_at: number }>();
    return c.json(row!, 200);
  },
);

orgsRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}', operationId: 'deleteOrg', tags, security, summary: 'Delete an org and everything in it (owners only)', request: { params: OrgParam }, responses: { 204: { description: 'Deleted' }, ...errors(401, 403, 404) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'orgs:delete', 'org');
    // Its channels' stored messages have no foreign key (a drain must never fail): their purge is
    // recorded with the delete, in one batch, and the purger (objects/purger/) carries it out.
    await c.env.DB.batch([recordPurges(c.env.DB, org), c.env.DB.prepare('DELETE FROM orgs WHERE id = ?').bind(org)]);
    await startPurges(c.env);
    return c.body(null, 204);
  },
);

orgsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/members', operationId: 'listMembers', tags, security, summary: 'List members, filtered by email', request: { params: OrgParam, query: MemberQuery }, responses: { 200: jsonResponse(pageOf(Member, 'MemberPage'), 'Members'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    const { offset, limit, email } = c.req.valid('query');
    await authorize(c, org, 'members:read', 'members/*');
    const f = substring('u.email', email);
    const p = await page<z.infer<typeof Member>>(c.env.DB, `members m JOIN users u ON u.id = m.user_id WHERE m.org_id = ?${f.where}`, [org, ...f.params], 'm.user_id, u.email, m.role, m.created_at', 'm.created_at, m.user_id', offset, limit);
    return c.json(p, 200);
  },
);

orgsRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/members', operationId: 'addMember', tags, security, summary: 'Add a registered user to the org with a role', request: { params: OrgParam, ...jsonBody(MemberInvite) }, responses: { 201: createdResponse(Member, 'Added'), ...errors(400, 401, 403, 404, 409, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    const access = await authorize(c, org, 'members:create', 'members/*');
    const { email, role } = c.req.valid('json');
    const member = await addMember(c.env.DB, org, access.role, email, role);
    return c.json(created(c, member, 'orgs', org, 'members', member.user_id), 201);
  },
);

orgsRouter.openapi(
  createRoute({ method: 'patch', path: '/orgs/{org}/members/{user}', operationId: 'setMemberRole', tags, security, summary: "Change a member's role", request: { params: MemberParam, ...jsonBody(RoleChange) }, responses: { 204: { description: 'Changed' }, ...errors(400, 401, 403, 404, 409, 415, 422) } }),
  async (c) => {
    const { org, user } = c.req.valid('param');
    const access = await authorize(c, org, 'members:update', `members/${user}`);
    await changeRole(c.env.DB, org, access.role, user, c.req.valid('json').role);
    return c.body(null, 204);
  },
);

orgsRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}/members/{user}', operationId: 'removeMember', tags, security, summary: 'Remove a member (any member may remove themselves)', description: "Removing a member, also leaving on one's own, revokes that user's API keys in this org and drops the policy attachments of the membership and of those keys; a refused removal (409) revokes nothing.", request: { params: MemberParam }, responses: { 204: { description: 'Removed' }, ...errors(401, 403, 404, 409) } }),
  async (c) => {
    const { org, user } = c.req.valid('param');
    const p = c.var.principal;
    const self = p.kind === 'user' && p.id === user;
    const access = self ? await requireOrg(c, org) : await authorize(c, org, 'members:delete', `members/${user}`);
    await removeMember(c.env.DB, org, self ? 'owner' : access.role, user);
    return c.body(null, 204);
  },
);
