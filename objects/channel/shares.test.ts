import { evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { LINK_SUBPROTOCOL, LINK_SUBPROTOCOL_V4, type ActorOp, type LinkMessage } from '../../shared/link';
import type { ChannelCore } from './core';
import type { ChannelActor } from './index';
import { ShareGroups, type Given, type ShareLimits } from './shares';
import type { ChannelMessage } from './types';
import { TAG_LINK } from './sockets';
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

/** The actor's core, inside the actor. */
const coreOf = (i: ChannelActor): ChannelCore => (i as unknown as { core: ChannelCore }).core;

const setLimits = (ch: string, limits: Partial<ShareLimits>): Promise<void> =>
  runInDurableObject(actor(ch), (i: ChannelActor) => {
    Object.assign(coreOf(i).shares.limits, limits);
  });

/** Reads ops until `n` messages came: their seqs, and the number of the frame each came in (`frame` op, v5). */
async function takeMessages(link: Link, n: number): Promise<{ seqs: number[]; frameOf: Map<number, number>; ops: ActorOp[] }> {
  const out = { seqs: [] as number[], frameOf: new Map<number, number>(), ops: [] as ActorOp[] };
  let no = -1;
  while (out.seqs.length < n) {
    const op = await link.next();
    out.ops.push(op);
    if (op.op === 'frame') no = op.no;
    if (op.op !== 'message') continue;
    out.seqs.push(op.envelope.seq);
    out.frameOf.set(op.envelope.seq, no);
  }
  return out;
}

const settle = async (link: Link, frames: number[]): Promise<void> => {
  link.send([{ op: 'settled', frames }]);
  await new Promise((r) => setTimeout(r, 20));
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
    const gotA = messages((await takeMessages(a, 4)).ops).map((m) => [m.envelope.seq, m.subs]);
    const gotB = messages((await takeMessages(b, 2)).ops).map((m) => [m.envelope.seq, m.subs]);
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
    expect((await takeMessages(a, 3)).seqs).toEqual([2, 3, 4]);
    expect(await a.drain(100)).toEqual([]);
  });

  it('on an older (v4) link the group is not written and the subscription is a plain one (per-bridge behaviour): every message', async () => {
    const ch = newChannel();
    const a = await member(ch, 1, LINK_SUBPROTOCOL_V4);
    const b = await member(ch, 1);
    await publish(ch, 2);
    expect((await takeMessages(a, 2)).seqs).toEqual([1, 2]);
    expect((await takeMessages(b, 2)).seqs).toEqual([1, 2]);
  });

  it('a link that closes with unsettled deliveries: they go to another link of the group; settled frames do not', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await publish(ch, 4); // a: 1, 3; b: 2, 4 (round-robin in join order)
    const gotA = await takeMessages(a, 2);
    expect(gotA.seqs).toEqual([1, 3]);
    expect((await takeMessages(b, 2)).seqs).toEqual([2, 4]);
    await settle(a, [gotA.frameOf.get(1) as number]);
    await closeLink(a);
    expect((await takeMessages(b, 1)).seqs).toEqual([3]);
    expect(await b.drain(100)).toEqual([]);
  });

  it('takes an empty settled (the bridge keeping it in memory) as a no-op: no answer, what the link holds stays unsettled', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await publish(ch, 1);
    expect((await takeMessages(a, 1)).seqs).toEqual([1]);
    await settle(a, []);
    expect(await a.drain(100)).toEqual([]);
    const counts = await runInDurableObject(actor(ch), (i: ChannelActor) => [...(coreOf(i).shares as unknown as { links: Map<string, { count: number }> }).links.values()].map((l) => l.count));
    expect(counts).toEqual([1]);
  });

  it('numbers each frame holding group deliveries (first op, distinct); a frame with plain deliveries only carries none', async () => {
    const ch = newChannel();
    const a = await member(ch);
    a.send([{ op: 'subscribe', sub: 2, filter: 'plain' }]);
    await a.next();
    await publish(ch, 2);
    await actor(ch).publish([msg({ subtopic: 'plain' })], ch);
    const ops = (await takeMessages(a, 3)).ops;
    expect(ops.map((o) => o.op)).toEqual(['frame', 'message', 'frame', 'message', 'frame', 'message']);
    const nos = ops.flatMap((o) => (o.op === 'frame' ? [o.no] : []));
    expect(new Set(nos).size).toBe(3);
    // seq 3 matched both the plain sub and the group: one op, both subs, in a numbered frame. A plain-only message: no number.
    const c = await openLink(ch, LINK_SUBPROTOCOL);
    c.send([{ op: 'subscribe', sub: 1, filter: 'plain' }]);
    await c.next();
    await actor(ch).publish([msg({ subtopic: 'plain' })], ch);
    expect((await c.take(1))[0]).toMatchObject({ op: 'message' });
  });

  it('settles frames in any order: an unsettled older frame does not hold back a newer one (no head-of-line blocking)', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await publish(ch, 6); // a: 1, 3, 5
    const got = await takeMessages(a, 3);
    await takeMessages(b, 3);
    // The client behind seq 1 never acknowledges it; 3 and 5 are finished.
    await settle(a, [got.frameOf.get(5) as number, got.frameOf.get(3) as number]);
    await closeLink(a);
    // Only seq 1 goes again (by count, settling 2 frames would have taken 1 and 3 and lost 5's… and vice versa).
    expect((await takeMessages(b, 1)).seqs).toEqual([1]);
    expect(await b.drain(100)).toEqual([]);
  });

  it('a link at its unsettled limit is passed over, not closed: the group picks another; with none, keeps the message until a link settles', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await setLimits(ch, { linkMessages: 2 });
    await publish(ch, 5); // a: 1, 3; b: 2, 4; 5: nobody has room, kept
    const gotA = await takeMessages(a, 2);
    expect(gotA.seqs).toEqual([1, 3]);
    expect((await takeMessages(b, 2)).seqs).toEqual([2, 4]);
    expect(await a.drain(50)).toEqual([]);
    expect(await b.drain(0)).toEqual([]);
    await settle(a, [gotA.frameOf.get(3) as number]);
    expect((await takeMessages(a, 1)).seqs).toEqual([5]);
    // Neither link was closed for it.
    const open = await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).ctx.getWebSockets(TAG_LINK).filter((ws) => ws.readyState === WebSocket.READY_STATE_OPEN).length);
    expect(open).toBe(2);
  });

  it('the last resort: a link at its limit that settles nothing for stuckMs is closed (1013), its deliveries to the group\'s other link', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await setLimits(ch, { linkMessages: 1, stuckMs: 0 });
    await publish(ch, 1);
    expect((await takeMessages(a, 1)).seqs).toEqual([1]);
    const b = await member(ch);
    await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).shares.sweep());
    expect((await a.closed).code).toBe(1013);
    expect((await takeMessages(b, 1)).seqs).toEqual([1]);
  });

  it('an unsubscribe gives the subscription\'s unsettled deliveries to the other links', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await publish(ch, 2);
    expect((await takeMessages(a, 1)).seqs).toEqual([1]);
    expect((await takeMessages(b, 1)).seqs).toEqual([2]);
    a.send([{ op: 'unsubscribe', sub: 1 }]);
    expect(await a.next()).toEqual({ op: 'unsuback', sub: 1 });
    expect((await takeMessages(b, 1)).seqs).toEqual([1]);
    // From then on b alone.
    await publish(ch, 1);
    expect((await takeMessages(b, 1)).seqs).toEqual([3]);
    expect(await a.drain(100)).toEqual([]);
  });

  it('a group its last link unsubscribed from keeps what was given back, but takes no new messages', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await publish(ch, 1);
    expect((await takeMessages(a, 1)).seqs).toEqual([1]);
    a.send([{ op: 'unsubscribe', sub: 1 }]);
    expect(await a.next()).toEqual({ op: 'unsuback', sub: 1 });
    await publish(ch, 1); // seq 2: nobody subscribes to the group
    const c = await member(ch, 3);
    expect((await takeMessages(c, 1)).seqs).toEqual([1]);
    expect(await c.drain(100)).toEqual([]);
  });

  it('with no link left, what was unsettled and what is published meanwhile waits for the first link to join again', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await publish(ch, 1);
    expect((await takeMessages(a, 1)).seqs).toEqual([1]);
    await closeLink(a);
    await publish(ch, 2);
    const c = await openLink(ch, LINK_SUBPROTOCOL);
    c.send([{ op: 'subscribe', sub: 4, filter: '#', share: GROUP, since: 0 }]);
    expect(await c.next()).toMatchObject({ op: 'suback', sub: 4 });
    const got = await takeMessages(c, 3);
    expect(messages(got.ops).map((m) => [m.envelope.seq, m.subs])).toEqual([
      [1, [4]],
      [2, [4]],
      [3, [4]],
    ]);
    // Given once: a second link joining later gets none of them.
    const d = await member(ch, 1);
    expect(await d.drain(100)).toEqual([]);
  });

  it('what a group kept is handed to a joining link under its limit and counted against its window (live)', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await closeLink(a);
    await publish(ch, 3);
    await setLimits(ch, { linkMessages: 2 });
    const c = await member(ch);
    const got = await takeMessages(c, 2);
    expect(got.seqs).toEqual([1, 2]);
    expect(await c.drain(50)).toEqual([]);
    const outstanding = await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).ctx.getWebSockets(TAG_LINK).map((ws) => coreOf(i).flow.outstanding(ws).messages));
    expect(outstanding).toContain(2);
    await settle(c, [got.frameOf.get(1) as number]);
    expect((await takeMessages(c, 1)).seqs).toEqual([3]);
  });

  it('what groups keep is capped in count, bytes and time (oldest dropped, logged)', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await setLimits(ch, { groupMessages: 2 });
    await closeLink(a);
    await publish(ch, 3);
    const b = await member(ch);
    const gotB = await takeMessages(b, 2);
    expect(gotB.seqs).toEqual([2, 3]);
    expect(await b.drain(100)).toEqual([]);
    await settle(b, [...new Set(gotB.frameOf.values())]);
    await closeLink(b);
    // Bytes: 1 KiB payloads count 1,280 bytes each; a group keeps 3,000 bytes: two of three.
    await setLimits(ch, { groupMessages: 1000, groupBytes: 3000 });
    for (let i = 0; i < 3; i++) await actor(ch).publish([msg({ payload: new Uint8Array(1024) })], ch);
    const logged = await runInDurableObject(actor(ch), (i: ChannelActor) => {
      const shares = coreOf(i).shares;
      const lines: string[] = [];
      (shares as unknown as { log: (m: string) => void }).log = (m) => lines.push(m);
      shares.sweep();
      return { lines, held: shares.heldBytes };
    });
    expect(logged.held).toBe(2 * 1280);
    expect(logged.lines.join('\n')).toMatch(/1 message\(s\) \(seq 4\.\.4\) dropped: past the group's cap/);
    const c = await member(ch);
    const got = await takeMessages(c, 2);
    expect(got.seqs).toEqual([5, 6]);
    await settle(c, [...new Set(got.frameOf.values())]);
    await closeLink(c);
    await publish(ch, 1); // seq 7, kept
    await setLimits(ch, { heldTtlMs: 30 });
    await new Promise((r) => setTimeout(r, 60));
    await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).shares.sweep());
    const d = await member(ch);
    expect(await d.drain(100)).toEqual([]);
  });

  it('an actor keeps at most actorBytes for groups in all: past it a group keeps nothing more', async () => {
    const ch = newChannel();
    const a = await member(ch);
    await closeLink(a);
    await setLimits(ch, { actorBytes: 3000 });
    for (let i = 0; i < 4; i++) await actor(ch).publish([msg({ payload: new Uint8Array(1024) })], ch);
    const held = await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).shares.heldBytes);
    expect(held).toBeLessThanOrEqual(3000);
  });

  it('settles by frame number, not by seq or count: an older delivery given again is not settled by a newer plain one', async () => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    a.send([{ op: 'subscribe', sub: 2, filter: 'plain' }]);
    await a.next();
    await publish(ch, 2); // a: 1, b: 2
    const first = await takeMessages(a, 1);
    expect(first.seqs).toEqual([1]);
    expect((await takeMessages(b, 1)).seqs).toEqual([2]);
    await closeLink(b); // 2 goes to a, in a frame of its own
    expect((await takeMessages(a, 1)).seqs).toEqual([2]);
    await actor(ch).publish([msg({ subtopic: 'plain' })], ch);
    expect(messages((await takeMessages(a, 1)).ops).map((m) => [m.envelope.seq, m.subs])).toEqual([[3, [2, 1]]]);
    a.send([{ op: 'consumed', seq: 3 }, { op: 'settled', frames: [first.frameOf.get(1) as number] }]);
    await new Promise((r) => setTimeout(r, 20));
    const c = await member(ch);
    await closeLink(a);
    expect((await takeMessages(c, 2)).seqs).toEqual([2, 3]);
    expect(await c.drain(100)).toEqual([]);
  });

  it('after an eviction with frames unsettled, the old numbers settle nothing of the new instance (ignored, logged)', async () => {
    const lines: string[] = [];
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    await publish(ch, 2); // a: 1, b: 2
    const before = await takeMessages(a, 1);
    await takeMessages(b, 1);
    // An eviction (the sockets stay, the instance's memory goes), as init() rebuilds the groups.
    // (evictDurableObject waits for the instance to go idle, which its sweep timer prevents.)
    await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).loadShares());
    await publish(ch, 2); // a new instance: a: 3, b: 4 (or the other way round)
    const after = [...(await a.drain(200)), ...(await b.drain(0))];
    const fresh = after.flatMap((o) => (o.op === 'frame' ? [o.no] : []));
    expect(fresh.length).toBe(2);
    for (const no of fresh) expect(no).toBeGreaterThan(before.frameOf.get(1) as number);
    // The bridge settles its frame from before the eviction: it must not settle the new ones.
    await runInDurableObject(actor(ch), (i: ChannelActor) => {
      (coreOf(i).shares as unknown as { log: (m: string) => void }).log = (m) => lines.push(m);
    });
    await settle(a, [before.frameOf.get(1) as number]);
    await settle(b, [before.frameOf.get(1) as number]);
    await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).shares.sweep());
    expect(lines.join('\n')).toMatch(/settled 1 frame\(s\) this instance did not send/);
    const c = await member(ch);
    await closeLink(a);
    await closeLink(b);
    const again = await takeMessages(c, 2);
    expect(again.seqs.sort()).toEqual([3, 4]);
  });

  it('refuses a No Local token starting with U+0001 (how a group is kept in the same column)', async () => {
    const ch = newChannel();
    const a = await openLink(ch, LINK_SUBPROTOCOL);
    a.send([{ op: 'subscribe', sub: 1, filter: '#', noLocal: '\u0001share\u0001g' }]);
    expect(await a.next()).toMatchObject({ op: 'error', code: 'invalid_no_local', sub: 1 });
  });

  it.each([
    ['ops of a batch after a frame whose send failed go to the group again', undefined],
    ['QoS 0 deliveries of a frame whose send failed go to the group again (released as given once only when sent)', 0],
  ] as const)('%s', async (_name, qos) => {
    const ch = newChannel();
    const a = await member(ch);
    const b = await member(ch);
    // a's first send throws: the frame of its first three 100 KiB deliveries fails, the fourth is not framed yet.
    await runInDurableObject(actor(ch), (i: ChannelActor) => {
      const first = coreOf(i).ctx.getWebSockets(TAG_LINK)[0] as WebSocket; // a's (accepted first)
      Object.defineProperty(first, 'send', {
        value: () => {
          throw new Error('boom');
        },
      });
    });
    await actor(ch).publish(Array.from({ length: 8 }, () => msg({ ...(qos === undefined ? {} : { qos }), payload: new Uint8Array(100 * 1024) })), ch);
    const got = await takeMessages(b, 8);
    expect(got.seqs.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await a.closed).code).toBe(1011);
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

/** A channel message for ShareGroups alone (no actor). */
const channelMessage = (seq: number, over: Partial<ChannelMessage> = {}): ChannelMessage => ({
  envelope: { channel: 'c', seq, created: 1, subtopic: 't', publisher: 'p', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array(8) },
  retain: false,
  ...over,
});

/** ShareGroups' private counters (what a leak would show). */
const insides = (s: ShareGroups) => s as unknown as { keptCount: number; holding(): boolean; timer: ReturnType<typeof setTimeout> | null };

/** Picks `m` for the group's links, as fanout.ts does, and sends each link its op in a frame: the link it went to. */
function pickAndFrame(shares: ShareGroups, m: ChannelMessage): string {
  const [[link, given]] = [...shares.pick([m], 0)] as [[string, Map<number, Given[]>]];
  const op: LinkMessage = { op: 'message', subs: [1], envelope: m.envelope, retained: false };
  shares.mark(op, given.get(0) ?? []);
  expect(shares.framed(link, [op]).no).not.toBeNull();
  return link;
}

describe('ShareGroups (no actor)', () => {
  it('settles of numbers this instance did not send are logged once a sweep per link, summed, without calling them lost', () => {
    const lines: string[] = [];
    const shares = new ShareGroups((m) => lines.push(m), 1000);
    shares.join('A', 1, 'g', '#', 0);
    for (let k = 0; k < 3; k++) shares.settled('A', [5, 6], 0);
    expect(lines).toEqual([]);
    shares.sweep(0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/link A settled 6 frame\(s\) this instance did not send/);
    expect(lines[0]).not.toMatch(/is lost/);
    shares.sweep(0);
    expect(lines).toHaveLength(1);
    const timer = insides(shares).timer;
    if (timer) clearTimeout(timer);
  });

  it('a message published at QoS 0 is given once: sent in a frame, it is not given again when its link closes before settling', () => {
    const shares = new ShareGroups(() => undefined, 1000);
    shares.join('A', 1, 'g', '#', 0);
    shares.join('B', 1, 'g', '#', 0);
    const at0 = pickAndFrame(shares, channelMessage(1, { qos: 0 }));
    expect(shares.unsettled(at0)).toBe(0);
    expect(shares.linkGone(at0, 0)).toEqual([]);
    const at1 = pickAndFrame(shares, channelMessage(2, { qos: 1 }));
    expect(shares.linkGone(at1, 0).map((x) => x.m.envelope.seq)).toEqual([2]);
    const timer = insides(shares).timer;
    if (timer) clearTimeout(timer);
  });

  it('a link whose frames hold only QoS 0 deliveries and that settles none is closed when full too', () => {
    const stuck: string[] = [];
    const shares = new ShareGroups(() => undefined, 1000);
    shares.onStuck = (link) => stuck.push(link);
    shares.limits.linkFrames = 3;
    shares.limits.stuckMs = 1000;
    shares.join('A', 1, 'g', '#', 0);
    for (let seq = 1; seq <= 3; seq++) pickAndFrame(shares, channelMessage(seq, { qos: 0 }));
    shares.sweep(5000);
    expect(stuck).toEqual(['A']);
    const timer = insides(shares).timer;
    if (timer) clearTimeout(timer);
  });

  it('a waiting group forgotten after heldTtlMs without a link releases what it kept: nothing held, nothing to sweep', () => {
    const lines: string[] = [];
    const shares = new ShareGroups((m) => lines.push(m), 1000);
    shares.limits.heldTtlMs = 1000;
    shares.join('L', 1, 'g', '#', 0);
    shares.linkGone('L', 0); // the group waits for a link to come back
    shares.pick([channelMessage(1)], 500); // kept: younger than heldTtlMs when the group is forgotten
    expect(shares.heldBytes).toBeGreaterThan(0);
    shares.sweep(1000);
    expect(lines.join('\n')).toMatch(/1 message\(s\) \(seq 1\.\.1\) dropped: no link came back/);
    expect(shares.heldBytes).toBe(0);
    expect(insides(shares).keptCount).toBe(0);
    expect(insides(shares).holding()).toBe(false);
    const timer = insides(shares).timer;
    if (timer) clearTimeout(timer);
  });
});
