import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../workers/lib/crypto';
import { api, expectProblem, newOrg, newUser, checkedFetch, type Res } from './helpers';

type Owner = Awaited<ReturnType<typeof newUser>>;
type AppOut = { id: string; client_id: string; client_secret: string; scopes: string[] };

async function setup() {
  const owner = await newUser('owner');
  const org = await newOrg(owner.token);
  return { owner, org };
}

async function member(owner: Owner, orgId: string, role: 'admin' | 'member' | 'viewer') {
  const u = await newUser(role);
  const r = await api('POST', `/orgs/${orgId}/members`, { token: owner.token, body: { email: u.email, role } });
  expect(r.status).toBe(201);
  return u;
}

async function newApp(token: string, orgId: string, scopes: string[], name = 'ingest'): Promise<AppOut> {
  const r = await api('POST', `/orgs/${orgId}/apps`, { token, body: { name, scopes } });
  if (r.status !== 201) throw new Error(`app failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const basic = (id: string, secret: string) => `Basic ${btoa(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)}`;
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const FORM = 'application/x-www-form-urlencoded';

/** POST /oauth/token with a form body (the standard) and HTTP Basic client auth, unless told otherwise. */
function tokenRequest(params: Record<string, string>, auth?: string, contentType = FORM): Promise<Res> {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (auth) headers.authorization = auth;
  const raw = contentType.startsWith(FORM) ? form(params) : JSON.stringify(params);
  return api('POST', '/oauth/token', { raw, headers });
}

async function appToken(app: AppOut, scope?: string): Promise<string> {
  const r = await tokenRequest({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }, basic(app.client_id, app.client_secret));
  if (r.status !== 200) throw new Error(`token failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.access_token;
}

function expectOAuthError(r: Res, status: number, error: string): void {
  if (r.status !== status) throw new Error(`expected ${status} ${error}, got ${r.status}: ${JSON.stringify(r.body)}`);
  expect(r.body).toEqual({ error, error_description: expect.any(String) });
  expect(r.headers.get('content-type')).toContain('application/json');
  expect(r.headers.get('cache-control')).toBe('no-store');
  if (status === 401) expect(r.headers.get('www-authenticate')).toMatch(/^Basic /);
}

const claims = (jwt: string) => JSON.parse(atob(jwt.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')));

describe('apps', () => {
  it('registers an app: the client secret is shown once and only its hash is stored', async () => {
    const { owner, org } = await setup();
    const r = await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: ' ingest ', scopes: ['orgs:read', 'devices:*', 'orgs:read'] } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'ingest', scopes: ['orgs:read', 'devices:*'], created_by: owner.id });
    expect(r.body.client_id).toMatch(/^efc_[\w-]{22}$/);
    expect(r.body.client_secret).toMatch(/^efs_[\w-]{43}$/);
    const row = await env.DB.prepare('SELECT client_secret_hash FROM apps WHERE id = ?').bind(r.body.id).first<{ client_secret_hash: string }>();
    expect(row!.client_secret_hash).toBe(await sha256Hex(r.body.client_secret));

    const got = await api('GET', `/orgs/${org.id}/apps/${r.body.id}`, { token: owner.token });
    expect(got.status).toBe(200);
    expect(got.body).not.toHaveProperty('client_secret');
    expect(JSON.stringify(got.body)).not.toContain(r.body.client_secret);
    expect(got.body).toMatchObject({ id: r.body.id, client_id: r.body.client_id });
  });

  it('lists with pagination, renames, changes scopes and deletes', async () => {
    const { owner, org } = await setup();
    const ids = [];
    for (const n of ['a', 'b', 'c']) ids.push((await newApp(owner.token, org.id, ['orgs:read'], n)).id);
    const p1 = await api('GET', `/orgs/${org.id}/apps?limit=2`, { token: owner.token });
    const p2 = await api('GET', `/orgs/${org.id}/apps?limit=2&offset=2`, { token: owner.token });
    expect(p1.body).toMatchObject({ total: 3, offset: 0, limit: 2 });
    expect([...p1.body.items, ...p2.body.items].map((a: { name: string }) => a.name)).toEqual(['a', 'b', 'c']);
    expect(JSON.stringify(p1.body)).not.toContain('client_secret');
    expectProblem(await api('GET', `/orgs/${org.id}/apps?limit=101`, { token: owner.token }), 400);

    const renamed = await api('PATCH', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token, body: { name: 'alpha' } });
    expect(renamed.body).toMatchObject({ name: 'alpha', scopes: ['orgs:read'] });
    const rescoped = await api('PATCH', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token, body: { scopes: ['members:read'] } });
    expect(rescoped.body).toMatchObject({ name: 'alpha', scopes: ['members:read'] });
    expectProblem(await api('PATCH', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token, body: {} }), 422);
    expectProblem(await api('PATCH', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token, body: { scopes: ['nope:read'] } }), 422);

    expect((await api('DELETE', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token })).status).toBe(204);
    expectProblem(await api('GET', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token }), 404);
    expectProblem(await api('DELETE', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token }), 404);
    expectProblem(await api('PATCH', `/orgs/${org.id}/apps/${ids[0]}`, { token: owner.token, body: { name: 'x' } }), 404);
    expectProblem(await api('POST', `/orgs/${org.id}/apps/${ids[0]}/secret`, { token: owner.token }), 404);
  });

  it('filters by name (case-insensitive substring, wildcards literal), counted as filtered, past the first page', async () => {
    const { owner, org } = await setup();
    // 30 others first: the default page (20) and a page of 10 both end before the apps searched for.
    for (let i = 1; i <= 30; i++) await newApp(owner.token, org.id, ['orgs:read'], `app-${String(i).padStart(2, '0')}`);
    for (const n of ['Grafana Dash', '100%_sure', 'grafana-backup']) await newApp(owner.token, org.id, ['orgs:read'], n);
    const list = async (q: string) => {
      const r = await api('GET', `/orgs/${org.id}/apps?${q}`, { token: owner.token });
      expect(r.status, q).toBe(200);
      return { total: r.body.total as number, names: (r.body.items as { name: string }[]).map((a) => a.name).sort() };
    };
    // The premise: neither is on the first page of the unfiltered list.
    const first = await list('');
    expect(first.total).toBe(33);
    expect(first.names).not.toContain('Grafana Dash');
    expect(first.names).not.toContain('100%_sure');

    expect(await list('name=GRAFANA')).toEqual({ total: 2, names: ['Grafana Dash', 'grafana-backup'] });
    expect(await list('name=%25_')).toEqual({ total: 1, names: ['100%_sure'] }); // `%` and `_` are literal, not LIKE's wildcards
    expect(await list('name=_')).toEqual({ total: 1, names: ['100%_sure'] });
    expect(await list('name=%25')).toEqual({ total: 1, names: ['100%_sure'] });
    expect(await list('name=nothing')).toEqual({ total: 0, names: [] });
    expect(await list('name=APP-&limit=10&offset=20')).toEqual({ total: 30, names: Array.from({ length: 10 }, (_, i) => `app-${i + 21}`) });
    expect((await list('name=')).total).toBe(33); // an empty filter filters nothing
    expectProblem(await api('GET', `/orgs/${org.id}/apps?name=${'x'.repeat(201)}`, { token: owner.token }), 400);
    // Sorted by name (case-insensitive), either way, with the filter; and by creation, newest first.
    const inOrder = async (q: string) => ((await api('GET', `/orgs/${org.id}/apps?${q}`, { token: owner.token })).body.items as { name: string }[]).map((a) => a.name);
    expect(await inOrder('name=grafana&sort=name')).toEqual(['Grafana Dash', 'grafana-backup']);
    expect(await inOrder('name=grafana&sort=name&order=desc')).toEqual(['grafana-backup', 'Grafana Dash']);
    expect(await inOrder('order=desc&limit=3')).toEqual(['grafana-backup', '100%_sure', 'Grafana Dash']);
    // Equal names keep their creation order (ids are random: they would not).
    const dups: string[] = [];
    for (let i = 0; i < 6; i++) dups.push((await newApp(owner.token, org.id, ['orgs:read'], 'dup')).id as string);
    const ids = async (q: string) => ((await api('GET', `/orgs/${org.id}/apps?${q}`, { token: owner.token })).body.items as { id: string }[]).map((a) => a.id);
    expect(await ids('name=dup&sort=name')).toEqual(dups);
    expect(await ids('name=dup&sort=name&order=desc')).toEqual([...dups].reverse());
  });

  it('validates scopes: known actions only, no empty resource, at least one', async () => {
    const { owner, org } = await setup();
    const bad = expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'x', scopes: ['orgs:read', 'devics:read'] } }), 422);
    expect(bad.detail).toContain('devics:read');
    expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'x', scopes: ['devices:read@'] } }), 422);
    expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'x', scopes: ['devices:read devices:create'] } }), 422);
    expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'x', scopes: [] } }), 422);
    expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: '', scopes: ['*'] } }), 422);
    // `action@resource` with wildcards is fine.
    expect((await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'x', scopes: ['devices:read@devices/*', '*:read'] } })).status).toBe(201);
  });

  it('needs apps:* rights, and nobody registers an app with more than they hold', async () => {
    const { owner, org } = await setup();
    const viewer = await member(owner, org.id, 'viewer');
    const admin = await member(owner, org.id, 'admin');
    expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: viewer.token, body: { name: 'x', scopes: ['orgs:read'] } }), 403);
    const app = await newApp(owner.token, org.id, ['orgs:read']);
    expect((await api('GET', `/orgs/${org.id}/apps`, { token: viewer.token })).body.total).toBe(1);
    expectProblem(await api('DELETE', `/orgs/${org.id}/apps/${app.id}`, { token: viewer.token }), 403);
    expectProblem(await api('POST', `/orgs/${org.id}/apps/${app.id}/secret`, { token: viewer.token }), 403);
    // Admins may not delete the org, so they may not mint an app that can.
    const esc = expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token: admin.token, body: { name: 'x', scopes: ['*'] } }), 403);
    expect(esc).toMatchObject({ code: 'exceeds_authority' });
    expect(esc.detail).toContain('orgs:delete');
    expectProblem(await api('PATCH', `/orgs/${org.id}/apps/${app.id}`, { token: admin.token, body: { scopes: ['orgs:*'] } }), 403);
    expect((await api('POST', `/orgs/${org.id}/apps`, { token: admin.token, body: { name: 'x', scopes: ['devices:*', 'orgs:update'] } })).status).toBe(201);
    expect((await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'x', scopes: ['*'] } })).status).toBe(201);
  });
});

