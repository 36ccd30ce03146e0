import { describe, expect, it } from 'vitest';
import { Code, Opt, blockOption, decodeBlock, decodeUint, uintOption, type Block, type CoapMessage, type CoapOption } from '../../../shared/coap';
import { FakeClock, settle } from '../../testing/fake-clock';
import { KEPT_PER_ENDPOINT, Representations, UPLOADS_PER_ENDPOINT } from '../blockwise';
import { resolveLimits } from '../limits';
import { Client, KEY, opt, setup, str, summary, type RequestSpec } from './harness';

const PUB: RequestSpec = { code: Code.POST, path: '/channels/c1/messages/fw', query: [`auth=${KEY}`], contentFormat: 42 };
const GET: RequestSpec = { code: Code.GET, path: '/channels/c1/messages/fw', query: [`auth=${KEY}`] };
const body = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7) % 251);
const blockOf = (m: CoapMessage, n: number): Block | undefined => {
  const o = opt(m, n);
  return o && decodeBlock(o.value);
};

async function upload(client: Client, data: Uint8Array, szx: number, extra: CoapOption[] = []): Promise<CoapMessage[]> {
  const size = 2 ** (szx + 4);
  const answers: CoapMessage[] = [];
  for (let num = 0; num * size < data.length; num++) {
    const more = (num + 1) * size < data.length;
    client.request({ ...PUB, payload: data.slice(num * size, (num + 1) * size), options: [blockOption(Opt.Block1, { num, more, szx }), ...(num === 0 ? extra : [])] });
    await settle();
    answers.push(client.only());
  }
  return answers;
}

