import { runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { Edgeflux, EdgefluxError, payloadBytes, type Message, type Tokens } from '../../sdk';
import { signToken } from '../../workers/auth/tokens';
import { uniqueEmail, checkedFetch } from './helpers';

/** The SDK against the real worker in workerd: every resource group, through its public API only. */
const URL_ = 'http://edgeflux.test';
const client = (opts: Partial<ConstructorParameters<typeof Edgeflux>[0]> = {}) => new Edgeflux({ url: URL_, fetch: (r) => checkedFetch(r), ...opts });
const drain = (channel: string) => runDurableObjectAlarm(env.CHANNELS.get(env.CHANNELS.idFromName(channel)));

/** Resolves with what the promise rejected with (an EdgefluxError is expected). */
async function failure(p: Promise<unknown>): Promise<EdgefluxError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof EdgefluxError)) throw new Error(`expected an EdgefluxError, got ${String(e)}`);
  return e;
}

let ef: Edgeflux;
let email: string;
let org: string;
const password = 'correct horse battery';
const saved: Tokens[] = [];

beforeAll(async () => {
  ef = client({ onTokens: (t) => saved.push(t) });
  email = uniqueEmail('sdk');
  await ef.users.create({ email, password });
  await ef.login(email, password);
  org = (await ef.orgs.create('sdk-org')).id;
});