describe('OAuth 2.0 client credentials (RFC 6749 §4.4)', () => {
  it('issues app tokens with HTTP Basic or body credentials, form or JSON', async () => {
    const { owner, org } = await setup();
    const app = await newApp(owner.token, org.id, ['orgs:read', 'members:read']);
    const grant = { grant_type: 'client_credentials' };
    const answers = [
      await tokenRequest(grant, basic(app.client_id, app.client_secret)),
      await tokenRequest({ ...grant, client_id: app.client_id, client_secret: app.client_secret }),
      await tokenRequest({ ...grant, client_id: app.client_id, client_secret: app.client_secret }, undefined, 'application/json'),
      await tokenRequest(grant, basic(app.client_id, app.client_secret), 'application/json'),
      // §2.3.1: the Basic user and password are form-urlencoded first; a client may encode more than it must.
      await tokenRequest(grant, `Basic ${btoa(`${app.client_id.replace(/_/g, '%5F')}:${app.client_secret.replace(/_/g, '%5F')}`)}`),
      // client_id may accompany Basic if it names the same client.
      await tokenRequest({ ...grant, client_id: app.client_id }, basic(app.client_id, app.client_secret), `${FORM}; charset=UTF-8`),
    ];
    for (const r of answers) {
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 3600, scope: 'orgs:read members:read' });
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.headers.get('pragma')).toBe('no-cache');
    }
    const c = claims(answers[0]!.body.access_token);
    expect(c).toMatchObject({ typ: 'app', sub: app.id, org: org.id, scp: ['orgs:read', 'members:read'] });
    expect(c.exp - c.iat).toBe(3600);
  });

  it('answers errors in the OAuth format of §5.2', async () => {
    const { owner, org } = await setup();
    const app = await newApp(owner.token, org.id, ['orgs:read']);
    const grant = { grant_type: 'client_credentials' };
    const auth = basic(app.client_id, app.client_secret);
    expectOAuthError(await tokenRequest(grant, basic(app.client_id, 'efs_wrong')), 401, 'invalid_client');
    expectOAuthError(await tokenRequest({ ...grant, client_id: app.client_id, client_secret: 'efs_wrong' }), 401, 'invalid_client');
    expectOAuthError(await tokenRequest(grant, basic('efc_nobody', app.client_secret)), 401, 'invalid_client');
    expectOAuthError(await tokenRequest(grant), 401, 'invalid_client');
    expectOAuthError(await tokenRequest(grant, 'Basic !!!'), 401, 'invalid_client');
    expectOAuthError(await tokenRequest(grant, `Bearer ${owner.token}`), 401, 'invalid_client');
    expectOAuthError(await tokenRequest({ ...grant, client_secret: app.client_secret }, auth), 400, 'invalid_request');
    expectOAuthError(await tokenRequest({ ...grant, client_id: 'efc_other' }, auth), 400, 'invalid_request');
    expectOAuthError(await tokenRequest({}, auth), 400, 'invalid_request');
    expectOAuthError(await tokenRequest({ grant_type: 'password' }, auth), 400, 'unsupported_grant_type');
    expectOAuthError(await tokenRequest({ grant_type: 'authorization_code' }, auth, 'application/json'), 400, 'unsupported_grant_type');
    const headers = { 'content-type': FORM, authorization: auth };
    expectOAuthError(await api('POST', '/oauth/token', { raw: 'grant_type=client_credentials&grant_type=client_credentials', headers }), 400, 'invalid_request');
    expectOAuthError(await api('POST', '/oauth/token', { raw: 'grant_type=client_credentials', headers: { ...headers, 'content-type': 'text/plain' } }), 400, 'invalid_request');
    expectOAuthError(await api('POST', '/oauth/token', { raw: '{"grant_type":', headers: { ...headers, 'content-type': 'application/json' } }), 400, 'invalid_request');
    expectOAuthError(await api('POST', '/oauth/token', { raw: '{"grant_type":1}', headers: { ...headers, 'content-type': 'application/json' } }), 400, 'invalid_request');
    // The OpenAPI document describes the endpoint and its error shape.
    const doc = await api('GET', '/openapi.json');
    expect(doc.body.paths['/oauth/token'].post.responses['401'].content['application/json'].schema.$ref).toBe('#/components/schemas/OAuthError');
    expect(Object.keys(doc.body.paths['/oauth/token'].post.requestBody.content)).toEqual([FORM, 'application/json']);
    expect(doc.body.components.schemas.TokenRequest.properties.grant_type).toBeDefined();
    expect(doc.body.components.securitySchemes.client_basic).toMatchObject({ type: 'http', scheme: 'basic' });
  });

  it('narrows a token to the requested scopes and refuses scopes beyond the app', async () => {
    const { owner, org } = await setup();
    const app = await newApp(owner.token, org.id, ['orgs:read', 'members:read', 'apps:*@apps/*']);
    const auth = basic(app.client_id, app.client_secret);
    const narrow = await tokenRequest({ grant_type: 'client_credentials', scope: 'orgs:read' }, auth);
    expect(narrow.body.scope).toBe('orgs:read');
    expect((await api('GET', `/orgs/${org.id}`, { token: narrow.body.access_token })).status).toBe(200);
    expectProblem(await api('GET', `/orgs/${org.id}/members`, { token: narrow.body.access_token }), 403);

    const sub = await tokenRequest({ grant_type: 'client_credentials', scope: 'apps:read@apps/* members:read' }, auth);
    expect(sub.body.scope).toBe('apps:read@apps/* members:read');
    for (const scope of ['orgs:update', 'orgs:read devices:read', 'apps:read', 'apps:read@*', 'devics:read', '', '*']) {
      expectOAuthError(await tokenRequest({ grant_type: 'client_credentials', scope }, auth), 400, 'invalid_scope');
    }
  });

  it("bounds a token's scopes as a key's are (at most 50, each at most 300 characters): the bridge takes its principals only within them", async () => {
    const { owner, org } = await setup();
    const app = await newApp(owner.token, org.id, ['apps:read@apps/*']);
    const auth = basic(app.client_id, app.client_secret);
    const each = (n: number) => Array.from({ length: n }, (_, i) => `apps:read@apps/a${i}`).join(' ');
    expect((await tokenRequest({ grant_type: 'client_credentials', scope: each(50) }, auth)).body.scope.split(' ')).toHaveLength(50);
    expectOAuthError(await tokenRequest({ grant_type: 'client_credentials', scope: each(51) }, auth), 400, 'invalid_scope');
    const long = `apps:read@apps/${'x'.repeat(300 - 'apps:read@apps/'.length)}`;
    expect((await tokenRequest({ grant_type: 'client_credentials', scope: long }, auth)).body.scope).toBe(long);
    expectOAuthError(await tokenRequest({ grant_type: 'client_credentials', scope: `${long}y` }, auth), 400, 'invalid_scope');
  });

  it('lets an app token do what its scopes allow in its own org, and nothing else', async () => {
    const { owner, org } = await setup();
    const other = await setup();
    const app = await newApp(owner.token, org.id, ['orgs:read', 'members:read', 'apps:read']);
    const token = await appToken(app);
    expect((await api('GET', `/orgs/${org.id}`, { token })).status).toBe(200);
    expect((await api('GET', `/orgs/${org.id}/members`, { token })).body.total).toBe(1);
    expect((await api('GET', `/orgs/${org.id}/apps/${app.id}`, { token })).status).toBe(200);
    expectProblem(await api('PATCH', `/orgs/${org.id}`, { token, body: { name: 'x' } }), 403);
    expectProblem(await api('POST', `/orgs/${org.id}/apps`, { token, body: { name: 'x', scopes: ['orgs:read'] } }), 403);
    expectProblem(await api('DELETE', `/orgs/${org.id}`, { token }), 403);
    expectProblem(await api('GET', `/orgs/${other.org.id}`, { token }), 404);
    expectProblem(await api('GET', '/users/me', { token }), 403);
    expectProblem(await api('POST', '/orgs', { token, body: { name: 'x' } }), 403);
    // Narrowing the app's scopes narrows its live tokens at once.
    await api('PATCH', `/orgs/${org.id}/apps/${app.id}`, { token: owner.token, body: { scopes: ['orgs:read'] } });
    expectProblem(await api('GET', `/orgs/${org.id}/members`, { token }), 403);
  });

  it('rotating the secret kills the old one', async () => {
    const { owner, org } = await setup();
    const app = await newApp(owner.token, org.id, ['orgs:read']);
    const before = await appToken(app);
    const r = await api('POST', `/orgs/${org.id}/apps/${app.id}/secret`, { token: owner.token });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ id: app.id, client_id: app.client_id });
    expect(r.body.client_secret).not.toBe(app.client_secret);
    expectOAuthError(await tokenRequest({ grant_type: 'client_credentials' }, basic(app.client_id, app.client_secret)), 401, 'invalid_client');
    expect((await api('GET', `/orgs/${org.id}`, { token: await appToken({ ...app, client_secret: r.body.client_secret }) })).status).toBe(200);
    // Tokens already issued live out their hour (documented); deleting the app ends them.
    expect((await api('GET', `/orgs/${org.id}`, { token: before })).status).toBe(200);
  });

  it('rotating the secret with revokeIssued also revokes the keys the app issued and ends its tokens at once', async () => {
    const { owner, org } = await setup();
    const ch = (await api('POST', `/orgs/${org.id}/channels`, { token: owner.token, body: { name: 'c' } })).body as { id: string };
    const app = await newApp(owner.token, org.id, ['orgs:read', 'keys:create', 'messages:publish']);
    const rotate = (body?: unknown) => api('POST', `/orgs/${org.id}/apps/${app.id}/secret`, { token: owner.token, ...(body === undefined ? {} : { body }) });
    const readOrg = (token: string) => api('GET', `/orgs/${org.id}`, { token });
    const publish = (token: string) => api('POST', `/channels/${ch.id}/messages`, { token, raw: 'x', headers: { 'content-type': 'text/plain' } });
    const before = await appToken(app);
    const issue = async (name: string) => (await api('POST', `/orgs/${org.id}/keys`, { token: before, body: { name, scopes: ['orgs:read'] } })).body as { id: string; key: string };
    const key = await issue('k1');
    const revokedEarlier = await issue('k2');
    expect((await api('DELETE', `/orgs/${org.id}/keys/${revokedEarlier.id}`, { token: owner.token })).status).toBe(204);
    const ownersKey = (await api('POST', `/orgs/${org.id}/keys`, { token: owner.token, body: { name: 'mine', scopes: ['orgs:read'] } })).body as { key: string };
    expect((await publish(before)).status).toBe(202);

    // A body that is not the option is refused, and changes nothing.
    expectProblem(await rotate({ revokeIssued: 'yes' }), 422);
    expect((await readOrg(before)).status).toBe(200);
    // revokeIssued false is the plain rotation: the new secret, and everything issued goes on.
    const plain = await rotate({ revokeIssued: false });
    expect(plain.status).toBe(201);
    expect(plain.body).not.toHaveProperty('revoked_keys');
    expect((await readOrg(before)).status).toBe(200);
    expect((await readOrg(key.key)).status).toBe(200);

    const r = await rotate({ revokeIssued: true });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ id: app.id, client_id: app.client_id, revoked_keys: 1 });
    expect(r.body.client_secret).not.toBe(plain.body.client_secret);
    // What the app was issued ends at once, on the management API and on message routes.
    expect(expectProblem(await readOrg(before), 401).detail).toMatch(/tokens were revoked/);
    expectProblem(await publish(before), 401);
    expectProblem(await readOrg(key.key), 401);
    expect((await api('GET', `/orgs/${org.id}/keys/${key.id}`, { token: owner.token })).body.revoked_at).toEqual(expect.any(Number));
    // The old secrets are dead; the new one issues tokens that work; the owner's own key is untouched.
    expectOAuthError(await tokenRequest({ grant_type: 'client_credentials' }, basic(app.client_id, plain.body.client_secret)), 401, 'invalid_client');
    const after = await appToken({ ...app, client_secret: r.body.client_secret });
    expect((await readOrg(after)).status).toBe(200);
    expect((await publish(after)).status).toBe(202);
    expect((await readOrg(ownersKey.key)).status).toBe(200);
    // Again: the tokens of the previous rotation end too, and nothing is left to revoke.
    const again = await rotate({ revokeIssued: true });
    expect(again.body).toMatchObject({ revoked_keys: 0 });
    expectProblem(await readOrg(after), 401);
    expect((await readOrg(await appToken({ ...app, client_secret: again.body.client_secret }))).status).toBe(200);
  });

  it("a token revoked by rotation is refused on message routes even right after the app's new token was allowed there (no shared cached decision)", async () => {
    const { owner, org } = await setup();
    const ch = (await api('POST', `/orgs/${org.id}/channels`, { token: owner.token, body: { name: 'c' } })).body as { id: string };
    const app = await newApp(owner.token, org.id, ['messages:publish', 'messages:subscribe', 'messages:read']);
    const old = await appToken(app);
    const r = await api('POST', `/orgs/${org.id}/apps/${app.id}/secret`, { token: owner.token, body: { revokeIssued: true } });
    expect(r.status).toBe(201);
    const fresh = await appToken({ ...app, client_secret: r.body.client_secret });
    const publish = (token: string) => api('POST', `/channels/${ch.id}/messages`, { token, raw: 'x', headers: { 'content-type': 'text/plain' } });
    const read = (token: string) => api('GET', `/channels/${ch.id}/messages`, { token });
    const upgrade = async (token: string) => {
      const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Bearer ${token}` } });
      expect(res.status).toBe(101);
      const ws = res.webSocket!;
      const first = new Promise<{ type: string; status?: number } | 'closed'>((resolve) => {
        ws.addEventListener('message', (e) => resolve(JSON.parse(e.data as string)));
        ws.addEventListener('close', () => resolve('closed'));
      });
      ws.accept();
      const frame = await Promise.race([first, new Promise<'silent'>((resolve) => setTimeout(() => resolve('silent'), 300))]);
      ws.close(1000);
      return frame;
    };
    expect((await publish(fresh)).status).toBe(202);
    expect(expectProblem(await publish(old), 401).detail).toMatch(/tokens were revoked/);
    expect((await read(fresh)).status).toBe(200);
    expectProblem(await read(old), 401);
    // The new token's upgrade is accepted (no error frame); the old one's, right after, is refused 401.
    expect(await upgrade(fresh)).not.toMatchObject({ type: 'error' });
    expect(await upgrade(old)).toMatchObject({ type: 'error', status: 401 });
  });

  it('rotating the secret takes an empty body as no options whatever its content type; a body it cannot read is still refused', async () => {
    const { owner, org } = await setup();
    const app = await newApp(owner.token, org.id, ['orgs:read']);
    const rotate = (raw: string | undefined, headers: Record<string, string> = {}) =>
      api('POST', `/orgs/${org.id}/apps/${app.id}/secret`, { token: owner.token, ...(raw === undefined ? {} : { raw }), headers });
    const token = await appToken(app);
    // Clients that always send the JSON header (or another) with no body: a plain rotation.
    for (const [raw, headers] of [
      ['', { 'content-type': 'application/json' }],
      ['', { 'content-type': 'text/plain' }],
      ['', {}],
      [undefined, { 'content-type': 'application/json' }],
      [undefined, {}],
      ['{}', { 'content-type': 'application/json' }],
    ] as const) {
      const r = await rotate(raw, headers);
      if (r.status !== 201) throw new Error(`${JSON.stringify([raw, headers])}: ${r.status} ${JSON.stringify(r.body)}`);
      expect(r.body).not.toHaveProperty('revoked_keys');
    }
    // None of them revoked what was issued.
    expect((await api('GET', `/orgs/${org.id}`, { token })).status).toBe(200);
    // A body that is there but is not a JSON object of the option: refused, nothing rotated.
    const before = await rotate('', { 'content-type': 'application/json' });
    expectProblem(await rotate('revoke', { 'content-type': 'text/plain' }), 415);
    expectProblem(await rotate('{"revokeIssued": true}', {}), 415);
    expectProblem(await rotate('{not json', { 'content-type': 'application/json' }), 400);
    expectProblem(await rotate('{"revokeIssued": 1}', { 'content-type': 'application/json' }), 422);
    expect((await appToken({ ...app, client_secret: before.body.client_secret })).length).toBeGreaterThan(0);
    expect((await api('GET', `/orgs/${org.id}`, { token })).status).toBe(200);
  });

  it('deleting an app makes its tokens and its keys 401 and its secret useless', async () => {
    const { owner, org } = await setup();
    const app = await newApp(owner.token, org.id, ['orgs:read', 'keys:create']);
    const token = await appToken(app);
    const key = await api('POST', `/orgs/${org.id}/keys`, { token, body: { name: 'k', scopes: ['orgs:read'] } });
    expect(key.status).toBe(201);
    expect(key.body).toMatchObject({ owner_type: 'app', owner_id: app.id });
    expect((await api('GET', `/orgs/${org.id}`, { token: key.body.key })).status).toBe(200);

    expect((await api('DELETE', `/orgs/${org.id}/apps/${app.id}`, { token: owner.token })).status).toBe(204);
    expectProblem(await api('GET', `/orgs/${org.id}`, { token }), 401);
    expectProblem(await api('GET', `/orgs/${org.id}`, { token: key.body.key }), 401);
    expectOAuthError(await tokenRequest({ grant_type: 'client_credentials' }, basic(app.client_id, app.client_secret)), 401, 'invalid_client');
    expect((await api('GET', `/orgs/${org.id}/keys/${key.body.id}`, { token: owner.token })).body.revoked_at).toEqual(expect.any(Number));
  });
});

describe('isolation', () => {
  it("another org's owner gets 404 on every app route", async () => {
    const a = await setup();
    const b = await setup();
    const app = await newApp(a.owner.token, a.org.id, ['orgs:read']);
    const bApp = await newApp(b.owner.token, b.org.id, ['orgs:read']);
    const t = b.owner.token;
    // An id from the other org is missing, whichever org the path names.
    expectProblem(await api('GET', `/orgs/${a.org.id}/apps/${bApp.id}`, { token: a.owner.token }), 404);
    expectProblem(await api('GET', `/orgs/${a.org.id}/apps`, { token: t }), 404);
    expectProblem(await api('POST', `/orgs/${a.org.id}/apps`, { token: t, body: { name: 'x', scopes: ['orgs:read'] } }), 404);
    for (const org of [a.org.id, b.org.id]) {
      expectProblem(await api('GET', `/orgs/${org}/apps/${app.id}`, { token: t }), 404);
      expectProblem(await api('PATCH', `/orgs/${org}/apps/${app.id}`, { token: t, body: { name: 'x' } }), 404);
      expectProblem(await api('POST', `/orgs/${org}/apps/${app.id}/secret`, { token: t }), 404);
      expectProblem(await api('DELETE', `/orgs/${org}/apps/${app.id}`, { token: t }), 404);
    }
    expect((await api('GET', `/orgs/${a.org.id}/apps/${app.id}`, { token: a.owner.token })).body.name).toBe('ingest');
  });

  it('a token narrowed to messages:read cannot publish, also after a full-scope token of the same app was allowed to (no shared cached decision)', async () => {
    const { owner, org } = await setup();
    const ch = (await api('POST', `/orgs/${org.id}/channels`, { token: owner.token, body: { name: 'c' } })).body as { id: string };
    const app = await newApp(owner.token, org.id, ['messages:publish', 'messages:read']);
    const full = await appToken(app);
    const readOnly = await appToken(app, 'messages:read');
    const publish = (token: string) => api('POST', `/channels/${ch.id}/messages`, { token, raw: 'x', headers: { 'content-type': 'text/plain' } });
    expectProblem(await publish(readOnly), 403);
    expect((await publish(full)).status).toBe(202);
    expectProblem(await publish(readOnly), 403);
    expect((await api('GET', `/channels/${ch.id}/messages`, { token: readOnly })).status).toBe(200);
  });
});
