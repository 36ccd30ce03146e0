import { runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser, worker } from './helpers';
import { writeParts } from '../../objects/writer';
import { CHANNEL_KEY, PUBLISHER_KEY, messageWhere, senmlWhere } from '../../workers/query/sql';
import { QuerySchema } from '../../workers/query/params';

/** Publishes over HTTP as the device, then drains the channel actor's outbox into D1/R2. */
async function publish(channel: string, key: string, body: BodyInit, contentType: string, subtopic = '') {
  const r = await api('POST', `/channels/${channel}/messages${subtopic ? `/${subtopic}` : ''}`, { device: key, raw: body, headers: { 'content-type': contentType } });
  if (r.status !== 202) throw new Error(`publish ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.seq as number;
}
const drain = (channel: string) => runDurableObjectAlarm(env.CHANNELS.get(env.CHANNELS.idFromName(channel)));

let t: string, org: string, ch: string, dev: { id: string; key: string }, pubOnly: { id: string; key: string };
const T0 = 1_790_000_000; // seconds

beforeAll(async () => {
  const u = await newUser();
  t = u.token;
  org = (await newOrg(t)).id;
  ch = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'telemetry' } })).body.id;
  const devs = (await api('POST', `/orgs/${org}/devices/bulk`, { token: t, body: { devices: [{ name: 'sensor' }, { name: 'writer' }] } })).body.items;
  [dev, pubOnly] = devs;
  await api('PUT', `/orgs/${org}/channels/${ch}/devices/${dev.id}`, { token: t, body: {} });
  await api('PUT', `/orgs/${org}/channels/${ch}/devices/${pubOnly.id}`, { token: t, body: { types: ['publish'] } });
  // temperatures 20..25 at T0 + 0..50 s (every 10 s) on lab/temp, humidity on lab/hum, a string, a bool
  for (let i = 0; i < 6; i++) await publish(ch, dev.key, JSON.stringify([{ bn: 'sensor/', bt: T0 + i * 10, n: 'temp', u: 'Cel', v: 20 + i }]), 'application/senml+json', 'lab/temp');
  await publish(ch, dev.key, JSON.stringify([{ bn: 'sensor/', bt: T0, n: 'hum', u: '%RH', v: 40 }, { n: 'state', vs: 'ok, "fine"\nreally' }, { n: 'door', vb: true }]), 'application/senml+json', 'lab/hum');
  await publish(ch, pubOnly.key, '{"cmd":"reboot"}', 'application/json', 'cmd/a');
  await publish(ch, pubOnly.key, new Uint8Array([0, 1, 2, 255]), 'application/octet-stream', 'blob');
  await publish(ch, dev.key, 'plain text', 'text/plain', 'office/x/y');
  expect(await drain(ch)).toBe(true);
});

const q = (query: string, path = '') => api('GET', `/channels/${ch}/messages${path}?${query}`, { token: t });

describe('message query API', () => {
  it('lists stored messages newest first, with envelopes, pagination and total', async () => {
    const r = await q('limit=3');
    expect(r.status).toBe(200);
    expect(r.body.total).toBe(10);
    expect(r.body.items.map((m: { seq: number }) => m.seq)).toEqual([10, 9, 8]);
    expect(r.body.items[0]).toMatchObject({ channel: ch, subtopic: 'office/x/y', publisher: dev.id, protocol: 'http', contentType: 'text/plain', payload: 'plain text' });
    expect(r.body.items[1]).toMatchObject({ subtopic: 'blob', size: 4, payloadUrl: `/channels/${ch}/payloads/9` });
    const asc = await q('order=asc&limit=2&offset=1');
    expect(asc.body.items.map((m: { seq: number }) => m.seq)).toEqual([2, 3]);
  });

  it('filters by subtopic (path or param; exact, #, +), publisher, protocol and time', async () => {
    const seqs = async (query: string, path = '') => ((await q(query, path)).body.items as { seq: number }[]).map((m) => m.seq).sort((a, b) => a - b);
    expect(await seqs('', '/lab/hum')).toEqual([7]);
    expect(await seqs('subtopic=lab/%23')).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await seqs('', '/lab/%23')).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await seqs('subtopic=%2B/temp')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await seqs('subtopic=office/%2B/y')).toEqual([10]);
    expect(await seqs('subtopic=office/%2B')).toEqual([]);
    expect(await seqs(`publisher=${pubOnly.id}`)).toEqual([8, 9]);
    expect(await seqs('protocol=mqtt')).toEqual([]);
    const all = (await q('order=asc')).body.items as { created: number }[];
    expect(await seqs(`from=${all[3]!.created}&to=${all[3]!.created}`)).toContain(4);
    expect(await seqs(`from=${new Date(all[9]!.created + 1).toISOString()}`)).toEqual([]);
    expectProblem(await q('subtopic=a/%2B/%23'), 400);
    expectProblem(await q('subtopic=a/b', '/a/b'), 400);
  });

  it('returns resolved SenML records with value comparators and vs/vb', async () => {
    const r = await q('format=senml&name=sensor/temp&v=23&comparator=ge&order=asc');
    expect(r.body.total).toBe(3);
    expect(r.body.items.map((x: { value: number }) => x.value)).toEqual([23, 24, 25]);
    expect(r.body.items[0]).toMatchObject({ channel: ch, name: 'sensor/temp', unit: 'Cel', time: T0 + 30, subtopic: 'lab/temp', publisher: dev.id });
    for (const [cmp, n] of [['eq', 1], ['lt', 3], ['le', 4], ['gt', 2]] as const) expect((await q(`format=senml&name=sensor/temp&v=23&comparator=${cmp}`)).body.total).toBe(n);
    expect((await q('format=senml&vs=ok, "fine"%0Areally')).body.items[0]).toMatchObject({ name: 'sensor/state', stringValue: 'ok, "fine"\nreally' });
    expect((await q('format=senml&vb=true')).body.items[0]).toMatchObject({ name: 'sensor/door', boolValue: true });
    expect((await q(`format=senml&name=sensor/temp&from=${(T0 + 15) * 1000}&to=${(T0 + 35) * 1000}`)).body.total).toBe(2);
  });

  it('returns JSON documents parsed, and binary payloads from R2', async () => {
    const r = await q('format=json');
    expect(r.body.items).toEqual([expect.objectContaining({ seq: 8, payload: { cmd: 'reboot' }, contentType: 'application/json' })]);
    const res = await worker.fetch(`http://edgeflux.test/channels/${ch}/payloads/9`, { headers: { authorization: `Bearer ${t}` } });
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([0, 1, 2, 255]);
    expectProblem(await api('GET', `/channels/${ch}/payloads/999`, { token: t }), 404);
  });

  it('aggregates SenML values into time buckets', async () => {
    const agg = async (a: string, interval?: string) => (await q(`format=senml&name=sensor/temp&aggregation=${a}&order=asc${interval ? `&interval=${interval}` : ''}`)).body.items;
    expect(await agg('avg')).toEqual([{ time: T0 * 1000, name: 'sensor/temp', value: 22.5, count: 6 }]);
    // T0 s is a whole multiple of 20 s, so the buckets start at T0, T0+20 s, T0+40 s.
    expect((await agg('min', '20s')).map((b: { time: number; value: number; count: number }) => [b.time - T0 * 1000, b.value, b.count])).toEqual([[0, 20, 2], [20_000, 22, 2], [40_000, 24, 2]]);
    const maxes = await agg('max', '1m');
    expect(maxes.reduce((s: number, b: { count: number }) => s + b.count, 0)).toBe(6);
    expect(Math.max(...maxes.map((b: { value: number }) => b.value))).toBe(25);
    expect((await agg('sum')).at(0).value).toBe(135);
    expect((await agg('count', '10s')).map((b: { count: number }) => b.count)).toEqual([1, 1, 1, 1, 1, 1]);
    expect((await q('aggregation=count')).body.items[0].value).toBe(10);
    expectProblem(await q('aggregation=avg'), 400); // needs format=senml
    expectProblem(await q('format=senml&aggregation=avg&interval=5x'), 400);
    expectProblem(await q('interval=1h'), 400);
  });

  it('exports CSV with a header and RFC 4180 quoting', async () => {
    const res = await worker.fetch(`http://edgeflux.test/channels/${ch}/messages?format=senml&vs=ok, "fine"%0Areally`, { headers: { authorization: `Bearer ${t}`, accept: 'text/csv' } });
    expect(res.headers.get('content-type')).toContain('text/csv');
    const text = await res.text();
    const [header] = text.split('\r\n');
    expect(header).toBe('seq,time,subtopic,publisher,name,channel,stringValue');
    expect(text).toContain('"ok, ""fine""\nreally"');
  });

  it('authorizes reads: subscribe-connected device and viewer yes; publish-only device no; strangers see nothing', async () => {
    expect((await api('GET', `/channels/${ch}/messages`, { device: dev.key })).status).toBe(200);
    expectProblem(await api('GET', `/channels/${ch}/messages`, { device: pubOnly.key }), 403);
    const viewer = await newUser('v');
    await api('POST', `/orgs/${org}/members`, { token: t, body: { email: viewer.email, role: 'viewer' } });
    expect((await api('GET', `/channels/${ch}/messages`, { token: viewer.token })).body.total).toBe(10);
    const stranger = await newUser('s');
    expectProblem(await api('GET', `/channels/${ch}/messages`, { token: stranger.token }), 404);
    expectProblem(await api('GET', `/channels/${ch}/payloads/9`, { token: stranger.token }), 404);
    expectProblem(await api('GET', `/channels/${ch}/messages`), 401);
  });

  it('rejects bad parameters with problem+json naming them', async () => {
    expect(expectProblem(await q('limit=5000'), 400).detail).toContain('limit');
    expect(expectProblem(await q('comparator=like'), 400).detail).toContain('comparator');
    expect(expectProblem(await q('format=xml'), 400).detail).toContain('format');
    expect(expectProblem(await q('valeu=3'), 400).detail).toMatch(/valeu|unrecognized/i);
    expect(expectProblem(await q('from=yesterday'), 400).detail).toContain('from');
    expectProblem(await q('limit=1&limit=2'), 400);
  });

  it('uses the indexes for its main query shapes', async () => {
    const plan = async (sql: string, ...params: unknown[]) => JSON.stringify((await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...params).all()).results);
    const r = `SELECT r.seq, p.publisher FROM senml_rows r JOIN publisher_keys p ON p.key = r.pub WHERE r.ch = ${CHANNEL_KEY}`;
    // The message listing's own SQL (as listPage builds it) for its filters.
    const page = (query: Record<string, string>, subtopic?: string) => {
      const w = messageWhere(ch, QuerySchema.parse(query), subtopic);
      return plan(`SELECT m.seq, p.publisher FROM ${w.from} JOIN publisher_keys p ON p.key = m.pub WHERE ${w.sql} ORDER BY ${w.orderBy('DESC')} LIMIT 100`, ...w.params);
    };
    expect(await page({})).toMatch(/SEARCH m USING (COVERING )?(INDEX sqlite_autoindex_message_rows_1|PRIMARY KEY) \(ch=\?\)/);
    expect(await page({}, 'a')).toContain('messages_channel_subtopic');
    // A time range seeks the seq range (primary key or subtopic index), not a scan from the newest message.
    expect(await page({ from: '1', to: '2' })).toMatch(/SEARCH m USING (COVERING )?(INDEX sqlite_autoindex_message_rows_1|PRIMARY KEY) \(ch=\? AND seq>\? AND seq<\?\)/);
    expect(await page({ to: '2' }, 'a')).toMatch(/messages_channel_subtopic \(ch=\? AND subtopic=\? AND seq<\?\)/);
    // A publisher takes its own index, with or without a time range.
    expect(await page({ publisher: 'dev' })).toMatch(/SEARCH m USING INDEX messages_channel_publisher \(ch=\? AND pub=\?\)/);
    expect(await page({ publisher: 'dev', from: '1', to: '2' })).toMatch(/messages_channel_publisher \(ch=\? AND pub=\? AND created>\? AND created<\?\)/);
    const records = (query: Record<string, string>) => {
      const w = senmlWhere(ch, QuerySchema.parse({ format: 'senml', ...query }), undefined);
      return plan(`SELECT r.seq, p.publisher FROM ${w.from} JOIN publisher_keys p ON p.key = r.pub WHERE ${w.sql} ORDER BY r.time DESC, r.seq DESC, r.idx DESC LIMIT 100`, ...w.params);
    };
    expect(await records({ publisher: 'dev', from: '1', to: '2' })).toMatch(/senml_channel_publisher_time \(ch=\? AND pub=\? AND time>\? AND time<\?\)/);
    // Named, not left to the planner: without statistics SQLite's choice depends on the data (at 1 M records it took the time index).
    expect(senmlWhere(ch, QuerySchema.parse({ format: 'senml', publisher: 'dev' }), undefined).from).toContain('INDEXED BY senml_channel_publisher_time');
    expect(messageWhere(ch, QuerySchema.parse({ publisher: 'dev' }), undefined).from).toContain('INDEXED BY messages_channel_publisher');
    expect(await records({ name: 'x', from: '1', to: '2' })).toMatch(/senml_channel_name_time \(ch=\? AND name=\? AND time>\? AND time<\?\)/);
    expect(await plan(`${r} AND r.name = ? AND r.time >= ? ORDER BY r.time`, ch, 'x', 0)).toContain('senml_channel_name_time');
    expect(await plan(`${r} AND r.time >= ? ORDER BY r.time`, ch, 0)).toMatch(/senml_channel_time|senml_channel_name_time/);
    expect(await plan(`${r} AND r.pub = ${PUBLISHER_KEY} AND r.time >= ? ORDER BY r.time`, ch, 'dev', 0)).toContain('senml_channel_publisher_time');
    // The views with the ids, for reading the database by hand, go through the same indexes.
    expect(await plan('SELECT * FROM messages WHERE channel_id = ? ORDER BY seq DESC LIMIT 10', ch)).toMatch(/SEARCH m USING (INDEX|PRIMARY KEY)/);
    expect(await plan('SELECT * FROM senml_records WHERE channel_id = ? AND name = ? ORDER BY time', ch, 'x')).toContain('senml_channel_name_time');
  });
});

