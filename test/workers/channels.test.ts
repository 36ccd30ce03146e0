import { env } from 'cloudflare:workers';
import { runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser, checkedFetch } from './helpers';
import { writeParts } from '../../objects/writer';

async function setup() {
  const u = await newUser();
  const org = await newOrg(u.token);
  return { u, t: u.token, org: org.id, base: `/orgs/${org.id}/channels` };
}

const meta = (filter: unknown) => `metadata=${encodeURIComponent(typeof filter === 'string' ? filter : JSON.stringify(filter))}`;
const names = (r: { body: { items: { name: string }[] } }) => r.body.items.map((c) => c.name);

describe('channels', () => {
  it('creates and gets a channel', async () => {
    const { t, base } = await setup();
    const one = await api('POST', base, { token: t, body: { name: 'telemetry', metadata: { kind: 'senml' } } });
    expect(one.status).toBe(201);
    expect(Object.keys(one.body).sort()).toEqual(['created_at', 'id', 'metadata', 'name', 'updated_at']);
    expect(one.body).toMatchObject({ name: 'telemetry', metadata: { kind: 'senml' } });
    expect((await api('GET', `${base}/${one.body.id}`, { token: t })).body).toEqual(one.body);
    expect((await api('POST', base, { token: t, body: { name: 'bare' } })).body.metadata).toEqual({});
    expectProblem(await api('GET', `${base}/${crypto.randomUUID()}`, { token: t }), 404);
  });

  it('bulk-creates all or nothing', async () => {
    const { t, base } = await setup();
    const bulk = await api('POST', `${base}/bulk`, { token: t, body: { channels: [{ name: 'alerts' }, { name: 'commands', metadata: { kind: 'json' } }] } });
    expect(bulk.status).toBe(201);
    expect(bulk.body.items.map((c: { name: string; metadata: object }) => [c.name, c.metadata])).toEqual([['alerts', {}], ['commands', { kind: 'json' }]]);
    expect(expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { channels: [{ name: 'ok' }, { name: '' }] } }), 422).detail).toContain('channels.1.name');
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { channels: [{ name: 'ok' }, { name: 'x', metadata: [] }] } }), 422);
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { channels: [] } }), 422);
    expectProblem(await api('POST', `${base}/bulk`, { token: t, body: { channels: Array.from({ length: 101 }, (_, i) => ({ name: `c${i}` })) } }), 422);
    expect((await api('GET', base, { token: t })).body.total).toBe(2);
  });

  it('lists with stable pagination, name and metadata filters', async () => {
    const { t, base } = await setup();
    await api('POST', base, { token: t, body: { name: 'telemetry', metadata: { kind: 'senml', site: { id: 7, zone: 'north' } } } });
    await api('POST', `${base}/bulk`, {
      token: t,
      body: { channels: [{ name: 'Alerts', metadata: { kind: 'json', site: { id: 7, zone: 'south' } } }, { name: 'commands', metadata: { kind: 'json' } }, { name: 'alert-archive' }] },
    });
    const all = ['telemetry', 'Alerts', 'commands', 'alert-archive'];
    const p1 = await api('GET', `${base}?limit=3`, { token: t });
    const p2 = await api('GET', `${base}?limit=3&offset=3`, { token: t });
    expect(p1.body).toMatchObject({ total: 4, offset: 0, limit: 3 });
    expect(p2.body).toMatchObject({ total: 4, offset: 3, limit: 3 });
    expect([...names(p1), ...names(p2)]).toEqual(all);
    expectProblem(await api('GET', `${base}?limit=101`, { token: t }), 400);
    expect(names(await api('GET', `${base}?name=ALERT`, { token: t }))).toEqual(['Alerts', 'alert-archive']);
    expect(names(await api('GET', `${base}?${meta({ kind: 'json' })}`, { token: t }))).toEqual(['Alerts', 'commands']);
    expect(names(await api('GET', `${base}?${meta({ site: { id: 7 } })}`, { token: t }))).toEqual(['telemetry', 'Alerts']);
    expect(names(await api('GET', `${base}?${meta({ site: { id: 7, zone: 'south' } })}`, { token: t }))).toEqual(['Alerts']);
    expect(names(await api('GET', `${base}?name=alert&${meta({ kind: 'json' })}`, { token: t }))).toEqual(['Alerts']);
    expect((await api('GET', `${base}?${meta({ kind: 'xml' })}`, { token: t })).body).toMatchObject({ total: 0, items: [] });
    expect(expectProblem(await api('GET', `${base}?${meta('{"kind":')}`, { token: t }), 400).code).toBe('invalid_filter');
    expectProblem(await api('GET', `${base}?${meta('[]')}`, { token: t }), 400);
    expect(names(await api('GET', `${base}?sort=name`, { token: t }))).toEqual(['alert-archive', 'Alerts', 'commands', 'telemetry']);
    expect(names(await api('GET', `${base}?sort=name&order=desc&name=alert`, { token: t }))).toEqual(['Alerts', 'alert-archive']);
    expect(names(await api('GET', `${base}?order=desc&limit=2`, { token: t }))).toEqual(['alert-archive', 'commands']);
    expectProblem(await api('GET', `${base}?sort=last_seen`, { token: t }), 400); // a device's, not a channel's
  });

  it('updates name and metadata (replaced) and refuses empty or invalid updates', async () => {
    const { t, base } = await setup();
    const ch = (await api('POST', base, { token: t, body: { name: 'c', metadata: { a: 1 } } })).body;
    const up = await api('PATCH', `${base}/${ch.id}`, { token: t, body: { name: 'renamed' } });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ id: ch.id, name: 'renamed', metadata: { a: 1 }, created_at: ch.created_at });
    expect((await api('PATCH', `${base}/${ch.id}`, { token: t, body: { metadata: { b: { c: 2 } } } })).body.metadata).toEqual({ b: { c: 2 } });
    expect((await api('GET', `${base}/${ch.id}`, { token: t })).body).toMatchObject({ name: 'renamed', metadata: { b: { c: 2 } } });
    for (const body of [{}, { name: '' }, { metadata: 3 }, { metadata: { s: 'x'.repeat(40_000) } }]) expectProblem(await api('PATCH', `${base}/${ch.id}`, { token: t, body }), 422);
    expect(expectProblem(await api('PATCH', `${base}/${ch.id}`, { token: t, body: { nmae: 'typo' } }), 422).detail).toContain('nmae');
    expect((await api('GET', `${base}/${ch.id}`, { token: t })).body.name).toBe('renamed');
    expectProblem(await api('PATCH', `${base}/${crypto.randomUUID()}`, { token: t, body: { name: 'x' } }), 404);
    expectProblem(await api('POST', base, { token: t, raw: 'nope', headers: { 'content-type': 'application/json' } }), 400);
    expectProblem(await api('POST', base, { token: t, body: { metadata: {} } }), 422);
  });

  it('deleting a channel closes its live subscribers (4404) and its actor forgets everything and takes nothing more', async () => {
    const { t, org } = await setup();
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'doomed' } })).body as { id: string };
    const publish = (retain: boolean) => api('POST', `/channels/${ch.id}/messages/lab${retain ? '?retain=true' : ''}`, { token: t, raw: 'x', headers: { 'content-type': 'text/plain' } });
    expect((await publish(true)).status).toBe(202);
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch.id}/messages`, { headers: { upgrade: 'websocket', authorization: `Bearer ${t}` } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const frames: { type: string; status?: number; closing?: boolean }[] = [];
    let done: { code: number; reason: string } | undefined;
    ws.addEventListener('message', (e) => frames.push(JSON.parse(e.data as string)));
    ws.addEventListener('close', (e) => (done = { code: e.code, reason: e.reason }));
    ws.accept();
    const stub = env.CHANNELS.get(env.CHANNELS.idFromName(ch.id));
    expect(await stub.info()).toMatchObject({ seq: 1, retained: 1, subscribers: 1 });
    expect((await api('DELETE', `/orgs/${org}/channels/${ch.id}`, { token: t })).status).toBe(204);
    for (let i = 0; i < 100 && !done; i++) await new Promise((r) => setTimeout(r, 20));
    expect(done).toEqual({ code: 4404, reason: 'channel deleted' });
    expect(frames.at(-1)).toMatchObject({ type: 'error', status: 404, closing: true });
    // Nothing kept: no retained message, no window, no outbox; a publish that still reaches it (a bridge link) is refused.
    expect(await stub.info()).toMatchObject({ seq: 0, retained: 0, outbox: 0, subscribers: 0 });
    const [late] = await stub.publish([{ subtopic: 'lab', publisher: 'p', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array([1]), retain: false }], ch.id);
    expect(late).toMatchObject({ ok: false, status: 404, code: 'channel_not_found' });
    expect(await stub.info()).toMatchObject({ seq: 0, outbox: 0 });
    expectProblem(await publish(false), 404);
  });

  it('deleting a channel removes its connections and its stored messages', async () => {
    const { t, org } = await setup();
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'c' } })).body;
    const d = (await api('POST', `/orgs/${org}/devices`, { token: t, body: { name: 'd' } })).body;
    await api('POST', `/orgs/${org}/connections`, { token: t, body: { channel_ids: [ch.id], device_ids: [d.id] } });
    // A stored message with a SenML record, as the store writer writes them.
    const message = JSON.stringify([1, '', 'http', 'application/senml+json', 1, 15, '[{"n":"t","v":1}]', null, 0]).slice(1);
    const records = JSON.stringify([1, '', 1, [{ i: 0, n: 't', t: 1, v: 1 }]]).slice(1);
    await writeParts(env.DB, [{ channel: ch.id, publishers: [d.id], messages: [message], messagePublishers: [0], records: [records], recordPublishers: [0] }]);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM senml_records WHERE channel_id = ?').bind(ch.id).first('n')).toBe(1);
    await env.BLOBS.put(`channels/${ch.id}/0000000000000002`, new Uint8Array([1, 2]));
    expect((await api('DELETE', `/orgs/${org}/channels/${ch.id}`, { token: t })).status).toBe(204);
    expectProblem(await api('GET', `/orgs/${org}/channels/${ch.id}`, { token: t }), 404);
    expectProblem(await api('DELETE', `/orgs/${org}/channels/${ch.id}`, { token: t }), 404);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM connections WHERE channel_id = ?').bind(ch.id).first('n')).toBe(0);
    expect((await api('GET', `/orgs/${org}/devices/${d.id}/channels`, { token: t })).body.total).toBe(0);
    // The purger (objects/purger/) deletes the rows and blobs just after the answer.
    const stored = async () =>
      Number(await env.DB.prepare('SELECT COUNT(*) AS n FROM messages WHERE channel_id = ?').bind(ch.id).first('n')) +
      Number(await env.DB.prepare('SELECT COUNT(*) AS n FROM senml_records WHERE channel_id = ?').bind(ch.id).first('n')) +
      (await env.BLOBS.list({ prefix: `channels/${ch.id}/` })).objects.length +
      Number(await env.DB.prepare('SELECT COUNT(*) AS n FROM channel_purges WHERE channel_id = ?').bind(ch.id).first('n'));
    for (let i = 0; i < 150 && (await stored()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await stored()).toBe(0);
    expectProblem(await api('POST', `/channels/${ch.id}/messages`, { device: d.key, raw: 'x', headers: { 'content-type': 'text/plain' } }), 404);
  });

  it('lets a viewer read but not write; a device credential cannot manage channels', async () => {
    const { t, org, base } = await setup();
    const viewer = await newUser('viewer');
    await api('POST', `/orgs/${org}/members`, { token: t, body: { email: viewer.email, role: 'viewer' } });
    const ch = (await api('POST', base, { token: t, body: { name: 'c' } })).body;
    const d = (await api('POST', `/orgs/${org}/devices`, { token: t, body: { name: 'd' } })).body;
    const v = viewer.token;
    expect((await api('GET', base, { token: v })).body.total).toBe(1);
    expect((await api('GET', `${base}/${ch.id}`, { token: v })).status).toBe(200);
    expectProblem(await api('POST', base, { token: v, body: { name: 'x' } }), 403);
    expectProblem(await api('POST', `${base}/bulk`, { token: v, body: { channels: [{ name: 'x' }] } }), 403);
    expectProblem(await api('PATCH', `${base}/${ch.id}`, { token: v, body: { name: 'x' } }), 403);
    expectProblem(await api('DELETE', `${base}/${ch.id}`, { token: v }), 403);
    expectProblem(await api('GET', base, { device: d.key }), 403);
    expectProblem(await api('POST', base, { device: d.key, body: { name: 'x' } }), 403);
    expect((await api('GET', base, { token: t })).body.total).toBe(1);
  });

  it("shows another org's user nothing: 404 on every channel route, nothing in its own lists", async () => {
    const { t, base } = await setup();
    const ch = (await api('POST', base, { token: t, body: { name: 'secret-channel' } })).body;
    const stranger = await newUser('stranger');
    const own = await newOrg(stranger.token, 'other');
    const s = stranger.token;
    const calls: [string, string, unknown?][] = [
      ['POST', base, { name: 'x' }],
      ['POST', `${base}/bulk`, { channels: [{ name: 'x' }] }],
      ['GET', base],
      ['GET', `${base}/${ch.id}`],
      ['PATCH', `${base}/${ch.id}`, { name: 'x' }],
      ['DELETE', `${base}/${ch.id}`],
      ['GET', `${base}/${ch.id}/devices`],
    ];
    for (const [method, path, body] of calls) expect(JSON.stringify(expectProblem(await api(method, path, { token: s, body }), 404))).not.toContain('secret-channel');
    const mine = `/orgs/${own.id}/channels`;
    expect((await api('GET', mine, { token: s })).body).toMatchObject({ total: 0, items: [] });
    expectProblem(await api('GET', `${mine}/${ch.id}`, { token: s }), 404);
    expectProblem(await api('PATCH', `${mine}/${ch.id}`, { token: s, body: { name: 'x' } }), 404);
    expectProblem(await api('DELETE', `${mine}/${ch.id}`, { token: s }), 404);
    expectProblem(await api('GET', `${mine}/${ch.id}/devices`, { token: s }), 404);
    expect((await api('GET', `${base}/${ch.id}`, { token: t })).body.name).toBe('secret-channel');
  });

  it('reads and changes limits; members may read but not lift them; a limit takes effect at once', async () => {
    const { t, base, org } = await setup();
    const ch = (await api('POST', base, { token: t, body: { name: 'limited' } })).body;
    const limits = await api('GET', `${base}/${ch.id}/limits`, { token: t });
    expect(limits.status).toBe(200);
    expect(limits.body.publisherRate).toEqual({ perSecond: 100, burst: 200 });
    const changed = await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { maxPayloadBytes: 8, publisherRate: { perSecond: 5000, burst: 10000 } } });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ maxPayloadBytes: 8, publisherRate: { perSecond: 5000, burst: 10000 }, recentWindow: limits.body.recentWindow });
    expect((await api('GET', `${base}/${ch.id}/limits`, { token: t })).body).toEqual(changed.body);
    expect(expectProblem(await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { maxPayloadBytes: 10 * 1024 * 1024 } }), 422).detail).toContain('maxPayloadBytes');
    expectProblem(await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { nonsense: 1 } }), 422);
    expectProblem(await api('GET', `${base}/${crypto.randomUUID()}/limits`, { token: t }), 404);
    // Retention: kept forever by default; days, at least an hour.
    expect(limits.body.retentionDays).toBe(0);
    expect((await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { retentionDays: 30 } })).body.retentionDays).toBe(30);
    expect(expectProblem(await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { retentionDays: 0.01 } }), 422).detail).toContain('an hour');
    expectProblem(await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { retentionDays: '30d' } }), 422);
    expect((await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { retentionDays: 0 } })).body.retentionDays).toBe(0);

    // The new payload limit is enforced by the actor on the next publish.
    const dev = (await api('POST', `/orgs/${org}/devices`, { token: t, body: { name: 'd' } })).body;
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: { types: ['publish'] } });
    const post = (body: string) => api('POST', `/channels/${ch.id}/messages`, { headers: { authorization: `Device ${dev.key}`, 'content-type': 'text/plain' }, raw: body });
    expect((await post('12345678')).status).toBe(202);
    expectProblem(await post('123456789'), 413);

    const member = await newUser('m');
    await api('POST', `/orgs/${org}/members`, { token: t, body: { email: member.email, role: 'member' } });
    expect((await api('GET', `${base}/${ch.id}/limits`, { token: member.token })).status).toBe(200);
    expectProblem(await api('PATCH', `${base}/${ch.id}/limits`, { token: member.token, body: { maxPayloadBytes: 100 } }), 403);
  });

  it("a channel's limits are read with channels:read — the action a key's scopes and a policy can name — and not without it", async () => {
    const { t, base, org } = await setup();
    const ch = (await api('POST', base, { token: t, body: { name: 'dashboard' } })).body;
    const other = (await api('POST', base, { token: t, body: { name: 'other' } })).body;
    const key = async (scopes: string[]) => (await api('POST', `/orgs/${org}/keys`, { token: t, body: { name: 'k', scopes } })).body.key as string;
    const readsChannels = await key(['channels:read']);
    expect((await api('GET', `${base}/${ch.id}/limits`, { token: readsChannels })).status).toBe(200);
    const oneChannel = await key([`channels:read@channels/${ch.id}`]);
    expect((await api('GET', `${base}/${ch.id}/limits`, { token: oneChannel })).status).toBe(200);
    expect(expectProblem(await api('GET', `${base}/${other.id}/limits`, { token: oneChannel }), 403).detail).toBe(`channels:read on channels/${other.id}: outside the credential's scopes`);
    expect(expectProblem(await api('GET', `${base}/${ch.id}/limits`, { token: await key(['devices:read']) }), 403).detail).toContain('channels:read');
    // A member denied reading a channel does not read its limits either.
    const member = await newUser('m');
    await api('POST', `/orgs/${org}/members`, { token: t, body: { email: member.email, role: 'member' } });
    const deny = (await api('POST', `/orgs/${org}/policies`, { token: t, body: { name: 'hide', statements: [{ effect: 'deny', actions: ['channels:read'], resources: [`channels/${ch.id}`] }] } })).body;
    expect((await api('POST', `/orgs/${org}/policies/${deny.id}/attachments`, { token: t, body: { principal_type: 'member', principal_id: member.id } })).status).toBe(201);
    expect(expectProblem(await api('GET', `${base}/${ch.id}/limits`, { token: member.token }), 403).detail).toContain('denied by policy');
  });

  it("a channel's defaultContentType applies to messages published without one: SenML validated and queryable", async () => {
    const { t, base, org } = await setup();
    const ch = (await api('POST', base, { token: t, body: { name: 'senml by default' } })).body;
    expect((await api('GET', `${base}/${ch.id}/limits`, { token: t })).body.defaultContentType).toBe('application/octet-stream');
    expect(expectProblem(await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { defaultContentType: 'not a type' } }), 422).detail).toContain('defaultContentType');
    const set = await api('PATCH', `${base}/${ch.id}/limits`, { token: t, body: { defaultContentType: 'application/senml+json' } });
    expect(set.body.defaultContentType).toBe('application/senml+json');
    const dev = (await api('POST', `/orgs/${org}/devices`, { token: t, body: { name: 'd' } })).body;
    await api('PUT', `/orgs/${org}/channels/${ch.id}/devices/${dev.id}`, { token: t, body: { types: ['publish'] } });
    // Bytes, so that fetch adds no Content-Type of its own.
    const post = (body: string, headers: Record<string, string> = {}) => api('POST', `/channels/${ch.id}/messages`, { device: dev.key, headers, raw: new TextEncoder().encode(body) });
    expect((await post('[{"n":"temp","u":"Cel","v":21.5}]')).status).toBe(202);
    // Without a Content-Type the default applies, so an invalid pack is refused as SenML would be…
    expect(expectProblem(await post('[{"n":"temp"}]'), 400).detail).toMatch(/value/i);
    // …while a publisher's own Content-Type still wins.
    expect((await post('[{"n":"temp"}]', { 'content-type': 'application/octet-stream' })).status).toBe(202);
    // A Content-Type that is not a media type is refused (it would be served back as a header).
    for (const bad of [';;;', 'text', 'a b/c', 'text/plain; charset']) {
      const r = await post('x', { 'content-type': bad });
      expect(expectProblem(r, 400), bad).toMatchObject({ code: 'invalid_content_type', detail: expect.stringContaining('RFC 9110') });
    }
    expect(await runDurableObjectAlarm(env.CHANNELS.get(env.CHANNELS.idFromName(ch.id)))).toBe(true);
    const records = (await api('GET', `/channels/${ch.id}/messages?format=senml`, { token: t })).body.items;
    expect(records).toEqual([expect.objectContaining({ name: 'temp', unit: 'Cel', value: 21.5 })]);
    const messages = (await api('GET', `/channels/${ch.id}/messages?order=asc`, { token: t })).body.items as { contentType: string }[];
    expect(messages.map((m) => m.contentType)).toEqual(['application/senml+json', 'application/octet-stream']);
  });
});
