import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request, type IncomingMessage, type ObserveReadStream } from 'coap';
import { Code, decode, encode, Opt, Type, uintOption, uriPathOptions, uriQueryOptions, type CoapMessage } from '../../../shared/coap';
import type { CoapLimits } from '../limits';
import { createCoapServer, type CoapServer } from '../server';
import { KEY } from './harness';
import { MemoryPlatform } from './memory-platform';

// Interop over real UDP on loopback, with an independent implementation as the client:
// node-coap (npm `coap`), which uses coap-packet for its codec.
let server: CoapServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(host?: string, limits?: Partial<CoapLimits>) {
  const platform = new MemoryPlatform().addDevice('dev-1', KEY).addChannel('c1', { publish: ['dev-1'], subscribe: ['dev-1'] });
  server = createCoapServer({ platform, ...(limits ? { limits } : {}) });
  const addresses = await server.listen(0, host);
  return { platform, addresses, port: addresses[0]!.port };
}

function send(params: Parameters<typeof request>[0] & object, body?: string | Buffer): Promise<IncomingMessage> {
  // A fresh agent per request (it closes itself when done), so tests share no client state.
  const req = request({ ...params, agent: new Agent({ type: params.hostname?.includes(':') ? 'udp6' : 'udp4' }) });
  const res = once(req, 'response').then(([r]) => r as IncomingMessage);
  req.end(body);
  return res;
}

