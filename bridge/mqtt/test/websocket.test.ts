import { describe, expect, it } from 'vitest';
import { adaptWebSocket, type WebSocketLike } from '../websocket';

/** A socket that records what is sent; `flush()` reports the sends written to the network. */
function fakeSocket() {
  const sent: Uint8Array[] = [];
  const callbacks: (() => void)[] = [];
  const ws: WebSocketLike = {
    send: (data, done) => (sent.push(Uint8Array.from(data)), callbacks.push(() => done())),
    close: () => undefined,
  };
  return { ws, sent, flush: () => callbacks.splice(0).forEach((f) => f()) };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('adaptWebSocket, writing', () => {
  it('a corked burst goes out as one message; nothing more is sent until the socket says the last one went', async () => {
    const s = fakeSocket();
    const { stream } = adaptWebSocket(s.ws);
    stream.cork();
    for (const b of [1, 2, 3]) stream.write(Buffer.from([b]));
    stream.uncork();
    await tick();
    expect(s.sent.map((m) => [...m])).toEqual([[1, 2, 3]]);
    stream.write(Buffer.from([4]));
    stream.write(Buffer.from([5]));
    await tick();
    // Waiting for the network: the stream holds them, and Connection.backlog counts them with the message in flight.
    expect(s.sent).toHaveLength(1);
    expect(stream.writableLength).toBe(3 + 2);
    s.flush();
    await tick();
    expect(s.sent.map((m) => [...m])).toEqual([[1, 2, 3], [4, 5]]);
  });

  it('what waited is joined into messages of at most 64 KiB (a larger packet alone)', async () => {
    const s = fakeSocket();
    const { stream } = adaptWebSocket(s.ws);
    stream.write(Buffer.alloc(1));
    for (const size of [20, 20, 20, 20, 100, 10]) stream.write(Buffer.alloc(size * 1024));
    await tick();
    s.flush();
    await tick();
    expect(s.sent.map((m) => m.length / 1024)).toEqual([1 / 1024, 60, 20, 100, 10]);
  });
});
