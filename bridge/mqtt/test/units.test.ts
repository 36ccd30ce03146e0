import { describe, expect, it } from 'vitest';
import { Cursor } from '../cursor';
import { MemorySessionStore, type SessionHolder } from '../session';
import { parseTopicFilter, parseTopicName } from '../topics';
import { chooseMqttSubprotocol } from '../websocket';
import { FakeClock } from '../../testing/fake-clock';

describe('topic filters', () => {
  it.each([
    ['channels/c1/messages', { channel: 'c1', filter: '' }],
    ['channels/c1/messages/#', { channel: 'c1', filter: '#' }],
    ['channels/c1/messages/a/+/b', { channel: 'c1', filter: 'a/+/b' }],
    ['channels/c1/#', { channel: 'c1', filter: '#' }],
    ['channels/c1/+', { channel: 'c1', filter: '' }],
    ['channels/+/messages/x/#', { channel: '+', filter: 'x/#' }],
    ['channels/+/#', { channel: '+', filter: '#' }],
    ['channels/#', { channel: '+', filter: '#' }],
    ['#', { channel: '+', filter: '#' }],
    ['+/c1/messages', { channel: 'c1', filter: '' }],
    ['$share/g1/channels/c1/messages/#', { channel: 'c1', filter: '#', share: 'g1' }],
  ])('%s', (raw, want) => expect(parseTopicFilter(raw)).toEqual(want));

  it.each(['', 'sensors/#', 'channels', 'channels/c1', 'channels/c1/other', 'channels/c1/messages/', 'channels/c1/messages//a', 'channels/c1/messages/a#', 'channels/c+/messages', 'channels/c1/messages/#/x', '$SYS/#', '$share/g', '$share//channels/#', '$share/g+/channels/#', 'channels/bad id/messages'])(
    'refuses %j',
    (raw) => expect(() => parseTopicFilter(raw)).toThrow(),
  );

  it('topic names: the address, no wildcards', () => {
    expect(parseTopicName('channels/c1/messages/a/b')).toEqual({ channel: 'c1', subtopic: 'a/b' });
    for (const bad of ['channels/c1/messages/+', 'channels/c1', 'x/c1/messages', 'channels/c1/messages/']) expect(() => parseTopicName(bad)).toThrow();
  });
});

describe('resume cursor', () => {
  it('moves its low-water mark only over completed seqs and remembers the ones above it', () => {
    const c = new Cursor(undefined, 10);
    for (const s of [11, 13, 15]) c.handed(s);
    c.finished(13);
    expect(c.toStored()).toEqual({ since: 10, acked: [13] });
    c.finished(11);
    expect(c.toStored()).toEqual({ since: 14, acked: [] });
    expect([c.skip(13), c.skip(15)]).toEqual([true, false]);
    c.finished(15);
    expect(c.toStored()).toEqual({ since: 15, acked: [] });
  });

  it('a spanning cursor keeps no mark: finishes behind one pending seq leave nothing in `done`, each is told', () => {
    const c = new Cursor(undefined, 0);
    c.spanning = true;
    const told: number[] = [];
    c.onFinished = (s) => told.push(s);
    for (let s = 1; s <= 1000; s++) c.handed(s);
    for (let s = 2; s <= 1000; s++) c.finished(s);
    expect(c.ahead).toBe(0);
    expect(told.length).toBe(999);
    expect(c.pending(1)).toBe(true);
    // It stops spanning: live from its new subscription's seq, not replaying what went before.
    c.spanning = false;
    c.liveFrom(1000);
    expect(c.since).toBe(1000);
  });

  it('a delivery still in flight when a group stops spanning is not taken for done: given back, it goes out again, and the mark moves past it', () => {
    const c = new Cursor(undefined, 0);
    c.spanning = true;
    c.handed(5); // a non-persistent member holds seq 5, unacknowledged
    c.spanning = false;
    c.liveFrom(10); // a persistent member joined at the channel's seq 10
    expect(c.skip(5)).toBe(false); // the member left: seq 5 is handed out again, not dropped
    c.handed(5);
    for (let s = 11; s <= 20; s++) c.handed(s);
    for (let s = 11; s <= 20; s++) c.finished(s);
    expect(c.since).toBe(10); // held back by seq 5, as any pending delivery holds the mark
    c.finished(5);
    expect(c.since).toBe(20);
    expect(c.ahead).toBe(0);
  });

  it('a stored cursor skips what was already done', () => {
    const c = new Cursor({ since: 5, acked: [8] });
    expect([4, 5, 6, 7, 8, 9].map((s) => c.skip(s))).toEqual([true, true, false, false, true, false]);
  });
});

describe('memory session store', () => {
  const holder = (log: string[], name: string): SessionHolder => ({
    async takenOver({ clean }) {
      log.push(`${name} taken over (clean ${clean})`);
    },
  });
  const state = { subscriptions: [], inflight: [], awaitingRelease: [1] };

  it('notifies the previous holder, fences stale writers, and expires released sessions', async () => {
    const clock = new FakeClock();
    const store = new MemorySessionStore(clock);
    const log: string[] = [];
    const a = await store.open('k', holder(log, 'a'), false);
    expect(a.state).toBeNull();
    expect(await store.save('k', a.epoch, state)).toBe(true);
    const b = await store.open('k', holder(log, 'b'), false);
    expect(log).toEqual(['a taken over (clean false)']);
    expect(b.state).toEqual(state);
    expect(await store.save('k', a.epoch, { ...state, awaitingRelease: [] })).toBe(false);
    await store.release('k', b.epoch, state, 60);
    await clock.advance(59_000);
    expect(store.peek('k')).toEqual(state);
    await clock.advance(1000);
    expect(store.peek('k')).toBeNull();
    expect(store.size).toBe(0);
  });

  it('a clean open discards the stored session', async () => {
    const store = new MemorySessionStore(new FakeClock());
    const a = await store.open('k', holder([], 'a'), false);
    await store.release('k', a.epoch, state, 60);
    expect((await store.open('k', holder([], 'b'), true)).state).toBeNull();
  });

  it('does not wait for ever on a previous holder that never answers', async () => {
    const store = new MemorySessionStore(new FakeClock(), 20);
    await store.open('k', { takenOver: () => new Promise(() => undefined) }, false);
    expect((await store.open('k', holder([], 'b'), false)).epoch).toBeGreaterThan(0);
  });
});

describe('WebSocket subprotocol', () => {
  it('picks mqtt (or the MQTT 3.1 name), refuses anything else', () => {
    expect(chooseMqttSubprotocol(['wamp', 'mqtt'])).toBe('mqtt');
    expect(chooseMqttSubprotocol(['mqttv3.1'])).toBe('mqttv3.1');
    expect(chooseMqttSubprotocol(['graphql-ws'])).toBeNull();
  });
});
