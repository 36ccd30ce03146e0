/**
 * UDP for the CoAP core, with node:dgram (also provided by Bun and Deno). IPv4 and IPv6 are two
 * sockets — IPv6 with `ipv6Only`, so an IPv4 client is always seen as `a.b.c.d`, never as
 * `::ffff:a.b.c.d`, and its endpoint key does not depend on which socket it reached:
 *   no host / `0.0.0.0` + `::` → both wildcards (IPv6 skipped, and logged, where the host has none)
 *   `localhost`               → 127.0.0.1 and ::1 (the same)
 *   an IPv4 address or name   → that address only (udp4)
 *   an IPv6 address           → that address only (udp6)
 * With port 0 the IPv6 socket takes the port the IPv4 one got, so both answer on one number.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Endpoint, Log, Send } from './types';

export interface BoundAddress {
  family: 'IPv4' | 'IPv6';
  address: string;
  port: number;
}

export interface UdpBinding {
  addresses: BoundAddress[];
  close(): Promise<void>;
}

type Handle = (datagram: Uint8Array, from: Endpoint, send: Send) => void;

/** How long close() waits for datagrams still being sent (the observers' last 5.03) before closing anyway. */
export const CLOSE_DRAIN_MS = 2000;

/** Datagrams handed to a socket whose send callback has not run yet. */
interface InFlight {
  count: number;
  drained?: () => void;
}

function bindOne(type: 'udp4' | 'udp6', port: number, address: string, handle: Handle, log: Log, inFlight: InFlight): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type, ipv6Only: type === 'udp6' });
    const fail = (e: Error) => {
      socket.close();
      reject(e);
    };
    socket.once('error', fail);
    socket.bind({ port, address }, () => {
      socket.off('error', fail);
      socket.on('error', (e) => log.warn('coap: udp socket error', { type, error: e.message }));
      socket.on('message', (msg, rinfo) => {
        const send: Send = (d) => {
          const done = () => {
            if (--inFlight.count === 0) inFlight.drained?.();
          };
          inFlight.count++;
          try {
            socket.send(d, rinfo.port, rinfo.address, done);
          } catch (e) {
            done(); // not sent (a closed socket throws): nothing to wait for
            throw e;
          }
        };
        handle(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), rinfo, send);
      });
      resolve(socket);
    });
  });
}

export async function bindUdp(port: number, host: string | undefined, handle: Handle, log: Log): Promise<UdpBinding> {
  const pair = host === undefined || host === '0.0.0.0' || host === '::' ? ['0.0.0.0', '::'] : host === 'localhost' ? ['127.0.0.1', '::1'] : null;
  const sockets: Socket[] = [];
  const inFlight: InFlight = { count: 0 };
  if (pair) {
    const [v4, v6] = pair as [string, string];
    const first = await bindOne('udp4', port, v4, handle, log, inFlight);
    sockets.push(first);
    try {
      sockets.push(await bindOne('udp6', first.address().port, v6, handle, log, inFlight));
    } catch (e) {
      log.info('coap: no IPv6 listener', { address: v6, error: e instanceof Error ? e.message : String(e) });
    }
  } else {
    sockets.push(await bindOne(isIPv6(host!) ? 'udp6' : 'udp4', port, host!, handle, log, inFlight));
  }
  return {
    addresses: sockets.map((s) => {
      const a = s.address();
      return { family: a.family === 'IPv6' ? 'IPv6' : 'IPv4', address: a.address, port: a.port };
    }),
    // A datagram sent just before (the observers' last 5.03) leaves only later — after a lookup of
    // its address on Node; Deno's node:dgram drops every send still queued when the socket closes,
    // and one turn, or even 300 ms, is not enough for thousands. So close() waits until each send
    // has called back, for at most CLOSE_DRAIN_MS.
    close: async () => {
      if (inFlight.count > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((r) => {
          inFlight.drained = r;
          timer = setTimeout(r, CLOSE_DRAIN_MS);
        });
        clearTimeout(timer);
      }
      await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
