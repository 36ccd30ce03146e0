import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser } from './helpers';

describe('orgs', () => {
  it('creates an org with the caller as owner and lists only my orgs', async () => {
    const a = await newUser('a');
    const b = await newUser('b');
    const org = await api('POST', '/orgs', { token: a.token, body: { name: '  Acme  ' } });
    expect(org.status).toBe(201);
    expect(org.body).toMatchObject({ name: 'Acme', role: 'owner' });
    expect(org.headers.get('location')).toBe(`/orgs/${org.body.id}`);
    expect((await api('GET', org.headers.get('location')!, { token: a.token })).body.id).toBe(org.body.id);
    await newOrg(a.token, 'second');
    const mine = await api('GET', '/orgs', { token: a.token });
    expect(mine.body.total).toBe(2);
    expect(mine.body.items.map((o: { name: string }) => o.name)).toEqual(['Acme', 'second']);
    expect((await api('GET', '/orgs', { token: b.token })).body).toMatchObject({ total: 0, items: [] });
    expect((await api('GET', `/orgs/${org.body.id}`, { token: a.token })).body).toMatchObject({ id: org.body.id, role: 'owner' });
    // Someone else's org does not exist for you.
    expectProblem(await api('GET', `/orgs/${org.body.id}`, { token: b.token }), 404);
    expectProblem(await api('PATCH', `/orgs/${org.body.id}`, { token: b.token, body: { name: 'x' } }), 404);
    expectProblem(await api('DELETE', `/orgs/${org.body.id}`, { token: b.token }), 404);
  });

  it('lists an org only to a caller that may read it, as GET /orgs/{org} decides: keys, app tokens, devices, members denied by a policy', async () => {
    const owner = await newUser('owner');
    const org = await newOrg(owner.token, 'scoped');
    const listed = async (auth: { token?: string; device?: string }) => {
      const r = await api('GET', '/orgs', auth);
      expect(r.status).toBe(200);
      return { total: r.body.total as number, ids: (r.body.items as { id: string }[]).map((o) => o.id) };
    };
    const readOne = async (auth: { token?: string; device?: string }) => (await api('GET', `/orgs/${org.id}`, auth)).status;
    const key = async (scopes: string[]) => (await api('POST', `/orgs/${org.id}/keys`, { token: owner.token, body: { name: scopes.join(' '), scopes } })).body.key as string;

    // API keys: by their scopes.
    const devicesOnly = await key(['devices:*']);
    expect(await readOne({ token: devicesOnly })).toBe(403);
    expect(await listed({ token: devicesOnly })).toEqual({ total: 0, ids: [] });
    const orgsRead = await key(['orgs:read']);
    expect(await readOne({ token: orgsRead })).toBe(200);
    expect(await listed({ token: orgsRead })).toEqual({ total: 1, ids: [org.id] });

    // App tokens: by the token's scopes.
    const app = (await api('POST', `/orgs/${org.id}/apps`, { token: owner.token, body: { name: 'a', scopes: ['devices:read', 'orgs:read'] } })).body as { client_id: string; client_secret: string };
    const appToken = async (scope: string) => {
      const r = await api('POST', '/oauth/token', { raw: new URLSearchParams({ grant_type: 'client_credentials', scope, client_id: app.client_id, client_secret: app.client_secret }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(r.status).toBe(200);
      return r.body.access_token as string;
    };
    const narrow = await appToken('devices:read');
    expect(await readOne({ token: narrow })).toBe(403);
    expect(await listed({ token: narrow })).toEqual({ total: 0, ids: [] });
    const wide = await appToken('devices:read orgs:read');
    expect(await readOne({ token: wide })).toBe(200);
    expect(await listed({ token: wide })).toEqual({ total: 1, ids: [org.id] });

    // Devices hold no org permission of their own (their connections are about messages): none, unless a policy grants it.
    const device = (await api('POST', `/orgs/${org.id}/devices`, { token: owner.token, body: { name: 'd' } })).body as { id: string; key: string };
    expect(await readOne({ device: device.key })).toBe(403);
    expect(await listed({ device: device.key })).toEqual({ total: 0, ids: [] });
    const grant = (await api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: 'see org', statements: [{ effect: 'allow', actions: ['orgs:read'], resources: ['org'] }] } })).body.id as string;
    expect((await api('POST', `/orgs/${org.id}/policies/${grant}/attachments`, { token: owner.token, body: { principal_type: 'device', principal_id: device.id } })).status).toBe(201);
    expect(await readOne({ device: device.key })).toBe(200);
    expect(await listed({ device: device.key })).toEqual({ total: 1, ids: [org.id] });

    // User sessions: a member denied orgs:read in one org sees only the others, and paging counts what is listed.
    const viewer = await newUser('viewer');
    expect((await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: viewer.email, role: 'viewer' } })).status).toBe(201);
    const own = await newOrg(viewer.token, 'own');
    expect(await listed({ token: viewer.token })).toEqual({ total: 2, ids: [org.id, own.id] });
    const deny = (await api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: 'no org', statements: [{ effect: 'deny', actions: ['orgs:read'], resources: ['org'] }] } })).body.id as string;
    expect((await api('POST', `/orgs/${org.id}/policies/${deny}/attachments`, { token: owner.token, body: { principal_type: 'member', principal_id: viewer.id } })).status).toBe(201);
    expect(await readOne({ token: viewer.token })).toBe(403);
    expect(await listed({ token: viewer.token })).toEqual({ total: 1, ids: [own.id] });
    expect((await api('GET', '/orgs?offset=1', { token: viewer.token })).body).toMatchObject({ total: 1, offset: 1, items: [] });
    // The owner is untouched.
    expect((await listed({ token: owner.token })).ids).toEqual([org.id]);
  });

  it('paginates with a maximum limit and a stable order', async () => {
    const a = await newUser();
    for (let i = 0; i < 5; i++) await newOrg(a.token, `o${i}`);
    const p1 = await api('GET', '/orgs?limit=2', { token: a.token });
    const p2 = await api('GET', '/orgs?limit=2&offset=2', { token: a.token });
    const p3 = await api('GET', '/orgs?limit=2&offset=4', { token: a.token });
    const names = [...p1.body.items, ...p2.body.items, ...p3.body.items].map((o: { name: string }) => o.name);
    expect(names).toEqual(['o0', 'o1', 'o2', 'o3', 'o4']);
    expect(p1.body).toMatchObject({ total: 5, offset: 0, limit: 2 });
    expectProblem(await api('GET', '/orgs?limit=101', { token: a.token }), 400);
    expectProblem(await api('GET', '/orgs?offset=-1', { token: a.token }), 400);
  });

  it('renames and deletes; only owners delete', async () => {
    const owner = await newUser();
    const admin = await newUser();
    const org = await newOrg(owner.token);
    await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: admin.email, role: 'admin' } });
    expect((await api('PATCH', `/orgs/${org.id}`, { token: admin.token, body: { name: 'Renamed' } })).body.name).toBe('Renamed');
    expectProblem(await api('PATCH', `/orgs/${org.id}`, { token: admin.token, body: { name: '' } }), 422);
    expectProblem(await api('DELETE', `/orgs/${org.id}`, { token: admin.token }), 403);
    expect((await api('DELETE', `/orgs/${org.id}`, { token: owner.token })).status).toBe(204);
    expectProblem(await api('GET', `/orgs/${org.id}`, { token: owner.token }), 404);
  });

  it('deleting an org deletes its channels\' stored messages and blobs, and ends their actors', async () => {
    const owner = await newUser();
    const org = await newOrg(owner.token);
    const chs = (await api('POST', `/orgs/${org.id}/channels/bulk`, { token: owner.token, body: { channels: [{ name: 'a' }, { name: 'b' }] } })).body.items as { id: string }[];
    for (const ch of chs) {
      for (const [type, body] of [['application/senml+json', '[{"n":"t","v":1}]'], ['application/octet-stream', 'blob']] as const) {
        expect((await api('POST', `/channels/${ch.id}/messages`, { token: owner.token, raw: body, headers: { 'content-type': type } })).status).toBe(202);
      }
    }
    const count = async (table: string) =>
      Number(await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE ch IN (SELECT key FROM channel_keys WHERE channel_id IN (?, ?))`).bind(chs[0]!.id, chs[1]!.id).first('n'));
    const blobs = async () => (await Promise.all(chs.map((ch) => env.BLOBS.list({ prefix: `channels/${ch.id}/` })))).reduce((n, l) => n + l.objects.length, 0);
    const until = async (ok: () => Promise<boolean>) => {
      for (let i = 0; i < 150 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 20));
      return ok();
    };
    // Drained by the actors (drainDelayMs) into D1 and R2.
    expect(await until(async () => (await count('message_rows')) === 4 && (await count('senml_rows')) === 2 && (await blobs()) === 2)).toBe(true);
    expect((await api('DELETE', `/orgs/${org.id}`, { token: owner.token })).status).toBe(204);
    expect(await until(async () => (await count('message_rows')) === 0 && (await count('senml_rows')) === 0 && (await blobs()) === 0)).toBe(true);
    for (const ch of chs) expect(await env.CHANNELS.get(env.CHANNELS.idFromName(ch.id)).info()).toMatchObject({ seq: 0, outbox: 0 });
  });
});

describe('members', () => {
  async function setup() {
    const owner = await newUser('owner');
    const other = await newUser('other');
    const org = await newOrg(owner.token);
    return { owner, other, org };
  }

  it('invites, lists, changes roles and removes members', async () => {
    const { owner, other, org } = await setup();
    const add = await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: other.email, role: 'viewer' } });
    expect(add.status).toBe(201);
    expect(add.body).toMatchObject({ user_id: other.id, email: other.email, role: 'viewer' });
    expectProblem(await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: other.email } }), 409);
    expectProblem(await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: 'nobody@example.com' } }), 404);
    expectProblem(await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: other.email, role: 'king' } }), 422);

    const list = await api('GET', `/orgs/${org.id}/members`, { token: other.token });
    expect(list.body.items.map((m: { role: string }) => m.role)).toEqual(['owner', 'viewer']);
    // A viewer reads but cannot manage.
    expectProblem(await api('PATCH', `/orgs/${org.id}/members/${owner.id}`, { token: other.token, body: { role: 'viewer' } }), 403);
    expect((await api('PATCH', `/orgs/${org.id}/members/${other.id}`, { token: owner.token, body: { role: 'admin' } })).status).toBe(204);
    expect((await api('GET', '/users/me', { token: other.token })).body.orgs).toEqual([{ id: org.id, name: org.name, role: 'admin' }]);
    expect((await api('DELETE', `/orgs/${org.id}/members/${other.id}`, { token: owner.token })).status).toBe(204);
    expectProblem(await api('GET', `/orgs/${org.id}`, { token: other.token }), 404);
    expectProblem(await api('DELETE', `/orgs/${org.id}/members/${other.id}`, { token: owner.token }), 404);
  });

  it('filters members by a case-insensitive substring of the email, counted as filtered', async () => {
    const { owner, other, org } = await setup();
    const third = await newUser('third');
    for (const u of [other, third]) await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: u.email } });
    const list = (q: string) => api('GET', `/orgs/${org.id}/members?${q}`, { token: owner.token });
    const byOther = await list(`email=${encodeURIComponent(other.email.slice(0, 8).toUpperCase())}`);
    expect(byOther.body).toMatchObject({ total: 1, offset: 0, items: [{ user_id: other.id, email: other.email, role: 'member' }] });
    expect((await list('email=example.com&limit=2&offset=2')).body).toMatchObject({ total: 3, offset: 2, limit: 2, items: [{ user_id: third.id }] });
    expect((await list('email=%25')).body.total).toBe(0); // `%` is literal, not LIKE's wildcard
    expectProblem(await list(`email=${'x'.repeat(255)}`), 400);
  });

  it('keeps at least one owner, and only owners hand out ownership', async () => {
    const { owner, other, org } = await setup();
    expectProblem(await api('PATCH', `/orgs/${org.id}/members/${owner.id}`, { token: owner.token, body: { role: 'admin' } }), 409);
    expectProblem(await api('DELETE', `/orgs/${org.id}/members/${owner.id}`, { token: owner.token }), 409);
    await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: other.email, role: 'admin' } });
    expectProblem(await api('PATCH', `/orgs/${org.id}/members/${other.id}`, { token: other.token, body: { role: 'owner' } }), 403);
    expectProblem(await api('PATCH', `/orgs/${org.id}/members/${owner.id}`, { token: other.token, body: { role: 'member' } }), 403);
    expect((await api('PATCH', `/orgs/${org.id}/members/${other.id}`, { token: owner.token, body: { role: 'owner' } })).status).toBe(204);
    // Now there are two owners: the first may step down.
    expect((await api('PATCH', `/orgs/${org.id}/members/${owner.id}`, { token: owner.token, body: { role: 'member' } })).status).toBe(204);
  });

  it('keeps an owner when two owners demote or remove each other at the same time', async () => {
    // Each request checked the owner count and then wrote: both could see two owners and leave none,
    // an org that nobody could ever delete or hand ownership of again. Many pairs at once, so the
    // two requests of some pair interleave.
    const owners = async (org: string) => Number(await env.DB.prepare("SELECT COUNT(*) AS n FROM members WHERE org_id = ? AND role = 'owner'").bind(org).first('n'));
    for (const how of ['demote', 'remove'] as const) {
      const pairs = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const { owner, other, org } = await setup();
          await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: other.email, role: 'owner' } });
          return { owner, other, org };
        }),
      );
      const act = (org: string, by: { token: string }, whom: { id: string }) =>
        how === 'demote'
          ? api('PATCH', `/orgs/${org}/members/${whom.id}`, { token: by.token, body: { role: 'admin' } })
          : api('DELETE', `/orgs/${org}/members/${whom.id}`, { token: by.token });
      const answers = await Promise.all(pairs.map(({ owner, other, org }) => Promise.all([act(org.id, owner, other), act(org.id, other, owner)])));
      for (const [i, { org }] of pairs.entries()) {
        expect(await owners(org.id), `${how} #${i}`).toBe(1);
        const statuses = answers[i]!.map((r) => r.status);
        expect(statuses.filter((s) => s === 204), `${how} #${i}: ${statuses}`).toHaveLength(1);
        const refused = answers[i]!.find((r) => r.status !== 204)!;
        expect([403, 404, 409]).toContain(expectProblem(refused, refused.status) && refused.status);
      }
    }
  });

  it('does not let an admin demote or remove a member an owner makes an owner at the same time', async () => {
    // The admin's request read the member's role (not an owner, so an admin may change it) and then
    // wrote: an owner's promotion in between was overwritten, or the brand-new owner deleted. The
    // write is now only made on the role that was read, so of two that interleave the second is
    // refused. Many pairs at once, half of them sent promotion first, so some interleave each way.
    const roleOf = async (org: string, user: string) => (await env.DB.prepare('SELECT role FROM members WHERE org_id = ? AND user_id = ?').bind(org, user).first<{ role: string }>('role')) ?? null;
    for (const how of ['demote', 'remove'] as const) {
      const trios = await Promise.all(
        Array.from({ length: 16 }, async () => {
          const { owner, other: admin, org } = await setup();
          const x = await newUser('x');
          await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: admin.email, role: 'admin' } });
          await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: x.email, role: 'member' } });
          return { owner, admin, x, org };
        }),
      );
      const answers = await Promise.all(
        trios.map(async ({ owner, admin, x, org }, i) => {
          const byAdmin = () =>
            how === 'demote'
              ? api('PATCH', `/orgs/${org.id}/members/${x.id}`, { token: admin.token, body: { role: 'viewer' } })
              : api('DELETE', `/orgs/${org.id}/members/${x.id}`, { token: admin.token });
          const promotion = () => api('PATCH', `/orgs/${org.id}/members/${x.id}`, { token: owner.token, body: { role: 'owner' } });
          if (i % 2) return Promise.all([byAdmin(), promotion()]);
          const [p, a] = await Promise.all([promotion(), byAdmin()]);
          return [a, p] as const;
        }),
      );
      for (const [i, { x, org }] of trios.entries()) {
        const [byAdmin, promotion] = answers[i]!;
        const role = await roleOf(org.id, x.id);
        const seen = `${how} #${i}: admin ${byAdmin.status}, promotion ${promotion.status}, role ${role}`;
        // A promotion that was answered 204 stands: nothing read before it undid it.
        if (promotion.status === 204) expect(role, seen).toBe('owner');
        else expect(role, seen).toBe(how === 'demote' ? 'viewer' : null);
        expect([byAdmin, promotion].some((r) => r.status === 204), seen).toBe(true);
        // Refused: the admin found an owner already (403), the member was gone (404), or the role
        // changed between the read and the write (409).
        for (const r of [byAdmin, promotion].filter((r) => r.status !== 204)) {
          const problem = expectProblem(r, r.status);
          if (r.status === 409) expect(problem.detail, seen).toBe("the member's role changed; try again");
          else expect(r.status, seen).toBe(r === byAdmin ? 403 : 404);
        }
      }
    }
  });

  it('lets a member leave on their own', async () => {
    const { owner, other, org } = await setup();
    await api('POST', `/orgs/${org.id}/members`, { token: owner.token, body: { email: other.email, role: 'viewer' } });
    expect((await api('DELETE', `/orgs/${org.id}/members/${other.id}`, { token: other.token })).status).toBe(204);
    expect((await api('GET', `/orgs/${org.id}/members`, { token: owner.token })).body.total).toBe(1);
  });

  it('org creation needs a user session', async () => {
    expectProblem(await api('POST', '/orgs', { body: { name: 'x' } }), 401);
  });
});
