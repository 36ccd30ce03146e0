import { describe, expect, it } from 'vitest';
import { LINK_SUBPROTOCOL, type ActorOp, type LinkMessage } from '../../shared/link';
import { actor, msg, newChannel, openLink, type Link } from './test-helpers';

/**
 * Shared subscription groups across links (link v5 `share`, shares.ts): the subscriptions of every
 * link naming one group share its messages — each to one of them — and what a link had not
 * acknowledged when it goes goes to the others.
 */

const seqsOf = (ops: ActorOp[], sub?: number): number[] => ops.filter((o): o is LinkMessage => o.op === 'message' && (sub === undefined || o.subs.includes(sub))).map((m) => m.envelope.seq);

async function member(ch: string, sub: number, share = 'workers', filter = 'jobs/#', since?: number): Promise<Link> {
  const link = await openLink(ch, LINK_SUBPROTOCOL);
  link.send([{ op: 'subscribe', sub, filter, share, ...(since !== undefined ? { since } : {}) }]);
  expect(await link.next()).toMatchObject({ op: 'suback', sub });
  return link;
}

const publish = (ch: string, n: number, subtopic = 'jobs/x') => actor(ch).publish(Array.from({ length: n }, () => msg({ subtopic })), ch);

describe('channel actor: shared groups across links', () => {
  it('gives each message to one link of the group, in turn; a plain subscription still gets every one', async () => {
    const ch = newChannel();
    const a = await member(ch, 1);
    const b = await member(ch, 1);
    const plain = await openLink(ch, LINK_SUBPROTOCOL);
    plain.send([{ op: 'subscribe', sub: 9, filter: 'jobs/#' }]);
    await plain.next();
    await publish(ch, 6);
    const [gotA, gotB, all] = await Promise.all([a.drain(300), b.drain(300), plain.drain(300)]);
    expect(seqsOf(all, 9)).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...seqsOf(gotA), ...seqsOf(gotB)].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seqsOf(gotA)).toHaveLength(3);
    // A message outside the group's filter goes to neither.
    await publish(ch, 1, 'other');
    expect(seqsOf([...(await a.drain(100)), ...(await b.drain(100))])).toEqual([]);
  });

  it('groups are per name and filter: $share/workers/a and $share/workers/b, and $share/other/a, each get their own copy', async () => {
    const ch = newChannel();
    const a = await member(ch, 1, 'workers', 'jobs/#');
    const b = await member(ch, 1, 'workers', '#');
    const c = await member(ch, 1, 'other', 'jobs/#');
    await publish(ch, 2);
    for (const l of [a, b, c]) expect(seqsOf(await l.drain(200))).toEqual([1, 2]);
  });

  it('what a link had not acknowledged when it closes goes to the group’s other links; what it had, does not', async () => {
    const ch = newChannel();
    const a = await member(ch, 1);
    const b = await member(ch, 2);
    await publish(ch, 4);
    const gotA = seqsOf(await a.drain(300));
    const gotB = seqsOf(await b.drain(0));
    expect(gotA).toHaveLength(2);
    // a acknowledges its first delivery only, then goes.
    a.send([{ op: 'consumed', seq: gotA[0]! }]);
    await new Promise((r) => setTimeout(r, 100));
    a.ws.close(1000, 'bye');
    const again = seqsOf(await b.drain(300));
    expect(again).toEqual([gotA[1]]);
    expect([...gotB, ...again, gotA[0]].sort()).toEqual([1, 2, 3, 4]);
    // From now on b has them all.
    await publish(ch, 2);
    expect(seqsOf(await b.drain(300))).toEqual([5, 6]);
  });

  it('gives deliveries a bridge returns to another link of the group; with nobody left, to nobody', async () => {
    const ch = newChannel();
    const a = await member(ch, 1);
    const b = await member(ch, 2);
    await publish(ch, 2);
    const gotA = seqsOf(await a.drain(300));
    await b.drain(0);
    a.send([{ op: 'consumed', seq: 2 }, { op: 'unsubscribe', sub: 1 }]);
    expect(await a.next()).toEqual({ op: 'unsuback', sub: 1 });
    a.send([{ op: 'return', share: 'workers', filter: 'jobs/#', seqs: gotA }]);
    expect(seqsOf(await b.drain(300))).toEqual(gotA);
    // The last one leaves and gives back: nobody to give to, nothing sent anywhere.
    b.send([{ op: 'unsubscribe', sub: 2 }, { op: 'return', share: 'workers', filter: 'jobs/#', seqs: [1, 2] }]);
    expect(await b.next()).toEqual({ op: 'unsuback', sub: 2 });
    expect([...(await a.drain(200)), ...(await b.drain(0))]).toEqual([]);
  });

  it('a resumed subscription (since) is replayed what it missed only when no other link of the group was there to take it', async () => {
    const ch = newChannel();
    await actor(ch).publish([msg({ subtopic: 'jobs/r', retain: true })], ch);
    // Fresh: no retained message for a shared subscription (MQTT 5 §3.3.1.3), no replay.
    const a = await member(ch, 1);
    expect(await a.drain(200)).toEqual([]);
    a.ws.close(1000, 'link lost');
    await publish(ch, 2); // seqs 2, 3: nobody in the group
    const back = await member(ch, 1, 'workers', 'jobs/#', 1);
    expect(seqsOf(await back.drain(300))).toEqual([2, 3]);
    // With another link of the group there meanwhile, a resume gets nothing: that link had them.
    back.ws.close(1000, 'link lost again');
    const other = await member(ch, 5);
    await publish(ch, 2); // seqs 4, 5: to `other`
    expect(seqsOf(await other.drain(300))).toEqual([4, 5]);
    const again = await member(ch, 1, 'workers', 'jobs/#', 3);
    expect(await again.drain(300)).toEqual([]);
  });
});
