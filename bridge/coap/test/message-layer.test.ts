import { describe, expect, it } from 'vitest';
import { Code, Opt, Type, encode, type CoapMessage } from '../../../shared/coap';
import { settle } from '../../testing/fake-clock';
import { KEY, setup, str, summary } from './harness';

const PUB = { code: Code.POST, path: '/channels/c1/messages/t', query: [`auth=${KEY}`], payload: 'hi' };

describe('message layer (RFC 7252 §4)', () => {
  it('answers a CoAP ping (empty CON) with a RST of the same Message ID (§4.3)', async () => {
    const { client } = setup();
    client.raw(Uint8Array.of(0x40, 0x00, 0xab, 0xcd));
    expect(client.only()).toMatchObject({ type: Type.RST, code: Code.Empty, messageId: 0xabcd });
  });

  it('rejects a CON with a format error with a RST, ignores a NON one and unknown versions (§3, §4.2, §4.3)', async () => {
    const { client } = setup();
    client.raw(Uint8Array.of(0x49, 0x01, 0x00, 0x07)); // TKL 9
    expect(client.only()).toMatchObject({ type: Type.RST, messageId: 7 });
    client.raw(Uint8Array.of(0x59, 0x01, 0x00, 0x08));
    client.raw(Uint8Array.of(0x80, 0x01, 0x00, 0x09)); // version 2
    client.raw(Uint8Array.of(0x40, 0x01));
    expect(client.take()).toEqual([]);
  });

  it('piggybacks a fast response on the ACK, and answers a retransmitted CON with the same bytes without publishing twice (§4.5)', async () => {
    const { client, platform } = setup();
    const req = client.request({ ...PUB, mid: 0x4242 });
    await settle();
    const first = client.only();
    expect(first).toMatchObject({ type: Type.ACK, code: Code.Changed, messageId: 0x4242, token: req.token });
    client.send(req);
    client.send(req);
    await settle();
    expect(client.take()).toEqual([first, first]);
    expect(platform.published).toHaveLength(1);
  });

  it('a duplicate NON request is ignored (§4.5) and a NON request gets a NON response (§5.2.3)', async () => {
    const { client, platform } = setup();
    const req = client.request({ ...PUB, type: Type.NON, mid: 9 });
    await settle();
    const res = client.only();
    expect(res).toMatchObject({ type: Type.NON, code: Code.Changed, token: req.token });
    expect(res.messageId).not.toBe(9);
    client.send(req);
    await settle();
    expect(client.take()).toEqual([]);
    expect(platform.published).toHaveLength(1);
  });

  it('a slow platform: empty ACK after 1 s, then the response as a separate CON, retransmitted 2, 4, 8, 16 s apart, then given up (§4.2, §5.2.2)', async () => {
    const { client, clock, platform, server } = setup();
    let release!: () => void;
    platform.gate = new Promise<void>((r) => (release = r));
    const req = client.request({ ...PUB, mid: 0x1000 });
    await clock.advance(999);
    expect(client.take()).toEqual([]);
    await clock.advance(1);
    const ack = client.only();
    expect(ack).toMatchObject({ type: Type.ACK, code: Code.Empty, messageId: 0x1000 });
    // The client retransmits (its ACK was lost): same empty ACK again, nothing processed twice.
    client.send(req);
    expect(client.only()).toEqual(ack);
    release();
    await settle();
    const res = client.only();
    expect(res).toMatchObject({ type: Type.CON, code: Code.Changed, token: req.token });
    expect(res.messageId).not.toBe(0x1000);
    // random() = 0 → initial timeout exactly ACK_TIMEOUT = 2 s, doubling each time.
    const times: number[] = [];
    const start = clock.now();
    for (let t = 0; t < 70_000; t += 500) {
      await clock.advance(500);
      for (const m of client.take()) {
        expect(m).toEqual(res);
        times.push(clock.now() - start);
      }
    }
    expect(times).toEqual([2000, 6000, 14000, 30000]);
    expect(server.stats().inFlight).toBe(0); // given up after MAX_RETRANSMIT = 4 (at 62 s)
    expect(platform.published).toHaveLength(1);
    // A late duplicate of the request still gets the same empty ACK, not a second publish.
    client.send(req);
    expect(client.only()).toEqual(ack);
    await settle();
    expect(platform.published).toHaveLength(1);
  });

  it('an ACK from the client stops the retransmission of a separate response', async () => {
    const { client, clock, platform, server } = setup();
    let release!: () => void;
    platform.gate = new Promise<void>((r) => (release = r));
    client.request(PUB);
    await clock.advance(1000);
    client.take();
    release();
    await settle();
    const res = client.only();
    client.ack(res);
    expect(server.stats().inFlight).toBe(0);
    await clock.advance(60_000);
    expect(client.take()).toEqual([]);
  });

  it('a retransmitted CON that arrives before the separate-response timer gets the empty ACK at once', async () => {
    const { client, clock, platform } = setup();
    let release!: () => void;
    platform.gate = new Promise<void>((r) => (release = r));
    const req = client.request(PUB);
    await clock.advance(300);
    client.send(req);
    expect(client.only()).toMatchObject({ type: Type.ACK, code: Code.Empty, messageId: req.messageId });
    release();
    await settle();
    expect(client.only()).toMatchObject({ type: Type.CON, code: Code.Changed });
  });

  it('answers an unrecognized critical option with 4.02 (CON) or a RST (NON), and ignores unknown elective ones (§5.4.1)', async () => {
    const { client, platform } = setup();
    client.request({ ...PUB, options: [{ number: 9, value: new Uint8Array() }] });
    await settle();
    const bad = client.only();
    expect(summary(bad)).toBe('ACK 4.02');
    expect(str(bad.payload)).toMatch(/critical option.*9/);
    const non = client.request({ ...PUB, type: Type.NON, options: [{ number: Opt.IfMatch, value: new Uint8Array() }] });
    await settle();
    expect(client.only()).toMatchObject({ type: Type.RST, messageId: non.messageId });
    client.request({ ...PUB, options: [{ number: 10, value: Uint8Array.of(1) }, { number: 258, value: Uint8Array.of(2) }] });
    await settle();
    expect(summary(client.only())).toBe('ACK 2.04');
    expect(platform.published).toHaveLength(1);
  });

  it('5.05 for a proxy request (§5.7.2), 4.05 for other methods (§5.8), 4.04 for unknown paths', async () => {
    const { client } = setup();
    client.request({ ...PUB, options: [{ number: Opt.ProxyUri, value: new TextEncoder().encode('coap://elsewhere/x') }] });
    client.request({ ...PUB, code: Code.PUT });
    client.request({ ...PUB, code: Code.DELETE });
    client.request({ ...PUB, code: 0x05 }); // FETCH (RFC 8132), not supported
    client.request({ ...PUB, path: '/things/1' });
    client.request({ ...PUB, path: '/channels/c1' });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 5.05', 'ACK 4.05', 'ACK 4.05', 'ACK 4.05', 'ACK 4.04', 'ACK 4.04']);
  });

  it('rejects a CON response it has no context for, and ignores ACK/RST it does not know (§4.2)', async () => {
    const { client } = setup();
    const m: CoapMessage = { type: Type.CON, code: Code.Content, messageId: 77, token: Uint8Array.of(1), options: [], payload: new Uint8Array() };
    client.raw(encode(m));
    expect(client.only()).toMatchObject({ type: Type.RST, messageId: 77 });
    client.ack(m);
    client.rst(m);
    expect(client.take()).toEqual([]);
  });
});
