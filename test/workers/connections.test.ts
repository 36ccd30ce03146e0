import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser, checkedFetch } from './helpers';

async function setup(nCh = 2, nDev = 2) {
  const u = await newUser();
  const org = await newOrg(u.token);
  const chs = (await api('POST', `/orgs/${org.id}/channels/bulk`, { token: u.token, body: { channels: Array.from({ length: nCh }, (_, i) => ({ name: `c${i}` })) } })).body.items as { id: string }[];
  const devs = (await api('POST', `/orgs/${org.id}/devices/bulk`, { token: u.token, body: { devices: Array.from({ length: nDev }, (_, i) => ({ name: `d${i}` })) } })).body.items as { id: string; key: string }[];
  return { u, t: u.token, org: org.id, chs, devs, ch: chs.map((c) => c.id), dev: devs.map((d) => d.id), base: `/orgs/${org.id}/connections` };
}

const count = (org: string) => env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE org_id = ?').bind(org).first<number>('n');
const rows = async (org: string) =>
  (await env.DB.prepare('SELECT channel_id, device_id, can_publish, can_subscribe FROM connections WHERE org_id = ? ORDER BY channel_id, device_id').bind(org).all()).results;

describe('connections', () => {
  it('connects the cross product (both types by default), and re-connecting replaces the types', async () => {
    const { t, org, ch, dev, base } = await setup(2, 3);
    const r = await api('POST', base, { token: t, body: { channel_ids: [...ch, ch[0]], device_ids: dev } });
    expect(r.status).toBe(201);
    expect(r.body.connections).toEqual(ch.flatMap((c) => dev.map((d) => ({ channel_id: c, device_id: d, types: ['publish', 'subscribe'] }))));
    expect(await count(org)).toBe(6);
    const again = await api('POST', base, { token: t, body: { channel_ids: [ch[0]], device_ids: [dev[0]], types: ['subscribe'] } });
    expect(again.status).toBe(201);
    expect(again.body.connections).toEqual([{ channel_id: ch[0], device_id: dev[0], types: ['subscribe'] }]);
    expect(await count(org)).toBe(6);
    expect((await rows(org)).filter((x) => x.channel_id === ch[0] && x.device_id === dev[0])).toEqual([{ channel_id: ch[0], device_id: dev[0], can_publish: 0, can_subscribe: 1 }]);
    await api('POST', base, { token: t, body: { channel_ids: [ch[1]], device_ids: [dev[2]], types: ['publish'] } });
    const ofCh = await api('GET', `/orgs/${org}/channels/${ch[0]}/devices`, { token: t });
    expect(ofCh.body.total).toBe(3);
    expect(ofCh.body.items.map((d: { name: string; types: string[] }) => [d.name, d.types])).toEqual([['d0', ['subscribe']], ['d1', ['publish', 'subscribe']], ['d2', ['publish', 'subscribe']]]);
    expect(Object.keys(ofCh.body.items[0]).sort()).toEqual(['created_at', 'id', 'last_seen', 'metadata', 'name', 'online', 'types', 'updated_at']);
    const ofDev = await api('GET', `/orgs/${org}/devices/${dev[2]}/channels`, { token: t });
    expect(ofDev.body.items.map((c: { name: string; types: string[] }) => [c.name, c.types])).toEqual([['c0', ['publish', 'subscribe']], ['c1', ['publish']]]);
    expect(Object.keys(ofDev.body.items[0]).sort()).toEqual(['created_at', 'id', 'metadata', 'name', 'types', 'updated_at']);
  });

  it('refuses invalid requests as problem+json, and caps the cross product', async () => {
    const { t, org, ch, dev, base } = await setup(1, 1);
    const ids = (n: number) => Array.from({ length: n }, () => crypto.randomUUID());
    for (const body of [
      { channel_ids: ch, device_ids: dev, types: ['read'] },
      { channel_ids: ch, device_ids: dev, types: [] },
      { channel_ids: [], device_ids: dev },
      { channel_ids: ch },
      { channel_ids: ch, device_ids: [''] },
      { channel_ids: ids(40), device_ids: ids(30) },
    ]) expectProblem(await api('POST', base, { token: t, body }), 422);
    expect(expectProblem(await api('DELETE', base, { token: t, body: { channel_ids: ids(40), device_ids: ids(30) } }), 422).detail).toContain('1000');
    expectProblem(await api('PUT', `/orgs/${org}/channels/${ch[0]}/devices/${dev[0]}`, { token: t, body: { types: ['x'] } }), 422);
    expectProblem(await api('POST', base, { token: t, raw: '{', headers: { 'content-type': 'application/json' } }), 400);
    expect(await count(org)).toBe(0);
  });

  it('refuses unknown or foreign ids with 404 naming them, and writes nothing', async () => {
    const { t, org, ch, dev, base } = await setup();
    const other = await setup(1, 1);
    const missing = crypto.randomUUID();
    const r = expectProblem(await api('POST', base, { token: t, body: { channel_ids: [ch[0], missing], device_ids: [dev[0], other.dev[0]] } }), 404);
    expect(r.detail).toContain(missing);
    expect(r.detail).toContain(other.dev[0]);
    expect(r.errors).toEqual({ channel_ids: [missing], device_ids: [other.dev[0]] });
    expect(expectProblem(await api('POST', base, { token: t, body: { channel_ids: [other.ch[0]], device_ids: dev } }), 404).detail).toContain(other.ch[0]);
    expectProblem(await api('PUT', `/orgs/${org}/channels/${other.ch[0]}/devices/${dev[0]}`, { token: t, body: {} }), 404);
    expectProblem(await api('PUT', `/orgs/${org}/channels/${ch[0]}/devices/${missing}`, { token: t, body: {} }), 404);
    expect(await count(org)).toBe(0);
    expect(await count(other.org)).toBe(0);
    await api('POST', base, { token: t, body: { channel_ids: ch, device_ids: dev } });
    expectProblem(await api('DELETE', base, { token: t, body: { channel_ids: ch, device_ids: [dev[0], missing] } }), 404);
    expect(await count(org)).toBe(4);
  });

  it('connects and disconnects one by one: 201 when new, 200 when the types change', async () => {
    const { t, org, ch, dev } = await setup();
    const pair = `/orgs/${org}/channels/${ch[0]}/devices/${dev[0]}`;
    const put = await api('PUT', pair, { token: t, body: { types: ['publish'] } });
    expect(put.status).toBe(201);
    expect(put.body).toEqual({ channel_id: ch[0], device_id: dev[0], types: ['publish'] });
    const change = await api('PUT', pair, { token: t, body: {} });
    expect(change.status).toBe(200);
    expect(change.body.types).toEqual(['publish', 'subscribe']);
    expect(await rows(org)).toEqual([{ channel_id: ch[0], device_id: dev[0], can_publish: 1, can_subscribe: 1 }]);
    expect((await api('DELETE', pair, { token: t })).status).toBe(204);
    expect(expectProblem(await api('DELETE', pair, { token: t }), 404).detail).toContain('not connected');
    expectProblem(await api('DELETE', `/orgs/${org}/channels/${crypto.randomUUID()}/devices/${dev[0]}`, { token: t }), 404);
    expect(await count(org)).toBe(0);
  });

  it('disconnects in bulk: exactly the pairs given', async () => {
    const { t, org, ch, dev, base } = await setup(2, 3);
    await api('POST', base, { token: t, body: { channel_ids: ch, device_ids: dev } });
    const del = await api('DELETE', base, { token: t, body: { channel_ids: [ch[0]], device_ids: [dev[0], dev[1]] } });
    expect(del.status).toBe(204);
    expect((await rows(org)).map((x) => `${x.channel_id === ch[0] ? 'c0' : 'c1'}-${dev.indexOf(x.device_id as string)}`).sort()).toEqual(['c0-2', 'c1-0', 'c1-1', 'c1-2']);
    // Disconnecting pairs that are not connected is not an error: the call states the wanted end state.
    expect((await api('DELETE', base, { token: t, body: { channel_ids: ch, device_ids: dev } })).status).toBe(204);
    expect(await count(org)).toBe(0);
  });

  it('lists the devices of a channel and the channels of a device, paginated in a stable order', async () => {
    const { t, org, ch, dev, base } = await setup(3, 5);
    await api('POST', base, { token: t, body: { channel_ids: ch, device_ids: dev } });
    const url = `/orgs/${org}/channels/${ch[1]}/devices`;
    const p1 = await api('GET', `${url}?limit=2`, { token: t });
    const p2 = await api('GET', `${url}?limit=2&offset=2`, { token: t });
    const p3 = await api('GET', `${url}?limit=2&offset=4`, { token: t });
    expect([p1, p2, p3].map((p) => p.body.total)).toEqual([5, 5, 5]);
    expect([p1, p2, p3].flatMap((p) => p.body.items.map((d: { id: string }) => d.id))).toEqual(dev);
    expect((await api('GET', `/orgs/${org}/devices/${dev[0]}/channels?limit=2&offset=2`, { token: t })).body).toMatchObject({ total: 3, offset: 2, limit: 2, items: [{ id: ch[2] }] });
    expectProblem(await api('GET', `${url}?limit=101`, { token: t }), 400);
    expectProblem(await api('GET', `/orgs/${org}/devices/${dev[0]}/channels?offset=-2`, { token: t }), 400);
    expectProblem(await api('GET', `/orgs/${org}/channels/${crypto.randomUUID()}/devices`, { token: t }), 404);
    expectProblem(await api('GET', `/orgs/${org}/devices/${crypto.randomUUID()}/channels`, { token: t }), 404);
    const lone = (await api('POST', `/orgs/${org}/devices`, { token: t, body: { name: 'lone' } })).body;
    expect((await api('GET', `/orgs/${org}/devices/${lone.id}/channels`, { token: t })).body).toMatchObject({ total: 0, items: [] });
  });

  it('filters the devices of a channel and the channels of a device by name and metadata, counted as filtered', async () => {
    const { t, org, ch, base } = await setup(2, 1); // d0: not connected, never listed
    const made = (await api('POST', `/orgs/${org}/devices/bulk`, { token: t, body: { devices: [{ name: 'Pump-7', metadata: { room: 'lab' } }, { name: 'pump_70' }, { name: 'valve-1', metadata: { room: 'lab' } }] } })).body.items as { id: string }[];
    const ids = made.map((d) => d.id);
    await api('POST', base, { token: t, body: { channel_ids: [ch[0]], device_ids: ids } });
    const url = `/orgs/${org}/channels/${ch[0]}/devices`;
    const names = (r: { body: { items: { name: string }[] } }) => r.body.items.map((d) => d.name);
    const pump = await api('GET', `${url}?name=PUMP`, { token: t });
    expect(pump.body).toMatchObject({ total: 2, offset: 0 });
    expect(names(pump)).toEqual(['Pump-7', 'pump_70']);
    expect(names(await api('GET', `${url}?name=p_7`, { token: t }))).toEqual(['pump_70']); // `_` is literal, not LIKE's any-one
    expect(names(await api('GET', `${url}?metadata=${encodeURIComponent('{"room":"lab"}')}`, { token: t }))).toEqual(['Pump-7', 'valve-1']);
    expect((await api('GET', `${url}?name=pump&limit=1&offset=1`, { token: t })).body).toMatchObject({ total: 2, items: [{ name: 'pump_70' }] });
    expectProblem(await api('GET', `${url}?metadata=nope`, { token: t }), 400);
    // Only the devices connected to this channel, however the org's others are named.
    await api('POST', base, { token: t, body: { channel_ids: [ch[1]], device_ids: [ids[2]!] } });
    expect((await api('GET', `/orgs/${org}/channels/${ch[1]}/devices?name=pump`, { token: t })).body).toMatchObject({ total: 0, items: [] });
    await api('PATCH', `/orgs/${org}/channels/${ch[1]}`, { token: t, body: { name: 'Second' } });
    expect((await api('GET', `/orgs/${org}/devices/${ids[2]}/channels?name=seC`, { token: t })).body).toMatchObject({ total: 1, items: [{ id: ch[1], name: 'Second' }] });
  });

  it('checks every pair: a deny on one pair refuses the whole call and writes nothing', async () => {
    const { t, org, ch, dev, base } = await setup();
    const member = await newUser('m');
    await api('POST', `/orgs/${org}/members`, { token: t, body: { email: member.email, role: 'member' } });
    const statements = [{ effect: 'deny', actions: ['connections:create', 'connections:delete'], resources: [`connections/${ch[1]}/${dev[1]}`] }];
    const pol = (await api('POST', `/orgs/${org}/policies`, { token: t, body: { name: 'no', statements } })).body;
    await api('POST', `/orgs/${org}/policies/${pol.id}/attachments`, { token: t, body: { principal_type: 'member', principal_id: member.id } });
    const m = member.token;
    expect(expectProblem(await api('POST', base, { token: m, body: { channel_ids: ch, device_ids: dev } }), 403).detail).toContain(`connections/${ch[1]}/${dev[1]}`);
    expect(await count(org)).toBe(0);
    expectProblem(await api('PUT', `/orgs/${org}/channels/${ch[1]}/devices/${dev[1]}`, { token: m, body: {} }), 403);
    expect((await api('POST', base, { token: m, body: { channel_ids: [ch[0]], device_ids: dev } })).status).toBe(201);
    expect((await api('PUT', `/orgs/${org}/channels/${ch[1]}/devices/${dev[0]}`, { token: m, body: {} })).status).toBe(201);
    await api('POST', base, { token: t, body: { channel_ids: ch, device_ids: dev } });
    expectProblem(await api('DELETE', base, { token: m, body: { channel_ids: ch, device_ids: dev } }), 403);
    expectProblem(await api('DELETE', `/orgs/${org}/channels/${ch[1]}/devices/${dev[1]}`, { token: m }), 403);
    expect(await count(org)).toBe(4);
    // Listing is governed by the collection of one channel's (or one device's) connections.
    const hide = (await api('POST', `/orgs/${org}/policies`, { token: t, body: { name: 'hide', statements: [{ effect: 'deny', actions: ['connections:read'], resources: [`connections/${ch[0]}/*`] }] } })).body;
    await api('POST', `/orgs/${org}/policies/${hide.id}/attachments`, { token: t, body: { principal_type: 'member', principal_id: member.id } });
    expectProblem(await api('GET', `/orgs/${org}/channels/${ch[0]}/devices`, { token: m }), 403);
    expect((await api('GET', `/orgs/${org}/channels/${ch[1]}/devices`, { token: m })).body.total).toBe(2);
  });

  it('lets a viewer list connections but not connect or disconnect; a device cannot manage them', async () => {
    const { t, org, ch, dev, devs, base } = await setup(1, 1);
    const viewer = await newUser('viewer');
    await api('POST', `/orgs/${org}/members`, { token: t, body: { email: viewer.email, role: 'viewer' } });
    await api('POST', base, { token: t, body: { channel_ids: ch, device_ids: dev } });
    const v = viewer.token;
    expect((await api('GET', `/orgs/${org}/channels/${ch[0]}/devices`, { token: v })).body.total).toBe(1);
    expect((await api('GET', `/orgs/${org}/devices/${dev[0]}/channels`, { token: v })).body.total).toBe(1);
    expectProblem(await api('POST', base, { token: v, body: { channel_ids: ch, device_ids: dev } }), 403);
    expectProblem(await api('DELETE', base, { token: v, body: { channel_ids: ch, device_ids: dev } }), 403);
    expectProblem(await api('PUT', `/orgs/${org}/channels/${ch[0]}/devices/${dev[0]}`, { token: v, body: {} }), 403);
    expectProblem(await api('DELETE', `/orgs/${org}/channels/${ch[0]}/devices/${dev[0]}`, { token: v }), 403);
    expectProblem(await api('POST', base, { device: devs[0]!.key, body: { channel_ids: ch, device_ids: dev } }), 403);
    expect(await count(org)).toBe(1);
  });

  it("shows another org's user nothing: 404 on every connection route, and its org cannot use the first org's ids", async () => {
    const { t, org, ch, dev, base } = await setup(1, 1);
    await api('POST', base, { token: t, body: { channel_ids: ch, device_ids: dev } });
    const stranger = await setup(1, 1);
    const s = stranger.t;
    const pair = `/orgs/${org}/channels/${ch[0]}/devices/${dev[0]}`;
    const calls: [string, string, unknown?][] = [
      ['POST', base, { channel_ids: ch, device_ids: dev }],
      ['DELETE', base, { channel_ids: ch, device_ids: dev }],
      ['PUT', pair, {}],
      ['DELETE', pair],
      ['GET', `/orgs/${org}/channels/${ch[0]}/devices`],
      ['GET', `/orgs/${org}/devices/${dev[0]}/channels`],
    ];
    for (const [method, path, body] of calls) expect(JSON.stringify(expectProblem(await api(method, path, { token: s, body }), 404))).not.toContain('"d0"');
    // Through its own org: the first org's ids do not exist there.
    expectProblem(await api('POST', stranger.base, { token: s, body: { channel_ids: [ch[0]], device_ids: stranger.dev } }), 404);
    expectProblem(await api('POST', stranger.base, { token: s, body: { channel_ids: stranger.ch, device_ids: [dev[0]] } }), 404);
    expectProblem(await api('PUT', `/orgs/${stranger.org}/channels/${stranger.ch[0]}/devices/${dev[0]}`, { token: s, body: {} }), 404);
    expectProblem(await api('DELETE', `/orgs/${stranger.org}/channels/${ch[0]}/devices/${dev[0]}`, { token: s }), 404);
    expectProblem(await api('GET', `/orgs/${stranger.org}/channels/${ch[0]}/devices`, { token: s }), 404);
    expectProblem(await api('GET', `/orgs/${stranger.org}/devices/${dev[0]}/channels`, { token: s }), 404);
    expect(await count(org)).toBe(1);
    expect(await count(stranger.org)).toBe(0);
  });

  it('a connection is what lets a device publish: publish-only cannot subscribe', async () => {
    const { t, org, chs, devs } = await setup(1, 1);
    const [ch, dev] = [chs[0]!, devs[0]!];
    const publish = () => api('POST', `/channels/${ch.id}/messages`, { device: dev.key, raw: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expectProblem(await publish(), 403);
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: { types: ['publish'] } });
    expect((await publish()).status).toBe(202);
    // A refused upgrade is accepted and closed with 4000+status and a reason, so a browser can read why.
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${dev.key}` } });
    const ws = res.webSocket!;
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason })));
    ws.accept();
    const { code, reason } = await closed;
    expect(code).toBe(4403);
    expect(reason).toContain('messages:subscribe');
    // Disconnecting takes the right away on the next request.
    await api('DELETE', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t });
    expectProblem(await publish(), 403);
  });

  it('a connection removed by another isolate (straight in D1) stops HTTP publishes within REVOCATION_CACHE_TTL', async () => {
    const ttl = Number(env.REVOCATION_CACHE_TTL) * 1000;
    const { t, org, chs, devs } = await setup(1, 1);
    const [ch, dev] = [chs[0]!, devs[0]!];
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: { types: ['publish'] } });
    const publish = () => api('POST', `/channels/${ch.id}/messages`, { device: dev.key, raw: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expect((await publish()).status).toBe(202); // the decision is cached in this isolate
    const removedAt = Date.now();
    await env.DB.prepare('DELETE FROM connections WHERE channel_id = ? AND device_id = ?').bind(ch.id, dev.id).run();
    let refusedAfter = -1;
    while (Date.now() - removedAt < ttl + 1500) {
      const r = await publish();
      if (r.status === 403) {
        refusedAfter = Date.now() - removedAt;
        break;
      }
      expect(r.status).toBe(202);
      await new Promise((ok) => setTimeout(ok, 200));
    }
    expect(refusedAfter).toBeGreaterThan(0);
    expect(refusedAfter).toBeLessThanOrEqual(ttl + 500);
  }, 15_000);

  it('a live WebSocket subscriber loses what its connection loses, within REVOCATION_CACHE_TTL: publish frames first, then the socket (4403)', async () => {
    const ttl = Number(env.REVOCATION_CACHE_TTL) * 1000;
    const { t, org, chs, devs } = await setup(1, 1);
    const [ch, dev] = [chs[0]!, devs[0]!];
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: {} });
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${dev.key}` } });
    const ws = res.webSocket!;
    const frames: { type: string; id?: unknown; status?: number; envelope?: { seq: number } }[] = [];
    ws.addEventListener('message', (e) => {
      frames.push(JSON.parse(e.data as string));
    });
    const closed = new Promise<{ code: number; reason: string; at: number }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason, at: Date.now() })));
    ws.accept();
    const fromUser = () => api('POST', `/channels/${ch.id}/messages`, { token: t, raw: 'tick', headers: { 'content-type': 'text/plain' } });
    const until = async (ok: () => boolean, ms: number) => {
      for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
      return ok();
    };
    expect((await fromUser()).status).toBe(202);
    expect(await until(() => frames.some((f) => f.type === 'message'), 2000)).toBe(true);
    // 1. Publish taken away: the device's publish frames are refused within the bound; it still receives.
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: { types: ['subscribe'] } });
    const changedAt = Date.now();
    let refusedAfter = -1;
    for (let i = 0; Date.now() - changedAt < ttl + 1500; i++) {
      ws.send(JSON.stringify({ id: i, payload: 'from the device' }));
      if (await until(() => frames.some((f) => f.id === i && (f.type === 'ack' || f.type === 'error')), 1000) && frames.some((f) => f.id === i && f.type === 'error' && f.status === 403)) {
        refusedAfter = Date.now() - changedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(refusedAfter).toBeGreaterThan(0);
    expect(refusedAfter).toBeLessThanOrEqual(ttl + 1000);
    const received = frames.filter((f) => f.type === 'message').length;
    expect((await fromUser()).status).toBe(202);
    expect(await until(() => frames.filter((f) => f.type === 'message').length > received, 2000)).toBe(true);
    // 2. The connection removed: the next deliveries after the bound close the socket with 4403.
    await api('DELETE', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t });
    const removedAt = Date.now();
    let done: { code: number; reason: string; at: number } | undefined;
    void closed.then((c) => (done = c));
    while (!done && Date.now() - removedAt < ttl + 1500) {
      await fromUser();
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(done).toMatchObject({ code: 4403, reason: expect.stringContaining('permission to subscribe withdrawn') });
    expect(done!.at - removedAt).toBeLessThanOrEqual(ttl + 1000);
    // 3. Connected again at once: the new socket is not closed by the refusal the actor still holds.
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: {} });
    const again = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${dev.key}` } });
    const ws2 = again.webSocket!;
    const got: string[] = [];
    let closed2: number | undefined;
    ws2.addEventListener('message', (e) => {
      got.push(JSON.parse(e.data as string).type);
    });
    ws2.addEventListener('close', (e) => {
      closed2 = e.code;
    });
    ws2.accept();
    for (let i = 0; i < 3; i++) await fromUser();
    expect(await until(() => got.filter((x) => x === 'message').length >= 3, 3000)).toBe(true);
    expect(closed2).toBeUndefined();
    ws2.close();
  }, 25_000);

  it('a WebSocket on a channel quiet past REVOCATION_CACHE_TTL gets nothing published after its access was withdrawn; with access kept, held deliveries arrive in order', async () => {
    const ttl = Number(env.REVOCATION_CACHE_TTL) * 1000;
    const { t, org, chs, devs } = await setup(1, 2);
    const ch = chs[0]!;
    const open = async (key: string) => {
      const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${key}` } });
      expect(res.status).toBe(101);
      const ws = res.webSocket!;
      const s = { seqs: [] as number[], done: undefined as { code: number; reason: string } | undefined };
      ws.addEventListener('message', (e) => {
        const f = JSON.parse(e.data as string) as { type: string; seq?: number };
        if (f.type === 'message') s.seqs.push(f.seq!);
      });
      ws.addEventListener('close', (e) => {
        s.done = { code: e.code, reason: e.reason };
      });
      ws.accept();
      return { ws, s };
    };
    for (const d of devs) await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${d.id}`, { token: t, body: {} });
    const kept = await open(devs[0]!.key);
    const lost = await open(devs[1]!.key);
    const fromUser = async () => {
      const r = await api('POST', `/channels/${ch.id}/messages`, { token: t, raw: 'tick', headers: { 'content-type': 'text/plain' } });
      expect(r.status).toBe(202);
      return r.body.seq as number;
    };
    const until = async (ok: () => boolean, ms: number) => {
      for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
      return ok();
    };
    const first = await fromUser();
    expect(await until(() => kept.s.seqs.length === 1 && lost.s.seqs.length === 1, 2000)).toBe(true);
    // Withdrawn, then quiet past the bound: the actor's last answer for both devices is stale.
    expect((await api('DELETE', `/orgs/${org}/channels/${ch.id}/devices/${devs[1]!.id}`, { token: t })).status).toBe(204);
    await new Promise((r) => setTimeout(r, ttl + 300));
    const later = await Promise.all([fromUser(), fromUser(), fromUser(), fromUser(), fromUser()]);
    expect(await until(() => lost.s.done !== undefined && kept.s.seqs.length === 6, 3000)).toBe(true);
    expect(lost.s.done).toMatchObject({ code: 4403, reason: expect.stringContaining('permission to subscribe withdrawn') });
    // Not one message published after the bound reached the device that lost its connection…
    expect(lost.s.seqs).toEqual([first]);
    // …and the one that kept its got every one, held while the actor asked, in seq order.
    expect(kept.s.seqs).toEqual([first, ...later.sort((a, b) => a - b)]);
    expect(kept.s.done).toBeUndefined();
    kept.ws.close();
  }, 20_000);

  it('a member removed from the org is told their access ended, not that the channel they were watching is not found', async () => {
    const { u, t, org, chs } = await setup(1, 1);
    const viewer = await newUser('viewer');
    expect((await api('POST', `/orgs/${org}/members`, { token: t, body: { email: viewer.email, role: 'viewer' } })).status).toBe(201);
    const res = await checkedFetch(`http://edgeflux.test/channels/${chs[0]!.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Bearer ${viewer.token}` } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    let done: { code: number; reason: string } | undefined;
    ws.addEventListener('close', (e) => (done = { code: e.code, reason: e.reason }));
    ws.accept();
    expect(u.id).not.toBe(viewer.id);
    expect((await api('DELETE', `/orgs/${org}/members/${viewer.id}`, { token: t })).status).toBe(204);
    for (const end = Date.now() + 3000; !done && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
    expect(done).toMatchObject({ code: 4403, reason: 'permission to subscribe withdrawn: no access to this channel any more (not in its org, or the org is gone)' });
  });

  it('a WebSocket subscriber on a quiet channel is closed as soon as its access is withdrawn, with nothing published (live_channels)', async () => {
    const { t, org, chs, devs } = await setup(1, 2);
    const ch = chs[0]!;
    for (const d of devs) await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${d.id}`, { token: t, body: {} });
    const liveRow = () => env.DB.prepare('SELECT org_id FROM live_channels WHERE channel_id = ?').bind(ch.id).first<{ org_id: string }>();
    const until = async (ok: () => boolean | Promise<boolean>, ms: number) => {
      for (const end = Date.now() + ms; !(await ok()) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
      return ok();
    };
    expect(await liveRow()).toBeNull();
    const sockets = await Promise.all(
      devs.map(async (d) => {
        const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${d.key}` } });
        expect(res.status).toBe(101);
        const ws = res.webSocket!;
        const s = { ws, frames: [] as { type: string; closing?: boolean }[], done: undefined as { code: number; reason: string; at: number } | undefined };
        ws.addEventListener('message', (e) => s.frames.push(JSON.parse(e.data as string)));
        ws.addEventListener('close', (e) => (s.done = { code: e.code, reason: e.reason, at: Date.now() }));
        ws.accept();
        return s;
      }),
    );
    const [kept, lost] = sockets as [(typeof sockets)[0], (typeof sockets)[0]];
    // The actor names its channel while it has subscribers.
    expect(await until(async () => (await liveRow())?.org_id === org, 2000)).toBe(true);
    const removedAt = Date.now();
    expect((await api('DELETE', `/orgs/${org}/channels/${ch.id}/devices/${devs[1]!.id}`, { token: t })).status).toBe(204);
    // Nothing is published: the write itself makes the actor ask again, and the refusal closes the socket.
    expect(await until(() => lost.done !== undefined, 3000)).toBe(true);
    expect(lost.done).toMatchObject({ code: 4403, reason: expect.stringContaining('permission to subscribe withdrawn') });
    expect(lost.done!.at - removedAt).toBeLessThan(3000);
    expect(lost.frames.at(-1)).toMatchObject({ type: 'error', closing: true });
    expect(lost.frames.filter((f) => f.type === 'message')).toEqual([]);
    // The other device kept its connection and its socket.
    await new Promise((r) => setTimeout(r, 300));
    expect(kept.done).toBeUndefined();
    // The last subscriber gone, the row goes.
    kept.ws.close(1000, 'bye');
    expect(await until(async () => (await liveRow()) === null, 3000)).toBe(true);
  }, 20_000);

  it('an access change on a channel whose live_channels row outlived its subscribers removes the row', async () => {
    const { t, org, chs } = await setup(1, 1);
    const ch = chs[0]!;
    await env.DB.prepare('INSERT INTO live_channels (channel_id, org_id) VALUES (?, ?)').bind(ch.id, org).run();
    const key = await api('POST', `/orgs/${org}/keys`, { token: t, body: { name: 'k', scopes: ['messages:read'] } });
    expect((await api('DELETE', `/orgs/${org}/keys/${key.body.id}`, { token: t })).status).toBe(204);
    const gone = async () => (await env.DB.prepare('SELECT 1 AS x FROM live_channels WHERE channel_id = ?').bind(ch.id).first()) === null;
    for (const end = Date.now() + 3000; !(await gone()) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
    expect(await gone()).toBe(true);
  });

  it('on a busy channel a subscriber\'s permission is asked again ahead of REVOCATION_CACHE_TTL, so its deliveries are not held when the answer ages out', async () => {
    const ttl = Number(env.REVOCATION_CACHE_TTL) * 1000;
    const { t, org, chs, devs } = await setup(1, 1);
    const [ch, dev] = [chs[0]!, devs[0]!];
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: {} });
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${dev.key}` } });
    const ws = res.webSocket!;
    ws.accept();
    const stub = env.CHANNELS.get(env.CHANNELS.idFromName(ch.id));
    // What the actor would do with a delivery to its one subscriber now: send it (true) or hold it (a promise).
    const admitNow = () =>
      runInDurableObject(stub, (instance) => {
        const core = (instance as unknown as { core: { access: { admit(w: WebSocket, a: unknown): unknown }; sockets: { subscriber(w: WebSocket): { att: unknown } | null } } }).core;
        const [sock] = (instance as unknown as { ctx: DurableObjectState }).ctx.getWebSockets('subscriber');
        return core.access.admit(sock!, core.sockets.subscriber(sock!)!.att) === true;
      });
    await new Promise((r) => setTimeout(r, 300)); // the answer asked for at accept (prefetch) is in
    expect(await admitNow()).toBe(true);
    await new Promise((r) => setTimeout(r, ttl / 2 + 100));
    expect(await admitNow()).toBe(true); // past half the bound: sent, and asked again in the background
    await new Promise((r) => setTimeout(r, ttl / 2 + 100));
    // Past the first answer's bound: the newer answer is in, nothing waits.
    expect(await admitNow()).toBe(true);
    ws.close();
  }, 20_000);

  it('a WebSocket subscriber on an API key stops when the key is revoked (a key of 50 scopes, too big for the socket attachment, too)', async () => {
    const ttl = Number(env.REVOCATION_CACHE_TTL) * 1000;
    const { t, org, chs } = await setup(1, 1);
    const ch = chs[0]!;
    const scopes = [`messages:subscribe@channels/${ch.id}`, ...Array.from({ length: 49 }, () => `messages:subscribe@channels/${crypto.randomUUID()}`)];
    expect(JSON.stringify(scopes).length).toBeGreaterThan(2048); // workerd's attachment limit
    const key = await api('POST', `/orgs/${org}/keys`, { token: t, body: { name: 'wide', scopes } });
    expect(key.status).toBe(201);
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Bearer ${key.body.key}` } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const messages: unknown[] = [];
    ws.addEventListener('message', (e) => {
      if ((JSON.parse(e.data as string) as { type: string }).type === 'message') messages.push(e.data);
    });
    let done: { code: number; reason: string; at: number } | undefined;
    ws.addEventListener('close', (e) => {
      done = { code: e.code, reason: e.reason, at: Date.now() };
    });
    ws.accept();
    const fromUser = () => api('POST', `/channels/${ch.id}/messages`, { token: t, raw: 'tick', headers: { 'content-type': 'text/plain' } });
    await fromUser();
    for (let i = 0; i < 40 && messages.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(messages.length).toBe(1);
    // workerd refused the principal in the socket's attachment; the actor keeps it in memory.
    const attachments = await runInDurableObject(env.CHANNELS.get(env.CHANNELS.idFromName(ch.id)), (_instance, state) => state.getWebSockets('subscriber').map((w) => w.deserializeAttachment() as Record<string, unknown>));
    expect(attachments).toEqual([expect.objectContaining({ principalInMemory: true })]);
    expect(attachments[0]).not.toHaveProperty('principal');
    expect((await api('DELETE', `/orgs/${org}/keys/${key.body.id}`, { token: t })).status).toBe(204);
    const revokedAt = Date.now();
    while (!done && Date.now() - revokedAt < ttl + 1500) {
      await fromUser();
      await new Promise((r) => setTimeout(r, 200));
    }
    // The credential itself is gone, not one permission: 4401.
    expect(done).toMatchObject({ code: 4401, reason: expect.stringContaining('revoked') });
    expect(done!.at - revokedAt).toBeLessThanOrEqual(ttl + 1000);
  }, 20_000);

  it('rotating a device key ends the WebSockets that presented the old key (4401), within REVOCATION_CACHE_TTL; one on the new key goes on', async () => {
    const ttl = Number(env.REVOCATION_CACHE_TTL) * 1000;
    const { t, org, chs, devs } = await setup(1, 1);
    const [ch, dev] = [chs[0]!, devs[0]!];
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: {} });
    const open = async (key: string) => {
      const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${key}` } });
      expect(res.status).toBe(101);
      const ws = res.webSocket!;
      const s = { ws, messages: 0, done: undefined as { code: number; reason: string; at: number } | undefined };
      ws.addEventListener('message', (e) => {
        if ((JSON.parse(e.data as string) as { type: string }).type === 'message') s.messages++;
      });
      ws.addEventListener('close', (e) => {
        s.done = { code: e.code, reason: e.reason, at: Date.now() };
      });
      ws.accept();
      return s;
    };
    const old = await open(dev.key);
    const fromUser = () => api('POST', `/channels/${ch.id}/messages`, { token: t, raw: 'tick', headers: { 'content-type': 'text/plain' } });
    await fromUser();
    for (let i = 0; i < 40 && old.messages === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(old.messages).toBe(1);
    const rotated = await api('POST', `/orgs/${org}/devices/${dev.id}/key`, { token: t });
    expect(rotated.status).toBe(201);
    const rotatedAt = Date.now();
    const fresh = await open(rotated.body.key as string);
    while (!old.done && Date.now() - rotatedAt < ttl + 1500) {
      await fromUser();
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(old.done).toMatchObject({ code: 4401, reason: expect.stringContaining('rotated') });
    expect(old.done!.at - rotatedAt).toBeLessThanOrEqual(ttl + 1000);
    const before = fresh.messages;
    await fromUser();
    for (let i = 0; i < 40 && fresh.messages === before; i++) await new Promise((r) => setTimeout(r, 50));
    expect(fresh.messages).toBe(before + 1);
    expect(fresh.done).toBeUndefined();
    fresh.ws.close();
  }, 20_000);

  it('refuses a misspelt or unknown query parameter on publish (400) and subscribe (4400), naming it', async () => {
    const { t, org, chs, devs } = await setup(1, 1);
    const [ch, dev] = [chs[0]!, devs[0]!];
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: {} });
    const post = (query: string) => api('POST', `/channels/${ch.id}/messages/a?${query}`, { device: dev.key, raw: 'x', headers: { 'content-type': 'text/plain' } });
    expect(expectProblem(await post('retian=true'), 400).detail).toContain('"retian"');
    expect(expectProblem(await post('retain=false&retain=true'), 400).detail).toContain('retain given more than once');
    expect((await post('retain=true')).status).toBe(202);
    expect((await post(`authorization=Device%20${dev.key}`)).status).toBe(202);
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages?sinse=3`, { headers: { upgrade: 'websocket', authorization: `Device ${dev.key}` } });
    const ws = res.webSocket!;
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason })));
    ws.accept();
    expect(await closed).toMatchObject({ code: 4400, reason: expect.stringContaining('sinse') });
  });
});