describe('Block1 uploads (RFC 7959 §2.3)', () => {
  it('reassembles a 3000-byte body sent in 1024-byte blocks: 2.31, 2.31, then 2.04 — published once, whole', async () => {
    const { client, platform } = setup();
    const data = body(3000);
    const answers = await upload(client, data, 6);
    expect(answers.map(summary)).toEqual(['ACK 2.31', 'ACK 2.31', 'ACK 2.04']);
    expect(answers.map((a) => blockOf(a, Opt.Block1))).toEqual([
      { num: 0, more: true, szx: 6 },
      { num: 1, more: true, szx: 6 },
      { num: 2, more: false, szx: 6 },
    ]);
    expect(platform.published).toHaveLength(1);
    expect(platform.published[0]!.payload).toEqual(data);
    expect(platform.published[0]!.contentType).toBe('application/octet-stream');
  });

  it('honours the client\'s SZX (64-byte blocks)', async () => {
    const { client, platform } = setup();
    const data = body(200);
    const answers = await upload(client, data, 2);
    expect(answers.map(summary)).toEqual(['ACK 2.31', 'ACK 2.31', 'ACK 2.31', 'ACK 2.04']);
    expect(platform.published.map((p) => p.payload)).toEqual([data]);
  });

  it('the final block\'s retransmission (same Message ID) gets the same 2.04 and does not publish again', async () => {
    const { client, platform } = setup();
    client.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 0 })] });
    await settle();
    client.take();
    const final = client.request({ ...PUB, payload: body(5), options: [blockOption(Opt.Block1, { num: 1, more: false, szx: 0 })] });
    await settle();
    const res = client.only();
    client.send(final);
    await settle();
    expect(client.only()).toEqual(res);
    expect(platform.published).toHaveLength(1);
  });

  it('4.08 for a gap or a continuation with no upload in progress; the upload is dropped', async () => {
    const { client, platform } = setup();
    client.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 0 })] });
    client.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num: 2, more: true, szx: 0 })] });
    client.request({ ...PUB, payload: body(4), options: [blockOption(Opt.Block1, { num: 1, more: false, szx: 0 })] });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 4.08', 'ACK 4.08']);
    expect(platform.published).toHaveLength(0);
  });

  it('4.13 with Size1 when Size1 announces too much, or when the blocks add up to too much', async () => {
    const { client, platform } = setup({ maxPayloadBytes: 100 });
    client.request({ ...PUB, payload: body(64), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 2 }), uintOption(Opt.Size1, 500)] });
    await settle();
    const early = client.only();
    expect(summary(early)).toBe('ACK 4.13');
    expect(decodeUint(opt(early, Opt.Size1)!.value)).toBe(100);
    const answers = await upload(client, body(192), 2);
    expect(answers.map(summary)).toEqual(['ACK 2.31', 'ACK 4.13', 'ACK 4.08']); // the refused upload is gone
    expect(platform.published).toHaveLength(0);
  });

  it('4.00 for a non-final block of the wrong size, or SZX 7', async () => {
    const { client } = setup();
    client.request({ ...PUB, payload: body(10), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 0 })] });
    client.request({ ...PUB, payload: body(10), options: [{ number: Opt.Block1, value: Uint8Array.of(0x0f) }] });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 4.00', 'ACK 4.00']);
  });

  it('two bodies uploaded to one resource at once from one endpoint, each keeping its token (as the npm coap package does), are two uploads', async () => {
    const { client, platform } = setup();
    const a = new Uint8Array(80).fill(0x41);
    const b = new Uint8Array(80).fill(0x42);
    const block = (token: number, data: Uint8Array, num: number) =>
      client.request({ ...PUB, token: Uint8Array.of(token), payload: data.slice(num * 32, num * 32 + 32), options: [blockOption(Opt.Block1, { num, more: (num + 1) * 32 < data.length, szx: 1 })] });
    for (const num of [0, 1, 2]) {
      block(1, a, num);
      block(2, b, num);
    }
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 2.31', 'ACK 2.31', 'ACK 2.31', 'ACK 2.04', 'ACK 2.04']);
    expect(platform.published.map((p) => p.payload)).toEqual([a, b]);
  });

  it('two bodies uploaded to one resource at once, a new token on every block (as libcoap does), are told apart by their Request-Tags (RFC 9175 §3)', async () => {
    const { client, platform } = setup();
    const a = new Uint8Array(80).fill(0x41);
    const b = new Uint8Array(80).fill(0x42);
    let token = 0;
    const block = (tag: number, data: Uint8Array, num: number) =>
      client.request({
        ...PUB, token: Uint8Array.of(++token), payload: data.slice(num * 32, num * 32 + 32),
        options: [blockOption(Opt.Block1, { num, more: (num + 1) * 32 < data.length, szx: 1 }), uintOption(Opt.Size1, data.length), { number: Opt.RequestTag, value: Uint8Array.of(0x70, tag) }],
      });
    for (const num of [0, 1, 2]) {
      block(1, a, num);
      block(2, b, num);
    }
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 2.31', 'ACK 2.31', 'ACK 2.31', 'ACK 2.04', 'ACK 2.04']);
    expect(platform.published.map((p) => p.payload)).toEqual([a, b]);
  });

  it('a refused first block of another body (another token) leaves the upload in progress alone', async () => {
    const { client, platform } = setup({ maxPayloadBytes: 100 });
    const a = new Uint8Array(48).fill(0x41);
    client.request({ ...PUB, token: Uint8Array.of(1), payload: a.slice(0, 32), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 1 })] });
    client.request({ ...PUB, token: Uint8Array.of(2), payload: new Uint8Array(32), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 1 }), uintOption(Opt.Size1, 500)] });
    client.request({ ...PUB, token: Uint8Array.of(1), payload: a.slice(32), options: [blockOption(Opt.Block1, { num: 1, more: false, szx: 1 })] });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 4.13', 'ACK 2.04']);
    expect(platform.published.map((p) => p.payload)).toEqual([a]);
  });

  it('a key at its 8 uploads makes room for a new one before the server-wide limit is asked: 2.31, not 5.03', async () => {
    const { client, platform } = setup({ maxPendingUploads: 8 });
    const first = (token: number) => client.request({ ...PUB, token: Uint8Array.of(token), payload: body(16), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 0 })] });
    for (let t = 1; t <= 9; t++) first(t);
    await settle();
    expect(client.take().map(summary)).toEqual(Array(9).fill('ACK 2.31'));
    // The ninth took the first's place; it goes on.
    client.request({ ...PUB, token: Uint8Array.of(9), payload: body(4), options: [blockOption(Opt.Block1, { num: 1, more: false, szx: 0 })] });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.04']);
    expect(platform.published).toHaveLength(1);
  });

  it('one endpoint cannot fill maxPendingUploads: past UPLOADS_PER_ENDPOINT its own oldest upload goes, and another endpoint\'s upload is taken', async () => {
    const { client, platform, server } = setup({ maxPendingUploads: UPLOADS_PER_ENDPOINT + 1 });
    const other = new Client(server, { address: '192.0.2.99', port: 5000, family: 'IPv4' });
    const first = (c: Client, tag: number) => c.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 0 }), { number: Opt.RequestTag, value: Uint8Array.of(tag) }] });
    const last = (c: Client, tag: number) => c.request({ ...PUB, payload: body(4), options: [blockOption(Opt.Block1, { num: 1, more: false, szx: 0 }), { number: Opt.RequestTag, value: Uint8Array.of(tag) }] });
    for (let tag = 0; tag < UPLOADS_PER_ENDPOINT + 4; tag++) first(client, tag);
    await settle();
    expect(client.take().map(summary)).toEqual(Array(UPLOADS_PER_ENDPOINT + 4).fill('ACK 2.31'));
    first(other, 0);
    await settle();
    expect(other.take().map(summary)).toEqual(['ACK 2.31']);
    // The endpoint's oldest uploads went; its newest go on; the other endpoint's too.
    last(client, 0);
    last(client, UPLOADS_PER_ENDPOINT + 3);
    last(other, 0);
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 4.08', 'ACK 2.04']);
    expect(other.take().map(summary)).toEqual(['ACK 2.04']);
    expect(platform.published).toHaveLength(2);
  });

  it('a stray block (no upload\'s token, no upload\'s offset) among several uploads gets 4.08 and touches none of them', async () => {
    const { client, platform } = setup();
    const a = new Uint8Array(48).fill(0x41);
    const b = new Uint8Array(80).fill(0x42);
    const block = (token: number, data: Uint8Array, num: number) =>
      client.request({ ...PUB, token: Uint8Array.of(token), payload: data.slice(num * 16, num * 16 + 16), options: [blockOption(Opt.Block1, { num, more: (num + 1) * 16 < data.length, szx: 0 })] });
    block(1, a, 0);
    block(2, b, 0);
    block(2, b, 1);
    block(2, b, 2);
    await settle();
    expect(client.take().map(summary)).toEqual(Array(4).fill('ACK 2.31'));
    // Token 3, at byte 64: continues neither (a is at 16, b at 48).
    client.request({ ...PUB, token: Uint8Array.of(3), payload: new Uint8Array(16).fill(0x58), options: [blockOption(Opt.Block1, { num: 4, more: false, szx: 0 })] });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 4.08']);
    block(1, a, 1);
    block(1, a, 2);
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 2.04']);
    block(2, b, 3);
    block(2, b, 4);
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 2.04']);
    expect(platform.published.map((p) => p.payload)).toEqual([a, b]);
  });

  it('a block sent with another credential (another device behind the same address) does not continue an upload', async () => {
    const { client, platform } = setup();
    platform.addDevice('dev-3', 'key-dev-3').addChannel('c1', { publish: ['dev-1', 'dev-3'] });
    client.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 0 })] });
    client.request({ ...PUB, query: ['auth=key-dev-3'], payload: body(4), options: [blockOption(Opt.Block1, { num: 1, more: false, szx: 0 })] });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 4.08']);
    expect(platform.published).toHaveLength(0);
  });

  it('a partial upload expires after blockTimeoutMs: its continuation then gets 4.08', async () => {
    const { client, clock, server } = setup({ blockTimeoutMs: 30_000 });
    client.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num: 0, more: true, szx: 0 })] });
    await settle();
    expect(server.stats().pendingUploads).toBe(1);
    await clock.advance(30_000);
    expect(server.stats().pendingUploads).toBe(0);
    client.take();
    client.request({ ...PUB, payload: body(4), options: [blockOption(Opt.Block1, { num: 1, more: false, szx: 0 })] });
    await settle();
    expect(summary(client.only())).toBe('ACK 4.08');
  });
});

