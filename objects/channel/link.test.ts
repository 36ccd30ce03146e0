import { evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { FORMAT, LINK_SUBPROTOCOL, LINK_SUBPROTOCOL_V1, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V3, type ActorOp, type LinkMessage, type LinkPublish } from '../../shared/link';
import type { ChannelActor } from './index';
import { parseLinkOptions } from './sockets';
import { actor, framesOf, msg, newChannel, openLink, rawFramesOf, subscribe, text } from './test-helpers';

const publishOp = (id: number, over: Partial<LinkPublish> = {}): LinkPublish => ({
  op: 'publish',
  id,
  subtopic: 'a',
  publisher: 'dev-1',
  protocol: 'mqtt',
  contentType: 'text/plain',
  payload: text(`p${id}`),
  retain: false,
  ...over,
});

const messages = (ops: ActorOp[]): LinkMessage[] => ops.filter((o): o is LinkMessage => o.op === 'message');

describe('channel actor: bridge link', () => {
  it('acks a publish batch with seqs (one transaction) and nacks the bad ones', async () => {
    const ch = newChannel();
    const link = await openLink(ch);
    link.send([publishOp(10), publishOp(11, { subtopic: 'a/#' }), publishOp(12, { contentType: 'application/json', payload: text('1') }), publishOp(13)]);
    const replies = await link.take(4);
    expect(replies).toEqual([
      { op: 'ack', id: 10, seq: 1, created: expect.any(Number) },
      { op: 'nack', id: 11, status: 400, code: 'invalid_subtopic', reason: expect.any(String) },
      { op: 'nack', id: 12, status: 400, code: 'invalid_json', reason: expect.any(String) },
      { op: 'ack', id: 13, seq: 2, created: expect.any(Number) },
    ]);
    // One transaction: both accepted messages share the batch's created time.
    const [a, , , b] = replies;
    expect(a?.op === 'ack' && b?.op === 'ack' && a.created === b.created).toBe(true);
    expect(framesOf(link)).toEqual([4]); // all replies in one frame
  });

  it('serves many subscriptions on one socket: suback, then batched deliveries listing matching subscription ids', async () => {
    const ch = newChannel();
    const link = await openLink(ch);
    link.send([
      { op: 'subscribe', sub: 1, filter: 'room/#' },
      { op: 'subscribe', sub: 2, filter: 'room/+/temp' },
      { op: 'subscribe', sub: 3, filter: 'hall' },
    ]);
    expect(await link.take(3)).toEqual([
      { op: 'suback', sub: 1, seq: 0 },
      { op: 'suback', sub: 2, seq: 0 },
      { op: 'suback', sub: 3, seq: 0 },
    ]);
    const before = framesOf(link).length;
    await actor(ch).publish([msg({ subtopic: 'room/1/temp' }), msg({ subtopic: 'room' }), msg({ subtopic: 'hall' }), msg({ subtopic: 'garage' })], ch);
    const got = messages(await link.take(3));
    expect(got.map((m) => [m.envelope.seq, m.envelope.subtopic, m.subs])).toEqual([
      [1, 'room/1/temp', [1, 2]],
      [2, 'room', [1]],
      [3, 'hall', [3]],
    ]);
    expect(got[0]?.envelope).toMatchObject({ channel: ch, publisher: 'dev-1', protocol: 'http', contentType: 'text/plain', payload: text('hello') });
    // The whole publish batch arrived as one frame.
    expect(framesOf(link).slice(before)).toEqual([3]);

    link.send([{ op: 'unsubscribe', sub: 1 }]);
    expect(await link.next()).toEqual({ op: 'unsuback', sub: 1 });
    await actor(ch).publish([msg({ subtopic: 'room' }), msg({ subtopic: 'room/2/temp' })], ch);
    expect(messages(await link.take(1)).map((m) => [m.envelope.seq, m.subs])).toEqual([[6, [2]]]);
  });

  it("carries the publisher's RETAIN on live messages (for MQTT 5 Retain As Published)", async () => {
    const ch = newChannel();
    const link = await openLink(ch);
    link.send([{ op: 'subscribe', sub: 1, filter: '#' }]);
    expect(await link.next()).toEqual({ op: 'suback', sub: 1, seq: 0 });
    await actor(ch).publish([msg({ subtopic: 'state', retain: true }), msg({ subtopic: 'event' })], ch);
    const got = messages(await link.take(2));
    expect(got.map((m) => [m.envelope.subtopic, m.retained, m.retain])).toEqual([
      ['state', false, true],
      ['event', false, undefined],
    ]);
  });

  it('replays retained messages and resumes with since and gap notices per subscription', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { recentWindow: 2 });
    await actor(ch).publish([msg({ subtopic: 's', retain: true, payload: text('r') }), msg(), msg(), msg(), msg()], ch);
    const link = await openLink(ch);
    link.send([
      { op: 'subscribe', sub: 1, filter: '#' },
      { op: 'subscribe', sub: 2, filter: '#', since: 1 },
    ]);
    const ops = await link.take(6);
    expect(ops[0]).toEqual({ op: 'suback', sub: 1, seq: 5 });
    expect(ops[1]).toMatchObject({ op: 'message', subs: [1], retained: true, envelope: { seq: 1 } });
    expect(ops[2]).toEqual({ op: 'suback', sub: 2, seq: 5 });
    expect(ops[3]).toEqual({ op: 'gap', sub: 2, from: 2, to: 3 });
    expect(ops.slice(4).map((o) => o.op === 'message' && [o.envelope.seq, o.subs, o.retained])).toEqual([
      [4, [2], false],
      [5, [2], false],
    ]);
  });

  it('honours noLocal, forwards MQTT 5 properties and remaining expiry', async () => {
    const ch = newChannel();
    const link = await openLink(ch);
    link.send([{ op: 'subscribe', sub: 1, filter: '#', noLocal: 'bridge-client-1' }]);
    await link.next();
    link.send([
      publishOp(1, { publisher: 'bridge-client-1' }),
      publishOp(2, { publisher: 'other', properties: [['trace', 'abc'], ['trace', 'def']], expiry: 60 }),
    ]);
    const ops = await link.take(3);
    const delivered = messages(ops);
    expect(delivered.map((m) => m.envelope.publisher)).toEqual(['other']);
    expect(delivered[0]).toMatchObject({ properties: [['trace', 'abc'], ['trace', 'def']], expiry: 60 });
    expect(ops.filter((o) => o.op === 'ack').map((o) => o.op === 'ack' && o.id)).toEqual([1, 2]);
  });

  it('No Local is per client: skips the same origin only, live and on catch-up from the log [MQTT-3.8.3-3]', async () => {
    const ch = newChannel();
    const link = await openLink(ch, LINK_SUBPROTOCOL);
    // Two MQTT clients of one device (client ids A and B), each subscribed with No Local.
    link.send([
      { op: 'subscribe', sub: 1, filter: '#', noLocal: 'dev-1\u0000A' },
      { op: 'subscribe', sub: 2, filter: '#', noLocal: 'dev-1\u0000B' },
    ]);
    await link.take(2);
    link.send([publishOp(1, { origin: 'dev-1\u0000A' }), publishOp(2, { origin: 'dev-1\u0000B' }), publishOp(3)]);
    const live = messages(await link.take(6));
    expect(live.map((m) => [m.envelope.seq, m.subs])).toEqual([
      [1, [2]],
      [2, [1]],
      [3, [1, 2]],
    ]);
    // A session resumed later (after hibernation: from the stored log) gets the same answer.
    await evictDurableObject(actor(ch));
    const again = await openLink(ch, LINK_SUBPROTOCOL);
    again.send([{ op: 'subscribe', sub: 3, filter: '#', since: 0, noLocal: 'dev-1\u0000A' }]);
    const replay = messages(await again.take(3));
    expect(replay.map((m) => [m.envelope.seq, m.retained])).toEqual([
      [2, false],
      [3, false],
    ]);
    // The origin is the actor's own: never handed back on a message.
    expect([...live, ...replay].some((m) => 'origin' in m)).toBe(false);
  });

  it('keeps link subscriptions across hibernation and forgets them when the link closes', async () => {
    const ch = newChannel();
    const link = await openLink(ch);
    link.send([{ op: 'subscribe', sub: 9, filter: 'x' }]);
    await link.next();
    await evictDurableObject(actor(ch));
    await actor(ch).publish([msg({ subtopic: 'x' })], ch);
    expect(messages(await link.take(1)).map((m) => m.subs)).toEqual([[9]]);
    link.ws.close(1000, 'bye');
    await link.closed;
    await new Promise((r) => setTimeout(r, 20));
    expect((await actor(ch).info()).links).toBe(0);
    const subs = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM link_subs').one().n);
    expect(subs).toBe(0);
  });

  it('writes string references only on a v2 or newer link, and still after hibernation', async () => {
    const ch = newChannel();
    const v2 = await openLink(ch, LINK_SUBPROTOCOL);
    const v1 = await openLink(ch, LINK_SUBPROTOCOL_V1);
    for (const l of [v2, v1]) {
      l.send([{ op: 'subscribe', sub: 1, filter: '#' }]);
      await l.next();
    }
    await evictDurableObject(actor(ch));
    await actor(ch).publish([msg({ subtopic: 'x', publisher: 'dev-7' }), msg({ subtopic: 'x', publisher: 'dev-7' })], ch);
    for (const l of [v2, v1]) expect(messages(await l.take(2)).map((m) => [m.envelope.subtopic, m.envelope.publisher])).toEqual([['x', 'dev-7'], ['x', 'dev-7']]);
    // [8, subs, channel, seq, created, subtopic, publisher, protocol, contentType, …] as sent: the v2 link's second message refers to the first's strings.
    const wire = (l: typeof v1) => rawFramesOf(l).flat().filter((op) => op[0] === 8).map((op) => [op[2], ...op.slice(5, 9)].map((x) => typeof x));
    expect(wire(v2)).toEqual([['string', 'string', 'string', 'string', 'string'], ['number', 'number', 'number', 'number', 'number']]);
    expect(wire(v1)).toEqual([['string', 'string', 'string', 'string', 'string'], ['string', 'string', 'string', 'string', 'string']]);
  });

  it('keeps the publish QoS on a v3 link: live, replayed from the log and retained, after hibernation; never on a v2 link', async () => {
    const ch = newChannel();
    const v3 = await openLink(ch, LINK_SUBPROTOCOL);
    const v2 = await openLink(ch, LINK_SUBPROTOCOL_V2);
    for (const l of [v3, v2]) {
      l.send([{ op: 'subscribe', sub: 1, filter: '#' }]);
      await l.next();
    }
    await evictDurableObject(actor(ch));
    v3.send([publishOp(1, { subtopic: 'r', retain: true, qos: 0 }), publishOp(2, { subtopic: 'x', qos: 1 }), publishOp(3, { subtopic: 'y' })]);
    const qosOf = (ops: ActorOp[]) => messages(ops).map((m) => [m.envelope.subtopic, m.qos ?? 2, m.retained]);
    const live = await v3.take(6);
    expect(live.filter((o) => o.op === 'ack')).toHaveLength(3);
    expect(qosOf(live)).toEqual([['r', 0, false], ['x', 1, false], ['y', 2, false]]);
    expect(qosOf(await v2.take(3))).toEqual([['r', 2, false], ['x', 2, false], ['y', 2, false]]);
    // What a v2 bridge can read: [8, …, retained, properties?, expiry?, retain?] and no element after it.
    expect(rawFramesOf(v2).flat().filter((op) => op[0] === 8).map((op) => op.length)).toEqual([14, 11, 11]);
    // From SQLite, not memory: the retained row and the log's runs.
    await evictDurableObject(actor(ch));
    const later = await openLink(ch, LINK_SUBPROTOCOL);
    later.send([{ op: 'subscribe', sub: 1, filter: 'r' }, { op: 'subscribe', sub: 2, filter: '#', since: 0 }]);
    const replayed = await later.take(6);
    expect(qosOf(replayed)).toEqual([['r', 0, true], ['r', 0, false], ['x', 1, false], ['y', 2, false]]);
  });

  it('picks the link subprotocol itself from what the bridge offered (the worker\'s pick is for actors before v3)', () => {
    const header = (o: unknown) => parseLinkOptions(JSON.stringify(o));
    expect(header({ offered: [LINK_SUBPROTOCOL_V1, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL], subprotocol: LINK_SUBPROTOCOL_V2 })).toEqual({ subprotocol: LINK_SUBPROTOCOL });
    expect(header({ offered: [LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V1], subprotocol: LINK_SUBPROTOCOL_V2 })).toEqual({ subprotocol: LINK_SUBPROTOCOL_V2 });
    expect(header({ offered: ['edgeflux.link.v9'] })).toEqual({});
    // An older worker sends only its own pick.
    expect(header({ subprotocol: LINK_SUBPROTOCOL_V1 })).toEqual({ subprotocol: LINK_SUBPROTOCOL_V1 });
  });

  it('keeps Response Topic, Correlation Data and format on a v4 link: live, replayed from the log and retained, after hibernation; never on a v3 link', async () => {
    const ch = newChannel();
    const v4 = await openLink(ch, LINK_SUBPROTOCOL);
    const v3 = await openLink(ch, LINK_SUBPROTOCOL_V3);
    for (const l of [v4, v3]) {
      l.send([{ op: 'subscribe', sub: 1, filter: '#' }]);
      await l.next();
    }
    await evictDurableObject(actor(ch));
    const correlation = new Uint8Array([0, 0xff, 3]);
    const rt = `channels/${ch}/messages/replies`;
    v4.send([
      publishOp(1, { subtopic: 'r', retain: true, qos: 1, format: FORMAT.utf8 | FORMAT.ownContentType, contentType: 'application/json', payload: text('{}'), responseTopic: rt, correlation }),
      publishOp(2, { subtopic: 'x', correlation: new Uint8Array() }),
      publishOp(3, { subtopic: 'y' }),
    ]);
    const fields = (ops: ActorOp[]) => messages(ops).map((m) => [m.envelope.subtopic, m.format, m.responseTopic, m.correlation && [...m.correlation], m.retained]);
    const live = await v4.take(6);
    expect(live.filter((o) => o.op === 'ack')).toHaveLength(3);
    expect(fields(live)).toEqual([['r', 6, rt, [0, 0xff, 3], false], ['x', undefined, undefined, [], false], ['y', undefined, undefined, undefined, false]]);
    expect(fields(await v3.take(3))).toEqual([['r', undefined, undefined, undefined, false], ['x', undefined, undefined, undefined, false], ['y', undefined, undefined, undefined, false]]);
    // What a v3 bridge can read: [8, …, retain?, qos?] and no element after it.
    expect(rawFramesOf(v3).flat().filter((op) => op[0] === 8).map((op) => op.length)).toEqual([15, 11, 11]);
    // From SQLite, not memory: the retained row and the log's runs.
    await evictDurableObject(actor(ch));
    const later = await openLink(ch, LINK_SUBPROTOCOL);
    later.send([{ op: 'subscribe', sub: 1, filter: 'r' }, { op: 'subscribe', sub: 2, filter: '#', since: 0 }]);
    const replayed = await later.take(6);
    expect(fields(replayed)).toEqual([['r', 6, rt, [0, 0xff, 3], true], ['r', 6, rt, [0, 0xff, 3], false], ['x', undefined, undefined, [], false], ['y', undefined, undefined, undefined, false]]);
  });

  it("a message without a content type on a channel with another default keeps that its publisher gave none (format 0); with the default, nothing", async () => {
    const ch = newChannel();
    const link = await openLink(ch, LINK_SUBPROTOCOL);
    link.send([{ op: 'subscribe', sub: 1, filter: '#' }]);
    await link.next();
    link.send([publishOp(1, { contentType: '' }), publishOp(2, { contentType: '', format: FORMAT.utf8 })]);
    await actor(ch).configure(ch, { defaultContentType: 'text/plain' });
    link.send([publishOp(3, { contentType: '' }), publishOp(4, { contentType: '', format: FORMAT.unspecified })]);
    const got = messages(await link.take(8)).map((m) => [m.envelope.contentType, m.format]);
    expect(got).toEqual([['application/octet-stream', undefined], ['application/octet-stream', FORMAT.utf8], ['text/plain', 0], ['text/plain', FORMAT.unspecified]]);
  });

  it('reports malformed frames and wrong-direction ops as error ops without closing', async () => {
    const ch = newChannel();
    const link = await openLink(ch);
    link.ws.send(new Uint8Array([0xff]));
    expect(await link.next()).toMatchObject({ op: 'error', code: 'bad_frame' });
    link.ws.send('text');
    expect(await link.next()).toMatchObject({ op: 'error', code: 'bad_frame', reason: expect.stringContaining('binary') });
    link.send([{ op: 'subscribe', sub: 1, filter: 'a/#/b' }]);
    expect(await link.next()).toMatchObject({ op: 'error', code: 'invalid_filter', sub: 1 });
    link.send([{ op: 'ack', id: 1, seq: 1, created: 1 } as never]);
    expect(await link.next()).toMatchObject({ op: 'error', code: 'unexpected_op' });
    link.send([publishOp(1)]);
    expect(await link.next()).toMatchObject({ op: 'ack', id: 1, seq: 1 });
  });

  it('drops a link that does not acknowledge deliveries (1013), and keeps serving WebSocket subscribers', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { linkWindow: { bytes: 1_000_000, messages: 5 } });
    const link = await openLink(ch);
    const ws = await subscribe(ch);
    link.send([{ op: 'subscribe', sub: 1, filter: '#' }]);
    await link.next();
    await actor(ch).publish(Array.from({ length: 4 }, () => msg()), ch);
    await link.take(4);
    link.send([{ op: 'consumed', seq: 4 }]);
    await new Promise((r) => setTimeout(r, 50)); // let the actor process the consumed op
    await actor(ch).publish(Array.from({ length: 5 }, () => msg()), ch); // 5 outstanding: at the window
    await link.take(5);
    await actor(ch).publish([msg()], ch); // 6th unacknowledged: over
    const closed = await link.closed;
    expect(closed).toMatchObject({ code: 1013, reason: expect.stringContaining('slow consumer') });
    expect((await ws.take(10)).length).toBe(10);
  });
});
