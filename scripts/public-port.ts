/**
 * Under `npm start` with a non-loopback EDGEFLUX_HOST (0.0.0.0 in a container): the public HTTP port,
 * a plain TCP forwarder to wrangler's proxy, which then listens on 127.0.0.1 only.
 *
 * Why: miniflare (the one wrangler 4.86 pins) starts, for each of its instances, a Node HTTP server
 * of its own — the "loopback server" workerd calls back into — on the same host as the instance's
 * public socket, with no option to put it elsewhere. For wrangler's proxy that host is the dev
 * server's, so with 0.0.0.0 the loopback server listened on every address, and it serves, to anyone
 * who reaches it, a file write anywhere the process may write (/core/store-temp-file), a read of any
 * file shown in an error page (/core/error), the proxy controller's own service binding, log
 * injection and a headless browser launch (docs/bridge.md, "What listens where"). Putting the proxy
 * on 127.0.0.1 moves its loopback server there too; this forwarder gives the public address back.
 *
 * It forwards bytes, not HTTP: no parsing, no pooling, WebSocket upgrades and half-closes pass through
 * as they are (one side's end is passed on; only an error ends both sides at once). It is the one Node hop this adds, and only when EDGEFLUX_HOST is not loopback
 * (docs/performance.md, "Sixteenth round", for what it costs).
 */
import { connect, createServer, type Server } from 'node:net';

/** Whether `host` names this machine's loopback interface only (then no forwarder is needed). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

export interface PublicPort {
  /** The address and port the forwarder's socket is bound to, as the system reports it. */
  bound: { address: string; port: number };
  /** The listening socket (its errors are logged here, never thrown). */
  server: Server;
  close: () => Promise<void>;
}

/**
 * Listens on host:port and pipes every connection to `target()` (wrangler's proxy on loopback; read
 * per connection). No target yet: the connection is cut, as a closed port would be for a client.
 */
export async function startPublicPort(host: string, port: number, target: () => { host: string; port: number } | undefined): Promise<PublicPort> {
  /** Per open connection: how to end both its sockets at once. */
  const open = new Set<() => void>();
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const to = target();
    if (!to) return void client.destroy();
    const up = connect({ host: to.host, port: to.port, noDelay: true, allowHalfOpen: true });
    // An error on either side ends both at once. A clean close ends only its own socket: `pipe` has
    // already passed its end on, and what the other side still has to write (a response to a client
    // that half-closed after its request, to a slow reader) is delivered, not cut off.
    const fail = () => {
      client.destroy();
      up.destroy();
    };
    open.add(fail);
    client.on('error', fail).on('close', (hadError) => {
      open.delete(fail);
      if (hadError) up.destroy();
    });
    up.on('error', fail).on('close', (hadError) => hadError && client.destroy());
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(port, host, () => (server.off('error', fail), ok())));
  // Errors after that (an accept failing for want of file descriptors) are said, not thrown: an
  // unhandled 'error' would end the dev server, and with it the whole platform.
  server.on('error', (e) => console.error(`public port ${host}:${port}: ${e.message}`));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the public port has no address');
  return {
    bound: { address: address.address, port: address.port },
    server,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        for (const end of open) end();
      }),
  };
}
