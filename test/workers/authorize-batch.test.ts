import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AUTHORIZE_BATCH } from '../../shared/authorize';
import { buildApp } from '../../workers/app';
import type { Principal } from '../../workers/auth/principal';
import { decideMessageAccess, loadAccess } from '../../workers/iam/access';
import { MAX_AUTHORIZE_BODY } from '../../workers/internal/schemas';
import { ApiError } from '../../workers/lib/errors';
import { api, expectProblem, newOrg, newUser } from './helpers';

/**
 * /internal/authorize's batch form (`items`): what a bridge sends when many sessions ask at once
 * (after an access change every session of the org does). Its answers must be exactly the single
 * form's, and its D1 reads must not grow with it.
 */
const bridge = { authorization: `Bearer ${env.BRIDGE_SECRET}` };
const post = (path: string, body: unknown) => api('POST', path, { body, headers: bridge });

/** Each item asked alone (the single form, one request each), then all of them in one batch request. */
async function singlesAndBatch(items: readonly unknown[]) {
  const singles = [];
  for (const item of items) {
    const r = await post('/internal/authorize', item);
    expect(r.status).toBe(200);
    singles.push(r.body);
  }
  const batch = await post('/internal/authorize', { items });
  expect(batch.status).toBe(200);
  return { singles, batch };
}
type Check = { channel: string; action: 'messages:publish' | 'messages:subscribe' | 'messages:read' };
type Item = { principal: Record<string, unknown>; checks: Check[] };

const token = (t: string) => ({ token: t });

