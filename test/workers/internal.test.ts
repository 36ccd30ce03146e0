import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { newSecret, sha256Hex } from '../../workers/lib/crypto';
import { api, expectProblem, newOrg, newUser } from './helpers';

const bridge = { authorization: `Bearer ${env.BRIDGE_SECRET}` };
const post = (path: string, body: unknown) => api('POST', path, { body, headers: bridge });

/** A device and channels inserted straight into D1, so this test depends only on the schema. */
async function world() {
  const owner = await newUser();
  const org = await newOrg(owner.token);
  const key = newSecret('efd');
  const device = crypto.randomUUID();
  const [pub, sub, none] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
  const t = Date.now();
  await env.DB.batch([
    env.DB.prepare("INSERT INTO devices (id, org_id, name, key_hash, created_at, updated_at) VALUES (?, ?, 'thermo', ?, ?, ?)").bind(device, org.id, await sha256Hex(key), t, t),
    ...[pub, sub, none].map((ch, i) => env.DB.prepare("INSERT INTO channels (id, org_id, name, created_at, updated_at) VALUES (?, ?, 'ch', ?, ?)").bind(ch, org.id, t + i, t)),
    env.DB.prepare('INSERT INTO connections (org_id, channel_id, device_id, can_publish, can_subscribe, created_at) VALUES (?, ?, ?, 1, 0, ?)').bind(org.id, pub, device, t),
    env.DB.prepare('INSERT INTO connections (org_id, channel_id, device_id, can_publish, can_subscribe, created_at) VALUES (?, ?, ?, 0, 1, ?)').bind(org.id, sub, device, t),
  ]);
  return { owner, org, key, device, pub, sub, none };
}

