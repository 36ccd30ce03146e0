import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { decodeLinkFrame, encodeLinkFrame, LINK_LIMITS, type BridgeOp } from '../../shared/link';
import mqtt from 'mqtt-packet';
import { ChannelLink, maskingNeedless } from './link';
import { frames, groupProperties, propertyPairs } from './link-frames';
import type { PublishRequest } from './types';

const pub = (id: number, bytes = 10): BridgeOp => ({ op: 'publish', id, subtopic: '', publisher: 'd', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array(bytes), retain: false });

describe('link frames', () => {
  it('keeps a small queue in one frame, in order', () => {
    const ops: BridgeOp[] = [{ op: 'subscribe', sub: 1, filter: '#' }, pub(1), pub(2), { op: 'consumed', seq: 3 }];
    expect(frames(ops)).toEqual([ops]);
  });

  it('starts a new frame at publishesPerFrame publishes, keeping every op once and in order', () => {
    const n = LINK_LIMITS.publishesPerFrame * 2 + 5;
    const ops = Array.from({ length: n }, (_, i) => pub(i));
    const out = frames(ops);
    expect(out.map((f) => f.length)).toEqual([LINK_LIMITS.publishesPerFrame, LINK_LIMITS.publishesPerFrame, 5]);
    expect(out.flat()).toEqual(ops);
  });

  it('starts a new frame before the payload bytes pass frameBytes; one oversized publish still goes alone', () => {
    const big = LINK_LIMITS.frameBytes / 2 + 1;
    const ops = [pub(1, big), pub(2, big), pub(3, LINK_LIMITS.frameBytes * 2), pub(4)];
    expect(frames(ops).map((f) => f.map((o) => (o.op === 'publish' ? o.id : -1)))).toEqual([[1], [2], [3], [4]]);
  });
});

describe('link frames, sized by everything a publish carries', () => {
  it('counts user properties and strings, not only payloads: 1000 publishes with 2 KiB of properties span several frames under 1 MiB', () => {
    const ops: BridgeOp[] = Array.from({ length: 1000 }, (_, i) => ({ ...(pub(i) as Extract<BridgeOp, { op: 'publish' }>), properties: [['k', 'v'.repeat(2048)]] }));
    const out = frames(ops);
    expect(out.length).toBeGreaterThan(1);
    for (const f of out) expect(encodeLinkFrame(f).byteLength).toBeLessThan(1024 * 1024);
    expect(out.flat()).toEqual(ops);
  });
});

/** A fake channel actor on a real WebSocket: answers frames of publishes as `answer` decides. */
async function fakeActor(answer: (frameNo: number, ids: number[]) => boolean) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  const frames: BridgeOp[][] = [];
  let connections = 0;
  /** The bytes each connection sent after its upgrade, as they came over TCP (frames still masked). */
  const wire: Buffer[] = [];
  wss.on('connection', (ws, req) => {
    connections++;
    req.socket.on('data', (b: Buffer) => wire.push(b));
    ws.on('message', (data: Buffer) => {
      const ops = decodeLinkFrame(new Uint8Array(data)) as BridgeOp[];
      frames.push(ops);
      const ids = ops.flatMap((o) => (o.op === 'publish' ? [o.id] : []));
      if (ids.length > 0 && answer(frames.length, ids)) ws.send(encodeLinkFrame(ids.map((id) => ({ op: 'ack', id, seq: id, created: 1 }))));
    });
  });
  const port = (wss.address() as { port: number }).port;
  const drop = () => wss.clients.forEach((c) => c.terminate());
  return { url: `ws://127.0.0.1:${port}`, frames, wire, connections: () => connections, drop, close: () => new Promise((r) => wss.close(r)) };
}

const req = (n: number): PublishRequest => ({ channel: 'c', subtopic: '', publisher: 'd', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array([n]), retain: false });
const tick = (ms = 50) => new Promise((r) => setTimeout(r, ms));

