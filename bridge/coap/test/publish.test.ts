import { describe, expect, it } from 'vitest';
import { Code, ContentFormat, Opt, Type, type CoapMessage } from '../../../shared/coap';
import { settle } from '../../testing/fake-clock';
import { KEY, setup, str, summary, text, uintOf, type RequestSpec } from './harness';

const PUB: RequestSpec = { code: Code.POST, path: '/channels/c1/messages/room/1', query: [`auth=${KEY}`], payload: '21.5' };

async function answer(spec: RequestSpec, limits = {}, prepare?: (s: ReturnType<typeof setup>) => void): Promise<CoapMessage> {
  const s = setup(limits);
  prepare?.(s);
  s.client.request(spec);
  await settle();
  return s.client.only();
}

describe('POST /channels/{id}/messages[/subtopic] — publish', () => {
  it('publishes once stored and answers 2.04 Changed; Content-Format maps to the content type', async () => {
    const { client, platform } = setup();
    client.request({ ...PUB, contentFormat: ContentFormat.SenmlJson, payload: '[{"n":"t","v":21.5}]' });
    await settle();
    const res = client.only();
    expect(summary(res)).toBe('ACK 2.04');
    expect(res.payload).toHaveLength(0);
    expect(platform.published).toEqual([
      { channel: 'c1', subtopic: 'room/1', publisher: 'dev-1', protocol: 'coap', contentType: 'application/senml+json', payload: text('[{"n":"t","v":21.5}]'), retain: false },
    ]);
  });

  it('maps every Content-Format of the table; none leaves it to the channel default (empty); ?retain sets retain', async () => {
    const { client, platform } = setup();
    for (const cf of [0, 42, 50, 60, 110, 112]) client.request({ ...PUB, contentFormat: cf });
    client.request({ ...PUB, path: '/channels/c1/messages', query: [`auth=${KEY}`, 'retain'] });
    client.request({ ...PUB, query: [`auth=${KEY}`, 'retain=false'] });
    await settle();
    expect(client.take().map(summary)).toEqual(new Array(8).fill('ACK 2.04'));
    expect(platform.published.map((p) => [p.contentType, p.subtopic, p.retain])).toEqual([
      ['text/plain; charset=utf-8', 'room/1', false],
      ['application/octet-stream', 'room/1', false],
      ['application/json', 'room/1', false],
      ['application/cbor', 'room/1', false],
      ['application/senml+json', 'room/1', false],
      ['application/senml+cbor', 'room/1', false],
      ['', '', true],
      ['', 'room/1', false],
    ]);
  });

  const errors: [string, RequestSpec, string, Parameters<typeof answer>[1]?, Parameters<typeof answer>[2]?][] = [
    ['4.00 for a wildcard in a publish subtopic', { ...PUB, path: '/channels/c1/messages/a/+' }, '4.00'],
    ['4.00 for an empty subtopic segment', { ...PUB, path: '/channels/c1/messages', options: [{ number: Opt.UriPath, value: new Uint8Array() }] }, '4.00'],
    ['4.00 for a bad channel id', { ...PUB, path: '/channels/a*b/messages' }, '4.00'],
    ['4.00 for a bad retain flag', { ...PUB, query: [`auth=${KEY}`, 'retain=maybe'] }, '4.00'],
    ['4.01 without a key', { ...PUB, query: [] }, '4.01'],
    ['4.01 with an unknown key', { ...PUB, query: ['auth=wrong'] }, '4.01'],
    ['4.03 when the device may not publish on the channel', { ...PUB, path: '/channels/c2/messages' }, '4.03'],
    ['4.04 for an unknown channel', { ...PUB, path: '/channels/nope/messages' }, '4.04'],
    ['4.15 for a Content-Format outside the table', { ...PUB, contentFormat: 9999 }, '4.15'],
    ['4.15 when the platform refuses the content (415)', PUB, '4.15', {}, (s) => (s.platform.refuse = { ok: false, status: 415, code: 'unsupported', message: 'bad senml' })],
    ['4.00 when the platform finds the payload invalid (400)', PUB, '4.00', {}, (s) => (s.platform.refuse = { ok: false, status: 400, code: 'invalid', message: 'bad json' })],
    ['4.03 when the platform refuses (403)', PUB, '4.03', {}, (s) => (s.platform.refuse = { ok: false, status: 403, code: 'forbidden', message: 'no' })],
    ['5.00 when something unexpected breaks', PUB, '5.00', {}, (s) => (s.platform.explode = new Error('boom'))],
  ];
  for (const [name, spec, code, limits, prepare] of errors) {
    it(name, async () => {
      const res = await answer(spec, limits, prepare);
      expect(summary(res)).toBe(`ACK ${code}`);
      expect(str(res.payload).length).toBeGreaterThan(0); // RFC 7252 §5.5.2 diagnostic payload
    });
  }

  it('4.00 for an unknown or repeated query parameter, naming it; nothing published', async () => {
    const { client, platform } = setup();
    const cases: [RequestSpec, string][] = [
      [{ ...PUB, query: [`auth=${KEY}`, 'retian=true'] }, 'unknown query parameter "retian"'],
      [{ ...PUB, query: [`auth=${KEY}`, 'auth=other'] }, 'auth given more than once'],
      [{ ...PUB, query: [`auth=${KEY}`, 'retain=true', 'retain=false'] }, 'retain given more than once'],
      [{ code: Code.GET, path: '/channels/c1/messages/room/1', query: [`auth=${KEY}`, 'retain=true'] }, 'unknown query parameter "retain"'],
    ];
    for (const [spec, words] of cases) {
      client.request(spec);
      await settle();
      const res = client.only();
      expect(summary(res)).toBe('ACK 4.00');
      expect(str(res.payload)).toContain(words);
    }
    expect(platform.published).toEqual([]);
  });

  it('a Uri-Path or Uri-Query that is not UTF-8 is a bad option (4.02 for CON, RST for NON), never a U+FFFD subtopic; "." and ".." name no resource (4.04)', async () => {
    const { client, platform } = setup();
    const bytes = (...b: number[]) => Uint8Array.from(b);
    const specs: RequestSpec[] = [
      // A fourth path segment of bytes FF FE.
      { ...PUB, path: '/channels/c1/messages', options: [{ number: Opt.UriPath, value: bytes(0xff, 0xfe) }] },
      // auth=<key> followed by a lone lead byte.
      { ...PUB, query: [], options: [{ number: Opt.UriQuery, value: new Uint8Array([...new TextEncoder().encode(`auth=${KEY}`), 0xc3, 0x28]) }] },
    ];
    for (const spec of specs) {
      client.request(spec);
      await settle();
      const res = client.only();
      expect(summary(res)).toBe('ACK 4.02');
      expect(str(res.payload)).toContain('not UTF-8');
    }
    client.request({ ...PUB, type: Type.NON, options: [{ number: Opt.UriPath, value: bytes(0xc3, 0x28) }] });
    await settle();
    expect(summary(client.only())).toBe('RST 0.00');
    for (const dots of ['.', '..']) {
      client.request({ ...PUB, path: `/channels/c1/messages/${dots}` });
      await settle();
      const res = client.only();
      expect(summary(res)).toBe('ACK 4.04');
    }
    expect(platform.published).toEqual([]);
  });

  it('4.13 with Size1 for a payload over the limit; the platform\'s 413 (the channel\'s limit, not told) without one', async () => {
    const res = await answer({ ...PUB, payload: new Uint8Array(101) }, { maxPayloadBytes: 100 });
    expect(summary(res)).toBe('ACK 4.13');
    expect(uintOf(res, Opt.Size1)).toBe(100);
    const res2 = await answer(PUB, {}, (s) => (s.platform.refuse = { ok: false, status: 413, code: 'too_large', message: 'too big' }));
    expect(summary(res2)).toBe('ACK 4.13');
    // Not ours (64 KiB): the channel refused the body under a limit of its own.
    expect(uintOf(res2, Opt.Size1)).toBeUndefined();
  });

  it('4.29 with Max-Age when an endpoint exceeds its request rate (RFC 8516), and for the platform\'s 429', async () => {
    const { client, clock, platform } = setup({ requestRate: { perSecond: 1, burst: 2 } });
    for (let i = 0; i < 3; i++) client.request(PUB);
    await settle();
    const answers = client.take();
    expect(answers.map(summary).sort()).toEqual(['ACK 2.04', 'ACK 2.04', 'ACK 4.29']);
    expect(uintOf(answers.find((m) => m.code === Code.TooManyRequests)!, Opt.MaxAge)).toBe(1);
    await clock.advance(1000);
    client.request(PUB);
    await settle();
    expect(summary(client.only())).toBe('ACK 2.04');
    platform.refuse = { ok: false, status: 429, code: 'rate', message: 'slow down', retryAfter: 7 } as never;
    await clock.advance(1000);
    client.request(PUB);
    await settle();
    const res = client.only();
    expect(summary(res)).toBe('ACK 4.29');
    expect(uintOf(res, Opt.MaxAge)).toBe(7);
  });

  it('5.03 with Max-Age when the platform is unreachable', async () => {
    const res = await answer(PUB, { retryAfterS: 9 }, (s) => (s.platform.down = true));
    expect(summary(res)).toBe('ACK 5.03');
    expect(uintOf(res, Opt.MaxAge)).toBe(9);
  });

  it('caches the key\'s principal per endpoint for authCacheMs', async () => {
    const { client, clock, platform } = setup({ authCacheMs: 10_000 });
    client.request(PUB);
    client.request(PUB);
    await settle();
    await clock.advance(5000);
    client.request(PUB);
    await settle();
    expect(platform.authenticateCalls).toBe(1);
    await clock.advance(5001);
    client.request(PUB);
    await settle();
    expect(platform.authenticateCalls).toBe(2);
    expect(client.take().map(summary)).toEqual(new Array(4).fill('ACK 2.04'));
  });

  it('presence: online at the first publish, offline after presenceIdleMs of quiet', async () => {
    const { client, clock, platform } = setup({ presenceIdleMs: 60_000 });
    client.request(PUB);
    await settle();
    expect(platform.presenceLog).toEqual([['dev-1', true]]);
    await clock.advance(30_000);
    client.request(PUB);
    await clock.advance(59_000);
    expect(platform.presenceLog).toEqual([['dev-1', true]]);
    await clock.advance(30_000);
    expect(platform.presenceLog).toEqual([['dev-1', true], ['dev-1', false]]);
  });
});
