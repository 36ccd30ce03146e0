import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Packet } from 'mqtt-packet';
import type { Platform } from '../platform/types';
import { Client, type ServerContext } from './client';
import { RC } from './codes';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './handlers/acks';
import { handleConnect } from './handlers/connect';
import { handlePublish } from './handlers/publish';
import { handleDisconnect, handlePingreq } from './handlers/session';
import { handleSubscribe, handleUnsubscribe } from './handlers/subscribe';
import { DEFAULT_LIMITS, type MqttLimits } from './limits';

/**
 * The MQTT 3.1.1 / 5.0 front-end (docs/mqtt.md). Transport-agnostic: `handle()` takes any byte
 * stream (TCP, TLS, a WebSocket stream); `listenTcp()` is the plain-TCP listener.
 */
export interface MqttServerOptions {
  platform: Platform;
  limits?: Partial<MqttLimits>;
  log?: (msg: string) => void;
}

export interface MqttServer {
  handle(stream: Duplex): Client;
  listenTcp(port: number, host?: string): Promise<{ port: number }>;
  close(): Promise<void>;
  readonly clients: ReadonlyMap<string, Client>;
}

/** The single dispatch: one handler per packet type (aedes' shape). */
async function dispatch(client: Client, packet: Packet): Promise<void> {
  if (packet.cmd !== 'connect' && !client.connected) {
    // [MQTT-3.1.0-1] the first packet must be CONNECT.
    return client.destroy(`${packet.cmd} before CONNECT`);
  }
  client.touch();
  switch (packet.cmd) {
    case 'connect':
      return handleConnect(client, packet);
    case 'publish':
      return handlePublish(client, packet);
    case 'puback':
      return handlePuback(client, packet);
    case 'pubrec':
      return handlePubrec(client, packet);
    case 'pubrel':
      return handlePubrel(client, packet);
    case 'pubcomp':
      return handlePubcomp(client, packet);
    case 'subscribe':
      return handleSubscribe(client, packet);
    case 'unsubscribe':
      return handleUnsubscribe(client, packet);
    case 'pingreq':
      return handlePingreq(client);
    case 'disconnect':
      return handleDisconnect(client, packet);
    default:
      // Server-to-client packets (CONNACK, SUBACK…) or AUTH, which we do not negotiate.
      return client.disconnect(RC.ProtocolError, `unexpected ${packet.cmd} from a client`, false);
  }
}

export function createMqttServer(opts: MqttServerOptions): MqttServer {
  const ctx: ServerContext = {
    platform: opts.platform,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    log: opts.log ?? (() => undefined),
    clients: new Map(),
    perDevice: new Map(),
    shares: new Map(),
  };
  const sockets = new Set<Duplex>();
  let tcp: Server | null = null;

  function handle(stream: Duplex): Client {
    const client = new Client(stream, ctx);
    sockets.add(stream);
    // Packets are handled one after another per client, in arrival order.
    let work: Promise<void> = Promise.resolve();
    client.parser.on('packet', (packet: Packet) => {
      work = work
        .then(() => (client.closed ? undefined : dispatch(client, packet)))
        .catch((e: unknown) => client.disconnect(RC.ImplementationSpecificError, `internal error: ${e instanceof Error ? e.message : String(e)}`, false));
    });
    // Malformed bytes: v5 is told 0x81 when possible, then the connection closes [MQTT-4.13.1-1].
    client.parser.on('error', (e: Error) => client.disconnect(RC.MalformedPacket, `malformed packet: ${e.message}`, false));
    stream.on('data', (chunk: Buffer) => {
      if (client.closed) return;
      client.parser.parse(chunk);
      // The fixed header declares the length before the body arrives: refuse oversize packets early.
      const declared = (client.parser as unknown as { packet?: { length?: number } }).packet?.length ?? -1;
      if (declared > ctx.limits.maxPacketSize) client.disconnect(RC.PacketTooLarge, `packet of ${declared} bytes exceeds ${ctx.limits.maxPacketSize}`, false);
    });
    stream.on('error', () => client.end(false));
    stream.on('close', () => {
      sockets.delete(stream);
      client.end(false);
    });
    return client;
  }

  return {
    handle,
    clients: ctx.clients,
    listenTcp(port, host = '127.0.0.1') {
      return new Promise((ok, fail) => {
        tcp = createServer((socket: Socket) => {
          socket.setNoDelay(true);
          handle(socket);
        });
        tcp.once('error', fail);
        tcp.listen(port, host, () => {
          const addr = tcp!.address();
          ok({ port: typeof addr === 'object' && addr ? addr.port : port });
        });
      });
    },
    async close() {
      for (const c of ctx.clients.values()) c.disconnect(RC.ServerBusy, 'server shutting down', true);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (tcp ? tcp.close(() => r()) : r()));
    },
  };
}
