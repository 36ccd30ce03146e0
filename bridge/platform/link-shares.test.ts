import { describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { decodeLinkFrame, encodeLinkFrame, LINK_SUBPROTOCOL, linkDialect, type ActorOp, type BridgeOp } from '../../shared/link';
import { ChannelLink, type LinkOptions } from './link';
import type { Delivery, PublishRequest } from './types';

// The bridge's side of shared groups spanning bridges (link v5): numbered frames settled as they
// finish, subscriptions closed while the link is down, acknowledgements never held or carried over.

/** A fake channel actor speaking v5: answers subscribes (suback), publishes only if `answer`; records frames per connection. */
async function fakeActor(answer = true) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => LINK_SUBPROTOCOL });
  await new Promise((r) => wss.once('listening', r));
  const conns: BridgeOp[][][] = [];
  let current: WebSocket | null = null;
  wss.on('connection', (ws) => {
    const frames: BridgeOp[][] = [];
    conns.push(frames);
    current = ws;
    ws.on('message', (data: Buffer) => {
      const ops = decodeLinkFrame(new Uint8Array(data)) as BridgeOp[];
      frames.push(ops);
      const out: ActorOp[] = [];
      for (const op of ops) {
        if (op.op === 'subscribe') out.push({ op: 'suback', sub: op.sub, seq: 0 });
        if (op.op === 'unsubscribe') out.push({ op: 'unsuback', sub: op.sub });
        if (op.op === 'publish' && answer) out.push({ op: 'ack', id: op.id, seq: op.id, created: 1 });
      }
      if (out.length > 0) ws.send(encodeLinkFrame(out, linkDialect(LINK_SUBPROTOCOL)));
    });
  });
  const port = (wss.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    conns,
    send: (ops: ActorOp[]) => current?.send(encodeLinkFrame(ops, linkDialect(LINK_SUBPROTOCOL))),
    sendRaw: (bytes: Uint8Array) => current?.send(bytes),
    drop: () => wss.clients.forEach((c) => c.terminate()),
    close: () => new Promise((r) => wss.close(r)),
  };
}

/** A link to a fake actor for one test's body; both are closed after it, whatever happens. */
async function withLink(body: (actor: Awaited<ReturnType<typeof fakeActor>>, link: ChannelLink) => Promise<void>, opts: { answer?: boolean; link?: Partial<LinkOptions> } = {}): Promise<void> {
  const actor = await fakeActor(opts.answer ?? true);
  const link = new ChannelLink({ url: actor.url, bridgeSecret: 's', ...opts.link });
  try {
    await body(actor, link);
  } finally {
    link.close();
    await actor.close();
  }
}

const tick = (ms = 50) => new Promise((r) => setTimeout(r, ms));
const envelope = (seq: number) => ({ channel: 'c', seq, created: 1, subtopic: 't', publisher: 'p', protocol: 'mqtt' as const, contentType: 'text/plain', payload: new Uint8Array([seq]) });
const message = (sub: number, seq: number): ActorOp => ({ op: 'message', subs: [sub], envelope: envelope(seq), retained: false });
const req = (n: number): PublishRequest => ({ channel: 'c', subtopic: '', publisher: 'd', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array([n]), retain: false });
/** What a connection's frames said, op by op (subscribe/unsubscribe with their sub, settled with its numbers; not `consumed`). */
/** Three publishes a tick apart to an actor that never answers them: the third is held behind two unanswered frames. */
async function twoFramesUnanswered(link: ChannelLink): Promise<void> {
  void link.publish(req(1));
  await tick();
  void link.publish(req(2));
  await tick();
  void link.publish(req(3));
}

const said = (frames: BridgeOp[][]): string[] =>
  frames.flat().filter((o) => o.op !== 'consumed').map((o) => (o.op === 'settled' ? `settled ${o.frames.join(',')}` : o.op === 'subscribe' || o.op === 'unsubscribe' ? `${o.op} ${o.sub}` : `publish ${o.id}`));