describe('SDK: users and tokens', () => {
  it('registers, logs in, reports tokens, shows the profile and refreshes the session', async () => {
    expect(saved).toHaveLength(1);
    const me = await ef.users.me();
    expect(me).toMatchObject({ email, orgs: [{ id: org, role: 'owner' }] });
    expect(await ef.refresh()).toBe(saved[1]?.access_token);
    expect(saved).toHaveLength(2);
    // the refresh token rotates: the first one is spent
    expect(saved[1]!.refresh_token).not.toBe(saved[0]!.refresh_token);
    expect((await failure(ef.tokens.refresh(saved[0]!.refresh_token))).status).toBe(401);
  });

  it('refreshes on its own when the access token is refused, then retries the request', async () => {
    const t = await client().tokens.create(email, password);
    const c = client({ token: 'not-a-jwt', refreshToken: t.refresh_token });
    expect((await c.users.me()).email).toBe(email);
    expect(c.token).not.toBe('not-a-jwt');
  });

  it('holders of one session that share a store (tabs, CLI runs) never refresh with a spent token: the session lives on', async () => {
    const first = await client().tokens.create(email, password);
    // One store, as localStorage is for the console's tabs or the config file for CLI runs.
    let store = { access_token: first.access_token, refresh_token: first.refresh_token };
    const holder = () =>
      client({ token: first.access_token, refreshToken: first.refresh_token, onTokens: (t) => (store = { access_token: t.access_token, refresh_token: t.refresh_token }), currentTokens: () => store });
    const a = holder();
    await a.refresh(); // tab A refreshes: its pair is stored, the first refresh token is spent
    expect(store.refresh_token).not.toBe(first.refresh_token);
    // Much later (past the server's leeway), tab B's access token is refused: it must not present the spent token.
    await env.DB.prepare('UPDATE refresh_tokens SET used_at = used_at - 60000 WHERE used_at IS NOT NULL').run();
    const bStale = client({ token: 'expired', refreshToken: first.refresh_token, currentTokens: () => store });
    expect((await bStale.users.me()).email).toBe(email);
    expect(bStale.token).toBe(store.access_token);
    // The session is whole: A's refresh token still works.
    expect((await a.users.me()).email).toBe(email);
    await a.refresh();
    // Both refresh at once with the same token (two tabs): one wins, the other takes its pair, nothing is revoked.
    const [c, d] = [holder(), holder()].map((h) => (h.useTokens(store), h));
    await Promise.all([c!.refresh(), d!.refresh()]);
    expect(c!.token).toBe(d!.token);
    expect((await d!.users.me()).email).toBe(email);
    // Without a shared store, the stale holder's refresh looks like theft and ends the session (docs/auth.md).
    const lone = client({ token: 'expired', refreshToken: first.refresh_token });
    expect((await failure(lone.users.me())).status).toBe(401);
    expect((await failure(client().tokens.refresh(store.refresh_token))).detail).toMatch(/revoked|invalid/);
  });

  it('fails with the API problem: status, code and detail', async () => {
    const e = await failure(client().users.create({ email, password }));
    expect(e).toMatchObject({ status: 409, code: expect.any(String) });
    expect(e.detail).toMatch(/already/i);
    expect(e.problem.type).toMatch(/^https:\/\//);
    const short = await failure(client().users.create({ email: uniqueEmail(), password: 'x' }));
    expect(short.status).toBe(422);
    expect(await failure(client({ token: 'junk' }).users.me())).toMatchObject({ status: 401 });
  });

  it('changes the password and logs out', async () => {
    const c = client();
    const e2 = uniqueEmail('pw');
    await c.users.create({ email: e2, password });
    const t = await c.login(e2, password);
    await c.users.changePassword(password, 'a new correct horse');
    expect((await failure(client().tokens.create(e2, password))).status).toBe(401);
    const c2 = client();
    await c2.login(e2, 'a new correct horse');
    await c2.logout();
    expect(c2.token).toBeUndefined();
    expect((await failure(client().tokens.refresh(t.refresh_token))).status).toBe(401);
  });
});

describe('SDK: orgs and members', () => {
  it('creates, lists, renames and deletes orgs; adds, re-roles and removes members', async () => {
    const o = await ef.orgs.create('temp-org');
    expect((await ef.orgs.list({ limit: 100 })).items.map((x) => x.id)).toContain(o.id);
    expect((await ef.orgs.rename(o.id, 'renamed')).name).toBe('renamed');
    expect((await ef.org(o.id).get()).name).toBe('renamed');
    const other = client();
    const e2 = uniqueEmail('member');
    const u2 = await other.users.create({ email: e2, password });
    const m = await ef.org(o.id).members.add({ email: e2, role: 'viewer' });
    expect(m).toMatchObject({ user_id: u2.id, role: 'viewer' });
    await ef.org(o.id).members.setRole(u2.id, 'admin');
    expect((await ef.org(o.id).members.list()).items.find((x) => x.user_id === u2.id)?.role).toBe('admin');
    await ef.org(o.id).members.remove(u2.id);
    expect((await ef.org(o.id).members.list()).total).toBe(1);
    await ef.orgs.delete(o.id);
    expect((await failure(ef.orgs.get(o.id))).status).toBe(404);
  });
});

describe('SDK: devices, channels, connections', () => {
  it('manages devices: create (key once), bulk, filter by metadata, update, rotate key, delete', async () => {
    const o = ef.org(org);
    const d = await o.devices.create({ name: 'thermo', metadata: { room: 'lab' } });
    expect(d.key).toMatch(/\S{20,}/);
    const many = await o.devices.createMany([{ name: 'a', metadata: { room: 'hall' } }, { name: 'b' }]);
    expect(many.map((x) => x.name)).toEqual(['a', 'b']);
    expect((await o.devices.list({ metadata: { room: 'lab' } })).items.map((x) => x.id)).toEqual([d.id]);
    expect((await o.devices.list({ name: 'THER' })).items.map((x) => x.id)).toEqual([d.id]);
    expect((await o.devices.update(d.id, { name: 'thermo-2' })).name).toBe('thermo-2');
    expect(await o.devices.get(d.id)).not.toHaveProperty('key');
    const rotated = await o.devices.rotateKey(d.id);
    expect(rotated.key).not.toBe(d.key);
    await o.devices.delete(many[1]!.id);
    expect((await failure(o.devices.get(many[1]!.id))).code).toBe('not_found');
  });

  it('manages channels and their limits, connects and disconnects devices', async () => {
    const o = ef.org(org);
    const ch = await o.channels.create({ name: 'telemetry', metadata: { kind: 't' } });
    const [c2] = await o.channels.createMany([{ name: 'second' }]);
    expect((await o.channels.list({ metadata: { kind: 't' } })).items.map((x) => x.id)).toEqual([ch.id]);
    expect((await o.channels.update(ch.id, { metadata: { kind: 'u' } })).metadata).toEqual({ kind: 'u' });
    expect((await o.channels.setLimits(ch.id, { maxPayloadBytes: 4096 })).maxPayloadBytes).toBe(4096);
    expect((await o.channels.limits(ch.id)).maxPayloadBytes).toBe(4096);
    const d = await o.devices.create({ name: 'conn' });
    const conns = await o.connections.connect({ channel_ids: [ch.id, c2!.id], device_ids: [d.id], types: ['publish'] });
    expect(conns).toHaveLength(2);
    expect((await o.channels.devices(ch.id)).items).toMatchObject([{ id: d.id, types: ['publish'] }]);
    expect((await o.connections.put(ch.id, d.id, ['publish', 'subscribe'])).types.sort()).toEqual(['publish', 'subscribe']);
    await o.connections.remove(c2!.id, d.id);
    expect((await o.devices.channels(d.id)).items.map((x) => x.id)).toEqual([ch.id]);
    await o.connections.disconnect({ channel_ids: [ch.id], device_ids: [d.id] });
    expect((await o.devices.channels(d.id)).total).toBe(0);
    await o.channels.delete(c2!.id);
    expect((await failure(o.channels.get(c2!.id))).status).toBe(404);
  });
});

describe('SDK: apps, keys, policies', () => {
  it('registers an app and acts as it with client credentials', async () => {
    const o = ef.org(org);
    const app = await o.apps.create({ name: 'dash', scopes: ['devices:read'] });
    const asApp = client();
    const tok = await asApp.appLogin(app.client_id, app.client_secret);
    expect(tok.scope).toBe('devices:read');
    expect((await asApp.org(org).devices.list()).total).toBeGreaterThan(0);
    expect((await failure(asApp.org(org).channels.create({ name: 'nope' }))).status).toBe(403);
    expect((await o.apps.update(app.id, { name: 'dash2' })).name).toBe('dash2');
    const rotated = await o.apps.rotateSecret(app.id);
    expect(rotated).not.toHaveProperty('revoked_keys');
    const bad = await failure(client().appLogin(app.client_id, app.client_secret));
    expect(bad).toMatchObject({ status: 401, code: 'invalid_client' });
    // Its token goes on after a plain rotation…
    expect((await asApp.org(org).devices.list()).total).toBeGreaterThan(0);
    const asRotated = client();
    await asRotated.appLogin(rotated.client_id, rotated.client_secret);
    // …and ends with revokeIssued (asApp's renewal with its old secret fails too).
    const revoked = await o.apps.rotateSecret(app.id, { revokeIssued: true });
    expect(revoked).toMatchObject({ id: app.id, revoked_keys: 0, client_secret: expect.any(String) });
    expect((await failure(asRotated.org(org).devices.list())).status).toBe(401);
    expect((await failure(asApp.org(org).devices.list())).status).toBe(401);
    await client().appLogin(revoked.client_id, revoked.client_secret);
    expect((await o.apps.list()).items.map((a) => a.id)).toContain(app.id);
    expect((await o.apps.list({ name: 'DASH2' })).items.map((a) => a.id)).toEqual([app.id]);
    expect((await o.apps.list({ name: 'nothing-like-it' })).total).toBe(0);
    await o.apps.delete(app.id);
    expect((await failure(o.apps.get(app.id))).status).toBe(404);
  });

  it('issues, uses, lists and revokes API keys', async () => {
    const o = ef.org(org);
    const k = await o.keys.issue({ name: 'ro', scopes: ['devices:read'], expires_in: 3600 });
    const asKey = client({ token: k.key });
    await asKey.org(org).devices.list();
    expect((await o.keys.list()).items.map((x) => x.id)).toContain(k.id);
    expect((await o.keys.list({ name: 'RO' })).items.map((x) => x.id)).toEqual([k.id]);
    expect((await o.keys.list({ name: 'nothing-like-it' })).total).toBe(0);
    expect((await o.keys.get(k.id)).revoked_at).toBeNull();
    await o.keys.revoke(k.id);
    expect((await failure(asKey.org(org).devices.list())).status).toBe(401);
  });

  it('creates, attaches, lists, detaches, updates and deletes policies', async () => {
    const o = ef.org(org);
    const p = await o.policies.create({ name: 'no-delete', statements: [{ effect: 'deny', actions: ['devices:delete'], resources: ['devices/*'] }] });
    const d = await o.devices.create({ name: 'p' });
    await o.policies.attach(p.id, { principal_type: 'device', principal_id: d.id });
    expect((await o.policies.attachments(p.id)).items).toMatchObject([{ principal_type: 'device', principal_id: d.id }]);
    await o.policies.detach(p.id, 'device', d.id);
    expect((await o.policies.attachments(p.id)).total).toBe(0);
    expect((await o.policies.update(p.id, { name: 'renamed' })).name).toBe('renamed');
    expect((await o.policies.list()).items.map((x) => x.id)).toContain(p.id);
    expect((await failure(o.policies.create({ name: 'typo', statements: [{ effect: 'allow', actions: ['devices:typo'], resources: ['*'] }] }))).status).toBe(422);
    await o.policies.delete(p.id);
    expect((await failure(o.policies.get(p.id))).status).toBe(404);
  });
});

describe('SDK: messages', () => {
  it('publishes as a device, subscribes over WebSocket in workerd, queries, aggregates and exports CSV', async () => {
    const o = ef.org(org);
    const ch = await o.channels.create({ name: 'msgs' });
    const d = await o.devices.create({ name: 'sensor' });
    await o.connections.connect({ channel_ids: [ch.id], device_ids: [d.id] });
    const asDevice = client({ deviceKey: d.key });

    const got: Message[] = [];
    const sub = ef.subscribe(ch.id, { subtopic: 'lab/#', onMessage: (m) => got.push(m) });
    await sub.opened;
    const first = await asDevice.publish(ch.id, [{ bn: 'sensor/', n: 'temp', u: 'Cel', v: 20 }], { subtopic: 'lab/temp', contentType: 'application/senml+json' });
    await asDevice.publish(ch.id, [{ bn: 'sensor/', n: 'temp', u: 'Cel', v: 24 }], { subtopic: 'lab/temp', contentType: 'application/senml+json' });
    await asDevice.publish(ch.id, new Uint8Array([0, 1, 255]), { subtopic: 'lab/bin' });
    await asDevice.publish(ch.id, 'elsewhere', { subtopic: 'office' });
    const viaSocket = await sub.publish({ cmd: 'reboot' }, { subtopic: 'lab/cmd' });
    expect(viaSocket.seq).toBe(first.seq + 4);
    for (let i = 0; i < 50 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    sub.close();
    await sub.closed;
    expect(got.map((m) => m.seq)).toEqual([first.seq, first.seq + 1, first.seq + 2, first.seq + 4]);
    expect(got[0]).toMatchObject({ channel: ch.id, subtopic: 'lab/temp', publisher: d.id, protocol: 'http' });
    expect([...payloadBytes(got[2]!)]).toEqual([0, 1, 255]);
    expect(sub.lastSeq).toBe(first.seq + 4);

    expect(await drain(ch.id)).toBe(true);
    const page = await ef.query(ch.id, { order: 'asc' });
    expect(page.items.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await ef.query(ch.id, { subtopic: 'lab/#', protocol: 'ws' })).items.map((m) => m.seq)).toEqual([5]);
    // Pages by cursor: queryAll follows `next` (two items a page here) and never counts a total.
    const small = await ef.query(ch.id, { limit: 2, total: false });
    expect(small).toMatchObject({ next: expect.any(String) });
    expect(small.total).toBeUndefined();
    expect((await ef.query(ch.id, { limit: 2, cursor: small.next! })).items.map((m) => m.seq)).toEqual([3, 2]);
    const walked: number[] = [];
    for await (const m of ef.queryAll(ch.id, { limit: 2, order: 'asc', offset: 1 })) walked.push(m.seq);
    expect(walked).toEqual([2, 3, 4, 5]);
    const names: string[] = [];
    for await (const r of ef.queryAll(ch.id, { format: 'senml', limit: 1 })) names.push(`${r.name}=${r.value}`);
    expect(names).toEqual(['sensor/temp=24', 'sensor/temp=20']);
    let table = '';
    for await (const chunk of ef.queryCsvAll(ch.id, { format: 'senml', limit: 1, order: 'asc' })) table += chunk;
    const tableRows = table.split('\r\n');
    expect(tableRows[0]).toMatch(/^seq,time,subtopic,publisher,name,unit,value,/);
    expect(tableRows.slice(1, 3).map((r) => r.split(',')[6])).toEqual(['20', '24']);
    expect(tableRows).toHaveLength(4); // header, two records from two pages, and the final line end
    const senml = await ef.query(ch.id, { format: 'senml', name: 'sensor/temp', v: 21, comparator: 'gt' });
    expect(senml.items.map((r) => r.value)).toEqual([24]);
    const avg = await ef.query(ch.id, { format: 'senml', name: 'sensor/temp', aggregation: 'avg' });
    expect(avg.items[0]).toMatchObject({ value: 22, count: 2 });
    const csv = await ef.queryCsv(ch.id, { format: 'senml' });
    expect(csv.split('\r\n')[0]).toContain('name');
    expect(csv).toContain('sensor/temp');
    const blob = await ef.payload(ch.id, 3);
    expect([...blob.bytes]).toEqual([0, 1, 255]);
    expect((await failure(ef.query(ch.id, { from: new Date(2), to: new Date(1) }))).status).toBe(400);
  });

  /** Publishes ticks as a device until `viewer` renewed its token (or the bound passed); what `viewer`'s subscription got, and how it retried. */
  async function outlive(viewer: Edgeflux, renewed: () => boolean) {
    const o = ef.org(org);
    const ch = await o.channels.create({ name: 'expiring' });
    const d = await o.devices.create({ name: 'ticker' });
    await o.connections.connect({ channel_ids: [ch.id], device_ids: [d.id] });
    const asDevice = client({ deviceKey: d.key });
    const got: number[] = [];
    const closes: string[] = [];
    const sub = viewer.subscribe(ch.id, { onMessage: (m) => got.push(m.seq), onRetry: (e) => closes.push(e.message), minDelayMs: 20, maxDelayMs: 100 });
    await sub.opened;
    const sent: number[] = [];
    const end = Date.now() + 2000 + Number(env.REVOCATION_CACHE_TTL) * 1000 + 3000;
    while (Date.now() < end && !renewed()) {
      sent.push((await asDevice.publish(ch.id, 'tick')).seq);
      await new Promise((r) => setTimeout(r, 150));
    }
    for (let i = 0; i < 3; i++) sent.push((await asDevice.publish(ch.id, 'after')).seq);
    for (let i = 0; i < 100 && got.length < sent.length; i++) await new Promise((r) => setTimeout(r, 20));
    sub.close();
    await sub.closed;
    return { got, sent, closes };
  }

  it('a subscription outlives its access token: closed with 4401 when it expires, refreshed and resumed, nothing lost or twice', async () => {
    const me = await ef.users.me();
    const tokens = await client().login(email, password);
    // A session token that expires in 2 s, with a good refresh token beside it.
    const short = await signToken(env, { typ: 'user', sub: me.id }, 2);
    const refreshed: Tokens[] = [];
    const viewer = client({ token: short, refreshToken: tokens.refresh_token, onTokens: (t) => refreshed.push(t) });
    const { got, sent, closes } = await outlive(viewer, () => refreshed.length > 0);
    expect(closes.some((m) => m.includes('4401') && m.includes('the access token expired'))).toBe(true);
    expect(refreshed).toHaveLength(1);
    expect(got).toEqual(sent);
  }, 20_000);

  it('an app renews its expired token with its client credentials: for requests (401) and subscriptions (4401)', async () => {
    const o = ef.org(org);
    const scp = ['messages:subscribe', 'devices:read'];
    const app = await o.apps.create({ name: 'watcher', scopes: scp });
    const asApp = client();
    await asApp.appLogin(app.client_id, app.client_secret);
    const credential = () => (asApp as unknown as { http: { credential: { token?: string } } }).http.credential;
    // A token that has expired already: the request is refused once, renewed, and sent again.
    credential().token = await signToken(env, { typ: 'app', sub: app.id, org, scp }, -1);
    expect((await asApp.org(org).devices.list()).total).toBeGreaterThan(0);
    // One that expires in 2 s under a live subscription.
    const short = await signToken(env, { typ: 'app', sub: app.id, org, scp }, 2);
    credential().token = short;
    const { got, sent, closes } = await outlive(asApp, () => asApp.token !== short);
    expect(closes.some((m) => m.includes('4401') && m.includes('the access token expired'))).toBe(true);
    expect(asApp.token).not.toBe(short);
    expect(got).toEqual(sent);
  }, 20_000);

  it('starts the cursor at the channel seq from the subscribed frame, still delivering older retained messages', async () => {
    const ch = await ef.org(org).channels.create({ name: 'cursor' });
    await ef.publish(ch.id, 'r1', { subtopic: 'r', retain: true });
    await ef.publish(ch.id, 'plain', { subtopic: 'p' });
    const got: Message[] = [];
    const confirmed: unknown[] = [];
    const fresh = ef.subscribe(ch.id, { onMessage: (m) => got.push(m), onSubscribed: (s) => confirmed.push(s) });
    for (let i = 0; i < 50 && got.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    fresh.close();
    expect(confirmed).toEqual([{ seq: 2 }]);
    expect(got).toMatchObject([{ seq: 1, payload: 'r1', retained: true }]); // seq 1 < cursor 2, delivered all the same
    expect(fresh.lastSeq).toBe(2);

    const resumed = ef.subscribe(ch.id, { since: 1, onMessage: (m) => got.push(m), onSubscribed: (s) => confirmed.push(s) });
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    resumed.close();
    expect(confirmed[1]).toEqual({ seq: 2, since: 1 });
    expect(got.map((m) => m.payload)).toEqual(['r1', 'plain']);
  });

  it('ends a refused subscription with the API problem instead of retrying', async () => {
    const sub = client({ token: 'junk' }).subscribe('no-such-channel', { onMessage: () => {} });
    const e = await failure(sub.closed);
    expect(e.status).toBe(401);
  });
});
