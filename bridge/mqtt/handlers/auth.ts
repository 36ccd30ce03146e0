import type { IAuthPacket } from 'mqtt-packet';
import { RC } from '../codes';
import type { Connection } from '../connection';

/**
 * v5 AUTH. Enhanced authentication is not offered (a CONNECT with an Authentication Method gets
 * CONNACK 0x8C), so an AUTH packet can only be a protocol error (§4.12: AUTH belongs to an
 * authentication exchange the CONNECT started).
 */
export function handleAuth(conn: Connection, _packet: IAuthPacket): void {
  conn.disconnect(RC.ProtocolError, 'AUTH without an authentication method in CONNECT');
}
