import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser, worker } from './helpers';

async function setup(nCh = 2, nDev = 2) {
  const u = await newUser();
  const org = await newOrg(u.token);
  const chs = (await api('POST', `/orgs/${org.id}/channels/bulk`, { token: u.token, body: { channels: Array.from({ length: nCh }, (_, i) => ({ name: `c${i}` })) } })).body.items as { id: string }[];
  const devs = (await api('POST', `/orgs/${org.id}/devices/bulk`, { token: u.token, body: { devices: Array.from({ length: nDev }, (_, i) => ({ name: `d${i}` })) } })).body.items as { id: string; key: string }[];
  return { u, t: u.token, org: org.id, chs, devs, base: `/orgs/${org.id}/connections` };
}

describe('connections', () => {
  it('connects the cross product with types, and re-connecting replaces the types', async () => {
    const { t, org, chs, devs, base } = await setup();
    const r = await api('POST', base, { token: t, body: { channel_ids: chs.map((c) => c.id), device_ids: devs.map((d) => d.id) } });
    expect(r.status).toBe(201);
    expect(r.body.connections).toHaveLength(4);
    expect(r.body.connections[0].types).toEqual(['publish', 'subscribe']);
    const again = await api('POST', base, { token: t, body: { channel_ids: [chs[0]!.id], device_ids: [devs[0]!.id], types: ['subscribe'] } });
    expect(again.body.connections).toEqual([{ channel_id: chs[0]!.id, device_id: devs[0]!.id, types: ['subscribe'] }]);
    const ofCh = await api('GET', `/orgs/${org}/channels/${chs[0]!.id}/devices`, { token: t });
    expect(ofCh.body.items.map((d: { name: string; types: string[] }) => [d.name, d.types])).toEqual([
      ['d0', ['subscribe']],
      ['d1', ['publish', 'subscribe']],
    ]);
    expect(ofCh.body.items[0]).not.toHaveProperty('key_hash');
    const ofDev = await api('GET', `/orgs/${org}/devices/${devs[1]!.id}/channels`, { token: t });
    expect(ofDev.body).toMatchObject({ total: 2 });
    expectProblem(await api('POST', base, { token: t, body: { channel_ids: [chs[0]!.id], device_ids: [devs[0]!.id], types: ['read'] } }), 422);
  });

  it('refuses unknown or foreign ids and writes nothing', async () => {
    const { t, chs, devs, base } = await setup();
    const other = await setup(1, 1);
    const missing = crypto.randomUUID();
    const r = expectProblem(await api('POST', base, { token: t, body: { channel_ids: [chs[0]!.id, missing], device_ids: [devs[0]!.id, other.devs[0]!.id] } }), 404);
    expect(r.detail).toContain(missing);
    expect(r.detail).toContain(other.devs[0]!.id);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE channel_id = ?').bind(chs[0]!.id).first('n')).toBe(0);
  });

  it('caps the cross product', async () => {
    const { t, base } = await setup(0 + 1, 1);
    const ids = (n: number) => Array.from({ length: n }, () => crypto.randomUUID());
    expectProblem(await api('POST', base, { token: t, body: { channel_ids: ids(40), device_ids: ids(30) } }), 422);
  });

  it('connects and disconnects one by one, and in bulk', async () => {
    const { t, org, chs, devs, base } = await setup();
    const pair = `/orgs/${org}/channels/${chs[0]!.id}/devices/${devs[0]!.id}`;
    const put = await api('PUT', pair, { token: t, body: { types: ['publish'] } });
    expect(put.body).toEqual({ channel_id: chs[0]!.id, device_id: devs[0]!.id, types: ['publish'] });
    expect((await api('DELETE', pair, { token: t })).status).toBe(204);
    expectProblem(await api('DELETE', pair, { token: t }), 404);
    await api('POST', base, { token: t, body: { channel_ids: chs.map((c) => c.id), device_ids: devs.map((d) => d.id) } });
    expect((await api('DELETE', base, { token: t, body: { channel_ids: [chs[0]!.id], device_ids: devs.map((d) => d.id) } })).status).toBe(204);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE org_id = ?').bind(org).first('n')).toBe(2);
  });

  it('a deny on one pair refuses the whole bulk call', async () => {
    const { u, t, org, chs, devs, base } = await setup();
    const member = await newUser('m');
    await api('POST', `/orgs/${org}/members`, { token: t, body: { email: member.email, role: 'member' } });
    const pol = (await api('POST', `/orgs/${org}/policies`, { token: t, body: { name: 'no', statements: [{ effect: 'deny', actions: ['connections:create'], resources: [`connections/${chs[1]!.id}/*`] }] } })).body;
    await api('POST', `/orgs/${org}/policies/${pol.id}/attachments`, { token: t, body: { principal_type: 'member', principal_id: member.id } });
    expectProblem(await api('POST', base, { token: member.token, body: { channel_ids: chs.map((c) => c.id), device_ids: devs.map((d) => d.id) } }), 403);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE org_id = ?').bind(org).first('n')).toBe(0);
    expect((await api('POST', base, { token: member.token, body: { channel_ids: [chs[0]!.id], device_ids: devs.map((d) => d.id) } })).status).toBe(201);
    expect(u.id).toBeTruthy();
  });

  it('a connection is what lets a device publish: publish-only cannot subscribe', async () => {
    const { t, org, chs, devs } = await setup(1, 1);
    const [ch, dev] = [chs[0]!, devs[0]!];
    const publish = () => api('POST', `/channels/${ch.id}/messages`, { device: dev.key, raw: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expectProblem(await publish(), 403);
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: { types: ['publish'] } });
    expect((await publish()).status).toBe(202);
    // A refused upgrade is accepted and closed with 4000+status and a reason, so a browser can read why.
    const res = await worker.fetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Device ${dev.key}` } });
    const ws = res.webSocket!;
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason })));
    ws.accept();
    const { code, reason } = await closed;
    expect(code).toBe(4403);
    expect(reason).toContain('messages:subscribe');
  });
});