async function bodyOf(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

describe('UDP interop with node-coap', () => {
  it('publishes with POST (2.04) and observes notifications with GET + Observe', async () => {
    const { platform, port } = await start('127.0.0.1');
    const base = { hostname: '127.0.0.1', port, query: `auth=${KEY}` };
    const obs = (await send({ ...base, method: 'GET', pathname: '/channels/c1/messages/t', observe: true })) as unknown as ObserveReadStream;
    expect(obs.code).toBe('2.05');
    const seen: string[] = [];
    obs.on('data', (d: Buffer) => seen.push(d.toString()));
    const res = await send({ ...base, method: 'POST', pathname: '/channels/c1/messages/t', contentFormat: 'application/json' }, '{"v":1}');
    expect(res.code).toBe('2.04');
    expect(platform.published[0]).toMatchObject({ channel: 'c1', subtopic: 't', contentType: 'application/json', protocol: 'coap' });
    await platform.inject('c1', 't', 'second');
    // The registration response (empty: nothing retained) comes first, then one notification per message.
    await expect.poll(() => seen).toEqual(['', '{"v":1}', 'second']);
    obs.close();
  });

  it('a large POST goes in Block1 blocks and a large GET comes back in Block2 blocks', async () => {
    const { platform, port } = await start('127.0.0.1');
    const big = 'x'.repeat(3000) + 'end';
    const base = { hostname: '127.0.0.1', port, query: `auth=${KEY}` };
    // Block1 with SZX 6: node-coap sends 1024-byte blocks and waits for each 2.31 (RFC 7959 §2.3).
    const res = await send({ ...base, method: 'POST', pathname: '/channels/c1/messages/big', query: `auth=${KEY}&retain`, options: { Block1: Buffer.of(6) } }, big);
    expect(res.code).toBe('2.04');
    expect(platform.published).toHaveLength(1);
    expect(Buffer.from(platform.published[0]!.payload).toString()).toBe(big);
    const got = await send({ ...base, method: 'GET', pathname: '/channels/c1/messages/big' });
    expect(got.code).toBe('2.05');
    expect(await bodyOf(got)).toBe(big);
  });

  it('answers /.well-known/core, and 4.01 without a key', async () => {
    const { port } = await start('127.0.0.1');
    const core = await send({ hostname: '127.0.0.1', port, pathname: '/.well-known/core' });
    expect(core.code).toBe('2.05');
    expect(await bodyOf(core)).toContain('</channels>');
    const denied = await send({ hostname: '127.0.0.1', port, method: 'POST', pathname: '/channels/c1/messages' }, 'x');
    expect(denied.code).toBe('4.01');
  });

  it('binds IPv4 and, where the host has it, IPv6 on the same port', async () => {
    const { addresses, port } = await start('localhost');
    expect(addresses[0]).toMatchObject({ family: 'IPv4', address: '127.0.0.1' });
    const v6 = addresses.find((a) => a.family === 'IPv6');
    if (!v6) return; // no IPv6 loopback here
    expect(v6.port).toBe(port);
    const res = await send({ hostname: '::1', port, method: 'POST', pathname: '/channels/c1/messages', query: `auth=${KEY}` }, 'over v6');
    expect(res.code).toBe('2.04');
  });
});

describe('stopping the server', () => {
  /**
   * RFC 7641 §3.2, §4.2: a last non-2.xx response (no Observe option) tells the client it is no
   * longer observing. Without it a bridge that stopped left its observers waiting out the last
   * Max-Age (an hour) in silence, instead of registering again at another bridge or this one restarted.
   */
  it('ends each observation with a last 5.03, which reaches the client before the socket closes', async () => {
    const { port } = await start('127.0.0.1');
    const device = createSocket('udp4');
    await new Promise<void>((r) => device.bind(0, '127.0.0.1', () => r()));
    const got: CoapMessage[] = [];
    device.on('message', (m) => got.push(decode(new Uint8Array(m))));
    const token = Uint8Array.of(9, 9);
    const options = [...uriPathOptions(['channels', 'c1', 'messages', 'room']), ...uriQueryOptions([`auth=${KEY}`]), uintOption(Opt.Observe, 0)];
    device.send(encode({ type: Type.CON, code: Code.GET, messageId: 0x200, token, options, payload: new Uint8Array() }), port, '127.0.0.1');
    await expect.poll(() => got.length).toBe(1);
    expect(got[0]).toMatchObject({ type: Type.ACK, code: Code.Content });
    await server!.close();
    server = undefined;
    await expect.poll(() => got.length).toBe(2);
    const last = got[1]!;
    expect(last).toMatchObject({ code: Code.ServiceUnavailable, token });
    expect(last.options.some((o) => o.number === Opt.Observe)).toBe(false);
    device.close();
  });

  /**
   * Every one of many observers gets its 5.03: close() waits until each send has called back (Deno's
   * node:dgram drops sends still queued at close — 128 of 3000 got through with one turn's wait).
   */
  it('ends 1000 observations with a 5.03 each before the socket closes', async () => {
    const N = 1000;
    const PER_SOCKET = 50; // a socket's receive buffer holds a few hundred small datagrams
    // One device observing from 20 endpoints: its per-device and request-rate limits lifted.
    const { port } = await start('127.0.0.1', { maxObserversPerDevice: N, requestRate: { perSecond: 1e6, burst: 1e6 } });
    const acks = new Set<number>();
    const ended = new Set<number>();
    const devices = await Promise.all(
      Array.from({ length: N / PER_SOCKET }, async () => {
        const device = createSocket('udp4');
        await new Promise<void>((r) => device.bind(0, '127.0.0.1', () => r()));
        device.on('message', (m) => {
          const msg = decode(new Uint8Array(m));
          const id = (msg.token[0]! << 8) | msg.token[1]!;
          if (msg.code === Code.Content) acks.add(id);
          if (msg.code === Code.ServiceUnavailable) ended.add(id);
        });
        return device;
      }),
    );
    for (let i = 0; i < N; i++) {
      const options = [...uriPathOptions(['channels', 'c1', 'messages', `t${i}`]), ...uriQueryOptions([`auth=${KEY}`]), uintOption(Opt.Observe, 0)];
      devices[i % devices.length]!.send(encode({ type: Type.CON, code: Code.GET, messageId: 0x1000 + i, token: Uint8Array.of(i >> 8, i & 0xff), options, payload: new Uint8Array() }), port, '127.0.0.1');
      if (i % 100 === 99) await expect.poll(() => acks.size, { timeout: 10_000 }).toBe(i + 1);
    }
    await server!.close();
    server = undefined;
    await expect.poll(() => ended.size, { timeout: 5_000 }).toBe(N);
    for (const d of devices) d.close();
  });
});
