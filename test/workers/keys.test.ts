import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { signToken } from '../../workers/auth/tokens';
import { issueKey } from '../../workers/keys/service';
import { api, expectProblem, newOrg, newUser } from './helpers';

type User = Awaited<ReturnType<typeof newUser>>;
type KeyOut = { id: string; key: string; name: string; scopes: string[]; expires_at: number | null; owner_id: string };

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

async function issue(token: string, orgId: string, scopes: string[], extra: { expires_in?: number; name?: string } = {}): Promise<KeyOut> {
  const r = await api('POST', `/orgs/${orgId}/keys`, { token, body: { name: extra.name ?? 'ci', scopes, ...extra } });
  if (r.status !== 201) throw new Error(`key failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const claims = (jwt: string) => JSON.parse(atob(jwt.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TTL_MS = Number(env.REVOCATION_CACHE_TTL) * 1000;

describe('API keys', () => {
  it('issues a key (a JWT shown once), lists and gets it without the key', async () => {
    const { owner, org } = await setup();
    const before = Date.now();
    const r = await api('POST', `/orgs/${org.id}/keys`, { token: owner.token, body: { name: 'ci', scopes: ['orgs:read', 'members:read', 'orgs:read'], expires_in: 3600 } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'ci', scopes: ['orgs:read', 'members:read'], owner_type: 'user', owner_id: owner.id, revoked_at: null });
    expect(r.body.expires_at).toBeGreaterThanOrEqual(before + 3600_000);
    expect(r.headers.get('location')).toBe(`/orgs/${org.id}/keys/${r.body.id}`);
    expect(r.body.expires_at).toBeLessThanOrEqual(Date.now() + 3600_000);
    const c = claims(r.body.key);
    expect(c).toMatchObject({ typ: 'key', jti: r.body.id, sub: owner.id, org: org.id, own: 'user', scp: ['orgs:read', 'members:read'] });
    expect(c.exp - c.iat).toBe(3600);

    const forever = await issue(owner.token, org.id, ['orgs:read'], { name: 'forever' });
    expect(forever.expires_at).toBeNull();
    expect(claims(forever.key).exp).toBeUndefined();

    const got = await api('GET', `/orgs/${org.id}/keys/${r.body.id}`, { token: owner.token });
    expect(got.status).toBe(200);
    expect(got.body).not.toHaveProperty('key');
    expect(JSON.stringify(got.body)).not.toContain(r.body.key);
    const list = await api('GET', `/orgs/${org.id}/keys?limit=1&offset=1`, { token: owner.token });
    expect(list.body).toMatchObject({ total: 2, offset: 1, limit: 1 });
    expect(list.body.items.map((k: { name: string }) => k.name)).toEqual(['forever']);
    expect(JSON.stringify(list.body)).not.toContain(forever.key);
    expectProblem(await api('GET', `/orgs/${org.id}/keys/nope`, { token: owner.token }), 404);
    expectProblem(await api('DELETE', `/orgs/${org.id}/keys/nope`, { token: owner.token }), 404);
  });

  it('filters by name (case-insensitive substring, wildcards literal), counted as filtered, past the first page', async () => {
    const { owner, org } = await setup();
    // 30 others first: the default page (20) and a page of 10 both end before the keys searched for.
    for (let i = 1; i <= 30; i++) await issue(owner.token, org.id, ['orgs:read'], { name: `key-${String(i).padStart(2, '0')}` });
    for (const name of ['CI Deploy', '100%_sure', 'ci-nightly']) await issue(owner.token, org.id, ['orgs:read'], { name });
    const list = async (q: string, token = owner.token) => {
      const r = await api('GET', `/orgs/${org.id}/keys?${q}`, { token });
      expect(r.status, q).toBe(200);
      return { total: r.body.total as number, names: (r.body.items as { name: string }[]).map((k) => k.name).sort() };
    };
    // The premise: neither is on the first page of the unfiltered list.
    const first = await list('');
    expect(first.total).toBe(33);
    expect(first.names).not.toContain('CI Deploy');
    expect(first.names).not.toContain('100%_sure');

    expect(await list('name=ci')).toEqual({ total: 2, names: ['CI Deploy', 'ci-nightly'] });
    expect(await list('name=%25_')).toEqual({ total: 1, names: ['100%_sure'] }); // `%` and `_` are literal, not LIKE's wildcards
    expect(await list('name=_')).toEqual({ total: 1, names: ['100%_sure'] });
    expect(await list('name=%25')).toEqual({ total: 1, names: ['100%_sure'] });
    expect(await list('name=nothing')).toEqual({ total: 0, names: [] });
    expect(await list('name=KEY-&limit=10&offset=20')).toEqual({ total: 30, names: Array.from({ length: 10 }, (_, i) => `key-${i + 21}`) });
    expect((await list('name=')).total).toBe(33); // an empty filter filters nothing
    expectProblem(await api('GET', `/orgs/${org.id}/keys?name=${'x'.repeat(201)}`, { token: owner.token }), 400);
    // Sorted by name (case-insensitive), either way; by creation, newest first.
    const inOrder = async (q: string) => ((await api('GET', `/orgs/${org.id}/keys?${q}`, { token: owner.token })).body.items as { name: string }[]).map((k) => k.name);
    expect(await inOrder('name=ci&sort=name')).toEqual(['CI Deploy', 'ci-nightly']);
    expect(await inOrder('name=ci&sort=name&order=desc')).toEqual(['ci-nightly', 'CI Deploy']);
    expect(await inOrder('order=desc&limit=3')).toEqual(['ci-nightly', '100%_sure', 'CI Deploy']);

    // A caller who may read only their own keys searches only those.
    const m = await member(owner, org.id, 'member');
    const mine = await issue(m.token, org.id, ['orgs:read'], { name: 'ci-mine' });
    const pol = await api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: 'no key reading', statements: [{ effect: 'deny', actions: ['keys:read'], resources: ['keys/*'] }] } });
    await api('POST', `/orgs/${org.id}/policies/${pol.body.id}/attachments`, { token: owner.token, body: { principal_type: 'member', principal_id: m.id } });
    expect(await list('name=CI', m.token)).toEqual({ total: 1, names: [mine.name] });
    expect(await list('name=key-', m.token)).toEqual({ total: 0, names: [] });
  });

  it('validates the body', async () => {
    const { owner, org } = await setup();
    const post = (body: unknown) => api('POST', `/orgs/${org.id}/keys`, { token: owner.token, body });
    expect(expectProblem(await post({ name: 'k', scopes: ['devics:read'] }), 422).detail).toContain('devics:read');
    expectProblem(await post({ name: 'k', scopes: [] }), 422);
    expectProblem(await post({ name: 'k' }), 422);
    expectProblem(await post({ name: 'k', scopes: ['*'], expires_in: 59 }), 422);
    expectProblem(await post({ name: 'k', scopes: ['*'], expires_in: 10 * 365 * 24 * 3600 + 1 }), 422);
    expectProblem(await post({ name: 'k', scopes: ['*'], expires_in: 60.5 }), 422);
    expect((await post({ name: 'k', scopes: ['*'], expires_in: 10 * 365 * 24 * 3600 })).status).toBe(201);
  });

  it('acts as its owner narrowed to its scopes: a viewer-held * key cannot do admin things', async () => {
    const { owner, org } = await setup();
    const scoped = await issue(owner.token, org.id, ['orgs:read', 'keys:read']);
    expect((await api('GET', `/orgs/${org.id}`, { token: scoped.key })).status).toBe(200);
    expect((await api('GET', `/orgs/${org.id}/keys`, { token: scoped.key })).status).toBe(200);
    expect(expectProblem(await api('GET', `/orgs/${org.id}/members`, { token: scoped.key }), 403).detail).toContain('scope');
    expectProblem(await api('PATCH', `/orgs/${org.id}`, { token: scoped.key, body: { name: 'x' } }), 403);

    // Keys follow their owner's current role: issue as a member, then be demoted to viewer.
    const m = await member(owner, org.id, 'member');
    const all = await issue(m.token, org.id, ['*']);
    expect((await api('GET', `/orgs/${org.id}/members`, { token: all.key })).status).toBe(200);
    expect((await api('PATCH', `/orgs/${org.id}/members/${m.id}`, { token: owner.token, body: { role: 'viewer' } })).status).toBe(204);
    expect((await api('GET', `/orgs/${org.id}`, { token: all.key })).status).toBe(200);
    expectProblem(await api('PATCH', `/orgs/${org.id}`, { token: all.key, body: { name: 'x' } }), 403);
    expectProblem(await api('POST', `/orgs/${org.id}/members`, { token: all.key, body: { email: owner.email } }), 403);
    expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: all.key, body: { name: 'x', scopes: ['orgs:read'] } }), 403);
    expectProblem(await api('DELETE', `/orgs/${org.id}`, { token: all.key }), 403);
  });

  it('cannot be used to issue keys; apps issue keys only within their own scopes', async () => {
    const { owner, org } = await setup();
    const k = await issue(owner.token, org.id, ['*']);
    expect(expectProblem(await api('POST', `/orgs/${org.id}/keys`, { token: k.key, body: { name: 'x', scopes: ['orgs:read'] } }), 403).code).toBe('issuer_not_allowed');
    // A device too, with the reason (not the plain 'forbidden' of keys:create, which it lacks).
    const device = (await api('POST', `/orgs/${org.id}/devices`, { token: owner.token, body: { name: 'd' } })).body;
    const byDevice = expectProblem(await api('POST', `/orgs/${org.id}/keys`, { device: device.key, body: { name: 'x', scopes: ['orgs:read'] } }), 403);
    expect([byDevice.code, byDevice.detail]).toEqual(['issuer_not_allowed', 'a device cannot issue API keys; use a user session or an app token']);

    const app = (await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'a', scopes: ['orgs:read', 'keys:create', 'keys:read'] } })).body;
    const tok = await api('POST', '/oauth/token', { body: { grant_type: 'client_credentials', client_id: app.client_id, client_secret: app.client_secret } });
    const appToken = tok.body.access_token;
    const own = await issue(appToken, org.id, ['orgs:read'], { expires_in: 600 });
    expect(own).toMatchObject({ owner_id: app.id, owner_type: 'app' });
    expect((await api('GET', `/orgs/${org.id}`, { token: own.key })).status).toBe(200);
    expectProblem(await api('GET', `/orgs/${org.id}/members`, { token: own.key }), 403);
    const wider = expectProblem(await api('POST', `/orgs/${org.id}/keys`, { token: appToken, body: { name: 'x', scopes: ['members:read'] } }), 403);
    expect(wider.code).toBe('exceeds_authority');
    expectProblem(await api('POST', `/orgs/${org.id}/keys`, { token: appToken, body: { name: 'x', scopes: ['*'] } }), 403);
    // keys:read in its scopes and grants: the app sees every key of the org, not only its own.
    expect((await api('GET', `/orgs/${org.id}/keys`, { token: appToken })).body.total).toBe(2);
  });

  it('expires: by the JWT exp claim and by the row', async () => {
    const { owner, org } = await setup();
    const k = await issue(owner.token, org.id, ['orgs:read'], { expires_in: 60 });
    expect((await api('GET', `/orgs/${org.id}`, { token: k.key })).status).toBe(200);
    // The same key as it will look in a minute: jose refuses it before any lookup.
    const expired = await signToken(env, { typ: 'key', sub: owner.id, jti: k.id, org: org.id, scp: ['orgs:read'], own: 'user' }, -1);
    expect(expectProblem(await api('GET', `/orgs/${org.id}`, { token: expired }), 401).detail).toContain('expired');
    // A fresh key whose row says it has expired (never used, so nothing is cached): the row wins.
    const k2 = await issue(owner.token, org.id, ['orgs:read'], { expires_in: 3600 });
    await env.DB.prepare('UPDATE api_keys SET expires_at = ? WHERE id = ?').bind(Date.now() - 1, k2.id).run();
    expectProblem(await api('GET', `/orgs/${org.id}`, { token: k2.key }), 401);
  });

  it('is rejected at once after revocation in the revoking isolate', async () => {
    const { owner, org } = await setup();
    const k = await issue(owner.token, org.id, ['orgs:read']);
    expect((await api('GET', `/orgs/${org.id}`, { token: k.key })).status).toBe(200); // now cached as live
    expect((await api('DELETE', `/orgs/${org.id}/keys/${k.id}`, { token: owner.token })).status).toBe(204);
    expect(expectProblem(await api('GET', `/orgs/${org.id}`, { token: k.key }), 401).detail).toContain('revoked');
    const got = await api('GET', `/orgs/${org.id}/keys/${k.id}`, { token: owner.token });
    expect(got.body.revoked_at).toEqual(expect.any(Number));
    // Idempotent: a second revoke keeps the first time.
    expect((await api('DELETE', `/orgs/${org.id}/keys/${k.id}`, { token: owner.token })).status).toBe(204);
    expect((await api('GET', `/orgs/${org.id}/keys/${k.id}`, { token: owner.token })).body.revoked_at).toBe(got.body.revoked_at);
  });

  it('is rejected everywhere within REVOCATION_CACHE_TTL: a stale cached "live" answer is bounded', async () => {
    expect(TTL_MS).toBe(5000);
    const { owner, org } = await setup();
    const k = await issue(owner.token, org.id, ['orgs:read']);
    expect((await api('GET', `/orgs/${org.id}`, { token: k.key })).status).toBe(200); // cached as live until now + TTL
    // Another isolate revokes: the row changes, but this isolate's cache is not told.
    const revokedAt = Date.now();
    await env.DB.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').bind(revokedAt, k.id).run();
    expect((await api('GET', `/orgs/${org.id}`, { token: k.key })).status).toBe(200); // the staleness we accept...
    let rejectedAfter = -1;
    while (Date.now() - revokedAt < TTL_MS + 1500) {
      const r = await api('GET', `/orgs/${org.id}`, { token: k.key });
      if (r.status === 401) {
        rejectedAfter = Date.now() - revokedAt;
        break;
      }
      expect(r.status).toBe(200);
      await sleep(200);
    }
    // ...is bounded by the TTL (plus the poll interval).
    expect(rejectedAfter).toBeGreaterThan(0);
    expect(rejectedAfter).toBeLessThanOrEqual(TTL_MS + 500);
  }, 15_000);

  it("stops working when its owner leaves the org, and stays revoked if they come back", async () => {
    const { owner, org } = await setup();
    const m = await member(owner, org.id, 'member');
    const k = await issue(m.token, org.id, ['orgs:read']);
    expect((await api('GET', `/orgs/${org.id}`, { token: k.key })).status).toBe(200);
    expect((await api('DELETE', `/orgs/${org.id}/members/${m.id}`, { token: owner.token })).status).toBe(204);
    expect(expectProblem(await api('GET', `/orgs/${org.id}`, { token: k.key }), 401).detail).toBe('API key revoked or expired');
    // For good, and it says so: the key is revoked with the membership (as an app's keys are with the
    // app), so adding the user back later does not bring a key back that everyone saw as dead.
    expect((await api('GET', `/orgs/${org.id}/keys/${k.id}`, { token: owner.token })).body.revoked_at).toEqual(expect.any(Number));
    expect((await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: m.email, role: 'viewer' } })).status).toBe(201);
    expect(expectProblem(await api('GET', `/orgs/${org.id}`, { token: k.key }), 401).detail).toBe('API key revoked or expired');
    expect((await api('GET', `/orgs/${org.id}`, { token: (await issue(m.token, org.id, ['orgs:read'])).key })).status).toBe(200);
  });

  it("outlives a refused removal of its owner (the org's last owner)", async () => {
    const { owner, org } = await setup();
    const k = await issue(owner.token, org.id, ['orgs:read']);
    expectProblem(await api('DELETE', `/orgs/${org.id}/members/${owner.id}`, { token: owner.token }), 409);
    expect((await api('GET', `/orgs/${org.id}`, { token: k.key })).status).toBe(200);
  });

  it('owners of a key may always see and revoke it; others need keys:read / keys:delete', async () => {
    const { owner, org } = await setup();
    const ownerKey = await issue(owner.token, org.id, ['*']);
    const m = await member(owner, org.id, 'member');
    const mine = await issue(m.token, org.id, ['orgs:read']);
    // Hide other people's keys from this member with a deny on keys:read.
    const pol = await api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: 'no key reading', statements: [{ effect: 'deny', actions: ['keys:read', 'keys:delete'], resources: ['keys/*'] }] } });
    await api('POST', `/orgs/${org.id}/policies/${pol.body.id}/attachments`, { token: owner.token, body: { principal_type: 'member', principal_id: m.id } });
    const list = await api('GET', `/orgs/${org.id}/keys`, { token: m.token });
    expect(list.body.items.map((k: { id: string }) => k.id)).toEqual([mine.id]);
    expect((await api('GET', `/orgs/${org.id}/keys/${mine.id}`, { token: m.token })).status).toBe(200);
    expectProblem(await api('GET', `/orgs/${org.id}/keys/${ownerKey.id}`, { token: m.token }), 403);
    expectProblem(await api('DELETE', `/orgs/${org.id}/keys/${ownerKey.id}`, { token: m.token }), 403);
    // A viewer holds no keys:delete at all, yet may revoke their own key.
    expect((await api('PATCH', `/orgs/${org.id}/members/${m.id}`, { token: owner.token, body: { role: 'viewer' } })).status).toBe(204);
    expect((await api('DELETE', `/orgs/${org.id}/keys/${mine.id}`, { token: m.token })).status).toBe(204);
    // ...but a key's scopes still narrow what ownership allows.
    const other = await issue(owner.token, org.id, ['orgs:read']);
    expectProblem(await api('DELETE', `/orgs/${org.id}/keys/${other.id}`, { token: other.key }), 403);
    expect((await api('DELETE', `/orgs/${org.id}/keys/${other.id}`, { token: ownerKey.key })).status).toBe(204);
    // Everyone with keys:read on keys/* (every role today) sees all keys.
    expect((await api('GET', `/orgs/${org.id}/keys`, { token: owner.token })).body.total).toBe(3);
  });
});

describe('keys issued by an app token racing a revocation', () => {
  // The race itself (a rotation committing between the route's access check and its insert) cannot
  // be ordered from outside the worker; the insert's own condition is tested here directly: it is
  // all that stands between such a request and a live key no revocation covered.
  it('writes no key for a token epoch the app has moved past, nor for a deleted app', async () => {
    const { owner, org } = await setup();
    const app = (await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'a', scopes: ['orgs:read', 'keys:create'] } })).body as { id: string };
    const asApp = { type: 'app' as const, id: app.id };
    const count = async (name: string) => (await env.DB.prepare('SELECT COUNT(*) AS n FROM api_keys WHERE org_id = ? AND name = ?').bind(org.id, name).first<{ n: number }>())!.n;
    expect(await issueKey(env, org.id, asApp, 'epoch0', ['orgs:read'], undefined, 0)).toMatchObject({ owner_type: 'app', owner_id: app.id });
    expect((await api('POST', `/orgs/${org.id}/apps/${app.id}/secret`, { token: owner.token, body: { revokeIssued: true } })).status).toBe(201);
    // Checked before the rotation, inserted after it: nothing is written.
    expect(await issueKey(env, org.id, asApp, 'late', ['orgs:read'], undefined, 0)).toBeNull();
    expect(await count('late')).toBe(0);
    expect(await issueKey(env, org.id, asApp, 'epoch1', ['orgs:read'], undefined, 1)).not.toBeNull();
    expect(await count('epoch1')).toBe(1);
    // Another org's id of the same app, or a deleted app, writes nothing either.
    const other = await newOrg(owner.token, 'other');
    expect(await issueKey(env, other.id, asApp, 'elsewhere', ['orgs:read'], undefined, 1)).toBeNull();
    expect((await api('DELETE', `/orgs/${org.id}/apps/${app.id}`, { token: owner.token })).status).toBe(204);
    expect(await issueKey(env, org.id, asApp, 'gone', ['orgs:read'], undefined, 1)).toBeNull();
    expect(await count('gone')).toBe(0);
    // A user's key is not conditioned on any app.
    expect(await issueKey(env, org.id, { type: 'user', id: owner.id }, 'mine', ['orgs:read'], undefined)).not.toBeNull();
  });
});

describe('isolation', () => {
  it("another org's owner gets 404 on every key route", async () => {
    const a = await setup();
    const b = await setup();
    const k = await issue(a.owner.token, a.org.id, ['*']);
    const t = b.owner.token;
    expectProblem(await api('GET', `/orgs/${a.org.id}/keys`, { token: t }), 404);
    expectProblem(await api('POST', `/orgs/${a.org.id}/keys`, { token: t, body: { name: 'x', scopes: ['*'] } }), 404);
    for (const org of [a.org.id, b.org.id]) {
      expectProblem(await api('GET', `/orgs/${org}/keys/${k.id}`, { token: t }), 404);
      expectProblem(await api('DELETE', `/orgs/${org}/keys/${k.id}`, { token: t }), 404);
    }
    // A key is bound to its org.
    expectProblem(await api('GET', `/orgs/${b.org.id}`, { token: k.key }), 404);
    expect((await api('GET', `/orgs/${a.org.id}`, { token: k.key })).status).toBe(200);
  });
});
