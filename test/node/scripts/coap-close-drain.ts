/**
 * Run by runtimes.test.ts under Node, Bun and Deno: N observers over real UDP, then the CoAP server
 * closes. Prints `ended <k> of <N>`: how many observations got their last 5.03 before the socket closed.
 */
import { createSocket } from 'node:dgram';
import { Code, decode, encode, Opt, Type, uintOption, uriPathOptions, uriQueryOptions } from '../../../shared/coap';
import { createCoapServer } from '../../../bridge/coap/server';
import { KEY } from '../../../bridge/coap/test/harness';
import { MemoryPlatform } from '../../../bridge/coap/test/memory-platform';

const N = Number(process.argv[2] ?? 3000);
const PER_SOCKET = 50; // a socket's receive buffer holds a few hundred small datagrams
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const platform = new MemoryPlatform().addDevice('dev-1', KEY).addChannel('c1', { subscribe: ['dev-1'] });
const server = createCoapServer({ platform, limits: { maxObserversPerDevice: N, requestRate: { perSecond: 1e6, burst: 1e6 } } });
const port = (await server.listen(0, '127.0.0.1'))[0]!.port;
const acks = new Set<number>();
const ended = new Set<number>();
const devices = await Promise.all(
  Array.from({ length: Math.ceil(N / PER_SOCKET) }, async () => {
    const d = createSocket('udp4');
    await new Promise<void>((r) => d.bind(0, '127.0.0.1', () => r()));
    d.on('message', (m) => {
      const msg = decode(new Uint8Array(m));
      const id = (msg.token[0]! << 8) | msg.token[1]!;
      if (msg.code === Code.Content) acks.add(id);
      if (msg.code === Code.ServiceUnavailable) ended.add(id);
    });
    return d;
  }),
);
for (let i = 0; i < N; i++) {
  const options = [...uriPathOptions(['channels', 'c1', 'messages', `t${i}`]), ...uriQueryOptions([`auth=${KEY}`]), uintOption(Opt.Observe, 0)];
  devices[i % devices.length]!.send(encode({ type: Type.CON, code: Code.GET, messageId: i, token: Uint8Array.of(i >> 8, i & 0xff), options, payload: new Uint8Array() }), port, '127.0.0.1');
  if (i % 100 === 99) for (let t = 0; t < 200 && acks.size < i + 1; t++) await sleep(25);
}
for (let t = 0; t < 200 && acks.size < N; t++) await sleep(25);
if (acks.size < N) throw new Error(`only ${acks.size} of ${N} observations registered`);
await server.close();
for (let t = 0; t < 40 && ended.size < N; t++) await sleep(50);
console.log(`ended ${ended.size} of ${N}`);
for (const d of devices) d.close();