describe('block-wise transfers and the request rates', () => {
  it('an upload counts as one request: 64 KiB in 16-byte blocks under a rate of 1/s, burst 2', async () => {
    const { client, platform } = setup({ requestRate: { perSecond: 1, burst: 2 } });
    const data = body(65_536);
    const answers = await upload(client, data, 0);
    expect(answers).toHaveLength(4096);
    expect(answers.slice(0, -1).every((a) => a.code === Code.Continue)).toBe(true);
    expect(summary(answers.at(-1)!)).toBe('ACK 2.04');
    expect(platform.published.map((p) => p.payload)).toEqual([data]);
    // It took one token of the two: one more request passes, the next is over the rate.
    client.request({ ...PUB, payload: body(3) });
    client.request({ ...PUB, payload: body(3) });
    await settle();
    expect(client.take().map(summary).sort()).toEqual(['ACK 2.04', 'ACK 4.29']);
  });

  it('only a block that moves the transfer on is free: a repeated upload block or download block is counted', async () => {
    const { client, platform } = setup({ requestRate: { perSecond: 1, burst: 2 } });
    const up = (num: number) => client.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num, more: true, szx: 0 })] });
    up(0);
    await settle();
    up(1); // the next block: free
    await settle();
    up(1); // the same again (a rewind): counted
    await settle();
    up(1); // and again: counted, and over the burst
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.31', 'ACK 2.31', 'ACK 2.31', 'ACK 4.29']);
    const t2 = setup({ requestRate: { perSecond: 1, burst: 2 } });
    await t2.platform.inject('c1', 'fw', body(100), 'application/octet-stream', true);
    const down = (num: number) => t2.client.request({ ...GET, options: [blockOption(Opt.Block2, { num, more: false, szx: 0 })] });
    for (const num of [0, 1, 1, 1]) {
      down(num);
      await settle();
    }
    expect(t2.client.take().map(summary)).toEqual(['ACK 2.05', 'ACK 2.05', 'ACK 2.05', 'ACK 4.29']);
    expect(platform.published).toEqual([]);
  });

  it('a block 1+ with no upload in progress is counted (and answered 4.08), so it cannot bypass the rates', async () => {
    const { client } = setup({ requestRate: { perSecond: 1, burst: 2 } });
    for (let i = 0; i < 3; i++) client.request({ ...PUB, payload: body(16), options: [blockOption(Opt.Block1, { num: 1, more: true, szx: 0 })] });
    await settle();
    expect(client.take().map(summary).sort()).toEqual(['ACK 4.08', 'ACK 4.08', 'ACK 4.29']);
  });

  it('a download counts as one request: every block of a 5,000-byte message in 16-byte blocks under a rate of 1/s', async () => {
    const { client, platform } = setup({ requestRate: { perSecond: 1, burst: 1 } });
    await platform.inject('c1', 'fw', body(5000), 'application/octet-stream', true);
    const got: number[] = [];
    for (let num = 0; ; num++) {
      client.request({ ...GET, options: [blockOption(Opt.Block2, { num, more: false, szx: 0 })] });
      await settle();
      const res = client.only();
      expect(summary(res), `block ${num}`).toBe('ACK 2.05');
      got.push(...res.payload);
      if (!blockOf(res, Opt.Block2)!.more) break;
    }
    expect(Uint8Array.from(got)).toEqual(body(5000));
    // The transfer is over: a new GET of block 1 starts a read of its own, and is counted.
    client.request({ ...GET, options: [blockOption(Opt.Block2, { num: 1, more: false, szx: 0 })] });
    await settle();
    expect(summary(client.only())).toBe('ACK 4.29');
  });
  it('a later block asked for with another credential (auth=) is a request of its own: counted, and read for that principal, not from the copy kept for the first', async () => {
    const { client, platform } = setup({ requestRate: { perSecond: 1, burst: 1 } });
    await platform.inject('c1', 'fw', new Uint8Array(300).fill(0x41), 'application/octet-stream', true);
    const get = (num: number, key: string) => client.request({ ...GET, query: [`auth=${key}`], options: [blockOption(Opt.Block2, { num, more: false, szx: 0 })] });
    get(0, KEY);
    await settle();
    expect(summary(client.only())).toBe('ACK 2.05');
    // Block 1 at the offset reached, but with dev-2's key: not a continuation of dev-1's transfer.
    get(1, 'key-dev-2');
    await settle();
    expect(summary(client.only())).toBe('ACK 4.29');
    // dev-1's own next block still moves its transfer on for free.
    get(1, KEY);
    await settle();
    expect(summary(client.only())).toBe('ACK 2.05');
    // And with room in the rates, dev-2's block 1 is read afresh for dev-2: the newer message's.
    const t2 = setup();
    await t2.platform.inject('c1', 'fw', new Uint8Array(300).fill(0x41), 'application/octet-stream', true);
    t2.client.request({ ...GET, options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 0 })] });
    await settle();
    expect(t2.client.only().payload[0]).toBe(0x41);
    await t2.platform.inject('c1', 'fw', new Uint8Array(300).fill(0x42), 'application/octet-stream', true);
    t2.client.request({ ...GET, query: ['auth=key-dev-2'], options: [blockOption(Opt.Block2, { num: 1, more: false, szx: 0 })] });
    await settle();
    expect(t2.client.only().payload[0]).toBe(0x42);
  });
});

