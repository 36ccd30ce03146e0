import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { WebSocketServer, type RawData } from 'ws';
import type { Platform } from '../platform/types';
import { systemClock, type Clock } from '../clock';
import { MqttCounters } from '../ops/counters';
import { RC } from './codes';
import { Connection, type ConnectionInfo } from './connection';
import type { ServerContext } from './context';
import { dispatch } from './handlers/index';
import { KeepAliveSweep } from './keepalive';
import { checkLimits, DEFAULT_LIMITS, type MqttLimits } from './limits';
import { MemorySessionStore, type SessionStore } from './session';
import { SharedSubscriptions } from './shares';
import { adaptWebSocket, chooseMqttSubprotocol } from './websocket';
import { Wills } from './wills';

/**
 * The MQTT 3.1.1 / 5.0 front-end (docs/mqtt.md). Transport-agnostic at its core: `handle()` takes
 * any byte stream; the listeners below are TCP, TLS and WebSocket around it.
 */
export interface MqttServerOptions {
  platform: Platform;
  /** Where persistent sessions live; in-memory by default (sessions survive reconnects, not restarts). */
  sessions?: SessionStore;
  limits?: Partial<MqttLimits>;
  clock?: Clock;
  log?: (msg: string) => void;
}

export interface TlsOptions {
  port: number;
  host?: string;
  cert: string | Buffer;
  key: string | Buffer;
  ca?: string | Buffer;
  /** Ask for (and require) a client certificate signed by `ca`; its CN must then equal the MQTT username. */
  requestCert?: boolean;
}

export interface Bound {
  port: number;
}

export interface MqttServer {
  handle(stream: Duplex, info?: ConnectionInfo): Connection;
  listenTcp(port: number, host?: string): Promise<Bound>;
  listenTls(opts: TlsOptions): Promise<Bound>;
  /** MQTT over WebSocket on `path` (default /mqtt), subprotocol `mqtt`. */
  listenWebSocket(opts: { port: number; host?: string; path?: string }): Promise<Bound>;
  /** Stops listening and ends every connection (v5: DISCONNECT 0x8B); sessions are released. */
  close(): Promise<void>;
  readonly connections: ReadonlySet<Connection>;
  readonly context: ServerContext;
}

type Closable = NetServer | HttpServer;

function listen(server: Closable, port: number, host: string): Promise<Bound> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve({ port: typeof addr === 'object' && addr ? addr.port : port });
    });
  });
}

export function createMqttServer(opts: MqttServerOptions): MqttServer {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? (() => undefined);
  let requireCertMatch = false;
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  checkLimits(limits);
  const ctx: ServerContext = {
    platform: opts.platform,
    store: opts.sessions ?? new MemorySessionStore(clock),
    limits,
    clock,
    log,
    devices: new Map(),
    holders: new Map(),
    claiming: new Map(),
    buckets: new Map(),
    shares: new SharedSubscriptions(opts.platform, clock, log),
    wills: new Wills(opts.platform, clock, log),
    keepalive: new KeepAliveSweep(clock),
    counters: new MqttCounters(),
    get certificateMustMatchUsername() {
      return requireCertMatch;
    },
  };
  const connections = new Set<Connection>();
  const listeners: Closable[] = [];
  const hooks = { dispatch, ended: (c: Connection) => connections.delete(c) };

  // Sessions of an org whose access changed are asked about at once, idle ones included.
  const stopFollowing = opts.platform.onAccessChange?.((org) => {
    for (const c of connections) if (org === undefined || (c.principal && c.principal.kind !== 'user' && c.principal.orgId === org)) c.accessChanged();
  });

  function handle(stream: Duplex, info: ConnectionInfo = {}): Connection {
    const conn = new Connection(stream, ctx, info, hooks);
    connections.add(conn);
    return conn;
  }

  async function tcp(port: number, host = '127.0.0.1'): Promise<Bound> {
    const server = createNetServer((socket: Socket) => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
      handle(socket, { remote: `${socket.remoteAddress}:${socket.remotePort}`, transport: 'tcp' });
    });
    listeners.push(server);
    return listen(server, port, host);
  }

  async function tls(o: TlsOptions): Promise<Bound> {
    requireCertMatch = o.requestCert === true;
    const server = createTlsServer({ cert: o.cert, key: o.key, ...(o.ca ? { ca: o.ca } : {}), requestCert: o.requestCert === true, rejectUnauthorized: o.requestCert === true }, (socket: TLSSocket) => {
      socket.setNoDelay(true);
      const cn = socket.authorized ? socket.getPeerCertificate().subject?.CN : undefined;
      handle(socket, { remote: `${socket.remoteAddress}:${socket.remotePort}`, transport: 'tls', ...(typeof cn === 'string' ? { certificateCN: cn } : {}) });
    });
    server.on('tlsClientError', (e) => log(`mqtt tls: handshake failed: ${e.message}`));
    listeners.push(server);
    return listen(server, o.port, o.host ?? '127.0.0.1');
  }

  async function websocket(o: { port: number; host?: string; path?: string }): Promise<Bound> {
    const http = createHttpServer((_req, res) => res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' }).end('MQTT over WebSocket: connect with subprotocol "mqtt"\n'));
    // A larger message is refused from its frame header (close 1009), before it is buffered (ws's default: 100 MiB).
    const wss = new WebSocketServer({ server: http, path: o.path ?? '/mqtt', maxPayload: ctx.limits.maxWebSocketMessage, handleProtocols: (offered) => chooseMqttSubprotocol(offered) ?? false });
    wss.on('connection', (ws, req) => {
      const a = adaptWebSocket(ws);
      ws.on('message', (data: RawData, binary: boolean) => {
        const bytes = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? Buffer.from(data) : data;
        a.message(binary ? bytes : bytes.toString('utf8'));
      });
      ws.on('close', () => a.closed());
      ws.on('error', (e) => a.closed(e));
      handle(a.stream, { remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`, transport: 'ws' });
    });
    http.on('close', () => wss.close());
    listeners.push(http);
    return listen(http, o.port, o.host ?? '127.0.0.1');
  }

  return {
    handle,
    connections,
    context: ctx,
    listenTcp: tcp,
    listenTls: tls,
    listenWebSocket: websocket,
    async close() {
      stopFollowing?.();
      const stopped = listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
      // Ending every connection: wills without delay go out (the bridge, not the device, went away — but
      // a device that does not come back must still be seen to be gone); delayed ones are left to the
      // session actors, which publish them when due unless the client reconnects first (the memory
      // store cannot: there they are dropped, as timers of this process).
      const ended = [...connections].map((c) => {
        c.disconnect(RC.ServerShuttingDown, 'server shutting down', true, true);
        return c.end({ reason: 'server shutting down', will: true, willToStore: true });
      });
      await Promise.allSettled(ended);
      await ctx.wills.close();
      for (const l of listeners) if ('closeAllConnections' in l) l.closeAllConnections();
      await Promise.all(stopped);
    },
  };
}
