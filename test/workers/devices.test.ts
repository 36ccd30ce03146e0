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

const meta = (filter: unknown) => `metadata=${encodeURIComponent(typeof filter === 'string' ? filter : JSON.stringify(filter))}`;

describe('devices', () => {
  it('creates a device with a key shown once, stored only as a hash, that authenticates as the device', async () => {
    const { base, t, org } = await setup();
    const r = await api('POST', base, { token: t, body: { name: 'thermo', metadata: { room: 'lab' } } });
    expect(r.status).toBe(201);
    expect(Object.keys(r.body).sort()).toEqual(['created_at', 'id', 'key', 'last_seen', 'metadata', 'name', 'online', 'updated_at']);
    expect(r.body).toMatchObject({ name: 'thermo', metadata: { room: 'lab' }, online: false, last_seen: null });
    expect(r.body.key).toMatch(/^efd_[A-Za-z0-9_-]{43}$/);
    // RFC 9110 §10.2.2: the 201 names the device it created.
    expect(r.headers.get('location')).toBe(`/orgs/${org.id}/devices/${r.body.id}`);
    const row = await env.DB.prepare('SELECT * FROM devices WHERE id = ?').bind(r.body.id).first<Record<string, unknown>>();
    expect(row!.key_hash).toBe(await sha256Hex(r.body.key));
    expect(JSON.stringify(row)).not.toContain(r.body.key);
    const { key, ...withoutKey } = r.body;
    expect(key).toBeTruthy();
    expect((await api('GET', `${base}/${r.body.id}`, { token: t })).body).toEqual(withoutKey);
    const listed = JSON.stringify((await api('GET', base, { token: t })).body);
    expect(listed).not.toContain(r.body.key);
    expect(listed).not.toContain('key_hash');
    // The key is a working credential: the device is answered (an empty list: a device may not read its org, docs/auth.md).
    const asDevice = await api('GET', '/orgs', { device: r.body.key });
    expect(asDevice.status).toBe(200);
    expect(asDevice.body).toMatchObject({ total: 0, items: [] });
    const refused = await api('GET', '/orgs', { device: `${r.body.key.slice(0, -1)}x` });
    expectProblem(refused, 401);
    // The challenge names the Device scheme too, not only Bearer (RFC 9110 §11.6.1).
    expect(refused.headers.get('www-authenticate')).toMatch(/(^|, )Device realm="edgeflux"/);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer realm="edgeflux"/);
  });

  it('rotates the key: the old one stops at once, the new one works', async () => {
    const { base, t, org } = await setup();
    const d = (await api('POST', base, { token: t, body: { name: 'd' } })).body;
    expect((await api('GET', '/orgs', { device: d.key })).status).toBe(200);
    const rot = await api('POST', `${base}/${d.id}/key`, { token: t });
    expect(rot.status).toBe(201);
    expect(Object.keys(rot.body).sort()).toEqual(['id', 'key']);
    expect(rot.body).toMatchObject({ id: d.id });
    expect(rot.body.key).not.toBe(d.key);
    expectProblem(await api('GET', '/orgs', { device: d.key }), 401);
    expect((await api('GET', '/orgs', { device: rot.body.key })).status).toBe(200);
    expect((await api('GET', `${base}/${d.id}`, { token: t })).body).not.toHaveProperty('key');
    expectProblem(await api('POST', `${base}/${crypto.randomUUID()}/key`, { token: t }), 404);
  });

  it('bulk-creates all or nothing, each device with its own working key', async () => {
    const { base, t } = await setup();
    const ok = await api('POST', `${base}/bulk`, { token: t, body: { devices: [{ name: 'a' }, { name: 'b', metadata: { x: 1 } }] } });
    expect(ok.status).toBe(201);
    expect(ok.body.items.map((d: { name: string; metadata: object }) => [d.name, d.metadata])).toEqual([['a', {}], ['b', { x: 1 }]]);
    expect(new Set(ok.body.items.map((d: { key: string }) => d.key)).size).toBe(2);
    for (const d of ok.body.items) expect((await api('GET', '/orgs', { device: d.key })).status).toBe(200);
    const bad = expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { devices: [{ name: 'c' }, { name: '' }] } }), 422);
    expect(bad.detail).toContain('devices.1.name');
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { devices: [{ name: 'c' }, { name: 'd', metadata: 'x' }] } }), 422);
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { devices: Array.from({ length: 101 }, (_, i) => ({ name: `d${i}` })) } }), 422);
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { devices: [] } }), 422);
    expect((await api('POST', `${base}/bulk`, { token: t, body: { devices: Array.from({ length: 100 }, (_, i) => ({ name: `m${i}` })) } })).status).toBe(201);
    expect((await api('GET', base, { token: t })).body.total).toBe(102);
  });

  it('paginates in a stable order (creation, then the order given in a bulk call) with the total', async () => {
    const { base, t } = await setup();
    await api('POST', base, { token: t, body: { name: 'first' } });
    await api('POST', `${base}/bulk`, { token: t, body: { devices: Array.from({ length: 6 }, (_, i) => ({ name: `n${i}` })) } });
    const all = ['first', ...Array.from({ length: 6 }, (_, i) => `n${i}`)];
    const seen: string[] = [];
    for (let offset = 0; offset < 9; offset += 3) {
      const p = await api('GET', `${base}?limit=3&offset=${offset}`, { token: t });
      expect(p.body).toMatchObject({ total: 7, offset, limit: 3 });
      seen.push(...p.body.items.map((d: { name: string }) => d.name));
    }
    expect(seen).toEqual(all);
    expect((await api('GET', base, { token: t })).body).toMatchObject({ total: 7, offset: 0, limit: 20 });
    expect((await api('GET', `${base}?offset=50`, { token: t })).body).toMatchObject({ total: 7, items: [] });
    expect((await api('GET', `${base}?limit=100`, { token: t })).status).toBe(200);
    for (const q of ['limit=101', 'limit=0', 'offset=-1', 'limit=abc']) expectProblem(await api('GET', `${base}?${q}`, { token: t }), 400);
    // Not read as 0, 16, 10 or 5 (z.coerce did): an empty, hex, exponent or padded number is refused by name.
    for (const q of ['offset=', 'limit=', 'offset=0x10', 'limit=1e1', 'offset=%205', 'offset=1.0']) {
      const p = expectProblem(await api('GET', `${base}?${q}`, { token: t }), 400);
      expect(JSON.stringify(p), q).toContain(`${q.split('=')[0]} must be a whole number`);
    }
  });

  it('sorts by name (case-insensitive), creation or last_seen, either way, ties in creation order, paging stably; a sort it does not know is a 400', async () => {
    const { base, t, org } = await setup();
    const { body } = await api('POST', `${base}/bulk`, { token: t, body: { devices: ['beta', 'Alpha', 'gamma', 'alpha', 'Beta'].map((name) => ({ name })) } });
    const ids = (body.items as { id: string; name: string }[]).map((d) => d.id);
    const names = async (q: string) => ((await api('GET', `${base}?${q}`, { token: t })).body.items as { name: string }[]).map((d) => d.name);
    expect(await names('')).toEqual(['beta', 'Alpha', 'gamma', 'alpha', 'Beta']);
    expect(await names('order=desc')).toEqual(['Beta', 'alpha', 'gamma', 'Alpha', 'beta']);
    expect(await names('sort=name')).toEqual(['Alpha', 'alpha', 'beta', 'Beta', 'gamma']);
    expect(await names('sort=name&order=desc')).toEqual(['gamma', 'Beta', 'beta', 'alpha', 'Alpha']);
    // Pages of a sort join into the whole list, nothing twice.
    const paged = [...(await names('sort=name&limit=2')), ...(await names('sort=name&limit=2&offset=2')), ...(await names('sort=name&limit=2&offset=4'))];
    expect(paged).toEqual(['Alpha', 'alpha', 'beta', 'Beta', 'gamma']);
    // last_seen: never seen first in asc, last in desc; the most recent first in desc.
    await env.DB.prepare('UPDATE devices SET last_seen = ? WHERE id = ?').bind(2000, ids[2]).run();
    await env.DB.prepare('UPDATE devices SET last_seen = ? WHERE id = ?').bind(1000, ids[0]).run();
    expect(await names('sort=last_seen&order=desc')).toEqual(['gamma', 'beta', 'Beta', 'alpha', 'Alpha']);
    expect(await names('sort=last_seen')).toEqual(['Alpha', 'alpha', 'Beta', 'beta', 'gamma']);
    // The same sorts on the devices of a channel.
    const ch = (await api('POST', `/orgs/${org.id}/channels`, { token: t, body: { name: 'c' } })).body.id as string;
    await api('POST', `/orgs/${org.id}/connections`, { token: t, body: { channel_ids: [ch], device_ids: ids } });
    const connected = await api('GET', `/orgs/${org.id}/channels/${ch}/devices?sort=name&order=desc`, { token: t });
    expect((connected.body.items as { name: string }[]).map((d) => d.name)).toEqual(['gamma', 'Beta', 'beta', 'alpha', 'Alpha']);
    for (const q of ['sort=email', 'order=up', 'sort=']) expectProblem(await api('GET', `${base}?${q}`, { token: t }), 400);
    // Read in index order: no temporary B-tree for the sort.
    for (const order of ['d.name COLLATE NOCASE ASC, d.rowid ASC', 'd.last_seen DESC, d.rowid DESC']) {
      const plan = JSON.stringify((await env.DB.prepare(`EXPLAIN QUERY PLAN SELECT id FROM devices d WHERE d.org_id = ? ORDER BY ${order} LIMIT 20`).bind(org.id).all()).results);
      expect(plan, order).not.toContain('TEMP B-TREE');
    }
  });

  it('filters by name (case-insensitive substring, wildcards literal) and by metadata containment', async () => {
    const { base, t } = await setup();
    const items = [
      { name: 'Kitchen Thermo', metadata: { room: 'kitchen', hw: { rev: 2, vendor: 'acme' }, tags: ['a', 'b'], 'a.b': 'dotted' } },
      { name: 'lab thermo', metadata: { room: 'lab', hw: { rev: 3, vendor: 'acme', fw: { v: 1.5 } }, active: true, n: '2' } },
      { name: 'lab door', metadata: { room: 'lab', hw: { rev: 2.0, vendor: 'other' }, active: false, note: null, n: 1 } },
      { name: '100%_sure', metadata: {} },
    ];
    await api('POST', `${base}/bulk`, { token: t, body: { devices: items } });
    const names = async (q: string) => {
      const r = await api('GET', `${base}?${q}`, { token: t });
      expect(r.status).toBe(200);
      return (r.body.items as { name: string }[]).map((d) => d.name);
    };
    expect(await names('name=THERMO')).toEqual(['Kitchen Thermo', 'lab thermo']);
    expect(await names('name=%25_')).toEqual(['100%_sure']);
    expect(await names('name=_')).toEqual(['100%_sure']);
    expect(await names('name=nothing')).toEqual([]);
    expect(await names(meta({ room: 'lab' }))).toEqual(['lab thermo', 'lab door']);
    expect(await names(meta({ hw: { rev: 2 } }))).toEqual(['Kitchen Thermo', 'lab door']);
    expect(await names(meta({ hw: { rev: 2, vendor: 'acme' } }))).toEqual(['Kitchen Thermo']);
    expect(await names(meta({ hw: { fw: { v: 1.5 } } }))).toEqual(['lab thermo']);
    expect(await names(meta({ hw: {} }))).toEqual(['Kitchen Thermo', 'lab thermo', 'lab door']);
    expect(await names(meta({}))).toEqual(items.map((i) => i.name));
    expect(await names(meta({ active: true }))).toEqual(['lab thermo']);
    expect(await names(meta({ active: false }))).toEqual(['lab door']);
    expect(await names(meta({ note: null }))).toEqual(['lab door']);
    expect(await names(meta({ tags: ['a', 'b'] }))).toEqual(['Kitchen Thermo']);
    expect(await names(meta({ tags: ['b', 'a'] }))).toEqual([]);
    expect(await names(meta({ 'a.b': 'dotted' }))).toEqual(['Kitchen Thermo']);
    // Types are compared too: "2" is not 2, 1 is not true, and a missing key is not null.
    expect(await names(meta({ n: 2 }))).toEqual([]);
    expect(await names(meta({ n: '2' }))).toEqual(['lab thermo']);
    expect(await names(meta({ active: 1 }))).toEqual([]);
    expect(await names(meta({ n: true }))).toEqual([]);
    expect(await names(meta({ room: 'attic' }))).toEqual([]);
    expect(await names(meta({ hw: { rev: 2, vendor: 'nobody' } }))).toEqual([]);
    expect(await names(meta({ hw: 'acme' }))).toEqual([]);
    expect(await names(`name=lab&${meta({ hw: { rev: 3 } })}`)).toEqual(['lab thermo']);
    // A wide filter is one bound parameter, not one per key (D1 allows 100).
    const wide = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, i]));
    expect(await names(meta(wide))).toEqual([]);
    expect((await api('GET', `${base}?${meta({ room: 'lab' })}&limit=1`, { token: t })).body).toMatchObject({ total: 2, items: [{ name: 'lab thermo' }] });
    for (const bad of ['{nope', '[1]', '"lab"', 'null', JSON.stringify({ 'a"b': 1 }), JSON.stringify({ ...wide, one: 'more' })]) {
      expect(expectProblem(await api('GET', `${base}?${meta(bad)}`, { token: t }), 400).code).toBe('invalid_filter');
    }
  });

  it('updates name and metadata (replaced), and refuses empty or invalid updates', async () => {
    const { base, t } = await setup();
    const d = (await api('POST', base, { token: t, body: { name: 'd', metadata: { a: 1 } } })).body;
    const up = await api('PATCH', `${base}/${d.id}`, { token: t, body: { metadata: { b: 2 } } });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ id: d.id, name: 'd', metadata: { b: 2 }, created_at: d.created_at });
    expect(up.body).not.toHaveProperty('key');
    expect(up.body.updated_at).toBeGreaterThanOrEqual(d.updated_at);
    expect((await api('PATCH', `${base}/${d.id}`, { token: t, body: { name: ' renamed ' } })).body).toMatchObject({ name: 'renamed', metadata: { b: 2 } });
    expect((await api('PATCH', `${base}/${d.id}`, { token: t, body: { metadata: {} } })).body.metadata).toEqual({});
    expect((await api('GET', `${base}/${d.id}`, { token: t })).body).toMatchObject({ name: 'renamed', metadata: {} });
    for (const body of [{}, { name: '' }, { name: 'x'.repeat(201) }, { metadata: [1] }, { metadata: 'x' }]) expectProblem(await api('PATCH', `${base}/${d.id}`, { token: t, body }), 422);
    expectProblem(await api('PATCH', `${base}/${crypto.randomUUID()}`, { token: t, body: { name: 'x' } }), 404);
    expectProblem(await api('GET', `${base}/${crypto.randomUUID()}`, { token: t }), 404);
  });

  it('refuses list parameters it does not know (a misspelt filter never lists everything) and bodies larger than any route takes', async () => {
    const { base, t } = await setup();
    await api('POST', base, { token: t, body: { name: 'kept' } });
    const typo = expectProblem(await api('GET', `${base}?nmae=x`, { token: t }), 400);
    expect(typo.detail).toContain('nmae');
    expect((await api('GET', `${base}?name=kept&limit=5`, { token: t })).body.total).toBe(1);
    expectProblem(await api('GET', `/orgs?ofset=1`, { token: t }), 400);
    const big = expectProblem(await api('POST', base, { token: t, raw: JSON.stringify({ name: 'big', metadata: { s: 'x'.repeat(7_000_000) } }), headers: { 'content-type': 'application/json' } }), 413);
    expect(big.detail).toContain('6.25 MiB');
    // The largest body a route takes still fits: 100 devices with 30 KiB of metadata each (~3 MiB).
    const most = Array.from({ length: 100 }, (_, i) => ({ name: `m${i}`, metadata: { s: 'y'.repeat(30_000) } }));
    expect((await api('POST', `${base}/bulk`, { token: t, body: { devices: most } })).status).toBe(201);
    // ?authorization= is a credential on every route, list routes included.
    expect((await api('GET', `${base}?authorization=${encodeURIComponent(`Bearer ${t}`)}&limit=1`, {})).status).toBe(200);
  });

  it('refuses malformed bodies and metadata too large or too deep, as problem+json', async () => {
    const { base, t } = await setup();
    expect(expectProblem(await api('POST', base, { token: t, raw: '{', headers: { 'content-type': 'application/json' } }), 400).code).toBe('malformed_request');
    // A content coding (curl --compressed-ish clients, Telegraf): not decoded here, so 415 with
    // Accept-Encoding, not "not valid JSON" (RFC 9110 §15.5.16). `identity` is no coding at all.
    const gz = await api('POST', base, { token: t, raw: '\x1f\x8b', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
    expect(expectProblem(gz, 415).detail).toContain('Content-Encoding');
    expect(gz.headers.get('accept-encoding')).toBe('identity');
    expectProblem(await api('POST', base, { token: t, body: {}, headers: { 'content-encoding': 'identity' } }), 422);
    // curl -d sends a form: the answer says what to send instead.
    expect(expectProblem(await api('POST', base, { token: t, raw: '{"name":"a"}', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415).detail).toContain('Content-Type: application/json');
    for (const body of [{}, { name: 1 }, { name: '   ' }, { name: 'a', metadata: null }]) expectProblem(await api('POST', base, { token: t, body }), 422);
    // A misspelt field is refused by name, not dropped (a PATCH of { nmae } would otherwise change nothing and answer 200).
    const typo = expectProblem(await api('POST', base, { token: t, body: { name: 'a', metdata: { room: 'lab' } } }), 422);
    expect(typo.detail).toContain('metdata');
    const [dev] = (await api('GET', base, { token: t })).body.items as { id: string }[];
    expect(dev).toBeUndefined();
    let deep: unknown = 1;
    for (let i = 0; i < 33; i++) deep = { a: deep };
    expect(expectProblem(await api('POST', base, { token: t, body: { name: 'deep', metadata: deep } }), 422).detail).toContain('32 levels');
    let ok: unknown = 1;
    for (let i = 0; i < 32; i++) ok = { a: ok };
    expect((await api('POST', base, { token: t, body: { name: 'ok', metadata: ok } })).status).toBe(201);
    expect(expectProblem(await api('POST', base, { token: t, body: { name: 'big', metadata: { s: 'x'.repeat(40_000) } } }), 422).detail).toContain('bytes');
    expect((await api('GET', base, { token: t })).body.total).toBe(1);
  });

  it('deletes a device with its connections, policy attachments and key', async () => {
    const { base, t, org } = await setup();
    const d = (await api('POST', base, { token: t, body: { name: 'd' } })).body;
    const ch = (await api('POST', `/orgs/${org.id}/channels`, { token: t, body: { name: 'c' } })).body;
    await api('POST', `/orgs/${org.id}/connections`, { token: t, body: { channel_ids: [ch.id], device_ids: [d.id] } });
    const pol = (await api('POST', `/orgs/${org.id}/policies`, { token: t, body: { name: 'p', statements: [{ effect: 'deny', actions: ['*'], resources: ['*'] }] } })).body;
    expect((await api('POST', `/orgs/${org.id}/policies/${pol.id}/attachments`, { token: t, body: { principal_type: 'device', principal_id: d.id } })).status).toBe(201);
    expect((await api('GET', '/orgs', { device: d.key })).status).toBe(200);
    const del = await api('DELETE', `${base}/${d.id}`, { token: t });
    expect(del.status).toBe(204);
    expect(del.body).toBeNull();
    expectProblem(await api('GET', `${base}/${d.id}`, { token: t }), 404);
    expectProblem(await api('DELETE', `${base}/${d.id}`, { token: t }), 404);
    expectProblem(await api('GET', '/orgs', { device: d.key }), 401);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE device_id = ?').bind(d.id).first('n')).toBe(0);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM policy_attachments WHERE principal_id = ?').bind(d.id).first('n')).toBe(0);
    expect((await api('GET', `/orgs/${org.id}/channels/${ch.id}/devices`, { token: t })).body.total).toBe(0);
  });

  it('lets a viewer read but not write, a device credential not manage devices, and nobody in without a credential', async () => {
    const { base, t, org } = await setup();
    const viewer = await newUser('viewer');
    await api('POST', `/orgs/${org.id}/members`, { token: t, body: { email: viewer.email, role: 'viewer' } });
    const d = (await api('POST', base, { token: t, body: { name: 'd' } })).body;
    const v = viewer.token;
    expect((await api('GET', base, { token: v })).body.total).toBe(1);
    expect((await api('GET', `${base}/${d.id}`, { token: v })).body.name).toBe('d');
    expectProblem(await api('POST', base, { token: v, body: { name: 'x' } }), 403);
    expectProblem(await api('POST', `${base}/bulk`, { token: v, body: { devices: [{ name: 'x' }] } }), 403);
    expectProblem(await api('PATCH', `${base}/${d.id}`, { token: v, body: { name: 'x' } }), 403);
    expectProblem(await api('POST', `${base}/${d.id}/key`, { token: v }), 403);
    expectProblem(await api('DELETE', `${base}/${d.id}`, { token: v }), 403);
    expect((await api('GET', base, { token: t })).body.total).toBe(1);
    expectProblem(await api('GET', base, { device: d.key }), 403);
    expectProblem(await api('POST', `${base}/${d.id}/key`, { device: d.key }), 403);
    expectProblem(await api('GET', base), 401);
  });

  it("shows another org's user nothing: 404 on every device route, nothing in its own lists", async () => {
    const { base, t, org } = await setup();
    const d = (await api('POST', base, { token: t, body: { name: 'secret-device', metadata: { s: 1 } } })).body;
    const stranger = await newUser('stranger');
    const own = await newOrg(stranger.token, 'other');
    const s = stranger.token;
    const calls: [string, string, unknown?][] = [
      ['POST', base, { name: 'x' }],
      ['POST', `${base}/bulk`, { devices: [{ name: 'x' }] }],
      ['GET', base],
      ['GET', `${base}?${meta({ s: 1 })}`],
      ['GET', `${base}/${d.id}`],
      ['PATCH', `${base}/${d.id}`, { name: 'x' }],
      ['POST', `${base}/${d.id}/key`],
      ['DELETE', `${base}/${d.id}`],
      ['GET', `${base}/${d.id}/channels`],
    ];
    for (const [method, path, body] of calls) {
      const r = expectProblem(await api(method, path, { token: s, body }), 404);
      expect(JSON.stringify(r)).not.toContain('secret-device');
    }
    // Its own org's routes do not reach the first org's device either.
    const mine = `/orgs/${own.id}/devices`;
    expect((await api('GET', mine, { token: s })).body).toMatchObject({ total: 0, items: [] });
    expectProblem(await api('GET', `${mine}/${d.id}`, { token: s }), 404);
    expectProblem(await api('PATCH', `${mine}/${d.id}`, { token: s, body: { name: 'x' } }), 404);
    expectProblem(await api('POST', `${mine}/${d.id}/key`, { token: s }), 404);
    expectProblem(await api('DELETE', `${mine}/${d.id}`, { token: s }), 404);
    expect((await api('GET', `${base}/${d.id}`, { token: t })).body).toMatchObject({ name: 'secret-device' });
    expect((await api('GET', '/orgs', { device: d.key })).status).toBe(200);
  });
});