describe('Block2 downloads (RFC 7959 §2.4)', () => {
  async function retained(n: number) {
    const s = setup();
    await s.platform.inject('c1', 'fw', body(n), 'application/octet-stream', true);
    return s;
  }

  it('a representation over 1024 bytes goes in 1024-byte blocks with Size2, fetched block by block', async () => {
    const { client } = await retained(2500);
    const got: Uint8Array[] = [];
    for (let num = 0; ; num++) {
      client.request({ ...GET, options: num === 0 ? [] : [blockOption(Opt.Block2, { num, more: false, szx: 6 })] });
      await settle();
      const res = client.only();
      expect(summary(res)).toBe('ACK 2.05');
      const b = blockOf(res, Opt.Block2)!;
      expect(b).toMatchObject({ num, szx: 6 });
      if (num === 0) expect(decodeUint(opt(res, Opt.Size2)!.value)).toBe(2500);
      got.push(res.payload);
      if (!b.more) break;
    }
    expect(got.map((g) => g.length)).toEqual([1024, 1024, 452]);
    expect(Uint8Array.from(got.flatMap((g) => [...g]))).toEqual(body(2500));
  });

  it('honours a smaller SZX asked for by the client, and 4.02 for a block past the end', async () => {
    const { client } = await retained(100);
    client.request({ ...GET, options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 1 })] });
    client.request({ ...GET, options: [blockOption(Opt.Block2, { num: 3, more: false, szx: 1 })] });
    client.request({ ...GET, options: [blockOption(Opt.Block2, { num: 4, more: false, szx: 1 })] });
    await settle();
    const [first, last, past] = client.take();
    expect([first!.payload.length, blockOf(first!, Opt.Block2)]).toEqual([32, { num: 0, more: true, szx: 1 }]);
    expect([last!.payload.length, blockOf(last!, Opt.Block2)]).toEqual([4, { num: 3, more: false, szx: 1 }]);
    expect(summary(past!)).toBe('ACK 4.02');
  });

  it('a notification\'s later blocks fetched with the observation\'s own request (Observe: 0, same token, as the npm coap package does) answer with its Observe number', async () => {
    const { client, platform, server } = setup();
    const token = Uint8Array.of(1);
    const observeGet = (num: number) => client.request({ ...GET, observe: 0, token, options: [blockOption(Opt.Block2, { num, more: false, szx: 4 })] });
    observeGet(0);
    await settle();
    client.take();
    await platform.inject('c1', 'fw', body(600), 'application/octet-stream');
    await settle();
    const n = client.only();
    const number = decodeUint(opt(n, Opt.Observe)!.value);
    const parts = [n.payload];
    for (let num = 1; num < 3; num++) {
      observeGet(num);
      await settle();
      const res = client.only();
      // Without Observe the answer to a registration says the observation is over (RFC 7641 §3.2),
      // and the npm coap client dropped the whole notification.
      expect(opt(res, Opt.Observe) && decodeUint(opt(res, Opt.Observe)!.value)).toBe(number);
      parts.push(res.payload);
    }
    expect(Uint8Array.from(parts.flatMap((p) => [...p]))).toEqual(body(600));
    expect(server.stats().observers).toBe(1); // still observing, and once
  });

  it('a newer notification waits while the observation\'s own requests fetch the blocks of one: the client never gets one spliced from two (nor from a plain GET\'s answer)', async () => {
    const { client, platform } = setup();
    const token = Uint8Array.of(1);
    const observeGet = (num: number) => client.request({ ...GET, observe: 0, token, options: [blockOption(Opt.Block2, { num, more: false, szx: 2 })] });
    observeGet(0);
    await settle();
    client.take();
    const a = new Uint8Array(300).fill(0x41);
    const b = new Uint8Array(300).fill(0x42);
    await platform.inject('c1', 'fw', a, 'application/octet-stream');
    await platform.inject('c1', 'fw', b, 'application/octet-stream');
    await settle();
    // Fetches every notification block by block, as the npm coap package does; returns each one whole with its last block's Observe.
    const fetchRest = async (first: CoapMessage): Promise<[number | undefined, Uint8Array]> => {
      const parts = [first.payload];
      let last = first;
      for (let num = 1; blockOf(last, Opt.Block2)!.more; num++) {
        // A plain GET of the same resource from the same endpoint meanwhile (its own answer kept per endpoint and path).
        if (num === 2) {
          client.request({ ...GET, options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 2 })] });
          await settle();
          client.take();
        }
        observeGet(num);
        await settle();
        const got = client.take();
        last = got[0]!;
        parts.push(last.payload);
        // Nothing else meanwhile: the newer notification waits until the answer with the last block is sent.
        expect(got.map(summary)).toEqual(blockOf(last, Opt.Block2)!.more ? ['ACK 2.05'] : ['ACK 2.05', ...got.slice(1).map(() => 'NON 2.05')]);
        after = got.slice(1);
      }
      const o = opt(last, Opt.Observe);
      return [o && decodeUint(o.value), Uint8Array.from(parts.flatMap((p) => [...p]))];
    };
    let after: CoapMessage[] = [];
    const [first] = client.take();
    expect(first && opt(first, Opt.Observe)).toBeDefined();
    const number = decodeUint(opt(first!, Opt.Observe)!.value);
    expect(await fetchRest(first!)).toEqual([number, a]);
    // The last block of A served: B goes now, after it.
    await settle();
    const next = [...after, ...client.take()];
    expect(next).toHaveLength(1);
    after = [];
    expect(decodeUint(opt(next[0]!, Opt.Observe)!.value)).toBe(number + 1);
    expect(await fetchRest(next[0]!)).toEqual([number + 1, b]);
    expect(after).toEqual([]);
  });

  it('a notification whose later blocks are not fetched holds newer ones for observeBlockWaitMs only', async () => {
    const { client, platform, clock } = setup({ observeBlockWaitMs: 2000 });
    client.request({ ...GET, observe: 0, token: Uint8Array.of(1), options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 2 })] });
    await settle();
    client.take();
    await platform.inject('c1', 'fw', body(300), 'application/octet-stream');
    await platform.inject('c1', 'fw', 'small', 'text/plain');
    await settle();
    expect(client.take()).toHaveLength(1);
    await clock.advance(1999);
    await settle();
    expect(client.take()).toHaveLength(0);
    await clock.advance(1);
    await settle();
    expect(str(client.only().payload)).toBe('small');
  });

  it('a notification whose later blocks are not fetched stops holding newer ones when it is forgotten (blockTimeoutMs), even before observeBlockWaitMs', async () => {
    const { client, platform, clock } = setup({ blockTimeoutMs: 1000, observeBlockWaitMs: 5000 });
    client.request({ ...GET, observe: 0, token: Uint8Array.of(1), options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 2 })] });
    await settle();
    client.take();
    await platform.inject('c1', 'fw', body(300), 'application/octet-stream');
    await platform.inject('c1', 'fw', 'small', 'text/plain');
    await settle();
    expect(client.take()).toHaveLength(1);
    await clock.advance(999);
    await settle();
    expect(client.take()).toHaveLength(0);
    // The client stopped fetching: the notification is forgotten, and what it held goes now.
    await clock.advance(1);
    await settle();
    expect(str(client.only().payload)).toBe('small');
  });

  it('a notification whose later blocks are fetched with another request (libcoap), slowly but within blockTimeoutMs of each other, keeps holding newer ones until its last block', async () => {
    const { client, platform, clock } = setup({ blockTimeoutMs: 1000, observeBlockWaitMs: 5000 });
    client.request({ ...GET, observe: 0, token: Uint8Array.of(1), options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 2 })] });
    await settle();
    client.take();
    const big = body(300);
    await platform.inject('c1', 'fw', big, 'application/octet-stream');
    await platform.inject('c1', 'fw', 'small', 'text/plain');
    await settle();
    const parts = [client.only().payload];
    // A block every 400 ms: 2 s in all, twice blockTimeoutMs, never 1 s without a block.
    for (let num = 1; ; num++) {
      await clock.advance(400);
      client.request({ ...GET, token: Uint8Array.of(2), options: [blockOption(Opt.Block2, { num, more: false, szx: 2 })] });
      await settle();
      const got = client.take() as CoapMessage[];
      const more = blockOf(got[0]!, Opt.Block2)!.more;
      parts.push(got[0]!.payload);
      // Only the block asked for while the transfer goes on: the held notification never lands
      // inside it. After its last block, the held one goes.
      expect(got.map((m) => `${summary(m)} ${m === got[0] ? 'block' : str(m.payload)}`), `block ${num}`).toEqual(more ? ['ACK 2.05 block'] : ['ACK 2.05 block', 'NON 2.05 small']);
      if (!more) break;
    }
    expect(Uint8Array.from(parts.flatMap((p) => [...p]))).toEqual(big);
  });

  it('an observation refused (maxObserversPerDevice) is a plain read: its later blocks, asked for with Observe: 0 as the npm coap package does, come from the same message and count as one request', async () => {
    const { client, platform } = setup({ maxObserversPerDevice: 0, requestRate: { perSecond: 1, burst: 1 } });
    const a = new Uint8Array(300).fill(0x41);
    await platform.inject('c1', 'fw', a, 'application/octet-stream', true);
    const token = Uint8Array.of(1);
    const observeGet = (num: number) => client.request({ ...GET, observe: 0, token, options: [blockOption(Opt.Block2, { num, more: false, szx: 2 })] });
    observeGet(0);
    await settle();
    const first = client.only();
    expect([summary(first), opt(first, Opt.Observe)]).toEqual(['ACK 2.05', undefined]); // not registered (RFC 7641 §4.1)
    // A newer message meanwhile: read afresh, the later blocks were B's, spliced onto A's first.
    await platform.inject('c1', 'fw', new Uint8Array(300).fill(0x42), 'application/octet-stream', true);
    const parts = [first.payload];
    for (let num = 1; ; num++) {
      observeGet(num);
      await settle();
      const res = client.only();
      // Each was counted again, too: 4.29 at once under this rate.
      expect(summary(res), `block ${num}`).toBe('ACK 2.05');
      expect(opt(res, Opt.Observe)).toBeUndefined();
      parts.push(res.payload);
      if (!blockOf(res, Opt.Block2)!.more) break;
    }
    expect(Uint8Array.from(parts.flatMap((p) => [...p]))).toEqual(a);
  });

  it('a large notification carries its first block; the rest is fetched with GET + Block2 from the same message', async () => {
    const { client, platform } = setup();
    client.request({ ...GET, observe: 0, token: Uint8Array.of(1), options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 4 })] });
    await settle();
    client.take();
    await platform.inject('c1', 'fw', body(600), 'application/octet-stream');
    await settle();
    const n = client.only();
    expect(blockOf(n, Opt.Block2)).toEqual({ num: 0, more: true, szx: 4 });
    expect(opt(n, Opt.Observe)).toBeDefined();
    const parts = [n.payload];
    for (let num = 1; num < 3; num++) {
      client.request({ ...GET, token: Uint8Array.of(2), options: [blockOption(Opt.Block2, { num, more: false, szx: 4 })] });
      await settle();
      const res = client.only();
      expect(opt(res, Opt.Observe)).toBeUndefined();
      parts.push(res.payload);
    }
    expect(Uint8Array.from(parts.flatMap((p) => [...p]))).toEqual(body(600));
  });
});

describe('kept Block2 representations', () => {
  it('one endpoint keeping more than KEPT_PER_ENDPOINT pushes out its own oldest, never another endpoint\'s', async () => {
    const clock = new FakeClock(0);
    const reps = new Representations(clock, resolveLimits());
    const rep = { code: Code.Content, options: [], payload: new Uint8Array(100) };
    reps.keep('192.0.2.1:1 /channels/c1/messages/a', rep, 64);
    for (let i = 0; i < 20_000; i++) reps.keep(`192.0.2.2:2 /channels/c1/messages/${i}`, rep, 64);
    expect(reps.get('192.0.2.1:1 /channels/c1/messages/a')).toBe(rep);
    expect(reps.size).toBe(KEPT_PER_ENDPOINT + 1);
    expect(reps.get(`192.0.2.2:2 /channels/c1/messages/${20_000 - KEPT_PER_ENDPOINT}`)).toBe(rep);
    expect(reps.get(`192.0.2.2:2 /channels/c1/messages/${20_000 - KEPT_PER_ENDPOINT - 1}`)).toBeUndefined();
  });
});
