import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../workers/lib/crypto';
import { api, expectProblem, newOrg, newUser } from './helpers';

async function setup() {
  const owner = await newUser();
  const org = await newOrg(owner.token);
  const base = `/orgs/${org.id}/devices`;
  return { owner, org, base, t: owner.token };
}

describe('devices', () => {
  it('creates a device with a key shown once, stored only as a hash, that authenticates as the device', async () => {
    const { base, t, org } = await setup();
    const r = await api('POST', base, { token: t, body: { name: 'thermo', metadata: { room: 'lab' } } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'thermo', metadata: { room: 'lab' }, online: false, last_seen: null });
    expect(r.body.key).toMatch(/^efd_[A-Za-z0-9_-]{43}$/);
    const row = await env.DB.prepare('SELECT * FROM devices WHERE id = ?').bind(r.body.id).first<Record<string, unknown>>();
    expect(row!.key_hash).toBe(await sha256Hex(r.body.key));
    expect(JSON.stringify(row)).not.toContain(r.body.key);
    const got = await api('GET', `${base}/${r.body.id}`, { token: t });
    expect(got.body).not.toHaveProperty('key');
    expect(got.body).not.toHaveProperty('key_hash');
    expect((await api('GET', '/orgs', { device: r.body.key })).body.items).toEqual([expect.objectContaining({ id: org.id })]);
  });

  it('rotates the key: the old one stops at once, the new one works', async () => {
    const { base, t, org } = await setup();
    const d = (await api('POST', base, { token: t, body: { name: 'd' } })).body;
    expect((await api('GET', '/orgs', { device: d.key })).status).toBe(200);
    const rot = await api('POST', `${base}/${d.id}/key`, { token: t });
    expect(rot.status).toBe(201);
    expect(rot.body.key).not.toBe(d.key);
    expectProblem(await api('GET', '/orgs', { device: d.key }), 401);
    expect((await api('GET', '/orgs', { device: rot.body.key })).body.items[0].id).toBe(org.id);
  });

  it('bulk-creates all or nothing', async () => {
    const { base, t } = await setup();
    const ok = await api('POST', `${base}/bulk`, { token: t, body: { devices: [{ name: 'a' }, { name: 'b', metadata: { x: 1 } }] } });
    expect(ok.status).toBe(201);
    expect(ok.body.items).toHaveLength(2);
    expect(new Set(ok.body.items.map((d: { key: string }) => d.key)).size).toBe(2);
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { devices: [{ name: 'c' }, { name: '' }] } }), 422);
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { devices: Array.from({ length: 101 }, (_, i) => ({ name: `d${i}` })) } }), 422);
    expect((await api('GET', base, { token: t })).body.total).toBe(2);
  });

  it('lists with stable pagination, name and metadata containment filters', async () => {
    const { base, t } = await setup();
    const items = [
      { name: 'Kitchen Thermo', metadata: { room: 'kitchen', hw: { rev: 2, vendor: 'acme' }, tags: ['a', 'b'] } },
      { name: 'lab thermo', metadata: { room: 'lab', hw: { rev: 3, vendor: 'acme' }, active: true } },
      { name: 'lab door', metadata: { room: 'lab', hw: { rev: 2, vendor: 'other' }, active: false, note: null } },
      { name: '100%_sure', metadata: {} },
    ];
    await api('POST', `${base}/bulk`, { token: t, body: { devices: items } });
    const names = async (q: string) => ((await api('GET', `${base}?${q}`, { token: t })).body.items as { name: string }[]).map((d) => d.name);
    expect(await names('name=THERMO')).toEqual(['Kitchen Thermo', 'lab thermo']);
    expect(await names('name=%25_')).toEqual(['100%_sure']);
    expect(await names(`metadata=${encodeURIComponent('{"room":"lab"}')}`)).toEqual(['lab thermo', 'lab door']);
    expect(await names(`metadata=${encodeURIComponent('{"hw":{"rev":2}}')}`)).toEqual(['Kitchen Thermo', 'lab door']);
    expect(await names(`metadata=${encodeURIComponent('{"hw":{"rev":2,"vendor":"acme"}}')}`)).toEqual(['Kitchen Thermo']);
    expect(await names(`metadata=${encodeURIComponent('{"active":true}')}`)).toEqual(['lab thermo']);
    expect(await names(`metadata=${encodeURIComponent('{"active":false}')}`)).toEqual(['lab door']);
    expect(await names(`metadata=${encodeURIComponent('{"note":null}')}`)).toEqual(['lab door']);
    expect(await names(`metadata=${encodeURIComponent('{"tags":["a","b"]}')}`)).toEqual(['Kitchen Thermo']);
    expect(await names(`metadata=${encodeURIComponent('{"room":"attic"}')}`)).toEqual([]);
    expect(await names(`name=lab&metadata=${encodeURIComponent('{"hw":{"rev":3}}')}`)).toEqual(['lab thermo']);
    expect(expectProblem(await api('GET', `${base}?metadata=${encodeURIComponent('{nope')}`, { token: t }), 400).code).toBe('invalid_filter');
    expectProblem(await api('GET', `${base}?metadata=${encodeURIComponent('[1]')}`, { token: t }), 400);
    const p1 = await api('GET', `${base}?limit=3`, { token: t });
    const p2 = await api('GET', `${base}?limit=3&offset=3`, { token: t });
    expect(p1.body.total).toBe(4);
    expect([...p1.body.items, ...p2.body.items].map((d: { name: string }) => d.name)).toEqual(items.map((i) => i.name));
    expectProblem(await api('GET', `${base}?limit=1000`, { token: t }), 400);
  });

  it('updates name and metadata, and deletes with connections and policy attachments', async () => {
    const { base, t, org } = await setup();
    const d = (await api('POST', base, { token: t, body: { name: 'd', metadata: { a: 1 } } })).body;
    const up = await api('PATCH', `${base}/${d.id}`, { token: t, body: { metadata: { b: 2 } } });
    expect(up.body).toMatchObject({ name: 'd', metadata: { b: 2 } });
    expect(up.body.updated_at).toBeGreaterThanOrEqual(d.updated_at);
    expect((await api('PATCH', `${base}/${d.id}`, { token: t, body: { name: 'renamed' } })).body).toMatchObject({ name: 'renamed', metadata: { b: 2 } });
    expectProblem(await api('PATCH', `${base}/${d.id}`, { token: t, body: {} }), 422);
    const ch = (await api('POST', `/orgs/${org.id}/channels`, { token: t, body: { name: 'c' } })).body;
    await api('POST', `/orgs/${org.id}/connections`, { token: t, body: { channel_ids: [ch.id], device_ids: [d.id] } });
    const pol = (await api('POST', `/orgs/${org.id}/policies`, { token: t, body: { name: 'p', statements: [{ effect: 'deny', actions: ['*'], resources: ['*'] }] } })).body;
    expect((await api('POST', `/orgs/${org.id}/policies/${pol.id}/attachments`, { token: t, body: { principal_type: 'device', principal_id: d.id } })).status).toBe(201);
    expect((await api('DELETE', `${base}/${d.id}`, { token: t })).status).toBe(204);
    expectProblem(await api('GET', `${base}/${d.id}`, { token: t }), 404);
    expectProblem(await api('DELETE', `${base}/${d.id}`, { token: t }), 404);
    expectProblem(await api('GET', '/orgs', { device: d.key }), 401);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE device_id = ?').bind(d.id).first('n')).toBe(0);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM policy_attachments WHERE principal_id = ?').bind(d.id).first('n')).toBe(0);
  });

  it('lets a viewer read but not create, and a device credential not manage devices', async () => {
    const { base, t, org } = await setup();
    const viewer = await newUser('viewer');
    await api('POST', `/orgs/${org.id}/members`, { token: t, body: { email: viewer.email, role: 'viewer' } });
    const d = (await api('POST', base, { token: t, body: { name: 'd' } })).body;
    expect((await api('GET', base, { token: viewer.token })).body.total).toBe(1);
    expectProblem(await api('POST', base, { token: viewer.token, body: { name: 'x' } }), 403);
    expectProblem(await api('DELETE', `${base}/${d.id}`, { token: viewer.token }), 403);
    expectProblem(await api('GET', base, { device: d.key }), 403);
    expectProblem(await api('GET', base), 401);
  });
});
