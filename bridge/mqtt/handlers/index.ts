import type { Packet } from 'mqtt-packet';
import { RC } from '../codes';
import type { Connection } from '../connection';
import { handleAuth } from './auth';
import { handleConnect } from './connect';
import { handleDisconnect } from './disconnect';
import { handlePingreq } from './pingreq';
import { handlePuback } from './puback';
import { handlePubcomp } from './pubcomp';
import { handlePublish } from './publish';
import { handlePubrec } from './pubrec';
import { handlePubrel } from './pubrel';
import { handleSubscribe } from './subscribe';
import { handleUnsubscribe } from './unsubscribe';
import { protocolProblem } from '../wellformed';

/** The single dispatch: one handler per packet type. Packets of one connection arrive here one at a time. */
export function dispatch(conn: Connection, packet: Packet): Promise<void> | void {
  if (packet.cmd === 'connect') return handleConnect(conn, packet);
  // [MQTT-3.1.0-1] the first packet must be CONNECT: anything else closes the connection unanswered.
  if (conn.phase !== 'open') return void conn.end({ reason: `${packet.cmd} before CONNECT [MQTT-3.1.0-1]`, will: false });
  const problem = protocolProblem(packet);
  if (problem) {
    if (packet.cmd === 'publish') conn.ctx.counters.refusedPublish(RC.ProtocolError);
    return conn.disconnect(RC.ProtocolError, problem);
  }
  switch (packet.cmd) {
    case 'publish':
      return handlePublish(conn, packet);
    case 'puback':
      return handlePuback(conn, packet);
    case 'pubrec':
      return handlePubrec(conn, packet);
    case 'pubrel':
      return handlePubrel(conn, packet);
    case 'pubcomp':
      return handlePubcomp(conn, packet);
    case 'subscribe':
      return handleSubscribe(conn, packet);
    case 'unsubscribe':
      return handleUnsubscribe(conn, packet);
    case 'pingreq':
      return handlePingreq(conn);
    case 'disconnect':
      return handleDisconnect(conn, packet);
    case 'auth':
      return handleAuth(conn, packet);
    default:
      // CONNACK, SUBACK, PINGRESP…: server-to-client packets coming from a client.
      return conn.disconnect(RC.ProtocolError, `a client may not send ${packet.cmd}`);
  }
}
