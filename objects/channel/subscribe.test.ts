import { evictDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeClientFrame, type ServerFrame } from '../../shared/frames';
import { actor, msg, newChannel, payloadText, subscribe, subscribeRaw, text } from './test-helpers';
import { HEADER_CHANNEL, HEADER_SUBSCRIBER } from './sockets';

const seqs = (frames: ServerFrame[]) => frames.map((f) => (f.type === 'message' ? f.envelope.seq : f.type));
const subtopics = (frames: ServerFrame[]) => frames.map((f) => (f.type === 'message' ? f.envelope.subtopic : f.type));

describe('channel actor: subscriptions', () => {
  it('sends subscribed {seq} first, before retained and live messages, as JSON text or CBOR binary', async () => {
    const ch = newChannel();
    const empty = await subscribeRaw(ch);
    expect(await empty.next()).toEqual({ type: 'subscribed', seq: 0 });
    await actor(ch).publish([msg({ subtopic: 'r', retain: true, payload: text('r1') }), msg({ payload: text('m2') }), msg({ payload: text('m3') })], ch);
    expect(seqs(await empty.take(3))).toEqual([1, 2, 3]);

    for (const encoding of ['json', 'cbor'] as const) {
      const s = await subscribeRaw(ch, { encoding });
      const [first, retained] = await s.take(2);
      expect(first).toEqual({ type: 'subscribed', seq: 3 }); // no `since`: none was asked for
      expect(retained).toMatchObject({ type: 'message', retained: true, envelope: { seq: 1 } });
      expect(s.wire).toEqual(encoding === 'json' ? ['text', 'text'] : ['binary', 'binary']);
      expect(await s.drain(50)).toEqual([]);
    }
  });

  it('subscribed carries the channel seq and echoes since (replay, up to date, gap, a cursor from the future)', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { recentWindow: 3 });
    await actor(ch).publish(Array.from({ length: 6 }, (_, i) => msg({ payload: text(`m${i + 1}`) })), ch);
    for (const encoding of ['json', 'cbor'] as const) {
      const replay = await subscribeRaw(ch, { since: 4, encoding });
      expect(seqs(await replay.take(3))).toEqual(['subscribed', 5, 6]);
      const upToDate = await subscribeRaw(ch, { since: 6, encoding });
      expect(await upToDate.take(1)).toEqual([{ type: 'subscribed', seq: 6, since: 6 }]);
      expect(await upToDate.drain(50)).toEqual([]);
      const gap = await subscribeRaw(ch, { since: 0, encoding });
      expect(await gap.take(2)).toEqual([{ type: 'subscribed', seq: 6, since: 0 }, { type: 'gap', from: 1, to: 3 }]);
      const future = await subscribeRaw(ch, { since: 99, encoding });
      expect(await future.take(1)).toEqual([{ type: 'subscribed', seq: 6, since: 99 }]);
      expect(replay.wire[0]).toBe(encoding === 'json' ? 'text' : 'binary');
    }
    const replay = await subscribeRaw(ch, { since: 4 });
    expect(await replay.next()).toEqual({ type: 'subscribed', seq: 6, since: 4 });
    // The seq survives hibernation: a woken actor reports the same one.
    await evictDurableObject(actor(ch));
    expect((await subscribe(ch)).subscribed).toEqual({ type: 'subscribed', seq: 6 });
  });

  it('routes by filter: exact, +, #, # matching the parent, and no subtopic = everything', async () => {
    const ch = newChannel();
    const all = await subscribe(ch);
    const exact = await subscribe(ch, { subtopic: 'room/1/temp' });
    const plus = await subscribe(ch, { subtopic: 'room/+/temp' });
    const hash = await subscribe(ch, { subtopic: 'room/#' });
    const topics = ['', 'room', 'room/1/temp', 'room/2/temp', 'room/1/hum', 'hall/1/temp', 'room/1/temp/x'];
    await actor(ch).publish(topics.map((subtopic) => msg({ subtopic })), ch);
    expect(subtopics(await all.take(topics.length))).toEqual(topics);
    expect(subtopics(await exact.take(1))).toEqual(['room/1/temp']);
    expect(subtopics(await plus.take(2))).toEqual(['room/1/temp', 'room/2/temp']);
    expect(subtopics(await hash.take(5))).toEqual(['room', 'room/1/temp', 'room/2/temp', 'room/1/hum', 'room/1/temp/x']);
    // And nothing else arrives.
    for (const s of [all, exact, plus, hash]) expect(await s.drain(50)).toEqual([]);
  });

  it('delivers retained messages first to a new subscriber, and a zero-byte retained publish clears', async () => {
    const ch = newChannel();
    await actor(ch).publish(
      [
        msg({ subtopic: 'a', payload: text('a1'), retain: true }),
        msg({ subtopic: 'b', payload: text('b1'), retain: true }),
        msg({ subtopic: 'a', payload: text('a2'), retain: true }), // replaces a1
        msg({ subtopic: 'c', payload: text('not retained') }),
      ],
      ch,
    );
    const s1 = await subscribe(ch);
    const first = await s1.take(2);
    expect(first.map((f) => f.type === 'message' && f.retained)).toEqual([true, true]);
    expect(first.map(payloadText)).toEqual(['b1', 'a2']); // in seq order
    const onlyA = await subscribe(ch, { subtopic: 'a' });
    expect((await onlyA.take(1)).map(payloadText)).toEqual(['a2']);

    // Clearing: delivered to current subscribers like any message, and then nothing is retained for b.
    const clear = await actor(ch).publish([msg({ subtopic: 'b', payload: new Uint8Array(), retain: true, contentType: 'application/json' })], ch);
    expect(clear[0]).toMatchObject({ ok: true, seq: 5 });
    const cleared = await s1.next();
    expect(cleared).toMatchObject({ type: 'message', envelope: { subtopic: 'b', seq: 5 } });
    expect(cleared.type === 'message' && cleared.envelope.payload.length).toBe(0);
    const s2 = await subscribe(ch);
    expect((await s2.take(1)).map(payloadText)).toEqual(['a2']);
    expect(await s2.drain(50)).toEqual([]);
    expect((await actor(ch).info()).retained).toBe(1);
  });

  it('resumes with since: replays what it kept, then live, with no duplicates', async () => {
    const ch = newChannel();
    await actor(ch).publish(Array.from({ length: 5 }, (_, i) => msg({ subtopic: i % 2 ? 'odd' : 'even', payload: text(`m${i + 1}`) })), ch);
    const s = await subscribe(ch, { since: 2 });
    expect(seqs(await s.take(3))).toEqual([3, 4, 5]);
    await actor(ch).publish([msg({ payload: text('m6') })], ch);
    expect(seqs(await s.take(1))).toEqual([6]);
    const filtered = await subscribe(ch, { since: 0, subtopic: 'odd' });
    expect(seqs(await filtered.take(2))).toEqual([2, 4]);
    const upToDate = await subscribe(ch, { since: 6 });
    expect(await upToDate.drain(50)).toEqual([]);
  });

  it('sends an explicit gap notice when the resume point is older than the window', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { recentWindow: 3 });
    await actor(ch).publish(
      [msg({ subtopic: 'r', retain: true, payload: text('r2') }), msg({ payload: text('x') }), msg({ subtopic: 'r', retain: true, payload: text('r3') })].concat(
        Array.from({ length: 7 }, (_, i) => msg({ payload: text(`n${i}`) })),
      ),
      ch,
    );
    // 10 messages; the window keeps 8, 9, 10 (older ones are undrained but past the window).
    const s = await subscribe(ch, { since: 1 });
    expect(s.subscribed).toEqual({ type: 'subscribed', seq: 10, since: 1 });
    const frames = await s.take(5);
    expect(frames[0]).toEqual({ type: 'gap', from: 2, to: 7 });
    // The retained value published inside the gap comes next, flagged, so the client has current state.
    expect(frames[1]).toMatchObject({ type: 'message', retained: true, envelope: { seq: 3, subtopic: 'r' } });
    expect(seqs(frames.slice(2))).toEqual([8, 9, 10]);
  });

  it('keeps sockets and seq across hibernation (eviction)', async () => {
    const ch = newChannel();
    const s = await subscribe(ch, { subtopic: 'x/#' });
    await actor(ch).publish([msg({ subtopic: 'x' })], ch);
    expect(seqs(await s.take(1))).toEqual([1]);
    await evictDurableObject(actor(ch));
    await actor(ch).publish([msg({ subtopic: 'x/y' }), msg({ subtopic: 'z' }), msg({ subtopic: 'x' })], ch);
    expect(seqs(await s.take(2))).toEqual([2, 4]);
    expect((await actor(ch).info()).subscribers).toBe(1);
  });

  it('lets a permitted socket publish with JSON frames and acks each with its seq', async () => {
    const ch = newChannel();
    const pub = await subscribe(ch, { publisher: 'dev-9', canPublish: true, subtopic: 'room/1' });
    const watcher = await subscribe(ch, { subtopic: 'room/#' });
    pub.send(JSON.stringify({ id: 'p1', payload: { t: 21 } }));
    const [own, ack] = await pub.take(2);
    expect(own).toMatchObject({ type: 'message', envelope: { subtopic: 'room/1', publisher: 'dev-9', protocol: 'ws', contentType: 'application/json', seq: 1 } });
    expect(ack).toMatchObject({ type: 'ack', id: 'p1', seq: 1 });
    expect(payloadText(await watcher.next())).toBe('{"t":21}');
    pub.send(JSON.stringify({ id: 2, subtopic: 'room/2', payload: 'AAEC', encoding: 'base64', contentType: 'application/octet-stream' }));
    const w2 = await watcher.next();
    expect(w2.type === 'message' && [...w2.envelope.payload]).toEqual([0, 1, 2]);
    pub.send('{"payload":"x","subtopic":"a/+"}');
    pub.send('not json');
    // room/2 is outside pub's own filter, so pub only gets the ack for it, then the two errors.
    const rest = await pub.take(3);
    expect(rest[0]).toMatchObject({ type: 'ack', id: 2, seq: 2 });
    const frames = rest.slice(1);
    expect(frames).toEqual([
      { type: 'error', status: 400, code: 'invalid_subtopic', message: expect.any(String) },
      { type: 'error', status: 400, code: 'bad_frame', message: 'text frame is not valid JSON' },
    ]);
    // A refused frame with an id gets its error with that id, whatever is wrong with it.
    const bad = [
      { id: 'd', payload: '!!notbase64', encoding: 'base64' },
      { id: 'i' },
      { id: 'j', payload: 'x', retain: 'yes' },
      { id: 'k', payload: 'x', encoding: 'hex' },
      { id: 7, type: 'bogus', payload: 'x' },
      { id: { nested: true }, payload: 'x', retain: 1 },
    ];
    for (const f of bad) pub.send(JSON.stringify(f));
    const errors = await pub.take(bad.length);
    expect(errors.map((e) => (e.type === 'error' ? [e.code, e.id] : e.type))).toEqual([['bad_frame', 'd'], ['bad_frame', 'i'], ['bad_frame', 'j'], ['bad_frame', 'k'], ['bad_frame', 7], ['bad_frame', undefined]]);
  });

  it('refuses publish frames from a subscribe-only socket and from wildcard sockets without a subtopic', async () => {
    const ch = newChannel();
    const ro = await subscribe(ch, { canPublish: false });
    ro.send(JSON.stringify({ id: 1, payload: 'x' }));
    expect(await ro.next()).toMatchObject({ type: 'error', id: 1, status: 403, code: 'forbidden' });
    const wild = await subscribe(ch, { canPublish: true, subtopic: 'a/#' });
    wild.send(JSON.stringify({ id: 2, payload: 'x' }));
    expect(await wild.next()).toMatchObject({ type: 'error', id: 2, status: 400, code: 'subtopic_required' });
    expect((await actor(ch).info()).seq).toBe(0);
  });

  it('speaks CBOR both ways when asked', async () => {
    const ch = newChannel();
    const s = await subscribe(ch, { encoding: 'cbor', canPublish: true, publisher: 'dev' });
    s.send(encodeClientFrame({ type: 'publish', id: 7, subtopic: 'bin', contentType: 'application/octet-stream', payload: new Uint8Array([255, 0, 7]) }, 'cbor'));
    const [m, ack] = await s.take(2);
    expect(m).toMatchObject({ type: 'message', envelope: { subtopic: 'bin', payload: new Uint8Array([255, 0, 7]) } });
    expect(ack).toMatchObject({ type: 'ack', id: 7, seq: 1 });
  });

  it('closes a flow-controlled subscriber that falls behind its window with 1013, without stalling others', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { subscriberWindow: { bytes: 1_000_000, messages: 3 } });
    const slow = await subscribe(ch, { ack: true });
    const fast = await subscribe(ch, { ack: true });
    const plain = await subscribe(ch);
    await actor(ch).publish([msg(), msg()], ch);
    await fast.take(2);
    fast.send(JSON.stringify({ type: 'ack', seq: 2 }));
    await new Promise((r) => setTimeout(r, 50)); // let the actor process the ack frame
    await actor(ch).publish([msg(), msg()], ch);
    const closed = await slow.closed;
    expect(closed.code).toBe(1013);
    expect(closed.reason).toMatch(/slow consumer: 4 messages unacknowledged/);
    expect(seqs(await fast.take(2))).toEqual([3, 4]);
    expect(seqs(await plain.take(4))).toEqual([1, 2, 3, 4]);
    const later = await actor(ch).publish([msg()], ch);
    expect(later[0]).toMatchObject({ ok: true, seq: 5 });
    expect(seqs(await fast.take(1))).toEqual([5]);
  });

  it('answers ping with pong without involving the actor', async () => {
    const ch = newChannel();
    const s = await subscribe(ch);
    const pong = new Promise<string>((resolve) => s.ws.addEventListener('message', (ev) => typeof ev.data === 'string' && ev.data === 'pong' && resolve(ev.data)));
    s.ws.send('ping');
    expect(await pong).toBe('pong');
    // Had the actor seen "ping", it would have answered a bad_frame error (it is not JSON).
    expect(await s.drain(50)).toEqual([]);
  });

  it('refuses an upgrade without valid internal headers', async () => {
    const ch = newChannel();
    const none = await actor(ch).fetch('http://actor/', { headers: { upgrade: 'websocket', [HEADER_CHANNEL]: ch } });
    expect(none.status).toBe(400);
    const bad = await actor(ch).fetch('http://actor/', { headers: { upgrade: 'websocket', [HEADER_CHANNEL]: ch, [HEADER_SUBSCRIBER]: '{"publisher":"p","subtopic":"a/#/b"}' } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'invalid_subtopic' });
    const plain = await actor(ch).fetch('http://actor/', { headers: { [HEADER_CHANNEL]: ch } });
    expect(plain.status).toBe(426);
  });
});