describe('ChannelLink: shared groups (v5)', () => {
  it('settles numbered frames by number as each finishes, in any order; a frame that handed nothing over at once', async () => {
    const got: Delivery[] = [];
    await withLink(async (actor, link) => {
      await link.subscribe('#', (d) => got.push(d), { share: 'g/#' });
      actor.send([{ op: 'frame', no: 100 }, message(1, 1)]);
      actor.send([{ op: 'frame', no: 101 }, message(1, 2)]);
      actor.send([{ op: 'frame', no: 102 }, message(9, 3)]); // a subscription this bridge does not have
      await tick();
      expect(got.map((d) => d.seq)).toEqual([1, 2]);
      got[1]?.settle?.();
      await tick();
      got[0]?.settle?.();
      got[0]?.settle?.(); // idempotent
      await tick();
      expect(said(actor.conns[0] ?? []).filter((s) => s.startsWith('settled'))).toEqual(['settled 102', 'settled 101', 'settled 100']);
    });
  });

  it('a frame whose delivery is settled while the frame is read is settled once, after it is read whole', async () => {
    const got: Delivery[] = [];
    await withLink(async (actor, link) => {
      await link.subscribe('#', (d) => (d.seq === 1 ? d.settle?.() : got.push(d)), { share: 'g/#' });
      actor.send([{ op: 'frame', no: 7 }, message(1, 1), message(1, 2)]);
      await tick();
      expect(said(actor.conns[0] ?? []).filter((s) => s.startsWith('settled'))).toEqual([]);
      got[0]?.settle?.();
      await tick();
      expect(said(actor.conns[0] ?? []).filter((s) => s.startsWith('settled'))).toEqual(['settled 7']);
    });
  });

  it('a closed subscription gives back what it had not finished: its unsubscribe, then the settle', async () => {
    await withLink(async (actor, link) => {
      const sub = await link.subscribe('#', () => undefined, { share: 'g/#' });
      actor.send([{ op: 'frame', no: 5 }, message(1, 1)]);
      await tick();
      sub.close();
      await tick();
      expect(said(actor.conns[0] ?? []).slice(1)).toEqual(['unsubscribe 1', 'settled 5']);
    });
  });

  it("a closed subscription's settles go after its unsubscribe, never into a settled op queued before it", async () => {
    const got: Delivery[] = [];
    await withLink(async (actor, link) => {
      await link.subscribe('#', (d) => got.push(d), { share: 'a/#' });
      const second = await link.subscribe('#', () => undefined, { share: 'b/#' });
      actor.send([{ op: 'frame', no: 10 }, message(1, 1)]);
      actor.send([{ op: 'frame', no: 11 }, message(2, 2)]);
      await tick();
      // In one turn: a settle opens a settled op, then the second subscription closes with frame 11 unsettled.
      got[0]?.settle?.();
      second.close();
      await tick();
      expect(said(actor.conns[0] ?? []).slice(2)).toEqual(['settled 10', 'unsubscribe 2', 'settled 11']);
    });
  });

  it('an unsubscribe is not held behind unanswered publishes: the settles that follow it never overtake it', async () => {
    // publishes are never answered
    await withLink(async (actor, link) => {
      const sub = await link.subscribe('#', () => undefined, { share: 'g/#' });
      await twoFramesUnanswered(link);
      actor.send([{ op: 'frame', no: 42 }, message(1, 1)]);
      await tick();
      sub.close(); // gives frame 42 back
      await tick();
      actor.send([{ op: 'frame', no: 43 }, message(1, 2)]); // sent before the actor read the unsubscribe: settled at once
      await tick();
      expect(said(actor.conns[0] ?? [])).toEqual(['subscribe 1', 'publish 1', 'publish 2', 'unsubscribe 1', 'settled 42', 'settled 43']);
    }, { answer: false });
  });

  it('while a spanning delivery is unsettled, an empty settled goes every beatMs (the actor is not evicted meanwhile); none before or after', async () => {
    const got: Delivery[] = [];
    await withLink(async (actor, link) => {
      await link.subscribe('#', (d) => got.push(d), { share: 'g/#' });
      await tick(200);
      expect(said(actor.conns[0] ?? [])).toEqual(['subscribe 1']); // nothing unsettled: quiet
      actor.send([{ op: 'frame', no: 5 }, message(1, 1)]);
      await tick(300);
      const beats = said(actor.conns[0] ?? []).filter((s) => s === 'settled ').length;
      expect(beats).toBeGreaterThanOrEqual(2);
      got[0]?.settle?.();
      await tick(300);
      const after = said(actor.conns[0] ?? []);
      expect(after.slice(after.indexOf('settled 5'))).toEqual(['settled 5']);
    }, { link: { beatMs: 60 } });
  });

  it('a shared subscription closed while the link is down is not subscribed again on the next socket (no phantom member)', async () => {
    await withLink(async (actor, link) => {
      const shared = await link.subscribe('#', () => undefined, { share: 'g/#' });
      await link.subscribe('plain', () => undefined); // keeps the link dialling
      actor.drop();
      await tick(20); // closed; the next dial is 250 ms away
      shared.close();
      await tick(500);
      expect(actor.conns.length).toBe(2);
      expect(said(actor.conns[1] ?? [])).toEqual(['subscribe 2']);
    });
  });

  it('settled is never held behind unanswered publishes, nor carried to the next socket', async () => {
    const got: Delivery[] = [];
    // publishes are never answered
    await withLink(async (actor, link) => {
      await link.subscribe('#', (d) => got.push(d), { share: 'g/#' });
      await twoFramesUnanswered(link);
      actor.send([{ op: 'frame', no: 42 }, message(1, 1)]);
      await tick();
      got[0]?.settle?.();
      await tick();
      expect(said(actor.conns[0] ?? [])).toEqual(['subscribe 1', 'publish 1', 'publish 2', 'settled 42']);
      actor.drop();
      await tick(500);
      expect(actor.conns.length).toBe(2);
      expect(said(actor.conns[1] ?? []).filter((s) => s.startsWith('settled'))).toEqual([]);
    }, { answer: false });
  });

  it('a settle of a delivery from an earlier socket sends nothing on the next one (the actor gave it to another link)', async () => {
    const got: Delivery[] = [];
    await withLink(async (actor, link) => {
      await link.subscribe('#', (d) => got.push(d), { share: 'g/#' });
      actor.send([{ op: 'frame', no: 5 }, message(1, 1)]);
      await tick();
      actor.drop();
      await tick(500);
      expect(actor.conns.length).toBe(2);
      got[0]?.settle?.();
      await tick();
      expect(said(actor.conns[1] ?? [])).toEqual(['subscribe 1']);
    });
  });

  it('a settled op the socket did not send before it closed is not carried to the next one', async () => {
    const got: Delivery[] = [];
    await withLink(async (actor, link) => {
      await link.subscribe('#', (d) => got.push(d), { share: 'g/#' });
      actor.send([{ op: 'frame', no: 9 }, message(1, 1)]);
      await tick();
      // Settled and the socket closes in the same turn: the op is queued, not sent.
      got[0]?.settle?.();
      (link as unknown as { onClose(): void; ws: { removeAllListeners(e: string): void; terminate(): void } }).ws.removeAllListeners('close');
      (link as unknown as { ws: { terminate(): void } }).ws.terminate();
      (link as unknown as { onClose(): void }).onClose();
      await tick(500);
      expect(actor.conns.length).toBe(2);
      expect(said(actor.conns[1] ?? [])).toEqual(['subscribe 1']);
    }, { answer: false });
  });

  it('a frame it cannot read on a link with spanning subscriptions ends the socket (its numbers would never be settled)', async () => {
    const logs: string[] = [];
    await withLink(async (actor, link) => {
      await link.subscribe('#', () => undefined, { share: 'g/#' });
      actor.sendRaw(new Uint8Array([0xff, 0x00]));
      await tick(500);
      expect(logs.join('\n')).toMatch(/bad frame from actor/);
      expect(actor.conns.length).toBe(2);
      expect(said(actor.conns[1] ?? [])).toEqual(['subscribe 1']);
    }, { link: { log: (m) => logs.push(m) } });
  });
});
