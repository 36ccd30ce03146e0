/**
 * `createCoapServer({ platform, limits, clock, log })`: the transport-agnostic core — `handle()`
 * takes one datagram and a way to answer its sender — plus UDP (`listen`, `close`). The core never
 * throws: whatever arrives is answered, rejected or ignored as RFC 7252 says.
 */
import type { Platform } from '../platform/types';
import { Auth } from './auth';
import { Representations, Uploads } from './blockwise';
import type { Context } from './context';
import { RateLimiter, resolveLimits, type CoapLimits } from './limits';
import { MessageLayer, type Exchange } from './message-layer';
import { Observers } from './observe';
import { createRouter } from './resources';
import { Transmitter } from './transmitter';
import { silentLog, systemClock, type Clock, type Endpoint, type Log, type Send } from './types';
import { bindUdp, type BoundAddress, type UdpBinding } from './udp';

export interface CoapServerOptions {
  platform: Platform;
  limits?: Partial<CoapLimits>;
  clock?: Clock;
  log?: Log;
  /** For the retransmission jitter and the first Message ID; tests fix it. */
  random?: () => number;
}

export interface CoapStats {
  observers: number;
  inFlight: number;
  dedupEntries: number;
  pendingUploads: number;
  onlineDevices: number;
  /** Datagrams taken in and sent since the server started (the ops server's metrics). */
  datagramsReceived: number;
  datagramsSent: number;
}

export interface CoapServer {
  /** One datagram from `from`; `send` answers that endpoint. Never throws. */
  handle(datagram: Uint8Array, from: Endpoint, send: Send): void;
  /** Binds UDP (docs/coap.md "Listening"): no host = 0.0.0.0 and, when the host has IPv6, [::]. */
  listen(port?: number, host?: string): Promise<BoundAddress[]>;
  close(): Promise<void>;
  stats(): CoapStats;
}

export function createCoapServer(opts: CoapServerOptions): CoapServer {
  const limits = resolveLimits(opts.limits);
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? silentLog;
  const random = opts.random ?? Math.random;
  let closed = false;
  let udp: UdpBinding | undefined;
  let received = 0;
  let sent = 0;
  const transmitter = new Transmitter(clock, random, log);
  let route: (ex: Exchange) => void = () => {};
  let heard: (epKey: string) => void = () => {};
  const ctx: Context = {
    platform: opts.platform, limits, clock, log,
    layer: new MessageLayer({ clock, limits, log, transmitter, onRequest: (ex) => route(ex), onHeard: (k) => heard(k) }),
    auth: new Auth(opts.platform, clock, limits, log),
    uploads: new Uploads(clock, limits),
    reps: new Representations(clock, limits),
    rate: new RateLimiter(limits.requestRate, () => clock.now()),
  };
  const observers = new Observers(ctx);
  route = createRouter(ctx, observers);
  heard = (k) => observers.heard(k);

  const handle = (datagram: Uint8Array, from: Endpoint, send: Send): void => {
    if (closed) return;
    received++;
    const safeSend: Send = (d) => {
      if (closed) return;
      try {
        send(d);
        sent++;
      } catch (e) {
        log.warn('coap: send failed', { error: String(e) });
      }
    };
    try {
      ctx.layer.receive(datagram, from, safeSend);
    } catch (e) {
      log.error('coap: datagram handling failed', { error: e instanceof Error ? e.stack ?? e.message : String(e) });
    }
  };

  return {
    handle,
    async listen(port = 5683, host?: string) {
      if (udp) throw new Error('already listening');
      udp = await bindUdp(port, host, handle, log);
      return udp.addresses;
    },
    async close() {
      if (closed) return;
      observers.close();
      ctx.auth.close();
      ctx.uploads.close();
      ctx.reps.close();
      ctx.layer.close();
      closed = true;
      await udp?.close();
    },
    stats: () => ({
      observers: observers.size,
      inFlight: transmitter.inFlight,
      dedupEntries: ctx.layer.dedupSize,
      pendingUploads: ctx.uploads.pending,
      onlineDevices: ctx.auth.onlineDevices.length,
      datagramsReceived: received,
      datagramsSent: sent,
    }),
  };
}
