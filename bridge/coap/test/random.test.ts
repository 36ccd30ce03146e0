import { describe, expect, it } from 'vitest';
import { Code, Opt, Type, blockOption, encode, uintOption, uriPathOptions, uriQueryOptions, type CoapMessage } from '../../../shared/coap';
import { mulberry32 } from '../../../shared/testing/prng';
import { settle } from '../../testing/fake-clock';
import { Client, KEY, setup, summary } from './harness';

// Thousands of random and mutated datagrams at the server core: it must never throw, and must keep
// answering a well-behaved client. Seeded, so a failure replays.
describe('server core — random datagrams', () => {
  it('never throws and keeps serving a good client', async () => {
    const { server, clock, platform } = setup({ requestRate: { perSecond: 1e6, burst: 1e6 } });
    const rand = mulberry32(0x5eed);
    const int = (n: number) => Math.floor(rand() * n);
    const templates: CoapMessage[] = [
      { type: Type.CON, code: Code.POST, messageId: 1, token: Uint8Array.of(1, 2), options: [...uriPathOptions(['channels', 'c1', 'messages', 'x']), ...uriQueryOptions([`auth=${KEY}`])], payload: Uint8Array.of(1, 2, 3) },
      { type: Type.CON, code: Code.GET, messageId: 2, token: Uint8Array.of(3), options: [uintOption(Opt.Observe, 0), ...uriPathOptions(['channels', 'c1', 'messages']), ...uriQueryOptions([`auth=${KEY}`])], payload: new Uint8Array() },
      { type: Type.NON, code: Code.POST, messageId: 3, token: new Uint8Array(), options: [...uriPathOptions(['channels', 'c1', 'messages']), ...uriQueryOptions([`auth=${KEY}`]), blockOption(Opt.Block1, { num: 0, more: true, szx: 0 })], payload: new Uint8Array(16) },
      { type: Type.CON, code: Code.GET, messageId: 4, token: new Uint8Array(), options: uriPathOptions(['.well-known', 'core']), payload: new Uint8Array() },
    ];
    let thrown = 0;
    for (let i = 0; i < 5000; i++) {
      let bytes: Uint8Array;
      if (rand() < 0.3) {
        bytes = Uint8Array.from({ length: int(80) }, () => int(256));
        if (bytes.length > 0 && rand() < 0.7) bytes[0] = (bytes[0]! & 0x3f) | 0x40;
      } else {
        bytes = encode({ ...templates[int(templates.length)]!, messageId: int(0x10000) });
        for (let k = int(4); k >= 0; k--) bytes[int(bytes.length)] = int(256);
        if (rand() < 0.2) bytes = bytes.slice(0, int(bytes.length));
      }
      const from = { address: `198.51.100.${int(8)}`, port: 1000 + int(4) };
      try {
        server.handle(bytes, from, () => {});
      } catch {
        thrown++;
      }
      if (i % 500 === 0) await clock.advance(1000);
    }
    await clock.advance(300_000);
    expect(thrown).toBe(0);
    const good = new Client(server, { address: '203.0.113.5', port: 5000 });
    const before = platform.published.length;
    good.request({ code: Code.POST, path: '/channels/c1/messages/ok', query: [`auth=${KEY}`], payload: 'still here' });
    await settle();
    expect(summary(good.only())).toBe('ACK 2.04');
    expect(platform.published.length).toBe(before + 1);
    await server.close();
  });
});