describe('message listings over many messages: filters and pages as a plain filter would give them', () => {
  it('gives the same rows, total and order for publisher, time, subtopic, order and paging', async () => {
    const u = await newUser('m');
    const o = (await newOrg(u.token)).id;
    const c = (await api('POST', `/orgs/${o}/channels`, { token: u.token, body: { name: 'many' } })).body.id as string;
    // 300 messages as the actor stores them: created never decreases with seq, in ties of three.
    const base = 1_790_000_000_000;
    const publishers = ['dev-a', 'dev-b', 'dev-c', 'dev-rare'];
    const all = Array.from({ length: 300 }, (_, i) => {
      const seq = i + 1;
      // Runs of six from one publisher, so a publisher's messages tie on created too.
      return { seq, created: base + Math.floor(seq / 3) * 1000, publisher: seq % 50 === 0 ? 'dev-rare' : (publishers[Math.floor(seq / 6) % 3] as string), subtopic: seq % 4 === 0 ? 'b/c' : 'a' };
    });
    // Stored out of seq order, so no order can come from insertion order by accident.
    const stored = [...all].sort((x, y) => ((x.seq * 7919) % 300) - ((y.seq * 7919) % 300));
    await writeParts(env.DB, [{
      channel: c,
      publishers,
      messages: stored.map((m) => JSON.stringify([m.seq, m.subtopic, 'http', 'text/plain', m.created, 1, 'x', null, 0]).slice(1)),
      messagePublishers: stored.map((m) => publishers.indexOf(m.publisher)),
      records: [],
      recordPublishers: [],
    }]);
    const times = [undefined, base, base + 1000, base + 1500, base + 33_000, base + 99_000, base + 100_000, base + 200_000];
    let checked = 0;
    for (const publisher of [undefined, 'dev-rare', 'dev-b', 'nobody']) {
      for (const from of times) {
        for (const to of [undefined, base + 50_000, base + 50_500, base + 99_000, base + 1000]) {
          for (const subtopic of [undefined, 'a']) {
            const expected = all.filter((m) => (publisher === undefined || m.publisher === publisher) && (from === undefined || m.created >= from) && (to === undefined || m.created <= to) && (subtopic === undefined || m.subtopic === subtopic));
            const order = checked % 2 === 0 ? 'desc' : 'asc';
            const [limit, offset] = checked % 3 === 0 ? [7, 5] : [100, 0];
            const ordered = order === 'desc' ? [...expected].reverse() : expected;
            const params = new URLSearchParams({ order, limit: String(limit), offset: String(offset) });
            if (publisher !== undefined) params.set('publisher', publisher);
            if (from !== undefined) params.set('from', String(from));
            if (to !== undefined) params.set('to', String(to));
            if (subtopic !== undefined) params.set('subtopic', subtopic);
            const res = await api('GET', `/channels/${c}/messages?${params}`, { token: u.token });
            if (from !== undefined && to !== undefined && from > to) {
              expect(expectProblem(res, 400).detail).toContain('from must not be after to');
              continue;
            }
            expect(res.status, params.toString()).toBe(200);
            const got = { total: res.body.total, seqs: (res.body.items as { seq: number }[]).map((m) => m.seq) };
            expect(got, params.toString()).toEqual({ total: expected.length, seqs: ordered.slice(offset, offset + limit).map((m) => m.seq) });
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(216); // every combination but those with from after to
  });
});
