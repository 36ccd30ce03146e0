import { runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { api, expectProblem, newOrg, newUser, checkedFetch } from './helpers';

/**
 * `GET /channels/{id}/payloads/{seq}` as a download client uses it (curl -C -, a browser resuming
 * a firmware image, a cache revalidating): Range / 206 / 416 and ETag / If-None-Match / If-Range,
 * on a blob in R2 and on a text payload kept in D1 alike (RFC 9110 §13, §14).
 */
let t: string, ch: string;
const blob = new Uint8Array(100_000).map((_, i) => (i * 7919) % 251);
const text = 'héllo wörld'; // 13 bytes in UTF-8: ranges count bytes, not characters
let blobSeq: number, textSeq: number;

const get = (seq: number, headers: Record<string, string> = {}, method = 'GET') =>
  checkedFetch(`http://edgeflux.test/channels/${ch}/payloads/${seq}`, { method, headers: { authorization: `Bearer ${t}`, ...headers } });
const bytes = async (res: Response) => new Uint8Array(await res.arrayBuffer());

beforeAll(async () => {
  t = (await newUser()).token;
  const org = (await newOrg(t)).id;
  ch = (await api('POST', `/orgs/${org}/channels`, { token: t, body: { name: 'firmware' } })).body.id;
  blobSeq = (await api('POST', `/channels/${ch}/messages/fw`, { token: t, raw: blob, headers: { 'content-type': 'application/octet-stream' } })).body.seq;
  textSeq = (await api('POST', `/channels/${ch}/messages/note`, { token: t, raw: text, headers: { 'content-type': 'text/plain; charset=utf-8' } })).body.seq;
  expect(await runDurableObjectAlarm(env.CHANNELS.get(env.CHANNELS.idFromName(ch)))).toBe(true);
});

describe('payload downloads', () => {
  it('answers a whole payload with its validators and Accept-Ranges', async () => {
    const res = await get(blobSeq);
    expect(res.status).toBe(200);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toMatch(/^"[^"]+"$/);
    expect(res.headers.get('last-modified')).toMatch(/GMT$/);
    expect(res.headers.get('content-length')).toBe(String(blob.length));
    expect(await bytes(res)).toEqual(blob);
  });

  it('answers one byte range 206 with Content-Range, read from R2 or D1', async () => {
    for (const [range, start, end] of [
      ['bytes=0-9', 0, 9],
      ['bytes=99990-', 99_990, 99_999],
      ['bytes=-5', 99_995, 99_999],
      ['bytes=50000-200000', 50_000, 99_999], // a last-pos past the end stops at the end
      ['bytes=-200000', 0, 99_999], // a suffix longer than the payload is all of it
    ] as const) {
      const res = await get(blobSeq, { range });
      expect(res.status, range).toBe(206);
      expect(res.headers.get('content-range'), range).toBe(`bytes ${start}-${end}/${blob.length}`);
      expect(res.headers.get('content-length'), range).toBe(String(end - start + 1));
      expect(await bytes(res), range).toEqual(blob.slice(start, end + 1));
    }
    const res = await get(textSeq, { range: 'bytes=1-2' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 1-2/13');
    expect(new TextDecoder().decode(await bytes(res))).toBe('é');
  });

  it('answers a range that starts past the end 416 with the size, as problem JSON', async () => {
    for (const range of ['bytes=100000-', 'bytes=123456-123457', 'bytes=-0']) {
      const res = await get(blobSeq, { range });
      expect(res.status, range).toBe(416);
      expect(res.headers.get('content-range'), range).toBe(`bytes */${blob.length}`);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(((await res.json()) as { code: string }).code).toBe('range_not_satisfiable');
    }
  });

  it('ignores a Range it does not serve (another unit, several ranges, last before first): 200, the whole payload', async () => {
    for (const range of ['items=0-1', 'bytes=0-1,5-6', 'bytes=5-2', 'bytes=x-']) {
      const res = await get(blobSeq, { range });
      expect(res.status, range).toBe(200);
      expect((await bytes(res)).length, range).toBe(blob.length);
    }
  });

  it('answers If-None-Match with the current ETag 304, without a body; another tag 200', async () => {
    const etag = (await get(blobSeq)).headers.get('etag')!;
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const res = await get(blobSeq, { 'if-none-match': inm });
      expect(res.status, inm).toBe(304);
      expect(res.headers.get('etag')).toBe(etag);
      expect(await res.text()).toBe('');
    }
    expect((await get(blobSeq, { 'if-none-match': '"other"' })).status).toBe(200);
    const lastModified = (await get(textSeq)).headers.get('last-modified')!;
    expect((await get(textSeq, { 'if-modified-since': lastModified })).status).toBe(304);
    expect((await get(textSeq, { 'if-modified-since': new Date(Date.parse(lastModified) - 1000).toUTCString() })).status).toBe(200);
    // Each message has its own tag.
    expect((await get(textSeq)).headers.get('etag')).not.toBe(etag);
  });

  it('resumes only the same payload: If-Range with the current ETag 206, with another 200 whole; If-Match another 412', async () => {
    const etag = (await get(blobSeq)).headers.get('etag')!;
    expect((await get(blobSeq, { range: 'bytes=10-', 'if-range': etag })).status).toBe(206);
    const stale = await get(blobSeq, { range: 'bytes=10-', 'if-range': '"stale"' });
    expect(stale.status).toBe(200);
    expect((await bytes(stale)).length).toBe(blob.length);
    expect((await get(blobSeq, { 'if-match': etag })).status).toBe(200);
    const r = await get(blobSeq, { 'if-match': '"stale"' });
    expect(r.status).toBe(412);
    expect(((await r.json()) as { code: string }).code).toBe('precondition_failed');
  });

  it('ignores condition dates that are not HTTP-dates (RFC 9110 §13.1.3–§13.1.4); the three HTTP-date forms count', async () => {
    // Date.parse would read "1" as 2001 (412) and "2100" as a year (304).
    expect((await get(textSeq, { 'if-unmodified-since': '1' })).status).toBe(200);
    expect((await get(textSeq, { 'if-modified-since': '2100' })).status).toBe(200);
    expect((await get(textSeq, { 'if-modified-since': 'yesterday 5' })).status).toBe(200);
    for (const future of ['Fri, 01 Jan 2100 00:00:00 GMT', 'Saturday, 01-Jan-50 00:00:00 GMT', 'Fri Jan  1 00:00:00 2100']) {
      expect((await get(textSeq, { 'if-modified-since': future })).status, future).toBe(304);
    }
    expect((await get(textSeq, { 'if-unmodified-since': 'Sun, 06 Nov 1994 08:49:37 GMT' })).status).toBe(412);
    // If-Range with the exact Last-Modified date resumes; another date answers whole.
    const lastModified = (await get(textSeq, {}, 'HEAD')).headers.get('last-modified')!;
    expect((await get(textSeq, { range: 'bytes=0-0', 'if-range': lastModified })).status).toBe(206);
    expect((await get(textSeq, { range: 'bytes=0-0', 'if-range': 'Sun, 06 Nov 1994 08:49:37 GMT' })).status).toBe(200);
  });

  it('asks that nothing re-encode a payload (no-transform): a gzipped copy would not be the bytes its strong ETag and Content-Range name', async () => {
    expect((await get(textSeq)).headers.get('cache-control')).toBe('private, no-cache, no-transform');
  });

  it('refuses a seq that is not decimal digits (1e3, 0x10, 1.0, 0) with 400 rather than reading it as another number', async () => {
    for (const seq of ['1e0', '0x1', `${textSeq}.0`, '0', '-1', '%201']) {
      const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/payloads/${seq}`, { headers: { authorization: `Bearer ${t}` } });
      expect(res.status, seq).toBe(400);
    }
  });

  it('answers HEAD with the headers of the whole GET and no body: a Range on HEAD is ignored (RFC 9110 §14.2)', async () => {
    for (const range of ['bytes=0-99', 'bytes=999999-']) {
      const res = await get(blobSeq, { range }, 'HEAD');
      expect(res.status, range).toBe(200);
      expect(res.headers.get('content-range'), range).toBeNull();
      expect(res.headers.get('content-length'), range).toBe(String(blob.length));
      expect(await res.text()).toBe('');
    }
    const text304 = await get(textSeq, { 'if-none-match': (await get(textSeq, {}, 'HEAD')).headers.get('etag')! }, 'HEAD');
    expect(text304.status).toBe(304);
    expect((await get(999, {}, 'HEAD')).status).toBe(404);
    expectProblem(await api('GET', `/channels/${ch}/payloads/999`, { token: t, headers: { range: 'bytes=0-1' } }), 404);
  });
});
