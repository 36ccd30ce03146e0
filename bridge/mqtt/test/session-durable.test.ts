import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { SESSION_SUBPROTOCOL } from '../../../shared/session-link';
import { DurableSessionStore } from '../session-durable';

/**
 * The session store's liveness checks against a stand-in session actor (a `ws` server speaking the
 * session-socket protocol, shared/session-link.ts): one sweep timer pings every held socket, and a
 * socket that leaves a ping unanswered is dropped and attached again. The platform-level behaviour
 * (takeover, wills after a crash) is in test/node/mqtt-sessions.test.ts.
 */
interface FakeActor {
  url: string;
  /** Every socket the store opened, in order, with the session key and what it saw. */
  sockets: { key: string; ws: WebSocket; pings: number; ops: string[]; closed: boolean; connectedAt: number; firstPingAt?: number }[];
  close(): Promise<void>;
}

/** `pong`: whether the actor's runtime answers pings (a hung actor or a dead path does not). */
async function fakeActor(pong: (socketIndex: number) => boolean): Promise<FakeActor> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', autoPong: false, handleProtocols: (p) => (p.has(SESSION_SUBPROTOCOL) ? SESSION_SUBPROTOCOL : false) });
  await new Promise((r) => wss.once('listening', r));
  const sockets: FakeActor['sockets'] = [];
  let epoch = 0;
  wss.on('connection', (ws, req) => {
    const s: FakeActor['sockets'][number] = { key: decodeURIComponent(req.url!.replace('/internal/sessions/', '')), ws, pings: 0, ops: [], closed: false, connectedAt: Date.now() };
    const index = sockets.push(s) - 1;
    ws.on('ping', (data) => {
      s.pings++;
      s.firstPingAt ??= Date.now();
      if (pong(index)) ws.pong(data);
    });
    ws.on('close', () => (s.closed = true));
    ws.on('message', (data) => {
      const op = JSON.parse(data.toString()) as { op: string; id: number; epoch?: number };
      s.ops.push(op.op === 'attach' ? `attach ${op.epoch}` : op.op);
      if (op.op === 'open') ws.send(JSON.stringify({ op: 'opened', id: op.id, epoch: ++epoch, state: null }));
      if (op.op === 'attach') ws.send(JSON.stringify({ op: 'attached', id: op.id, ok: true }));
      if (op.op === 'release') ws.send(JSON.stringify({ op: 'released', id: op.id, ok: true }));
    });
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

async function until(f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(actor: FakeActor) {
  const store = new DurableSessionStore({ workerUrl: actor.url, bridgeSecret: 'x', pingMs: 40 });
  cleanups.push(() => store.close(), () => actor.close());
  const events: string[] = [];
  const holder = (name: string) => ({ takenOver: async () => void events.push(`${name} taken over`), storeLost: (why: string) => void events.push(`${name} lost: ${why}`) });
  return { store, events, holder };
}

describe('durable session store: liveness of session sockets', () => {
  it('pings every held session socket; answered pings keep each socket as it is', async () => {
    const actor = await fakeActor(() => true);
    const { store, events, holder } = setup(actor);
    for (const name of ['a', 'b', 'c']) await store.open(`dev\u0000${name}`, holder(name), true);
    await until(() => actor.sockets.every((s) => s.pings >= 3));
    expect(actor.sockets.map((s) => s.key)).toEqual(['dev\u0000a', 'dev\u0000b', 'dev\u0000c']);
    expect(actor.sockets.map((s) => s.closed)).toEqual([false, false, false]);
    expect(events).toEqual([]);
  });

  it('pings each socket at its own pace from when it was held, not all in one burst', async () => {
    const actor = await fakeActor(() => true);
    const store = new DurableSessionStore({ workerUrl: actor.url, bridgeSecret: 'x', pingMs: 400 });
    cleanups.push(() => store.close(), () => actor.close());
    const holder = { takenOver: async () => undefined };
    await store.open('dev\u0000a', holder, true);
    await new Promise((r) => setTimeout(r, 200));
    await store.open('dev\u0000b', holder, true);
    await until(() => actor.sockets.length === 2 && actor.sockets.every((s) => s.pings >= 1));
    // b was held 200 ms after a. Pinged in one burst, b would get its first ping with a's, 200 ms
    // after it was held; at its own pace, no sooner than 400 ms after. (A loaded machine makes pings
    // late, never early, so this cannot fail for being slow.)
    for (const s of actor.sockets) expect(s.firstPingAt! - s.connectedAt).toBeGreaterThanOrEqual(400 - 5);
  });

  it('drops a socket that left a ping unanswered and holds the session again on a new one, with the same epoch', async () => {
    // The first socket of session "b" stops answering: the others, and b's next socket, answer.
    const actor = await fakeActor((i) => i !== 1);
    const { store, events, holder } = setup(actor);
    const leases = [];
    for (const name of ['a', 'b', 'c']) leases.push(await store.open(`dev\u0000${name}`, holder(name), false, { expirySeconds: 60 }));
    await until(() => actor.sockets[1]!.closed);
    // Reattached after the first backoff (250 ms), with b's epoch.
    await until(() => actor.sockets.length === 4 && actor.sockets[3]!.ops.length > 0);
    expect(actor.sockets[3]!.key).toBe('dev\u0000b');
    expect(actor.sockets[3]!.ops).toEqual([`attach ${leases[1]!.epoch}`]);
    expect(actor.sockets.map((s) => s.closed)).toEqual([false, true, false, false]);
    // Still the holder: writes go through the new socket.
    await store.release('dev\u0000b', leases[1]!.epoch, null, 0);
    expect(actor.sockets[3]!.ops).toEqual([`attach ${leases[1]!.epoch}`, 'release']);
    expect(events).toEqual([]);
  });

  it('ends the connection when the session cannot be held again after its socket went dead', async () => {
    // No socket ever answers a ping; the actor then refuses new sockets (it went away).
    const actor = await fakeActor(() => false);
    const { store, events, holder } = setup(actor);
    await store.open('dev\u0000a', holder('a'), true);
    await until(() => actor.sockets[0]!.closed);
    await actor.close();
    await until(() => events.length > 0, 15_000);
    expect(events).toEqual([expect.stringMatching(/^a lost: session store connection lost/)]);
    expect(store.size).toBe(0);
  }, 20_000);
});