describe('internal bridge API', () => {
  it('only admits the bridge credential', async () => {
    expectProblem(await api('POST', '/internal/authenticate', { body: { password: 'x' } }), 401);
    expectProblem(await api('POST', '/internal/authenticate', { body: { password: 'x' }, headers: { authorization: 'Bearer wrong' } }), 401);
  });

  it('authenticates a device by key, checking the username is its id', async () => {
    const w = await world();
    const ok = await post('/internal/authenticate', { username: w.device, password: w.key });
    expect(ok.status).toBe(200);
    // With the start of its key's hash, so a live session learns when the key is rotated.
    expect(ok.body.principal).toEqual({ kind: 'device', id: w.device, orgId: w.org.id, keyStamp: (await sha256Hex(w.key)).slice(0, 16) });
    expect((await post('/internal/authenticate', { password: w.key })).status).toBe(200);
    expectProblem(await post('/internal/authenticate', { username: crypto.randomUUID(), password: w.key }), 401);
    expectProblem(await post('/internal/authenticate', { username: w.device, password: 'efd_wrong' }), 401);
    // A person's session token is not a device credential.
    expectProblem(await post('/internal/authenticate', { password: w.owner.token }), 401);
  });

  it('answers batch decisions with the same PDP as HTTP, connections included', async () => {
    const w = await world();
    const principal = { kind: 'device', id: w.device, orgId: w.org.id };
    const r = await post('/internal/authorize', {
      principal,
      checks: [
        { channel: w.pub, action: 'messages:publish' },
        { channel: w.pub, action: 'messages:subscribe' },
        { channel: w.sub, action: 'messages:subscribe' },
        { channel: w.none, action: 'messages:publish' },
        { channel: crypto.randomUUID(), action: 'messages:publish' },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: { allowed: boolean; status: number }) => [x.allowed, x.status])).toEqual([
      [true, 200],
      [false, 403],
      [true, 200],
      [false, 403],
      [false, 404],
    ]);
    // Another org's device sees the channel as missing.
    const other = await world();
    const foreign = await post('/internal/authorize', { principal: { kind: 'device', id: other.device, orgId: other.org.id }, checks: [{ channel: w.pub, action: 'messages:publish' }] });
    expect(foreign.body.results[0]).toMatchObject({ allowed: false, status: 404 });
  });

  it('refuses every decision for an API key revoked since the bridge resolved it (the bridge re-checks live subscriptions with these)', async () => {
    const w = await world();
    const key = await api('POST', `/orgs/${w.org.id}/keys`, { token: w.owner.token, body: { name: 'bridge', scopes: ['messages:*'] } });
    const auth = await post('/internal/authenticate', { password: key.body.key });
    expect(auth.status).toBe(200);
    const checks = [{ channel: w.pub, action: 'messages:publish' }, { channel: w.sub, action: 'messages:subscribe' }];
    expect((await post('/internal/authorize', { principal: auth.body.principal, checks })).body.results.map((x: { allowed: boolean }) => x.allowed)).toEqual([true, true]);
    expect((await api('DELETE', `/orgs/${w.org.id}/keys/${key.body.id}`, { token: w.owner.token })).status).toBe(204);
    const after = await post('/internal/authorize', { principal: auth.body.principal, checks });
    expect(after.body.results).toEqual(checks.map((c) => ({ ...c, allowed: false, status: 401, reason: 'the API key was revoked or has expired' })));
    // A key that expires carries its expiry, so a bridge never trusts a decision past it.
    expect(auth.body.principal.exp).toBeUndefined();
    const expiring = await api('POST', `/orgs/${w.org.id}/keys`, { token: w.owner.token, body: { name: 'short', scopes: ['messages:*'], expires_in: 3600 } });
    const principal = (await post('/internal/authenticate', { password: expiring.body.key })).body.principal;
    expect(Math.abs(principal.exp * 1000 - expiring.body.expires_at)).toBeLessThan(1000);
  });

  it('refuses every decision for a device whose key was rotated or which was deleted since the bridge resolved it', async () => {
    const w = await world();
    const auth = await post('/internal/authenticate', { username: w.device, password: w.key });
    const checks = [{ channel: w.pub, action: 'messages:publish' }, { channel: w.sub, action: 'messages:subscribe' }];
    const decide = async (principal: unknown) => (await post('/internal/authorize', { principal, checks })).body.results;
    expect((await decide(auth.body.principal)).map((x: { allowed: boolean }) => x.allowed)).toEqual([true, true]);
    const rotated = await api('POST', `/orgs/${w.org.id}/devices/${w.device}/key`, { token: w.owner.token });
    expect(rotated.status).toBe(201);
    expect(await decide(auth.body.principal)).toEqual(checks.map((c) => ({ ...c, allowed: false, status: 401, reason: 'the device key was rotated' })));
    // No checks: only whether the credential is good (a session with nothing else to ask about).
    expect((await post('/internal/authorize', { principal: auth.body.principal, checks: [] })).body).toEqual({ results: [], refused: { status: 401, reason: 'the device key was rotated' } });
    // Nor a list of channels for `channels/+/…` filters.
    expect(expectProblem(await post('/internal/channels', { principal: auth.body.principal, action: 'messages:subscribe' }), 401).detail).toBe('the device key was rotated');
    // The new key's session is decided as before; a principal without a stamp (an older bridge's) is not checked for rotation.
    const again = await post('/internal/authenticate', { username: w.device, password: rotated.body.key });
    expect((await decide(again.body.principal)).map((x: { allowed: boolean }) => x.allowed)).toEqual([true, true]);
    expect((await post('/internal/authorize', { principal: again.body.principal, checks: [] })).body).toEqual({ results: [] });
    expect((await decide({ kind: 'device', id: w.device, orgId: w.org.id })).map((x: { allowed: boolean }) => x.allowed)).toEqual([true, true]);
    expect((await api('DELETE', `/orgs/${w.org.id}/devices/${w.device}`, { token: w.owner.token })).status).toBe(204);
    expect(await decide(again.body.principal)).toEqual(checks.map((c) => ({ ...c, allowed: false, status: 401, reason: 'the device was deleted' })));
  });

  it("carries an app token's epoch: after a rotation with revokeIssued the bridge's sessions on older tokens are refused, newer ones go on", async () => {
    const w = await world();
    const app = (await api('POST', `/orgs/${w.org.id}/apps`, { token: w.owner.token, body: { name: 'a', scopes: ['messages:publish'] } })).body as { id: string; client_id: string };
    const tokenOf = async (secret: string) => {
      const r = await api('POST', '/oauth/token', { body: { grant_type: 'client_credentials', client_id: app.client_id, client_secret: secret } });
      return r.body.access_token as string;
    };
    const rotated = await api('POST', `/orgs/${w.org.id}/apps/${app.id}/secret`, { token: w.owner.token, body: { revokeIssued: true } });
    expect(rotated.status).toBe(201);
    const auth = await post('/internal/authenticate', { password: await tokenOf(rotated.body.client_secret) });
    expect(auth.body.principal).toMatchObject({ kind: 'app', id: app.id, epoch: 1 });
    const checks = [{ channel: w.pub, action: 'messages:publish' }];
    expect((await post('/internal/authorize', { principal: auth.body.principal, checks })).body.results[0]).toMatchObject({ allowed: true });
    // A session from before the rotation (its token carried no epoch) is refused.
    const { epoch: _, ...older } = auth.body.principal;
    expect((await post('/internal/authorize', { principal: older, checks })).body.results[0]).toEqual({ ...checks[0], allowed: false, status: 401, reason: "the app's tokens were revoked" });
    expectProblem(await post('/internal/authorize', { principal: { ...auth.body.principal, epoch: -1 }, checks }), 422);
  });

  it("refuses a real app token from before a rotation with revokeIssued, or of a deleted app: at /internal/authenticate and in the credential-only check", async () => {
    const w = await world();
    const newApp = async (name: string) => (await api('POST', `/orgs/${w.org.id}/apps`, { token: w.owner.token, body: { name, scopes: ['messages:publish'] } })).body as { id: string; client_id: string; client_secret: string };
    const tokenOf = async (app: { client_id: string }, secret: string) => (await api('POST', '/oauth/token', { body: { grant_type: 'client_credentials', client_id: app.client_id, client_secret: secret } })).body.access_token as string;
    const credentialOnly = (principal: unknown) => post('/internal/authorize', { principal, checks: [] });

    const rotatedApp = await newApp('rotated');
    const old = await tokenOf(rotatedApp, rotatedApp.client_secret);
    const before = await post('/internal/authenticate', { password: old });
    expect(before.status).toBe(200);
    expect((await credentialOnly(before.body.principal)).body).toEqual({ results: [] });
    expect((await api('POST', `/orgs/${w.org.id}/apps/${rotatedApp.id}/secret`, { token: w.owner.token, body: { revokeIssued: true } })).status).toBe(201);
    expect(expectProblem(await post('/internal/authenticate', { password: old }), 401).detail).toBe("the app's tokens were revoked");
    expect((await credentialOnly(before.body.principal)).body).toEqual({ results: [], refused: { status: 401, reason: "the app's tokens were revoked" } });

    const deletedApp = await newApp('deleted');
    const token = await tokenOf(deletedApp, deletedApp.client_secret);
    const live = await post('/internal/authenticate', { password: token });
    expect(live.status).toBe(200);
    expect((await api('DELETE', `/orgs/${w.org.id}/apps/${deletedApp.id}`, { token: w.owner.token })).status).toBe(204);
    expect(expectProblem(await post('/internal/authenticate', { password: token }), 401).detail).toBe('app no longer exists');
    expect((await credentialOnly(live.body.principal)).body).toEqual({ results: [], refused: { status: 401, reason: 'app no longer exists' } });
  });

  it('refuses every decision for a user session or app token past its exp (a live WebSocket or MQTT session ends with its token)', async () => {
    const w = await world();
    const checks = [{ channel: w.pub, action: 'messages:publish' }];
    const past = Math.floor(Date.now() / 1000) - 1;
    for (const principal of [{ kind: 'user', id: w.owner.id, exp: past }, { kind: 'app', id: crypto.randomUUID(), orgId: w.org.id, scopes: ['messages:*'], exp: past }]) {
      expect((await post('/internal/authorize', { principal, checks })).body.results).toEqual([{ ...checks[0], allowed: false, status: 401, reason: 'the access token expired' }]);
    }
    // Not yet expired: decided as usual (the owner may publish on the org's channels).
    const live = await post('/internal/authorize', { principal: { kind: 'user', id: w.owner.id, exp: past + 3600 }, checks });
    expect(live.body.results[0]).toMatchObject({ allowed: true, status: 200 });
  });

  it('tells a bridge which orgs had their access data written since it last asked: writes under /orgs/{org} count, reads, refused writes and messages do not', async () => {
    const w = await world();
    const other = await world();
    expectProblem(await api('POST', '/internal/access/changes', { body: { since: null } }), 401);
    const first = await post('/internal/access/changes', { since: null });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ orgs: [], all: true }); // the first answer: trust nothing cached yet
    const changes = async (since: number) => (await post('/internal/access/changes', { since })).body as { epoch: number; orgs: string[]; all: boolean };
    // Other test files may write to their own orgs meanwhile: only these two orgs are looked at.
    const ours = (orgs: string[]) => orgs.filter((o) => o === w.org.id || o === other.org.id);
    let since = first.body.epoch as number;
    const quiet = async () => {
      const r = await changes(since);
      expect(r.all).toBe(false);
      expect(ours(r.orgs)).toEqual([]);
    };
    // Reads, messages, a refused write, a new org and new devices, channels, keys and apps move nothing.
    expect((await api('GET', `/orgs/${w.org.id}/devices`, { token: w.owner.token })).status).toBe(200);
    const published = await api('POST', `/channels/${w.pub}/messages`, { headers: { authorization: `Device ${w.key}`, 'content-type': 'text/plain' }, raw: '21.5' });
    expect(published.status).toBe(202);
    expectProblem(await api('DELETE', `/orgs/${w.org.id}/devices/${crypto.randomUUID()}`, { token: w.owner.token }), 404);
    expectProblem(await api('DELETE', `/orgs/${other.org.id}/devices/${other.device}`, { token: w.owner.token }), 404);
    await newOrg(w.owner.token, 'another');
    const created = [
      await api('POST', `/orgs/${w.org.id}/devices`, { token: w.owner.token, body: { name: 'new' } }),
      await api('POST', `/orgs/${w.org.id}/devices/bulk`, { token: w.owner.token, body: { devices: [{ name: 'b1' }, { name: 'b2' }] } }),
      await api('POST', `/orgs/${w.org.id}/channels`, { token: w.owner.token, body: { name: 'new' } }),
      await api('POST', `/orgs/${w.org.id}/keys`, { token: w.owner.token, body: { name: 'k', scopes: ['messages:*'] } }),
      await api('POST', `/orgs/${w.org.id}/apps`, { token: w.owner.token, body: { name: 'a', scopes: ['messages:*'] } }),
    ];
    expect(created.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    await quiet();
    // Nor do renames, metadata and limits: the PDP reads none of them.
    const patched = [
      await api('PATCH', `/orgs/${w.org.id}/devices/${created[0]!.body.id}`, { token: w.owner.token, body: { name: 'renamed', metadata: { room: 'lab' } } }),
      await api('PATCH', `/orgs/${w.org.id}/channels/${created[2]!.body.id}`, { token: w.owner.token, body: { name: 'renamed' } }),
      await api('PATCH', `/orgs/${w.org.id}/channels/${created[2]!.body.id}/limits`, { token: w.owner.token, body: { maxPayloadBytes: 1000 } }),
      await api('PATCH', `/orgs/${w.org.id}`, { token: w.owner.token, body: { name: 'renamed' } }),
    ];
    expect(patched.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    await quiet();
    // An app's scopes are access: that moves it.
    expect((await api('PATCH', `/orgs/${w.org.id}/apps/${created[4]!.body.id}`, { token: w.owner.token, body: { scopes: ['messages:read'] } })).status).toBe(200);
    const moved = await changes(since);
    expect(ours(moved.orgs)).toEqual([w.org.id]);
    since = moved.epoch;
    // A key rotated in one org: that org, and only it.
    expect((await api('POST', `/orgs/${w.org.id}/devices/${w.device}/key`, { token: w.owner.token })).status).toBe(201);
    let r = await changes(since);
    expect(ours(r.orgs)).toEqual([w.org.id]);
    expect(r.all).toBe(false);
    expect(r.epoch).toBeGreaterThan(since);
    since = r.epoch;
    await quiet();
    // A connection removed in the other org, then a policy created in the first: both, oldest first.
    expect((await api('DELETE', `/orgs/${other.org.id}/channels/${other.pub}/devices/${other.device}`, { token: other.owner.token })).status).toBe(204);
    expect((await api('POST', `/orgs/${w.org.id}/policies`, { token: w.owner.token, body: { name: 'p', statements: [{ effect: 'deny', actions: ['messages:publish'], resources: ['channels/*'] }] } })).status).toBe(201);
    r = await changes(since);
    expect(ours(r.orgs)).toEqual([other.org.id, w.org.id]);
    // A bridge holding a number the database has never reached (it was recreated): everything.
    expect(await changes(r.epoch + 1_000_000)).toMatchObject({ orgs: [], all: true });
  });

  it('lists the channels a device may subscribe to, and records presence', async () => {
    const w = await world();
    const principal = { kind: 'device', id: w.device, orgId: w.org.id };
    expect((await post('/internal/channels', { principal, action: 'messages:subscribe' })).body.channels).toEqual([w.sub]);
    expect((await post('/internal/channels', { principal, action: 'messages:publish' })).body.channels).toEqual([w.pub]);
    expect((await post(`/internal/devices/${w.device}/presence`, { online: true, at: 1234 })).status).toBe(204);
    const row = await env.DB.prepare('SELECT online, last_seen FROM devices WHERE id = ?').bind(w.device).first();
    expect(row).toEqual({ online: 1, last_seen: 1234 });
    expectProblem(await post(`/internal/devices/${crypto.randomUUID()}/presence`, { online: false }), 404);
  });

  it('counts presence per bridge: online while any bridge has the device, late updates ignored, a restarted bridge resets', async () => {
    const w = await world();
    const online = async () => (await env.DB.prepare('SELECT online, last_seen FROM devices WHERE id = ?').bind(w.device).first<{ online: number; last_seen: number }>())!;
    const t0 = Date.now();
    const report = async (bridge: string, on: boolean, at: number) => expect((await post(`/internal/devices/${w.device}/presence`, { online: on, at: t0 + at, bridge })).status).toBe(204);
    await report('a', true, 100);
    await report('b', true, 110); // the device moved to (or also connected to) bridge b
    await report('a', false, 105);
    expect(await online()).toEqual({ online: 1, last_seen: t0 + 110 });
    await report('b', false, 120);
    expect((await online()).online).toBe(0);
    // An older "online" that arrives after the later "offline" (requests overtaking): ignored.
    await report('b', true, 115);
    expect((await online()).online).toBe(0);

    await report('c', true, 200);
    expect((await online()).online).toBe(1);
    expect((await post('/internal/bridges/c/reset', { at: t0 + 300 })).status).toBe(204);
    expect(await online()).toEqual({ online: 0, last_seen: t0 + 300 });
    // Unknown bridges reset to nothing; the route needs the bridge credential.
    expect((await post('/internal/bridges/nobody/reset', {})).status).toBe(204);
    expectProblem(await api('POST', '/internal/bridges/c/reset', { body: {} }), 401);
  });
});
