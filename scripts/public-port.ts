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
 * as they are. It is the one Node hop this adds, and only when EDGEFLUX_HOST is not loopback
 * (docs/performance.md, "Sixteenth round", for what it costs).
 */
import { connect, createServer, type Socket } from 'node:net';

/** Whether `host` names this machine's loopback interface only (then no forwarder is needed). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

export interface PublicPort {
  /** The address and port the forwarder's socket is bound to, as the system reports it. */
  bound: { address: string; port: number };
  close: () => Promise<void>;
}

/**
 * Listens on host:port and pipes every connection to `target()` (wrangler's proxy on loopback; read
 * per connection). No target yet: the connection is cut, as a closed port would be for a client.
 */
export async function startPublicPort(host: string, port: number, target: () => { host: string; port: number } | undefined): Promise<PublicPort> {
  const open = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const to = target();
    if (!to) return void client.destroy();
    const up = connect({ host: to.host, port: to.port, noDelay: true, allowHalfOpen: true });
    open.add(client);
    const cut = () => {
      open.delete(client);
      client.destroy();
      up.destroy();
    };
    client.on('error', cut).on('close', cut);
    up.on('error', cut).on('close', cut);
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(port, host, () => ok()));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the public port has no address');
  return {
    bound: { address: address.address, port: address.port },
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        for (const s of open) s.destroy();
      }),
  };
}
