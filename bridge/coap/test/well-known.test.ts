import { describe, expect, it } from 'vitest';
import { Code, ContentFormat, Opt, blockOption, decodeBlock, decodeUint, uintOption } from '../../../shared/coap';
import { settle } from '../../testing/fake-clock';
import { Client, KEY, opt, setup, str, summary } from './harness';

describe('resource discovery (RFC 6690)', () => {
  it('GET /.well-known/core: application/link-format describing the channels resource', async () => {
    const { client } = setup();
    client.request({ path: '/.well-known/core' });
    await settle();
    const res = client.only();
    expect(summary(res)).toBe('ACK 2.05');
    expect(decodeUint(opt(res, Opt.ContentFormat)!.value)).toBe(ContentFormat.LinkFormat);
    expect(str(res.payload)).toMatch(/^<\/channels>;rt="edgeflux.channels";ct=40;title="[^"]+"$/);
  });

  it('answers only in link format: Accept 40 is served, any other is 4.06 (RFC 7252 §5.10.4)', async () => {
    const { client } = setup();
    for (const [accept, answer] of [[ContentFormat.LinkFormat, 'ACK 2.05'], [ContentFormat.Json, 'ACK 4.06'], [ContentFormat.TextPlain, 'ACK 4.06']] as const) {
      client.request({ path: '/.well-known/core', options: [uintOption(Opt.Accept, accept)] });
      await settle();
      expect(summary(client.only()), String(accept)).toBe(answer);
    }
    client.request({ path: '/channels', query: [`auth=${KEY}`], options: [uintOption(Opt.Accept, ContentFormat.Json)] });
    await settle();
    expect(summary(client.only())).toBe('ACK 4.06');
  });

  it('with ?auth: the device\'s channels, obs where it may observe, filterable by attribute (§4.1)', async () => {
    const { client, platform } = setup();
    platform.addChannel('c3', { publish: ['dev-1'] });
    client.request({ path: '/.well-known/core', query: [`auth=${KEY}`] });
    client.request({ path: '/.well-known/core', query: [`auth=${KEY}`, 'rt=edgeflux.messages'] });
    client.request({ path: '/.well-known/core', query: [`auth=${KEY}`, 'if=edgeflux.pub*'] });
    client.request({ path: '/.well-known/core', query: [`auth=${KEY}`, 'href=/channels/c2*'] });
    await settle();
    const [all, messages, publishable, c2] = client.take().map((m) => str(m.payload));
    const ct = 'ct="0 42 50 60 110 112"';
    const l1 = `</channels/c1/messages>;rt="edgeflux.messages";if="edgeflux.publish edgeflux.observe";${ct};obs`;
    const l2 = `</channels/c2/messages>;rt="edgeflux.messages";if="edgeflux.observe";${ct};obs`;
    const l3 = `</channels/c3/messages>;rt="edgeflux.messages";if="edgeflux.publish";${ct}`;
    expect(all!.split(',<')).toHaveLength(4);
    expect(messages).toBe([l1, l2, l3].join(','));
    expect(publishable).toBe([l1, l3].join(','));
    expect(c2).toBe(l2);
  });

  it('GET /channels needs a key and lists the same channels; other methods are 4.05', async () => {
    const { client } = setup();
    client.request({ path: '/channels' });
    await settle();
    expect(summary(client.only())).toBe('ACK 4.01');
    client.request({ path: '/channels', query: [`auth=${KEY}`] });
    await settle();
    expect(str(client.only().payload)).toMatch(/^<\/channels\/c1\/messages>.*,<\/channels\/c2\/messages>/);
    client.request({ path: '/.well-known/core', code: Code.POST });
    await settle();
    expect(summary(client.only())).toBe('ACK 4.05');
  });

  it('a long listing goes in Block2 blocks', async () => {
    const { client, platform } = setup();
    for (let i = 0; i < 40; i++) platform.addChannel(`channel-${String(i).padStart(3, '0')}`, { subscribe: ['dev-1'] });
    client.request({ path: '/channels', query: [`auth=${KEY}`] });
    await settle();
    const first = client.only();
    expect(decodeBlock(opt(first, Opt.Block2)!.value)).toEqual({ num: 0, more: true, szx: 6 });
    const total = decodeUint(opt(first, Opt.Size2)!.value);
    let text = str(first.payload);
    for (let num = 1; num * 1024 < total; num++) {
      client.request({ path: '/channels', query: [`auth=${KEY}`], options: [blockOption(Opt.Block2, { num, more: false, szx: 6 })] });
      await settle();
      text += str(client.only().payload);
    }
    expect(text.length).toBe(total);
    expect(text.split(',')).toHaveLength(42);
  });

  it('the later blocks of a listing come from the list whose first block was sent: a channel connected meanwhile does not shift them', async () => {
    const { client, platform } = setup();
    for (let i = 0; i < 20; i++) platform.addChannel(`channel-${String(i).padStart(3, '0')}`, { subscribe: ['dev-1'] });
    const block = (num: number) => client.request({ path: '/channels', query: [`auth=${KEY}`], options: [blockOption(Opt.Block2, { num, more: false, szx: 2 })] });
    block(0);
    await settle();
    const first = client.only();
    const total = decodeUint(opt(first, Opt.Size2)!.value);
    // Sorts before every other channel: rebuilt, the list would move on by one link.
    platform.addChannel('a-new-one', { subscribe: ['dev-1'] });
    let text = str(first.payload);
    for (let num = 1; num * 64 < total; num++) {
      block(num);
      await settle();
      text += str(client.only().payload);
    }
    expect(text.length).toBe(total);
    expect(text.split(',').map((l) => /<\/channels\/([^/]+)\//.exec(l)?.[1])).toEqual(Array.from({ length: 22 }, (_, i) => (i < 2 ? ['c1', 'c2'][i] : `channel-${String(i - 2).padStart(3, '0')}`)));
  });

  it('a listing in blocks is one request for the rate limits (docs/coap.md "Limits"): 16-byte blocks under a rate of 1/s', async () => {
    const { client } = setup({ requestRate: { perSecond: 1, burst: 1 } });
    let text = '';
    for (let num = 0; ; num++) {
      client.request({ path: '/.well-known/core', query: [`auth=${KEY}`], options: [blockOption(Opt.Block2, { num, more: false, szx: 0 })] });
      await settle();
      const res = client.only();
      expect(summary(res), `block ${num}`).toBe('ACK 2.05');
      text += str(res.payload);
      if (!decodeBlock(opt(res, Opt.Block2)!.value).more) break;
    }
    expect(text).toMatch(/^<\/channels>;.*<\/channels\/c2\/messages>;rt="edgeflux.messages";if="edgeflux.observe";ct="0 42 50 60 110 112";obs$/);
  });

  it('a later block of a listing asked for with another credential (auth=) is a request of its own: counted, and built for that device', async () => {
    const { client, platform } = setup({ requestRate: { perSecond: 1, burst: 1 } });
    for (let i = 0; i < 10; i++) platform.addChannel(`channel-${i}`, { subscribe: ['dev-1'] });
    const block = (num: number, key: string) => client.request({ path: '/channels', query: [`auth=${key}`], options: [blockOption(Opt.Block2, { num, more: false, szx: 0 })] });
    block(0, KEY);
    await settle();
    expect(summary(client.only())).toBe('ACK 2.05');
    block(1, 'key-dev-2');
    await settle();
    expect(summary(client.only())).toBe('ACK 4.29');
    block(1, KEY);
    await settle();
    expect(summary(client.only())).toBe('ACK 2.05');
    // With room in the rate, dev-2's block 1 comes from dev-2's own listing (c1 only).
    const t2 = setup();
    for (let i = 0; i < 10; i++) t2.platform.addChannel(`channel-${i}`, { subscribe: ['dev-1'] });
    t2.client.request({ path: '/channels', query: ['auth=key-dev-2'] });
    await settle();
    const own = str(t2.client.only().payload);
    expect(own).toMatch(/^<\/channels\/c1\/messages>[^,]*$/);
    t2.client.request({ path: '/channels', query: [`auth=${KEY}`], options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 0 })] });
    t2.client.request({ path: '/channels', query: ['auth=key-dev-2'], options: [blockOption(Opt.Block2, { num: 1, more: false, szx: 0 })] });
    await settle();
    expect(t2.client.take().map((m) => str(m.payload))[1]).toBe(own.slice(16, 32));
  });

  it('made-up query parameters (each a kept document of its own) push out only their endpoint\'s: another endpoint\'s download survives 10,000 of them', async () => {
    const { client, platform, server } = setup({ requestRate: { perSecond: 1e6, burst: 1e6 } });
    const fw = (fill: number) => new Uint8Array(2500).fill(fill);
    await platform.inject('c1', 'fw', fw(0x41), 'application/octet-stream', true);
    const get = (num: number) => client.request({ path: '/channels/c1/messages/fw', query: [`auth=${KEY}`], options: [blockOption(Opt.Block2, { num, more: false, szx: 6 })] });
    get(0);
    await settle();
    const parts = [client.only().payload];
    await platform.inject('c1', 'fw', fw(0x42), 'application/octet-stream', true);
    const other = new Client(server, { address: '192.0.2.99', port: 5000, family: 'IPv4' });
    for (let i = 0; i < 10_000; i++) other.request({ path: '/.well-known/core', query: ['href=*', `pad=${i}`], options: [blockOption(Opt.Block2, { num: 0, more: false, szx: 0 })] });
    await settle();
    expect(other.take().every((m) => summary(m) === 'ACK 2.05')).toBe(true);
    for (let num = 1; num < 3; num++) {
      get(num);
      await settle();
      parts.push(client.only().payload);
    }
    // Pushed out, its later blocks were read afresh: the newer message's.
    expect(Uint8Array.from(parts.flatMap((p) => [...p]))).toEqual(fw(0x41));
  });

  it('every block of a listing carries the document\'s ETag; a later block asked for with another query comes from a document built for it, with its own ETag', async () => {
    const { client } = setup();
    const block = (num: number, query: string[]) => client.request({ path: '/.well-known/core', query, options: [blockOption(Opt.Block2, { num, more: false, szx: 0 })] });
    block(0, [`auth=${KEY}`]);
    block(1, [`auth=${KEY}`]);
    block(2, [`auth=${KEY}`, 'rt=edgeflux.messages']);
    await settle();
    const [a, b, c] = client.take();
    const tag = (m: typeof a) => opt(m!, Opt.ETag)?.value;
    expect(tag(a)).toHaveLength(8);
    expect(tag(b)).toEqual(tag(a));
    expect(tag(c)).toBeDefined();
    expect(tag(c)).not.toEqual(tag(a));
  });
});
