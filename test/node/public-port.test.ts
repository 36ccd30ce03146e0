/**
 * scripts/public-port.ts, the TCP forwarder that serves npm start's public port when EDGEFLUX_HOST is
 * not loopback: it passes a half-close on without cutting what the other side still sends, and an
 * error on its listening socket does not end the process.
 */
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { afterEach, expect, it, vi } from 'vitest';
import { startPublicPort, type PublicPort } from '../../scripts/public-port';

let upstream: Server | undefined;
let forwarder: PublicPort | undefined;
afterEach(async () => {
  await forwarder?.close();
  await new Promise<void>((ok) => (upstream ? upstream.close(() => ok()) : ok()));
  upstream = forwarder = undefined;
  vi.restoreAllMocks();
});

it("delivers the whole answer to a client that half-closed after its request and reads slowly", async () => {
  const SIZE = 32 * 1024 * 1024;
  // Answers once the client's request has ended (its FIN), then closes: as an HTTP/1.0 server would.
  upstream = createServer({ allowHalfOpen: true }, (s) => {
    s.resume();
    s.on('end', () => s.end(Buffer.alloc(SIZE, 7)));
  });
  await new Promise<void>((ok) => upstream!.listen(0, '127.0.0.1', ok));
  const target = { host: '127.0.0.1', port: (upstream.address() as AddressInfo).port };
  forwarder = await startPublicPort('127.0.0.1', 0, () => target);

  const got = await new Promise<number>((ok, fail) => {
    const c = connect({ host: '127.0.0.1', port: forwarder!.bound.port, allowHalfOpen: true });
    let n = 0;
    c.on('error', fail);
    c.on('connect', () => c.end('request')); // half-close: nothing more to send, still reading
    // A slow reader to the last byte: the answer piles up in the forwarder's buffers behind it.
    c.on('data', (d: Buffer) => {
      n += d.length;
      c.pause();
      setTimeout(() => c.resume(), 1);
    });
    c.on('close', () => ok(n));
  });
  expect(got).toBe(SIZE);
});

it('says an error on its listening socket and goes on serving (an unhandled one would end the dev server)', async () => {
  upstream = createServer((s) => s.end('hello'));
  await new Promise<void>((ok) => upstream!.listen(0, '127.0.0.1', ok));
  const target = { host: '127.0.0.1', port: (upstream.address() as AddressInfo).port };
  forwarder = await startPublicPort('127.0.0.1', 0, () => target);
  const said = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  // accept() failing for want of file descriptors (EMFILE) is emitted on the server; it cannot be caused here without starving this process.
  for (let i = 0; i < 3; i++) expect(() => forwarder!.server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }))).not.toThrow();
  expect(said).toHaveBeenCalledTimes(3);
  const answer = await new Promise<string>((ok, fail) => {
    let text = '';
    connect({ host: '127.0.0.1', port: forwarder!.bound.port })
      .on('data', (d: Buffer) => (text += d.toString()))
      .on('close', () => ok(text))
      .on('error', fail);
  });
  expect(answer).toBe('hello');
});
