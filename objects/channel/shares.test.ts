import { evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { LINK_SUBPROTOCOL, LINK_SUBPROTOCOL_V4, type ActorOp, type LinkMessage } from '../../shared/link';
import type { ChannelActor } from './index';
import { actor, msg, newChannel, openLink, type Link } from './test-helpers';

// Shared groups spanning links (link v5, shares.ts), spoken to the actor as bridges do.

const messages = (ops: ActorOp[]): LinkMessage[] => ops.filter((o): o is LinkMessage => o.op === 'message');
const seqs = (ops: ActorOp[]): number[] => messages(ops).map((m) => m.envelope.seq);
const GROUP = 'g/channels/c/messages/#';

/** A v5 link with subscription `sub` in the group (suback taken). */
async function member(ch: string, sub = 1, subprotocol: string = LINK_SUBPROTOCOL): Promise<Link> {
  const link = await openLink(ch, subprotocol);
  link.send([{ op: 'subscribe', sub, filter: '#', share: GROUP }]);
  expect(await link.next()).toMatchObject({ op: 'suback', sub });
  return link;
}

/** Publishes one message per call (one frame per link each). */
const publish = async (ch: string, n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await actor(ch).publish([msg({ subtopic: `t/${i}` })], ch);
};

const closeLink = async (link: Link): Promise<void> => {
  link.ws.close(1000, 'bye');
  await link.closed;
  await new Promise((r) => setTimeout(r, 20));
};

describe('channel actor: shared groups across links (v5)', () => {
  it('gives each message to one link of the group, round-robin; a plain subscription on the same link still gets every one', async () => {
    const ch = newChannel();
    const a = await member(ch, 1);
    const b = await member(ch, 1);
    a.send([{ op: 'subscribe', sub: 2, filter: '#' }]);
    expect(await a.next()).toMatchObject({ op: 'suback', sub: 2 });
    await publish(ch, 4);
    const gotA = messages(await a.take(4)).map((m) => [m.envelope.seq, m.subs]);
    const gotB = messages(await b.take(2)).map((m) => [m.envelope.seq, m.subs]);
    // Each seq went to the group once: on a (with its plain sub) or b.
    const groupSeqs = [...gotA.filter(([, subs]) => (subs as number[]).includes(1)), ...gotB].map(([s]) => s).sort();
    expect(groupSeqs).toEqual([1, 2, 3, 4]);
    expect(gotB.length).toBe(2);
    expect(gotA.map(([s]) => s)).toEqual([1, 2, 3, 4]);
    expect(await b.drain(100)).toEqual([]);
  });

  it('a group on one link only behaves as a plain subscription did: every message, no retained replay', async () => {
    const ch = newChannel();
    await actor(ch).publish([msg({ subtopic: 'state', retain: true })], ch);
    const a = await member(ch, 5);
    await publish(ch, 3);
    expect(seqs(await a.take(3))).toEqual([2, 3, 4]);
    expect(await a.drain(100)).toEqual([]);
  });

  it('on an older (v4) link the group is not written and the subscription is a plain one (per-bridge behaviour): every message', async () => {
    const ch = newChannel();
    const a = await member(ch, 1, LINK_SUBPROTOCOL_V4);
    const b = await member(ch, 1);
    await publish(ch, 2);
    expect(seqs(await a.take(2))).toEqual([1, 2]);
    expect(seqs(await b.take(2))).toEqual([1, 2]);
  });

  it('a link that closes with unsettled deliveries: they go to another link of the group; settled frames do not', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await publish(ch, 4); // a: 1, 3; b: 2, 4 (round-robin in join order)
    expect(seqs(await a.take(2))).toEqual([1, 3]);
    expect(seqs(await b.take(2))).toEqual([2, 4]);
    a.send([{ op: 'settled', frames: 1 }]); // the frame with seq 1
    await new Promise((r) => setTimeout(r, 20));
    await closeLink(a);
    expect(seqs(await b.take(1))).toEqual([3]);
    expect(await b.drain(100)).toEqual([]);
  });

  it('an unsubscribe gives the subscription\'s unsettled deliveries to the other links', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await publish(ch, 2);
    expect(seqs(await a.take(1))).toEqual([1]);
    expect(seqs(await b.take(1))).toEqual([2]);
    a.send([{ op: 'unsubscribe', sub: 1 }]);
    expect(await a.next()).toEqual({ op: 'unsuback', sub: 1 });
    expect(seqs(await b.take(1))).toEqual([1]);
    // From then on b alone.
    await publish(ch, 1);
    expect(seqs(await b.take(1))).toEqual([3]);
    expect(await a.drain(100)).toEqual([]);
  });

  it('with no link left, what was unsettled and what is published meanwhile waits as orphans for the first link to join again', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await publish(ch, 1);
    expect(seqs(await a.take(1))).toEqual([1]);
    await closeLink(a);
    await publish(ch, 2);
    const c = await openLink(ch, LINK_SUBPROTOCOL);
    c.send([{ op: 'subscribe', sub: 4, filter: '#', share: GROUP, since: 0 }]);
    const got = await c.take(4);
    expect(got[0]).toMatchObject({ op: 'suback', sub: 4 });
    expect(messages(got).map((m) => [m.envelope.seq, m.subs])).toEqual([
      [1, [4]],
      [2, [4]],
      [3, [4]],
    ]);
    // Given once: a second link joining later gets none of them.
    const d = await member(ch, 1);
    expect(await d.drain(100)).toEqual([]);
  });

  it('orphans are capped (oldest dropped) and kept for a time limit only', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await runInDurableObject(actor(ch), (i: ChannelActor) => {
      const shares = (i as unknown as { core: { shares: { orphanCap: number; orphanTtlMs: number } } }).core.shares;
      shares.orphanCap = 2;
    });
    await closeLink(a);
    await publish(ch, 3);
    const b = await member(ch);
    expect(seqs(await b.take(2))).toEqual([2, 3]);
    expect(await b.drain(100)).toEqual([]);
    await closeLink(b);
    await publish(ch, 1); // seq 4, an orphan
    await runInDurableObject(actor(ch), (i: ChannelActor) => {
      (i as unknown as { core: { shares: { orphanTtlMs: number } } }).core.shares.orphanTtlMs = 30;
    });
    await new Promise((r) => setTimeout(r, 60));
    const c = await member(ch);
    expect(await c.drain(100)).toEqual([]);
  });

  it('settles by frame count, not by seq: an older frame given again is not settled by a newer plain one', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    a.send([{ op: 'subscribe', sub: 2, filter: 'plain' }]);
    await a.next();
    await publish(ch, 2); // a: 1, b: 2
    expect(seqs(await a.take(1))).toEqual([1]);
    expect(seqs(await b.take(1))).toEqual([2]);
    await closeLink(b); // 2 goes to a, in a frame of its own
    expect(seqs(await a.take(1))).toEqual([2]);
    // A later delivery with a higher seq (the group's and a plain subscription's), and a cumulative
    // consumed past everything: they settle nothing; `settled 1` settles the oldest frame (seq 1) only.
    await actor(ch).publish([msg({ subtopic: 'plain' })], ch);
    expect(messages(await a.take(1)).map((m) => [m.envelope.seq, m.subs])).toEqual([[3, [2, 1]]]);
    a.send([{ op: 'consumed', seq: 3 }, { op: 'settled', frames: 1 }]);
    await new Promise((r) => setTimeout(r, 20));
    const c = await member(ch);
    await closeLink(a);
    expect(seqs(await c.take(2))).toEqual([2, 3]);
    expect(await c.drain(100)).toEqual([]);
  });

  it('keeps its groups across hibernation (rebuilt from the link subscriptions): still one link per message', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await evictDurableObject(actor(ch));
    await publish(ch, 2);
    const got = [...seqs(await a.drain(200)), ...seqs(await b.drain(0))].sort();
    expect(got).toEqual([1, 2]);
  });
});
