import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser } from './helpers';

describe('channels', () => {
  it('creates, bulk-creates, lists with filters, gets, updates', async () => {
    const u = await newUser();
    const org = await newOrg(u.token);
    const base = `/orgs/${org.id}/channels`;
    const one = await api('POST', base, { token: u.token, body: { name: 'telemetry', metadata: { kind: 'senml' } } });
    expect(one.status).toBe(201);
    expect(one.body).toMatchObject({ name: 'telemetry', metadata: { kind: 'senml' } });
    const bulk = await api('POST', `${base}/bulk`, { token: u.token, body: { channels: [{ name: 'alerts' }, { name: 'commands', metadata: { kind: 'json' } }] } });
    expect(bulk.body.items.map((c: { name: string }) => c.name)).toEqual(['alerts', 'commands']);
    expectProblem(await api('POST', `${base}/bulk`, { token: u.token, body: { channels: [] } }), 422);
    expect((await api('GET', base, { token: u.token })).body.items.map((c: { name: string }) => c.name)).toEqual(['telemetry', 'alerts', 'commands']);
    expect((await api('GET', `${base}?metadata=${encodeURIComponent('{"kind":"json"}')}`, { token: u.token })).body.items.map((c: { name: string }) => c.name)).toEqual(['commands']);
    expect((await api('GET', `${base}?name=ALERT`, { token: u.token })).body.total).toBe(1);
    expect((await api('GET', `${base}/${one.body.id}`, { token: u.token })).body).toEqual(one.body);
    expect((await api('PATCH', `${base}/${one.body.id}`, { token: u.token, body: { name: 'renamed' } })).body).toMatchObject({ name: 'renamed', metadata: { kind: 'senml' } });
    expectProblem(await api('GET', `${base}/${crypto.randomUUID()}`, { token: u.token }), 404);
  });

  it('deleting a channel removes its connections and its stored messages', async () => {
    const u = await newUser();
    const org = await newOrg(u.token);
    const ch = (await api('POST', `/orgs/${org.id}/channels`, { token: u.token, body: { name: 'c' } })).body;
    const d = (await api('POST', `/orgs/${org.id}/devices`, { token: u.token, body: { name: 'd' } })).body;
    await api('POST', `/orgs/${org.id}/connections`, { token: u.token, body: { channel_ids: [ch.id], device_ids: [d.id] } });
    await env.DB.prepare("INSERT INTO messages (channel_id, seq, subtopic, publisher, protocol, content_type, created, size, payload) VALUES (?, 1, '', ?, 'http', 'text/plain', 1, 2, 'hi')").bind(ch.id, d.id).run();
    await env.BLOBS.put(`channels/${ch.id}/0000000000000002`, new Uint8Array([1, 2]));
    expect((await api('DELETE', `/orgs/${org.id}/channels/${ch.id}`, { token: u.token })).status).toBe(204);
    expectProblem(await api('GET', `/orgs/${org.id}/channels/${ch.id}`, { token: u.token }), 404);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE channel_id = ?').bind(ch.id).first('n')).toBe(0);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM messages WHERE channel_id = ?').bind(ch.id).first('n')).toBe(0);
    // The blob purge runs in waitUntil; give it a moment.
    for (let i = 0; i < 50 && (await env.BLOBS.list({ prefix: `channels/${ch.id}/` })).objects.length; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await env.BLOBS.list({ prefix: `channels/${ch.id}/` })).objects).toHaveLength(0);
    expectProblem(await api('POST', `/channels/${ch.id}/messages`, { device: d.key, raw: 'x', headers: { 'content-type': 'text/plain' } }), 404);
  });
});
