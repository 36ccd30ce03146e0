import { Duplex } from 'node:stream';

/** Two in-memory streams wired back to back: what one writes, the other reads (one chunk per write, or per uncork); ending one ends the other's input. */
export function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = [];
  const make = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        const p = peer();
        if (!p.destroyed && !p.readableEnded) p.push(chunk);
        done();
      },
      // As a TCP socket does: what was written while corked goes out as one chunk.
      writev(chunks: { chunk: Buffer }[], done) {
        const p = peer();
        if (!p.destroyed && !p.readableEnded) p.push(Buffer.concat(chunks.map((c) => c.chunk)));
        done();
      },
      final(done) {
        const p = peer();
        if (!p.destroyed) p.push(null);
        done();
      },
      destroy(err, done) {
        const p = peer();
        if (!p.destroyed && !p.readableEnded) p.push(null);
        done(err);
      },
    });
  sides.push(make(() => sides[1]!), make(() => sides[0]!));
  return [sides[0]!, sides[1]!];
}
