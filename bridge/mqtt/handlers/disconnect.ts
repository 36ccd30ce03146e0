import type { IDisconnectPacket } from 'mqtt-packet';
import { RC } from '../codes';
import type { Connection } from '../connection';

/**
 * The client says goodbye: no will [MQTT-3.14.4-3], except v5 reason 0x04 "Disconnect with Will
 * Message". A v5 DISCONNECT may change the Session Expiry Interval, but not from 0 (§3.14.2.2.2: a protocol error).
 */
export function handleDisconnect(conn: Connection, packet: IDisconnectPacket): Promise<void> | void {
  if (conn.version === 5) {
    const expiry = packet.properties?.sessionExpiryInterval;
    if (expiry !== undefined) {
      if (conn.sessionExpiry === 0 && expiry > 0) return conn.disconnect(RC.ProtocolError, 'Session Expiry Interval cannot change from 0 on DISCONNECT');
      conn.sessionExpiry = Math.min(expiry, conn.limits.maxSessionExpiry);
    }
  }
  const will = conn.version === 5 && packet.reasonCode === RC.DisconnectWithWill;
  return conn.end({ reason: `DISCONNECT${packet.reasonCode ? ` 0x${packet.reasonCode.toString(16)}` : ''}`, will });
}