describe('ChannelLink windowing', () => {
  it('holds publishes while two frames are unanswered, then sends what waited in one frame; consumed acks never wait', async () => {
    let release = false;
    const actor = await fakeActor(() => release);
    const link = new ChannelLink({ url: actor.url, bridgeSecret: 's' });
    try {
      const first = link.publish(req(1));
      await tick();
      const second = link.publish(req(2));
      await tick();
      const later = [link.publish(req(3)), link.publish(req(4)), link.publish(req(5))];
      await tick();
      expect(actor.frames.map((f) => f.map((o) => (o.op === 'publish' ? o.id : o.op)))).toEqual([[1], [2]]);
      release = true;
      // The actor answers the two frames it has: the three held publishes leave together.
      (link as unknown as { ws: { emit: (e: string, d: Buffer) => void } }).ws.emit('message', Buffer.from(encodeLinkFrame([{ op: 'ack', id: 1, seq: 1, created: 1 }, { op: 'ack', id: 2, seq: 2, created: 1 }])));
      expect(await first).toMatchObject({ ok: true, seq: 1 });
      expect(await second).toMatchObject({ ok: true, seq: 2 });
      expect((await Promise.all(later)).map((o) => o.ok)).toEqual([true, true, true]);
      expect(actor.frames.map((f) => f.map((o) => (o.op === 'publish' ? o.id : o.op)))).toEqual([[1], [2], [3, 4, 5]]);
    } finally {
      link.close();
      await actor.close();
    }
  });

  it('starts over when a frame is never answered: its publishes fail with 503 and the held ones go out on a new socket', async () => {
    const actor = await fakeActor((n) => n > 2); // the first two frames are lost, e.g. the actor failed
    const link = new ChannelLink({ url: actor.url, bridgeSecret: 's', answerTimeoutMs: 300 });
    try {
      const lost = [link.publish(req(1))];
      await tick();
      lost.push(link.publish(req(2)));
      await tick();
      const held = link.publish(req(3));
      const outcomes = await Promise.all(lost);
      expect(outcomes.map((o) => (o.ok ? 200 : o.status))).toEqual([503, 503]);
      expect(await held).toMatchObject({ ok: true, seq: 3 });
      expect(actor.connections()).toBe(2);
    } finally {
      link.close();
      await actor.close();
    }
  });

  it('dials where the worker is now at each connect: after the old one drops, publishes go to the new address', async () => {
    const before = await fakeActor(() => true);
    const after = await fakeActor(() => true);
    let url = before.url;
    const link = new ChannelLink({ url: () => url, bridgeSecret: 's' });
    try {
      expect(await link.publish(req(1))).toMatchObject({ ok: true });
      url = after.url; // the worker reloaded on another port
      before.drop();
      await tick(400); // the link notices and dials again after its back-off
      expect(await link.publish(req(2))).toMatchObject({ ok: true });
      expect(before.connections()).toBe(1);
      expect(after.connections()).toBe(1);
      expect(after.frames.flat().map((o) => (o.op === 'publish' ? o.id : -1))).toEqual([2]);
    } finally {
      link.close();
      await before.close();
      await after.close();
    }
  });
});

describe('user properties back from the link (groupProperties)', () => {
  it("keeps a property named like one of Object's (toString, constructor, __proto__) as the publisher's, repeats in order", () => {
    const pairs: [string, string][] = [['toString', 'x'], ['__proto__', 'y'], ['constructor', 'z'], ['a', '1'], ['a', '2']];
    const grouped = groupProperties(pairs);
    expect(Object.keys(grouped)).toEqual(['toString', '__proto__', 'constructor', 'a']);
    expect(propertyPairs(grouped)).toEqual(pairs);
    // As a subscriber receives them: the PUBLISH mqtt-packet writes and parses back.
    const wire = mqtt.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('p'), qos: 0, dup: false, retain: false, properties: { userProperties: grouped } }, { protocolVersion: 5 });
    const parser = mqtt.parser({ protocolVersion: 5 });
    let got: Record<string, unknown> | undefined;
    parser.on('packet', (p) => (got = (p as mqtt.IPublishPacket).properties?.userProperties as Record<string, unknown>));
    parser.parse(wire);
    expect(got && Object.entries(got)).toEqual([['toString', 'x'], ['__proto__', 'y'], ['constructor', 'z'], ['a', ['1', '2']]]);
  });
});

describe('link masking', () => {
  it('sends frames with a zero masking key only where nothing between bridge and worker reads the bytes', () => {
    for (const url of ['ws://127.0.0.1:8787/x', 'ws://127.1.2.3/x', 'ws://localhost:1/x', 'ws://[::1]:8787/x', 'wss://edgeflux.example.com/x', 'wss://10.0.0.5/x']) expect(maskingNeedless(url)).toBe(true);
    for (const url of ['ws://edgeflux.example.com/x', 'ws://10.0.0.5:8787/x', 'ws://[2001:db8::1]/x', 'ws://127.0.0.1.example.com/x', 'ws://localhost.example.com/x']) expect(maskingNeedless(url)).toBe(false);
  });

  it('on a loopback link, a frame of publishes goes out masked with key 0000 and its payload as encoded', async () => {
    const actor = await fakeActor(() => true);
    const link = new ChannelLink({ url: () => actor.url, bridgeSecret: 's' });
    try {
      expect(await link.publish(req(7))).toMatchObject({ ok: true });
      const bytes = Buffer.concat(actor.wire);
      expect(bytes[0]! & 0x0f).toBe(2); // binary frame
      expect(bytes[1]! & 0x80).toBe(0x80); // masked, as a client must
      const len7 = bytes[1]! & 0x7f;
      const keyAt = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
      const length = len7 === 126 ? bytes.readUInt16BE(2) : len7 === 127 ? Number(bytes.readBigUInt64BE(2)) : len7;
      expect([...bytes.subarray(keyAt, keyAt + 4)]).toEqual([0, 0, 0, 0]);
      expect(decodeLinkFrame(new Uint8Array(bytes.subarray(keyAt + 4, keyAt + 4 + length)))).toEqual(actor.frames[0]);
    } finally {
      link.close();
      await actor.close();
    }
  });
});