/** One org with every kind of principal and refusal the bridge can meet, through the real API. */
async function world() {
  const owner = await newUser();
  const org = await newOrg(owner.token);
  const o = (path: string) => `/orgs/${org.id}${path}`;
  const call = async (method: string, path: string, body?: unknown, t = owner.token) => {
    const r = await api(method, path, { ...token(t), ...(body !== undefined ? { body } : {}) });
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const [pub, sub, quiet] = (await Promise.all(['pub', 'sub', 'quiet'].map(async (name) => (await call('POST', o('/channels'), { name })).id as string))) as [string, string, string];
  const device = async (name: string) => {
    const d = await call('POST', o('/devices'), { name });
    const principal = (await post('/internal/authenticate', { username: d.id, password: d.key })).body.principal;
    return { id: d.id as string, principal };
  };
  const connected = await device('connected');
  await call('POST', o('/connections'), { channel_ids: [pub], device_ids: [connected.id], types: ['publish'] });
  await call('POST', o('/connections'), { channel_ids: [sub], device_ids: [connected.id], types: ['subscribe'] });
  const unconnected = await device('unconnected');
  const rotated = await device('rotated');
  await call('POST', o('/connections'), { channel_ids: [pub], device_ids: [rotated.id] });
  await call('POST', o(`/devices/${rotated.id}/key`));
  const deleted = await device('deleted');
  await call('DELETE', o(`/devices/${deleted.id}`));
  const denied = await device('denied');
  await call('POST', o('/connections'), { channel_ids: [pub, sub], device_ids: [denied.id] });
  const policy = await call('POST', o('/policies'), { name: 'no publishing', statements: [{ effect: 'deny', actions: ['messages:publish'], resources: [`channels/${pub}`] }] });
  await call('POST', o(`/policies/${policy.id}/attachments`), { principal_type: 'device', principal_id: denied.id });

  const apiKey = async (scopes: string[], t = owner.token, extra: Record<string, unknown> = {}) => {
    const k = await call('POST', o('/keys'), { name: 'k', scopes, ...extra }, t);
    return { id: k.id as string, principal: (await post('/internal/authenticate', { password: k.key })).body.principal };
  };
  const liveKey = await apiKey(['messages:*']);
  const revokedKey = await apiKey(['messages:*']);
  await call('DELETE', o(`/keys/${revokedKey.id}`));
  const expiredKey = await apiKey(['messages:*'], owner.token, { expires_in: 3600 });
  await env.DB.prepare('UPDATE api_keys SET expires_at = ? WHERE id = ?').bind(Date.now() - 1000, expiredKey.id).run();
  const narrowKey = await apiKey(['messages:subscribe']);
  const leaver = await newUser('leaver');
  await call('POST', o('/members'), { email: leaver.email, role: 'member' });
  const leaversKey = await apiKey(['messages:*'], leaver.token);
  await call('DELETE', o(`/members/${leaver.id}`)); // which revokes the key
  // A key whose owner's membership is gone but the key is not revoked: the API no longer leaves
  // this state (removing a member revokes their keys), so it is built directly.
  const dropped = await newUser('dropped');
  await call('POST', o('/members'), { email: dropped.email, role: 'member' });
  const droppedsKey = await apiKey(['messages:*'], dropped.token);
  await env.DB.prepare('DELETE FROM members WHERE org_id = ? AND user_id = ?').bind(org.id, dropped.id).run();
  const member = await newUser('member');
  await call('POST', o('/members'), { email: member.email, role: 'viewer' });

  const app = await call('POST', o('/apps'), { name: 'ingest', scopes: ['messages:publish'] });
  const goneApp = await call('POST', o('/apps'), { name: 'gone', scopes: ['messages:*'] });
  await call('DELETE', o(`/apps/${goneApp.id}`));
  // A key issued to an app (the API issues keys to users; the schema holds both).
  const appKey = crypto.randomUUID();
  await env.DB.prepare("INSERT INTO api_keys (id, org_id, name, owner_type, owner_id, scopes, created_at) VALUES (?, ?, 'app key', 'app', ?, '[\"messages:*\"]', ?)").bind(appKey, org.id, app.id, Date.now()).run();

  const other = await newOrg(owner.token, 'other');
  const foreign = (await call('POST', `/orgs/${other.id}/channels`, { name: 'theirs' })).id as string;
  const past = Math.floor(Date.now() / 1000) - 1;
  const principals: Record<string, Record<string, unknown>> = {
    connected: connected.principal,
    unstamped: { kind: 'device', id: connected.id, orgId: org.id }, // an older bridge's principal: not checked for rotation
    unconnected: unconnected.principal,
    rotated: rotated.principal,
    deleted: deleted.principal,
    denied: denied.principal,
    liveKey: liveKey.principal,
    revokedKey: revokedKey.principal,
    expiredKey: expiredKey.principal,
    narrowKey: narrowKey.principal,
    leaversKey: leaversKey.principal,
    droppedsKey: droppedsKey.principal,
    appKey: { kind: 'key', id: appKey, orgId: org.id, owner: { kind: 'app', id: app.id }, scopes: ['messages:publish'] },
    app: { kind: 'app', id: app.id, orgId: org.id, scopes: ['messages:publish'] },
    narrowApp: { kind: 'app', id: app.id, orgId: org.id, scopes: ['messages:read'] },
    goneApp: { kind: 'app', id: goneApp.id, orgId: org.id, scopes: ['messages:*'] },
    expiredApp: { kind: 'app', id: app.id, orgId: org.id, scopes: ['messages:publish'], exp: past },
    owner: { kind: 'user', id: owner.id, exp: past + 3600 },
    viewer: { kind: 'user', id: member.id },
    stranger: { kind: 'user', id: leaver.id },
    expiredUser: { kind: 'user', id: owner.id, exp: past },
    otherOrgsDevice: { kind: 'device', id: connected.id, orgId: other.id },
  };
  const channels = { pub, sub, quiet, foreign, missing: crypto.randomUUID() };
  return { org, principals, channels };
}

/** Every principal × every channel × publish and subscribe, and each with no checks too. */
function questions(w: Awaited<ReturnType<typeof world>>): Item[] {
  const checks: Check[] = Object.values(w.channels).flatMap((channel) => [
    { channel, action: 'messages:publish' as const },
    { channel, action: 'messages:subscribe' as const },
  ]);
  return Object.values(w.principals).flatMap((principal) => [{ principal, checks }, { principal, checks: [] }]);
}

/** A D1 binding that counts its round trips: each statement run alone, and each batch. */
function counting(db: D1Database) {
  const n = { trips: 0 };
  const real = new WeakMap<object, D1PreparedStatement>();
  const wrap = (s: D1PreparedStatement): D1PreparedStatement => {
    const w = {
      bind: (...v: unknown[]) => wrap(s.bind(...v)),
      first: (...a: [string?]) => (n.trips++, s.first(...(a as []))),
      all: () => (n.trips++, s.all()),
      run: () => (n.trips++, s.run()),
      raw: (...a: unknown[]) => (n.trips++, (s.raw as (...x: unknown[]) => unknown)(...a)),
    } as unknown as D1PreparedStatement;
    real.set(w, s);
    return w;
  };
  const counted = {
    prepare: (sql: string) => wrap(db.prepare(sql)),
    batch: (stmts: D1PreparedStatement[]) => (n.trips++, db.batch(stmts.map((s) => real.get(s) ?? s))),
    exec: (sql: string) => (n.trips++, db.exec(sql)),
  } as unknown as D1Database;
  return { db: counted, n };
}

describe('/internal/authorize in batches', () => {
  it('answers a batch exactly as it answers each principal alone: every kind of principal and refusal, in one request', async () => {
    const w = await world();
    const { singles, batch } = await singlesAndBatch(questions(w));
    expect(batch.body.items).toEqual(singles);

    // And the answers are the ones the rules give (not, say, all alike): a few spelled out.
    const { pub, sub, quiet, foreign, missing } = w.channels;
    const answer = (who: string) => batch.body.items[Object.keys(w.principals).indexOf(who) * 2] as { results: { channel: string; action: string; allowed: boolean; status: number; reason?: string }[]; refused?: unknown };
    const of = (who: string, channel: string, action: string) => answer(who).results.find((r) => r.channel === channel && r.action === `messages:${action}`);
    expect(of('connected', pub, 'publish')).toMatchObject({ allowed: true, status: 200 });
    expect(of('connected', pub, 'subscribe')).toMatchObject({ allowed: false, status: 403 });
    expect(of('connected', sub, 'subscribe')).toMatchObject({ allowed: true, status: 200 });
    expect(of('connected', quiet, 'publish')).toMatchObject({ allowed: false, status: 403 });
    expect(of('connected', foreign, 'publish')).toEqual({ channel: foreign, action: 'messages:publish', allowed: false, status: 404, reason: 'channel not found' });
    expect(of('connected', missing, 'publish')).toEqual({ channel: missing, action: 'messages:publish', allowed: false, status: 404, reason: 'channel not found' });
    expect(of('unstamped', pub, 'publish')).toMatchObject({ allowed: true });
    expect(of('unconnected', pub, 'publish')).toMatchObject({ allowed: false, status: 403 });
    expect(answer('rotated').refused).toEqual({ status: 401, reason: 'the device key was rotated' });
    expect(answer('deleted').refused).toEqual({ status: 401, reason: 'the device was deleted' });
    expect(of('denied', pub, 'publish')).toMatchObject({ allowed: false, status: 403, reason: expect.stringContaining('denied by policy') });
    expect(of('denied', sub, 'subscribe')).toMatchObject({ allowed: true });
    expect(of('liveKey', quiet, 'subscribe')).toMatchObject({ allowed: true });
    expect(of('liveKey', foreign, 'subscribe')).toMatchObject({ allowed: false, status: 404 });
    expect(answer('revokedKey').refused).toEqual({ status: 401, reason: 'the API key was revoked or has expired' });
    expect(answer('expiredKey').refused).toEqual({ status: 401, reason: 'the API key was revoked or has expired' });
    expect(of('narrowKey', pub, 'publish')).toMatchObject({ allowed: false, status: 403, reason: expect.stringContaining('outside the credential') });
    expect(of('narrowKey', pub, 'subscribe')).toMatchObject({ allowed: true });
    expect(answer('leaversKey').refused).toEqual({ status: 401, reason: 'the API key was revoked or has expired' }); // removed through the API
    expect(of('droppedsKey', pub, 'publish')).toMatchObject({ allowed: false, status: 401, reason: 'the owner of this API key is no longer a member of its org' });
    expect(answer('droppedsKey').refused).toBeUndefined(); // the key itself is good: each channel's answer says why
    expect(of('appKey', pub, 'publish')).toMatchObject({ allowed: true });
    expect(of('app', pub, 'publish')).toMatchObject({ allowed: true });
    expect(of('app', pub, 'subscribe')).toMatchObject({ allowed: false, status: 403 });
    expect(of('narrowApp', pub, 'publish')).toMatchObject({ allowed: false, status: 403 });
    expect(of('goneApp', pub, 'publish')).toMatchObject({ allowed: false, status: 401, reason: 'app no longer exists' });
    expect(answer('expiredApp').refused).toEqual({ status: 401, reason: 'the access token expired' });
    expect(of('owner', quiet, 'publish')).toMatchObject({ allowed: true });
    expect(of('owner', foreign, 'publish')).toMatchObject({ allowed: true }); // the owner's other org
    expect(of('viewer', pub, 'publish')).toMatchObject({ allowed: false, status: 403 });
    expect(of('viewer', pub, 'subscribe')).toMatchObject({ allowed: true });
    expect(of('stranger', pub, 'subscribe')).toMatchObject({ allowed: false, status: 404 });
    expect(answer('expiredUser').refused).toEqual({ status: 401, reason: 'the access token expired' });
    expect(of('otherOrgsDevice', pub, 'publish')).toMatchObject({ allowed: false, status: 404 });
  });

  it('reads D1 in one round trip per batch, whatever its size (the single form too)', async () => {
    const w = await world();
    const all = questions(w);
    const app = buildApp();
    const ask = async (body: unknown) => {
      const { db, n } = counting(env.DB);
      const res = await app.request('/internal/authorize', { method: 'POST', headers: { ...bridge, 'content-type': 'application/json' }, body: JSON.stringify(body) }, Object.assign(Object.create(env), { DB: db }));
      expect(res.status).toBe(200);
      return n.trips;
    };
    const withChecks = all.filter((i) => i.checks.length > 0);
    expect(await ask(withChecks[0])).toBe(1);
    expect(await ask({ items: withChecks.slice(0, 1) })).toBe(1);
    expect(await ask({ items: all.slice(0, 10) })).toBe(1);
    // The largest batch allowed: 100 principals (the world's, over and over) and 1000 checks.
    const big: Item[] = Array.from({ length: AUTHORIZE_BATCH.items }, (_, i) => ({ principal: all[(2 * i) % all.length]!.principal, checks: withChecks[0]!.checks }));
    expect(big.reduce((n, i) => n + i.checks.length, 0)).toBe(AUTHORIZE_BATCH.checks);
    expect(await ask({ items: big })).toBe(1);
  });

  it('tells a device, key or app asking about another org "not found" without reading D1; a user, after reading its memberships', async () => {
    const w = await world();
    const other = (await newOrg((await newUser()).token, 'elsewhere')).id;
    const notFoundAfter = async (p: Record<string, unknown>, org: string) => {
      const { db, n } = counting(env.DB);
      const e = await loadAccess(db, p as unknown as Principal, org).then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(ApiError);
      expect((e as ApiError).status).toBe(404);
      return n.trips;
    };
    for (const who of ['connected', 'liveKey', 'appKey', 'app'] as const) expect({ who, trips: await notFoundAfter(w.principals[who]!, other) }).toEqual({ who, trips: 0 });
    expect(await notFoundAfter(w.principals.viewer!, other)).toBe(1);
    // In its own org the same device is read for, and allowed in.
    const { db, n } = counting(env.DB);
    expect((await loadAccess(db, w.principals.connected as unknown as Principal, w.org.id)).orgId).toBe(w.org.id);
    expect(n.trips).toBe(1);
  });

  it('refuses a batch past its bound, or malformed, with 422 problem JSON', async () => {
    const w = await world();
    const item = { principal: w.principals.connected, checks: [{ channel: w.channels.pub, action: 'messages:publish' }] };
    // Each names what is wrong in the form it came closest to, not a bare "Invalid input".
    const refused = async (body: unknown) => expectProblem(await post('/internal/authorize', body), 422);
    expect(await refused({ items: Array(AUTHORIZE_BATCH.items + 1).fill(item) })).toMatchObject({ code: 'validation_failed', detail: expect.stringMatching(/^invalid body: items: .*100/) });
    const tenChecks = { ...item, checks: Array(10).fill(item.checks[0]) };
    expect((await post('/internal/authorize', { items: Array(AUTHORIZE_BATCH.checks / 10).fill(tenChecks) })).status).toBe(200);
    expect((await refused({ items: [...Array(AUTHORIZE_BATCH.checks / 10 - 1).fill(tenChecks), { ...item, checks: Array(11).fill(item.checks[0]) }] })).detail).toBe('invalid body: items: a batch holds at most 1000 checks in all');
    expect((await refused({ items: [] })).detail).toMatch(/^invalid body: items: /);
    expect((await refused({ items: [{ principal: { kind: 'robot', id: 'x' }, checks: [] }] })).detail).toMatch(/^invalid body: items\.0\.principal/);
    expect((await refused({ items: [item, { ...item, checks: [{ channel: '', action: 'messages:publish' }] }] })).detail).toMatch(/^invalid body: items\.1\.checks\.0\.channel: /);
    // A batch is told about its items however many are bad (not about the single form's missing keys).
    const twoBad = await refused({ items: [{ ...item, checks: [{ channel: '', action: 'messages:publish' }] }, { principal: { kind: 'device', id: 'd' }, checks: [] }] });
    expect(twoBad.detail).toMatch(/^invalid body: items\.0\.checks\.0\.channel: /);
    expect((twoBad.errors as { path: string }[]).map((e) => e.path)).toEqual(['items.0.checks.0.channel', 'items.1.principal.orgId']);
    // The single form's errors are as specific as before batches.
    expect((await refused({ principal: { kind: 'device', id: 'd' }, checks: [] })).detail).toMatch(/^invalid body: principal\.orgId: /);
    expect((await refused({ principal: { kind: 'device', id: 'd', orgId: 'o' }, checks: [{ channel: '', action: 'messages:publish' }, { channel: 'c', action: 'messages:delete' }] })).errors).toEqual([
      { path: 'checks.0.channel', message: expect.any(String) },
      { path: 'checks.1.action', message: expect.any(String) },
    ]);
    // A body of neither form is told what the single form (the older one) lacks.
    expect((await refused({})).errors).toEqual([
      { path: 'principal', message: expect.any(String) },
      { path: 'checks', message: expect.any(String) },
    ]);
    expectProblem(await api('POST', '/internal/authorize', { body: { items: [item] } }), 401);
  });

  it('bounds every string it takes as the API that made it does, and its body before reading it', async () => {
    const w = await world();
    const device = w.principals.connected as { kind: 'device'; id: string; orgId: string; keyStamp: string };
    const ask = (principal: unknown, channel: string) => ({ principal, checks: [{ channel, action: 'messages:publish' }] });
    const refused = async (body: unknown) => (await expectProblem(await post('/internal/authorize', body), 422)).errors as { path: string; message: string }[];
    // Channel ids as every protocol takes them (shared/topics.ts): at most 128 characters, URL-safe.
    expect((await post('/internal/authorize', ask(device, 'c'.repeat(128)))).body.results[0]).toMatchObject({ allowed: false, status: 404 });
    expect(await refused(ask(device, 'c'.repeat(129)))).toEqual([{ path: 'checks.0.channel', message: 'channel id is longer than 128 characters' }]);
    expect(await refused({ items: [ask(device, w.channels.pub), ask(device, `${w.channels.pub}\u0000`)] })).toEqual([{ path: 'items.1.checks.0.channel', message: expect.stringMatching(/may only contain/) }]);
    // Ids: at most as long as a policy attachment's principal id, no control characters; scopes as keys and apps take them; key stamps hex.
    expect((await refused(ask({ ...device, id: 'd'.repeat(201) }, w.channels.pub)))[0]!.path).toBe('principal.id');
    expect((await refused(ask({ ...device, orgId: `${device.orgId}\n` }, w.channels.pub)))[0]).toEqual({ path: 'principal.orgId', message: 'an id has no control characters' });
    expect((await refused(ask({ ...device, id: '' }, w.channels.pub)))[0]!.path).toBe('principal.id');
    expect((await refused(ask({ ...device, keyStamp: '' }, w.channels.pub)))[0]!.path).toBe('principal.keyStamp'); // '' would match any key
    expect((await refused(ask({ ...device, keyStamp: 'f'.repeat(65) }, w.channels.pub)))[0]!.path).toBe('principal.keyStamp');
    const key = w.principals.liveKey as { scopes: string[] };
    expect((await refused(ask({ ...key, scopes: ['s'.repeat(301)] }, w.channels.pub)))[0]!.path).toBe('principal.scopes.0');
    expect((await refused(ask({ ...key, scopes: Array(51).fill('messages:*') }, w.channels.pub)))[0]!.path).toBe('principal.scopes');
    expect((await refused(ask({ kind: 'key', id: 'k', orgId: 'o', owner: { kind: 'user', id: 'u'.repeat(201) }, scopes: [] }, w.channels.pub)))[0]!.path).toBe('principal.owner.id');

    // The largest batch its schema takes is under the body limit, and answered.
    const id = (c: string) => c.repeat(200);
    const largest = {
      items: Array.from({ length: AUTHORIZE_BATCH.items }, (_, i) => ({
        principal: { kind: 'key', id: id('k'), orgId: id('o'), owner: { kind: 'user', id: id('u') }, scopes: Array(50).fill('s'.repeat(300)), exp: 2 ** 40 },
        checks: Array.from({ length: AUTHORIZE_BATCH.checks / AUTHORIZE_BATCH.items }, (_, j) => ({ channel: `${i}-${j}-`.padEnd(128, 'c'), action: 'messages:subscribe' })),
      })),
    };
    expect(JSON.stringify(largest).length).toBeLessThan(MAX_AUTHORIZE_BODY);
    const answered = await post('/internal/authorize', largest);
    expect(answered.status).toBe(200);
    expect(answered.body.items[99].refused).toEqual({ status: 401, reason: 'the API key was revoked or has expired' });
    // Past the limit: 413 problem JSON, before the body is parsed (a valid batch with padding).
    const over = { ...largest, padding: 'x'.repeat(MAX_AUTHORIZE_BODY) };
    expect(await expectProblem(await post('/internal/authorize', over), 413)).toMatchObject({ code: 'payload_too_large' });
  });
});

/**
 * Policy denies on message decisions, one per place a policy is attached: a member (a user of two
 * orgs, the deny in one only), an API key, the user owning a key (applies to the key), an app (to
 * its token and to a key it owns). Each principal is also asked about a channel the deny does not
 * name, which must stay allowed: a test that passes because everything is refused proves nothing.
 */
async function policyWorld() {
  const owner = await newUser('owner');
  const [a, b] = [await newOrg(owner.token, 'a'), await newOrg(owner.token, 'b')];
  const call = async (method: string, path: string, body?: unknown, t = owner.token) => {
    const r = await api(method, path, { token: t, ...(body !== undefined ? { body } : {}) });
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const channel = async (org: string, name: string) => (await call('POST', `/orgs/${org}/channels`, { name })).id as string;
  const [a1, a2, b1] = [await channel(a.id, 'a1'), await channel(a.id, 'a2'), await channel(b.id, 'b1')];
  const deny = async (org: string, resources: string[], principal_type: string, principal_id: string, action = 'messages:publish') => {
    const policy = await call('POST', `/orgs/${org}/policies`, { name: `deny ${principal_type}`, statements: [{ effect: 'deny', actions: [action], resources }] });
    await call('POST', `/orgs/${org}/policies/${policy.id}/attachments`, { principal_type, principal_id });
  };
  const authenticated = async (key: string) => (await post('/internal/authenticate', { password: key })).body.principal as Record<string, unknown>;

  // A member of both orgs, denied publishing on every channel of `a` (`channels/*`: were the deny read
  // in `b` too, it would match there).
  const member = await newUser('member');
  for (const org of [a, b]) await call('POST', `/orgs/${org.id}/members`, { email: member.email, role: 'member' });
  await deny(a.id, ['channels/*'], 'member', member.id);
  // Its key in `a`: the owner's deny applies to the key.
  const membersKey = await call('POST', `/orgs/${a.id}/keys`, { name: 'members', scopes: ['messages:*'] }, member.token);
  // A key of the org's owner (no deny of its own owner), denied publishing on a1 itself.
  const deniedKey = await call('POST', `/orgs/${a.id}/keys`, { name: 'denied', scopes: ['messages:*'] });
  await deny(a.id, [`channels/${a1}`], 'key', deniedKey.id);
  // An app denied publishing on a1 and, by a second policy, subscribing on a2 (both must count): its
  // token and a key it owns (the API issues keys to users; the schema holds both).
  const app = await call('POST', `/orgs/${a.id}/apps`, { name: 'ingest', scopes: ['messages:*'] });
  await deny(a.id, [`channels/${a1}`], 'app', app.id);
  await deny(a.id, [`channels/${a2}`], 'app', app.id, 'messages:subscribe');
  const appKey = crypto.randomUUID();
  await env.DB.prepare("INSERT INTO api_keys (id, org_id, name, owner_type, owner_id, scopes, created_at) VALUES (?, ?, 'app key', 'app', ?, '[\"messages:*\"]', ?)").bind(appKey, a.id, app.id, Date.now()).run();

  const principals: Record<string, Record<string, unknown>> = {
    member: { kind: 'user', id: member.id },
    membersKey: await authenticated(membersKey.key),
    deniedKey: await authenticated(deniedKey.key),
    app: { kind: 'app', id: app.id, orgId: a.id, scopes: ['messages:*'] },
    appKey: { kind: 'key', id: appKey, orgId: a.id, owner: { kind: 'app', id: app.id }, scopes: ['messages:*'] },
  };
  // [who, channel, action, allowed]
  const expected: [string, string, Check['action'], boolean][] = [
    ['member', a1, 'messages:publish', false],
    ['member', a2, 'messages:publish', false],
    ['member', a1, 'messages:subscribe', true],
    ['member', b1, 'messages:publish', true], // the other org: no deny there
    ['membersKey', a1, 'messages:publish', false],
    ['membersKey', a2, 'messages:publish', false],
    ['membersKey', a1, 'messages:subscribe', true],
    ['deniedKey', a1, 'messages:publish', false],
    ['deniedKey', a2, 'messages:publish', true],
    ['app', a1, 'messages:publish', false],
    ['app', a2, 'messages:subscribe', false],
    ['app', a2, 'messages:publish', true],
    ['appKey', a1, 'messages:publish', false],
    ['appKey', a2, 'messages:subscribe', false],
    ['appKey', a2, 'messages:publish', true],
  ];
  const names: Record<string, string> = { [a1]: 'a1', [a2]: 'a2', [b1]: 'b1' };
  return { principals, expected, names };
}

describe('policy denies on message decisions', () => {
  const verdict = (d: { allowed: boolean; status: number; reason?: string }) => (d.allowed ? { allowed: true, status: 200 } : { allowed: false, status: d.status, denied: /denied by policy/.test(d.reason ?? '') });
  const want = (allowed: boolean) => (allowed ? { allowed: true, status: 200 } : { allowed: false, status: 403, denied: true });

  it('are applied by /internal/authorize, single and batch, and by the channel actors\' re-checks', async () => {
    const { principals, expected, names } = await policyWorld();
    const wanted = expected.map(([, , , allowed]) => want(allowed));
    const label = expected.map(([who, channel, action]) => `${who} ${action} ${names[channel]}`);
    const items: Item[] = Object.entries(principals).map(([who, principal]) => ({ principal, checks: expected.filter(([w]) => w === who).map(([, channel, action]) => ({ channel, action })) }));
    const inOrder = (answers: { results: { channel: string; action: string; allowed: boolean; status: number; reason?: string }[] }[]) =>
      Object.fromEntries(answers.flatMap((a) => a.results).map((d, i) => [label[i], verdict(d)]));
    const expectedByLabel = Object.fromEntries(label.map((l, i) => [l, wanted[i]]));

    // The single form, one principal at a time; the batch form, every principal in one request (the member's checks span both its orgs).
    const { singles, batch } = await singlesAndBatch(items);
    // A channel actor re-checking a live subscriber (objects/channel/access.ts): decideMessageAccess.
    const actor: Record<string, unknown> = {};
    for (const [who, channel, action] of expected) actor[`${who} ${action} ${names[channel]}`] = verdict(await decideMessageAccess(env.DB, principals[who] as unknown as Principal, channel, action));
    // All three compared at once: a failure shows which paths lost which deny.
    expect({ single: inOrder(singles), batch: inOrder(batch.body.items), actor }).toEqual({ single: expectedByLabel, batch: expectedByLabel, actor: expectedByLabel });
  });
});
