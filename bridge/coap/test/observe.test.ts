import { describe, expect, it } from 'vitest';
import { Code, ContentFormat, Opt, Type, uintOption, type CoapMessage } from '../../../shared/coap';
import { settle } from '../../testing/fake-clock';
import { nextObserveNumber } from '../observe';
import { KEY, opt, setup, str, summary, uintOf, type Client, type RequestSpec } from './harness';

const OBS: RequestSpec = { code: Code.GET, path: '/channels/c1/messages/room', query: [`auth=${KEY}`], observe: 0, token: Uint8Array.of(7, 7) };
const observeOf = (m: CoapMessage) => uintOf(m, Opt.Observe);

async function registered(limits = {}) {
  const s = setup(limits);
  s.client.request(OBS);
  await settle();
  const res = s.client.only();
  return { ...s, res };
}

async function notifications(client: Client): Promise<CoapMessage[]> {
  await settle();
  return client.take();
}

describe('GET with Observe (RFC 7641)', () => {
  it('registers: an immediate 2.05 with Observe and an empty payload when nothing is retained', async () => {
    const { res, platform, server } = await registered();
    expect(summary(res)).toBe('ACK 2.05');
    expect(observeOf(res)).toBeTypeOf('number');
    expect(res.payload).toHaveLength(0);
    expect(res.token).toEqual(OBS.token);
    expect(platform.activeSubscriptions).toBe(1);
    expect(server.stats().observers).toBe(1);
  });

  it('the registration response carries the retained message, with its Content-Format, ETag and Max-Age', async () => {
    const s = setup();
    await s.platform.inject('c1', 'room', '{"t":1}', 'application/json', true);
    s.client.request(OBS);
    await settle();
    const res = s.client.only();
    expect(str(res.payload)).toBe('{"t":1}');
    expect(uintOf(res, Opt.ContentFormat)).toBe(ContentFormat.Json);
    expect(uintOf(res, Opt.MaxAge)).toBe(3600);
    expect(opt(res, Opt.ETag)?.value).toEqual(Uint8Array.of(1));
  });

  it('notifies each message in order with increasing Observe numbers, the publisher\'s Content-Format, on the token', async () => {
    const { client, platform, res } = await registered();
    await platform.inject('c1', 'room', 'a', 'text/plain');
    await platform.inject('c1', 'other', 'not me');
    await platform.inject('c1', 'room', new Uint8Array([1, 2]), 'application/cbor');
    const ns = await notifications(client);
    expect(ns.map((n) => [summary(n), str(n.payload), uintOf(n, Opt.ContentFormat)])).toEqual([
      ['NON 2.05', 'a', 0],
      ['NON 2.05', '\u0001\u0002', 60],
    ]);
    expect(ns.every((n) => n.token.join() === '7,7')).toBe(true);
    const seqs = [res, ...ns].map((m) => observeOf(m)!);
    expect(seqs[1]! > seqs[0]! && seqs[2]! > seqs[1]!).toBe(true);
  });

  it('every Nth notification is CON; later ones wait for its ACK and then go out in order', async () => {
    const { client, platform } = await registered({ observeConEvery: 3 });
    for (const p of ['1', '2', '3', '4', '5']) await platform.inject('c1', 'room', p);
    let ns = await notifications(client);
    expect(ns.map((n) => `${summary(n)} ${str(n.payload)}`)).toEqual(['NON 2.05 1', 'NON 2.05 2', 'CON 2.05 3']);
    client.ack(ns[2]!);
    ns = await notifications(client);
    expect(ns.map((n) => `${summary(n)} ${str(n.payload)}`)).toEqual(['NON 2.05 4', 'NON 2.05 5']);
  });

  it('the first notification after observeConIntervalMs is CON', async () => {
    const { client, clock, platform } = await registered({ observeConEvery: 1000, observeConIntervalMs: 60_000 });
    await platform.inject('c1', 'room', 'x');
    await clock.advance(60_000);
    await platform.inject('c1', 'room', 'y');
    expect((await notifications(client)).map(summary)).toEqual(['NON 2.05', 'CON 2.05']);
  });

  it('a RST to a notification (NON or CON) ends the observation and its subscription (§3.6)', async () => {
    const { client, platform, server } = await registered();
    await platform.inject('c1', 'room', 'x');
    const [n] = await notifications(client);
    client.rst(n!);
    expect(server.stats().observers).toBe(0);
    expect(platform.activeSubscriptions).toBe(0);
    await platform.inject('c1', 'room', 'y');
    expect(await notifications(client)).toEqual([]);
  });

  it.each([
    ['the device no longer connected to the channel', '4.03', (p: Awaited<ReturnType<typeof registered>>['platform']) => void p.channels.get('c1')!.subscribers.delete('dev-1')],
    ['its key rotated', '4.01', (p: Awaited<ReturnType<typeof registered>>['platform']) => void p.rotateKey(KEY)],
  ])('asks again after authorizationTtlMs: %s ends the observation with a last CON %s, without Observe (§4.2)', async (_name, code, withdraw) => {
    const { client, platform, clock, server } = await registered({ authorizationTtlMs: 5000 });
    await platform.inject('c1', 'room', 'a');
    expect((await notifications(client)).map((n) => str(n.payload))).toEqual(['a']);
    withdraw(platform);
    // Within the bound the observation goes on…
    await platform.inject('c1', 'room', 'b');
    expect((await notifications(client)).map((n) => str(n.payload))).toEqual(['b']);
    // …after it, the next message asks again (and is not held up), and the refusal ends it.
    await clock.advance(5000);
    await platform.inject('c1', 'room', 'c');
    const ns = await notifications(client);
    expect(ns.map((n) => [summary(n), str(n.payload).length > 0 ? str(n.payload).slice(0, 3) : '', observeOf(n) ?? null])).toEqual([
      ['NON 2.05', 'c', expect.any(Number)],
      [`CON ${code}`, code === '4.01' ? 'the' : 'no ', null],
    ]);
    expect(ns[1]!.token).toEqual(OBS.token);
    expect(server.stats().observers).toBe(0);
    expect(platform.activeSubscriptions).toBe(0);
    await platform.inject('c1', 'room', 'd');
    expect(await notifications(client)).toEqual([]);
    // Registering again on the same key (its principal still cached here) is refused the same way.
    client.request({ ...OBS, token: Uint8Array.of(9) });
    await settle();
    expect(summary(client.only())).toBe(`ACK ${code}`);
  });

  it('asks again at once, within authorizationTtlMs, when the platform says access changed (its accessVersion moved)', async () => {
    const { client, platform, server } = await registered({ authorizationTtlMs: 5000 });
    await platform.inject('c1', 'room', 'a');
    expect((await notifications(client)).map((n) => str(n.payload))).toEqual(['a']);
    platform.rotateKey(KEY);
    platform.access.version++;
    await platform.inject('c1', 'room', 'b');
    const ns = await notifications(client);
    expect(ns.map((n) => [summary(n), observeOf(n) ?? null])).toEqual([['NON 2.05', expect.any(Number)], ['CON 4.01', null]]);
    expect(server.stats().observers).toBe(0);
  });

  it('asks about a quiet observation at once when the platform says its org\'s access changed: a rotated key ends it with CON 4.01 without any message', async () => {
    const { client, platform, server } = await registered({ authorizationTtlMs: 5000 });
    platform.rotateKey(KEY);
    platform.access.change('org-2'); // another org's change: this observation is not asked about
    await settle();
    expect(await notifications(client)).toEqual([]);
    expect(server.stats().observers).toBe(1);
    platform.access.change('org-1');
    await settle();
    const ns = await notifications(client);
    expect(ns.map((n) => [summary(n), observeOf(n) ?? null])).toEqual([['CON 4.01', null]]);
    expect(server.stats().observers).toBe(0);
  });

  it('a CON notification never acknowledged is retransmitted MAX_RETRANSMIT times, then the observer is removed (§4.5)', async () => {
    const { client, clock, platform, server } = await registered({ observeConEvery: 1 });
    await platform.inject('c1', 'room', 'x');
    const [n] = await notifications(client);
    expect(summary(n!)).toBe('CON 2.05');
    await clock.advance(62_000);
    expect(client.take()).toEqual([n, n, n, n]);
    expect(server.stats().observers).toBe(0);
    expect(platform.activeSubscriptions).toBe(0);
  });

  it('GET with Observe=1, or without Observe, on the same token deregisters and is answered as a plain GET', async () => {
    for (const observe of [1, undefined]) {
      const { client, platform, server } = await registered();
      client.request({ ...OBS, observe });
      await settle();
      const res = client.only();
      expect(summary(res)).toBe('ACK 2.05');
      expect(observeOf(res)).toBeUndefined();
      expect(server.stats().observers).toBe(0);
      expect(platform.activeSubscriptions).toBe(0);
    }
  });

  it('a GET of another resource that reuses an observation\'s token leaves that observation alone (§3.6: the same resource ends it)', async () => {
    const { client, platform, server } = await registered();
    client.request({ ...OBS, path: '/channels/c1/messages/other', observe: undefined });
    await settle();
    expect(summary(client.only())).toBe('ACK 2.05');
    expect(server.stats().observers).toBe(1);
    await platform.inject('c1', 'room', 'still observed', 'text/plain');
    expect((await notifications(client)).map((n) => str(n.payload))).toEqual(['still observed']);
  });

  it('re-registering with the same token replaces the observation, and the Observe numbers keep increasing (§4.1)', async () => {
    const { client, platform, server, res } = await registered();
    client.request(OBS);
    await settle();
    const again = client.only();
    expect(server.stats().observers).toBe(1);
    expect(platform.activeSubscriptions).toBe(1);
    expect(observeOf(again)!).toBeGreaterThan(observeOf(res)!);
  });

  it('Observe numbers wrap at 2^24 and stay fresh across the wrap (§3.4, §4.4)', () => {
    expect(nextObserveNumber(0xfffffe)).toBe(0xffffff);
    expect(nextObserveNumber(0xffffff)).toBe(0);
    // §3.4: V2 is newer than V1 when (V1 < V2 and V2 − V1 < 2^23) or (V1 > V2 and V1 − V2 > 2^23).
    const newer = (v1: number, v2: number) => (v1 < v2 && v2 - v1 < 2 ** 23) || (v1 > v2 && v1 - v2 > 2 ** 23);
    expect(newer(0xffffff, nextObserveNumber(0xffffff))).toBe(true);
  });

  it('over maxObserversPerDevice the GET is answered without Observe: not registered (§4.1)', async () => {
    const { client, platform } = setup({ maxObserversPerDevice: 1 });
    client.request(OBS);
    client.request({ ...OBS, token: Uint8Array.of(9) });
    await settle();
    const [a, b] = client.take();
    expect(observeOf(a!)).toBeTypeOf('number');
    expect(summary(b!)).toBe('ACK 2.05');
    expect(observeOf(b!)).toBeUndefined();
    expect(platform.activeSubscriptions).toBe(1);
  });

  it('the channel root observes every subtopic; + and # filter (as Uri-Path segments)', async () => {
    const { client, platform } = setup();
    client.request({ ...OBS, path: '/channels/c1/messages', token: Uint8Array.of(1) });
    client.request({ ...OBS, path: '/channels/c1/messages/+/temp', token: Uint8Array.of(2) });
    client.request({ ...OBS, path: '/channels/c1/messages/a/#', token: Uint8Array.of(3) });
    await settle();
    client.take();
    await platform.inject('c1', '', 'root');
    await platform.inject('c1', 'x/temp', 'xt');
    await platform.inject('c1', 'a/b', 'ab');
    const got = (await notifications(client)).map((n) => `${n.token[0]}:${str(n.payload)}`);
    expect(got.sort()).toEqual(['1:ab', '1:root', '1:xt', '2:xt', '3:ab']);
  });

  it('Accept filters notifications to one Content-Format; an unknown Accept is 4.06', async () => {
    const { client, platform } = setup();
    client.request({ ...OBS, options: [uintOption(Opt.Accept, ContentFormat.Json)] });
    client.request({ ...OBS, token: Uint8Array.of(5), options: [uintOption(Opt.Accept, 4242)] });
    await settle();
    expect(client.take().map(summary).sort()).toEqual(['ACK 2.05', 'ACK 4.06']);
    await platform.inject('c1', 'room', 'text');
    await platform.inject('c1', 'room', '{}', 'application/json');
    expect((await notifications(client)).map((n) => str(n.payload))).toEqual(['{}']);
  });

  it('a JSON message published with "; charset=utf-8" (as HTTP clients send it) is Content-Format 50, and passes Accept 50', async () => {
    const { client, platform } = setup();
    client.request({ ...OBS, options: [uintOption(Opt.Accept, ContentFormat.Json)] });
    client.request({ ...OBS, token: Uint8Array.of(5), options: [uintOption(Opt.Accept, ContentFormat.SenmlJson)] });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 2.05', 'ACK 2.05']);
    await platform.inject('c1', 'room', '{"t":1}', 'application/json; charset=utf-8');
    await platform.inject('c1', 'room', '[{"n":"t","v":1}]', 'application/senml+json; charset=UTF-8');
    const ns = await notifications(client);
    expect(ns.map((n) => [n.token[0], str(n.payload), uintOf(n, Opt.ContentFormat)])).toEqual([
      [7, '{"t":1}', ContentFormat.Json],
      [5, '[{"n":"t","v":1}]', ContentFormat.SenmlJson],
    ]);
  });

  it('errors: 4.01 without key, 4.03 not connected for subscribe, 4.04 unknown channel, 5.03 platform down', async () => {
    const { client, platform } = setup();
    client.request({ ...OBS, query: [] });
    client.request({ ...OBS, query: ['auth=key-dev-2'], path: '/channels/c2/messages' });
    client.request({ ...OBS, path: '/channels/zz/messages' });
    await settle();
    expect(client.take().map(summary)).toEqual(['ACK 4.01', 'ACK 4.03', 'ACK 4.04']);
    platform.down = true;
    client.request({ ...OBS, token: Uint8Array.of(3) });
    await settle();
    expect(summary(client.only())).toBe('ACK 5.03');
  });

  it('plain GET returns the latest retained message, or an empty 2.05, and 4.06 when Accept does not match', async () => {
    const { client, platform } = setup();
    client.request({ ...OBS, observe: undefined });
    await settle();
    const empty = client.only();
    expect([summary(empty), empty.payload.length, observeOf(empty)]).toEqual(['ACK 2.05', 0, undefined]);
    await platform.inject('c1', 'room', 'old', 'text/plain', true);
    await platform.inject('c1', 'room/2', 'newer', 'text/plain', true);
    client.request({ ...OBS, observe: undefined, path: '/channels/c1/messages' });
    client.request({ ...OBS, observe: undefined, options: [uintOption(Opt.Accept, ContentFormat.Cbor)] });
    await settle();
    const [latest, notAcceptable] = client.take();
    expect(str(latest!.payload)).toBe('newer');
    expect(summary(notAcceptable!)).toBe('ACK 4.06');
    expect(platform.activeSubscriptions).toBe(0);
  });

  it('plain GET answers Max-Age 0 (the latest message changes on any publish), and 2.03 Valid to the ETag of the latest (RFC 7252 §5.10.6.2)', async () => {
    const { client, platform } = setup();
    const plain = { ...OBS, observe: undefined };
    client.request(plain);
    await settle();
    expect(uintOf(client.only(), Opt.MaxAge)).toBe(0);
    await platform.inject('c1', 'room', 'first', 'text/plain', true);
    client.request(plain);
    await settle();
    const first = client.only();
    expect([summary(first), str(first.payload), uintOf(first, Opt.MaxAge)]).toEqual(['ACK 2.05', 'first', 0]);
    const tag = opt(first, Opt.ETag)!;
    // Still the latest: 2.03 with the ETag and no payload; among several ETags too.
    client.request({ ...plain, options: [{ number: Opt.ETag, value: Uint8Array.of(99) }, tag] });
    await settle();
    const valid = client.only();
    expect([summary(valid), valid.payload.length, opt(valid, Opt.ETag)?.value, uintOf(valid, Opt.MaxAge)]).toEqual(['ACK 2.03', 0, tag.value, 0]);
    // A newer message: the held ETag is stale, so the new one comes whole.
    await platform.inject('c1', 'room', 'second', 'text/plain', true);
    client.request({ ...plain, options: [tag] });
    await settle();
    const second = client.only();
    expect([summary(second), str(second.payload)]).toEqual(['ACK 2.05', 'second']);
    expect(opt(second, Opt.ETag)?.value).not.toEqual(tag.value);
  });

  it('an observing device stays online; it goes offline once the observation ends and it is quiet', async () => {
    const { client, clock, platform } = await registered({ presenceIdleMs: 10_000 });
    await clock.advance(60_000);
    expect(platform.presenceLog).toEqual([['dev-1', true]]);
    client.request({ ...OBS, observe: 1 });
    await clock.advance(30_000);
    expect(platform.presenceLog).toEqual([['dev-1', true], ['dev-1', false]]);
  });

  it('a separate (CON) registration response that is reset ends the observation', async () => {
    const { client, clock, platform, server } = setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const subscribe = platform.subscribe.bind(platform);
    platform.subscribe = async (req, cb) => {
      await gate;
      return subscribe(req, cb);
    };
    client.request(OBS);
    await clock.advance(1000);
    expect(client.only()).toMatchObject({ type: Type.ACK, code: Code.Empty });
    release();
    await settle();
    const res = client.only();
    expect(summary(res)).toBe('CON 2.05');
    client.rst(res);
    expect(server.stats().observers).toBe(0);
  });

  it('a quiet observing endpoint is pinged (empty CON); a RST keeps it, silence removes its observations (RFC 7252 §4.3)', async () => {
    const { client, clock, platform, server } = await registered({ observerPingMs: 60_000 });
    await clock.advance(60_000);
    const [ping] = client.take();
    expect(ping).toMatchObject({ type: Type.CON, code: Code.Empty });
    client.rst(ping!);
    await clock.advance(59_000);
    expect(client.take()).toEqual([]); // heard at the RST, less than observerPingMs ago
    await clock.advance(1000);
    const [again] = client.take();
    expect(again).toMatchObject({ type: Type.CON, code: Code.Empty });
    await clock.advance(62_000);
    expect(client.take()).toEqual([again, again, again, again]);
    expect(server.stats().observers).toBe(0);
    expect(platform.activeSubscriptions).toBe(0);
  });

  it('a device whose only observation ended because it went away (ping unanswered) goes offline then, not presenceIdleMs later', async () => {
    const { client, clock, platform, server } = await registered({ observerPingMs: 60_000, presenceIdleMs: 10_000 });
    expect(platform.presenceLog).toEqual([['dev-1', true]]);
    // Silent from here on: the ping goes unanswered, and its retransmissions.
    while (server.stats().observers > 0) await clock.advance(1000);
    client.take();
    // Its last request was minutes ago: the next presence sweep (presenceIdleMs / 4) reports it gone.
    // A removal is no sign of the device; counting it as activity kept the device online
    // presenceIdleMs (5 min by default) longer, on top of the minutes the ping took to find it gone.
    await clock.advance(3000);
    expect(platform.presenceLog).toEqual([['dev-1', true], ['dev-1', false]]);
  });

  it('a device that cancels its observation itself (a RST to a notification) is alive: not offline at the next sweep', async () => {
    const { client, clock, platform } = await registered({ presenceIdleMs: 10_000, observerPingMs: 600_000 });
    await clock.advance(60_000); // observing quietly, longer than presenceIdleMs
    await platform.inject('c1', 'room', 'n', 'text/plain');
    const [notification] = await notifications(client);
    client.rst(notification!);
    await clock.advance(2600); // the next sweep
    expect(platform.presenceLog).toEqual([['dev-1', true]]);
  });

  it('an endpoint that keeps talking (e.g. publishing) is not pinged', async () => {
    const { client, clock } = await registered({ observerPingMs: 60_000 });
    for (let i = 0; i < 6; i++) {
      await clock.advance(20_000);
      client.request({ code: Code.POST, path: '/channels/c1/messages/x', query: [`auth=${KEY}`], payload: 'p' });
    }
    await settle();
    expect(client.take().every((m) => m.code !== Code.Empty)).toBe(true);
  });
});
