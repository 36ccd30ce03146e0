import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { globsOverlap } from '../../workers/policies/authority';
import { api, expectProblem, newOrg, newUser } from './helpers';

type User = Awaited<ReturnType<typeof newUser>>;
type Stmt = { effect: 'allow' | 'deny'; actions: string[]; resources: string[] };

async function setup() {
  const owner = await newUser('owner');
  const org = await newOrg(owner.token);
  return { owner, org };
}

async function member(owner: User, orgId: string, role: 'admin' | 'member' | 'viewer') {
  const u = await newUser(role);
  expect((await api('POST', `/orgs/${orgId}/members`, { token: owner.token, body: { email: u.email, role } })).status).toBe(201);
  return u;
}

async function policy(token: string, orgId: string, statements: Stmt[], name = 'p'): Promise<string> {
  const r = await api('POST', `/orgs/${orgId}/policies`, { token, body: { name, statements } });
  if (r.status !== 201) throw new Error(`policy failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

const attach = (token: string, orgId: string, policyId: string, principal_type: string, principal_id: string) =>
  api('POST', `/orgs/${orgId}/policies/${policyId}/attachments`, { token, body: { principal_type, principal_id } });

const allow = (actions: string[], resources = ['*']): Stmt => ({ effect: 'allow', actions, resources });
const deny = (actions: string[], resources = ['*']): Stmt => ({ effect: 'deny', actions, resources });

async function insertDevice(orgId: string): Promise<string> {
  const id = crypto.randomUUID();
  await env.DB.prepare('INSERT INTO devices (id, org_id, name, key_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)').bind(id, orgId, 'd', `hash-${id}`, 1, 1).run();
  return id;
}

describe('policies', () => {
  it('creates, lists, gets, updates and deletes policies', async () => {
    const { owner, org } = await setup();
    const statements = [allow(['devices:read'], ['devices/*']), deny(['devices:delete'])];
    const r = await api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: ' readers ', statements } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'readers', statements, created_at: expect.any(Number) });
    const id = r.body.id;
    await policy(owner.token, org.id, [deny(['*'])], 'second');
    const list = await api('GET', `/orgs/${org.id}/policies?limit=1`, { token: owner.token });
    expect(list.body).toMatchObject({ total: 2, limit: 1, items: [{ id, name: 'readers' }] });
    expect((await api('GET', `/orgs/${org.id}/policies/${id}`, { token: owner.token })).body).toEqual(r.body);
    const renamed = await api('PATCH', `/orgs/${org.id}/policies/${id}`, { token: owner.token, body: { name: 'renamed' } });
    expect(renamed.body).toMatchObject({ name: 'renamed', statements });
    const restated = await api('PATCH', `/orgs/${org.id}/policies/${id}`, { token: owner.token, body: { statements: [deny(['orgs:update'], ['org'])] } });
    expect(restated.body).toMatchObject({ name: 'renamed', statements: [deny(['orgs:update'], ['org'])] });
    expect((await api('DELETE', `/orgs/${org.id}/policies/${id}`, { token: owner.token })).status).toBe(204);
    for (const [m, body] of [['GET'], ['PATCH', { name: 'x' }], ['DELETE']] as const) {
      expectProblem(await api(m, `/orgs/${org.id}/policies/${id}`, { token: owner.token, body }), 404);
    }
    expectProblem(await api('GET', `/orgs/${org.id}/policies/${id}/attachments`, { token: owner.token }), 404);
    expectProblem(await attach(owner.token, org.id, id, 'member', owner.id), 404);
  });

  it('validates statements (422 naming what is wrong)', async () => {
    const { owner, org } = await setup();
    const post = (statements: unknown) => api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: 'p', statements } });
    const bad = expectProblem(await post([allow(['devices:read', 'devics:read'])]), 422);
    expect(bad.detail).toContain('devics:read');
    expect(bad.detail).toContain('statements.0.actions.1');
    expectProblem(await post([]), 422);
    expectProblem(await post(Array.from({ length: 51 }, () => allow(['devices:read']))), 422);
    expectProblem(await post([{ effect: 'maybe', actions: ['devices:read'], resources: ['*'] }]), 422);
    // A misspelt key inside a statement would otherwise be dropped silently (a condition the user meant to add).
    expect(expectProblem(await post([{ ...allow(['devices:read']), condition: { ip: '10.0.0.0/8' } }]), 422).detail).toContain('condition');
    expectProblem(await post([allow([])]), 422);
    expectProblem(await post([allow(['devices:read'], [])]), 422);
    expectProblem(await post([allow(['devices:read'], ['devices/ a'])]), 422);
    const id = await policy(owner.token, org.id, [allow(['orgs:read'])]);
    expectProblem(await api('PATCH', `/orgs/${org.id}/policies/${id}`, { token: owner.token, body: {} }), 422);
    expectProblem(await api('PATCH', `/orgs/${org.id}/policies/${id}`, { token: owner.token, body: { statements: [allow(['nope:*'])] } }), 422);
    expectProblem(await attach(owner.token, org.id, id, 'robot', owner.id), 422);
    expectProblem(await api('DELETE', `/orgs/${org.id}/policies/${id}/attachments/robot/${owner.id}`, { token: owner.token }), 400);
  });

  it('attaches to members, devices, apps and keys of this org only', async () => {
    const { owner, org } = await setup();
    const other = await setup();
    const m = await member(owner, org.id, 'member');
    const id = await policy(owner.token, org.id, [allow(['orgs:read'])]);
    const device = await insertDevice(org.id);
    const app = (await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'a', scopes: ['orgs:read'] } })).body;
    const key = (await api('POST', `/orgs/${org.id}/keys`, { token: owner.token, body: { name: 'k', scopes: ['orgs:read'] } })).body;
    const a = await attach(owner.token, org.id, id, 'member', m.id);
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ policy_id: id, principal_type: 'member', principal_id: m.id, created_at: expect.any(Number) });
    for (const [type, pid] of [['device', device], ['app', app.id], ['key', key.id]]) expect((await attach(owner.token, org.id, id, type!, pid!)).status).toBe(201);
    expectProblem(await attach(owner.token, org.id, id, 'member', m.id), 409);
    const list = await api('GET', `/orgs/${org.id}/policies/${id}/attachments`, { token: owner.token });
    expect(list.body.total).toBe(4);
    expect(list.body.items.map((x: { principal_type: string }) => x.principal_type).sort()).toEqual(['app', 'device', 'key', 'member']);

    // Principals of another org (or none at all) do not exist here.
    const foreignDevice = await insertDevice(other.org.id);
    const foreignApp = (await api('POST', `/orgs/${other.org.id}/apps`, { token: other.owner.token, body: { name: 'a', scopes: ['orgs:read'] } })).body;
    const foreignKey = (await api('POST', `/orgs/${other.org.id}/keys`, { token: other.owner.token, body: { name: 'k', scopes: ['orgs:read'] } })).body;
    for (const [type, pid] of [['member', other.owner.id], ['device', foreignDevice], ['app', foreignApp.id], ['key', foreignKey.id], ['member', 'nobody']]) {
      expectProblem(await attach(owner.token, org.id, id, type!, pid!), 404);
    }
    // A revoked key is gone, and revoking drops its attachments.
    await api('DELETE', `/orgs/${org.id}/keys/${key.id}`, { token: owner.token });
    expectProblem(await attach(owner.token, org.id, id, 'key', key.id), 404);
    expect((await api('GET', `/orgs/${org.id}/policies/${id}/attachments`, { token: owner.token })).body.total).toBe(3);

    expect((await api('DELETE', `/orgs/${org.id}/policies/${id}/attachments/member/${m.id}`, { token: owner.token })).status).toBe(204);
    expectProblem(await api('DELETE', `/orgs/${org.id}/policies/${id}/attachments/member/${m.id}`, { token: owner.token }), 404);
    // Deleting the policy deletes its attachments.
    expect((await api('DELETE', `/orgs/${org.id}/policies/${id}`, { token: owner.token })).status).toBe(204);
    const left = await env.DB.prepare('SELECT COUNT(*) AS n FROM policy_attachments WHERE policy_id = ?').bind(id).first<{ n: number }>();
    expect(left!.n).toBe(0);
  });

  it('an explicit deny overrides a role allow and another policy allow; an allow widens a viewer', async () => {
    const { owner, org } = await setup();
    const admin = await member(owner, org.id, 'admin');
    const viewer = await member(owner, org.id, 'viewer');
    const noRename = await policy(owner.token, org.id, [deny(['orgs:update'], ['org'])], 'no rename');
    const rename = await policy(owner.token, org.id, [allow(['orgs:update'], ['org'])], 'rename');

    // Deny on the owner's own membership beats the owner role.
    expect((await attach(owner.token, org.id, noRename, 'member', owner.id)).status).toBe(201);
    expect(expectProblem(await api('PATCH', `/orgs/${org.id}`, { token: owner.token, body: { name: 'x' } }), 403).detail).toContain('denied by policy');
    expect((await api('GET', `/orgs/${org.id}`, { token: owner.token })).status).toBe(200);
    expect((await api('DELETE', `/orgs/${org.id}/policies/${noRename}/attachments/member/${owner.id}`, { token: owner.token })).status).toBe(204);
    expect((await api('PATCH', `/orgs/${org.id}`, { token: owner.token, body: { name: 'x' } })).status).toBe(200);

    // ...and the admin role.
    expect((await api('PATCH', `/orgs/${org.id}`, { token: admin.token, body: { name: 'y' } })).status).toBe(200);
    await attach(owner.token, org.id, noRename, 'member', admin.id);
    expectProblem(await api('PATCH', `/orgs/${org.id}`, { token: admin.token, body: { name: 'y' } }), 403);

    // An allow policy widens a viewer; a deny policy beats it.
    expectProblem(await api('PATCH', `/orgs/${org.id}`, { token: viewer.token, body: { name: 'z' } }), 403);
    await attach(owner.token, org.id, rename, 'member', viewer.id);
    expect((await api('PATCH', `/orgs/${org.id}`, { token: viewer.token, body: { name: 'z' } })).status).toBe(200);
    await attach(owner.token, org.id, noRename, 'member', viewer.id);
    expectProblem(await api('PATCH', `/orgs/${org.id}`, { token: viewer.token, body: { name: 'z' } }), 403);
    // Changing a policy takes effect on the next request.
    await api('PATCH', `/orgs/${org.id}/policies/${noRename}`, { token: owner.token, body: { statements: [deny(['orgs:delete'], ['org'])] } });
    expect((await api('PATCH', `/orgs/${org.id}`, { token: viewer.token, body: { name: 'w' } })).status).toBe(200);
  });

  it("a policy on a key narrows only that key, not its owner or the owner's other keys", async () => {
    const { owner, org } = await setup();
    const k1 = (await api('POST', `/orgs/${org.id}/keys`, { token: owner.token, body: { name: 'k1', scopes: ['*'] } })).body;
    const k2 = (await api('POST', `/orgs/${org.id}/keys`, { token: owner.token, body: { name: 'k2', scopes: ['*'] } })).body;
    const id = await policy(owner.token, org.id, [deny(['members:*'])]);
    expect((await attach(owner.token, org.id, id, 'key', k1.id)).status).toBe(201);
    expectProblem(await api('GET', `/orgs/${org.id}/members`, { token: k1.key }), 403);
    expect((await api('GET', `/orgs/${org.id}`, { token: k1.key })).status).toBe(200);
    expect((await api('GET', `/orgs/${org.id}/members`, { token: k2.key })).status).toBe(200);
    expect((await api('GET', `/orgs/${org.id}/members`, { token: owner.token })).status).toBe(200);
  });

  it('needs policies:* rights; nobody grants or attaches more than they hold; only owners touch owners', async () => {
    const { owner, org } = await setup();
    const admin = await member(owner, org.id, 'admin');
    const m = await member(owner, org.id, 'member');
    expectProblem(await api('POST', `/orgs/${org.id}/policies`, { token: m.token, body: { name: 'p', statements: [deny(['*'])] } }), 403);
    const mine = await policy(owner.token, org.id, [deny(['devices:delete'])]);
    expect((await api('GET', `/orgs/${org.id}/policies/${mine}`, { token: m.token })).status).toBe(200);
    expectProblem(await attach(m.token, org.id, mine, 'member', m.id), 403);
    expectProblem(await api('DELETE', `/orgs/${org.id}/policies/${mine}/attachments/member/${m.id}`, { token: m.token }), 403);
    expectProblem(await api('DELETE', `/orgs/${org.id}/policies/${mine}`, { token: m.token }), 403);

    // Admins cannot delete the org, so they cannot write or hand out an allow that does.
    const esc = expectProblem(await api('POST', `/orgs/${org.id}/policies`, { token: admin.token, body: { name: 'p', statements: [allow(['orgs:delete'])] } }), 403);
    expect(esc.code).toBe('exceeds_authority');
    const ownersAllow = await policy(owner.token, org.id, [allow(['*'])]);
    expectProblem(await attach(admin.token, org.id, ownersAllow, 'member', m.id), 403);
    const adminPolicy = await policy(admin.token, org.id, [allow(['devices:*']), deny(['orgs:delete'])]);
    expectProblem(await api('PATCH', `/orgs/${org.id}/policies/${adminPolicy}`, { token: admin.token, body: { statements: [allow(['orgs:*'])] } }), 403);
    expect((await attach(admin.token, org.id, adminPolicy, 'member', m.id)).status).toBe(201);

    // An admin cannot lock an owner out: attaching to, detaching from, or rewriting what applies to an owner is owner-only.
    const lockout = await policy(admin.token, org.id, [deny(['*'])]);
    expect(expectProblem(await attach(admin.token, org.id, lockout, 'member', owner.id), 403).detail).toContain('owner');
    expect((await attach(owner.token, org.id, adminPolicy, 'member', owner.id)).status).toBe(201);
    expectProblem(await api('PATCH', `/orgs/${org.id}/policies/${adminPolicy}`, { token: admin.token, body: { statements: [deny(['*'])] } }), 403);
    expectProblem(await api('DELETE', `/orgs/${org.id}/policies/${adminPolicy}/attachments/member/${owner.id}`, { token: admin.token }), 403);
    expect((await api('PATCH', `/orgs/${org.id}/policies/${adminPolicy}`, { token: admin.token, body: { name: 'renaming is fine' } })).status).toBe(200);
  });
});

describe('isolation', () => {
  it("another org's owner gets 404 on every policy route", async () => {
    const a = await setup();
    const b = await setup();
    const id = await policy(a.owner.token, a.org.id, [allow(['orgs:read'])]);
    await attach(a.owner.token, a.org.id, id, 'member', a.owner.id);
    const bPolicy = await policy(b.owner.token, b.org.id, [allow(['orgs:read'])]);
    const t = b.owner.token;
    expectProblem(await api('GET', `/orgs/${a.org.id}/policies`, { token: t }), 404);
    expectProblem(await api('POST', `/orgs/${a.org.id}/policies`, { token: t, body: { name: 'p', statements: [allow(['orgs:read'])] } }), 404);
    for (const org of [a.org.id, b.org.id]) {
      expectProblem(await api('GET', `/orgs/${org}/policies/${id}`, { token: t }), 404);
      expectProblem(await api('PATCH', `/orgs/${org}/policies/${id}`, { token: t, body: { name: 'x' } }), 404);
      expectProblem(await api('DELETE', `/orgs/${org}/policies/${id}`, { token: t }), 404);
      expectProblem(await api('GET', `/orgs/${org}/policies/${id}/attachments`, { token: t }), 404);
      expectProblem(await attach(t, org, id, 'member', b.owner.id), 404);
      expectProblem(await api('DELETE', `/orgs/${org}/policies/${id}/attachments/member/${a.owner.id}`, { token: t }), 404);
    }
    // b's own policy cannot be attached to a's member.
    expectProblem(await attach(t, b.org.id, bPolicy, 'member', a.owner.id), 404);
    expect((await api('GET', `/orgs/${a.org.id}/policies/${id}/attachments`, { token: a.owner.token })).body.total).toBe(1);
  });
});

describe('globsOverlap', () => {
  it.each([
    ['*', 'anything', true],
    ['devices/*', 'devices/d1', true],
    ['devices/d1', 'devices/*', true],
    ['devices/*', 'channels/*', false],
    ['a*c', '*b*', true],
    ['a*', '*z', true],
    ['ab', 'a*c', false],
    ['x*y', 'x', false],
    ['', '*', true],
  ])('%s ∩ %s → %s', (a, b, want) => {
    expect(globsOverlap(a, b)).toBe(want);
    expect(globsOverlap(b, a)).toBe(want);
  });
});
